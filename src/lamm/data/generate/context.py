"""Annotations rendered as text: what the LLM "sees" of an image or point cloud (LLaVA-style).

The rendering is deterministic (objects in a fixed order, fixed decimals), so the same source record
always gives the same prompt — a requirement for resume and for reproducible prompts.
"""

from __future__ import annotations

from typing import Any

from lamm.data.builders.base import fmt_box, is_unnamed, reading_order, spatial_order


def render_context(record: dict[str, Any], max_objects: int = 40, max_captions: int = 5) -> str:
    """The text context of a source record ("" when it has nothing to say).

    2D boxes are ``[x1, y1, x2, y2]`` in 0–1; 3D boxes ``[cx, cy, cz, lx, ly, lz]`` in metres.
    """
    is_3d = "pcl" in record
    lines: list[str] = []
    if record.get("label"):
        lines.append(f"{'Object' if is_3d else 'Main'} category: {record['label']}")
    caps = [c for c in record.get("captions") or [] if isinstance(c, str) and c.strip()][:max_captions]
    if caps:
        lines.append("Captions:")
        lines += [f"- {c.strip()}" for c in caps]
    objs = [
        o for o in record.get("objects") or [] if isinstance(o, dict) and o.get("label") and o.get("bbox")
    ]
    if objs and not (is_3d and len(objs) == 1 and record.get("label")):
        objs = (spatial_order(objs) if is_3d else reading_order(objs))[:max_objects]
        unit = (
            "[cx, cy, cz, lx, ly, lz] in metres, z up"
            if is_3d
            else "[x1, y1, x2, y2] relative to the image size"
        )
        lines.append(f"Objects ({unit}):")
        for o in objs:
            color = f" ({o['color']})" if o.get("color") else ""
            lines.append(f"- {o['label']}{color}: {fmt_box(o['bbox'], 2)}")
        if record.get("crowd_labels"):
            lines.append(f"Also crowds of: {', '.join(record['crowd_labels'])}")
    n_unnamed = sum(1 for o in record.get("objects") or [] if is_unnamed(o))
    if n_unnamed and lines:
        # say that the list is not exhaustive, so the LLM does not claim "there is only one chair"
        lines.append(f"Also {n_unnamed} object{'s' if n_unnamed > 1 else ''} of unknown class")
    if record.get("words"):
        lines.append("Text in the image: " + ", ".join(f'"{w}"' for w in record["words"]))
    if record.get("knowledge"):
        lines.append(f"Knowledge: {' '.join(str(record['knowledge']).split())}")
    return "\n".join(lines)
