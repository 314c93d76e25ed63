"""The loop trains (the loss falls), logs what it promises, mixes data by weight, and sets up the
optimizer and stages as documented."""

from __future__ import annotations

import itertools
import json
import math

import pytest
import torch
from _train_helpers import small_train_config

from lamm.train import train
from lamm.train.config import OptimConfig
from lamm.train.data import MixtureSampler
from lamm.train.optim import LRLambda, build_optimizer, param_groups

STEP_KEYS = {"step", "loss", "lr", "grad_norm", "samples", "tokens", "supervised_tokens", "samples_per_s",
             "tokens_per_s", "supervised_tokens_per_s", "mfu", "data_wait", "peak_mem_gb", "dropped_samples"}


def test_training_lowers_the_loss_and_logs_metrics(train_data, tmp_path):
    cfg = small_train_config(train_data, steps=10, data__eval=[{"file": str(train_data)}],
                             eval={"every": 5, "max_samples": 4}, data__packing=True, peak_flops=1e12)
    seen = []
    result = train(cfg, tmp_path / "run", progress=seen.append)
    losses = result.losses
    assert len(losses) == 10 and len(seen) == 10
    assert sum(losses[-3:]) / 3 < 0.75 * sum(losses[:3]) / 3, losses
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in rows if "loss" in r]
    assert [r["step"] for r in steps] == list(range(1, 11))
    assert STEP_KEYS <= steps[0].keys()
    r = steps[-1]
    assert r["samples"] == 4 and r["tokens"] > r["supervised_tokens"] > 0
    assert 0 < r["mfu"] < 1 and 0 <= r["data_wait"] <= 1 and r["peak_mem_gb"] > 0
    evals = [r for r in rows if "eval_loss" in r]
    assert [e["step"] for e in evals] == [5, 10] and evals[1]["eval_loss"] < evals[0]["eval_loss"] + 0.5
    assert (tmp_path / "run" / "train_config.yaml").is_file()
    report = json.loads((tmp_path / "run" / "data_report.json").read_text())
    assert report["kept"] == 16 and report["dropped"] == 0


def test_mixture_sampler_weights_and_determinism():
    kw = {"seed": 3, "micro_batch_size": 2, "grad_accum": 2, "total_steps": 100}
    s = MixtureSampler([[0, 1, 2, 3], [4, 5, 6, 7, 8, 9]], [2.0, 0.5], **kw)
    assert s.epoch_length == 2 * 4 + 3
    e0 = s.epoch_order(0).tolist()
    assert sorted(x for x in e0 if x < 4) == [0, 0, 1, 1, 2, 2, 3, 3]
    assert len([x for x in e0 if x >= 4]) == 3 and e0 != s.epoch_order(1).tolist()
    again = MixtureSampler([[0, 1, 2, 3], [4, 5, 6, 7, 8, 9]], [2.0, 0.5], **kw)
    assert again.step_batches(7) == s.step_batches(7)
    # two ranks of micro 2 × accum 1 see exactly the samples of one rank of micro 2 × accum 2
    r0 = MixtureSampler(s.per_source, s.weights, 3, 2, 1, world_size=2, rank=0)
    r1 = MixtureSampler(s.per_source, s.weights, 3, 2, 1, world_size=2, rank=1)
    assert r0.step_batches(5) + r1.step_batches(5) == s.step_batches(5)
    assert s.steps_for_epochs(2.0) == math.ceil(2 * 11 / 4)


def test_param_groups_never_decay_norms_and_biases():
    from lamm.model.config import model_preset
    from lamm.model.mllm import MultimodalLM

    model = MultimodalLM.from_config(model_preset("tiny", ["llm.config.num_hidden_layers=1", "llm_mode=lora"]))
    groups = param_groups(model.named_parameters(), OptimConfig(weight_decay=0.1, projector_lr=1e-3))
    by = {g["name"]: g for g in groups}
    assert {"projector/decay", "projector/no_decay", "lora/decay", "encoder/decay", "encoder/no_decay"} <= set(by)
    assert all(p.ndim >= 2 for p in by["lora/decay"]["params"])
    assert by["projector/no_decay"]["weight_decay"] == 0 and by["projector/decay"]["lr"] == 1e-3
    assert all(p.ndim == 1 for p in by["encoder/no_decay"]["params"])
    n_trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert sum(p.numel() for g in groups for p in g["params"]) == n_trainable
    # CPU parameters take the per-parameter AdamW loop: the same bits however they are grouped (the
    # bit-exact resume relies on it); only CUDA parameters take the multi-tensor path
    assert build_optimizer(model, OptimConfig()).defaults["foreach"] is False


def test_warmup_then_cosine_schedule():
    f = LRLambda(total=10, warmup=2, schedule="cosine", min_ratio=0.1)
    vals = [f(s) for s in range(10)]
    assert vals[0] < vals[1] < vals[2] == 1.0
    assert all(a >= b for a, b in itertools.pairwise(vals[2:])) and vals[-1] == pytest.approx(0.1)


@pytest.mark.parametrize("stage, trains", [("align", {"projectors"}), ("instruct", {"projectors", "lora", "encoders"})])
def test_stages_choose_the_trainable_parameters(train_data, stage, trains):
    from lamm.train.checkpointing import apply_stage, start_model

    cfg = small_train_config(train_data, stage=stage)
    model = start_model(cfg)
    apply_stage(model, stage, None)
    kinds = set()
    for name, p in model.named_parameters():
        if p.requires_grad:
            kinds.add("lora" if "lora_" in name else name.split(".")[0])
    assert kinds == trains
    assert model.config.llm_mode == {"align": "frozen", "instruct": "lora"}[stage]


def test_bf16_autocast_runs(train_data, tmp_path):
    cfg = small_train_config(train_data, steps=2, precision="bf16", stage="instruct")
    result = train(cfg, tmp_path / "bf16", progress=False)
    assert all(math.isfinite(v) for v in result.losses)
    assert next(p for n, p in result.model.llm.named_parameters() if "lora_A" in n).dtype == torch.float32


def test_compile_layers_is_refused_without_a_layer_class():
    from lamm.model.llm import compile_decoder_layers

    with pytest.raises(ValueError, match="names no decoder layer class"):
        compile_decoder_layers(torch.nn.Linear(2, 2))


@pytest.mark.slow
def test_compiled_layers_train_like_eager_ones(train_data, tmp_path):
    """``compile_layers`` (torch.compile per decoder layer) gives the eager run's losses (~1 min on 2 cores)."""
    losses = {}
    for flag in (False, True):
        cfg = small_train_config(train_data, steps=3, data__packing=True, compile_layers=flag)
        losses[flag] = train(cfg, tmp_path / f"run{flag}", progress=False).losses
    assert losses[True] == pytest.approx(losses[False], rel=1e-4)


def test_training_flops_counts_matrices_by_hand():
    """A Llama of hidden 16, MLP 32, 2 layers, vocab 50: per layer q/k/v/o 4·16·16 + MLP 3·16·32 = 2,560
    weights, 5,120 in the body; the head 50·16 = 800. Frozen weights cost 4 FLOPs per token (forward +
    input gradient), trainable ones 6; the embedding table and the norms cost nothing."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from lamm.train.meter import training_flops

    llm = LlamaForCausalLM(LlamaConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2,
                                       num_key_value_heads=2, vocab_size=50, tie_word_embeddings=False))
    llm.requires_grad_(False)
    llm.model.layers[0].self_attn.q_proj.weight.requires_grad_(True)
    f = training_flops(llm)
    assert f.per_token == 4 * (5120 - 256) + 6 * 256
    assert f.per_supervised == 4 * 800
    assert f.of_step(tokens=10, supervised=3) == 10 * f.per_token + 3 * 4 * 800
    llm.requires_grad_(True)  # the full stage: every matrix trains
    f = training_flops(llm)
    assert (f.per_token, f.per_supervised) == (6 * 5120, 6 * 800)


def test_meter_resume_drops_a_cut_last_line_and_later_steps(tmp_path):
    """A kill while a step's row was being appended leaves half a line; resuming from the step-2
    checkpoint keeps rows 1–2 and drops the rest, the cut line included."""
    from lamm.train.meter import Meter, StepFlops

    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1, "loss": 2.0}\n{"step": 2, "loss": 1.5}\n{"step": 3, "loss": 1.2}\n{"step": 4, "lo',
                    encoding="utf-8")
    Meter(tmp_path, 10, 2, StepFlops(1.0, 1.0), 1, torch.device("cpu"), "fp32", None, progress=False)
    assert [json.loads(x)["step"] for x in path.read_text().splitlines()] == [1, 2]
    path.write_text('{"step": 1}\n{"ste\n{"step": 2}\n', encoding="utf-8")  # damage inside: not guessed
    with pytest.raises(ValueError, match=r"metrics.jsonl:2: not a valid metrics row \(invalid JSON"):
        Meter(tmp_path, 10, 2, StepFlops(1.0, 1.0), 1, torch.device("cpu"), "fp32", None, progress=False)


def test_data_checks_before_training(train_data, tmp_path):
    """A missing media file stops the run before training (not when its sample is drawn); a weight-0 file
    is not read at all; a positive weight that rounds to no sample per epoch is reported; eval drops are
    reported; a resume with other weights is refused."""
    import shutil

    from lamm.train.data import DataError

    root = tmp_path / "d"
    shutil.copytree(train_data.parent, root)
    data = root / train_data.name
    records = json.loads(data.read_text())
    broken = root / "broken.json"
    broken.write_text(json.dumps([{**records[0], "id": "gone", "image": "images/does_not_exist.png"}]))
    cfg = small_train_config(data, steps=2, data__train=[{"file": str(data)}, {"file": str(broken)}])
    with pytest.raises(DataError, match=r"(?s)1 media file\(s\) do not exist.*id='gone'"):
        train(cfg, tmp_path / "a", progress=False)
    (root / "garbage.json").write_text("not json at all")  # weight 0: never read
    tiny = root / "tiny.json"
    tiny.write_text(json.dumps(records[:2]))
    long_eval = root / "eval.json"
    long_eval.write_text(json.dumps(records[:3] + [{**records[1], "id": "long", "conversations": [
        {"from": "human", "value": "<image>\n" + "word " * 400}, {"from": "gpt", "value": "x"}]}]))
    cfg = small_train_config(data, steps=2, data__train=[{"file": str(data)}, {"file": str(root / "garbage.json"),
                             "weight": 0}, {"file": str(tiny), "weight": 0.1}],
                             data__eval=[{"file": str(long_eval)}], data__max_drop_fraction=0.5,
                             eval={"every": 2, "max_samples": 4}, checkpoint={"save_every": 0, "save_final": True})
    train(cfg, tmp_path / "b", progress=False)
    report = json.loads((tmp_path / "b" / "data_report.json").read_text())
    assert report["eval_dropped"] == 1 and "long" in report["eval_dropped_samples"][0]
    assert len(report["unused_sources"]) == 1 and "tiny.json: weight 0.1" in report["unused_sources"][0]
    cfg2 = cfg.model_copy(update={"steps": 4, "data": cfg.data.model_copy(update={"train": [
        cfg.data.train[0].model_copy(update={"weight": 2.0}), *cfg.data.train[1:]]})})
    from lamm.train.config import TrainSetupError

    with pytest.raises(TrainSetupError, match="cannot resume: data (weights|epoch_length)"):
        train(cfg2, tmp_path / "b", resume=True, progress=False)
