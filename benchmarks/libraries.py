"""Hand-written code vs the library the field uses for it, on the server's hot paths.

    python benchmarks/libraries.py        (needs `pip install prometheus_client soundfile`;
                                           jsonschema comes with the test extra)

For each pair: the median time per call over 7 runs, and the ratio library / ours measured
in the same process. The decisions these numbers back are written next to the code
(server/metrics.py, server/wire.py, avatarkit/tts/wav.py).

1. metrics: one histogram observation (the pacer records one per batch of due events, the
   hottest metric) - `server.metrics.Histogram` vs `prometheus_client.Histogram`.
2. ws-message: a client's `speak` message -> a validated command - `wire.parse_client_message`
   vs `json.loads` + a compiled `jsonschema` validator of the same schema (which would still
   leave the typed command and the actionable error message to write).
3. wav: 5 s of 22.05 kHz PCM16 to a WAV file - `avatarkit.tts.wav.write_wav` (stdlib `wave`)
   vs `soundfile.write`.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from avatarkit.tts.wav import write_wav  # noqa: E402
from server import wire  # noqa: E402
from server.metrics import LATENESS_BUCKETS, Histogram  # noqa: E402

RUNS = 7


def per_call(fn: Callable[[], object], n: int) -> float:
    """Median seconds per call of `fn` over RUNS runs of `n` calls."""
    times = []
    for _ in range(RUNS):
        t = time.perf_counter()
        for _ in range(n):
            fn()
        times.append((time.perf_counter() - t) / n)
    return statistics.median(times)


def row(name: str, ours: float, lib: float | None, unit: float, unit_name: str) -> None:
    shown = "not installed" if lib is None else f"{lib / unit:9.2f} {unit_name}"
    ratio = "" if lib is None else f"{lib / ours:6.2f}x"
    print(f"| {name:11} | {ours / unit:9.2f} {unit_name} | {shown} | {ratio} |")


def metrics() -> None:
    ours = Histogram(LATENESS_BUCKETS)
    t_ours = per_call(lambda: ours.observe(0.003), 200_000)
    try:
        import prometheus_client as pc
    except ImportError:
        row("metrics", t_ours, None, 1e-9, "ns")
        return
    theirs = pc.Histogram("lateness", "x", buckets=LATENESS_BUCKETS,
                          registry=pc.CollectorRegistry())
    row("metrics", t_ours, per_call(lambda: theirs.observe(0.003), 200_000), 1e-9, "ns")


def ws_message() -> None:
    msg = '{"type": "speak", "text": "Hello there, how are you today?", "barge_in": false}'
    t_ours = per_call(lambda: wire.parse_client_message(msg, max_chars=2000), 50_000)
    try:
        import json

        import jsonschema
    except ImportError:
        row("ws-message", t_ours, None, 1e-6, "us")
        return
    validator = jsonschema.Draft202012Validator(wire.SCHEMAS["speak"])

    def theirs() -> None:
        validator.validate(json.loads(msg))

    row("ws-message", t_ours, per_call(theirs, 50_000), 1e-6, "us")


def wav() -> None:
    rate = 22050
    pcm = (np.sin(np.arange(5 * rate) / 10) * 8000).astype("<i2")
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "a.wav"
        t_ours = per_call(lambda: write_wav(path, pcm.tobytes(), rate), 50)
        try:
            import soundfile
        except ImportError:
            row("wav", t_ours, None, 1e-6, "us")
            return
        row("wav", t_ours, per_call(lambda: soundfile.write(path, pcm, rate, "PCM_16"), 50),
            1e-6, "us")


def main() -> None:
    print("| what        | ours         | library      | library / ours |")
    print("|---|---|---|---|")
    metrics()
    ws_message()
    wav()


if __name__ == "__main__":
    main()
