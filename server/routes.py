"""The URL map."""

from __future__ import annotations

from aiohttp import web

from .handlers import (
    albums,
    images,
    keys,
    search,
    shared,
    shares,
    similar,
    system,
    thumbnails,
    users,
)
from .handlers.web import setup_web

# One path, one resource: an image id is anything but the literals `delete` and `known`
# (POST /images/delete and /images/known), so PATCH /images/delete is 405, not a malformed id.
IMAGE = "/images/{id:(?!delete$|known$)[^/]+}"


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/", system.index)
    app.router.add_get("/health", system.health)
    app.router.add_get("/ready", system.ready)
    app.router.add_get("/metrics", system.metrics)

    app.router.add_post("/users", users.sign_up)
    app.router.add_get("/users/me", users.me)
    app.router.add_delete("/users/me", users.delete_me)

    app.router.add_post("/keys", keys.create_key)
    app.router.add_get("/keys", keys.list_keys)
    app.router.add_delete("/keys/{id}", keys.revoke_key)

    app.router.add_post("/images", images.upload)
    app.router.add_get("/images", images.list_images)
    app.router.add_post("/images/delete", images.delete_images)
    app.router.add_post("/images/known", images.known_images)
    app.router.add_get(IMAGE, images.get_image)
    app.router.add_get(IMAGE + "/file", images.download)
    app.router.add_get(IMAGE + "/thumbnail", thumbnails.thumbnail)
    app.router.add_get(IMAGE + "/similar", similar.similar_to_image)
    app.router.add_patch(IMAGE, images.update_image)
    app.router.add_delete(IMAGE, images.delete_image)

    app.router.add_get("/search", search.text_search)
    app.router.add_post("/search/image", similar.search_by_image)

    app.router.add_post("/albums", albums.create_album)
    app.router.add_get("/albums", albums.list_albums)
    app.router.add_get("/albums/{id}", albums.get_album)
    app.router.add_patch("/albums/{id}", albums.update_album)
    app.router.add_delete("/albums/{id}", albums.delete_album)
    app.router.add_get("/albums/{id}/images", albums.list_album_images)
    app.router.add_post("/albums/{id}/images", albums.add_album_images)
    app.router.add_post("/albums/{id}/images/remove", albums.remove_album_images)

    app.router.add_post(IMAGE + "/shares", shares.share_image)
    app.router.add_post("/albums/{id}/shares", shares.share_album)
    app.router.add_get("/shares", shares.list_shares)
    app.router.add_delete("/shares/{id}", shares.revoke_share)

    # What a link shows, to whoever holds its token (X-Share-Token), without an account.
    app.router.add_get("/shared", shared.get_shared)
    app.router.add_get("/shared/images", shared.list_shared_images)
    app.router.add_get("/shared/images/{id}", shared.get_shared_image)
    app.router.add_get("/shared/images/{id}/file", shared.shared_file)
    app.router.add_get("/shared/images/{id}/thumbnail", shared.shared_thumbnail)
    app.router.add_get("/shared/search", shared.shared_text_search)
    app.router.add_post("/shared/search/image", shared.shared_image_search)

    # The web page (at /app, and at / for browsers) and its files: outside the API's spec.
    setup_web(app)
