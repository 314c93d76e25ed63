"""``lamm:DIR``: our own checkpoints (``lamm.model.checkpoint``), batched and cached.

* Prompts come from ``MultimodalLM.tokenize`` (the one prompt builder), so inference sees exactly the
  training format; the template's stop strings (``###`` for LAMM v1) always apply, the request's are
  added to them.
* Generation is length-grouped and batched (:class:`~lamm.infer.batching.Batcher`, ``batch_size``
  an int or ``"auto"``, which halves on out-of-memory), left-padded, with a KV cache
  (``lamm.model.llm.decode_loop``). A seeded request samples from its own generator (one per row), so
  its reply is the same alone, in any batch, and streamed.
* Media features are computed once per call for each distinct media item (same resolved path, or the
  same loaded object) however many requests share it, and dropped after their last use in the call.
* Log-likelihoods: requests that share one prompt (the options of one question) are grouped; a batch
  of prompts runs through the model ONCE (left-padded), its KV cache is gathered for every option row,
  and only the option tokens run again (``kv_reuse``). ``kv_reuse=False`` is the baseline: one forward
  over prompt + option per option, batched. ``benchmarks/generate_speed.py --loglikelihood`` times
  both (H200, 7B shapes, bf16, 4 options: 1.2x; CPU tiny model: 1.4–2.7x).
* Decoding on CUDA uses static KV caches and replays the one-token step as a CUDA graph
  (``lamm.model.static_decode``; ``static_cache``, default "auto" = on CUDA for models with full
  attention only; ``cuda_graphs``, default "auto" = on CUDA). Replies equal the dynamic loop's.
* The context is the LLM's ``max_position_embeddings``; every call is kept within it as the engine
  interface says (:func:`~lamm.infer.engine.fit_to_context`): prompts are tokenized first (media
  placeholders expanded), an over-long one refuses the call before any decoding, and ``max_new_tokens``
  is capped at the room left, so no position past the context is ever fed to the model.
* ``merge_lora=True`` folds LoRA into the base weights once at load (faster decoding, same outputs up
  to rounding). ``fingerprint()`` is the checkpoint manifest's fingerprint (weights, base, config).

Options: ``device`` (default cuda when available), ``dtype`` (None = as saved; "bfloat16", ...),
``batch_size`` (default "auto"), ``merge_lora`` (False), ``base_llm`` (a moved base), ``kv_reuse`` (True),
``static_cache`` ("auto" | true | false), ``cuda_graphs`` ("auto" | true | false), ``compile_step`` (false;
true compiles the decode step with torch.compile), ``static_bucket`` (256: static cache lengths are
multiples of it).
"""

from __future__ import annotations

import hashlib
import inspect
from collections import Counter
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import torch

from lamm.conversation import MediaRef, TokenizedConversation, context_token_count, tokenize_continuation
from lamm.infer.batching import Batcher, settings_key
from lamm.infer.engine import (
    BACKENDS,
    Engine,
    GenerateRequest,
    GenerationInfo,
    LoglikelihoodRequest,
    LoglikelihoodResult,
    ProgressFn,
    check_loglikelihood_context,
    fit_to_context,
)
from lamm.media import resolve_media_path
from lamm.model.llm import DTYPES, cache_argument  # DTYPES: the one name → torch dtype table


def _tristate(name: str, value: bool | str) -> bool | None:
    """An engine option that is "auto" (None), true or false (YAML-ish strings from the CLI accepted)."""
    if isinstance(value, bool):
        return value
    v = str(value).strip().lower()
    if v == "auto":
        return None
    if v in ("true", "1", "yes", "on"):
        return True
    if v in ("false", "0", "no", "off"):
        return False
    raise ValueError(f"{name}={value!r}: expected auto, true or false")


def media_key(ref: MediaRef, root: str | None) -> tuple:
    """Identity of a media item within a call: its resolved path and variant (a corrupted copy of a file
    is not the file; ``MediaRef.variant``), else the loaded object itself."""
    if ref.path is not None:
        return (ref.modality, str(resolve_media_path(ref.path, root).resolve()), ref.variant or "")
    return (ref.modality, "id", id(ref.data))


class MediaFeatures:
    """Encoder + projector outputs ``(T, hidden)`` per distinct media item of one engine call.

    Built with the number of uses of every key; :meth:`release` after each batch frees a key once all
    its uses are done, so memory holds only features still needed (not every image of a benchmark).
    """

    def __init__(self, model: Any, root: str | None, uses: Counter) -> None:
        self.model, self.root, self.uses = model, root, uses
        self.feats: dict[tuple, torch.Tensor] = {}
        self.encoded = 0  # number of encoder runs (items), for tests and the benchmark

    def get(self, refs: list[MediaRef]) -> dict[str, list[torch.Tensor]]:
        """Features of ``refs`` grouped by modality, in order; new items are encoded in one call each."""
        new: dict[tuple, MediaRef] = {}
        for r in refs:
            k = media_key(r, self.root)
            if k not in self.feats and k not in new:
                new[k] = r
        for modality in ("image", "pcl"):
            keys = [k for k, r in new.items() if r.modality == modality]
            if keys:
                x = self.model.preprocess_media([new[k] for k in keys], self.root)[modality]
                with torch.inference_mode():
                    f = self.model.encode_media(modality, x)  # (M, T, hidden)
                self.encoded += len(keys)
                for k, row in zip(keys, f):
                    self.feats[k] = row
        out: dict[str, list[torch.Tensor]] = {}
        for r in refs:
            out.setdefault(r.modality, []).append(self.feats[media_key(r, self.root)])
        return out

    def release(self, refs: list[MediaRef]) -> None:
        for r in refs:
            k = media_key(r, self.root)
            self.uses[k] -= 1
            if self.uses[k] <= 0:
                self.feats.pop(k, None)


def _kv(out: Any) -> Any:
    """The KV cache of a model output (``cache`` in transformers 5; ``past_key_values`` before)."""
    kv = getattr(out, "cache", None)
    return kv if kv is not None else out.past_key_values


@BACKENDS.register("lamm")
class LammEngine(Engine):
    """A lamm checkpoint; see the module docstring for the options."""

    def __init__(self, target: str, media_root: str | None = None, device: str | None = None,
                 dtype: str | None = None, batch_size: int | str = "auto", merge_lora: bool = False,
                 base_llm: str | None = None, kv_reuse: bool = True, model: Any = None,
                 static_cache: bool | str = "auto", cuda_graphs: bool | str = "auto",
                 compile_step: bool | str = False, static_bucket: int = 256) -> None:
        super().__init__(media_root)
        from lamm.model.checkpoint import is_checkpoint, load_checkpoint, read_manifest

        self.target = target
        dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        if dtype is not None and dtype not in DTYPES:
            raise ValueError(f"dtype {dtype!r}: expected one of {', '.join(DTYPES)}")
        # an in-memory model (benchmarks of random-init presets) may come without a checkpoint folder
        manifest = read_manifest(target) if model is None or is_checkpoint(target) else {}
        self.model = model if model is not None else load_checkpoint(target, dev, base_llm=base_llm)
        if merge_lora:
            self.merge_lora()
        if dtype is not None:
            # the LLM only: encoders take float32 pixels / points, and their outputs are cast anyway
            self.model.llm.to(DTYPES[dtype])
        self.model.eval()
        self.tokenizer = self.model.tokenizer
        self.template = self.model.config.template
        self.batcher = Batcher(batch_size)
        self.kv_reuse = kv_reuse
        if manifest:
            fp = manifest.get("fingerprint") or hashlib.sha256(
                (Path(target) / "manifest.json").read_bytes()).hexdigest()
        else:
            fp = f"in-memory:{target}"
        self._fingerprint = f"lamm:{fp}" + (f"+{dtype}" if dtype and dtype != "float32" else "")
        params = inspect.signature(self._base_llm().forward).parameters
        # logits only for the last position at prefill: a (B, L, V) tensor is the largest one otherwise
        self._prefill_kwargs = {"logits_to_keep": 1} if "logits_to_keep" in params else {}
        self._cache_arg = cache_argument(self.model.llm)
        self.last_call_encoded = 0
        self.static_cache, self.cuda_graphs = _tristate("static_cache", static_cache), _tristate("cuda_graphs", cuda_graphs)
        self.compile_step = bool(_tristate("compile_step", compile_step))
        self.static_bucket = int(static_bucket)
        self._static: Any = None  # the StaticDecoder, built on first use (and again after merge_lora)

    def _static_decoder(self) -> Any:
        """The :class:`~lamm.model.static_decode.StaticDecoder` to decode with, or None (dynamic loop)."""
        from lamm.model.static_decode import StaticDecoder, supports_static_decoding

        if self._static is not None:
            return self._static
        on_cuda = self.model.device.type == "cuda"
        want = on_cuda if self.static_cache is None else self.static_cache
        if not want:
            return None
        ok, why = supports_static_decoding(self.model.llm)
        if not ok:
            if self.static_cache:  # asked for explicitly: say why it cannot be
                raise ValueError(f"static_cache=true: {why}")
            return None
        self._static = StaticDecoder(self.model.llm, use_graphs=on_cuda if self.cuda_graphs is None else self.cuda_graphs,
                                     bucket=self.static_bucket, compile_step=self.compile_step)
        return self._static

    def _base_llm(self) -> Any:
        from lamm.model.lora import unwrap_base

        return unwrap_base(self.model.llm)

    def merge_lora(self) -> bool:
        """Fold LoRA adapters into the base weights (inference only). False when there are none."""
        merge = getattr(self.model.llm, "merge_and_unload", None)
        if merge is None:
            return False
        self.model.llm = merge()
        self._static = None  # captured graphs point at the unmerged weights
        return True

    def fingerprint(self) -> str:
        return self._fingerprint

    # ------------------------------------------------------------------------------------ helpers
    def _tokenize(self, req: GenerateRequest | LoglikelihoodRequest) -> TokenizedConversation:
        return self.model.tokenize(req.conversation, add_generation_prompt=True)

    def _expanded(self, tc: TokenizedConversation) -> list[int]:
        return self.model.placeholder_spec.expand(tc.input_ids, tc.labels, [m.modality for m in tc.media])[0]

    def _embed(self, seqs: list[list[int]], media: list[MediaRef], cache: MediaFeatures,
               left: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """Padded ids → embeddings ``(B, L, hidden)`` with media features spliced in, and the mask
        ``(B, L)``. Media fill their placeholder runs in row-major order, as ``MultimodalLM.embed``."""
        dev = self.model.device
        width = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), width), self.tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for i, s in enumerate(seqs):
            sl = slice(width - len(s), width) if left else slice(0, len(s))
            ids[i, sl] = torch.tensor(s, dtype=torch.long)
            mask[i, sl] = 1
        ids, mask = ids.to(dev), mask.to(dev)
        embeds = self.model.llm.get_input_embeddings()(ids)
        feats = cache.get(media)
        for modality, tid in sorted(self.model.media_token_ids.items()):
            if modality not in feats:
                continue
            f = torch.stack(feats[modality])
            pos = (ids == tid).unsqueeze(-1)
            if int(pos.sum()) != f.shape[0] * f.shape[1]:
                raise ValueError(f"{int(pos.sum())} {modality} placeholder positions but {f.shape[0]} items × "
                                 f"{f.shape[1]} tokens")
            embeds = embeds.masked_scatter(pos, f.reshape(-1, f.shape[-1]).to(embeds.dtype))
        return embeds, mask

    def _stops(self, req: GenerateRequest) -> list[str]:
        return list(dict.fromkeys([*self.model.stop_strings(), *req.settings.stop]))

    @property
    def context_length(self) -> int | None:
        """The LLM's ``max_position_embeddings`` (None when its config has none)."""
        conf = self._base_llm().config
        if hasattr(conf, "get_text_config"):
            conf = conf.get_text_config(decoder=True)
        n = getattr(conf, "max_position_embeddings", None) or getattr(conf, "n_positions", None)
        return int(n) if n else None

    def prompt_tokens(self, request: GenerateRequest) -> int:
        """The prompt's length in tokens, each media placeholder expanded to its encoder's token count."""
        return len(self._expanded(self._tokenize(request)))

    def _new_cache(self, reqs: list[Any]) -> MediaFeatures:
        uses = Counter(media_key(m, self.media_root) for r in reqs for m in r.conversation.media)
        return MediaFeatures(self.model, self.media_root, uses)

    # ---------------------------------------------------------------------------------- generation
    def generate(self, requests: list[GenerateRequest], progress: ProgressFn | None = None) -> list[str]:
        """Replies in request order; batches share settings and are grouped by prompt length.

        Every prompt is tokenized first and the call kept within the context (:func:`fit_to_context`: an
        over-long prompt refuses the call before any decoding; ``max_new_tokens`` capped at the room
        left, which then groups such a request apart)."""
        ids = [self._expanded(self._tokenize(r)) for r in requests]
        requests = fit_to_context(requests, [len(x) for x in ids], self.context_length)
        cache = self._new_cache(requests)
        self.usage.begin(len(requests))
        items = [(i, r, x) for i, (r, x) in enumerate(zip(requests, ids))]
        out: list[str] = [""] * len(requests)
        groups: dict[tuple, list[int]] = {}
        for i, r in enumerate(requests):
            # the seed is per row (decode_loop gives each row its own generator): not a batch setting
            groups.setdefault(settings_key(r, seed=False), []).append(i)
        for idx in groups.values():
            group = [items[i] for i in idx]
            texts = self.batcher.run(group, [len(s) for _, _, s in group],
                                     lambda batch: self._generate_batch(batch, cache), progress)
            for i, t in zip(idx, texts):
                out[i] = t
        self.last_call_encoded = cache.encoded
        return out

    def _generate_batch(self, batch: list[tuple[int, GenerateRequest, list[int]]],
                        cache: MediaFeatures) -> list[str]:
        from lamm.model.llm import decode_rows

        req = batch[0][1]
        s = req.settings
        media = [m for _, r, _ in batch for m in r.conversation.media]
        with torch.inference_mode():
            embeds, mask = self._embed([ids for _, _, ids in batch], media, cache)
            static = self._static_decoder()
            decode = static.decode_rows if static is not None else partial(decode_rows, self.model.llm)
            # each row samples with its own request's seed: a reply does not depend on its batch-mates
            rows = decode(self.tokenizer, embeds, mask, max_new_tokens=s.max_new_tokens,
                          do_sample=not s.greedy, temperature=s.temperature, top_p=s.top_p,
                          stops=self._stops(req), seed=[r.settings.seed for _, r, _ in batch],
                          prefill_kwargs=self._prefill_kwargs)
        cache.release(media)
        # the decoder's own count and reason per row (re-tokenising the cut, stripped text would not)
        for (i, _, ids), n, why in zip(batch, rows.counts(), rows.finish_reasons()):
            self.usage.record(i, GenerationInfo(len(ids), n, why))
        return rows.texts()

    def stream(self, request: GenerateRequest) -> Iterator[str]:
        """The reply in pieces as tokens are decoded; ``"".join`` equals :meth:`generate`'s text."""
        from lamm.model.llm import _cut, _pick, row_generators

        ids = self._expanded(self._tokenize(request))
        # refused (ContextLengthError) before the first piece; max_new_tokens capped at the room left
        request = fit_to_context([request], [len(ids)], self.context_length)[0]
        s = request.settings
        stops = self._stops(request)
        cache = self._new_cache([request])
        hold = max((len(x) - 1 for x in stops if x), default=0)
        eos = self.tokenizer.eos_token_id
        new: list[int] = []
        sent = 0
        why: str | None = None  # "stop" / "length" once known; None if the consumer closes us early
        self.usage.begin(1)
        try:
            # Grad mode is thread-local and a consumer (Gradio) may resume this generator on another
            # thread, so no inference_mode block spans a yield: each model step enters its own.
            with torch.inference_mode():
                embeds, mask = self._embed([ids], request.conversation.media, cache)
                # the same per-row generator scheme as generate() at batch 1, so both give the same reply
                gen = row_generators(s.seed, 1, embeds.device) if not s.greedy else None
                pos = (mask.cumsum(-1) - 1).clamp(min=0)
                out = self.model.llm(inputs_embeds=embeds, attention_mask=mask, position_ids=pos,
                                     use_cache=True, **self._prefill_kwargs)
            for _ in range(s.max_new_tokens):
                with torch.inference_mode():
                    nxt = _pick(out.logits[:, -1].float(), not s.greedy, s.temperature, s.top_p, gen)
                t = int(nxt[0])
                if t == eos:
                    why = "stop"
                    break
                new.append(t)
                finished = _cut(self.tokenizer.decode(new, skip_special_tokens=False), stops)[1]
                text = _cut(self.tokenizer.decode(new, skip_special_tokens=True), stops)[0].lstrip()
                if finished:
                    why = "stop"
                    break
                # hold back: a possible stop-string prefix, an incomplete UTF-8 character, trailing
                # whitespace (generate() strips it, so it is sent only once text follows it)
                safe = len(text) - hold
                while safe > sent and (text[safe - 1] == "\ufffd" or text[safe - 1].isspace()):
                    safe -= 1
                if safe > sent:
                    yield text[sent:safe]
                    sent = safe
                with torch.inference_mode():
                    mask = torch.cat([mask, mask.new_ones(1, 1)], dim=1)
                    pos = pos[:, -1:] + 1
                    out = self.model.llm(input_ids=nxt[:, None], attention_mask=mask, position_ids=pos,
                                         use_cache=True, **{self._cache_arg: _kv(out)})
            else:
                why = "length"
            final = _cut(self.tokenizer.decode(new, skip_special_tokens=True), stops)[0].strip()
            if len(final) > sent:
                yield final[sent:]
        finally:
            # recorded however the stream ends, so the tokens it cost are counted even when closed early
            self.usage.record(0, GenerationInfo(len(ids), len(new), why))

    # ------------------------------------------------------------------------------ log-likelihood
    def loglikelihood(self, requests: list[LoglikelihoodRequest],
                      progress: ProgressFn | None = None) -> list[LoglikelihoodResult]:
        """Natural-log probability of each continuation as the assistant's reply (see module docstring).

        Requests are grouped by prompt; batches of prompts (length-grouped, "auto" backs off on OOM)
        are scored together, every continuation of a prompt in the same batch. A prompt + continuation
        over the context refuses the call before anything runs (:class:`ContextLengthError`)."""
        cache = self._new_cache(requests)
        groups: dict[tuple, _Group] = {}
        lengths: list[tuple[int, int]] = []
        for i, r in enumerate(requests):
            tc = self._tokenize(r)
            ids = self._expanded(tc)
            key = (tuple(ids), tuple(media_key(m, self.media_root) for m in tc.media))
            c = tokenize_continuation(r.context + r.continuation, self.tokenizer, self.template)
            skip = (context_token_count(c, tokenize_continuation(r.context, self.tokenizer, self.template))
                    if r.context else 0)
            if len(c) == skip:
                raise ValueError(f"request {i}: continuation {r.continuation!r} has no tokens")
            g = groups.setdefault(key, _Group(ids, tc.media))
            g.index.append(i)
            g.conts.append(c)
            g.skip.append(skip)
            lengths.append((len(ids), len(c)))
        check_loglikelihood_context(requests, lengths, self.context_length)
        out: list[LoglikelihoodResult | None] = [None] * len(requests)
        todo = list(groups.values())

        def score(batch: list[_Group]) -> list[list[LoglikelihoodResult]]:
            res = self._score_kv(batch, cache) if self.kv_reuse else self._score_plain(batch, cache)
            for g in batch:
                cache.release(g.media * len(g.index))
            if progress:
                progress(sum(len(g.index) for g in batch))
            return res

        for g, res in zip(todo, self.batcher.run(todo, [len(g.ids) for g in todo], score)):
            for i, r in zip(g.index, res):
                out[i] = r
        self.last_call_encoded = cache.encoded
        self.usage.requests += len(requests)
        return out  # type: ignore[return-value]

    def _score_kv(self, batch: list[_Group], cache: MediaFeatures) -> list[list[LoglikelihoodResult]]:
        """Prompts run once (left-padded batch); their KV cache is gathered per continuation row and only
        continuation tokens run again. Row j of prompt g attends to g's prompt and its own tokens."""
        dev = self.model.device
        with torch.inference_mode():
            embeds, mask = self._embed([g.ids for g in batch], [m for g in batch for m in g.media], cache)
            pos = (mask.cumsum(-1) - 1).clamp(min=0)
            out = self.model.llm(inputs_embeds=embeds, attention_mask=mask, position_ids=pos, use_cache=True,
                                 **self._prefill_kwargs)
            first = torch.log_softmax(out.logits[:, -1].float(), -1)  # (G, V): predicts each token 0
            rows = [(gi, c) for gi, g in enumerate(batch) for c in g.conts]
            lp = [[float(first[gi, c[0]])] for gi, c in rows]
            rest = max(len(c) for _, c in rows) - 1
            if rest > 0:
                kv = _kv(out)
                kv.batch_select_indices(torch.tensor([gi for gi, _ in rows], device=dev))
                x = torch.full((len(rows), rest), self.tokenizer.pad_token_id, dtype=torch.long, device=dev)
                m = torch.cat([mask[[gi for gi, _ in rows]], torch.zeros_like(x)], dim=1)
                p = mask.shape[1]
                for j, (_, c) in enumerate(rows):
                    x[j, :len(c) - 1] = torch.tensor(c[:-1], device=dev)
                    m[j, p:p + len(c) - 1] = 1
                # positions continue each prompt's own count (its left padding excluded)
                start = torch.tensor([len(batch[gi].ids) for gi, _ in rows], device=dev)[:, None]
                cpos = start + torch.arange(rest, device=dev)[None]
                logits = self.model.llm(input_ids=x, attention_mask=m, position_ids=cpos, use_cache=True,
                                        **{self._cache_arg: kv}).logits
                logp = torch.log_softmax(logits.float(), -1)
                for j, (_, c) in enumerate(rows):
                    tgt = torch.tensor(c[1:], device=dev)
                    lp[j] += logp[j, :len(c) - 1].gather(-1, tgt[:, None])[:, 0].tolist()
        self.usage.prompt_tokens += sum(len(g.ids) for g in batch) + sum(len(c) for _, c in rows)
        skips = [k for g in batch for k in g.skip]
        return _split(batch, [_result(v[k:]) for v, k in zip(lp, skips)])

    def _score_plain(self, batch: list[_Group], cache: MediaFeatures) -> list[list[LoglikelihoodResult]]:
        """Baseline: one forward over prompt + continuation rows, left-padded (continuations end last)."""
        seqs = [g.ids + c for g in batch for c in g.conts]
        media = [m for g in batch for _ in g.conts for m in g.media]
        conts = [c for g in batch for c in g.conts]
        n_max = max(len(c) for c in conts)
        with torch.inference_mode():
            embeds, mask = self._embed(seqs, media, cache)
            pos = (mask.cumsum(-1) - 1).clamp(min=0)
            kw = {"logits_to_keep": n_max + 1} if self._prefill_kwargs else {}
            logits = self.model.llm(inputs_embeds=embeds, attention_mask=mask, position_ids=pos, **kw).logits
            logp = torch.log_softmax(logits[:, -(n_max + 1):-1].float(), -1)
        res = []
        skips = [k for g in batch for k in g.skip]
        for j, c in enumerate(conts):
            v = logp[j, n_max - len(c):].gather(-1, torch.tensor(c, device=logp.device)[:, None])[:, 0]
            res.append(_result(v[skips[j]:].tolist()))
        self.usage.prompt_tokens += sum(len(s) for s in seqs)
        return _split(batch, res)


class _Group:
    """The requests of one loglikelihood call that share a prompt: its ids, media, and continuations."""

    def __init__(self, ids: list[int], media: list[MediaRef]) -> None:
        self.ids, self.media = ids, media
        self.index: list[int] = []
        self.conts: list[list[int]] = []  # the whole reply: context + continuation tokens
        self.skip: list[int] = []  # leading context tokens of each, conditioned on but not scored


def _result(token_logprobs: list[float]) -> LoglikelihoodResult:
    """Sum, mean and count of the scored tokens' log-probabilities (summed in order, in float64)."""
    s = sum(token_logprobs)
    return LoglikelihoodResult(s, s / len(token_logprobs), len(token_logprobs))


def _split(batch: list[_Group], flat: list[LoglikelihoodResult]) -> list[list[LoglikelihoodResult]]:
    out, k = [], 0
    for g in batch:
        out.append(flat[k:k + len(g.conts)])
        k += len(g.conts)
    return out
