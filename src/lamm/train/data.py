"""Training data: instruction files → length-checked samples, and a deterministic weighted mixing order.

:class:`InstructionDataset` reads every file of ``data.train`` (validated: problems are reported with
file, record and field), tokenizes each record once up front with THE prompt builder to learn its length
as the LLM sees it (media placeholders expanded), and decides — before training starts — which samples
are too long: dropped (counted, named, and an error above ``max_drop_fraction``) or truncated (text
tail only, never inside a media span). ``dataset[i]`` then builds the sample for real, loading and
preprocessing media; it runs in DataLoader workers.

:class:`MixtureSampler` fixes the order. The *stream* is the concatenation of epochs; epoch ``e`` is
every source repeated ``weight`` times (the fractional part a seeded subset, new each epoch), shuffled
with a generator seeded by ``(seed, e)``. Optimizer step ``s`` takes stream positions
``[s·G, (s+1)·G)`` for global batch ``G``; its ``world × accum`` micro-batches are consecutive slices,
rank ``r`` taking ``r·accum … r·accum + accum − 1``. The order depends on nothing but the seed, the data
and ``G`` — not on the world size or the micro-batch split — and the position to resume from is the
step number.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from lamm.conversation import IGNORE_INDEX, Conversation, tokenize_conversation
from lamm.data.records import read_records, validate_records
from lamm.train.config import DataConfig, DataSource


class DataError(ValueError):
    """Training data cannot be used; the message names the file, record, id and field."""


@dataclass(frozen=True)
class SampleSpec:
    """What turning a record into a training sample needs from the model; picklable for workers.

    ``placeholder`` is the model's :class:`~lamm.model.mllm.PlaceholderSpec` (ids and tokens per item).
    """

    tokenizer: Any
    template: str
    model_config: Any
    placeholder: Any

    @classmethod
    def from_model(cls, model: Any) -> SampleSpec:
        return cls(model.tokenizer, model.config.template, model.config, model.placeholder_spec)


@dataclass
class Dropped:
    """One sample left out of training, and why."""

    file: str
    index: int
    id: str | None
    reason: str

    def __str__(self) -> str:
        return f"{self.file}: record {self.index} id={self.id!r}: {self.reason}"


@dataclass
class _Item:
    source: int
    index: int
    record: dict[str, Any]
    length: int
    keep: int | None = None  # truncate the expanded sequence to this many tokens


def _media_span_end(ids: list[int], placeholder_ids: set[int]) -> int:
    """Index just past the last media placeholder (0 without media): a cut must not fall before it."""
    last = -1
    for i, t in enumerate(ids):
        if t in placeholder_ids:
            last = i
    return last + 1


def encode_record(record: dict[str, Any], spec: SampleSpec, sample_id: str) -> tuple[list[int], list[int], list[Any]]:
    """A record → expanded ``(input_ids, labels, media refs)`` via THE prompt builder (no media loaded)."""
    conv = Conversation.from_record(record)
    tok = tokenize_conversation(conv, spec.tokenizer, spec.template)
    ids, labels = spec.placeholder.expand(tok.input_ids, tok.labels, [m.modality for m in tok.media], sample_id)
    return ids, labels, tok.media


class InstructionDataset(Dataset):
    """Instruction records of several files; ``self[i]`` is a ready sample (see :meth:`__getitem__`).

    Args:
        sources: the files (``file``, ``root``, ``weight``).
        spec: tokenizer, template and placeholder expansion of the model.
        cfg: lengths and the too-long policy.
        seed: base seed of per-sample media randomness (point sampling), with the epoch mixed in.
    """

    def __init__(self, sources: list[DataSource], spec: SampleSpec, cfg: DataConfig, seed: int = 0,
                 max_records: int | None = None) -> None:
        self.sources, self.spec, self.cfg, self.seed = sources, spec, cfg, seed
        self.items: list[_Item] = []
        self.dropped: list[Dropped] = []
        self.n_truncated = 0
        ph_ids = set(spec.placeholder.token_ids.values())
        per_source: list[list[int]] = []
        missing: list[str] = []
        for s_idx, src in enumerate(sources):
            if src.weight == 0:  # not used: not read, not counted in the drop fraction
                per_source.append([])
                continue
            records = read_records(src.file)
            if cfg.check_records:
                report = validate_records(records, file=src.file, root=src.resolved_root, kind="instruction",
                                          check_media=False)
                if not report.ok:
                    errs = [str(p) for p in report.problems if p.severity == "error"]
                    more = f"\n... and {len(errs) - 20} more" if len(errs) > 20 else ""
                    raise DataError(f"{src.file}: {report.n_invalid} invalid record(s); fix them "
                                    "(`lamm data validate`):\n" + "\n".join(errs[:20]) + more)
            if max_records is not None:
                records = records[:max_records]
            mine = []
            for r_idx, rec in enumerate(records):
                rid = str(rec.get("id"))
                try:
                    ids, labels, media = encode_record(rec, spec, rid)
                except ValueError as e:
                    raise DataError(f"{src.file}: record {r_idx} id={rid!r}: {e}") from None
                if cfg.check_media_exists:
                    for m in media:
                        path = Path(src.resolved_root) / m.path if m.path else None
                        if path is not None and not path.exists():
                            missing.append(f"{src.file}: record {r_idx} id={rid!r}: {m.modality} {path}")
                item = _Item(s_idx, r_idx, rec, len(ids))
                why = self._length_problem(ids, labels, ph_ids, item)
                if why is not None:
                    self.dropped.append(Dropped(src.file, r_idx, rid, why))
                    continue
                mine.append(len(self.items))
                self.items.append(item)
            per_source.append(mine)
        if missing:
            more = f"\n... and {len(missing) - 20} more" if len(missing) > 20 else ""
            raise DataError(f"{len(missing)} media file(s) do not exist (checked before training; set "
                            "data.check_media_exists=false to skip the check):\n"
                            + "\n".join(missing[:20]) + more)
        self.per_source = per_source
        self.lengths = np.array([it.keep or it.length for it in self.items], dtype=np.int64)
        n_total = len(self.items) + len(self.dropped)
        if n_total == 0:
            raise DataError(f"no records in {[s.file for s in sources]}")
        if len(self.dropped) / n_total > cfg.max_drop_fraction:
            head = "\n".join(str(d) for d in self.dropped[:20])
            if len(self.dropped) > 20:
                head += f"\n... and {len(self.dropped) - 20} more"
            raise DataError(
                f"{len(self.dropped)} of {n_total} samples do not fit data.max_length={cfg.max_length} "
                f"(tokens incl. media), above data.max_drop_fraction={cfg.max_drop_fraction}:\n{head}\n"
                "raise data.max_length, set data.too_long=truncate, or allow drops with data.max_drop_fraction")
        if not self.items:
            raise DataError("every sample was dropped; nothing to train on")

    def _length_problem(self, ids: list[int], labels: list[int], ph_ids: set[int], item: _Item) -> str | None:
        n, cap = len(ids), self.cfg.max_length
        if n <= cap:
            return None
        if self.cfg.too_long == "truncate":
            if _media_span_end(ids, ph_ids) >= cap:
                return f"{n} tokens > max_length {cap} and the cut would fall inside a media span"
            # labels[t] is predicted from position t-1, so position 0's label never counts.
            if not any(lab != IGNORE_INDEX for lab in labels[1:cap]):
                return f"{n} tokens > max_length {cap} and truncation would leave no supervised token"
            item.keep = cap
            self.n_truncated += 1
            return None
        return f"{n} tokens > max_length {cap} (tokens incl. media)"

    def __len__(self) -> int:
        return len(self.items)

    def describe(self, i: int) -> str:
        it = self.items[i]
        return f"{self.sources[it.source].file}: record {it.index} id={it.record.get('id')!r}"

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any]:
        """Sample ``i`` (or ``(i, epoch)``): ``input_ids``/``labels`` int64 ``(L,)`` (expanded, truncated
        if so decided), ``media`` ``{modality: (M, ...)}`` preprocessed, ``id``, ``length``."""
        from lamm.model.encoders.preprocess import sample_seed
        from lamm.model.mllm import preprocess_media

        i, epoch = key if isinstance(key, tuple) else (key, 0)
        it = self.items[i]
        src = self.sources[it.source]
        rid = str(it.record.get("id"))
        ids, labels, media = encode_record(it.record, self.spec, rid)
        if it.keep is not None:
            ids, labels = ids[: it.keep], labels[: it.keep]
        uid = f"{it.source}:{it.index}:{rid}"
        seeds = [sample_seed(f"{uid}:{k}", self.seed + epoch) for k in range(len(media))]
        try:
            tensors = preprocess_media(self.spec.model_config, media, src.resolved_root, seeds)
        except (OSError, ValueError) as e:
            raise DataError(f"{src.file}: record {it.index} id={rid!r}: media {[m.path for m in media]}: {e}") from None
        return {"input_ids": torch.tensor(ids, dtype=torch.long), "labels": torch.tensor(labels, dtype=torch.long),
                "media": tensors, "id": rid, "length": len(ids)}

    def unused_sources(self) -> list[str]:
        """Notes on training files whose positive weight gives them no sample per epoch (``weight ×
        records`` rounds to 0): they would be left out silently."""
        notes = []
        for src, ix in zip(self.sources, self.per_source):
            if src.weight > 0 and math.floor(src.weight) * len(ix) + round((src.weight % 1) * len(ix)) == 0:
                notes.append(f"{src.file}: weight {src.weight} × {len(ix)} kept records rounds to no sample "
                             "per epoch; raise its weight")
        return notes

    def fingerprint(self) -> str:
        """A hash of the kept samples (file, index, id, length): resume refuses data that changed."""
        h = hashlib.sha256()
        for it, n in zip(self.items, self.lengths.tolist()):
            h.update(json.dumps([self.sources[it.source].file, it.index, str(it.record.get("id")), n]).encode())
        return h.hexdigest()


@dataclass
class MixtureSampler(Sampler):
    """Yields this rank's micro-batches — lists of ``(dataset index, epoch)`` — from ``start_step`` to
    ``total_steps`` (see the module docstring for the order).

    ``per_source``: dataset indices of each source; ``weights``: their weights.
    """

    per_source: list[list[int]]
    weights: list[float]
    seed: int
    micro_batch_size: int
    grad_accum: int
    world_size: int = 1
    rank: int = 0
    start_step: int = 0
    total_steps: int = 0
    _cache: dict[int, np.ndarray] = field(default_factory=dict, repr=False)

    @property
    def global_batch(self) -> int:
        return self.micro_batch_size * self.grad_accum * self.world_size

    @property
    def epoch_length(self) -> int:
        """Samples per epoch: ``Σ round(weight × n_source)``."""
        return sum(math.floor(w) * len(ix) + round((w % 1) * len(ix))
                   for w, ix in zip(self.weights, self.per_source))

    def epoch_order(self, epoch: int) -> np.ndarray:
        """Dataset indices of ``epoch`` in order (cached: the last few epochs only)."""
        if epoch not in self._cache:
            rng = np.random.default_rng([self.seed, epoch])
            parts = []
            for w, ix in zip(self.weights, self.per_source):
                ix_arr = np.asarray(ix, dtype=np.int64)
                whole, frac = math.floor(w), w % 1
                parts.extend([ix_arr] * whole)
                k = round(frac * len(ix_arr))
                if k:
                    parts.append(np.sort(rng.choice(ix_arr, size=k, replace=False)))
            order = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
            order = order[rng.permutation(len(order))]
            if len(self._cache) > 4:
                self._cache.pop(min(self._cache))
            self._cache[epoch] = order
        return self._cache[epoch]

    def positions(self, start: int, stop: int) -> list[tuple[int, int]]:
        """Stream positions ``[start, stop)`` as ``(dataset index, epoch)``."""
        n = self.epoch_length
        if n == 0:
            raise DataError("the data mixture is empty (every weight rounds to zero samples)")
        out = []
        for p in range(start, stop):
            e, k = divmod(p, n)
            out.append((int(self.epoch_order(e)[k]), e))
        return out

    def step_batches(self, step: int) -> list[list[tuple[int, int]]]:
        """This rank's ``grad_accum`` micro-batches of optimizer step ``step`` (0-based)."""
        g, m = self.global_batch, self.micro_batch_size
        pos = self.positions(step * g, (step + 1) * g)
        first = self.rank * self.grad_accum
        return [pos[(first + a) * m:(first + a + 1) * m] for a in range(self.grad_accum)]

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        for step in range(self.start_step, self.total_steps):
            yield from self.step_batches(step)

    def __len__(self) -> int:
        return (self.total_steps - self.start_step) * self.grad_accum

    def steps_for_epochs(self, epochs: float) -> int:
        """Optimizer steps that cover ``epochs`` epochs (the last step may reach into the next epoch)."""
        return max(1, math.ceil(epochs * self.epoch_length / self.global_batch))
