"""``vllm:ID_OR_PATH``: a Hugging Face VLM served in-process by vLLM (GPU; optional).

vLLM is not a dependency of lamm (it is large, GPU-only and pins its own torch). Without it this
backend fails with an install hint. With it, prompts are built with the model's own chat template
(through vLLM's ``LLM.chat``), images passed as PIL images; point clouds are refused, as with ``hf:``.
"""

from __future__ import annotations

import importlib
from typing import Any

from lamm.infer.engine import BACKENDS, Engine, GenerateRequest, GenerationInfo, ProgressFn

INSTALL_HINT = ("the 'vllm' backend needs vLLM, which is not installed: pip install vllm "
                "(Linux + CUDA GPU; see https://docs.vllm.ai). Without a GPU use the 'hf:' backend instead.")


def import_vllm() -> Any:
    """The ``vllm`` module, or a ValueError with the install hint."""
    try:
        return importlib.import_module("vllm")
    except ImportError as e:
        raise ValueError(INSTALL_HINT) from e


@BACKENDS.register("vllm")
class VLLMEngine(Engine):
    """Options are passed to ``vllm.LLM`` (e.g. ``dtype``, ``max_model_len``, ``tensor_parallel_size``)."""

    def __init__(self, target: str, media_root: str | None = None, **llm_options: Any) -> None:
        super().__init__(media_root)
        vllm = import_vllm()
        self.target = target
        self._vllm = vllm
        self.llm = vllm.LLM(model=target, **llm_options)

    @property
    def context_length(self) -> int | None:
        """vLLM's ``max_model_len`` (None when this vLLM version does not expose it)."""
        conf = getattr(getattr(self.llm, "llm_engine", None), "model_config", None)
        n = getattr(conf, "max_model_len", None)
        return int(n) if n else None

    def fingerprint(self) -> str:
        from lamm.infer.backends.hf import model_fingerprint

        return "vllm:" + model_fingerprint(self.target)

    def _messages(self, req: GenerateRequest) -> list[dict[str, Any]]:
        from lamm.infer.backends.openai import conversation_messages

        conv = req.conversation
        for ref in conv.media:
            if ref.modality == "pcl":
                raise ValueError("vllm backend: point clouds are not supported by Hugging Face VLMs; "
                                 "use a lamm: model for 3D")
        # OpenAI-style messages with data URLs: vLLM's chat() reads them with the model's template
        return conversation_messages(conv, self.media_root, point_clouds="error")

    def generate(self, requests: list[GenerateRequest], progress: ProgressFn | None = None) -> list[str]:
        if not requests:
            return []
        params = [self._vllm.SamplingParams(
            max_tokens=r.settings.max_new_tokens, temperature=max(0.0, r.settings.temperature),
            top_p=r.settings.top_p, stop=r.settings.stop or None, seed=r.settings.seed) for r in requests]
        # vLLM batches (continuous batching) and orders outputs as the inputs
        outs = self.llm.chat([self._messages(r) for r in requests], sampling_params=params, use_tqdm=False)
        texts = []
        self.usage.begin(len(requests))
        for i, o in enumerate(outs):
            c = o.outputs[0]
            why = c.finish_reason if c.finish_reason in ("stop", "length") else None
            self.usage.record(i, GenerationInfo(len(o.prompt_token_ids or []), len(c.token_ids), why))
            texts.append(c.text)
        if progress:
            progress(len(texts))
        return texts
