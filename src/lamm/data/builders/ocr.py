"""C4 OCR (2D): "What words are written in the image?" → the words, quoted, in reading order."""

from __future__ import annotations

from typing import Any

import numpy as np

from .base import BuilderError, Sample, register_builder, source_ref
from .templates import TemplateSet


@register_builder("ocr", version=1, task_type="VQA", modality="image", params={"max_words": 30})
def build_ocr(
    record: dict[str, Any], templates: TemplateSet, rng: np.random.Generator, max_words: int
) -> list[Sample]:
    """One sample listing ``record["words"]``. Images without words, or with more than ``max_words``
    (a truncated list would teach the model to miss words), are skipped. LAMM has no OCR task type;
    like LAMM's TextVQA-derived data the records use ``VQA``."""
    words = record.get("words") or []
    if not isinstance(words, list) or not all(isinstance(w, str) for w in words):
        raise BuilderError(
            f"source record {source_ref(record)}: builder 'ocr': 'words' must be a list of strings"
        )
    words = [w.strip() for w in words if w.strip()]
    if not words or len(words) > max_words:
        return []
    fields = {
        "quoted": ", ".join(f'"{w}"' for w in words),
        "plain": " ".join(words),
        "n": len(words),
        "be": "is" if len(words) == 1 else "are",
        "noun": "word" if len(words) == 1 else "words",
    }
    q = templates.pick("questions", "default", rng)
    a = templates.pick("answers", "default", rng)
    return [Sample(q.render(**fields), a.render(**fields), f"{q.id}+{a.id}")]
