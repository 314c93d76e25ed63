"""The LAMM-Benchmark scenarios as a plain table: name → benchmark file(s), task, modality, metric family.

``CATALOG[name]`` is a frozen ``ScenarioInfo``; ``get_scenario_info(name)`` looks one up with did-you-mean
errors. ``files`` lists the accepted benchmark file names, the current one first (older LAMM releases
used ``VQA_SQAimage.json`` and misspelled ``Keypoints_Dectection_LSP.json``). ``task_type`` selects the
system message (``lamm.conversation.SYSTEM_MESSAGES``); ``metric`` names a family in
``lamm.bench.metrics.METRICS``; ``gt_fields`` are the record fields the metric reads; ``classes`` is the
dataset's fixed class list where LAMM defines one (CIFAR10's 10 classes, UCMerced's 21 land-use
classes): it is the answer vocabulary of those scenarios (``ppl`` options, ``{labels}``) whatever labels
a file happens to contain, and its size is ``num_classes``.

>>> info = get_scenario_info("ScienceQA")
>>> info.files, info.metric, info.modality
(('VQA_ScienceQA.json', 'VQA_SQAimage.json'), 'multiple_choice', 'image')
>>> round(info.chance_level([{"gt_choices": ["a", "b"]}, {"gt_choices": ["a", "b", "c", "d"]}]), 2)
37.5
>>> get_scenario_info("CIFAR10").chance_level()
10.0
>>> len(get_scenario_info("UCMerced").classes)
21
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from lamm.bench.metrics.synonyms import CIFAR10_CLASSES, UCMERCED_CLASSES
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
    classes: tuple[str, ...] | None = None  # the fixed class list, where LAMM defines one

    def __post_init__(self) -> None:
        if self.classes is not None:
            if self.num_classes is None:
                object.__setattr__(self, "num_classes", len(self.classes))
            elif self.num_classes != len(self.classes):
                raise ValueError(f"scenario {self.name!r}: num_classes={self.num_classes} but "
                                 f"{len(self.classes)} classes are listed")

    @property
    def file(self) -> str:
        """The current benchmark file name."""
        return self.files[0]

    def chance_level(self, records: Sequence[dict] | None = None) -> float | None:
        """Accuracy (percent) of uniform guessing, or ``None`` where undefined (detection, captioning...).

        ``classes``: 100 / number of classes (``num_classes``, else the answer options a run over
        ``records`` offers: the distinct hair colours, "Black_Hair" = "black", as ``RecordScenario.chance``);
        ``choices``: the mean over ``records`` of 100 / number of options (needs ``records``).
        """
        if self.chance == "classes":
            k = self.num_classes
            if k is None and records and self.label_field:
                from lamm.bench.scenarios.lamm_files import vocabulary  # the options a run would offer

                opts = vocabulary(self.metric, list(records))
                k = len(opts) if opts else len({_norm(r.get(self.label_field)) for r in records
                                                if isinstance(r, dict)})
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
       "classification", ("label",), num_classes=10, chance="classes", label_field="label",
       classes=CIFAR10_CLASSES),
    _S("VOC2012", ("Detection_VOC2012.json",), "Detection", "detection", "image", "detection", ("object",)),
    _S("ScienceQA", ("VQA_ScienceQA.json", "VQA_SQAimage.json"), "VQA", "VQA", "image", "multiple_choice",
       ("gt_choice", "gt_choices"), chance="choices"),
    _S("AI2D", ("VQA_AI2D.json",), "VQA", "VQA", "image", "multiple_choice", ("gt_choice", "gt_choices"),
       chance="choices"),
    _S("Flickr30k", ("Caption_flickr30k.json",), "Caption", "normal", "image", "caption", ("sentences",)),
    _S("UCMerced", ("Fine-grained_Classification_UCMerced.json",), "Fine-grained_Classification",
       "classification", "image", "classification", ("label",), num_classes=21, chance="classes",
       label_field="label", classes=UCMERCED_CLASSES),
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
