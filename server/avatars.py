"""Avatar folders the server can show: lookup by id (safe against path tricks), their
public description, and builds of uploaded photos in a worker process."""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import replace
from pathlib import Path
from typing import Any

from avatarkit.build import BuildOptions, BuildResult
from avatarkit.build.folder import build_one
from avatarkit.build.output import MANIFEST, read_manifest
from avatarkit.errors import AvatarkitError
from server.children import helper_context

#: Avatar ids: folder names of 1-128 safe characters, never starting with a dot.
AVATAR_ID = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,127}")

#: Public URL keys -> file names in an avatar folder.
ASSET_FILES = {
    "idle_url": "idle.mp4",
    "poster_url": "idle_poster.png",
    "manifest_url": MANIFEST,
}
LIPSYNC_FILES = {
    "atlas_url": "atlas.png",
    "atlas_json_url": "atlas.json",
    "meshdef_url": "meshdef.json",
    "mask_url": "mask_mouth.png",
    "interior_url": "mouth_interior.png",
    "track_url": "track.json",
}


#: Written into an avatar folder built from an upload: only these are ever evicted, and
#: its mtime is when the photo was last uploaded.
UPLOAD_MARK = ".uploaded"


def valid_id(avatar_id: str) -> bool:
    """True for an id that names a folder directly inside the store (no `..`, no `/`)."""
    return AVATAR_ID.fullmatch(avatar_id) is not None and ".." not in avatar_id


class AvatarStore:
    """The avatars in one folder: `<root>/<avatar_id>/avatar.json` and its files."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()
        self._manifests: dict[str, tuple[float, dict[str, Any]]] = {}

    def folder(self, avatar_id: str) -> Path | None:
        """The avatar's folder, or None when the id is invalid or names no avatar."""
        if not valid_id(avatar_id):
            return None
        folder = (self.root / avatar_id).resolve()
        if folder.parent != self.root or not (folder / MANIFEST).is_file():
            return None
        return folder

    def manifest(self, avatar_id: str) -> dict[str, Any] | None:
        """The avatar's manifest (cached until avatar.json changes)."""
        folder = self.folder(avatar_id)
        if folder is None:
            return None
        try:
            mtime = (folder / MANIFEST).stat().st_mtime
        except OSError:
            return None
        cached = self._manifests.get(avatar_id)
        if cached and cached[0] == mtime:
            return cached[1]
        manifest = read_manifest(folder)
        if manifest is None:
            return None
        self._manifests[avatar_id] = (mtime, manifest)
        return manifest

    def file(self, avatar_id: str, name: str) -> Path | None:
        """A file of the avatar that its manifest lists (or the manifest itself)."""
        manifest = self.manifest(avatar_id)
        if manifest is None:
            return None
        listed = set(manifest.get("files", [])) | {MANIFEST}
        if name not in listed:
            return None
        path = self.root / avatar_id / name
        return path if path.is_file() else None

    def mark_uploaded(self, avatar_id: str, refresh_only: bool = False) -> None:
        """Record that `avatar_id` came from an upload (now): it may be evicted later.
        `refresh_only`: only for an avatar already marked (the same photo again)."""
        folder = self.folder(avatar_id)
        if folder is not None and (not refresh_only or (folder / UPLOAD_MARK).exists()):
            (folder / UPLOAD_MARK).touch()

    def evict_uploads(self, keep: int, in_use: set[str]) -> list[str]:
        """Delete the least recently uploaded avatars beyond `keep`, never one in `in_use`
        nor a folder that was not uploaded; the ids deleted."""
        uploads = []
        for mark in self.root.glob(f"*/{UPLOAD_MARK}"):
            with contextlib.suppress(OSError):
                uploads.append((mark.stat().st_mtime, mark.parent.name))
        uploads.sort()
        removed = []
        excess = len(uploads) - keep
        for _, avatar_id in uploads:
            if excess <= 0:
                break
            if avatar_id in in_use or self.folder(avatar_id) is None:
                continue
            shutil.rmtree(self.root / avatar_id, ignore_errors=True)
            self._manifests.pop(avatar_id, None)
            removed.append(avatar_id)
            excess -= 1
        return removed

    def describe(self, avatar_id: str) -> dict[str, Any] | None:
        """The `/avatarize-2d` response body for an avatar (URLs relative to the server)."""
        manifest = self.manifest(avatar_id)
        if manifest is None:
            return None
        files = set(manifest.get("files", [])) | {MANIFEST}
        prefix = f"/avatars/{avatar_id}/"

        def url(name: str) -> str | None:
            return prefix + name if name in files else None

        roi = manifest.get("roi") or manifest.get("mouth", {}).get("roi")
        body: dict[str, Any] = {"avatar_id": avatar_id}
        body.update({key: url(name) for key, name in ASSET_FILES.items()})
        body["lipsync_assets"] = {
            "type": "visemes",
            **{key: url(name) for key, name in LIPSYNC_FILES.items()},
            "roi": roi,
        }
        frame = manifest.get("frame")
        if isinstance(frame, dict):
            body["frame"] = {"w": frame.get("w", frame.get("width")),
                             "h": frame.get("h", frame.get("height"))}
        return body


def avatar_id_for(sha256_hex: str) -> str:
    """Uploads are named by content (SHA-256 of the bytes): same photo, same avatar."""
    return "a" + sha256_hex[:16]


class BuildTimeout(Exception):
    """A build ran past its time limit; its worker was stopped."""


class Builder:
    """Runs `build_avatar` in a spawned worker process (mediapipe graphs are per process).

    At most `workers` builds are in the pool at once, so a build's time limit counts its own
    run, not its wait behind others; a build that overruns stops the pool (the only way to
    interrupt it), and a build stopped with it, through no fault of its own, runs again."""

    def __init__(self, workers: int, options: BuildOptions, timeout_s: float = 300.0) -> None:
        self.options = options
        self.timeout_s = timeout_s
        self._workers = workers
        self._pool: ProcessPoolExecutor | None = None
        self._slots = asyncio.Semaphore(workers)
        #: One lock per avatar id being built; removed when its last waiter is done.
        self._locks: dict[str, tuple[asyncio.Lock, list[int]]] = {}

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                self._workers, mp_context=helper_context(),
            )
        return self._pool

    async def build(self, photo: Path, out: Path, avatar_id: str) -> BuildResult:
        """Build `out/<avatar_id>` from `photo`; concurrent uploads of one photo build once."""
        lock, users = self._locks.setdefault(avatar_id, (asyncio.Lock(), [0]))
        users[0] += 1
        try:
            async with lock, self._slots:
                result = await self._run(photo, out, avatar_id)
        finally:
            users[0] -= 1
            if not users[0]:
                del self._locks[avatar_id]
        if result.status == "failed":
            raise AvatarkitError(result.error or "the build failed")
        return result

    async def _run(self, photo: Path, out: Path, avatar_id: str) -> BuildResult:
        """One build in the pool; again on a fresh pool (once) if another build's overrun
        stopped the pool under it. A pool that broke by itself (a worker out of memory)
        raises BrokenProcessPool."""
        loop = asyncio.get_running_loop()
        options = replace(self.options, force=False)
        for last_try in (False, True):
            pool = self._executor()
            future = loop.run_in_executor(pool, build_one, photo, out, options, avatar_id)
            try:
                return await asyncio.wait_for(future, self.timeout_s)
            except TimeoutError:
                self._kill(pool)
                raise BuildTimeout(
                    f"the build took longer than {self.timeout_s:g} s and was stopped - "
                    "try a smaller photo") from None
            except (BrokenProcessPool, asyncio.CancelledError):
                task = asyncio.current_task()
                if last_try or pool is self._pool or (task is not None and task.cancelling()):
                    raise
        raise AssertionError("unreachable")

    def _kill(self, pool: ProcessPoolExecutor) -> None:
        """Stop a pool whose build overran: its workers are killed (a build cannot be
        interrupted otherwise); the next build starts a fresh pool."""
        processes = list((getattr(pool, "_processes", None) or {}).values())
        if self._pool is pool:
            self._pool = None
        for p in processes:
            with contextlib.suppress(Exception):
                p.kill()
        pool.shutdown(wait=False, cancel_futures=True)

    def close(self, wait: bool = False) -> None:
        """Shut the worker pool down (`wait`: until its processes have exited)."""
        if self._pool is not None:
            self._pool.shutdown(wait=wait, cancel_futures=True)
            self._pool = None
