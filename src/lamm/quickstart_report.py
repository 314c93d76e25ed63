"""The quickstart's report: ``report.md`` and a self-contained ``report.html`` (inline SVG, no scripts).

It shows the learning curve (training loss per step, eval loss where measured) and, per benchmark task,
the headline metric of the untrained model, the trained model and chance, with the targets of the
quickstart (``lamm.quickstart.TARGETS``: a factor over chance).
"""

from __future__ import annotations

import html
import math
from pathlib import Path
from typing import Any

from lamm.fileio import write_text_atomic

COLOURS = {"untrained": "#9aa5b1", "trained": "#2f6fdf", "chance": "#e0a526"}


def _fmt(v: Any, digits: int = 1) -> str:
    return "–" if not isinstance(v, (int, float)) or not math.isfinite(v) else f"{v:.{digits}f}"


def target_rows(untrained: dict[str, dict[str, Any]], trained: dict[str, dict[str, Any]],
                targets: dict[str, tuple[str, float]]) -> list[dict[str, Any]]:
    """One row per task: the target's metric (else the headline), chance, both scores, the target
    (factor × chance) and whether it is met. Chance applies to accuracy-like metrics only."""
    rows = []
    for task in sorted(set(untrained) | set(trained)):
        u, t = untrained.get(task, {}), trained.get(task, {})
        metric, factor = targets.get(task, (t.get("headline") or u.get("headline"), None))
        chance = t.get("chance") if t.get("chance") is not None else u.get("chance")
        if metric == "mae":
            chance = None
        goal = factor * chance if factor is not None and isinstance(chance, (int, float)) else None
        score = (t.get("metrics") or {}).get(metric)
        rows.append({
            "task": task, "metric": metric, "chance": chance,
            "untrained": (u.get("metrics") or {}).get(metric), "trained": score, "target": goal, "factor": factor,
            "met": (goal is not None and isinstance(score, (int, float)) and score >= goal) if goal is not None else None,
        })
    return rows


def stage_spans(metrics: list[dict[str, Any]]) -> list[tuple[str, int, int]]:
    """(stage, first step, last step) of each curriculum stage in the combined training log, in order."""
    spans: list[tuple[str, int, int]] = []
    for r in metrics:
        if "loss" not in r:
            continue
        name = str(r.get("stage", "train"))
        if spans and spans[-1][0] == name:
            spans[-1] = (name, spans[-1][1], r["step"])
        else:
            spans.append((name, r["step"], r["step"]))
    return spans


def _curve_svg(metrics: list[dict[str, Any]], width: int = 640, height: int = 260) -> str:
    def finite(v: Any) -> bool:
        return isinstance(v, (int, float)) and math.isfinite(v)

    pts = [(r["step"], r["loss"]) for r in metrics if finite(r.get("loss"))]
    evals = [(r["step"], r["eval_loss"]) for r in metrics if finite(r.get("eval_loss"))]
    # a diverged step (NaN / inf loss) would make every coordinate NaN: leave it out, and say so
    n_bad = sum(1 for r in metrics if "loss" in r and not finite(r.get("loss")))
    if not pts:
        return "<p>no training steps were logged</p>" if not n_bad else f"<p>all {n_bad} losses are NaN or inf</p>"
    pad = 44
    xmax = max(s for s, _ in pts) or 1
    ymax = max(v for _, v in pts + evals) * 1.05 or 1
    sx = lambda s: pad + (width - 2 * pad) * s / xmax
    sy = lambda v: height - pad - (height - 2 * pad) * v / ymax
    line = " ".join(f"{sx(s):.1f},{sy(v):.1f}" for s, v in pts)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
             'aria-label="learning curve">',
             f'<line x1="{pad}" y1="{height - pad}" x2="{width - pad}" y2="{height - pad}" stroke="#888"/>',
             f'<line x1="{pad}" y1="{pad}" x2="{pad}" y2="{height - pad}" stroke="#888"/>',
             f'<polyline points="{line}" fill="none" stroke="{COLOURS["trained"]}" stroke-width="1.5"/>']
    for name, first, _ in stage_spans(metrics)[1:]:  # where each later stage begins
        x = sx(first - 0.5)
        parts.append(f'<line x1="{x:.1f}" y1="{pad}" x2="{x:.1f}" y2="{height - pad}" stroke="#999" '
                     f'stroke-dasharray="3 3"/><text x="{x + 4:.1f}" y="{pad + 12}" font-size="11">'
                     f'{html.escape(name)} →</text>')
    for s, v in evals:
        parts.append(f'<circle cx="{sx(s):.1f}" cy="{sy(v):.1f}" r="3.5" fill="{COLOURS["chance"]}">'
                     f'<title>eval loss {v:.3f} at step {s}</title></circle>')
    parts.append(f'<text x="{width / 2}" y="{height - 8}" text-anchor="middle">step (0–{xmax})</text>'
                 f'<text x="{pad - 6}" y="{pad + 4}" text-anchor="end">{ymax:.2f}</text>'
                 f'<text x="{pad - 6}" y="{height - pad}" text-anchor="end">0</text>'
                 f'<text x="{width - pad}" y="{pad}" text-anchor="end">— train loss  ● eval loss</text>')
    if n_bad:
        parts.append(f'<text x="{pad + 4}" y="{height - pad - 6}" font-size="11" fill="#b00">{n_bad} step(s) '
                     'with a NaN / inf loss not drawn</text>')
    parts.append("</svg>")
    return "".join(parts)


def _bars_svg(row: dict[str, Any], width: int = 220, height: int = 170) -> str:
    vals = [("untrained", row["untrained"]), ("trained", row["trained"]), ("chance", row["chance"])]
    nums = [v for _, v in vals if isinstance(v, (int, float)) and math.isfinite(v)]
    ymax = max([100.0 if row["metric"] not in ("mae",) else 1e-9, *nums]) * 1.05
    pad, top = 26, 24
    bw = (width - 2 * pad) / 3
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
             f'aria-label="{html.escape(row["task"])}">',
             f'<text x="{width / 2}" y="14" text-anchor="middle" font-size="12">{html.escape(row["task"])} '
             f'({html.escape(str(row["metric"]))})</text>',
             f'<line x1="{pad}" y1="{height - pad}" x2="{width - pad}" y2="{height - pad}" stroke="#888"/>']
    scale = (height - pad - top) / ymax
    for i, (name, v) in enumerate(vals):
        v = v if isinstance(v, (int, float)) and math.isfinite(v) else 0.0
        x = pad + i * bw + bw * 0.15
        h = max(0.0, v) * scale
        parts.append(f'<rect x="{x:.1f}" y="{height - pad - h:.1f}" width="{bw * 0.7:.1f}" height="{h:.1f}" '
                     f'fill="{COLOURS[name]}"><title>{name}: {v:.2f}</title></rect>'
                     f'<text x="{x + bw * 0.35:.1f}" y="{height - pad - h - 3:.1f}" text-anchor="middle" '
                     f'font-size="11">{_fmt(v)}</text>'
                     f'<text x="{x + bw * 0.35:.1f}" y="{height - 10}" text-anchor="middle" font-size="10">{name}</text>')
    if row["target"] is not None:
        y = height - pad - row["target"] * scale
        parts.append(f'<line x1="{pad}" y1="{y:.1f}" x2="{width - pad}" y2="{y:.1f}" stroke="#c0392b" '
                     f'stroke-dasharray="4 3"><title>target {row["factor"]}× chance</title></line>')
    parts.append("</svg>")
    return "".join(parts)


def report_markdown(rows: list[dict[str, Any]], res: Any, metrics: list[dict[str, Any]]) -> str:
    losses = [m["loss"] for m in metrics if "loss" in m]
    lines = ["# lamm quickstart report", "",
             f"Output folder: `{res.out}`. Training: {len(losses)} steps, loss {_fmt(losses[0], 3) if losses else '–'}"
             f" → {_fmt(losses[-1], 3) if losses else '–'}. Times (s): "
             + ", ".join(f"{k} {v}" for k, v in res.timings.items()) + ".", "",
             "Curriculum: " + "; ".join(f"{name} (steps {a}–{b})" for name, a, b in stage_spans(metrics))
             + " — see `lamm.quickstart.CURRICULUM` for the tasks of each stage.", "",
             "Held-out synthetic test split, one metric per task (percent; the targets are factors over chance):", "",
             "| task | metric | chance | untrained | trained | target | met |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        target = f"≥ {_fmt(r['target'])} ({r['factor']}× chance)" if r["target"] is not None else "report only"
        met = {True: "yes", False: "**no**", None: ""}[r["met"]]
        lines.append(f"| {r['task']} | {r['metric']} | {_fmt(r['chance'])} | {_fmt(r['untrained'])} | "
                     f"{_fmt(r['trained'])} | {target} | {met} |")
    lines += ["", "## What was written", ""]
    lines += [f"- {k}: `{v}`" for k, v in res.paths.items()]
    return "\n".join(lines) + "\n"


def report_html(rows: list[dict[str, Any]], res: Any, metrics: list[dict[str, Any]], markdown: str) -> str:
    table = ["<table><tr><th>task</th><th>metric</th><th>chance</th><th>untrained</th><th>trained</th>"
             "<th>target</th><th>met</th></tr>"]
    for r in rows:
        target = f"≥ {_fmt(r['target'])}" if r["target"] is not None else "report only"
        met = {True: "yes", False: "<b>no</b>", None: ""}[r["met"]]
        table.append(f"<tr><td>{html.escape(r['task'])}</td><td>{html.escape(str(r['metric']))}</td>"
                     f"<td>{_fmt(r['chance'])}</td><td>{_fmt(r['untrained'])}</td><td>{_fmt(r['trained'])}</td>"
                     f"<td>{target}</td><td>{met}</td></tr>")
    table.append("</table>")
    bars = "".join(_bars_svg(r) for r in rows)
    paths = "".join(f"<li>{html.escape(k)}: <code>{html.escape(str(v))}</code></li>" for k, v in res.paths.items())
    return ("<!doctype html><html><head><meta charset='utf-8'><title>lamm quickstart</title><style>"
            "body{font-family:sans-serif;margin:2em;max-width:1100px}table{border-collapse:collapse}"
            "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}td:first-child{text-align:left}"
            "svg{margin:4px}</style></head><body><h1>lamm quickstart</h1>"
            f"<h2>Learning curve</h2>{_curve_svg(metrics)}"
            f"<h2>Benchmark on the held-out test split</h2>{''.join(table)}<div>{bars}</div>"
            f"<h2>What was written</h2><ul>{paths}</ul></body></html>\n")


def write_report(res: Any, metrics: list[dict[str, Any]]) -> dict[str, Path]:
    """Write ``report.md`` and ``report.html`` into ``res.out``; returns their paths."""
    from lamm.quickstart import TARGETS

    rows = target_rows(res.untrained, res.trained, TARGETS)
    md = report_markdown(rows, res, metrics)
    out = Path(res.out)
    write_text_atomic(out / "report.md", md)
    write_text_atomic(out / "report.html", report_html(rows, res, metrics, md))
    return {"report (markdown)": out / "report.md", "report (html)": out / "report.html"}
