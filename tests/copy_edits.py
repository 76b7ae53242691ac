"""Copies of a picture as people pass them around, for an honest bench of search by image:
real photographs (skimage.data, offline), copy families written from descriptions of what
people do (not from any matching method), and a lazily generated stream of distractors.

Stored pictures. Each natural photo in PHOTOS has ONE stored picture: a fixed sub-window
(40-55% of the photo's area, aspect within x0.74..x1.35, near a corner chosen by a seeded draw),
encoded as JPEG q90 (`stored_bytes`). The photos are split once, here, into DEVELOPMENT
(thresholds are tuned on it) and HELD_OUT (figures are reported on it too, untouched).

Hard negatives. `hard_negatives(name)` are other sub-windows of the same photo (12-40% of the
photo's area, less where there is no room) whose intersection with the stored window is less
than a third of their own area: another view of the same scene. The distractor stream
(`distractor(i)`, `distractors`) adds more of them, windows of the texture and non-photo
images, screenshots and pages drawn by the same generators WITHOUT any stored picture (another
picture or none), LFW faces, synthetic pictures and collages of hard negatives. Nothing in the
stream contains half of any stored picture; nothing in it is ever a true answer.

Ground truth. A stored picture S is a true answer to a query Q exactly when at least half of
S's area is visible in Q (inside Q's frame, not covered by more than 25% by overlays). Every
query here is built from stored pictures only: its answers are those pictures (one, or 2-4 for
a collage), and `Copy.corners` gives where each one's four corners (top-left, top-right,
bottom-right, bottom-left) lie in the query's pixels (None for the legacy edits, whose
geometry is not tracked). Every other stored image is a false answer: another stored picture
(another photo), a hard negative of the same photo (at most a third of it can appear in a
query: it overlaps the stored window by less than a third of its own area), or a distractor.
Between 1/3 and 1/2 nothing is generated, so no query is ambiguous.

Families (several seeded instances each; `copy(family, photo, instance)`; same arguments, same
bytes):
  edit:<kind>   every edit of tests/photo_edits.py EDITS (the baseline that must not regress)
  screenshot    in a browser/app/viewer window or on a phone screen, >= 25% of its area
  post          inset in a social post or a page of text, >= 25% of its area, scaled
  photo         a photo of a screen or a print: perspective up to 10% of the side, blur,
                noise, moire (screens), colour cast, background around (picture >= 25%)
  crop          a crop keeping >= 50% of the area, anywhere: square, 4:5, 9:16 or free
  frame         polaroid, mat, drop shadow or textured frame, on a background
  collage       2-4 stored pictures (same split), grid or free layout; answers all of them
  overlay       stickers, emoji, text or stripes covering 8-25% of the picture
  colour        sepia, hue shift, saturation, vignette, a warm faded filter
  combined      two of the above (a picture edit, then a placement or another edit)
"""

from __future__ import annotations

import io
import math
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageOps

from tests import copy_scenes as scenes
from tests.photo_edits import EDITS, _to_pil, edited, jpeg

# --- photos -----------------------------------------------------------------------------------

# Photographs (camera, microscope, telescope) that skimage ships; `cell` is a microscope photo.
DEVELOPMENT = ("astronaut", "coffee", "rocket", "hubble_deep_field", "retina", "coins", "cell")
HELD_OUT = ("camera", "chelsea", "stereo_motorcycle", "immunohistochemistry", "moon", "clock")
PHOTOS = DEVELOPMENT + HELD_OUT
TEXTURES = ("brick", "grass", "gravel")  # repetitive textures: distractors only
NOT_PHOTOS = ("page", "text", "colorwheel", "logo", "horse", "microaneurysms")

SEED = 2026
HARD_NEGATIVES = 8  # fixed per photo (the stream adds more)
DISTRACTORS = 10_000

Quad = np.ndarray  # (4, 2) float: top-left, top-right, bottom-right, bottom-left


@dataclass(frozen=True)
class Copy:
    family: str
    instance: int
    photo: str  # the photo the copy is built from (the first, for a collage)
    data: bytes  # JPEG or PNG, as shared
    answers: tuple[str, ...]  # the photos whose stored pictures it holds
    corners: tuple[Quad, ...] | None  # where each answer lies in the query (pixels)
    notes: dict[str, float] = field(default_factory=dict)  # measured bounds (for the tests)


@dataclass(frozen=True)
class Distractor:
    kind: str
    source: str
    data: bytes


_CACHE: dict[str, Image.Image] = {}


def photo(name: str) -> Image.Image:
    """One skimage.data image as RGB (cached: the generators use them again and again)."""
    if name not in _CACHE:
        import skimage.data as data

        if name == "lfw":
            raise KeyError(name)
        arr = getattr(data, name)()
        if isinstance(arr, tuple):
            arr = arr[0]
        _CACHE[name] = _to_pil(arr)
    return _CACHE[name]


def faces() -> list[Image.Image]:
    """The 200 LFW crops of skimage (25x25), upscaled to 160x160."""
    if "lfw:0" not in _CACHE:
        import skimage.data as data

        for k, f in enumerate(data.lfw_subset()):  # type: ignore[no-untyped-call]
            _CACHE[f"lfw:{k}"] = _to_pil(f).resize((160, 160), Image.Resampling.BICUBIC)
    return [_CACHE[f"lfw:{k}"] for k in range(200)]


Box = tuple[int, int, int, int]


def _area(b: Box) -> int:
    return max(0, b[2] - b[0]) * max(0, b[3] - b[1])


def _inter(a: Box, b: Box) -> int:
    return _area((max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])))


def _window(size: tuple[int, int], rng: random.Random, lo: float, hi: float,
            aspect: float = 0.3) -> Box:
    w, h = size
    area = rng.uniform(lo, hi) * w * h
    ratio = math.exp(rng.uniform(-aspect, aspect))
    cw = min(w, round(math.sqrt(area * ratio)))
    ch = min(h, round(area / cw))
    x0, y0 = rng.randrange(0, w - cw + 1), rng.randrange(0, h - ch + 1)
    return (x0, y0, x0 + cw, y0 + ch)


def stored_window(name: str) -> Box:
    """The stored sub-window of a photo: 40-55% of its area, near one corner (so that other
    views of the scene, overlapping it by less than a third, exist)."""
    rng = random.Random(f"stored/{name}/{SEED}")
    w, h = photo(name).size
    x0, y0, x1, y1 = _window((w, h), rng, 0.40, 0.55)
    cw, ch = x1 - x0, y1 - y0
    dx, dy = round(rng.uniform(0, 0.05) * w), round(rng.uniform(0, 0.05) * h)
    x0 = min(dx, w - cw) if rng.random() < 0.5 else max(0, w - cw - dx)
    y0 = min(dy, h - ch) if rng.random() < 0.5 else max(0, h - ch - dy)
    return (x0, y0, x0 + cw, y0 + ch)


def stored_picture(name: str) -> Image.Image:
    key = f"stored:{name}"
    if key not in _CACHE:
        _CACHE[key] = photo(name).crop(stored_window(name))
    return _CACHE[key]


def stored_bytes(name: str) -> bytes:
    return jpeg(stored_picture(name), 90)


def negative_window(name: str, rng: random.Random) -> Box:
    """A window of the photo (12-40% of its area, smaller where the photo has no room) that
    meets the stored window on less than a third of its own area."""
    keep = stored_window(name) if name in PHOTOS else (0, 0, 0, 0)
    lo, hi = 0.12, 0.40
    while True:
        for _ in range(200):
            box = _window(photo(name).size, rng, lo, hi, 0.5)
            if 3 * _inter(box, keep) < _area(box):
                return box
        lo, hi = lo * 0.8, hi * 0.8


def hard_negatives(name: str) -> list[tuple[Box, bytes]]:
    """The fixed hard negatives of a photo: other views of the same scene."""
    rng = random.Random(f"hard/{name}/{SEED}")
    out = []
    for _ in range(HARD_NEGATIVES):
        box = negative_window(name, rng)
        out.append((box, jpeg(photo(name).crop(box), 90)))
    return out


def split_of(name: str) -> tuple[str, ...]:
    return DEVELOPMENT if name in DEVELOPMENT else HELD_OUT


# --- geometry of a copy in the making -----------------------------------------------------------

@dataclass
class Scene:
    """An image and, per stored picture in it, the matrix from that picture to the image."""
    image: Image.Image
    names: list[str]
    matrices: list[np.ndarray]
    notes: dict[str, float] = field(default_factory=dict)

    def then(self, image: Image.Image, matrix: np.ndarray) -> Scene:
        return Scene(image, self.names, [matrix @ m for m in self.matrices], self.notes)

    def quads(self) -> tuple[Quad, ...]:
        return tuple(project(m, *stored_picture(n).size)
                     for n, m in zip(self.names, self.matrices, strict=True))


def project(matrix: np.ndarray, w: int, h: int) -> Quad:
    pts = np.array([[0, 0, 1], [w, 0, 1], [w, h, 1], [0, h, 1]], dtype=np.float64)
    out = pts @ matrix.T
    quad: Quad = out[:, :2] / out[:, 2:]
    return quad


def _start(name: str) -> Scene:
    return Scene(stored_picture(name), [name], [np.eye(3)])


def _others(rng: random.Random, n: int, notes: dict[str, float] | None = None
            ) -> list[Image.Image]:
    """Pictures that are not stored ones (faces, synthetic), for thumbnails around a copy.
    The faces used are noted ("face N"): the distractor stream stores the same faces, and a
    copy holding one does hold that stored picture (see `holds`)."""
    pool = faces()
    out = []
    for _ in range(n):
        if rng.random() < 0.5:
            index = rng.choice(range(len(pool)))  # the same draw as rng.choice(pool)
            out.append(pool[index])
            if notes is not None:
                notes[f"face {index}"] = 1.0
        else:
            out.append(scenes.synthetic_picture((160, 120), rng))
    return out


# --- picture edits (keep the size or crop) ---------------------------------------------------

ASPECTS = {"square": 1.0, "4:5": 0.8, "9:16": 9 / 16}


def _crop(s: Scene, rng: random.Random, i: int) -> Scene:
    w, h = s.image.size
    options = [a for a in ASPECTS.values()
               if min(w, h * a) * min(h, w / a) >= 0.5 * w * h]
    if i % 4 < 3 and options:
        a = options[i % len(options)]
        cw, ch = min(w, h * a), min(h, w / a)  # the largest crop of that aspect
        largest = cw * ch / (w * h)
        shrink = math.sqrt(rng.uniform(0.5, largest) / largest)
    else:  # free aspect, 50-85% of the area
        kept = rng.uniform(0.5, 0.85)
        cw = w * rng.uniform(kept, 1.0)
        ch = kept * w * h / cw
        shrink = 1.0
    cw, ch = round(cw * shrink), round(ch * shrink)
    while cw * ch < 0.5 * w * h:
        cw, ch = min(w, cw + 1), min(h, ch + 1)
    x0, y0 = rng.randint(0, w - cw), rng.randint(0, h - ch)
    s.notes["kept"] = cw * ch / (w * h)
    return s.then(s.image.crop((x0, y0, x0 + cw, y0 + ch)),
                  scenes.similarity(1, -x0, -y0))


def _emoji(draw: ImageDraw.ImageDraw, x: float, y: float, r: float, rng: random.Random) -> None:
    draw.ellipse((x - r, y - r, x + r, y + r), fill=(255, 204, 30, 255),
                 outline=(120, 80, 0, 255), width=max(1, round(r / 15)))
    for ex in (-0.35, 0.35):
        draw.ellipse((x + ex * r - r * 0.1, y - r * 0.35, x + ex * r + r * 0.1, y - r * 0.05),
                     fill=(60, 40, 0, 255))
    draw.arc((x - r * 0.5, y - r * 0.3, x + r * 0.5, y + r * 0.6), 20, 160,
             fill=(60, 40, 0, 255), width=max(1, round(r / 10)))


def _overlay(s: Scene, rng: random.Random, i: int) -> Scene:
    """Stickers, emoji, text or stripes until 8-25% of the picture is covered."""
    im = s.image.convert("RGBA")
    w, h = im.size
    target = rng.uniform(0.08, 0.25)
    cover = np.zeros((h, w), dtype=bool)
    style = ["emoji", "sticker", "text", "stripes"][i % 4]
    for _ in range(30):
        layer = Image.new("RGBA", im.size, (0, 0, 0, 0))
        draw = ImageDraw.Draw(layer)
        r = min(w, h) * rng.uniform(0.06, 0.16)
        x, y = rng.uniform(r, w - r), rng.uniform(r, h - r)
        kind = style if rng.random() < 0.7 else rng.choice(["emoji", "sticker", "text",
                                                            "stripes"])
        if kind == "emoji":
            _emoji(draw, x, y, r, rng)
        elif kind == "sticker":
            draw.rounded_rectangle((x - r * 1.4, y - r * 0.7, x + r * 1.4, y + r * 0.7),
                                   radius=r / 3, fill=scenes.colour(rng) + (255,),
                                   outline=(255, 255, 255, 255), width=max(2, round(r / 8)))
            draw.text((x - r, y - r * 0.4), rng.choice(("LOL", "WOW", "SALE", "NEW", "#1")),
                      fill=(255, 255, 255, 255), font=scenes.font(round(r * 0.8)))
        elif kind == "text":
            size = round(h * rng.uniform(0.06, 0.12))
            ty = rng.choice((h * 0.03, h * 0.85 - size, rng.uniform(0, h - size)))
            draw.text((w * rng.uniform(0.02, 0.2), ty), scenes.words(rng, 3).upper(),
                      fill=(255, 255, 255, 255), font=scenes.font(size),
                      stroke_width=max(1, size // 12), stroke_fill=(0, 0, 0, 255))
        else:
            width = h * rng.uniform(0.03, 0.07)
            if rng.random() < 0.5:  # a bar across
                by = rng.uniform(0, h - width)
                draw.rectangle((0, by, w, by + width), fill=(0, 0, 0, rng.choice((255, 200))))
            else:  # a diagonal band
                off = rng.uniform(-w / 2, w / 2)
                draw.polygon([(off, 0), (off + width * 1.4, 0), (off + width * 1.4 + h, h),
                              (off + h, h)], fill=scenes.colour(rng) + (180,))
        mask = np.asarray(layer.getchannel("A")) > 0
        if (cover | mask).mean() > target:
            if cover.any():
                break
            continue
        cover |= mask
        im = Image.alpha_composite(im, layer)
    s.notes["covered"] = float(cover.mean())
    return s.then(im.convert("RGB"), np.eye(3))


def _colour(s: Scene, rng: random.Random, i: int) -> Scene:
    im = s.image.convert("RGB")
    kind = ["sepia", "hue", "saturation", "vignette", "warm"][i % 5]
    if kind == "sepia":
        g = np.asarray(ImageOps.grayscale(im), dtype=np.float64)
        tone = np.array((1.07, 0.74, 0.43)) * rng.uniform(0.9, 1.1)
        out = Image.fromarray(np.clip(g[:, :, None] * tone * 1.1, 0, 255).astype(np.uint8))
    elif kind == "hue":
        hsv = np.asarray(im.convert("HSV")).copy()
        hsv[:, :, 0] = (hsv[:, :, 0].astype(int) + rng.randint(20, 235)) % 256
        out = Image.fromarray(hsv, "HSV").convert("RGB")
        if np.asarray(im).std(axis=2).mean() < 2:  # a grey photo: tint it instead
            out = Image.blend(im, Image.new("RGB", im.size, scenes.colour(rng)), 0.3)
    elif kind == "saturation":
        out = ImageEnhance.Color(im).enhance(rng.choice((rng.uniform(0.1, 0.5),
                                                         rng.uniform(1.6, 2.5))))
    elif kind == "vignette":
        w, h = im.size
        yy, xx = np.mgrid[0:h, 0:w]
        d = np.hypot((xx - w / 2) / (w / 2), (yy - h / 2) / (h / 2)) / math.sqrt(2)
        gain = 1 - rng.uniform(0.5, 0.85) * np.clip(d, 0, 1) ** 2
        out = Image.fromarray(np.clip(np.asarray(im) * gain[:, :, None], 0, 255)
                              .astype(np.uint8))
    else:  # warm, faded, more contrast
        a = np.asarray(im, dtype=np.float64) * np.array((1.1, 1.0, 0.85))
        a = 30 + a * 0.85
        out = ImageEnhance.Contrast(Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))) \
            .enhance(1.2)
    s.notes["filter"] = float(i % 5)
    return s.then(out, np.eye(3))


# --- placements ---------------------------------------------------------------------------------

def _screenshot(s: Scene, rng: random.Random, i: int) -> Scene:
    image, matrix = scenes.screenshot(s.image, rng, _others(rng, 6, s.notes))
    assert matrix is not None
    return s.then(image, matrix)


def _post(s: Scene, rng: random.Random, i: int) -> Scene:
    image, matrix = scenes.post(s.image, rng, _others(rng, 4, s.notes))
    assert matrix is not None
    return s.then(image, matrix)


def _frame(s: Scene, rng: random.Random, i: int) -> Scene:
    image, matrix = scenes.frame(s.image, rng, ["polaroid", "mat", "shadow", "textured"][i % 4])
    return s.then(image, matrix)


def _photo(s: Scene, rng: random.Random, i: int) -> Scene:
    """The picture shown on a screen (bezel, moire) or printed (white margin), photographed:
    perspective, blur, noise, colour cast, a background around."""
    pic = s.image.convert("RGB")
    w, h = pic.size
    scale = 900 / max(w, h)  # the camera's view of it, before the tilt
    pw, ph = round(w * scale), round(h * scale)
    screen = i % 2 == 0
    rim = round(max(pw, ph) * rng.uniform(0.02, 0.06))
    mount = Image.new("RGB", (pw + 2 * rim, ph + 2 * rim),
                      scenes.grey(rng, 5, 30) if screen else scenes.grey(rng, 235, 252))
    mount.paste(pic.resize((pw, ph), Image.Resampling.LANCZOS), (rim, rim))
    if screen:  # moire: a faint beat pattern of the screen's pixel grid
        yy, xx = np.mgrid[0:mount.height, 0:mount.width].astype(np.float64)
        angle = rng.uniform(0, math.pi)
        period = rng.uniform(3, 8)
        wave = np.sin((xx * math.cos(angle) + yy * math.sin(angle)) * 2 * math.pi / period)
        a = np.asarray(mount, dtype=np.float64) + rng.uniform(2, 7) * wave[:, :, None]
        mount = Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))
    share = rng.uniform(0.3, 0.65)  # of the photo's area taken by the picture
    cw = round(math.sqrt(pw * ph / share * (4 / 3 if pw >= ph else 3 / 4)))
    ch = round(pw * ph / share / cw)
    cw, ch = max(cw, mount.width + 20), max(ch, mount.height + 20)
    canvas = scenes.background((cw, ch), rng)
    x0 = rng.randint(10, cw - mount.width - 10)
    y0 = rng.randint(10, ch - mount.height - 10)
    rect = np.array([[x0, y0], [x0 + mount.width, y0], [x0 + mount.width, y0 + mount.height],
                     [x0, y0 + mount.height]], dtype=np.float64)
    tilt = rng.uniform(0.03, 0.10)
    jitter = np.array([[rng.uniform(-1, 1) * mount.width, rng.uniform(-1, 1) * mount.height]
                       for _ in range(4)]) * tilt
    dst = rect + jitter
    mm = scenes.homography(rect - rect[0], dst)  # mount -> canvas
    scenes.warp_onto(canvas, mount, mm)
    a = np.asarray(canvas, dtype=np.float64) * np.array([rng.uniform(0.9, 1.1) for _ in range(3)])
    a += np.random.default_rng(rng.randrange(2**32)).normal(0, rng.uniform(2, 6), a.shape)
    out = Image.fromarray(np.clip(a, 0, 255).astype(np.uint8)).filter(
        ImageFilter.GaussianBlur(rng.uniform(0.5, 1.5)))
    s.notes["tilt"] = float(np.abs(jitter / [mount.width, mount.height]).max())
    return s.then(out, mm @ scenes.similarity(1, rim, rim) @ np.diag([scale, scale, 1.0]))


def _collage(s: Scene, rng: random.Random, i: int) -> Scene:
    n = 2 + i % 3
    pool = [p for p in split_of(s.names[0]) if p != s.names[0]]
    names = [s.names[0]] + rng.sample(pool, n - 1)
    # The first is the picture so far (a filter or a crop may have come first).
    pics = [s.image] + [stored_picture(p) for p in names[1:]]
    before = [s.matrices[0]] + [np.eye(3)] * (n - 1)
    side = rng.choice((1080, 1200, 1600))
    gutter = rng.randint(0, 20)
    bg = scenes.grey(rng, 0, 255) if rng.random() < 0.7 else scenes.colour(rng)
    canvas = Image.new("RGB", (side, side), bg)
    matrices = []
    if i % 2 == 0:  # grid: rows of cells, each picture fitted inside its cell
        rows = [[0, 1]] if n == 2 else ([[0], [1, 2]] if n == 3 else [[0, 1], [2, 3]])
        if n == 2 and rng.random() < 0.5:
            rows = [[0], [1]]
        ch = (side - gutter * (len(rows) + 1)) / len(rows)
        for r, row in enumerate(rows):
            cw = (side - gutter * (len(row) + 1)) / len(row)
            for c, k in enumerate(row):
                sc = min(cw / pics[k].width, ch / pics[k].height)
                pw, ph = round(pics[k].width * sc), round(pics[k].height * sc)
                x = round(gutter + c * (cw + gutter) + (cw - pw) / 2)
                y = round(gutter + r * (ch + gutter) + (ch - ph) / 2)
                matrices.append(scenes.paste_scaled(canvas, pics[k], (x, y, x + pw, y + ph)))
    else:  # free: each scaled, turned a little, placed where it overlaps no other
        placed: list[tuple[float, float, float, float]] = []
        for pic in pics:
            for _ in range(200):
                pw, ph = scenes.fit(pic.size, side * side * rng.uniform(0.8, 1.2) / (n + 1.5))
                turn = math.radians(rng.uniform(-8, 8))
                half_w = (abs(pw * math.cos(turn)) + abs(ph * math.sin(turn))) / 2
                half_h = (abs(pw * math.sin(turn)) + abs(ph * math.cos(turn))) / 2
                if half_w * 2 >= side or half_h * 2 >= side:
                    continue
                cx, cy = rng.uniform(half_w, side - half_w), rng.uniform(half_h, side - half_h)
                bb = (cx - half_w, cy - half_h, cx + half_w, cy + half_h)
                if all(bb[2] <= o[0] or bb[0] >= o[2] or bb[3] <= o[1] or bb[1] >= o[3]
                       for o in placed):
                    break
            else:  # crowded: shrink to a corner cell
                k = len(placed)
                pw, ph = scenes.fit(pic.size, (side / 2.2) ** 2 * 0.6)
                turn = 0.0
                cx, cy = side / 4 + (k % 2) * side / 2, side / 4 + (k // 2) * side / 2
                bb = (cx - pw / 2, cy - ph / 2, cx + pw / 2, cy + ph / 2)
            placed.append(bb)
            cos_t, sin_t = math.cos(turn), math.sin(turn)
            m = (np.array([[1, 0, cx], [0, 1, cy], [0, 0, 1]])
                 @ np.array([[cos_t, -sin_t, 0], [sin_t, cos_t, 0], [0, 0, 1]])
                 @ np.array([[pw / pic.width, 0, -pw / 2], [0, ph / pic.height, -ph / 2],
                             [0, 0, 1]]))
            border = Image.new("RGB", (pic.width + 8, pic.height + 8), (255, 255, 255))
            border.paste(pic, (4, 4))
            scenes.warp_onto(canvas, border, m @ scenes.similarity(1, -4, -4))
            matrices.append(m)
    return Scene(canvas, names, [m @ b for m, b in zip(matrices, before, strict=True)],
                 s.notes)


Step = Callable[[Scene, random.Random, int], Scene]

PLACEMENTS: dict[str, Step] = {"screenshot": _screenshot, "post": _post, "photo": _photo,
                               "frame": _frame, "collage": _collage}
PICTURE_EDITS: dict[str, Step] = {"crop": _crop, "overlay": _overlay, "colour": _colour}
COMBINATIONS = (("crop", "screenshot"), ("colour", "post"), ("overlay", "photo"),
                ("crop", "frame"), ("colour", "crop"), ("overlay", "screenshot"),
                ("crop", "photo"), ("colour", "collage"), ("overlay", "post"),
                ("frame", "photo"))

FAMILIES = ("screenshot", "post", "photo", "crop", "frame", "collage", "overlay", "colour",
            "combined")
EDIT_FAMILIES = tuple(f"edit:{kind}" for kind in EDITS)


def _steps(family: str, instance: int) -> list[Step]:
    if family == "combined":
        a, b = COMBINATIONS[instance % len(COMBINATIONS)]
        return [{**PICTURE_EDITS, **PLACEMENTS}[a], {**PICTURE_EDITS, **PLACEMENTS}[b]]
    return [{**PICTURE_EDITS, **PLACEMENTS}[family]]


def _encode(im: Image.Image, rng: random.Random, png_ok: bool) -> bytes:
    if png_ok and rng.random() < 0.4:
        buf = io.BytesIO()
        im.save(buf, "PNG", compress_level=1)
        return buf.getvalue()
    return jpeg(im, rng.randint(75, 92))


def copy(family: str, name: str, instance: int, seed: int = SEED) -> Copy:
    """One copy of the stored picture of photo `name` (family in FAMILIES or EDIT_FAMILIES)."""
    if family.startswith("edit:"):
        kind = family[5:]
        data = edited(stored_picture(name), kind, instance, seed)
        return Copy(family, instance, name, data, (name,), None)
    rng = random.Random(f"{family}/{name}/{instance}/{seed}")
    s = _start(name)
    for k, step in enumerate(_steps(family, instance)):
        s = step(s, rng, instance + k)
    data = _encode(s.image, rng, family in ("screenshot", "combined"))
    return Copy(family, instance, name, data, tuple(s.names), s.quads(), dict(s.notes))


def copies(names: tuple[str, ...], instances: int = 4, edits: int = 1,
           seed: int = SEED) -> Iterator[Copy]:
    """Every family's first `instances` copies (the first `edits` of each legacy edit) of
    every photo in `names`."""
    for name in names:
        for kind, (_, count, _) in EDITS.items():
            for i in range(min(edits, count)):
                yield copy(f"edit:{kind}", name, i, seed)
        for family in FAMILIES:
            for i in range(instances):
                yield copy(family, name, i, seed)


# --- distractors --------------------------------------------------------------------------------

DISTRACTOR_KINDS = ("view", "view", "view", "texture", "screenshot", "post", "face",
                    "synthetic", "collage", "view")


def _negative(rng: random.Random) -> tuple[str, Image.Image]:
    """Another view of a photo's scene (some flipped or smaller): never a stored picture."""
    name = rng.choice(PHOTOS)
    sub = photo(name).crop(negative_window(name, rng))
    if rng.random() < 0.2:
        sub = sub.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    if rng.random() < 0.3:
        sub = sub.resize((max(8, sub.width * 2 // 3), max(8, sub.height * 2 // 3)))
    return name, sub


def distractor(index: int, seed: int = SEED) -> Distractor:
    """The index-th distractor of the stream (any index; no two share a random state)."""
    rng = random.Random(f"distractor/{index}/{seed}")
    kind = DISTRACTOR_KINDS[index % len(DISTRACTOR_KINDS)]
    source = kind
    if kind == "view":
        source, im = _negative(rng)
    elif kind == "texture":
        source = rng.choice(TEXTURES + NOT_PHOTOS)
        src = photo(source)
        im = src.crop(_window(src.size, rng, 0.2, 1.0, 0.5))
    elif kind in ("screenshot", "post"):
        content = None if rng.random() < 0.3 else _negative(rng)[1]
        others = _others(rng, 6) + ([content] if content is not None else [])
        fn = scenes.screenshot if kind == "screenshot" else scenes.post
        im, _ = fn(None, rng, others)
    elif kind == "face":
        im = faces()[index // len(DISTRACTOR_KINDS) % 200]
        if index // (len(DISTRACTOR_KINDS) * 200) % 2:
            im = im.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    elif kind == "synthetic":
        im = scenes.synthetic_picture((rng.randint(200, 800), rng.randint(200, 800)), rng)
    else:  # a collage of other views: no stored picture in it
        side = rng.choice((800, 1080))
        im = Image.new("RGB", (side, side), scenes.grey(rng, 0, 255))
        n = rng.randint(2, 4)
        cols = 2
        cell = side // cols
        for k in range(n):
            sub = _negative(rng)[1]
            sc = min(cell / sub.width, cell / sub.height)
            x, y = (k % cols) * cell, (k // cols) * cell
            scenes.paste_scaled(im, sub, (x, y, x + max(1, round(sub.width * sc)),
                                          y + max(1, round(sub.height * sc))))
    return Distractor(kind, source, jpeg(im, rng.choice((75, 85, 95))))


def distractor_kind(index: int) -> str:
    return DISTRACTOR_KINDS[index % len(DISTRACTOR_KINDS)]


def distractor_face(index: int) -> int | None:
    """Which face of faces() the stream's distractor `index` is, unmirrored; else None."""
    if DISTRACTOR_KINDS[index % len(DISTRACTOR_KINDS)] != "face":
        return None
    if index // (len(DISTRACTOR_KINDS) * 200) % 2:
        return None  # mirrored: another picture
    return index // len(DISTRACTOR_KINDS) % 200


def holds(c: Copy, key: str) -> bool:
    """Whether copy `c` holds the stored picture `key` (of stored_set): one of its answers,
    or a face of the stream that the copy shows among other pictures."""
    if key in c.answers:
        return True
    face = distractor_face(int(key[1:])) if key[:1] == "d" and key[1:].isdigit() else None
    return face is not None and f"face {face}" in c.notes


def distractors(count: int = DISTRACTORS, start: int = 0, seed: int = SEED
                ) -> Iterator[Distractor]:
    """The stream, lazily: `count` distractors from `start`."""
    for index in range(start, start + count):
        yield distractor(index, seed)


def stored_set(distractor_count: int, seed: int = SEED) -> Iterator[tuple[str, str, bytes]]:
    """(key, kind, bytes) of everything stored: the stored pictures, their hard negatives,
    then `distractor_count` of the stream. Keys of stored pictures are the photo names."""
    for name in PHOTOS:
        yield name, "stored", stored_bytes(name)
    for name in PHOTOS:
        for k, (_, data) in enumerate(hard_negatives(name)):
            yield f"{name}/hard{k}", "hard", data
    for index, d in enumerate(distractors(distractor_count, seed=seed)):
        yield f"d{index}", d.kind, d.data
