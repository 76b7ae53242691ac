"""The web page: static HTML, CSS and JavaScript modules from server/web, built on the JSON API.

No build step: the files are read once at start-up. Their URLs carry a version (a digest of
every file), so they are cached for a year and a new release gets new URLs; the page itself
is revalidated (ETag) on each visit. None of these routes has ``@docs``, so the OpenAPI spec
leaves them out, as it does /docs.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from aiohttp import hdrs, web

from ..keys import CONFIG, STORAGE
from .accept import quality

WEB_DIR = Path(__file__).resolve().parent.parent / "web"
PAGE_PATH = "/app"
ASSETS_PREFIX = "/web"
VERSION_MARK = "{{version}}"
CONTENT_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
IMMUTABLE = "public, max-age=31536000, immutable"

# img-src blob: shows private thumbnails fetched with the key; data: is the empty favicon.
CSP_DIRECTIVES = {
    "default-src": "'none'",
    "script-src": "'self'",
    "style-src": "'self'",
    "img-src": "'self' blob: data:",
    "connect-src": "'self'",
    "form-action": "'none'",
    "frame-ancestors": "'none'",
    "base-uri": "'none'",
}


@dataclass(frozen=True, slots=True)
class Asset:
    body: bytes
    content_type: str
    etag: str


def _asset(body: bytes, content_type: str) -> Asset:
    return Asset(body, content_type, '"' + hashlib.sha256(body).hexdigest()[:32] + '"')


@dataclass(slots=True)
class WebAssets:
    version: str
    page: Asset
    files: dict[str, Asset]
    csp: str | None = field(default=None)  # made on the first request (see _policy)


WEB_ASSETS = web.AppKey("web_assets", WebAssets)


def load_assets(root: Path = WEB_DIR) -> WebAssets:
    """Every servable file under ``root`` (by extension: nothing else is ever served), and
    the page with the assets' version written into its URLs."""
    files: dict[str, bytes] = {}
    for path in sorted(root.rglob("*")):
        if path.is_file() and path.suffix in CONTENT_TYPES:
            files[path.relative_to(root).as_posix()] = path.read_bytes()
    digest = hashlib.sha256()
    for name, body in files.items():
        digest.update(name.encode() + b"\0" + hashlib.sha256(body).digest())
    version = digest.hexdigest()[:12]
    page = (root / "index.html").read_text(encoding="utf-8").replace(VERSION_MARK, version)
    return WebAssets(
        version=version,
        page=_asset(page.encode(), "text/html; charset=utf-8"),
        files={name: _asset(body, CONTENT_TYPES[Path(name).suffix])
               for name, body in files.items()},
    )


def content_security_policy(storage_origin: str | None = None) -> str:
    """The policy; with DOWNLOADS=redirect, pictures and files come from the object store's
    origin after a 302, so that origin (and no other) is allowed for images and fetches."""
    directives = dict(CSP_DIRECTIVES)
    if storage_origin:
        directives["img-src"] += " " + storage_origin
        directives["connect-src"] += " " + storage_origin
    return "; ".join(f"{name} {value}" for name, value in directives.items())


async def _storage_origin(app: web.Application) -> str | None:
    if app[CONFIG].downloads != "redirect":
        return None
    # Presigning is local (no request to the store): any key shows the URLs' origin.
    url = await app[STORAGE].download_url("csp-origin", content_type="image/webp",
                                          disposition="inline", cache_control="no-store",
                                          expires=60)
    if not url:
        return None
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


async def _policy(request: web.Request) -> str:
    assets = request.app[WEB_ASSETS]
    if assets.csp is None:
        assets.csp = content_security_policy(await _storage_origin(request.app))
    return assets.csp


async def security_headers(request: web.Request) -> dict[str, str]:
    return {
        "Content-Security-Policy": await _policy(request),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
    }


async def _send(request: web.Request, asset: Asset, cache_control: str,
                vary: str | None = None) -> web.Response:
    headers = {**await security_headers(request), "ETag": asset.etag,
               "Cache-Control": cache_control}
    if vary:
        headers[hdrs.VARY] = vary
    if asset.etag in (tag.strip() for tag in request.headers.get(
            hdrs.IF_NONE_MATCH, "").split(",")):
        return web.Response(status=304, headers=headers)
    return web.Response(body=asset.body, headers={**headers, "Content-Type": asset.content_type})


async def page_response(request: web.Request, vary: str | None = None) -> web.Response:
    """The page: revalidated on every visit, so a new release is picked up at once."""
    return await _send(request, request.app[WEB_ASSETS].page, "no-cache", vary)


async def page(request: web.Request) -> web.Response:
    return await page_response(request)


async def asset(request: web.Request) -> web.Response:
    assets = request.app[WEB_ASSETS]
    found = assets.files.get(request.match_info["path"])
    if found is None:
        raise web.HTTPNotFound()
    # An older version's URL (a page loaded before a release) gets today's file, uncached.
    current = request.match_info["version"] == assets.version
    return await _send(request, found, IMMUTABLE if current else "no-cache")


def prefers_html(request: web.Request) -> bool:
    """Browsers ask for text/html first; curl (*/*), generated clients (application/json) and
    callers that send no Accept get the JSON. A tie goes to JSON."""
    accept = request.headers.get(hdrs.ACCEPT, "")
    return quality(accept, "text/html") > quality(accept, "application/json")


def setup_web(app: web.Application) -> None:
    app[WEB_ASSETS] = load_assets()
    app.router.add_get(PAGE_PATH, page)
    app.router.add_get(ASSETS_PREFIX + "/{version}/{path:.+}", asset)
