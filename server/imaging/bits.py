"""64-bit hash values: signed for PostgreSQL's bigint, hex for people, Hamming distances."""

from __future__ import annotations

_BITS64 = (1 << 64) - 1


def to_signed(value: int) -> int:
    """A 64-bit pattern (signed or unsigned) as a signed 64-bit int."""
    value &= _BITS64
    return value - (1 << 64) if value >> 63 else value


def to_hex(value: int) -> str:
    """16 lowercase hex digits of the unsigned form (imagehash's str() of the same hash)."""
    return f"{value & _BITS64:016x}"


def from_hex(text: str) -> int:
    """The signed value of 16 hex digits; ValueError for anything else."""
    if len(text) != 16:
        raise ValueError(f"a 64-bit hash has 16 hex digits, got {len(text)}")
    return to_signed(int(text, 16))


def hamming(a: int, b: int) -> int:
    """Number of differing bits between two 64-bit hashes (signed or unsigned)."""
    return ((a ^ b) & _BITS64).bit_count()
