"""ScanRefer: referring expressions for ScanNet objects, joined to the scenes' boxes.

``ScanRefer_filtered_{split}.json`` entries carry ``scene_id``, ``object_id``, ``object_name``,
``ann_id`` and ``description``; the boxes come from the scenes' ``*_aligned_bbox.npy`` (whose 8th
column is the ScanNet object id). ScanRefer covers all ScanNet classes, so every box is read. Without
``label_names`` an object is named by the ``object_name`` of a referral to it; an object that no
referral names is kept *unnamed* (``{"label": None, "unnamed": True}``): its box still answers
referrals, but builders that would have to print its class (detection3d, generated grounding
expressions) skip the scene and count it as not applicable. With ``label_names`` (label id → name)
only the boxes of those ids are read, named by the table.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .base import SourceError, media_path, need, norm_label, number, read_json, register_source
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
    table = {int(k): str(v) for k, v in label_names.items()} if label_names else None
    scenes: dict[str, dict[str, Any]] = {}
    names: dict[tuple[str, int], str] = {}  # (scene, object id) -> the first object_name given for it
    for i, e in enumerate(data):
        where = f"{path}: entry {i}"
        scene = str(need(e, "scene_id", where))
        if scene not in scenes:
            f = base / f"{scene}_aligned_bbox.npy"
            if not f.exists():
                raise SourceError(f"{where}: box file {f} for scene {scene!r} not found")
            scenes[scene] = {
                "src_dataset": dataset,
                "src_id": scene,
                "pcl": media_path(prefix, pcl_pattern.format(scene=scene)),
                "objects": read_aligned_bbox(f, table or {}, keep_unnamed=table is None),
                "referrals": [],
            }
        rec = scenes[scene]
        oid = number(need(e, "object_id", where), f"{where}.object_id", integer=True, strings=True)
        if not any(o["object_id"] == oid for o in rec["objects"]):
            raise SourceError(f"{where}: object_id {oid} is not in {scene}_aligned_bbox.npy")
        name = norm_label(e["object_name"]) if e.get("object_name") not in (None, "") else ""
        if name:
            names.setdefault((scene, oid), name)
        rec["referrals"].append(
            {
                "id": f"{oid}-{e.get('ann_id', i)}",
                "object_id": oid,
                "label": name or "object",
                "description": str(need(e, "description", where)),
            }
        )
    for scene, rec in scenes.items():
        for o in rec["objects"]:
            if o.get("unnamed") and (scene, o["object_id"]) in names:
                o["label"] = names[(scene, o["object_id"])]
                del o["unnamed"]
    return [scenes[s] for s in sorted(scenes)]
