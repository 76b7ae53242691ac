"""Real ORB features and their quantisers, for bench/retrieval_study.py.

Stored images: ORB (OpenCV) on the picture scaled to at most 640 px, the 200 strongest
keypoints. Queries: at most 1024 px, 1500 keypoints. Two quantisers turn a 256-bit
descriptor into a word:
- a binary vocabulary: hierarchical k-majority (256 x 256 = 65,536 leaves, optionally
  extended by a few descriptor bits), trained on images that are NOT the benchmark photos
  (generated pictures, rendered text, the LFW faces, screenshots and diagrams shipped with
  the Rust documentation on this machine);
- bit sampling (data independent): the word is `bits` chosen descriptor bits.
"""

from __future__ import annotations

import hashlib
import io
import random
from collections.abc import Iterable
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

STORED_SIDE, STORED_FEATURES = 640, 200
QUERY_SIDE, QUERY_FEATURES = 1024, 1500
RUST_DOCS = Path.home() / ".rustup/toolchains"


def orb(im: Image.Image, side: int, count: int) -> tuple[np.ndarray, np.ndarray]:
    """(xy float32 n x 2 in the scaled picture, descriptors as n x 4 uint64)."""
    gray = im.convert("L")
    scale = min(1.0, side / max(gray.size))
    if scale < 1.0:
        gray = gray.resize((max(1, round(gray.width * scale)), max(1, round(gray.height * scale))),
                           Image.Resampling.BILINEAR)
    detector = cv2.ORB_create(  # type: ignore[attr-defined]
        nfeatures=count, fastThreshold=10)
    points, desc = detector.detectAndCompute(np.asarray(gray), None)
    if desc is None:
        return np.zeros((0, 2), np.float32), np.zeros((0, 4), np.uint64)
    xy = np.array([p.pt for p in points], np.float32)
    return xy, np.ascontiguousarray(desc).view(np.uint64).reshape(-1, 4)


def stored_features(im: Image.Image) -> np.ndarray:
    return orb(im, STORED_SIDE, STORED_FEATURES)[1]


def query_features(data: bytes) -> np.ndarray:
    return orb(Image.open(io.BytesIO(data)), QUERY_SIDE, QUERY_FEATURES)[1]


def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """All distances between the rows of a (n x 4) and b (m x 4): n x m int."""
    out: np.ndarray = np.bitwise_count(a[:, None, :] ^ b[None, :, :]).sum(-1, dtype=np.int32)
    return out


def nearest(desc: np.ndarray, centres: np.ndarray, block: int = 4096) -> np.ndarray:
    out = np.empty(len(desc), np.int64)
    for s in range(0, len(desc), block):
        out[s:s + block] = hamming(desc[s:s + block], centres).argmin(1)
    return out


def _majority(desc: np.ndarray, labels: np.ndarray, k: int, rng: np.random.Generator,
              old: np.ndarray) -> np.ndarray:
    bits = np.unpackbits(desc.view(np.uint8).reshape(len(desc), 32), axis=1)
    sums = np.zeros((k, 256), np.int64)
    np.add.at(sums, labels, bits)
    counts = np.bincount(labels, minlength=k)
    packed = np.packbits((sums * 2 > counts[:, None]).astype(np.uint8), axis=1)
    centres: np.ndarray = packed.view(np.uint64).reshape(k, 4).copy()
    empty = counts == 0
    centres[empty] = desc[rng.integers(0, len(desc), int(empty.sum()))] if len(desc) else old[empty]
    return centres


def k_majority(desc: np.ndarray, k: int, rounds: int, seed: int) -> np.ndarray:
    """Binary k-means (Grana et al.'s k-majority): k centres of 256 bits."""
    rng = np.random.default_rng(seed)
    if len(desc) <= k:
        pad = desc[rng.integers(0, max(1, len(desc)), k - len(desc))] if len(desc) else \
            rng.integers(0, 2**63, (k, 4), dtype=np.uint64)
        return np.concatenate([desc, pad])[:k]
    centres = desc[rng.choice(len(desc), k, replace=False)].copy()
    for _ in range(rounds):
        centres = _majority(desc, nearest(desc, centres), k, rng, centres)
    return centres


class Vocabulary:
    """Two levels of k-majority: word = top * k2 + leaf, then `extra` descriptor bits."""

    def __init__(self, top: np.ndarray, leaves: np.ndarray, extra_bits: tuple[int, ...] = ()):
        self.top, self.leaves, self.extra_bits = top, leaves, extra_bits

    @classmethod
    def train(cls, desc: np.ndarray, k1: int = 256, k2: int = 256, seed: int = 5) -> Vocabulary:
        top = k_majority(desc[:200_000], k1, 8, seed)
        labels = nearest(desc, top)
        leaves = np.stack([k_majority(desc[labels == c], k2, 6, seed + c) for c in range(k1)])
        return cls(top, leaves)

    @property
    def size(self) -> int:
        return int(len(self.top) * self.leaves.shape[1]) << len(self.extra_bits)

    def extended(self, bits: int) -> Vocabulary:
        return Vocabulary(self.top, self.leaves, SPREAD_BITS[:bits])

    def words(self, desc: np.ndarray) -> np.ndarray:
        key = (id(desc), len(desc), id(self.top))
        if key not in _BASE_WORDS:  # the extensions share the (costly) base word
            _BASE_WORDS.clear()
            _BASE_WORDS[key] = (desc, self._base(desc))
        word = _BASE_WORDS[key][1]
        for b in self.extra_bits:
            word = (word << 1) | bit(desc, b)
        return word

    def _base(self, desc: np.ndarray) -> np.ndarray:
        top = nearest(desc, self.top)
        leaf = np.empty(len(desc), np.int64)
        for c in np.unique(top):
            rows = np.nonzero(top == c)[0]
            leaf[rows] = hamming(desc[rows], self.leaves[c]).argmin(1)
        word: np.ndarray = top * self.leaves.shape[1] + leaf
        return word


_BASE_WORDS: dict[tuple[int, int, int], tuple[np.ndarray, np.ndarray]] = {}


# Descriptor bits used by bit sampling and by the vocabulary's extension (fixed, spread out).
SPREAD_BITS = tuple(random.Random(11).sample(range(256), 256))


def bit(desc: np.ndarray, b: int) -> np.ndarray:
    # Bit b of the descriptor as OpenCV's bytes: byte b // 8, bit b % 8 (little-endian words).
    return ((desc[:, b // 64] >> np.uint64(b % 64)) & np.uint64(1)).astype(np.int64)


def sampled_words(desc: np.ndarray, bits: int, table: int = 0) -> np.ndarray:
    """Bit-sampling LSH: `bits` of the descriptor (table t uses the t-th group of bits)."""
    chosen = SPREAD_BITS[table * bits:(table + 1) * bits]
    word = np.zeros(len(desc), np.int64)
    for b in chosen:
        word = (word << 1) | bit(desc, b)
    return word


# --- training images (none of them a benchmark photo) -----------------------------------------

def rust_doc_images() -> list[Image.Image]:
    """Screenshots, diagrams and a few photos from the Rust docs on this machine, deduplicated."""
    seen, out = set(), []
    paths = sorted(p for ext in ("*.png", "*.jpg", "*.jpeg") for p in RUST_DOCS.rglob(ext))
    for path in paths:
        data = path.read_bytes()
        digest = hashlib.sha256(data).digest()
        if len(data) < 20_000 or digest in seen:
            continue
        seen.add(digest)
        try:
            out.append(Image.open(io.BytesIO(data)).convert("RGB"))
        except OSError:
            continue
    return out


def text_pages(count: int, seed: int = 3) -> list[Image.Image]:
    """Rendered text in a few sizes and colours, like the UI around a screenshot."""
    rng = random.Random(seed)
    words = ("search image upload photo share like reply follow settings profile new "
             "message today yesterday 12:45 home explore notifications more").split()
    out = []
    for _ in range(count):
        im = Image.new("RGB", (640, 480), tuple(rng.randrange(200, 256) for _ in range(3)))
        draw = ImageDraw.Draw(im)
        y = 5
        while y < 470:
            size = rng.choice([10, 12, 14, 18, 24])
            line = " ".join(rng.choice(words) for _ in range(rng.randrange(3, 12)))
            draw.text((rng.randrange(5, 60), y), line, fill=(rng.randrange(90),) * 3,
                      font=ImageFont.load_default(size=size))
            y += size + rng.randrange(4, 14)
        out.append(im)
    return out


def generated_pictures(count: int, seed: int = 400_000) -> list[Image.Image]:
    from tests.images import picture

    return [picture((640, 480), seed + i) for i in range(count)]


def training_descriptors(images: Iterable[Image.Image]) -> np.ndarray:
    parts = [stored_features(im) for im in images]
    return np.concatenate([p for p in parts if len(p)])
