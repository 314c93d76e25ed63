"""MME yes/no perception and cognition benchmark: ``score`` (headline), ``perception``, ``cognition``,
``accuracy``, ``accuracy_plus``.

Records carry ``gt_answer`` ("yes" / "no", any case), ``category`` (MME's subtask: ``existence``,
``OCR``, ...) and ``image``; each image is asked (usually two) questions, one answered "yes" and one
"no". Answers are read by ``lamm.bench.metrics.pope.parse_yes_no`` (the POPE parser); an answer that
cannot be read is wrong and counted in ``unparsed``. Per category ``c``:

* ``accuracy_c`` — percent of its questions answered right;
* ``accuracy_plus_c`` — percent of its images whose questions were *all* answered right (acc+);
* ``score_c = accuracy_c + accuracy_plus_c`` (0–200), as MME reports a subtask.

Then ``score`` is the sum of ``score_c`` over the categories present (not a percent), ``perception`` the
sum over MME's perception subtasks (existence, count, position, color, posters, celebrity, scene,
landmark, artwork, OCR; 2000 at most) and ``cognition`` over its cognition subtasks
(commonsense_reasoning, numerical_calculation, text_translation, code_reasoning; 800 at most), each
present when at least one of its subtasks is (names matched case-insensitively; other categories count
only in ``score``). ``accuracy`` and ``accuracy_plus`` are pooled over every question and every image.
The per-category values are in ``info["categories"]``, with their counts and 95% intervals.

Intervals: a stratified bootstrap that resamples *images* within each category (the unit of acc+; a
resample never drops a category, which would change what ``score`` sums), from the seed.

>>> recs = [{"gt_answer": g, "category": "existence", "image": im}
...         for im, g in (("a.jpg", "Yes"), ("a.jpg", "No"), ("b.jpg", "Yes"), ("b.jpg", "No"))]
>>> r = MME.evaluate(["Yes", "No", "Yes", "Yes"], recs, ci=False)
>>> r.metrics
{'score': 125.0, 'perception': 125.0, 'accuracy': 75.0, 'accuracy_plus': 50.0}
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from lamm.bench.metrics.base import METRICS, MetricFamily, MetricReport, RecordError, check_inputs
from lamm.bench.metrics.intervals import DEFAULT_N_BOOT, percentile_interval, resample_counts
from lamm.bench.metrics.pope import parse_yes_no

#: MME's subtasks, as its release names them
PERCEPTION = (
    "existence",
    "count",
    "position",
    "color",
    "posters",
    "celebrity",
    "scene",
    "landmark",
    "artwork",
    "OCR",
)
COGNITION = ("commonsense_reasoning", "numerical_calculation", "text_translation", "code_reasoning")
_PART = {**{c.lower(): "perception" for c in PERCEPTION}, **{c.lower(): "cognition" for c in COGNITION}}


def mme_part(category: str) -> str | None:
    """``"perception"`` / ``"cognition"`` for an MME subtask name (any case), else ``None``.

    >>> mme_part("ocr"), mme_part("code_reasoning"), mme_part("my_subset")
    ('perception', 'cognition', None)
    """
    return _PART.get(category.lower())


def mme_category_scores(
    correct: Sequence[bool], images: Sequence[str], categories: Sequence[str]
) -> dict[str, dict[str, float]]:
    """Per category (in first-seen order): ``accuracy``, ``accuracy_plus``, ``score`` (acc + acc+),
    ``questions`` and ``images``, from one entry per question (right or not, its image, its category).
    An image is keyed by (category, image), so the same file name in two subtasks is two images.

    >>> mme_category_scores([True, False, True, True], ["a", "a", "b", "b"], ["x"] * 4)
    {'x': {'accuracy': 75.0, 'accuracy_plus': 50.0, 'score': 125.0, 'questions': 4, 'images': 2}}
    """
    by_cat: dict[str, dict[str, list[bool]]] = {}
    for ok, img, cat in zip(correct, images, categories):
        by_cat.setdefault(cat, {}).setdefault(img, []).append(bool(ok))
    out = {}
    for cat, imgs in by_cat.items():
        answers = [a for qs in imgs.values() for a in qs]
        acc = 100.0 * sum(answers) / len(answers)
        acc_plus = 100.0 * sum(all(qs) for qs in imgs.values()) / len(imgs)
        out[cat] = {
            "accuracy": acc,
            "accuracy_plus": acc_plus,
            "score": acc + acc_plus,
            "questions": len(answers),
            "images": len(imgs),
        }
    return out


def mme_totals(per_category: dict[str, dict[str, float]]) -> dict[str, float]:
    """``score`` (the sum of every category's score) and ``perception`` / ``cognition`` (the sums over
    MME's perception / cognition subtasks, each only when one of them is present).

    >>> mme_totals({"OCR": {"score": 150.0}, "code_reasoning": {"score": 90.0}, "mine": {"score": 10.0}})
    {'score': 250.0, 'perception': 150.0, 'cognition': 90.0}
    """
    out = {"score": float(sum(c["score"] for c in per_category.values()))}
    for part in ("perception", "cognition"):
        mine = [c["score"] for name, c in per_category.items() if mme_part(name) == part]
        if mine:
            out[part] = float(sum(mine))
    return out


def _gold(index: int, record: dict) -> bool:
    g = record["gt_answer"]
    value = g.strip().lower() if isinstance(g, str) else None
    if value not in ("yes", "no"):
        raise RecordError(index, record, "gt_answer", f"expected 'yes' or 'no' (any case), got {g!r}")
    return value == "yes"


def _text(index: int, record: dict, field: str) -> str:
    v = record[field]
    if not isinstance(v, str) or not v.strip():
        raise RecordError(index, record, field, f"expected a non-empty string, got {v!r}")
    return v


class MMEMetric(MetricFamily):
    """MME scores over yes/no answers (see the module docstring)."""

    name = "mme"
    headline = "score"
    metric_names = ("score", "perception", "cognition", "accuracy", "accuracy_plus")
    required_fields = ("gt_answer", "category", "image")
    unscaled = frozenset({"score", "perception", "cognition"})

    def parse(self, answer: Any, record: dict) -> str | None:
        """``"yes"``, ``"no"`` or ``None`` (``lamm.bench.metrics.pope.parse_yes_no``)."""
        return parse_yes_no(answer)

    def evaluate(
        self,
        answers: Sequence[Any],
        records: Sequence[dict],
        *,
        ci: bool = True,
        seed: int = 0,
        n_boot: int = DEFAULT_N_BOOT,
    ) -> MetricReport:
        check_inputs(self, answers, records)
        gold = [_gold(i, r) for i, r in enumerate(records)]
        cats = [_text(i, r, "category") for i, r in enumerate(records)]
        images = [_text(i, r, "image") for i, r in enumerate(records)]
        parsed = [self.parse(a, r) for a, r in zip(answers, records)]
        correct = [p is not None and (p == "yes") == g for p, g in zip(parsed, gold)]
        per_cat = mme_category_scores(correct, images, cats)
        totals = mme_totals(per_cat)
        n = len(records)
        image_ok: dict[tuple[str, str], bool] = {}
        for ok, img, cat in zip(correct, images, cats):
            image_ok[(cat, img)] = image_ok.get((cat, img), True) and ok
        metrics = {
            **totals,
            "accuracy": 100.0 * sum(correct) / n if n else float("nan"),
            "accuracy_plus": 100.0 * sum(image_ok.values()) / len(image_ok) if image_ok else float("nan"),
        }
        rows = [
            {
                "index": i,
                "id": r.get("id"),
                "parsed": p,
                "unparsed": p is None,
                "category": c,
                "accuracy": float(ok),
                "accuracy_plus": float(image_ok[(c, im)]),
            }
            for i, (r, p, c, im, ok) in enumerate(zip(records, parsed, cats, images, correct))
        ]
        unparsed_by_cat: dict[str, int] = {}
        for p, c in zip(parsed, cats):
            unparsed_by_cat[c] = unparsed_by_cat.get(c, 0) + (p is None)
        intervals, cat_ci = _intervals(correct, images, cats, seed, n_boot) if ci and n else ({}, {})
        info = {
            "categories": {
                c: {**v, "unparsed": unparsed_by_cat[c], **({"score_ci": cat_ci[c]} if c in cat_ci else {})}
                for c, v in per_cat.items()
            },
            "missing_perception": [c for c in PERCEPTION if c.lower() not in {k.lower() for k in per_cat}]
            if "perception" in totals
            else [],
            "missing_cognition": [c for c in COGNITION if c.lower() not in {k.lower() for k in per_cat}]
            if "cognition" in totals
            else [],
            "other_categories": [c for c in per_cat if mme_part(c) is None],
            # MME asks two questions per image; other counts are legal but worth seeing
            "images_not_two_questions": sum(v["images"] for v in per_cat.values())
            - _images_with(cats, images, 2),
            "unparsed_policy": "wrong (neither yes nor no could be read)",
        }
        return MetricReport(
            self.name, metrics, self.headline, n, sum(p is None for p in parsed), intervals, rows, info
        )


def _images_with(categories: Sequence[str], images: Sequence[str], k: int) -> int:
    """How many (category, image) pairs have exactly ``k`` questions."""
    counts: dict[tuple[str, str], int] = {}
    for key in zip(categories, images):
        counts[key] = counts.get(key, 0) + 1
    return sum(v == k for v in counts.values())


def _intervals(
    correct: Sequence[bool], images: Sequence[str], categories: Sequence[str], seed: int, n_boot: int
) -> tuple[dict[str, tuple[float, float]], dict[str, tuple[float, float]]]:
    """Stratified bootstrap (images resampled within each category): intervals of the reported metrics
    and of each category's score."""
    cat_order = list(dict.fromkeys(categories))
    reps: dict[
        str, np.ndarray
    ] = {}  # category → (n_boot, 4): questions right, questions, images right, images
    for ci_, cat in enumerate(cat_order):
        imgs: dict[str, list[bool]] = {}
        for ok, img, c in zip(correct, images, categories):
            if c == cat:
                imgs.setdefault(img, []).append(bool(ok))
        right = np.array([sum(q) for q in imgs.values()], dtype=float)
        asked = np.array([len(q) for q in imgs.values()], dtype=float)
        all_ok = np.array([all(q) for q in imgs.values()], dtype=float)
        # one independent, seeded stream per category, so adding a category leaves the others' resamples alone
        sub_seed = int(np.random.SeedSequence([seed, ci_]).generate_state(1)[0])
        counts = np.concatenate(list(resample_counts(len(imgs), n_boot=n_boot, seed=sub_seed)))
        reps[cat] = np.stack([counts @ right, counts @ asked, counts @ all_ok, counts.sum(axis=1)], axis=1)
    score = {c: 100.0 * r[:, 0] / r[:, 1] + 100.0 * r[:, 2] / r[:, 3] for c, r in reps.items()}
    total = sum(score.values())
    out = {"score": percentile_interval(total)}
    for part in ("perception", "cognition"):
        mine = [score[c] for c in cat_order if mme_part(c) == part]
        if mine:
            out[part] = percentile_interval(sum(mine))
    stacked = sum(reps.values())
    out["accuracy"] = percentile_interval(100.0 * stacked[:, 0] / stacked[:, 1])
    out["accuracy_plus"] = percentile_interval(100.0 * stacked[:, 2] / stacked[:, 3])
    return out, {c: percentile_interval(v) for c, v in score.items()}


MME = MMEMetric()
METRICS.add("mme", MME)
