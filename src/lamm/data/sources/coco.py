"""COCO-style annotation files: instances (boxes), person keypoints and captions.

Any subset of the three files may be given; they are joined on image id. Crowd annotations
(``iscrowd: 1``) are left out of ``objects`` and their labels listed in ``crowd_labels``, since a crowd
region stands for an unknown number of instances. Extra per-image fields (``words``, ``knowledge``)
and per-annotation ``color`` are passed through, so COCO-style synthetic sets load here too.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .base import (
    SourceError,
    box_xywh_to_norm,
    check_unique_ids,
    media_path,
    need,
    norm_label,
    number,
    numbers,
    read_json,
    register_source,
)


def _images(data: dict[str, Any], fname: str) -> dict[int, dict[str, Any]]:
    out = {}
    for i, img in enumerate(data.get("images") or []):
        where = f"{fname}: images[{i}]"
        out[need(img, "id", where)] = {
            "file_name": need(img, "file_name", where),
            "width": number(need(img, "width", where), f"{where}.width"),
            "height": number(need(img, "height", where), f"{where}.height"),
            "extra": {k: img[k] for k in ("words", "knowledge", "split") if k in img},
        }
    return out


@register_source("coco")
def load_coco(
    instances: str | os.PathLike | None = None,
    keypoints: str | os.PathLike | None = None,
    captions: str | os.PathLike | None = None,
    image_prefix: str = "",
    dataset: str = "coco2017",
    split: str | None = None,
    require_objects: bool = False,
    ann_fields: tuple[str, ...] | list[str] = ("color",),
) -> list[dict[str, Any]]:
    """Read COCO files into source records (one per image, sorted by image id).

    ``image_prefix`` is prepended to each ``file_name`` to form the record's ``image`` path.
    ``require_objects`` drops images without any (non-crowd) box; ``ann_fields`` are annotation keys
    copied onto the objects as they are. Keypoints are normalised to 0–1 and
    kept as ``[[x, y, v], ...]`` on the person objects, with ``keypoint_names`` from the category.
    """
    files = [
        (f, kind)
        for f, kind in ((instances, "instances"), (keypoints, "keypoints"), (captions, "captions"))
        if f
    ]
    if not files:
        raise SourceError("coco source: give at least one of instances, keypoints, captions")
    images: dict[int, dict[str, Any]] = {}
    recs: dict[int, dict[str, Any]] = {}
    for path, kind in files:
        fname = str(path)
        data = read_json(path)
        if not isinstance(data, dict):
            raise SourceError(f"{fname}: expected a COCO object with 'images' and 'annotations'")
        for iid, img in _images(data, fname).items():
            images.setdefault(iid, img)
        cats = {c["id"]: c for c in data.get("categories") or [] if isinstance(c, dict) and "id" in c}
        for j, ann in enumerate(data.get("annotations") or []):
            where = f"{fname}: annotations[{j}]"
            iid = need(ann, "image_id", where)
            if iid not in images:
                raise SourceError(f"{where}: image_id {iid!r} is not in 'images'")
            rec = recs.setdefault(iid, {"objects": {}, "captions": [], "crowd": set(), "kp_names": None})
            if kind == "captions":
                rec["captions"].append(" ".join(str(need(ann, "caption", where)).split()))
                continue
            cid = need(ann, "category_id", where)
            if cid not in cats:
                raise SourceError(f"{where}: category_id {cid!r} is not in 'categories'")
            label = norm_label(cats[cid].get("name", cid))
            if ann.get("iscrowd"):
                rec["crowd"].add(label)
                continue
            img = images[iid]
            aid = ann.get("id", f"{kind}{j}")
            obj = rec["objects"].setdefault(aid, {"label": label})
            obj["bbox"] = box_xywh_to_norm(
                need(ann, "bbox", where), img["width"], img["height"], f"{where}.bbox"
            )
            obj["bbox_px"] = numbers(ann["bbox"], f"{where}.bbox", 4)
            obj.update({k: ann[k] for k in ann_fields if k in ann})
            if ann.get("keypoints"):
                kp = numbers(ann["keypoints"], f"{where}.keypoints")
                if len(kp) % 3:
                    raise SourceError(f"{where}.keypoints: length {len(kp)} is not a multiple of 3 (x, y, v)")
                for k in range(2, len(kp), 3):  # visibility flags are integers 0, 1, 2
                    number(ann["keypoints"][k], f"{where}.keypoints[{k}]", integer=True)
                obj["keypoints"] = [
                    [round(kp[k] / img["width"], 4), round(kp[k + 1] / img["height"], 4), int(kp[k + 2])]
                    for k in range(0, len(kp), 3)
                ]
                names = cats[cid].get("keypoints")
                if not names or len(names) != len(obj["keypoints"]):
                    raise SourceError(
                        f"{where}.keypoints: category {label!r} lists "
                        f"{len(names) if names else 'no'} keypoint names for {len(obj['keypoints'])} points"
                    )
                rec["kp_names"] = [norm_label(n) for n in names]
    out = []
    for iid in sorted(images, key=lambda v: (str(type(v)), v)):
        img = images[iid]
        rec = recs.get(iid, {"objects": {}, "captions": [], "crowd": set(), "kp_names": None})
        objects = [o for o in rec["objects"].values() if "bbox" in o]
        if require_objects and not objects:
            continue
        r: dict[str, Any] = {
            "src_dataset": dataset,
            "src_id": str(iid),
            "image": media_path(image_prefix, img["file_name"]),
            "width": img["width"],
            "height": img["height"],
            "objects": objects,
        }
        if rec["kp_names"]:
            r["keypoint_names"] = rec["kp_names"]
        if rec["captions"]:
            r["captions"] = rec["captions"]
        if rec["crowd"]:
            r["crowd_labels"] = sorted(rec["crowd"])
        r.update(img["extra"])
        if split is not None:
            r["split"] = split
        out.append(r)
    return check_unique_ids(out, ", ".join(str(Path(f)) for f, _ in files))
