"""The offline recipe: 16 kHz audio + avatar + model -> talking frames.

mel -> per-frame mel windows -> per-frame face crops from the idle loop -> batched inference
-> paste-back. Frames come out in order, one batch at a time, so a writer can stream them.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from avatarkit.roi.avatar import RoiAvatar
from avatarkit.roi.faces import face_inputs
from avatarkit.roi.mel import frame_count, mel_windows, melspectrogram
from avatarkit.roi.paste import paste
from avatarkit.roi.runner import OnnxRunner


def lipsync_frames(avatar: RoiAvatar, runner: OnnxRunner, wav16k: np.ndarray, *,
                   fps: float | None = None, frames: int | None = None,
                   match_colour: bool = True) -> Iterator[np.ndarray]:
    """RGB uint8 frames of the avatar speaking `wav16k` (mono float in [-1, 1] at 16 kHz).

    `fps` defaults to the idle loop's; `frames` defaults to enough frames to cover the audio.
    """
    fps = fps or avatar.fps
    total = frame_count(len(wav16k), fps) if frames is None else frames
    mel = melspectrogram(wav16k)
    geom = avatar.geometry(runner.size)
    step = runner.batch_limit
    for start in range(0, total, step):
        idx = list(range(start, min(start + step, total)))
        patches = infer_patches(avatar, runner, mel, idx, fps)
        for k, i in enumerate(idx):
            yield paste(avatar.frame(i), patches[k], avatar.affine(i), geom,
                        match_colour=match_colour)


def infer_patches(avatar: RoiAvatar, runner: OnnxRunner, mel: np.ndarray, idx: list[int],
                  fps: float) -> np.ndarray:
    """Model patches [len(idx), 3, S, S] for output frames `idx`: their mel windows and the
    idle frames under them, in one batch."""
    mels = mel_windows(mel, idx, fps)
    faces = face_inputs([avatar.frame(i) for i in idx], [avatar.affine(i) for i in idx],
                        avatar.box, runner.size)
    return runner.run(mels, faces)
