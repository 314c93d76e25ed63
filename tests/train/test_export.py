"""Export merges LoRA into a Hugging Face-loadable LLM whose logits equal the unmerged model's."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from _train_helpers import small_train_config
from typer.testing import CliRunner

from lamm.train import train
from lamm.train.export import _logits, export_checkpoint, fixed_batch


def test_export_merged_logits_equal_unmerged(train_data, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from lamm.model.checkpoint import load_checkpoint

    cfg = small_train_config(train_data, steps=3, stage="instruct", optim={"lr": 1e-2},
                             checkpoint={"save_final": True})
    ckpt = train(cfg, tmp_path / "run", progress=False).checkpoint
    result = export_checkpoint(ckpt, tmp_path / "export")
    assert result.merged and result.max_abs_diff <= 1e-5
    out = tmp_path / "export"
    assert {p.name for p in out.iterdir()} == {"llm", "projectors.safetensors", "encoders.safetensors",
                                              "model_config.yaml", "export_manifest.json"}
    # independently: the plain HF model from OUT/llm reproduces the checkpoint's logits
    model = load_checkpoint(ckpt)
    batch = fixed_batch(model)
    hf = AutoModelForCausalLM.from_pretrained(out / "llm", dtype=torch.float32)
    assert not any("lora" in n for n, _ in hf.named_parameters())
    torch.testing.assert_close(_logits(model, hf, batch), _logits(model, model.llm, batch), atol=1e-5, rtol=0)
    # LoRA really changed the model, so the check above is not vacuous
    assert any(float(p.detach().abs().max()) > 0 for n, p in model.llm.named_parameters() if "lora_B" in n)
    tok = AutoTokenizer.from_pretrained(out / "llm")
    assert tok.convert_tokens_to_ids("<image>") == model.media_token_ids["image"]
    manifest = json.loads((out / "export_manifest.json").read_text())
    assert manifest["merged_lora"] and manifest["source"]["lora"]["r"] == 32
    assert "llm/model.safetensors" in manifest["files"]


def test_export_cli(train_data, tmp_path):
    from lamm.cli.main import app

    cfg = small_train_config(train_data, steps=1, checkpoint={"save_final": True})
    ckpt = train(cfg, tmp_path / "run", progress=False).checkpoint
    res = CliRunner().invoke(app, ["export", str(ckpt), "--out", str(tmp_path / "exp")])
    assert res.exit_code == 0, res.output
    assert "LoRA merged:" in res.output and (tmp_path / "exp" / "llm" / "config.json").is_file()
    bad = CliRunner().invoke(app, ["export", str(tmp_path), "--out", str(tmp_path / "x")])
    assert bad.exit_code == 2 and "not a lamm checkpoint" in bad.output


def _tree(root) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_export_out_never_deletes_the_source_or_foreign_folders(tiny_model_dir, tmp_path, monkeypatch):
    from lamm.cli.main import app

    run = tmp_path / "run"
    ckpt = run / "ckpt"
    shutil.copytree(tiny_model_dir, ckpt)
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "keep.txt").write_text("mine")
    (tmp_path / "file.txt").write_text("a file")
    work = tmp_path / "work" / "sub"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)
    before = _tree(tmp_path)
    refused = [(run, "contains the checkpoint"), (ckpt, "contains the checkpoint"),
               (tmp_path, "contains the checkpoint"), (tmp_path / "notes", "not a lamm export"),
               (tmp_path / "file.txt", "is a file"),
               (work, "current folder"), (tmp_path / "work", "current folder or one of its parents")]
    for out, match in refused:
        with pytest.raises(ValueError, match=match):
            export_checkpoint(ckpt, out, verify=False)
    assert _tree(tmp_path) == before  # nothing deleted, nothing left behind

    res = CliRunner().invoke(app, ["export", str(ckpt), "--out", str(run), "--no-verify"])
    assert res.exit_code == 2 and "contains the checkpoint" in res.output
    assert _tree(tmp_path) == before

    # a new folder, an empty folder, and a previous export (replaced whole) are fine
    out = tmp_path / "exp"
    export_checkpoint(ckpt, out, verify=False)
    (out / "stale.txt").write_text("from an older export")
    export_checkpoint(ckpt, out, verify=False)
    assert not (out / "stale.txt").exists() and (out / "export_manifest.json").is_file()
    (tmp_path / "empty").mkdir()
    export_checkpoint(ckpt, tmp_path / "empty", verify=False)
    assert (tmp_path / "empty" / "llm" / "config.json").is_file()
    src_before = {k.removeprefix("run/ckpt/"): v for k, v in before.items() if k.startswith("run/ckpt/")}
    assert _tree(ckpt) == src_before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "exp", "file.txt", "notes", "run", "work"]
