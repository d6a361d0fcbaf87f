"""Wav2Lip mel features: equal to the librosa reference, and the stream equals the batch."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.signal

from avatarkit.roi import mel as M

librosa = pytest.importorskip("librosa")


def wav2lip_reference(wav: np.ndarray) -> np.ndarray:
    """Wav2Lip's audio.melspectrogram with its hparams. Its pinned librosa (0.7) padded the
    centred STFT by reflection, today's default is zeros: say so explicitly."""
    y = scipy.signal.lfilter([1, -0.97], [1], wav)
    d = librosa.stft(y=y, n_fft=800, hop_length=200, win_length=800, pad_mode="reflect")
    basis = librosa.filters.mel(sr=16000, n_fft=800, n_mels=80, fmin=55, fmax=7600)
    s = 20 * np.log10(np.maximum(1e-5, basis @ np.abs(d))) - 20
    return np.clip(8 * ((s + 100) / 100) - 4, -4, 4)


def _signals() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    t = np.arange(int(1.7 * 16000)) / 16000
    vowel = sum(np.sin(2 * np.pi * f * t) / k for k, f in enumerate((140, 280, 700, 1200), 1))
    envelope = (np.sin(2 * np.pi * 3 * t) > 0).astype(float)  # syllables and pauses
    chirp = scipy.signal.chirp(t, 60, t[-1], 7000)
    return {
        "speechlike": (0.3 * vowel * envelope + 0.01 * rng.standard_normal(len(t))),
        "chirp": 0.5 * chirp,
        "silence_then_noise": np.concatenate([np.zeros(5000), 0.2 * rng.standard_normal(9000)]),
        "odd_length": 0.4 * rng.standard_normal(12345),
    }


@pytest.mark.parametrize("name", sorted(_signals()))
def test_matches_librosa_reference(name):
    wav = _signals()[name].astype(np.float32)
    ours = M.melspectrogram(wav)
    ref = wav2lip_reference(wav)
    assert ours.shape == ref.shape == (80, 1 + len(wav) // 200)
    assert np.abs(ours - ref).max() <= 1e-3
    assert ours.min() >= -4 and ours.max() <= 4 and ours.std() > 0.3  # not a constant


def test_filterbank_is_librosa_slaney():
    ref = librosa.filters.mel(sr=16000, n_fft=800, n_mels=80, fmin=55, fmax=7600)
    assert np.abs(M.mel_filterbank() - ref).max() < 1e-6


@pytest.mark.parametrize("chunk", [1, 7, 160, 333, 401, 4000, "random"])
def test_stream_equals_batch(chunk):
    wav = _signals()["speechlike"]
    rng = np.random.default_rng(3)
    stream, parts, i = M.MelStream(), [], 0
    while i < len(wav):
        n = int(rng.integers(1, 900)) if chunk == "random" else chunk
        cols = stream.push(wav[i:i + n])
        i += n
        parts.append(cols)
        # a column is only emitted once its whole window has arrived
        assert stream.columns_emitted <= max(0, (i - 400) // 200 + 1)
    parts.append(stream.finish())
    got = np.concatenate(parts, axis=1)
    np.testing.assert_allclose(got, M.melspectrogram(wav), atol=1e-5, rtol=0)


@pytest.mark.parametrize("samples", [0, 1, 150, 400, 401, 799])
def test_stream_short_audio(samples):
    wav = np.random.default_rng(1).standard_normal(samples) * 0.1
    stream = M.MelStream()
    got = np.concatenate([stream.push(wav), stream.finish()], axis=1)
    want = M.melspectrogram(wav)
    assert got.shape == want.shape == (80, M.column_count(samples) if samples else 0)
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_silence_is_minus_four_and_speech_is_louder():
    assert np.all(M.melspectrogram(np.zeros(3200)) == -4.0)
    loud = M.melspectrogram(_signals()["speechlike"])
    assert loud.mean() > -2.0


def test_window_start_and_end_rule():
    mel = np.arange(100, dtype=np.float32)[None].repeat(80, axis=0)  # column c holds c
    # 25 fps: 3.2 columns per frame, start = int(i * 80 / 25)
    for i, start in [(0, 0), (1, 3), (2, 6), (3, 9), (5, 16), (20, 64)]:
        assert M.window_start(i, 25) == start
        assert M.mel_window(mel, i, 25)[0, 0] == start
    assert M.window_start(7, 30) == int(7 * 80 / 30)
    # past the end: Wav2Lip takes the last 16 columns
    assert list(M.mel_window(mel, 40, 25)[0]) == list(range(84, 100))
    short = M.mel_window(mel[:, :5], 0, 25)
    assert short.shape == (80, 16) and list(short[0, :6]) == [0, 1, 2, 3, 4, -4]
    batch = M.mel_windows(mel, range(3), 25)
    assert batch.shape == (3, 1, 80, 16) and batch.dtype == np.float32


def test_frame_count_covers_audio():
    assert M.frame_count(16000, 25) == 25
    assert M.frame_count(16001, 25) == 26
    assert M.frame_count(0, 25) == 0
