"""C4 3D classification: "What kind of object is this point cloud?" → the category."""

from __future__ import annotations

from typing import Any

import numpy as np

from .base import Sample, label_fields, register_builder
from .templates import TemplateSet


@register_builder(
    "classification3d",
    version=1,
    task_type="classification3d",
    modality="pcl",
    requires=("label",),
    params={"question_group": "default"},
)
def build_classification3d(
    record: dict[str, Any], templates: TemplateSet, rng: np.random.Generator, question_group: str
) -> list[Sample]:
    """One sample naming ``record["label"]`` for an object-level point cloud."""
    fields = label_fields(str(record["label"]))
    q = templates.pick("questions", question_group, rng)
    a = templates.pick("answers", "default", rng)
    return [Sample(q.render(**fields), a.render(**fields), f"{q.id}+{a.id}")]
