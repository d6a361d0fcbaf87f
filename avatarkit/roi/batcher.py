"""One inference worker per device, fed by every session: frames are batched across callers.

A GPU runs 32 frames in little more time than one, so a server with many live sessions should
never run them one by one. Callers `await batcher.infer(mels, faces)` from the event loop;
their frames join a shared queue; a collector task forms a batch as soon as `max_frames` are
waiting or the oldest has waited `max_wait_ms`, runs it on the batcher's own worker thread
(never on the event loop), and resolves each caller's future with its own patches. While a
batch runs, new frames queue up, so under load batches fill by themselves.
"""

from __future__ import annotations

import asyncio
import collections
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from avatarkit.errors import AvatarkitError
from avatarkit.roi.runner import OnnxRunner


@dataclass(frozen=True)
class BatcherOptions:
    """When a batch is cut."""

    max_frames: int = 32  # run as soon as this many frames wait (also the largest batch)
    max_wait_ms: float = 8.0  # or when the oldest waiting frame has waited this long

    def validate(self) -> None:
        if self.max_frames < 1 or self.max_wait_ms < 0:
            raise AvatarkitError("batcher needs max_frames >= 1 and max_wait_ms >= 0")


@dataclass
class _Item:
    mel: np.ndarray
    face: np.ndarray
    future: asyncio.Future
    queued_at: float


class InferenceBatcher:
    """Shared, batching front of one `OnnxRunner` (one per device). Use within one event loop;
    `async with InferenceBatcher(runner) as batcher:` or call `close()` when done."""

    def __init__(self, runner: OnnxRunner, options: BatcherOptions | None = None) -> None:
        self.runner = runner
        self.options = options or BatcherOptions()
        self.options.validate()
        self._pending: collections.deque[_Item] = collections.deque()
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="onnx-infer")
        self._closed = False
        self._running: list[_Item] = []  # the batch on the worker thread now
        self.batch_sizes: collections.deque[int] = collections.deque(maxlen=10000)
        self.frames_done = 0

    async def __aenter__(self) -> InferenceBatcher:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def infer(self, mels: np.ndarray, faces: np.ndarray) -> np.ndarray:
        """Patches [n,3,S,S] for n frames (mels [n,1,80,16], faces [n,6,S,S]); the frames may
        run in different batches, together with other callers' frames."""
        if self._closed:
            raise AvatarkitError("the inference batcher is closed")
        mels = np.asarray(mels, dtype=np.float32)
        faces = np.asarray(faces, dtype=np.float32)
        if mels.ndim == 3:
            mels = mels[:, None]
        s = self.runner.size
        if mels.shape[1:] != (1, 80, 16) or faces.shape[1:] != (6, s, s) or \
                len(mels) != len(faces):
            raise AvatarkitError(f"batcher inputs must be mel [n,1,80,16] and face [n,6,{s},{s}]"
                                 f"; got {list(mels.shape)} and {list(faces.shape)}")
        if len(mels) == 0:
            return np.zeros((0, 3, s, s), dtype=np.float32)
        loop = asyncio.get_running_loop()
        self._ensure_started(loop)
        futures = []
        now = loop.time()
        for m, f in zip(mels, faces, strict=True):
            fut = loop.create_future()
            self._pending.append(_Item(m, f, fut, now))
            futures.append(fut)
        assert self._wake is not None
        self._wake.set()
        return np.stack(await asyncio.gather(*futures))

    async def infer_one(self, mel: np.ndarray, face: np.ndarray) -> np.ndarray:
        """One frame: mel [1,80,16] or [80,16], face [6,S,S] -> patch [3,S,S]."""
        mel = np.asarray(mel).reshape(1, 1, 80, 16)
        return (await self.infer(mel, np.asarray(face)[None]))[0]

    def stats(self) -> dict[str, float]:
        sizes = list(self.batch_sizes)
        return {"batches": len(sizes), "frames": self.frames_done,
                "mean_batch": float(np.mean(sizes)) if sizes else 0.0,
                "max_batch": max(sizes, default=0)}

    def _ensure_started(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._task is None:
            self._wake = asyncio.Event()
            self._task = loop.create_task(self._collect(), name="onnx-batcher")

    async def _collect(self) -> None:
        loop = asyncio.get_running_loop()
        assert self._wake is not None
        limit = self.options.max_frames
        while True:
            while not self._pending:
                self._wake.clear()
                await self._wake.wait()
            deadline = self._pending[0].queued_at + self.options.max_wait_ms / 1000.0
            while len(self._pending) < limit:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), remaining)
                except TimeoutError:
                    break
            batch = [self._pending.popleft() for _ in range(min(limit, len(self._pending)))]
            batch = [it for it in batch if not it.future.done()]  # cancelled callers
            if not batch:
                continue
            mels = np.stack([it.mel for it in batch])
            faces = np.stack([it.face for it in batch])
            self._running = batch
            try:
                out = await loop.run_in_executor(self._worker, self.runner.run, mels, faces)
            except Exception as exc:  # every caller of this batch learns why
                self._running = []
                err = exc if isinstance(exc, AvatarkitError) else AvatarkitError(
                    f"inference failed: {exc}")
                for it in batch:
                    if not it.future.done():
                        it.future.set_exception(err)
                continue
            self._running = []  # (kept on cancellation: close() fails those callers)
            self.batch_sizes.append(len(batch))
            self.frames_done += len(batch)
            for it, patch in zip(batch, out, strict=True):
                if not it.future.done():
                    it.future.set_result(patch)

    async def close(self) -> None:
        """Stop the collector; frames still waiting fail with an AvatarkitError."""
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        for it in [*self._running, *self._pending]:
            if not it.future.done():
                it.future.set_exception(AvatarkitError("the inference batcher was closed"))
        self._pending.clear()
        self._running = []
        self._worker.shutdown(wait=False, cancel_futures=True)
