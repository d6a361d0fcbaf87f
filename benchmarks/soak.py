"""Soak: many session create / connect / speak / disconnect cycles against one server, some
ending in an abrupt socket drop mid-utterance; does the server return to where it started?

    .venv/bin/python benchmarks/soak.py                     # 10 000 cycles
    .venv/bin/python benchmarks/soak.py --cycles 500 --workers 8 --drop-every 4

The server is a subprocess on a loopback port (benchmarks/serve.py's, embedded voice).
Each cycle opens a session, connects its WebSocket, reads `hello`, speaks a sentence, waits
for its first audio frame, then either closes the socket and deletes the session, or (every
`--drop-every`-th cycle) cuts the TCP connection without a close frame and leaves the
session to the server: its speech stops after `--orphan-grace`, the session expires after
`--idle-ttl`. Sessions, asyncio tasks, open fds and resident memory come from /metrics:
after a warm-up (lazy imports, the voice and its caches), and once every session has ended.
Target: sessions, tasks and fds back to the warm baseline, RSS growth under 20 MB.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.serve import Server, _avatars, _session  # noqa: E402

TEXT = "Hello, this is a soak test sentence."
GAUGES = ("avatarkit_sessions", "avatarkit_ws_clients", "avatarkit_asyncio_tasks",
          "process_open_fds", "process_resident_memory_bytes")


async def gauges(http: aiohttp.ClientSession, url: str) -> dict[str, float]:
    async with http.get(url + "/metrics") as r:
        text = await r.text()
    out = {}
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name in GAUGES:
            out[name] = float(value)
    return out


async def cycle(http: aiohttp.ClientSession, url: str, drop: bool) -> None:
    sid = await _session(http, url)
    ws = await http.ws_connect(f"{url}/session-2d/{sid}/ws")
    hello = await ws.receive_json(timeout=10)
    assert hello["type"] == "hello", hello
    await ws.send_json({"type": "speak", "text": TEXT})
    while True:  # until the first audio frame: the utterance is under way
        msg = await ws.receive(timeout=10)
        if msg.type == aiohttp.WSMsgType.BINARY:
            break
        if msg.type != aiohttp.WSMsgType.TEXT:
            raise RuntimeError(f"socket ended before audio: {msg}")
    if drop:
        transport = ws._response.connection.transport  # type: ignore[union-attr]
        transport.abort()  # no close frame, no DELETE: the server must clean up alone
        await ws.close()
        return
    await ws.close()
    async with http.delete(f"{url}/session-2d/{sid}") as r:
        assert r.status == 200, await r.text()


async def run_cycles(http: aiohttp.ClientSession, url: str, n: int, workers: int,
                     drop_every: int, start: int = 0) -> int:
    """`n` cycles on `workers` concurrent clients; the number of cycles that failed."""
    counter = iter(range(start, start + n))
    failed = 0

    async def worker() -> None:
        nonlocal failed
        for i in counter:
            try:
                await cycle(http, url, drop=drop_every > 0 and i % drop_every == drop_every - 1)
            except (AssertionError, RuntimeError, aiohttp.ClientError, TimeoutError) as exc:
                failed += 1
                print(f"cycle {i} failed: {type(exc).__name__}: {exc}", flush=True)

    await asyncio.gather(*(worker() for _ in range(workers)))
    return failed


async def settle(http: aiohttp.ClientSession, url: str, want: dict[str, float],
                 timeout: float) -> dict[str, float]:
    """Poll /metrics until sessions, clients and tasks are back to `want` (or timeout)."""
    deadline = time.monotonic() + timeout
    while True:
        now = await gauges(http, url)
        back = all(now[k] <= want[k] for k in ("avatarkit_sessions", "avatarkit_ws_clients",
                                                "avatarkit_asyncio_tasks"))
        if back or time.monotonic() > deadline:
            return now
        await asyncio.sleep(0.5)


def report(label: str, g: dict[str, float]) -> None:
    print(f"{label:<10} sessions {g['avatarkit_sessions']:.0f}  clients "
          f"{g['avatarkit_ws_clients']:.0f}  tasks {g['avatarkit_asyncio_tasks']:.0f}  fds "
          f"{g['process_open_fds']:.0f}  RSS {g['process_resident_memory_bytes'] / 1e6:.1f} MB",
          flush=True)


async def main(args: argparse.Namespace) -> int:
    server = Server(_avatars(), session_idle_ttl_s=args.idle_ttl,
                    orphan_grace_s=args.orphan_grace)
    # no keep-alive: every cycle opens fresh connections, as separate clients would
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(
            force_close=True, limit=0)) as http:
        try:
            await server.wait(http)
            report("fresh", await gauges(http, server.url))
            warm = min(args.warmup, args.cycles)
            failed = await run_cycles(http, server.url, warm, args.workers, args.drop_every)
            idle = await gauges(http, server.url)
            idle = await settle(http, server.url, {**idle, "avatarkit_sessions": 0,
                                                   "avatarkit_ws_clients": 0},
                                args.idle_ttl * 2 + 10)
            report("warm", idle)
            t0 = time.monotonic()
            failed += await run_cycles(http, server.url, args.cycles - warm, args.workers,
                                       args.drop_every, start=warm)
            took = time.monotonic() - t0
            report("loaded", await gauges(http, server.url))
            after = await settle(http, server.url, idle, args.idle_ttl * 2 + 30)
            report("after", after)
            drops = sum(1 for i in range(args.cycles)
                        if args.drop_every and i % args.drop_every == args.drop_every - 1)
            growth = (after["process_resident_memory_bytes"]
                      - idle["process_resident_memory_bytes"]) / 1e6
            print(f"{args.cycles} cycles ({drops} abrupt drops) in {took:.0f} s after warm-up "
                  f"on {args.workers} clients, {failed} failed; RSS growth {growth:+.1f} MB, "
                  f"fds {after['process_open_fds'] - idle['process_open_fds']:+.0f}, tasks "
                  f"{after['avatarkit_asyncio_tasks'] - idle['avatarkit_asyncio_tasks']:+.0f}")
            ok = (failed == 0 and growth < 20.0
                  and after["avatarkit_sessions"] == 0 and after["avatarkit_ws_clients"] == 0
                  and after["avatarkit_asyncio_tasks"] <= idle["avatarkit_asyncio_tasks"]
                  and after["process_open_fds"] <= idle["process_open_fds"])
            print("back to baseline" if ok else "NOT back to baseline", flush=True)
            return 0 if ok else 1
        finally:
            server.stop()


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cycles", type=int, default=10_000)
    p.add_argument("--workers", type=int, default=8, help="concurrent clients")
    p.add_argument("--drop-every", type=int, default=4,
                   help="every Nth cycle drops its socket mid-utterance (0: none)")
    p.add_argument("--warmup", type=int, default=200, help="cycles before the baseline")
    p.add_argument("--idle-ttl", type=float, default=3.0,
                   help="the server's --idle-ttl, s (dropped sessions expire after it)")
    p.add_argument("--orphan-grace", type=float, default=0.5,
                   help="the server's --orphan-grace, s")
    sys.exit(asyncio.run(main(p.parse_args())))
