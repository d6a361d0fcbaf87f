"""Embedded espeak-ng voice: real synthesis, exact timing, async stream, safe concurrency."""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest

from avatarkit.errors import AvatarkitError
from avatarkit.tts.espeak_lib import engine
from avatarkit.tts.espeak_voice import EspeakOptions, EspeakProvider
from avatarkit.tts.provider import Provider
from avatarkit.tts.sentences import split_sentences

TEXT = "Bob met Pam at the pub. It was a warm evening! Did they talk about maps?"


def test_synthesis_is_real_audio_with_contiguous_phoneme_timing() -> None:
    s = engine().synthesize("Maybe the problem is simple.", "en-us")
    assert s.sample_rate == 22050
    audio = np.frombuffer(s.pcm, dtype="<i2")
    assert audio.size > 0.8 * 22050 and np.abs(audio).max() > 3000  # audible speech
    assert s.phonemes[0].start_ms < 50
    for a, b in zip(s.phonemes, s.phonemes[1:], strict=False):
        assert a.end_ms == b.start_ms and a.end_ms > a.start_ms
    assert s.phonemes[-1].end_ms == pytest.approx(s.duration_ms)
    # the "m" of "Maybe" really is quiet-ish nasal murmur vs the vowel after it: energy check
    m = next(p for p in s.phonemes if p.symbol == "m")
    vowel = s.phonemes[s.phonemes.index(m) + 1]

    def rms(p):  # noqa: ANN001, ANN202
        a = audio[int(p.start_ms * 22.05) : int(p.end_ms * 22.05)].astype(float)
        return float(np.sqrt((a**2).mean()))

    assert rms(m) < rms(vowel)
    words = [w.text_start for w in s.words]
    assert words == [0, 6, 10, 18, 21]


def test_rate_changes_duration() -> None:
    slow = engine().synthesize("one two three four five", "en-us", rate_wpm=120)
    fast = engine().synthesize("one two three four five", "en-us", rate_wpm=300)
    assert fast.duration_ms < 0.7 * slow.duration_ms


def test_fastest_allowed_rate_keeps_phonemes_on_the_audio() -> None:
    """From 450 wpm espeak-ng speeds the audio up after synthesis but leaves its phoneme
    events at the slower pace; the fastest rate allowed must not be one of those."""
    from avatarkit.tts.espeak_voice import MAX_RATE_WPM

    text = "hello there how are you today my friend"
    fast = engine().synthesize(text, "en-us", rate_wpm=MAX_RATE_WPM)
    assert fast.phonemes[-1].end_ms == pytest.approx(fast.duration_ms, abs=20)
    EspeakOptions(rate_wpm=MAX_RATE_WPM).checked()
    with pytest.raises(AvatarkitError, match="rate must be 80–449"):
        EspeakOptions(rate_wpm=MAX_RATE_WPM + 1).checked()
    beyond = engine().synthesize(text, "en-us", rate_wpm=MAX_RATE_WPM + 1)
    assert beyond.phonemes[-1].end_ms > 1.3 * beyond.duration_ms  # why the cap is there


@pytest.mark.parametrize("lang", ["xx", "klingon", ""])
def test_unknown_language_is_one_clear_error(lang: str) -> None:
    with pytest.raises(AvatarkitError, match="unknown language"):
        EspeakProvider(EspeakOptions(lang=lang))


def test_bad_options_are_errors() -> None:
    with pytest.raises(AvatarkitError, match="variant"):
        EspeakOptions(variant="nobody").checked()
    with pytest.raises(AvatarkitError, match="rate"):
        EspeakOptions(rate_wpm=10).checked()


def test_sentence_split() -> None:
    assert split_sentences("Hi there. How are you?  Fine!\nNew line") == [
        "Hi there.", "How are you?", "Fine!", "New line"
    ]
    long = ", ".join(["word " * 10] * 10)
    parts = split_sentences(long, max_chars=120)
    assert all(len(p) <= 120 for p in parts) and "".join(parts).replace(" ", "") == long.replace(
        " ", ""
    )


async def _collect(provider: EspeakProvider, text: str) -> list:
    return [c async for c in provider.stream(text)]


async def test_stream_yields_sentences_on_one_clock() -> None:
    provider = EspeakProvider()
    assert isinstance(provider, Provider)
    chunks = await _collect(provider, TEXT)
    assert [c.text for c in chunks] == split_sentences(TEXT)
    clock = 0.0
    for c in chunks:
        assert c.start_ms == pytest.approx(clock)
        assert c.phonemes[0].start_ms >= c.start_ms
        assert c.phonemes[-1].end_ms == pytest.approx(c.end_ms)
        clock = c.end_ms
    # same phonemes as one-shot synthesis of each sentence (espeak is the ground truth)
    for c in chunks:
        ref = engine().synthesize(c.text, "en-us")
        assert [p.symbol for p in c.phonemes] == [p.symbol for p in ref.phonemes]


async def test_empty_text_is_an_error() -> None:
    with pytest.raises(AvatarkitError, match="empty"):
        await _collect(EspeakProvider(), "   ")


async def test_concurrent_streams_do_not_interfere() -> None:
    langs = ["en-us", "de", "fr", "es", "en-us", "de"]
    texts = {"en-us": TEXT, "de": "Guten Morgen. Wie geht es dir?",
             "fr": "Bonjour. Comment allez-vous?", "es": "Hola. ¿Qué tal?"}
    providers = [EspeakProvider(EspeakOptions(lang=lang)) for lang in langs]
    together = await asyncio.gather(*(_collect(p, texts[p.options.lang]) for p in providers))
    for lang, chunks in zip(langs, together, strict=True):
        alone = await _collect(EspeakProvider(EspeakOptions(lang=lang)), texts[lang])
        assert [[p.symbol for p in c.phonemes] for c in chunks] == [
            [p.symbol for p in c.phonemes] for c in alone
        ]
        for a, b in zip(chunks, alone, strict=True):
            # espeak-ng alone jitters by up to ~10 ms from run to run (its pitch-period
            # grid); a voice or rate mix-up would change timings by far more than that.
            starts_a = np.array([p.start_ms - a.start_ms for p in a.phonemes[:-1]])
            starts_b = np.array([p.start_ms - b.start_ms for p in b.phonemes[:-1]])
            assert np.abs(starts_a - starts_b).max() <= 15.0
            assert abs(a.duration_ms - b.duration_ms) < 20


def test_threads_share_the_engine_safely() -> None:
    results: dict[int, list[str]] = {}

    def work(i: int) -> None:
        lang = ["en-us", "de"][i % 2]
        results[i] = [p.symbol for p in engine().synthesize("One two three.", lang).phonemes]

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({tuple(results[i]) for i in range(0, 8, 2)}) == 1
    assert len({tuple(results[i]) for i in range(1, 8, 2)}) == 1
    assert results[0] != results[1]
