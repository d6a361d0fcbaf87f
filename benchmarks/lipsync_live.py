"""Live variant C on loopback: time from POST /speak to the first audio frame and the first
mouth patch at the client, patches late/on time, batch sizes, patch size.

    .venv/bin/python benchmarks/lipsync_live.py [--model M.onnx] [--provider cpu] [--runs 5]

Without --model it uses the tiny audio-driven test model (tests/roi_cases.py), which measures
the server's own overhead (mel, crop, blend, encode, pacing), not a model's speed.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

# the repository root instead of benchmarks/ (whose onnx.py would shadow the onnx package)
sys.path[0] = str(Path(__file__).resolve().parent.parent)

from avatarkit.build import build_avatar  # noqa: E402
from server import wire  # noqa: E402
from server.app import create_app  # noqa: E402
from server.config import ServerConfig  # noqa: E402
from server.state import LIPSYNC, METRICS  # noqa: E402
from tests.photo_cases import FAST, HERO  # noqa: E402
from tests.roi_cases import audio_driven_model  # noqa: E402
from tests.server_support import Received, RecordingVoice, is_end, receive_until, typed  # noqa: E402

TEXT = "Hello there. Nice to meet you."


async def main(args: argparse.Namespace) -> None:
    from aiohttp.test_utils import TestClient, TestServer

    tmp = Path(tempfile.mkdtemp(prefix="lipsync-bench-"))
    build_avatar(HERO, tmp / "avatars", FAST)
    model = args.model or audio_driven_model(tmp / "m.onnx")
    app = create_app(ServerConfig(avatars_dir=tmp / "avatars", model=model,
                                  onnx_provider=args.provider, client_session_rate=0,
                                  max_sessions_per_client=10_000),
                     provider_factory=RecordingVoice())
    audio, patch, sizes = [], [], []
    async with TestClient(TestServer(app)) as client:
        for _ in range(args.runs + 1):  # the first run warms up
            info = await (await client.post("/session-2d", json={
                "avatar_id": "hero", "lipsync": "onnx"})).json()
            ws = await client.ws_connect(f"/session-2d/{info['session_id']}/ws")
            rec = await receive_until(ws, Received(), typed("hello"))
            t = time.monotonic()
            await client.post(f"/session-2d/{info['session_id']}/speak", json={"text": TEXT})
            await receive_until(ws, rec, is_end(1))
            audio.append(min(at for at, m in rec.events if isinstance(m, wire.AudioFrame)) - t)
            patch.append(min(at for at, m in rec.events if isinstance(m, wire.PatchFrame)) - t)
            sizes += [len(m.image) for _, m in rec.events if isinstance(m, wire.PatchFrame)]
            await ws.close()
        stats = app[LIPSYNC].stats()
        late = dict(app[METRICS].patches)
    ms = [round(1000 * x, 1) for x in patch[1:]]
    print(f"model {Path(model).name} on {args.provider}; {args.runs} runs of {TEXT!r}")
    print(f"first audio after /speak: median {1000 * statistics.median(audio[1:]):.1f} ms")
    print(f"first patch after /speak: median {statistics.median(ms):.1f} ms (all: {ms})")
    print(f"patches: {late}; mean {statistics.mean(sizes):.0f} bytes")
    print(f"batches: {stats}")


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, default=None)
    p.add_argument("--provider", default="cpu")
    p.add_argument("--runs", type=int, default=5)
    asyncio.run(main(p.parse_args()))
