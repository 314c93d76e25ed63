"""Circular evaluation (MMBench's CircularEval): ask every multiple-choice question once per rotation of
its options; a question counts as right only when every rotation is answered right.

Recipe switch (``lamm.bench.recipe.ScenarioConfig.circular``)::

    scenario: {name: ScienceQA, circular: true}

:func:`circular_scenario` (called by ``lamm.bench.scenarios.load_scenario``) returns a copy of a
multiple-choice scenario whose records are the *rotations* of the original records: a record with N
options becomes N records, rotation ``k`` (0 ≤ k < N) showing the option list shifted by ``k`` —
option ``j`` of rotation ``k`` is original option ``(j + k) mod N`` and the gold index moves with it
(``(gt_choice − k) mod N``). Rotation 0 is the original record, unchanged, under its own id; rotation
``k > 0`` has the id ``<id>#c<k>`` (:func:`rotation_id`). A rotated sample is a sample like any other:
it is cached under its id, resumed, and answered by any inferencer (``direct`` reads its letter,
``ppl`` scores its rotated options). The options embedded in the query (``Options: (A) … (B) …``) are
reordered in place (``lamm.bench.options.reorder_options``: labels, separators and the stem stay as they
are); a query without embedded options is left alone (a prompt's ``{options}`` shows the rotated list).

Every rotated record also carries ``circular_of`` (the original record's id, de-duplicated as the
scenario does it), ``circular_rotation`` (``k``), ``circular_n`` (``N``) and ``circular_index`` (the
original record's 0-based index in its file), which ``lamm.bench.metrics.circular`` groups by and
:func:`circular_subset` subsets by (``--limit N`` picks N *records*, with all their rotations, the same
records a non-circular run of the recipe picks).

Refused, with an error naming the file, record and field: a record with fewer than 2 options (nothing
to rotate; its circular accuracy would be its accuracy), a malformed ``gt_choice``, a query whose
options are an unlabelled list or list more options than ``gt_choices``, and an original id that
collides with a rotation id.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

from lamm.bench.options import reorder_options
from lamm.bench.scenarios.base import RecordScenario, Sample, Scenario, ScenarioError, subset_indices

#: the fields every rotated record carries (see the module docstring)
CIRCULAR_FIELDS = ("circular_of", "circular_rotation", "circular_n", "circular_index")


def rotation_id(record_id: str, k: int) -> str:
    """The sample id of rotation ``k`` of a record: the id itself for rotation 0, else ``<id>#c<k>``.

    >>> rotation_id("sqa_7", 0), rotation_id("sqa_7", 2)
    ('sqa_7', 'sqa_7#c2')
    """
    return record_id if k == 0 else f"{record_id}#c{k}"


def rotation_order(n: int, k: int) -> list[int]:
    """Which original option each position of rotation ``k`` shows: ``[(j + k) mod n for j < n]``.

    >>> rotation_order(4, 1)
    [1, 2, 3, 0]
    """
    return [(j + k) % n for j in range(n)]


def rotate_record(rec: dict[str, Any], k: int, record_id: str, index: int, source: str) -> dict[str, Any]:
    """Rotation ``k`` of the multiple-choice record ``rec`` (original id ``record_id``, file index ``index``).

    >>> r = rotate_record({"id": "q", "query": "Q? Options: (A) red (B) blue (C) green", "gt_choice": 0,
    ...                    "gt_choices": ["red", "blue", "green"]}, 1, "q", 0, "f.json")
    >>> r["id"], r["query"], r["gt_choices"], r["gt_choice"]
    ('q#c1', 'Q? Options: (A) blue (B) green (C) red', ['blue', 'green', 'red'], 2)
    """
    where = f"{source}: record {index} (id {rec.get('id')!r})"
    choices, gt = rec.get("gt_choices"), rec.get("gt_choice")
    if not isinstance(choices, list) or len(choices) < 2:
        raise ScenarioError(
            f"{where}: field 'gt_choices': expected a list of at least 2 options, got {choices!r}; "
            "circular evaluation rotates the options, and a record with fewer than 2 has "
            "nothing to rotate. Fix the record or set scenario.circular: false"
        )
    n = len(choices)
    if isinstance(gt, bool) or not isinstance(gt, int) or not 0 <= gt < n:
        raise ScenarioError(f"{where}: field 'gt_choice': expected an option index in 0..{n - 1}, got {gt!r}")
    order = rotation_order(n, k)
    query = rec.get("query")
    if isinstance(query, str) and k:
        try:
            query = reorder_options(query, [str(c) for c in choices], order)
        except ValueError as e:
            raise ScenarioError(
                f"{where}: field 'query': cannot show the options in another order: {e}; "
                "set scenario.circular: false, or label the options (A) (B) ..."
            ) from None
    return {
        **rec,
        "id": rotation_id(record_id, k),
        "query": query,
        "gt_choices": [choices[o] for o in order],
        "gt_choice": (gt - k) % n,
        "circular_of": record_id,
        "circular_rotation": k,
        "circular_n": n,
        "circular_index": index,
    }


def circular_chance(records: Sequence[dict[str, Any]]) -> float | None:
    """Circular accuracy (percent) of uniform guessing: the mean over records of ``100 / N**N`` (each of
    the N rotations guessed right independently, with probability 1/N). ``None`` without records.

    >>> circular_chance([{"gt_choices": ["a", "b"]}, {"gt_choices": ["a", "b", "c", "d"]}])
    12.6953125
    """
    sizes = [
        len(r["gt_choices"]) for r in records if isinstance(r.get("gt_choices"), list) and r["gt_choices"]
    ]
    return 100.0 * sum(1.0 / s**s for s in sizes) / len(sizes) if sizes else None


def circular_scenario(scenario: Scenario) -> RecordScenario:
    """A copy of the multiple-choice ``scenario`` whose records are every rotation of its records, in
    file order (record 0's rotations 0..N-1, then record 1's, ...); see the module docstring.

    The copy's ``chance`` is :func:`circular_chance` (the headline is the circular accuracy) and it
    keeps the original's ``duplicate_ids`` count. Raises :class:`ScenarioError` for a scenario that is
    not multiple choice or not record based, and for a record that cannot be rotated.
    """
    metric = getattr(scenario, "metric", None)
    if metric != "multiple_choice":
        raise ScenarioError(
            f"scenario {scenario.name!r} (metric family {metric!r}) cannot be evaluated circularly: "
            "scenario.circular rotates the options of multiple-choice questions (records with gt_choices and "
            "gt_choice, e.g. ScienceQA, AI2D, ScanQA, Synth-VQA); remove scenario.circular from the recipe"
        )
    if not isinstance(scenario, RecordScenario):
        raise ScenarioError(
            f"scenario {scenario.name!r}: scenario.circular needs a record-based scenario, "
            f"got {type(scenario).__name__}"
        )
    records: list[dict[str, Any]] = []
    for i, rec in enumerate(scenario.records):
        n = rec.get("gt_choices")
        rid = scenario.record_id(i)
        count = len(n) if isinstance(n, list) else 0
        records.extend(rotate_record(rec, k, rid, i, scenario.source) for k in range(max(count, 1)))
    seen: dict[str, dict[str, Any]] = {}
    for r in records:
        other = seen.get(r["id"])
        if other is not None:
            a, b = sorted((other, r), key=lambda x: x["circular_rotation"])  # b is the rotated one
            raise ScenarioError(
                f"{scenario.source}: record {a['circular_index']} (id {a['circular_of']!r}): field 'id': "
                f"{a['id']!r} is also the id circular evaluation gives rotation {b['circular_rotation']} of "
                f"record {b['circular_index']} (id {b['circular_of']!r}), '<id>#c<k>'; rename record "
                f"{a['circular_index']}"
            )
        seen[r["id"]] = r
    base_build = scenario.build

    def build(rec: dict[str, Any], i: int) -> list[Sample]:
        # errors name the record's index in its file, not its position among the rotations
        return base_build(rec, rec["circular_index"])

    out = dataclasses.replace(
        scenario, records=records, build=build, chance=circular_chance(scenario.records)
    )
    out.duplicate_ids = scenario.duplicate_ids
    return out


def circular_subset(
    records: Sequence[dict[str, Any]], source: str, limit: int | None, seed: int = 0
) -> list[int]:
    """Indices of the rotated ``records`` of a seeded subset of ``limit`` original records (all when
    ``None``), every rotation of each: the records :func:`lamm.bench.scenarios.subset_indices` picks
    for the same recipe without circular evaluation.

    >>> recs = [{"circular_of": o, "circular_index": i} for i, o in enumerate("ab") for _ in range(2)]
    >>> circular_subset(recs, "f.json", None), len(circular_subset(recs, "f.json", 1))
    ([0, 1, 2, 3], 2)
    """
    originals: dict[int, str] = {}
    for r in records:
        originals.setdefault(r["circular_index"], str(r["circular_of"]))
    order = sorted(originals)
    # subset_indices reads only the records' ids and the source: rank the originals as a plain run does
    view = SimpleNamespace(records=[{"id": originals[i]} for i in order], source=source)
    chosen = {order[j] for j in subset_indices(view, limit, seed)}  # type: ignore[arg-type]
    return [i for i, r in enumerate(records) if r["circular_index"] in chosen]
