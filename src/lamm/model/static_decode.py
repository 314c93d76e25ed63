"""Decoding with a preallocated KV cache; on CUDA the one-token step is captured once as a CUDA graph.

Why: at batch 1 a 7B model's decode step reads ~13 GB of weights, ~3 ms on an H200, but in eager mode
PyTorch spends ~25 ms launching the step's ~1,500 small kernels from Python. A CUDA graph replays all of
them with one launch. A graph needs fixed shapes and fixed addresses, so everything the step touches
lives in buffers that are updated in place:

* the KV cache is a transformers ``StaticCache`` of a fixed length ``M`` (prompt + new tokens, rounded
  up to a bucket so that calls of similar size share one graph); its layers count their own fill level
  on the device;
* the step's inputs (token ids, position ids) and its attention mask are fixed tensors; the mask is an
  explicit 4D additive mask ``(B, 1, 1, M)``, which transformers uses as given (its own mask building is
  skipped) — the step opens the new token's slot with an in-place ``index_fill_``;
* greedy decoding runs inside the graph too (argmax → the next step's input, and a token history), so
  the host replays several steps between synchronisations and reads the tokens in chunks.

Sampling picks the token on the host side between replays (same :func:`~lamm.model.llm._pick` and
per-row seeded generators as the dynamic loop). Prompts are LEFT padded as for
:func:`~lamm.model.llm.decode_loop`; positions follow the mask, so a row decodes as it would alone, and
the replies equal the dynamic loop's (tested on the CPU, where the same static path runs without graphs).

Models with sliding-window or other non-full attention layers are not supported (their static layers
keep a rolling window the 4D mask cannot describe): :func:`supports_static_decoding` says so and the
engine keeps the dynamic loop for them.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from lamm.model.llm import cache_argument
from lamm.model.lora import unwrap_base


def supports_static_decoding(llm: nn.Module) -> tuple[bool, str]:
    """``(True, "")`` when ``llm`` can decode with :class:`StaticDecoder`, else ``(False, why)``."""
    base = unwrap_base(llm)
    if not getattr(base, "_can_compile_fullgraph", False):
        return False, f"{type(base).__name__} does not declare static-cache (fullgraph) support"
    conf = base.config.get_text_config(decoder=True) if hasattr(base.config, "get_text_config") else base.config
    layer_types = getattr(conf, "layer_types", None) or ["full_attention"]
    if getattr(conf, "sliding_window", None) or any(t != "full_attention" for t in layer_types):
        return False, "sliding-window / hybrid attention layers keep a rolling cache the 4D mask cannot describe"
    if getattr(conf, "model_type", None) == "bloom" or getattr(conf, "alibi", False):
        return False, "ALiBi position bias (Bloom, Falcon with alibi) is built from a 2D mask, not the 4D one"
    return True, ""


@dataclass
class _Slot:
    """Everything one (batch size, cache length) shape needs; the graph reads and writes only these."""

    cache: Any
    ids: torch.Tensor        # (B, 1) long: the token the next step consumes
    pos: torch.Tensor        # (B, 1) long: its position id
    attn: torch.Tensor       # (B, 1, 1, M) additive mask of the cache slots the step may attend to
    kv_at: torch.Tensor      # (1,) long: the cache slot of the token the next step consumes
    t_at: torch.Tensor       # (1,) long: the history column the next step writes
    hist: torch.Tensor       # (B, M) long: greedy tokens, column t = the t-th new token
    logits: torch.Tensor     # (B, V) float32: last step's logits
    graph: Any = None


class StaticDecoder:
    """Batched decoding of one LLM with static KV caches and (on CUDA) CUDA-graph replay.

    ``use_graphs``: None = on for CUDA devices. ``bucket``: cache lengths are rounded up to a multiple
    of it (one graph serves every call that fits). ``keep``: the most recently used shapes kept
    (each holds a KV cache of ``layers × 2 × B × M × kv_dim`` elements). ``sync_every``: greedy steps
    replayed between reads of the tokens (at most ``sync_every - 1`` steps run after every row ended).
    ``compile_step``: run the step's model call through ``torch.compile`` (fuses the many small
    element-wise kernels of a layer; the graph then replays fewer, larger kernels), at the price of a
    compilation (about a minute for a 7B model) per shape on first use. Build a new decoder when the LLM's weights are replaced (e.g. LoRA merged): graphs hold their
    addresses.
    """

    def __init__(self, llm: nn.Module, *, use_graphs: bool | None = None, bucket: int = 256, keep: int = 2,
                 sync_every: int = 8, compile_step: bool = False) -> None:
        ok, why = supports_static_decoding(llm)
        if not ok:
            raise ValueError(f"static decoding is not available: {why}")
        self.llm = llm
        self.bucket, self.keep, self.sync_every = bucket, keep, max(1, sync_every)
        self.use_graphs = use_graphs
        self._cache_kw = cache_argument(llm)
        self._slots: OrderedDict[tuple[int, int, str], _Slot] = OrderedDict()
        self._forward = torch.compile(self._logits, dynamic=False) if compile_step else self._logits
        self.graphs_captured = 0  # for tests and the benchmark

    # ------------------------------------------------------------------------------------------ slots
    def _slot(self, b: int, m: int, device: torch.device, dtype: torch.dtype, graphs: bool) -> _Slot:
        key = (b, m, str(device))
        if key in self._slots:
            self._slots.move_to_end(key)
            return self._slots[key]
        while len(self._slots) >= self.keep:
            self._slots.popitem(last=False)
            if device.type == "cuda":
                torch.cuda.empty_cache()
        from transformers import StaticCache

        base = unwrap_base(self.llm)
        vocab = self.llm.get_output_embeddings().weight.shape[0]
        long = {"dtype": torch.long, "device": device}
        slot = _Slot(
            cache=StaticCache(config=base.config, max_cache_len=m),
            ids=torch.zeros(b, 1, **long), pos=torch.zeros(b, 1, **long),
            attn=torch.full((b, 1, 1, m), torch.finfo(dtype).min, dtype=dtype, device=device),
            kv_at=torch.zeros(1, **long), t_at=torch.ones(1, **long), hist=torch.zeros(b, m, **long),
            logits=torch.zeros(b, vocab, dtype=torch.float32, device=device),
        )
        if graphs:
            # warm up on a side stream (lazily allocates the cache, selects kernels), then capture
            side = torch.cuda.Stream(device)
            side.wait_stream(torch.cuda.current_stream(device))
            with torch.cuda.stream(side):
                for _ in range(2):
                    self._step(slot)
            torch.cuda.current_stream(device).wait_stream(side)
            slot.graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(slot.graph):
                self._step(slot)
            self.graphs_captured += 1
        self._slots[key] = slot
        return slot

    def _step(self, s: _Slot) -> None:
        """One decode step on the slot's buffers, in place (the captured region)."""
        s.attn.index_fill_(3, s.kv_at, 0.0)  # the consumed token's own cache slot becomes visible
        s.logits.copy_(self._forward(s.ids, s.attn, s.pos, s.cache)[:, -1])
        nxt = s.logits.argmax(-1, keepdim=True)
        s.ids.copy_(nxt)
        s.hist.index_copy_(1, s.t_at, nxt)
        s.pos.add_(1)
        s.kv_at.add_(1)
        s.t_at.add_(1)

    def _logits(self, ids: torch.Tensor, attn: torch.Tensor, pos: torch.Tensor, cache: Any) -> torch.Tensor:
        """The model call of one step: logits ``(B, 1, V)`` of ``ids`` ``(B, 1)``, appended to ``cache``."""
        return self.llm(input_ids=ids, attention_mask=attn, position_ids=pos, use_cache=True,
                        **{self._cache_kw: cache}).logits

    def _run_step(self, s: _Slot) -> None:
        if s.graph is not None:
            s.graph.replay()
        else:
            self._step(s)

    # ----------------------------------------------------------------------------------------- decode
    def decode(self, tokenizer: Any, embeds: torch.Tensor, mask: torch.Tensor, *, max_new_tokens: int,
               do_sample: bool, temperature: float, top_p: float, stops: list[str],
               seed: int | Sequence[int | None] | None,
               prefill_kwargs: dict[str, Any] | None = None) -> list[str]:
        """Same contract as :func:`lamm.model.llm.decode_loop`: the new text of each row of
        :meth:`decode_rows` (EOS / first stop string cut, stripped)."""
        return self.decode_rows(tokenizer, embeds, mask, max_new_tokens=max_new_tokens, do_sample=do_sample,
                                temperature=temperature, top_p=top_p, stops=stops, seed=seed,
                                prefill_kwargs=prefill_kwargs).texts()

    @torch.inference_mode()
    def decode_rows(self, tokenizer: Any, embeds: torch.Tensor, mask: torch.Tensor, *, max_new_tokens: int,
                    do_sample: bool, temperature: float, top_p: float, stops: list[str],
                    seed: int | Sequence[int | None] | None,
                    prefill_kwargs: dict[str, Any] | None = None) -> Any:
        """Same contract as :func:`lamm.model.llm.decode_rows`: LEFT-padded ``embeds`` ``(B, L, D)`` and
        ``mask`` ``(B, L)`` → the :class:`~lamm.model.llm.RowFinisher` (texts, token counts, finish
        reasons). With a seed, every row samples from its own generator
        (:func:`~lamm.model.llm.row_generators`)."""
        from lamm.model.llm import RowFinisher, _pick, row_generators

        b, length = mask.shape
        finisher = RowFinisher(tokenizer, b, stops)
        if max_new_tokens <= 0:
            return finisher
        device, dtype = embeds.device, embeds.dtype
        m = -(-(length + max_new_tokens) // self.bucket) * self.bucket
        graphs = self.use_graphs if self.use_graphs is not None else device.type == "cuda"
        s = self._slot(b, m, device, dtype, graphs)

        # prefill: the prompt fills cache slots 0..L-1 (a pad position attends to itself only, so no row
        # of the 4D mask is empty: an all-masked row makes NaNs that would reach the cache)
        s.cache.reset()
        mask = mask.to(device)
        keys = torch.zeros(b, m, dtype=torch.bool, device=device)
        keys[:, :length] = mask.bool()
        q = torch.arange(length, device=device)[:, None]
        k = torch.arange(m, device=device)[None, :]
        allowed = ((k <= q)[None] & keys[:, None, :]) | (k == q)[None]
        prefill_mask = torch.zeros(b, 1, length, m, dtype=dtype, device=device)
        prefill_mask.masked_fill_(~allowed[:, None], torch.finfo(dtype).min)
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        out = self.llm(inputs_embeds=embeds, attention_mask=prefill_mask, position_ids=pos, use_cache=True,
                       **{self._cache_kw: s.cache}, **(prefill_kwargs or {}))
        gen = row_generators(seed, b, device) if do_sample else None
        first = _pick(out.logits[:, -1].float(), do_sample, temperature, top_p, gen)

        # decode state: slot L is the first new token's; the mask shows the prompt's real tokens
        s.attn.fill_(torch.finfo(dtype).min)
        s.attn[:, 0, 0, :length].masked_fill_(mask.bool(), 0.0)
        s.ids.copy_(first[:, None])
        s.pos.copy_(pos[:, -1:] + 1)
        s.kv_at.fill_(length)
        s.t_at.fill_(1)
        s.hist[:, 0] = first
        if finisher.push(first.tolist()):
            return finisher
        done_steps = 1  # new tokens produced so far
        while done_steps < max_new_tokens:
            if do_sample:
                self._run_step(s)
                nxt = _pick(s.logits, True, temperature, top_p, gen)
                s.ids.copy_(nxt[:, None])
                done_steps += 1
                if finisher.push(nxt.tolist()):
                    break
                continue
            n = min(self.sync_every, max_new_tokens - done_steps)
            for _ in range(n):
                self._run_step(s)
            chunk = s.hist[:, done_steps:done_steps + n].tolist()
            done_steps += n
            if any(finisher.push([row[j] for row in chunk]) for j in range(n)):
                break
        return finisher
