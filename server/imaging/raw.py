"""Camera RAW files (DNG, CR2, NEF, ARW) through LibRaw (rawpy).

Opening reads the headers only: the sensor's size and the orientation are known before any
pixel is decoded, so the pixel limit is applied first. The picture is then the camera's own
JPEG preview when it is large enough (decoded at a reduced DCT scale like any JPEG: a
fraction of a demosaic's time and memory), or else a half-size demosaic (a quarter of the
pixels, with the camera's white balance).
"""

from __future__ import annotations

import io
from typing import IO, BinaryIO, cast

import numpy as np
import rawpy
from PIL import Image

from .sniff import CorruptImage, open_lazy

# LibRaw's flip -> the EXIF orientation that turns the stored pixels upright.
_FLIP_ORIENTATION = {0: 1, 3: 3, 5: 8, 6: 6}
# A preview whose aspect ratio differs more than this from the sensor's is not the picture.
_ASPECT_TOLERANCE = 0.03
# What LibRaw raises on data it cannot parse.
RAW_ERRORS = (rawpy.LibRawError, ValueError, OSError)


class RawFile:
    """An opened RAW file: its stored size and orientation; `picture` decodes."""

    def __init__(self, source: str | IO[bytes]) -> None:
        self._raw = rawpy.RawPy()
        try:
            if isinstance(source, str):
                self._raw.open_file(source)
            else:
                # It reads the whole file into memory: only when there is no path to open.
                self._raw.open_buffer(cast(BinaryIO, source))
            sizes = self._raw.sizes
        except RAW_ERRORS as exc:
            self._raw.close()
            raise CorruptImage(f"the RAW file cannot be read: {exc}") from exc
        self.size = (int(sizes.width), int(sizes.height))
        self.orientation = _FLIP_ORIENTATION.get(int(sizes.flip), 1)

    def close(self) -> None:
        self._raw.close()

    def picture(self, long_side: int) -> Image.Image:
        """The picture as stored (not yet turned upright): the embedded preview when its
        long side reaches `long_side` and its shape is the sensor's, else a demosaic."""
        preview = self._preview(long_side)
        if preview is not None:
            return preview
        try:
            rgb = self._raw.postprocess(half_size=True, use_camera_wb=True, output_bps=8,
                                        user_flip=0)
        except RAW_ERRORS as exc:
            raise CorruptImage(f"the RAW image data cannot be decoded: {exc}") from exc
        return Image.fromarray(np.ascontiguousarray(rgb))

    def _preview(self, long_side: int) -> Image.Image | None:
        try:
            thumb = self._raw.extract_thumb()
        except RAW_ERRORS:
            return None  # none, or one LibRaw cannot give: the demosaic decides
        if thumb.format == rawpy.ThumbFormat.JPEG and isinstance(thumb.data, bytes):
            image: Image.Image = open_lazy(io.BytesIO(thumb.data), "JPEG")
        else:
            image = Image.fromarray(np.ascontiguousarray(thumb.data))
        if max(image.size) < long_side or not self._same_shape(image.size):
            return None
        return image

    def _same_shape(self, size: tuple[int, int]) -> bool:
        width, height = self.size
        return abs(size[0] / size[1] - width / height) <= _ASPECT_TOLERANCE * width / height
