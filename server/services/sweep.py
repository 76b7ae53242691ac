"""Finding stored objects without a row (removed) and rows without an object (reported).

Safe while uploads run: an upload writes its objects before its rows, so only objects older
than a grace period (far longer than any upload takes) can be orphans; and a row is reported
only after a second look confirms that its object is still missing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from uuid import UUID

from ..db.pool import Pool
from ..db.queries import Queries
from ..storage import Storage

log = logging.getLogger(__name__)
BATCH = 1000


@dataclass
class SweepReport:
    objects_seen: int = 0
    orphans_removed: list[str] = field(default_factory=list)
    orphans_kept_young: int = 0
    rows_without_object: list[UUID] = field(default_factory=list)


async def sweep(
    pool: Pool, queries: Queries, storage: Storage, *, grace: timedelta, dry_run: bool = False
) -> SweepReport:
    started = datetime.now(UTC)
    report = SweepReport()
    listed: set[str] = set()
    batch: list[tuple[str, datetime]] = []

    async def settle(items: list[tuple[str, datetime]]) -> None:
        async with pool.acquire() as conn:
            keys = [key for key, _ in items]
            known = {r["storage_key"] async for r in queries.existing_storage_keys(conn, keys=keys)}
        for key, modified in items:
            if key in known:
                continue
            if started - modified < grace:
                report.orphans_kept_young += 1  # perhaps an upload whose rows are coming
                continue
            if not dry_run:
                await storage.delete(key)
            report.orphans_removed.append(key)

    async for info in storage.list():
        report.objects_seen += 1
        listed.add(info.key)
        batch.append((info.key, info.modified))
        if len(batch) >= BATCH:
            await settle(batch)
            batch = []
    if batch:
        await settle(batch)

    # Rows from before the listing began must have had their object listed.
    async with pool.acquire() as conn:
        rows = [r async for r in queries.storage_keys_before(conn, before=started)]
    for row in rows:
        if row["storage_key"] not in listed and not await storage.exists(row["storage_key"]):
            report.rows_without_object.append(row["id"])
            log.error("image %s has no object %s", row["id"], row["storage_key"])
    return report
