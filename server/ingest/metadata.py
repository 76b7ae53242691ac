"""Each file's metadata in one upload. The request-level `title`, `description`, `tags` and
`visibility` fields are the defaults; optional `metadata` parts, JSON objects one per `file`
part in order, override them file by file (an object's `tags` replace the request's). A part
holds one object or an array of them: one part with the whole array, or one part per file
(what OpenAPI generators send for an array of objects). Problems are 422, a file's named by
its label, every file's in one error.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

from ..errors import ValidationFailed
from ..services.images import (
    MAX_DESCRIPTION_CHARS,
    MAX_TITLE_CHARS,
    check_text,
    check_visibility,
    normalize_tags,
)

if TYPE_CHECKING:
    from .commit import StoredFile

# Per file: an object may hold thousands of unknown keys; naming ten is enough.
MAX_PROBLEMS = 10
# Files spelled out in the message (the details name them all).
MESSAGE_FILES = 3


@dataclass(frozen=True, slots=True)
class FileMetadata:
    title: str
    description: str
    tags: list[str]
    visibility: str


@dataclass(frozen=True, slots=True)
class _Defaults:
    title: str | None  # None: each file's name without its extension
    description: str
    tags: list[str]
    visibility: str


def single(fields: Mapping[str, list[str]], name: str) -> str | None:
    """A field that may be given once at most."""
    values = fields.get(name)
    if values is None:
        return None
    if len(values) > 1:
        raise ValidationFailed(f"{name} given more than once", details={name: ["Given twice."]})
    return values[0]


def per_file(fields: Mapping[str, list[str]], files: Sequence[StoredFile]) -> list[FileMetadata]:
    """One FileMetadata per file, in order; ValidationFailed (422) for any problem."""
    defaults = _request_defaults(fields)
    parts = fields.get("metadata")
    objects: list[Any] = [{}] * len(files) if parts is None else _objects(parts, len(files))
    results: list[FileMetadata] = []
    problems: dict[str, dict[str, list[str]]] = {}
    for stored, obj in zip(files, objects, strict=True):
        meta, found = _one(obj, defaults, stored.filename)
        if found:
            problems[stored.label] = found
        elif meta is not None:
            results.append(meta)
    if problems:
        raise ValidationFailed(_message(problems), details={"metadata": problems})
    return results


def _request_defaults(fields: Mapping[str, list[str]]) -> _Defaults:
    """The request-level fields, checked as they always were (errors name the field)."""
    title = single(fields, "title")
    return _Defaults(
        title=check_text("title", title, MAX_TITLE_CHARS) if title is not None else None,
        description=check_text("description", single(fields, "description") or "",
                               MAX_DESCRIPTION_CHARS, multiline=True),
        tags=normalize_tags(fields.get("tags", [])),
        visibility=check_visibility(single(fields, "visibility") or "private"),
    )


def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not JSON")


def _objects(parts: list[str], file_count: int) -> list[Any]:
    """The objects of every `metadata` part, in order: a part holds one object or an array."""
    objects: list[Any] = []
    for number, raw in enumerate(parts, 1):
        where = f"Part {number}: " if len(parts) > 1 else ""
        value = _parse(raw, where)
        if isinstance(value, list):
            objects.extend(value)
        elif isinstance(value, dict):
            objects.append(value)
        else:
            raise ValidationFailed(
                "metadata must hold JSON objects, one per file part",
                details={"metadata": [f"{where}Must be a JSON object or an array of objects, "
                                      "one object per file part."]})
    if len(objects) != file_count:
        counts = f"{_count(len(objects), 'object')} for {_count(file_count, 'file')}"
        raise ValidationFailed(f"metadata has {counts}: give one object per file part, in order",
                               details={"metadata": [f"{counts}."]})
    return objects


def _parse(raw: str, where: str) -> Any:
    try:
        # Python's parser takes NaN and Infinity, which JSON has not; its digit limit turns a
        # huge integer into ValueError, and deep nesting into RecursionError.
        return json.loads(raw, parse_constant=_not_json)
    except (ValueError, RecursionError) as exc:
        reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)[:200]
        raise ValidationFailed("metadata is not valid JSON",
                               details={"metadata": [f"{where}Not valid JSON: {reason}."]}
                               ) from None


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _text(name: str, max_chars: int, multiline: bool = False) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        if not isinstance(value, str):
            raise ValidationFailed(f"{name} is not a string", details={name: ["Must be a string."]})
        _storable(name, value)
        return check_text(name, value, max_chars, multiline=multiline)
    return check


def _tags(value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(tag, str) for tag in value):
        raise ValidationFailed("tags is not an array of strings",
                               details={"tags": ["Must be an array of strings."]})
    for tag in value:
        _storable("tags", tag)
    return normalize_tags(value)


def _visibility(value: Any) -> str:
    # Any non-string is simply not one of the values.
    return check_visibility(value if isinstance(value, str) else "")


def _storable(name: str, value: str) -> None:
    """JSON can carry lone surrogates, which PostgreSQL cannot store (the multipart fields
    cannot: they are decoded as strict UTF-8)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValidationFailed(f"{name} is not valid Unicode",
                               details={name: ["Not valid Unicode (lone surrogate)."]}) from None


_CHECKS: dict[str, Callable[[Any], Any]] = {
    "title": _text("title", MAX_TITLE_CHARS),
    "description": _text("description", MAX_DESCRIPTION_CHARS, multiline=True),
    "tags": _tags,
    "visibility": _visibility,
}


def _one(
    obj: Any, defaults: _Defaults, filename: str
) -> tuple[FileMetadata | None, dict[str, list[str]]]:
    """One file's metadata, or the problems of its object (key -> messages)."""
    if not isinstance(obj, dict):
        return None, {"_schema": ["Must be a JSON object."]}
    problems: dict[str, list[str]] = {}
    for key in [k for k in obj if k not in _CHECKS][:MAX_PROBLEMS]:
        # Shown in the answer: cut short, lone surrogates replaced.
        problems[key[:60].encode("utf-8", "replace").decode("utf-8")] = ["Unknown key."]
    values: dict[str, Any] = {}
    for key, check in _CHECKS.items():
        if key in obj:
            try:
                values[key] = check(obj[key])
            except ValidationFailed as exc:
                problems.update(exc.details)
    if problems:
        return None, problems
    title = values.get("title", defaults.title)
    return FileMetadata(
        title=title if title is not None else PurePosixPath(filename).stem[:MAX_TITLE_CHARS],
        description=values.get("description", defaults.description),
        tags=values.get("tags", defaults.tags),
        visibility=values.get("visibility", defaults.visibility),
    ), {}


def _message(problems: Mapping[str, Mapping[str, list[str]]]) -> str:
    """'Invalid metadata for file 2 ("cat.png") (visibility: Must be one of: ...)'"""
    parts = []
    for label, found in list(problems.items())[:MESSAGE_FILES]:
        texts = [" ".join(messages).rstrip(".") if key == "_schema"
                 else f"{key}: {' '.join(messages).rstrip('.')}"
                 for key, messages in found.items()]
        parts.append(f"{label} ({'; '.join(texts)})")
    more = len(problems) - MESSAGE_FILES
    return ("Invalid metadata for " + ", ".join(parts)
            + (f" and {_count(more, 'more file')}" if more > 0 else ""))
