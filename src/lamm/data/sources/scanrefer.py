"""ScanRefer: referring expressions for ScanNet objects, joined to the scenes' boxes.

``ScanRefer_filtered_{split}.json`` entries carry ``scene_id``, ``object_id``, ``object_name``,
``ann_id`` and ``description``; the boxes come from the scenes' ``*_aligned_bbox.npy`` (whose 8th
column is the ScanNet object id). ScanRefer covers all ScanNet classes, so boxes are read with every
label id kept unless ``label_names`` is given.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .base import SourceError, media_path, need, read_json, register_source
from .scenes3d import read_aligned_bbox


@register_source("scanrefer")
def load_scanrefer(
    path: str | os.PathLike,
    bbox_dir: str | os.PathLike,
    pcl_prefix: str | None = None,
    pcl_pattern: str = "{scene}_aligned_vert.npy",
    dataset: str = "scanrefer",
    label_names: dict[Any, str] | None = None,
) -> list[dict[str, Any]]:
    """One record per scene with ``objects`` and ``referrals`` (``description``, ``object_id``, ``label``)."""
    data = read_json(path)
    if not isinstance(data, list):
        raise SourceError(f"{path}: expected a JSON list of ScanRefer entries")
    base = Path(bbox_dir)
    prefix = str(base.resolve()) if pcl_prefix is None else pcl_prefix
    scenes: dict[str, dict[str, Any]] = {}
    for i, e in enumerate(data):
        where = f"{path}: entry {i}"
        scene = str(need(e, "scene_id", where))
        if scene not in scenes:
            f = base / f"{scene}_aligned_bbox.npy"
            if not f.exists():
                raise SourceError(f"{where}: box file {f} for scene {scene!r} not found")
            names = {int(k): str(v) for k, v in label_names.items()} if label_names else _AllLabels()
            scenes[scene] = {
                "src_dataset": dataset,
                "src_id": scene,
                "pcl": media_path(prefix, pcl_pattern.format(scene=scene)),
                "objects": read_aligned_bbox(f, names),
                "referrals": [],
            }
        rec = scenes[scene]
        oid = int(need(e, "object_id", where))
        if not any(o["object_id"] == oid for o in rec["objects"]):
            raise SourceError(f"{where}: object_id {oid} is not in {scene}_aligned_bbox.npy")
        rec["referrals"].append(
            {
                "id": f"{oid}-{e.get('ann_id', i)}",
                "object_id": oid,
                "label": " ".join(str(e.get("object_name", "object")).replace("_", " ").split()),
                "description": str(need(e, "description", where)),
            }
        )
    return [scenes[s] for s in sorted(scenes)]


class _AllLabels(dict):
    """A label table that names every id ``label{id}``; the ScanRefer ``object_name`` is used instead."""

    def __contains__(self, key: object) -> bool:
        return True

    def __getitem__(self, key: Any) -> str:
        return f"label{key}"
