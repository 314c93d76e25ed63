"""The LAMM-Benchmark scenarios as a plain table: name → benchmark file(s), task, modality, metric family.

``CATALOG[name]`` is a frozen ``ScenarioInfo``; ``get_scenario_info(name)`` looks one up with did-you-mean
errors. ``files`` lists the accepted benchmark file names, the current one first (older LAMM releases
used ``VQA_SQAimage.json`` and misspelled ``Keypoints_Dectection_LSP.json``). ``task_type`` selects the
system message (``lamm.conversation.SYSTEM_MESSAGES``); ``metric`` names a family in
``lamm.bench.metrics.METRICS``; ``gt_fields`` are the record fields the metric reads.

>>> info = get_scenario_info("ScienceQA")
>>> info.files, info.metric, info.modality
(('VQA_ScienceQA.json', 'VQA_SQAimage.json'), 'multiple_choice', 'image')
>>> round(info.chance_level([{"gt_choices": ["a", "b"]}, {"gt_choices": ["a", "b", "c", "d"]}]), 2)
37.5
>>> get_scenario_info("CIFAR10").chance_level()
10.0
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from lamm.registry import Registry

Modality = Literal["image", "pcl"]


@dataclass(frozen=True)
class ScenarioInfo:
    """One LAMM-Benchmark scenario (a dataset with its task and metric)."""

    name: str
    files: tuple[str, ...]
    task: str  # the LAMM-Benchmark task name
    task_type: str  # instruction task type: selects the system message
    modality: Modality
    metric: str  # metric family in lamm.bench.metrics.METRICS
    gt_fields: tuple[str, ...]
    num_classes: int | None = None  # fixed label-set size, where the dataset defines one
    chance: Literal["classes", "choices"] | None = None  # how ``chance_level`` is computed
    label_field: str | None = None  # the field holding the class, for chance from records

    @property
    def file(self) -> str:
        """The current benchmark file name."""
        return self.files[0]

    def chance_level(self, records: Sequence[dict] | None = None) -> float | None:
        """Accuracy (percent) of uniform guessing, or ``None`` where undefined (detection, captioning...).

        ``classes``: 100 / number of classes (``num_classes``, else the distinct labels in ``records``);
        ``choices``: the mean over ``records`` of 100 / number of options (needs ``records``).
        """
        if self.chance == "classes":
            k = self.num_classes
            if k is None and records and self.label_field:
                k = len({_norm(r.get(self.label_field)) for r in records if isinstance(r, dict)})
            return 100.0 / k if k else None
        if self.chance == "choices" and records:
            sizes = [len(r["gt_choices"]) for r in records
                     if isinstance(r, dict) and isinstance(r.get("gt_choices"), list) and r["gt_choices"]]
            return 100.0 * sum(1.0 / s for s in sizes) / len(sizes) if sizes else None
        return None


def _norm(v: object) -> str:
    return re.sub(r"[\s_\-]+", " ", str(v).lower()).strip()


_S = ScenarioInfo
_SCENARIOS = (
    _S("CIFAR10", ("Classification_CIFAR10.json",), "Classification", "classification", "image",
       "classification", ("label",), num_classes=10, chance="classes", label_field="label"),
    _S("VOC2012", ("Detection_VOC2012.json",), "Detection", "detection", "image", "detection", ("object",)),
    _S("ScienceQA", ("VQA_ScienceQA.json", "VQA_SQAimage.json"), "VQA", "VQA", "image", "multiple_choice",
       ("gt_choice", "gt_choices"), chance="choices"),
    _S("AI2D", ("VQA_AI2D.json",), "VQA", "VQA", "image", "multiple_choice", ("gt_choice", "gt_choices"),
       chance="choices"),
    _S("Flickr30k", ("Caption_flickr30k.json",), "Caption", "normal", "image", "caption", ("sentences",)),
    _S("UCMerced", ("Fine-grained_Classification_UCMerced.json",), "Fine-grained_Classification",
       "classification", "image", "classification", ("label",), num_classes=21, chance="classes",
       label_field="label"),
    _S("FSC147", ("Counting_FSC147.json",), "Counting", "counting", "image", "counting", ("num",)),
    _S("SVT", ("OCR_SVT.json",), "OCR", "VQA", "image", "ocr", ("word_list",)),
    _S("CelebA-Smile", ("Facial_Classification_CelebA(Smile).json",), "Facial_Classification", "VQA", "image",
       "facial_smile", ("attr",), num_classes=2, chance="classes", label_field="attr"),
    _S("CelebA-Hair", ("Facial_Classification_CelebA(Hair).json",), "Facial_Classification", "VQA", "image",
       "facial_hair", ("attr",), chance="classes", label_field="attr"),
    _S("LSP", ("Keypoints_Detection_LSP.json", "Keypoints_Dectection_LSP.json"), "Keypoints_Detection",
       "keypoint_detection", "image", "keypoints", ("gt_joints",)),
    _S("Locating-VOC2012", ("Locating_VOC2012.json",), "Locating", "keypoint_detection", "image", "locating",
       ("object",)),
    _S("Locating-LSP", ("Locating_LSP.json",), "Locating", "keypoint_detection", "image", "locating",
       ("gt_joints",)),
    _S("Locating-FSC147", ("Locating_FSC147.json",), "Locating", "keypoint_detection", "image", "locating",
       ("points",)),
    _S("ScanNet", ("Detection_ScanNet.json",), "Detection3D", "detection3d", "pcl", "detection3d", ("object",)),
    _S("ScanRefer", ("VG_ScanRefer.json",), "VG3D", "visual_grounding3d", "pcl", "grounding3d", ("object",)),
    _S("ScanQA", ("VQA_ScanQA_multiplechoice.json",), "VQA3D", "VQA3d", "pcl", "multiple_choice",
       ("gt_choice", "gt_choices"), chance="choices"),
)

#: scenario name → ScenarioInfo, in LAMM's order (2D then 3D)
CATALOG: dict[str, ScenarioInfo] = {s.name: s for s in _SCENARIOS}

_REGISTRY: Registry[ScenarioInfo] = Registry("scenario")
for _info in _SCENARIOS:
    _REGISTRY.add(_info.name, _info)


def get_scenario_info(name: str) -> ScenarioInfo:
    """The scenario called ``name``; a ``KeyError`` lists close names ("did you mean ...?") otherwise."""
    return _REGISTRY.get(name)


def scenario_for_file(file_name: str) -> ScenarioInfo | None:
    """The scenario whose benchmark file is called ``file_name`` (a base name), or ``None``."""
    for info in _SCENARIOS:
        if file_name in info.files:
            return info
    return None
