"""In-context learning desideratum (ChEF): how much do 1–3 in-context examples help, relative to chance?

A recipe is run zero-shot and again with ``instruction.icl: {retriever, k, pool: train}`` for every
retriever (``random``, ``fixed``, ``topk_text``, ``topk_image``; ``lamm.bench.icl``) and every ``k``
(ChEF: 1, 2, 3). Each (retriever, k) *cell* gets, all in percent (points for the gain):

* ``accuracy`` — the ICL run's accuracy;
* ``gain`` = acc_icl − acc_zero: percentage points won (negative: the examples hurt);
* ``riacc`` — relative in-context accuracy::

      RIAcc = (acc_icl − chance) / (acc_zero − chance) × 100

  100 = as good as zero-shot, above 100 = the examples help, 0 = down to chance, below 0 = worse than
  chance. Not clipped. It is literally the RRM formula of robustness (zero-shot in place of clean input,
  ICL in place of the corrupted copy), so :func:`riacc` *is* :func:`lamm.bench.desiderata.robustness.rrm`:
  NaN when acc_zero ≤ chance (a zero-shot model at chance has no above-chance accuracy to scale by, and
  the ratio would flip sign or divide by zero) or when an input is missing; :func:`riacc_undefined_reason`
  says which.

:func:`icl_summary` adds per-retriever, per-k and overall figures. Each of them is computed from the
*mean accuracy* of its cells (as :func:`~lamm.bench.desiderata.robustness.robustness_summary` does):
RIAcc is affine in acc_icl, so the RIAcc of the mean accuracy equals the mean of the cells' RIAccs
whenever those are defined.

>>> s = icl_summary(60.0, {("random", 1): 70.0, ("random", 2): 40.0}, 20.0)
>>> s["cells"][0]["riacc"], s["cells"][1]["riacc"], s["riacc"], s["gain"]
(125.0, 50.0, 87.5, -5.0)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from lamm.bench.desiderata.robustness import rrm, rrm_undefined_reason

#: the retrievers of ``lamm.bench.icl`` in ChEF's order (also the order of the tables)
RETRIEVER_ORDER = ("random", "fixed", "topk_text", "topk_image")


def _missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def riacc(acc_icl: float, acc_zero: float, chance: float) -> float:
    """Relative in-context accuracy, percent: ``(acc_icl − chance) / (acc_zero − chance) × 100``.

    All three in the same unit (percent). NaN when ``acc_zero <= chance`` or an input is NaN/None (see
    :func:`riacc_undefined_reason`). Not clipped. The same formula as robustness's RRM, so it is computed
    by :func:`~lamm.bench.desiderata.robustness.rrm`.

    >>> riacc(70.0, 60.0, 20.0), riacc(20.0, 60.0, 20.0), riacc(50.0, 20.0, 20.0)
    (125.0, 0.0, nan)
    """
    if any(_missing(v) for v in (acc_icl, acc_zero, chance)):
        return math.nan
    return rrm(acc_icl, acc_zero, chance)


def riacc_undefined_reason(acc_icl: float, acc_zero: float, chance: float) -> str | None:
    """Why :func:`riacc` is NaN for these inputs (in ICL terms), or ``None`` when it is defined.

    The rule is robustness's (:func:`~lamm.bench.desiderata.robustness.rrm_undefined_reason`); only the
    wording differs.
    """
    for what, v in (("ICL accuracy", acc_icl), ("zero-shot accuracy", acc_zero), ("chance", chance)):
        if _missing(v):
            return f"{what} is missing"
    if rrm_undefined_reason(acc_icl, acc_zero, chance) is None:
        return None
    return (f"zero-shot accuracy {acc_zero:g} is not above chance {chance:g}: there is no above-chance "
            "accuracy to compare the in-context runs with, so RIAcc is undefined")


def _figures(accs: list[float], acc_zero: float, chance: float) -> dict[str, Any]:
    """Mean accuracy, gain and RIAcc of a group of cells (NaN when a cell is missing)."""
    mean = math.nan if not accs or any(_missing(a) for a in accs) else sum(accs) / len(accs)
    gain = math.nan if _missing(mean) or _missing(acc_zero) else mean - acc_zero
    return {"accuracy": mean, "gain": gain, "riacc": riacc(mean, acc_zero, chance),
            "undefined": riacc_undefined_reason(mean, acc_zero, chance), "n_cells": len(accs)}


def _order(key: tuple[str, int]) -> tuple[int, str, int]:
    r, k = key
    return (RETRIEVER_ORDER.index(r) if r in RETRIEVER_ORDER else len(RETRIEVER_ORDER), r, k)


def icl_summary(zero_shot: float, icl: Mapping[tuple[str, int], float], chance: float) -> dict[str, Any]:
    """Per-cell, per-retriever, per-k and overall ICL figures.

    ``zero_shot``: accuracy without examples; ``icl``: ``(retriever, k)`` → accuracy with ``k`` examples
    from that retriever (k ≥ 1); ``chance``: the accuracy of a random answer. All in percent.

    Returns ``{"zero_shot_accuracy", "chance", "cells": [{retriever, k, accuracy, gain, riacc,
    undefined}], "by_retriever": {name: figures}, "by_k": {k: figures}, "accuracy", "gain", "riacc",
    "undefined", "n_cells"}`` where *figures* are the mean accuracy of the group, its gain over zero-shot
    and its RIAcc (see the module docstring). Undefined values are NaN, with the reason under
    ``undefined``. Cells come in :data:`RETRIEVER_ORDER`, then by k.
    """
    if not icl:
        raise ValueError("icl_summary needs at least one (retriever, k) accuracy")
    bad = [key for key in icl if not (isinstance(key, tuple) and len(key) == 2 and isinstance(key[1], int)
                                      and not isinstance(key[1], bool) and key[1] >= 1)]
    if bad:
        raise ValueError(f"icl_summary: keys must be (retriever, k) with k >= 1 (k = 0 is the zero-shot "
                         f"accuracy, passed separately); got {bad[0]!r}")
    keys = sorted(icl, key=_order)
    cells = []
    for r, k in keys:
        acc = icl[(r, k)]
        cells.append({"retriever": r, "k": k, "accuracy": acc,
                      "gain": math.nan if _missing(acc) or _missing(zero_shot) else acc - zero_shot,
                      "riacc": riacc(acc, zero_shot, chance), "undefined": riacc_undefined_reason(acc, zero_shot, chance)})
    retrievers = list(dict.fromkeys(r for r, _ in keys))
    shots = sorted({k for _, k in keys})
    return {"zero_shot_accuracy": zero_shot, "chance": chance, "cells": cells,
            "by_retriever": {r: _figures([icl[key] for key in keys if key[0] == r], zero_shot, chance)
                             for r in retrievers},
            "by_k": {k: _figures([icl[key] for key in keys if key[1] == k], zero_shot, chance) for k in shots},
            **_figures([icl[key] for key in keys], zero_shot, chance)}
