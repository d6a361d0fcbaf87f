"""avatarkit: one portrait photo to a live, talking 2D avatar."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("avatarkit")
except PackageNotFoundError:  # running from a source tree without install
    __version__ = "0.0.0+local"
