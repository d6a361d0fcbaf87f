"""Audio-in sessions on loopback: look-ahead and how many sessions one core holds.

    .venv/bin/python benchmarks/audio_live.py                       # both parts
    .venv/bin/python benchmarks/audio_live.py --part lookahead --seconds 20
    .venv/bin/python benchmarks/audio_live.py --part load --counts 2,4,6,8 --seconds 10

The server runs in its own process pinned to one CPU core (the load generator on another
when there is one); every session pushes real human speech (`../shared/speech-dev/*.wav`,
or espeak-ng speech when that folder is missing) over its WebSocket in 20 ms PCM frames at
real-time pace, as a voice pipeline does (turns of `--turn-s` seconds with 0.5 s between
them), and the same socket receives the audio back with
the visemes (provider `audio`, the shipped acoustic front end `avatarkit.listen`).

1. lookahead: one session. For each viseme frame at pts p, look-ahead = its arrival at the
   client minus the moment the client sent the 20 ms frame holding the audio at p: "audio
   in -> its visemes out", the delay the front end needs plus the server's work and pacing.
   The same for the audio itself (the server holds audio until its visemes are ready, so
   the two leave together). p50 / p95 / p99 / max. Target: <= 150 ms.
2. load: N such sessions at once. A count is held when the sessions do not delay each other:
   p99 look-ahead (visemes and audio) within 100 ms of one session's median, no errors, and
   the core not saturated (server CPU < 95 %). Reports server CPU (of the one core, worker
   processes included) and the largest count held. `--standin-ms 100` runs the same with a
   stand-in of that look-ahead and no recognition work instead of the front end: how many
   audio sessions the server itself paces on one core.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
import wave
from pathlib import Path

import aiohttp
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.serve import Server, _avatars, _pct, _session  # noqa: E402
from server import wire  # noqa: E402

SPEECH_DEV = ROOT.parent / "shared" / "speech-dev"
CHUNK_MS = 20
GAP_S = 0.5
WARMUP_S = 2.0
TARGET_MS = 150.0


def load_speech() -> tuple[bytes, int]:
    """PCM16 mono of real recordings (concatenated), and its rate."""
    wavs = sorted(SPEECH_DEV.glob("*.wav"))
    if not wavs:
        return _espeak_speech()
    parts, rate = [], 0
    for path in wavs:
        with wave.open(str(path)) as w:
            assert w.getsampwidth() == 2
            x = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
            if w.getnchannels() > 1:
                x = x.reshape(-1, w.getnchannels()).mean(axis=1).astype("<i2")
            rate = rate or w.getframerate()
            assert w.getframerate() == rate, "speech-dev recordings of one rate"
            parts.append(x.tobytes())
    return b"".join(parts), rate


def _espeak_speech() -> tuple[bytes, int]:
    from avatarkit.tts.espeak_voice import EspeakOptions, EspeakProvider

    voice = EspeakProvider(EspeakOptions())

    async def run() -> bytes:
        text = (ROOT / "benchmarks" / "corpus" / "en.txt").read_text()
        return b"".join([c.pcm async for c in voice.stream(text[:1500])])

    return asyncio.run(run()), voice.sample_rate


class Pusher:
    """One audio session: pushes speech in real time and records what comes back."""

    def __init__(self, http: aiohttp.ClientSession, url: str, pcm: bytes, rate: int,
                 offset_s: float = 0.0) -> None:
        self.http, self.url, self.rate = http, url, rate
        step = rate * CHUNK_MS // 1000 * 2
        start = int(offset_s * rate) * 2 % len(pcm)
        pcm = pcm[start:] + pcm[:start]  # sessions speak different parts at a time
        self.chunks = [pcm[i:i + step] for i in range(0, len(pcm) - step + 1, step)]
        self.sent: dict[tuple[int, int], float] = {}  # (utterance, chunk index) -> time
        self.visemes: list[tuple[int, float, float]] = []  # (utterance, pts, arrival)
        self.audio: list[tuple[int, float, float, float]] = []  # (utt, pts, ms, arrival)
        self.errors: list[str] = []

    async def run(self, stop: asyncio.Event, turn_s: float) -> None:
        sid = await _session(self.http, self.url, provider="audio", sample_rate=self.rate)
        async with self.http.ws_connect(f"{self.url}/session-2d/{sid}/ws",
                                        max_msg_size=0) as ws:
            reader = asyncio.create_task(self._read(ws))
            # a session is made before its first answer: the server starts its listener
            # worker then (a fresh server's first stream takes ~1 s: worker start + model)
            await asyncio.sleep(WARMUP_S)
            per_turn = int(turn_s * 1000 / CHUNK_MS)
            k, uid = 0, 0
            t_next = time.monotonic()
            try:
                while not stop.is_set():
                    uid += 1
                    await ws.send_str(json.dumps({"type": "audio_start"}))
                    for i in range(per_turn):
                        t_next += CHUNK_MS / 1000
                        await asyncio.sleep(max(0.0, t_next - time.monotonic()))
                        if stop.is_set():
                            break
                        self.sent[(uid, i)] = time.monotonic()
                        await ws.send_bytes(self.chunks[k % len(self.chunks)])
                        k += 1
                    await ws.send_str(json.dumps({"type": "audio_end"}))
                    t_next += GAP_S  # a pause between turns, as between a pipeline's answers
            finally:
                reader.cancel()

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for msg in ws:
            now = time.monotonic()
            if msg.type == aiohttp.WSMsgType.BINARY:
                f = wire.decode_audio(msg.data)
                self.audio.append((f.utterance_id, f.pts_ms, f.duration_ms, now))
            elif msg.type == aiohttp.WSMsgType.TEXT:
                data = json.loads(msg.data)
                if data["type"] == "viseme":
                    self.visemes.append((data["utterance_id"], data["pts_ms"], now))
                elif data["type"] == "error":
                    self.errors.append(data["code"])

    def lookahead(self, window: tuple[float, float]) -> tuple[list[float], list[float]]:
        """(viseme, audio) look-ahead in ms of what arrived within `window`."""
        def pushed(uid: int, pts: float) -> float | None:
            return self.sent.get((uid, int(pts // CHUNK_MS)))

        vis, aud = [], []
        for uid, pts, t in self.visemes:
            t_in = pushed(uid, pts)
            if t_in is not None and window[0] <= t <= window[1] and uid > 1:
                vis.append((t - t_in) * 1000.0)
        for uid, pts, ms, t in self.audio:
            t_in = pushed(uid, pts + ms - 1e-3)  # the frame's last sample
            if t_in is not None and window[0] <= t <= window[1] and uid > 1:
                aud.append((t - t_in) * 1000.0)
        return vis, aud

    def first_turn(self) -> float:
        """Look-ahead of the first viseme of the session's first turn, ms."""
        first = [(t, pts) for uid, pts, t in self.visemes if uid == 1]
        if not first or (1, 0) not in self.sent:
            return float("nan")
        return (first[0][0] - self.sent[(1, 0)]) * 1000.0


def run_server(port: int, avatars: str, standin_ms: float, workers: int = 1) -> None:
    """Entry point of the server subprocess; `standin_ms` > 0 replaces the front end by a
    stand-in with exactly that look-ahead and no recognition work (tests/fakes/listener.py),
    which leaves the server's own share of the delay and CPU."""
    from aiohttp import web

    from server.app import create_app
    from server.config import ServerConfig

    factory = None
    if standin_ms > 0:
        from tests.fakes.listener import LoudListeners

        factory = LoudListeners(standin_ms)
    config = ServerConfig(avatars_dir=Path(avatars), max_sessions=2000, blend_worker=False,
                          listen_workers=workers)
    web.run_app(create_app(config, listener_factory=factory), host="127.0.0.1", port=port,
                print=None, access_log=None)


class AudioServer(Server):
    module = "benchmarks.audio_live"

    def __init__(self, avatars: Path, standin_ms: float, workers: int = 1) -> None:
        self._start(avatars, standin_ms, workers)


def _pin(pid: int, cpu: int) -> None:
    if hasattr(os, "sched_setaffinity") and cpu < (os.cpu_count() or 1):
        os.sched_setaffinity(pid, {cpu})


async def measure(n: int, seconds: float, pcm: bytes, rate: int, turn_s: float,
                  standin_ms: float = 0.0, workers: int = 1,
                  ) -> tuple[list[float], list[float], float, list[str]]:
    server = AudioServer(_avatars(), standin_ms, workers)
    try:
        _pin(server.proc.pid, 0)  # threads the server starts later inherit it
        _pin(0, 1)
        conn = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=conn) as http:
            await server.wait(http)
            stop = asyncio.Event()
            total_s = len(pcm) / 2 / rate
            pushers = [Pusher(http, server.url, pcm, rate, offset_s=i * total_s / max(1, n))
                       for i in range(n)]
            tasks = [asyncio.create_task(p.run(stop, turn_s)) for p in pushers]
            # settle: warm-up and each session's first turn (reported apart; the figures are
            # of the turns after it)
            await asyncio.sleep(WARMUP_S + turn_s + 1.0)
            t0, c0 = time.monotonic(), server.cpu()
            await asyncio.sleep(seconds)
            t1, c1 = time.monotonic(), server.cpu()
            stop.set()
            await asyncio.sleep(0.5)
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        vis = [x for p in pushers for x in p.lookahead((t0, t1))[0]]
        aud = [x for p in pushers for x in p.lookahead((t0, t1))[1]]
        errors = [e for p in pushers for e in p.errors]
        if n == 1:
            print(f"(first turn, {WARMUP_S:g} s after the session was made: "
                  f"{pushers[0].first_turn():.0f} ms to its first viseme)")
        return vis, aud, 100.0 * (c1 - c0) / (t1 - t0), errors
    finally:
        server.stop()


def _row(values: list[float]) -> str:
    return " / ".join(f"{_pct(values, q):.0f}" for q in (50, 95, 99)) + \
        f" / {max(values) if values else float('nan'):.0f}"


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--part", action="append", choices=["lookahead", "load"])
    ap.add_argument("--counts", default="1,2,4,6,8,10,12")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--turn-s", type=float, default=4.0, help="audio per pushed turn")
    ap.add_argument("--workers", type=int, default=1,
                    help="listener worker processes of the server (all on the one core)")
    ap.add_argument("--standin-ms", type=float, default=0.0,
                    help="load part: a stand-in listener of this look-ahead (0: the front end)")
    args = ap.parse_args()
    parts = args.part or ["lookahead", "load"]
    pcm, rate = load_speech()
    src = "speech-dev" if SPEECH_DEV.is_dir() else "espeak-ng"
    print(f"speech: {len(pcm) / 2 / rate:.1f} s at {rate} Hz ({src}), pushed in {CHUNK_MS} ms "
          f"frames at real-time pace; server pinned to 1 core (machine: {os.cpu_count()})")
    if "lookahead" in parts:
        print("\n## Look-ahead, one session (ms: p50 / p95 / p99 / max)")
        print("| listener | audio in -> its visemes out | audio in -> same audio out | "
              "server CPU % of 1 core |")
        print("|---|---|---|---|")
        for standin, name in ((0.0, "avatarkit.listen (shipped)"),
                              (100.0, "stand-in, 100 ms look-ahead (server's share)")):
            vis, aud, cpu, errors = await measure(1, args.seconds, pcm, rate, args.turn_s,
                                                  standin)
            print(f"| {name} | {_row(vis)} | {_row(aud)} | {cpu:.0f} |"
                  + (f" errors: {errors}" if errors else ""), flush=True)
    if "load" in parts:
        what = (f"stand-in listener, {args.standin_ms:g} ms look-ahead" if args.standin_ms
                else "avatarkit.listen")
        print(f"\n## Audio-driven sessions on one core ({what}, {args.workers} listener "
              f"worker(s); {args.seconds:g} s measured per step)")
        print("| sessions | viseme look-ahead p50 / p95 / p99 / max ms | audio p99 ms | "
              "server CPU % of 1 core | held |")
        print("|---|---|---|---|---|")
        best, base = 0, None
        for n in [int(x) for x in args.counts.split(",")]:
            vis, aud, cpu, errors = await measure(n, args.seconds, pcm, rate, args.turn_s,
                                                  args.standin_ms, args.workers)
            if base is None:
                base = _pct(vis, 50)
            held = bool(vis) and _pct(vis, 99) <= base + 100 and \
                _pct(aud, 99) <= base + 100 and not errors and cpu < 95
            print(f"| {n} | {_row(vis)} | {_pct(aud, 99):.0f} | {cpu:.0f} | "
                  f"{'yes' if held else 'no'} |", flush=True)
            if held:
                best = n
            elif n > best + 2:
                break
        print(f"\nSessions one core holds (p99 look-ahead <= {base + 100:.0f} ms, one session's "
              f"median + 100): **{best}**")


if __name__ == "__main__":
    asyncio.run(main())
