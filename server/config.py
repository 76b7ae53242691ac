"""Configuration read from the environment (the table in docs/configuration.md)."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

MIB = 1024 * 1024


class ConfigError(ValueError):
    """A setting in the environment is malformed."""


# SigV4 presigned URLs live at most seven days.
MAX_PRESIGNED_SECONDS = 7 * 24 * 3600


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 1,
         maximum: int | None = None) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw.replace("_", ""))
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ConfigError(f"{name} must be at most {maximum}, got {value}")
    return value


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be true or false, got {raw!r}")


def _choice(env: Mapping[str, str], name: str, choices: tuple[str, ...], default: str) -> str:
    raw = env.get(name, "").strip().lower() or default
    if raw not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}, got {raw!r}")
    return raw


def _share(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number from 0 to 1, got {raw!r}") from None
    if not 0.0 <= value <= 1.0:
        raise ConfigError(f"{name} must be from 0 to 1, got {value}")
    return value


def _list(env: Mapping[str, str], name: str, default: tuple[str, ...]) -> tuple[str, ...]:
    if name not in env:
        return default
    return tuple(item.strip() for item in env[name].split(",") if item.strip())


def _token(env: Mapping[str, str], name: str) -> str | None:
    raw = env.get(name, "").strip()
    if raw and len(raw) < 16:
        raise ConfigError(f"{name} must be at least 16 characters (it guards what the "
                          f"service reveals about itself)")
    return raw or None


def _networks(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    networks = _list(env, name, ())
    for network in networks:
        try:
            ipaddress.ip_network(network, strict=False)
        except ValueError:
            raise ConfigError(f"{name} must list addresses or networks (10.0.0.0/8), got "
                              f"{network!r}") from None
    return networks


@dataclass(frozen=True, slots=True)
class Config:
    database_url: str | None
    data_dir: Path
    storage_url: str
    host: str = "127.0.0.1"
    port: int = 8080
    max_upload_bytes: int = 50 * MIB
    max_files_per_request: int = 100
    max_image_pixels: int = 100_000_000
    # Threads for CPU-bound image work (decoding, hashing): one per core.
    cpu_workers: int = os.cpu_count() or 2
    # Threads for bcrypt, apart from image work so that logins cannot starve it.
    password_workers: int = 1
    # Password checks (sign-up, HTTP Basic) allowed per client address and minute.
    password_attempts: int = 30
    db_pool_size: int = 10
    # bcrypt cost of new password hashes; 12 costs about 0.25 s a check here.
    bcrypt_cost: int = 12
    # Origins allowed to call the API from a browser; empty: CORS off.
    cors_origins: tuple[str, ...] = ()
    # Seconds any request body (an upload's, a JSON one) may stall, no bytes at all, before
    # it is cut off with 408.
    read_timeout: float = 30
    # Seconds a JSON body (at most 1 MiB) has to arrive whole, from its first read; then 408.
    # With HEADER_TIMEOUT, it bounds how long a request that is not an upload holds a
    # connection.
    body_timeout: float = 20
    # On SIGTERM: how long in-flight requests may take to finish before they are cancelled.
    shutdown_grace: float = 30
    # Seconds a client has to send a request's headers, from its first byte (or connect).
    header_timeout: float = 10
    # Slowest sustained body accepted (uploads', JSON), in bytes per second, once READ_TIMEOUT
    # seconds were spent waiting for it.
    min_upload_rate: int = 16 * 1024
    # Open connections at most; the next ones get a 503 at once. 0: from the file limit.
    max_connections: int = 0
    # Longest a search statement may run in PostgreSQL, in seconds; then 503.
    search_timeout: float = 5
    # Make the small thumbnail during the upload (else on its first request).
    upload_thumbnails: bool = True
    # Server processes sharing the listening socket (serve --workers).
    workers: int = os.cpu_count() or 1
    # GET .../file and thumbnails: `proxy` streams the bytes through the server; `redirect`
    # answers 302 to a presigned S3 URL valid this many seconds (local storage: proxy). A
    # presigned URL cannot be revoked: this is how long one outlives a switch to private.
    downloads: str = "proxy"
    download_url_seconds: int = 60
    # How long anyone but the owner (browsers, shared caches) may keep an answer about a
    # public image (its file, its thumbnails): how long a copy may outlive a switch to private.
    public_cache_seconds: int = 300
    # Record metrics (METRICS=off: not at all, /metrics answers 404).
    metrics: bool = True
    # The bearer token GET /metrics asks for; unset: /metrics answers 404 (not public).
    metrics_token: str | None = None
    # `text` (human-readable lines) or `json` (one object per line).
    log_format: str = "text"
    # Access lines: off altogether; the share of successful answers logged (errors always
    # are); paths whose successful answers are never logged.
    access_log: bool = True
    access_log_sample: float = 1.0
    access_log_quiet_paths: tuple[str, ...] = ("/health", "/ready", "/metrics")
    # Peers (addresses or networks) whose X-Forwarded-For / Forwarded and X-Request-ID are
    # believed; everyone else's are ignored.
    trusted_proxies: tuple[str, ...] = ()
    # The header those proxies name the client in: `x-forwarded-for` or `forwarded` (RFC
    # 7239); the other is ignored (a proxy passes it on as the client wrote it).
    forwarded_header: str = "x-forwarded-for"
    # OpenTelemetry spans (requests, SQL statements, storage calls) exported by OTLP/HTTP; the
    # exporter, the service's name and the sampling come from the standard OTEL_* variables,
    # which the SDK reads itself. Needs `pip install 'imagerepo[tracing]'`.
    tracing: bool = False

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Config:
        env = os.environ if env is None else env
        data_dir = Path(env.get("DATA_DIR") or "./data").expanduser().resolve()
        storage_url = env.get("STORAGE_URL") or (data_dir / "objects").as_uri()
        if not storage_url.startswith(("s3://", "file:///")):
            raise ConfigError(f"STORAGE_URL must be s3://bucket[/prefix] or file:///abs/dir, "
                              f"got {storage_url!r}")
        return cls(
            database_url=env.get("DATABASE_URL") or None,
            data_dir=data_dir,
            storage_url=storage_url,
            host=env.get("HOST") or "127.0.0.1",
            port=_int(env, "PORT", 8080, minimum=0),
            max_upload_bytes=_int(env, "MAX_UPLOAD_BYTES", 50 * MIB),
            max_files_per_request=_int(env, "MAX_FILES_PER_REQUEST", 100),
            max_image_pixels=_int(env, "MAX_IMAGE_PIXELS", 100_000_000),
            cpu_workers=_int(env, "CPU_WORKERS", os.cpu_count() or 2),
            password_workers=_int(env, "PASSWORD_WORKERS", 1),
            password_attempts=_int(env, "PASSWORD_ATTEMPTS", 30),
            header_timeout=_int(env, "HEADER_TIMEOUT", 10),
            min_upload_rate=_int(env, "MIN_UPLOAD_RATE", 16 * 1024, minimum=0),
            max_connections=_int(env, "MAX_CONNECTIONS", 0, minimum=0),
            search_timeout=_int(env, "SEARCH_TIMEOUT", 5),
            upload_thumbnails=_bool(env, "UPLOAD_THUMBNAILS", True),
            workers=_int(env, "WORKERS", os.cpu_count() or 1),
            downloads=_choice(env, "DOWNLOADS", ("proxy", "redirect"), "proxy"),
            download_url_seconds=_int(env, "DOWNLOAD_URL_SECONDS", 60, minimum=10,
                                      maximum=MAX_PRESIGNED_SECONDS),
            public_cache_seconds=_int(env, "PUBLIC_CACHE_SECONDS", 300, minimum=0),
            db_pool_size=_int(env, "DB_POOL_SIZE", 10),
            bcrypt_cost=_int(env, "BCRYPT_COST", 12, minimum=4),
            read_timeout=_int(env, "READ_TIMEOUT", 30),
            body_timeout=_int(env, "BODY_TIMEOUT", 20),
            shutdown_grace=_int(env, "SHUTDOWN_GRACE", 30),
            cors_origins=tuple(o.strip().rstrip("/") for o in env.get("CORS_ORIGINS", "").split(",")
                               if o.strip()),
            metrics=_bool(env, "METRICS", True),
            metrics_token=_token(env, "METRICS_TOKEN"),
            log_format=_choice(env, "LOG_FORMAT", ("text", "json"), "text"),
            access_log=_bool(env, "ACCESS_LOG", True),
            access_log_sample=_share(env, "ACCESS_LOG_SAMPLE", 1.0),
            access_log_quiet_paths=_list(env, "ACCESS_LOG_QUIET_PATHS",
                                         ("/health", "/ready", "/metrics")),
            trusted_proxies=_networks(env, "TRUSTED_PROXIES"),
            forwarded_header=_choice(env, "FORWARDED_HEADER", ("x-forwarded-for", "forwarded"),
                                     "x-forwarded-for"),
            tracing=_bool(env, "TRACING", False),
        )

    def with_overrides(self, **changes: object) -> Config:
        return replace(self, **{k: v for k, v in changes.items() if v is not None})  # type: ignore[arg-type]


def redact_url(url: str) -> str:
    """The URL without its password, fit for a log line."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))
