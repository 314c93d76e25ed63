"""Collation: samples → one micro-batch, padded or packed.

Samples arrive from :class:`lamm.train.data.InstructionDataset` already tokenized by THE prompt builder,
placeholders expanded, media preprocessed (in DataLoader workers). Lengths were checked up front, so
nothing is cut here — a sample longer than a row is a bug and raises with its id.

*Padding* (``packing=False``): one row per sample, right padded to the longest; ``attention_mask`` is
``(B, L)`` with 1 on real tokens.

*Packing* (``packing=True``): samples go, first-fit in order, into rows of at most ``row_length``
tokens. Each sample's ``position_ids`` restart at 0 and attention never crosses samples: the mask is a
block-diagonal causal ``(B, 1, L, L)`` boolean (True = may attend), which Hugging Face models take as a
ready 4D mask (SDPA; :func:`model_attention_mask` makes it additive for eager attention). With
flash-attention 2 the 4D mask is dropped and the model finds the sample boundaries from the restarting
``position_ids`` (varlen kernels). The first label of every packed sample is ``-100``, so the last token
of one sample is never trained to predict the first of the next: a packed batch has exactly the loss of
the same samples padded.

Media tensors are concatenated per key in placeholder order (row-major), as ``MultimodalLM.embed``
expects.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from lamm.conversation import IGNORE_INDEX
from lamm.model.varlen_attention import NAME as VARLEN
from lamm.model.varlen_attention import cu_seq_lens


def pack_rows(lengths: list[int], row_length: int) -> list[list[int]]:
    """First-fit packing: indices of ``lengths`` grouped into rows of total length ``<= row_length``,
    in a deterministic order (rows in opening order, samples in input order within a row).

    >>> pack_rows([5, 3, 4, 2], 8)
    [[0, 1], [2, 3]]
    """
    rows: list[list[int]] = []
    room: list[int] = []
    for i, n in enumerate(lengths):
        if n > row_length:
            raise ValueError(f"sample {i} has {n} tokens, more than a packed row ({row_length})")
        for r, free in enumerate(room):
            if n <= free:
                rows[r].append(i)
                room[r] -= n
                break
        else:
            rows.append([i])
            room.append(row_length - n)
    return rows


def block_causal_mask(seq_ids: Tensor) -> Tensor:
    """``seq_ids`` ``(B, L)`` (sample number per position, -1 for padding) → bool ``(B, 1, L, L)``:
    position q may attend to k iff k <= q and both belong to the same sample. Padding attends only to
    itself, so no row is empty (an all-masked row makes SDPA return NaN)."""
    n = seq_ids.shape[1]
    causal = torch.ones(n, n, dtype=torch.bool).tril()
    same = seq_ids[:, :, None] == seq_ids[:, None, :]
    mask = same & causal & (seq_ids[:, :, None] >= 0)
    mask |= torch.eye(n, dtype=torch.bool)
    return mask[:, None]


def model_attention_mask(mask: Tensor | None, attn_implementation: str | None, dtype: torch.dtype) -> Tensor | None:
    """The mask to hand the HF model: 2D masks unchanged; a 4D bool mask stays bool for SDPA, becomes
    additive (0 / dtype min) for eager attention, and is dropped for flash-attention (varlen from
    ``position_ids``) and for ``lamm_varlen`` (which takes ``cu_seq_lens``)."""
    if mask is None or mask.dim() == 2:
        return mask
    if attn_implementation and ("flash" in attn_implementation or attn_implementation == VARLEN):
        return None
    if attn_implementation == "eager":
        out = torch.zeros(mask.shape, dtype=dtype, device=mask.device)
        return out.masked_fill(~mask, torch.finfo(dtype).min)
    return mask


@dataclass
class Collator:
    """Batch samples (dicts with ``input_ids``, ``labels``, ``media``, ``id``) into model inputs.

    Returns ``input_ids``/``labels``/``position_ids`` ``(B, L)`` int64, ``attention_mask`` ``(B, L)`` or
    ``(B, 1, L, L)`` bool, ``media`` ``{key: (M, ...)}``, and counts: ``n_samples``, ``n_tokens`` (real,
    non-padding tokens), ``n_supervised`` (tokens that carry loss: labels after the shift), ``ids``.
    Packed batches also carry ``cu_seq_lens`` (int32, segment boundaries over the flattened rows) and
    ``max_seq_len`` for the ``lamm_varlen`` attention.
    """

    pad_id: int
    packing: bool = False
    row_length: int = 2048

    def __call__(self, samples: list[dict[str, Any]]) -> dict[str, Any]:
        if not samples:
            raise ValueError("empty micro-batch")
        lengths = [len(s["input_ids"]) for s in samples]
        if self.packing:
            for s, n in zip(samples, lengths):
                if n > self.row_length:
                    raise ValueError(f"sample id={s['id']!r} has {n} tokens, more than a packed row "
                                     f"({self.row_length}); lengths are checked when the dataset is built")
            rows = pack_rows(lengths, self.row_length)
        else:
            rows = [[i] for i in range(len(samples))]
        width = max(sum(lengths[i] for i in row) for row in rows)
        b = len(rows)
        ids = torch.full((b, width), self.pad_id, dtype=torch.long)
        labels = torch.full((b, width), IGNORE_INDEX, dtype=torch.long)
        pos = torch.zeros((b, width), dtype=torch.long)
        seq = torch.full((b, width), -1, dtype=torch.long)
        order: list[int] = []
        for r, row in enumerate(rows):
            at = 0
            for k, i in enumerate(row):
                s, n = samples[i], lengths[i]
                ids[r, at:at + n] = s["input_ids"]
                labels[r, at:at + n] = s["labels"]
                labels[r, at] = IGNORE_INDEX  # never predicted from the previous sample's last token
                pos[r, at:at + n] = torch.arange(n)
                seq[r, at:at + n] = k
                at += n
                order.append(i)
            if at < width:  # keep positions increasing over padding (some kernels read them as lengths)
                pos[r, at:] = torch.arange(width - at) + (pos[r, at - 1] + 1 if at else 0)
        extra: dict[str, Any] = {}
        if self.packing:
            attn = block_causal_mask(seq)
            # sample boundaries for a varlen attention kernel (attn_implementation="lamm_varlen")
            extra["cu_seq_lens"], extra["max_seq_len"] = cu_seq_lens(seq)
        else:
            attn = (seq >= 0).long()
        media: dict[str, list[Tensor]] = {}
        for i in order:
            for key, t in samples[i]["media"].items():
                media.setdefault(key, []).append(t)
        return {
            "input_ids": ids, "labels": labels, "attention_mask": attn, "position_ids": pos,
            "media": {k: torch.cat(v) for k, v in media.items()},
            "n_samples": len(samples), "n_tokens": sum(lengths),
            "n_supervised": int((labels[:, 1:] != IGNORE_INDEX).sum()),
            "ids": [samples[i]["id"] for i in order], **extra,
        }


def move_batch(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    """Tensors of ``batch`` (and of its ``media``) moved to ``device``; other values unchanged."""
    out = {}
    for k, v in batch.items():
        if isinstance(v, Tensor):
            out[k] = v.to(device, non_blocking=True)
        elif k == "media":
            out[k] = {m: t.to(device, non_blocking=True) for m, t in v.items()}
        else:
            out[k] = v
    return out
