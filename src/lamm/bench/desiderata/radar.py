"""How desiderata results are shown: the radar chart (plain SVG), ``desiderata.md`` and ``desiderata.html``.

:func:`radar_svg` draws one polygon per model over the six axes (:data:`AXES`, clockwise from the top),
each 0 (centre) to 100 (rim), on a grid of rings at 20/40/60/80/100. A value outside [0, 100] is
clipped for drawing; a missing value (``None`` / NaN) is drawn at 0 and its axis label says "n/a".
Vertex ``k`` of a model sits at ``CENTER + RADIUS · v/100 · (cos θ_k, sin θ_k)`` with
``θ_k = −90° + 360°·k/n`` (SVG y points down, so the first axis is straight up).

The pages take ``desiderata.json`` (``lamm.bench.desiderata.suite``) as their only input, so
``lamm bench desiderata-report OUT_A OUT_B ...`` overlays finished runs of several models without
re-running anything. The HTML page is self-contained: inline CSS and SVG (the radar and every
reliability diagram of the calibration runs), no scripts, nothing fetched.
"""

from __future__ import annotations

import html
import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lamm.bench.report import PALETTE, format_number
from lamm.fileio import write_text_atomic

#: the six desiderata in radar order (clockwise from the top)
AXES = ("calibration", "icl", "instruction_following", "language", "robustness", "hallucination")
AXIS_LABELS = {"calibration": "calibration", "icl": "in-context learning", "instruction_following":
               "instruction following", "language": "language performance", "robustness": "robustness",
               "hallucination": "hallucination"}
RINGS = (20, 40, 60, 80, 100)
SIZE, CENTER, RADIUS = 560, (280.0, 250.0), 170.0


def _value(v: Any) -> float | None:
    """Finite number clipped to [0, 100], else ``None`` (n/a)."""
    if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
        return min(100.0, max(0.0, float(v)))
    return None


def radar_point(k: int, n: int, value: float) -> tuple[float, float]:
    """SVG coordinates of ``value`` (0–100) on axis ``k`` of ``n`` (see the module docstring)."""
    a = -math.pi / 2 + 2 * math.pi * k / n
    r = RADIUS * value / 100.0
    return CENTER[0] + r * math.cos(a), CENTER[1] + r * math.sin(a)


def _pts(points: list[tuple[float, float]]) -> str:
    return " ".join(f"{x:.2f},{y:.2f}" for x, y in points)


def radar_svg(models: Mapping[str, Mapping[str, float | None]], *, axes: tuple[str, ...] | None = None,
              title: str = "desiderata") -> str:
    """A self-contained SVG radar chart: ``models`` maps a model name to ``{axis: value (0–100) or None}``.

    ``axes`` default to :data:`AXES` followed by any other axis the models name. Each model's polygon is a
    ``<polygon class="model" data-model=...>`` with one ``<circle data-axis=...>`` per vertex (its
    ``<title>`` holds the value or "n/a"); each axis has a ``<text class="axis-label" data-axis=...>``.
    """
    if not models:
        raise ValueError("radar_svg needs at least one model")
    extra = [a for m in models.values() for a in m if a not in AXES]
    axes = tuple(axes or (*AXES, *dict.fromkeys(extra)))
    n = len(axes)
    names = list(models)
    colours = {m: PALETTE[i % len(PALETTE)] for i, m in enumerate(names)}
    height = int(CENTER[1] + RADIUS + 60 + 18 * len(names))
    p = [(f'<svg xmlns="http://www.w3.org/2000/svg" width="{SIZE}" height="{height}" viewBox="0 0 {SIZE} {height}" '
         f'role="img" aria-label="{html.escape(title)} radar" font-family="sans-serif" font-size="12">'),
         f"<title>{html.escape(title)}</title>"]
    for ring in RINGS:
        p.append(f'<polygon class="ring" data-ring="{ring}" points="{_pts([radar_point(k, n, ring) for k in range(n)])}" '
                 'fill="none" stroke="#ddd"/>')
        x, y = radar_point(0, n, ring)
        p.append(f'<text x="{x + 3:.2f}" y="{y + 4:.2f}" fill="#999" font-size="9">{ring}</text>')
    for k, axis in enumerate(axes):
        x, y = radar_point(k, n, 100)
        lx, ly = radar_point(k, n, 113)
        anchor = "middle" if abs(lx - CENTER[0]) < 1 else ("start" if lx > CENTER[0] else "end")
        ly -= 12 if ly < CENTER[1] - 1 else 0  # a label above the centre: its second line must clear the rim
        missing = [m for m in names if _value(models[m].get(axis)) is None]
        note = ("n/a" if missing else format_number(_value(models[names[0]].get(axis)), 1)) if len(names) == 1 else \
            (f"n/a: {', '.join(missing)}" if missing else "")
        p.append(f'<line class="axis" data-axis="{html.escape(axis)}" x1="{CENTER[0]}" y1="{CENTER[1]}" x2="{x:.2f}" '
                 f'y2="{y:.2f}" stroke="#bbb"/>')
        p.append(f'<text class="axis-label" data-axis="{html.escape(axis)}" x="{lx:.2f}" y="{ly:.2f}" '
                 f'text-anchor="{anchor}">{html.escape(AXIS_LABELS.get(axis, axis))}'
                 + (f'<tspan x="{lx:.2f}" dy="14" fill="{"#c0392b" if missing else "#555"}">{html.escape(note)}</tspan>'
                    if note else "") + "</text>")
    for m in names:
        vals = [_value(models[m].get(a)) for a in axes]
        pts = [radar_point(k, n, v if v is not None else 0.0) for k, v in enumerate(vals)]
        p.append(f'<polygon class="model" data-model="{html.escape(m)}" points="{_pts(pts)}" fill="{colours[m]}" '
                 f'fill-opacity="0.18" stroke="{colours[m]}" stroke-width="2"/>')
        for (x, y), a, v in zip(pts, axes, vals):
            p.append(f'<circle data-model="{html.escape(m)}" data-axis="{html.escape(a)}" cx="{x:.2f}" cy="{y:.2f}" '
                     f'r="3" fill="{colours[m]}"><title>{html.escape(m)} — {html.escape(AXIS_LABELS.get(a, a))}: '
                     f'{"n/a" if v is None else format_number(v, 1)}</title></circle>')
    y0 = CENTER[1] + RADIUS + 50
    for i, m in enumerate(names):
        p.append(f'<rect x="20" y="{y0 + 18 * i - 10:.0f}" width="12" height="12" fill="{colours[m]}"/>'
                 f'<text x="38" y="{y0 + 18 * i:.0f}">{html.escape(m)}</text>')
    p.append("</svg>")
    return "".join(p)


# --------------------------------------------------------------------------------------------- tables
def _ci(ci: Any) -> str:
    return f"[{format_number(ci[0], 1)}, {format_number(ci[1], 1)}]" if isinstance(ci, (list, tuple)) and len(ci) == 2 and None not in ci else ""


def axis_rows(summary: Mapping[str, Any]) -> list[list[str]]:
    """One row per axis: name, radar value, raw figure, mapping, status (with the reason when n/a)."""
    rows = []
    for a in AXES:
        ax = summary["axes"][a]
        status = ax["status"] if ax["value"] is not None else f"n/a — {ax['status']}: {ax['reason']}"
        rows.append([AXIS_LABELS[a], format_number(ax["value"], 1) if ax["value"] is not None else "n/a",
                     f"{ax['raw_name']} = {format_number(ax['raw'])}" if ax["raw"] is not None else "–", ax["mapping"], status])
    return rows


def sections(summary: Mapping[str, Any]) -> list[tuple[str, list[str], list[list[str]]]]:
    """The detail tables of one model: (title, header, rows) per desideratum."""
    ax, out = summary["axes"], []
    cal = ax["calibration"]["detail"]
    out.append(("Calibration (ppl runs)", ["run", "ECE (%)", "95% CI", "accuracy", "mean confidence", "overconfidence", "n"],
                [[d["run"], format_number(d["ece"]), _ci(d.get("ece_ci")), format_number(d["accuracy"]), format_number(d["mean_confidence"]),
                  format_number(d["overconfidence"]), str(d["n"])] for d in cal]))
    rows = []
    for recipe, s in ax["icl"]["detail"].items():
        rows.append([recipe, "0-shot", "", format_number(s["zero_shot_accuracy"]) + " " + _ci(s.get("zero_shot_ci")), "", "",
                     format_number(s["chance"])])
        rows += [[recipe, c["retriever"], str(c["k"]), format_number(c["accuracy"]), format_number(c["gain"]), format_number(c["riacc"]), ""]
                 for c in s["cells"]]
        rows.append([recipe, "overall", "", format_number(s["accuracy"]), format_number(s["gain"]), format_number(s["riacc"]), ""])
    out.append(("In-context learning", ["recipe", "retriever", "k", "accuracy", "gain (points)", "RIAcc (%)", "chance"], rows))
    d = ax["instruction_following"]["detail"]
    ref = d.get("consistency_against")
    out.append(("Instruction following", ["verbaliser", "match rate", "95% CI", "label rate", "unparsed", "n",
                                          f"consistency vs {ref}" if ref else "consistency"],
                [[v, format_number(f["match_rate"]), _ci(f["ci"]), format_number(f["label_rate"]), str(f["unparsed"]), str(f["n"]),
                  format_number((d["consistency"].get(v) or {}).get("consistency"))] for v, f in d.get("per_verbalizer", {}).items()]))
    rows = []
    for recipe, s in ax["robustness"]["detail"].items():
        rows.append([recipe, "clean", format_number(s["clean_accuracy"]) + " " + _ci(s.get("clean_ci")), "", format_number(s["chance"])])
        rows += [[recipe, label, format_number(c["accuracy"]), format_number(c["rrm"]), ""] for label, c in s["per_corruption"].items()]
        rows.append([recipe, "overall (mean corrupted)", format_number(s["mean_corrupted_accuracy"]), format_number(s["rrm"]), ""])
    out.append(("Robustness", ["recipe", "input", "accuracy", "RRM (%)", "chance"], rows))
    out.append(("Hallucination (POPE)", ["run", "accuracy", "F1", "95% CI (F1)", "precision", "recall", "yes ratio", "n"],
                [[name, format_number(f["accuracy"]), format_number(f["f1"]), _ci(f["ci_f1"]), format_number(f["precision"]), format_number(f["recall"]),
                  format_number(f["yes_ratio"]), str(f["n"])] for name, f in ax["hallucination"]["detail"].items()]))
    out.append(("Language performance (LLM judge)", ["run", "mean score (0–10)", "95% CI", "judged", "scored", "failed"],
                [[name, format_number(j["mean_score"]), _ci(j["ci"]), str(j["n"]), str(j["n_scored"]), str(j["failures"])]
                 for name, j in ax["language"]["detail"].items()]))
    return out


def _excluded(summary: Mapping[str, Any]) -> list[str]:
    lines = [f"{AXIS_LABELS[a]}: {e['what']} — {e['reason']}" for a in AXES for e in summary["axes"][a]["excluded"]]
    return lines or ["nothing"]


def _md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    esc = lambda s: str(s).replace("|", "\\|")
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + \
        ["| " + " | ".join(esc(c) for c in r) + " |" for r in rows]


def desiderata_markdown(summary: Mapping[str, Any]) -> str:
    """``desiderata.md``: the six axes (value, raw figure, mapping, status) and every detail table."""
    cfg = summary["config"]
    lines = [f"# Desiderata — {summary['model']}", "",
             (f"Config `{cfg['name']}`, root `{summary['root']}`, limit {summary['limit']}, "
             f"judge {('`' + summary['judge'] + '`') if summary['judge'] else 'none'}; radar: radar.svg."), ""]
    lines += _md_table(["desideratum", "radar (0–100)", "raw figure", "mapping", "status"], axis_rows(summary))
    for title, header, rows in sections(summary):
        lines += ["", f"## {title}", ""] + (_md_table(header, rows) if rows else ["not run"])
    lines += ["", "## Left out of a mean, or not run", ""] + [f"- {x}" for x in _excluded(summary)]
    return "\n".join(lines) + "\n"


def _html_table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _inline_svg(path: Path) -> str:
    if not path.is_file():
        return f"<p>missing: {html.escape(str(path))}</p>"
    text = path.read_text(encoding="utf-8")
    return text[text.index("?>") + 2:] if text.startswith("<?xml") else text


def desiderata_html(entries: list[tuple[Mapping[str, Any], Path]]) -> str:
    """The self-contained page for one or several models: ``entries`` = (``desiderata.json``, its folder)."""
    names = [e[0]["model"] for e in entries]
    radar = radar_svg({n: e[0]["radar"] for n, e in zip(names, entries)})
    if len(entries) > 1:
        header = ["desideratum", *names]
        rows = [[AXIS_LABELS[a], *(format_number(s["axes"][a]["value"], 1) if s["axes"][a]["value"] is not None else "n/a"
                                   for s, _ in entries)] for a in AXES]
        top = _html_table(header, rows)
    else:
        top = _html_table(["desideratum", "radar (0–100)", "raw figure", "mapping", "status"], axis_rows(entries[0][0]))
    parts = [f"<h1>Desiderata — {html.escape(', '.join(names))}</h1>", top, radar]
    for name, (s, base) in zip(names, entries):
        parts.append(f"<h2>{html.escape(name)}</h2><p>config <code>{html.escape(s['config']['name'])}</code>, root "
                     f"<code>{html.escape(str(s['root']))}</code>, limit {s['limit']}, judge "
                     f"<code>{html.escape(str(s['judge']))}</code></p>")
        if len(entries) > 1:
            parts.append(_html_table(["desideratum", "radar (0–100)", "raw figure", "mapping", "status"], axis_rows(s)))
        for title, header, rows in sections(s):
            parts.append(f"<h3>{html.escape(title)}</h3>" + (_html_table(header, rows) if rows else "<p>not run</p>"))
        cal = s["axes"]["calibration"]["detail"]
        if cal:
            parts.append("<h3>Reliability diagrams</h3><div>"
                         + "".join(_inline_svg(base / d["reliability"]) for d in cal) + "</div>")
        parts.append("<h3>Left out of a mean, or not run</h3><ul>"
                     + "".join(f"<li>{html.escape(x)}</li>" for x in _excluded(s)) + "</ul>")
    css = ("body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:1200px}table{border-collapse:collapse;"
           "margin:.5em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left;vertical-align:top}svg{margin:4px;vertical-align:top}")
    return (f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>desiderata — {html.escape(", ".join(names))}'
            f"</title><style>{css}</style></head><body>{''.join(parts)}</body></html>\n")


def write_desiderata_outputs(summary: Mapping[str, Any], out_dir: str | os.PathLike) -> dict[str, Path]:
    """Write ``desiderata.md``, ``radar.svg`` and ``desiderata.html`` of one model into ``out_dir``."""
    out = Path(out_dir)
    paths = {"markdown": out / "desiderata.md", "radar": out / "radar.svg", "html": out / "desiderata.html"}
    write_text_atomic(paths["markdown"], desiderata_markdown(summary))
    write_text_atomic(paths["radar"], radar_svg({summary["model"]: summary["radar"]}))
    write_text_atomic(paths["html"], desiderata_html([(summary, out)]))
    return paths


def load_summaries(dirs: list[str | os.PathLike]) -> list[tuple[dict[str, Any], Path]]:
    """``desiderata.json`` of each output folder; the same model twice gets its folder name appended."""
    entries = []
    for d in map(Path, dirs):
        f = d / "desiderata.json" if d.is_dir() else d
        if not f.is_file():
            raise FileNotFoundError(f"{d}: no desiderata.json; run `lamm bench desiderata --out {d} ...` first")
        try:
            s = json.loads(f.read_text(encoding="utf-8"))
            missing = [k for k in ("model", "axes", "radar", "config") if k not in s]
        except json.JSONDecodeError as e:
            raise ValueError(f"{f}: invalid JSON ({e.msg} at line {e.lineno})") from None
        if missing:
            raise ValueError(f"{f}: field {missing[0]!r} missing; not a `lamm bench desiderata` output")
        entries.append((s, f.parent))
    seen: dict[str, int] = {}
    for s, base in entries:
        seen[s["model"]] = seen.get(s["model"], 0) + 1
    for s, base in entries:
        if seen[s["model"]] > 1:
            s["model"] = f"{s['model']} ({base.name})"
    return entries


def write_desiderata_report(dirs: list[str | os.PathLike], out_dir: str | os.PathLike) -> dict[str, Path]:
    """Overlay finished ``lamm bench desiderata`` outputs: ``radar.svg``, ``desiderata.md``, ``desiderata.html``."""
    entries = load_summaries(dirs)
    out = Path(out_dir)
    paths = {"markdown": out / "desiderata.md", "radar": out / "radar.svg", "html": out / "desiderata.html"}
    md = ["# Desiderata — " + ", ".join(s["model"] for s, _ in entries), ""]
    md += _md_table(["desideratum", *(s["model"] for s, _ in entries)],
                    [[AXIS_LABELS[a], *(format_number(s["axes"][a]["value"], 1) if s["axes"][a]["value"] is not None else "n/a"
                                        for s, _ in entries)] for a in AXES])
    md += ["", "Radar values 0–100; raw figures and n/a reasons are in each model's section below.", ""]
    for s, _ in entries:
        md += ["", desiderata_markdown(s).replace("# Desiderata", "## Desiderata", 1).replace("\n## ", "\n### ")]
    write_text_atomic(paths["markdown"], "\n".join(md).rstrip() + "\n")
    write_text_atomic(paths["radar"], radar_svg({s["model"]: s["radar"] for s, _ in entries}))
    # the page refers to reliability diagrams relative to each model's own folder, so it inlines them now
    write_text_atomic(paths["html"], desiderata_html(entries))
    return paths
