"""The cross-session batcher: concurrent callers get exactly their own frames, in batches."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from avatarkit.errors import AvatarkitError
from avatarkit.roi import BatcherOptions, InferenceBatcher, OnnxRunner, RunnerOptions
from tests.roi_cases import audio_driven_model


@pytest.fixture(scope="module")
def runner(tmp_path_factory):
    path = audio_driven_model(tmp_path_factory.mktemp("m") / "audio.onnx")
    return OnnxRunner(path, RunnerOptions(provider="cpu", intra_op_threads=1))


def _frames(seed: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return (rng.uniform(-4, 4, (n, 1, 80, 16)).astype(np.float32),
            rng.uniform(0, 1, (n, 6, 96, 96)).astype(np.float32))


async def test_concurrent_sessions_get_their_own_results(runner):
    sessions = {s: _frames(s, 4) for s in range(8)}
    singles = {s: np.stack([runner.run(m[i:i + 1], f[i:i + 1])[0] for i in range(4)])
               for s, (m, f) in sessions.items()}
    async with InferenceBatcher(runner, BatcherOptions(max_frames=16, max_wait_ms=30)) as b:

        async def session(s: int) -> np.ndarray:
            m, f = sessions[s]
            out = []
            for i in range(4):  # one frame at a time, like a live session at its frame rate
                out.append(await b.infer_one(m[i], f[i]))
                await asyncio.sleep(0.001 * (s % 3))
            return np.stack(out)

        results = await asyncio.gather(*(session(s) for s in sessions))
        stats = b.stats()
    for s, got in zip(sessions, results, strict=True):
        np.testing.assert_allclose(got, singles[s], atol=1e-6)
    assert stats["frames"] == 32
    assert stats["batches"] < 32 and stats["max_batch"] >= 4, stats  # batches really formed
    assert stats["max_batch"] <= 16


async def test_batch_is_cut_at_max_frames(runner):
    m, f = _frames(1, 10)
    async with InferenceBatcher(runner, BatcherOptions(max_frames=4, max_wait_ms=200)) as b:
        out = await b.infer(m, f)  # 10 frames: 4 + 4 right away, then 2 after the wait
        assert list(b.batch_sizes) == [4, 4, 2]
    np.testing.assert_allclose(out, runner.run(m, f), atol=1e-6)


async def test_lone_frame_runs_after_max_wait(runner):
    m, f = _frames(2, 1)
    loop = asyncio.get_running_loop()
    async with InferenceBatcher(runner, BatcherOptions(max_frames=32, max_wait_ms=20)) as b:
        t0 = loop.time()
        out = await b.infer_one(m[0], f[0])
        waited = loop.time() - t0
        assert list(b.batch_sizes) == [1]
    assert waited >= 0.019  # it did wait for company, then ran alone
    np.testing.assert_allclose(out, runner.run(m, f)[0], atol=1e-6)


async def test_bad_input_and_closed_batcher(runner):
    b = InferenceBatcher(runner)
    m, f = _frames(3, 2)
    with pytest.raises(AvatarkitError, match="face"):
        await b.infer(m, f[:, :3])
    await b.close()
    with pytest.raises(AvatarkitError, match="closed"):
        await b.infer(m, f)


async def test_close_fails_waiting_callers(runner):
    b = InferenceBatcher(runner, BatcherOptions(max_frames=64, max_wait_ms=5000))
    m, f = _frames(4, 2)
    task = asyncio.ensure_future(b.infer(m, f))
    await asyncio.sleep(0.05)
    await b.close()
    with pytest.raises(AvatarkitError, match="closed"):
        await task
