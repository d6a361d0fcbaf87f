"""The typer application (the root command and its options), shared console and the error
guard every command runs under; the commands register on `app` from their own modules.

rich (~70 ms of imports) loads when something is shown on a terminal, or when a command
uses the rich `console` itself: a short `visemes` run whose stderr is a file or a pipe
writes its lines as the plain text rich would have written there.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import sys
import warnings
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

import typer

from avatarkit.errors import AvatarkitError, AvatarkitWarning

if TYPE_CHECKING:
    from rich.console import Console

app = typer.Typer(
    name="avatarkit",
    help="Turn one portrait photo into a live, talking 2D avatar.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
state = {"verbose": False}

F = TypeVar("F", bound=Callable[..., Any])


@functools.lru_cache(maxsize=1)
def shared_console() -> Console:
    """The rich console on stderr that every command prints through."""
    from rich.console import Console

    return Console(stderr=True, highlight=False)


def __getattr__(name: str) -> Any:
    if name == "console":  # `from avatarkit.cli.root import console` makes it
        return shared_console()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _plain() -> bool:
    """True when stderr is no terminal (and rich is not told to style it anyway): rich
    would write there neither styles nor spinners, only the text."""
    return not sys.stderr.isatty() and not os.environ.get("FORCE_COLOR")


def say(message: str) -> None:
    """One line of text (not markup) on stderr."""
    if _plain():
        print(message, file=sys.stderr, flush=True)
    else:
        from rich.markup import escape

        shared_console().print(escape(message), soft_wrap=True)


@contextlib.contextmanager
def status(message: str) -> Iterator[None]:
    """A spinner with `message` (text, not markup) while the block runs, on a terminal."""
    if _plain():
        yield
        return
    from rich.markup import escape

    with shared_console().status(escape(message)):
        yield


def _labelled(label: str, style: str, message: str) -> None:
    if _plain():
        print(f"{label} {message}", file=sys.stderr, flush=True)
    else:
        from rich.markup import escape

        shared_console().print(f"[{style}]{label}[/] {escape(message)}", soft_wrap=True)


def _version(value: bool) -> None:
    if value:
        from avatarkit.version import __version__

        print(f"avatarkit {__version__}")
        raise typer.Exit()


class _RichLogHandler(logging.Handler):
    """rich's log handler on the shared console, made on the first record to show."""

    def __init__(self, show_path: bool) -> None:
        super().__init__()
        self.show_path = show_path
        self._rich: logging.Handler | None = None

    def emit(self, record: logging.LogRecord) -> None:
        if self._rich is None:
            from rich.logging import RichHandler

            self._rich = RichHandler(console=shared_console(), show_time=False,
                                     show_path=self.show_path)
            self._rich.setFormatter(self.formatter)
        self._rich.emit(record)


@app.callback()
def _root(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show details and tracebacks."),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    state["verbose"] = verbose
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(message)s",
        handlers=[_RichLogHandler(show_path=verbose)],
    )


def fail(message: str) -> typer.Exit:
    """Print one red line and return the exit to raise (the message is text, not markup:
    a file called `photo[1].jpg` prints as it is)."""
    _labelled("error:", "bold red", message)
    return typer.Exit(code=1)


def warn(message: str) -> None:
    """Print one yellow warning line (text, not markup)."""
    _labelled("warning:", "yellow", message)


def check_listening_lang(lang: str) -> None:
    """Audio without a transcript: `lang` is checked like any other, and a language other
    than English is said to change nothing (audio alone listens with the English phone
    model; a transcript is what another language needs)."""
    if lang == "en-us":  # the default: nothing to check, and espeak-ng need not load
        return
    from avatarkit.tts.espeak_lib import check_language

    code = check_language(lang)
    if code.split("-")[0] != "en":
        warn(f"--lang {lang} changes nothing without --text: audio alone listens with the "
             "English phone model (pass the transcript for the language's own sounds)")


@contextlib.contextmanager
def printed_warnings() -> Iterator[None]:
    """Collect the AvatarkitWarnings raised inside the block and print them after it."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", AvatarkitWarning)
        yield
    for w in caught:
        if issubclass(w.category, AvatarkitWarning):
            warn(str(w.message))


def guarded(func: F) -> F:
    """Run a command so that expected failures print one red line and exit non-zero."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except AvatarkitError as exc:
            if state["verbose"]:
                shared_console().print_exception()
            raise fail(str(exc)) from None
        except KeyboardInterrupt:
            raise fail("interrupted") from None

    return wrapper  # type: ignore[return-value]
