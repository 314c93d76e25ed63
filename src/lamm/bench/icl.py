"""In-context example retrievers: random, fixed, top-k by text similarity, top-k by image similarity.

Examples come from a separate *pool* (another split, or another file) and never from the question being
asked: a pool sample is ineligible when it has the sample's id, its record (group) id, or any of its
media files. (ChEF drew examples from the evaluated set itself, and its random retriever could show the
model the very question it was asked with its answer.) Each retriever returns the chosen pool samples
in the order they are shown, most relevant last — nearest the question.

Embeddings (documented because they decide the top-k):

* text — TF-IDF over lower-cased word tokens of the pool questions (smoothed idf
  ``log((1 + n) / (1 + df)) + 1``, l2-normalised), cosine similarity, in numpy;
* image — an 8×8 RGB thumbnail (bilinear) concatenated with an 8-bin-per-channel colour histogram, each
  part centred and l2-normalised so that brightness alone does not make two images similar; cosine;
* point cloud — a 4×4×4 occupancy histogram of the points in their own bounding box (centred,
  l2-normalised) concatenated with the mean colour when the cloud has one.

Ties are broken by pool order, and random choices use a generator seeded by (seed, sample id), so the
same run always shows the same examples.

An example shows its ground truth written as an answer (``Sample.answer``). Tasks whose ground truth has
no such text (LSP keypoints, Locating-LSP, Locating-FSC147: pixel coordinates) cannot give examples: a
pool with no answer text at all is refused when the retriever is built, before any model loads.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from lamm.bench.scenarios.base import Sample, stable_hash

_WORD_RE = re.compile(r"[a-z0-9]+")


def _eligible(sample: Sample, pool: Sequence[Sample]) -> list[int]:
    """Indices of pool samples that may be shown as examples for ``sample``."""
    media = set(sample.media_paths)
    return [i for i, p in enumerate(pool)
            if p.id != sample.id and p.group != sample.group and not (media & set(p.media_paths))
            and p.answer is not None]


class Retriever:
    """Base retriever over a fixed pool; :meth:`retrieve` returns up to ``k`` eligible pool samples."""

    name = "base"

    def __init__(self, pool: Sequence[Sample], k: int, seed: int = 0) -> None:
        self.pool = list(pool)
        self.k = k
        self.seed = seed
        if k and self.pool and all(p.answer is None for p in self.pool):
            raise ValueError(f"ICL pool: none of its {len(self.pool)} samples has a gold answer text to show "
                             "as an example; this task has no gold answer text for in-context examples, so "
                             "ICL is not supported for it (set instruction.icl.retriever: none)")

    def retrieve(self, sample: Sample) -> list[Sample]:
        raise NotImplementedError

    def _need(self, sample: Sample, eligible: list[int]) -> None:
        if len(eligible) < self.k:
            silent = sum(p.answer is None for p in self.pool)
            why = (f" ({silent} of its {len(self.pool)} samples have no gold answer text to show)" if silent
                   else "")
            raise ValueError(f"ICL pool has {len(eligible)} eligible examples for sample {sample.id!r}{why}, "
                             f"fewer than k={self.k}; use a larger pool or a smaller k")


class RandomRetriever(Retriever):
    """``k`` examples drawn without replacement by a generator seeded with (seed, sample id)."""

    name = "random"

    def retrieve(self, sample: Sample) -> list[Sample]:
        eligible = _eligible(sample, self.pool)
        self._need(sample, eligible)
        rng = np.random.default_rng(stable_hash(self.seed, "icl", sample.id))
        picks = rng.choice(len(eligible), size=self.k, replace=False) if self.k else []
        return [self.pool[eligible[int(j)]] for j in picks]


class FixedRetriever(Retriever):
    """The same examples for every sample: ``ids`` (pool sample ids) or else the first ``k`` of the pool;
    an example that is the sample itself is replaced by the next eligible pool sample."""

    name = "fixed"

    def __init__(self, pool: Sequence[Sample], k: int, seed: int = 0, ids: Sequence[str] = ()) -> None:
        super().__init__(pool, k, seed)
        by_id = {p.id: i for i, p in enumerate(self.pool)}
        missing = [i for i in ids if i not in by_id]
        if missing:
            raise ValueError(f"ICL fixed_ids not in the pool: {', '.join(map(repr, missing[:5]))}")
        first = [by_id[i] for i in ids]
        self.order = first + [i for i in range(len(self.pool)) if i not in set(first)]

    def retrieve(self, sample: Sample) -> list[Sample]:
        eligible = set(_eligible(sample, self.pool))
        chosen = [i for i in self.order if i in eligible][: self.k]
        self._need(sample, chosen)
        return [self.pool[i] for i in chosen]


class _TopK(Retriever):
    """Top-k by cosine similarity of embeddings; the most similar example is shown last."""

    def _embed_pool(self) -> np.ndarray:
        raise NotImplementedError

    def _embed(self, sample: Sample) -> np.ndarray:
        raise NotImplementedError

    def retrieve(self, sample: Sample) -> list[Sample]:
        if not hasattr(self, "_pool_emb"):
            self._pool_emb = self._embed_pool()
        eligible = _eligible(sample, self.pool)
        self._need(sample, eligible)
        if not self.k:
            return []
        sims = self._pool_emb[eligible] @ self._embed(sample)
        order = np.argsort(-sims, kind="stable")[: self.k]
        return [self.pool[eligible[int(j)]] for j in order[::-1]]


def tokenize(text: str) -> list[str]:
    return _WORD_RE.findall(text.lower())


class TfidfRetriever(_TopK):
    """Top-k by TF-IDF cosine similarity of the questions (vocabulary and idf from the pool)."""

    name = "topk_text"

    def _embed_pool(self) -> np.ndarray:
        docs = [Counter(tokenize(p.question)) for p in self.pool]
        self.vocab = {w: i for i, w in enumerate(sorted({w for d in docs for w in d}))}
        df = np.zeros(len(self.vocab))
        for d in docs:
            for w in d:
                df[self.vocab[w]] += 1
        n = len(docs)
        self.idf = np.log((1 + n) / (1 + df)) + 1.0
        return np.stack([self._vec(d) for d in docs]) if docs else np.zeros((0, len(self.vocab)))

    def _vec(self, counts: Counter) -> np.ndarray:
        v = np.zeros(len(self.vocab))
        for w, c in counts.items():
            j = self.vocab.get(w)
            if j is not None:
                v[j] = c * self.idf[j]
        norm = np.linalg.norm(v)
        return v / norm if norm > 0 else v

    def _embed(self, sample: Sample) -> np.ndarray:
        return self._vec(Counter(tokenize(sample.question)))


def _unit(v: np.ndarray) -> np.ndarray:
    v = v - v.mean()
    n = np.linalg.norm(v)
    return v / n if n > 0 else v


def image_embedding(img: Any) -> np.ndarray:
    """Thumbnail + colour histogram embedding of an RGB PIL image (see the module docstring), 216 floats."""
    from PIL import Image

    thumb = np.asarray(img.convert("RGB").resize((8, 8), Image.Resampling.BILINEAR), dtype=np.float64) / 255.0
    arr = np.asarray(img.convert("RGB"), dtype=np.int64)
    hist = np.concatenate([np.bincount(arr[..., c].ravel() * 8 // 256, minlength=8) for c in range(3)]).astype(float)
    hist /= max(1.0, hist.sum() / 3)
    return np.concatenate([_unit(thumb.ravel()), _unit(hist)]) / math.sqrt(2)


def point_cloud_embedding(points: np.ndarray) -> np.ndarray:
    """Occupancy-histogram embedding of an ``(N, 3|6)`` point cloud (see the module docstring), 67 floats."""
    xyz = np.asarray(points[:, :3], dtype=np.float64)
    lo, hi = xyz.min(axis=0), xyz.max(axis=0)
    cells = np.clip(((xyz - lo) / np.maximum(hi - lo, 1e-9) * 4).astype(int), 0, 3)
    occ = np.bincount(cells[:, 0] * 16 + cells[:, 1] * 4 + cells[:, 2], minlength=64).astype(float)
    colour = points[:, 3:6].mean(axis=0) if points.shape[1] >= 6 else np.zeros(3)
    return np.concatenate([_unit(occ), np.asarray(colour, dtype=float) / math.sqrt(3)])


def media_embedding(sample: Sample) -> np.ndarray:
    """The embedding of a sample's first media item (image or point cloud), unit length."""
    if not sample.media:
        raise ValueError(f"sample {sample.id!r} has no media; topk_image needs an image or a point cloud")
    ref = sample.media[0]
    # not ref.load(): that would keep every pool image in memory for the whole run; read() applies a
    # corrupted copy's transform (MediaRef.transform) so the embedding is of what the model is shown
    data = ref.read()
    v = image_embedding(data) if ref.modality == "image" else point_cloud_embedding(np.asarray(data))
    n = np.linalg.norm(v)
    return v / n if n > 0 else v


class ImageRetriever(_TopK):
    """Top-k by cosine similarity of image (or point-cloud) embeddings."""

    name = "topk_image"

    def _embed_pool(self) -> np.ndarray:
        embs = [media_embedding(p) for p in self.pool]
        dims = {e.shape for e in embs}
        if len(dims) > 1:
            raise ValueError("ICL pool mixes images and point clouds; topk_image needs one modality")
        return np.stack(embs) if embs else np.zeros((0, 1))

    def _embed(self, sample: Sample) -> np.ndarray:
        return media_embedding(sample)


RETRIEVERS: dict[str, type[Retriever]] = {
    "random": RandomRetriever, "fixed": FixedRetriever, "topk_text": TfidfRetriever, "topk_image": ImageRetriever,
}


def make_retriever(kind: str, pool: Sequence[Sample], k: int, seed: int = 0,
                   fixed_ids: Sequence[str] = ()) -> Retriever:
    """A retriever by name (``random``, ``fixed``, ``topk_text``, ``topk_image``)."""
    if kind not in RETRIEVERS:
        raise ValueError(f"unknown ICL retriever {kind!r}; expected one of {', '.join(RETRIEVERS)}")
    if kind == "fixed":
        return FixedRetriever(pool, k, seed, ids=fixed_ids)
    return RETRIEVERS[kind](pool, k, seed)
