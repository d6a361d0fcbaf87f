"""Build one avatar folder from one photo. `build_avatar` is the recipe; each stage is a call
into the module that owns that step (photo, landmarks, mouth, idle)."""

from __future__ import annotations

import hashlib
import json
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from avatarkit.build.manifest import build_hash, make_manifest
from avatarkit.build.options import BuildOptions
from avatarkit.build.output import MANIFEST, is_complete, read_manifest, staging
from avatarkit.errors import AvatarkitError, AvatarkitWarning
from avatarkit.face.landmarks import MIN_FACE_WIDTH_PX, Face, check_usable, detect_faces
from avatarkit.face.photo import Photo, decode_photo, read_bytes
from avatarkit.idle import make_idle_loop
from avatarkit.mouth.assets import make_mouth_assets
from avatarkit.mouth.roi import Roi

Status = Literal["built", "skipped", "failed"]
MAX_FACES = 4  # enough to tell "one face" from "a group"; each extra face costs detection time


@dataclass
class BuildResult:
    """What happened to one photo; the CLI prints it and `--report` stores it."""

    photo: str
    status: Status
    output: str | None = None  # the avatar folder (built or skipped)
    files: list[str] = field(default_factory=list)  # paths of the files in it
    error: str | None = None  # one line, when failed
    warnings: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage, and "total"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class StageContext:
    """What the asset stages share. A stage reads what it needs, writes its files into
    `folder`, returns their names, and may add a section to the manifest via `manifest`."""

    photo: Photo
    face: Face
    options: BuildOptions
    folder: Path
    warn: Callable[[str], None]
    roi: Roi | None = None  # set by the mouth stage; later stages place things relative to it
    landmarks_used: dict[str, list[int]] = field(default_factory=dict)
    manifest: dict[str, Any] = field(default_factory=dict)


Stage = Callable[[StageContext], list[str]]


def mouth_stage(ctx: StageContext) -> list[str]:
    """ROI, mask, mesh deformation, interior texture and sprite atlas (avatarkit.mouth)."""
    mouth = make_mouth_assets(ctx.photo.rgb, ctx.face)
    ctx.roi = mouth.roi
    ctx.landmarks_used = mouth.landmarks_used
    return mouth.write(ctx.folder)


def idle_stage(ctx: StageContext) -> list[str]:
    """idle.mp4, idle_poster.png and track.json (avatarkit.idle); the track needs the ROI."""
    assert ctx.roi is not None, "the mouth stage sets the ROI"
    loop = make_idle_loop(ctx.photo.rgb, ctx.face, ctx.roi, ctx.options.idle)
    ctx.manifest["idle"] = loop.describe()
    return loop.write(ctx.folder)


# The asset stages, in order, after the face is chosen. Add a stage by adding a line here.
ASSET_STAGES: list[tuple[str, Stage]] = [
    ("mouth", mouth_stage),
    ("idle", idle_stage),
]


def build_avatar(
    photo_path: str | Path,
    out: str | Path,
    options: BuildOptions | None = None,
    *,
    name: str | None = None,
    on_stage: Callable[[str], None] | None = None,
    on_warning: Callable[[str], None] | None = None,
) -> BuildResult:
    """Build `out/<photo stem>/` (or `out/<name>/`) from one photo.

    Raises AvatarkitError with a one-line message when the photo cannot be used; the output
    folder is then left exactly as it was. Skips the work when the folder already holds an
    avatar made from the same bytes and settings, unless `options.force`.
    """
    options = options or BuildOptions()
    path = Path(photo_path)
    target = Path(out) / (name or path.stem)
    run = _Run(path, on_stage, on_warning)

    with run.stage("load"):
        data = read_bytes(path)
        up_to_date = is_up_to_date(data, target, options)
        photo = None if up_to_date else decode_photo(data, path, options.max_side)
    if photo is None:
        return run.skipped(target)

    with run.stage("detect"):
        faces = detect_faces(photo.rgb, max_faces=max(MAX_FACES, (options.face or 0) + 1))
    index = choose_face(faces, options.face, path.name, run.warn)
    face = faces[index]
    for message in check_face(face, photo, options.max_side):
        run.warn(message)

    with run.capture_warnings(), staging(target) as folder:
        ctx = StageContext(photo, face, options, folder, run.warn)
        files: list[str] = []
        for stage_name, stage in ASSET_STAGES:
            with run.stage(stage_name):
                files += stage(ctx)
        with run.stage("manifest"):
            assert ctx.roi is not None, "the mouth stage sets the ROI"
            manifest = make_manifest(
                photo=photo, face=face, face_index=index, faces_found=len(faces), roi=ctx.roi,
                files=files, landmarks_used=ctx.landmarks_used, options=options,
                timings=run.timings, extra=ctx.manifest,
            )
            (folder / MANIFEST).write_text(json.dumps(manifest, indent=1))
    return run.result("built", target, files + [MANIFEST])


def is_up_to_date(data: bytes, target: Path, options: BuildOptions) -> bool:
    """True when `target` holds a complete avatar of these photo bytes and settings."""
    key = build_hash(hashlib.sha256(data).hexdigest(), options)
    return not options.force and is_complete(target, key)


def cached_build(photo_path: Path, target: Path, options: BuildOptions,
                 ) -> tuple[bytes, BuildResult | None]:
    """The photo's bytes, and its skipped result when `target` is up to date (else None).
    Lets a driver that farms builds out skip the up-to-date photos without sending them."""
    run = _Run(Path(photo_path), None, None)
    with run.stage("load"):
        data = read_bytes(Path(photo_path))
        up_to_date = is_up_to_date(data, target, options)
    return data, run.skipped(target) if up_to_date else None


def choose_face(faces: list[Face], wanted: int | None, name: str,
                warn: Callable[[str], None]) -> int:
    """Index of the face to use: `wanted`, else the largest (warning when there are more)."""
    if not faces:
        raise AvatarkitError(
            f"{name}: no face found - use a well-lit photo of one person looking into the "
            "camera (crop closer if the face is small in the frame)"
        )
    if wanted is not None:
        if wanted >= len(faces):
            found = f"{len(faces)} face" + ("s" if len(faces) > 1 else "")
            raise AvatarkitError(
                f"{name}: --face {wanted} asked for, but only {found} found "
                f"(0-{len(faces) - 1}, largest first)"
            )
        return wanted
    if len(faces) > 1:
        warn(f"{name}: {len(faces)} faces found; using the largest - pass --face N to pick "
             f"another (0-{len(faces) - 1}, largest first)")
    return 0


def check_face(face: Face, photo: Photo, max_side: int) -> list[str]:
    """check_usable (its warnings returned), plus a hint when our own downscale is what made
    the face too small."""
    if photo.scale < 1.0 and face.width < MIN_FACE_WIDTH_PX:
        raise AvatarkitError(
            f"{photo.path.name}: the face is only {face.width:.0f} px wide after downscaling "
            f"to --max-side {max_side}; at least {MIN_FACE_WIDTH_PX} px is needed - raise "
            "--max-side or crop closer to the face"
        )
    return check_usable(face, photo.size, photo.path.name)


class _Run:
    """Timings and warnings of one build."""

    def __init__(self, path: Path, on_stage: Callable[[str], None] | None,
                 on_warning: Callable[[str], None] | None) -> None:
        self.path = path
        self.on_stage = on_stage
        self.on_warning = on_warning
        self.timings: dict[str, float] = {}
        self.warnings: list[str] = []
        self.started = time.perf_counter()

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        if self.on_stage:
            self.on_stage(name)
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.timings[name] = self.timings.get(name, 0.0) + time.perf_counter() - t0

    def warn(self, message: str) -> None:
        self.warnings.append(message)
        if self.on_warning:
            self.on_warning(message)

    @contextmanager
    def capture_warnings(self) -> Iterator[None]:
        """Route `warnings.warn(..., AvatarkitWarning)` from stages into this build's result
        (process-global while it runs: one build per thread at a time)."""
        with warnings.catch_warnings():
            warnings.simplefilter("always", AvatarkitWarning)
            show = warnings.showwarning

            def showwarning(message, category, filename, lineno, file=None, line=None):
                if issubclass(category, AvatarkitWarning):
                    self.warn(str(message))
                else:
                    show(message, category, filename, lineno, file, line)

            warnings.showwarning = showwarning
            yield

    def skipped(self, target: Path) -> BuildResult:
        manifest = read_manifest(target)
        assert manifest is not None, "is_complete read it"
        return self.result("skipped", target, manifest["files"] + [MANIFEST])

    def result(self, status: Status, target: Path, files: list[str]) -> BuildResult:
        self.timings["total"] = time.perf_counter() - self.started
        return BuildResult(
            photo=str(self.path), status=status, output=str(target),
            files=[str(target / f) for f in files], warnings=list(self.warnings),
            timings={k: round(v, 4) for k, v in self.timings.items()},
        )
