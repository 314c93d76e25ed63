"""Keypoints (LSP): ``pck`` — percentage of correct keypoints at 0.1 of the normalised image.

The answer for one image is a mapping joint name → answer text (LAMM asks one question per joint; joint
names as in ``JOINT_NAMES``, case/``_``/``-`` insensitive). A list of 14 texts (joint order) or one text
holding points in joint order is also read. Each text gives the joint's first point ``[x, y]`` in 0–1.
Ground truth ``gt_joints`` is 14 × ``[x, y, visible]`` in pixels; the caller passes the image size as
``record["image_size"] = (w, h)``. A visible joint is correct when the distance between the prediction
and ``(x / w, y / h)`` is < 0.1; invisible joints are excluded; a joint with no readable point is wrong.
PCK is pooled over all visible joints of all images. (LAMM compared pixels to 0–1 values and so always
scored 0.) A sample is unparsed when no joint could be read.

>>> rec = {"gt_joints": [[50, 100, 1]] * 14, "image_size": [100, 200]}
>>> ans = {name: "[0.52, 0.5]" for name in JOINT_NAMES[:7]}
>>> KEYPOINTS.evaluate([ans], [rec], ci=False).metrics["pck"]
50.0
"""

from __future__ import annotations

import math
from typing import Any

from lamm.bench.metrics.base import METRICS, PerSampleFamily, RecordError, Score
from lamm.bench.metrics.synonyms import label_key
from lamm.bench.parsers import parse_point, parse_points

JOINT_NAMES = (
    "right ankle", "right knee", "right hip", "left hip", "left knee", "left ankle", "right wrist",
    "right elbow", "right shoulder", "left shoulder", "left elbow", "left wrist", "neck", "head top",
)  # fmt: skip
_JOINT_INDEX = {label_key(n): i for i, n in enumerate(JOINT_NAMES)} | {"head": 13, "topofhead": 13}
PCK_THRESHOLD = 0.1


def image_size(index: int, record: dict) -> tuple[float, float]:
    """``record["image_size"]`` as positive ``(w, h)``; ``RecordError`` when absent or malformed."""
    size = record.get("image_size")
    ok = isinstance(size, (list, tuple)) and len(size) == 2 and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 for v in size
    )
    if not ok:
        raise RecordError(index, record, "image_size",
                          f"expected (width, height) in pixels, got {size!r}; the scorer reads it from the image")
    return float(size[0]), float(size[1])


def read_joints(index: int, record: dict) -> list[tuple[float, float, bool]]:
    """``gt_joints`` as 14 ``(x, y, visible)``; a joint without a third value counts as visible."""
    joints = record.get("gt_joints")
    if not isinstance(joints, list) or len(joints) != len(JOINT_NAMES):
        raise RecordError(index, record, "gt_joints", f"expected {len(JOINT_NAMES)} joints [x, y, visible]")
    out = []
    for j in joints:
        if not isinstance(j, (list, tuple)) or len(j) < 2 or not all(isinstance(v, (int, float)) for v in j):
            raise RecordError(index, record, "gt_joints", f"expected [x, y, visible] numbers, got {j!r}")
        out.append((float(j[0]), float(j[1]), bool(j[2]) if len(j) > 2 else True))
    return out


class KeypointsMetric(PerSampleFamily):
    """``pck`` (percent of visible joints within 0.1 of the normalised image)."""

    name = "keypoints"
    headline = "pck"
    metric_names = ("pck",)
    required_fields = ("gt_joints",)

    def needs_image_size(self, record: dict) -> bool:
        return True

    def parse(self, answer: Any, record: dict) -> list[list[float] | None] | None:
        """14 predicted points (``None`` where a joint is missing), or ``None`` if no joint was read."""
        joints: list[list[float] | None] = [None] * len(JOINT_NAMES)
        if isinstance(answer, dict):
            for key, text in answer.items():
                j = _JOINT_INDEX.get(label_key(key)) if isinstance(key, str) else None
                if j is not None:
                    joints[j] = parse_point(text)
        elif isinstance(answer, list):
            for j, text in enumerate(answer[: len(JOINT_NAMES)]):
                joints[j] = parse_point(text)
        elif isinstance(answer, str):
            for j, p in enumerate((parse_points(answer) or [])[: len(JOINT_NAMES)]):
                joints[j] = p
        return joints if any(p is not None for p in joints) else None

    def score(self, parsed: Any, record: dict, index: int) -> dict[str, Score]:
        w, h = image_size(index, record)
        correct = visible = 0
        for j, (x, y, vis) in enumerate(read_joints(index, record)):
            if not vis:
                continue
            visible += 1
            p = parsed[j] if parsed else None
            if p is not None and math.hypot(p[0] - x / w, p[1] - y / h) < PCK_THRESHOLD:
                correct += 1
        return {"pck": (float(correct), float(visible))}


KEYPOINTS = KeypointsMetric()
METRICS.add("keypoints", KEYPOINTS)
