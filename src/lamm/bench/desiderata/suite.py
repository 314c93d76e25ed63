"""``lamm bench desiderata``: run ChEF's six desiderata on one model and score each on a 0–100 radar axis.

A :class:`DesiderataConfig` (YAML in ``configs/bench/desiderata/``; the built-in default needs only the 2D
part of ``lamm data synth``, ``synthetic.yaml`` adds the 3D recipes) names the recipes and variants; each
run is a ``lamm bench run`` folder ``OUT/<desideratum>/<run>/``: ``calibration`` — each ``ppl`` recipe
(the runner writes its ECE and ``reliability.svg``); ``icl`` — each recipe zero-shot and with
``instruction.icl`` = every retriever × k; ``instruction_following`` — a multiple-choice recipe with
``scenario.verbalizer`` = each verbaliser; ``robustness`` — each recipe clean and with
``scenario.corruption`` = each corruption; ``hallucination`` — the POPE recipes; ``language`` — each recipe,
then the LLM judge grades its answers 0–10 (only with ``--judge``).

Every run shares one answer cache (``OUT/cache.sqlite``), so a variant that equals another run (the ICL
zero-shot run and the clean robustness run of ``synth_classification``) is asked once, and a rerun asks
nothing. Radar axes, each 0–100 (the raw figure is always kept unclipped in the JSON and the tables):

* **calibration** = 100 − mean ECE (percent) over the ``ppl`` runs;
* **icl** = mean over recipes of the RIAcc of the mean ICL accuracy (``desiderata.icl``), clipped to
  [0, 100] for drawing only (100 = examples neither help nor hurt; more would be off the chart);
* **instruction_following** = mean match rate over the verbalisers;
* **language** = mean judge score (0–10) × 10; "not run (no --judge)" without a judge;
* **robustness** = mean over recipes of the overall RRM (``desiderata.robustness``), clipped to [0, 100]
  for drawing only;
* **hallucination** = mean POPE *accuracy* over the three strategies (``hallucination.metric: f1`` to
  change). Accuracy, because on POPE's balanced questions F1 of the "yes" class rewards the yes-bias
  that *is* hallucination: always answering "yes" scores F1 66.7 but accuracy 50 (chance), the same as
  always answering "no". F1, precision, recall and the yes-ratio stay in the table.

A recipe-level figure that is undefined (RIAcc or RRM when the reference accuracy is not above chance)
is left out of the mean and listed with its reason; an axis with no value is drawn at 0 as "n/a" with
its reason. A recipe whose data is missing under ``--root`` stops the suite unless ``skip_missing``
(then it is listed under ``not_run``).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, PrivateAttr, field_validator, model_validator

from lamm.bench.desiderata.radar import AXES
from lamm.config import Config, ConfigError, load_config

DESIDERATA = AXES  # the run folders are named after the axes


class CalibrationSpec(Config):
    """``ppl`` recipes whose option probabilities are calibrated (ECE over 10 equal-count bins)."""

    recipes: list[str] = Field(default_factory=lambda: ["synth_classification_ppl", "synth_vqa_ppl"])


class ICLSpec(Config):
    """Recipes run zero-shot and with ``k`` examples (each of ``shots``) from each retriever, drawn from ``pool``."""

    recipes: list[str] = Field(default_factory=lambda: ["synth_classification", "synth_vqa"])
    retrievers: list[Literal["random", "fixed", "topk_text", "topk_image"]] = Field(
        default_factory=lambda: ["random", "fixed", "topk_text", "topk_image"])
    shots: list[int] = Field(default_factory=lambda: [1, 2, 3])
    pool: str = "train"
    seed: int = 0

    @field_validator("shots")
    @classmethod
    def _shots(cls, v: list[int]) -> list[int]:
        if any(k < 1 or k > 16 for k in v) or len(set(v)) != len(v):
            raise ValueError(f"shots must be distinct numbers of examples in 1..16 (zero-shot is always run), got {v}")
        return v


class InstructionFollowingSpec(Config):
    """A multiple-choice recipe asked under each verbaliser; choice consistency against ``consistency_against``."""

    recipe: str = "synth_vqa_verbalized"
    verbalizers: list[str] = Field(default_factory=lambda: ["letters", "numbers", "roman", "words", "symbols",
                                                            "shifted_letters"])
    consistency_against: str | None = "letters"

    @model_validator(mode="after")
    def _known(self) -> InstructionFollowingSpec:
        from lamm.bench.desiderata.instruction_following import VERBALIZERS

        bad = [v for v in self.verbalizers if v not in VERBALIZERS]
        if bad:
            raise ValueError(f"unknown verbaliser {bad[0]!r}; known: {', '.join(VERBALIZERS)}")
        if self.consistency_against is not None and self.consistency_against not in self.verbalizers:
            raise ValueError(f"consistency_against {self.consistency_against!r} must be one of the verbalizers "
                             f"{self.verbalizers} (or null)")
        return self


class RobustnessRecipe(Config):
    """One recipe, run clean and under each corruption (names from ``lamm.bench.desiderata.corruptions``)."""

    recipe: str
    corruptions: list[str]

    @field_validator("corruptions")
    @classmethod
    def _known(cls, v: list[str]) -> list[str]:
        from lamm.bench.desiderata.corruptions import CORRUPTIONS

        bad = [c for c in v if c not in CORRUPTIONS]
        if bad or not v:
            raise ValueError(f"unknown corruption {bad[0]!r}; known: {', '.join(CORRUPTIONS.names())}" if bad
                             else "list at least one corruption")
        return v


class RobustnessSpec(Config):
    """Clean + corrupted runs; every corruption at one ``severity`` (1–5) and ``seed``."""

    recipes: list[RobustnessRecipe] = Field(default_factory=lambda: [
        RobustnessRecipe(recipe="synth_classification", corruptions=["gaussian_noise", "gaussian_blur", "jpeg", "occlusion"]),
        RobustnessRecipe(recipe="synth_vqa", corruptions=["typos", "word_swap", "distractor"])])
    severity: int = Field(3, ge=1, le=5)
    seed: int = 0


class HallucinationSpec(Config):
    """POPE recipes; ``metric`` is the radar's (see the module docstring for why accuracy)."""

    recipes: list[str] = Field(default_factory=lambda: ["synth_pope_random", "synth_pope_popular",
                                                        "synth_pope_adversarial"])
    metric: Literal["accuracy", "f1"] = "accuracy"


class LanguageSpec(Config):
    """Recipes whose answers the judge grades 0–10 (only with a judge); judge prompt and limits."""

    recipes: list[str] = Field(default_factory=lambda: ["synth_vqa"])
    prompt: str = "single-v1"
    max_new_tokens: int = Field(512, ge=1)
    batch_size: int = Field(16, ge=1)
    #: judge a seeded subset of N answers of each run (``None``: all)
    limit: int | None = Field(None, ge=1)
    #: a share of failed judgements (0–1) above which ``lamm bench desiderata`` exits 1
    max_failed: float = Field(0.1, ge=0.0, le=1.0)


class DesiderataConfig(Config):
    """What ``lamm bench desiderata`` runs (see the module docstring); an empty list leaves an axis n/a."""

    name: str = "default"
    description: str = "the six ChEF desiderata on the 2D part of `lamm data synth` output"
    #: default ``--limit`` (seeded subset of N records per run; ``None``: all)
    limit: int | None = Field(None, ge=1)
    calibration: CalibrationSpec = Field(default_factory=CalibrationSpec)
    icl: ICLSpec = Field(default_factory=ICLSpec)
    instruction_following: InstructionFollowingSpec = Field(default_factory=InstructionFollowingSpec)
    robustness: RobustnessSpec = Field(default_factory=RobustnessSpec)
    hallucination: HallucinationSpec = Field(default_factory=HallucinationSpec)
    language: LanguageSpec = Field(default_factory=LanguageSpec)
    #: the YAML it was read from: recipe paths in it are looked up beside it (as in a suite file)
    _source: Path | None = PrivateAttr(default=None)


def desiderata_dirs() -> list[Path]:
    """Where config names are looked up: beside each recipe directory, ``../desiderata``."""
    from lamm.bench.recipe import recipe_dirs

    return [d.parent / "desiderata" for d in recipe_dirs() if (d.parent / "desiderata").is_dir()]


def load_desiderata_config(name_or_file: str | os.PathLike | None = None,
                           overrides: list[str] | None = None) -> DesiderataConfig:
    """The built-in default (``None``), a YAML file, or a name in :func:`desiderata_dirs` (e.g. ``synthetic``)."""
    if name_or_file is None:
        return load_config(DesiderataConfig, None, overrides)
    p = Path(name_or_file)
    if not (p.suffix in (".yaml", ".yml") or p.is_file()):  # a folder of that name is not a config
        found = [d / f"{p}.yaml" for d in desiderata_dirs() if (d / f"{p}.yaml").is_file()]
        if not found:
            known = sorted({f.stem for d in desiderata_dirs() for f in d.glob("*.yaml")})
            raise ConfigError(f"desiderata config {str(name_or_file)!r}: no such file or name (known: "
                              f"{', '.join(known) or 'none'}; or give a YAML path)")
        p = found[0]
    cfg = load_config(DesiderataConfig, p, overrides)
    if cfg.name == "default":
        cfg.name = p.stem
    cfg._source = p
    return cfg


# ------------------------------------------------------------------------------------------ the plan
@dataclass
class PlannedRun:
    """One run of the suite: ``OUT/<desideratum>/<name>/`` = ``recipe`` (resolved, with ``overrides``);
    ``key`` says which variant it is (retriever and k, verbaliser, corruption label)."""

    desideratum: str
    name: str
    recipe: Any  # lamm.bench.recipe.Recipe
    overrides: list[str]
    key: dict[str, Any] = field(default_factory=dict)

    @property
    def dir(self) -> str:
        return f"{self.desideratum}/{self.name}"


def _check_percent_headline(recipe: Any, where: str, what: str) -> None:
    from lamm.bench.metrics import METRICS
    from lamm.bench.recipe import scenario_meta
    from lamm.bench.runner import LOWER_IS_BETTER

    fam = METRICS.get(scenario_meta(recipe)[0])
    if fam.headline in LOWER_IS_BETTER or fam.headline in fam.unscaled:
        raise ConfigError(f"desiderata config field {where}: recipe {recipe.name!r} is scored by {fam.headline!r} "
                          f"(family {fam.name}); {what} needs an accuracy-like percentage with a chance level "
                          "(classification, multiple choice) — pick another recipe")


def plan_runs(cfg: DesiderataConfig) -> list[PlannedRun]:
    """Every run of the suite, in order, with their recipes resolved and checked (no data is read).

    Raises :class:`ConfigError` naming the config field: an unknown recipe, a calibration recipe that is
    not ``ppl``, a hallucination recipe that is not POPE, an ICL / robustness recipe without an accuracy.
    """
    from lamm.bench.desiderata.robustness import corruption_label
    from lamm.bench.recipe import CorruptionConfig, load_recipe, scenario_meta, suite_recipe

    plan: list[PlannedRun] = []

    def base(recipe: str) -> str:  # a folder name: a recipe given as a YAML path is named by its file
        stem = Path(recipe).stem if recipe.endswith((".yaml", ".yml")) else recipe
        return re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("_") or "recipe"

    def add(des: str, name: str, recipe: str, overrides: list[str], where: str, **key: Any) -> Any:
        try:  # a recipe path in a config file is relative to that file (then the working directory)
            rec = load_recipe(suite_recipe(recipe, cfg._source) if cfg._source else recipe, overrides)
        except ConfigError as e:
            raise ConfigError(f"desiderata config field {where}: {e}") from None
        if any(p.desideratum == des and p.name == name for p in plan):
            raise ConfigError(f"desiderata config field {where}: run {des}/{name} is listed twice")
        plan.append(PlannedRun(des, name, rec, overrides, {"recipe": recipe, **key}))
        return rec

    for i, r in enumerate(cfg.calibration.recipes):
        rec = add("calibration", base(r), r, [], f"calibration.recipes[{i}]")
        if rec.inferencer.type != "ppl":
            raise ConfigError(f"desiderata config field calibration.recipes[{i}]: recipe {r!r} uses inferencer "
                              f"{rec.inferencer.type!r}; calibration needs option probabilities: a ppl recipe "
                              "(e.g. synth_classification_ppl) or add inferencer.type=ppl")
    icl = cfg.icl
    for i, r in enumerate(icl.recipes):
        where = f"icl.recipes[{i}]"
        _check_percent_headline(add("icl", f"{base(r)}-0shot", r, ["instruction.icl.retriever=none", "instruction.icl.k=0"],
                                    where, retriever=None, k=0), where, "in-context learning")
        for ret in icl.retrievers:
            for k in icl.shots:
                add("icl", f"{base(r)}-{ret}-{k}shot", r, [f"instruction.icl.retriever={ret}", f"instruction.icl.k={k}",
                                                     f"instruction.icl.pool={icl.pool}", f"instruction.icl.seed={icl.seed}"],
                    where, retriever=ret, k=k)
    ins = cfg.instruction_following
    for v in ins.verbalizers:
        add("instruction_following", f"{base(ins.recipe)}-{v}", ins.recipe, [f"scenario.verbalizer={v}"],
            "instruction_following.recipe", verbalizer=v)
    rob = cfg.robustness
    for i, rr in enumerate(rob.recipes):
        where = f"robustness.recipes[{i}]"
        clean = add("robustness", f"{base(rr.recipe)}-clean", rr.recipe, [], where, corruption=None)
        _check_percent_headline(clean, where, "robustness (RRM)")
        if clean.scenario.corruption is not None:
            raise ConfigError(f"desiderata config field {where}: recipe {rr.recipe!r} already corrupts its input "
                              f"({clean.scenario.corruption.name}); name the clean recipe (the corruptions are added)")
        for c in rr.corruptions:
            label = corruption_label(CorruptionConfig(name=c, severity=rob.severity, seed=rob.seed))
            add("robustness", f"{base(rr.recipe)}-{c}-s{rob.severity}", rr.recipe,
                [f"scenario.corruption.name={c}", f"scenario.corruption.severity={rob.severity}",
                 f"scenario.corruption.seed={rob.seed}"], where, corruption=label)
    for i, r in enumerate(cfg.hallucination.recipes):
        rec = add("hallucination", base(r), r, [], f"hallucination.recipes[{i}]")
        if scenario_meta(rec)[0] != "pope":
            raise ConfigError(f"desiderata config field hallucination.recipes[{i}]: recipe {r!r} is not scored by "
                              "the pope family; use synth_pope_random / _popular / _adversarial or a POPE recipe")
    for i, r in enumerate(cfg.language.recipes):
        add("language", base(r), r, [], f"language.recipes[{i}]")
    return plan


def missing_data(plan: list[PlannedRun], root: str | os.PathLike) -> dict[str, str]:
    """Run folder → why its data is not under ``root``, for every planned run whose scenario cannot load.

    Each distinct scenario section is loaded once (records only; corruptions are lazy), so a missing file
    is found before the model is loaded or asked anything. Any other :class:`ScenarioError` (a
    corruption of the wrong modality, a verbaliser on a scenario without options) is raised at once.
    """
    import json

    from lamm.bench.scenarios import MissingDataError, load_scenario

    seen: dict[str, str | None] = {}
    out = {}
    for p in plan:
        key = json.dumps(p.recipe.scenario.model_dump(mode="json"), sort_keys=True)
        if key not in seen:
            try:
                load_scenario(p.recipe.scenario, root)
                seen[key] = None
            except MissingDataError as e:
                seen[key] = str(e)
        if seen[key] is not None:
            out[p.dir] = seen[key]
    return out


# ----------------------------------------------------------------------------------------- running
@dataclass
class DesiderataOutcome:
    """What :func:`run_desiderata` produced: ``summary`` (= ``desiderata.json``), the files written, and
    how many answers were generated / taken from the cache (over all runs; judge calls not included)."""

    out_dir: Path
    summary: dict[str, Any]
    paths: dict[str, Path]
    n_generated: int = 0
    n_cached: int = 0
    judge_asked: int = 0
    judge_cached: int = 0


def run_desiderata(cfg: DesiderataConfig, model: Any, root: str | os.PathLike, out: str | os.PathLike,
                   limit: int | None = None, judge: str | None = None, *, judge_options: dict[str, Any] | None = None,
                   skip_missing: bool = False, show_progress: bool = True) -> DesiderataOutcome:
    """Run every desideratum of ``cfg`` on ``model`` (a spec or an ``Engine``, loaded once), score the six
    axes and write ``desiderata.json``, ``desiderata.md``, ``radar.svg`` and ``desiderata.html`` into ``out``.

    ``limit``: a seeded subset of N records per run (default ``cfg.limit``); ``judge``: a judge engine spec
    for language performance (without it that axis is "not run"); ``judge_options``: its engine options;
    ``skip_missing``: list a run whose data is not under ``root`` as not run instead of failing.
    """
    from lamm.bench.desiderata.instruction_following import consistency_between_runs
    from lamm.bench.desiderata.radar import write_desiderata_outputs
    from lamm.bench.desiderata.scores import MAPPINGS, run_record, score_axes
    from lamm.bench.runner import run_recipe, versions
    from lamm.bench.scenarios import MissingDataError
    from lamm.fileio import write_json_atomic
    from lamm.infer.engine import Engine, load_engine

    plan = plan_runs(cfg)  # a config, judge or data error fails before the model is loaded or asked anything
    if judge is not None:
        from lamm.bench.judge_prompts import get_prompt
        from lamm.infer.engine import parse_spec

        parse_spec(judge)
        get_prompt(cfg.language.prompt, "single")
    missing = missing_data(plan, root)
    if missing and not skip_missing:
        lines = "\n  ".join(f"{d}: {why}" for d, why in missing.items())
        raise MissingDataError(f"{len(missing)} of {len(plan)} runs have no data under --root {root}:\n  {lines}\n"
                               "make it (e.g. `lamm data synth`), drop those recipes from the config, or pass "
                               "--skip-missing to list them as not run")
    limit = limit if limit is not None else cfg.limit
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    cache = out_dir / "cache.sqlite"
    engine = model if isinstance(model, Engine) else load_engine(model)
    res = DesiderataOutcome(out_dir, {}, {})
    runs: dict[str, list[dict[str, Any]]] = {d: [] for d in DESIDERATA}
    not_run: list[dict[str, Any]] = []

    def skip(p: PlannedRun, reason: str) -> None:  # listed in the run records and under not_run
        runs[p.desideratum].append({"name": p.name, "dir": p.dir, "recipe": p.key["recipe"], "status": "not run",
                                    "reason": reason})
        not_run.append({"desideratum": p.desideratum, "run": p.name, "reason": reason})

    try:
        for p in plan:
            if p.dir in missing:
                skip(p, f"data missing: {missing[p.dir]}")
                continue
            try:
                o = run_recipe(p.recipe, engine, out_dir=out_dir / p.dir, root=root, limit=limit, cache_path=cache,
                               show_progress=show_progress)
            except MissingDataError as e:  # e.g. the ICL pool split: found only when the run builds it
                if not skip_missing:
                    raise MissingDataError(f"{p.dir}: {e} (or pass --skip-missing to list it as not run)") from None
                skip(p, f"data missing: {e}")
                continue
            assert o is not None, "run_desiderata runs in one process (no torchrun)"
            res.n_generated, res.n_cached = res.n_generated + o.n_generated, res.n_cached + o.n_cached
            runs[p.desideratum].append(run_record(p.name, p.dir, p.key, p.overrides, o.results))
        fp, spec = engine.fingerprint(), engine.spec or type(engine).__name__
    finally:
        if not isinstance(model, Engine):
            engine.close()

    consistency = {}
    ins = cfg.instruction_following
    ref = next((r for r in runs["instruction_following"]
                if r["status"] == "ok" and r.get("verbalizer") == ins.consistency_against), None)
    for r in runs["instruction_following"]:
        if ref is not None and r is not ref and r["status"] == "ok":
            consistency[r["verbalizer"]] = consistency_between_runs(out_dir / ref["dir"], out_dir / r["dir"])
    judged = _judge(runs["language"], judge, judge_options, cfg.language, root, out_dir, res)
    summary = {"model": spec, "model_fingerprint": fp, "config": cfg.model_dump(mode="json"), "root": str(root),
               "limit": limit, "judge": judge,
               "axes": score_axes(runs, consistency=consistency, judged=judged, cfg=cfg, mappings=MAPPINGS),
               "runs": runs, "not_run": not_run, "versions": versions()}
    summary["radar"] = {a: summary["axes"][a]["value"] for a in DESIDERATA}
    summary["not_run"] += [{"desideratum": a, "run": None, "reason": ax["reason"]}
                           for a, ax in summary["axes"].items() if ax["value"] is None]
    from lamm.bench.runner import json_safe

    res.summary = json_safe(summary)
    write_json_atomic(out_dir / "desiderata.json", res.summary)
    res.paths = {"json": out_dir / "desiderata.json", **write_desiderata_outputs(res.summary, out_dir)}
    return res


def _judge(runs: list[dict[str, Any]], spec: str | None, options: dict[str, Any] | None, lang: LanguageSpec,
           root: Any, out_dir: Path, res: DesiderataOutcome) -> dict[str, Any] | None:
    """Grade each finished language run with the judge (``judge.json`` in its directory); ``None`` without one."""
    if spec is None:
        return None
    from lamm.bench.cache import ResponseCache
    from lamm.bench.judge import Judge
    from lamm.bench.judge_runs import judge_run

    judged: dict[str, Any] = {}
    todo = [r for r in runs if r["status"] == "ok"]
    if not todo:
        return judged
    with ResponseCache(out_dir / "cache.sqlite") as cache:
        j = Judge(spec, cache=cache, max_new_tokens=lang.max_new_tokens, batch_size=lang.batch_size,
                  engine_options=options)
        try:
            for r in todo:
                judged[r["name"]] = judge_run(out_dir / r["dir"], j, root=root, limit=lang.limit, prompt_id=lang.prompt,
                                              out_dir=out_dir / r["dir"])
        finally:
            j.engine.close()
        res.judge_asked, res.judge_cached = j.n_asked, j.n_cached
    return judged
