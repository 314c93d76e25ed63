"""The six desiderata scores of ``lamm bench desiderata``, from the figures of its finished runs (pure).

Each ``*_axis`` function takes the run records of one desideratum (``suite._run_record``: ``name``,
``status`` "ok" / "not run", ``score`` = the headline in percent, ``chance``, ``metrics``, ``ci``, ``n``
and the variant: ``retriever``/``k``, ``verbalizer``, ``corruption``) and returns an *axis*::

    {"value": 0–100 or None (what the radar draws), "raw": the unclipped figure or None,
     "raw_name": what raw is, "mapping": raw → value, "status": "ok" | "not run" | "undefined",
     "reason": why there is no value (None when there is), "excluded": [{"what", "reason"}],
     "detail": per-recipe / per-variant figures}

The mappings are documented in ``lamm.bench.desiderata.suite``. A recipe whose figure is undefined
(RIAcc, RRM: reference accuracy not above chance) or whose runs did not run is left out of the mean
and listed under ``excluded``; nothing is dropped silently.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from lamm.bench.desiderata.icl import icl_summary
from lamm.bench.desiderata.robustness import robustness_summary

#: how each axis's radar value comes from its raw figure (also written to desiderata.json)
MAPPINGS = {
    "calibration": "100 − mean ECE (%) of the ppl runs",
    "icl": "mean RIAcc (%) over the ICL recipes, clipped to [0, 100] for drawing",
    "instruction_following": "mean match rate (%) over the verbalisers",
    "language": "mean LLM-judge score (0–10) × 10",
    "robustness": "mean overall RRM (%) over the robustness recipes, clipped to [0, 100] for drawing",
    "hallucination": "mean POPE {metric} (%) over the POPE recipes",
}


def _finite(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) else None


def run_record(name: str, run_dir: str, key: Mapping[str, Any], overrides: list[str],
               results: Mapping[str, Any]) -> dict[str, Any]:
    """The figures of one finished run (its ``results.json``) that the scores and tables need; ``key``
    holds ``recipe`` and the variant (``retriever``/``k``, ``verbalizer``, ``corruption``)."""
    rec = {"name": name, "dir": run_dir, "recipe": key["recipe"], "overrides": list(overrides),
           **{k: v for k, v in key.items() if k != "recipe"}, "status": "ok",
           "family": results["family"], "headline": results["headline"], "score": _finite(results["score"]),
           "ci": results["ci"].get(results["headline"]), "n": results["n"], "unparsed": results["unparsed"],
           "chance": _finite(results.get("chance")), "metrics": results["metrics"], "recipe_hash": results["recipe_hash"]}
    cal = results.get("calibration")
    if cal:
        rec["calibration"] = {k: cal.get(k) for k in ("ece", "ece_ci", "accuracy", "mean_confidence",
                                                      "overconfidence", "n", "n_bins")}
    return rec


def _ok(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in runs if r.get("status") == "ok"]


def _defined(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def clip100(v: float | None) -> float | None:
    """``v`` clipped to [0, 100] (``None`` / NaN stay ``None``): radar drawing only."""
    return min(100.0, max(0.0, float(v))) if _defined(v) else None


def _axis(raw: float | None, raw_name: str, mapping: str, to_value: Callable[[float], float | None],
          excluded: list[dict[str, str]], detail: Any, empty_reason: str) -> dict[str, Any]:
    """An axis dict; without a raw value its status says whether anything ran at all."""
    value = to_value(raw) if _defined(raw) else None
    reason = None
    status = "ok"
    if value is None:
        status = "undefined" if excluded and any(e.get("kind") == "undefined" for e in excluded) else "not run"
        reason = "; ".join(f"{e['what']}: {e['reason']}" for e in excluded) if excluded else empty_reason
    return {"value": value, "raw": raw if _defined(raw) else None, "raw_name": raw_name, "mapping": mapping,
            "status": status, "reason": reason, "excluded": excluded, "detail": detail}


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _not_run(runs: list[dict[str, Any]]) -> list[dict[str, str]]:
    return [{"what": r["name"], "reason": r.get("reason") or "not run", "kind": "not run"}
            for r in runs if r.get("status") != "ok"]


def _unscored(runs: list[dict[str, Any]], get: Callable[[dict[str, Any]], Any], what: str) -> list[dict[str, str]]:
    return [{"what": r["name"], "reason": f"no {what} (n = {r['n']})", "kind": "undefined"}
            for r in _ok(runs) if not _defined(get(r))]


def calibration_axis(runs: list[dict[str, Any]], mapping: str) -> dict[str, Any]:
    """100 − mean ECE (percent) over the ``ppl`` runs that carry a ``calibration`` block."""
    get = lambda r: (r.get("calibration") or {}).get("ece")
    good = [r for r in _ok(runs) if _defined(get(r))]
    excluded = _not_run(runs) + _unscored(runs, get, "ECE (a ppl run of single-question records has one)")
    detail = [{"run": r["name"], **r["calibration"], "accuracy_headline": r["score"], "reliability": f"{r['dir']}/reliability.svg"}
              for r in good]
    return _axis(_mean([get(r) for r in good]), "mean ECE (%)", mapping, lambda m: 100.0 - m, excluded, detail,
                 "no calibration recipes configured")


def _by_recipe(runs: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for r in runs:
        out.setdefault(r["recipe"], []).append(r)
    return out


def _relative_to_reference(runs: list[dict[str, Any]], is_reference: Callable[[dict[str, Any]], bool],
                           variant: Callable[[dict[str, Any]], Any], summary: Callable[..., dict[str, Any]],
                           figure: str, reference_ci: str, missing: str) -> tuple[list[dict[str, str]], dict[str, Any], list[float]]:
    """Per recipe, score its variant runs against its reference run (zero-shot for ICL, clean for robustness).

    ``summary(reference accuracy, {variant(run): accuracy}, chance)`` gives the recipe's detail (accuracies
    in percent, a missing one as NaN), to which the reference run's CI (under ``reference_ci``) and ``n``
    are added; its ``figure`` (RIAcc, RRM) enters the mean when defined. A recipe without its reference
    run or without any variant run (``missing`` says which), or whose scenario has no chance level, is
    excluded with the reason. Returns ``(excluded, detail by recipe, defined figures)``.
    """
    excluded = _not_run(runs)
    detail, figures = {}, []
    for recipe, rs in _by_recipe(runs).items():
        ok = _ok(rs)
        ref = next((r for r in ok if is_reference(r)), None)
        variants = {variant(r): _nan_if_none(r["score"]) for r in ok if not is_reference(r)}
        if ref is None or not variants:
            excluded.append({"what": recipe, "reason": f"its {missing} is missing", "kind": "not run"})
            continue
        if ref["chance"] is None:
            excluded.append({"what": recipe, "reason": "the scenario has no chance level", "kind": "undefined"})
            continue
        s = summary(_nan_if_none(ref["score"]), variants, ref["chance"])
        s[reference_ci], s["n"] = ref["ci"], ref["n"]
        detail[recipe] = s
        if _defined(s[figure]):
            figures.append(s[figure])
        else:
            excluded.append({"what": recipe, "reason": s["undefined"], "kind": "undefined"})
    return excluded, detail, figures


def _nan_if_none(v: float | None) -> float:
    return v if v is not None else math.nan


def icl_axis(runs: list[dict[str, Any]], mapping: str) -> dict[str, Any]:
    """Mean over recipes of the RIAcc of the mean ICL accuracy (``icl_summary``), clipped for drawing."""
    excluded, detail, riaccs = _relative_to_reference(
        runs, lambda r: r["k"] == 0, lambda r: (r["retriever"], r["k"]), icl_summary, "riacc", "zero_shot_ci",
        "zero-shot run or every ICL run")
    return _axis(_mean(riaccs), "mean RIAcc (%)", mapping, clip100, excluded, detail,
                 "no ICL recipes configured")


def instruction_following_axis(runs: list[dict[str, Any]], consistency: Mapping[str, Any], reference: str | None,
                               mapping: str) -> dict[str, Any]:
    """Mean match rate over the verbalisers; choice consistency of each against ``reference`` in the detail."""
    good = [r for r in _ok(runs) if _defined(r["score"])]
    excluded = _not_run(runs) + _unscored(runs, lambda r: r["score"], "match rate")
    detail = {"per_verbalizer": {r["verbalizer"]: {"match_rate": r["score"], "ci": r["ci"], "n": r["n"],
                                                   "label_rate": r["metrics"].get("label_rate"),
                                                   "unparsed": r["unparsed"]} for r in good},
              "consistency_against": reference, "consistency": dict(consistency)}
    cons = [c["consistency"] for c in consistency.values() if _defined(c.get("consistency"))]
    detail["mean_consistency"] = _mean(cons)
    return _axis(_mean([r["score"] for r in good]), "mean match rate (%)", mapping, lambda m: m, excluded, detail,
                 "no verbalisers configured")


def robustness_axis(runs: list[dict[str, Any]], mapping: str) -> dict[str, Any]:
    """Mean over recipes of the overall RRM (``robustness_summary``), clipped for drawing."""
    excluded, detail, rrms = _relative_to_reference(
        runs, lambda r: r["corruption"] is None, lambda r: r["corruption"], robustness_summary, "rrm", "clean_ci",
        "clean run or every corrupted run")
    return _axis(_mean(rrms), "mean RRM (%)", mapping, clip100, excluded, detail, "no robustness recipes configured")


def hallucination_axis(runs: list[dict[str, Any]], metric: str, mapping: str) -> dict[str, Any]:
    """Mean POPE ``metric`` (accuracy or f1, percent) over the POPE runs."""
    get = lambda r: r["metrics"].get(metric)
    good = [r for r in _ok(runs) if _defined(get(r))]
    excluded = _not_run(runs) + _unscored(runs, get, metric)
    detail = {r["name"]: {m: r["metrics"].get(m) for m in ("accuracy", "f1", "precision", "recall", "yes_ratio")}
              | {"ci_f1": r["ci"], "n": r["n"], "unparsed": r["unparsed"]} for r in good}
    return _axis(_mean([get(r) for r in good]), f"mean POPE {metric} (%)", mapping, lambda m: m, excluded, detail,
                 "no POPE recipes configured")


def language_axis(runs: list[dict[str, Any]], judged: Mapping[str, Any] | None, mapping: str) -> dict[str, Any]:
    """Mean judge score (0–10) × 10 over the judged runs; "not run (no --judge)" when ``judged`` is None."""
    if judged is None:
        return _axis(None, "mean judge score (0–10)", mapping, lambda m: m, [], {}, "not run (no --judge)")
    excluded = _not_run(runs)
    detail, means = {}, []
    for name, j in judged.items():
        detail[name] = {k: j.get(k) for k in ("mean_score", "ci", "n", "n_scored", "failures", "failure_kinds",
                                              "judge", "prompt_id", "prompt_sha256")}
        if _defined(j.get("mean_score")):
            means.append(j["mean_score"])
        else:
            excluded.append({"what": name, "reason": f"no judgement could be scored ({j.get('failures')} failed)",
                             "kind": "undefined"})
    return _axis(_mean(means), "mean judge score (0–10)", mapping, lambda m: 10.0 * m, excluded, detail,
                 "no language recipes configured")


def score_axes(runs: Mapping[str, list[dict[str, Any]]], *, consistency: Mapping[str, Any],
               judged: Mapping[str, Any] | None, cfg: Any, mappings: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """The six axes (in radar order) from the run records of each desideratum; ``cfg`` a ``DesiderataConfig``."""
    metric = cfg.hallucination.metric
    return {
        "calibration": calibration_axis(runs["calibration"], mappings["calibration"]),
        "icl": icl_axis(runs["icl"], mappings["icl"]),
        "instruction_following": instruction_following_axis(
            runs["instruction_following"], consistency, cfg.instruction_following.consistency_against,
            mappings["instruction_following"]),
        "language": language_axis(runs["language"], judged, mappings["language"]),
        "robustness": robustness_axis(runs["robustness"], mappings["robustness"]),
        "hallucination": hallucination_axis(runs["hallucination"], metric,
                                            mappings["hallucination"].format(metric=metric)),
    }
