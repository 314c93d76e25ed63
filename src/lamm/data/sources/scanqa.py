"""ScanQA: questions about ScanNet scenes, open-ended or made multiple choice.

``ScanQA_v1.0_{split}.json`` entries carry ``scene_id``, ``question_id``, ``question`` and ``answers``.
With ``n_distractors > 0`` each question gets distractors drawn (seeded by the question id) from the
answers of other questions that start with the same two words ("what color", "where is"), so the
options are of the same kind as the answer; LAMM's ScanQA benchmark is multiple choice (up to 6).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from lamm.data.builders.base import rng_for

from .base import SourceError, media_path, need, read_json, register_source
from .scenes3d import SCANNET18, read_aligned_bbox


def _qtype(question: str) -> str:
    return " ".join(question.lower().split()[:2])


@register_source("scanqa")
def load_scanqa(
    path: str | os.PathLike,
    pcl_prefix: str = "",
    pcl_pattern: str = "{scene}_aligned_vert.npy",
    dataset: str = "scanqa",
    n_distractors: int = 3,
    seed: int = 0,
    bbox_dir: str | os.PathLike | None = None,
) -> list[dict[str, Any]]:
    """One record per scene with ``qa``; with ``bbox_dir`` the scene's 18-class ``objects`` too."""
    data = read_json(path)
    if not isinstance(data, list):
        raise SourceError(f"{path}: expected a JSON list of ScanQA entries")
    pools: dict[str, list[str]] = {}
    rows = []
    for i, e in enumerate(data):
        where = f"{path}: entry {i}"
        raw = need(e, "answers", where)
        if not isinstance(raw, list):
            # a string would be read letter by letter ("brown" -> answer "b")
            raise SourceError(
                f"{where}.answers: must be a list of strings, got {type(raw).__name__} {raw!r}; "
                f"write [{raw!r}] for a single answer"
            )
        answers = [" ".join(str(a).split()) for a in raw if str(a).strip()]
        if not answers:
            raise SourceError(f"{where}: 'answers' is empty")
        q = str(need(e, "question", where)).strip()
        rows.append((str(need(e, "scene_id", where)), str(e.get("question_id", i)), q, answers))
        pools.setdefault(_qtype(q), []).append(answers[0])
    pools = {k: sorted(set(v)) for k, v in pools.items()}
    scenes: dict[str, dict[str, Any]] = {}
    for scene, qid, q, answers in rows:
        rec = scenes.setdefault(
            scene,
            {
                "src_dataset": dataset,
                "src_id": scene,
                "pcl": media_path(pcl_prefix, pcl_pattern.format(scene=scene)),
                "qa": [],
            },
        )
        entry: dict[str, Any] = {"id": qid, "question": q, "answer": answers[0]}
        if n_distractors > 0:
            others = [a for a in pools[_qtype(q)] if a not in answers]
            if len(others) >= 1:
                rng = rng_for(seed, "scanqa", qid)
                k = min(n_distractors, len(others))
                entry["distractors"] = [
                    others[int(j)] for j in rng.choice(len(others), size=k, replace=False)
                ]
        rec["qa"].append(entry)
    if bbox_dir is not None:
        for scene, rec in scenes.items():
            f = Path(bbox_dir) / f"{scene}_aligned_bbox.npy"
            if not f.exists():
                raise SourceError(f"{path}: box file {f} for scene {scene!r} not found")
            rec["objects"] = read_aligned_bbox(f, SCANNET18)
    return [scenes[s] for s in sorted(scenes)]
