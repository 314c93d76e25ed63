"""``hf:ID_OR_PATH``: a Hugging Face vision-language model (LLaVA-1.5, Qwen2-VL, ... style).

The model is loaded with ``AutoModelForImageTextToText`` and ``AutoProcessor``; prompts are rendered
by the *processor's own chat template* (so each model sees the format it was trained on), then the
processor expands image placeholders and preprocesses pixels. The conversation's system message (it
states the task's answer format, e.g. relative boxes) is sent as a ``system`` turn, or prepended to
the first user text when the template has no system role. Point clouds are not supported here: a
request with one fails with a clear error (use a ``lamm:`` model for 3D).

Options: ``device`` ("cpu", "cuda", "cuda:1"; default cuda when available), ``dtype`` ("auto",
"float32", "bfloat16", "float16"), ``batch_size`` (int or "auto", default 8), ``trust_remote_code``.
Seeded sampling requests (``seed`` set, ``temperature > 0``) run one at a time: ``model.generate``
samples every row from one global generator, so only alone is a seeded reply independent of the
other requests.

The context (``max_position_embeddings`` of the language model) is kept as the engine interface says
(:func:`~lamm.infer.engine.fit_to_context`): every prompt of a call is counted first, by the processor
(image tokens expanded), so an over-long one refuses the call before any generation and ``max_new_tokens``
is capped at the room left. The count costs one more processor pass per request (images are decoded once:
``MediaRef.load`` keeps them); its counts also group the batches by true length. The last count is kept,
so a caller that counts a request (the API server) and then generates it pays the pass once.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from lamm.conversation import Conversation, context_token_count
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
from lamm.model.llm import DTYPES  # the one name → torch dtype table


def model_fingerprint(target: str) -> str:
    """Identity of a local model folder (config + weight file names and sizes) or a hub id as given.

    Hashing every weight byte of a 7B model takes minutes; names, sizes and the config change whenever
    the weights are retrained or swapped, which is what a cache key needs to notice.
    """
    p = Path(target)
    if not p.is_dir():
        return target
    h = hashlib.sha256()
    for f in sorted(p.iterdir()):
        if f.is_file() and (f.suffix in (".safetensors", ".bin") or f.name == "config.json"):
            h.update(f"{f.name}:{f.stat().st_size}\n".encode())
            if f.name == "config.json":
                h.update(f.read_bytes())
    return f"{p.name}-{h.hexdigest()[:16]}"


def cut_at_stop(text: str, stops: list[str]) -> str:
    cut = min((text.index(s) for s in stops if s and s in text), default=len(text))
    return text[:cut]


@BACKENDS.register("hf")
class HFEngine(Engine):
    """A Hugging Face VLM; see the module docstring for options."""

    def __init__(self, target: str, media_root: str | None = None, device: str | None = None,
                 dtype: str = "auto", batch_size: int | str = 8, trust_remote_code: bool = False,
                 use_system: bool = True, model: Any = None, processor: Any = None) -> None:
        super().__init__(media_root)
        from transformers import AutoModelForImageTextToText, AutoProcessor

        self.target = target
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        if dtype != "auto" and dtype not in DTYPES:
            raise ValueError(f"dtype {dtype!r}: expected auto, {', '.join(DTYPES)}")
        self.processor = processor or AutoProcessor.from_pretrained(target, trust_remote_code=trust_remote_code)
        if model is None:
            model = AutoModelForImageTextToText.from_pretrained(
                target, dtype=DTYPES.get(dtype, "auto"), trust_remote_code=trust_remote_code)
        self.model = model.to(self.device).eval()
        self.tokenizer = getattr(self.processor, "tokenizer", self.processor)
        # decoder-only generation appends to the right end of every row, so pad on the left
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        if getattr(self.processor, "chat_template", None) is None:
            raise ValueError(f"hf:{target}: the processor has no chat template; this backend needs one "
                             "to format prompts as the model was trained")
        self.use_system = use_system
        self.batcher = Batcher(batch_size)
        self._fingerprint = model_fingerprint(target)
        # the last prompt counted: (key, tokens, the media objects the key names by id, kept alive so
        # that no other object can take their ids)
        self._counted: tuple[tuple, int, list[Any]] | None = None

    def fingerprint(self) -> str:
        return "hf:" + self._fingerprint

    # ------------------------------------------------------------------------------------- prompts
    def _chat_messages(self, conv: Conversation, system_as_turn: bool) -> list[dict[str, Any]]:
        msgs: list[dict[str, Any]] = []
        sys_text = conv.system_text if self.use_system else ""
        if sys_text and system_as_turn:
            msgs.append({"role": "system", "content": [{"type": "text", "text": sys_text}]})
        for i, m in enumerate(conv.messages):
            parts: list[dict[str, Any]] = []
            for ref in m.media:
                if ref.modality != "image":
                    raise ValueError(f"hf backend ({self.target}): point clouds are not supported by Hugging "
                                     f"Face VLMs (conversation {conv.id!r}); use a lamm: model for 3D")
                parts.append({"type": "image"})
            text = m.content
            if i == 0 and sys_text and not system_as_turn:
                text = f"{sys_text}\n\n{text}"
            parts.append({"type": "text", "text": text})
            msgs.append({"role": m.role, "content": parts})
        return msgs

    def prompt_text(self, conv: Conversation) -> str:
        """The prompt as the processor's chat template renders it (ends with the assistant opener)."""
        from jinja2 import TemplateError

        try:
            return self.processor.apply_chat_template(self._chat_messages(conv, True),
                                                      add_generation_prompt=True, tokenize=False)
        except TemplateError:
            # templates without a system role raise on one; fold the system text into the question
            return self.processor.apply_chat_template(self._chat_messages(conv, False),
                                                      add_generation_prompt=True, tokenize=False)

    def _inputs(self, convs: list[Conversation], texts: list[str]) -> dict[str, torch.Tensor]:
        images = [ref.load(self.media_root) for c in convs for ref in c.media]
        kwargs: dict[str, Any] = {"text": texts, "return_tensors": "pt", "padding": True}
        if images:
            kwargs["images"] = images
        batch = self.processor(**kwargs)
        return {k: (v.to(self.device) if isinstance(v, torch.Tensor) else v) for k, v in batch.items()}

    # ---------------------------------------------------------------------------------- generation
    def _gen_kwargs(self, req: GenerateRequest) -> dict[str, Any]:
        s = req.settings
        kw: dict[str, Any] = {"max_new_tokens": s.max_new_tokens, "do_sample": not s.greedy}
        if not s.greedy:
            kw.update(temperature=s.temperature, top_p=s.top_p)
        else:
            kw.update(temperature=None, top_p=None, top_k=None)  # silence "unused sampling flag" warnings
        if s.stop:
            kw.update(stop_strings=list(s.stop), tokenizer=self.tokenizer)
        return kw

    @property
    def context_length(self) -> int | None:
        """The language model's ``max_position_embeddings`` (None when its config has none)."""
        conf = self.model.config
        if hasattr(conf, "get_text_config"):
            conf = conf.get_text_config(decoder=True)
        n = getattr(conf, "max_position_embeddings", None)
        return int(n) if n else None

    def prompt_tokens(self, request: GenerateRequest) -> int:
        """The prompt's length in tokens as the processor builds it (image tokens expanded)."""
        return self._count(request.conversation)

    def _count(self, conv: Conversation) -> int:
        """:meth:`prompt_tokens` of a conversation; the same prompt and media as the last count reuse it."""
        text = self.prompt_text(conv)
        # a path names its media; an in-memory item (server uploads) is itself, by id
        key = (text, tuple((m.modality, m.path, m.variant) if m.path is not None else (m.modality, id(m.data))
                           for m in conv.media))
        if self._counted is not None and self._counted[0] == key:
            return self._counted[1]
        n = int(self._inputs([conv], [text])["input_ids"].shape[1])
        self._counted = (key, n, [m.data for m in conv.media if m.path is None])
        return n

    def _ends(self) -> set[int]:
        """Token ids that end a reply: EOS (the generation config may list several) and padding."""
        eos = getattr(getattr(self.model, "generation_config", None), "eos_token_id", None)
        ids = set(eos if isinstance(eos, list) else [eos])
        ids |= {self.tokenizer.eos_token_id, self.tokenizer.pad_token_id}
        return {int(i) for i in ids if i is not None}

    def _row_info(self, n_prompt: int, row: list[int], settings: Any, cut: bool) -> GenerationInfo:
        """Tokens decoded for one reply (up to its first EOS / pad) and why it ended: ``"stop"`` at EOS
        or a stop string, ``"length"`` when ``max_new_tokens`` tokens were decoded without either."""
        ends = self._ends()
        n = next((j for j, t in enumerate(row) if t in ends), len(row))
        why = "stop" if cut or n < len(row) or n < settings.max_new_tokens else "length"
        return GenerationInfo(n_prompt, n, why)

    def _generate_batch(self, reqs: list[tuple[int, GenerateRequest]]) -> list[str]:
        convs = [r.conversation for _, r in reqs]
        inputs = self._inputs(convs, [self.prompt_text(c) for c in convs])
        s = reqs[0][1].settings
        if s.seed is not None:
            torch.manual_seed(s.seed)
        with torch.inference_mode():
            out = self.model.generate(**inputs, **self._gen_kwargs(reqs[0][1]))
        n_prompt = inputs["input_ids"].shape[1]
        new = out[:, n_prompt:]
        texts = self.tokenizer.batch_decode(new, skip_special_tokens=True)
        cut = [cut_at_stop(t, s.stop) for t in texts]
        n_prompts = inputs["attention_mask"].sum(-1).tolist()
        for (i, _), row, n, t, c in zip(reqs, new.tolist(), n_prompts, texts, cut):
            self.usage.record(i, self._row_info(int(n), row, s, len(c) < len(t)))
        return cut

    def generate(self, requests: list[GenerateRequest], progress: ProgressFn | None = None) -> list[str]:
        """Replies in request order. Every prompt is counted first and the call kept within the context
        (:func:`fit_to_context`); batches share settings (a capped request groups apart) and length."""
        counts = [self._count(r.conversation) for r in requests]
        requests = fit_to_context(requests, counts, self.context_length)
        out: list[str] = [""] * len(requests)
        self.usage.begin(len(requests))
        groups: dict[tuple, list[int]] = {}
        for i, r in enumerate(requests):
            groups.setdefault(settings_key(r), []).append(i)
        for idx in groups.values():
            reqs = [(i, requests[i]) for i in idx]
            lengths = [counts[i] for i in idx]  # true prompt lengths (image tokens included): little padding
            s = reqs[0][1].settings
            # model.generate draws every row from torch's one global generator, so in a batch a seeded
            # row's sample would depend on its batch-mates: seeded sampling runs one request at a time
            # (seeded just before, as in stream()), so its reply is the same alone, batched or streamed
            batcher = Batcher(1) if s.seed is not None and not s.greedy else self.batcher
            for i, text in zip(idx, batcher.run(reqs, lengths, self._generate_batch, progress)):
                out[i] = text
        return out

    def stream(self, request: GenerateRequest) -> Iterator[str]:
        from transformers import TextIteratorStreamer

        inputs = self._inputs([request.conversation], [self.prompt_text(request.conversation)])
        # refused (ContextLengthError) before the first piece; max_new_tokens capped at the room left
        request = fit_to_context([request], [int(inputs["input_ids"].shape[1])], self.context_length)[0]
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        kw = self._gen_kwargs(request)
        if request.settings.seed is not None:
            torch.manual_seed(request.settings.seed)
        errors: list[BaseException] = []
        result: list[torch.Tensor] = []
        self.usage.begin(1)

        def work() -> None:
            try:
                with torch.inference_mode():
                    result.append(self.model.generate(**inputs, **kw, streamer=streamer))
            except BaseException as e:  # noqa: BLE001 - handed to the consumer thread below
                errors.append(e)
                streamer.end()

        thread = threading.Thread(target=work, daemon=True)
        thread.start()
        text, sent, was_cut = "", 0, False
        stops = request.settings.stop
        hold = max((len(s) - 1 for s in stops if s), default=0)
        for piece in streamer:
            text += piece
            cut = cut_at_stop(text, stops)
            if len(cut) < len(text):
                text, was_cut = cut, True
                break
            if len(text) - hold > sent:
                yield text[sent:len(text) - hold]
                sent = len(text) - hold
        thread.join()
        if errors:
            raise errors[0]
        n_prompt = inputs["input_ids"].shape[1]
        row = result[0][0, n_prompt:].tolist()
        self.usage.record(0, self._row_info(n_prompt, row, request.settings, was_cut))
        if len(text) > sent:
            yield text[sent:]

    # ------------------------------------------------------------------------------ log-likelihood
    def loglikelihood(self, requests: list[LoglikelihoodRequest],
                      progress: ProgressFn | None = None) -> list[LoglikelihoodResult]:
        """One forward pass per distinct prompt, all of its continuations batched (right-padded). Every
        prompt is counted first: a prompt + continuation over the context refuses the call before any
        scoring (:class:`ContextLengthError`)."""
        groups: dict[str, list[int]] = {}
        for i, r in enumerate(requests):
            # the variant: a corrupted copy of a file is another input (MediaRef.variant)
            media = [(m.modality, m.path, m.variant, id(m.data)) for m in r.conversation.media]
            key = json.dumps([self.prompt_text(r.conversation), media])
            groups.setdefault(key, []).append(i)
        lengths: list[tuple[int, int]] = [(0, 0)] * len(requests)
        conts = [self._continuation_ids(r) for r in requests]  # tokenized once: counted, then scored
        for idx in groups.values():
            n = self._count(requests[idx[0]].conversation)
            for i in idx:
                lengths[i] = (n, len(conts[i][0]))
        check_loglikelihood_context(requests, lengths, self.context_length)
        out: list[LoglikelihoodResult | None] = [None] * len(requests)
        for idx in groups.values():
            for i, res in zip(idx, self._score_group([requests[i] for i in idx], [conts[i] for i in idx])):
                out[i] = res
            if progress:
                progress(len(idx))
        return out  # type: ignore[return-value]

    def _continuation_ids(self, req: LoglikelihoodRequest) -> tuple[list[int], int]:
        """The reply's tokens (context + continuation, tokenized whole) and how many lead ones are the
        unscored context (:func:`lamm.conversation.context_token_count`)."""
        ids = list(self.tokenizer(req.context + req.continuation, add_special_tokens=False)["input_ids"])
        if not req.context:
            return ids, 0
        ctx = self.tokenizer(req.context, add_special_tokens=False)["input_ids"]
        return ids, context_token_count(ids, list(ctx))

    def _score_group(self, reqs: list[LoglikelihoodRequest], replies: list[tuple[list[int], int]]
                     ) -> list[LoglikelihoodResult]:
        """Score one prompt's requests; ``replies``: each one's ``_continuation_ids``."""
        conv = reqs[0].conversation
        # the processor is run once per row (equal prompts, so no padding): pixel inputs then have the
        # batch layout every model family expects (Llava: (B, 3, H, W); Qwen2-VL: flat patches + grid)
        prompt = self._inputs([conv] * len(reqs), [self.prompt_text(conv)] * len(reqs))
        p_ids = prompt["input_ids"][0]
        conts, skips = zip(*replies)
        width = len(p_ids) + max(len(c) for c in conts)
        ids = torch.full((len(reqs), width), self.tokenizer.pad_token_id, dtype=torch.long, device=self.device)
        mask = torch.zeros_like(ids)
        for j, c in enumerate(conts):
            row = torch.cat([p_ids, torch.tensor(c, dtype=torch.long, device=self.device)])
            ids[j, :len(row)] = row  # right padding: the prompt keeps positions 0..P-1 in every row
            mask[j, :len(row)] = 1
        extra = {k: v for k, v in prompt.items() if k not in ("input_ids", "attention_mask")}
        with torch.inference_mode():
            logits = self.model(input_ids=ids, attention_mask=mask, **extra).logits.float()
        logp = torch.log_softmax(logits[:, :-1], dim=-1)
        results = []
        for j, c in enumerate(conts):
            start = len(p_ids)
            targets = torch.tensor(c, device=self.device)
            lp = logp[j, start - 1:start - 1 + len(c)].gather(-1, targets[:, None])[:, 0][skips[j]:]
            n = len(lp)
            s = float(lp.sum()) if n else 0.0
            results.append(LoglikelihoodResult(s, s / n if n else 0.0, n))
        self.usage.requests += len(reqs)
        return results
