"""Variant C in the renderer: a Wav2Lip-compatible ONNX model draws the mouth from the audio.

Unlike sprites and mesh it ignores the viseme weights: every output frame's mouth comes from
the model, fed the mel window of the video's own audio track at that frame (lead-in and tail
are silence, so the mouth is the model's at rest there and never pops at the speech edges).
Frames are computed a batch at a time, on first request, by `avatarkit.roi`.
"""

from __future__ import annotations

import numpy as np

from avatarkit.audio.io import Audio
from avatarkit.audio.resample import resample
from avatarkit.render.avatar import Avatar
from avatarkit.render.preview import PreviewOptions, plan_frames
from avatarkit.render.speech import Speech
from avatarkit.roi import OnnxRunner, paste
from avatarkit.roi.avatar import roi_avatar
from avatarkit.roi.lipsync import infer_patches
from avatarkit.roi.mel import SAMPLE_RATE, melspectrogram


def to_16k(audio: Audio) -> np.ndarray:
    """Mono float samples in [-1, 1] at 16 kHz: the live server's resampler over the whole
    track, so the preview's mel is the one the server computes from the same audio."""
    return resample(audio.samples.astype(np.float64) / 32768.0, int(audio.sample_rate),
                    SAMPLE_RATE)


class OnnxVariant:
    """Variant C: model patches over the idle frames, driven by `track_audio` (the whole
    video's audio, lead-in and tail included, as the preview writes it)."""

    name = "onnx"

    def __init__(self, avatar: Avatar, runner: OnnxRunner, track_audio: Audio, *,
                 frames: int | None = None, match_colour: bool = True) -> None:
        self.avatar = avatar
        self.runner = runner
        self.roi = roi_avatar(avatar)
        self.geometry = self.roi.geometry(runner.size)
        self.mel = melspectrogram(to_16k(track_audio))
        self.match_colour = match_colour
        #: Output frames of the video (None: unbounded); the last batch stops there.
        self.frames = frames
        self._patches: dict[int, np.ndarray] = {}

    def _compute(self, start: int) -> None:
        self._patches.clear()  # frames are asked for in order: keep one batch
        stop = start + self.runner.batch_limit
        if self.frames is not None:
            stop = max(start + 1, min(stop, self.frames))
        idx = list(range(start, stop))
        patches = infer_patches(self.roi, self.runner, self.mel, idx, self.avatar.fps)
        for i, patch in zip(idx, patches, strict=True):
            self._patches[i] = patch

    def draw(self, frame: np.ndarray, frame_index: int, weights: np.ndarray) -> np.ndarray:
        if frame_index not in self._patches:
            self._compute(frame_index)
        return paste(frame, self._patches[frame_index], self.roi.affine(frame_index),
                     self.geometry, match_colour=self.match_colour)


def onnx_variant(avatar: Avatar, speech: Speech, runner: OnnxRunner,
                 options: PreviewOptions | None = None) -> OnnxVariant:
    """The ONNX variant for `render_preview(avatar, speech, out, options, variant=...)`: the
    audio track is laid out exactly as the preview writes it (lead-in, speech, tail)."""
    plan = plan_frames(speech.weights, speech.duration_ms, avatar.fps, options)
    return OnnxVariant(avatar, runner, speech.audio.padded(plan.speech_start_s, plan.duration_s),
                       frames=plan.frames)
