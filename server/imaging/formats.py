"""Which accepted formats this server can decode. JPEG, PNG, WebP, GIF, BMP and TIFF are
Pillow's own; the others need a decoder that may be missing where its wheel is (AVIF: Pillow
built with libavif; HEIF: pillow-heif; JPEG XL: pillow-jxl-plugin; camera RAW: rawpy, which
wraps LibRaw). A format sniffed from the bytes whose decoder is missing is refused with 415
naming it, never a 500.
"""

from __future__ import annotations

import importlib
import logging
from functools import cache

from PIL import features

from .sniff import RAW_FORMATS

log = logging.getLogger(__name__)

# The format -> what provides its decoder, named in the 415 when it is missing.
LIBRARY = {
    "AVIF": "Pillow built with libavif",
    "HEIF": "pillow-heif",
    "JXL": "pillow-jxl-plugin",
    **dict.fromkeys(RAW_FORMATS, "rawpy"),
}

NAMES = {"HEIF": "HEIC/HEIF", "JXL": "JPEG XL", "AVIF": "AVIF"}


def _load(module: str) -> bool:
    try:
        importlib.import_module(module)
    except ImportError as exc:
        log.warning("%s is not installed (%s): its formats are refused", module, exc)
        return False
    return True


@cache
def _decodable() -> frozenset[str]:
    found = set()
    if features.check("avif"):
        found.add("AVIF")
    if _load("pillow_heif"):
        from pillow_heif import register_heif_opener

        # Depth maps and auxiliary images are never used: not decoding them saves memory.
        register_heif_opener(thumbnails=False, depth_images=False, aux_images=False)
        found.add("HEIF")
    if _load("pillow_jxl"):  # registers its Pillow plugin on import
        found.add("JXL")
    if _load("rawpy"):
        found |= RAW_FORMATS
    return frozenset(found)


def missing_decoder(fmt: str) -> str | None:
    """Why this server cannot decode `fmt` ('... needs pillow-heif, which this server does
    not have'), or None when it can."""
    if fmt not in LIBRARY or fmt in _decodable():
        return None
    return f"{NAMES.get(fmt, fmt)} images need {LIBRARY[fmt]}, which this server does not have"


def register_decoders() -> None:
    """Register the optional Pillow plugins (once; the analysis calls it before opening)."""
    _decodable()
