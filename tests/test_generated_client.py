"""The spec as a stranger uses it: openapi-python-client generates a client from the served
/openapi.json alone (no configuration, not one warning), and the main flow runs through its
typed functions only, every answer parsed into its model, errors into the error model, bytes
into bytes."""

from __future__ import annotations

import base64
import importlib
import io
import os
import shutil
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack
from types import ModuleType
from typing import Any

import pytest
from PIL import Image

from server.imaging.thumbnails import SMALL
from tests.families import edited, original
from tests.test_cli import serve_own_database

GENERATOR = shutil.which("openapi-python-client", path=os.path.dirname(sys.executable))
PACKAGE = "imagerepo_api"


def generator_problems(output: str) -> list[str]:
    """The generator's warnings and errors (it says "WARNING parsing GET /x" when it drops a
    response or an operation, and still exits 0)."""
    return [line for line in output.splitlines()
            if "warning" in line.lower() or "error" in line.lower()]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, admin_dsn: str) -> Iterator[str]:
    with serve_own_database(tmp_path_factory.mktemp("generated"), admin_dsn) as url:
        yield url


@pytest.fixture(scope="module")
def api(server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleType]:
    if GENERATOR is None:
        pytest.skip("openapi-python-client is not installed (the test extra has it)")
    tmp = tmp_path_factory.mktemp("client")
    with urllib.request.urlopen(server + "/openapi.json", timeout=10) as resp:
        (tmp / "openapi.json").write_bytes(resp.read())
    bin_dir = os.path.dirname(sys.executable)  # the generator formats with ruff from here
    result = subprocess.run(
        [GENERATOR, "generate", "--path", str(tmp / "openapi.json"), "--output-path",
         str(tmp / PACKAGE), "--meta", "none"],
        env={**os.environ, "PATH": bin_dir + os.pathsep + os.environ.get("PATH", "")},
        capture_output=True, text=True, timeout=300)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert generator_problems(output) == [], output
    sys.path.insert(0, str(tmp))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(tmp))
        for name in [m for m in sys.modules if m.split(".")[0] == PACKAGE]:
            del sys.modules[name]


def mod(name: str) -> Any:
    return importlib.import_module(f"{PACKAGE}.{name}")


def test_the_main_flow_through_a_generated_client(api: ModuleType, server: str) -> None:
    with ExitStack() as clients:
        main_flow(server, clients)


def main_flow(server: str, clients: ExitStack) -> None:
    client_mod, models, types = mod("client"), mod("models"), mod("types")
    anonymous = clients.enter_context(
        client_mod.Client(base_url=server, raise_on_unexpected_status=True))
    signed = mod("api.accounts.sign_up").sync(
        client=anonymous, body=models.SignUp(username="gen_user", password="a long password"))
    assert isinstance(signed, models.SignedUp) and signed.api_key.startswith("irk_")

    def keyed(key: str, strict: bool = True) -> Any:
        return clients.enter_context(client_mod.AuthenticatedClient(
            base_url=server, token=key, raise_on_unexpected_status=strict))

    me = keyed(signed.api_key)
    profile = mod("api.accounts.get_profile").sync(client=me)
    assert isinstance(profile, models.User) and profile.username == "gen_user"

    info = mod("api.service.get_service_info").sync(client=anonymous)
    assert isinstance(info, models.ServiceInfo) and info.openapi == "/openapi.json"

    basic = clients.enter_context(client_mod.AuthenticatedClient(
        base_url=server, prefix="Basic", raise_on_unexpected_status=True,
        token=base64.b64encode(b"gen_user:a long password").decode()))
    second = mod("api.keys.create_key").sync(client=basic,
                                             body=models.NewKeyRequest(name="second"))
    assert isinstance(second, models.NewKey) and second.name == "second"
    unnamed = mod("api.keys.create_key").sync(client=basic)  # the body is optional
    assert isinstance(unnamed, models.NewKey) and unnamed.name

    files = [types.File(payload=io.BytesIO(data), file_name=name, mime_type="image/jpeg")
             for name, data in (("a.jpg", original(40)), ("b.jpg", original(41)),
                                ("c.jpg", original(42)))]
    uploaded = mod("api.images.upload_images").sync(client=me, body=models.UploadImagesBody(
        file=files, tags=["beach", "holiday"], title="generated",
        visibility=models.UploadImagesBodyVisibility.PUBLIC))
    assert isinstance(uploaded, models.Uploaded) and len(uploaded.images) == 3
    assert uploaded.images[0].tags == ["beach", "holiday"]
    ids = [image.id for image in uploaded.images]

    first = mod("api.images.list_images").sync(client=me, limit=2)
    assert isinstance(first, models.ImagePage) and len(first.images) == 2
    rest = mod("api.images.list_images").sync(client=me, limit=2, cursor=first.next_cursor)
    assert {i.id for i in first.images + rest.images} == set(ids)

    image = mod("api.images.get_image").sync(ids[0], client=me)
    assert isinstance(image, models.Image) and image.hashes.phash
    whole = mod("api.images.get_image_file").sync_detailed(ids[0], client=me)
    assert whole.status_code == 200 and whole.parsed.payload.read() == original(40)
    assert whole.headers["Content-Type"] == "image/jpeg"
    assert mod("api.images.get_image_file").sync(ids[0], client=me).payload.read() == original(40)
    part = mod("api.images.get_image_file").sync_detailed(ids[0], client=me, range_="bytes=0-9")
    assert part.status_code == 206 and part.parsed.payload.read() == original(40)[:10]
    thumbnail = mod("api.images.get_image_thumbnail").sync_detailed(ids[0], client=me)
    assert thumbnail.status_code == 200 and thumbnail.headers["Content-Type"] == "image/webp"
    small = Image.open(io.BytesIO(thumbnail.parsed.payload.read()))
    # 256 px on the long side, the image's 4:3 kept.
    assert small.format == "WEBP" and small.size == (SMALL, SMALL * image.height // image.width)
    jpeg = mod("api.images.get_image_thumbnail").sync_detailed(ids[0], client=me,
                                                               accept="image/jpeg")
    assert Image.open(io.BytesIO(jpeg.parsed.payload.read())).format == "JPEG"
    same = mod("api.images.get_image_file").sync_detailed(
        ids[0], client=me, if_none_match=whole.headers["ETag"])
    assert same.status_code == 304

    changed = mod("api.images.update_image").sync(ids[0], client=me, body=models.ImageChanges(
        title="renamed", tags=["sea"]))
    assert isinstance(changed, models.Image) and changed.title == "renamed"

    found = mod("api.search.search_text").sync(client=me, q="renamed")
    assert isinstance(found, models.SearchPage) and [r.id for r in found.results] == [ids[0]]

    query = types.File(payload=io.BytesIO(edited(40, "recompress")), file_name="q.jpg",
                       mime_type="image/jpeg")
    similar = mod("api.search.search_by_image").sync(
        client=me, body=models.SearchByImageBody(file=query))
    assert isinstance(similar, models.SimilarPage) and similar.results[0].id == ids[0]
    assert similar.results[0].matched_by.signal in (models.MatchedBySignal.WHOLE,
                                                    models.MatchedBySignal.REGION)
    like = mod("api.search.find_similar_images").sync(ids[0], client=me)
    assert isinstance(like, models.SimilarPage)

    albums_flow(me, ids, anonymous)

    gone = mod("api.images.delete_images").sync(client=me, body=models.BulkDelete(ids=ids[1:]))
    assert isinstance(gone, models.BulkDeleted) and set(gone.deleted) == set(ids[1:])

    assert mod("api.keys.revoke_key").sync_detailed(second.id, client=me).status_code == 204
    refused = mod("api.accounts.get_profile").sync_detailed(client=keyed(second.api_key))
    assert refused.status_code == 401
    assert isinstance(refused.parsed, models.Error)
    assert refused.parsed.error.code == "unauthorized"
    bad = mod("api.images.upload_images").sync_detailed(client=keyed(signed.api_key),
                                                        body=models.UploadImagesBody(
        file=[types.File(payload=io.BytesIO(b"not an image"), file_name="x.jpg")]))
    assert bad.status_code == 415 and isinstance(bad.parsed, models.Error)



def albums_flow(me: Any, ids: list[Any], anonymous: Any) -> None:
    """Issue 26: an album made, filled in an order, read, searched within, changed, deleted."""
    models = mod("models")
    album = mod("api.albums.create_album").sync(client=me, body=models.NewAlbum(title="Trip"))
    assert isinstance(album, models.Album) and album.visibility == "private"
    assert album.cover is None and album.image_count == 0
    done = mod("api.albums.add_album_images").sync(album.id, client=me, body=models.AddImages(
        image_ids=[ids[2], ids[0]]))
    assert isinstance(done, models.Added) and done.added == [ids[2], ids[0]]
    moved = mod("api.albums.add_album_images").sync(album.id, client=me, body=models.AddImages(
        image_ids=[ids[1], ids[0]], before=ids[2]))
    assert moved.added == [ids[1]] and moved.moved == [ids[0]]
    page = mod("api.albums.list_album_images").sync(album.id, client=me, limit=2)
    assert isinstance(page, models.AlbumImagePage) and page.next_cursor
    rest = mod("api.albums.list_album_images").sync(album.id, client=me, cursor=page.next_cursor)
    assert [(i.id, i.position) for i in page.images + rest.images] == [
        (ids[1], 1), (ids[0], 2), (ids[2], 3)]
    found = mod("api.search.search_text").sync(client=me, q="generated", album=album.id)
    assert {r.id for r in found.results} == {ids[1], ids[2]}  # ids[0] was renamed
    like = mod("api.search.find_similar_images").sync(ids[0], client=me, album=album.id)
    assert isinstance(like, models.SimilarPage)
    removed = mod("api.albums.remove_album_images").sync(
        album.id, client=me, body=models.RemoveImages(image_ids=[ids[1]]))
    assert isinstance(removed, models.Removed) and removed.removed == [ids[1]]
    hidden = mod("api.albums.get_album").sync_detailed(album.id, client=anonymous)
    assert hidden.status_code == 404 and isinstance(hidden.parsed, models.Error)
    changed = mod("api.albums.update_album").sync(album.id, client=me, body=models.AlbumChanges(
        visibility=models.AlbumChangesVisibility.PUBLIC))
    assert isinstance(changed, models.Album) and changed.cover.id == ids[0]
    listed = mod("api.albums.list_albums").sync(client=anonymous, owner="gen_user")
    assert isinstance(listed, models.AlbumPage) and [a.id for a in listed.albums] == [album.id]
    gone = mod("api.albums.delete_album").sync_detailed(album.id, client=me)
    assert gone.status_code == 204


def test_scoped_keys_through_a_generated_client(api: ModuleType, server: str) -> None:
    """Issue 26: a key made with one scope, its scopes and expiry as typed fields, and the 403
    of an operation outside it parsed into the error model, the scope named."""
    client_mod, models = mod("client"), mod("models")
    with ExitStack() as clients:
        anonymous = clients.enter_context(
            client_mod.Client(base_url=server, raise_on_unexpected_status=True))
        mod("api.accounts.sign_up").sync(client=anonymous, body=models.SignUp(
            username="gen_scoped", password="a long password"))
        basic = clients.enter_context(client_mod.AuthenticatedClient(
            base_url=server, prefix="Basic", raise_on_unexpected_status=True,
            token=base64.b64encode(b"gen_scoped:a long password").decode()))
        scope = models.NewKeyRequestScopesItem
        made = mod("api.keys.create_key").sync(client=basic, body=models.NewKeyRequest(
            name="uploader", scopes=[scope.UPLOAD], expires_in_days=7))
        assert isinstance(made, models.NewKey)
        assert [str(s) for s in made.scopes] == ["upload"] and made.expires_at is not None
        uploader = clients.enter_context(client_mod.AuthenticatedClient(
            base_url=server, token=made.api_key, raise_on_unexpected_status=False))

        refused = mod("api.images.list_images").sync_detailed(client=uploader)
        assert refused.status_code == 403 and isinstance(refused.parsed, models.Error)
        assert refused.parsed.error.code == "missing_scope"
        assert refused.parsed.to_dict()["error"]["details"] == {"missing_scope": "read"}
        broader = mod("api.keys.create_key").sync_detailed(
            client=uploader, body=models.NewKeyRequest(scopes=[scope.READ]))
        assert broader.status_code == 403 and isinstance(broader.parsed, models.Error)
        assert broader.parsed.to_dict()["error"]["details"] == {"missing_scope": "keys"}

        listed = mod("api.keys.list_keys").sync(client=clients.enter_context(
            client_mod.AuthenticatedClient(base_url=server, raise_on_unexpected_status=True,
                                           token=mod("api.keys.create_key").sync(
                                               client=basic).api_key)))
        assert isinstance(listed, models.KeyList)
        by_name = {k.name: k for k in listed.keys}
        assert [str(s) for s in by_name["uploader"].scopes] == ["upload"]
        assert by_name["uploader"].expires_at is not None and by_name["default"].expires_at is None


def test_share_links_through_a_generated_client(api: ModuleType, server: str) -> None:
    """Issue 26: the owner makes, lists and revokes a link; a visitor's client sends the token
    as the ShareToken scheme says (`X-Share-Token`), reads the picture, and gets the file only
    where the link allows; each error parsed into the error model."""
    client_mod, models, types = mod("client"), mod("models"), mod("types")
    with ExitStack() as clients:
        anonymous = clients.enter_context(
            client_mod.Client(base_url=server, raise_on_unexpected_status=True))
        signed = mod("api.accounts.sign_up").sync(client=anonymous, body=models.SignUp(
            username="gen_sharer", password="a long password"))
        me = clients.enter_context(client_mod.AuthenticatedClient(
            base_url=server, token=signed.api_key, raise_on_unexpected_status=True))
        uploaded = mod("api.images.upload_images").sync(client=me, body=models.UploadImagesBody(
            file=[types.File(payload=io.BytesIO(original(50)), file_name="p.jpg",
                             mime_type="image/jpeg")], title="private one"))
        image_id = uploaded.images[0].id

        made = mod("api.shares.share_image").sync(image_id, client=me,
                                                  body=models.NewShareRequest(
                                                      expires_in_seconds=3600))
        assert isinstance(made, models.NewShare) and made.token.startswith("irs_")
        assert made.url == f"/#share={made.token}" and made.expires_at is not None

        def visitor(token: str) -> Any:
            return clients.enter_context(client_mod.AuthenticatedClient(
                base_url=server, token=token, auth_header_name="X-Share-Token", prefix="",
                raise_on_unexpected_status=False))

        shown = mod("api.shared.get_shared").sync(client=visitor(made.token))
        assert isinstance(shown, models.Shared) and shown.image.title == "private one"
        assert shown.allow_download is False and shown.owner == "gen_sharer"
        thumbnail = mod("api.shared.get_shared_image_thumbnail").sync_detailed(
            image_id, client=visitor(made.token))
        assert thumbnail.status_code == 200
        assert thumbnail.headers["Cache-Control"] == "private, no-store"
        refused = mod("api.shared.get_shared_image_file").sync_detailed(
            image_id, client=visitor(made.token))
        assert refused.status_code == 403 and isinstance(refused.parsed, models.Error)
        assert refused.parsed.error.code == "download_not_allowed"

        listed = mod("api.shares.list_shares").sync(client=me, image_id=image_id)
        assert isinstance(listed, models.ShareList) and [s.id for s in listed.shares] == [made.id]
        assert listed.shares[0].active is True
        revoked = mod("api.shares.revoke_share").sync_detailed(made.id, client=me)
        assert revoked.status_code == 204
        gone = mod("api.shared.get_shared").sync_detailed(client=visitor(made.token))
        assert gone.status_code == 404 and isinstance(gone.parsed, models.Error)
