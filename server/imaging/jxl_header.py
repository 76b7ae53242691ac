"""The size of a JPEG XL image from its first bytes, without decoding it: the JPEG XL plugin
decodes the whole image when it opens one, so a bomb is refused from this first."""

from __future__ import annotations

_CONTAINER = b"\x00\x00\x00\x0cJXL \r\n\x87\n"
_SIGNATURE = b"\xff\x0a"
# Width:height ratios of the SizeHeader's 3-bit ratio field (0: the width is given).
_RATIOS = {1: (1, 1), 2: (12, 10), 3: (4, 3), 4: (3, 2), 5: (16, 9), 6: (5, 4), 7: (2, 1)}
_SIZE_BITS = ((9, 1), (13, 1), (18, 1), (30, 1))  # U32(Bits(9)+1, Bits(13)+1, ...)


class _Bits:
    """Bits least significant first, as JPEG XL packs them."""

    def __init__(self, data: bytes) -> None:
        self.value = int.from_bytes(data, "little")
        self.available = 8 * len(data)
        self.pos = 0

    def read(self, n: int) -> int:
        if self.pos + n > self.available:
            raise ValueError("the JPEG XL header is cut short")
        out = (self.value >> self.pos) & ((1 << n) - 1)
        self.pos += n
        return out

    def dimension(self, small: bool) -> int:
        if small:
            return 8 * (1 + self.read(5))
        bits, offset = _SIZE_BITS[self.read(2)]
        return self.read(bits) + offset


def codestream(data: bytes) -> bytes | None:
    """The start of the codestream: the data itself, or the first `jxlc`/`jxlp` box of a
    container, as far as `data` reaches."""
    if data.startswith(_SIGNATURE):
        return data
    if not data.startswith(_CONTAINER):
        return None
    pos = 0
    while pos + 8 <= len(data):
        size, kind, header = int.from_bytes(data[pos:pos + 4], "big"), data[pos + 4:pos + 8], 8
        if size == 1:
            size, header = int.from_bytes(data[pos + 8:pos + 16], "big"), 16
        if kind == b"jxlc":
            return data[pos + header:]
        if kind == b"jxlp":
            return data[pos + header + 4:]  # after the part's sequence number
        if size == 0 or size < header:
            return None
        pos += size
    return None


def jxl_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) as the SizeHeader gives them (before the codestream's orientation);
    None when `data` does not reach them or is not JPEG XL."""
    stream = codestream(data)
    if stream is None or not stream.startswith(_SIGNATURE):
        return None
    bits = _Bits(stream[2:18])
    try:
        small = bool(bits.read(1))
        height = bits.dimension(small)
        ratio = bits.read(3)
        if ratio:
            num, den = _RATIOS[ratio]
            return height * num // den, height
        return bits.dimension(small), height
    except ValueError:
        return None
