"""The web page: content negotiation at `/`, its files and headers (aiohttp's test client), and
the page itself in a real headless Chromium (Playwright) against a real server process, used
as a stranger would: sign up, upload, browse, search by text and by image, edit, delete, sign
out; hostile titles stay text; a phone-sized screen; no console errors under the strict CSP."""

from __future__ import annotations

import base64
import dataclasses
import functools
import io
import json
import os
import re
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from PIL import Image
from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Dialog,
    Locator,
    Page,
    Request,
    expect,
    sync_playwright,
)
from pytest_aiohttp import AiohttpClient

from server.app import create_app
from server.config import Config
from server.handlers.web import CSP_DIRECTIVES, content_security_policy
from tests import copy_edits
from tests.images import make_image
from tests.photo_edits import edited, jpeg, load_photos
from tests.s3server import S3Server
from tests.test_cli import serve_own_database

Client = TestClient[web.Request, web.Application]

CHROMIUM = "/usr/bin/chromium"
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
       "connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'")
BROWSER_ACCEPT = ("text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,"
                  "image/webp,image/apng,*/*;q=0.8")
PASSWORD = "correct horse battery"
HOSTILE = "Holiday <img src=x onerror=alert(1)> snaps"
# Set it to a path (docs/web-page.png) to write the README's screenshot from the run.
SCREENSHOT_ENV = "WEB_PAGE_SCREENSHOT"


# --- content negotiation, files, headers (no browser) -------------------------------------

def assert_security_headers(headers: Mapping[str, str], csp: str = CSP) -> None:
    lower = {name.lower(): value for name, value in headers.items()}
    assert lower["content-security-policy"] == csp
    assert lower["x-content-type-options"] == "nosniff"
    assert lower["referrer-policy"] == "no-referrer"


@pytest.mark.parametrize("accept", [BROWSER_ACCEPT, "text/html", "text/html;q=0.9, */*;q=0.1"])
async def test_browsers_get_the_page_at_the_root(client: Client, accept: str) -> None:
    resp = await client.get("/", headers={"Accept": accept})
    assert resp.status == 200
    assert resp.content_type == "text/html"
    assert_security_headers(resp.headers)
    assert "Accept" in resp.headers["Vary"]
    assert resp.headers["Cache-Control"] == "no-cache"
    text = await resp.text()
    assert '<script type="module" src="/web/' in text
    assert "<script>" not in text and "style=" not in text  # nothing inline: the CSP forbids it


@pytest.mark.parametrize("accept", [None, "*/*", "application/json", "application/json, text/html",
                                    "text/html;q=0.5, application/json"])
async def test_api_clients_keep_the_json_index(client: Client, accept: str | None) -> None:
    headers = {"Accept": accept} if accept else {}
    resp = await client.get("/", headers=headers, skip_auto_headers=["Accept"])
    assert resp.status == 200
    assert resp.content_type == "application/json"
    assert "Accept" in resp.headers["Vary"]
    body = await resp.json()
    assert body["name"] == "imagerepo" and body["openapi"] == "/openapi.json"


async def test_the_page_and_its_files(client: Client) -> None:
    resp = await client.get("/app", skip_auto_headers=["Accept"])  # any client, any Accept
    assert resp.status == 200 and resp.content_type == "text/html"
    assert_security_headers(resp.headers)
    etag = resp.headers["ETag"]
    page = await resp.text()
    assert (await client.get("/app", headers={"If-None-Match": etag})).status == 304

    urls = re.findall(r'(?:src|href)="(/web/[^"]+)"', page)
    assert {u.rsplit("/", 1)[-1] for u in urls} == {"app.css", "main.js"}
    version = urls[0].split("/")[2]
    for url in urls:
        resp = await client.get(url)
        assert resp.status == 200, url
        assert_security_headers(resp.headers)
        assert resp.headers["Cache-Control"] == "public, max-age=31536000, immutable"
        assert resp.content_type in ("text/css", "text/javascript")
        revalidated = await client.get(url, headers={"If-None-Match": resp.headers["ETag"]})
        assert revalidated.status == 304

    # Modules import each other relatively, under the same version.
    main = await (await client.get(f"/web/{version}/js/main.js")).text()
    for module in re.findall(r'from "\./([\w-]+\.js)"', main):
        assert (await client.get(f"/web/{version}/js/{module}")).status == 200, module
    # A page cached before a release still gets the files, but not for a year.
    old = await client.get("/web/000000000000/app.css")
    assert old.status == 200 and old.headers["Cache-Control"] == "no-cache"
    # Only the web files: nothing else of the package, however the path is spelled.
    for path in ("js/nope.js", "index.html", "../handlers/web.py", "%2e%2e/app.py", "app.css/"):
        resp = await client.get(f"/web/{version}/{path}")
        assert resp.status == 404, path
        assert (await resp.json())["error"]["code"] == "not_found"


async def test_the_page_stays_out_of_the_spec(client: Client) -> None:
    spec = await (await client.get("/openapi.json")).json()
    assert not [p for p in spec["paths"] if p.startswith(("/app", "/web"))]
    root = spec["paths"]["/"]
    assert set(root) == {"get"}
    # Only the answer of / itself, which a browser asking for HTML gets as the page (JSON
    # first: generated clients read the first type they know).
    assert list(root["get"]["responses"]["200"]["content"]) == ["application/json", "text/html"]


async def test_with_redirect_downloads_the_object_store_is_allowed(
    config: Config, s3_env: S3Server, aiohttp_client: AiohttpClient
) -> None:
    """DOWNLOADS=redirect: pictures come from S3 after a 302, so its origin (only) joins
    img-src and connect-src."""
    config = dataclasses.replace(config, downloads="redirect",
                                 storage_url=f"s3://test-{uuid.uuid4().hex[:12]}/web")
    client = await aiohttp_client(create_app(config))
    resp = await client.get("/app")
    origin = s3_env.env["AWS_ENDPOINT_URL_S3"].rstrip("/")
    assert resp.headers["Content-Security-Policy"] == content_security_policy(origin)
    directives = dict(d.split(" ", 1) for d in resp.headers["Content-Security-Policy"].split("; "))
    assert directives["img-src"] == f"'self' blob: data: {origin}"
    assert directives["connect-src"] == f"'self' {origin}"
    assert {k: v for k, v in directives.items() if k not in ("img-src", "connect-src")} == {
        k: v for k, v in CSP_DIRECTIVES.items() if k not in ("img-src", "connect-src")}


# --- the page in Chromium --------------------------------------------------------------------

# Only the browser tests need Chromium; the checks above run anywhere.
needs_chromium = pytest.mark.skipif(
    not os.path.exists(CHROMIUM),
    reason=f"no Chromium at {CHROMIUM} (apt-get install chromium; .ci/run does)")
TIMEOUT_MS = 20_000


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, admin_dsn: str) -> Iterator[str]:
    with serve_own_database(tmp_path_factory.mktemp("web"), admin_dsn) as url:
        yield url


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, admin_dsn: str) -> Iterator[str]:
    """Another server, for the tests of issue 23: they leave public pictures behind, which the
    stranger's first visit (to an empty site) must not find, in whatever order tests run."""
    with serve_own_database(tmp_path_factory.mktemp("web-site"), admin_dsn) as url:
        yield url


@pytest.fixture(scope="module")
def browser(server: str, site: str) -> Iterator[Browser]:
    """After the servers: they set up and drop their databases with asyncio.run(), which
    cannot run while Playwright's own loop does."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM)
        try:
            yield browser
        finally:
            browser.close()


@dataclasses.dataclass
class Watched:
    """A page and what went wrong on it: console errors, uncaught errors, dialogs."""
    page: Page
    context: BrowserContext
    errors: list[str] = dataclasses.field(default_factory=list)
    dialogs: list[str] = dataclasses.field(default_factory=list)

    def assert_clean(self) -> None:
        assert self.errors == [], self.errors
        assert self.dialogs == [], self.dialogs


OpenPage = Callable[..., Watched]


@pytest.fixture
def open_page(browser: Browser) -> Iterator[OpenPage]:
    yield from watched_pages(browser)


def watched_pages(browser: Browser) -> Iterator[OpenPage]:
    """Pages in browser contexts of their own, their console errors and dialogs recorded;
    every context closed at the end (the body of an `open_page` fixture)."""
    contexts: list[BrowserContext] = []

    def open_page(width: int = 1100, height: int = 800, scale: float = 1) -> Watched:
        context = browser.new_context(viewport={"width": width, "height": height},
                                      device_scale_factor=scale)
        context.set_default_timeout(TIMEOUT_MS)
        contexts.append(context)
        watched = Watched(context.new_page(), context)

        def on_console(message: ConsoleMessage) -> None:
            if message.type == "error":
                watched.errors.append(message.text)

        def on_dialog(dialog: Dialog) -> None:
            watched.dialogs.append(dialog.message)
            dialog.dismiss()

        watched.page.on("console", on_console)
        watched.page.on("pageerror", lambda error: watched.errors.append(str(error)))
        watched.page.on("dialog", on_dialog)
        return watched

    yield open_page
    for context in contexts:
        context.close()


def api(url: str, method: str = "GET", key: str | None = None) -> tuple[int, Any]:
    headers = {"Accept": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    request = urllib.request.Request(url, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            body = resp.read()
            return resp.status, json.loads(body) if body else None
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"null")


@functools.cache
def photos() -> dict[str, Image.Image]:
    return dict(load_photos())


def photo(name: str) -> Image.Image:
    return photos()[name]


def write(path: Path, data: bytes) -> str:
    path.write_bytes(data)
    return str(path)


def sign_up(page: Page, username: str) -> None:
    page.get_by_role("button", name="Sign in or sign up").click()
    dialog = page.locator("#auth-dialog")
    dialog.get_by_label("Username").fill(username)
    dialog.get_by_label("Password").fill(PASSWORD)
    dialog.get_by_role("button", name="Sign up").click()
    expect(page.locator("#who")).to_have_text(f"Signed in as {username}")
    expect(dialog).not_to_be_visible()


def sign_in(page: Page, username: str, password: str = PASSWORD) -> None:
    page.get_by_role("button", name="Sign in or sign up").click()
    dialog = page.locator("#auth-dialog")
    dialog.get_by_label("Username").fill(username)
    dialog.get_by_label("Password").fill(password)
    dialog.get_by_role("button", name="Sign in", exact=True).click()


def cards(page: Page) -> Locator:
    return page.locator("#grid .card")


def card_names(page: Page) -> list[str]:
    return [name.strip() for name in page.locator("#grid .card .name").all_inner_texts()]


def until(page: Page, expression: str, timeout: float = TIMEOUT_MS / 1000) -> None:
    """Poll a JavaScript expression until it is true. (Playwright's wait_for_function evaluates
    a string, which the page's CSP forbids: no 'unsafe-eval'.)"""
    deadline = time.monotonic() + timeout
    while not page.evaluate(expression):
        assert time.monotonic() < deadline, f"still false after {timeout} s: {expression}"
        time.sleep(0.05)


def wait_pictures(page: Page) -> None:
    """Every picture in the grid and in an open dialog has loaded (blob: ones included)."""
    until(page, "[...document.querySelectorAll('#grid img, dialog[open] img')]"
                ".every(img => img.complete && img.naturalWidth > 0)")


def hand_over(page: Page, how: str, selector: str, path: str) -> None:
    """Drop a file on an element, or paste it there, as the browser's events carry it."""
    page.evaluate("""([how, selector, name, data]) => {
        const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
        const transfer = new DataTransfer();
        transfer.items.add(new File([bytes], name, { type: "image/jpeg" }));
        const target = document.querySelector(selector);
        const init = { bubbles: true, cancelable: true };
        if (how === "paste") {
          target.dispatchEvent(new ClipboardEvent("paste", { ...init, clipboardData: transfer }));
          return;
        }
        for (const type of ["dragenter", "dragover", "drop"]) {
          target.dispatchEvent(new DragEvent(type, { ...init, dataTransfer: transfer }));
        }
    }""", [how, selector, Path(path).name, base64.b64encode(Path(path).read_bytes()).decode()])


def upload(page: Page, files: list[str], drop: bool = False, **fields: str) -> None:
    if not page.locator("#upload").evaluate("details => details.open"):
        page.locator("#upload summary").click()
    if "visibility" in fields:
        page.locator("#upload-visibility").select_option(fields["visibility"])
    page.locator("#upload-tags").fill(fields.get("tags", ""))
    page.locator("#upload-title").fill(fields.get("title", ""))
    before = page.locator("#uploads li").count()
    if drop:
        for path in files:
            hand_over(page, "drop", "#upload-zone p", path)
    else:
        page.locator("#upload-files").set_input_files(files)
    rows = page.locator("#uploads li")
    expect(rows).to_have_count(before + len(files))
    until(page, f"document.querySelectorAll('#uploads li.done, #uploads li.failed').length "
                f">= {before + len(files)}", timeout=60)
    assert page.locator("#uploads li.failed").count() == 0, page.locator(
        "#uploads li.failed").all_inner_texts()


@needs_chromium
def test_a_stranger_uses_the_page(
    server: str, open_page: OpenPage, tmp_path: Path
) -> None:
    started = time.monotonic()
    shots = tmp_path / "screenshots"
    shots.mkdir()
    watched: Watched = open_page()
    page = watched.page

    response = page.goto(server + "/")
    assert response is not None and response.ok
    assert_security_headers(response.headers)
    expect(page.locator("#grid .empty")).to_have_text("Nothing found.")
    assert page.locator("#upload").is_hidden()  # uploading needs an account

    # Sign up: the page gets a key through the API and keeps it in this tab only.
    sign_up(page, "ada")
    stored = page.evaluate("sessionStorage.getItem('imagerepo.session')")
    session = json.loads(stored)
    assert session["key"].startswith("irk_") and session["id"]
    assert page.evaluate("document.cookie") == ""
    assert page.evaluate("localStorage.length") == 0

    # Upload three files at once (private, the API's default): one request each.
    astronaut, coffee = photo("astronaut"), photo("coffee")
    files = [write(tmp_path / "astronaut.jpg", jpeg(astronaut, 90)),
             write(tmp_path / "coffee.jpg", jpeg(coffee, 90)),
             write(tmp_path / "pattern.png", make_image("PNG", (400, 300), seed=7))]
    posts: list[Request] = []
    page.on("request", lambda r: posts.append(r) if r.method == "POST" and urlsplit(
        r.url).path == "/images" else None)
    upload(page, files, tags="web test")
    assert len(posts) == 3
    expect(cards(page)).to_have_count(3)
    # Titles default to the file names' stems.
    assert sorted(card_names(page)) == ["astronaut", "coffee", "pattern"]
    wait_pictures(page)
    # Private thumbnails need the key: fetched, then shown from blob: URLs.
    sources = page.locator("#grid img").evaluate_all("imgs => imgs.map(i => i.src)")
    assert all(src.startswith("blob:") for src in sources), sources
    page.screenshot(path=shots / "uploaded.png", full_page=True)

    # The detail view of one, then edit its title and tags.
    cards(page).filter(has_text="astronaut").click()
    dialog = page.locator("#detail")
    expect(dialog).to_be_visible()
    expect(dialog.locator("h2")).to_have_text("astronaut")
    expect(dialog.locator(".meta")).to_contain_text("astronaut.jpg")
    expect(dialog.locator(".meta")).to_contain_text("512 × 512 px")
    expect(dialog.locator(".meta")).to_contain_text("ada")
    wait_pictures(page)
    dialog.get_by_role("button", name="Edit").click()
    dialog.get_by_label("Title").fill("Astronaut on a mission")
    dialog.get_by_label("Tags").fill("space, nasa")
    dialog.get_by_role("button", name="Save").click()
    expect(dialog.locator("h2")).to_have_text("Astronaut on a mission")
    expect(dialog.locator(".meta")).to_contain_text("space, nasa")
    # A private file downloads with the key, from a blob: URL, under its own name.
    with page.expect_download() as download:
        dialog.get_by_role("button", name="Download").click()
    assert download.value.suggested_filename == "astronaut.jpg"
    assert Path(download.value.path()).read_bytes() == Path(files[0]).read_bytes()
    page.keyboard.press("Escape")  # Escape closes the detail view
    expect(dialog).not_to_be_visible()

    # Text search with the API's syntax; the headline's <mark> becomes a real element.
    page.get_by_label("Search", exact=True).fill("astronaut -kitten")
    page.get_by_role("button", name="Search", exact=True).click()
    expect(page.locator("#results-title")).to_have_text("Search: astronaut -kitten")
    expect(cards(page)).to_have_count(1)
    expect(cards(page).locator("mark")).to_have_text("Astronaut")
    page.get_by_label("Search", exact=True).fill("")
    page.locator("#search").get_by_label("Tag", exact=True).fill("nasa")
    page.locator("#search").get_by_label("Owner").fill("me")
    page.get_by_role("button", name="Search", exact=True).click()
    expect(cards(page)).to_have_count(1)
    page.get_by_role("button", name="Newest").click()
    expect(cards(page)).to_have_count(3)

    # Search by image with an edited copy (cropped, re-encoded), dropped on the page: the
    # original comes first.
    query = write(tmp_path / "cropped.jpg", edited(astronaut, "crop_centre", 0, seed=1))
    hand_over(page, "drop", "#results-title", query)
    expect(page.locator("#results-title")).to_have_text("Similar to cropped.jpg")
    expect(cards(page).first).to_be_visible()
    assert card_names(page)[0] == "Astronaut on a mission"
    expect(cards(page).first.locator(".match")).to_contain_text("distance")
    wait_pictures(page)
    expect(page.locator("#query")).to_be_visible()
    page.screenshot(path=shots / "search-by-image.png", full_page=True)
    # A mirrored copy, with the orientations toggle on.
    mirrored = write(tmp_path / "mirrored.jpg", edited(astronaut, "mirror", 0, seed=1))
    hand_over(page, "paste", "body", mirrored)  # pasted this time
    expect(page.locator("#results-title")).to_have_text("Similar to mirrored.jpg")
    expect(page.locator("#grid[aria-busy]")).to_have_count(0)
    assert card_names(page)[:1] != ["Astronaut on a mission"]  # not upright: not found
    with page.expect_response(lambda r: r.url.endswith("/search/image")):
        page.get_by_label("also find rotated and mirrored copies").check()
    expect(cards(page).first.locator(".name")).to_have_text("Astronaut on a mission")

    # A near duplicate uploaded later is reported by the upload's answer.
    smaller = astronaut.resize((256, 256))
    upload(page, [write(tmp_path / "astronaut-small.jpg", jpeg(smaller, 80))], drop=True,
           visibility="public", title="A smaller copy")
    near = page.locator("#uploads li").first.locator(".near")
    expect(near).to_contain_text("Already here:")
    expect(near.locator(".near-item").first).to_contain_text("same picture")

    # Detail, then "find similar": the copy, found from the stored image. The query photo
    # went with its results: no photo above "Newest images".
    page.get_by_role("button", name="Newest").click()
    expect(cards(page)).to_have_count(4)
    expect(page.locator("#results-title")).to_have_text("Newest images")
    expect(page.locator("#query")).to_be_hidden()
    cards(page).filter(has_text="Astronaut on a mission").click()
    dialog.get_by_role("button", name="Find similar").click()
    expect(dialog).not_to_be_visible()
    expect(page.locator("#results-title")).to_have_text("Similar to Astronaut on a mission")
    expect(cards(page).first.locator(".name")).to_have_text("A smaller copy")
    # Public pictures load by URL (the browser may cache them), private ones from blob: URLs.
    wait_pictures(page)
    src = cards(page).first.locator("img").get_attribute("src") or ""
    assert src.startswith("/images/") and "/thumbnail?size=256" in src

    # Open it from the grid with the keyboard, then delete it (owner only).
    cards(page).first.focus()
    page.keyboard.press("Enter")
    expect(dialog.locator("h2")).to_have_text("A smaller copy")
    wait_pictures(page)
    page.screenshot(path=shots / "detail.png")
    copy_id = page.evaluate(
        "[...document.querySelectorAll('#detail a')].map(a => a.getAttribute('href'))"
        ".find(h => h && h.startsWith('/images/'))").split("/")[2]
    dialog.get_by_role("button", name="Delete…").click()
    dialog.get_by_role("button", name="Delete", exact=True).click()
    expect(dialog).not_to_be_visible()
    assert api(f"{server}/images/{copy_id}")[0] == 404
    page.get_by_role("button", name="Newest").click()
    expect(cards(page)).to_have_count(3)

    # Sign out revokes the key: a request with it is refused.
    key = session["key"]
    assert api(f"{server}/users/me", key=key)[0] == 200
    page.get_by_role("button", name="Sign out").click()
    expect(page.locator("#notice")).to_have_text("Signed out; the key is revoked.")
    expect(page.get_by_role("button", name="Sign in or sign up")).to_be_visible()
    assert page.evaluate("sessionStorage.length") == 0
    status, body = api(f"{server}/users/me", key=key)
    assert status == 401 and body["error"]["code"] == "unauthorized"
    # Anonymous again: the private ones are gone from the grid.
    expect(cards(page)).to_have_count(0)

    # Signing in again (HTTP Basic to POST /keys) gives a new key; a wrong password is told.
    sign_in(page, "ada", "not the password")
    expect(page.locator("#auth-error")).to_have_text("Wrong username or password")
    watched.errors[:] = [e for e in watched.errors if "401" not in e]  # that refusal, logged
    page.locator("#auth-dialog").get_by_label("Password").fill(PASSWORD)
    page.locator("#auth-dialog").get_by_role("button", name="Sign in", exact=True).click()
    expect(page.locator("#who")).to_have_text("Signed in as ada")
    expect(cards(page)).to_have_count(3)
    # The sign-in key has the scopes the page uses, and no more (issue 26).
    signed_in = json.loads(page.evaluate("sessionStorage.getItem('imagerepo.session')"))
    status, listed = api(f"{server}/keys", key=signed_in["key"])
    assert status == 200
    (own,) = [k for k in listed["keys"] if k["id"] == signed_in["id"]]
    assert own["scopes"] == ["read", "upload", "write", "keys", "share"]
    assert own["name"] == "web page"

    # The README's picture: the cropped photo searched for again, its results under a
    # heading that says so.
    hand_over(page, "drop", "#results-title", query)
    expect(page.locator("#results-title")).to_have_text("Similar to cropped.jpg")
    expect(cards(page).first.locator(".name")).to_have_text("Astronaut on a mission")
    expect(page.locator("#query")).to_be_visible()
    screenshot = os.environ.get(SCREENSHOT_ENV)
    if screenshot:
        save_readme_screenshot(page, Path(screenshot))
    watched.assert_clean()
    print(f"scenario took {time.monotonic() - started:.1f} s")


def save_readme_screenshot(page: Page, path: Path) -> None:
    """800 px wide, a palette PNG: small enough to commit."""
    if page.locator("#upload").evaluate("details => details.open"):
        page.locator("#upload summary").click()
    page.set_viewport_size({"width": 800, "height": 1000})
    page.evaluate("window.scrollTo(0, 0)")
    wait_pictures(page)
    until(page, "document.querySelector('#query-img').complete")
    raw = Image.open(io.BytesIO(page.screenshot()))
    raw.convert("RGB").quantize(colors=128, method=Image.Quantize.MEDIANCUT).save(
        path, optimize=True)


@needs_chromium
def test_hostile_titles_stay_text(server: str, open_page: OpenPage, tmp_path: Path) -> None:
    watched: Watched = open_page()
    page = watched.page
    page.goto(server + "/app")
    sign_up(page, "mallory")
    upload(page, [write(tmp_path / "x.png", make_image("PNG", (300, 200), seed=3))],
           visibility="public", title=HOSTILE, tags="<b>bold</b>")
    expect(cards(page).filter(has_text=HOSTILE)).to_have_count(1)

    # A stranger (another tab, anonymous) sees it in the grid, in search and in the detail.
    stranger: Watched = open_page()
    other = stranger.page
    other.goto(server + "/")
    expect(cards(other).filter(has_text=HOSTILE)).to_have_count(1)
    other.get_by_label("Search", exact=True).fill("holiday")
    other.get_by_role("button", name="Search", exact=True).click()
    headline = cards(other).first.locator(".headline")
    expect(headline).to_contain_text("<img src=x onerror=alert(1)>")
    expect(headline.locator("mark")).to_have_text("Holiday")
    cards(other).first.click()
    expect(other.locator("#detail h2")).to_have_text(HOSTILE)
    expect(other.locator("#detail .meta")).to_contain_text("<b>bold</b>")
    wait_pictures(other)

    for watched_page in (page, other):
        # Every <img> is one the page made; none came from the title, the tag or the headline.
        assert watched_page.locator("img[src='x'], b").count() == 0
    time.sleep(0.5)  # an onerror would have fired by now
    watched.assert_clean()
    stranger.assert_clean()


def two_picture_collage(gap: int = 40) -> tuple[bytes, tuple[int, int], dict[str, Any]]:
    """The stored coffee and astronaut pictures side by side on a light ground, stored sideways
    with the EXIF orientation (6) that turns it upright; its upright size, and where each
    picture lies in it (upright pixels: its left, top, right, bottom)."""
    pictures = {name: Image.open(io.BytesIO(copy_edits.stored_bytes(name))).convert("RGB")
                for name in ("coffee", "astronaut")}
    pictures = {name: p.resize((round(p.width * 400 / p.height), 400))
                for name, p in pictures.items()}
    width = sum(p.width for p in pictures.values()) + gap * (len(pictures) + 1)
    collage = Image.new("RGB", (width, 400 + 2 * gap), (245, 245, 245))
    boxes: dict[str, Any] = {}
    x = gap
    for name, picture in pictures.items():
        collage.paste(picture, (x, gap))
        boxes[name] = (x, gap, x + picture.width, gap + picture.height)
        x += picture.width + gap
    exif = Image.Exif()
    exif[0x0112] = 6
    out = io.BytesIO()
    collage.transpose(Image.Transpose.ROTATE_90).save(out, "JPEG", quality=90, exif=exif)
    return out.getvalue(), collage.size, boxes


# Each box of the overlay, its corners taken to the screen (the SVG's own transform) and back
# into the preview's natural (upright) pixels by the preview's displayed size.
BOXES_IN_QUERY_PIXELS = """() => {
    const img = document.querySelector("#query-img");
    const frame = img.getBoundingClientRect();
    return [...document.querySelectorAll("#query-boxes [data-box]")].map((group) => {
      const polygon = group.querySelector("polygon");
      const matrix = polygon.getScreenCTM();
      const corners = [...polygon.points].map((point) => {
        const screen = new DOMPoint(point.x, point.y).matrixTransform(matrix);
        return [(screen.x - frame.left) * img.naturalWidth / frame.width,
                (screen.y - frame.top) * img.naturalHeight / frame.height];
      });
      return { rank: Number(group.dataset.box), label: group.textContent, corners };
    });
}"""


def active_boxes(page: Page) -> list[str]:
    boxes: list[str] = page.locator("#query-boxes .active").evaluate_all(
        "groups => groups.map(g => g.dataset.box)")
    return boxes


@needs_chromium
def test_the_query_shows_where_each_result_lies(
    server: str, open_page: OpenPage, tmp_path: Path
) -> None:
    """A collage of two stored pictures, searched by image through the picker: the preview
    (upright, as the API's corners are) outlines each picture the API found inside it, where
    the API says, numbered as its card; a card hovered or focused highlights its box."""
    watched: Watched = open_page()
    page = watched.page
    page.goto(server + "/app")
    sign_up(page, "iris")
    # One title is hostile: the boxes and cards still show it as text only.
    upload(page, [write(tmp_path / "coffee.jpg", copy_edits.stored_bytes("coffee"))],
           title=HOSTILE)
    upload(page, [write(tmp_path / "astronaut.jpg", copy_edits.stored_bytes("astronaut"))])
    data, size, truth = two_picture_collage()
    query = write(tmp_path / "collage.jpg", data)

    with page.expect_response(lambda r: r.url.endswith("/search/image")) as answer:
        page.locator("#query-file").set_input_files(query)
    results = answer.value.json()["results"]
    expect(page.locator("#grid[aria-busy]")).to_have_count(0)
    by_rank = {rank: r for rank, r in enumerate(results, 1)
               if r["matched_by"]["query_part"] == "region"}
    assert len(by_rank) == 2, results  # both pictures, each through its region of the query
    until(page, "document.querySelector('#query-img').complete"
                " && document.querySelector('#query-img').naturalWidth > 0")
    # Shown upright (EXIF applied): the corners' frame; shown smaller than it is.
    natural = page.locator("#query-img").evaluate("i => [i.naturalWidth, i.naturalHeight]")
    assert tuple(natural) == size
    assert page.locator("#query-img").evaluate("i => i.clientWidth") < size[0]
    expect(page.locator("#query-boxes")).to_have_attribute("aria-hidden", "true")
    expect(page.locator("#query-boxes polygon")).to_have_count(2)

    drawn = page.evaluate(BOXES_IN_QUERY_PIXELS)
    assert sorted(box["rank"] for box in drawn) == sorted(by_rank)
    diagonal = float(np.hypot(*size))
    for box in drawn:
        api_corners = np.array(by_rank[box["rank"]]["matched_by"]["corners"])
        assert np.abs(np.array(box["corners"]) - api_corners).max() < 0.02 * diagonal, (
            box, api_corners.tolist())
        assert box["label"] == str(box["rank"])
        # Near where the picture really is (the API's own accuracy is another file's test).
        name = "coffee" if by_rank[box["rank"]]["title"] == HOSTILE else "astronaut"
        left, top, right, bottom = truth[name]
        assert np.abs(np.array(box["corners"]) - np.array(
            [[left, top], [right, top], [right, bottom], [left, bottom]])).max() < 0.05 * diagonal

    # Each region result's card says so in words, with its box's number.
    for rank in by_rank:
        card = page.locator(f"#grid .card[data-box='{rank}']")
        expect(card.locator(".found-in")).to_have_text(f"{rank} Found inside your photo")
    first, second = sorted(by_rank)
    page.locator(f"#grid .card[data-box='{first}']").hover()
    assert active_boxes(page) == [str(first)]
    page.mouse.move(1, 1)  # off the grid
    assert active_boxes(page) == []
    page.locator(f"#grid .card[data-box='{second}']").focus()
    assert active_boxes(page) == [str(second)]
    page.screenshot(path=tmp_path / "boxes.png", full_page=True)

    # Another search (text): the boxes go with the answer they belonged to.
    page.get_by_role("button", name="Newest").click()
    expect(page.locator("#query-boxes polygon")).to_have_count(0)
    expect(cards(page).filter(has_text=HOSTILE).first).to_be_visible()  # others' may be public
    assert page.locator("img[src='x'], b").count() == 0
    watched.assert_clean()


@needs_chromium
def test_an_upload_error_shows_a_hostile_file_name_as_text(
    server: str, open_page: OpenPage, tmp_path: Path
) -> None:
    """The API's error names the file; the page shows that name as text, not as markup."""
    name = "<img src=x id=pwned>.png"
    watched: Watched = open_page()
    page = watched.page
    page.goto(server + "/app")
    sign_up(page, "eve")
    page.locator("#upload summary").click()
    page.locator("#upload-files").set_input_files(write(tmp_path / name, b"not a picture"))
    failed = page.locator("#uploads li.failed")
    expect(failed).to_have_count(1)
    expect(failed.locator(".status")).to_contain_text(f'file 1 ("{name}")')
    expect(failed.locator(".file")).to_have_text(name)
    time.sleep(0.5)  # an element made from the name would be in the document by now
    assert page.locator("#pwned, img[src='x']").count() == 0
    # The refused upload is the one error in the console (Chromium logs the 415 itself).
    assert all("415" in error for error in watched.errors), watched.errors
    assert watched.dialogs == []


@needs_chromium
def test_a_phone_sized_screen(server: str, open_page: OpenPage, tmp_path: Path) -> None:
    watched: Watched = open_page(width=390, height=844, scale=2)
    page = watched.page
    response = page.goto(server + "/")
    assert response is not None
    assert_security_headers(response.headers)
    sign_up(page, "pocket")
    upload(page, [write(tmp_path / "p.jpg", jpeg(photo("chelsea")))], visibility="public")
    expect(cards(page).first).to_be_visible()
    wait_pictures(page)
    # Nothing wider than the screen; the grid still shows two or more columns.
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    columns = page.evaluate(
        "getComputedStyle(document.querySelector('#grid')).gridTemplateColumns.split(' ').length")
    assert columns >= 2
    page.screenshot(path=tmp_path / "phone.png", full_page=True)
    # Reloaded, the tab is still signed in; Tab reaches the controls, with a focus ring.
    page.reload()
    expect(page.locator("#who")).to_have_text("Signed in as pocket")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Sign out"
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline == "solid"
    watched.assert_clean()


# --- a newcomer's first hour (issue 23) --------------------------------------------------------

DANGER = "rgb(198, 40, 40)"  # app.css's --danger


def truncated_jpeg(image: Image.Image) -> bytes:
    data = jpeg(image, 90)
    return data[: len(data) // 2]


@needs_chromium
def test_a_refused_upload_looks_refused_and_says_why_once(
    site: str, open_page: OpenPage, tmp_path: Path
) -> None:
    """The API's message names the file and its fault, and its details say the same: the row
    says it once; where the bar was, a red mark says the upload failed (a full blue bar is a
    success's)."""
    watched: Watched = open_page()
    page = watched.page
    page.goto(site + "/app")
    sign_up(page, "tilly")
    page.locator("#upload summary").click()
    page.locator("#upload-files").set_input_files(
        [write(tmp_path / "cut.jpg", truncated_jpeg(photo("rocket"))),
         write(tmp_path / "whole.jpg", jpeg(photo("rocket")))])
    failed = page.locator("#uploads li.failed")
    expect(failed).to_have_count(1)
    expect(failed.locator(".file")).to_have_text("cut.jpg")
    status = failed.locator(".status")
    expect(status).to_contain_text("truncated")
    text = status.inner_text()
    assert text.count("the JPEG image is truncated") == 1, text
    assert text.count('file 1 ("cut.jpg")') == 1, text
    assert " — " not in text, text  # the details added nothing the message had not said
    # Failed, in words and in red; no bar left to look full.
    assert failed.locator("progress").count() == 0
    outcome = failed.locator(".outcome")
    expect(outcome).to_have_text("Failed")
    expect(outcome).to_be_visible()
    assert outcome.evaluate("node => getComputedStyle(node).color") == DANGER
    # The other file of the same choice went through, with its full bar.
    until(page, "document.querySelectorAll('#uploads li.done').length === 1", timeout=60)
    assert page.locator("#uploads li.done progress").evaluate("bar => bar.value") == 1
    page.locator("#uploads").screenshot(path=tmp_path / "uploads.png")
    assert all("422" in error for error in watched.errors), watched.errors  # Chromium's log
    assert watched.dialogs == []


@needs_chromium
def test_an_upload_shows_what_it_looks_like_in_pictures_and_words(
    site: str, open_page: OpenPage, tmp_path: Path
) -> None:
    """The near duplicates an upload's answer lists: a thumbnail of each, and plain words for
    how alike they are, not bits."""
    watched: Watched = open_page()
    page = watched.page
    page.goto(site + "/app")
    sign_up(page, "nina")
    astronaut = photo("astronaut")
    upload(page, [write(tmp_path / "original.jpg", jpeg(astronaut, 90))], title="Nina's original")
    upload(page, [write(tmp_path / "again.jpg", jpeg(astronaut, 70))], title="Nina's again")
    upload(page, [write(tmp_path / "bright.jpg", edited(astronaut, "bright+30", 0, seed=1))],
           title="Nina's brighter")

    def near_items(file: str) -> Locator:
        row = page.locator("#uploads li").filter(has_text=file)
        return row.locator(".near-item").filter(has=page.locator("img[alt=\"Nina's original\"]"))

    expect(near_items("again.jpg")).to_have_text("same picture")
    expect(near_items("bright.jpg")).to_have_text("edited copy")
    until(page, "[...document.querySelectorAll('#uploads .near-item img')]"
                ".every(img => img.complete && img.naturalWidth > 0)")
    assert near_items("bright.jpg").get_attribute("title") == "Nina's original, by nina"
    assert "bits" not in page.locator("#uploads").inner_text()
    # Small, beside the words; a click opens the picture it shows.
    box = near_items("again.jpg").locator("img").bounding_box()
    assert box is not None and box["width"] <= 48 and box["height"] <= 48, box
    page.locator("#uploads").screenshot(path=tmp_path / "uploads.png")
    near_items("bright.jpg").click()
    expect(page.locator("#detail h2")).to_have_text("Nina's original")
    watched.assert_clean()


# Each run of letters or digits in a card's name, and how many lines it lies on.
NAME_WORDS = r"""names => names.flatMap((name) => {
    const words = [];
    const walker = document.createTreeWalker(name, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      for (const match of node.data.matchAll(/[\p{L}\p{N}]+/gu)) {
        const range = document.createRange();
        range.setStart(node, match.index);
        range.setEnd(node, match.index + match[0].length);
        const tops = new Set([...range.getClientRects()].map((r) => Math.round(r.top)));
        words.push([match[0], tops.size]);
      }
    }
    return words;
})"""


@needs_chromium
def test_cards_keep_words_whole_and_say_whose_they_are(
    site: str, open_page: OpenPage, tmp_path: Path
) -> None:
    """A name wraps between words, or after the punctuation of a file name, never inside a
    word; a word too long for the card ends in an ellipsis. Each card names its owner: two
    people's copies of one picture are told apart."""
    file_name = "IMG_20240512_103355_HDR"
    long_word = "Supercalifragilisticexpialidocious holiday"
    coffee = write(tmp_path / "coffee.jpg", jpeg(photo("coffee")))
    for user in ("olga", "piet"):
        watched: Watched = open_page()
        page = watched.page
        page.goto(site + "/app")
        sign_up(page, user)
        upload(page, [coffee], visibility="public", title=file_name)
        watched.assert_clean()
    upload(page, [write(tmp_path / "p.png", make_image("PNG", (300, 200), seed=5))],
           visibility="public", title=long_word)
    wait_pictures(page)

    copies = cards(page).filter(has_text=file_name)
    expect(copies).to_have_count(2)
    assert sorted(copies.locator(".owner").all_inner_texts()) == ["by olga", "by piet"]
    names = page.locator("#grid .card .name").filter(has_text=re.compile(
        f"^({file_name}|{long_word})$"))
    expect(names).to_have_count(3)
    words = names.evaluate_all(NAME_WORDS)
    assert words and all(lines == 1 for _, lines in words), words
    # The file name shows whole (it wraps after its underscores), the long word clipped.
    for name in copies.locator(".name").all():
        assert name.evaluate("n => n.scrollWidth <= n.clientWidth"), name.inner_text()
    clipped = names.filter(has_text=long_word)
    assert clipped.evaluate("n => getComputedStyle(n).textOverflow") == "ellipsis"
    assert clipped.get_attribute("title") == long_word
    page.locator("#grid").screenshot(path=tmp_path / "cards.png")
    watched.assert_clean()


@needs_chromium
def test_the_detail_fits_a_laptop_screen(
    site: str, open_page: OpenPage, tmp_path: Path
) -> None:
    """At 1280×900 a tall picture's detail shows its actions without scrolling."""
    watched: Watched = open_page(width=1280, height=900)
    page = watched.page
    page.goto(site + "/app")
    sign_up(page, "tess")
    upload(page, [write(tmp_path / "tall.png", make_image("PNG", (600, 900), seed=3))],
           title="A tall one")
    cards(page).filter(has_text="A tall one").click()
    dialog = page.locator("#detail")
    expect(dialog.locator("h2")).to_have_text("A tall one")
    wait_pictures(page)
    for name in ("Download", "Find similar", "Edit", "Delete…"):
        expect(dialog.get_by_role("button", name=name, exact=True)).to_be_in_viewport(ratio=1)
    page.screenshot(path=tmp_path / "detail.png")
    watched.assert_clean()


@needs_chromium
def test_a_dropped_photo_brings_its_results_into_view(
    site: str, open_page: OpenPage, tmp_path: Path
) -> None:
    """Dropped on the top of a short window, a photo's results land below the fold (its
    preview pushes them down): the page scrolls to them."""
    watched: Watched = open_page(width=1100, height=600)
    page = watched.page
    page.goto(site + "/app")
    sign_up(page, "ulla")
    rocket = photo("rocket")
    upload(page, [write(tmp_path / "rocket.jpg", jpeg(rocket))], title="Ulla's rocket")
    page.evaluate("window.scrollTo(0, 0)")
    query = write(tmp_path / "query.jpg", edited(rocket, "crop_centre", 0, seed=2))
    hand_over(page, "drop", ".by-image p", query)
    expect(page.locator("#results-title")).to_have_text("Similar to query.jpg")
    first = cards(page).first
    expect(first.locator(".name")).to_have_text("Ulla's rocket")
    expect(page.locator("#results-title")).to_be_in_viewport(ratio=1)
    expect(first).to_be_in_viewport(ratio=1)
    watched.assert_clean()


@needs_chromium
def test_signing_out_forgets_the_owner_me(
    site: str, open_page: OpenPage, tmp_path: Path
) -> None:
    """Signed out, "Owner: me" means nobody: the filter goes and the grid shows what an
    anonymous visitor sees, with no error."""
    watched: Watched = open_page()
    page = watched.page
    page.goto(site + "/app")
    sign_up(page, "vera")
    upload(page, [write(tmp_path / "v.png", make_image("PNG", (300, 200), seed=11))],
           visibility="public", title="Vera's public one")
    owner = page.locator("#search").get_by_label("Owner")
    owner.fill("me")
    page.get_by_role("button", name="Search", exact=True).click()
    expect(page.locator("#results-title")).to_have_text("Images, filtered")
    expect(cards(page)).to_have_count(1)

    page.get_by_role("button", name="Sign out").click()
    notice = page.locator("#notice")
    expect(notice).to_have_text("Signed out; the key is revoked.")
    expect(owner).to_have_value("")
    expect(page.locator("#results-title")).to_have_text("Newest images")
    expect(cards(page).filter(has_text="Vera's public one")).to_have_count(1)
    expect(page.locator("#grid[aria-busy]")).to_have_count(0)
    expect(notice).not_to_have_class(re.compile("error"))
    expect(notice).to_have_text("Signed out; the key is revoked.")
    watched.assert_clean()

    # Typed anyway, signed out: the API's refusal, said once (its details say it again).
    owner.fill("me")
    with page.expect_response(lambda r: "owner=me" in r.url) as answer:
        page.get_by_role("button", name="Search", exact=True).click()
    message = answer.value.json()["error"]["message"]
    expect(notice).to_have_class(re.compile("error"))
    expect(notice).to_have_text(message)
    assert all(str(answer.value.status) in error for error in watched.errors), watched.errors


def test_the_readme_screenshot_is_small() -> None:
    path = Path(__file__).resolve().parents[1] / "docs" / "web-page.png"
    with Image.open(path) as image:
        assert image.format == "PNG" and image.width <= 800
    assert path.stat().st_size < 150_000



@needs_chromium
def test_a_phones_photos_show_everywhere_through_their_thumbnails(
    server: str, open_page: OpenPage, tmp_path: Path
) -> None:
    """A HEIC and a DNG, which Chromium cannot show, upload through the page and show in the
    grid and the detail as the server's WebP thumbnails; a HEIC dropped as a query is
    searched, and the page says it cannot show it rather than a broken picture."""
    watched: Watched = open_page()
    page = watched.page
    page.goto(server + "/app")
    sign_up(page, "henrik")
    rocket = photo("rocket")
    heic = io.BytesIO()
    rocket.save(heic, "HEIF", quality=80)
    dng = Path(__file__).parent / "data" / "trip.dng"
    upload(page, [write(tmp_path / "IMG_0001.HEIC", heic.getvalue()), str(dng)])
    mine = cards(page).filter(has_text="henrik")  # the server is shared: others' are public
    expect(mine).to_have_count(2)
    wait_pictures(page)  # every card's picture decoded: the thumbnails, not the originals
    mine.filter(has_text="IMG_0001").click()
    wait_pictures(page)
    page.keyboard.press("Escape")

    query = io.BytesIO()
    with Image.open(io.BytesIO(edited(rocket, "crop_centre", 0, seed=2))) as cropped:
        cropped.save(query, "HEIF", quality=60)
    with page.expect_response(lambda r: r.url.endswith("/search/image")) as answer:
        page.locator("#query-file").set_input_files(write(tmp_path / "query.heic",
                                                          query.getvalue()))
    assert answer.value.status == 200
    expect(page.locator("#results-title")).to_have_text("Similar to query.heic")
    expect(cards(page).filter(has_text="IMG_0001").filter(has_text="henrik")).to_have_count(1)
    expect(page.locator("#query-img")).to_be_hidden()
    expect(page.locator("#query-name")).to_contain_text(
        "this browser cannot show this photo")
    watched.assert_clean()
