"""Character alignment parsing and alignment -> phoneme timing (pure, streaming)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from avatarkit.errors import AvatarkitError
from avatarkit.tts.alignment import (
    AlignmentChunk,
    CharAlignment,
    load_alignment_file,
    parse_alignment,
    parse_message,
)
from avatarkit.visemes.char_timing import (
    CharTimingState,
    chars_to_phonemes,
    chars_to_phonemes_finish,
    chars_to_phonemes_step,
)
from avatarkit.visemes.g2p import espeak_lexicon, g2p

LEX = espeak_lexicon("en-us")


def even(text: str, start: float = 0.0, per_char: float = 60.0) -> CharAlignment:
    """Characters spread evenly, like ElevenLabs reports them."""
    n = len(text)
    return CharAlignment(tuple(text), tuple(start + i * per_char for i in range(n)),
                         (per_char,) * n)


def split(al: CharAlignment, at: list[int], *, relative: bool) -> list[AlignmentChunk]:
    """Cut an alignment into chunks, optionally restarting times at 0 in each."""
    out, edges = [], [0, *at, len(al)]
    for a, b in zip(edges, edges[1:], strict=False):
        base = al.start_ms[a] if relative else 0.0
        part = CharAlignment(al.chars[a:b], tuple(t - base for t in al.start_ms[a:b]),
                             al.duration_ms[a:b])
        audio = sum(al.duration_ms[a:b])
        out.append(AlignmentChunk(part, None, audio))
    return out


# -- parsing --------------------------------------------------------------------------------
@pytest.mark.parametrize("dur_key", ["charDurationsMs", "charsDurationsMs", "char_durations_ms"])
def test_every_duration_spelling(dur_key: str) -> None:
    start_key = "char_start_times_ms" if "_" in dur_key else "charStartTimesMs"
    al = parse_alignment({"chars": ["h", "i"], start_key: [0, 100], dur_key: [100, 150]})
    assert al == CharAlignment(("h", "i"), (0.0, 100.0), (100.0, 150.0))


def test_http_shape_in_seconds() -> None:
    al = parse_alignment({"characters": ["h", "i"], "character_start_times_seconds": [0, 0.1],
                          "character_end_times_seconds": [0.1, 0.25]})
    assert al is not None
    assert al.start_ms == (0.0, 100.0) and al.duration_ms == pytest.approx((100.0, 150.0))


def test_message_shapes_and_audio_length() -> None:
    pcm = b"\0\0" * 16000  # 1 s at 16 kHz
    msg = {"audio": base64.b64encode(pcm).decode(), "isFinal": None, "alignment": None,
           "normalizedAlignment": {"chars": [" ", "a"], "charStartTimesMs": [0, 5],
                                   "charDurationsMs": [5, 50]}}
    chunk = parse_message(msg, sample_rate=16000)
    assert chunk is not None and chunk.alignment is None
    assert chunk.audio_ms == pytest.approx(1000.0)
    assert chunk.spoken() is chunk.normalized
    assert parse_message({"isFinal": True}) is None


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"chars": ["a"], "charStartTimesMs": [0]}, "durations"),
        ({"chars": "ab", "charStartTimesMs": [0], "charDurationsMs": [1]}, "chars"),
        ({"chars": ["a", "b"], "charStartTimesMs": [0], "charDurationsMs": [1, 2]}, "length"),
        ({"chars": ["a"], "charStartTimesMs": ["x"], "charDurationsMs": [1]}, "number"),
        ({"alignment": [1, 2]}, "object"),
        ({"foo": 1}, "no chunk"),
        ({"message": "quota exceeded", "error": "quota", "code": 1008}, "quota exceeded"),
    ],
)
def test_malformed_alignment_is_one_clear_error(doc: object, message: str, tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(AvatarkitError, match=message):
        load_alignment_file(path)


def test_file_forms(tmp_path: Path) -> None:
    msg = {"audio": "", "alignment": {"chars": list("hi"), "charStartTimesMs": [0, 50],
                                      "charDurationsMs": [50, 50]}}
    (tmp_path / "one.json").write_text(json.dumps(msg))
    (tmp_path / "list.json").write_text(json.dumps([msg, {"isFinal": True}]))
    (tmp_path / "lines.jsonl").write_text(json.dumps(msg) + "\n" + json.dumps(msg) + "\n")
    assert len(load_alignment_file(tmp_path / "one.json")) == 1
    assert len(load_alignment_file(tmp_path / "list.json")) == 1
    assert len(load_alignment_file(tmp_path / "lines.jsonl")) == 2
    (tmp_path / "junk.json").write_text("{not json")
    with pytest.raises(AvatarkitError, match="not JSON"):
        load_alignment_file(tmp_path / "junk.json")
    with pytest.raises(AvatarkitError, match="could not read"):
        load_alignment_file(tmp_path / "missing.json")


# -- timing ---------------------------------------------------------------------------------
def test_words_get_their_phonemes_inside_their_span() -> None:
    text = "Bob paid me."
    phonemes = chars_to_phonemes([AlignmentChunk(even(text))], LEX)
    spoken = [p for p in phonemes if p.symbol != "_"]
    assert [p.symbol for p in spoken] == [s for w in ("Bob", "paid", "me") for s in LEX(w)]
    # "Bob" is chars 0-2 (0..180 ms), "paid" chars 4-7 (240..480 ms), "me" chars 9-10
    bob = spoken[:3]
    assert bob[0].start_ms == 0 and bob[-1].end_ms == pytest.approx(180.0)
    paid = spoken[3:6]
    assert paid[0].start_ms == pytest.approx(240.0) and paid[-1].end_ms == pytest.approx(480.0)
    assert any(p.symbol == "_" and p.start_ms == pytest.approx(180.0) for p in phonemes)
    assert phonemes[-1].end_ms == pytest.approx(len(text) * 60.0)
    # vowels get more time than the consonants around them
    assert (bob[1].end_ms - bob[1].start_ms) > (bob[0].end_ms - bob[0].start_ms)


@pytest.mark.parametrize("relative", [False, True])
@pytest.mark.parametrize("with_audio", [False, True])
def test_split_words_and_both_time_bases_give_the_same_result(
    relative: bool, with_audio: bool
) -> None:
    text = "Imagine a pumpkin bubble maker."
    whole = chars_to_phonemes([AlignmentChunk(even(text))], LEX)
    chunks = split(even(text), [3, 11, 12, 20], relative=relative)  # cuts inside words
    if not with_audio:
        chunks = [AlignmentChunk(c.alignment) for c in chunks]
    assert chars_to_phonemes(chunks, LEX) == whole


def test_streaming_emits_only_completed_words() -> None:
    state = CharTimingState()
    out, state = chars_to_phonemes_step(state, AlignmentChunk(even("Hello wor")), LEX)
    assert [p.symbol for p in out] == [s for w in g2p("Hello") for s in w]
    assert "".join(c for c, _, _ in state.pending) == "wor"
    out2, state = chars_to_phonemes_step(
        state, AlignmentChunk(even("ld", start=9 * 60.0)), LEX)
    assert out2 == []
    out3, state = chars_to_phonemes_finish(state, LEX)
    # the 60 ms space before "world" is a pause, then the word fills its own span
    assert [p.symbol for p in out3] == ["_", *(s for w in g2p("world") for s in w)]
    assert out3[1].start_ms == pytest.approx(6 * 60.0)
    assert out3[-1].end_ms == pytest.approx(11 * 60.0)


def test_null_alignments_and_leading_space_quirk() -> None:
    text = "Maybe both."
    al = even(text)
    first = AlignmentChunk(CharAlignment(al.chars[:6], al.start_ms[:6], al.duration_ms[:6]))
    # second chunk: raw alignment without leading space, normalised one with a spurious one
    raw = CharAlignment(al.chars[6:], al.start_ms[6:], al.duration_ms[6:])
    norm = CharAlignment((" ", *raw.chars), (raw.start_ms[0], *raw.start_ms),
                         (0.0, *raw.duration_ms))
    chunks = [first, AlignmentChunk(None, None), AlignmentChunk(raw, norm)]
    assert chars_to_phonemes(chunks, LEX) == chars_to_phonemes([AlignmentChunk(al)], LEX)


def test_normalized_alignment_speaks_digits_and_abbreviations() -> None:
    raw = even("Dr. Smith paid $42.")
    norm = even("Doctor Smith paid forty two dollars.")
    spoken = [p.symbol for p in chars_to_phonemes([AlignmentChunk(raw, norm)], LEX)
              if p.symbol != "_"]
    assert spoken == [s for w in g2p("Doctor Smith paid forty two dollars.") for s in w]
    # without a normalised alignment espeak-ng expands them itself, in the words' own spans
    expanded = [p for p in chars_to_phonemes([AlignmentChunk(raw)], LEX) if p.symbol != "_"]
    assert [p.symbol for p in expanded[:5]] == [s for w in g2p("doctor") for s in w]
    assert expanded[0].start_ms == 0 and expanded[4].end_ms == pytest.approx(120.0)
