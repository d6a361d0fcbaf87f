"""Prometheus text exposition, written by hand: a few counters, gauges and one histogram.

A dependency (prometheus_client) would bring a registry, locks and multiprocess modes this
single-process server does not need; the text format is small and stable. The pacer records
a histogram observation per batch of events: ours takes ~0.5 us, prometheus_client's ~5x as
long (`benchmarks/libraries.py`).
"""

from __future__ import annotations

import asyncio
import bisect
import os
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

#: Buckets of the first-audio latency histogram, seconds.
FIRST_AUDIO_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
#: Buckets of the pacer lateness histogram, seconds.
LATENESS_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0)
#: Buckets of the audio-in -> out delay of audio-driven speech, seconds (target 0.15).
LISTEN_BUCKETS = (0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 1.0, 2.5)
#: Error codes of refusals for load, always listed (at 0) so alerts can watch them.
REFUSAL_CODES = ("busy", "queue_full", "rate_limited", "too_many_sessions")


def _labels(**labels: str) -> str:
    if not labels:
        return ""
    body = ",".join(
        f'{k}="{v.replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"'
        for k, v in sorted(labels.items())
    )
    return "{" + body + "}"


class Histogram:
    """Cumulative buckets, sum and count (Prometheus `histogram`)."""

    def __init__(self, buckets: tuple[float, ...]) -> None:
        self.buckets = buckets
        self.counts = [0] * (len(buckets) + 1)
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.buckets, value)] += 1
        self.sum += value
        self.count += 1

    def lines(self, name: str) -> list[str]:
        out, total = [], 0
        for bound, n in zip(self.buckets, self.counts, strict=False):
            total += n
            out.append(f'{name}_bucket{{le="{bound}"}} {total}')
        out.append(f'{name}_bucket{{le="+Inf"}} {self.count}')
        out.append(f"{name}_sum {self.sum:.6f}")
        out.append(f"{name}_count {self.count}")
        return out


class Metrics:
    """The server's counters; `render()` is the `/metrics` body."""

    def __init__(self) -> None:
        self.sessions_created = 0
        self.utterances: dict[str, int] = defaultdict(int)
        self.provider_errors: dict[str, int] = defaultdict(int)
        self.builds: dict[str, int] = defaultdict(int)
        #: Requests and WebSocket commands refused for load (HTTP 429), by error code.
        self.refused: dict[str, int] = defaultdict(int)
        self.viseme_frames_dropped = 0
        self.slow_clients_closed = 0
        self.first_audio = Histogram(FIRST_AUDIO_BUCKETS)
        self.send_lateness = Histogram(LATENESS_BUCKETS)
        self.listen_delay = Histogram(LISTEN_BUCKETS)
        #: Variant C: mouth patches sent, by outcome (`on_time`, or `late`: rendered after
        #: their play time on the session clock), and the batcher's stats (None: no model).
        self.patches: dict[str, int] = defaultdict(int)
        self.lipsync: Callable[[], dict[str, float]] | None = None
        #: Gauges read at render time.
        self.sessions: Callable[[], int] = lambda: 0
        self.clients: Callable[[], int] = lambda: 0

    def refuse(self, code: str) -> None:
        """Count one request refused for load (`rate_limited`, `too_many_sessions`...)."""
        self.refused[code] += 1

    def render(self) -> str:
        lines: list[str] = []

        def metric(name: str, kind: str, help_: str, samples: list[str]) -> None:
            lines.append(f"# HELP {name} {help_}")
            lines.append(f"# TYPE {name} {kind}")
            lines.extend(samples)

        metric("avatarkit_sessions", "gauge", "Open sessions.",
               [f"avatarkit_sessions {self.sessions()}"])
        metric("avatarkit_ws_clients", "gauge", "Connected WebSocket clients.",
               [f"avatarkit_ws_clients {self.clients()}"])
        metric("avatarkit_sessions_created_total", "counter", "Sessions created.",
               [f"avatarkit_sessions_created_total {self.sessions_created}"])
        outcomes = {k: self.utterances.get(k, 0) for k in ("completed", "interrupted", "failed")}
        metric("avatarkit_utterances_total", "counter", "Utterances ended, by outcome.",
               [f"avatarkit_utterances_total{_labels(outcome=k)} {v}"
                for k, v in outcomes.items()])
        metric("avatarkit_first_audio_seconds", "histogram",
               "Time from a speak command (or the end of the previous utterance) to the "
               "first audio frame released to clients.",
               self.first_audio.lines("avatarkit_first_audio_seconds"))
        metric("avatarkit_send_lateness_seconds", "histogram",
               "How late the pacer wrote a batch of due events (its earliest due time to the "
               "socket write); the server's own share of event lateness.",
               self.send_lateness.lines("avatarkit_send_lateness_seconds"))
        metric("avatarkit_listen_delay_seconds", "histogram",
               "Audio-driven speech: from a piece of audio reaching the listener to its release "
               "with the visemes that cover it (the look-ahead, server side).",
               self.listen_delay.lines("avatarkit_listen_delay_seconds"))
        metric("avatarkit_provider_errors_total", "counter", "TTS provider failures, by code.",
               [f"avatarkit_provider_errors_total{_labels(code=k)} {v}"
                for k, v in sorted(self.provider_errors.items())])
        metric("avatarkit_requests_refused_total", "counter",
               "Requests and WebSocket commands refused for load (HTTP 429: rate limits, "
               "caps, full queues), by error code.",
               [f"avatarkit_requests_refused_total{_labels(code=k)} {self.refused.get(k, 0)}"
                for k in sorted({*REFUSAL_CODES, *self.refused})])
        metric("avatarkit_viseme_frames_dropped_total", "counter",
               "Viseme frames skipped for slow clients.",
               [f"avatarkit_viseme_frames_dropped_total {self.viseme_frames_dropped}"])
        metric("avatarkit_slow_clients_closed_total", "counter",
               "Clients closed because their audio backlog overflowed.",
               [f"avatarkit_slow_clients_closed_total {self.slow_clients_closed}"])
        metric("avatarkit_avatar_builds_total", "counter", "Avatar builds, by status.",
               [f"avatarkit_avatar_builds_total{_labels(status=k)} {self.builds.get(k, 0)}"
                for k in ("built", "skipped", "failed")])
        metric("avatarkit_asyncio_tasks", "gauge", "asyncio tasks alive on the server's loop "
               "(back to its idle count when every session ended: benchmarks/soak.py).",
               [f"avatarkit_asyncio_tasks {len(asyncio.all_tasks())}"])
        for name, help_, value in _process_gauges():
            metric(name, "gauge", help_, [f"{name} {value}"])
        if self.lipsync is not None:
            b = self.lipsync()
            metric("avatarkit_patches_total", "counter", "Mouth patches sent (lipsync onnx), "
                   "by outcome: on_time, or late (ready after their play time on the session "
                   "clock; sent anyway, a client with a jitter buffer may still use them).",
                   [f"avatarkit_patches_total{_labels(outcome=k)} {self.patches.get(k, 0)}"
                    for k in ("on_time", "late")])
            metric("avatarkit_onnx_batches_total", "counter", "Inference batches run.",
                   [f"avatarkit_onnx_batches_total {int(b['batches'])}"])
            metric("avatarkit_onnx_frames_total", "counter",
                   "Frames inferred (frames / batches = mean batch size).",
                   [f"avatarkit_onnx_frames_total {int(b['frames'])}"])
            metric("avatarkit_onnx_max_batch", "gauge", "Largest batch run so far.",
                   [f"avatarkit_onnx_max_batch {int(b['max_batch'])}"])
        return "\n".join(lines) + "\n"


def _process_gauges() -> list[tuple[str, str, int]]:
    """Open file descriptors and resident memory of this process, under the names of
    Prometheus' process collector (Linux /proc; nothing elsewhere)."""
    try:
        fds = len(os.listdir("/proc/self/fd"))
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, ValueError, IndexError):
        return []
    return [("process_open_fds", "Open file descriptors.", fds),
            ("process_resident_memory_bytes", "Resident memory size in bytes.",
             pages * os.sysconf("SC_PAGE_SIZE"))]
