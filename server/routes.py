"""The URL map."""

from __future__ import annotations

from aiohttp import web

from .handlers import images, keys, search, similar, system, users


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/", system.index)
    app.router.add_get("/health", system.health)
    app.router.add_get("/ready", system.ready)

    app.router.add_post("/users", users.sign_up)
    app.router.add_get("/users/me", users.me)
    app.router.add_delete("/users/me", users.delete_me)

    app.router.add_post("/keys", keys.create_key)
    app.router.add_get("/keys", keys.list_keys)
    app.router.add_delete("/keys/{id}", keys.revoke_key)

    app.router.add_post("/images", images.upload)
    app.router.add_get("/images", images.list_images)
    app.router.add_post("/images/delete", images.delete_images)
    app.router.add_get("/images/{id}", images.get_image)
    app.router.add_get("/images/{id}/file", images.download)
    app.router.add_get("/images/{id}/similar", similar.similar_to_image)
    app.router.add_patch("/images/{id}", images.update_image)
    app.router.add_delete("/images/{id}", images.delete_image)

    app.router.add_get("/search", search.text_search)
    app.router.add_post("/search/image", similar.search_by_image)
