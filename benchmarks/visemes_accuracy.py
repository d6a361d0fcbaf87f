"""Viseme engine accuracy and speed against espeak-ng's own phoneme timing.

    .venv/bin/python benchmarks/visemes_accuracy.py [--fps 100] [--limit N]

For every corpus sentence (benchmarks/corpus/*.txt; en, de, fr, es, it) espeak-ng speaks it;
its phoneme events are the ground truth. Two inputs are scored:
  (a) the exact phonemes;
  (b) a character alignment made from espeak-ng's word timings, times spread evenly over
      each word's characters (what ElevenLabs gives us), turned back into phonemes.
Reported: frame agreement of the dominant viseme, lip-closure hit rate (p/b/m reach MBP
>= 0.8 within +-30 ms of their midpoint), mean onset error of viseme changes; timeline
generation speed (x real time) and the embedded voice's time to first audio.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from pathlib import Path

from avatarkit.tts.espeak_lib import engine
from avatarkit.tts.espeak_voice import EspeakOptions, EspeakProvider
from avatarkit.visemes.coarticulation import CoarticulationOptions
from avatarkit.visemes.g2p import espeak_lexicon
from avatarkit.visemes.scoring import Score, alignment_from_synthesis, score, truth_phonemes
from avatarkit.visemes.timeline import timeline_from_alignment, timeline_from_phonemes

CORPUS = Path(__file__).parent / "corpus"
LANGS = {"en": "en-us", "de": "de", "fr": "fr", "es": "es", "it": "it"}
FIRST_AUDIO_TEXT = (
    "The quick brown fox jumps over the lazy dog while seven bright birds sing loudly."
)


def corpus(limit: int | None) -> list[tuple[str, str]]:
    """(lang, sentence) pairs from the corpus files."""
    out = []
    for name, lang in LANGS.items():
        lines = [x for x in (CORPUS / f"{name}.txt").read_text("utf-8").splitlines() if x.strip()]
        out += [(lang, line) for line in lines[:limit]]
    return out


async def first_audio_ms(text: str, runs: int = 5) -> float:
    """Median time from asking the embedded voice to speak to holding the first chunk."""
    provider = EspeakProvider(EspeakOptions())
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        stream = provider.stream(text)
        await stream.__anext__()
        times.append((time.perf_counter() - t0) * 1000)
        await stream.aclose()
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fps", type=float, default=100.0)
    parser.add_argument("--limit", type=int, default=None, help="sentences per language")
    args = parser.parse_args()
    opts = CoarticulationOptions(fps=args.fps)
    pairs = corpus(args.limit)
    per_lang: dict[str, tuple[Score, Score]] = {}
    audio_ms = gen_a_s = gen_b_s = 0.0
    for lang, text in pairs:
        syn = engine().synthesize(text, lang)
        truth = truth_phonemes(syn)
        chunks = alignment_from_synthesis(text, syn)
        espeak_lexicon(lang)  # warm the G2P cache outside the timed region for (b) below
        t0 = time.perf_counter()
        ta = timeline_from_phonemes(truth, opts, duration_ms=syn.duration_ms)
        t1 = time.perf_counter()
        tb = timeline_from_alignment(chunks, lang, opts, duration_ms=syn.duration_ms)
        t2 = time.perf_counter()
        gen_a_s += t1 - t0
        gen_b_s += t2 - t1
        audio_ms += syn.duration_ms
        sa, sb = score(ta.frames, truth), score(tb.frames, truth)
        prev = per_lang.get(lang, (Score(0, 0, 0, 0, 0, 0), Score(0, 0, 0, 0, 0, 0)))
        per_lang[lang] = (prev[0] + sa, prev[1] + sb)
    total_a = sum((v[0] for v in per_lang.values()), Score(0, 0, 0, 0, 0, 0))
    total_b = sum((v[1] for v in per_lang.values()), Score(0, 0, 0, 0, 0, 0))
    print(f"corpus: {len(pairs)} sentences, {audio_ms / 1000:.1f} s of speech, {args.fps:g} fps")
    print(f"{'':8}{'input':>6}{'frames':>9}{'agree':>8}{'closures':>10}{'hit':>8}{'onset ms':>10}")
    rows = [*((lang, v) for lang, v in per_lang.items()), ("ALL", (total_a, total_b))]
    for lang, (sa, sb) in rows:
        for name, s in (("(a)", sa), ("(b)", sb)):
            print(f"{lang:8}{name:>6}{s.frames:>9}{s.frame_agreement:>8.1%}{s.closures:>10}"
                  f"{s.closure_hit_rate:>8.1%}{s.mean_onset_error_ms:>10.1f}")
    print(f"speed (a) phonemes -> timeline: {audio_ms / 1000 / gen_a_s:,.0f}x real time")
    print(f"speed (b) alignment -> timeline (G2P cached): "
          f"{audio_ms / 1000 / gen_b_s:,.0f}x real time")
    words = len(FIRST_AUDIO_TEXT.split())
    print(f"time to first audio, embedded voice, {words}-word sentence: "
          f"{asyncio.run(first_audio_ms(FIRST_AUDIO_TEXT)):.1f} ms (median of 5)")


if __name__ == "__main__":
    main()
