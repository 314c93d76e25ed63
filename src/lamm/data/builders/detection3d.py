"""C4 3D detection: objects of a scene with [cx, cy, cz, lx, ly, lz] boxes in metres."""

from __future__ import annotations

from typing import Any

import numpy as np

from .base import Sample, box3d_for_answer, fmt_box, register_builder, spatial_order
from .detection import detection_samples
from .templates import TemplateSet


@register_builder(
    "detection3d",
    version=2,
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
    """As :func:`lamm.data.builders.detection.build_detection`, for scenes; objects ordered by x, y, z.
    A scene with unnamed objects (e.g. ScanRefer boxes no referral names) is not applicable."""
    return detection_samples(
        record, templates, rng, builder="detection3d", box_len=6, order=spatial_order,
        box_text=lambda box: fmt_box(box3d_for_answer(box, decimals), decimals),
        mode=mode, class_share=class_share, max_objects=max_objects,
    )
