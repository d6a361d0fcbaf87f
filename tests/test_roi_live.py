"""Streaming model inputs (avatarkit/roi/live.py): chunking never changes the output, the
resampler matches scipy's polyphase filter, and the per-frame windows equal the offline
recipe's (`mel_windows` of the whole utterance)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.signal

from avatarkit.audio.io import Audio
from avatarkit.audio.resample import StreamResampler
from avatarkit.roi.live import LiveFrames
from avatarkit.roi.mel import frame_count, mel_windows, melspectrogram
from avatarkit.roi.variant import to_16k


def _speechy(rate: int, seconds: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    voiced = sum(np.sin(2 * np.pi * f * t) / k for k, f in enumerate((150, 300, 750, 1300), 1))
    envelope = (np.sin(2 * np.pi * 2.0 * t) > 0).astype(float)
    return 0.25 * voiced * envelope + 0.02 * rng.standard_normal(len(t))


def _chunks(x: np.ndarray, seed: int, most: int = 4000) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    out, i = [], 0
    while i < len(x):
        n = int(rng.integers(1, most))
        out.append(x[i:i + n])
        i += n
    return out


def _resample(x: np.ndarray, rate: int, pieces: list[np.ndarray] | None = None) -> np.ndarray:
    r = StreamResampler(rate)
    return np.concatenate([r.push(p) for p in (pieces or [x])] + [r.finish()])


@pytest.mark.parametrize("rate", [22050, 24000, 44100, 16000])
def test_resampler_is_chunk_invariant_and_matches_polyphase(rate):
    x = _speechy(rate, 1.1)
    whole = _resample(x, rate)
    pieces = _resample(x, rate, _chunks(x, seed=rate))
    assert len(whole) == len(pieces) == -(-len(x) * 16000 // rate)
    np.testing.assert_array_equal(whole, pieces)
    up, down = 16000, rate
    g = np.gcd(up, down)
    ref = scipy.signal.resample_poly(x, up // g, down // g)
    n = min(len(ref), len(whole))
    assert np.abs(whole[50:n - 50] - ref[50:n - 50]).max() < 3e-3


def test_resampler_keeps_a_tone():
    rate = 22050
    t = np.arange(rate) / rate
    y = _resample(np.sin(2 * np.pi * 1000 * t), rate)
    ty = np.arange(len(y)) / 16000
    assert np.abs(y - np.sin(2 * np.pi * 1000 * ty))[100:-100].max() < 1e-3


@pytest.mark.parametrize("fps", [24.0, 25.0, 30.0])
def test_frames_equal_the_offline_windows(fps):
    rate = 22050
    x = _speechy(rate, 1.7, seed=int(fps))
    live = LiveFrames(rate, fps)
    early: list = []
    for piece in _chunks(x, seed=3):
        got = live.push(piece)
        # released while streaming: a frame's window is complete, never a guess
        assert all(w.index == len(early) + k for k, w in enumerate(got))
        early += got
    tail = live.finish()
    frames = early + tail
    whole16 = _resample(x, rate)
    count = frame_count(len(whole16), fps)
    ref = mel_windows(melspectrogram(whole16), range(count), fps)[:, 0]
    assert [w.index for w in frames] == list(range(count))
    assert [w.pts_ms for w in frames] == pytest.approx([i * 1000 / fps for i in range(count)])
    np.testing.assert_array_equal(np.stack([w.mel for w in frames]), ref)
    # only the frames whose 0.2 s window reaches past the end wait for finish()
    assert len(tail) <= int(np.ceil(0.25 * fps)) + 1
    assert live.finish() == []


def test_pcm16_bytes_and_short_utterances():
    rate = 22050
    x = _speechy(rate, 0.6)
    pcm = (np.clip(x, -1, 1) * 32767).astype("<i2").tobytes()
    a = LiveFrames(rate, 25)
    got = a.push_pcm16(pcm[:1001]) + a.push_pcm16(pcm[1001:]) + a.finish()
    b = LiveFrames(rate, 25)
    ref = b.push(np.frombuffer(pcm, "<i2").astype(np.float32) / 32768) + b.finish()
    assert len(got) == len(ref) == 15
    for u, v in zip(got, ref, strict=True):
        np.testing.assert_array_equal(u.mel, v.mel)
    # under 0.2 s of audio: windows padded with silence (-4) like mel_window
    short = LiveFrames(rate, 25)
    frames = short.push(x[:2000]) + short.finish()
    assert len(frames) == 3 and frames[0].mel.shape == (80, 16)  # ceil(0.0907 s * 25)
    assert (frames[0].mel[:, -1] == -4).all() and frames[0].mel[:, 0].max() > -4
    with pytest.raises(RuntimeError):
        short.push(x[:10])


@pytest.mark.parametrize("rate", [22050, 24000, 44100])
def test_the_offline_preview_hears_what_the_server_hears(rate):
    """The preview's ONNX variant (the whole track resampled at once) feeds the model the
    same mel windows, bit for bit, as the live server computes from the same PCM16 arriving
    in chunks."""
    pcm = np.round(_speechy(rate, 1.3, seed=rate) * 20000).astype("<i2")
    live = LiveFrames(rate, 25.0)
    frames = [w for piece in _chunks(pcm, seed=rate) for w in live.push_pcm16(piece.tobytes())]
    frames += live.finish()
    offline = to_16k(Audio(pcm, rate))
    count = frame_count(len(offline), 25.0)
    assert [w.index for w in frames] == list(range(count))
    ref = mel_windows(melspectrogram(offline), range(count), 25.0)[:, 0]
    np.testing.assert_array_equal(np.stack([w.mel for w in frames]), ref)
