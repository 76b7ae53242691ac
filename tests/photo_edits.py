"""The edit family for search by image, applied to real photos from skimage.data (used by
bench/quality.py and bench/matching.py; the tests keep a few of them as regression cases).

Everything is deterministic: an edit is (kind, instance) and the instance picks the
variation (which side is cut, which fill colour, which rotation sign...). Every edited copy
is encoded as JPEG (quality 85 unless the edit is the JPEG quality itself), like real tools.
"""

from __future__ import annotations

import io
import math
import random
from collections.abc import Callable

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageFont, ImageOps

# --- photos -----------------------------------------------------------------------------------

# skimage.data photos that ship inside the package (no pooch download). `cat` is `chelsea`,
# motorcycle_left/right is stereo_motorcycle (left view only: the right is a near duplicate).
PHOTO_NAMES = (
    "astronaut", "camera", "coffee", "chelsea", "rocket", "immunohistochemistry",
    "hubble_deep_field", "retina", "moon", "brick", "grass", "gravel", "coins", "clock",
    "colorwheel", "page", "text", "logo", "stereo_motorcycle", "horse", "cell",
    "shepp_logan_phantom",
)


def _to_pil(arr: np.ndarray) -> Image.Image:
    if arr.dtype == bool:
        arr = arr.astype(np.uint8) * 255
    elif arr.dtype != np.uint8:
        a = arr.astype(np.float64)
        a = (a - a.min()) / max(a.max() - a.min(), 1e-9) * 255
        arr = np.rint(a).astype(np.uint8)
    if arr.ndim == 3 and arr.shape[2] == 4:
        im = Image.fromarray(arr, "RGBA")
        white = Image.new("RGB", im.size, (255, 255, 255))
        white.paste(im.convert("RGB"), mask=im.getchannel("A"))
        return white
    return Image.fromarray(arr).convert("RGB")


def load_photos() -> list[tuple[str, Image.Image]]:
    """(name, RGB image) for every offline skimage photo, in a fixed order."""
    import skimage.data as data

    out = []
    for name in PHOTO_NAMES:
        arr = getattr(data, name)()
        if isinstance(arr, tuple):
            arr = arr[0]
        out.append((name, _to_pil(arr)))
    return out


def load_faces() -> list[Image.Image]:
    """The 200 LFW face crops (25x25), upscaled to 200x200 RGB."""
    import skimage.data as data

    faces = data.lfw_subset()  # type: ignore[no-untyped-call]
    return [_to_pil(f).resize((200, 200), Image.Resampling.BICUBIC) for f in faces]


def jpeg(im: Image.Image, quality: int = 85) -> bytes:
    buf = io.BytesIO()
    im.convert("RGB").save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def original_bytes(im: Image.Image) -> bytes:
    return jpeg(im, 90)


# --- helpers ----------------------------------------------------------------------------------

def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # old Pillow
        return ImageFont.load_default()


def _crop_frac(im: Image.Image, left: float, top: float, right: float,
               bottom: float) -> Image.Image:
    w, h = im.size
    return im.crop((round(w * left), round(h * top), w - round(w * right), h - round(h * bottom)))


def _band(im: Image.Image, frac: float, where: str, style: str,
          rng: random.Random) -> Image.Image:
    """A caption band of `frac` of the height at top or bottom, solid or semi-transparent."""
    out = im.convert("RGBA")
    w, h = out.size
    bh = round(h * frac)
    y0 = 0 if where == "top" else h - bh
    overlay = Image.new("RGBA", out.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    if style == "solid_black":
        fill, text = (0, 0, 0, 255), (255, 255, 255, 255)
    elif style == "solid_white":
        fill, text = (255, 255, 255, 255), (0, 0, 0, 255)
    else:  # semi-transparent dark
        fill, text = (0, 0, 0, 150), (255, 255, 255, 255)
    draw.rectangle((0, y0, w, y0 + bh), fill=fill)
    words = rng.choice(["(c) 2026 some photographer", "BREAKING NEWS: look at this",
                        "@someone on social media", "Holiday 2025 - day 3"])
    draw.text((round(w * 0.04), y0 + bh * 0.2), words, fill=text, font=_font(max(8, int(bh * 0.5))))
    return Image.alpha_composite(out, overlay).convert("RGB")


def _logo(im: Image.Image, corner: str, frac_area: float, rng: random.Random) -> Image.Image:
    """A logo block in a corner: a filled rounded box with a letter, opaque or 70% opaque."""
    out = im.convert("RGBA")
    w, h = out.size
    side = math.sqrt(frac_area)
    bw, bh = round(w * side), round(h * side)
    x0 = 0 if "l" in corner else w - bw
    y0 = 0 if "t" in corner else h - bh
    overlay = Image.new("RGBA", out.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    colour = tuple(rng.randrange(256) for _ in range(3))
    alpha = rng.choice([255, 180])
    draw.rounded_rectangle((x0, y0, x0 + bw, y0 + bh), radius=min(bw, bh) // 6,
                           fill=colour + (alpha,))
    draw.text((x0 + bw * 0.3, y0 + bh * 0.2), rng.choice("ABXQ"), fill=(255, 255, 255, 255),
              font=_font(max(8, int(bh * 0.6))))
    return Image.alpha_composite(out, overlay).convert("RGB")


def _borders(im: Image.Image, frac: float, axis: str, fill: str) -> Image.Image:
    """Letterbox (axis 'y') or pillarbox ('x'): bars of `frac` of the OUTPUT size per side."""
    w, h = im.size
    if axis == "y":
        H = round(h / (1 - 2 * frac))
        W = w
        pos = (0, (H - h) // 2)
    else:
        W = round(w / (1 - 2 * frac))
        H = h
        pos = ((W - w) // 2, 0)
    if fill == "black":
        canvas = Image.new("RGB", (W, H), (0, 0, 0))
    elif fill == "white":
        canvas = Image.new("RGB", (W, H), (255, 255, 255))
    else:  # blurred fill: the picture scaled to cover the canvas, heavily blurred
        scale = max(W / w, H / h)
        big = im.resize((math.ceil(w * scale), math.ceil(h * scale)), Image.Resampling.BILINEAR)
        bx, by = (big.width - W) // 2, (big.height - H) // 2
        canvas = big.crop((bx, by, bx + W, by + H)).filter(ImageFilter.GaussianBlur(max(W, H) / 30))
    canvas.paste(im, pos)
    return canvas


def _rotate(im: Image.Image, degrees: float, mode: str) -> Image.Image:
    """Rotate about the centre; 'fill' keeps the size with black corners, 'crop' keeps the
    largest axis-aligned rectangle of the rotated picture (no corners), 'white' white corners."""
    if mode == "crop":
        w, h = im.size
        rot = im.rotate(degrees, resample=Image.Resampling.BICUBIC, expand=True)
        a = math.radians(abs(degrees))
        # Largest axis-aligned rectangle with the same aspect inside the rotated w x h.
        scale = 1 / (math.cos(a) + math.sin(a) * max(w / h, h / w))
        cw, ch = w * scale, h * scale
        cx, cy = rot.width / 2, rot.height / 2
        return rot.crop((round(cx - cw / 2), round(cy - ch / 2), round(cx + cw / 2),
                         round(cy + ch / 2)))
    fill = (0, 0, 0) if mode == "fill" else (255, 255, 255)
    return im.rotate(degrees, resample=Image.Resampling.BICUBIC, fillcolor=fill)


# --- the edit family --------------------------------------------------------------------------

Edit = Callable[[Image.Image, random.Random, int], bytes]


def _e_resize(im: Image.Image, rng: random.Random, i: int) -> bytes:
    w, h = im.size
    if i % 3 == 1:
        return jpeg(im.resize((max(1, w // 2), max(1, h // 2)), Image.Resampling.BILINEAR))
    small = im.copy()
    small.thumbnail((320, 320) if i % 3 == 0 else (160, 160), Image.Resampling.LANCZOS)
    return jpeg(small, 85 if i % 3 == 0 else 80)


def _e_jpeg(im: Image.Image, rng: random.Random, i: int) -> bytes:
    return jpeg(im, 15)


def _enh(cls: type[ImageEnhance.Brightness | ImageEnhance.Contrast], factor: float) -> Edit:
    return lambda im, rng, i: jpeg(cls(im).enhance(factor))


def _e_gray(im: Image.Image, rng: random.Random, i: int) -> bytes:
    return jpeg(ImageOps.grayscale(im))


def _e_blur(im: Image.Image, rng: random.Random, i: int) -> bytes:
    return jpeg(im.filter(ImageFilter.GaussianBlur([1.0, 2.0][i % 2])))


def _e_stretch(im: Image.Image, rng: random.Random, i: int) -> bytes:
    w, h = im.size
    f = [1.3, 1.2][i // 2 % 2]
    size = (round(w * f), h) if i % 2 == 0 else (w, round(h * f))
    return jpeg(im.resize(size, Image.Resampling.BICUBIC))


def _e_caption(im: Image.Image, rng: random.Random, i: int) -> bytes:
    where = ["bottom", "top"][i % 2]
    style = ["solid_black", "semi", "solid_white", "semi"][i % 4]
    return jpeg(_band(im, rng.uniform(0.10, 0.15), where, style, rng))


def _e_logo(im: Image.Image, rng: random.Random, i: int) -> bytes:
    corner = ["br", "tl", "tr", "bl"][i % 4]
    return jpeg(_logo(im, corner, rng.uniform(0.05, 0.12), rng))


def _e_crop_centre(im: Image.Image, rng: random.Random, i: int) -> bytes:
    keep = math.sqrt(1 - [0.20, 0.15, 0.10][i % 3])
    m = (1 - keep) / 2
    return jpeg(_crop_frac(im, m, m, m, m))


def _e_crop_side(im: Image.Image, rng: random.Random, i: int) -> bytes:
    f = [0.20, 0.15][i // 4 % 2]
    side = i % 4
    cuts = [0.0, 0.0, 0.0, 0.0]  # left top right bottom
    cuts[side] = f
    return jpeg(_crop_frac(im, *cuts))


def _e_crop_two(im: Image.Image, rng: random.Random, i: int) -> bytes:
    area = 0.20
    share = rng.uniform(0.3, 0.7)  # how the lost area splits between the two sides
    keep = 1 - area
    # (1 - a)(1 - b) = keep with a/b set by share, in log space
    a = 1 - keep ** share
    b = 1 - keep ** (1 - share)
    pair = i % 4  # top+left, top+right, bottom+left, bottom+right
    left = a if pair in (0, 2) else 0.0
    right = a if pair in (1, 3) else 0.0
    top = b if pair in (0, 1) else 0.0
    bottom = b if pair in (2, 3) else 0.0
    return jpeg(_crop_frac(im, left, top, right, bottom))


def _e_letterbox(im: Image.Image, rng: random.Random, i: int) -> bytes:
    return jpeg(_borders(im, rng.uniform(0.10, 0.15), "y", ["black", "white", "blur"][i % 3]))


def _e_pillarbox(im: Image.Image, rng: random.Random, i: int) -> bytes:
    return jpeg(_borders(im, rng.uniform(0.10, 0.15), "x", ["black", "white", "blur"][i % 3]))


ANGLES = (5, -5, 3, -3, 4, -4, 2, -2, 1.5, -1)


def _e_rotate_fill(im: Image.Image, rng: random.Random, i: int) -> bytes:
    deg = ANGLES[i % len(ANGLES)]
    return jpeg(_rotate(im, deg, "fill" if i % 2 == 0 else "white"))


def _e_rotate_crop(im: Image.Image, rng: random.Random, i: int) -> bytes:
    deg = ANGLES[i % len(ANGLES)]
    return jpeg(_rotate(im, deg, "crop"))


def _e_transpose(t: Image.Transpose) -> Edit:
    return lambda im, rng, i: jpeg(im.transpose(t))


# kind -> (edit, instances per photo, needs the 8 orientations on the query side)
EDITS: dict[str, tuple[Edit, int, bool]] = {
    "resize": (_e_resize, 3, False),
    "jpeg_q15": (_e_jpeg, 1, False),
    "bright+30": (_enh(ImageEnhance.Brightness, 1.3), 1, False),
    "bright-30": (_enh(ImageEnhance.Brightness, 0.7), 1, False),
    "contrast+30": (_enh(ImageEnhance.Contrast, 1.3), 1, False),
    "contrast-30": (_enh(ImageEnhance.Contrast, 0.7), 1, False),
    "grayscale": (_e_gray, 1, False),
    "blur": (_e_blur, 2, False),
    "stretch": (_e_stretch, 4, False),
    "caption_band": (_e_caption, 4, False),
    "logo_corner": (_e_logo, 4, False),
    "crop_centre": (_e_crop_centre, 3, False),
    "crop_one_side": (_e_crop_side, 8, False),
    "crop_two_sides": (_e_crop_two, 4, False),
    "letterbox": (_e_letterbox, 3, False),
    "pillarbox": (_e_pillarbox, 3, False),
    "rotate_fill": (_e_rotate_fill, 10, False),
    "rotate_crop": (_e_rotate_crop, 10, False),
    "rot90": (_e_transpose(Image.Transpose.ROTATE_90), 1, True),
    "rot180": (_e_transpose(Image.Transpose.ROTATE_180), 1, True),
    "mirror": (_e_transpose(Image.Transpose.FLIP_LEFT_RIGHT), 1, True),
}


def edited(im: Image.Image, kind: str, instance: int, seed: int) -> bytes:
    fn, _, _ = EDITS[kind]
    rng = random.Random(f"{kind}/{instance}/{seed}")
    return fn(im, rng, instance)


# --- distractors ------------------------------------------------------------------------------

def distractors(photos: list[tuple[str, Image.Image]], per_photo: int = 46,
                seed: int = 7) -> list[tuple[str, bytes]]:
    """(source name, JPEG bytes): random sub-regions of every photo (hard negatives: 15-80% of
    the area, any aspect, some flipped or resized), plus the 200 LFW faces."""
    rng = random.Random(seed)
    out: list[tuple[str, bytes]] = []
    for name, im in photos:
        w, h = im.size
        for _ in range(per_photo):
            area = rng.uniform(0.15, 0.8)
            aspect = math.exp(rng.uniform(-0.5, 0.5))
            cw = min(w, round(w * math.sqrt(area) * math.sqrt(aspect)))
            ch = min(h, round(h * math.sqrt(area) / math.sqrt(aspect)))
            x0, y0 = rng.randrange(0, w - cw + 1), rng.randrange(0, h - ch + 1)
            sub = im.crop((x0, y0, x0 + cw, y0 + ch))
            if rng.random() < 0.2:
                sub = sub.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
            if rng.random() < 0.3:
                sub = sub.resize((max(8, sub.width * 2 // 3), max(8, sub.height * 2 // 3)))
            out.append((name, jpeg(sub, rng.choice([75, 85, 95]))))
    for face in load_faces():
        out.append(("lfw", jpeg(face, 90)))
    return out
