"""``attn_implementation="lamm_decode"``: one-token decode steps read only the cache slots they attend to.

Why: in a batched static-cache decode (:mod:`lamm.model.static_decode`) every row's cache has the
bucket's length ``M`` (e.g. 1,024 slots) while a row attends to ~its prompt plus the tokens made so
far. SDPA with the step's additive mask runs the memory-efficient kernel over all ``M`` slots, whose
one-query tiles also use the GPU poorly; at batch 16 on a 7B model the cache reads cost about as much
as the weights. This is a split-K ("flash-decoding") Triton kernel: each program takes one
(row, head) and one slice of the cache, reads the slice's mask entries, skips the blocks that are
masked out entirely (never loading their keys or values), and keeps an online softmax; a few small
tensor ops then merge the slices. Its shapes depend only on the cache's, so it replays in a CUDA graph;
what is visible is read from the mask on the device at every step.

Everything that is not a one-token step with a plain additive mask on CUDA (prefill, training, CPU,
soft-capping, sliding windows, dropout) goes to transformers' SDPA function unchanged, so the name can
stay set for the model's whole life. Masked-out slots are those whose additive bias is below
``-1e30`` (transformers and our decoder write the dtype's minimum); a row must see at least one slot
(the current token's own slot always is).
"""

from __future__ import annotations

import os
from functools import cache
from typing import Any

import torch

try:  # Triton comes with PyTorch's CUDA builds; the CPU install has none (then SDPA does all)
    import triton
    import triton.language as tl
except ImportError:  # pragma: no cover - depends on the install
    triton = tl = None

NAME = "lamm_decode"
BLOCK_N = 64            # cache slots per block: the unit that is skipped or loaded
PROGRAMS_PER_SM = 4     # split the cache until rows × heads × splits fills the GPU this many times over
_MASKED = -1e30


def kernel_available() -> bool:
    """Whether Triton is importable (CUDA runs can use the kernel)."""
    return triton is not None


def _partial_attention(Q, K, V, Bias, Acc, Max, Sum,
                       stride_qb, stride_qh, stride_kb, stride_kh, stride_kn, stride_vb, stride_vh, stride_vn,
                       stride_bb, stride_bn, n_keys, scale, groups,
                       H: tl.constexpr, D: tl.constexpr, BLOCK: tl.constexpr, BLOCKS_PER_SPLIT: tl.constexpr,
                       SPLITS: tl.constexpr, HAS_BIAS: tl.constexpr):
    """One (row, query head, split): online softmax over the split's visible blocks → Acc, Max, Sum."""
    bh = tl.program_id(0)
    split = tl.program_id(1)
    b = bh // H
    h = bh % H
    hk = h // groups
    offs_d = tl.arange(0, D)
    q = tl.load(Q + b * stride_qb + h * stride_qh + offs_d).to(tl.float32) * scale
    m_i = tl.max(tl.full([BLOCK], float("-inf"), tl.float32), 0)
    l_i = tl.sum(tl.zeros([BLOCK], tl.float32), 0)
    acc = tl.zeros([D], tl.float32)
    for j in range(BLOCKS_PER_SPLIT):
        offs_n = (split * BLOCKS_PER_SPLIT + j) * BLOCK + tl.arange(0, BLOCK)
        inside = offs_n < n_keys
        if HAS_BIAS:
            bias = tl.load(Bias + b * stride_bb + offs_n * stride_bn, mask=inside, other=float("-inf")).to(tl.float32)
        else:
            bias = tl.where(inside, 0.0, float("-inf"))
        if tl.max(bias, 0) > -1e30:  # a block with nothing visible is never loaded
            k = tl.load(K + b * stride_kb + hk * stride_kh + offs_n[:, None] * stride_kn + offs_d[None, :],
                        mask=inside[:, None], other=0.0).to(tl.float32)
            s = tl.sum(k * q[None, :], 1) + bias
            m_new = tl.maximum(m_i, tl.max(s, 0))
            alpha = tl.exp(m_i - m_new)
            p = tl.exp(s - m_new)
            v = tl.load(V + b * stride_vb + hk * stride_vh + offs_n[:, None] * stride_vn + offs_d[None, :],
                        mask=inside[:, None], other=0.0).to(tl.float32)
            acc = acc * alpha + tl.sum(p[:, None] * v, 0)
            l_i = l_i * alpha + tl.sum(p, 0)
            m_i = m_new
    out = bh * SPLITS + split
    tl.store(Acc + out * D + offs_d, acc)
    tl.store(Max + out, m_i)
    tl.store(Sum + out, l_i)


def _interpreting() -> bool:
    """Whether Triton runs kernels in its interpreter (``TRITON_INTERPRET=1``: on CPU tensors, for tests)."""
    return os.environ.get("TRITON_INTERPRET", "0").strip().lower() in ("1", "true", "yes", "on")


@cache
def _kernel(interpret: bool) -> Any:
    """The jitted kernel; ``interpret`` (TRITON_INTERPRET=1, for CPU tests) gets Triton's interpreter."""
    return triton.jit(_partial_attention)


def _splits(rows: int, n_blocks: int, device: torch.device) -> tuple[int, int]:
    """``(splits, blocks per split)`` so that ``rows × splits`` programs fill the device."""
    sms = torch.cuda.get_device_properties(device).multi_processor_count if device.type == "cuda" else 2
    want = min(n_blocks, max(1, -(-PROGRAMS_PER_SM * sms // rows)))
    per = -(-n_blocks // want)
    return -(-n_blocks // per), per


def decode_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, bias: torch.Tensor | None,
                     scale: float) -> torch.Tensor:
    """Attention of one query per row over a cache, skipping fully masked blocks.

    ``query`` ``(B, Hq, 1, D)``; ``key``/``value`` ``(B, Hkv, M, D)`` with ``Hq`` a multiple of ``Hkv`` and
    the last dimension contiguous; ``bias`` None or additive ``(B or 1, 1, 1, M)`` (values below -1e30
    mean masked); ``scale`` multiplies ``q·k``. Returns ``(B, 1, Hq, D)`` in ``query``'s dtype (the
    layout transformers' attention functions return). D must be a power of two."""
    b, hq, _, d = query.shape
    hkv, m = key.shape[1], key.shape[2]
    n_blocks = -(-m // BLOCK_N)
    splits, per = _splits(b * hq, n_blocks, query.device)
    acc = torch.empty(b * hq, splits, d, dtype=torch.float32, device=query.device)
    mx = torch.empty(b * hq, splits, dtype=torch.float32, device=query.device)
    sm = torch.empty_like(mx)
    has_bias = bias is not None
    if has_bias:
        bias = bias.expand(b, 1, 1, m)
    bias_t = bias if has_bias else mx  # any tensor: never read without HAS_BIAS
    kern = _kernel(_interpreting())
    kern[(b * hq, splits)](
        query, key, value, bias_t, acc, mx, sm,
        query.stride(0), query.stride(1), key.stride(0), key.stride(1), key.stride(2),
        value.stride(0), value.stride(1), value.stride(2),
        bias.stride(0) if has_bias else 0, bias.stride(3) if has_bias else 0, m, float(scale), hq // hkv,
        H=hq, D=d, BLOCK=BLOCK_N, BLOCKS_PER_SPLIT=per, SPLITS=splits, HAS_BIAS=has_bias,
    )
    top = mx.amax(1, keepdim=True)
    w = torch.exp(mx - top)  # a split that saw nothing has max -inf and weighs 0
    out = (acc * w[..., None]).sum(1) / (sm * w).sum(1, keepdim=True)
    return out.to(query.dtype).view(b, 1, hq, d)


def _decode_op(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, bias: torch.Tensor | None,
               scale: float) -> torch.Tensor:
    return decode_attention(query, key, value, bias, scale)


_OP: Any = None


def _op() -> Any:
    """``decode_attention`` as a custom op: opaque to torch.compile (the decoder's ``compile_step``)."""
    global _OP
    if _OP is None:
        op = torch.library.custom_op("lamm::decode_attention", _decode_op, mutates_args=())

        @op.register_fake
        def _(query, key, value, bias, scale):
            b, hq, _, d = query.shape
            return query.new_empty(b, 1, hq, d)

        _OP = op
    return _OP


def applies(query: torch.Tensor, key: torch.Tensor, attention_mask: torch.Tensor | None, dropout: float,
            kwargs: dict[str, Any]) -> bool:
    """Whether the kernel takes this call (else SDPA does)."""
    if triton is None or query.shape[2] != 1 or dropout:
        return False
    if not (query.is_cuda or _interpreting()):  # the interpreter (CPU tests) runs on CPU tensors
        return False
    d = query.shape[-1]
    if d & (d - 1) or d > 256 or key.stride(-1) != 1 or query.stride(-1) != 1:
        return False
    if kwargs.get("softcap") is not None or kwargs.get("sliding_window") is not None:
        return False
    if attention_mask is None:
        return True
    return (attention_mask.is_floating_point() and attention_mask.dim() == 4 and attention_mask.shape[1:3] == (1, 1)
            and attention_mask.shape[-1] == key.shape[2] and attention_mask.shape[0] in (1, query.shape[0]))


def decode_attention_forward(module: torch.nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                             attention_mask: torch.Tensor | None, dropout: float = 0.0, scaling: float | None = None,
                             **kwargs: Any) -> tuple[torch.Tensor, None]:
    """A transformers attention function: the kernel for one-token steps (see :func:`applies`), SDPA otherwise."""
    if applies(query, key, attention_mask, dropout, kwargs):
        scale = scaling if scaling is not None else query.shape[-1] ** -0.5
        return _op()(query, key, value, attention_mask, float(scale)), None  # built by register()
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs)


def register() -> None:
    """Make ``attn_implementation="lamm_decode"`` known to transformers (idempotent)."""
    from transformers import AttentionInterface

    if triton is not None:
        _op()  # defined here, outside any torch.compile trace of the forward
    AttentionInterface.register(NAME, decode_attention_forward)
