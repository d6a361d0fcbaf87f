"""Atomic avatar folders: a build writes into a temporary sibling folder and renames it into
place only when complete, so a failed or interrupted build leaves nothing behind and never
destroys the previous good avatar."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from avatarkit.errors import AvatarkitError

MANIFEST = "avatar.json"


def read_manifest(folder: Path) -> dict | None:
    """The folder's manifest, or None when there is no readable one."""
    try:
        return json.loads((Path(folder) / MANIFEST).read_text())
    except (OSError, ValueError):
        return None


def is_complete(folder: Path, build_hash: str) -> bool:
    """True when `folder` holds an avatar made from the same input and settings, files intact."""
    manifest = read_manifest(folder)
    if not manifest or manifest.get("build_hash") != build_hash:
        return False
    return all((Path(folder) / name).is_file() for name in manifest.get("files", []))


@contextmanager
def staging(target: Path) -> Iterator[Path]:
    """Yield an empty temporary folder next to `target`; on success it replaces `target`.

    On any exception the temporary folder is removed (and `target`'s parent too, when this
    build created it and it is still empty); `target` itself is untouched.
    """
    target = Path(target)
    parent = target.parent
    _refuse_foreign_folder(target)
    created = []
    for folder in reversed([parent, *parent.parents]):
        if not folder.exists():
            created.append(folder)
    try:
        parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.building-", dir=parent))
    except OSError as exc:
        blocker = next((f for f in (parent, *parent.parents) if f.is_file()), None)
        if blocker is not None:
            raise AvatarkitError(f"could not write to {parent}: {blocker} is a file - the "
                                 "output (-o) must be a folder") from None
        raise AvatarkitError(f"could not write to {parent}: {exc.strerror or exc}") from None
    try:
        yield tmp
        _replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        for folder in reversed(created):
            try:
                folder.rmdir()  # only succeeds when empty: never removes anyone's files
            except OSError:
                break
        raise


def _replace(tmp: Path, target: Path) -> None:
    """Swap the finished folder in. Between the two renames the old avatar still exists (as
    a hidden sibling), so there is no moment when neither a complete old nor new one exists."""
    os.chmod(tmp, 0o755)  # mkdtemp makes it private; an avatar folder is meant to be served
    if not target.exists():
        os.replace(tmp, target)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
    os.replace(target, old / target.name)
    try:
        os.replace(tmp, target)
    except OSError:
        os.replace(old / target.name, target)  # put the previous avatar back
        raise
    shutil.rmtree(old, ignore_errors=True)


def _refuse_foreign_folder(target: Path) -> None:
    """Replacing a folder that is not an avatar would delete someone's files."""
    if target.is_file():
        raise AvatarkitError(f"{target} is a file; choose another output folder with -o")
    if target.is_dir() and any(target.iterdir()) and read_manifest(target) is None:
        raise AvatarkitError(
            f"{target} exists and is not an avatar folder (no {MANIFEST}); it would be "
            "replaced - choose another output folder with -o or remove it"
        )
