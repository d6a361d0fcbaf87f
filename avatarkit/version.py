"""The installed version of avatarkit (a module of its own, so that any package can import
it without importing the `avatarkit` facade, which imports them).

`__version__` is looked up on first use: importlib.metadata costs ~50 ms of imports, which
a short command (`avatarkit visemes`) that never prints the version should not pay.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any


@lru_cache(maxsize=1)
def installed_version() -> str:
    """The version pip installed, or `0.0.0+local` when running from a source tree."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("avatarkit")
    except PackageNotFoundError:  # running from a source tree without install
        return "0.0.0+local"


def __getattr__(name: str) -> Any:
    if name == "__version__":
        return installed_version()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
