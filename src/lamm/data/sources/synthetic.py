"""The sets written by ``lamm data synth`` (:mod:`lamm.data.synthetic`), as source records.

Paths in the synthetic annotations are relative to the synthetic output root, which is therefore the
vision root of the instruction data built from it (``media_prefix`` prepends a folder when it is not).

* ``synthetic2d``: ``2d/annotations/{split}.json`` (COCO-style) → one record per image with objects
  (``label``, normalised ``bbox``, ``color``, ``center`` = the shape's keypoint), ``label`` = the
  dominant (largest) shape, ``color`` = its colour, ``words``, ``keypoint_names`` and ``vocab`` (palette colours, shapes).
* ``synthetic_objects3d``: ``3d/annotations/objects_{split}.json`` → one record per object cloud.
* ``synthetic_scenes3d``: ``3d/annotations/scenes_{split}.json`` → one record per scene with objects
  (``[cx, cy, cz, lx, ly, lz]`` boxes) and ``referrals`` from the generator's referring expressions.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .base import (
    SourceError,
    check_unique_ids,
    media_path,
    need,
    norm_label,
    numbers,
    read_json,
    register_source,
)
from .coco import load_coco


@register_source("synthetic2d")
def load_synthetic_2d(
    root: str | os.PathLike, split: str = "train", media_prefix: str = "", dataset: str = "synthetic2d"
) -> list[dict[str, Any]]:
    """2D shapes of one split (see the module docstring)."""
    path = Path(root) / "2d" / "annotations" / f"{split}.json"
    data = read_json(path)
    recs = load_coco(
        instances=path,
        image_prefix=media_prefix,
        dataset=dataset,
        split=split,
        ann_fields=("color", "dominant"),
    )
    colors = sorted((data.get("colors") or {}).keys())
    shapes = [norm_label(c["name"]) for c in data.get("categories") or []]
    for r in recs:
        objs = r["objects"]
        dom = [o for o in objs if o.get("dominant")]
        if len(dom) != 1:
            raise SourceError(f"{path}: image {r['src_id']} has {len(dom)} dominant shapes, expected 1")
        r["label"] = dom[0]["label"]
        r["color"] = dom[0].get("color")
        for o in objs:
            if o.get("keypoints"):
                o["center"] = o["keypoints"][0][:2]
        r["vocab"] = {"colors": colors, "shapes": shapes}
    return recs


@register_source("synthetic_objects3d")
def load_synthetic_objects_3d(
    root: str | os.PathLike,
    split: str = "train",
    media_prefix: str = "",
    dataset: str = "synthetic3d_objects",
) -> list[dict[str, Any]]:
    """Single-primitive object clouds of one split."""
    path = Path(root) / "3d" / "annotations" / f"objects_{split}.json"
    data = read_json(path)
    out = []
    for i, e in enumerate(need(data, "objects", str(path))):
        where = f"{path}: objects[{i}]"
        out.append(
            {
                "src_dataset": dataset,
                "src_id": str(need(e, "id", where)),
                "pcl": media_path(media_prefix, str(need(e, "file", where))),
                "label": norm_label(need(e, "label", where)),
                "color": e.get("color"),
                "split": split,
                "objects": [
                    {
                        "label": norm_label(e["label"]),
                        "bbox": numbers(need(e, "bbox", where), f"{where}.bbox", 6),
                        **({"color": e["color"]} if e.get("color") else {}),
                    }
                ],
            }
        )
    return check_unique_ids(out, str(path))


@register_source("synthetic_scenes3d")
def load_synthetic_scenes_3d(
    root: str | os.PathLike, split: str = "train", media_prefix: str = "", dataset: str = "synthetic3d_scenes"
) -> list[dict[str, Any]]:
    """Scenes of primitives on a floor, with every unambiguous referring expression as a referral."""
    path = Path(root) / "3d" / "annotations" / f"scenes_{split}.json"
    data = read_json(path)
    shapes = [norm_label(c["name"]) for c in data.get("categories") or []]
    out = []
    for i, s in enumerate(need(data, "scenes", str(path))):
        where = f"{path}: scenes[{i}]"
        objs, refs = [], []
        for j, o in enumerate(need(s, "objects", where)):
            ow = f"{where}.objects[{j}]"
            oid = need(o, "object_id", ow)
            objs.append(
                {
                    "object_id": oid,
                    "label": norm_label(need(o, "label", ow)),
                    "bbox": numbers(need(o, "bbox", ow), f"{ow}.bbox", 6),
                    **({"color": o["color"]} if o.get("color") else {}),
                }
            )
            for k, e in enumerate(o.get("referring_expressions") or []):
                refs.append(
                    {
                        "id": f"{oid}-{k}",
                        "object_id": oid,
                        "description": str(need(e, "text", f"{ow}.referring_expressions[{k}]")),
                        "style": "phrase",
                        "relational": e.get("relation") is not None,
                    }
                )
        out.append(
            {
                "src_dataset": dataset,
                "src_id": str(need(s, "scene_id", where)),
                "pcl": media_path(media_prefix, str(need(s, "file", where))),
                "split": split,
                "objects": objs,
                "referrals": refs,
                "vocab": {"shapes": shapes},
            }
        )
    return check_unique_ids(out, str(path))
