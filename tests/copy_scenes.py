"""What people put around a picture they pass on, drawn with PIL shapes and text: app and
browser windows, phone screens, social posts and pages, frames, backgrounds. Used by
tests/copy_edits.py for the copy families and for the distractors (the same scenes holding
another picture, or none).

Geometry: a placement maps the picture's own pixel coordinates to the scene's with a 3x3
matrix; tests/copy_edits.py carries the stored picture's four corners through it, so every
copy knows where its pictures lie.
"""

from __future__ import annotations

import math
import random

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

Colour = tuple[int, int, int]

WORDS = ("photo", "share", "today", "look", "new", "the", "best", "view", "from", "our",
         "trip", "news", "home", "about", "contact", "gallery", "settings", "search", "more",
         "download", "open", "edit", "like", "reply", "follow", "weekend", "city", "image")


def font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=max(6, size))


def words(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def grey(rng: random.Random, lo: int, hi: int) -> Colour:
    v = rng.randint(lo, hi)
    return (v, v, v)


def colour(rng: random.Random) -> Colour:
    return (rng.randrange(256), rng.randrange(256), rng.randrange(256))


def similarity(scale: float, x: float, y: float) -> np.ndarray:
    return np.array([[scale, 0, x], [0, scale, y], [0, 0, 1]], dtype=np.float64)


def paste_scaled(canvas: Image.Image, pic: Image.Image, box: tuple[int, int, int, int]
                 ) -> np.ndarray:
    """Paste `pic` resized to `box` (x0, y0, x1, y1); the matrix from pic to canvas."""
    x0, y0, x1, y1 = box
    canvas.paste(pic.resize((x1 - x0, y1 - y0), Image.Resampling.LANCZOS), (x0, y0))
    return np.array([[(x1 - x0) / pic.width, 0, x0], [0, (y1 - y0) / pic.height, y0],
                     [0, 0, 1]], dtype=np.float64)


def fit(size: tuple[int, int], area: float) -> tuple[int, int]:
    """(w, h) of a picture of `size` scaled to `area` pixels."""
    s = math.sqrt(area / (size[0] * size[1]))
    return max(1, round(size[0] * s)), max(1, round(size[1] * s))


def warp_onto(canvas: Image.Image, pic: Image.Image, matrix: np.ndarray) -> None:
    """Draw `pic` onto `canvas` through `matrix` (pic -> canvas, affine or perspective)."""
    inv = np.linalg.inv(matrix)
    inv = inv / inv[2, 2]
    rgba = pic.convert("RGBA")
    warped = rgba.transform(canvas.size, Image.Transform.PERSPECTIVE,
                            tuple(inv.ravel()[:8]), Image.Resampling.BICUBIC)
    canvas.paste(warped, (0, 0), warped)


def homography(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The 3x3 matrix taking 4 points `src` to `dst` (direct linear solve)."""
    a, b = [], []
    for (x, y), (u, v) in zip(src, dst, strict=True):
        a.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        a.append([0, 0, 0, x, y, 1, -v * x, -v * y])
        b += [u, v]
    h = np.linalg.solve(np.array(a, dtype=np.float64), np.array(b, dtype=np.float64))
    return np.append(h, 1.0).reshape(3, 3)


# --- backgrounds ------------------------------------------------------------------------------

def background(size: tuple[int, int], rng: random.Random) -> Image.Image:
    """A desk, wall or table: a two-colour gradient with grain and a few soft objects."""
    w, h = size
    a, b = np.array(colour(rng), float), np.array(colour(rng), float)
    t = np.linspace(0, 1, h)[:, None, None] * rng.uniform(0.3, 1) + \
        np.linspace(0, 1, w)[None, :, None] * rng.uniform(0, 0.7)
    img = a * (1 - t / t.max()) + b * (t / t.max())
    img += np.random.default_rng(rng.randrange(2**32)).normal(0, rng.uniform(2, 10), (h, w, 1))
    im = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(im)
    for _ in range(rng.randint(0, 4)):
        x, y = rng.randrange(w), rng.randrange(h)
        r = rng.randint(min(w, h) // 20, min(w, h) // 5)
        draw.ellipse((x - r, y - r, x + r, y + r * rng.uniform(0.5, 1.5)), fill=colour(rng))
    return im.filter(ImageFilter.GaussianBlur(rng.uniform(1, 4)))


def synthetic_picture(size: tuple[int, int], rng: random.Random) -> Image.Image:
    """Something that is not a stored picture: shapes on a gradient (thumbnails, adverts)."""
    im = background(size, rng)
    draw = ImageDraw.Draw(im)
    w, h = size
    for _ in range(rng.randint(2, 8)):
        x0, y0 = rng.randrange(w), rng.randrange(h)
        x1, y1 = x0 + rng.randint(4, max(5, w // 2)), y0 + rng.randint(4, max(5, h // 2))
        if rng.random() < 0.5:
            draw.rectangle((x0, y0, x1, y1), fill=colour(rng))
        else:
            draw.ellipse((x0, y0, x1, y1), fill=colour(rng))
    if rng.random() < 0.5:
        draw.text((w * 0.1, h * 0.4), words(rng, 2).upper(), fill=colour(rng),
                  font=font(h // 6))
    return im


# --- windows and screens ----------------------------------------------------------------------

def _text_lines(draw: ImageDraw.ImageDraw, box: tuple[int, int, int, int], rng: random.Random,
                ink: Colour, size: int) -> None:
    x0, y0, x1, y1 = box
    y = y0
    while y + size < y1:
        n = max(1, int((x1 - x0) / (size * 3.2) * rng.uniform(0.4, 1.0)))
        draw.text((x0, y), words(rng, n), fill=ink, font=font(size))
        y += int(size * rng.uniform(1.4, 2.2))


def _thumbs(canvas: Image.Image, box: tuple[int, int, int, int], rng: random.Random,
            others: list[Image.Image]) -> None:
    """A column or grid of small other pictures inside `box`."""
    x0, y0, x1, y1 = box
    side = max(16, min(x1 - x0 - 8, (y1 - y0) // 4))
    y = y0 + 4
    while y + side <= y1:
        pic = rng.choice(others) if others else synthetic_picture((side, side), rng)
        paste_scaled(canvas, pic, (x0 + 4, y, x0 + 4 + side, y + side))
        y += side + rng.randint(4, 16)


def _title_bar(draw: ImageDraw.ImageDraw, w: int, y: int, rng: random.Random, dark: bool) -> int:
    th = rng.randint(26, 40)
    draw.rectangle((0, y, w, y + th), fill=grey(rng, 30, 60) if dark else grey(rng, 215, 240))
    ink = (230, 230, 230) if dark else (40, 40, 40)
    if rng.random() < 0.5:  # round buttons on the left
        for k, c in enumerate(((255, 95, 86), (255, 189, 46), (39, 201, 63))):
            cx = 14 + k * 20
            draw.ellipse((cx - 6, y + th // 2 - 6, cx + 6, y + th // 2 + 6), fill=c)
    else:  # square glyphs on the right
        for k in range(3):
            cx = w - 20 - k * 40
            draw.rectangle((cx - 6, y + th // 2 - 6, cx + 6, y + th // 2 + 6), outline=ink)
    draw.text((w * 0.35, y + th * 0.25), words(rng, 3), fill=ink, font=font(th // 2))
    return y + th


def _browser_bars(draw: ImageDraw.ImageDraw, w: int, y: int, rng: random.Random,
                  dark: bool) -> int:
    ink = (230, 230, 230) if dark else (40, 40, 40)
    tab_h = rng.randint(26, 36)
    x = 8
    for _ in range(rng.randint(2, 6)):
        tw = rng.randint(120, 240)
        draw.rounded_rectangle((x, y + 4, x + tw, y + tab_h), radius=6,
                               fill=grey(rng, 40, 80) if dark else grey(rng, 235, 255))
        draw.text((x + 10, y + 10), words(rng, 2), fill=ink, font=font(tab_h // 2 - 2))
        x += tw + 2
        if x > w - 250:
            break
    y += tab_h
    bar_h = rng.randint(34, 46)
    draw.rectangle((0, y, w, y + bar_h), fill=grey(rng, 45, 70) if dark else grey(rng, 245, 255))
    draw.rounded_rectangle((110, y + 6, w - 120, y + bar_h - 6), radius=bar_h // 2,
                           fill=grey(rng, 25, 40) if dark else grey(rng, 225, 240))
    url = f"https://www.{rng.choice(WORDS)}{rng.choice(WORDS)}.com/{rng.choice(WORDS)}/"
    draw.text((130, y + bar_h * 0.28), url + str(rng.randrange(10**6)), fill=ink,
              font=font(bar_h // 3 + 2))
    for k in range(3):
        cx = 20 + k * 30
        draw.ellipse((cx - 8, y + bar_h // 2 - 8, cx + 8, y + bar_h // 2 + 8), outline=ink)
    return y + bar_h


def screenshot(pic: Image.Image | None, rng: random.Random, others: list[Image.Image],
               min_area: float = 0.25) -> tuple[Image.Image, np.ndarray | None]:
    """A desktop window (browser, app or viewer) or a phone screen showing `pic` over at least
    `min_area` of the screenshot; the matrix from pic to the screenshot (None without one)."""
    portrait = pic is not None and pic.width < pic.height * 0.9
    if portrait or rng.random() < 0.3:
        return phone_screen(pic, rng, others, min_area)
    for attempt in range(2):
        out = _desktop(pic, rng, others, min_area, panel=attempt == 0)
        if out is not None:
            return out
    return phone_screen(pic, rng, others, min_area)


def _desktop(pic: Image.Image | None, rng: random.Random, others: list[Image.Image],
             min_area: float, panel: bool) -> tuple[Image.Image, np.ndarray | None] | None:
    w, h = rng.choice(((1280, 800), (1366, 768), (1440, 900), (1920, 1080), (1280, 720)))
    dark = rng.random() < 0.4
    bg = grey(rng, 20, 45) if dark else grey(rng, 238, 255)
    ink = (220, 220, 220) if dark else (30, 30, 30)
    canvas = Image.new("RGB", (w, h), bg)
    draw = ImageDraw.Draw(canvas)
    y = _title_bar(draw, w, 0, rng, dark)
    if rng.random() < 0.6:
        y = _browser_bars(draw, w, y, rng, dark)
    x0, x1 = 0, w
    if panel and rng.random() < 0.75:
        pw = int(w * rng.uniform(0.12, 0.25))
        left = rng.random() < 0.5
        px0 = 0 if left else w - pw
        draw.rectangle((px0, y, px0 + pw, h), fill=grey(rng, 30, 55) if dark else
                       grey(rng, 225, 245))
        if rng.random() < 0.6:
            _thumbs(canvas, (px0, y, px0 + pw, h), rng, others)
        else:
            _text_lines(draw, (px0 + 10, y + 10, px0 + pw - 10, h - 10), rng, ink, 14)
        x0, x1 = (pw, w) if left else (0, w - pw)
    bottom = rng.randint(50, 90)  # buttons and a caption under the picture
    room = (x1 - x0 - 40, h - y - bottom - 30)
    if pic is None:
        box = (x0 + 20, y + 20, x1 - 20, h - bottom)
        if rng.random() < 0.5:
            paste_scaled(canvas, rng.choice(others) if others else
                         synthetic_picture((room[0], room[1]), rng), box)
        else:
            _text_lines(draw, box, rng, ink, rng.randint(14, 24))
        matrix = None
    else:
        cap = min(room[0] / pic.width, room[1] / pic.height)
        want = math.sqrt(rng.uniform(min_area, 0.6) * w * h / (pic.width * pic.height))
        scale = min(cap, want)
        pw_, ph_ = round(pic.width * scale), round(pic.height * scale)
        if pw_ * ph_ < min_area * w * h:
            return None
        px = x0 + 20 + rng.randint(0, max(0, room[0] - pw_))
        py = y + 20 + rng.randint(0, max(0, room[1] - ph_) // 2)
        matrix = paste_scaled(canvas, pic, (px, py, px + pw_, py + ph_))
    by = h - bottom + 10
    for k in range(rng.randint(1, 4)):
        bx = x0 + 20 + k * 130
        draw.rounded_rectangle((bx, by, bx + 110, by + 32), radius=6, fill=colour(rng))
        draw.text((bx + 12, by + 8), rng.choice(WORDS).title(), fill=(255, 255, 255),
                  font=font(16))
    draw.text((x0 + 20, by + 40), words(rng, 6), fill=ink, font=font(14))
    return canvas, matrix


def phone_screen(pic: Image.Image | None, rng: random.Random, others: list[Image.Image],
                 min_area: float = 0.25) -> tuple[Image.Image, np.ndarray | None]:
    """A phone app: status bar, app bar, the picture across the width, bottom navigation."""
    w, h = rng.choice(((1080, 2340), (1170, 2532), (1080, 1920), (750, 1334)))
    dark = rng.random() < 0.5
    bg = grey(rng, 0, 30) if dark else grey(rng, 240, 255)
    ink = (235, 235, 235) if dark else (20, 20, 20)
    canvas = Image.new("RGB", (w, h), bg)
    draw = ImageDraw.Draw(canvas)
    sb = h // 30
    draw.text((w * 0.05, sb * 0.2), f"{rng.randint(0, 23)}:{rng.randint(0, 59):02d}",
              fill=ink, font=font(sb * 2 // 3))
    draw.rectangle((w * 0.85, sb * 0.3, w * 0.93, sb * 0.7), outline=ink, width=2)
    ab = h // 14
    draw.rectangle((0, sb, w, sb + ab), fill=grey(rng, 20, 50) if dark else colour(rng))
    draw.text((w * 0.15, sb + ab * 0.3), words(rng, 2).title(), fill=(255, 255, 255),
              font=font(ab // 3))
    nav = h // 12
    top = sb + ab
    if pic is None:
        if others and rng.random() < 0.6:
            pic_ = rng.choice(others)
            ph = round(w * pic_.height / pic_.width)
            paste_scaled(canvas, pic_, (0, top + 20, w, min(h - nav, top + 20 + ph)))
        _text_lines(draw, (30, h // 2, w - 30, h - nav - 10), rng, ink, h // 60)
        matrix = None
    else:
        room = h - nav - top - 40
        scale = min(w / pic.width, room / pic.height)
        want = math.sqrt(rng.uniform(min_area, 0.6) * w * h / (pic.width * pic.height))
        scale = min(scale, max(want, math.sqrt(min_area * w * h / (pic.width * pic.height))))
        pw_, ph_ = round(pic.width * scale), round(pic.height * scale)
        px = (w - pw_) // 2
        py = top + 20 + rng.randint(0, max(0, room - ph_) // 3)
        matrix = paste_scaled(canvas, pic, (px, py, px + pw_, py + ph_))
        _text_lines(draw, (30, py + ph_ + 20, w - 30, h - nav - 10), rng, ink, h // 60)
    draw.rectangle((0, h - nav, w, h), fill=grey(rng, 15, 40) if dark else grey(rng, 230, 245))
    for k in range(4):
        cx = w * (k + 0.5) / 4
        draw.ellipse((cx - nav / 5, h - nav * 0.7, cx + nav / 5, h - nav * 0.3), outline=ink,
                     width=3)
    return canvas, matrix


# --- posts and pages --------------------------------------------------------------------------

def post(pic: Image.Image | None, rng: random.Random, others: list[Image.Image],
         min_area: float = 0.25) -> tuple[Image.Image, np.ndarray | None]:
    """A social-media post (avatar, name, text, the picture, actions) or a page of text with
    the picture inset, holding `pic` over at least `min_area` of the result."""
    w = rng.choice((1080, 1200, 900))
    dark = rng.random() < 0.3
    bg = grey(rng, 10, 35) if dark else (grey(rng, 245, 255) if rng.random() < 0.7
                                         else colour(rng))
    ink = (230, 230, 230) if dark else (25, 25, 25)
    social = rng.random() < 0.6
    inset = 1.0 if social and rng.random() < 0.5 else rng.uniform(0.55, 0.9)
    size = (pic.width, pic.height) if pic is not None else (4, 3)
    pw_ = round(w * inset)
    ph_ = round(pw_ * size[1] / size[0])
    share = rng.uniform(min_area + 0.03, 0.65)
    h = max(ph_ + 240, min(round(pw_ * ph_ / (share * w)), 4 * ph_))
    if pw_ * ph_ < min_area * w * h:  # too tall to hold the picture large enough
        h = max(ph_ + 10, int(pw_ * ph_ / (min_area * w)))
    canvas = Image.new("RGB", (w, h), bg)
    draw = ImageDraw.Draw(canvas)
    head = min(h - ph_, rng.randint(90, 200))
    if social:
        draw.ellipse((20, 20, 80, 80), fill=colour(rng))
        draw.text((95, 25), words(rng, 2).title(), fill=ink, font=font(24))
        draw.text((95, 55), "@" + rng.choice(WORDS) + str(rng.randrange(999)),
                  fill=(128, 128, 128), font=font(18))
        _text_lines(draw, (20, 95, w - 20, head), rng, ink, 20)
    else:
        _text_lines(draw, (40, 20, w - 40, head), rng, ink, rng.randint(16, 26))
    px = (w - pw_) // 2 if social else rng.choice((40, w - pw_ - 40, (w - pw_) // 2))
    px = max(0, min(px, w - pw_))
    py = head
    if pic is not None:
        matrix: np.ndarray | None = paste_scaled(canvas, pic, (px, py, px + pw_, py + ph_))
    else:
        matrix = None
        filler = rng.choice(others) if others and rng.random() < 0.6 else \
            synthetic_picture((pw_, ph_), rng)
        paste_scaled(canvas, filler, (px, py, px + pw_, py + ph_))
    if not social and pw_ < w - 200:  # text beside the inset
        tx = (px + pw_ + 20, w - 30) if px < w / 2 - pw_ / 2 else (30, px - 20)
        _text_lines(draw, (tx[0], py, tx[1], py + ph_), rng, ink, 18)
    y = py + ph_ + 15
    if social and y + 40 < h:
        for k in range(4):
            cx = 40 + k * 90
            draw.ellipse((cx - 14, y, cx + 14, y + 28), outline=ink, width=3)
        y += 50
    if y < h - 20:
        _text_lines(draw, (20, y, w - 20, h - 10), rng, ink, 18)
        for k in range(rng.randint(0, 2)):  # other, smaller pictures further down
            side = min(200, (h - y) // 2)
            if side > 40:
                x = 20 + k * (side + 20)
                paste_scaled(canvas, rng.choice(others) if others else
                             synthetic_picture((side, side), rng), (x, h - side - 10, x + side,
                                                                    h - 10))
    return canvas, matrix


# --- frames -----------------------------------------------------------------------------------

def frame(pic: Image.Image, rng: random.Random, kind: str) -> tuple[Image.Image, np.ndarray]:
    """The picture in a frame that is not uniform: polaroid, mat, drop shadow or a textured
    frame, on a background; the matrix from pic to the result."""
    w, h = pic.size
    if kind == "polaroid":
        side = round(w * rng.uniform(0.04, 0.07))
        bottom = round(h * rng.uniform(0.18, 0.28))
        card = Image.new("RGB", (w + 2 * side, h + side + bottom), grey(rng, 235, 255))
        card.paste(pic, (side, side))
        ImageDraw.Draw(card).text((side * 2, h + side + bottom * 0.3), words(rng, 3),
                                  fill=(30, 30, 90), font=font(bottom // 3))
        inner = similarity(1, side, side)
    elif kind == "mat":
        outer = round(min(w, h) * rng.uniform(0.03, 0.06))
        mat = round(min(w, h) * rng.uniform(0.08, 0.15))
        card = Image.new("RGB", (w + 2 * (outer + mat), h + 2 * (outer + mat)),
                         rng.choice(((20, 20, 20), (120, 80, 40), (190, 160, 60))))
        draw = ImageDraw.Draw(card)
        draw.rectangle((outer, outer, card.width - outer, card.height - outer),
                       fill=grey(rng, 225, 250))
        draw.rectangle((outer + mat - 3, outer + mat - 3, outer + mat + w + 2, outer + mat + h + 2),
                       outline=grey(rng, 150, 200), width=2)
        card.paste(pic, (outer + mat, outer + mat))
        inner = similarity(1, outer + mat, outer + mat)
    elif kind == "shadow":
        pad = round(max(w, h) * rng.uniform(0.08, 0.2))
        card = background((w + 2 * pad, h + 2 * pad), rng)
        shadow = Image.new("L", card.size, 0)
        off = rng.randint(4, pad // 2)
        ImageDraw.Draw(shadow).rectangle((pad + off, pad + off, pad + off + w, pad + off + h),
                                         fill=rng.randint(100, 180))
        shadow = shadow.filter(ImageFilter.GaussianBlur(rng.uniform(5, 15)))
        card.paste((0, 0, 0), (0, 0), shadow)
        card.paste(pic, (pad, pad))
        return card, similarity(1, pad, pad)
    else:  # textured: wood grain or a printed pattern, a few per cent to 12% of the side
        b = round(min(w, h) * rng.uniform(0.05, 0.12))
        fw, fh = w + 2 * b, h + 2 * b
        yy, xx = np.mgrid[0:fh, 0:fw].astype(np.float64)
        noise = np.random.default_rng(rng.randrange(2**32)).normal(0, 1, (fh, fw))
        if rng.random() < 0.5:
            grain = np.sin((xx + yy) / rng.uniform(2, 6) + 3 * np.sin(yy / 37)) * 25 + noise * 10
            base = np.array((140, 90, 45), float) * rng.uniform(0.7, 1.2)
        else:
            grain = (np.sin(xx / 5) * np.sin(yy / 5) > 0) * 50 + noise * 6
            base = np.array(colour(rng), float) * 0.7
        tex = np.clip(base[None, None, :] + grain[:, :, None], 0, 255).astype(np.uint8)
        card = Image.fromarray(tex, "RGB")
        card.paste(pic, (b, b))
        inner = similarity(1, b, b)
    pad = round(max(card.size) * rng.uniform(0.03, 0.12))
    scene = background((card.width + 2 * pad, card.height + 2 * pad), rng)
    scene.paste(card, (pad, pad))
    return scene, similarity(1, pad, pad) @ inner
