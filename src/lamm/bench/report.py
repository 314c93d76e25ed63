"""Reports: one run's ``report.md``, and a leaderboard across runs (models × tasks) in Markdown and a
self-contained HTML page (inline CSS and SVG, no JavaScript, nothing fetched).

The HTML page holds the leaderboard table, one bar chart per task (a bar per model, with the 95%
interval as a whisker) and a radar chart across task families. A family's radar value is the mean of
its tasks' *radar scores*: the headline metric when it is a percentage where higher is better, else the
task's first such metric (counting's headline is MAE, so its exact-count accuracy is drawn), so every
axis runs 0–100 outward. Tasks without a percentage metric are left off the radar and listed under it.
The radar draws only the families every model has a value for (a family a model never ran is not a 0);
each family left off that way is listed under the chart ("model B: no run for family pope").

A circular run (MMBench's CircularEval, ``results["circular"]``) is kept apart from plain runs of its
family: its family is ``"multiple_choice (circular)"`` (its own radar axis: a circular accuracy is not
averaged with plain accuracies), and its task gets `` (circular)`` unless its recipe name already says
``circular`` (its own column, even when a plain run of the same recipe is beside it).
"""

from __future__ import annotations

import html
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lamm.fileio import write_text_atomic

PALETTE = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7",
           "#9c755f", "#bab0ac")


def format_number(v: Any, digits: int = 2) -> str:
    return "–" if v is None or (isinstance(v, float) and not math.isfinite(v)) else f"{v:.{digits}f}"


def _ci(ci: Any) -> str:
    """An interval as `` [low, high]``, with the digits of :func:`format_number` so it reads against
    its value (a value printed to 2 decimals beside a 1-decimal interval can seem to fall outside it)."""
    if not ci or any(v is None for v in ci):
        return ""
    return f" [{format_number(ci[0])}, {format_number(ci[1])}]"


def category_table_markdown(info: dict[str, Any], headline: str) -> list[str]:
    """Markdown lines of the per-category tables of a multiple-choice run (``info["categories"]`` and
    ``info["l2_categories"]``, each category's ``headline`` with its interval and counts)."""
    lines: list[str] = []
    for key, title in (("categories", "category"), ("l2_categories", "l2 category")):
        cats = info.get(key)
        if not isinstance(cats, dict) or not cats:  # (detection's info["categories"] is its class list)
            continue
        lines += ["", f"| {title} | {headline} | 95% CI | questions | right | unparsed |", "|---|---|---|---|---|---|"]
        for name, c in cats.items():
            lines.append(f"| {name} | {format_number(c.get(headline))} | {_ci(c.get(f'{headline}_ci')).strip()} | "
                         f"{c.get('questions')} | {c.get('correct')} | {c.get('unparsed')} |")
    if info.get("uncategorized"):
        lines.append(f"\n{info['uncategorized']} record(s) carry no category.")
    return lines + [""]


def run_report_markdown(results: dict[str, Any], examples: list[dict[str, Any]]) -> str:
    """The ``report.md`` of one run: headline, every metric with its interval, counts, prompts, examples."""
    r = results
    lines = [
        f"# {r['recipe'] or r['scenario']} — {r['model']}", "",
        f"**{r['headline']}: {format_number(r['score'])}**{_ci(r['ci'].get(r['headline']))} "
        f"({'higher' if r['higher_is_better'] else 'lower'} is better"
        + (f"; chance {format_number(r['chance'])}" if r.get("chance") is not None else "") + ")", "",
        "| metric | value | 95% CI |", "|---|---|---|",
    ]
    for name, value in r["metrics"].items():
        lines.append(f"| {name} | {format_number(value)} | {_ci(r['ci'].get(name)).strip()} |")
    lines += [
        "", f"- scenario: {r['scenario']} ({r['split']}, {r['source']}), metric family {r['family']}",
        f"- records scored: {r['n']} of {r['n_records']}" + (f" (--limit {r['limit']})" if r["limit"] is not None else "")
        + f"; questions asked: {r['n_questions']}; unparsed answers: {r['unparsed']} (scored as wrong)",
        f"- inferencer: {r['inferencer']}; prompt `{r['instruction']['prompt_id']}`: `{r['instruction']['prompt']}`",
        f"- model fingerprint `{r['model_fingerprint']}`, recipe hash `{r['recipe_hash']}`",
        "- versions: " + ", ".join(f"{k} {v}" for k, v in r["versions"].items()),
    ]
    if r.get("context_refused"):
        lines.append(f"- **context: {r['context_refused']} of {r['n_questions']} questions did not fit the "
                     f"model's context** ({r.get('context_length')} tokens, prompt and reply together) and "
                     "were not answered: empty answers, scored as wrong and counted as unparsed "
                     "(`extra.error: context_length_exceeded` in answers.jsonl)")
    cal = r.get("calibration")
    if cal:
        lines.append(f"- calibration: ECE {format_number(cal['ece'])}%{_ci(cal.get('ece_ci'))} over {cal['n_bins']} equal-count "
                     f"bins of the top option probability; mean confidence {format_number(cal['mean_confidence'])}%, "
                     f"accuracy {format_number(cal['accuracy'])}% (overconfidence {format_number(cal['overconfidence'])}); "
                     "reliability diagram: reliability.svg"
                     + (f"; {cal['context_refused_excluded']} question(s) refused for the context left out "
                        "(they have no option probabilities)" if cal.get("context_refused_excluded") else ""))
    if "ppl_ties" in r:
        lines.append(f"- ppl ties: {r['ppl_ties']} of {r['n_questions']} questions had several options with "
                     "the best score; the lowest-index option was taken (`extra.tied` in answers.jsonl)")
    circ = r.get("circular")
    if circ:
        lines.append(f"- circular evaluation (MMBench): {circ.get('records')} records asked in every "
                     f"rotation of their options ({circ.get('rotations')} questions); "
                     f"{circ.get('records_all_correct')} answered right in every rotation "
                     "(`circular_accuracy`); `accuracy` is rotation 0 only (chance "
                     f"{format_number(circ.get('chance_accuracy'))}); rotations right per record: "
                     + ", ".join(f"{k}: {v}" for k, v in (circ.get("rotations_correct") or {}).items()))
    cats = (r.get("info") or {}).get("categories") if r.get("family") == "mme" else None
    if cats:
        head = "| MME subtask | score (0–200) | 95% CI | accuracy | acc+ | questions | images | unparsed |"
        lines += ["", head, "|---|---|---|---|---|---|---|---|"]
        for name, c in cats.items():
            lines.append(f"| {name} | {format_number(c.get('score'))} | {_ci(c.get('score_ci')).strip()} | "
                         f"{format_number(c.get('accuracy'))} | {format_number(c.get('accuracy_plus'))} | "
                         f"{c.get('questions')} | {c.get('images')} | {c.get('unparsed')} |")
        lines.append("")
    elif isinstance(r.get("info", {}).get("categories"), dict):  # MMBench abilities, SEED-Bench dimensions
        lines += category_table_markdown(r["info"], r["headline"])
    if r.get("duplicate_ids"):
        lines.append(f"- {r['duplicate_ids']} records repeat an earlier id; they were renamed id@index")
    if r.get("layout_stats"):  # what the scenario's reader read and left out
        lines.append("- data read: " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in r["layout_stats"].items()))
    if examples:
        lines += ["", "## Examples", ""]
        for ex in examples:
            q, a = ex["question"], ex["answer"]
            if isinstance(a, dict):
                k = next(iter(a))
                q, a = f"{q[k]} (1 of {len(ex['question'])})", a[k]
            lines += [f"- **{ex['id']}** — {q}", f"  - answer: {json.dumps(a, ensure_ascii=False)[:300]}",
                      f"  - parsed: {json.dumps(ex['parsed'], ensure_ascii=False)[:200]}; scores: "
                      + ", ".join(f"{k}={v}" for k, v in ex["scores"].items())]
    return "\n".join(lines) + "\n"


@dataclass
class Entry:
    """One run's result on the leaderboard."""

    model: str
    task: str
    family: str
    results: dict[str, Any]
    path: Path

    @property
    def score(self) -> float | None:
        return self.results.get("score")

    def radar_score(self) -> float | None:
        """0–100, higher better (see the module docstring), or ``None`` when the task has none."""
        r = self.results
        skip = set(r.get("unscaled", [])) | set(r.get("lower_is_better", []))
        names = [r["headline"]] + [m for m in r["metrics"] if m != r["headline"]]
        for m in names:
            v = r["metrics"].get(m)
            if m not in skip and isinstance(v, (int, float)) and math.isfinite(v):
                return float(v)
        return None


def is_circular_run(results: dict[str, Any]) -> bool:
    """Whether ``results`` is a circular run's (``scenario.circular``; headline ``circular_accuracy``)."""
    return bool(results.get("circular")) or results.get("headline") == "circular_accuracy"


def leaderboard_family(results: dict[str, Any]) -> str:
    """The family a run is grouped under on the leaderboard: its metric family, ``"<family> (circular)"``
    for a circular run (its headline is not comparable with the family's plain accuracy).

    >>> leaderboard_family({"family": "multiple_choice", "headline": "circular_accuracy"})
    'multiple_choice (circular)'
    """
    fam = str(results["family"])
    return f"{fam} (circular)" if is_circular_run(results) else fam


def leaderboard_task(results: dict[str, Any]) -> str:
    """The column a run is shown in: its recipe (else scenario) name, with `` (circular)`` for a circular run
    whose name does not say so (``--recipe scienceqa scenario.circular=true`` is not ``scienceqa``).

    >>> leaderboard_task({"recipe": "scienceqa", "family": "multiple_choice", "circular": {"records": 3}})
    'scienceqa (circular)'
    """
    task = str(results["recipe"] or results["scenario"])
    return f"{task} (circular)" if is_circular_run(results) and "circular" not in task.lower() else task


def find_results(paths: list[str | os.PathLike]) -> list[Entry]:
    """Every ``results.json`` under the given run directories (searched recursively) or files."""
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_file():
            files.append(p)
        elif p.is_dir():
            files.extend(sorted(p.rglob("results.json")))
        else:
            raise FileNotFoundError(f"{p}: no such run directory or results.json")
    entries = []
    for f in files:
        try:
            r = json.loads(f.read_text(encoding="utf-8"))
            entries.append(Entry(r["model"], leaderboard_task(r), leaderboard_family(r), r, f.parent))
        except (json.JSONDecodeError, KeyError) as e:
            raise ValueError(f"{f}: not a lamm bench results.json ({e})") from None
    if not entries:
        raise FileNotFoundError(f"no results.json under {', '.join(map(str, paths))}")
    return entries


def _grid(entries: list[Entry]) -> tuple[list[str], list[str], dict[tuple[str, str], Entry], list[str]]:
    models = list(dict.fromkeys(e.model for e in entries))
    tasks = list(dict.fromkeys(e.task for e in entries))
    cells: dict[tuple[str, str], Entry] = {}
    notes = []
    for e in entries:
        key = (e.model, e.task)
        if key in cells:
            notes.append(f"{e.model} / {e.task}: several runs; showing {cells[key].path}, ignoring {e.path}")
            continue
        cells[key] = e
    return models, tasks, cells, notes


def leaderboard_markdown(entries: list[Entry]) -> str:
    """Models as rows, tasks as columns (headline metric, its name under the task)."""
    models, tasks, cells, notes = _grid(entries)
    heads = {t: next(e.results["headline"] for e in entries if e.task == t) for t in tasks}
    out = ["# lamm bench leaderboard", "", "| model | " + " | ".join(f"{t} ({heads[t]})" for t in tasks) + " |",
           "|---|" + "---|" * len(tasks)]
    for m in models:
        out.append(f"| {m} | " + " | ".join(format_number(cells[(m, t)].score) if (m, t) in cells else "–" for t in tasks) + " |")
    lower = [f"{t} ({heads[t]})" for t in tasks
             if any(e.task == t and not e.results.get("higher_is_better", True) for e in entries)]
    out += ["", "Higher is better" + (f" except {', '.join(lower)}" if lower else "") + "."]
    out += [f"- note: {n}" for n in notes]
    return "\n".join(out) + "\n"


def _bar_svg(task: str, entries: list[Entry], colours: dict[str, str]) -> str:
    w, h, pad, top = 260, 180, 34, 26
    unscaled = entries[0].results["headline"] in set(entries[0].results.get("unscaled", []))
    vals = [e.score if isinstance(e.score, (int, float)) and math.isfinite(e.score) else 0.0 for e in entries]
    his = [e.results["ci"].get(e.results["headline"]) or [None, None] for e in entries]
    ymax = 100.0 if not unscaled else max([1e-9, *vals, *[c[1] for c in his if c[1] is not None]]) * 1.1
    bw = (w - 2 * pad) / max(1, len(entries))
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" role="img" aria-label="{html.escape(task)}">',
             (f'<text x="{w / 2}" y="16" text-anchor="middle" class="t">{html.escape(task)} — '
              f'{html.escape(entries[0].results["headline"])}</text>'),
             f'<line x1="{pad}" y1="{h - pad}" x2="{w - pad}" y2="{h - pad}" stroke="#888"/>']
    scale = (h - pad - top) / ymax
    for i, (e, v, ci) in enumerate(zip(entries, vals, his)):
        x = pad + i * bw + bw * 0.15
        bh = max(0.0, v) * scale
        parts.append(f'<rect x="{x:.1f}" y="{h - pad - bh:.1f}" width="{bw * 0.7:.1f}" height="{bh:.1f}" '
                     f'fill="{colours[e.model]}"><title>{html.escape(e.model)}: {format_number(e.score)}</title></rect>')
        if ci[0] is not None and ci[1] is not None:
            cx = x + bw * 0.35
            parts.append(f'<line x1="{cx:.1f}" y1="{h - pad - ci[0] * scale:.1f}" x2="{cx:.1f}" '
                         f'y2="{h - pad - ci[1] * scale:.1f}" stroke="#333"/>')
        parts.append(f'<text x="{x + bw * 0.35:.1f}" y="{h - pad - bh - 4:.1f}" text-anchor="middle" class="v">{format_number(e.score, 1)}</text>')
    parts.append(f'<text x="{pad - 4}" y="{top + 4}" text-anchor="end" class="v">{format_number(ymax, 0)}</text>'
                 f'<text x="{pad - 4}" y="{h - pad}" text-anchor="end" class="v">0</text></svg>')
    return "".join(parts)


def _radar_svg(models: list[str], families: list[str], values: dict[tuple[str, str], float],
               colours: dict[str, str]) -> str:
    size, r0 = 420, 150
    c = size / 2
    n = max(1, len(families))

    def pt(k: int, v: float) -> tuple[float, float]:
        a = -math.pi / 2 + 2 * math.pi * k / n
        return c + r0 * v / 100 * math.cos(a), c + r0 * v / 100 * math.sin(a)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{size}" height="{size}" role="img" aria-label="radar">']
    for ring in (25, 50, 75, 100):
        pts = " ".join(f"{x:.1f},{y:.1f}" for x, y in (pt(k, ring) for k in range(n)))
        parts.append(f'<polygon points="{pts}" fill="none" stroke="#ddd"/>')
    for k, fam in enumerate(families):
        x, y = pt(k, 100)
        lx, ly = pt(k, 114)
        parts.append(f'<line x1="{c}" y1="{c}" x2="{x:.1f}" y2="{y:.1f}" stroke="#ccc"/>'
                     f'<text x="{lx:.1f}" y="{ly:.1f}" text-anchor="middle" class="v">{html.escape(fam)}</text>')
    for m in models:
        pts = [pt(k, values.get((m, f), 0.0)) for k, f in enumerate(families)]
        parts.append(f'<polygon points="{" ".join(f"{x:.1f},{y:.1f}" for x, y in pts)}" fill="{colours[m]}" '
                     f'fill-opacity="0.2" stroke="{colours[m]}" stroke-width="2"><title>{html.escape(m)}</title></polygon>')
    parts.append("</svg>")
    return "".join(parts)


def family_scores(entries: list[Entry]) -> dict[tuple[str, str], float]:
    """``{(model, family): mean radar score of the model's tasks of that family}`` (families as
    :attr:`Entry.family`: a circular run's is its own), over the entries that have a radar score."""
    sums: dict[tuple[str, str], list[float]] = {}
    for e in entries:
        v = e.radar_score()
        if v is not None:
            sums.setdefault((e.model, e.family), []).append(v)
    return {k: sum(vs) / len(vs) for k, vs in sums.items()}


def leaderboard_html(entries: list[Entry]) -> str:
    """The self-contained HTML leaderboard (see the module docstring)."""
    models, tasks, cells, notes = _grid(entries)
    colours = {m: PALETTE[i % len(PALETTE)] for i, m in enumerate(models)}
    head = "".join(f"<th>{html.escape(t)}<br><small>{html.escape(next(e.results['headline'] for e in entries if e.task == t))}</small></th>"
                   for t in tasks)
    rows = []
    for m in models:
        tds = []
        for t in tasks:
            e = cells.get((m, t))
            tds.append("<td>–</td>" if e is None else
                       f'<td title="n={e.results["n"]}, unparsed={e.results["unparsed"]}">{format_number(e.score)}'
                       f'<small>{html.escape(_ci(e.results["ci"].get(e.results["headline"])))}</small></td>')
        rows.append(f'<tr><td><span class="sw" style="background:{colours[m]}"></span>{html.escape(m)}</td>{"".join(tds)}</tr>')
    bars = "".join(_bar_svg(t, [cells[(m, t)] for m in models if (m, t) in cells], colours) for t in tasks)
    scored = sorted({e.family for e in cells.values() if e.radar_score() is not None})
    values = family_scores(list(cells.values()))
    # a family some model has no value for would be drawn at 0 for it, as if it had scored 0: leave it off
    families = [f for f in scored if all((m, f) in values for m in models)]
    ran = {(e.model, e.family) for e in cells.values()}
    gaps = [f"model {m}: {'no percentage score' if (m, f) in ran else 'no run'} for family {f}"
            for f in scored if f not in families for m in models if (m, f) not in values]
    off = sorted({e.task for e in cells.values() if e.radar_score() is None})
    radar = (_radar_svg(models, families, values, colours) if families else
             "<p>no task family with a percentage metric was run by every model</p>" if scored else
             "<p>no percentage metrics</p>")
    legend = "".join(f'<span class="lg"><span class="sw" style="background:{colours[m]}"></span>{html.escape(m)}</span>'
                     for m in models)
    css = ("body{font-family:system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse}"
           "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}td:first-child{text-align:left}"
           "small{color:#666;margin-left:3px}.sw{display:inline-block;width:10px;height:10px;margin-right:5px}"
           ".wrap{overflow-x:auto}.lg{margin-right:1em}.t{font-size:12px;font-weight:bold}.v{font-size:10px}svg{margin:4px}")
    return (f"<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>lamm bench leaderboard</title>"
            f"<style>{css}</style></head><body><h1>lamm bench leaderboard</h1>"
            f"<div class=\"wrap\"><table><tr><th>model</th>{head}</tr>{''.join(rows)}</table></div>"
            f"<p>{legend}</p><h2>Per task</h2><div>{bars}</div>"
            f"<h2>Across task families</h2>{radar}"
            + (f"<p>Not on the radar (not run by every model): {html.escape('; '.join(gaps))}</p>"
               if gaps else "")
            + (f"<p>Not on the radar (no percentage metric): {html.escape(', '.join(off))}</p>" if off else "")
            + "".join(f"<p><small>note: {html.escape(n)}</small></p>" for n in notes)
            + "</body></html>\n")


def write_leaderboard(paths: list[str | os.PathLike], out_dir: str | os.PathLike) -> dict[str, Path]:
    """Write ``leaderboard.md`` and ``leaderboard.html`` for the runs under ``paths`` into ``out_dir``."""
    entries = find_results(paths)
    out = Path(out_dir)
    md, page = out / "leaderboard.md", out / "leaderboard.html"
    write_text_atomic(md, leaderboard_markdown(entries))
    write_text_atomic(page, leaderboard_html(entries))
    return {"markdown": md, "html": page}
