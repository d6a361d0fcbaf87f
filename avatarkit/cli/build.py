"""`avatarkit build`: parse options, show progress, print results; the work is avatarkit.build."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from avatarkit.build.options import BuildOptions, IdleOptions
from avatarkit.build.shard import Shard, parse_shard
from avatarkit.cli.root import app, console, fail, guarded, state, warn
from avatarkit.errors import AvatarkitError
from avatarkit.face.photo import DEFAULT_MAX_SIDE, MIN_MAX_SIDE
from avatarkit.native_stderr import quiet_native_stderr

if TYPE_CHECKING:
    from avatarkit.build import BuildResult

stdout = Console(highlight=False)

STAGE_LABELS = {"load": "reading the photo", "detect": "finding the face",
                "mouth": "making the mouth assets", "idle": "making the idle loop",
                "manifest": "writing avatar.json"}
STATUS_STYLE = {"built": "green", "skipped": "cyan", "failed": "bold red"}


# One annotated type per option, so the signature below reads as name, type and default.
Source = Annotated[Path, typer.Argument(
    metavar="PHOTO|FOLDER",
    help="A portrait photo (jpg, png, webp), or a folder: every jpg/jpeg/png/webp in it.")]
Out = Annotated[Path, typer.Option(
    "--out", "-o", metavar="OUT",
    help="Output folder; each photo's avatar goes to OUT/<photo name without extension>/.")]
Jobs = Annotated[int | None, typer.Option(
    "--jobs", "-j", min=1, metavar="N", show_default=False,
    help="Folder mode: photos built at once. local: worker processes \\[default: 1]; "
         "ray: tasks in flight \\[default: twice the cluster's CPUs; a local Ray gets N CPUs].")]
EngineOption = Annotated[str, typer.Option(
    "--engine", metavar="local|ray",
    help="Folder mode: local = worker processes on this machine; ray = one Ray task per "
         "photo (pip install 'avatarkit\\[cluster]'), no shared filesystem needed.")]
Address = Annotated[str | None, typer.Option(
    "--address", metavar="ADDR", show_default=False,
    help="--engine ray: the Ray cluster to join (host:port or ray://host:10001) "
         "\\[default: $RAY_ADDRESS, else a local Ray started and stopped with the command]")]
ShardOption = Annotated[str | None, typer.Option(
    "--shard", metavar="I/N", show_default=False,
    help="Folder mode: build only part I of N (1-based) of the folder, split by a hash of "
         "each file name, so N CI jobs with 1/N ... N/N build every photo exactly once.")]
Report = Annotated[Path | None, typer.Option(
    "--report", metavar="FILE",
    help="Write a JSON report: per photo status, error, warnings, timings, output files.")]
Force = Annotated[bool, typer.Option(
    "--force", "-f",
    help="Rebuild even if the avatar is up to date (same photo bytes and settings).")]
FaceIndex = Annotated[int | None, typer.Option(
    "--face", min=0, metavar="N", show_default=False,
    help="Which face to use when there are several: 0 = largest, 1 = next, ... "
         "\\[default: the largest, with a warning]")]
MaxSide = Annotated[int, typer.Option(
    "--max-side", min=MIN_MAX_SIDE, metavar="PX",
    help="Downscale photos whose longer side is larger than this before building.")]
Seconds = Annotated[float, typer.Option(
    "--seconds", min=3.0, max=10.0,
    help="Idle loop length in seconds (3-10; longer repeats less but downloads more).")]
Fps = Annotated[int, typer.Option("--fps", min=24, max=30, help="Idle loop frame rate (24-30).")]
Blinks = Annotated[int | None, typer.Option(
    "--blinks", min=0, metavar="N", show_default=False,
    help="Eye blinks per idle loop. "
         "\\[default: as people blink, one or two per 4 s]")]
Motion = Annotated[float, typer.Option(
    "--motion", min=0.0, max=2.0,
    help="Idle head motion scale: 0 = still (blinks only), 1 = natural, 2 = lively.")]
Seed = Annotated[int, typer.Option(
    "--seed", help="Random seed of the idle motion: same seed, same video.")]


HELP = (
    "Turn a portrait photo (or a folder of them) into avatar folders.\n\n"
    "Each avatar folder OUT/<name>/ holds the mouth sprite atlas (atlas.png, atlas.json), the "
    "mesh deformation (meshdef.json, mouth_interior.png, mouth_interior_layers.png), the mouth "
    "mask (mask_mouth.png), the idle loop (idle.mp4, idle_poster.png, track.json) and "
    "avatar.json, the manifest naming them all. Unchanged photos with unchanged settings are "
    "skipped."
)


@app.command(help=HELP)
@guarded
def build(
    source: Source,
    out: Out = Path("out"),
    jobs: Jobs = None,
    engine: EngineOption = "local",
    address: Address = None,
    shard: ShardOption = None,
    report: Report = None,
    force: Force = False,
    face: FaceIndex = None,
    max_side: MaxSide = DEFAULT_MAX_SIDE,
    seconds: Seconds = IdleOptions.seconds,
    fps: Fps = IdleOptions.fps,
    blinks: Blinks = IdleOptions.blinks,
    motion: Motion = IdleOptions.motion,
    seed: Seed = IdleOptions.seed,
) -> None:
    """Turn a portrait photo (or a folder of them) into avatar folders."""
    # the pipeline (mediapipe, OpenCV) loads on use: the other commands start fast
    from avatarkit.build import write_report
    from avatarkit.build.folder import ENGINES
    from avatarkit.build.ray_engine import import_ray

    options = BuildOptions(
        max_side=max_side, face=face, force=force,
        idle=IdleOptions(seconds=seconds, fps=fps, blinks=blinks, motion=motion, seed=seed),
    )
    if engine not in ENGINES:
        raise AvatarkitError(f"--engine {engine}: use one of {', '.join(ENGINES)}")
    if address and engine != "ray":
        raise AvatarkitError("--address names a Ray cluster: add --engine ray")
    part = parse_shard(shard) if shard is not None else None
    if not source.is_dir() and (part or engine != "local"):
        flag = "--shard" if part else "--engine"
        raise AvatarkitError(f"{flag} needs a folder of photos; {source} is not a folder")
    if engine == "ray":
        import_ray()  # the install hint before any work
    with quiet_native_stderr(enabled=not state["verbose"]):
        if source.is_dir():
            results = _build_folder(source, out, options, jobs,
                                    engine=engine, address=address, shard=part)
        else:
            results = [_build_photo(source, out, options)]
    if report:
        write_report(report, results, source=source, out=out, options=options, shard=part)
    if part and not results:
        stdout.print(f"shard {part}: no photos of {source} fall in this part")
        return
    _print_summary(results, single=not source.is_dir())
    failed = [r for r in results if r.status == "failed"]
    if failed:
        if len(results) == 1:
            raise fail(failed[0].error or "build failed")
        raise fail(f"{len(failed)} of {len(results)} photos failed (see above)")


def _build_photo(photo: Path, out: Path, options: BuildOptions) -> BuildResult:
    """One photo with a spinner naming the stage; a failure becomes a failed result so that
    --report is still written."""
    from avatarkit.build import BuildResult, build_avatar

    with console.status(f"{photo.name}: starting") as status:
        def on_stage(stage: str) -> None:
            status.update(f"{photo.name}: {STAGE_LABELS.get(stage, stage)}")

        try:
            return build_avatar(photo, out, options, on_stage=on_stage, on_warning=warn)
        except AvatarkitError as exc:
            if state["verbose"]:
                console.print_exception()
            return BuildResult(str(photo), "failed", error=str(exc))


def _build_folder(folder: Path, out: Path, options: BuildOptions, jobs: int | None, *,
                  engine: str, address: str | None, shard: Shard | None,
                  ) -> list[BuildResult]:
    """Every photo in the folder, with a progress bar and one line per finished photo."""
    from avatarkit.build import build_folder, find_photos

    photos = find_photos(folder)
    count = len(shard.select(photos) if shard else photos)
    columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
               MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task(f"building {folder}", total=count or None)

        def on_result(result: BuildResult) -> None:
            name = Path(result.photo).name
            for message in result.warnings:
                warn(message)
            if result.status == "failed":
                console.print(f"[bold red]failed[/] {escape(result.error or '')}", soft_wrap=True)
            else:
                took = result.timings.get("total", 0)
                console.print(f"[{STATUS_STYLE[result.status]}]{result.status}[/] {escape(name)} "
                              f"-> {escape(str(result.output))} ({took:.1f} s)", soft_wrap=True)
            progress.advance(task)

        return build_folder(folder, out, options, jobs=jobs, on_result=on_result,
                            engine=engine, address=address, shard=shard,  # type: ignore[arg-type]
                            verbose=state["verbose"])


def _print_summary(results: list[BuildResult], single: bool) -> None:
    """A table of what happened; for one built photo also where it went (scripts read stdout)."""
    if single and results[0].status != "failed":
        r = results[0]
        stages = ", ".join(f"{k} {v:.2f}" for k, v in r.timings.items() if k != "total")
        verb = "up to date" if r.status == "skipped" else "built"
        stdout.print(f"[green]{verb}[/] {r.output}/ in {r.timings.get('total', 0):.2f} s"
                     + (f" ({stages})" if r.status == "built" else " (use --force to rebuild)"),
                     soft_wrap=True)
        return
    if single:
        return
    table = Table(title="avatarkit build", title_justify="left")
    table.add_column("photo")
    table.add_column("status")
    table.add_column("time", justify="right")
    table.add_column("output / error", overflow="fold")
    for r in results:
        style = STATUS_STYLE[r.status]
        table.add_row(Path(r.photo).name, f"[{style}]{r.status}[/]",
                      f"{r.timings.get('total', 0):.1f} s" if r.timings else "-",
                      r.output if r.status != "failed" else f"[red]{r.error}[/]")
    stdout.print(table)
    from avatarkit.build import summarise

    counts = summarise(results)
    stdout.print(", ".join(f"{n} {status}" for status, n in counts.items()))

