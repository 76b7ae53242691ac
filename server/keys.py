"""Every object shared through the application, each behind a typed key."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from aiohttp import web

from .config import Config
from .db.pool import Pool
from .db.queries import Queries
from .inflight import InFlight
from .passwords import PasswordHasher
from .services.cursors import Cursors
from .storage import Storage

CONFIG = web.AppKey("config", Config)
DSN = web.AppKey("dsn", str)
POOL = web.AppKey[Pool]("pool")
QUERIES = web.AppKey[Queries]("queries")
STORAGE = web.AppKey[Storage]("storage")
# Threads for CPU-bound work: image decoding and hashing (they release the GIL).
CPU_POOL = web.AppKey("cpu_pool", ThreadPoolExecutor)
# bcrypt, on threads of its own.
PASSWORDS = web.AppKey("passwords", PasswordHasher)
# Signs and checks pagination cursors with the deployment's secret (from PostgreSQL).
CURSORS = web.AppKey("cursors", Cursors)
# Requests being handled, for a graceful shutdown.
IN_FLIGHT = web.AppKey("in_flight", InFlight)
