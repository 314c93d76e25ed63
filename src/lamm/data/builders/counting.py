"""C4 counting (2D): "How many X are there?" → a number.

Counts come from ``record["counts"]`` ({label: n}, e.g. from FSC147 points) or are tallied from
``record["objects"]``. Labels listed in ``record["crowd_labels"]`` (COCO crowd regions: uncounted
instances) are never asked about, since their true count is unknown; nor are tallies of records with
unnamed objects (any of them could be of the class asked about). ``record["plurals"]`` ({label:
plural}) gives the plural where the dataset names it (FSC147), instead of deriving it.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from .base import (
    BuilderError,
    Sample,
    count_fields,
    is_unnamed,
    label_fields,
    pick,
    register_builder,
    source_ref,
)
from .templates import TemplateSet


def record_counts(record: dict[str, Any]) -> dict[str, int]:
    """``{label: count}`` of a source record (explicit ``counts`` win over tallied ``objects``)."""
    if record.get("counts") is not None:
        counts = record["counts"]
        if not isinstance(counts, dict) or not all(
            isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in counts.values()
        ):
            raise BuilderError(
                f"source record {source_ref(record)}: field 'counts' must map labels to "
                f"non-negative integers, got {counts!r}"
            )
        return {str(k): int(v) for k, v in counts.items()}
    return dict(
        Counter(
            str(o["label"])
            for o in record.get("objects") or []
            if isinstance(o, dict) and "label" in o and not is_unnamed(o)
        )
    )


def counts_complete(record: dict[str, Any]) -> bool:
    """Whether :func:`record_counts` are exact: given ``counts``, or objects that all have a class."""
    if record.get("counts") is not None:
        return True
    return not any(is_unnamed(o) for o in record.get("objects") or [])


@register_builder(
    "counting",
    version=2,
    task_type="counting",
    modality="image",
    params={"total_share": 0.0, "max_count": None, "question_group": "default"},
)
def build_counting(
    record: dict[str, Any],
    templates: TemplateSet,
    rng: np.random.Generator,
    total_share: float,
    max_count: int | None,
    question_group: str,
) -> list[Sample]:
    """One sample: a present class's count, or (with probability ``total_share``, only when the
    record's objects are exhaustive, i.e. no crowd labels) the total number of objects."""
    counts = record_counts(record)
    if not counts_complete(record):
        return []
    crowd = set(record.get("crowd_labels") or [])
    labels = sorted(
        k for k, v in counts.items() if v > 0 and k not in crowd and (max_count is None or v <= max_count)
    )
    total = sum(counts.values())
    ask_total = (
        bool(total_share)
        and not crowd
        and rng.random() < total_share
        and (max_count is None or total <= max_count)
        and total > 0
    )
    if ask_total:
        fields = {**count_fields(total), "noun": "object" if total == 1 else "objects"}
        q = templates.pick("questions", "total", rng)
        a = templates.pick("answers", "default", rng)
        return [Sample(q.render(**fields), a.render(**fields), f"{q.id}+{a.id}", "total")]
    if not labels:
        return []
    label = pick(rng, labels)
    given = (record.get("plurals") or {}).get(label)
    fields = {**label_fields(label, given), **count_fields(counts[label], label, given)}
    q = templates.pick("questions", question_group, rng)
    a = templates.pick("answers", "default", rng)
    return [Sample(q.render(**fields), a.render(**fields), f"{q.id}+{a.id}")]
