"""``lamm data build``: sources → builders (C4) / generators (C1–C3) → filter, dedup, split → LAMM files.

Output layout under ``out_dir``::

    {split}.json            LAMM instruction records of each split (``.jsonl`` with output_format: jsonl)
    stats.json              counts per split / task / source / builder, length histograms, template usage
    DATASET_CARD.md         the same, for people, plus quality drops, generation cost and provenance
    build_report.json       what happened: per-task built / not applicable / errors, drops, validation,
                            the split files written and the stale ones removed
    dropped.jsonl           every record removed by quality control, with its reason
    build_config.yaml       the resolved config
    generated/{job}.jsonl   C1–C3 replies accepted so far (append-only; a rerun resumes from it),
                            with {job}.log.jsonl (every attempt) and {job}.summary.json (tokens, cost)

Every split is validated with :func:`lamm.data.records.validate_records` before anything is written.
Rebuilding into the same ``out_dir`` removes the split files that the previous build wrote (as its
``build_report.json`` lists them) and this one does not, so a dropped ``val`` split cannot linger beside
the new ``train``; no other file is touched, and the report's ``removed_stale_files`` names them.
Strings in the config may use ``${name}`` for entries of ``paths`` (set them with ``paths.name=...``).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from lamm.config import Config, ConfigError, apply_overrides, config_from_dict, load_yaml
from lamm.data.builders import BUILDERS, BuilderError, load_templates, run_builder, stable_unit
from lamm.data.generate import GenerateJob, Generator, default_pack, load_pack, plan_jobs
from lamm.data.outdir import previous_split_files, remove_stale_splits
from lamm.data.quality import (
    QualityConfig,
    assign_splits,
    check_disjoint,
    dedup_exact,
    dedup_near,
    filter_records,
)
from lamm.data.records import validate_records, write_records
from lamm.data.sources import load_source
from lamm.data.stats import compute_stats, dataset_card
from lamm.fileio import write_json_atomic, write_jsonl_atomic, write_text_atomic

Progress = Callable[[str, int, int], None]


class BuildError(RuntimeError):
    """The build cannot produce valid data; the message names the task, record or file and the fix."""


class SourceSpec(Config):
    """A source: a registered reader (``type``) and its arguments."""

    type: str
    args: dict[str, Any] = Field(default_factory=dict)
    max_records: int | None = Field(None, ge=0, description="a seeded sample of this many records")


class TaskSpec(Config):
    """A C4 task: a builder applied to every record of a source."""

    builder: str
    source: str
    # needed when one builder runs twice over one source: ids get a suffix and records a ``task`` field
    name: str | None = None
    templates: str | None = None  # bundled template set or YAML path (default: the builder's own)
    question_ids: list[str] | None = None  # glob patterns of template ids to keep
    answer_ids: list[str] | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    max_records: int | None = Field(None, ge=0)


class SplitSpec(Config):
    """``hash``: by media file, with ``fractions``; ``source``: the source records' own ``split``,
    renamed by ``source_map``."""

    mode: Literal["hash", "source"] = "hash"
    fractions: dict[str, float] = Field(default_factory=lambda: {"train": 1.0})
    source_map: dict[str, str] = Field(default_factory=dict)


class BuildConfig(Config):
    """A dataset build (see the module docstring)."""

    name: str = "lamm_data"
    description: str = ""
    seed: int = Field(0, ge=0)
    out_dir: str
    vision_root: str | None = None
    paths: dict[str, str] = Field(default_factory=dict)
    check_media: bool = True
    sources: dict[str, SourceSpec]
    tasks: list[TaskSpec] = Field(default_factory=list)
    generate: list[GenerateJob] = Field(default_factory=list)
    quality: QualityConfig = Field(default_factory=QualityConfig)
    split: SplitSpec = Field(default_factory=SplitSpec)
    output_format: Literal["json", "jsonl"] = "json"
    max_error_fraction: float = Field(
        0.0, ge=0, le=1, description="malformed source records tolerated per task"
    )


_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _substitute(obj: Any, paths: dict[str, str], where: str) -> Any:
    if isinstance(obj, str):

        def repl(m: re.Match) -> str:
            if m.group(1) not in paths:
                raise ConfigError(
                    f"{where}: ${{{m.group(1)}}} is not defined in 'paths' (known: "
                    f"{', '.join(sorted(paths)) or 'none'}); set it with paths.{m.group(1)}=..."
                )
            return str(paths[m.group(1)])

        return _VAR.sub(repl, obj)
    if isinstance(obj, dict):
        return {k: _substitute(v, paths, f"{where}.{k}") for k, v in obj.items()}
    if isinstance(obj, list):
        return [_substitute(v, paths, f"{where}[{i}]") for i, v in enumerate(obj)]
    return obj


def load_build_config(path: str | os.PathLike | None, overrides: list[str] | None = None) -> BuildConfig:
    """Load a build config: YAML + dotted overrides, then ``${paths}`` substitution, then validation."""
    data = load_yaml(path) if path is not None else {}
    source = str(path) if path is not None else "<defaults>"
    if overrides:
        data = apply_overrides(data, overrides)
        source += " + overrides " + " ".join(overrides)
    paths = {k: str(v) for k, v in (data.get("paths") or {}).items()}
    data = {k: (v if k == "paths" else _substitute(v, paths, f"{source}: {k}")) for k, v in data.items()}
    return config_from_dict(BuildConfig, data, source)


@dataclass(frozen=True)
class Origin:
    """Who made a record (for errors about repeated ids): a task or generate job, its source, the
    source record (``src_dataset:src_id``)."""

    kind: str  # "task" | "generate job"
    name: str
    source: str
    record: str

    def __str__(self) -> str:
        return f"{self.kind} {self.name!r} (source {self.source!r}, record {self.record})"


@dataclass
class BuildResult:
    out_dir: Path
    files: dict[str, str]
    stats: dict[str, Any]
    report: dict[str, Any] = field(default_factory=dict)


def _sample(records: list[dict[str, Any]], n: int | None, seed: int, what: str) -> list[dict[str, Any]]:
    """A seeded sample of ``n`` records, kept in their original order."""
    if n is None or n >= len(records):
        return records
    keep = set(
        sorted(range(len(records)), key=lambda i: stable_unit(seed, "sample", what, records[i]["src_id"]))[:n]
    )
    return [r for i, r in enumerate(records) if i in keep]


def _modality(records: list[dict[str, Any]]) -> str | None:
    return next(("image" if "image" in r else "pcl" for r in records), None)


def _run_tasks(
    cfg: BuildConfig,
    sources: dict[str, list[dict[str, Any]]],
    report: dict[str, Any],
    progress: Progress | None,
    origins: dict[str, list[Origin]],
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for spec in cfg.tasks:
        name = spec.name or spec.builder
        if spec.source not in sources:
            raise BuildError(f"task {name!r}: unknown source {spec.source!r}; sources: {', '.join(sources)}")
        b = BUILDERS.get(spec.builder)
        recs = _sample(sources[spec.source], spec.max_records, cfg.seed, name)
        mod = _modality(recs)
        if mod is not None and mod != b.modality:
            raise BuildError(
                f"task {name!r}: builder {spec.builder!r} makes {b.modality!r} records but source "
                f"{spec.source!r} has {mod!r} records"
            )
        templates = load_templates(spec.templates or b.templates).restrict(spec.question_ids, spec.answer_ids)
        built, n_na, errors = [], 0, []
        for i, rec in enumerate(recs):
            try:
                salt = spec.name if spec.name and spec.name != spec.builder else ""
                made = run_builder(spec.builder, rec, templates, cfg.seed, spec.params, salt)
            except BuilderError as e:
                errors.append(str(e))
                continue
            if not made:
                n_na += 1
            if spec.name and spec.name != spec.builder:
                for r in made:  # the task's name: an id suffix and a provenance field to group by
                    r["id"] = f"{r['id']}_{spec.name}"
                    r["task"] = spec.name
            for r in made:
                origins.setdefault(r["id"], []).append(
                    Origin("task", name, spec.source, f"{rec['src_dataset']}:{rec['src_id']}")
                )
            built += made
            if progress:
                progress(f"task {name}", i + 1, len(recs))
        report["tasks"][name] = {
            "builder": b.tag,
            "source": spec.source,
            "source_records": len(recs),
            "records": len(built),
            "not_applicable": n_na,
            "errors": len(errors),
            "first_errors": errors[:5],
        }
        if recs and len(errors) / len(recs) > cfg.max_error_fraction:
            raise BuildError(
                f"task {name!r}: {len(errors)} of {len(recs)} source records could not be built "
                f"(max_error_fraction={cfg.max_error_fraction}):\n  " + "\n  ".join(errors[:10])
            )
        out += built
    return out


def _run_generation(
    cfg: BuildConfig,
    sources: dict[str, list[dict[str, Any]]],
    out: Path,
    report: dict[str, Any],
    progress: Progress | None,
    origins: dict[str, list[Origin]],
) -> list[dict[str, Any]]:
    from lamm.infer.engine import load_engine

    records: list[dict[str, Any]] = []
    for job in cfg.generate:
        if job.source not in sources:
            raise BuildError(
                f"generate job {job.name!r}: unknown source {job.source!r}; sources: {', '.join(sources)}"
            )
        recs = _sample(sources[job.source], job.max_records, cfg.seed, job.name)
        pack = load_pack(job.prompt_pack or default_pack(job.kind, _modality(recs) or "image"))
        if pack.kind != job.kind:
            raise BuildError(
                f"generate job {job.name!r}: kind {job.kind!r} but prompt pack {pack.name!r} is {pack.kind!r}"
            )
        jobs, n_na = plan_jobs(recs, pack, cfg.seed, job.max_objects)
        engine = load_engine(job.engine, media_root=cfg.vision_root, **job.engine_options)
        try:
            gen = Generator(engine, pack, job, cfg.seed)
            cb = (lambda d, t, n=job.name: progress(f"generate {n}", d, t)) if progress else None
            try:
                made = gen.run(jobs, out / "generated" / f"{job.name}.jsonl", cb)
                for r in made:
                    origins.setdefault(r["id"], []).append(
                        Origin("generate job", job.name, job.source, f"{r['src_dataset']}:{r['src_id']}")
                    )
                records += made
            finally:
                gen.summary.not_applicable = n_na
                report["generation"][job.name] = gen.summary.to_json()
        finally:
            engine.close()
    return records


def _duplicate_ids_error(
    records: list[dict[str, Any]], origins: dict[str, list[Origin]]
) -> BuildError | None:
    """A :class:`BuildError` naming the tasks / jobs and source records behind a repeated id, or None."""
    dup = [k for k, v in Counter(r["id"] for r in records).items() if v > 1]
    if not dup:
        return None
    makers = origins.get(dup[0], [])
    if len({m.source for m in makers}) > 1:
        hint = (
            "two sources give records of one dataset name and id; give one of them a distinct 'dataset' "
            "in its args"
        )
    elif len({m.record for m in makers}) > 1:
        hint = "distinct source records of one source map to one id; make their src_ids distinct"
    elif all(m.kind == "task" for m in makers):
        hint = "two tasks run the same builder over the same records; give one of them a distinct 'name'"
    else:
        hint = "two generate jobs of one kind run over the same records; drop one or give it another source"
    return BuildError(
        f"{len(dup)} record id(s) are made twice (e.g. {dup[0]!r}, by "
        + " and by ".join(str(m) for m in makers or ["?"])
        + f"): {hint}"
    )


def build(cfg: BuildConfig, progress: Progress | None = None) -> BuildResult:
    """Run the whole pipeline of ``cfg``; see the module docstring for what is written."""
    t0 = time.time()
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    previous_files = previous_split_files(out)  # read before this build overwrites the report
    cfg.dump(out / "build_config.yaml")
    config_hash = hashlib.sha256(cfg.to_yaml().encode()).hexdigest()
    report: dict[str, Any] = {
        "name": cfg.name,
        "config_sha256": config_hash,
        "sources": {},
        "tasks": {},
        "generation": {},
    }
    used = {t.source for t in cfg.tasks} | {g.source for g in cfg.generate}
    sources: dict[str, list[dict[str, Any]]] = {}
    for sname in sorted(used):
        if sname not in cfg.sources:
            raise BuildError(
                f"source {sname!r} is used but not defined under 'sources' "
                f"(defined: {', '.join(cfg.sources) or 'none'})"
            )
        spec = cfg.sources[sname]
        recs = load_source(spec.type, **spec.args)
        sources[sname] = _sample(recs, spec.max_records, cfg.seed, sname)
        report["sources"][sname] = {"type": spec.type, "records": len(sources[sname])}
    index: dict[tuple[str, str], dict[str, Any]] = {}
    for recs in sources.values():
        for r in recs:
            key = (str(r["src_dataset"]), str(r["src_id"]))
            if key not in index or ("objects" in r and "objects" not in index[key]):
                index[key] = r

    origins: dict[str, list[Origin]] = {}
    records = _run_tasks(cfg, sources, report, progress, origins) + _run_generation(
        cfg, sources, out, report, progress, origins
    )
    err = _duplicate_ids_error(records, origins)
    if err is not None:
        raise err

    q = cfg.quality
    dropped: list[tuple[dict[str, Any], str]] = []
    records, d = filter_records(records, q, index)
    dropped += d
    n_filter = len(d)
    n_exact = n_near = 0
    if q.exact_dedup:
        records, d = dedup_exact(records)
        dropped += d
        n_exact = len(d)
    if q.near_dedup:
        records, d = dedup_near(records, q)
        dropped += d
        n_near = len(d)
    reasons = Counter(why.split(":")[0] for _, why in dropped)
    report["quality"] = {
        "dropped": {"filters": n_filter, "exact_duplicates": n_exact, "near_duplicates": n_near},
        "reasons": dict(reasons.most_common()),
        "not_applicable": {k: v["not_applicable"] for k, v in report["tasks"].items()},
    }

    if cfg.split.mode == "hash":
        splits = assign_splits(records, cfg.split.fractions, cfg.seed)
    else:
        splits = {}
        for r in records:
            src = index.get((str(r["src_dataset"]), str(r["src_id"])), {})
            if not src.get("split"):
                raise BuildError(
                    f"record {r['id']!r}: split mode 'source' but source record "
                    f"{r['src_dataset']}:{r['src_id']} has no 'split'; use split.mode=hash"
                )
            splits.setdefault(cfg.split.source_map.get(src["split"], src["split"]), []).append(r)
    try:
        check_disjoint(splits)
    except ValueError as e:
        raise BuildError(str(e)) from None

    suffix = ".jsonl" if cfg.output_format == "jsonl" else ".json"
    files = {s: f"{s}{suffix}" for s in splits}
    validation = {}
    for s, recs in splits.items():
        rep = validate_records(
            recs,
            file=str(out / files[s]),
            root=cfg.vision_root,
            kind="instruction",
            check_media=cfg.check_media,
        )
        if not rep.ok:
            errs = [str(p) for p in rep.problems if p.severity == "error"]
            raise BuildError(
                f"split {s!r}: {rep.n_invalid} of {len(recs)} records are invalid; nothing was written:\n  "
                + "\n  ".join(errs[:20])
            )
        validation[s] = {"records": len(recs), "warnings": rep.n_warnings}
    report["validation"] = validation

    for s, recs in splits.items():
        write_records(out / files[s], recs)
    report["files"] = files
    report["removed_stale_files"] = remove_stale_splits(out, previous_files, files)
    stats = compute_stats(splits)
    write_json_atomic(out / "stats.json", stats)
    write_jsonl_atomic(out / "dropped.jsonl", ({"id": r["id"], "reason": why} for r, why in dropped))
    report["seconds"] = round(time.time() - t0, 3)
    write_json_atomic(out / "build_report.json", report)
    import lamm

    card = dataset_card(
        stats,
        name=cfg.name,
        description=cfg.description,
        files=files,
        quality=report["quality"],
        generation=report["generation"] or None,
        provenance={
            "seed": cfg.seed,
            "config": "build_config.yaml",
            "config_sha256": config_hash,
            "lamm": getattr(lamm, "__version__", "unknown"),
            "builders": ", ".join(sorted({v["builder"] for v in report["tasks"].values()})),
        },
    )
    write_text_atomic(out / "DATASET_CARD.md", card)
    return BuildResult(out, files, stats, report)


def describe_result(result: BuildResult) -> str:
    """A short multi-line summary for the terminal."""
    lines = [f"{result.out_dir}:"]
    for s, f in result.files.items():
        lines.append(f"  {f}: {result.stats['splits'][s]['records']} records")
    drops = result.report.get("quality", {}).get("dropped", {})
    lines.append("  dropped: " + json.dumps(drops))
    stale = result.report.get("removed_stale_files")
    if stale:
        lines.append("  removed stale split files of the previous build: " + ", ".join(stale))
    return "\n".join(lines)
