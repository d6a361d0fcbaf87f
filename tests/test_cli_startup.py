"""The command line loads only what the command it runs needs.

A `visemes --audio` run is short: the imports of the build (mediapipe, OpenCV), the
renderer and the server would be a third of its time. Run in a subprocess, so that what
other tests imported does not count.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np

from avatarkit.cli import COMMANDS, app, command_in

ROOT = Path(__file__).resolve().parents[1]

#: Modules a `visemes --audio` run must not import: the other commands, the build and the
#: renderer, the server, their heavy dependencies, espeak-ng (audio only has no text), and
#: rich while stderr is no terminal (there it would print the same plain lines).
NOT_FOR_VISEMES = ("avatarkit.render", "avatarkit.build", "avatarkit.face", "avatarkit.mouth",
                   "avatarkit.idle", "avatarkit.roi", "avatarkit.cli.build",
                   "avatarkit.cli.preview", "avatarkit.cli.serve", "avatarkit.tts.espeak_lib",
                   "server", "cv2", "mediapipe", "PIL", "onnxruntime", "aiohttp", "scipy",
                   "rich")


def _speech_wav(path: Path) -> Path:
    """A second of a vowel-like buzz with a gap: something for the listener to hear."""
    t = np.arange(16000) / 16000
    x = 0.3 * np.sign(np.sin(2 * np.pi * 120 * t)) * (np.abs(t - 0.5) > 0.08)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes((x * 32767).astype("<i2").tobytes())
    return path


def _run_main(args: list[str]) -> subprocess.CompletedProcess[str]:
    """`avatarkit ARGS` through the console-script entry point; prints the modules loaded
    and the BLAS thread setting it ran with."""
    code = ("import json, os, sys\n"
            "from avatarkit.cli import main\n"
            f"sys.argv = ['avatarkit', *{args!r}]\n"
            "try:\n    main()\nexcept SystemExit as exc:\n    assert not exc.code, exc.code\n"
            "print(json.dumps([sorted(sys.modules), os.environ.get('OPENBLAS_NUM_THREADS')]))\n")
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, cwd=ROOT, env=env)


def _loaded(stdout: str, prefixes: tuple[str, ...]) -> list[str]:
    modules = json.loads(stdout.strip().splitlines()[-1])[0]
    return [m for m in modules if any(m == p or m.startswith(p + ".") for p in prefixes)]


def _blas_threads(stdout: str) -> str | None:
    return json.loads(stdout.strip().splitlines()[-1])[1]


def test_visemes_from_audio_loads_none_of_the_build_renderer_or_server(tmp_path: Path) -> None:
    out = tmp_path / "t.json"
    proc = _run_main(["visemes", "--audio", str(_speech_wav(tmp_path / "s.wav")),
                      "-o", str(out)])
    assert json.loads(out.read_text())["events"], proc.stderr
    assert _loaded(proc.stdout, ("avatarkit.listen", "pocketsphinx")) != []  # it did listen
    assert _loaded(proc.stdout, NOT_FOR_VISEMES) == []
    assert _blas_threads(proc.stdout) == "1"  # one core: no spinning BLAS workers


def test_root_options_before_the_command_still_load_only_that_command() -> None:
    proc = _run_main(["-v", "visemes", "--help"])
    assert "--audio" in proc.stdout
    heavy = tuple(m for m in NOT_FOR_VISEMES if m != "rich")  # typer's help is drawn by rich
    assert _loaded(proc.stdout, heavy) == []


def test_plain_lines_when_stderr_is_no_terminal(tmp_path: Path) -> None:
    missing = tmp_path / "missing[1].wav"
    proc = subprocess.run([sys.executable, "-m", "avatarkit.cli", "visemes", "--audio",
                           str(missing)], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 1
    assert proc.stderr == f"error: could not read audio {missing}: no such file\n"


def test_the_root_help_lists_every_command() -> None:
    proc = _run_main(["--help"])
    listed = {name for name in COMMANDS if f" {name} " in proc.stdout}
    assert listed == set(COMMANDS)
    assert _blas_threads(proc.stdout) is None  # only one-core commands set it


def test_the_command_is_the_first_word_that_is_not_an_option() -> None:
    assert command_in(["--verbose", "visemes", "--audio", "build"]) == "visemes"
    assert command_in(["preview", "out/hero"]) == "preview"
    assert command_in(["--help"]) is None
    assert command_in(["vizemes"]) is None  # a typo loads every command: typer suggests one


def test_app_has_every_command() -> None:
    import typer.main

    names = {c.name for c in typer.main.get_command(app).commands.values()}  # type: ignore[attr-defined]
    assert names == set(COMMANDS)
