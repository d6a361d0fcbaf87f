"""Command line: parses, prints and maps errors to exit codes; the work lives in the library.

Each sub-command is its own module that registers on `app`; typer and rich are used only here.
"""

# Sub-command modules register themselves on `app` when imported.
from avatarkit.cli import build as _build  # noqa: E402,F401
from avatarkit.cli import preview as _preview  # noqa: E402,F401
from avatarkit.cli import serve as _serve  # noqa: E402,F401
from avatarkit.cli import visemes as _visemes  # noqa: E402,F401
from avatarkit.cli.app import app, main

__all__ = ["app", "main"]
