"""`--engine ray`: one Ray task per photo, on a local Ray or a cluster, with no shared
filesystem. The driver reads each photo, skips the up-to-date ones itself, sends the rest as
bytes, and writes each returned avatar folder into OUT through the same atomic staging as a
local build; the workers only ever touch their own temporary folders.

Ray is an optional extra (`pip install 'avatarkit[cluster]'`), imported only here.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from avatarkit.build.options import BuildOptions
from avatarkit.build.output import staging
from avatarkit.build.pipeline import BuildResult, cached_build
from avatarkit.errors import AvatarkitError

RAY_MISSING = "--engine ray needs Ray, which is not installed: pip install 'avatarkit[cluster]'"
# Ray re-runs a task whose worker or node died (a system failure) this many times; a photo that
# fails on its own merits returns a failed result instead of raising, so it is never retried.
TASK_RETRIES = 1


@dataclass
class PackedBuild:
    """What a worker sends back: the result, and the avatar folder's files by relative path."""

    result: BuildResult
    files: dict[str, bytes] = field(default_factory=dict)


def import_ray() -> Any:
    """The `ray` module, or the one-line install hint."""
    try:
        import ray
    except ImportError:
        raise AvatarkitError(RAY_MISSING) from None
    return ray


def build_packed(photo_name: str, data: bytes, options: BuildOptions, name: str) -> PackedBuild:
    """Runs on a Ray worker: build from the photo's bytes in a private temporary folder and
    return the folder's files. Never raises for a bad photo (build_one turns it into a row)."""
    from avatarkit.build.folder import build_one  # folder imports this module

    with tempfile.TemporaryDirectory(prefix="avatarkit-ray-") as tmp:
        photo = Path(tmp, "in", photo_name)  # same file name: same messages and manifest
        photo.parent.mkdir()
        photo.write_bytes(data)
        result = build_one(photo, Path(tmp, "out"), options, name)
        files: dict[str, bytes] = {}
        if result.status == "built" and result.output:
            folder = Path(result.output)
            files = {p.relative_to(folder).as_posix(): p.read_bytes()
                     for p in sorted(folder.rglob("*")) if p.is_file()}
        return PackedBuild(result, files)


def build_on_ray(
    photos: list[Path],
    targets: dict[Path, Path],
    options: BuildOptions,
    *,
    jobs: int | None,
    address: str | None,
    done: Callable[[Path, BuildResult], None],
    verbose: bool = False,
) -> None:
    """Build `photos` (each into `targets[photo]`) as Ray tasks; `done` gets each result in
    the order they finish. At most `jobs` tasks are in flight (default: twice the cluster's
    CPUs), so the driver never holds more than that many photos in memory."""
    ray = import_ray()
    started_here = connect(ray, address, jobs, verbose)
    try:
        task = ray.remote(num_cpus=1, max_retries=TASK_RETRIES,
                          retry_exceptions=False)(build_packed)
        window = jobs or max(1, 2 * int(ray.cluster_resources().get("CPU", 1)))

        pending: dict[Any, Path] = {}
        try:
            for photo, data, result in _read(photos, targets, options):
                if result is not None:
                    done(photo, result)
                    continue
                pending[task.remote(photo.name, data, options, targets[photo].name)] = photo
                while len(pending) >= window:
                    _collect(ray, pending, targets, done)
            while pending:
                _collect(ray, pending, targets, done)
        except BaseException:  # Ctrl-C: stop the tasks; staging left no half-written folder
            for ref in pending:
                ray.cancel(ref, force=True)
            raise
    finally:
        if started_here:
            ray.shutdown()


def connect(ray: Any, address: str | None, jobs: int | None, verbose: bool = False) -> bool:
    """Join `address` (or $RAY_ADDRESS), or start a local Ray; False when Ray was already
    running in this process (the caller owns it and stops it)."""
    if ray.is_initialized():
        return False
    address = address or os.environ.get("RAY_ADDRESS") or None
    quiet: dict[str, Any] = {"logging_level": logging.DEBUG if verbose else logging.ERROR,
                             "log_to_driver": verbose}
    try:
        if address:
            ray.init(address=address, **quiet)
        else:
            ray.init(address="local", num_cpus=jobs or os.cpu_count(), include_dashboard=False,
                     **quiet)
    except Exception as exc:  # Ray raises ConnectionError, ValueError, RuntimeError, ...
        where = f"join the Ray cluster at {address}" if address else "start a local Ray"
        raise AvatarkitError(f"could not {where}: {exc}".splitlines()[0]) from None
    return True


def _read(photos: list[Path], targets: dict[Path, Path], options: BuildOptions,
          ) -> Iterator[tuple[Path, bytes, BuildResult | None]]:
    """Each photo with its bytes, and a result when there is nothing to send (up to date, or
    unreadable): read lazily, so only the photos in flight are in memory."""
    for photo in photos:
        try:
            data, skipped = cached_build(photo, targets[photo], options)
        except AvatarkitError as exc:
            yield photo, b"", BuildResult(str(photo), "failed", error=str(exc))
            continue
        yield photo, data, skipped


def _collect(ray: Any, pending: dict[Any, Path], targets: dict[Path, Path],
             done: Callable[[Path, BuildResult], None]) -> None:
    """Wait for one task and land its result."""
    (ref,), _ = ray.wait(list(pending), num_returns=1)
    photo = pending.pop(ref)
    done(photo, land(ray, ref, photo, targets[photo]))


def land(ray: Any, ref: Any, photo: Path, target: Path) -> BuildResult:
    """The task's result with the driver's paths; a built avatar is written to `target`
    atomically. A lost worker or node (after Ray's retry) is one failed row."""
    try:
        packed: PackedBuild = ray.get(ref)
    except ray.exceptions.RayError as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        return BuildResult(str(photo), "failed", error=(
            f"{photo.name}: the Ray worker building it was lost ({type(exc).__name__}"
            + (f": {reason}" if reason else "") + ") - it was retried once"))
    result = packed.result
    result.photo = str(photo)
    if result.status != "built" or result.output is None:
        return result
    built_in = Path(result.output)
    try:
        with staging(target) as folder:
            for relative, blob in packed.files.items():
                (folder / relative).parent.mkdir(parents=True, exist_ok=True)
                (folder / relative).write_bytes(blob)
    except AvatarkitError as exc:
        return BuildResult(str(photo), "failed", error=str(exc), timings=result.timings)
    except OSError as exc:
        return BuildResult(str(photo), "failed", timings=result.timings,
                           error=f"could not write {target}: {exc.strerror or exc}")
    result.output = str(target)
    result.files = [str(target / Path(f).relative_to(built_in)) for f in result.files]
    return result
