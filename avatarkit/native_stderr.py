"""Keep native libraries' log lines off the user's terminal.

mediapipe's C++ core (absl/glog and TFLite) writes lines such as `W0000 ... inference_feedback_
manager.cc ...` straight to file descriptor 2 whenever a graph starts; GLOG_minloglevel does
not reach absl's pre-init logging, so the only reliable switch is the file descriptor itself.
"""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def quiet_native_stderr(enabled: bool = True) -> Iterator[None]:
    """Point fd 2 at /dev/null while Python's `sys.stderr` keeps writing to the terminal.

    Child processes started inside inherit the quiet fd 2 (their Python stderr too, so they
    report through return values, as the build workers do).
    """
    if not enabled:
        yield
        return
    try:
        sys.stderr.flush()
        on_fd2 = sys.stderr.fileno() == 2
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        on_fd2 = False  # e.g. a test runner's capture object: Python output is not on fd 2
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    old_stderr = sys.stderr
    try:
        if on_fd2:
            sys.stderr = io.TextIOWrapper(
                os.fdopen(os.dup(saved), "wb", buffering=0), encoding=old_stderr.encoding,
                errors="backslashreplace", line_buffering=True, write_through=True,
            )
        os.dup2(devnull, 2)
        yield
    finally:
        if sys.stderr is not old_stderr:
            try:
                sys.stderr.flush()
                sys.stderr.close()
            finally:
                sys.stderr = old_stderr
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
