"""Content negotiation: how much an Accept header wants a media type."""

from __future__ import annotations


def quality(accept: str, wanted: str) -> float:
    """The q the Accept header gives a media type: its most specific matching range wins
    (type/subtype, then type/*, then */*); 0 when no range matches."""
    kind = wanted.split("/")[0]
    best: tuple[int, float] = (-1, 0.0)
    for item in accept.split(","):
        media, *params = (part.strip() for part in item.split(";"))
        media = media.lower()
        specificity = {wanted: 2, f"{kind}/*": 1, "*/*": 0}.get(media)
        if specificity is None or specificity < best[0]:
            continue
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        best = (specificity, q)
    return best[1]
