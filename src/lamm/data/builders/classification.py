"""C4 classification (2D): "What is the object in the image?" → the category."""

from __future__ import annotations

from typing import Any

import numpy as np

from .base import Sample, label_fields, register_builder
from .templates import TemplateSet


@register_builder(
    "classification",
    version=1,
    task_type="classification",
    modality="image",
    requires=("label",),
    params={"question_group": "default"},
)
def build_classification(
    record: dict[str, Any], templates: TemplateSet, rng: np.random.Generator, question_group: str
) -> list[Sample]:
    """One sample naming ``record["label"]``. ``question_group`` picks the phrasing family (e.g.
    ``largest`` for images with several objects, where "the object" would be ambiguous)."""
    fields = label_fields(str(record["label"]))
    q = templates.pick("questions", question_group, rng)
    a = templates.pick("answers", "default", rng)
    return [Sample(q.render(**fields), a.render(**fields), f"{q.id}+{a.id}")]
