"""Live-server figures on loopback, with the server in its own process (CPU separable).

    .venv/bin/python benchmarks/serve.py                    # all three parts
    .venv/bin/python benchmarks/serve.py --part latency --part eleven --part load
    .venv/bin/python benchmarks/serve.py --counts 50,100,200,300 --seconds 8

1. latency: POST /speak -> first audio frame and first viseme at the client (embedded
   voice), p50/p99 over repeated short utterances (each stopped after its first events).
2. eleven: server-added delay per ElevenLabs chunk, with the fake service (tests/fakes) in
   this process sending chunks without delay: arrival at the client of the audio frame that
   starts a chunk minus the moment the fake sent that chunk (same clock). The server runs
   unpaced here (send-ahead 100 s), so this is processing delay only.
3. load: N sessions speaking continuously at real-time pace (one utterance always queued),
   one client each. Lateness of an event = arrival - when the session clock says it is due
   (first audio arrival + pts - send_ahead, utterances back to back). Reports p50/p99
   lateness, the headroom before play time (send-ahead - p99 lateness), server CPU (with its
   child processes: the blend worker) in all and per session (ms of CPU per second of one
   session: what capacity is made of, and less swayed than lateness by other work on the
   machine), load-generator CPU, and the largest N with p99 < 20 ms, for each `--workers`
   count (default 1,2: `avatarkit serve --workers N`). "server p99 late ms" is the bucket of
   the server's own send-lateness histogram (/metrics, all workers, over the measured
   window) that holds its p99: when it wrote each event against when it was due, without
   the load generator's delays. The load generator keeps its records in arrays and freezes
   its connections out of its collector's reach while measuring: its own full GC passes
   (40-250 ms at 750-1000 clients) otherwise showed up as lateness.
4. relay: the same with ElevenLabs sessions: a fake ElevenLabs (tests/fakes) in a process of
   its own on loopback streams the audio, so the server only relays and paces it (no
   synthesis in the server); its CPU is reported too. Counts from --relay-counts.

    .venv/bin/python benchmarks/serve.py --part load --part relay --workers 1,2

Diagnostics (environment, single-process server): BENCH_GC=FILE writes the server's GC
passes per generation (count, durations, objects freed); BENCH_GC_GARBAGE=SECONDS prints,
that long after the start, what a full pass would free (the cyclic garbage, by type, with
the frames and exceptions in it); BENCH_DEBUG=1 prints the server's lateness histogram and
the load generator's full GC passes per step; BENCH_PROFILE=FILE writes cProfile stats.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import socket
import struct
import subprocess
import sys
import tempfile
import time
from array import array
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SPEECH = ("The quick brown fox jumps over the lazy dog, and then it runs far away "
          "into the quiet green forest.")
SEND_AHEAD_MS = 200.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q / 100 * (len(s) - 1))))]


# ---------------------------------------------------------------------- the server process


def run_server(port: int, avatars: str, extra: dict[str, Any], workers: int = 1) -> None:
    """Entry point of the server subprocess (with workers > 1: the front of N workers)."""
    from aiohttp import web

    import avatarkit.visemes  # noqa: F401  (import order)
    from server.app import create_app
    from server.config import ServerConfig

    # one load generator plays hundreds of clients from one address, and the latency part
    # speaks and stops as fast as it can: no per-client or per-session rate limits
    config = ServerConfig(avatars_dir=Path(avatars), max_sessions=2000, client_session_rate=0,
                          max_sessions_per_client=2000, session_speak_rate=0, **extra)
    if workers > 1:
        asyncio.run(_run_front(config, port, workers))
        return
    if os.environ.get("BENCH_SWITCH"):
        sys.setswitchinterval(float(os.environ["BENCH_SWITCH"]))
    profile = os.environ.get("BENCH_PROFILE")  # write cProfile stats of the server here
    if profile:
        import cProfile

        prof = cProfile.Profile()
        prof.enable()
    if os.environ.get("BENCH_GC_GARBAGE"):
        import threading

        threading.Thread(target=_garbage_census, args=(float(os.environ["BENCH_GC_GARBAGE"]),),
                         daemon=True).start()
    gc_log = os.environ.get("BENCH_GC")  # write cyclic-GC pass durations of the server here
    if gc_log:
        passes: list[tuple[int, float, int]] = []
        _time_gc_passes(passes, _print_gc_types if os.environ.get("BENCH_GC_TYPES") else None)
    web.run_app(create_app(config), host="127.0.0.1", port=port, print=None,
                access_log=None)
    if profile:
        prof.disable()
        prof.dump_stats(profile)
    if gc_log:
        lines = []
        for gen in range(3):
            ms = sorted(d for g, d, _ in passes if g == gen)
            if ms:
                freed = sum(c for g, _, c in passes if g == gen)
                lines.append(f"gen{gen}: {len(ms)} passes, total {sum(ms):.0f} ms, "
                             f"p50 {_pct(ms, 50):.2f} p99 {_pct(ms, 99):.2f} max {ms[-1]:.2f}, "
                             f"{freed} objects freed")
        Path(gc_log).write_text("\n".join(lines) + "\n")


def _time_gc_passes(passes: list[tuple[int, float, int]],
                    before_full: Any = None) -> None:
    """Append (generation, ms, objects freed) of every collector pass of this process to
    `passes`; call `before_full()` as each full pass starts."""
    started = [0.0]

    def on_gc(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            if info["generation"] == 2 and before_full is not None:
                before_full()
            started[0] = time.perf_counter()
        else:
            passes.append((info["generation"], (time.perf_counter() - started[0]) * 1000,
                           info["collected"]))

    gc.callbacks.append(on_gc)


def _print_gc_types() -> None:
    """What a full pass is about to scan, by type (BENCH_GC_TYPES)."""
    from collections import Counter

    objs = gc.get_objects()
    top = Counter(type(o).__name__ for o in objs).most_common(12)
    print("gen2 pass over", len(objs), top, flush=True)


def _garbage_census(after_s: float) -> None:
    """`after_s` into the run, print what a full GC pass frees (the cyclic garbage), by type,
    with the frames and exceptions in it: what makes full passes necessary. (It runs one
    such pass itself, which BENCH_GC counts.)"""
    from collections import Counter

    time.sleep(after_s)
    gc.set_debug(gc.DEBUG_SAVEALL)
    gc.collect()
    try:
        top = Counter(type(o).__qualname__ for o in gc.garbage).most_common(25)
        print("cyclic garbage:", len(gc.garbage), top, flush=True)
        frames = Counter(f"{o.f_code.co_filename.split('/')[-1]}:{o.f_code.co_name}"
                         for o in gc.garbage if type(o).__name__ == "frame")
        print("frames:", frames.most_common(12), flush=True)
        excs = Counter(type(o).__name__ for o in gc.garbage if isinstance(o, BaseException))
        print("exceptions:", excs.most_common(8), flush=True)
    finally:
        gc.garbage.clear()
        gc.set_debug(0)


async def _run_front(config: Any, port: int, workers: int) -> None:
    import signal

    from server.front import running_front

    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    with running_front(config, "127.0.0.1", port, workers) as front:
        await front.serve(stop)


def run_fake() -> None:
    """Entry point of the fake ElevenLabs subprocess: prints its base URLs, serves forever."""
    from tests.fakes.elevenlabs import FakeElevenLabs

    async def serve() -> None:
        # the same few messages for every stream, serialised once: the fake shares the cores
        fake = await FakeElevenLabs(chunk_delay_s=0.0, cache_messages=True).start()
        print(json.dumps({"elevenlabs_api_key": fake.api_key,
                          "elevenlabs_ws_base_url": fake.ws_base_url,
                          "elevenlabs_http_base_url": fake.http_base_url}), flush=True)
        while True:
            await asyncio.sleep(5)
            fake.ws_sessions.clear()  # the fake records every stream; not needed here
            fake.http_requests.clear()

    asyncio.run(serve())


class FakeService:
    """The fake ElevenLabs in its own process (its CPU is neither server's nor load gen's)."""

    def __init__(self) -> None:
        code = (f"import sys; sys.path.insert(0, {str(ROOT)!r}); "
                "from benchmarks.serve import run_fake; run_fake()")
        self.proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                                     text=True)
        self.settings: dict[str, str] = json.loads(self.proc.stdout.readline())

    def cpu(self) -> float:
        return _cpu_s(self.proc.pid)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


class Server:
    """A server in its own process: `module.run_server(port, avatars, *args)`."""

    module = "benchmarks.serve"

    def __init__(self, avatars: Path, workers: int = 1, **extra: Any) -> None:
        self._start(avatars, extra, workers)

    def _start(self, avatars: Path, *args: Any) -> None:
        self.port = _free_port()
        call = ", ".join(repr(a) for a in (self.port, str(avatars), *args))
        code = (f"import sys; sys.path.insert(0, {str(ROOT)!r}); "
                f"from {self.module} import run_server; run_server({call})")
        self.proc = subprocess.Popen([sys.executable, "-c", code])
        self.url = f"http://127.0.0.1:{self.port}"

    async def wait(self, http: aiohttp.ClientSession) -> None:
        for _ in range(300):
            try:
                async with http.get(self.url + "/health") as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
        raise RuntimeError("server did not start")

    def cpu(self) -> float:
        """CPU seconds of the server and every process below it (workers, blend worker)."""
        parents: dict[int, int] = {}
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                parents[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                pass  # a process that ended meanwhile
        tree, frontier = {self.proc.pid}, {self.proc.pid}
        while frontier:
            frontier = {p for p, pp in parents.items() if pp in frontier} - tree
            tree |= frontier
        total = 0.0
        for pid in tree:
            try:
                total += _cpu_s(pid)
            except (OSError, ValueError, IndexError):
                pass
        return total

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def _avatars() -> Path:
    root = Path(tempfile.mkdtemp(prefix="bench-avatars-"))
    (root / "hero").mkdir()
    (root / "hero" / "avatar.json").write_text(json.dumps({"files": [], "roi": None}))
    return root


async def _session(http: aiohttp.ClientSession, url: str, **body: Any) -> str:
    async with http.post(url + "/session-2d", json={"avatar_id": "hero", **body}) as r:
        data = await r.json()
        if r.status != 200:
            raise RuntimeError(data)
        return data["session_id"]


# ---------------------------------------------------------------------- 1. latency


async def part_latency(n: int) -> None:
    server = Server(_avatars())
    try:
        async with aiohttp.ClientSession() as http:
            await server.wait(http)
            sid = await _session(http, server.url)
            ws = await http.ws_connect(f"{server.url}/session-2d/{sid}/ws")
            await ws.receive()  # hello
            audio, vis = [], []
            for i in range(n + 3):
                t0 = time.perf_counter()
                async with http.post(f"{server.url}/session-2d/{sid}/speak",
                                     json={"text": f"Hello there, number {i}."}) as r:
                    uid = (await r.json())["utterance_id"]
                ta = tv = None
                while ta is None or tv is None:
                    msg = await ws.receive()
                    now = time.perf_counter()
                    if msg.type == aiohttp.WSMsgType.BINARY and ta is None:
                        ta = now
                    elif msg.type == aiohttp.WSMsgType.TEXT and tv is None and \
                            msg.data.startswith('{"type":"viseme"'):
                        tv = now
                if i >= 3:  # warm-up excluded
                    audio.append((ta - t0) * 1000)
                    vis.append((tv - t0) * 1000)
                await http.post(f"{server.url}/session-2d/{sid}/stop")
                while True:
                    msg = await ws.receive()
                    if msg.type == aiohttp.WSMsgType.TEXT and \
                            f'"type":"utterance_end","utterance_id":{uid}' in msg.data:
                        break
            print(f"\n## /speak -> first event at the client (embedded voice, {n} utterances)")
            print("| event | p50 ms | p99 ms | max ms |\n|---|---|---|---|")
            for name, v in (("first audio frame", audio), ("first viseme", vis)):
                print(f"| {name} | {_pct(v, 50):.1f} | {_pct(v, 99):.1f} | {max(v):.1f} |")
    finally:
        server.stop()


# ---------------------------------------------------------------------- 2. ElevenLabs


async def part_eleven(n_utt: int) -> None:
    from server.wire import decode_audio
    from tests.fakes.elevenlabs import FakeElevenLabs

    class TimedFake(FakeElevenLabs):
        """Records when each chunk leaves the fake and where its audio starts."""

        def __init__(self, **kw: Any) -> None:
            super().__init__(**kw)
            self.sent: list[tuple[float, float]] = []

        def _messages(self, index, chunk, offset_ms, *, http):  # noqa: ANN001, ANN202
            pts = len(self.audio) / 2 / 16000 * 1000.0
            self.sent.append((time.monotonic(), pts))
            return super()._messages(index, chunk, offset_ms, http=http)

    fake = await TimedFake(chunk_delay_s=0.0).start()
    server = Server(_avatars(), elevenlabs_api_key=fake.api_key,
                    elevenlabs_ws_base_url=fake.ws_base_url,
                    elevenlabs_http_base_url=fake.http_base_url, send_ahead_ms=100_000.0)
    delays: list[float] = []
    firsts: list[float] = []
    chunks = 0
    try:
        async with aiohttp.ClientSession() as http:
            await server.wait(http)
            sid = await _session(http, server.url, provider="elevenlabs")
            ws = await http.ws_connect(f"{server.url}/session-2d/{sid}/ws")
            await ws.receive()
            for i in range(n_utt + 1):
                fake.sent.clear()
                arrivals: dict[float, float] = {}
                async with http.post(f"{server.url}/session-2d/{sid}/speak",
                                     json={"text": SPEECH}) as r:
                    uid = (await r.json())["utterance_id"]
                while True:
                    msg = await ws.receive()
                    now = time.monotonic()
                    if msg.type == aiohttp.WSMsgType.BINARY:
                        f = decode_audio(msg.data)
                        arrivals.setdefault(round(f.pts_ms, 3), now)
                    elif f'"type":"utterance_end","utterance_id":{uid}' in msg.data:
                        break
                if i == 0:
                    continue  # warm-up: G2P caches, connections
                for k, (sent_at, pts) in enumerate(fake.sent):
                    got = arrivals.get(round(pts, 3))
                    if got is not None:
                        delays.append((got - sent_at) * 1000)
                        chunks += 1
                        if k == 0:
                            firsts.append((got - sent_at) * 1000)
        print(f"\n## Server-added delay per ElevenLabs chunk (fake, zero delay, {n_utt} "
              f"utterances, {chunks} chunks matched)")
        print("| chunks | p50 ms | p90 ms | p99 ms | max ms |\n|---|---|---|---|---|")
        for name, v in (("every chunk (all sent at once)", delays),
                        ("first chunk of an utterance", firsts)):
            print(f"| {name} | {_pct(v, 50):.2f} | {_pct(v, 90):.2f} | {_pct(v, 99):.2f} | "
                  f"{max(v):.2f} |")
    finally:
        server.stop()
        await fake.close()


# ---------------------------------------------------------------------- 3. load


VISEME_HEAD = '{"type":"viseme","utterance_id":'


def viseme_time(text: str) -> tuple[int, float]:
    """(utterance_id, pts_ms) of a viseme message, read off its fixed head (server/wire.py
    `encode_viseme` writes the fields in this order) instead of parsing the whole JSON: the
    load generator shares the cores with the server it measures."""
    _, uid, pts, _ = text.split(",", 3)
    return int(uid[15:]), float(pts[9:])


class LoadClient:
    """One session, one WebSocket, always one utterance queued; records event arrivals."""

    def __init__(self, http: aiohttp.ClientSession, url: str, **session: Any) -> None:
        self.http, self.url, self.session = http, url, session
        # arrival, utterance id, pts of each event: in arrays, not tuples, so that the
        # ~40k events a second of a thousand clients give the load generator's own garbage
        # collector nothing to scan (its full passes delay the arrivals it measures)
        self.arrivals, self.uids, self.pts = array("d"), array("q"), array("d")
        self.audio = array("b")  # 1: an audio frame (never sent ahead in a bundle)
        self.durations: dict[int, float] = {}
        self.first: float | None = None
        self.record = False

    async def run(self, stop: asyncio.Event) -> None:
        sid = await _session(self.http, self.url, **self.session)
        ws = await self.http.ws_connect(f"{self.url}/session-2d/{sid}/ws")
        await ws.receive()
        for _ in range(2):
            await ws.send_str(json.dumps({"type": "speak", "text": SPEECH}))
        uid_of = struct.Struct("<I").unpack_from
        pts_of = struct.Struct("<d").unpack_from
        loads = json.loads
        while not stop.is_set():
            msg = await ws.receive()
            now = time.monotonic()
            if msg.type == aiohttp.WSMsgType.BINARY:
                uid, pts = uid_of(msg.data, 8)[0], pts_of(msg.data, 16)[0]
                if self.first is None:
                    self.first = now
                self.arrivals.append(now)
                self.uids.append(uid)
                self.pts.append(pts)
                self.audio.append(1)
            elif msg.type == aiohttp.WSMsgType.TEXT:
                d = msg.data
                if d.startswith(VISEME_HEAD):
                    uid, pts = viseme_time(d)
                    self.arrivals.append(now)
                    self.uids.append(uid)
                    self.pts.append(pts)
                    self.audio.append(0)
                elif d.startswith('{"type":"utterance_end"'):
                    m = loads(d)
                    self.durations[m["utterance_id"]] = m["pts_ms"]
                    await ws.send_str(json.dumps({"type": "speak", "text": SPEECH}))
            else:
                break
        await ws.close()

    def lateness(self, window: tuple[float, float], early_ms: float) -> list[float]:
        """Arrival minus due time, ms. Due = session clock origin + (utterance offset + pts -
        send_ahead); the origin is fitted on the audio frames as the earliest arrival
        relative to its nominal time plus `early_ms` (the server's write window: the pacer
        sends events up to that early; viseme frames bundled behind an earlier one leave
        earlier still, server/events.bundle_visemes), so a late first frame does not make
        everything after it look early."""
        if self.first is None:
            return []
        offsets, acc = {}, 0.0
        for uid in range(1, max(self.durations, default=0) + 2):
            offsets[uid] = acc
            acc += self.durations.get(uid, 0.0)
        nominal = [(a, max(0.0, offsets[u] + p - SEND_AHEAD_MS) / 1000.0, audio)
                   for a, u, p, audio in zip(self.arrivals, self.uids, self.pts, self.audio,
                                             strict=True)
                   if u in offsets]
        origin = min(a - n for a, n, audio in nominal if audio) + early_ms / 1000.0
        return [(a - origin - n) * 1000.0 for a, n, _ in nominal
                if window[0] <= a <= window[1]]


async def part_load(counts: list[int], seconds: float, tick_ms: float, window_ms: float,
                    fps: float, workers: list[int], relay: bool = False) -> None:
    voice = ("ElevenLabs relayed from a fake on loopback (its own process), no synthesis in "
             "the server" if relay else "embedded voice")
    print(f"\n## Concurrent sessions at real-time pace ({seconds:.0f} s measured per step, "
          f"one client each, {voice}, {fps:g} viseme frames/s, pacer tick {tick_ms:g} "
          f"ms, write window {window_ms:g} ms, server in its own process)")
    print("| workers | sessions | events/s | p50 late ms | p99 late ms | server p99 late ms | "
          "p1 headroom ms | server CPU % | server CPU ms per session-s | load-gen CPU % | "
          "fake CPU % |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    best: dict[int, int] = {}
    fake = FakeService() if relay else None
    extra: dict[str, Any] = {"send_ahead_ms": SEND_AHEAD_MS, "tick_ms": tick_ms,
                             "write_window_ms": window_ms,
                             "viseme_fps": fps}
    if fake is not None:
        extra.update(fake.settings, max_upstream=0)  # no cap on concurrent upstream streams
    try:
        for w in workers:
            best[w] = 0
            for n in counts:
                p99 = await _load_step(n, w, seconds, window_ms, extra, fake)
                if p99 < 20.0:
                    best[w] = max(best[w], n)
    finally:
        if fake is not None:
            fake.stop()
    for w, n in best.items():
        print(f"\nLargest count with p99 lateness < 20 ms, --workers {w}: **{n}** "
              f"(machine: {os.cpu_count()} cores, shared)")


async def _lateness_buckets(http: aiohttp.ClientSession, url: str) -> dict[str, int]:
    """The server's own send-lateness histogram (all workers): cumulative count per bucket."""
    from tests.server_support import parse_prometheus

    async with http.get(url + "/metrics") as r:
        samples = parse_prometheus(await r.text())
    head = 'avatarkit_send_lateness_seconds_bucket{le="'
    return {key[len(head):-2]: int(value) for key, value in samples.items()
            if key.startswith(head)}


def _bucket_p99(before: dict[str, int], after: dict[str, int]) -> str:
    """p99 of the server's write lateness between two histogram snapshots, as the bucket
    it falls in ("<= 20" ms): when the server wrote each event against when it was due,
    without the load generator's own delays (it shares the cores)."""
    counts = {le: n - before.get(le, 0) for le, n in after.items()}
    total = counts.get("+Inf", 0)
    if not total:
        return "-"
    for le, n in counts.items():
        if n >= 0.99 * total:
            return "> 1000" if le == "+Inf" else f"<= {float(le) * 1000:g}"
    return "-"


#: The load generator's own collector passes (generation, ms, objects freed): its full
#: passes delay the arrivals it measures.
gc_passes: list[tuple[int, float, int]] = []


async def _load_step(n: int, workers: int, seconds: float, window_ms: float,
                     extra: dict[str, Any], fake: FakeService | None) -> float:
    """One row of the load table: n sessions on a fresh server; returns p99 lateness."""
    server = Server(_avatars(), workers=workers, **extra)
    session = {"provider": "elevenlabs"} if fake is not None else {}
    try:
        conn = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=conn) as http:
            await server.wait(http)
            stop = asyncio.Event()
            clients = [LoadClient(http, server.url, **session) for _ in range(n)]
            tasks = []
            for c in clients:  # stagger starts over ~1 s (2 s for a thousand)
                tasks.append(asyncio.create_task(c.run(stop)))
                await asyncio.sleep(max(1.0, n / 500) / n)
            await asyncio.sleep(2.0)  # settle
            # the clients' connections live through the step: out of the load generator's
            # collector's reach (as the server does with its own long-lived objects)
            gc.freeze()
            try:
                f0 = fake.cpu() if fake is not None else 0.0
                h0 = await _lateness_buckets(http, server.url)
                gc_passes.clear()
                t0, c0, g0 = time.monotonic(), server.cpu(), time.process_time()
                await asyncio.sleep(seconds)
                t1, c1, g1 = time.monotonic(), server.cpu(), time.process_time()
                f1 = fake.cpu() if fake is not None else 0.0
                h1 = await _lateness_buckets(http, server.url)
                own_gc = list(gc_passes)
            finally:
                gc.unfreeze()
            stop.set()
            late = [x for c in clients for x in c.lateness((t0, t1), window_ms)]
            errors = [t.exception() for t in tasks
                      if t.done() and not t.cancelled() and t.exception() is not None]
            failed = len(errors)
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        wall = t1 - t0
        p99 = _pct(late, 99)
        silent = sum(c.first is None for c in clients)
        if failed or silent:  # a session that never spoke would hide in the percentiles
            p99 = float("inf")
        if os.environ.get("BENCH_DEBUG"):
            print("p90", _pct(late, 90), "p99.9", _pct(late, 99.9),
                  ">20ms", sum(x > 20 for x in late) / max(1, len(late)),
                  "server writes at most this late (s), cumulative:",
                  {le: n1 - h0.get(le, 0) for le, n1 in h1.items()},
                  "load generator full GC passes (ms):",
                  [round(ms, 1) for gen, ms, _ in own_gc if gen == 2])
        # headroom: how long before its play time an event arrived (send-ahead - lateness)
        print(f"| {workers} | {n} | {len(late) / wall:.0f} | {_pct(late, 50):.1f} | {p99:.1f} | "
              f"{_bucket_p99(h0, h1)} | "
              f"{SEND_AHEAD_MS - p99:.0f} | {100 * (c1 - c0) / wall:.0f} | "
              f"{1000 * (c1 - c0) / wall / n:.2f} | {100 * (g1 - g0) / wall:.0f} | "
              + (f"{100 * (f1 - f0) / wall:.0f} |" if fake is not None else "- |")
              + (f" {failed} clients failed ({errors[0]!r:.120})" if failed else "")
              + (f" {silent} got no audio" if silent else ""),
              flush=True)
        return p99
    finally:
        server.stop()


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    _time_gc_passes(gc_passes)
    ap.add_argument("--part", action="append", choices=["latency", "eleven", "load", "relay"])
    ap.add_argument("--n", type=int, default=50, help="utterances for the latency part")
    ap.add_argument("--counts", default="25,50,100,150,200,250,300")
    ap.add_argument("--relay-counts", default="500,750,1000,1250")
    ap.add_argument("--workers", default="1,2", help="server workers to compare (load, relay)")
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--tick-ms", type=float, default=None,
                    help="pacer tick of the server (default: the server's default)")
    ap.add_argument("--window-ms", type=float, default=None,
                    help="write window of the server (default: the server's default, at "
                         "least the tick)")
    ap.add_argument("--fps", type=float, default=None,
                    help="viseme frames per second (default: the server's default)")
    args = ap.parse_args()
    parts = args.part or ["latency", "eleven", "load"]
    if "latency" in parts:
        await part_latency(args.n)
    if "eleven" in parts:
        await part_eleven(10)
    from server.config import ServerConfig

    tick = args.tick_ms or ServerConfig().tick_ms
    window = max(tick, args.window_ms or ServerConfig().write_window_ms)
    fps = args.fps or ServerConfig().viseme_fps
    workers = [int(x) for x in args.workers.split(",")]
    if "load" in parts:
        await part_load([int(x) for x in args.counts.split(",")], args.seconds, tick, window,
                        fps, workers)
    if "relay" in parts:
        await part_load([int(x) for x in args.relay_counts.split(",")], args.seconds, tick,
                        window, fps, workers, relay=True)


if __name__ == "__main__":
    asyncio.run(main())
