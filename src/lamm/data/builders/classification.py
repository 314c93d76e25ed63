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
    params={"question_group": "default", "field": "label"},
)
def build_classification(
    record: dict[str, Any], templates: TemplateSet, rng: np.random.Generator, question_group: str, field: str
) -> list[Sample]:
    """One sample naming ``record[field]`` (the category ``label`` by default). ``question_group`` picks
    the phrasing family (e.g. ``largest`` for images with several objects, where "the object" would be
    ambiguous; ``largest_color`` with ``field="color"`` asks for the largest shape's colour, which the
    synthetic 2D source puts in ``color``). A record without ``field`` makes no sample."""
    value = record.get(field)
    if value is None or str(value).strip() == "":
        return []
    fields = label_fields(str(value))
    q = templates.pick("questions", question_group, rng)
    a = templates.pick("answers", "default", rng)
    return [Sample(q.render(**fields), a.render(**fields), f"{q.id}+{a.id}")]
