"""Folder mode: one avatar per photo, in worker processes, where one bad photo never stops
the others. Each worker process loads its own face model (mediapipe graphs are per process)."""

from __future__ import annotations

import json
import multiprocessing
import time
import traceback
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict
from pathlib import Path
from typing import Any, Literal

from avatarkit.build.options import BuildOptions
from avatarkit.build.pipeline import BuildResult, build_avatar
from avatarkit.build.ray_engine import build_on_ray
from avatarkit.build.shard import Shard
from avatarkit.errors import AvatarkitError
from avatarkit.version import __version__

PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")


def find_photos(folder: Path) -> list[Path]:
    """The photos directly in `folder` (jpg, jpeg, png, webp in any case), sorted by name.
    Hidden files are skipped (macOS leaves `._name.jpg` resource forks next to photos)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise AvatarkitError(f"could not read {folder}: no such folder")
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and p.suffix.lower() in PHOTO_SUFFIXES
                  and not p.name.startswith("."))


def output_names(photos: list[Path]) -> dict[Path, str]:
    """Avatar folder name per photo: the stem, or stem_ext where stems collide (a.jpg, a.png)."""
    stems: dict[str, int] = {}
    for p in photos:
        stems[p.stem.lower()] = stems.get(p.stem.lower(), 0) + 1
    return {p: p.stem if stems[p.stem.lower()] == 1 else f"{p.stem}_{p.suffix[1:].lower()}"
            for p in photos}


def build_one(photo: Path, out: Path, options: BuildOptions, name: str | None = None,
              ) -> BuildResult:
    """build_avatar, with every failure turned into a failed result (never raises)."""
    started = time.perf_counter()
    try:
        return build_avatar(photo, out, options, name=name)
    except AvatarkitError as exc:
        error = str(exc)
    except Exception as exc:  # a bug must not take the other photos down with it
        last = traceback.extract_tb(exc.__traceback__)[-1]
        error = (f"{photo.name}: internal error {type(exc).__name__}: {exc} "
                 f"(at {Path(last.filename).name}:{last.lineno}) - please report it")
    elapsed = round(time.perf_counter() - started, 4)
    return BuildResult(str(photo), "failed", error=error, timings={"total": elapsed})


Engine = Literal["local", "ray"]
ENGINES: tuple[Engine, ...] = ("local", "ray")


def build_folder(
    folder: str | Path,
    out: str | Path,
    options: BuildOptions | None = None,
    *,
    jobs: int | None = None,
    on_result: Callable[[BuildResult], None] | None = None,
    engine: Engine = "local",
    address: str | None = None,
    shard: Shard | None = None,
    verbose: bool = False,
) -> list[BuildResult]:
    """Build every photo in `folder` into `out/<stem>/`; results in photo-name order.

    engine "local": jobs=1 (the default) works in this process; jobs>1 uses that many worker
    processes (spawned, so no forked copy of a running mediapipe graph). engine "ray": one Ray
    task per photo (avatarkit.build.ray_engine), on `address` or a local Ray; `jobs` caps the
    tasks in flight. `shard` keeps only its part of the folder (avatarkit.build.shard); an
    empty part gives no results. `on_result` is called as each photo finishes.
    """
    options = options or BuildOptions()
    photos = find_photos(Path(folder))
    if not photos:
        raise AvatarkitError(
            f"{folder}: no photos found (looked for {', '.join(PHOTO_SUFFIXES)} files)")
    if jobs is not None and jobs < 1:
        raise AvatarkitError(f"--jobs must be 1 or more (got {jobs})")
    if engine not in ENGINES:
        raise AvatarkitError(f"--engine {engine}: use one of {', '.join(ENGINES)}")
    names = output_names(photos)  # over the whole folder: every shard names alike
    if shard is not None:
        photos = shard.select(photos)
    out = Path(out)
    results: dict[Path, BuildResult] = {}

    def done(photo: Path, result: BuildResult) -> None:
        results[photo] = result
        if on_result:
            on_result(result)

    if engine == "ray":
        build_on_ray(photos, {p: out / names[p] for p in photos}, options, jobs=jobs,
                     address=address, done=done, verbose=verbose)
    elif (jobs or 1) == 1 or len(photos) <= 1:
        for photo in photos:
            done(photo, build_one(photo, out, options, names[photo]))
    else:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(min(jobs or 1, len(photos)), mp_context=context) as pool:
            futures: dict[Future[BuildResult], Path] = {
                pool.submit(build_one, photo, out, options, names[photo]): photo
                for photo in photos
            }
            try:
                for future in as_completed(futures):
                    done(futures[future], _result_of(future, futures[future]))
            except BaseException:
                pool.shutdown(wait=True, cancel_futures=True)
                raise
    return [results[p] for p in photos]


def _result_of(future: Future[BuildResult], photo: Path) -> BuildResult:
    try:
        return future.result()
    except BrokenProcessPool:
        return BuildResult(str(photo), "failed", error=(
            f"{photo.name}: the worker process died (out of memory or a crash in native code)"
            " - rerun with --jobs 1 to see which photo causes it"))


def summarise(results: list[BuildResult]) -> dict[str, int]:
    """Count of results per status."""
    counts = {"built": 0, "skipped": 0, "failed": 0}
    for r in results:
        counts[r.status] += 1
    return counts


def write_report(path: str | Path, results: list[BuildResult], *, source: str | Path,
                 out: str | Path, options: BuildOptions, shard: Shard | None = None) -> None:
    """The `--report` JSON: per photo status, error, warnings, timings and output paths
    (of this shard's photos only, when built with --shard)."""
    report: dict[str, Any] = {
        "tool": {"name": "avatarkit", "version": __version__},
        "source": str(source),
        "output": str(out),
        "options": asdict(options),
        "shard": str(shard) if shard else None,
        "summary": summarise(results),
        "photos": [r.as_dict() for r in results],
    }
    try:
        Path(path).write_text(json.dumps(report, indent=1))
    except OSError as exc:
        raise AvatarkitError(f"could not write the report {path}: {exc.strerror or exc}") from None
