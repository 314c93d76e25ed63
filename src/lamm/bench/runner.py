"""Run a recipe: scenario → requests → engine (batched, cached) → parse → score → outputs.

Outputs in the run directory (all written atomically, by rank 0 only):

* ``answers.jsonl`` — one row per record: question(s), rendered prompt(s), raw answer(s), the parsed
  prediction, the per-sample scores and inferencer extras (option probabilities, rationales);
* ``results.json`` — metrics, 95% bootstrap intervals, counts (``n``, ``unparsed``; ``context_refused``:
  questions whose prompt did not fit the model's context; ``ppl_ties`` for a ``ppl`` run: questions whose
  best option score was shared, decided by the lowest index), recipe hash, model
  fingerprint, versions of lamm / torch / transformers. It holds nothing that depends on timing or on
  how the run was split, so a resumed or a data-parallel run writes the same bytes as one clean process;
* ``report.md`` — the same for people; ``recipe.yaml`` — the resolved recipe;
* ``run_info.json`` (timing, world size, how many answers came from the cache, how many stale cache
  entries were regenerated) and ``log.jsonl`` (appended across resumes; a line a kill cut is cut off
  before the next run appends, ``lamm.fileio.cut_torn_tail``).

Prompts that do not fit the model's context: the engine refuses them (``ContextLengthError``) and the
inferencer (``Inferencer.answer``, ``lamm.bench.inferencers``) asks the rest again; each refused question
gets an empty answer (unparsed, scored as wrong) with ``extra = {"error": "context_length_exceeded",
"prompt_tokens", "context_length"}``, is counted in ``results.json`` → ``context_refused`` and logged. A
refusal is cached like an answer (the same model and sample are refused again); a cached refusal is asked
again when the engine's ``context_length`` now differs from the one it records.

Resume: answers go to the SQLite cache (``lamm.bench.cache``) batch by batch, *before* scoring; a rerun
of the same recipe and model asks the model only for samples without a cached answer. Each cached answer
carries the fingerprint of its sample (question, options, task type, media path, size and mtime); a
cached answer whose fingerprint differs from the sample's now (other data under the same ids: another
root, regenerated or edited files) is regenerated and counted as ``stale_regenerated``.

Data parallel: under ``torchrun`` (``WORLD_SIZE`` > 1) rank 0 decides which samples still need an
answer and broadcasts the list; rank r answers every world-size-th of them (checking its own cache
first); rank 0 gathers the answers through ``torch.distributed`` (gloo, also on GPU machines, via a
separate group) and scores them alone. Only the engine's answers cross processes, so the scores equal
those of one process whenever the engine is deterministic.
"""

from __future__ import annotations

import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lamm.bench.cache import ResponseCache, sample_fingerprints, split_fresh
from lamm.bench.icl import Retriever, make_retriever
from lamm.bench.inferencers import is_refused, make_inferencer
from lamm.bench.recipe import Recipe, load_recipe, recipe_hash, resolve_recipe_instruction, scenario_meta
from lamm.bench.scenarios import (
    MissingDataError,
    RecordScenario,
    Sample,
    Scenario,
    ScenarioError,
    load_scenario,
    subset_indices,
)
from lamm.bench.scenarios.base import SCENARIOS
from lamm.fileio import append_jsonl, cut_torn_tail, write_json_atomic
from lamm.infer.engine import Engine, load_engine

#: metrics where a smaller value is better (everything else: larger is better)
LOWER_IS_BETTER = frozenset({"mae", "rmse", "mse", "lamm_mae"})


@dataclass
class RunOutcome:
    """What a run produced (rank 0); ``n_generated`` answers came from the model, ``n_cached`` from the cache;
    ``n_stale`` of the generated ones replaced a cached answer to a different sample content."""

    out_dir: Path
    results: dict[str, Any]
    n_generated: int
    n_cached: int
    timings: dict[str, float] = field(default_factory=dict)
    n_stale: int = 0


class _Dist:
    """The process group of a data-parallel run (a world of one when not under torchrun)."""

    def __init__(self) -> None:
        self.world, self.rank, self.group, self._created = 1, 0, None, False

    @classmethod
    def setup(cls) -> _Dist:
        d = cls()
        already = "torch.distributed" in sys.modules and sys.modules["torch.distributed"].is_initialized()
        if int(os.environ.get("WORLD_SIZE", "1")) <= 1 and not already:
            return d
        import torch.distributed as dist

        if not dist.is_initialized():
            dist.init_process_group(backend="gloo")
            d._created = True
        # object collectives over NCCL need CUDA tensors and a device per rank; gloo needs neither
        if dist.get_backend() != "gloo":
            d.group = dist.new_group(backend="gloo")
        d.world, d.rank = dist.get_world_size(), dist.get_rank()
        return d

    def broadcast(self, obj: Any) -> Any:
        if self.world == 1:
            return obj
        import torch.distributed as dist

        box = [obj]
        dist.broadcast_object_list(box, src=0, group=self.group)
        return box[0]

    def gather(self, obj: Any) -> list[Any] | None:
        if self.world == 1:
            return [obj]
        import torch.distributed as dist

        out: list[Any] | None = [None] * self.world if self.rank == 0 else None
        dist.gather_object(obj, out, dst=0, group=self.group)
        return out

    def close(self, ok: bool) -> None:
        """After a successful run wait for every rank; after a failure do not (the others may never come)."""
        if self.world > 1:
            import torch.distributed as dist

            if ok:
                dist.barrier(group=self.group)
            if self._created:
                dist.destroy_process_group()


def versions() -> dict[str, str | None]:
    """Installed versions of lamm, torch and transformers (read from metadata, nothing imported)."""
    from importlib import metadata

    out: dict[str, str | None] = {}
    for pkg in ("lamm", "torch", "transformers"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = None
    return out


def build_retriever(recipe: Recipe, scenario: Scenario, root: str | os.PathLike | None) -> Retriever | None:
    """The recipe's ICL retriever over its pool (another split or file, never the evaluated one)."""
    icl = recipe.instruction.icl
    if icl.retriever == "none" or icl.k == 0:
        return None
    if not icl.pool:
        raise ScenarioError(f"recipe {recipe.name!r}: instruction.icl.pool is not set; name a split (e.g. train) "
                            "or a LAMM-format file to draw in-context examples from (never the evaluated set)")
    spec = SCENARIOS.get(recipe.scenario.name)
    # examples are shown once each, in their own order: a circular pool would offer every rotation of one
    # example as another example
    cfg = recipe.scenario.model_copy(update={"circular": False})
    if icl.pool in spec.splits or (not spec.splits and "/" not in icl.pool and not icl.pool.endswith((".json", ".jsonl"))):
        pool = load_scenario(cfg, root, split=icl.pool)
    else:
        pool = load_scenario(cfg, root, file=icl.pool)
    if Path(pool.source).resolve() == Path(scenario.source).resolve():
        raise ScenarioError(f"recipe {recipe.name!r}: the ICL pool {pool.source} is the evaluated file itself; "
                            "draw examples from another split or file")
    examples = pool.samples()
    if examples and all(s.answer is None for s in examples):  # no larger pool can help: say so, and why
        raise ScenarioError(
            f"recipe {recipe.name!r}: scenario {recipe.scenario.name!r} (family {pool.metric!r}) has no gold "
            f"answer text for in-context examples (none of the {len(pool.records)} records of {pool.source} "
            "can be written as an answer, as for LSP keypoints and Locating-LSP / -FSC147), so ICL is not "
            "supported for it; set instruction.icl.retriever: none")
    return make_retriever(icl.retriever, examples, icl.k, seed=icl.seed, fixed_ids=icl.fixed_ids)


def _image_size(sample: Sample, scenario: Scenario, index: int) -> tuple[int, int]:
    """``(width, height)`` of a sample's image (its header only); an unreadable image is a ScenarioError
    naming the file, record, id and field, as ``lamm bench score`` reports it."""
    from PIL import Image, UnidentifiedImageError

    path = sample.media[0].path
    try:
        with Image.open(str(path)) as img:
            return img.size
    except (OSError, UnidentifiedImageError) as e:
        raise ScenarioError(f"{scenario.source}: record {index} (id {scenario.records[index].get('id')!r}): field "
                            f"'image': {path}: cannot read the image for its size ({e.strerror or e}); the "
                            "metric needs it — pass --root, the folder the image paths are under") from None


def image_sizes(scenario: Scenario, family: str, indices: list[int],
                samples: list[Sample]) -> dict[int, tuple[int, int]]:
    """``{record index: (width, height)}`` of every record whose metric needs its image size (LSP keypoints
    scale by it) and does not carry one; read before any answer is generated, so a missing image fails the
    run at its start, not after all the answers."""
    from lamm.bench.metrics import METRICS

    fam = METRICS.get(family)
    first_sample = {s.index: s for s in reversed(samples)}
    return {i: _image_size(first_sample[i], scenario, i) for i in indices
            if fam.needs_image_size(scenario.records[i]) and "image_size" not in scenario.records[i]}


def _progress(show: bool):
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                    console=Console(stderr=True), disable=not show, transient=False)


def _infer(recipe: Recipe, engine: Engine, retriever: Retriever | None, instruction: Any, todo: list[Sample],
           cache: ResponseCache, fp: str, rhash: str, fingerprints: dict[str, str], log_path: Path, rank: int,
           show: bool, label: str, total: int, done_before: int) -> dict[str, dict[str, Any]]:
    """Answer ``todo`` in batches, committing each batch (with each sample's fingerprint) to the cache
    before the next starts."""
    inf = recipe.inferencer
    inferencer = make_inferencer(inf.type, engine, instruction, max_new_tokens=inf.max_new_tokens,
                                 temperature=inf.temperature, seed=inf.seed, retriever=retriever,
                                 ppl_score=inf.ppl_score)
    new: dict[str, dict[str, Any]] = {}
    t0 = time.time()
    with _progress(show) as bar:
        task = bar.add_task(label, total=total, completed=done_before)
        for start in range(0, len(todo), inf.batch_size):
            batch = todo[start:start + inf.batch_size]
            # answer(): a prompt that does not fit the context is recorded as refused, the rest answered
            results = inferencer.answer(batch, progress=lambda n: bar.advance(task, n))
            if len(results) != len(batch):
                raise RuntimeError(f"inferencer {inf.type!r} returned {len(results)} results for {len(batch)} samples")
            payloads = {s.id: {**r.to_payload(), "fingerprint": fingerprints[s.id]}
                        for s, r in zip(batch, results)}
            cache.put_many(fp, rhash, payloads)
            new.update(payloads)
            bar.update(task, completed=done_before + len(new))
            refused = [s.id for s, r in zip(batch, results) if is_refused(r.extra)]
            if refused:
                first = next(r.extra for r in results if is_refused(r.extra))
                append_jsonl(log_path, {"event": "context_refused", "rank": rank, "n": len(refused),
                                        "ids": refused, "context_length": first.get("context_length")})
            append_jsonl(log_path, {"event": "batch", "rank": rank, "n": len(batch), "done": len(new),
                                    "todo": len(todo), "elapsed_s": round(time.time() - t0, 3)})
    return new


def refusals_to_retry(cached: dict[str, dict[str, Any]], context_length: int | None) -> set[str]:
    """Ids of cached refusals (``extra.error == "context_length_exceeded"``) made under another context
    than the engine's now (``context_length``; a backend option the model fingerprint may not cover):
    they are asked again rather than reused."""
    return {sid for sid, p in cached.items()
            if is_refused(p.get("extra")) and p["extra"].get("context_length") != context_length}


def json_safe(x: Any) -> Any:
    """NaN / inf → None (strict JSON), tuples → lists, numpy scalars → Python numbers."""
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {str(k): json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [json_safe(v) for v in x]
    if hasattr(x, "item") and callable(x.item):
        return json_safe(x.item())
    return x


def _record_answers(indices: list[int], samples: list[Sample], answers: dict[str, dict[str, Any]]
                    ) -> tuple[list[Any], list[dict[str, Any]]]:
    """Per record: the answer the metric scores (text, or ``{part: text}`` for multi-question records)
    and a row for ``answers.jsonl``."""
    by_record: dict[int, list[Sample]] = {}
    for s in samples:
        by_record.setdefault(s.index, []).append(s)
    scored, rows = [], []
    for i in indices:
        group = by_record.get(i, [])
        if len(group) == 1 and group[0].part is None:
            s = group[0]
            p = answers[s.id]
            scored.append(p["answer"])
            rows.append({"question": s.question, "prompt": p["prompt"], "answer": p["answer"], "extra": p["extra"]})
        else:
            scored.append({s.part: answers[s.id]["answer"] for s in group})
            rows.append({k: {s.part: (s.question if k == "question" else answers[s.id][k]) for s in group}
                         for k in ("question", "prompt", "answer", "extra")})
    return scored, rows


def count_ppl_ties(rows: list[dict[str, Any]]) -> int:
    """Questions of ``answers.jsonl`` rows whose ``ppl`` choice was a tie (``extra["tied"]``; answers
    cached before ties were recorded are judged from their ``option_scores``)."""
    from lamm.bench.inferencers.ppl import tied_options

    def tied(extra: Any) -> bool:
        if not isinstance(extra, dict):
            return False
        if extra.get("tied"):
            return True
        scores = extra.get("option_scores")
        return (isinstance(scores, list) and len(scores) > 1
                and all(isinstance(v, (int, float)) for v in scores) and bool(tied_options(scores)))

    n = 0
    for row in rows:
        extras = row["extra"].values() if isinstance(row.get("question"), dict) else [row.get("extra")]
        n += sum(tied(e) for e in extras)
    return n


def _n_records(scenario: Scenario, circular: bool) -> int:
    """Records of the scenario's file (a circular scenario holds one record per rotation)."""
    if circular:
        return len({r["circular_index"] for r in scenario.records})
    return len(scenario.records)


def _calibration_key(lines: list[dict[str, Any]], headline: str) -> str:
    """The per-sample score that says an answer was right, for calibration: the headline where every row
    has it, else ``accuracy`` (circular runs, POPE and MME, whose headline is not a per-question score)."""
    if all(headline in (ln.get("scores") or {}) for ln in lines):
        return headline
    return "accuracy"


def score_and_write(recipe: Recipe, scenario: Scenario, family: str, indices: list[int], samples: list[Sample],
                    answers: dict[str, dict[str, Any]], instruction: Any, rhash: str, engine: Engine, fp: str,
                    limit: int | None, out: Path, sizes: dict[int, tuple[int, int]]) -> dict[str, Any]:
    """Parse and score the answers with the metric family; write answers.jsonl, results.json, report.md.
    ``sizes``: :func:`image_sizes` of the records (read once, before inference)."""
    from lamm.bench.metrics import METRICS
    from lamm.bench.metrics.base import RecordError
    from lamm.bench.report import run_report_markdown
    from lamm.fileio import write_jsonl_atomic, write_text_atomic

    fam = METRICS.get(family)
    circular = recipe.scenario.circular
    if circular:  # every rotation scored by the family, then grouped by record (lamm.bench.metrics.circular)
        from lamm.bench.metrics.circular import CircularFamily

        fam = CircularFamily(fam)
    scored, rows = _record_answers(indices, samples, answers)
    records = []
    for i in indices:
        rec = dict(scenario.records[i])
        if i in sizes:
            rec["image_size"] = list(sizes[i])
        records.append(rec)
    try:
        report = fam.evaluate(scored, records, ci=recipe.metrics.ci, seed=recipe.metrics.seed)
    except RecordError as e:
        raise ScenarioError(f"{scenario.source}: record {indices[e.index]} (id {e.record_id!r}): field "
                            f"{e.field!r}: {e.problem}") from None
    rep = report.to_dict()
    base_keys = {"index", "id", "parsed", "unparsed", "circular"}
    ids = [scenario.record_id(i) if isinstance(scenario, RecordScenario) else str(scenario.records[i].get("id"))
           for i in indices]
    lines = []
    for k, (i, row) in enumerate(zip(indices, rows)):
        ps = report.per_sample[k] if k < len(report.per_sample) else {}
        media = [scenario.records[i].get(m) for m in ("image", "pcl") if scenario.records[i].get(m)]
        line = {"id": ids[k], "record_index": i, "media": media, **row,
                "parsed": ps.get("parsed"), "unparsed": ps.get("unparsed"),
                "scores": {m: v for m, v in ps.items() if m not in base_keys}}
        if "circular" in ps:  # which record and rotation this row is, and whether its record was all right
            line["record_index"] = scenario.records[i]["circular_index"]
            line["circular"] = ps["circular"]
        lines.append(line)
    write_jsonl_atomic(out / "answers.jsonl", json_safe(lines))
    headline = rep["headline"]
    # questions the engine refused for the context (empty answers, scored as wrong): counted, never hidden
    refused = [answers[s.id]["extra"] for s in samples if is_refused(answers[s.id].get("extra"))]
    results = {
        "recipe": recipe.name, "recipe_hash": rhash,
        "scenario": recipe.scenario.name, "split": recipe.scenario.split, "source": Path(scenario.source).name,
        "family": family, "model": engine.spec or type(engine).__name__, "model_fingerprint": fp,
        "inferencer": recipe.inferencer.type, "instruction": instruction.to_json(),
        "icl": recipe.instruction.icl.model_dump(mode="json"),
        "n_records": _n_records(scenario, circular), "limit": limit, "n": rep["n"],
        "n_questions": len(samples),
        "unparsed": rep["unparsed"], "context_refused": len(refused),
        **({"context_length": refused[0].get("context_length")} if refused else {}),
        "duplicate_ids": getattr(scenario, "duplicate_ids", 0),
        "headline": headline, "score": rep["metrics"].get(headline),
        "higher_is_better": headline not in LOWER_IS_BETTER,
        "metrics": rep["metrics"], "ci": rep["ci"], "unscaled": sorted(fam.unscaled),
        "lower_is_better": sorted(m for m in rep["metrics"] if m in LOWER_IS_BETTER),
        "chance": getattr(scenario, "chance", None), "info": rep["info"], "versions": versions(),
    }
    # calibration desideratum: a ppl run of single-question records gets its ECE and a reliability diagram
    from lamm.bench.desiderata.calibration import calibration_from_answers, reliability_svg

    # a refused question has no option probabilities: calibration is over the questions that were scored
    # by the model, and says how many were left out
    asked = [ln for ln in lines if not is_refused(ln.get("extra"))]
    calibration = calibration_from_answers(asked, _calibration_key(lines, headline), ci=recipe.metrics.ci,
                                           seed=recipe.metrics.seed)
    if calibration is not None:
        if len(asked) < len(lines):
            calibration["context_refused_excluded"] = len(lines) - len(asked)
        results["calibration"] = json_safe(calibration)
        write_text_atomic(out / "reliability.svg", reliability_svg(
            calibration["bins"], recipe.name or recipe.scenario.name, ece=calibration["ece"]))
    if recipe.inferencer.type == "ppl":  # exact ties went to the lowest option index: say how often
        results["ppl_ties"] = count_ppl_ties(lines)
    if circular:
        # ``chance`` is that of the headline (circular accuracy); this one is the rotation-0 accuracy's
        sizes = [scenario.records[i]["circular_n"] for i in indices
                 if scenario.records[i]["circular_rotation"] == 0]
        chance0 = 100.0 * sum(1.0 / k for k in sizes) / len(sizes) if sizes else None
        results["circular"] = {**rep["info"].get("circular", {}), "chance_accuracy": chance0}
    stats = getattr(scenario, "layout_stats", None)
    if stats:  # what a release-layout reader read and left out (MME images without questions, SEED videos)
        results["layout_stats"] = dict(stats)
    if recipe.scenario.corruption is not None:  # robustness: say which corruption, and what it could not change
        results["corruption"] = {**recipe.scenario.corruption.model_dump(mode="json"),
                                 "unchanged": len(getattr(scenario, "unchanged", ()))}
    write_json_atomic(out / "results.json", results)
    recipe.dump(out / "recipe.yaml")
    write_text_atomic(out / "report.md", run_report_markdown(results, lines[:5]))
    return results


def run_recipe(recipe: Recipe | str | os.PathLike, model: str | Engine, *, out_dir: str | os.PathLike,
               root: str | os.PathLike | None = None, limit: int | None = None,
               cache_path: str | os.PathLike | None = None, overrides: list[str] | None = None,
               show_progress: bool = True, engine_options: dict[str, Any] | None = None) -> RunOutcome | None:
    """Run ``recipe`` (a :class:`Recipe`, a name or a YAML path) on ``model`` (a spec or an :class:`Engine`).

    ``root``: the benchmark / data root; ``limit``: score a seeded subset of N records; ``cache_path``:
    the response cache (default ``out_dir/cache.sqlite``). Returns the outcome on rank 0, ``None`` on
    other ranks of a data-parallel run.
    """
    t_start = time.time()
    if not isinstance(recipe, Recipe):
        recipe = load_recipe(recipe, overrides)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    family, _, _ = scenario_meta(recipe)
    instruction = resolve_recipe_instruction(recipe)
    rhash = recipe_hash(recipe, instruction)
    scenario = load_scenario(recipe.scenario, root)
    if recipe.scenario.circular:  # --limit N: N records with all their rotations, as a plain run picks them
        from lamm.bench.circular import circular_subset

        indices = circular_subset(scenario.records, scenario.source, limit, recipe.seed)
    else:
        indices = subset_indices(scenario, limit, recipe.seed)
    samples = scenario.samples(indices)
    if len({s.id for s in samples}) != len(samples):
        raise ScenarioError(f"{scenario.source}: sample ids are not unique; the cache needs unique ids")
    sizes = image_sizes(scenario, family, indices, samples)
    retriever = build_retriever(recipe, scenario, root)
    engine = model if isinstance(model, Engine) else load_engine(model, media_root=None, **(engine_options or {}))
    fp = engine.fingerprint()
    # what each sample shows the model; a cached answer is reused only under the same fingerprint
    fingerprints = sample_fingerprints(samples, getattr(scenario, "root", None))
    dist = _Dist.setup()
    log_path = out / "log.jsonl"
    ok = False
    try:
        # rank 0 creates the cache file before any other rank opens it (no race on a new file)
        cache = ResponseCache(cache_path or out / "cache.sqlite") if dist.rank == 0 else None
        if dist.rank == 0:
            assert cache is not None
            cached, stale = split_fresh(cache.get_many(fp, rhash, [s.id for s in samples]), fingerprints)
            for sid in refusals_to_retry(cached, engine.context_length):
                del cached[sid]
            pending = [s.id for s in samples if s.id not in cached]
            # a kill may have cut the log's last line: cut it before this run's first line is glued to it
            # (before the broadcast below, so no other rank appends first)
            cut = cut_torn_tail(log_path)
            append_jsonl(log_path, {"event": "start", "recipe": recipe.name, "recipe_hash": rhash,
                                    "model": fp, "samples": len(samples), "cached": len(cached),
                                    "stale": len(stale), "world_size": dist.world,
                                    **({"log_cut_bytes": cut} if cut else {})})
        pending = dist.broadcast(pending if dist.rank == 0 else None)
        with cache or ResponseCache(cache_path or out / "cache.sqlite") as cache:
            mine_ids = pending[dist.rank::dist.world]
            by_id = {s.id: s for s in samples}
            own = split_fresh(cache.get_many(fp, rhash, mine_ids), fingerprints)[0] if dist.world > 1 else {}
            for sid in refusals_to_retry(own, engine.context_length):
                del own[sid]
            todo = [by_id[i] for i in mine_ids if i not in own]
            label = f"{recipe.name or recipe.scenario.name}" + (f" (rank {dist.rank})" if dist.world > 1 else "")
            total = len(samples) if dist.world == 1 else len(mine_ids)
            done_before = len(samples) - len(pending) if dist.world == 1 else len(own)
            t_inf = time.time()
            new = _infer(recipe, engine, retriever, instruction, todo, cache, fp, rhash, fingerprints,
                         log_path, dist.rank, show_progress and dist.rank == 0, label, total, done_before)
            t_inf = time.time() - t_inf
            gathered = dist.gather(({**own, **new}, len(new)))
            if dist.rank != 0:
                ok = True
                return None
            assert gathered is not None
            answers = dict(cached)
            for part, _ in gathered:
                answers.update(part)
            # answers from ranks on other hosts (other cache files) also land in rank 0's cache
            others = {k: v for part, _ in gathered[1:] for k, v in part.items()}
            cache.put_many(fp, rhash, others)
            n_new = sum(n for _, n in gathered)
        missing = [s.id for s in samples if s.id not in answers]
        if missing:
            raise RuntimeError(f"no answer for {len(missing)} samples (first: {missing[0]!r}); rerun to resume")
        results = score_and_write(recipe, scenario, family, indices, samples, answers, instruction, rhash,
                                  engine, fp, limit, out, sizes)
        timings = {"total_s": round(time.time() - t_start, 3), "inference_s": round(t_inf, 3)}
        write_json_atomic(out / "run_info.json", {
            "world_size": dist.world, "generated": n_new, "from_cache": len(samples) - n_new,
            # cached answers to other content under the same ids (rank 0's cache), asked again
            "stale_regenerated": len(stale),
            "engine_failures": engine.usage.failures, **timings,
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        })
        append_jsonl(log_path, {"event": "done", "generated": n_new, "stale_regenerated": len(stale),
                                **timings})
        ok = True
        return RunOutcome(out, results, n_new, len(samples) - n_new, timings, n_stale=len(stale))
    finally:
        dist.close(ok)


def run_suite(suite: str | os.PathLike, model: str | Engine, *, out_dir: str | os.PathLike,
              root: str | os.PathLike | None = None, limit: int | None = None, skip_missing: bool = False,
              show_progress: bool = True) -> dict[str, Any]:
    """Run every recipe of a suite into ``out_dir/<recipe>/`` with one engine, then write the leaderboard.

    A recipe whose data is missing under ``root`` fails the suite unless ``skip_missing``; skipped recipes
    are listed in ``out_dir/suite.json`` and in the return value. A recipe path listed in a suite file is
    relative to that file's folder (then the working directory): :func:`lamm.bench.recipe.suite_recipe`.
    """
    from lamm.bench.recipe import find_suite, load_suite, suite_recipe
    from lamm.bench.report import write_leaderboard

    suite_file = find_suite(suite)
    cfg = load_suite(suite_file)
    # every entry is found (and parsed) before the first run, so a typo does not surface hours in
    recipes = [load_recipe(suite_recipe(name, suite_file)) for name in cfg.recipes]
    engine = model if isinstance(model, Engine) else load_engine(model)
    out = Path(out_dir)
    done, skipped = [], []
    for recipe in recipes:
        try:
            outcome = run_recipe(recipe, engine, out_dir=out / recipe.name, root=root,
                                 limit=limit if limit is not None else cfg.limit, show_progress=show_progress)
        except MissingDataError as e:
            if not skip_missing:
                raise
            skipped.append({"recipe": recipe.name, "reason": str(e)})
            continue
        if outcome is not None:
            done.append({"recipe": recipe.name, "headline": outcome.results["headline"],
                         "score": outcome.results["score"]})
    summary = {"suite": cfg.name, "model": engine.spec or type(engine).__name__, "runs": done, "skipped": skipped}
    if done and (int(os.environ.get("RANK", "0")) == 0):
        summary["leaderboard"] = {k: str(v) for k, v in write_leaderboard([out], out).items()}
        write_json_atomic(out / "suite.json", summary)
    return summary
