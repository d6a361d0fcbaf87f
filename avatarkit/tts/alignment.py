"""Character alignments as TTS services send them (ElevenLabs WebSocket and HTTP shapes).

Only parsing lives here: every known field spelling is accepted and converted to one
`CharAlignment` in milliseconds. Turning characters into timed phonemes is `char_timing`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from avatarkit.errors import AvatarkitError

_CHARS = ("chars", "characters")
_STARTS_MS = ("charStartTimesMs", "char_start_times_ms", "characterStartTimesMs")
_DURS_MS = (
    "charDurationsMs", "charsDurationsMs", "char_durations_ms", "chars_durations_ms",
    "characterDurationsMs",
)
_STARTS_S = ("character_start_times_seconds", "characterStartTimesSeconds")
_ENDS_S = ("character_end_times_seconds", "characterEndTimesSeconds")
_ALIGNMENT = ("alignment",)
_NORMALIZED = ("normalizedAlignment", "normalized_alignment")
_AUDIO = ("audio", "audio_base64", "audioBase64")


@dataclass(frozen=True)
class CharAlignment:
    """Characters with their start time and duration in ms, as one TTS chunk reported them."""

    chars: tuple[str, ...]
    start_ms: tuple[float, ...]
    duration_ms: tuple[float, ...]

    def __post_init__(self) -> None:
        if not (len(self.chars) == len(self.start_ms) == len(self.duration_ms)):
            raise AvatarkitError(
                f"alignment lists differ in length: {len(self.chars)} characters, "
                f"{len(self.start_ms)} start times, {len(self.duration_ms)} durations"
            )

    @property
    def text(self) -> str:
        """The characters joined back into text."""
        return "".join(self.chars)

    def __len__(self) -> int:
        return len(self.chars)


@dataclass(frozen=True)
class AlignmentChunk:
    """One streamed message: its alignments (either may be missing) and its audio length."""

    alignment: CharAlignment | None
    normalized: CharAlignment | None = None
    #: Duration of the audio that came with this message, ms (None if unknown).
    audio_ms: float | None = None

    def spoken(self) -> CharAlignment | None:
        """The alignment to derive phonemes from: normalised (spoken form) when present."""
        if self.normalized is not None and len(self.normalized):
            return self.normalized
        return self.alignment


def _first(obj: Mapping[str, Any], keys: Sequence[str]) -> Any:
    for key in keys:
        if key in obj:
            return obj[key]
    return None


def _numbers(values: Any, what: str) -> tuple[float, ...]:
    if not isinstance(values, list):
        raise AvatarkitError(f"malformed alignment: {what} must be a list of numbers")
    out = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            raise AvatarkitError(f"malformed alignment: {what} holds {v!r}, expected a number")
        out.append(float(v))
    return tuple(out)


def parse_alignment(obj: Any) -> CharAlignment | None:
    """One alignment object (any known spelling, ms or seconds) -> `CharAlignment`; None passes."""
    if obj is None:
        return None
    if not isinstance(obj, Mapping):
        raise AvatarkitError("malformed alignment: expected an object with chars and times")
    chars = _first(obj, _CHARS)
    if not isinstance(chars, list) or not all(isinstance(c, str) for c in chars):
        raise AvatarkitError(
            "malformed alignment: missing 'chars' (or 'characters') as a list of strings"
        )
    starts_ms = _first(obj, _STARTS_MS)
    if starts_ms is not None:
        starts = _numbers(starts_ms, "charStartTimesMs")
        durs_raw = _first(obj, _DURS_MS)
        if durs_raw is None:
            raise AvatarkitError(
                "malformed alignment: start times but no durations "
                "(expected charDurationsMs, charsDurationsMs or char_durations_ms)"
            )
        durs = _numbers(durs_raw, "charDurationsMs")
    else:
        starts_s, ends_s = _first(obj, _STARTS_S), _first(obj, _ENDS_S)
        if starts_s is None or ends_s is None:
            raise AvatarkitError(
                "malformed alignment: no character times (expected charStartTimesMs + "
                "charDurationsMs, or character_start_times_seconds + "
                "character_end_times_seconds)"
            )
        s, e = _numbers(starts_s, "start times"), _numbers(ends_s, "end times")
        if len(s) != len(e):
            raise AvatarkitError("malformed alignment: start and end time lists differ in length")
        starts = tuple(x * 1000.0 for x in s)
        durs = tuple(max(0.0, (b - a) * 1000.0) for a, b in zip(s, e, strict=True))
    if any(d < 0 for d in durs):
        raise AvatarkitError("malformed alignment: negative character duration")
    return CharAlignment(tuple(chars), starts, durs)


def parse_message(
    msg: Mapping[str, Any], *, sample_rate: int | None = None
) -> AlignmentChunk | None:
    """A WebSocket/HTTP stream message or bare alignment -> chunk; None if it has no timing.

    With `sample_rate`, the PCM16 audio in the message gives the chunk's audio duration,
    which is what tells chunk-relative times from stream-relative ones.
    """
    if not isinstance(msg, Mapping):
        raise AvatarkitError("malformed alignment file: each chunk must be a JSON object")
    if "message" in msg and "error" in msg:
        raise AvatarkitError(f"the TTS stream reported an error: {msg.get('message')}")
    if _first(msg, _CHARS) is not None:
        return AlignmentChunk(parse_alignment(msg))
    alignment = parse_alignment(_first(msg, _ALIGNMENT))
    normalized = parse_alignment(_first(msg, _NORMALIZED))
    audio_ms = None
    audio = _first(msg, _AUDIO)
    if sample_rate and isinstance(audio, str):
        n_bytes = len(audio.rstrip("=")) * 3 // 4
        audio_ms = n_bytes / 2 / sample_rate * 1000.0
    if alignment is None and normalized is None and audio_ms is None:
        return None
    return AlignmentChunk(alignment, normalized, audio_ms)


def parse_alignment_document(data: Any, *, sample_rate: int | None = None) -> list[AlignmentChunk]:
    """A decoded JSON document: one message, a bare alignment, or a list of either."""
    items = data if isinstance(data, list) else [data]
    chunks = [c for c in (parse_message(m, sample_rate=sample_rate) for m in items) if c]
    if not any(c.spoken() is not None for c in chunks):
        raise AvatarkitError(
            "malformed alignment: no chunk carries an alignment "
            "(expected 'alignment'/'normalizedAlignment' or 'chars' with times)"
        )
    return chunks


def load_alignment_file(
    path: str | Path, *, sample_rate: int | None = None
) -> list[AlignmentChunk]:
    """Read JSON (object or list) or JSON Lines (the HTTP stream) with alignments."""
    p = Path(path)
    try:
        text = p.read_text("utf-8")
    except OSError as exc:
        raise AvatarkitError(f"could not read alignment file {p}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError:
        # most often a recording given where its alignment was meant (`visemes -a` is
        # --alignment, while `preview -a` is --audio)
        raise AvatarkitError(
            f"malformed alignment file {p}: not text, so not JSON or JSON Lines (for a "
            "recording use --audio)") from None
    try:
        data: Any = json.loads(text)
    except json.JSONDecodeError:
        try:
            data = [json.loads(line) for line in text.splitlines() if line.strip()]
        except json.JSONDecodeError as exc:
            raise AvatarkitError(
                f"malformed alignment file {p}: not JSON or JSON Lines ({exc.msg}, "
                f"line {exc.lineno})"
            ) from exc
    return parse_alignment_document(data, sample_rate=sample_rate)
