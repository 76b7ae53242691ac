"""The OpenAPI 3 spec and Swagger UI, generated from the handlers' schemas by aiohttp-apigami.

apigami's output is not valid OpenAPI 3 as emitted (Swagger 2 leftovers such as
``produces`` and ``in: formData``, operations without responses), so the spec is
cleaned once at start-up, after apigami has built it.
"""

from __future__ import annotations

from typing import Any, NoReturn

from aiohttp import web
from aiohttp_apigami import OpenApiVersion, setup_aiohttp_apispec
from aiohttp_apigami.constants import APISPEC_PARSER, SWAGGER_DICT
from marshmallow import Schema, ValidationError

from . import __version__
from .errors import ValidationFailed
from .json_bodies import JsonBodyParser
from .schemas.common import REQUEST_ID_HEADER, RETRY_AFTER_HEADER
from .schemas.images import FileMetadataSchema
from .schemas.system import ServiceInfoSchema

SPEC_URL = "/openapi.json"
DOCS_URL = "/docs"
_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")

SECURITY_SCHEMES = {
    "ApiKeyBearer": {"type": "http", "scheme": "bearer",
                     "description": "`Authorization: Bearer <api_key>`"},
    "ApiKeyHeader": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
    "PasswordBasic": {"type": "http", "scheme": "basic",
                      "description": "username and password; only where stated"},
    "MetricsToken": {"type": "http", "scheme": "bearer",
                     "description": "`Authorization: Bearer <METRICS_TOKEN>`: the operator's "
                                    "setting, not an API key"},
    "ShareToken": {"type": "apiKey", "in": "header", "name": "X-Share-Token",
                   "description": "A share link's token (`irs_...`), as the link's maker got "
                                  "it: no account needed"},
}
# Routes that take an API key list both ways of sending it; either one is enough.
API_KEY: list[dict[str, list[str]]] = [{"ApiKeyBearer": []}, {"ApiKeyHeader": []}]
API_KEY_OPTIONAL = [*API_KEY, {}]
PASSWORD: list[dict[str, list[str]]] = [{"PasswordBasic": []}]
METRICS_TOKEN: list[dict[str, list[str]]] = [{"MetricsToken": []}]
SHARE_TOKEN: list[dict[str, list[str]]] = [{"ShareToken": []}]


def raise_validation_error(
    error: ValidationError, req: web.Request, schema: Schema, *,
    error_status_code: int | None = None, error_headers: Any = None,
) -> NoReturn:
    """webargs error callback: per-field messages, without webargs' location layer."""
    messages: Any = error.messages
    if isinstance(messages, dict) and len(messages) == 1:
        (messages,) = messages.values()
    details = messages if isinstance(messages, dict) else {"_schema": messages}
    raise ValidationFailed("Request validation failed", details=details)


# Referred to by "$ref" from spec parts written by hand (no decorator names them).
COMPONENTS: dict[str, type[Schema]] = {"ServiceInfo": ServiceInfoSchema,
                                       "FileMetadata": FileMetadataSchema}


# Answers any operation can give, whatever it documents itself: a request the HTTP layer
# refuses (request line or headers too long, malformed framing) and a dependency outage.
COMMON_RESPONSES = {
    "400": "Malformed HTTP request (too long a URL or header, broken framing)",
    "503": "The database or the object storage is unavailable, or the server is stopping "
           "(then with Connection: close); retry later",
}


# Stable, meaningful names for generated clients' functions, one per operation.
OPERATION_IDS = {
    ("get", "/"): "get_service_info",
    ("get", "/health"): "get_health",
    ("get", "/ready"): "get_readiness",
    ("get", "/metrics"): "get_metrics",
    ("post", "/users"): "sign_up",
    ("get", "/users/me"): "get_profile",
    ("delete", "/users/me"): "delete_account",
    ("post", "/keys"): "create_key",
    ("get", "/keys"): "list_keys",
    ("delete", "/keys/{id}"): "revoke_key",
    ("post", "/images"): "upload_images",
    ("get", "/images"): "list_images",
    ("post", "/images/delete"): "delete_images",
    ("post", "/images/known"): "find_known_images",
    ("get", "/images/{id}"): "get_image",
    ("patch", "/images/{id}"): "update_image",
    ("delete", "/images/{id}"): "delete_image",
    ("get", "/images/{id}/file"): "get_image_file",
    ("get", "/images/{id}/thumbnail"): "get_image_thumbnail",
    ("get", "/images/{id}/similar"): "find_similar_images",
    ("get", "/search"): "search_text",
    ("post", "/search/image"): "search_by_image",
    ("post", "/albums"): "create_album",
    ("get", "/albums"): "list_albums",
    ("get", "/albums/{id}"): "get_album",
    ("patch", "/albums/{id}"): "update_album",
    ("delete", "/albums/{id}"): "delete_album",
    ("get", "/albums/{id}/images"): "list_album_images",
    ("post", "/albums/{id}/images"): "add_album_images",
    ("post", "/albums/{id}/images/remove"): "remove_album_images",
    ("post", "/images/{id}/shares"): "share_image",
    ("post", "/albums/{id}/shares"): "share_album",
    ("get", "/shares"): "list_shares",
    ("delete", "/shares/{id}"): "revoke_share",
    ("get", "/shared"): "get_shared",
    ("get", "/shared/images"): "list_shared_images",
    ("get", "/shared/images/{id}"): "get_shared_image",
    ("get", "/shared/images/{id}/file"): "get_shared_image_file",
    ("get", "/shared/images/{id}/thumbnail"): "get_shared_image_thumbnail",
    ("get", "/shared/search"): "search_shared_text",
    ("post", "/shared/search/image"): "search_shared_by_image",
}


def _derived_id(method: str, path: str) -> str:
    """For routes outside the table (tests add some): unique, if not pretty."""
    return method + "".join(c if c.isalnum() else "_" for c in path).rstrip("_")


def _error(description: str, error_ref: str | None) -> dict[str, Any]:
    response: dict[str, Any] = {"description": description}
    if error_ref:
        response["content"] = {"application/json": {"schema": {"$ref": error_ref}}}
    return response


def _clean_operation(operation: dict[str, Any], method: str, path: str,
                     error_ref: str | None) -> None:
    operation["operationId"] = OPERATION_IDS.get((method, path)) or _derived_id(method, path)
    operation.pop("produces", None)
    operation.pop("consumes", None)
    params = [p for p in operation.get("parameters", []) if p.get("in") != "formData"]
    operation["parameters"] = params
    if not params:
        del operation["parameters"]
    responses = operation.setdefault("responses", {})
    if not responses:
        responses["200"] = {"description": "OK"}
    for response in responses.values():
        response.setdefault("description", "")
    for status, description in COMMON_RESPONSES.items():
        responses.setdefault(status, _error(description, error_ref))
    # aiohttp's HTTP parser answers the most malformed requests itself, in text.
    responses["400"].setdefault("content", {})["text/plain"] = {"schema": {"type": "string"}}
    body = operation.get("requestBody")
    if body is not None:
        responses.setdefault("413", _error("Too large: over the JSON limit (1 MiB) or an "
                                           "upload's limits", error_ref))
        responses.setdefault("408", _error(
            "The body arrived too slowly: nothing for READ_TIMEOUT seconds, slower than "
            "MIN_UPLOAD_RATE, or (JSON) not whole within BODY_TIMEOUT; the connection is "
            "closed", error_ref))
        if "application/json" in body.get("content", {}):  # json_media_type_middleware
            responses.setdefault("415", _error(
                "The body is not labelled as JSON (Content-Type: application/json)", error_ref))
    for response in responses.values():
        response.setdefault("headers", {})["X-Request-ID"] = REQUEST_ID_HEADER
    # Every 429 (password attempts) and 503 (outages, overload) says when to try again.
    for status in ("429", "503"):
        if status in responses:
            responses[status].setdefault("headers", {})["Retry-After"] = RETRY_AFTER_HEADER


def clean_spec(spec: dict[str, Any]) -> None:
    """Turn apigami's output into valid OpenAPI 3, in place. HEAD is left out: every GET
    answers it (headers only, no body), and a HEAD operation with a JSON body breaks
    generated clients."""
    schemas = spec.get("components", {}).get("schemas", {})
    error_ref = next((f"#/components/schemas/{name}" for name in schemas
                      if name.startswith("Error") and "error" in schemas[name].get(
                          "properties", {})), None)
    # Rules marshmallow cannot state: a change names at least one field.
    for changes in ("ImageChanges", "AlbumChanges"):
        if changes in schemas:
            schemas[changes]["minProperties"] = 1
    for path, path_item in spec.get("paths", {}).items():
        path_item.pop("head", None)
        for method, operation in path_item.items():
            if method in _METHODS:
                _clean_operation(operation, method, path, error_ref)


def setup_openapi(app: web.Application) -> None:
    apispec = setup_aiohttp_apispec(
        app,
        title="imagerepo",
        version=__version__,
        url=SPEC_URL,
        swagger_path=DOCS_URL,
        static_path="/docs/static",
        openapi_version=OpenApiVersion.V303,
        error_callback=raise_validation_error,
        info={"description": "Upload images, find them by text and by image."},
    )
    for name, scheme in SECURITY_SCHEMES.items():
        apispec.spec.components.security_scheme(name, scheme)
    # Schemas that hand-written parts of the spec refer to by name.
    for name, schema in COMPONENTS.items():
        apispec.spec.components.schema(name, schema=schema)
    # The validation middleware's parser: webargs' own, with hostile JSON answered 400.
    json_parser = JsonBodyParser()
    json_parser.error_callback = raise_validation_error
    app[APISPEC_PARSER] = json_parser

    async def clean_on_startup(app: web.Application) -> None:
        clean_spec(app[SWAGGER_DICT])  # apigami's key is a plain str

    # Registered after apigami's own start-up hook, so the spec exists by then.
    app.on_startup.append(clean_on_startup)
