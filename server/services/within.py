"""Search within a set of images (an album, a share link's images): the `within` filter.

Every search query (text, by image, similar) takes `within uuid[]`: null searches every
image the viewer may see, an array only those of its images the viewer may see. The caller
builds the set (albums.within, or a share link's scope) and names where it comes from: the
name, not the ids, goes into the cursor's scope, so a cursor never crosses from one album or
link to another, yet stays valid while the album changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID


@dataclass(frozen=True, slots=True)
class Within:
    source: str  # what the set is: "album:<id>", "share:<id>"
    ids: tuple[UUID, ...]

    def __str__(self) -> str:
        return self.source


def param(within: Within | None) -> list[UUID] | None:
    """The `within` parameter of the SQL: null for no restriction."""
    return None if within is None else list(within.ids)
