"""C4 detection (2D): all objects, or every instance of one class, with [x1, y1, x2, y2] boxes in 0–1."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .base import (
    Sample,
    checked_objects,
    clip_box2d,
    fmt_box,
    is_unnamed,
    label_fields,
    pick,
    reading_order,
    register_builder,
)
from .templates import TemplateSet


@register_builder(
    "detection",
    version=2,
    task_type="detection",
    modality="image",
    requires=("objects",),
    params={"mode": "mixed", "class_share": 0.3, "max_objects": 30, "decimals": 2},
)
def build_detection(
    record: dict[str, Any],
    templates: TemplateSet,
    rng: np.random.Generator,
    mode: str,
    class_share: float,
    max_objects: int,
    decimals: int,
) -> list[Sample]:
    """One sample. ``mode``: ``all`` (every object), ``class`` (every instance of one present class),
    ``mixed`` (``class`` with probability ``class_share``). Objects are listed in reading order.
    Images with no objects, or more than ``max_objects`` (an answer would be truncated), are skipped.

    Answers must be complete lists, so classes in ``record["crowd_labels"]`` (COCO crowd regions: an
    unknown number of instances) are never asked about, and an image with crowd regions gets no "all
    objects" question (``mixed`` asks about a non-crowd class instead; ``all`` skips the image). A
    record with unnamed objects (unknown class) is skipped. Skipped records count as not applicable."""
    return detection_samples(
        record, templates, rng, builder="detection", box_len=4, order=reading_order,
        box_text=lambda box: fmt_box(clip_box2d(box, decimals), decimals),
        mode=mode, class_share=class_share, max_objects=max_objects,
    )


def detection_samples(
    record: dict[str, Any],
    templates: TemplateSet,
    rng: np.random.Generator,
    *,
    builder: str,
    box_len: int,
    order: Callable[[list[dict[str, Any]]], list[dict[str, Any]]],
    box_text: Callable[[list[float]], str],
    mode: str,
    class_share: float,
    max_objects: int,
) -> list[Sample]:
    """The detection sample shared by the 2D and 3D builders: they differ in the box length, how a box
    is written and the order objects are listed in."""
    if mode not in ("all", "class", "mixed"):
        raise ValueError(f"{builder}: mode must be all, class or mixed, got {mode!r}")
    objs = checked_objects(record, builder, box_len)
    if not objs or len(objs) > max_objects or any(is_unnamed(o) for o in objs):
        return []  # an unnamed object could belong to any class: no list of ours would be complete
    crowd = {str(c) for c in record.get("crowd_labels") or []}
    if mode == "mixed":
        per_class = bool(crowd) or rng.random() < class_share
    else:
        per_class = mode == "class"
    if crowd and not per_class:
        return []  # "all the objects" would leave out the crowd's uncounted instances
    fields: dict[str, Any] = {}
    if per_class:
        labels = sorted({o["label"] for o in objs} - crowd)
        if not labels:
            return []
        label = pick(rng, labels)
        objs = [o for o in objs if o["label"] == label]
        fields = label_fields(label)
        q = templates.pick("questions", "class", rng)
    else:
        q = templates.pick("questions", "all", rng)
    a = templates.pick("answers", "default", rng)
    items = [{**label_fields(o["label"]), "box": box_text(o["bbox"])} for o in order(objs)]
    fields.update(n=len(items))
    return [Sample(q.render(**fields), a.render(items=items, **fields), f"{q.id}+{a.id}")]
