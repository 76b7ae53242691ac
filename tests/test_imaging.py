"""server.imaging: format sniffing, header sizes, the fast hashing pipeline."""

from __future__ import annotations

import io
import itertools
import random
import time
import tracemalloc
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import imagehash
import pytest
from PIL import Image, ImageEnhance, ImageFile, ImageOps, _imaging

from server.imaging import (
    ACCEPTED,
    RAW_FORMATS,
    CorruptImage,
    ImageFacts,
    ImageRejected,
    TooManyPixels,
    UnsupportedFormat,
    analyse,
    from_hex,
    hamming,
    hashes_of,
    header_dimensions,
    naive_hashes,
    open_lazy,
    sniff_format,
    to_hex,
    to_signed,
    working_image,
)
from tests.images import (
    STORE_TRANSPOSE,
    bomb_png,
    encode,
    make_animated_gif,
    make_image,
    on_white,
    picture,
)

# Formats the tests write with the real encoders here (camera RAW: tests/test_formats.py).
FORMATS = sorted(set(ACCEPTED) - RAW_FORMATS)
LIMIT = 100_000_000
SIZE = (240, 180)
INT64 = range(-(1 << 63), 1 << 63)


def pillow_images_created() -> int:
    """Pillow's count of core images allocated (tracemalloc cannot see its C allocations)."""
    return int(_imaging.get_stats()["new_count"])


def facts(data: bytes, expected_format: str | None = None) -> ImageFacts:
    return analyse(data, max_pixels=LIMIT, expected_format=expected_format)


def assert_int64(f: ImageFacts) -> None:
    for value in (f.phash, f.dhash, f.ahash, f.whash):
        assert value in INT64


@pytest.fixture(scope="module")
def reference() -> ImageFacts:
    """The seed-0 picture at SIZE, losslessly stored: what the other encodings should match."""
    return facts(make_image("PNG", SIZE))


@pytest.fixture(scope="module")
def big_jpeg() -> bytes:
    """A 12-megapixel camera-sized JPEG, made once."""
    return make_image("JPEG", (4000, 3000), quality=90)


# --- sniffing -------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_sniff_accepted_formats(fmt: str) -> None:
    data = make_image(fmt)
    assert sniff_format(data) == fmt
    # The magic bytes are enough: 18 of them, or an ISOBMFF file's ftyp box (its brands).
    needed = int.from_bytes(data[:4], "big") if fmt in ("HEIF", "AVIF") else 18
    assert sniff_format(data[:needed]) == fmt


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"hello, world\n",
        b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj",
        b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"/>',
        b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"></svg>',
        b"PK\x03\x04\x14\x00\x00\x00\x08\x00" + bytes(20),
        b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(20),
        b"BM but not a bitmap header at all",
        b"\xff\xd8",  # too short for the JPEG magic
        b"\x00\x00\x01\x00\x01\x00",  # ICO
    ],
    ids=["empty", "text", "pdf", "xml-svg", "svg", "zip", "wav", "bm-text", "ff-d8", "ico"],
)
def test_sniff_unknown_bytes(data: bytes) -> None:
    assert sniff_format(data) is None


def test_sniff_ignores_the_file_name(tmp_path: Path) -> None:
    path = tmp_path / "holiday.jpg"
    path.write_bytes(make_image("PNG"))
    assert sniff_format(path.read_bytes()[:18]) == "PNG"
    assert analyse(path, max_pixels=LIMIT).content_type == "image/png"


# --- header dimensions ----------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_header_dimensions(fmt: str) -> None:
    data = make_image(fmt, (123, 45))
    assert header_dimensions(data) == (123, 45)
    assert header_dimensions(io.BytesIO(data)) == (123, 45)


@pytest.mark.parametrize("lossless", [False, True])
@pytest.mark.parametrize("mode", ["RGB", "RGBA"])
def test_header_dimensions_webp_from_30_bytes(mode: str, lossless: bool) -> None:
    # Pillow's WebP plugin needs the whole file; the sizes are parsed from the chunk header.
    data = make_image("WEBP", (16383, 3), mode, lossless=lossless)
    assert header_dimensions(data[:30]) == (16383, 3)


def test_header_dimensions_are_stored_not_oriented() -> None:
    assert header_dimensions(make_image("JPEG", (40, 30), exif_orientation=6)) == (30, 40)


def test_header_dimensions_prefix_too_short() -> None:
    exif = Image.Exif()
    exif[0x010E] = "x" * 60_000  # a 60 kB ImageDescription puts the frame header far away
    data = make_image("JPEG", (80, 60), exif=exif)
    assert header_dimensions(data[:4096]) is None
    assert header_dimensions(data) == (80, 60)


@pytest.mark.parametrize(
    "data", [b"", b"plain text", b"%PDF-1.4", b"\x89PNG\r\n\x1a\n" + bytes(40)]
)
def test_header_dimensions_unknown(data: bytes) -> None:
    assert header_dimensions(data) is None


def test_header_dimensions_of_a_bomb_is_instant_and_allocates_nothing() -> None:
    data = bomb_png(30_000, 30_000)
    assert len(data) < 1_000
    header_dimensions(data)  # warm up: plugin import
    before = pillow_images_created()
    tracemalloc.start()
    start = time.perf_counter()
    size = header_dimensions(data)
    elapsed = time.perf_counter() - start
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert size == (30_000, 30_000)
    assert elapsed < 0.5  # generous for a loaded machine; decoding 900 MP takes many seconds
    assert peak < 2_000_000
    assert pillow_images_created() == before  # no pixel buffer either
    # Pillow's own bomb check is back in force for everyone else.
    with pytest.raises(Image.DecompressionBombError):
        Image.open(io.BytesIO(data))


# --- analyse: formats and modes -------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_analyse_every_format(fmt: str, reference: ImageFacts) -> None:
    f = facts(make_image(fmt, SIZE))
    assert (f.format, f.content_type) == (fmt, ACCEPTED[fmt])
    assert (f.width, f.height, f.frames) == (*SIZE, 1)
    assert_int64(f)
    assert len(f.colorhash) == 11  # 14 bins x 3 bits
    # Lossy (JPEG, WebP) and palette (GIF) encodings of one picture hash alike.
    assert hamming(f.phash, reference.phash) <= 4
    assert hamming(f.whash, reference.whash) <= 8


@pytest.mark.parametrize(
    ("fmt", "mode"),
    [
        ("JPEG", "L"),
        ("JPEG", "CMYK"),
        ("PNG", "L"),
        ("PNG", "I;16"),
        ("PNG", "P"),
        ("PNG", "1"),
        ("TIFF", "CMYK"),
        ("TIFF", "I;16"),
        ("TIFF", "I"),
        ("TIFF", "F"),
        ("BMP", "P"),
        ("BMP", "L"),
        ("WEBP", "RGB"),
    ],
)
def test_analyse_modes(fmt: str, mode: str, reference: ImageFacts) -> None:
    data = make_image(fmt, SIZE, mode)
    with Image.open(io.BytesIO(data)) as im:
        assert im.mode == mode  # the file really is in that mode
    f = facts(data)
    assert (f.format, f.width, f.height) == (fmt, *SIZE)
    # 16-bit samples are scaled, not clipped to white; grey and CMYK keep the structure.
    assert hamming(f.phash, reference.phash) <= 6


def test_analyse_grayscale_has_no_colour() -> None:
    f = facts(make_image("PNG", SIZE, "L"))
    black_bits, gray_bits, colour_bits = f.colorhash[:2], f.colorhash[2], f.colorhash[3:]
    assert colour_bits == "0" * 8  # every pixel is in the black or grey bins
    assert (black_bits, gray_bits) != ("00", "0")


def test_analyse_animated_gif_hashes_the_first_frame() -> None:
    f = facts(make_animated_gif(SIZE, frames=4, seed=3))
    first = facts(make_image("GIF", SIZE, seed=3))
    assert (f.format, f.frames, f.width, f.height) == ("GIF", 4, *SIZE)
    assert hamming(f.phash, first.phash) <= 2


@pytest.mark.parametrize(
    ("fmt", "mode", "transparent"),
    [
        ("PNG", "RGBA", False),
        ("PNG", "LA", False),
        ("PNG", "P", True),
        ("GIF", "P", True),
        ("WEBP", "RGBA", False),
        ("TIFF", "RGBA", False),
    ],
)
def test_alpha_is_flattened_onto_white(fmt: str, mode: str, transparent: bool) -> None:
    seed = 5
    drawn_on_white = on_white(picture(SIZE, seed, transparent=True))
    on_white_png = encode(drawn_on_white.convert("L" if mode == "LA" else "RGB"), "PNG")
    alpha_ignored = facts(make_image("PNG", SIZE, seed=seed))
    f = facts(make_image(fmt, SIZE, mode, seed, transparent=transparent))
    assert hamming(f.phash, facts(on_white_png).phash) <= 2
    # The hidden colour field under the clear background would give another hash.
    assert hamming(f.phash, alpha_ignored.phash) >= 12


# --- analyse: orientation -------------------------------------------------------------------


def test_store_transpose_matches_pillow() -> None:
    # The helper's un-rotation, checked against Pillow's own reading of the tag.
    upright = picture((30, 20))
    for orientation in range(1, 9):
        data = make_image("PNG", (30, 20), exif_orientation=orientation)
        with Image.open(io.BytesIO(data)) as im:
            turned = ImageOps.exif_transpose(im)
        assert turned.convert("RGB").tobytes() == upright.tobytes(), orientation


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_jpeg(orientation: int) -> None:
    portrait = (180, 240)
    upright = facts(make_image("JPEG", portrait, seed=2))
    f = facts(make_image("JPEG", portrait, seed=2, exif_orientation=orientation))
    assert (f.width, f.height) == portrait
    assert hamming(f.phash, upright.phash) <= 4
    assert hamming(f.dhash, upright.dhash) <= 8
    if orientation != 1:
        # The stored pixels alone hash far away: the orientation really was applied.
        stored = picture(portrait, 2).transpose(STORE_TRANSPOSE[orientation])
        assert hamming(facts(encode(stored, "JPEG")).phash, upright.phash) >= 12


@pytest.mark.parametrize("fmt", ["PNG", "WEBP", "TIFF"])
def test_exif_orientation_other_formats(fmt: str) -> None:
    upright = facts(make_image(fmt, (180, 240), seed=4))
    f = facts(make_image(fmt, (180, 240), seed=4, exif_orientation=8))
    assert (f.width, f.height) == (180, 240)
    assert hamming(f.phash, upright.phash) <= 4


def test_working_image_allows_cheap_variants() -> None:
    # A flipped copy is found by flipping the small working image, without decoding again.
    data = make_image("JPEG", (600, 400), seed=6)
    flipped = facts(
        encode(picture((600, 400), 6).transpose(Image.Transpose.FLIP_LEFT_RIGHT), "JPEG")
    )
    with open_lazy(io.BytesIO(data), "JPEG") as im:
        work = working_image(im)
    assert min(work.gray.size) >= 256 and work.gray.mode == "L" and work.rgb.mode == "RGB"
    phash = hashes_of(work.gray.transpose(Image.Transpose.FLIP_LEFT_RIGHT))[0]
    assert hamming(phash, flipped.phash) <= 2
    assert hamming(hashes_of(work.gray)[0], flipped.phash) >= 12


# --- analyse: fast versus naive -------------------------------------------------------------


def test_fast_pipeline_matches_naive_on_a_12mp_jpeg(big_jpeg: bytes) -> None:
    f = facts(big_jpeg)
    phash, dhash, ahash, whash, colorhash = naive_hashes(big_jpeg)
    assert (f.width, f.height) == (4000, 3000)
    assert hamming(f.phash, phash) <= 4
    assert hamming(f.ahash, ahash) <= 4
    assert hamming(f.whash, whash) <= 6
    assert hamming(f.dhash, dhash) <= 8


def test_fast_pipeline_matches_naive_on_a_png() -> None:
    data = make_image("PNG", (1100, 800), seed=7)
    f = facts(data)
    phash, _, ahash, whash, _ = naive_hashes(data)
    assert hamming(f.phash, phash) <= 4
    assert hamming(f.ahash, ahash) <= 4
    assert hamming(f.whash, whash) <= 6


def test_analyse_accepts_paths_and_files(tmp_path: Path) -> None:
    data = make_image("PNG", SIZE)
    path = tmp_path / "upload"
    path.write_bytes(data)
    expected = facts(data)
    assert analyse(path, max_pixels=LIMIT) == expected
    assert analyse(str(path), max_pixels=LIMIT) == expected
    with path.open("rb") as fp:
        assert analyse(fp, max_pixels=LIMIT) == expected


def test_analyse_in_threads_is_consistent() -> None:
    # The service runs analyses side by side in a pool; the bomb path lifts Pillow's limit.
    sources = [make_image(fmt, (96, 72), seed=i) for i, fmt in enumerate(FORMATS)]
    sources.append(bomb_png())
    limit_before = Image.MAX_IMAGE_PIXELS

    def outcome(data: bytes) -> ImageFacts | str:
        try:
            return facts(data)
        except ImageRejected as exc:
            return type(exc).__name__

    expected = [outcome(data) for data in sources]
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(outcome, sources * 4))
    assert results == expected * 4
    assert expected[-1] == "TooManyPixels"
    assert Image.MAX_IMAGE_PIXELS == limit_before


# --- analyse: rejections --------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_truncated_is_corrupt(fmt: str) -> None:
    data = make_image(fmt, SIZE)
    with pytest.raises(CorruptImage) as caught:
        facts(data[: len(data) // 2])
    assert fmt in caught.value.message
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "GIF", "TIFF"])
def test_garbage_after_the_magic_is_corrupt(fmt: str) -> None:
    data = make_image(fmt, SIZE)
    noise = random.Random(1).randbytes(len(data))
    with pytest.raises(CorruptImage):
        facts(data[:18] + noise)


@pytest.mark.parametrize("data", [b"", b"%PDF-1.7\n", b"<svg/>", b"PK\x03\x04" + bytes(30)])
def test_not_an_image_is_unsupported(data: bytes) -> None:
    with pytest.raises(UnsupportedFormat) as caught:
        facts(data)
    assert isinstance(caught.value, ImageRejected) and "JPEG" in caught.value.message


def test_expected_format_mismatch_is_corrupt() -> None:
    with pytest.raises(CorruptImage, match="expected a PNG"):
        facts(make_image("JPEG"), expected_format="PNG")
    assert facts(make_image("JPEG"), expected_format="JPEG").format == "JPEG"


def test_bomb_is_refused_before_decoding() -> None:
    data = bomb_png(30_000, 30_000)
    before = pillow_images_created()
    start = time.perf_counter()
    with pytest.raises(TooManyPixels, match="30000x30000"):
        facts(data)
    assert time.perf_counter() - start < 0.5  # generous; a decode would take seconds
    assert pillow_images_created() == before


def test_pixel_limit_is_inclusive() -> None:
    data = make_image("PNG", (50, 40))
    assert analyse(data, max_pixels=2000).width == 50
    with pytest.raises(TooManyPixels):
        analyse(data, max_pixels=1999)


@pytest.mark.parametrize("fmt", ["GIF", "TIFF", "PNG", "JPEG"])
def test_our_limit_not_pillows(fmt: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # Above Pillow's own limit (a warning, then an error) but within ours: accepted, and
    # decoders that check again while decoding (GIF, TIFF) do not object either.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    f = analyse(make_image(fmt, (64, 48)), max_pixels=10_000)
    assert (f.width, f.height) == (64, 48)
    assert Image.MAX_IMAGE_PIXELS == 1000


# --- hash values ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def seed_hashes() -> list[int]:
    return [facts(make_image("PNG", (128, 96), seed=seed)).phash for seed in range(16)]


def test_different_pictures_are_far_apart(seed_hashes: list[int]) -> None:
    distances = [hamming(a, b) for a, b in itertools.combinations(seed_hashes, 2)]
    assert min(distances) >= 14


def test_phash_distances_are_even(seed_hashes: list[int]) -> None:
    # Each pHash has exactly 32 bits above the median, so two differ in an even number.
    distances = [hamming(a, b) for a, b in itertools.combinations(seed_hashes, 2)]
    assert all(d % 2 == 0 for d in distances)
    assert all(bin(h & (1 << 64) - 1).count("1") == 32 for h in seed_hashes)


@pytest.mark.parametrize("seed", range(6))
def test_same_picture_edited_stays_close(seed: int) -> None:
    original = facts(make_image("PNG", (320, 240), seed=seed))
    edited = picture((320, 240), seed).resize((160, 120), Image.Resampling.LANCZOS)
    edited = ImageEnhance.Brightness(edited).enhance(1.1)
    f = facts(encode(edited, "JPEG", quality=70))
    assert hamming(f.phash, original.phash) <= 10


def test_hash_bits_match_imagehash_order() -> None:
    gray = picture((64, 64)).convert("L")
    phash, dhash, ahash, whash = hashes_of(gray)
    assert to_hex(phash) == str(imagehash.phash(gray))
    assert to_hex(dhash) == str(imagehash.dhash(gray))
    assert to_hex(ahash) == str(imagehash.average_hash(gray))
    assert to_hex(whash) == str(imagehash.whash(gray, image_scale=64))


@pytest.mark.parametrize(
    "value", [0, 1, -1, (1 << 63) - 1, -(1 << 63), 0x0123456789ABCDEF, -0x0123456789ABCDEF]
)
def test_hex_round_trip(value: int) -> None:
    text = to_hex(value)
    assert len(text) == 16 and text == text.lower()
    assert from_hex(text) == value
    assert from_hex(text.upper()) == value


def test_signed_range() -> None:
    assert to_hex(-1) == "f" * 16
    assert from_hex("8000000000000000") == -(1 << 63)
    assert from_hex("7fffffffffffffff") == (1 << 63) - 1
    assert to_signed((1 << 64) - 1) == -1
    assert to_signed(1 << 63) == -(1 << 63)
    assert hamming(0, -1) == 64
    for bad in ["", "abc", "0" * 17, "g" * 16]:
        with pytest.raises(ValueError):
            from_hex(bad)
