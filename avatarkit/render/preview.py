"""The preview recipe: avatar + speech -> MP4 with sound, as a client would show it.

    plan_frames   speech length + idle fps -> frame count, lead-in, weights per frame
    render_frames idle frame (looping) + weights -> variant.draw -> RGB frames
    VideoWriter   frames + audio (silence over lead-in and tail) -> H.264 + AAC MP4

Output frame i shows idle-loop frame i % loop_frames, so the loop runs on through the
lead-in, the speech and the tail. Speech starts `lead_frames` frames in; the audio is
delayed by exactly that many frame durations, so sound and mouth share one clock.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from avatarkit.errors import AvatarkitError
from avatarkit.render.avatar import Avatar
from avatarkit.render.speech import Speech
from avatarkit.render.variants import VARIANTS, MouthVariant, make_variant
from avatarkit.render.video import VideoOptions, VideoWriter
from avatarkit.render.weights import WeightTrack


@dataclass(frozen=True)
class PreviewOptions:
    """How the preview is made; every field has the default the CLI uses."""

    #: Mouth variant: "sprites" (atlas cross-fade) or "mesh" (warp of the live frame).
    variant: str = "sprites"
    #: Idle time before the speech starts, seconds (rounded to whole frames).
    lead_in_s: float = 0.5
    #: Idle time after the speech ends, seconds (rounded to whole frames).
    tail_s: float = 0.5
    #: How long the mouth takes to ease from the idle mouth into the first shape and back, ms.
    ramp_ms: float = 80.0
    #: Encoder settings.
    video: VideoOptions = field(default_factory=VideoOptions)

    def checked(self) -> PreviewOptions:
        """Self, or AvatarkitError naming the option that is out of range."""
        if self.variant not in VARIANTS:
            raise AvatarkitError(f"unknown variant {self.variant!r}; use one of "
                                 f"{', '.join(VARIANTS)}")
        for name, flag in (("lead_in_s", "--lead-in"), ("tail_s", "--tail")):
            if not 0.0 <= getattr(self, name) <= 10.0:
                raise AvatarkitError(f"{flag} ({name}) must be between 0 and 10 seconds, "
                                     f"got {getattr(self, name):g}")
        if not 0.0 <= self.ramp_ms <= 500.0:
            raise AvatarkitError("ramp_ms must be between 0 and 500")
        return self


@dataclass(frozen=True)
class FramePlan:
    """Which weights every output frame shows, and where the speech sits in the video."""

    fps: float
    lead_frames: int  # speech (and its audio) starts at frame lead_frames
    weights: np.ndarray  # (frames, classes) per output frame

    @property
    def frames(self) -> int:
        return len(self.weights)

    @property
    def duration_s(self) -> float:
        return self.frames / self.fps

    @property
    def speech_start_s(self) -> float:
        """Where the audio's first sample sits in the video."""
        return self.lead_frames / self.fps

    def speech_time_ms(self, frame_index: int) -> float:
        """Time in the speech (ms from the audio's start) that output frame `frame_index` shows
        (negative in the lead-in) - what an audio-driven variant samples its features at."""
        return (frame_index - self.lead_frames) * 1000.0 / self.fps


def plan_frames(weights: WeightTrack, speech_ms: float, fps: float,
                options: PreviewOptions | None = None) -> FramePlan:
    """Frame count, lead-in and per-frame weights for speech of `speech_ms` at `fps`."""
    opts = options or PreviewOptions()
    lead = round(opts.lead_in_s * fps)
    tail = round(opts.tail_s * fps)
    body = math.ceil(speech_ms * fps / 1000.0 - 1e-9)
    times = (np.arange(lead + body + tail) - lead) * 1000.0 / fps
    return FramePlan(fps, lead, weights.sample(times, opts.ramp_ms))


def render_frames(avatar: Avatar, variant: MouthVariant, plan: FramePlan) -> Iterator[np.ndarray]:
    """RGB uint8 output frames, one per plan frame."""
    idle = avatar.frames
    for i, weights in enumerate(plan.weights):
        yield variant.draw(idle[i % len(idle)], i, weights)


@dataclass(frozen=True)
class PreviewResult:
    """What `render_preview` wrote, with its timing."""

    path: Path
    variant: str
    plan: FramePlan
    render_s: float  # wall time of drawing and encoding

    @property
    def speed(self) -> float:
        """Video seconds made per second of wall time (the multiple of real time)."""
        return self.plan.duration_s / max(self.render_s, 1e-9)


def render_preview(avatar: Avatar, speech: Speech, out: str | Path,
                   options: PreviewOptions | None = None, *,
                   variant: MouthVariant | None = None,
                   progress: Callable[[int, int], None] | None = None) -> PreviewResult:
    """Write the preview MP4 of `speech` on `avatar` to `out` (atomically).

    `variant` overrides `options.variant` with a ready variant object (e.g. an ONNX one);
    `progress(done, total)` is called after every frame."""
    opts = (options or PreviewOptions()).checked()
    mouth = variant or make_variant(avatar, opts.variant)
    start = time.perf_counter()
    _ = avatar.frames  # decode (and check) the idle loop before ffmpeg starts
    plan = plan_frames(speech.weights, speech.duration_ms, avatar.fps, opts)
    audio = speech.audio.padded(plan.speech_start_s, plan.duration_s)
    with VideoWriter(out, avatar.size, avatar.fps, audio, opts.video) as writer:
        for i, frame in enumerate(render_frames(avatar, mouth, plan)):
            writer.write(frame)
            if progress is not None:
                progress(i + 1, plan.frames)
    return PreviewResult(Path(out), mouth.name, plan, time.perf_counter() - start)
