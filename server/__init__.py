"""An image repository service: upload, text search and search by image."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("imagerepo")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"
