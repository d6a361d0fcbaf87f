"""Variant C live: mouth patches from a Wav2Lip-compatible ONNX model, streamed with the audio.

    speak -> provider chunks -> Producer (server/produce.py) -> PatchProducer.on_audio (no waiting)
          -> LiveFrames (16 kHz mel, per-frame windows as soon as final)   [CPU pool]
          -> face input of the idle frame under each patch (cached)        [CPU pool]
          -> InferenceBatcher: one worker per device, frames of every session batched
          -> mouth_patch (colour-matched RGBA in ROI coordinates) + PNG    [CPU pool]
          -> Session.push_patch: on the timeline at pts - send_ahead, like a viseme frame

One `LipsyncService` per application (created in `cleanup_ctx` when the server has a
model): the runner, its batcher, the CPU pool and a cache of avatars. One `PatchProducer`
per session that asked for `lipsync: "onnx"`: it follows the session's utterances, and a
barge-in cancels it (patches not yet rendered are never sent; those already on the timeline
are dropped with the rest of the utterance).

**Which idle frame a patch belongs to.** The model redraws the lower half of the face box
cut from one idle frame, and the patch is colour-matched against that frame. The server
picks the frame of the *session idle clock* at the patch's play time: the loop starts at
session creation, so the frame of a patch with `pts_ms` p of an utterance whose pts 0
plays at session time t0 is `round((t0 + p/1000 - created) * fps) mod frames` (`fps` and
`frames` of `track.json`). The index travels in the patch header. A client whose idle loop
runs on its own clock composites the patch through the track affine of the frame it is
showing, like an atlas sprite: the patch is in photo-ROI coordinates, so head motion is
taken out, and the frame-to-frame difference of the face under the mouth is small.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from avatarkit.errors import AvatarkitError
from avatarkit.roi import (
    BatcherOptions,
    InferenceBatcher,
    OnnxRunner,
    RoiAvatar,
    RunnerOptions,
    face_input,
    load_avatar,
    mouth_patch,
)
from avatarkit.roi.faces import crop_face
from avatarkit.roi.live import FrameWindow, LiveFrames
from avatarkit.roi.paste import PasteGeometry
from server import wire
from server.config import ServerConfig
from server.metrics import Metrics

if TYPE_CHECKING:
    from server.pacing import Utterance
    from server.session import Session

log = logging.getLogger("avatarkit.server")

#: Frames rendered together by one producer step: small, so the first patches of an
#: utterance are not held back by later ones (the batcher still merges steps and sessions).
STEP_FRAMES = 4
#: Producer steps of one session in flight at once (bounds memory when the model is slow).
MAX_STEPS_IN_FLIGHT = 8


def encode_image(rgba: np.ndarray, codec: str) -> bytes:
    """RGBA uint8 -> PNG (lossless, fast) or WebP (lossy with alpha, ~5x smaller, slower).

    Colour under fully transparent pixels is zeroed first: invisible, and it compresses.
    """
    bgra = cv2.cvtColor(rgba, cv2.COLOR_RGBA2BGRA)
    bgra[bgra[:, :, 3] == 0, :3] = 0
    if codec == "webp":
        ok, buf = cv2.imencode(".webp", bgra, [cv2.IMWRITE_WEBP_QUALITY, 90])
    else:
        ok, buf = cv2.imencode(".png", bgra, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:
        raise AvatarkitError(f"could not encode a mouth patch as {codec}")
    return buf.tobytes()


@dataclass
class LiveAvatar:
    """One avatar as the live ONNX path uses it: idle frames, geometry and a face cache."""

    avatar_id: str
    roi: RoiAvatar
    geometry: PasteGeometry
    #: Model face input per idle frame index (computed once, shared by every session).
    faces: dict[int, np.ndarray] = field(default_factory=dict)

    @property
    def fps(self) -> float:
        return self.roi.fps

    @property
    def frames(self) -> int:
        return len(self.roi.frames)

    def face(self, k: int) -> np.ndarray:
        """(6, S, S) model input of idle frame k (worker thread; races only redo work)."""
        cached = self.faces.get(k)
        if cached is None:
            size = self.geometry.size
            crop = crop_face(self.roi.frame(k), self.roi.box, self.roi.affine(k), size)
            cached = self.faces[k] = face_input(crop[:, :, ::-1])
        return cached

    def encode(self, k: int, patch_bgr: np.ndarray, codec: str) -> bytes:
        """The model's patch over idle frame k -> encoded RGBA in photo-ROI coordinates."""
        rgba = mouth_patch(self.roi.frame(k), patch_bgr, self.roi.affine(k), self.geometry)
        return encode_image(rgba, codec)


class LipsyncService:
    """The server's model: one runner + one batching inference worker, a CPU pool for the
    per-frame image work, and the avatars in use."""

    def __init__(self, config: ServerConfig, runner: OnnxRunner, metrics: Metrics) -> None:
        self.config = config
        self.runner = runner
        self.metrics = metrics
        self.batcher = InferenceBatcher(runner, BatcherOptions(
            max_frames=config.batch_max_frames, max_wait_ms=config.batch_max_wait_ms))
        self.executor = ThreadPoolExecutor(config.lipsync_threads,
                                           thread_name_prefix="lipsync")
        self._avatars: dict[str, asyncio.Future[LiveAvatar]] = {}
        self.producers: set[PatchProducer] = set()

    @classmethod
    async def open(cls, config: ServerConfig, metrics: Metrics) -> LipsyncService:
        """Load and check the model off the event loop; AvatarkitError if it does not fit."""
        assert config.model is not None
        options = RunnerOptions(provider=config.onnx_provider, max_batch=config.batch_max_frames)
        loop = asyncio.get_running_loop()
        runner = await loop.run_in_executor(None, OnnxRunner, Path(config.model), options)
        return cls(config, runner, metrics)

    def describe(self) -> str:
        return f"{self.runner.path.name} on {self.runner.provider} ({self.runner.size} px)"

    async def avatar(self, avatar_id: str, folder: Path | None) -> LiveAvatar:
        """The avatar's live data, loaded once (idle decode in a thread)."""
        fut = self._avatars.get(avatar_id)
        if fut is None or (fut.done() and fut.exception() is not None):
            if folder is None:
                raise AvatarkitError(f"no avatar {avatar_id!r} on this server")
            loop = asyncio.get_running_loop()
            fut = loop.run_in_executor(self.executor, self._load, avatar_id, folder)
        # least recently used last out: decoded loops are large (~250-320 MB at 1024 px);
        # sessions keep their own reference, so dropping one here only costs a re-decode
        self._avatars.pop(avatar_id, None)
        self._avatars[avatar_id] = fut  # type: ignore[assignment]
        while len(self._avatars) > self.config.lipsync_avatar_cache:
            del self._avatars[next(iter(self._avatars))]
        return await asyncio.shield(fut)

    def cached_avatars(self) -> list[str]:
        """Ids whose live data is in memory, least recently used first."""
        return list(self._avatars)

    def forget(self, avatar_id: str) -> None:
        """Drop an avatar's live data (its folder was deleted)."""
        self._avatars.pop(avatar_id, None)

    def _load(self, avatar_id: str, folder: Path) -> LiveAvatar:
        roi = load_avatar(folder)
        live = LiveAvatar(avatar_id, roi, roi.geometry(self.runner.size))
        for k in range(live.frames):  # ~0.5 ms each: the first patches should not wait
            live.face(k)
        return live

    def attach(self, session: Session, avatar: LiveAvatar) -> PatchProducer:
        producer = PatchProducer(self, session, avatar)
        self.producers.add(producer)
        return producer

    def stats(self) -> dict[str, float]:
        return self.batcher.stats()

    async def close(self) -> None:
        for p in list(self.producers):
            await p.close()
        await self.batcher.close()
        self.executor.shutdown(wait=False, cancel_futures=True)


class PatchProducer:
    """Renders one session's mouth patches as its utterances' audio arrives.

    The session calls `on_audio` / `on_end` from its producer (never waiting on this one),
    `cancel` on barge-in and `close` when it closes.
    """

    def __init__(self, service: LipsyncService, session: Session, avatar: LiveAvatar) -> None:
        self.service = service
        self.session = session
        self.avatar = avatar
        self.loop = asyncio.get_running_loop()
        #: Loop time of idle frame 0 of the session idle clock.
        self.epoch = self.loop.time()
        self.codec = service.config.patch_codec
        self._queue: asyncio.Queue[tuple[Utterance, bytes | None, int]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._steps: set[asyncio.Task[None]] = set()
        self._slots = asyncio.Semaphore(MAX_STEPS_IN_FLIGHT)
        self._of: dict[int, set[asyncio.Task[None]]] = {}  # utterance id -> its steps
        self._ending: dict[int, asyncio.Future[None]] = {}  # done when its last step is

    def hello_fields(self) -> dict[str, Any]:
        """What `hello` says about patches."""
        return {"lipsync": "onnx", "patch_fps": self.avatar.fps, "patch_codec": self.codec}

    # ---------------------------------------------------------------- session hooks
    def on_audio(self, u: Utterance, pcm: bytes, sample_rate: int) -> None:
        """A provider chunk of utterance `u` (its t0 is set)."""
        self._queue.put_nowait((u, pcm, sample_rate))
        if self._task is None or self._task.done():
            self._task = self.loop.create_task(self._run(), name=f"patches-{self.session.id}")

    def on_end(self, u: Utterance) -> None:
        """The provider is done with `u` (completed or failed): render its last frames."""
        if u.id in self._ending or self._task is None or self._task.done():
            return
        self._ending[u.id] = self.loop.create_future()
        self._queue.put_nowait((u, None, 0))

    async def drain(self, u: Utterance, deadline: float) -> None:
        """`on_end`, then wait until every patch of `u` is on the timeline or the loop time
        `deadline` (when its `utterance_end` is due) passes, whichever comes first: patches
        precede the end when they can, and never hold it back."""
        self.on_end(u)
        fut = self._ending.get(u.id)
        if fut is None:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(fut), max(0.0, deadline - self.loop.time()))

    def cancel(self) -> None:
        """Barge-in: stop rendering everything queued or in flight."""
        if self._task is not None:
            self._task.cancel()
            self._task = None
        for t in self._steps:
            t.cancel()
        self._steps.clear()
        self._of.clear()
        for fut in self._ending.values():
            if not fut.done():
                fut.set_result(None)
        self._ending.clear()
        self._queue = asyncio.Queue()
        self._slots = asyncio.Semaphore(MAX_STEPS_IN_FLIGHT)

    async def close(self) -> None:
        tasks = [t for t in (self._task, *self._steps) if t is not None]
        self.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        self.service.producers.discard(self)

    # ---------------------------------------------------------------- work
    async def _run(self) -> None:
        frames: LiveFrames | None = None
        current: Utterance | None = None
        pool = self.service.executor
        while True:
            u, pcm, rate = await self._queue.get()
            if u is not current:
                current, frames = u, None
            if u.ended:
                continue
            if pcm is None:
                windows = [] if frames is None else await self.loop.run_in_executor(
                    pool, frames.finish)
                frames = None
            else:
                if frames is None:
                    frames = LiveFrames(rate, self.avatar.fps)
                windows = await self.loop.run_in_executor(pool, frames.push_pcm16, pcm)
            mine = self._of.setdefault(u.id, set())
            for i in range(0, len(windows), STEP_FRAMES):
                slots = self._slots
                await slots.acquire()
                task = self.loop.create_task(self._step(u, windows[i:i + STEP_FRAMES]))
                self._steps.add(task)
                mine.add(task)
                task.add_done_callback(lambda t, s=slots, m=mine: self._done(t, s, m))
            if pcm is None:
                self.loop.create_task(self._mark_done(u.id, list(self._of.pop(u.id, ()))))

    async def _mark_done(self, uid: int, steps: list[asyncio.Task[None]]) -> None:
        if steps:
            await asyncio.wait(steps)
        fut = self._ending.pop(uid, None)
        if fut is not None and not fut.done():
            fut.set_result(None)

    def _done(self, task: asyncio.Task[None], slots: asyncio.Semaphore,
              mine: set[asyncio.Task[None]]) -> None:
        self._steps.discard(task)
        mine.discard(task)
        slots.release()
        if not task.cancelled() and task.exception() is not None:
            log.error("session %s: mouth patches failed: %s", self.session.id,
                      task.exception())

    def _idle_frame(self, u: Utterance, pts_ms: float) -> int:
        assert u.t0 is not None
        t = u.t0 + pts_ms / 1000.0 - self.epoch
        return int(np.floor(t * self.avatar.fps + 0.5)) % self.avatar.frames

    async def _step(self, u: Utterance, windows: list[FrameWindow]) -> None:
        """Render a few frames of `u` and put them on the session's timeline."""
        pool, av = self.service.executor, self.avatar
        idle = [self._idle_frame(u, w.pts_ms) for w in windows]
        if all(k in av.faces for k in idle):  # the usual case (prewarmed): a small copy
            faces = np.stack([av.faces[k] for k in idle])
        else:
            faces = await self.loop.run_in_executor(
                pool, lambda: np.stack([av.face(k) for k in idle]))
        mels = np.stack([w.mel for w in windows])[:, None]
        patches = await self.service.batcher.infer(mels, faces)
        m = self.service.metrics
        assert u.t0 is not None
        for k, patch, w in zip(idle, patches, windows, strict=True):  # each as soon as ready
            if u.ended:
                return
            data = await self.loop.run_in_executor(pool, _encode, av, k, patch, w, u.id,
                                                   self.codec)
            now = self.loop.time()
            if self.session.push_patch(u, w.pts_ms, data):
                # late: ready after its play time on the session clock; still sent, since a
                # client with a jitter buffer plays later than the server's clock assumes
                m.patches["late" if now > u.t0 + w.pts_ms / 1000.0 else "on_time"] += 1


def _encode(av: LiveAvatar, k: int, patch: np.ndarray, win: FrameWindow, uid: int,
            codec: str) -> bytes:
    """A patch -> the finished binary WebSocket payload (worker thread)."""
    roi = av.geometry.roi
    return wire.encode_patch(uid, win.pts_ms, win.index, k, roi.w, roi.h, codec,
                             av.encode(k, patch, codec))
