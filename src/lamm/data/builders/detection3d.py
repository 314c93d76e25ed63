"""C4 3D detection: objects of a scene with [cx, cy, cz, lx, ly, lz] boxes in metres."""

from __future__ import annotations

from typing import Any

import numpy as np

from .base import (
    Sample,
    box3d_for_answer,
    checked_objects,
    fmt_box,
    label_fields,
    pick,
    register_builder,
    spatial_order,
)
from .templates import TemplateSet


@register_builder(
    "detection3d",
    version=1,
    task_type="detection3d",
    modality="pcl",
    requires=("objects",),
    params={"mode": "mixed", "class_share": 0.3, "max_objects": 30, "decimals": 2},
)
def build_detection3d(
    record: dict[str, Any],
    templates: TemplateSet,
    rng: np.random.Generator,
    mode: str,
    class_share: float,
    max_objects: int,
    decimals: int,
) -> list[Sample]:
    """As :func:`lamm.data.builders.detection.build_detection`, for scenes; objects ordered by x, y, z."""
    if mode not in ("all", "class", "mixed"):
        raise ValueError(f"detection3d: mode must be all, class or mixed, got {mode!r}")
    objs = checked_objects(record, "detection3d", 6)
    if not objs or len(objs) > max_objects:
        return []
    per_class = mode == "class" or (mode == "mixed" and rng.random() < class_share)
    fields: dict[str, Any] = {}
    if per_class:
        label = pick(rng, sorted({o["label"] for o in objs}))
        objs = [o for o in objs if o["label"] == label]
        fields = label_fields(label)
        q = templates.pick("questions", "class", rng)
    else:
        q = templates.pick("questions", "all", rng)
    a = templates.pick("answers", "default", rng)
    items = [
        {**label_fields(o["label"]), "box": fmt_box(box3d_for_answer(o["bbox"], decimals), decimals)}
        for o in spatial_order(objs)
    ]
    fields.update(n=len(items))
    return [Sample(q.render(**fields), a.render(items=items, **fields), f"{q.id}+{a.id}")]
