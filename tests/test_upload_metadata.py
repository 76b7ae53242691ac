"""Per-file metadata in one upload: the `metadata` parts (one JSON object per file, in one
array or one part each), the request-level fields as defaults, and every way it can be wrong
(422 naming the file, nothing stored)."""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from contextlib import ExitStack
from types import ModuleType
from typing import Any

import pytest
from aiohttp import FormData, web
from aiohttp.test_utils import TestClient

from server.ingest import metadata as upload_metadata
from server.keys import STORAGE
from tests import test_generated_client as generated
from tests.conftest import bearer
from tests.images import make_image
from tests.raw_http import BOUNDARY, closing, part_head

Client = TestClient[web.Request, web.Application]
Fields = Sequence[tuple[str, str]]

FILES = [(name, make_image("PNG", (48, 32), seed=seed))
         for name, seed in (("beach.png", 11), ("cat.png", 12), ("dog.png", 13))]
CAT = 'file 2 ("cat.png")'

# A server of its own and a client generated from its spec (as tests/test_generated_client).
server = generated.server
api = generated.api


def form(files: Sequence[tuple[str, bytes]], before: Fields = (), after: Fields = ()) -> FormData:
    """Fields before and after the files; `metadata` sent as a JSON part."""
    data = FormData(default_to_multipart=True)

    def add(fields: Fields) -> None:
        for name, value in fields:
            # aiohttp warns of a large str body (it would block the loop): bytes in a file.
            data.add_field(name, io.BytesIO(value.encode()) if len(value) > 65536 else value,
                           content_type="application/json" if name == "metadata"
                           else "text/plain")

    add(before)
    for filename, content in files:
        data.add_field("file", io.BytesIO(content), filename=filename, content_type="image/png")
    add(after)
    return data


async def upload(client: Client, key: str, files: Sequence[tuple[str, bytes]] = FILES,
                 before: Fields = (), after: Fields = (), status: int = 201) -> Any:
    resp = await client.post("/images", data=form(files, before, after), headers=bearer(key))
    body = await resp.json()
    assert resp.status == status, body
    return body


def metadata(objects: Any) -> tuple[str, str]:
    return "metadata", json.dumps(objects)


async def assert_nothing_stored(client: Client, key: str) -> None:
    resp = await client.get("/images", params={"owner": "me"}, headers=bearer(key))
    assert (await resp.json())["images"] == []
    assert client.app is not None
    assert [info.key async for info in client.app[STORAGE].list()] == []


async def refused(client: Client, key: str, files: Sequence[tuple[str, bytes]],
                  fields: Fields) -> dict[str, Any]:
    """The error of an upload that must be 422 and leave nothing behind."""
    body = await upload(client, key, files, before=fields, status=422)
    await assert_nothing_stored(client, key)
    error: dict[str, Any] = body["error"]
    assert error["code"] == "validation_error"
    return error


# --- accepted ------------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["before", "after"])
async def test_each_file_gets_its_own_metadata(client: Client, alice: str, where: str) -> None:
    fields = [("title", "Trip"), ("description", "Summer"), ("tags", "holiday"), ("tags", "Sea"),
              ("visibility", "public"),
              metadata([{"title": "  Beach  "},
                        {"visibility": "private", "tags": ["Family", "cats, pets"]},
                        {"description": "Line one\nline two", "tags": []}])]
    body = await upload(client, alice, before=fields if where == "before" else (),
                        after=fields if where == "after" else ())
    got = [(i["filename"], i["title"], i["description"], i["tags"], i["visibility"])
           for i in body["images"]]
    assert got == [
        ("beach.png", "Beach", "Summer", ["holiday", "sea"], "public"),
        ("cat.png", "Trip", "Summer", ["family", "cats", "pets"], "private"),
        ("dog.png", "Trip", "Line one\nline two", [], "public"),
    ]
    # Stored so: the private one is nobody else's to see.
    ids = [i["id"] for i in body["images"]]
    listed = await (await client.get("/images")).json()
    assert {i["id"] for i in listed["images"]} == {ids[0], ids[2]}  # one created_at
    mine = await (await client.get(f"/images/{ids[1]}", headers=bearer(alice))).json()
    assert (mine["tags"], mine["visibility"]) == (["family", "cats", "pets"], "private")


async def test_without_fields_the_defaults_are_the_usual_ones(client: Client, alice: str) -> None:
    body = await upload(client, alice, FILES[:2], after=[metadata([{}, {"title": "Cat"}])])
    got = [(i["title"], i["description"], i["tags"], i["visibility"]) for i in body["images"]]
    assert got == [("beach", "", [], "private"), ("Cat", "", [], "private")]


async def test_metadata_may_be_larger_than_other_fields(client: Client, alice: str) -> None:
    objects = [{"description": f"{i} " + "long words " * 450} for i in range(3)]
    text = json.dumps(objects, indent=2) + " " * 200_000  # well past the 64 KiB of a field
    body = await upload(client, alice, after=[("metadata", text)])
    assert [i["description"] for i in body["images"]] == [o["description"].strip()
                                                          for o in objects]


async def test_metadata_over_a_mebibyte_is_413(client: Client, alice: str) -> None:
    text = json.dumps([{}, {}, {}]) + " " * (1024 * 1024)
    body = await upload(client, alice, after=[("metadata", text)], status=413)
    assert body["error"]["details"] == {"metadata": ["Too large."]}
    await assert_nothing_stored(client, alice)


async def test_a_hand_written_body_with_a_json_part(client: Client, alice: str) -> None:
    """As a stranger writes it: the parts by hand, the JSON part labelled as JSON."""
    objects = [{"title": "Beach"}, {"visibility": "private", "tags": ["family"]}]
    json_part = (f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="metadata"\r\n'
                 "Content-Type: application/json\r\n\r\n").encode() + json.dumps(objects).encode()
    body = b"\r\n".join([
        part_head("a.png") + FILES[0][1],
        json_part,
        part_head("b.png") + FILES[1][1],
        part_head("", "visibility") + b"public",
    ]) + closing()
    resp = await client.post("/images", data=body, headers={
        **bearer(alice), "Content-Type": f"multipart/form-data; boundary={BOUNDARY}"})
    assert resp.status == 201, await resp.text()
    got = [(i["title"], i["tags"], i["visibility"]) for i in (await resp.json())["images"]]
    assert got == [("Beach", [], "public"), ("b", ["family"], "private")]


@pytest.mark.parametrize("split", [False, True])
async def test_one_part_per_file_or_one_array(client: Client, alice: str, split: bool) -> None:
    """What a generated client sends for an array of objects (one JSON part per item), and
    one part holding the array, mean the same."""
    objects = [{"title": "Beach"}, {}, {"tags": ["dog"], "visibility": "public"}]
    fields = [metadata(o) for o in objects] if split else [metadata(objects)]
    body = await upload(client, alice, after=fields)
    got = [(i["title"], i["tags"], i["visibility"]) for i in body["images"]]
    assert got == [("Beach", [], "private"), ("cat", [], "private"), ("dog", ["dog"], "public")]


async def test_parts_may_hold_arrays_and_objects_in_turn(client: Client, alice: str) -> None:
    body = await upload(client, alice, after=[metadata([{"title": "One"}, {"title": "Two"}]),
                                              metadata({"title": "Three"})])
    assert [i["title"] for i in body["images"]] == ["One", "Two", "Three"]


async def test_the_mebibyte_bounds_every_metadata_part_together(
    client: Client, alice: str
) -> None:
    """Each part alone is under the limit; together they are over it."""
    parts = [metadata({"description": "x" * 400_000}) for _ in FILES]
    body = await upload(client, alice, after=parts, status=413)
    assert body["error"]["details"] == {"metadata": ["Too large."]}
    await assert_nothing_stored(client, alice)


def test_a_generated_client_sends_it(api: ModuleType, server: str) -> None:
    client_mod, models, types = (generated.mod(name) for name in ("client", "models", "types"))
    with ExitStack() as clients:
        anonymous = clients.enter_context(client_mod.Client(base_url=server,
                                                            raise_on_unexpected_status=True))
        signed = generated.mod("api.accounts.sign_up").sync(
            client=anonymous, body=models.SignUp(username="meta_user", password="a long password"))
        me = clients.enter_context(client_mod.AuthenticatedClient(
            base_url=server, token=signed.api_key, raise_on_unexpected_status=True))
        files = [types.File(payload=io.BytesIO(data), file_name=name, mime_type="image/png")
                 for name, data in FILES[:2]]
        uploaded = generated.mod("api.images.upload_images").sync(
            client=me, body=models.UploadImagesBody(
                file=files, visibility=models.UploadImagesBodyVisibility.PUBLIC,
                metadata=[models.FileMetadata(title="Beach"), models.FileMetadata(
                    visibility=models.FileMetadataVisibility.PRIVATE, tags=["family"])]))
    assert isinstance(uploaded, models.Uploaded)
    assert [(i.title, i.tags, i.visibility.value) for i in uploaded.images] == [
        ("Beach", [], "public"), ("cat", ["family"], "private")]


async def test_the_spec_documents_the_part(client: Client) -> None:
    spec = await (await client.get("/openapi.json")).json()
    content = spec["paths"]["/images"]["post"]["requestBody"]["content"]["multipart/form-data"]
    assert content["schema"]["properties"]["metadata"]["type"] == "array"
    assert content["schema"]["properties"]["metadata"]["items"] == {
        "$ref": "#/components/schemas/FileMetadata"}
    assert content["encoding"]["metadata"] == {"contentType": "application/json"}
    # The keys the server checks, and no other (an unknown key is 422).
    declared = spec["components"]["schemas"]["FileMetadata"]
    assert set(declared["properties"]) == set(upload_metadata._CHECKS)
    assert declared["additionalProperties"] is False


# --- refused -------------------------------------------------------------------------------


@pytest.mark.parametrize(("count", "files", "message"), [
    (3, 2, "3 objects for 2 files."),
    (1, 2, "1 object for 2 files."),
    (0, 1, "0 objects for 1 file."),
])
async def test_one_object_per_file(
    client: Client, alice: str, count: int, files: int, message: str
) -> None:
    error = await refused(client, alice, FILES[:files], [metadata([{}] * count)])
    assert error["details"] == {"metadata": [message]}
    assert message.rstrip(".") in error["message"]


@pytest.mark.parametrize(("value", "key", "message"), [
    ({"title": "x" * 201}, "title", "At most 200 characters."),
    ({"title": "tab\there"}, "title", "Control characters are not allowed."),
    ({"title": 42}, "title", "Must be a string."),
    ({"title": None}, "title", "Must be a string."),
    ({"title": "lone \ud800"}, "title", "Not valid Unicode (lone surrogate)."),
    ({"description": "x" * 5001}, "description", "At most 5000 characters."),
    ({"description": "nul \x00"}, "description", "Control characters are not allowed."),
    ({"description": ["text"]}, "description", "Must be a string."),
    ({"visibility": "friends"}, "visibility", "Must be one of: private, public."),
    ({"visibility": True}, "visibility", "Must be one of: private, public."),
    ({"tags": "beach"}, "tags", "Must be an array of strings."),
    ({"tags": ["beach", 3]}, "tags", "Must be an array of strings."),
    ({"tags": {"beach": 1}}, "tags", "Must be an array of strings."),
    ({"tags": ["x" * 51]}, "tags", f"Tag {'x' * 51!r} is longer than 50 characters."),
    ({"tags": ["bell \x07"]}, "tags", "Tag 'bell \\x07' contains control characters."),
    ({"tags": [f"t{i}" for i in range(31)]}, "tags", "At most 30 tags, got 31."),
    ({"colour": "red"}, "colour", "Unknown key."),
])
async def test_a_bad_value_names_its_file(
    client: Client, alice: str, value: dict[str, Any], key: str, message: str
) -> None:
    error = await refused(client, alice, FILES[:2], [metadata([{"title": "fine"}, value])])
    assert error["details"] == {"metadata": {CAT: {key: [message]}}}
    assert CAT in error["message"] and key in error["message"]


async def test_every_file_s_problems_in_one_error(client: Client, alice: str) -> None:
    objects = [{"title": "x" * 201}, {"title": "fine"},
               {"visibility": "friends", "colour": "red", "title": "fine"}]
    error = await refused(client, alice, FILES, [metadata(objects)])
    assert error["details"] == {"metadata": {
        'file 1 ("beach.png")': {"title": ["At most 200 characters."]},
        'file 3 ("dog.png")': {"colour": ["Unknown key."],
                               "visibility": ["Must be one of: private, public."]},
    }}
    assert 'file 1 ("beach.png")' in error["message"]
    assert 'file 3 ("dog.png")' in error["message"] and CAT not in error["message"]


async def test_a_thousand_unknown_keys_are_named_ten_at_most(client: Client, alice: str) -> None:
    error = await refused(client, alice, FILES[:1], [metadata([{f"k{i}": 1
                                                                for i in range(1000)}])])
    assert len(error["details"]["metadata"]['file 1 ("beach.png")']) == 10


@pytest.mark.parametrize("element", [["title"], None, "title", 3])
async def test_an_element_that_is_not_an_object_names_its_file(
    client: Client, alice: str, element: Any
) -> None:
    error = await refused(client, alice, FILES[:2], [metadata([{}, element])])
    assert error["details"] == {"metadata": {CAT: {"_schema": ["Must be a JSON object."]}}}
    assert CAT in error["message"]


@pytest.mark.parametrize(("text", "message"), [
    ("not json", "Not valid JSON: Expecting value"),
    ("", "Not valid JSON: Expecting value"),
    ("[{}", "Not valid JSON: Expecting"),
    ("[NaN]", "Not valid JSON: NaN is not JSON."),
    ("[" + "1" * 5000 + "]", "Not valid JSON: Exceeds the limit"),
    ("[" * 100_000 + "]" * 100_000, "Not valid JSON: nested too deeply."),
    ('"[]"', "Must be a JSON object or an array of objects, one object per file part."),
    ("null", "Must be a JSON object or an array of objects, one object per file part."),
    ("42", "Must be a JSON object or an array of objects, one object per file part."),
])
async def test_metadata_that_holds_no_objects_is_422(
    client: Client, alice: str, text: str, message: str
) -> None:
    error = await refused(client, alice, FILES[:1], [("metadata", text)])
    (got,) = error["details"]["metadata"]
    assert got.startswith(message), got


async def test_every_metadata_part_counts(client: Client, alice: str) -> None:
    error = await refused(client, alice, FILES[:1], [metadata([{}]), metadata([{}])])
    assert error["details"] == {"metadata": ["2 objects for 1 file."]}


async def test_a_bad_part_among_several_is_named(client: Client, alice: str) -> None:
    error = await refused(client, alice, FILES[:2], [metadata({}), ("metadata", "{oops")])
    (got,) = error["details"]["metadata"]
    assert got.startswith("Part 2: Not valid JSON"), got


async def test_the_request_fields_are_checked_even_when_every_file_overrides_them(
    client: Client, alice: str
) -> None:
    error = await refused(client, alice, FILES[:1], [
        ("visibility", "friends"), metadata([{"visibility": "public"}])])
    assert error["details"] == {"visibility": ["Must be one of: private, public."]}
