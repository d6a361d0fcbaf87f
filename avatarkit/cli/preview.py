"""`avatarkit preview`: render the talking avatar to an MP4 with sound (and a viseme sheet)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from avatarkit.cli.root import app, check_listening_lang, console, guarded, printed_warnings
from avatarkit.errors import AvatarkitError
from avatarkit.render import (
    VARIANTS,
    PreviewOptions,
    Speech,
    WeightTrack,
    load_avatar,
    read_audio,
    render_preview,
    speech_from_audio,
    speech_from_files,
    speech_from_text,
    variant_sheet,
)

AvatarDir = Annotated[Path, typer.Argument(
    metavar="AVATAR_DIR", help="An avatar folder made by `avatarkit build` (e.g. out/hero).",
    show_default=False)]
Text = Annotated[str | None, typer.Option(
    "--text", "-t", help="What the avatar says, spoken with the embedded voice; with --audio, "
                         "the transcript of that audio (sharper lip sync than audio alone).")]
SpeechGate = Annotated[bool, typer.Option(
    "--speech-gate",
    help="With --audio alone: the mouth rests wherever Silero VAD hears no speech (music, "
         "noise). Needs `pip install 'avatarkit\\[vad]'`.")]
Lang = Annotated[str, typer.Option(
    "--lang", "-l", help="espeak-ng language of --text: en-us, en-gb, de, fr, ... (--audio "
                         "alone listens with the English phone model in any language).")]
Variant = Annotated[str, typer.Option(
    "--variant", help="Mouth drawing: sprites (atlas cross-fade), mesh (warp of the live "
                      "frame plus the interior texture) or onnx (your Wav2Lip-compatible "
                      "model, --model).")]
Model = Annotated[Path | None, typer.Option(
    "--model", metavar="ONNX", help="Wav2Lip-compatible .onnx for --variant onnx (audio "
                                    "[B,1,80,16] + face [B,6,S,S] in, [B,3,S,S] out).")]
Provider = Annotated[str, typer.Option(
    "--provider", help="Where --variant onnx runs: auto (TensorRT, then CUDA, then CPU), "
                       "tensorrt, cuda or cpu.")]
AudioIn = Annotated[Path | None, typer.Option(
    "--audio", "-a", metavar="WAV",
    help="Speech to render (WAV, or anything ffmpeg reads). Without --timeline avatarkit "
         "listens to it (add --text with its transcript for sharper lip sync); --variant "
         "onnx feeds it to the model.")]
TimelineIn = Annotated[Path | None, typer.Option(
    "--timeline", metavar="FILE",
    help="Viseme timeline for --audio, from `avatarkit visemes` (--format json, live or "
         "oculus). A length that differs from the audio is trimmed or padded, with a "
         "warning.")]
Out = Annotated[Path | None, typer.Option(
    "--out", "-o", metavar="MP4",
    help="Where to write the video. \\[default: AVATAR_NAME_preview.mp4 in the current folder]")]
Sheet = Annotated[Path | None, typer.Option(
    "--sheet", metavar="PNG",
    help="Also (or only) write a labelled contact sheet of every viseme in both variants.")]
LeadIn = Annotated[float, typer.Option("--lead-in", help="Idle seconds before the speech.")]
Tail = Annotated[float, typer.Option("--tail", help="Idle seconds after the speech.")]


HELP = (
    "Render the avatar speaking to an MP4 (H.264 + AAC at the idle loop's frame rate, with a "
    "short idle lead-in and tail), as a client would show it.\n\n"
    "Say something with the embedded voice (--text), or render your own recording "
    "(--audio): avatarkit listens to it, more accurately with its transcript (--audio + "
    "--text), or takes a timeline from `avatarkit visemes` (--audio + --timeline). "
    "--sheet writes every viseme "
    "on the face, in both variants, to judge the mouth shapes at a glance.\n\n"
    "Example: avatarkit preview out/hero --text \"Hello there\" --variant mesh -o hello.mp4"
)


@app.command(help=HELP)
@guarded
def preview(
    avatar_dir: AvatarDir,
    text: Text = None,
    lang: Lang = "en-us",
    variant: Variant = PreviewOptions.variant,
    audio: AudioIn = None,
    timeline: TimelineIn = None,
    out: Out = None,
    sheet: Sheet = None,
    lead_in: LeadIn = PreviewOptions.lead_in_s,
    tail: Tail = PreviewOptions.tail_s,
    model: Model = None,
    provider: Provider = "auto",
    speech_gate: SpeechGate = False,
) -> None:
    variant = variant.lower()
    onnx = variant == "onnx"
    if variant not in VARIANTS and not onnx:
        raise AvatarkitError(f"unknown variant {variant!r}; use one of "
                             f"{', '.join([*VARIANTS, 'onnx'])}")
    if onnx and model is None:
        raise AvatarkitError("--variant onnx needs --model FILE.onnx (a Wav2Lip-compatible "
                             "model; none ships with avatarkit)")
    if model is not None and not onnx:
        raise AvatarkitError("--model is only used with --variant onnx")
    if timeline is not None and audio is None:
        raise AvatarkitError("--timeline needs --audio: the timeline says how the mouth moves "
                             "to that audio")
    if onnx and audio is not None and text is not None:
        raise AvatarkitError("--variant onnx listens to --audio itself; drop --text")
    if text is not None and timeline is not None:
        raise AvatarkitError("pass --text (what the audio says) or --timeline, not both")
    if text is not None and not text.strip():
        raise AvatarkitError("nothing to say: --text is empty")
    if speech_gate and (audio is None or text is not None or timeline is not None or onnx):
        raise AvatarkitError("--speech-gate is for --audio that avatarkit listens to without "
                             "a transcript (a transcript already says where the speech is)")
    if text is None and audio is None and sheet is None:
        raise AvatarkitError("nothing to render: pass --text \"...\", --audio WAV or --sheet PNG")
    options = PreviewOptions(variant="sprites" if onnx else variant, lead_in_s=lead_in,
                             tail_s=tail).checked()
    avatar = load_avatar(avatar_dir)
    if sheet is not None:
        with console.status("drawing the viseme sheet"):
            image = variant_sheet(avatar)
        try:
            sheet.parent.mkdir(parents=True, exist_ok=True)
            image.save(sheet)
        except (OSError, ValueError) as exc:
            raise AvatarkitError(f"could not write {sheet}: {exc}") from exc
        print(f"sheet: {sheet} ({image.width}x{image.height})")
    if text is None and audio is None:
        return
    speech = _speech(text, lang, audio, timeline, listen=not onnx, speech_gate=speech_gate)
    mouth = _onnx_variant(avatar, speech, model, provider, options) if onnx else None
    target = out or Path(f"{avatar.name}_preview.mp4")
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task(f"rendering {target.name} ({variant})", total=None)

        def on_frame(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        result = render_preview(avatar, speech, target, options, variant=mouth,
                                progress=on_frame)
    plan = result.plan
    print(f"preview: {result.path} ({result.variant}, {plan.duration_s:.2f} s, {plan.frames} "
          f"frames at {plan.fps:g} fps; rendered in {result.render_s:.1f} s, "
          f"{result.speed:.1f}x real time)")


def _onnx_variant(avatar, speech: Speech, model: Path, provider: str, options: PreviewOptions):
    """Variant C for this speech; provider fallback warnings are printed in yellow."""
    from avatarkit.roi import OnnxRunner, RunnerOptions
    from avatarkit.roi.variant import onnx_variant

    with printed_warnings(), console.status(f"loading {escape(model.name)}"):
        runner = OnnxRunner(model, RunnerOptions(provider=provider.lower()))
    console.print(f"model: {escape(model.name)} (face {runner.size}x{runner.size}, on "
                  f"{runner.provider})")
    return onnx_variant(avatar, speech, runner, options)


def _speech(text: str | None, lang: str, audio: Path | None, timeline: Path | None,
            *, listen: bool, speech_gate: bool = False) -> Speech:
    """The speech to render; timeline/audio length warnings are printed in yellow."""
    with printed_warnings():
        if audio is not None and timeline is None and listen:
            if text is None:
                check_listening_lang(lang)
            with console.status(f"listening to {escape(audio.name)}"):
                speech = speech_from_audio(audio, text, lang, speech_gate)
        elif text is not None and audio is None:
            with console.status("speaking"):
                speech = speech_from_text(text, lang)
        elif timeline is None:  # --variant onnx with audio only: the mouth rests in the weights
            sound = read_audio(audio)
            speech = Speech(sound, WeightTrack.from_events([(0.0, {"Rest": 1.0})],
                                                           sound.duration_ms))
        else:
            speech = speech_from_files(audio, timeline)
    return speech
