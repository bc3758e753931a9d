"""gate: a self-hosted crawler-defense reverse proxy."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("gate")
except PackageNotFoundError:  # running from a source tree without installing
    __version__ = "0.0.0+source"
