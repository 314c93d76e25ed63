"""The language-model side: any Hugging Face causal LM, its tokenizer, media placeholder tokens.

* :func:`build_llm` loads ``AutoModelForCausalLM`` from a local path / hub id, or random-initialises it
  from a config dict (tests, the tiny preset, GPU benchmarks of a 7B shape).
* :func:`build_tiny_tokenizer` trains a small byte-level BPE tokenizer *in code* on a built-in corpus,
  so the tiny model needs no download; the result is identical on every call and machine.
* :func:`add_media_tokens` adds ``<image>`` / ``<pcl>`` as special tokens and resizes the embeddings,
  with new rows set to the mean of the old ones (deterministic, so a base re-loaded from the hub and
  resized again is bit-identical, and the base hash in a checkpoint manifest stays valid).
* :func:`llm_fingerprint` hashes a base LLM's architecture and weights (checkpoints record it).
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import json
from collections.abc import Iterator, Sequence
from typing import Any, Literal

import torch
from pydantic import model_validator
from torch import nn

from lamm.config import Config
from lamm.conversation import PLACEHOLDERS, SYSTEM_MESSAGES
from lamm.model.lora import unwrap_base

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


class LLMConfig(Config):
    """Which causal LM. Exactly one of ``name_or_path`` (pretrained: local dir or hub id) and ``config``
    (a transformers config dict with ``model_type``, random init; ``vocab_size`` defaults to the
    tokenizer's length)."""

    name_or_path: str | None = None
    config: dict[str, Any] | None = None
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    attn_implementation: str | None = "sdpa"

    @model_validator(mode="after")
    def _one_source(self) -> LLMConfig:
        if (self.name_or_path is None) == (self.config is None):
            raise ValueError("llm: give exactly one of name_or_path (pretrained) and config (random init)")
        if self.config is not None and "model_type" not in self.config:
            raise ValueError("llm.config needs a 'model_type' key (e.g. 'llama', 'gpt2')")
        return self


# ------------------------------------------------------------------------------------------ tokenizer
TINY_SPECIAL_TOKENS = ["<unk>", "<s>", "</s>", "<pad>", "<image>", "<pcl>", "<|system|>", "<|user|>", "<|assistant|>"]
# A Zephyr-like template. Written with explicit "\n" strings because HF renders chat templates with
# trim_blocks: a newline after a tag would vanish. Assistant turns end with EOS, the generation stop.
TINY_CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}"
    "{{ '<|' + m['role'] + '|>\\n' + m['content'] }}"
    "{% if m['role'] == 'assistant' %}{{ eos_token }}{% endif %}{{ '\\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}"
)

_COLOURS = ["red", "green", "blue", "yellow", "orange", "purple", "pink", "brown", "black", "white", "gray", "cyan"]
_SHAPES_2D = ["circle", "square", "triangle", "rectangle", "star", "ellipse", "hexagon", "diamond", "cross", "ring"]
_SHAPES_3D = ["cube", "sphere", "cylinder", "cone", "box", "pyramid", "torus", "plane", "chair", "table", "sofa",
              "bed", "lamp", "desk", "cabinet", "door", "window", "shelf"]
_NUMBER_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"]
_POSITIONS = ["left", "right", "top", "bottom", "center", "middle", "above", "below", "next to", "behind",
              "in front of", "top-left", "top-right", "bottom-left", "bottom-right", "corner", "near", "far"]
_QUESTIONS = [
    "What is the category of the object in the image?", "What shape is the {c} object?",
    "How many {s}s are there in the image?", "What colour is the {s}?", "Where is the {c} {s}?",
    "Describe the image in detail.", "Describe the point cloud in detail.", "What is in the point cloud?",
    "Find the {c} {s} and give its bounding box.", "Is there a {c} {s} in the image?",
    "What is the object in the point cloud?", "Locate the {s} in the scene.", "Count the {s}s.",
    "Which option is correct? Options: (A) {s} (B) {c} (C) none (D) both", "What words are written in the image?",
    "Give the 3D bounding box of the {s}.", "Can you see any {c} objects?", "What is the largest object?",
]
_ANSWERS = [
    "The object is a {c} {s}.", "There are {n} {s}s in the image.", "The {s} is {c}.", "The answer is (A).",
    "The answer is (B).", "The answer is (C).", "The answer is (D).", "Yes, there is a {c} {s}.",
    "No, there is no {c} {s}.", "The {c} {s} is at the {p} of the image.", "It is a {s}.",
    "The image shows a {c} {s} {p} a {s2}.", "The point cloud shows a {s} {p} a {s2}.",
    "The words are \"open\", \"stop\" and \"exit\".", "A {c} {s}: [0.12, 0.34, 0.56, 0.78].",
    "The {s} is at [1.25, -0.50, 0.75, 0.40, 0.40, 0.90].", "The keypoint is at [0.45, 0.60].",
]


def tiny_corpus() -> list[str]:
    """The built-in, deterministic training corpus of the tiny tokenizer (no randomness, no files).

    System messages, LAMM template scaffolding, LAMM-style questions/answers over shape, colour and
    position words, digits, numbers, boxes and punctuation; each template is filled exhaustively.
    """
    lines = list(SYSTEM_MESSAGES.values())
    lines += ["### Human: <Img></Img> \n### Assistant: \n###Human: \n###", "<Pcl></Pcl>", "<Img></Img>"]
    lines += ["0 1 2 3 4 5 6 7 8 9 . , ; : ! ? ' \" ( ) [ ] { } - + * / = % & # @ _ < > |"]
    shapes = _SHAPES_2D + _SHAPES_3D
    for k, q in enumerate(_QUESTIONS):
        for i, c in enumerate(_COLOURS):
            a = _ANSWERS[(k + i) % len(_ANSWERS)]
            s, s2 = shapes[(i + k) % len(shapes)], shapes[(3 * i + k + 5) % len(shapes)]
            p, n = _POSITIONS[(i + 2 * k) % len(_POSITIONS)], _NUMBER_WORDS[(i + k) % 11]
            fill = {"c": c, "s": s, "s2": s2, "p": p, "n": n}
            # the LAMM turn layout, so " The", "\n###" and friends become single tokens
            lines.append(f"### Human: {q.format(**fill)}\n### Assistant: {a.format(**fill)}\n###")
    lines += [f"{a}.{b:02d}" for a in range(-3, 4) for b in range(0, 100, 7)]
    lines += [" ".join(_COLOURS), " ".join(_SHAPES_2D), " ".join(_SHAPES_3D), " ".join(_NUMBER_WORDS)]
    return lines


def build_tiny_tokenizer(vocab_size: int = 1024) -> Any:
    """A byte-level BPE ``PreTrainedTokenizerFast`` trained on :func:`tiny_corpus`.

    Specials: ``<unk> <s> </s> <pad>`` (ids 0–3; bos/eos/pad/unk), ``<image> <pcl>`` (media
    placeholders), ``<|system|> <|user|> <|assistant|>`` (chat roles), and a ``chat_template``.
    Digits are split one per token (numbers in boxes are learnt digit by digit). Byte-level: any text
    round-trips. Training on a fixed corpus is deterministic, so the ids are the same on every call.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, min_frequency=2, special_tokens=TINY_SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
    )
    tok.train_from_iterator(tiny_corpus(), trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>", unk_token="<unk>",
        extra_special_tokens=TINY_SPECIAL_TOKENS[4:],
    )
    fast.chat_template = TINY_CHAT_TEMPLATE
    return fast


def load_tokenizer(source: str) -> Any:
    """``"tiny"`` → :func:`build_tiny_tokenizer`; otherwise ``AutoTokenizer.from_pretrained(source)``.

    A tokenizer without a pad token gets one (``unk``, else ``eos``): batching needs an id to pad with,
    and the attention mask keeps it out of every result.
    """
    if source == "tiny":
        return build_tiny_tokenizer()
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(source)
    if tok.pad_token is None:
        tok.pad_token = tok.unk_token if tok.unk_token is not None else tok.eos_token
    return tok


def media_token_ids(tokenizer: Any) -> dict[str, int]:
    """``{modality: placeholder id}`` for the placeholders the tokenizer knows (see :func:`add_media_tokens`)."""
    out = {}
    for modality, tok in PLACEHOLDERS.items():
        tid = tokenizer.convert_tokens_to_ids(tok)
        if tid is not None and tid != tokenizer.unk_token_id:
            out[modality] = int(tid)
    return out


def add_media_tokens(tokenizer: Any, model: nn.Module | None = None) -> int:
    """Add ``<image>`` / ``<pcl>`` as special tokens; grow ``model``'s embeddings to fit. Returns the
    number of tokens added.

    New embedding (and untied output) rows are the mean of the existing rows: placeholder embeddings are
    replaced by media features anyway, and a deterministic value keeps a re-loaded base bit-identical.
    """
    missing = [t for m, t in PLACEHOLDERS.items() if m not in media_token_ids(tokenizer)]
    if missing:
        tokenizer.add_special_tokens({"extra_special_tokens": missing}, replace_extra_special_tokens=False)
    if model is not None:
        emb = model.get_input_embeddings()
        old = emb.weight.shape[0]
        if len(tokenizer) > old:
            model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
            with torch.no_grad():
                new_in = model.get_input_embeddings().weight
                new_in[old:] = new_in[:old].mean(0, keepdim=True)
                out = model.get_output_embeddings()
                if out is not None and out.weight.data_ptr() != new_in.data_ptr():
                    out.weight[old:] = out.weight[:old].mean(0, keepdim=True)
                    if getattr(out, "bias", None) is not None:
                        out.bias[old:] = out.bias[:old].mean()
    return len(missing)


# ------------------------------------------------------------------------------------------------ LLM
@contextlib.contextmanager
def quiet_hf_progress() -> Iterator[None]:
    """Silence transformers' progress bars inside the block, restoring the previous setting after."""
    from transformers.utils import logging as hf_logging

    was = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was:
            hf_logging.enable_progress_bar()


def check_causal(llm: nn.Module) -> nn.Module:
    """``llm`` itself, or a ValueError when it is an encoder that ``AutoModelForCausalLM`` still accepts
    (BERT-style ``...LMHeadModel`` with ``is_decoder`` false): its attention sees the future, so training
    would learn to copy the answer and generation has no cache."""
    conf = llm.config
    base = getattr(llm, getattr(llm, "base_model_prefix", ""), None)
    if getattr(conf, "is_decoder", None) is False and base is not None and hasattr(base, "encoder"):
        raise ValueError(f"llm: {type(llm).__name__} is built as a bidirectional encoder (config.is_decoder is "
                         "false): set llm.config.is_decoder=true, or use a decoder-only language model")
    return llm


def build_llm(cfg: LLMConfig, vocab_size: int | None = None, path: str | None = None) -> nn.Module:
    """A Hugging Face causal LM in ``cfg.dtype``.

    ``path`` (a saved base, e.g. a checkpoint's ``base/llm``) overrides ``cfg.name_or_path``. With
    ``cfg.config`` (random init), ``vocab_size`` fills a missing ``vocab_size``; the caller seeds torch.
    """
    from transformers import AutoConfig, AutoModelForCausalLM

    dtype = DTYPES[cfg.dtype]
    kwargs: dict[str, Any] = {"dtype": dtype}
    if cfg.attn_implementation:
        kwargs["attn_implementation"] = cfg.attn_implementation
    try:
        if path is not None:
            with quiet_hf_progress():  # a checkpoint's own base: a progress bar per load is noise
                return check_causal(AutoModelForCausalLM.from_pretrained(path, **kwargs))
        if cfg.name_or_path is not None:
            return check_causal(AutoModelForCausalLM.from_pretrained(cfg.name_or_path, **kwargs))
        assert cfg.config is not None
        fields = dict(cfg.config)
        model_type = fields.pop("model_type")
        if "vocab_size" not in fields and vocab_size is not None:
            fields["vocab_size"] = vocab_size
            # a model type's default special ids may lie outside a vocabulary sized to the tokenizer
            # (Phi-3's pad/eos 32000 against ~1k tokens): the embedding then refuses its padding row
            for key in ("pad_token_id", "bos_token_id", "eos_token_id"):
                default = getattr(AutoConfig.for_model(model_type), key, None)
                if key not in fields and isinstance(default, int) and default >= vocab_size:
                    fields[key] = None
        hf_cfg = AutoConfig.for_model(model_type, **fields)
        return check_causal(AutoModelForCausalLM.from_config(hf_cfg, **kwargs))
    except ValueError as e:
        if cfg.attn_implementation and "attention implementation" in str(e).lower():
            raise ValueError(f"llm.attn_implementation={cfg.attn_implementation!r} is not supported by this "
                             f"model ({e}); set llm.attn_implementation=eager") from None
        raise


def compile_decoder_layers(llm: nn.Module) -> int:
    """``torch.compile`` every decoder layer of ``llm`` in place (regional compilation); returns how many.

    Layers are the modules whose class the HF model lists in ``_no_split_modules`` (e.g.
    ``LlamaDecoderLayer``). Identical layers reuse one compiled graph, so compiling 32 costs about as
    much as compiling one. A model that names no layer class is an error, not a silent no-op.
    """
    base = unwrap_base(llm)
    names = set(getattr(base, "_no_split_modules", None) or [])
    layers = [m for m in base.modules() if type(m).__name__ in names]
    if not layers:
        raise ValueError(f"{type(base).__name__} names no decoder layer class (_no_split_modules); "
                         "compile_layers needs one")
    for layer in layers:
        layer.compile(dynamic=True)  # packed rows change length every step: one shape-generic graph
    return len(layers)


_ARCH_KEYS = ("model_type", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
              "num_key_value_heads", "vocab_size", "max_position_embeddings", "n_embd", "n_layer", "n_head",
              "rope_theta", "rms_norm_eps", "tie_word_embeddings")


def base_state_items(model: nn.Module) -> list[tuple[str, torch.Tensor]]:
    """The base weights of a (possibly peft-wrapped) LLM under their plain HF names, sorted.

    LoRA tensors are dropped and peft's ``base_model.model.`` / ``.base_layer`` renames undone, so the
    same base gives the same items before and after LoRA is attached.
    """
    items = []
    for name, t in model.state_dict().items():
        if "lora_" in name:
            continue
        name = name.removeprefix("base_model.model.").replace(".base_layer.", ".")
        items.append((name, t))
    return sorted(items, key=lambda kv: kv[0])


def llm_fingerprint(model: nn.Module) -> str:
    """sha256 over the LLM's architecture fields and every base weight (name, dtype, shape, bytes)."""
    h = hashlib.sha256()
    conf = getattr(model, "config", None)
    arch = {k: getattr(conf, k) for k in _ARCH_KEYS if conf is not None and hasattr(conf, k)}
    h.update(json.dumps(arch, sort_keys=True, default=str).encode())
    for name, t in base_state_items(model):
        update_tensor_hash(h, name, t)
    return h.hexdigest()


def update_tensor_hash(h: Any, name: str, t: torch.Tensor) -> None:
    """Feed one named tensor (name, dtype, shape, raw bytes) into hash ``h``."""
    t = t.detach().to("cpu").contiguous()
    h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
    if t.numel():
        h.update(memoryview(t.reshape(-1).view(torch.uint8).numpy()))


# --------------------------------------------------------------------------------------------- decode
RowGenerators = list["torch.Generator | None"]


def row_generators(seed: int | Sequence[int | None] | None, batch: int,
                   device: torch.device | str) -> RowGenerators | None:
    """One private generator per row of a decoding batch, seeded with that row's seed.

    ``seed`` is one int for every row, or one seed (or None) per row. Each row then draws its tokens
    from its own stream only, so a seeded request samples the same reply alone, in any batch, and
    streamed. None (no seed anywhere) keeps torch's global generator. Seeds are taken modulo 2**64,
    as torch itself does for negative ones, so any int is a valid seed.
    """
    if seed is None:
        return None
    seeds = [seed] * batch if isinstance(seed, int) else list(seed)
    if len(seeds) != batch:
        raise ValueError(f"{len(seeds)} seeds for a batch of {batch} rows")
    if all(s is None for s in seeds):
        return None
    gens: RowGenerators = []
    for s in seeds:
        if s is None:
            gens.append(None)  # this row samples from the global generator, as without any seed
        else:
            g = torch.Generator(device=device)
            g.manual_seed(int(s) % 2**64)
            gens.append(g)
    return gens


def _pick(logits: torch.Tensor, do_sample: bool, temperature: float, top_p: float,
          gen: torch.Generator | RowGenerators | None) -> torch.Tensor:
    """Next token ids ``(B,)`` from last-position logits ``(B, V)``: argmax, or temperature + nucleus
    sampling.

    ``gen``: one generator for the whole batch, or one per row (:func:`row_generators`; row ``i`` then
    samples with ``gen[i]`` alone, so its tokens do not depend on the other rows)."""
    if not do_sample or temperature <= 0:
        return logits.argmax(-1)
    probs = torch.softmax(logits / temperature, dim=-1)
    if top_p < 1.0:
        sorted_p, order = probs.sort(dim=-1, descending=True)
        # keep the smallest prefix whose mass reaches top_p (the top token always stays)
        drop = sorted_p.cumsum(-1) - sorted_p >= top_p
        drop[..., 0] = False  # top_p <= 0 would drop every token otherwise
        sorted_p = sorted_p.masked_fill(drop, 0.0)
        probs = torch.zeros_like(probs).scatter(-1, order, sorted_p)
    if isinstance(gen, list):
        if len(gen) != probs.shape[0]:
            raise ValueError(f"{len(gen)} row generators for a batch of {probs.shape[0]} rows")
        rows = [torch.multinomial(probs[i:i + 1], 1, generator=g) for i, g in enumerate(gen)]
        return torch.cat(rows).squeeze(-1)
    return torch.multinomial(probs, 1, generator=gen).squeeze(-1)


def _cut(text: str, stops: list[str]) -> tuple[str, bool]:
    hits = [text.find(s) for s in stops if s and s in text]
    return (text[: min(hits)], True) if hits else (text, False)


class RowFinisher:
    """The new tokens of each row of a decoding batch, and whether the row has ended.

    A row ends at EOS (not kept) or when its text contains a stop string. Only the last tokens are
    decoded to look for a stop string that the newest token completed: a stop of ``n`` characters
    spans at most ``4n`` tokens (every token decodes to at least one byte), so the check costs the same
    at token 1 and token 1,000.
    """

    def __init__(self, tokenizer: Any, batch: int, stops: list[str]) -> None:
        self.tokenizer, self.stops = tokenizer, [s for s in stops if s]
        self.window = 4 * max((len(s) for s in self.stops), default=0) + 1
        self.eos = tokenizer.eos_token_id
        self.new: list[list[int]] = [[] for _ in range(batch)]
        self.done = [False] * batch

    def push(self, tokens: list[int]) -> bool:
        """Add one token per row (ignored for ended rows); True when every row has ended."""
        for i, t in enumerate(tokens):
            if self.done[i]:
                continue
            if t == self.eos:
                self.done[i] = True
                continue
            self.new[i].append(t)
            if self.stops:
                tail = self.tokenizer.decode(self.new[i][-self.window:], skip_special_tokens=False)
                self.done[i] = _cut(tail, self.stops)[1]
        return all(self.done)

    def texts(self) -> list[str]:
        """Each row's text: special tokens dropped, cut before the first stop string, stripped."""
        return [_cut(self.tokenizer.decode(ids, skip_special_tokens=True), self.stops)[0].strip()
                for ids in self.new]

    def counts(self) -> list[int]:
        """Tokens decoded per row: a stop string's tokens included, the EOS that ended a row not."""
        return [len(ids) for ids in self.new]

    def finish_reasons(self) -> list[str]:
        """Why each row ended: ``"stop"`` (EOS or a stop string), else ``"length"`` (the decoding
        budget ran out first)."""
        return ["stop" if d else "length" for d in self.done]


def cache_argument(llm: nn.Module) -> str:
    """The forward argument that takes a KV cache: ``cache`` (transformers 5) or ``past_key_values``."""
    return "cache" if "cache" in inspect.signature(unwrap_base(llm).forward).parameters else "past_key_values"


def decode_loop(llm: nn.Module, tokenizer: Any, embeds: torch.Tensor, mask: torch.Tensor, *, max_new_tokens: int,
                do_sample: bool, temperature: float, top_p: float, stops: list[str],
                seed: int | Sequence[int | None] | None,
                prefill_kwargs: dict[str, Any] | None = None) -> list[str]:
    """The new text per row of :func:`decode_rows` (same arguments): up to EOS / the first stop string,
    special tokens dropped, stripped."""
    return decode_rows(llm, tokenizer, embeds, mask, max_new_tokens=max_new_tokens, do_sample=do_sample,
                       temperature=temperature, top_p=top_p, stops=stops, seed=seed,
                       prefill_kwargs=prefill_kwargs).texts()


@torch.no_grad()
def decode_rows(llm: nn.Module, tokenizer: Any, embeds: torch.Tensor, mask: torch.Tensor, *,
                max_new_tokens: int, do_sample: bool, temperature: float, top_p: float, stops: list[str],
                seed: int | Sequence[int | None] | None,
                prefill_kwargs: dict[str, Any] | None = None) -> RowFinisher:
    """Batched decoding with a KV cache from LEFT-padded ``embeds`` ``(B, L, D)`` / ``mask`` ``(B, L)``.

    Positions follow the mask (``cumsum - 1``), so a left-padded row decodes exactly as it would alone.
    A row finishes at EOS or when its text contains a stop string; the loop ends when all have finished.
    ``seed`` (one int, or one per row): every row samples from its own generator seeded with its seed
    (:func:`row_generators`), so its reply does not depend on the other rows of the batch.
    Returns the :class:`RowFinisher`: each row's text (``texts()``), decoded token count (``counts()``)
    and why it ended (``finish_reasons()``).
    """
    b = embeds.shape[0]
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    cache_kw = cache_argument(llm)
    out = llm(inputs_embeds=embeds, attention_mask=mask, position_ids=pos, use_cache=True, **(prefill_kwargs or {}))
    gen = row_generators(seed, b, embeds.device) if do_sample else None
    rows = RowFinisher(tokenizer, b, stops)
    for _ in range(max_new_tokens):
        nxt = _pick(out.logits[:, -1].float(), do_sample, temperature, top_p, gen)
        if rows.push(nxt.tolist()):
            break
        mask = torch.cat([mask, mask.new_ones(b, 1)], dim=1)
        pos = pos[:, -1:] + 1
        cache = out["cache"] if "cache" in out else out["past_key_values"]
        out = llm(input_ids=nxt[:, None], attention_mask=mask, position_ids=pos, use_cache=True, **{cache_kw: cache})
    return rows
