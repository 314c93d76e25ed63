"""``MultimodalLM``: encoders + projectors + a Hugging Face causal LM, joined by placeholder splicing.

A conversation is tokenized by :mod:`lamm.conversation` with ONE placeholder id (``<image>``/``<pcl>``)
per media item. At collate time :func:`expand_placeholders` repeats each placeholder ``T`` times (``T``
= :meth:`MultimodalLM.num_media_tokens`, the projector's output token count) with labels ``-100``. In
:meth:`MultimodalLM.forward` the token embeddings at placeholder positions are replaced, with
``masked_scatter``, by the projected encoder tokens: media items fill their modality's placeholder runs in
order through the batch (row-major), so ``media[m][k]`` is the ``k``-th ``m`` placeholder run.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from lamm.conversation import IGNORE_INDEX, PLACEHOLDERS, MediaRef, TokenizedConversation, stop_strings
from lamm.model.config import ModelConfig
from lamm.model.llm import (
    add_media_tokens,
    build_llm,
    decode_loop,
    llm_fingerprint,
    load_tokenizer,
    media_token_ids,
)
from lamm.model.lora import apply_llm_mode, is_lora_param, unwrap_base


def _plain_lm_head(base: nn.Module) -> bool:
    """True when ``base``'s logits are just its output embedding applied to the decoder's last hidden
    state (no soft-capping or scaling), so the head can run on a subset of positions."""
    conf = getattr(base, "config", None)
    if conf is None or not hasattr(base, "get_decoder") or base.get_output_embeddings() is None:
        return False
    conf = conf.get_text_config(decoder=True) if hasattr(conf, "get_text_config") else conf
    extras = ("final_logit_softcapping", "logit_scale", "logits_scaling", "output_multiplier_scale",
              "lm_head_multiplier", "output_multiplier")
    return not any(getattr(conf, k, None) not in (None, 1, 1.0) for k in extras)


@dataclass
class ModelOutput:
    """``loss``: mean (or, with ``reduction="sum"``, summed) next-token cross entropy over supervised
    tokens, None without labels; ``logits``: ``(B, L, V)`` (or ``(N, V)`` with ``logits="supervised"``);
    ``n_supervised``: int64 scalar tensor."""

    loss: Tensor | None
    logits: Tensor
    n_supervised: Tensor


@dataclass(frozen=True)
class PlaceholderSpec:
    """What collation needs from a model, picklable for DataLoader workers: ``{modality: placeholder id}``
    and ``{modality: tokens per item}``."""

    token_ids: dict[str, int]
    num_tokens: dict[str, int]

    def expand(self, input_ids: Sequence[int], labels: Sequence[int], media_modalities: Sequence[str],
               sample_id: str | None = None) -> tuple[list[int], list[int]]:
        """See :func:`expand_placeholders`."""
        return expand_placeholders(input_ids, labels, media_modalities, self, sample_id)


def expand_placeholders(input_ids: Sequence[int], labels: Sequence[int], media_modalities: Sequence[str],
                        spec: PlaceholderSpec, sample_id: str | None = None) -> tuple[list[int], list[int]]:
    """Repeat each placeholder id ``spec.num_tokens[modality]`` times; those positions get label ``-100``.

    ``media_modalities`` lists the sample's media in order; the placeholders in ``input_ids`` must name
    the same modalities in the same order, else ``ValueError`` with the sample id and both counts.
    """
    if len(input_ids) != len(labels):
        raise ValueError(f"sample {sample_id!r}: {len(input_ids)} input ids but {len(labels)} labels")
    by_id = {tid: m for m, tid in spec.token_ids.items()}
    found = [by_id[t] for t in input_ids if t in by_id]
    if found != list(media_modalities):
        for m in media_modalities:
            if m not in spec.num_tokens:
                raise ValueError(f"sample {sample_id!r}: {m!r} media but the model has no {m!r} encoder "
                                 f"(it has {sorted(spec.num_tokens)})")
        counts = {m: (found.count(m), list(media_modalities).count(m)) for m in sorted(set(found) | set(media_modalities))}
        detail = ", ".join(f"{PLACEHOLDERS[m]}: {a} in the text vs {b} media" for m, (a, b) in counts.items())
        raise ValueError(f"sample {sample_id!r}: placeholders do not match the media ({detail}; order "
                         f"{found} vs {list(media_modalities)})")
    ids: list[int] = []
    labs: list[int] = []
    for t, lab in zip(input_ids, labels):
        if t in by_id:
            n = spec.num_tokens[by_id[t]]
            ids.extend([t] * n)
            labs.extend([IGNORE_INDEX] * n)
        else:
            ids.append(t)
            labs.append(lab)
    return ids, labs


def preprocess_media(cfg: ModelConfig, media: Sequence[MediaRef], root: str | os.PathLike | None = None,
                     sample_seeds: Sequence[int] | None = None) -> dict[str, Tensor]:
    """THE place media become tensors: ``{modality: (M_mod, ...)}`` in the order of ``media``.

    Images → ``(M, 3, S, S)`` (``cfg.image_preprocess``); point clouds → ``(M, N, 3|6)`` float32
    (``cfg.pcl_preprocess``) sampled with ``sample_seeds[i]`` — derive it with
    ``lamm.model.encoders.preprocess.sample_seed(sample_id, base_seed)``; without seeds, the seed comes
    from the cloud's own bytes, so the same cloud is sampled the same way wherever its file lies (a seed
    from the path made benchmark numbers depend on the output folder). Pure CPU, needs no model: safe
    in DataLoader workers.
    Modalities with no media are absent from the result.
    """
    from lamm.model.encoders.preprocess import preprocess_images, preprocess_point_cloud, sample_seed

    if sample_seeds is not None and len(sample_seeds) != len(media):
        raise ValueError(f"{len(media)} media but {len(sample_seeds)} sample seeds")

    def load(m: MediaRef) -> Any:
        # not m.load(): that caches the data on the ref, and a DataLoader worker would keep every image;
        # read() applies a derived ref's transform (MediaRef.transform: a corrupted copy stays corrupted)
        return m.read(root)

    images = [load(m) for m in media if m.modality == "image"]
    clouds = []
    for i, m in enumerate(media):
        if m.modality == "pcl":
            cloud = load(m)
            if sample_seeds is not None:
                seed = sample_seeds[i]
            else:
                digest = hashlib.sha256(np.ascontiguousarray(cloud).tobytes()).hexdigest()[:16]
                seed = sample_seed(f"cloud:{digest}", 0)
            clouds.append(preprocess_point_cloud(cloud, cfg.pcl_preprocess, seed))
    out: dict[str, Tensor] = {}
    if images:
        out["image"] = preprocess_images(images, cfg.image_preprocess)
    if clouds:
        out["pcl"] = torch.from_numpy(np.stack(clouds))
    return out


class MultimodalLM(nn.Module):
    """Encoders (``ModuleDict[modality]``) → projectors (``ModuleDict[modality]``) → ``llm`` (a HF causal LM,
    peft-wrapped in ``llm_mode="lora"``), with its ``tokenizer`` and ``config`` (:class:`ModelConfig`).

    Unused modalities under DDP: when ``ensure_all_params_used`` is true (default None = only when
    ``torch.distributed`` is initialised) and a training batch has no media of a modality whose encoder
    or projector trains, that encoder + projector run on ONE all-zero dummy item and ``0 × sum`` of the
    result is added to the embeddings — every trainable parameter joins the graph (gets a zero gradient),
    so DDP's reducer and FSDP's hooks never wait for it. It costs one tiny extra encoder call.
    """

    def __init__(self, config: ModelConfig, encoders: dict[str, nn.Module], projectors: dict[str, nn.Module],
                 llm: nn.Module, tokenizer: Any, base_llm_sha256: str | None = None,
                 lora_targets: list[str] | None = None) -> None:
        super().__init__()
        self.config = config
        self.encoders = nn.ModuleDict(encoders)
        self.projectors = nn.ModuleDict(projectors)
        self.llm = llm
        self.tokenizer = tokenizer
        self.base_llm_sha256 = base_llm_sha256
        #: True when the base LLM is no longer what ``config.llm.name_or_path`` loads (a LoRA merged into it,
        #: or a fully trained LLM made the base of a LoRA run): checkpoints then carry it under ``base/llm``
        self.base_llm_derived = False
        self.lora_targets = lora_targets or []
        self.ensure_all_params_used: bool | None = None
        self.media_token_ids = {m: t for m, t in media_token_ids(tokenizer).items() if m in self.encoders}
        missing = set(self.encoders) - set(self.media_token_ids)
        if missing:
            raise ValueError(f"tokenizer lacks placeholder tokens for {sorted(missing)}; call add_media_tokens")

    # ----------------------------------------------------------------------------------------- build
    @classmethod
    def from_config(cls, cfg: ModelConfig, *, tokenizer: Any = None, llm_path: str | None = None,
                    device: str | torch.device | None = None) -> MultimodalLM:
        """Build every part from ``cfg`` (random init or pretrained, per each part's config), add the media
        tokens, fingerprint the base LLM, then apply ``cfg.llm_mode``. ``tokenizer`` / ``llm_path`` override
        where the tokenizer and the base LLM weights come from (checkpoint loading uses them).
        ``device`` builds the parts there (a random-init 7B initialises in seconds on a GPU, minutes on a
        CPU); random values then differ from a CPU build with the same seed."""
        tok = tokenizer if tokenizer is not None else load_tokenizer(cfg.tokenizer_source)
        add_media_tokens(tok)
        with torch.device(device) if device is not None else contextlib.nullcontext():
            return cls._build(cfg, tok, llm_path)

    @classmethod
    def _build(cls, cfg: ModelConfig, tok: Any, llm_path: str | None) -> MultimodalLM:
        from lamm.model.encoders import build_encoder
        from lamm.model.encoders.preprocess import sample_seed
        from lamm.model.projector import build_projector

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed)
            llm = build_llm(cfg.llm, vocab_size=len(tok), path=llm_path)
        add_media_tokens(tok, llm)
        base_hash = llm_fingerprint(llm)
        hidden = llm.get_input_embeddings().embedding_dim
        encoders, projectors = {}, {}
        for m, ecfg in cfg.encoders.items():
            encoders[m] = build_encoder(ecfg)
            pcfg = cfg.projectors[m]
            if pcfg.in_dim != encoders[m].out_dim or pcfg.out_dim != hidden:
                raise ValueError(f"projectors.{m}: in_dim={pcfg.in_dim}, out_dim={pcfg.out_dim} but the {m} "
                                 f"encoder gives {encoders[m].out_dim}-d tokens and the LLM hidden size is "
                                 f"{hidden}; set in_dim={encoders[m].out_dim}, out_dim={hidden}")
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(sample_seed(f"projector/{m}", cfg.seed))
                projectors[m] = build_projector(pcfg)
        llm, targets = apply_llm_mode(llm, cfg.llm_mode, cfg.lora)
        return cls(cfg, encoders, projectors, llm, tok, base_llm_sha256=base_hash, lora_targets=targets)

    # ----------------------------------------------------------------------------------- properties
    @property
    def device(self) -> torch.device:
        return self.llm.get_input_embeddings().weight.device

    @property
    def placeholder_spec(self) -> PlaceholderSpec:
        """The picklable expansion spec for collate functions."""
        return PlaceholderSpec(dict(self.media_token_ids), {m: self.num_media_tokens(m) for m in self.encoders})

    def num_media_tokens(self, modality: str) -> int:
        """LLM positions one ``modality`` item occupies (the projector's output token count)."""
        if modality not in self.encoders:
            raise KeyError(f"model has no {modality!r} encoder (it has {sorted(self.encoders)})")
        return int(self.projectors[modality].num_output_tokens(self.encoders[modality].num_tokens))

    def expand_placeholders(self, input_ids: Sequence[int], labels: Sequence[int],
                            media_modalities: Sequence[str], sample_id: str | None = None) -> tuple[list[int], list[int]]:
        """:func:`expand_placeholders` with this model's spec."""
        return expand_placeholders(input_ids, labels, media_modalities, self.placeholder_spec, sample_id)

    def preprocess_media(self, media: Sequence[MediaRef], root: str | os.PathLike | None = None,
                         sample_seeds: Sequence[int] | None = None) -> dict[str, Tensor]:
        """:func:`preprocess_media` with this model's config."""
        return preprocess_media(self.config, media, root, sample_seeds)

    def tokenize(self, conv: Any, add_generation_prompt: bool = False) -> TokenizedConversation:
        """``lamm.conversation.tokenize_conversation`` with this model's tokenizer and template."""
        from lamm.conversation import tokenize_conversation

        return tokenize_conversation(conv, self.tokenizer, self.config.template, add_generation_prompt)

    def stop_strings(self) -> list[str]:
        """Strings that end an assistant turn under this model's template."""
        return stop_strings(self.config.template, self.tokenizer)

    def encoder_is_frozen(self, modality: str) -> bool:
        return not any(p.requires_grad for p in self.encoders[modality].parameters())

    def train(self, mode: bool = True) -> MultimodalLM:
        """Frozen encoders stay in eval mode (no dropout noise, no drifting norm statistics)."""
        super().train(mode)
        for m, enc in self.encoders.items():
            if self.encoder_is_frozen(m):
                enc.eval()
        return self

    # -------------------------------------------------------------------------------------- forward
    def encode_media(self, modality: str, x: Tensor) -> Tensor:
        """``x`` ``(M, ...)`` preprocessed media → ``(M, T, hidden)`` LLM-space tokens."""
        enc = self.encoders[modality]
        x = x.to(self.device)
        if self.encoder_is_frozen(modality):
            with torch.no_grad():
                feats = enc(x)
        else:
            feats = enc(x)
        proj = self.projectors[modality]
        w = next(proj.parameters())
        return proj(feats.to(w.dtype))

    def _dummy(self, modality: str) -> Tensor:
        if modality == "image":
            s = self.config.image_preprocess.size
            return torch.zeros(1, 3, s, s)
        p = self.config.pcl_preprocess
        return torch.zeros(1, p.num_points, p.channels)

    def _touch_unused(self, modality: str) -> bool:
        flag = self.ensure_all_params_used
        if flag is None:
            flag = torch.distributed.is_available() and torch.distributed.is_initialized()
        trainable = any(p.requires_grad for p in self.encoders[modality].parameters()) or any(
            p.requires_grad for p in self.projectors[modality].parameters())
        return bool(flag) and trainable and self.training and torch.is_grad_enabled()

    def embed(self, input_ids: Tensor, media: dict[str, Tensor] | None) -> Tensor:
        """Token embeddings ``(B, L, hidden)`` with placeholder positions replaced by media tokens.

        Raises ``ValueError`` when a modality's placeholder positions differ from ``M × T`` (both given).
        """
        media = media or {}
        unknown = set(media) - set(self.encoders)
        if unknown:
            raise ValueError(f"media for {sorted(unknown)} but the model has encoders for {sorted(self.encoders)}")
        embeds = self.llm.get_input_embeddings()(input_ids)
        for modality, tid in sorted(self.media_token_ids.items()):
            mask = input_ids == tid
            n_pos = int(mask.sum())
            x = media.get(modality)
            if x is None or len(x) == 0:
                if n_pos:
                    raise ValueError(f"{n_pos} {PLACEHOLDERS[modality]} positions in input_ids but no {modality} media")
                if self._touch_unused(modality):
                    embeds = embeds + 0.0 * self.encode_media(modality, self._dummy(modality)).sum().to(embeds.dtype)
                continue
            feats = self.encode_media(modality, x)
            m, t, d = feats.shape
            if m * t != n_pos:
                raise ValueError(
                    f"{n_pos} {PLACEHOLDERS[modality]} positions in input_ids but {m} {modality} items × {t} "
                    f"tokens = {m * t}; expand placeholders at collate time (model.expand_placeholders)")
            embeds = embeds.masked_scatter(mask.unsqueeze(-1), feats.reshape(m * t, d).to(embeds.dtype))
        return embeds

    def forward(self, input_ids: Tensor, attention_mask: Tensor | None = None, media: dict[str, Tensor] | None = None,
                labels: Tensor | None = None, position_ids: Tensor | None = None,
                reduction: str = "mean", logits: str = "all",
                attention_kwargs: dict[str, Any] | None = None) -> ModelOutput:
        """Run the model on expanded ids.

        Args:
            input_ids: ``(B, L)`` int64 with expanded placeholders; attention_mask: ``(B, L)`` 1 = token.
            media: ``{modality: (M_mod, ...)}`` from :meth:`preprocess_media`, items in placeholder order.
            labels: ``(B, L)``, ``-100`` = not supervised (placeholder positions are forced to ``-100``);
                the loss compares ``logits[:, t]`` with ``labels[:, t + 1]``.
            position_ids: ``(B, L)``; default ``cumsum(attention_mask) - 1`` (right or left padding alike).
                Pass them for packed sequences.
            reduction: ``"mean"`` over supervised tokens, or ``"sum"`` — divide by the global
                ``n_supervised`` so the loss does not depend on how a batch is split.
            logits: ``"all"`` — ``logits`` is ``(B, L, V)``, as from the HF model; ``"supervised"`` (with
                ``labels``; the trainer's choice) — the LM head runs only on the positions that predict a
                supervised token and ``logits`` is ``(N, V)`` for those, in order. Same loss and gradients;
                in LAMM data most positions are image or prompt tokens, so this skips most of the head's
                work and the largest activation of the step. Models whose head does more than one linear
                layer (logit soft-capping or scaling) always take the ``"all"`` path.
            attention_kwargs: extra keyword arguments for the LLM's attention calls (the sample
                boundaries ``cu_seq_lens_q`` / ``max_length_q`` of ``lamm_varlen`` attention).
        """
        attention_kwargs = attention_kwargs or {}
        if reduction not in ("mean", "sum"):
            raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
        if logits not in ("all", "supervised"):
            raise ValueError(f"logits must be 'all' or 'supervised', got {logits!r}")
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        if position_ids is None:
            position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
        embeds = self.embed(input_ids, media)
        if labels is not None:
            for tid in self.media_token_ids.values():
                labels = labels.masked_fill(input_ids == tid, IGNORE_INDEX)
        base = unwrap_base(self.llm)
        if labels is not None and logits == "supervised" and _plain_lm_head(base):
            hidden = base.get_decoder()(inputs_embeds=embeds, attention_mask=attention_mask,
                                        position_ids=position_ids, use_cache=False, **attention_kwargs).last_hidden_state
            shift_labels = labels[:, 1:]
            keep = shift_labels != IGNORE_INDEX
            out_logits = base.get_output_embeddings()(hidden[:, :-1][keep])  # (N, V)
            loss = F.cross_entropy(out_logits.float(), shift_labels[keep], reduction="sum")
            n = keep.sum()
        else:
            out = self.llm(inputs_embeds=embeds, attention_mask=attention_mask, position_ids=position_ids,
                           use_cache=False, **attention_kwargs)
            out_logits = out.logits
            if labels is None:
                return ModelOutput(None, out_logits, torch.zeros((), dtype=torch.long, device=out_logits.device))
            shift_labels = labels[:, 1:].reshape(-1)
            shift_logits = out_logits[:, :-1].reshape(-1, out_logits.shape[-1]).float()
            loss = F.cross_entropy(shift_logits, shift_labels, ignore_index=IGNORE_INDEX, reduction="sum")
            n = (shift_labels != IGNORE_INDEX).sum()
        if reduction == "mean":
            loss = loss / n.clamp(min=1)
        return ModelOutput(loss, out_logits, n)

    # ------------------------------------------------------------------------------------ inference
    def _left_padded(self, seqs: list[list[int]]) -> tuple[Tensor, Tensor]:
        width = max(len(s) for s in seqs)
        pad = self.tokenizer.pad_token_id
        ids = torch.full((len(seqs), width), pad, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for i, s in enumerate(seqs):
            ids[i, width - len(s):] = torch.tensor(s, dtype=torch.long)
            mask[i, width - len(s):] = 1
        return ids.to(self.device), mask.to(self.device)

    def _prompt_ids(self, prompts: Sequence[TokenizedConversation]) -> list[list[int]]:
        spec = self.placeholder_spec
        return [spec.expand(p.input_ids, p.labels, [m.modality for m in p.media])[0] for p in prompts]

    def _llm_kwargs(self, keep: int) -> dict[str, Any]:
        # Computing logits only where needed saves (B, L, V) memory with 32k+ vocabularies.
        params = inspect.signature(unwrap_base(self.llm).forward).parameters
        return {"logits_to_keep": keep} if "logits_to_keep" in params else {}

    @torch.no_grad()
    def generate(self, prompts: Sequence[TokenizedConversation], media_tensors: dict[str, Tensor] | None = None, *,
                 max_new_tokens: int = 64, do_sample: bool = False, temperature: float = 1.0, top_p: float = 1.0,
                 stop_strings: Sequence[str] | None = None, seed: int | None = None) -> list[str]:
        """Continue each prompt (``add_generation_prompt=True`` conversations); one batch, LEFT padded.

        ``media_tensors``: preprocessed media of all prompts in order (None: preprocess ``p.media`` here).
        Greedy unless ``do_sample`` (then ``temperature`` and nucleus ``top_p``; ``seed`` seeds a private
        generator). A row stops at EOS or at any of ``stop_strings`` (default: the template's). Returns the
        new text of each prompt, cut before the stop string, special tokens dropped, whitespace stripped.
        """
        if not prompts:
            return []
        if media_tensors is None:
            media_tensors = self.preprocess_media([m for p in prompts for m in p.media])
        stops = list(stop_strings) if stop_strings is not None else self.stop_strings()
        ids, mask = self._left_padded(self._prompt_ids(prompts))
        was_training = self.training
        self.eval()
        try:
            embeds = self.embed(ids, media_tensors)
            return decode_loop(self.llm, self.tokenizer, embeds, mask, max_new_tokens=max_new_tokens,
                               do_sample=do_sample, temperature=temperature, top_p=top_p, stops=stops, seed=seed,
                               prefill_kwargs=self._llm_kwargs(1))
        finally:
            self.train(was_training)

    @torch.no_grad()
    def loglikelihood(self, prompts: Sequence[TokenizedConversation], continuations: Sequence[Sequence[int]],
                      media_tensors: dict[str, Tensor] | None = None) -> list[tuple[float, float, int]]:
        """Score ``continuations[i]`` (token ids, e.g. ``tokenize_continuation``) after ``prompts[i]``.

        Returns ``(sum log-prob, mean log-prob, n_tokens)`` per pair, natural log, float32 softmax. One
        forward, left padded so every continuation ends at the last position.
        """
        if len(prompts) != len(continuations):
            raise ValueError(f"{len(prompts)} prompts but {len(continuations)} continuations")
        if not prompts:
            return []
        if any(len(c) == 0 for c in continuations):
            raise ValueError("an empty continuation has no log-likelihood; give at least one token")
        if any(t in self.media_token_ids.values() for c in continuations for t in c):
            raise ValueError("a continuation holds a media placeholder id; continuations are text tokens only")
        if media_tensors is None:
            media_tensors = self.preprocess_media([m for p in prompts for m in p.media])
        seqs = [p + list(c) for p, c in zip(self._prompt_ids(prompts), continuations)]
        ids, mask = self._left_padded(seqs)
        n_max = max(len(c) for c in continuations)
        was_training = self.training
        self.eval()
        try:
            embeds = self.embed(ids, media_tensors)
            pos = (mask.cumsum(-1) - 1).clamp(min=0)
            out = self.llm(inputs_embeds=embeds, attention_mask=mask, position_ids=pos, use_cache=False,
                           **self._llm_kwargs(n_max + 1))
        finally:
            self.train(was_training)
        logp = torch.log_softmax(out.logits[:, -(n_max + 1):-1].float(), dim=-1)  # predicts the last n_max tokens
        results = []
        for i, c in enumerate(continuations):
            n = len(c)
            target = torch.tensor(list(c), device=logp.device)
            lp = logp[i, n_max - n:].gather(-1, target[:, None]).sum().item()
            results.append((lp, lp / n, n))
        return results

    # ---------------------------------------------------------------------------------- accounting
    def parameter_counts(self) -> dict[str, dict[str, int]]:
        """``{component: {"total", "trainable"}}`` for each encoder, projector, ``llm`` (base), ``llm.lora``,
        plus ``"all"``. Shared (tied) tensors count once."""
        groups: dict[str, dict[str, int]] = {}
        seen: set[int] = set()
        for name, p in self.named_parameters(remove_duplicate=False):
            if id(p) in seen:
                continue
            seen.add(id(p))
            parts = name.split(".")
            key = ".".join(parts[:2]) if parts[0] in ("encoders", "projectors") else "llm"
            if key == "llm" and is_lora_param(name):
                key = "llm.lora"
            g = groups.setdefault(key, {"total": 0, "trainable": 0})
            g["total"] += p.numel()
            g["trainable"] += p.numel() if p.requires_grad else 0
        groups["all"] = {k: sum(g[k] for g in groups.values()) for k in ("total", "trainable")}
        return groups
