"""The ``lamm_decode`` attention kernel: equal to SDPA, skips masked blocks, decodes as the SDPA path does.

Without a GPU the Triton kernel runs in Triton's interpreter (``TRITON_INTERPRET=1``), which executes
the same kernel source on CPU tensors; with one, the same tests run it compiled on CUDA tensors.
"""

from __future__ import annotations

import os

import pytest
import torch
from torch.nn import functional as F

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
if DEVICE == "cpu":
    # must be set before Triton is first imported: its standard library (tl.max, ...) is jitted at import
    os.environ.setdefault("TRITON_INTERPRET", "1")

from lamm.model import decode_attention as da
from lamm.model.config import model_preset
from lamm.model.llm import decode_loop
from lamm.model.lora import unwrap_base
from lamm.model.mllm import MultimodalLM
from lamm.model.static_decode import StaticDecoder, use_decode_kernel

pytest.importorskip("triton", reason="the decode kernel is written in Triton (installed by the dev extra)")
torch.set_num_threads(1)


def test_triton_runs_here():
    """On the CPU every kernel test below needs the interpreter; fail loudly if Triton was imported first."""
    if DEVICE == "cpu":
        import triton.language as tl
        from triton.runtime.interpreter import InterpretedFunction

        assert isinstance(tl.max, InterpretedFunction), "Triton was imported before TRITON_INTERPRET=1 was set"


def _reference(q, k, v, bias, scale):
    """SDPA in float32 with the key/value heads repeated for grouped queries → ``(B, 1, Hq, D)``."""
    g = q.shape[1] // k.shape[1]
    k, v = k.repeat_interleave(g, 1), v.repeat_interleave(g, 1)
    b = None if bias is None else bias.float()
    return F.scaled_dot_product_attention(q.float(), k.float(), v.float(), attn_mask=b, scale=scale).transpose(1, 2)


def _bias(b: int, m: int, visible: list[tuple[int, int]], dtype=torch.float32) -> torch.Tensor:
    bias = torch.full((b, 1, 1, m), torch.finfo(dtype).min, dtype=dtype)
    for i, (lo, hi) in enumerate(visible):
        bias[i, 0, 0, lo:hi] = 0
    return bias


@pytest.mark.parametrize(("hq", "hkv", "d"), [(4, 4, 32), (8, 2, 64), (2, 1, 16)])
def test_kernel_equals_sdpa(hq, hkv, d):
    g = torch.Generator().manual_seed(hq * 100 + d)
    m = 200  # not a multiple of the block: the last block is partly outside the cache
    q, k, v = (torch.randn(s, generator=g).to(DEVICE) for s in ((3, hq, 1, d), (3, hkv, m, d), (3, hkv, m, d)))
    # left padding, an unfilled tail, a row that sees only slots in its last (partial) block
    bias = _bias(3, m, [(5, 150), (0, 64), (190, 200)]).to(DEVICE)
    got = da.decode_attention(q, k, v, bias, d ** -0.5)
    assert got.shape == (3, 1, hq, d)
    torch.testing.assert_close(got, _reference(q, k, v, bias, d ** -0.5), atol=1e-5, rtol=1e-5)
    # no mask: every slot is visible
    torch.testing.assert_close(da.decode_attention(q, k, v, None, 0.3), _reference(q, k, v, None, 0.3),
                               atol=1e-5, rtol=1e-5)


def test_bf16_and_broadcast_mask():
    g = torch.Generator().manual_seed(3)
    q, k, v = (torch.randn(s, generator=g).to(DEVICE, torch.bfloat16)
               for s in ((2, 4, 1, 32), (2, 4, 96, 32), (2, 4, 96, 32)))
    bias = _bias(1, 96, [(10, 80)], torch.bfloat16).to(DEVICE)  # one mask row shared by the batch
    got = da.decode_attention(q, k, v, bias, 32 ** -0.5)
    assert got.dtype == torch.bfloat16
    want = _reference(q, k, v, bias.expand(2, 1, 1, 96), 32 ** -0.5)
    torch.testing.assert_close(got.float(), want, atol=2e-2, rtol=2e-2)


def test_masked_blocks_are_never_read():
    """Keys and values of fully masked blocks may be NaN: a kernel that loads them would return NaN."""
    g = torch.Generator().manual_seed(5)
    m = 4 * da.BLOCK_N
    q, k, v = (torch.randn(s, generator=g) for s in ((2, 2, 1, 16), (2, 2, m, 16), (2, 2, m, 16)))
    visible = [(da.BLOCK_N, 2 * da.BLOCK_N - 3), (3 * da.BLOCK_N, m)]
    bias = _bias(2, m, visible)
    poisoned_k, poisoned_v = k.clone(), v.clone()
    for i, (lo, hi) in enumerate(visible):
        first, last = lo // da.BLOCK_N * da.BLOCK_N, -(-hi // da.BLOCK_N) * da.BLOCK_N
        for t in (poisoned_k, poisoned_v):
            t[i, :, :first] = float("nan")
            t[i, :, last:] = float("nan")
    q, k, v, poisoned_k, poisoned_v, bias = (t.to(DEVICE) for t in (q, k, v, poisoned_k, poisoned_v, bias))
    got = da.decode_attention(q, poisoned_k, poisoned_v, bias, 0.25)
    assert not got.isnan().any()
    torch.testing.assert_close(got, _reference(q, k, v, bias, 0.25), atol=1e-5, rtol=1e-5)


def test_dispatch_takes_one_token_steps_only(monkeypatch):
    q1, qn = torch.zeros(1, 2, 1, 16, device=DEVICE), torch.zeros(1, 2, 5, 16, device=DEVICE)
    k = torch.zeros(1, 2, 8, 16, device=DEVICE)
    mask = torch.zeros(1, 1, 1, 8, device=DEVICE)
    assert da.applies(q1, k, mask, 0.0, {})
    assert da.applies(q1, k, None, 0.0, {})
    assert not da.applies(qn, k, torch.zeros(1, 1, 5, 8), 0.0, {})  # prefill: SDPA
    assert not da.applies(q1, k, mask, 0.1, {})                      # dropout
    assert not da.applies(q1, k, mask.bool(), 0.0, {})               # boolean masks: SDPA
    assert not da.applies(q1, k, mask, 0.0, {"softcap": 30.0})
    assert not da.applies(q1.new_zeros(1, 2, 1, 24), k.new_zeros(1, 2, 8, 24), mask, 0.0, {})  # D not 2^k
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    assert not da.applies(q1.cpu(), k.cpu(), mask.cpu(), 0.0, {})  # CPU tensors without the interpreter: SDPA


def _tiny() -> MultimodalLM:
    torch.manual_seed(0)
    return MultimodalLM.from_config(model_preset("tiny")).eval()


def _prompts(model: MultimodalLM, lens=(5, 9, 3, 12)):
    width = max(lens)
    dim = model.llm.get_input_embeddings().weight.shape[1]
    embeds = torch.randn(len(lens), width, dim, generator=torch.Generator().manual_seed(1))
    mask = torch.zeros(len(lens), width, dtype=torch.long)
    for i, n in enumerate(lens):
        mask[i, width - n:] = 1
    return embeds, mask


SETTINGS = {"max_new_tokens": 40, "do_sample": False, "temperature": 1.0, "top_p": 1.0, "stops": ["###"], "seed": None}


def test_static_decode_with_kernel_equals_dynamic_loop():
    model = _tiny().to(DEVICE)
    embeds, mask = (t.to(DEVICE) for t in _prompts(model))
    with torch.no_grad():
        want = decode_loop(model.llm, model.tokenizer, embeds, mask, **SETTINGS)
    calls = []
    real = da.decode_attention

    def counting(*a, **kw):
        calls.append(1)
        return real(*a, **kw)

    da.decode_attention = counting
    try:
        dec = StaticDecoder(model.llm, bucket=64, sync_every=4, decode_kernel=True)  # graphs on CUDA
        got = dec.decode(model.tokenizer, embeds, mask, **SETTINGS)
    finally:
        da.decode_attention = real
    assert unwrap_base(model.llm).config._attn_implementation == da.NAME
    assert got == want
    assert all(len(t) > 10 for t in got)
    n_layers = unwrap_base(model.llm).config.num_hidden_layers
    assert len(calls) >= n_layers * 10  # the one-token steps went through the kernel


def test_decode_kernel_needs_sdpa():
    model = _tiny()
    unwrap_base(model.llm).set_attn_implementation("eager")
    with pytest.raises(ValueError, match="SDPA"):
        use_decode_kernel(model.llm)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_gpu_kernel_in_cuda_graphs_equals_sdpa():
    g = torch.Generator(device="cuda").manual_seed(0)
    m = 1024
    q, k, v = (torch.randn(s, generator=g, device="cuda", dtype=torch.bfloat16)
               for s in ((16, 32, 1, 128), (16, 32, m, 128), (16, 32, m, 128)))
    bias = _bias(16, m, [(i * 7, 600 + 10 * i) for i in range(16)], torch.bfloat16).cuda()
    got = da.decode_attention(q, k, v, bias, 128 ** -0.5)
    torch.testing.assert_close(got.float(), _reference(q, k, v, bias, 128 ** -0.5), atol=2e-2, rtol=2e-2)
    model = _tiny().cuda()
    embeds, mask = (t.cuda() for t in _prompts(model))
    want = StaticDecoder(model.llm, bucket=64, sync_every=4).decode(model.tokenizer, embeds, mask, **SETTINGS)
    dec = StaticDecoder(model.llm, bucket=64, sync_every=4, decode_kernel=True)
    assert dec.decode(model.tokenizer, embeds, mask, **SETTINGS) == want
    assert dec.graphs_captured == 1
