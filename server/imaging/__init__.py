"""Image validation and perceptual hashing: pure functions, run in the CPU thread pool."""

from server.imaging.bits import from_hex, hamming, to_hex, to_signed
from server.imaging.decoding import Working, working_image
from server.imaging.formats import missing_decoder, register_decoders
from server.imaging.hashing import (
    HASH_VERSION,
    ImageFacts,
    analyse,
    color_hash,
    hashes_of,
    naive_hashes,
)
from server.imaging.sniff import (
    ACCEPTED,
    RAW_FORMATS,
    CorruptImage,
    ImageRejected,
    TooManyPixels,
    UnsupportedFormat,
    header_dimensions,
    open_lazy,
    sniff_format,
)

# The optional decoders' Pillow plugins, before any header is read.
register_decoders()

__all__ = [
    "ACCEPTED",
    "RAW_FORMATS",
    "HASH_VERSION",
    "CorruptImage",
    "ImageFacts",
    "ImageRejected",
    "TooManyPixels",
    "UnsupportedFormat",
    "Working",
    "analyse",
    "color_hash",
    "from_hex",
    "hamming",
    "hashes_of",
    "header_dimensions",
    "missing_decoder",
    "naive_hashes",
    "open_lazy",
    "sniff_format",
    "to_hex",
    "to_signed",
    "working_image",
]
