"""C4 3D visual question answering (ScanQA-style), open-ended or multiple choice.

Same machinery as :mod:`lamm.data.builders.vqa`; relations use the scene frame (z up, a viewer at -y
looking towards +y: left / right / in front / behind).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .base import Sample, register_builder
from .templates import TemplateSet
from .vqa import build_vqa_samples

_PARAMS = {
    "sources": ["qa", "attributes"],
    "kinds": ["color", "shape", "position", "count"],
    "per_record": 1,
    "n_choices": 4,
    "shuffle_choices": False,
    "answer_style": "letter",
}


@register_builder("vqa3d", version=2, task_type="VQA3d", modality="pcl", params=_PARAMS)
def build_vqa3d(
    record: dict[str, Any],
    templates: TemplateSet,
    rng: np.random.Generator,
    sources: list[str],
    kinds: list[str],
    per_record: int,
    n_choices: int,
    shuffle_choices: bool,
    answer_style: str,
) -> list[Sample]:
    """3D VQA over a scene's ``qa`` and/or its objects' attributes."""
    return build_vqa_samples(
        record,
        templates,
        rng,
        builder="vqa3d",
        frame="3d",
        sources=sources,
        kinds=kinds,
        per_record=per_record,
        n_choices=n_choices,
        shuffle_choices=shuffle_choices,
        answer_style=answer_style,
    )
