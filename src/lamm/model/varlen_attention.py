"""``attn_implementation="lamm_varlen"``: causal attention over packed samples, one kernel, no mask.

Packed training rows hold several samples that must not attend to each other. With SDPA that takes a
block-diagonal ``(B, 1, L, L)`` mask, and the kernel still computes every row's full ``L × L`` attention
(and cannot use flash attention), so long rows cost more than they save. A variable-length kernel takes
the samples' boundaries instead (``cu_seq_lens``: cumulative lengths over the flattened batch) and
computes only each sample's own causal triangle.

On CUDA this calls PyTorch's flash-attention varlen (``torch.nn.attention.varlen.varlen_attn``, PyTorch
2.10+; no extra package). Elsewhere — the CPU, or a PyTorch without it — each segment runs through SDPA
with ``is_causal=True``: the same maths, slower, so the path is testable on any machine.

The trainer's collate (``lamm.train.collate.Collator``) provides ``cu_seq_lens`` / ``max_seq_len``;
``forward_batch`` hands them to the model as the keyword arguments ``cu_seq_lens_q`` / ``max_length_q``
that transformers passes down to every attention call.
"""

from __future__ import annotations

import inspect
from itertools import pairwise
from typing import Any

import torch
from torch.nn import functional as F

NAME = "lamm_varlen"


def _cuda_kernel() -> Any:
    try:
        from torch.nn.attention.varlen import varlen_attn
    except ImportError:  # PyTorch < 2.10: the SDPA loop below does the same maths
        return None
    return varlen_attn


def _kernel_kwargs(fn: Any, scaling: float | None, head_dim: int) -> tuple[dict[str, Any], float]:
    """Keyword arguments of ``varlen_attn`` across PyTorch versions, and a factor for the queries.

    Causality is ``is_causal=True`` in older versions and ``window_size=(-1, 0)`` in newer ones; a
    version without ``scale`` gets the scale folded into the queries (it applies ``1/sqrt(head_dim)``)."""
    params = inspect.signature(fn).parameters
    kw: dict[str, Any] = {"is_causal": True} if "is_causal" in params else {"window_size": (-1, 0)}
    if scaling is None or "scale" in params:
        if scaling is not None:
            kw["scale"] = scaling
        return kw, 1.0
    return kw, scaling * head_dim ** 0.5


def segment_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, cu: torch.Tensor,
                      scale: float | None) -> torch.Tensor:
    """Reference: causal attention within each segment ``cu[i]:cu[i+1]`` of ``(T, H, D)`` tensors via SDPA."""
    out = torch.empty_like(q)
    bounds = cu.tolist()
    groups = q.shape[1] // k.shape[1]
    for a, b in pairwise(bounds):
        if b <= a:
            continue
        qs, ks, vs = (t[a:b].transpose(0, 1) for t in (q, k, v))  # (H, n, D)
        if groups > 1:
            ks, vs = ks.repeat_interleave(groups, 0), vs.repeat_interleave(groups, 0)
        out[a:b] = F.scaled_dot_product_attention(qs, ks, vs, is_causal=True, scale=scale).transpose(0, 1)
    return out


def kernel_available() -> bool:
    """Whether CUDA runs will use PyTorch's flash varlen kernel (else the SDPA loop)."""
    return _cuda_kernel() is not None


def varlen_attention_forward(module: torch.nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                             attention_mask: torch.Tensor | None, dropout: float = 0.0, scaling: float | None = None,
                             **kwargs: Any) -> tuple[torch.Tensor, None]:
    """A transformers attention function. ``query`` ``(B, Hq, L, D)``, ``key``/``value`` ``(B, Hkv, L, D)``
    → ``(B, L, Hq, D)``. Needs ``cu_seq_lens_q`` (int32 ``(N+1,)`` over the flattened ``B × L``
    positions) and ``max_length_q`` in ``kwargs``; a 4D mask or dropout is an error (not silently ignored)."""
    cu, max_len = kwargs.get("cu_seq_lens_q"), kwargs.get("max_length_q")
    if cu is None or max_len is None:
        raise ValueError(f"attn_implementation={NAME!r} needs cu_seq_lens_q and max_length_q (packed batches from "
                         "lamm.train.collate.Collator); use sdpa for unpacked inputs")
    if attention_mask is not None:
        raise ValueError(f"attn_implementation={NAME!r} takes the sample boundaries, not an attention mask")
    if dropout:
        raise ValueError(f"attn_implementation={NAME!r} does not implement attention dropout")
    b, hq, length, d = query.shape
    q, k, v = (t.transpose(1, 2).reshape(b * length, t.shape[1], d) for t in (query, key, value))
    # the flash kernel takes half precision only; float32 (e.g. a CPU-style run on a GPU) takes the loop
    kernel = _cuda_kernel() if query.is_cuda and query.dtype in (torch.bfloat16, torch.float16) else None
    if kernel is not None:
        if k.shape[1] != hq:  # grouped-query attention: the kernel takes equal head counts
            k, v = k.repeat_interleave(hq // k.shape[1], 1), v.repeat_interleave(hq // v.shape[1], 1)
        kw, q_factor = _kernel_kwargs(kernel, scaling, d)
        out = kernel(q * q_factor if q_factor != 1.0 else q, k, v, cu, cu, int(max_len), int(max_len), **kw)
    else:
        out = segment_attention(q, k, v, cu, scaling)
    return out.reshape(b, length, hq, d), None


def register() -> None:
    """Make ``attn_implementation="lamm_varlen"`` known to transformers (idempotent)."""
    from transformers import AttentionInterface

    AttentionInterface.register(NAME, varlen_attention_forward)


def cu_seq_lens(seq_ids: torch.Tensor) -> tuple[torch.Tensor, int]:
    """``seq_ids`` ``(B, L)`` (sample number within its row, -1 for padding) → cumulative segment lengths
    over the flattened row-major positions (int32 ``(N+1,)``) and the longest segment. Each sample is a
    segment; each row's padding tail is one more (it attends only to itself and carries no loss)."""
    b, length = seq_ids.shape
    flat = seq_ids.reshape(-1)
    starts = torch.ones_like(flat, dtype=torch.bool)  # a segment starts where the id changes or a row begins
    starts[1:] = flat[1:] != flat[:-1]
    starts[::length] = True
    bounds = torch.cat([starts.nonzero().squeeze(1), torch.tensor([b * length])])
    return bounds.to(torch.int32), int((bounds[1:] - bounds[:-1]).max())
