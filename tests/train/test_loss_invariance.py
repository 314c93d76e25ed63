"""The step loss is the mean over ALL supervised tokens of the global batch: 1×8, 4×2 and 8×1
micro-batch splits of the same 8 samples give the same loss and the same gradients (CPU, fp32)."""

from __future__ import annotations

import pytest
import torch
from _train_helpers import SMALL_MODEL, small_train_config

from lamm.train.collate import Collator
from lamm.train.data import InstructionDataset, SampleSpec
from lamm.train.distributed import DistEnv, Engine
from lamm.train.loop import accumulate_gradients

SPLITS = [(1, 8), (4, 2), (8, 1)]  # (grad_accum, micro_batch_size)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from _train_helpers import make_instruction_data

    from lamm.model.config import model_preset
    from lamm.model.mllm import MultimodalLM

    data = make_instruction_data(tmp_path_factory.mktemp("inv"), n_images=6, n_clouds=2)
    model = MultimodalLM.from_config(model_preset("tiny", [f"{k}={v}" for k, v in SMALL_MODEL.items()]))
    cfg = small_train_config(data)
    ds = InstructionDataset(cfg.data.train, SampleSpec.from_model(model), cfg.data)
    samples = [ds[i] for i in range(8)]
    return model, cfg, samples


def _step(model, cfg, samples, accum, micro, packing):
    torch.set_num_threads(1)
    model.zero_grad(set_to_none=True)
    model.train()
    coll = Collator(model.tokenizer.pad_token_id, packing=packing, row_length=512)
    batches = [coll(samples[a * micro:(a + 1) * micro]) for a in range(accum)]
    stats = accumulate_gradients(Engine(model, DistEnv()), batches, cfg)
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return stats["loss_sum"] / stats["supervised"], grads


@pytest.mark.parametrize("packing", [False, True])
def test_loss_and_gradients_do_not_depend_on_the_split(setup, packing):
    model, cfg, samples = setup
    results = [_step(model, cfg, samples, a, m, packing) for a, m in SPLITS]
    loss0, grads0 = results[0]
    assert len(grads0) > 50
    for (a, m), (loss, grads) in zip(SPLITS[1:], results[1:]):
        assert loss == pytest.approx(loss0, abs=1e-6), (a, m)
        assert grads.keys() == grads0.keys()
        for name in grads0:
            torch.testing.assert_close(grads[name], grads0[name], atol=1e-6, rtol=1e-5, msg=f"{name} ({a}x{m})")


def test_mean_of_micro_means_would_differ(setup):
    """The naive recipe (average per-micro-batch mean losses) weights tokens unequally: the test above
    would catch a loop that did this."""
    model, _, samples = setup
    coll = Collator(model.tokenizer.pad_token_id)
    with torch.no_grad():
        means = []
        for s in samples:
            b = coll([s])
            means.append(float(model(b["input_ids"], b["attention_mask"], b["media"], b["labels"],
                                     b["position_ids"]).loss))
        b = coll(samples)
        global_mean = float(model(b["input_ids"], b["attention_mask"], b["media"], b["labels"], b["position_ids"]).loss)
    assert abs(sum(means) / len(means) - global_mean) > 1e-3
