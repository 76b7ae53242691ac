"""The images of bench/retrieval_study.py: real stored pictures, hard copies of them as queries,
and the recipe that synthesises a million stored images' descriptors from real ones.

Stored for real: the skimage photos (the originals that queries contain) and 1,234 real
distractors (46 random sub-windows of each photo, some flipped or resized, the 200 LFW faces:
tests/photo_edits.py; plus the Rust documentation's screenshots and diagrams).
Queries: every original under the hard copy families below (simple PIL versions: containment
of the picture inside clutter, or crops keeping 50-65% of it).
Synthetic images: see `SyntheticPool`.
"""

from __future__ import annotations

import io
import math
import random
from collections.abc import Callable

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageOps

from bench.retrieval_features import text_pages
from tests.photo_edits import jpeg

Copy = Callable[[Image.Image, random.Random, list[Image.Image]], Image.Image]


def _scaled(im: Image.Image, width: int) -> Image.Image:
    return im.resize((width, max(1, round(im.height * width / im.width))), Image.Resampling.LANCZOS)


def crop_half(im: Image.Image, rng: random.Random, _: list[Image.Image]) -> Image.Image:
    keep = rng.uniform(0.50, 0.65)
    aspect = math.exp(rng.uniform(-0.3, 0.3))
    w, h = im.size
    cw = min(w, round(w * math.sqrt(keep * aspect)))
    ch = min(h, round(w * h * keep / cw))
    x, y = rng.randrange(w - cw + 1), rng.randrange(h - ch + 1)
    return im.crop((x, y, x + cw, y + ch))


def inset(im: Image.Image, rng: random.Random, others: list[Image.Image]) -> Image.Image:
    """The picture at 35-55% of the width of a text page (an article, a post)."""
    page = text_pages(1, seed=rng.randrange(10**6))[0].resize((1000, 1300))
    pic = _scaled(im, round(1000 * rng.uniform(0.35, 0.55)))
    page.paste(pic, (rng.randrange(20, 1000 - pic.width - 20),
                     rng.randrange(100, max(101, 1300 - pic.height - 100))))
    return page


def screenshot(im: Image.Image, rng: random.Random, others: list[Image.Image]) -> Image.Image:
    """A phone screenshot: status bar, app bar, the picture full width, text and buttons."""
    shot = Image.new("RGB", (720, 1480), (250, 250, 250) if rng.random() < 0.5 else (18, 18, 18))
    draw = ImageDraw.Draw(shot)
    draw.rectangle((0, 0, 720, 60), fill=(30, 30, 30))
    draw.text((20, 15), "12:45  4G  87%", fill=(255, 255, 255))
    draw.rectangle((0, 60, 720, 160), fill=(60, 90, 200))
    draw.text((30, 90), "@someone · 3h", fill=(255, 255, 255))
    pic = _scaled(im, 720)
    shot.paste(pic, (0, 170))
    y = 180 + pic.height
    for _ in range(6):
        draw.text((30, y), "look at this, it is amazing #photo", fill=(120, 120, 120))
        y += 30
    return shot


def screen_photo(im: Image.Image, rng: random.Random, others: list[Image.Image]) -> Image.Image:
    """A photo of a monitor: dark bezel, perspective, blur, colour cast, noise."""
    w, h = 1200, 900
    canvas = np.full((h, w, 3), 25, np.uint8)
    pic = np.asarray(_scaled(im, 700).convert("RGB"))
    ph, pw = pic.shape[:2]
    src = np.array([[0, 0], [pw, 0], [pw, ph], [0, ph]], np.float32)
    j = [rng.uniform(-50, 50) for _ in range(8)]
    x0, y0 = 250, max(20, (h - ph) // 2)
    dst = np.array([[x0 + j[0], y0 + j[1]], [x0 + pw + j[2], y0 + j[3]],
                    [x0 + pw + j[4], y0 + ph + j[5]], [x0 + j[6], y0 + ph + j[7]]], np.float32)
    warped = cv2.warpPerspective(pic, cv2.getPerspectiveTransform(src, dst), (w, h),
                                 borderMode=cv2.BORDER_TRANSPARENT, dst=canvas.copy())
    out = Image.fromarray(warped).filter(ImageFilter.GaussianBlur(rng.uniform(0.8, 1.6)))
    cast = Image.new("RGB", out.size, (rng.randrange(200, 256), rng.randrange(200, 256), 255))
    out = Image.blend(out, cast, 0.15)
    noise = np.random.default_rng(rng.randrange(10**6)).normal(0, 6, (h, w, 3))
    return Image.fromarray(np.clip(np.asarray(out) + noise, 0, 255).astype(np.uint8))


def collage(im: Image.Image, rng: random.Random, others: list[Image.Image]) -> Image.Image:
    """A 2 x 2 grid: the picture and three other pictures."""
    cells = [im] + rng.sample(others, 3)
    rng.shuffle(cells)
    out = Image.new("RGB", (1000, 1000), (255, 255, 255))
    for k, cell in enumerate(cells):
        tile = ImageOps.fit(cell.convert("RGB"), (490, 490)) if cell is not im else \
            ImageOps.contain(cell.convert("RGB"), (490, 490))
        out.paste(tile, (k % 2 * 505, k // 2 * 505))
    return out


def frame(im: Image.Image, rng: random.Random, others: list[Image.Image]) -> Image.Image:
    """A thick coloured frame with a mat, slightly rotated."""
    colour = tuple(rng.randrange(256) for _ in range(3))
    framed = ImageOps.expand(ImageOps.expand(im.convert("RGB"), 20, (240, 235, 220)),
                             round(im.width * 0.12), colour)
    return framed.rotate(rng.uniform(-4, 4), Image.Resampling.BICUBIC, expand=True,
                         fillcolor=(255, 255, 255))


def stickers(im: Image.Image, rng: random.Random, others: list[Image.Image]) -> Image.Image:
    """Emoji-like stickers and a text label over ~20% of the picture."""
    out = im.convert("RGB").copy()
    draw = ImageDraw.Draw(out)
    w, h = out.size
    for _ in range(5):
        r = round(min(w, h) * rng.uniform(0.06, 0.12))
        x, y = rng.randrange(w), rng.randrange(h)
        draw.ellipse((x - r, y - r, x + r, y + r), fill=(255, 205, 0), outline=(0, 0, 0), width=3)
        draw.ellipse((x - r // 3, y - r // 3, x - r // 6, y), fill=(0, 0, 0))
        draw.ellipse((x + r // 6, y - r // 3, x + r // 3, y), fill=(0, 0, 0))
    draw.rectangle((w // 8, h * 3 // 4, w * 7 // 8, h * 7 // 8), fill=(255, 255, 255))
    draw.text((w // 6, h * 3 // 4 + 5), "when the weekend hits", fill=(0, 0, 0))
    return out


def colour_filter(im: Image.Image, rng: random.Random, others: list[Image.Image]) -> Image.Image:
    """A social-network filter: warm or cold tint, contrast, saturation, vignette."""
    out = ImageEnhance.Color(im.convert("RGB")).enhance(rng.uniform(0.3, 1.6))
    out = ImageEnhance.Contrast(out).enhance(rng.uniform(0.7, 1.4))
    tint = (255, 180, 110) if rng.random() < 0.5 else (110, 170, 255)
    out = Image.blend(out, Image.new("RGB", out.size, tint), 0.2)
    w, h = out.size
    yy, xx = np.mgrid[0:h, 0:w]
    r = np.hypot((xx - w / 2) / (w / 2), (yy - h / 2) / (h / 2))
    vignette = np.clip(1.15 - 0.45 * r**2, 0.3, 1)[..., None]
    return Image.fromarray((np.asarray(out) * vignette).astype(np.uint8))


FAMILIES: dict[str, Copy] = {
    "crop_50": crop_half, "inset_page": inset, "screenshot": screenshot,
    "screen_photo": screen_photo, "collage": collage, "frame": frame,
    "stickers": stickers, "colour_filter": colour_filter,
}


def hard_copies(originals: list[tuple[str, Image.Image]], others: list[Image.Image],
                per_family: int) -> list[tuple[int, str, bytes]]:
    """(index of the original, family, JPEG bytes) for every original x family x instance."""
    out = []
    for index, (name, im) in enumerate(originals):
        for family, make in FAMILIES.items():
            for k in range(per_family):
                rng = random.Random(f"{name}/{family}/{k}")
                out.append((index, family, jpeg(make(im, rng, others), 85)))
    return out


def decoded(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data)).convert("RGB")


class SyntheticPool:
    """Descriptors that synthetic images are drawn from.

    The pool holds every stored descriptor of the real distractors and of generated
    pictures and text pages, each in `copies` versions with Binomial(256, flip) bits flipped
    (a re-detection of the same structure differs by ~10-40 bits). A synthetic image takes a
    feature count from the real distractors' counts and that many pool entries at random, so
    its words follow the real word frequencies; it shares no structure with the queries
    beyond what real distractors share. Each quantiser quantises the pool once; an image's
    words are then a lookup.
    """

    def __init__(self, real: list[np.ndarray], extra: list[np.ndarray], copies: int = 3,
                 flip: float = 0.04, seed: int = 17):
        rng = np.random.default_rng(seed)
        base = np.concatenate([d for d in real + extra if len(d)])
        versions = []
        for _ in range(copies):
            bits = np.unpackbits(base.view(np.uint8).reshape(len(base), 32), axis=1)
            bits ^= (rng.random(bits.shape) < flip).astype(np.uint8)
            versions.append(np.packbits(bits, axis=1).view(np.uint64).reshape(-1, 4))
        self.desc = np.concatenate(versions)
        self.counts = np.array([len(d) for d in real if len(d)])

    def images(self, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """(offsets n+1, pool indices): image i's features are idx[off[i]:off[i+1]]."""
        rng = np.random.default_rng(seed)
        counts = rng.choice(self.counts, n)
        offsets = np.concatenate([[0], np.cumsum(counts)])
        return offsets, rng.integers(0, len(self.desc), int(offsets[-1]), dtype=np.int32)
