"""The web page's albums and share links (issue 26), in a real headless Chromium against a real
server: an owner makes a link from an image's detail view and from an album; a visitor (a new
browser context, no account) opens it and sees what it shows and nothing else; the token
travels only in the X-Share-Token header, never in a URL (the browser's requests and the
server's log are both read), and a request made with it carries no key; a revoked link says
so."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.sync_api import (
    Browser,
    Page,
    Request,
    expect,
    sync_playwright,
)

from tests.images import make_image
from tests.photo_edits import jpeg
from tests.test_cli import serve_own_database
from tests.test_web_page import (
    CHROMIUM,
    OpenPage,
    Watched,
    api,
    card_names,
    cards,
    needs_chromium,
    photo,
    sign_up,
    until,
    upload,
    watched_pages,
    write,
)


@dataclass
class Served:
    url: str
    log: Path


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, admin_dsn: str) -> Iterator[Served]:
    tmp = tmp_path_factory.mktemp("web-sharing")
    with serve_own_database(tmp, admin_dsn) as url:
        yield Served(url, tmp / "server.log")


@pytest.fixture(scope="module")
def browser(served: Served) -> Iterator[Browser]:
    """After the server: it sets up its database with asyncio.run(), which cannot run while
    Playwright's own loop does."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def open_page(browser: Browser) -> Iterator[OpenPage]:
    yield from watched_pages(browser)


@dataclass
class Recorded:
    """Every request a page made: its URL and the headers it carried."""
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)

    def watch(self, page: Page) -> None:
        def on_request(request: Request) -> None:
            self.requests.append((request.url, dict(request.headers)))
        page.on("request", on_request)

    def shared(self) -> list[tuple[str, dict[str, str]]]:
        return [(u, h) for u, h in self.requests if re.search(r"//[^/]+/shared(/|\?|$)", u)]


def token_of(link: str) -> str:
    match = re.search(r"#share=(irs_[\w-]+)$", link)
    assert match, link
    return match.group(1)


def assert_tokens_only_in_headers(recorded: Recorded, links: list[str], log: Path) -> None:
    """No URL the browser asked for holds a link's token, nor any line the server logged;
    every request to /shared carried one in its header, and carried no key."""
    tokens = [token_of(link) for link in links]
    assert recorded.shared(), recorded.requests
    logged = log.read_text()
    for token in tokens:
        assert [url for url, _ in recorded.requests if token in url] == []
        assert token not in logged
    for url, headers in recorded.shared():
        assert headers.get("x-share-token") in tokens, (url, headers)
        assert "authorization" not in headers, (url, headers)


def make_link(page: Page, panel_scope: str, expires: str = "never",
              download: bool = False) -> str:
    """Create a link in the share panel open inside `panel_scope`; its address, shown once."""
    panel = page.locator(panel_scope).locator(".share-panel")
    expect(panel).to_be_visible()
    panel.get_by_label("Expires").select_option(label=expires)
    checkbox = panel.get_by_label("Allow download")
    if download:
        checkbox.check()
    else:
        checkbox.uncheck()
    rows = panel.locator(".share-list li[data-share]")
    before = rows.count()
    panel.get_by_role("button", name="Create link").click()
    address = panel.get_by_label("Link", exact=True)
    expect(address).to_have_value(re.compile(r"#share=irs_"))
    expect(panel.locator(".once")).to_contain_text("shown only once")
    expect(rows).to_have_count(before + 1)
    link = address.input_value()
    assert link.startswith(page.evaluate("location.origin") + "/#share=irs_"), link
    return link


def visit(page: Page, link: str) -> None:
    """Open a link afresh (from another link, only the fragment would change)."""
    page.goto("about:blank")
    page.goto(link)


def open_detail(page: Page, name: str) -> None:
    page.get_by_role("button", name="Newest").click()
    cards(page).filter(has_text=name).click()
    expect(page.locator("#detail h2")).to_have_text(name)


def wait_shared_pictures(page: Page) -> None:
    until(page, "[...document.querySelectorAll('#shared img, #grid img, dialog[open] img')]"
                ".every(img => img.complete && img.naturalWidth > 0)")


def refused_fetches_only(watched: Watched, *statuses: int) -> None:
    """Chromium logs each refused fetch as a console error: those, and nothing else."""
    assert all(any(str(s) in e for s in statuses) for e in watched.errors), watched.errors
    assert watched.dialogs == []


@needs_chromium
def test_an_image_link_shows_that_picture_to_a_visitor_and_nothing_more(
    served: Served, open_page: OpenPage, tmp_path: Path
) -> None:
    owner: Watched = open_page()
    page = owner.page
    page.goto(served.url + "/app")
    sign_up(page, "sharer")
    upload(page, [write(tmp_path / "coffee.jpg", jpeg(photo("coffee")))], title="Sharer's coffee")
    upload(page, [write(tmp_path / "other.png", make_image("PNG", (300, 200), seed=4))],
           title="Sharer's secret")

    # From the detail view: a link that expires in 7 days, without download.
    open_detail(page, "Sharer's coffee")
    detail = page.locator("#detail")
    detail.get_by_role("button", name="Share link…").click()
    plain = make_link(page, "#detail", expires="in 7 days")
    listed = detail.locator(".share-list li[data-share]")
    expect(listed.first).to_contain_text("expires")
    expect(listed.first).to_contain_text("never used")
    with_download = make_link(page, "#detail", download=True)
    expect(listed.first).to_contain_text("download allowed")
    expect(listed).to_have_count(2)

    # A stranger, in a browser context of their own, without an account.
    visitor: Watched = open_page()
    other = visitor.page
    recorded = Recorded()
    recorded.watch(other)
    visit(other, plain)
    shared = other.locator("#shared")
    expect(shared.locator("h2")).to_have_text("Sharer's coffee")
    expect(shared).to_contain_text("sharer")
    wait_shared_pictures(other)
    assert (shared.locator("img").get_attribute("src", timeout=1000) or "").startswith("blob:")
    expect(shared.get_by_role("button", name="Download")).to_have_count(0)
    # Nothing of the signed-in page, and none of the owner's other images.
    for hidden in ("#search", ".by-image", "#upload", "#albums", "#grid", ".account"):
        expect(other.locator(hidden)).to_be_hidden()
    expect(other.get_by_role("button", name="Sign in or sign up")).to_be_hidden()
    assert "Sharer's secret" not in other.content()

    # With download allowed, the button is there and gives the file.
    visit(other, with_download)
    expect(shared.locator("h2")).to_have_text("Sharer's coffee")
    with other.expect_download() as download:
        shared.get_by_role("button", name="Download").click()
    assert download.value.suggested_filename == "coffee.jpg"
    assert Path(download.value.path()).read_bytes()[:3] == b"\xff\xd8\xff"

    # The owner's own tab, signed in, opening the link: its key is not sent with the token.
    recorded.watch(page)
    page.goto(plain)
    expect(page.locator("#shared h2")).to_have_text("Sharer's coffee")
    wait_shared_pictures(page)
    assert_tokens_only_in_headers(recorded, [plain, with_download], served.log)

    # Revoked from the detail view: the visitor's next visit is told so.
    page.goto(served.url + "/app")
    expect(page.locator("#who")).to_have_text("Signed in as sharer")
    # (The recording sees a key where one is sent: the signed-in page's own requests.)
    expect(cards(page)).to_have_count(2)
    assert any("authorization" in h for u, h in recorded.requests if "/images" in u)
    open_detail(page, "Sharer's coffee")
    detail.get_by_role("button", name="Share link…").click()
    expect(listed).to_have_count(2)
    plain_prefix = token_of(plain)[:12]
    detail.get_by_role("button", name=f"Revoke link {plain_prefix}").click()
    expect(listed).to_have_count(1)
    expect(listed.first).to_contain_text("last used")  # the download link, used above
    visit(other, plain)
    expect(shared.locator("h2")).to_have_text("This link was revoked or has expired")
    expect(shared.get_by_role("alert")).to_be_visible()
    expect(shared.locator("img")).to_have_count(0)
    assert_tokens_only_in_headers(recorded, [plain, with_download], served.log)
    owner.assert_clean()
    refused_fetches_only(visitor, 404)


def album_order(page: Page) -> list[str]:
    expect(page.locator("#grid[aria-busy]")).to_have_count(0)
    return card_names(page)


@needs_chromium
def test_an_album_is_made_ordered_and_shared(
    served: Served, open_page: OpenPage, tmp_path: Path
) -> None:
    owner: Watched = open_page()
    page = owner.page
    page.goto(served.url + "/app")
    sign_up(page, "curator")
    names = ["First shot", "Second shot", "Not in it"]
    for seed, name in enumerate(names):
        upload(page, [write(tmp_path / f"{seed}.png", make_image("PNG", (320, 240), seed=seed))],
               title=name, tags="trip")

    # A new album, from the Albums section: it opens, empty.
    page.locator("#albums summary").click()
    page.get_by_label("New album's title").fill("Summer trip")
    page.get_by_role("button", name="Create album").click()
    expect(page.locator("#results-title")).to_have_text("Album: Summer trip")
    expect(page.locator("#grid .empty")).to_have_text("Nothing found.")
    expect(page.locator("#album-list")).to_contain_text("Summer trip")

    # Three images added from their detail views; one taken out again.
    for name in names:
        open_detail(page, name)
        dialog = page.locator("#detail")
        dialog.get_by_role("button", name="Add to album…").click()
        dialog.get_by_label("Album").select_option(label="Summer trip")
        dialog.get_by_role("button", name="Add", exact=True).click()
        expect(dialog.locator(".add-to-album")).to_contain_text("Added to Summer trip.")
        page.keyboard.press("Escape")
    # The list counts them.
    expect(page.locator("#album-list")).to_contain_text("3 images")
    page.locator("#album-list").get_by_role("button", name=re.compile("Summer trip")).click()
    expect(page.locator("#results-title")).to_have_text("Album: Summer trip")
    assert album_order(page) == names
    assert "null" not in page.locator("#album-bar").inner_text()  # no description: nothing
    page.get_by_role("button", name="Remove from the album: Not in it").click()
    expect(page.locator("#notice")).to_contain_text("the image itself is kept")
    assert album_order(page) == names[:2]

    # Reordered: the second moved up, then the first back to the front, then down again.
    page.get_by_role("button", name="Move up: Second shot").click()
    expect(page.locator("#notice")).to_have_text("Moved Second shot up.")
    assert album_order(page) == ["Second shot", "First shot"]
    # The focus stays with the moved card (its "up" is disabled now it is first).
    assert page.evaluate("document.activeElement.getAttribute('aria-label')") == (
        "Move down: Second shot")
    expect(page.get_by_role("button", name="Move up: Second shot")).to_be_disabled()
    page.get_by_role("button", name="Move to the front: First shot").click()
    expect(page.locator("#notice")).to_have_text("Moved First shot to the front.")
    assert album_order(page) == ["First shot", "Second shot"]
    page.get_by_role("button", name="Move down: First shot").click()
    expect(page.locator("#notice")).to_have_text("Moved First shot down.")
    assert album_order(page) == ["Second shot", "First shot"]

    # Text search within the album finds only its images (all three have the tag).
    bar = page.locator("#album-bar")
    bar.get_by_label("Search in this album").fill("trip")
    bar.get_by_role("button", name="Search in album").click()
    expect(page.locator("#results-title")).to_have_text("Album: Summer trip — trip")
    expect(cards(page)).to_have_count(2)
    bar.get_by_role("button", name="Whole album").click()
    expect(page.locator("#results-title")).to_have_text("Album: Summer trip")

    # Shared from the album's bar.
    bar.get_by_role("button", name="Share link…").click()
    link = make_link(page, "#album-bar")

    visitor: Watched = open_page()
    other = visitor.page
    recorded = Recorded()
    recorded.watch(other)
    visit(other, link.replace("/#", "/app#"))  # the page's other address works the same
    expect(other.locator("#shared h2")).to_have_text("Summer trip")
    expect(other.locator("#shared")).to_contain_text("curator")
    assert album_order(other) == ["Second shot", "First shot"]
    wait_shared_pictures(other)
    sources = other.locator("#grid img").evaluate_all("imgs => imgs.map(i => i.src)")
    assert all(src.startswith("blob:") for src in sources), sources
    expect(other.locator(".card-controls")).to_have_count(0)
    for hidden in ("#search", ".by-image", "#upload", "#albums", "#album-bar", ".account"):
        expect(other.locator(hidden)).to_be_hidden()
    assert "Not in it" not in other.content()
    assert "null" not in other.locator("#shared").inner_text()  # no description: nothing
    cards(other).filter(has_text="First shot").click()
    dialog = other.locator("#detail")
    expect(dialog.locator("h2")).to_have_text("First shot")
    wait_shared_pictures(other)
    expect(dialog.get_by_role("button", name="Download")).to_have_count(0)
    expect(dialog.get_by_role("button", name="Edit")).to_have_count(0)
    other.keyboard.press("Escape")
    expect(dialog).not_to_be_visible()
    # Searched by words, among the link's images only ("Not in it" has the tag too).
    other.get_by_label("Search in this album").fill("trip")
    other.get_by_role("button", name="Search in album").click()
    expect(other.locator("#results-title")).to_have_text("Images in this album — trip")
    expect(cards(other)).to_have_count(2)
    assert sorted(album_order(other)) == ["First shot", "Second shot"]
    other.get_by_role("button", name="Whole album").click()
    expect(other.locator("#results-title")).to_have_text("Images in this album")
    assert_tokens_only_in_headers(recorded, [link], served.log)

    # Renamed and made public; then deleted, its images kept, and its link with it gone.
    bar.get_by_role("button", name="Edit album").click()
    bar.get_by_label("Album title").fill("Summer 2026")
    bar.get_by_label("Album visibility").select_option("public")
    bar.get_by_role("button", name="Save album").click()
    expect(page.locator("#results-title")).to_have_text("Album: Summer 2026")
    expect(bar.locator(".facts")).to_contain_text("public")
    bar.get_by_role("button", name="Delete album…").click()
    expect(bar.locator(".confirm")).to_contain_text("Its images are kept")
    bar.get_by_role("button", name="Delete album", exact=True).click()
    expect(page.locator("#notice")).to_contain_text("deleted; its images are kept")
    expect(page.locator("#results-title")).to_have_text("Newest images")
    expect(cards(page)).to_have_count(3)
    expect(page.locator("#album-list")).not_to_contain_text("Summer")
    other.reload()
    expect(other.locator("#shared h2")).to_have_text("This link was revoked or has expired")
    owner.assert_clean()
    refused_fetches_only(visitor, 404)
    status, _ = api(served.url + "/shared")
    assert status == 401  # the API's side: no token, no answer
