"""Scene sources: ScanNet-style ``{scene}_aligned_bbox.npy`` box files, or a JSON list of scenes.

A box row is ``cx cy cz dx dy dz label_id [object_id]`` (metres, axis-aligned). ``label_names`` maps
``label_id`` to a class name; rows whose id it does not name are dropped (ScanNet's 18 detection
classes are the default, by their NYU40 ids).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from .base import (
    UNNAMED,
    SourceError,
    check_unique_ids,
    media_path,
    need,
    norm_label,
    numbers,
    read_json,
    register_source,
)

# NYU40 ids of ScanNet's 18 detection classes (VoteNet's table).
SCANNET18: dict[int, str] = {
    3: "cabinet",
    4: "bed",
    5: "chair",
    6: "sofa",
    7: "table",
    8: "door",
    9: "window",
    10: "bookshelf",
    11: "picture",
    12: "counter",
    14: "desk",
    16: "curtain",
    24: "refrigerator",
    28: "shower curtain",
    33: "toilet",
    34: "sink",
    36: "bathtub",
    39: "garbage bin",
}


def read_aligned_bbox(
    path: str | os.PathLike, label_names: dict[int, str], keep_unnamed: bool = False
) -> list[dict[str, Any]]:
    """Objects of one ``*_aligned_bbox.npy``: ``[{"label", "bbox", "object_id"}]``.

    Rows whose label id ``label_names`` does not name are dropped, or with ``keep_unnamed`` kept as
    *unnamed* objects: ``{"label": None, "unnamed": True, "label_id": id, ...}`` (their class is
    unknown; the caller may name them, and builders never print a placeholder for them)."""
    p = Path(path)
    try:
        arr = np.load(p, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise SourceError(f"{p}: cannot read box file: {e}") from None
    if arr.size == 0:
        return []
    if arr.ndim != 2 or arr.shape[1] < 7:
        raise SourceError(
            f"{p}: expected rows of cx cy cz dx dy dz label_id [object_id], got shape {arr.shape}"
        )
    out = []
    for i, row in enumerate(arr):
        lid = int(row[6])
        if lid not in label_names and not keep_unnamed:
            continue
        box = [round(float(v), 4) for v in row[:6]]
        if not np.all(np.isfinite(row[:6])) or any(v <= 0 for v in box[3:]):
            raise SourceError(f"{p}: row {i}: box {box} has a non-finite value or a non-positive size")
        named = {"label": norm_label(label_names[lid])} if lid in label_names else UNNAMED | {"label_id": lid}
        out.append({**named, "bbox": box, "object_id": int(row[7]) if arr.shape[1] > 7 else i})
    return out


def _int_keys(names: dict[Any, str] | None) -> dict[int, str]:
    return {int(k): str(v) for k, v in (names or SCANNET18).items()}


@register_source("aligned_bbox")
def load_aligned_bbox_dir(
    bbox_dir: str | os.PathLike,
    pcl_prefix: str | None = None,
    pcl_pattern: str = "{scene}_aligned_vert.npy",
    dataset: str = "scannet",
    label_names: dict[Any, str] | None = None,
    scenes: list[str] | None = None,
    require_objects: bool = True,
) -> list[dict[str, Any]]:
    """Every ``{scene}_aligned_bbox.npy`` in ``bbox_dir`` (or only ``scenes``), one record per scene.

    The cloud path is ``pcl_prefix/`` + ``pcl_pattern.format(scene=...)`` (``pcl_prefix`` defaults to
    ``bbox_dir``, absolute)."""
    base = Path(bbox_dir)
    if not base.is_dir():
        raise SourceError(f"{base}: box folder not found")
    names = _int_keys(label_names)
    prefix = str(base.resolve()) if pcl_prefix is None else pcl_prefix
    files = {f.name[: -len("_aligned_bbox.npy")]: f for f in base.glob("*_aligned_bbox.npy")}
    wanted = sorted(files) if scenes is None else list(scenes)
    out = []
    for scene in wanted:
        if scene not in files:
            raise SourceError(f"{base}: no {scene}_aligned_bbox.npy")
        objects = read_aligned_bbox(files[scene], names)
        if require_objects and not objects:
            continue
        out.append(
            {
                "src_dataset": dataset,
                "src_id": scene,
                "pcl": media_path(prefix, pcl_pattern.format(scene=scene)),
                "objects": objects,
            }
        )
    return check_unique_ids(out, str(base))


@register_source("scene_list")
def load_scene_list(
    path: str | os.PathLike, pcl_prefix: str = "", dataset: str = "scenes3d"
) -> list[dict[str, Any]]:
    """A JSON list of ``{"scene_id", "pcl", "objects": [{"label", "bbox", "object_id"?, "color"?}]}``."""
    data = read_json(path)
    if not isinstance(data, list):
        raise SourceError(f"{path}: expected a JSON list of scenes")
    out = []
    for i, e in enumerate(data):
        where = f"{path}: entry {i}"
        objs = []
        for j, o in enumerate(need(e, "objects", where)):
            box = need(o, "bbox", f"{where}: objects[{j}]")
            objs.append(
                {
                    **o,
                    "label": norm_label(need(o, "label", f"{where}: objects[{j}]")),
                    "bbox": numbers(box, f"{where}: objects[{j}].bbox", 6, what="[cx, cy, cz, lx, ly, lz]"),
                }
            )
        rec = {
            "src_dataset": dataset,
            "src_id": str(need(e, "scene_id", where)),
            "pcl": media_path(pcl_prefix, str(need(e, "pcl", where))),
            "objects": objs,
        }
        rec.update({k: e[k] for k in ("captions", "qa", "referrals", "split") if k in e})
        out.append(rec)
    return check_unique_ids(out, str(path))
