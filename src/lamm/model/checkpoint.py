"""Checkpoint directories: save and load a :class:`MultimodalLM` with a manifest that names its base.

Layout::

    DIR/
      weights.safetensors    trainable weights: projectors, trainable encoder weights, LoRA
                             (llm_mode="lora") or every LLM weight (llm_mode="full")
      base/llm/              the base LLM (HF save_pretrained) — only when it was random-init and is
                             not fully in weights.safetensors, i.e. cannot be re-loaded from a hub id
      base/encoders/M.safetensors   frozen weights of a random-init encoder M (same reason)
      tokenizer/             the tokenizer, placeholders included
      config.yaml            the resolved ModelConfig
      manifest.json          format version, base LLM id + sha256 (architecture + weights), encoder ids
                             + sha256 of their frozen weights, template, LoRA, versions, parameter counts
      COMPLETE               written last: a directory without it is a crashed save and never loads

Saves are atomic: everything is written to a temporary sibling directory that is renamed into place.
Loading re-creates the model from ``config.yaml``, loads the base (``base/`` or the hub id), checks its
sha256 against the manifest — a LoRA delta on a different base fails loudly instead of silently
scoring near zero (LAMM's defect) — then loads ``weights.safetensors`` strictly.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from lamm.config import config_from_dict, load_yaml
from lamm.fileio import owned_temp, replace_dir, write_json_atomic
from lamm.model.config import ModelConfig
from lamm.model.llm import base_state_items, quiet_hf_progress, update_tensor_hash
from lamm.model.lora import describe_lora, is_lora_param, unwrap_base
from lamm.model.mllm import MultimodalLM

FORMAT = "lamm-checkpoint"
FORMAT_VERSION = 1
WEIGHTS = "weights.safetensors"


class CheckpointError(ValueError):
    """A checkpoint cannot be saved or loaded; the message names the directory and the fix."""


def is_checkpoint(directory: str | os.PathLike) -> bool:
    """Whether ``directory`` holds a complete checkpoint."""
    d = Path(directory)
    return (d / "manifest.json").is_file() and (d / "COMPLETE").is_file()


def read_manifest(directory: str | os.PathLike) -> dict[str, Any]:
    """The manifest of a complete checkpoint (raises :class:`CheckpointError` otherwise)."""
    d = Path(directory)
    if not (d / "manifest.json").is_file():
        raise CheckpointError(f"{d}: not a lamm checkpoint (no manifest.json); create one with `lamm model init`")
    if not (d / "COMPLETE").is_file():
        raise CheckpointError(f"{d}: incomplete checkpoint (no COMPLETE marker: the save was interrupted); "
                              "use an earlier checkpoint")
    try:
        manifest = json.loads((d / "manifest.json").read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{d / 'manifest.json'}: not valid JSON ({e}); the checkpoint is damaged — "
                              "use an earlier checkpoint or copy it again") from None
    if not isinstance(manifest, dict):
        raise CheckpointError(f"{d / 'manifest.json'}: expected a JSON object, got {type(manifest).__name__}")
    if manifest.get("format") != FORMAT or manifest.get("format_version", 0) > FORMAT_VERSION:
        raise CheckpointError(f"{d}: unsupported checkpoint format {manifest.get('format')!r} version "
                              f"{manifest.get('format_version')!r} (this lamm reads {FORMAT} <= {FORMAT_VERSION})")
    return manifest


# ------------------------------------------------------------------------------------ what is saved
def _encoder_is_pretrained(cfg: ModelConfig, modality: str) -> bool:
    return getattr(cfg.encoders[modality], "name_or_path", None) is not None


def trainable_state_dict(model: MultimodalLM) -> dict[str, torch.Tensor]:
    """The tensors that go to ``weights.safetensors``, named as in ``model.state_dict()``.

    Projectors; encoder parameters with ``requires_grad`` (plus the buffers of such encoders); the LLM's
    LoRA tensors (``lora``) or all its weights (``full``); nothing of the LLM when ``frozen``.
    """
    sd = model.state_dict()
    keep = {k for k in sd if k.startswith("projectors.")}
    for m, enc in model.encoders.items():
        trainable = {f"encoders.{m}.{n}" for n, p in enc.named_parameters() if p.requires_grad}
        keep |= trainable
        if trainable:
            keep |= {f"encoders.{m}.{n}" for n, _ in enc.named_buffers()} & set(sd)
    mode = model.config.llm_mode
    for k in sd:
        if k.startswith("llm.") and (mode == "full" or (mode == "lora" and is_lora_param(k))):
            keep.add(k)
    return {k: sd[k] for k in sorted(keep)}


def _save_tensors(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    from safetensors.torch import save_file

    seen: set[int] = set()
    out = {}
    for k, v in tensors.items():
        v = v.detach().to("cpu").contiguous()
        if v.untyped_storage().data_ptr() in seen:  # tied weights: safetensors refuses shared storage
            v = v.clone()
        seen.add(v.untyped_storage().data_ptr())
        out[k] = v
    save_file(out, str(path), metadata={"format": "pt"})


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def _tensors_sha256(tensors: dict[str, torch.Tensor]) -> str | None:
    if not tensors:
        return None
    h = hashlib.sha256()
    for k in sorted(tensors):
        update_tensor_hash(h, k, tensors[k])
    return h.hexdigest()


def _frozen_encoder_tensors(model: MultimodalLM, modality: str, saved: set[str]) -> dict[str, torch.Tensor]:
    prefix = f"encoders.{modality}."
    return {k[len(prefix):]: v for k, v in model.encoders[modality].state_dict(prefix=prefix).items()
            if k not in saved}


def _versions() -> dict[str, str]:
    import peft
    import transformers

    from lamm import __version__

    return {"lamm": __version__, "torch": torch.__version__, "transformers": transformers.__version__,
            "peft": peft.__version__, "python": sys.version.split()[0]}


def _relax_permissions(root: Path) -> None:
    # mkdtemp / mkstemp create owner-only entries; a checkpoint should be as readable as any file the
    # user writes (a server or a colleague loads it), so apply the umask like a plain open() would.
    umask = os.umask(0)
    os.umask(umask)
    for p in [root, *root.rglob("*")]:
        p.chmod((0o777 if p.is_dir() else 0o666) & ~umask)


# --------------------------------------------------------------------------------------------- save
def save_checkpoint(model: MultimodalLM, directory: str | os.PathLike, extra_manifest: dict[str, Any] | None = None,
                    state_dict: dict[str, torch.Tensor] | None = None) -> Path:
    """Write ``model`` to ``directory`` atomically (replacing an existing checkpoint there).

    ``state_dict`` overrides :func:`trainable_state_dict` (e.g. weights gathered from FSDP shards);
    ``extra_manifest`` adds top-level manifest keys (training step, data, ...). Returns the directory.
    """
    final = Path(directory)
    if final.exists() and not (final / "manifest.json").is_file() and any(final.iterdir()):
        raise CheckpointError(f"{final}: exists and is not a lamm checkpoint; refusing to overwrite it")
    cfg = model.config
    weights = trainable_state_dict(model) if state_dict is None else dict(state_dict)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = owned_temp(final, "tmp")  # removes the temporaries of killed earlier saves first
    tmp.mkdir()
    try:
        _save_tensors(tmp / WEIGHTS, weights)
        llm_source = "hub_or_path"
        if cfg.llm_mode == "full":
            llm_source = WEIGHTS
        elif cfg.llm.name_or_path is None or model.base_llm_derived:
            llm_source = "base/llm"
            base = unwrap_base(model.llm)
            with quiet_hf_progress():
                base.save_pretrained(tmp / "base" / "llm", state_dict=dict(base_state_items(model.llm)))
        encoders = {}
        for m in model.encoders:
            frozen = _frozen_encoder_tensors(model, m, set(weights))
            pretrained = _encoder_is_pretrained(cfg, m)
            if frozen and not pretrained:
                (tmp / "base" / "encoders").mkdir(parents=True, exist_ok=True)
                _save_tensors(tmp / "base" / "encoders" / f"{m}.safetensors", frozen)
            encoders[m] = {"type": cfg.encoders[m].type,
                           "id": getattr(cfg.encoders[m], "name_or_path", None) or "random-init",
                           "frozen": model.encoder_is_frozen(m), "frozen_sha256": _tensors_sha256(frozen),
                           "num_tokens": model.num_media_tokens(m)}
        model.tokenizer.save_pretrained(tmp / "tokenizer")
        cfg.dump(tmp / "config.yaml")
        weights_sha = _file_sha256(tmp / WEIGHTS)
        hf_conf = unwrap_base(model.llm).config
        manifest: dict[str, Any] = {
            "format": FORMAT, "format_version": FORMAT_VERSION,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "template": cfg.template, "llm_mode": cfg.llm_mode,
            "base_llm": {"id": cfg.llm.name_or_path or "random-init", "source": llm_source,
                         "sha256": model.base_llm_sha256, "model_type": getattr(hf_conf, "model_type", None),
                         "dtype": cfg.llm.dtype},
            "encoders": encoders,
            "lora": ({**(describe_lora(model.llm) or {}), "resolved_targets": model.lora_targets}
                     if cfg.llm_mode == "lora" else None),
            "tokenizer": {"source": cfg.tokenizer_source, "size": len(model.tokenizer),
                          "media_token_ids": model.media_token_ids},
            "weights": {"file": WEIGHTS, "sha256": weights_sha, "tensors": len(weights)},
            "parameters": model.parameter_counts(),
            "versions": _versions(),
        }
        fp = hashlib.sha256(json.dumps([weights_sha, model.base_llm_sha256, cfg.to_yaml(),
                                        {m: e["frozen_sha256"] for m, e in encoders.items()}]).encode())
        manifest["fingerprint"] = fp.hexdigest()
        for key, value in (extra_manifest or {}).items():
            if key in manifest:
                raise CheckpointError(f"extra_manifest key {key!r} would overwrite a manifest field")
            manifest[key] = value
        write_json_atomic(tmp / "manifest.json", manifest)
        (tmp / "COMPLETE").write_text("ok\n", encoding="utf-8")
        _relax_permissions(tmp)
        replace_dir(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


# --------------------------------------------------------------------------------------------- load
def _load_file(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(path))


def load_checkpoint(directory: str | os.PathLike, device: str | torch.device = "cpu", *,
                    base_llm: str | None = None) -> MultimodalLM:
    """Load a checkpoint as a :class:`MultimodalLM` on ``device``, in eval mode.

    ``base_llm`` loads the base LLM from another local path / hub id than recorded (a moved copy); its
    sha256 must still match the manifest. Raises :class:`CheckpointError` for an incomplete directory, a
    base or frozen encoder whose sha256 differs from the manifest (naming both), or weights that do not
    fit the model (naming the keys).
    """
    from transformers import AutoTokenizer

    d = Path(directory)
    manifest = read_manifest(d)
    cfg = config_from_dict(ModelConfig, load_yaml(d / "config.yaml"), str(d / "config.yaml"))
    want = manifest["base_llm"]
    needed = [d / "tokenizer"] + ([d / "base" / "llm"] if want.get("source") == "base/llm" and not base_llm else [])
    for sub in needed:
        if not sub.is_dir():
            raise CheckpointError(f"{d}: {sub.name}/ is missing ({sub}); the checkpoint was copied incompletely — "
                                  "copy the whole directory")
    tokenizer = AutoTokenizer.from_pretrained(str(d / "tokenizer"))
    llm_path = base_llm or (str(d / "base" / "llm") if (d / "base" / "llm").is_dir() else None)
    model = MultimodalLM.from_config(cfg, tokenizer=tokenizer, llm_path=llm_path)
    # a base saved beside a named one (merged LoRA, ...) stays with the checkpoint when it is saved again
    model.base_llm_derived = cfg.llm.name_or_path is not None and want.get("source") == "base/llm"
    if cfg.llm_mode != "full" and want.get("sha256") != model.base_llm_sha256:
        got_from = llm_path or cfg.llm.name_or_path or "random init from config"
        raise CheckpointError(
            f"{d}: base LLM mismatch — the checkpoint was trained on {want.get('id')!r} (sha256 "
            f"{str(want.get('sha256'))[:16]}…) but the base loaded from {got_from!r} has sha256 "
            f"{str(model.base_llm_sha256)[:16]}…; load it with the base it was trained on (base_llm=...)")
    weights = _load_file(d / WEIGHTS)
    covered = set(weights)  # keys given by a file of this checkpoint
    for m in model.encoders:
        f = d / "base" / "encoders" / f"{m}.safetensors"
        if f.is_file():
            frozen_file = _load_file(f)
            _, unexpected = model.encoders[m].load_state_dict(frozen_file, strict=False)
            if unexpected:
                raise CheckpointError(f"{f}: tensors {unexpected[:5]} do not exist in the {m} encoder")
            covered |= {f"encoders.{m}.{k}" for k in frozen_file}
        frozen = _frozen_encoder_tensors(model, m, set(weights))
        want_enc = manifest["encoders"].get(m, {}).get("frozen_sha256")
        got_enc = _tensors_sha256(frozen)
        if want_enc != got_enc:
            raise CheckpointError(f"{d}: {m} encoder mismatch — frozen weights sha256 {str(want_enc)[:16]}… in "
                                  f"the manifest, {str(got_enc)[:16]}… loaded from "
                                  f"{getattr(cfg.encoders[m], 'name_or_path', None) or f}")
    # Weights trainable under the config must come from a file: a trainer may have frozen an encoder for
    # a stage, which moves its weights from weights.safetensors to base/encoders/.
    expected = set(trainable_state_dict(model))
    model_keys = set(model.state_dict())
    unexpected = sorted(set(weights) - model_keys)
    missing = sorted(expected - covered)
    if unexpected or missing:
        raise CheckpointError(f"{d / WEIGHTS}: does not fit the model built from config.yaml: "
                              f"{len(missing)} missing (e.g. {missing[:3]}), {len(unexpected)} unexpected "
                              f"(e.g. {unexpected[:3]})")
    model.load_state_dict(weights, strict=False)
    return model.to(device).eval()

