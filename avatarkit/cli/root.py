"""The typer application (the root command and its options), shared console and the error
guard every command runs under; the commands register on `app` from their own modules."""

from __future__ import annotations

import contextlib
import functools
import logging
import warnings
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape

from avatarkit.errors import AvatarkitError, AvatarkitWarning

app = typer.Typer(
    name="avatarkit",
    help="Turn one portrait photo into a live, talking 2D avatar.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(stderr=True, highlight=False)
state = {"verbose": False}

F = TypeVar("F", bound=Callable[..., Any])


def _version(value: bool) -> None:
    if value:
        from avatarkit.version import __version__

        print(f"avatarkit {__version__}")
        raise typer.Exit()


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
        handlers=[RichHandler(console=console, show_time=False, show_path=verbose)],
    )


def fail(message: str) -> typer.Exit:
    """Print one red line and return the exit to raise (the message is text, not markup:
    a file called `photo[1].jpg` prints as it is)."""
    console.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)
    return typer.Exit(code=1)


def warn(message: str) -> None:
    """Print one yellow warning line (text, not markup)."""
    console.print(f"[yellow]warning:[/] {escape(message)}", soft_wrap=True)


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
                console.print_exception()
            raise fail(str(exc)) from None
        except KeyboardInterrupt:
            raise fail("interrupted") from None

    return wrapper  # type: ignore[return-value]
