"""Writes tests/data/trip.dng with pidng, a DNG writer (`pip install pidng`; it builds a C
extension, which is why the file is committed rather than written by each test run).

    python -m tests.data.make_dng

The picture is a 256x192 crop of scikit-image's astronaut, stored as a 12-bit RGGB mosaic
turned so that orientation 6 (the sensor's flip) shows it upright at 192x256. It carries a
position twice: a GPS IFD and an XMP packet with exif:GPSLatitude/GPSLongitude.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from pidng.core import RAW2DNG, DNGTags, Tag
from pidng.defs import CalibrationIlluminant, CFAPattern, PhotometricInterpretation
from pidng.dng import Type, dngIFD, dngTag

from tests.copy_edits import photo

OUT = Path(__file__).with_name("trip.dng")
XMP = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
       b'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description '
       b'xmlns:exif="http://ns.adobe.com/exif/1.0/" exif:GPSLatitude="51,30.2083N" '
       b'exif:GPSLongitude="0,7.65W"/></rdf:RDF></x:xmpmeta>')


class _IfdTag(dngTag):  # type: ignore[misc]
    """pidng 4.0.9 concatenates str and bytes for IFD-typed tags; this writes the pointer."""

    def setValue(self, value: Any) -> None:  # noqa: N802 (pidng's name)
        self.Value = b"\x00\x00\x00\x00"
        self.subIFD = value[0]


def bayer(rgb: np.ndarray) -> np.ndarray:
    """What a sensor behind an RGGB Bayer filter records of these (linear, 12-bit) values."""
    raw = np.empty(rgb.shape[:2], np.uint16)
    raw[0::2, 0::2] = rgb[0::2, 0::2, 0]
    raw[0::2, 1::2] = rgb[0::2, 1::2, 1]
    raw[1::2, 0::2] = rgb[1::2, 0::2, 1]
    raw[1::2, 1::2] = rgb[1::2, 1::2, 2]
    return raw


def dng(raw: np.ndarray, orientation: int = 1, xmp: bytes | None = None,
        gps: list[Any] | None = None) -> bytes:
    """A DNG of a 12-bit RGGB mosaic (uncompressed), the raw data in IFD0, no preview;
    with an XMP packet and a GPS IFD (pidng tags) when given."""
    height, width = raw.shape
    tags = DNGTags()
    for tag, value in [
        (Tag.ImageWidth, width), (Tag.ImageLength, height), (Tag.TileWidth, width),
        (Tag.TileLength, height), (Tag.Orientation, orientation),
        (Tag.PhotometricInterpretation, PhotometricInterpretation.Color_Filter_Array),
        (Tag.SamplesPerPixel, 1), (Tag.BitsPerSample, 12), (Tag.CFARepeatPatternDim, [2, 2]),
        (Tag.CFAPattern, CFAPattern.RGGB), (Tag.BlackLevel, 0), (Tag.WhiteLevel, 4095),
        (Tag.ColorMatrix1, [[1, 1], [0, 1], [0, 1], [0, 1], [1, 1], [0, 1], [0, 1], [0, 1],
                            [1, 1]]),
        (Tag.CalibrationIlluminant1, CalibrationIlluminant.D65),
        (Tag.AsShotNeutral, [[1, 1], [1, 1], [1, 1]]), (Tag.Make, "Test"),
        (Tag.Model, "Camera"), (Tag.UniqueCameraModel, "Test Camera"),
    ]:
        tags.set(tag, value)
    if xmp is not None:
        tags.set(Tag.XMP_Metadata, list(xmp))
    if gps is not None:
        directory = dngIFD()
        directory.tags += gps
        tags.__tags__[(34853, Type.IFD)] = _IfdTag((34853, Type.IFD), [directory])
    writer = RAW2DNG()
    writer.options(tags, path="", compress=False)
    return bytes(writer.convert(raw))


def main() -> None:
    upright = np.asarray(photo("astronaut"))[40:296, 100:292]  # 256 x 192, upright
    stored = np.rot90(upright, 1).astype(np.uint16) * 16  # orientation 6 turns it back
    gps = [dngTag((1, Type.Ascii), "N"),
           dngTag((2, Type.Rational), [[51, 1], [30, 1], [125, 10]]),
           dngTag((3, Type.Ascii), "W"),
           dngTag((4, Type.Rational), [[0, 1], [7, 1], [390, 10]])]
    OUT.write_bytes(dng(bayer(stored), orientation=6, xmp=XMP, gps=gps))
    print(f"{OUT}: {OUT.stat().st_size} bytes")


if __name__ == "__main__":
    main()
