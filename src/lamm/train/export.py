"""``lamm export``: a trained checkpoint → a merged, Hugging Face-loadable model plus media weights.

Output directory::

    OUT/llm/                     the LLM with LoRA merged into its weights (``save_pretrained``) and the
                                 tokenizer (placeholders included): AutoModelForCausalLM.from_pretrained works
    OUT/projectors.safetensors   every projector tensor, named ``{modality}.{param}``
    OUT/encoders.safetensors     every encoder tensor (frozen ones too), named ``{modality}.{param}``
    OUT/model_config.yaml        the ModelConfig, with ``llm.name_or_path: llm`` (relative to OUT) and
                                 ``llm_mode: full``
    OUT/export_manifest.json     source checkpoint and its manifest fingerprint, what was merged, file
                                 sha256s, and the verification result

``OUT`` must be new, empty, or a previous export (it holds ``export_manifest.json``), which is replaced
once the new export is complete. Anything else is refused before any work and nothing is deleted: an
``OUT`` that is or contains the source checkpoint, the current folder or one of its parents, or a
non-empty folder that is not a lamm export.

Verification: on a fixed batch (text, and one item per modality made from a seeded generator) the
logits of the merged LLM, re-loaded from ``OUT/llm``, must equal those of the unmerged checkpoint
within ``atol`` (fp32); otherwise the export fails and says by how much.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from lamm.fileio import owned_temp, replace_dir, write_json_atomic


@dataclass
class ExportResult:
    """``out_dir``, ``max_abs_diff`` between merged and unmerged logits on the fixed batch, ``merged``
    (whether LoRA was merged) and the manifest written."""

    out_dir: Path
    max_abs_diff: float | None
    merged: bool
    manifest: dict[str, Any]


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def fixed_batch(model: Any, seed: int = 0) -> dict[str, Any]:
    """A deterministic verification batch: one text-only conversation and one per modality, with
    media from a seeded generator. Returns padded ``input_ids``, ``attention_mask``, ``position_ids``,
    ``media``."""
    from lamm.conversation import Conversation, MediaRef, Message
    from lamm.train.collate import Collator

    g = torch.Generator().manual_seed(seed)
    samples = []
    convs = [(Conversation([Message("user", "Describe the scene."), Message("assistant", "A red cube on a table.")]), {})]
    for m in model.encoders:
        if m == "image":
            s = model.config.image_preprocess.size
            x = torch.randn(1, 3, s, s, generator=g)
        else:
            p = model.config.pcl_preprocess
            x = torch.rand(1, p.num_points, p.channels, generator=g)
        ref = MediaRef(m, path=f"<fixed {m}>")
        convs.append((Conversation([Message("user", f"What is in this {m}?", [ref]),
                                    Message("assistant", "It is a blue sphere.")]), {m: x}))
    spec = model.placeholder_spec
    for i, (conv, media) in enumerate(convs):
        tok = model.tokenize(conv)
        ids, labels = spec.expand(tok.input_ids, tok.labels, [r.modality for r in tok.media], f"fixed{i}")
        samples.append({"input_ids": torch.tensor(ids), "labels": torch.tensor(labels), "media": media, "id": f"fixed{i}"})
    return Collator(model.tokenizer.pad_token_id, packing=False)(samples)


@torch.no_grad()
def _logits(model: Any, llm: Any, batch: dict[str, Any]) -> torch.Tensor:
    embeds = model.embed(batch["input_ids"], batch["media"])
    out = llm(inputs_embeds=embeds, attention_mask=batch["attention_mask"], position_ids=batch["position_ids"],
              use_cache=False)
    mask = batch["attention_mask"].bool()
    return out.logits.float()[mask]


def export_checkpoint(checkpoint: str | os.PathLike, out_dir: str | os.PathLike, *, verify: bool = True,
                      atol: float = 1e-4) -> ExportResult:
    """Export ``checkpoint`` (a ``lamm`` checkpoint directory) to ``out_dir`` (see the module docstring).

    Raises ``ValueError`` when the merged logits differ from the unmerged ones by more than ``atol``
    (nothing is left at ``out_dir`` then), or when ``out_dir`` may not be replaced (:func:`check_out_dir`);
    the output is written to a temporary sibling and renamed.
    """
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM

    from lamm.model.checkpoint import load_checkpoint, read_manifest
    from lamm.model.lora import unwrap_base

    src = Path(checkpoint)
    src_manifest = read_manifest(src)
    final = Path(out_dir)
    check_out_dir(final, src)  # before any work: a refused --out costs nothing and deletes nothing
    model = load_checkpoint(src, "cpu").float().eval()
    batch = fixed_batch(model) if verify else None
    before = _logits(model, model.llm, batch) if batch is not None else None
    merged = model.config.llm_mode == "lora"
    llm = model.llm.merge_and_unload() if merged else unwrap_base(model.llm)

    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = owned_temp(final, "tmp")  # removes the temporaries of killed earlier exports first
    tmp.mkdir()
    try:
        llm.save_pretrained(tmp / "llm", safe_serialization=True)
        model.tokenizer.save_pretrained(tmp / "llm")
        for part in ("projectors", "encoders"):
            tensors = {k: v.detach().contiguous().clone() for k, v in getattr(model, part).state_dict().items()}
            save_file(tensors, str(tmp / f"{part}.safetensors"), metadata={"format": "pt"})
        llm_cfg = model.config.llm.model_copy(update={"name_or_path": "llm", "config": None, "dtype": "float32"})
        cfg = model.config.model_copy(update={"llm": llm_cfg, "llm_mode": "full", "tokenizer": "llm"})
        cfg.dump(tmp / "model_config.yaml")
        diff = None
        if batch is not None:
            reloaded = AutoModelForCausalLM.from_pretrained(tmp / "llm", dtype=torch.float32).eval()
            after = _logits(model, reloaded, batch)
            diff = float((after - before).abs().max())
            if not diff <= atol:
                raise ValueError(f"{src}: merged logits differ from the unmerged ones by {diff:.3g} > atol {atol:g}; "
                                 "the merge is wrong for this architecture — please report it")
        manifest = {
            "format": "lamm-export", "format_version": 1,
            "source": {"checkpoint": str(src.resolve()), "fingerprint": src_manifest.get("fingerprint"),
                       "base_llm": src_manifest.get("base_llm"), "lora": src_manifest.get("lora"),
                       "training": src_manifest.get("training")},
            "merged_lora": merged, "template": model.config.template,
            "media_token_ids": model.media_token_ids,
            "num_media_tokens": {m: model.num_media_tokens(m) for m in model.encoders},
            "verification": {"max_abs_logit_diff": diff, "atol": atol, "tokens": None if before is None else len(before)},
            "files": {p.relative_to(tmp).as_posix(): _sha256(p) for p in sorted(tmp.rglob("*")) if p.is_file()},
        }
        write_json_atomic(tmp / "export_manifest.json", manifest)
        check_out_dir(final, src)  # again: the folder may have changed while the export ran
        replace_dir(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return ExportResult(final, diff, merged, manifest)


def _is_export(path: Path) -> bool:
    """True when ``path`` is a folder written by :func:`export_checkpoint` (its manifest says so)."""
    import json

    try:
        manifest = json.loads((path / "export_manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(manifest, dict) and manifest.get("format") == "lamm-export"


def check_out_dir(out: Path, src: Path) -> None:
    """Refuse an export destination that replacing would destroy something else.

    ``out`` may be missing, an empty folder, or a previous lamm export (it holds an
    ``export_manifest.json`` of format ``lamm-export``), which is replaced. Refused with ``ValueError``
    (nothing deleted): ``out`` is or contains the source checkpoint, is the current folder or one of
    its parents, is a symbolic link or a file, or is a non-empty folder that is not a lamm export.
    """
    out_r, src_r, cwd = out.resolve(), src.resolve(), Path.cwd().resolve()
    hint = "choose a new or empty folder (or a previous export) for --out"
    if src_r == out_r or src_r.is_relative_to(out_r):
        raise ValueError(f"--out {out}: it is or contains the checkpoint being exported ({src}), which "
                         f"replacing it would delete; {hint}")
    if cwd == out_r or cwd.is_relative_to(out_r):
        raise ValueError(f"--out {out}: it is the current folder or one of its parents; {hint}")
    if out.is_symlink():
        raise ValueError(f"--out {out}: it is a symbolic link; {hint}")
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out}: it is a file, not a folder; {hint}")
    if out.is_dir() and any(out.iterdir()) and not _is_export(out):
        raise ValueError(f"--out {out}: the folder is not empty and is not a lamm export (it has no "
                         f"export_manifest.json of format 'lamm-export'), so it is not replaced; {hint}")


