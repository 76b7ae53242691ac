"""The designs of bench/retrieval_study.py in PostgreSQL: schema, loading (COPY), candidate SQL.

(A) posting arrays: one row per key (word) with its document frequency and the sorted
    int4[] of image numbers holding it; the query reads the rows of its keys whose df is at
    most :max_df (df is a column, so pruning never detoasts an array) and counts votes.
(B) min-hash sketches: one row per (sketch key, image number), B-tree on the key; the query
    probes its k sketch keys by equality and ranks by colliding sketches.
"""

from __future__ import annotations

import time

import asyncpg
import numpy as np

from bench.common import postings_batches

SCHEMA = {
    "A": """
        drop table if exists ret_postings;
        create table ret_postings (key int8 primary key, df int4 not null, ids int4[] not null);
    """,
    "B": """
        drop table if exists ret_sketches;
        create table ret_sketches (key int8 not null, image int4 not null);
    """,
}
INDEXES = {
    "A": "",
    "B": "create index ret_sketches_key on ret_sketches (key) include (image)",
}
QUERY = {
    "A": """
        select id, count(*)::int as votes
        from ret_postings p cross join lateral unnest(p.ids) as id
        where p.key = any($1::int8[]) and p.df <= $2
        group by id order by votes desc, id limit $3
    """,
    "B": """
        select image as id, count(*)::int as votes
        from ret_sketches where key = any($1::int8[]) and $2::int > 0
        group by image order by votes desc, image limit $3
    """,
}
TABLES = {"A": ("ret_postings",), "B": ("ret_sketches",)}


async def load_postings(conn: asyncpg.Connection, keys: np.ndarray, images: np.ndarray) -> None:
    """(A) from (key, image) pairs sorted by key."""
    await conn.execute(SCHEMA["A"])
    for records in postings_batches(keys, images):
        await conn.copy_records_to_table("ret_postings", records=records)


async def load_sketches(conn: asyncpg.Connection, sketches: np.ndarray) -> None:
    """(B) from the n_images x k matrix of sketch keys (-1: none)."""
    await conn.execute(SCHEMA["B"])
    step = 50_000
    for s in range(0, len(sketches), step):
        part = sketches[s:s + step]
        rows, cols = np.nonzero(part >= 0)
        records = list(zip(part[rows, cols].tolist(), (rows + s).tolist(), strict=True))
        await conn.copy_records_to_table("ret_sketches", records=records)
    await conn.execute("set maintenance_work_mem = '1GB'")
    await conn.execute(INDEXES["B"])


async def sizes(conn: asyncpg.Connection, design: str) -> dict[str, int]:
    out = {}
    for table in TABLES[design]:
        out[table] = int(await conn.fetchval("select pg_total_relation_size($1)", table))
    return out


async def candidates(conn: asyncpg.Connection, design: str, probe: list[int], max_df: int,
                     k: int) -> tuple[list[int], float]:
    started = time.perf_counter()
    rows = await conn.fetch(QUERY[design], probe, max_df, k)
    return [int(r["id"]) for r in rows], (time.perf_counter() - started) * 1000


async def explain(conn: asyncpg.Connection, design: str, probe: list[int], max_df: int,
                  k: int) -> str:
    rows = await conn.fetch("explain (analyze, buffers, costs off) " + QUERY[design],
                            probe, max_df, k)
    return "\n".join(r[0] for r in rows)
