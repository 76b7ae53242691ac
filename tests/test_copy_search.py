"""Search by image through the pictures a query holds (issue 22): a screenshot, a frame, a photo
of a screen, a collage and a post of a stored picture find it over HTTP, each answer says
where the picture lies in the query, and the hard negatives (other views of the same scene)
and others' private pictures never come back. Real photographs (tests/copy_edits.py); the
instances are ones the design finds (the family-level recall is bench/region_study.py's job),
from the development and the held-out photos."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pytest
from aiohttp import FormData, web
from aiohttp.test_utils import TestClient
from PIL import Image, ImageDraw

from server.imaging.regions import proposals
from tests import copy_edits as ce
from tests.conftest import bearer, sign_up
from tests.test_similar import search_image

Client = TestClient[web.Request, web.Application]

# (photo, instance) per family: one development and one held-out photo where the design finds
# the picture (collages: both development, every picture of each found).
FOUND = {
    "screenshot": (("coffee", 0), ("moon", 0)),
    "frame": (("hubble_deep_field", 0), ("camera", 0)),
    "photo": (("rocket", 0), ("chelsea", 0)),
    "collage": (("cell", 2), ("coins", 0)),
    "post": (("retina", 1), ("camera", 0)),
}
CORNER_TOLERANCE = 0.03  # of the query's diagonal


async def upload_all(client: Client, key: str, files: dict[str, bytes],
                     visibility: str = "public") -> dict[str, str]:
    """Uploads in one request; title -> id."""
    data = FormData()
    for title, content in files.items():
        data.add_field("file", io.BytesIO(content), filename=f"{title.replace(':', '-')}.jpg")
    data.add_field("visibility", visibility)
    resp = await client.post("/images", data=data, headers=bearer(key))
    assert resp.status == 201, await resp.text()
    images = (await resp.json())["images"]
    return {title: image["id"] for title, image in zip(files, images, strict=True)}


def stored_with_negatives(names: tuple[str, ...]) -> dict[str, bytes]:
    files = {name: ce.stored_bytes(name) for name in names}
    for name in names:
        files |= {f"negative {k} of {name}": data
                  for k, (_, data) in enumerate(ce.hard_negatives(name))}
    return files


async def search_each_copy(
    client: Client, family: str, found: tuple[tuple[str, int], ...]
) -> list[tuple[ce.Copy, dict[str, Any]]]:
    """Stores the pictures the copies hold with their hard negatives, searches with each
    copy, and checks that exactly the pictures it holds come back: (copy, results by
    picture name)."""
    key = (await sign_up(client, "archivist"))["api_key"]
    copies = [ce.copy(family, name, instance) for name, instance in found]
    names = tuple(dict.fromkeys(name for c in copies for name in c.answers))
    ids = await upload_all(client, key, stored_with_negatives(names))
    by_id = {image_id: title for title, image_id in ids.items()}
    out = []
    for c in copies:
        body = await search_image(client, c.data, key)
        results = {by_id[r["id"]]: r for r in body["results"]}
        assert set(results) == set(c.answers), (c.photo, c.instance, list(results))
        out.append((c, results))
    return out


def corner_error(found: list[list[float]], truth: np.ndarray, size: tuple[int, int]) -> float:
    """The largest corner distance, as a fraction of the query's diagonal."""
    distances = np.linalg.norm(np.array(found) - np.asarray(truth), axis=1)
    return float(distances.max() / np.hypot(*size))


@pytest.mark.parametrize("family", list(FOUND))
async def test_a_copy_finds_each_stored_picture_it_holds_and_where(
    client: Client, family: str
) -> None:
    for c, results in await search_each_copy(client, family, FOUND[family]):
        size = Image.open(io.BytesIO(c.data)).size
        assert c.corners is not None
        for name, truth in zip(c.answers, c.corners, strict=True):
            matched = results[name]["matched_by"]
            assert matched["query_part"] == "region", matched
            error = corner_error(matched["corners"], truth, size)
            assert error < CORNER_TOLERANCE, (name, matched["corners"], truth.tolist())


def _oriented(data: bytes) -> bytes:
    """The same picture stored turned, with the EXIF orientation (6) that turns it upright."""
    upright = Image.open(io.BytesIO(data)).convert("RGB")
    exif = Image.Exif()
    exif[0x0112] = 6
    out = io.BytesIO()
    upright.transpose(Image.Transpose.ROTATE_90).save(out, "JPEG", quality=92, exif=exif)
    return out.getvalue()


async def test_corners_are_in_the_upright_query_pixels(client: Client) -> None:
    """A phone's screenshot stored sideways with an EXIF orientation: the corners are where
    a viewer sees the picture."""
    key = (await sign_up(client, "archivist"))["api_key"]
    c = ce.copy("screenshot", "coffee", 0)
    await upload_all(client, key, {"coffee": ce.stored_bytes("coffee")})
    body = await search_image(client, _oriented(c.data), key)
    [result] = body["results"]
    size = Image.open(io.BytesIO(c.data)).size
    assert c.corners is not None
    assert corner_error(result["matched_by"]["corners"], c.corners[0], size) < CORNER_TOLERANCE


async def test_a_region_match_never_shows_someone_elses_private_picture(
    client: Client
) -> None:
    alice = (await sign_up(client, "alice"))["api_key"]
    bob = (await sign_up(client, "bob"))["api_key"]
    c = ce.copy("screenshot", "coffee", 0)
    [secret] = (await upload_all(client, alice, {"coffee": ce.stored_bytes("coffee")},
                                 "private")).values()
    for key in (bob, None):
        body = await search_image(client, c.data, key)
        assert body["results"] == [], key
    body = await search_image(client, c.data, alice)  # the copy does find it for its owner
    assert [r["id"] for r in body["results"]] == [secret]
    assert body["results"][0]["matched_by"]["query_part"] == "region"


async def test_the_whole_query_still_answers_as_before(client: Client) -> None:
    """The picture itself, re-encoded: found by the whole query's variants, no corners."""
    key = (await sign_up(client, "archivist"))["api_key"]
    await upload_all(client, key, {"moon": ce.stored_bytes("moon")})
    again = io.BytesIO()
    ce.stored_picture("moon").save(again, "JPEG", quality=70)
    [result] = (await search_image(client, again.getvalue(), key))["results"]
    assert result["matched_by"]["query_part"] == "whole"
    assert "corners" not in result["matched_by"]


# --- proposals, unit ----------------------------------------------------------------------------


def _ui_with(picture: Image.Image, box: tuple[int, int, int, int]) -> Image.Image:
    """A drawn app window: title bar, side panel, text lines, and the picture pasted in."""
    ui = Image.new("RGB", (1100, 800), (236, 238, 241))
    draw = ImageDraw.Draw(ui)
    draw.rectangle((0, 0, 1100, 48), fill=(40, 44, 52))
    draw.rectangle((0, 48, 220, 800), fill=(250, 250, 250))
    for y in range(80, 760, 36):
        draw.rectangle((24, y, 24 + (y * 7) % 150 + 40, y + 10), fill=(120, 120, 130))
    for y in range(box[3] + 24, 780, 28):
        draw.rectangle((box[0], y, box[0] + 300 + (y * 13) % 300, y + 8), fill=(90, 90, 90))
    ui.paste(picture.resize((box[2] - box[0], box[3] - box[1])), box[:2])
    return ui


def test_proposals_find_a_picture_pasted_on_a_user_interface() -> None:
    box = (300, 90, 900, 540)
    found = proposals(_ui_with(ce.stored_picture("chelsea"), box).convert("L"))
    assert 1 <= len(found) <= 8
    truth = np.array([box[:2], (box[2], box[1]), box[2:], (box[0], box[3])], dtype=float)
    best = min(found, key=lambda p: float(np.abs(np.array(p.corners) - truth).max()))
    assert np.abs(np.array(best.corners) - truth).max() < 6, best.corners
    width, height = best.picture.size
    assert abs(width / height - 600 / 450) < 0.03 and min(width, height) == 256


@pytest.mark.parametrize("name", ["chelsea", "astronaut", "coffee", "moon"])
def test_a_plain_photo_proposes_no_part_of_itself_as_a_picture(name: str) -> None:
    """A photograph without a picture in it: no region, or only ones that cover most of
    it (which then match as the whole would)."""
    picture = ce.stored_picture(name)
    area = picture.width * picture.height
    for found in proposals(picture.convert("L")):
        corners = np.array(found.corners)
        x, y = corners[:, 0], corners[:, 1]
        covered = 0.5 * abs(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1)))
        assert covered > 0.5 * area, (name, found.corners)


def test_proposals_are_few_and_largest_first() -> None:
    c = ce.copy("collage", "cell", 2)
    found = proposals(Image.open(io.BytesIO(c.data)).convert("L"))
    assert 4 <= len(found) <= 8

    def area(corners: Any) -> float:
        x, y = np.array(corners)[:, 0], np.array(corners)[:, 1]
        return float(0.5 * abs(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1))))

    areas = [area(p.corners) for p in found]
    assert areas == sorted(areas, reverse=True)
