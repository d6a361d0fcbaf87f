"""The installed version of avatarkit (a module of its own, so that any package can import
it without importing the `avatarkit` facade, which imports them)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("avatarkit")
except PackageNotFoundError:  # running from a source tree without install
    __version__ = "0.0.0+local"
