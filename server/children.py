"""The server's helper processes (blend worker, build workers, listener workers, server
workers): how they start and how they end.

Ctrl+C in a terminal sends SIGINT to the whole process group; a helper that took it would die
with a KeyboardInterrupt traceback on the user's screen (even while it is still importing)
while the server itself shuts down cleanly. Helper pools therefore start their processes
with SIGINT blocked (`helper_context`; a blocked signal stays blocked across exec), and the
server ends them (`stop_children`).
"""

from __future__ import annotations

import multiprocessing.context
import signal
from typing import Any


class _QuietSpawnProcess(multiprocessing.context.SpawnProcess):
    def start(self) -> None:
        # blocked in this thread only while the child is created: the child inherits it
        old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            super().start()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old)


class _QuietSpawnContext(multiprocessing.context.SpawnContext):
    Process = _QuietSpawnProcess


def helper_context() -> multiprocessing.context.SpawnContext:
    """The `mp_context` of the server's process pools: spawned processes that Ctrl+C does
    not reach (the server ends them)."""
    return _QuietSpawnContext()


def end_process(process: Any, timeout_s: float) -> None:
    """Wait for a child process to exit; past `timeout_s` terminate it, then kill it."""
    process.join(timeout_s)
    if process.is_alive():
        process.terminate()
        process.join(2.0)
    if process.is_alive():
        process.kill()
        process.join()


def stop_children(timeout_s: float = 10.0) -> None:
    """End this process's helper processes (blend worker, build workers, server workers): ask,
    wait, then kill. With them gone the multiprocessing resource tracker exits too."""
    import multiprocessing

    from server.blend import shutdown_shared

    shutdown_shared(wait=False)
    for p in multiprocessing.active_children():
        end_process(p, timeout_s)
