"""Command line: parses, prints and maps errors to exit codes; the work lives in the library.

Each sub-command is its own module that registers on the typer application when imported;
typer and rich are used only here. `main` imports only the module of the command it runs:
a short `visemes --audio` run is mostly start-up, and the build's and the renderer's imports
(mediapipe, OpenCV, the avatar loader) would be a third of it. `app` has every command.
"""

from __future__ import annotations

import gc
import os
import sys
from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import typer

#: Command name -> the module that registers it.
COMMANDS = {
    "build": "avatarkit.cli.build",
    "preview": "avatarkit.cli.preview",
    "serve": "avatarkit.cli.serve",
    "visemes": "avatarkit.cli.visemes",
}

#: Commands whose work runs on one core. OpenBLAS starts a worker thread per core on the
#: first matrix product and they spin between products: a `visemes --audio` run used ~0.3 s
#: more CPU with them (1.65 s against 1.35 s) and no less wall time.
ONE_CORE = frozenset({"visemes"})

__all__ = ["COMMANDS", "ONE_CORE", "app", "command_in", "load_commands", "main"]


def load_commands(names: list[str] | None = None) -> typer.Typer:
    """The typer application with the named commands registered (all when None)."""
    for name in COMMANDS if names is None else names:
        import_module(COMMANDS[name])
    from avatarkit.cli.root import app

    return app


def command_in(args: list[str]) -> str | None:
    """The command a command line runs: its first word that is not an option (the root
    options take no values), when it names a command."""
    word = next((a for a in args if not a.startswith("-")), None)
    return word if word in COMMANDS else None


def main() -> None:
    """Console-script entry point: loads the command being run (every command for
    `--help`, a mistyped name or none, so those list them all)."""
    name = command_in(sys.argv[1:])
    if name in ONE_CORE:  # before numpy loads; a thread count set by the user stays
        os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    # what the imports make lives as long as the process: no collections while they run
    # (~55 of them, 13 ms of a visemes run), and none over those objects afterwards
    gc.disable()
    try:
        app = load_commands([name] if name else None)
    finally:
        gc.freeze()
        gc.enable()
    try:
        code = app(standalone_mode=False)
    except Exception as exc:
        if not _is_usage_error(exc):
            raise
        _usage_error(exc)
    sys.exit(code if isinstance(code, int) else 0)


def _is_usage_error(exc: Exception) -> bool:
    """A click error (unknown option, value out of range...), found through typer's public
    BadParameter: typer may ship click inside itself."""
    from typer import BadParameter

    base = next(c for c in BadParameter.__mro__ if c.__name__ == "ClickException")
    return isinstance(exc, base)


def _usage_error(exc: Any) -> None:
    """A usage error as one red line like every other failure (typer draws a boxed panel
    under two usage lines), with where to look; exits with click's code (2)."""
    from avatarkit.cli.root import fail

    if type(exc).__name__ == "NoArgsIsHelpError":
        sys.exit(exc.exit_code)  # `avatarkit` alone: typer has printed the help
    ctx = getattr(exc, "ctx", None)
    where = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
    fail(f"{exc.format_message()}{where}")
    sys.exit(exc.exit_code)


def __getattr__(name: str) -> Any:
    if name == "app":
        return load_commands()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
