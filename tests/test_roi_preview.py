"""`avatarkit preview --variant onnx`: end to end through the CLI into a real MP4."""

from __future__ import annotations

import wave

import numpy as np
import pytest
from typer.testing import CliRunner

from avatarkit.audio.io import Audio
from avatarkit.cli import app
from avatarkit.idle import read_frames
from avatarkit.roi import load_avatar
from avatarkit.roi.providers import available
from avatarkit.roi.variant import to_16k
from tests.roi_cases import audio_driven_model, wrong_signature_model
from tests.test_roi_paste import _mouth_level

cli = CliRunner()


@pytest.fixture(scope="module")
def setup(tmp_path_factory, hero_dir):
    d = tmp_path_factory.mktemp("roi_preview")
    return {"dir": d, "avatar": hero_dir, "model": audio_driven_model(d / "m.onnx"),
            "wrong": wrong_signature_model(d / "w.onnx")}


def _wav(path, rate: int = 22050) -> None:
    """0.5 s silence, 0.8 s voiced, 0.5 s silence at 22.05 kHz (resampled to 16 kHz inside)."""
    t = np.arange(int(0.8 * rate)) / rate
    voiced = sum(np.sin(2 * np.pi * f * t) / k for k, f in enumerate((150, 300, 750, 1300), 1))
    quiet = np.zeros(int(0.5 * rate))
    x = np.concatenate([quiet, 0.25 * voiced, quiet])
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes((x * 32767).astype("<i2").tobytes())


def test_preview_with_audio_follows_the_audio(setup, tmp_path):
    wav, out = tmp_path / "s.wav", tmp_path / "onnx.mp4"
    _wav(wav)
    res = cli.invoke(app, ["preview", str(setup["avatar"]), "--variant", "onnx", "--model",
                           str(setup["model"]), "--audio", str(wav), "--provider", "cpu",
                           "--lead-in", "0.5", "--tail", "0.5", "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert "on cpu" in res.output
    frames = list(read_frames(out))
    avatar = load_avatar(setup["avatar"])
    fps = avatar.fps
    assert len(frames) == round(0.5 * fps) + int(np.ceil(1.8 * fps)) + round(0.5 * fps)
    levels = np.array([_mouth_level(f, avatar, i) for i, f in enumerate(frames)])
    lead = round(0.5 * fps)
    speech = slice(lead + round(0.5 * fps), lead + round(1.3 * fps))
    talking = levels[speech.start + 1:speech.stop - 5]
    silent = np.concatenate([levels[:speech.start - 6], levels[speech.stop + 1:]])
    assert talking.min() > silent.max() + 12, (talking, silent)  # after H.264 too
    # away from the mouth the video is the idle loop (up to compression)
    top = slice(0, int(avatar.box.y))
    diff = np.abs(frames[speech.start + 3][top].astype(int) -
                  avatar.frame(speech.start + 3)[top].astype(int))
    assert diff.mean() < 3.0


def test_preview_with_text(setup, tmp_path):
    out = tmp_path / "t.mp4"
    res = cli.invoke(app, ["preview", str(setup["avatar"]), "--variant", "onnx", "--model",
                           str(setup["model"]), "--text", "Hello there", "-o", str(out)])
    assert res.exit_code == 0, res.output
    frames = list(read_frames(out))
    avatar = load_avatar(setup["avatar"])
    levels = np.array([_mouth_level(f, avatar, i) for i, f in enumerate(frames)])
    lead = round(0.5 * avatar.fps)
    assert levels[lead:-lead].max() > levels[:lead - 6].max() + 12


@pytest.mark.parametrize("args,message", [
    (["--variant", "onnx", "--text", "hi"], "--variant onnx needs --model"),
    (["--variant", "sprites", "--model", "x.onnx", "--text", "hi"], "--model is only used"),
    (["--variant", "onnx", "--model", "WRONG", "--text", "hi"],
     "is not a Wav2Lip-compatible model"),
    pytest.param(["--variant", "onnx", "--model", "MODEL", "--provider", "cuda", "--text", "hi"],
                 "'cuda' is not available", marks=pytest.mark.skipif(
                     "CUDAExecutionProvider" in available(), reason="this machine has CUDA")),
])
def test_preview_onnx_errors(setup, tmp_path, args, message):
    args = [str(setup["wrong"]) if a == "WRONG" else str(setup["model"]) if a == "MODEL" else a
            for a in args]
    res = cli.invoke(app, ["preview", str(setup["avatar"]), *args, "-o",
                           str(tmp_path / "x.mp4")])
    assert res.exit_code == 1
    assert message in " ".join(res.output.split())
    assert "Traceback" not in res.output
    assert not (tmp_path / "x.mp4").exists()


def test_resampling_to_16k():
    rate = 22050
    t = np.arange(rate) / rate
    audio = Audio((np.sin(2 * np.pi * 440 * t) * 16000).astype(np.int16), rate)
    y = to_16k(audio)
    assert len(y) == 16000
    spectrum = np.abs(np.fft.rfft(y))
    assert abs(np.argmax(spectrum) - 440) <= 1  # 1 Hz bins at 16000 samples
