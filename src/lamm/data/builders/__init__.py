"""C4 builders: pure functions of (source record, templates, seeded rng) → one-round instruction records.

Importing this package registers every builder in :data:`BUILDERS`; :func:`run_builder` applies one.

| builder | task_type | needs |
|---|---|---|
| classification | classification | ``label`` |
| detection | detection | ``objects`` with normalised ``bbox`` |
| keypoints | keypoint_detection | ``objects`` with ``keypoints`` + ``keypoint_names`` |
| counting | counting | ``counts`` or ``objects`` |
| ocr | VQA | ``words`` |
| vqa | VQA | ``qa`` and/or ``objects`` with ``color`` |
| classification3d | classification3d | ``label`` (object cloud) |
| detection3d | detection3d | ``objects`` with ``[cx, cy, cz, lx, ly, lz]`` |
| visual_grounding3d | visual_grounding3d | ``referrals`` and/or ``objects`` |
| vqa3d | VQA3d | ``qa`` and/or ``objects`` |
"""

from . import (  # noqa: F401  (registration side effects)
    classification,
    classification3d,
    counting,
    detection,
    detection3d,
    keypoints,
    ocr,
    visual_grounding3d,
    vqa,
    vqa3d,
)
from .base import BUILDERS, Builder, BuilderError, Sample, rng_for, run_builder, stable_int, stable_unit
from .templates import TemplateError, TemplateSet, load_templates

__all__ = [
    "BUILDERS",
    "Builder",
    "BuilderError",
    "Sample",
    "TemplateError",
    "TemplateSet",
    "load_templates",
    "rng_for",
    "run_builder",
    "stable_int",
    "stable_unit",
]
