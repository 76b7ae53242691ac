"""Offline scoring for bench/retrieval_study.py: the candidate stage of each design computed in
numpy over real + synthetic images, to choose parameters before PostgreSQL measures them.

Scale-up: synthetic images are independent draws, so the expected number of them that
outscore the true original grows linearly with their count; the rank at `target` images is
estimated as (unrelated real images above it) + (synthetic images above it) * target / n.
Rows touched are scaled the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

Keys = Callable[[np.ndarray], np.ndarray]  # descriptors -> one key per descriptor (int64)


@dataclass
class Corpus:
    """Unique (image, key) pairs sorted by key, with the image count and which are real."""
    keys: np.ndarray
    images: np.ndarray
    n_images: int
    n_real: int

    @classmethod
    def build(cls, real: list[np.ndarray], synth: list[np.ndarray]) -> Corpus:
        sets = real + synth
        images = np.repeat(np.arange(len(sets), dtype=np.int32), [len(s) for s in sets])
        keys = np.concatenate(sets) if sets else np.zeros(0, np.int64)
        order = np.lexsort((images, keys))
        return cls(keys[order], images[order], len(sets), len(real))

    def df(self, query: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        lo = np.searchsorted(self.keys, query, "left")
        hi = np.searchsorted(self.keys, query, "right")
        return lo, hi


@dataclass
class Outcome:
    rank: float  # estimated unrelated images above the original at the target scale
    rows: float  # postings read at the target scale


def vote(corpus: Corpus, query: np.ndarray, truth: int, related: np.ndarray, target: int,
         idf: bool, max_df: float) -> Outcome:
    """Score every image by its shared keys (each key once; idf-weighted if asked), reading
    only the postings of query keys whose estimated df at the target scale is <= max_df."""
    scale = (target - corpus.n_real) / max(1, corpus.n_images - corpus.n_real)
    lo, hi = corpus.df(np.unique(query))
    df_target = (hi - lo) * scale  # the synthetic share dominates; good enough to prune
    keep = (df_target <= max_df) & (hi > lo)
    lo, hi = lo[keep], hi[keep]
    weights = np.log(target / np.maximum(df_target[keep], 1.0)) if idf else np.ones(len(lo))
    span = hi - lo
    index = np.repeat(lo - np.cumsum(span) + span, span) + np.arange(span.sum())
    scores = np.bincount(corpus.images[index], weights=np.repeat(weights, span),
                         minlength=corpus.n_images)
    return _outcome(scores, truth, related, corpus.n_real, scale, float(df_target[keep].sum()))


def _outcome(scores: np.ndarray, truth: int, related: np.ndarray, n_real: int, scale: float,
             rows: float) -> Outcome:
    mine = scores[truth]
    if mine <= 0:
        return Outcome(float("inf"), rows)
    above = scores > mine
    above[related] = False
    real_above = int(above[:n_real].sum())
    synth_above = int(above[n_real:].sum())
    return Outcome(real_above + synth_above * scale, rows)


def minhash_sketches(word_sets: list[np.ndarray], k: int, s: int, seed: int = 23) -> np.ndarray:
    """k sketches of s min-hashes of each word set (Chum et al. 2008) as int64 keys:
    n_images x k; -1 for an empty set. Sketch j's key also encodes j."""
    rng = np.random.default_rng(seed)
    prime = (1 << 61) - 1
    a = rng.integers(1, 1 << 40, k * s, dtype=np.int64)
    b = rng.integers(0, 1 << 40, k * s, dtype=np.int64)
    lengths = np.array([len(w) for w in word_sets])
    flat = np.concatenate(word_sets).astype(np.int64) if len(word_sets) else np.zeros(0, np.int64)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    nonempty = lengths > 0
    out = np.full((len(word_sets), k), -1, np.int64)
    mix = np.zeros((len(word_sets), k), np.uint64)
    for j in range(k * s):
        h = ((flat * a[j] + b[j]) % prime) if len(flat) else flat
        mins = np.full(len(word_sets), prime, np.int64)
        mins[nonempty] = np.minimum.reduceat(h, starts[nonempty])
        m = mins.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
        mix[:, j // s] = (mix[:, j // s] * np.uint64(1_000_003)) ^ m
    for j in range(k):
        out[:, j] = (mix[:, j] >> np.uint64(8)).astype(np.int64) * 64 + j
    out[~nonempty] = -1
    return out
