"""Candidate retrieval for search by image at a million images: which index in PostgreSQL puts
the true original among the few candidates handed to geometric verification, how fast.

    python -m bench.retrieval_study offline [--synthetic 100000]
    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/bench_retrieval \\
        python -m bench.retrieval_study pg [--images 1000000] [--design A B]

Real ORB features of a few thousand real images (bench/retrieval_corpus.py) give the word
statistics and the true pairs; the rest of the million are synthesised from a pool of real
descriptors (retrieval_corpus.SyntheticPool). `offline` scores every design in numpy (recall
estimated at the target scale); `pg` loads the chosen designs with COPY and measures the
candidate SQL: latency (warm, and one cold run), buffers, bytes per image and recall.
Features are cached in /tmp/retrieval-study (delete it to recompute).
"""

from __future__ import annotations

import argparse
import pickle
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from bench.common import percentile
from bench.retrieval_corpus import SyntheticPool, decoded, hard_copies
from bench.retrieval_features import (
    Vocabulary,
    generated_pictures,
    query_features,
    rust_doc_images,
    sampled_words,
    stored_features,
    text_pages,
)
from bench.retrieval_offline import Corpus, minhash_sketches, vote
from tests.photo_edits import distractors, load_photos

CACHE = Path("/tmp/retrieval-study")
K_VALUES = (20, 50)


@dataclass
class Features:
    originals: list[np.ndarray]  # the photos queries contain, stored images 0..n-1
    distractors: list[np.ndarray]  # real stored images n.. (sub-windows, faces, screenshots)
    sources: list[str]  # the photo each distractor comes from ("lfw", "rust")
    extra: list[np.ndarray]  # generated pictures and text pages: pool only
    queries: list[np.ndarray]
    query_truth: list[int]
    query_family: list[str]
    query_ms: list[float]  # ORB on the query (decode + detect + describe)
    training: np.ndarray  # vocabulary training descriptors (no benchmark photo)


def compute_features(per_family: int) -> Features:
    photos = [(n, im) for n, im in load_photos() if len(stored_features(im)) >= 50]
    rust = rust_doc_images()
    generated, pages = generated_pictures(300), text_pages(100)
    others = rust + generated[:40]
    dist = distractors(photos)
    dist_desc = [stored_features(decoded(data)) for _, data in dist]
    rust_desc = [stored_features(im) for im in rust]
    extra = [stored_features(im) for im in generated + pages]
    copies = hard_copies(photos, others, per_family)
    queries, times = [], []
    for _, _, data in copies:
        started = time.perf_counter()
        queries.append(query_features(data))
        times.append((time.perf_counter() - started) * 1000)
    faces = [d for (src, _), d in zip(dist, dist_desc, strict=True) if src == "lfw"]
    training = np.concatenate([d for d in extra + rust_desc + faces if len(d)])
    return Features(
        originals=[stored_features(im) for _, im in photos],
        distractors=dist_desc + rust_desc,
        sources=[src for src, _ in dist] + ["rust"] * len(rust),
        extra=extra, queries=queries, query_truth=[i for i, _, _ in copies],
        query_family=[f for _, f, _ in copies], query_ms=times,
        training=np.random.default_rng(2).permutation(training))


def load_features(per_family: int) -> tuple[Features, list[str]]:
    CACHE.mkdir(exist_ok=True)
    path = CACHE / f"features-{per_family}.pickle"
    if not path.exists():
        print("computing real ORB features ...", flush=True)
        path.write_bytes(pickle.dumps(compute_features(per_family)))
    names = [n for n, im in load_photos() if len(stored_features(im)) >= 50]
    features: Features = pickle.loads(path.read_bytes())
    return features, names


def vocabulary(features: Features) -> Vocabulary:
    path = CACHE / "vocabulary.pickle"
    if not path.exists():
        print(f"training the vocabulary on {len(features.training):,} descriptors ...",
              flush=True)
        path.write_bytes(pickle.dumps(Vocabulary.train(features.training)))
    vocab: Vocabulary = pickle.loads(path.read_bytes())
    return vocab


# --- quantisers -------------------------------------------------------------------------------

Quantiser = Callable[[np.ndarray], np.ndarray]  # descriptors -> keys (several per descriptor ok)


def lsh(bits: int, tables: int) -> Quantiser:
    def keys(desc: np.ndarray) -> np.ndarray:
        return np.concatenate([sampled_words(desc, bits, t) + (t << bits) for t in range(tables)])
    return keys


def quantisers(vocab: Vocabulary) -> dict[str, Quantiser]:
    out: dict[str, Quantiser] = {}
    for extra in (0, 2, 4, 6):
        v = vocab.extended(extra)
        out[f"vocab 2^{16 + extra}"] = v.words
    for bits, tables in ((16, 1), (20, 1), (20, 2), (24, 2), (24, 4)):
        out[f"lsh {bits} bits x{tables}"] = lsh(bits, tables)
    return out


def key_sets(q: Quantiser, descs: list[np.ndarray]) -> list[np.ndarray]:
    return [np.unique(q(d)) if len(d) else np.zeros(0, np.int64) for d in descs]


def synthetic_sets(q: Quantiser, pool: SyntheticPool, n: int, seed: int) -> list[np.ndarray]:
    pool_keys = q(pool.desc).reshape(-1, len(pool.desc))  # tables x pool
    offsets, idx = pool.images(n, seed)
    return [np.unique(pool_keys[:, idx[offsets[i]:offsets[i + 1]]])
            for i in range(n)]


# --- offline ----------------------------------------------------------------------------------

def related_of(features: Features, names: list[str]) -> list[np.ndarray]:
    """Per original: the stored images that hold part of it (its sub-windows): true matches
    too, so they are not counted against it."""
    n = len(features.originals)
    return [n + np.nonzero(np.array(features.sources) == name)[0] for name in names]


def offline(args: argparse.Namespace) -> None:
    features, names = load_features(args.per_family)
    vocab = vocabulary(features)
    pool = SyntheticPool(features.distractors, features.extra)
    real = features.originals + features.distractors
    related = related_of(features, names)
    print(f"real stored images {len(real)}, pool {len(pool.desc):,} descriptors, "
          f"queries {len(features.queries)}, synthetic {args.synthetic:,}, target "
          f"{args.target:,}", flush=True)
    rows_out = []
    for name, q in quantisers(vocab).items():
        started = time.perf_counter()
        corpus = Corpus.build(key_sets(q, real), synthetic_sets(q, pool, args.synthetic, 5))
        qkeys = [q(d) for d in features.queries]
        t_q = percentile([_timed(q, d) for d in features.queries[:50]], 50)
        for idf in (False, True):
            for max_df in (1e9, 20_000, 5_000, 2_000, 500):
                outs = [vote(corpus, k, t, related[t], args.target, idf, max_df)
                        for k, t in zip(qkeys, features.query_truth, strict=True)]
                rows_out.append(_line(f"{name} {'idf' if idf else 'votes'} df<={max_df:g}",
                                      outs, features, t_q))
        print(f"  ({name}: {time.perf_counter() - started:.0f} s)", flush=True)
    for k, s in ((64, 1), (64, 2), (128, 2)):
        rows_out.append(minhash_line(vocab, features, real, pool, args, k, s, related))
    print("\n".join(rows_out))


def _timed(q: Quantiser, d: np.ndarray) -> float:
    started = time.perf_counter()
    q(d)
    return (time.perf_counter() - started) * 1000


def _line(label: str, outs: list, features: Features, t_q: float) -> str:  # type: ignore[type-arg]
    ranks = np.array([o.rank for o in outs])
    rows = np.array([o.rows for o in outs])
    recall = {k: float((ranks < k).mean()) for k in K_VALUES}
    fam = {}
    for f in dict.fromkeys(features.query_family):
        sel = np.array(features.query_family) == f
        fam[f] = float((ranks[sel] < 50).mean())
    worst = min(fam, key=lambda f: fam[f])
    return (f"{label:42s} R@20 {recall[20]:.3f} R@50 {recall[50]:.3f} rows p50 "
            f"{np.median(rows):9,.0f} p95 {np.percentile(rows, 95):9,.0f}  q {t_q:.1f} ms  "
            f"worst {worst} {fam[worst]:.2f}")


def minhash_line(vocab: Vocabulary, features: Features, real: list[np.ndarray],
                 pool: SyntheticPool, args: argparse.Namespace, k: int, s: int,
                 related: list[np.ndarray]) -> str:
    q = vocab.extended(4).words
    n_synth = min(args.synthetic, 50_000)
    sets = key_sets(q, real) + synthetic_sets(q, pool, n_synth, 5)
    sketches = minhash_sketches(sets, k, s)
    corpus = Corpus.build([row[row >= 0] for row in sketches], [])
    corpus.n_real = len(real)  # the synthetic rows follow the real ones in `sets`
    qsk = minhash_sketches(key_sets(q, features.queries), k, s)
    outs = [vote(corpus, row, t, related[t], args.target, False, 1e9)
            for row, t in zip(qsk, features.query_truth, strict=True)]
    return _line(f"minhash k={k} s={s} (vocab 2^20)", outs, features, 0.0)


async def pg(args: argparse.Namespace) -> None:
    import os

    import asyncpg

    from bench import retrieval_pg as rpg

    features, names = load_features(args.per_family)
    vocab = vocabulary(features)
    pool = SyntheticPool(features.distractors, features.extra)
    real = features.originals + features.distractors
    n_synth = args.images - len(real)
    conn = await asyncpg.connect(os.environ["DATABASE_URL"])
    await conn.execute("set statement_timeout = 0")
    report = [f"PostgreSQL {await conn.fetchval('show server_version')}, {args.images:,} images "
              f"({len(real):,} real), {len(features.queries)} queries"]
    for design in args.design:
        started = time.perf_counter()
        if design == "A":
            q = lsh(args.bits, args.tables)
            probes = [np.unique(q(d)).tolist() for d in features.queries]
            t_q = percentile([_timed(q, d) for d in features.queries[:100]], 50)
            corpus = Corpus.build(key_sets(q, real), synthetic_sets(q, pool, n_synth, 5))
            await rpg.load_postings(conn, corpus.keys, corpus.images)
            del corpus
            label = f"A posting arrays, lsh {args.bits} bits x{args.tables}, df <= {args.max_df}"
        else:
            q = vocab.extended(4).words
            sets = key_sets(q, real) + synthetic_sets(q, pool, n_synth, 5)
            sketches = minhash_sketches(sets, args.k, 1)
            del sets
            qs = minhash_sketches(key_sets(q, features.queries), args.k, 1)
            probes = [row[row >= 0].tolist() for row in qs]
            t_q = percentile([_timed(q, d) for d in features.queries[:100]], 50)
            await rpg.load_sketches(conn, sketches)
            label = f"B min-hash sketches k={args.k} s=1, B-tree"
        for table in rpg.TABLES[design]:
            await conn.execute(f"vacuum analyze {table}")
        load_s = time.perf_counter() - started
        size = await rpg.sizes(conn, design)
        cold, warm, hits = [], [], {20: 0, 50: 0}
        for probe in probes:
            cold.append((await rpg.candidates(conn, design, probe, args.max_df, 50))[1])
        for probe, truth in zip(probes, features.query_truth, strict=True):
            ids, ms = await rpg.candidates(conn, design, probe, args.max_df, 50)
            warm.append(ms)
            for k in hits:
                hits[k] += truth in ids[:k]
        middle = probes[int(np.argsort(warm)[len(warm) // 2])]
        plan = await rpg.explain(conn, design, middle, args.max_df, 50)
        n = len(probes)
        report.append(
            f"{label}: loaded in {load_s:.0f} s; bytes/image "
            f"{sum(size.values()) / args.images:,.0f} {size}; warm p50 "
            f"{percentile(warm, 50):.1f} ms p95 {percentile(warm, 95):.1f} ms; first pass p50 "
            f"{percentile(cold, 50):.1f} ms p95 {percentile(cold, 95):.1f} ms; R@20 "
            f"{hits[20] / n:.3f} R@50 {hits[50] / n:.3f}; quantise p50 {t_q:.2f} ms; "
            f"probe keys p50 {np.median([len(p) for p in probes]):.0f}\n{plan}")
        print(report[-1], flush=True)
    await conn.close()
    print("\n\n".join(report))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    off = sub.add_parser("offline")
    off.add_argument("--synthetic", type=int, default=100_000)
    off.add_argument("--target", type=int, default=1_000_000)
    off.add_argument("--per-family", type=int, default=2)
    on = sub.add_parser("pg")
    on.add_argument("--images", type=int, default=1_000_000)
    on.add_argument("--design", nargs="+", default=["A", "B"], choices=["A", "B"])
    on.add_argument("--bits", type=int, default=24)
    on.add_argument("--tables", type=int, default=2)
    on.add_argument("--max-df", type=int, default=500)
    on.add_argument("--k", type=int, default=64)
    on.add_argument("--per-family", type=int, default=2)
    args = parser.parse_args()
    random.seed(0)
    Image.MAX_IMAGE_PIXELS = None
    if args.command == "offline":
        offline(args)
    else:
        import asyncio

        asyncio.run(pg(args))


if __name__ == "__main__":
    main()
