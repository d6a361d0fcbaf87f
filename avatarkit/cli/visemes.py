"""`avatarkit visemes`: text, a TTS character alignment or a recording -> viseme timeline file."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from avatarkit.cli.root import app, check_listening_lang, guarded, say, status, warn
from avatarkit.errors import AvatarkitError
from avatarkit.visemes.coarticulation import CoarticulationOptions
from avatarkit.visemes.exporters import FORMATS, export
from avatarkit.visemes.timeline import Timeline, speak, timeline_from_alignment

Text = Annotated[str | None, typer.Option(
    "--text", "-t", help="What to say (required unless --alignment or --audio is given); "
                         "with --audio, the transcript of that recording.")]
Lang = Annotated[str, typer.Option(
    "--lang", "-l", help="espeak-ng language code for synthesis and G2P: en-us, en-gb, de, "
                         "...; with --audio, the language of its transcript (audio alone "
                         "listens with the English phone model in any language).")]
Fps = Annotated[float, typer.Option("--fps", help="Frames per second of the timeline.")]
Format = Annotated[str, typer.Option(
    "--format", "-f",
    help="json (avatarkit timeline), live (JSON Lines wire events), rhubarb (Rhubarb JSON), "
         "tsv (Rhubarb TSV), oculus (Meta 15 visemes), azure (Azure viseme IDs).")]
AudioOut = Annotated[Path | None, typer.Option(
    "--audio-out", metavar="WAV", help="Also write the synthesised speech as a WAV file.")]
Out = Annotated[Path | None, typer.Option(
    "--out", "-o", metavar="FILE", help="Write the timeline here (default: standard output).")]
AlignmentFile = Annotated[Path | None, typer.Option(
    "--alignment", "-a", metavar="FILE",
    help="ElevenLabs alignment JSON (WebSocket or HTTP shape, a list of chunks, or JSON "
         "Lines) to use instead of synthesising.")]
Voice = Annotated[str | None, typer.Option(
    "--voice", help="espeak-ng voice variant, e.g. Annie, m3, f2 (embedded voice only).")]
Rate = Annotated[int | None, typer.Option(
    "--rate", show_default=False,
    help="Speaking rate of the embedded voice in words per minute (80-449; default 175).")]
AudioIn = Annotated[Path | None, typer.Option(
    "--audio", metavar="SPEECH",
    help="Listen to a recording instead of synthesising: WAV or anything ffmpeg reads, any "
         "rate, mono or stereo. Alone it works from the audio; with --text (the transcript) "
         "or --alignment (whose characters are the transcript) it aligns the words to the "
         "audio, which is more accurate.")]

SpeechGate = Annotated[bool, typer.Option(
    "--speech-gate",
    help="With --audio alone: keep the mouth at Rest wherever a voice activity detector "
         "(Silero VAD) hears no speech, so music and noise do not move it. Needs "
         "`pip install 'avatarkit\\[vad]'`; about halves the listening speed.")]


@app.command()
@guarded
def visemes(
    text: Text = None,
    lang: Lang = "en-us",
    fps: Fps = 60.0,
    fmt: Format = "json",
    audio_out: AudioOut = None,
    out: Out = None,
    alignment: AlignmentFile = None,
    voice: Voice = None,
    rate: Rate = None,
    audio: AudioIn = None,
    speech_gate: SpeechGate = False,
) -> None:
    """Make a coarticulated viseme timeline: from text with the embedded voice, from a TTS
    service's character alignment, or from recorded speech (--audio, with or without its
    transcript)."""
    fmt = fmt.lower()
    if fmt not in FORMATS:
        raise AvatarkitError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    options = CoarticulationOptions(fps=fps).checked()
    if speech_gate and (audio is None or text is not None or alignment is not None):
        raise AvatarkitError("--speech-gate is for --audio without a transcript (a transcript "
                             "already says where the speech is)")
    if audio is not None:
        if audio_out is not None or voice is not None or rate is not None:
            raise AvatarkitError("--audio-out, --voice and --rate are for synthesis; with "
                                 "--audio the speech is yours")
        if text is None and alignment is None:
            check_listening_lang(lang)
        timeline = _from_audio(audio, text, alignment, lang, fps, speech_gate)
    elif alignment is not None:
        if audio_out is not None or voice is not None or rate is not None:
            raise AvatarkitError("--audio-out, --voice and --rate are for synthesis; with "
                                 "--alignment the audio comes from your TTS")
        timeline = _from_alignment(alignment, text, lang, options)
    else:
        if text is None or not text.strip():
            raise AvatarkitError("nothing to say: pass --text \"...\" (or --alignment FILE)")
        from avatarkit.tts.espeak_voice import EspeakOptions

        espeak = EspeakOptions(lang=lang, variant=voice,
                               rate_wpm=EspeakOptions.rate_wpm if rate is None else rate).checked()
        timeline, synthesis = speak(text, lang, options, variant=voice, rate_wpm=espeak.rate_wpm)
        if audio_out is not None:
            from avatarkit.tts.wav import write_wav

            write_wav(audio_out, synthesis.pcm, synthesis.sample_rate)
            say(f"audio: {audio_out} ({synthesis.duration_ms / 1000:.2f} s)")
    sound = audio if audio is not None else audio_out
    payload = export(timeline, fmt, sound_file=str(sound) if sound is not None else "")
    if out is None:
        sys.stdout.write(payload)
    else:
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(payload, "utf-8")
        except OSError as exc:
            raise AvatarkitError(f"could not write {out}: {exc.strerror or exc}") from exc
        say(
            f"visemes: {out} ({fmt}, {len(timeline.frames)} frames at {fps:g} fps, "
            f"{len(timeline.phonemes)} phonemes, {timeline.duration_ms / 1000:.2f} s)"
        )


def _from_audio(
    path: Path, text: str | None, alignment: Path | None, lang: str, fps: float,
    speech_gate: bool = False,
) -> Timeline:
    from avatarkit.listen import ListenOptions, timeline_from_audio_file

    if text is not None and alignment is not None:
        raise AvatarkitError("pass the transcript once: --text or --alignment, not both")
    if alignment is not None:
        from avatarkit.tts.alignment import load_alignment_file

        chunks = load_alignment_file(alignment)
        text = "".join(c.alignment.text for c in chunks if c.alignment is not None)
        if not text.strip():
            raise AvatarkitError(f"{alignment.name} holds no characters to align")
    with status(f"listening to {path.name} ..."):
        return timeline_from_audio_file(path, text=text, lang=lang, fps=fps,
                                        options=ListenOptions(speech_gate=speech_gate))


def _from_alignment(
    path: Path, text: str | None, lang: str, options: CoarticulationOptions
) -> Timeline:
    from avatarkit.tts.alignment import load_alignment_file

    chunks = load_alignment_file(path)
    timeline = timeline_from_alignment(chunks, lang, options)
    if text is not None:
        spoken = "".join(c.alignment.text for c in chunks if c.alignment is not None)
        if " ".join(spoken.split()) != " ".join(text.split()):
            warn("--text differs from the alignment's characters; the alignment was used")
    return timeline
