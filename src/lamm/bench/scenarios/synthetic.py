"""Scenarios over the output of ``lamm data synth``: ``Synth-*`` (2D) and ``Synth3D-*`` (3D).

The data root is the synth output directory ``OUT``; a scenario reads
``OUT/benchmark/{split}/<file>`` (split ``train`` or ``test``) and resolves media against ``OUT``.
Each maps onto a metric family exactly as its LAMM counterpart (Synth-Classification like CIFAR10,
Synth3D-Grounding like ScanRefer, ...). The ``train`` split is the natural in-context example pool of
the ``test`` split (``instruction.icl.pool: train``).
"""

from __future__ import annotations

from pathlib import Path

from lamm.bench.scenarios.base import SCENARIOS, MissingDataError, RecordScenario, ScenarioError, ScenarioSpec
from lamm.bench.scenarios.lamm_files import records_scenario

SPLITS = ("train", "test")

#: name → (file, metric family, task type, modality)
SYNTHETIC: dict[str, tuple[str, str, str, str]] = {
    "Synth-Classification": ("Classification_Synth.json", "classification", "classification", "image"),
    "Synth-Counting": ("Counting_Synth.json", "counting", "counting", "image"),
    "Synth-Detection": ("Detection_Synth.json", "detection", "detection", "image"),
    "Synth-OCR": ("OCR_Synth.json", "ocr", "VQA", "image"),
    "Synth-Locating": ("Locating_Synth.json", "locating", "keypoint_detection", "image"),
    "Synth-VQA": ("VQA_Synth.json", "multiple_choice", "VQA", "image"),
    "Synth3D-Classification": ("Classification3D_Synth.json", "classification", "classification3d", "pcl"),
    "Synth3D-Detection": ("Detection3D_Synth.json", "detection3d", "detection3d", "pcl"),
    "Synth3D-Grounding": ("VG_Synth.json", "grounding3d", "visual_grounding3d", "pcl"),
    "Synth3D-VQA": ("VQA3D_Synth.json", "multiple_choice", "VQA3d", "pcl"),
}


def _chance(family: str):
    def chance(records: list[dict]) -> float | None:
        if family == "multiple_choice":
            sizes = [len(r["gt_choices"]) for r in records if isinstance(r.get("gt_choices"), list) and r["gt_choices"]]
            return 100.0 * sum(1.0 / s for s in sizes) / len(sizes) if sizes else None
        if family == "classification":
            k = len({str(r.get("label")) for r in records})
            return 100.0 / k if k else None
        return None

    return chance


def _loader(name: str):
    fname, family, default_task_type, modality = SYNTHETIC[name]

    def load(root: Path, *, split: str = "test", file: str | None = None, metric: str | None = None,
             task_type: str | None = None) -> RecordScenario:
        if root is None:
            raise ScenarioError(f"scenario {name!r}: pass --root, the output directory of `lamm data synth`")
        if file is not None:  # e.g. an in-context example pool
            path = Path(file) if Path(file).is_absolute() else root / file
        else:
            path = root / "benchmark" / split / fname
        if not path.is_file():
            raise MissingDataError(f"scenario {name!r}: {path} not found; run `lamm data synth --out {root}` first "
                                "(files with no records are not written, e.g. OCR without words)")
        fam = metric or family
        return records_scenario(name, path, root, fam, task_type or default_task_type, modality, _chance(fam))

    return load


for _name, (_f, _fam, _tt, _mod) in SYNTHETIC.items():
    SCENARIOS.add(_name, ScenarioSpec(name=_name, metric=_fam, task_type=_tt, modality=_mod, load=_loader(_name),
                                      splits=SPLITS, description=f"synthetic: benchmark/<split>/{_f}",
                                      suite="synthetic"))
