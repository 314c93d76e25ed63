"""C4 3D visual grounding (ScanRefer-style): a referring expression → the object's 3D box.

Referrals come from ``record["referrals"]`` (``{"description", "object_id" | "bbox", "label"?, "id"?,
"style"?}``; an ``object_id`` is looked up in ``record["objects"]``; ``style: phrase`` marks a noun
phrase such as "the red cube left of the sphere" rather than a ScanRefer-style sentence) and/or are
generated from the objects: an object whose class, or colour and class, is unique in the scene is
"the {ref}". A scene with unnamed objects (unknown class, e.g. ScanRefer boxes no referral names) gets
no generated expressions, since no class is then known to be unique; with no referrals either, it is
not applicable.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from .base import (
    BuilderError,
    Sample,
    box3d_for_answer,
    checked_objects,
    draw_balanced,
    fmt_box,
    is_unnamed,
    label_fields,
    register_builder,
    source_ref,
)
from .templates import TemplateSet


def _referral_candidates(record: dict[str, Any], objs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    by_id = {o["object_id"]: o for o in objs if "object_id" in o}
    out = []
    for j, r in enumerate(record.get("referrals") or []):
        where = f"source record {source_ref(record)}: builder 'visual_grounding3d': referrals[{j}]"
        if (
            not isinstance(r, dict)
            or not isinstance(r.get("description"), str)
            or not r["description"].strip()
        ):
            raise BuilderError(f"{where}.description: must be a non-empty string")
        if r.get("bbox") is not None:
            box, label = r["bbox"], r.get("label")
        elif r.get("object_id") in by_id:
            box, label = by_id[r["object_id"]]["bbox"], r.get("label") or by_id[r["object_id"]]["label"]
        else:
            raise BuilderError(
                f"{where}: object_id {r.get('object_id')!r} is not among the scene's objects "
                f"and no 'bbox' is given"
            )
        if not isinstance(box, (list, tuple)) or len(box) != 6 or any(v <= 0 for v in box[3:]):
            raise BuilderError(
                f"{where}.bbox: expected [cx, cy, cz, lx, ly, lz] with positive sizes, got {box!r}"
            )
        desc = " ".join(r["description"].split())
        group = "phrase" if r.get("style") == "phrase" else "referral"
        out.append(
            {
                "group": group,
                "target": r.get("object_id", f"box{j}"),
                "fields": {"description": desc, "Description": desc[:1].upper() + desc[1:]},
                "box": box,
                "label": label or "object",
                "key": f"r{r.get('id', j)}",
            }
        )
    return out


def _generated_candidates(objs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if any(is_unnamed(o) for o in objs):
        return []  # "the chair" is only unique if no unnamed object could be a chair too
    n_label = Counter(o["label"] for o in objs)
    n_both = Counter((o.get("color"), o["label"]) for o in objs)
    out = []
    for k, o in enumerate(objs):
        if n_label[o["label"]] == 1:
            ref = o["label"]
        elif o.get("color") and n_both[(o["color"], o["label"])] == 1:
            ref = f"{o['color']} {o['label']}"
        else:
            continue
        out.append(
            {
                "group": "generated",
                "target": o.get("object_id", k),
                "fields": {"ref": ref},
                "box": o["bbox"],
                "label": o["label"],
                "key": f"g{o.get('object_id', k)}",
            }
        )
    return out


@register_builder(
    "visual_grounding3d",
    version=2,
    task_type="visual_grounding3d",
    modality="pcl",
    params={"sources": ["referrals", "generated"], "per_record": 1, "decimals": 2},
)
def build_visual_grounding3d(
    record: dict[str, Any],
    templates: TemplateSet,
    rng: np.random.Generator,
    sources: list[str],
    per_record: int,
    decimals: int,
) -> list[Sample]:
    """Up to ``per_record`` distinct referrals per scene, each answered with its box."""
    bad = set(sources) - {"referrals", "generated"}
    if bad:
        raise ValueError(
            f"visual_grounding3d: unknown source(s) {sorted(bad)}; use referrals and/or generated"
        )
    objs = checked_objects(record, "visual_grounding3d", 6)
    cands = (_referral_candidates(record, objs) if "referrals" in sources else []) + (
        _generated_candidates(objs) if "generated" in sources else []
    )
    if not cands:
        return []
    out = []
    # objects first, then one of their expressions: each pick is likely a different object
    for c in draw_balanced(cands, per_record, rng, key=lambda c: c["target"]):
        q = templates.pick("questions", c["group"], rng)
        a = templates.pick("answers", "default", rng)
        f = {
            **label_fields(c["label"]),
            **c["fields"],
            "box": fmt_box(box3d_for_answer(c["box"], decimals), decimals),
        }
        out.append(Sample(q.render(**f), a.render(**f), f"{q.id}+{a.id}", c["key"]))
    return out
