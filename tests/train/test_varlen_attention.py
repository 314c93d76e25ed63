"""``lamm_varlen`` attention: packed samples by their boundaries, the same maths as the block mask."""

from __future__ import annotations

import pytest
import torch
from _train_helpers import SMALL_MODEL

from lamm.model.varlen_attention import (
    NAME,
    cu_seq_lens,
    register,
    segment_attention,
    varlen_attention_forward,
)
from lamm.train.collate import Collator, block_causal_mask, model_attention_mask
from lamm.train.config import DataConfig
from lamm.train.data import InstructionDataset, SampleSpec
from lamm.train.loop import forward_batch


def test_cu_seq_lens_counts_samples_and_padding_tails():
    seq = torch.tensor([[0, 0, 1, 1, 1, -1], [0, 0, 0, 0, 0, 0], [0, 1, 2, -1, -1, -1]])
    cu, longest = cu_seq_lens(seq)
    assert cu.dtype == torch.int32
    assert cu.tolist() == [0, 2, 5, 6, 12, 13, 14, 15, 18] and longest == 6


@pytest.mark.parametrize("kv_heads", [4, 2])
def test_segments_equal_sdpa_with_the_block_mask(kv_heads):
    g = torch.Generator().manual_seed(0)
    seq = torch.tensor([[0, 0, 0, 1, 1, 2, 2, 2, 2, -1], [0, 0, 0, 0, 1, 1, 1, 1, 1, 1]])
    b, length, d = seq.shape[0], seq.shape[1], 8
    q = torch.randn(b, 4, length, d, generator=g)
    k, v = (torch.randn(b, kv_heads, length, d, generator=g) for _ in range(2))
    cu, longest = cu_seq_lens(seq)
    got, _ = varlen_attention_forward(None, q, k, v, None, scaling=0.3, cu_seq_lens_q=cu, max_length_q=longest)
    rep = 4 // kv_heads
    want = torch.nn.functional.scaled_dot_product_attention(
        q, k.repeat_interleave(rep, 1), v.repeat_interleave(rep, 1), attn_mask=block_causal_mask(seq), scale=0.3)
    torch.testing.assert_close(got, want.transpose(1, 2), atol=1e-6, rtol=1e-5)
    flat = [t.transpose(1, 2).reshape(b * length, t.shape[1], d) for t in (q, k, v)]
    torch.testing.assert_close(segment_attention(*flat, cu, 0.3).reshape(b, length, 4, d), got)


def test_errors_name_what_is_missing():
    q = torch.zeros(1, 2, 3, 4)
    with pytest.raises(ValueError, match="needs cu_seq_lens_q"):
        varlen_attention_forward(None, q, q, q, None)
    cu = torch.tensor([0, 3], dtype=torch.int32)
    with pytest.raises(ValueError, match="not an attention mask"):
        varlen_attention_forward(None, q, q, q, torch.ones(1, 1, 3, 3), cu_seq_lens_q=cu, max_length_q=3)
    assert model_attention_mask(torch.ones(1, 1, 3, 3, dtype=torch.bool), NAME, torch.float32) is None


def test_training_loss_and_gradients_equal_the_block_mask(train_data):
    from lamm.model.config import model_preset
    from lamm.model.lora import unwrap_base
    from lamm.model.mllm import MultimodalLM

    model = MultimodalLM.from_config(model_preset("tiny", [f"{k}={v}" for k, v in SMALL_MODEL.items()])).train()
    cfg = DataConfig(train=[{"file": str(train_data)}])
    ds = InstructionDataset(cfg.train, SampleSpec.from_model(model), cfg)
    batch = Collator(model.tokenizer.pad_token_id, packing=True, row_length=300)([ds[i] for i in range(6)])
    assert batch["input_ids"].shape[0] > 1  # several rows, so padding tails are segments too
    register()
    results = {}
    for impl in ("sdpa", NAME):
        unwrap_base(model.llm).set_attn_implementation(impl)
        model.zero_grad(set_to_none=True)
        torch.manual_seed(0)
        out = forward_batch(model, model, batch)
        out.loss.backward()
        results[impl] = (out.loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    unwrap_base(model.llm).set_attn_implementation("sdpa")
    (l_a, g_a), (l_b, g_b) = results["sdpa"], results[NAME]
    torch.testing.assert_close(l_b, l_a, rtol=1e-5, atol=1e-5)
    assert g_a.keys() == g_b.keys()
    for name in g_a:
        torch.testing.assert_close(g_b[name], g_a[name], rtol=1e-4, atol=1e-6, msg=name)
    unpacked = Collator(model.tokenizer.pad_token_id)([ds[0]])
    unwrap_base(model.llm).set_attn_implementation(NAME)
    with pytest.raises(ValueError, match="needs packed batches"):
        forward_batch(model, model, unpacked)
    unwrap_base(model.llm).set_attn_implementation("sdpa")


def test_training_with_evaluation_packs_the_eval_batches_too(train_data, tmp_path):
    """The eval pass uses the training collator: with ``lamm_varlen`` (packed rows only) it runs, and its
    loss equals the block-mask run's; a short last eval batch repeats samples that supervise nothing."""
    from _train_helpers import small_train_config

    from lamm.train import train

    eval_loss = {}
    for impl in ("sdpa", NAME):
        cfg = small_train_config(train_data, steps=2, attn_implementation=impl, data__packing=True,
                                 data__eval=[{"file": str(train_data)}],
                                 eval={"every": 2, "max_samples": 5, "micro_batch_size": 2})
        [ev] = [r for r in train(cfg, tmp_path / impl, progress=False).eval if "eval_loss" in r]
        eval_loss[impl] = ev["eval_loss"]
    assert eval_loss[NAME] == pytest.approx(eval_loss["sdpa"], rel=1e-5)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_kernel_matches_the_block_mask_forward_and_backward():
    from lamm.model.varlen_attention import kernel_available

    assert kernel_available(), "torch.nn.attention.varlen.varlen_attn is missing in this PyTorch"
    g = torch.Generator(device="cuda").manual_seed(0)
    seq = torch.tensor([[0] * 100 + [1] * 37 + [2] * 91 + [-1] * 28, [0] * 200 + [1] * 56]).cuda()
    b, length, d = seq.shape[0], seq.shape[1], 64
    q, k, v = (torch.randn(b, 4, length, d, generator=g, device="cuda", dtype=torch.bfloat16).requires_grad_()
               for _ in range(3))
    cu, longest = cu_seq_lens(seq.cpu())
    got, _ = varlen_attention_forward(None, q, k, v, None, scaling=d ** -0.5, cu_seq_lens_q=cu.cuda(),
                                      max_length_q=longest)
    want = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=block_causal_mask(seq.cpu()).cuda(),
                                                            scale=d ** -0.5).transpose(1, 2)
    # padding differs by design: a padding tail is one causal segment here, self-only in the block mask
    real = (seq >= 0)[:, :, None, None]
    torch.testing.assert_close((got * real).float(), (want * real).float(), atol=2e-2, rtol=2e-2)
    grads = [torch.autograd.grad((out * real).float().square().sum(), (q, k, v)) for out in (got, want)]
    for a, c in zip(*grads):
        torch.testing.assert_close(a.float(), c.float(), atol=5e-2, rtol=5e-2)
