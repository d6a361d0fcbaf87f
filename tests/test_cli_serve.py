"""`avatarkit serve` as a user runs it: a real process on a real port. It warns in red when
it listens beyond loopback without a token, and SIGTERM stops it with its worker processes."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest

from tests.server_support import make_avatar

ROOT = Path(__file__).resolve().parents[1]
RED = "\x1b[1;31m"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _descendants(pid: int) -> set[int]:
    """Every live process below `pid` (from /proc)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            if fields[0] != "Z":
                parents[int(entry.name)] = int(fields[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {p for p, pp in parents.items() if pp in frontier} - found
        found |= frontier
    return found


def _alive(pid: int) -> bool:
    try:
        return (Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z")
    except OSError:
        return False


def _serve(tmp_path: Path, *args: str) -> tuple[subprocess.Popen, int]:
    make_avatar(tmp_path, "hero")
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "FORCE_COLOR": "1", "COLUMNS": "400",
           "AVATARKIT_TOKEN": "", "ELEVENLABS_API_KEY": ""}
    code = "import sys; from avatarkit.cli import main; sys.argv[0] = 'avatarkit'; main()"
    proc = subprocess.Popen([sys.executable, "-c", code, "serve", "--port", str(port),
                             "--avatars", str(tmp_path), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True,
                            start_new_session=True)  # its own process group, as in a terminal
    return proc, port


def _read_until(proc: subprocess.Popen, needle: str, timeout_s: float = 120.0) -> str:
    out, deadline = "", time.monotonic() + timeout_s
    while needle not in out:
        assert proc.poll() is None and time.monotonic() < deadline, out
        out += proc.stdout.readline()
    return out


def _stop(proc: subprocess.Popen, children: set[int], *, ctrl_c: bool = False,
          ) -> tuple[int, str, list[int]]:
    """SIGTERM the server (or, `ctrl_c`, SIGINT its whole process group as a terminal's
    Ctrl+C does); its exit status, the rest of its output and the worker processes still
    alive 10 s after it exited (killed then: only what this test's server started)."""
    if ctrl_c:
        os.killpg(proc.pid, signal.SIGINT)
    else:
        proc.send_signal(signal.SIGTERM)
    try:
        code = proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        code = proc.wait()
    deadline = time.monotonic() + 10
    while any(_alive(p) for p in children) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = [p for p in children if _alive(p)]
    for p in left:
        os.kill(p, signal.SIGKILL)
    return code, proc.stdout.read(), left


async def test_warns_in_red_without_a_token_beyond_loopback(tmp_path):
    proc, _ = _serve(tmp_path, "--host", "0.0.0.0")
    try:
        out = _read_until(proc, "avatarkit serving on")
    finally:
        _stop(proc, _descendants(proc.pid))
    line = next(x for x in out.splitlines() if "without a token" in x)
    assert line.startswith(RED + "warning: listening on 0.0.0.0 without a token"), repr(line)
    assert "--token" in line


@pytest.mark.parametrize("ctrl_c", [False, True], ids=["sigterm", "ctrl-c"])
async def test_sigterm_stops_the_server_and_its_worker_processes(tmp_path, ctrl_c):
    """Ctrl+C reaches the worker processes too: they leave it to the server (no traceback
    of theirs on the terminal)."""
    proc, port = _serve(tmp_path)
    children: set[int] = set()
    try:
        out = _read_until(proc, "avatarkit serving on")
        assert "without a token" not in out  # loopback: no warning
        base = f"http://127.0.0.1:{port}"
        async with aiohttp.ClientSession() as http:
            r = await http.post(f"{base}/session-2d", json={"avatar_id": "hero"})
            sid = (await r.json())["session_id"]
            async with http.ws_connect(f"{base}/session-2d/{sid}/ws") as ws:
                await ws.receive()  # hello
                await ws.send_json({"type": "speak", "text": "Hello there, this is long."})
                for _ in range(3):
                    await ws.receive(timeout=30)
                for _ in range(200):  # the blend worker (and the resource tracker) run
                    children = _descendants(proc.pid)
                    if len(children) >= 2:
                        break
                    time.sleep(0.05)
                assert len(children) >= 2, children

                async def close_code() -> int | None:
                    while (await ws.receive()).type not in (
                            aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED,
                            aiohttp.WSMsgType.ERROR):
                        pass
                    return ws.close_code

                closing = asyncio.create_task(close_code())
                code, rest, left = await asyncio.to_thread(_stop, proc, children,
                                                           ctrl_c=ctrl_c)
                # the server said it is going away (1001), it did not just vanish
                assert await asyncio.wait_for(closing, 5) == 1001
        out += rest
        assert code == 0, out
        assert "stopped" in out and "Traceback" not in out, out
        assert not left, f"worker processes {left} outlived the server"
    finally:
        if proc.poll() is None:
            _stop(proc, children)


pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"max_sessions": -1}, "--max-sessions must be >= 1, got -1"),
        ({"max_text_chars": 0}, "--max-text must be >= 1, got 0"),
        ({"max_clients_per_session": 0}, "--max-clients-per-session must be >= 1"),
        ({"max_queued_utterances": -1}, "--max-queue must be >= 0, got -1"),
        ({"client_session_rate": -30.0}, "--session-rate must be >= 0 (0 = no limit), got -30"),
        ({"session_speak_rate": -1.0}, "--speak-rate must be >= 0"),
        ({"max_upstream": -4}, "--max-upstream must be >= 0"),
        ({"session_idle_ttl_s": 0.0}, "--idle-ttl and --max-upload-mb must be > 0"),
        ({"patch_codec": "gif"}, "--patch-codec must be png or webp, got 'gif'"),
    ],
)
def test_limits_out_of_range_name_their_flag(overrides, message):
    """A negative limit would not fail at startup: counts would refuse everything, rates
    would switch their limit off as 0 does. Each is refused with the flag's name."""
    from avatarkit.errors import AvatarkitError
    from server.config import ServerConfig

    with pytest.raises(AvatarkitError) as err:
        ServerConfig(**overrides).checked()
    assert message in str(err.value)
    assert ServerConfig().checked() == ServerConfig()


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--port", "99999999"], 2, "99999999 is not in the range"),
        (["--avatars", __file__], 1, "error: --avatars " + __file__ + ": not a folder\n"),
    ],
)
def test_bad_port_or_avatars_is_a_usage_error_not_a_traceback(args, code, message):
    from typer.testing import CliRunner

    from avatarkit.cli import app

    result = CliRunner().invoke(app, ["serve", *args], terminal_width=200)
    assert result.exit_code == code, result.output
    assert message in result.output and "Traceback" not in result.output
