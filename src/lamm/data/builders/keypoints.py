"""C4 keypoint detection (2D): where is a person's (or object's) keypoint → ``[x, y]`` in 0–1.

Source objects carry ``keypoints``: a list of ``[x, y, v]`` normalised to 0–1 with COCO visibility
``v`` (0 not labelled, 1 labelled but occluded, 2 visible), and the record (or the object) carries
``keypoint_names`` in the same order. Only labelled keypoints (``v > 0``) are asked about.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .base import (
    BuilderError,
    Sample,
    clip_box2d,
    fmt_box,
    fmt_num,
    label_fields,
    pick,
    register_builder,
    source_ref,
)
from .templates import TemplateSet


def _labelled(record: dict[str, Any], obj: dict[str, Any], j: int) -> list[tuple[str, list[float]]]:
    names = obj.get("keypoint_names") or record.get("keypoint_names")
    kps = obj["keypoints"]
    if not isinstance(names, list) or len(names) != len(kps):
        raise BuilderError(
            f"source record {source_ref(record)}: builder 'keypoints': objects[{j}].keypoints has "
            f"{len(kps)} points but keypoint_names has "
            f"{len(names) if isinstance(names, list) else 'no'} names"
        )
    out = []
    for name, kp in zip(names, kps):
        if not isinstance(kp, (list, tuple)) or len(kp) < 2:
            raise BuilderError(
                f"source record {source_ref(record)}: builder 'keypoints': objects[{j}].keypoints: "
                f"expected [x, y, v], got {kp!r}"
            )
        v = kp[2] if len(kp) > 2 else 2
        if v > 0:
            out.append((str(name).replace("_", " "), [float(kp[0]), float(kp[1])]))
    return out


def fmt_point(pt: list[float], decimals: int = 2) -> str:
    """``[x, y]`` clipped to [0, 1] with fixed decimals."""
    return "[" + ", ".join(fmt_num(min(1.0, max(0.0, v)), decimals) for v in pt) + "]"


@register_builder(
    "keypoints",
    version=1,
    task_type="keypoint_detection",
    modality="image",
    requires=("objects",),
    params={"mode": "mixed", "all_share": 0.3, "decimals": 2, "min_keypoints": 1},
)
def build_keypoints(
    record: dict[str, Any],
    templates: TemplateSet,
    rng: np.random.Generator,
    mode: str,
    all_share: float,
    decimals: int,
    min_keypoints: int,
) -> list[Sample]:
    """One sample about one object with keypoints: a single joint (``single``), all labelled joints
    (``all``) or either (``mixed``). With several such objects the question names the object's box."""
    if mode not in ("single", "all", "mixed"):
        raise ValueError(f"keypoints: mode must be single, all or mixed, got {mode!r}")
    cands = []
    for j, o in enumerate(record.get("objects") or []):
        if isinstance(o, dict) and o.get("keypoints"):
            pts = _labelled(record, o, j)
            if len(pts) >= min_keypoints:
                cands.append((o, pts))
    if not cands:
        return []
    obj, pts = pick(rng, cands)
    ref = "_ref" if len(cands) > 1 else ""
    fields: dict[str, Any] = {**label_fields(str(obj.get("label") or "person"))}
    if len(cands) > 1:
        if "bbox" not in obj:
            return []  # several people and no box to say which one: the question would be ambiguous
        fields["box"] = fmt_box(clip_box2d(obj["bbox"], decimals), decimals)
    use_all = mode == "all" or (mode == "mixed" and rng.random() < all_share)
    if use_all:
        q = templates.pick("questions", "all" + ref, rng)
        a = templates.pick("answers", "all", rng)
        items = [{"joint": n, "point": fmt_point(p, decimals)} for n, p in pts]
        return [Sample(q.render(**fields), a.render(items=items, **fields), f"{q.id}+{a.id}", "all")]
    name, pt = pick(rng, pts)
    fields.update(joint=name, point=fmt_point(pt, decimals))
    q = templates.pick("questions", "single" + ref, rng)
    a = templates.pick("answers", "point", rng)
    return [Sample(q.render(**fields), a.render(**fields), f"{q.id}+{a.id}")]
