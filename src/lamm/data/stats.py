"""Dataset statistics and the markdown dataset card.

:func:`compute_stats` counts records per split, task type, source dataset, builder and modality, the
distinct media, turn counts, question/answer length histograms (words) and template usage.
:func:`dataset_card` renders those numbers (plus quality drops and generation cost) as ``DATASET_CARD.md``.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Any

from lamm.data.records import TEXT_MODALITY, record_modality

LENGTH_BINS = (1, 2, 5, 10, 20, 50, 100, 200, 500)  # upper edges (inclusive), in words


def length_bin(n: int) -> str:
    """The histogram bin label of a length in words: ``"0"``, ``"1"``, ``"3-5"``, ..., ``">500"``.

    >>> [length_bin(n) for n in (0, 1, 4, 600)]
    ['0', '1', '3-5', '>500']
    """
    if n <= 0:
        return "0"
    lo = 1
    for hi in LENGTH_BINS:
        if n <= hi:
            return str(hi) if lo == hi else f"{lo}-{hi}"
        lo = hi + 1
    return f">{LENGTH_BINS[-1]}"


_BIN_LABELS = ["0"] + [length_bin(h) for h in LENGTH_BINS] + [f">{LENGTH_BINS[-1]}"]


def _ordered_hist(c: Counter) -> dict[str, int]:
    return {k: c[k] for k in _BIN_LABELS if c[k]}


def _sorted(c: Counter) -> dict[str, int]:
    return {str(k): c[k] for k in sorted(c, key=lambda k: (-c[k], str(k)))}


def split_stats(records: list[dict[str, Any]]) -> dict[str, Any]:
    """The statistics of one list of instruction records."""
    tasks, sources, builders, modality, turns = Counter(), Counter(), Counter(), Counter(), Counter()
    q_len, a_len, templates = Counter(), Counter(), Counter()
    media = set()
    for r in records:
        tasks[r.get("task_type", "normal")] += 1
        sources[r.get("src_dataset", "unknown")] += 1
        builders[r.get("builder", "unknown")] += 1
        mod = record_modality(r)
        modality[mod] += 1
        if mod != TEXT_MODALITY:
            media.add(r.get(mod))
        conv = r.get("conversations") or []
        turns[len(conv)] += 1
        for t in conv:
            (q_len if t.get("from") == "human" else a_len)[
                length_bin(len(str(t.get("value", "")).split()))
            ] += 1
        tid = r.get("template_id")
        if tid:
            for part in str(tid).split("+"):
                templates[part] += 1
    return {
        "records": len(records),
        "media": len(media),
        "task_type": _sorted(tasks),
        "src_dataset": _sorted(sources),
        "builder": _sorted(builders),
        "modality": _sorted(modality),
        "turns": {str(k): turns[k] for k in sorted(turns)},
        "question_words": _ordered_hist(q_len),
        "answer_words": _ordered_hist(a_len),
        "template_usage": _sorted(templates),
    }


def compute_stats(splits: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Per-split statistics plus totals over all splits."""
    return {
        "splits": {name: split_stats(recs) for name, recs in splits.items()},
        "total": split_stats([r for recs in splits.values() for r in recs]),
    }


def split_names(paths: list[str | os.PathLike]) -> list[str]:
    """A distinct split name per file, in order: its stem, or — for files whose stems collide
    (``a/train.json``, ``b/train.json``) — its path relative to the files' common folder. A file given
    twice gets ``#2``, ``#3``: no file is ever merged into another or dropped.

    >>> split_names(["d/train.json", "d/val.json"]), split_names(["x/a/train.json", "x/b/train.json"])
    (['train', 'val'], ['a/train.json', 'b/train.json'])
    """
    stems = [Path(p).stem for p in paths]
    clash = {s for s in stems if stems.count(s) > 1}
    names = stems
    if clash:
        full = [os.path.abspath(p) for p in paths]
        parent = os.path.dirname(full[0]) if len(set(full)) == 1 else os.path.commonpath(full)
        if parent in full:  # a single distinct file given several times: its folder is the parent
            parent = os.path.dirname(parent)
        names = [
            Path(os.path.relpath(f, parent)).as_posix() if st in clash else st for f, st in zip(full, stems)
        ]
    out: list[str] = []
    for n in names:
        name, k = n, 1
        while name in out:
            k += 1
            name = f"{n}#{k}"
        out.append(name)
    return out


def stats_for_files(paths: list[str | os.PathLike]) -> dict[str, Any]:
    """Statistics of instruction files, each file a split named by :func:`split_names` (its stem,
    unless stems collide)."""
    from lamm.data.records import read_records

    return compute_stats({name: read_records(p) for name, p in zip(split_names(paths), paths)})


def _table(header: list[str], rows: list[list[Any]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


def _by_split(stats: dict[str, Any], key: str, limit: int | None = None) -> str:
    splits = list(stats["splits"])
    names = list(stats["total"][key])[:limit]
    rows = [
        [f"`{n}`"] + [stats["splits"][s][key].get(n, 0) for s in splits] + [stats["total"][key][n]]
        for n in names
    ]
    return _table([key] + splits + ["total"], rows) if rows else "_none_"


def dataset_card(
    stats: dict[str, Any],
    *,
    name: str,
    description: str = "",
    files: dict[str, str] | None = None,
    quality: dict[str, Any] | None = None,
    generation: dict[str, Any] | None = None,
    provenance: dict[str, Any] | None = None,
) -> str:
    """A markdown dataset card: what is in the data, where it came from and what was removed."""
    splits = list(stats["splits"])
    parts = [f"# Dataset card: {name}", ""]
    if description:
        parts += [description.strip(), ""]
    parts += [
        "## Files",
        "",
        _table(
            ["split", "file", "records", "media"],
            [
                [
                    s,
                    f"`{(files or {}).get(s, '')}`",
                    stats["splits"][s]["records"],
                    stats["splits"][s]["media"],
                ]
                for s in splits
            ],
        ),
        "",
        (
            "Format: LAMM instruction records (a JSON array; `id`, `image` or `pcl` relative to the vision "
            "root, "
            "`task_type`, `conversations`), with provenance on every record: `src_dataset`, `src_id`, "
            "`builder` (name@version), `template_id`, `seed`. An image or point cloud is in one split only."
        ),
        "",
        "## Task types",
        "",
        _by_split(stats, "task_type"),
        "",
        "## Sources",
        "",
        _by_split(stats, "src_dataset"),
        "",
        "## Builders and generators",
        "",
        _by_split(stats, "builder"),
        "",
        "## Lengths (words per turn)",
        "",
        _table(
            ["bin", "questions", "answers"],
            [
                [b, stats["total"]["question_words"].get(b, 0), stats["total"]["answer_words"].get(b, 0)]
                for b in _BIN_LABELS
                if b in stats["total"]["question_words"] or b in stats["total"]["answer_words"]
            ],
        ),
        "",
        "Turns per record: " + ", ".join(f"{k}: {v}" for k, v in stats["total"]["turns"].items()),
        "",
        "## Template usage (top 40)",
        "",
        _by_split(stats, "template_usage", 40),
        "",
    ]
    if quality:
        parts += [
            "## Quality control",
            "",
            _table(["step", "dropped"], [[k, v] for k, v in quality.get("dropped", {}).items()])
            or "_nothing dropped_",
            "",
        ]
        if quality.get("reasons"):
            parts += [
                "Reasons:",
                "",
                _table(["reason", "records"], [[k, v] for k, v in quality["reasons"].items()]),
                "",
            ]
        if quality.get("not_applicable"):
            parts += [
                "Source records a builder did not apply to (e.g. no objects for detection):",
                "",
                _table(["task", "records"], [[k, v] for k, v in quality["not_applicable"].items()]),
                "",
            ]
    if generation:
        parts += [
            "## Generation (C1–C3)",
            "",
            # tokens and cost are counted by the engine of one invocation: a resumed build reports only
            # what it asked for itself, so the columns say so instead of passing it off as the total
            "Tokens and cost are those of the last `lamm data build` invocation; records generated by an",
            "earlier (interrupted) invocation are counted under \"records\" but their requests are not.",
            "",
            _table(
                [
                    "job",
                    "model",
                    "prompt pack",
                    "records",
                    "generated by the last run",
                    "failed",
                    "prompt tokens (last run)",
                    "completion tokens (last run)",
                    "cost of the last run (USD)",
                ],
                [
                    [
                        k,
                        g.get("model"),
                        f"`{g.get('prompt_pack')}`",
                        g.get("generated", 0) + g.get("already_done", 0),
                        g.get("generated", 0),
                        g.get("failed", 0),
                        g.get("prompt_tokens"),
                        g.get("completion_tokens"),
                        g.get("cost_usd"),
                    ]
                    for k, g in generation.items()
                ],
            ),
            "",
        ]
    if provenance:
        parts += ["## Provenance", ""] + [f"- {k}: `{v}`" for k, v in provenance.items()] + [""]
    return "\n".join(parts)
