"""Checkpoints: save → load identity, base verification, atomicity, the ``lamm model`` CLI, LAMM import."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from typer.testing import CliRunner

from lamm.cli.main import app
from lamm.conversation import Conversation, MediaRef, Message
from lamm.model.checkpoint import CheckpointError, load_checkpoint, read_manifest, save_checkpoint
from lamm.model.config import ModelConfig, model_preset
from lamm.model.mllm import MultimodalLM

REPO = Path(__file__).resolve().parents[2]


def batch(model: MultimodalLM) -> dict:
    img = MediaRef("image", data=__import__("PIL.Image").Image.new("RGB", (40, 30), (200, 10, 10)))
    pcl = MediaRef("pcl", data=np.random.default_rng(0).random((1200, 6)).astype(np.float32))
    rows, media = [], []
    for i, m in enumerate([img, pcl]):
        c = Conversation([Message("user", "What is it?", [m]), Message("assistant", "A thing.")], id=f"c{i}")
        tc = model.tokenize(c)
        rows.append(model.expand_placeholders(tc.input_ids, tc.labels, [m.modality])[0])
        media.append(m)
    width = max(map(len, rows))
    ids = torch.tensor([r + [model.tokenizer.pad_token_id] * (width - len(r)) for r in rows])
    mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows])
    return {"input_ids": ids, "attention_mask": mask, "media": model.preprocess_media(media, sample_seeds=[0, 1])}


def logits(model: MultimodalLM, b: dict) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(**b).logits


def perturb(model: MultimodalLM, seed: int = 0) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(torch.randn(p.shape, generator=g) * 0.05)


def test_tiny_round_trip_identical_logits(tiny_model, tmp_path):
    perturb(tiny_model)  # as if trained
    b = batch(tiny_model)
    save_checkpoint(tiny_model, tmp_path / "ck")
    loaded = load_checkpoint(tmp_path / "ck")
    assert torch.equal(logits(tiny_model, b), logits(loaded, b))
    assert sorted(p.name for p in (tmp_path / "ck").iterdir()) == [
        "COMPLETE", "config.yaml", "manifest.json", "tokenizer", "weights.safetensors"]
    m = read_manifest(tmp_path / "ck")
    assert m["format"] == "lamm-checkpoint" and m["llm_mode"] == "full" and m["template"] == "lamm"
    assert m["parameters"]["all"]["total"] == sum(p.numel() for p in tiny_model.parameters())
    assert set(m["versions"]) >= {"lamm", "torch", "transformers", "peft"}
    assert m["encoders"]["image"]["num_tokens"] == 64 and m["encoders"]["pcl"]["num_tokens"] == 32


def test_round_trip_after_a_stage_froze_a_trainable_encoder(tiny_model, tmp_path):
    perturb(tiny_model)
    tiny_model.encoders["image"].requires_grad_(False)  # e.g. a trainer's stage, against the config's freeze=False
    save_checkpoint(tiny_model, tmp_path / "ck")
    assert (tmp_path / "ck/base/encoders/image.safetensors").is_file()
    b = batch(tiny_model)
    assert torch.equal(logits(tiny_model, b), logits(load_checkpoint(tmp_path / "ck"), b))


def lora_model(tokenizer, seed: int) -> MultimodalLM:
    cfg = model_preset("tiny", ["llm_mode=lora", "lora.r=4", "encoders.image.freeze=true", f"seed={seed}"])
    return MultimodalLM.from_config(cfg, tokenizer=tokenizer)


def test_lora_round_trip_saves_random_base(tiny_tokenizer, tmp_path):
    model = lora_model(tiny_tokenizer, 0)
    perturb(model)
    b = batch(model)
    save_checkpoint(model, tmp_path / "ck", extra_manifest={"step": 3})
    assert (tmp_path / "ck/base/llm/config.json").is_file()
    assert (tmp_path / "ck/base/encoders/image.safetensors").is_file()  # frozen random-init encoder
    loaded = load_checkpoint(tmp_path / "ck")
    assert torch.equal(logits(model, b), logits(loaded, b))
    m = read_manifest(tmp_path / "ck")
    assert m["step"] == 3 and m["lora"]["r"] == 4 and m["lora"]["alpha"] == 32.0
    assert m["lora"]["resolved_targets"] == ["self_attn.k_proj", "self_attn.o_proj", "self_attn.q_proj", "self_attn.v_proj"]
    assert m["base_llm"]["source"] == "base/llm" and m["base_llm"]["sha256"] == model.base_llm_sha256


def test_loading_on_a_different_base_fails(tiny_tokenizer, tmp_path):
    a, other = lora_model(tiny_tokenizer, 0), lora_model(tiny_tokenizer, 1)
    save_checkpoint(a, tmp_path / "a")
    save_checkpoint(other, tmp_path / "other")
    with pytest.raises(CheckpointError, match="base LLM mismatch") as err:
        load_checkpoint(tmp_path / "a", base_llm=str(tmp_path / "other/base/llm"))
    msg = str(err.value)
    assert a.base_llm_sha256[:16] in msg and other.base_llm_sha256[:16] in msg and "other/base/llm" in msg


def test_tampered_frozen_encoder_fails(tiny_tokenizer, tmp_path):
    from safetensors.torch import load_file, save_file

    save_checkpoint(lora_model(tiny_tokenizer, 0), tmp_path / "ck")
    f = tmp_path / "ck/base/encoders/image.safetensors"
    t = load_file(str(f))
    k = min(t)
    t[k] = t[k] + 1
    save_file(t, str(f))
    with pytest.raises(CheckpointError, match="image encoder mismatch"):
        load_checkpoint(tmp_path / "ck")


def test_incomplete_and_foreign_directories(tiny_model, tmp_path):
    save_checkpoint(tiny_model, tmp_path / "ck")
    (tmp_path / "ck/COMPLETE").unlink()
    with pytest.raises(CheckpointError, match="incomplete checkpoint"):
        load_checkpoint(tmp_path / "ck")
    save_checkpoint(tiny_model, tmp_path / "ck")  # overwriting a checkpoint is fine (atomic replace)
    assert load_checkpoint(tmp_path / "ck") is not None
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp dirs left behind
    (tmp_path / "data").mkdir()
    (tmp_path / "data/keep.txt").write_text("x")
    with pytest.raises(CheckpointError, match="not a lamm checkpoint"):
        save_checkpoint(tiny_model, tmp_path / "data")
    with pytest.raises(CheckpointError, match="no manifest.json"):
        load_checkpoint(tmp_path / "data")


def test_weights_that_do_not_fit_fail(tiny_model, tmp_path):
    from safetensors.torch import load_file, save_file

    save_checkpoint(tiny_model, tmp_path / "ck")
    w = load_file(str(tmp_path / "ck/weights.safetensors"))
    w["projectors.image.bogus"] = torch.zeros(1)
    del w["projectors.pcl.weight"]
    save_file(w, str(tmp_path / "ck/weights.safetensors"))
    with pytest.raises(CheckpointError, match=r"1 missing .*projectors.pcl.weight.*1 unexpected"):
        load_checkpoint(tmp_path / "ck")


def test_tiny_yaml_equals_preset():
    data = yaml.safe_load((REPO / "configs/model/tiny.yaml").read_text())
    assert ModelConfig.model_validate(data) == model_preset("tiny")


def test_cli_init_and_info(tmp_path, tiny_model_dir):
    runner = CliRunner()
    res = runner.invoke(app, ["model", "init", "--preset", "tiny", "--out", str(tmp_path / "m"), "--seed", "1"])
    assert res.exit_code == 0, res.output
    m1 = read_manifest(tmp_path / "m")
    assert m1["init"] == {"preset": "tiny", "seed": 1}
    assert m1["base_llm"]["sha256"] != read_manifest(tiny_model_dir)["base_llm"]["sha256"]  # the seed matters
    res = runner.invoke(app, ["model", "info", str(tmp_path / "m")])
    assert res.exit_code == 0, res.output
    assert "encoders.image" in res.output and "trainable" in res.output and "llm_mode" in res.output
    res = runner.invoke(app, ["model", "info", str(tmp_path / "m"), "--json"])
    assert json.loads(res.output)["parameters"]["all"]["total"] == m1["parameters"]["all"]["total"]
    res = runner.invoke(app, ["model", "info", str(tmp_path)])
    assert res.exit_code == 2 and "not a lamm checkpoint" in " ".join(res.output.split())


def lamm_delta(model: MultimodalLM, r: int = 4, seed: int = 0) -> dict[str, torch.Tensor]:
    """An original-LAMM-style delta for a Llama-shaped model (peft >= 0.3 names, with '.default')."""
    g = torch.Generator().manual_seed(seed)
    hidden = model.llm.config.hidden_size
    delta = {"llama_proj.weight": torch.randn(hidden, 128, generator=g), "llama_proj.bias": torch.randn(hidden, generator=g)}
    for i in range(model.llm.config.num_hidden_layers):
        for x in "qkvo":
            pre = f"llama_model.base_model.model.model.layers.{i}.self_attn.{x}_proj"
            delta[f"{pre}.lora_A.default.weight"] = torch.randn(r, hidden, generator=g) * 0.1
            delta[f"{pre}.lora_B.default.weight"] = torch.randn(hidden, r, generator=g) * 0.1
    return delta


def test_import_lamm_delta(tiny_model_dir, tiny_model, tmp_path):
    delta = lamm_delta(tiny_model)
    torch.save(delta, tmp_path / "pytorch_model.pt")
    res = CliRunner().invoke(app, ["model", "import-lamm", str(tmp_path / "pytorch_model.pt"), "--base",
                                   str(tiny_model_dir), "--out", str(tmp_path / "imp")])
    assert res.exit_code == 0, res.output
    model = load_checkpoint(tmp_path / "imp")
    man = read_manifest(tmp_path / "imp")
    assert man["llm_mode"] == "lora" and man["lora"]["r"] == 4 and man["imported_from"]["format"] == "LAMM v1 delta"
    assert torch.equal(model.projectors["image"].weight, delta["llama_proj.weight"])
    named = dict(model.llm.named_parameters())
    a = named["base_model.model.model.layers.1.self_attn.v_proj.lora_A.default.weight"]
    assert torch.equal(a, delta["llama_model.base_model.model.model.layers.1.self_attn.v_proj.lora_A.default.weight"])
    # the base is the tiny model's LLM: with LoRA scaled to zero the outputs are the tiny model's
    b = batch(model)
    with torch.no_grad():
        for n, p in model.llm.named_parameters():
            if "lora_B" in n:
                p.zero_()
        model.projectors["image"].weight.copy_(tiny_model.projectors["image"].weight)
        model.projectors["image"].bias.copy_(tiny_model.projectors["image"].bias)
    assert torch.allclose(logits(model, b), logits(tiny_model, b), atol=1e-5)


def test_import_rejects_unknown_and_misfit_tensors(tiny_model_dir, tiny_model, tmp_path):
    from lamm.model.import_lamm import DeltaImportError, import_lamm_delta

    delta = lamm_delta(tiny_model)
    torch.save({**delta, "visual_encoder.blocks.0.weight": torch.zeros(2)}, tmp_path / "extra.pt")
    with pytest.raises(DeltaImportError, match="neither llama_proj nor LoRA"):
        import_lamm_delta(tmp_path / "extra.pt", str(tiny_model_dir), tmp_path / "o1")
    del delta["llama_model.base_model.model.model.layers.3.self_attn.o_proj.lora_B.default.weight"]
    torch.save(delta, tmp_path / "short.pt")
    with pytest.raises(DeltaImportError, match="1 slots unfilled"):
        import_lamm_delta(tmp_path / "short.pt", str(tiny_model_dir), tmp_path / "o2")
    delta = lamm_delta(tiny_model)
    delta["llama_proj.weight"] = torch.zeros(128, 99)
    torch.save(delta, tmp_path / "proj.pt")
    with pytest.raises(DeltaImportError, match=r"llama_proj.weight is \(128, 99\)"):
        import_lamm_delta(tmp_path / "proj.pt", str(tiny_model_dir), tmp_path / "o3")
    assert not (tmp_path / "o1").exists() and not (tmp_path / "o3").exists()
    (tmp_path / "cut.pt").write_bytes((tmp_path / "proj.pt").read_bytes()[:200])  # a download cut short
    with pytest.raises(DeltaImportError, match="not a readable LAMM delta"):
        import_lamm_delta(tmp_path / "cut.pt", str(tiny_model_dir), tmp_path / "o4")
    with pytest.raises(DeltaImportError, match="--modality 'video': expected image or pcl"):
        import_lamm_delta(tmp_path / "proj.pt", str(tiny_model_dir), tmp_path / "o5", modality="video")


def test_damaged_copies_say_what_is_missing(tiny_model, tmp_path):
    import shutil

    save_checkpoint(tiny_model, tmp_path / "ck")
    shutil.rmtree(tmp_path / "ck" / "tokenizer")
    with pytest.raises(CheckpointError, match="tokenizer/ is missing"):
        load_checkpoint(tmp_path / "ck")
    save_checkpoint(tiny_model, tmp_path / "ck2")
    (tmp_path / "ck2" / "manifest.json").write_text('{"format": ', encoding="utf-8")
    with pytest.raises(CheckpointError, match="manifest.json: not valid JSON"):
        load_checkpoint(tmp_path / "ck2")


def test_a_merged_base_over_a_named_llm_is_saved_with_the_checkpoint(tiny_tokenizer, tmp_path):
    """A fully trained local HF LLM switched to LoRA (import-lamm onto it does this) is a new base that
    ``llm.name_or_path`` no longer loads: the checkpoint must carry it, and keep carrying it when re-saved."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from lamm.model.lora import convert_llm_mode

    torch.manual_seed(0)
    hf = LlamaForCausalLM(LlamaConfig(hidden_size=128, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4,
                                      num_key_value_heads=4, vocab_size=len(tiny_tokenizer), max_position_embeddings=256))
    hf.save_pretrained(tmp_path / "hf")
    tiny_tokenizer.save_pretrained(tmp_path / "hf")
    cfg = model_preset("tiny", ["llm_mode=full"]).model_dump()
    cfg["llm"] = {"name_or_path": str(tmp_path / "hf"), "dtype": "float32"}
    cfg["tokenizer"] = None
    model = MultimodalLM.from_config(ModelConfig.model_validate(cfg))
    with torch.no_grad():
        for p in model.llm.parameters():
            p.add_(0.01)  # "trained" in full mode
    convert_llm_mode(model, "lora")
    assert model.base_llm_derived
    perturb(model)
    b = batch(model)
    want = logits(model, b)
    save_checkpoint(model, tmp_path / "ck")
    assert read_manifest(tmp_path / "ck")["base_llm"]["source"] == "base/llm"
    loaded = load_checkpoint(tmp_path / "ck")
    assert torch.allclose(logits(loaded, b), want, atol=1e-5)
    save_checkpoint(loaded, tmp_path / "ck_again")  # a loaded copy saves its base again
    assert torch.allclose(logits(load_checkpoint(tmp_path / "ck_again"), b), want, atol=1e-5)


def test_model_info_on_a_damaged_manifest_names_the_field(tiny_model, tmp_path):
    save_checkpoint(tiny_model, tmp_path / "ck")
    m = json.loads((tmp_path / "ck" / "manifest.json").read_text())
    del m["template"]
    (tmp_path / "ck" / "manifest.json").write_text(json.dumps(m))
    res = CliRunner().invoke(app, ["model", "info", str(tmp_path / "ck")])
    assert res.exit_code == 2 and "missing or malformed field 'template'" in " ".join(res.output.split())
    assert CliRunner().invoke(app, ["model", "info", str(tmp_path / "ck"), "--json"]).exit_code == 0
