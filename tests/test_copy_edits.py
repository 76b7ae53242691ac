"""The copy families of tests/copy_edits.py keep their word: the same seed gives the same
bytes, and each family stays inside the bounds its description states (the picture's share of
a screenshot or post, the area a crop keeps, the cover of overlays, the tilt of a photo of a
screen, the ground truth of hard negatives)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("skimage.data")

from tests import copy_edits as ce  # noqa: E402
from tests.photo_edits import EDITS  # noqa: E402


def _area(quad: np.ndarray) -> float:
    x, y = quad[:, 0], quad[:, 1]
    return float(abs(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1))) / 2)


def _visible(quad: np.ndarray, size: tuple[int, int]) -> float:
    """The share of the quad inside the frame, by sampling it on a grid."""
    u, v = np.meshgrid(np.linspace(0.01, 0.99, 40), np.linspace(0.01, 0.99, 40))
    tl, tr, br, bl = quad
    pts = ((1 - u)[..., None] * (1 - v)[..., None] * tl + u[..., None] * (1 - v)[..., None] * tr
           + u[..., None] * v[..., None] * br + (1 - u)[..., None] * v[..., None] * bl)
    inside = ((pts[..., 0] >= 0) & (pts[..., 0] <= size[0]) & (pts[..., 1] >= 0)
              & (pts[..., 1] <= size[1]))
    return float(inside.mean())


def test_splits_are_fixed_and_disjoint() -> None:
    assert not set(ce.DEVELOPMENT) & set(ce.HELD_OUT)
    assert len(ce.DEVELOPMENT) >= 6 and len(ce.HELD_OUT) >= 6


@pytest.mark.parametrize("family", [*ce.FAMILIES, "edit:caption_band"])
def test_same_seed_same_bytes(family: str) -> None:
    a = ce.copy(family, "coffee", 1)
    assert a.data == ce.copy(family, "coffee", 1).data
    assert a.data != ce.copy(family, "coffee", 1, seed=ce.SEED + 1).data


def test_distractors_are_deterministic() -> None:
    assert [d.data for d in ce.distractors(10)] == [d.data for d in ce.distractors(10)]
    assert ce.distractor(5).data == ce.distractor(5).data


@pytest.mark.parametrize("name", ["astronaut", "moon", "clock"])
def test_hard_negatives_overlap_the_stored_window_by_less_than_a_third(name: str) -> None:
    keep = ce.stored_window(name)
    area = ce._area(keep)
    assert 0.40 <= area / (ce.photo(name).width * ce.photo(name).height) <= 0.551
    for box, _ in ce.hard_negatives(name):
        assert 3 * ce._inter(box, keep) < ce._area(box)


@pytest.mark.parametrize("family", ce.FAMILIES)
def test_families_respect_their_bounds(family: str) -> None:
    for instance, name in enumerate(("astronaut", "camera", "chelsea", "coffee")):
        c = ce.copy(family, name, instance)
        with Image.open(io.BytesIO(c.data)) as im:
            size = im.size
        assert c.corners is not None and len(c.corners) == len(c.answers)
        assert c.answers[0] == name and len(set(c.answers)) == len(c.answers)
        frame = size[0] * size[1]
        for quad in c.corners:
            assert _visible(quad, size) >= 0.49  # at least half of every answer is there
        share = _area(c.corners[0]) / frame
        if family in ("screenshot", "post", "frame", "photo"):
            assert share >= 0.25 and _visible(c.corners[0], size) == 1.0
        if family == "crop":
            assert 0.5 <= c.notes["kept"] < 1.0
            assert _visible(c.corners[0], size) == pytest.approx(c.notes["kept"], abs=0.06)
        if family == "overlay":
            assert 0.0 < c.notes["covered"] <= 0.25
        if family == "photo":
            assert c.notes["tilt"] <= 0.10
        if family == "collage":
            assert 2 <= len(c.answers) <= 4
            assert set(c.answers) <= set(ce.split_of(name))


def test_legacy_edits_are_all_there() -> None:
    assert [f[5:] for f in ce.EDIT_FAMILIES] == list(EDITS)
    c = ce.copy("edit:mirror", "coins", 0)
    assert c.answers == ("coins",) and c.corners is None
