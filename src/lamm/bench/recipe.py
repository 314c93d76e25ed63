"""Recipes: one YAML file = scenario × instruction × inferencer × metrics (ChEF's composition).

Example (``configs/bench/recipes/scienceqa_ppl.yaml``)::

    name: scienceqa_ppl
    scenario: {name: ScienceQA}
    instruction: {prompt: default, answer_template: letter_option}
    inferencer: {type: ppl, batch_size: 8}

:func:`load_recipe` accepts a YAML path or a name, looked up in the recipe directories
(:func:`recipe_dirs`); a bare scenario name with no YAML of its own gets :func:`default_recipe`.

:func:`recipe_hash` identifies *what the model is asked*: the resolved recipe minus the fields that
cannot change an answer (name, description, batch size, metric settings) plus every prompt text the
inferencer will use (prompt, answer template, system message, CoT and multi-turn texts). Cached
answers are keyed by it, so editing a prompt in ``lamm.bench.instructions`` re-runs the model while
re-scoring with another metric setting does not.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from lamm.bench.instructions import ResolvedInstruction, resolve_instruction
from lamm.config import Config, ConfigError, load_config
from lamm.conversation import system_message

#: bump when the way requests are built changes without any prompt text changing
HASH_VERSION = 1


class CorruptionConfig(Config):
    """Robustness desideratum: corrupt every sample before it is asked (``lamm.bench.desiderata.robustness``).

    ``name``: a corruption of the sample's modality (image, point cloud) or of its question text;
    ``severity``: 1 (mild) to 5 (strong); ``seed``: with the sample id, seeds every random choice."""

    name: str
    severity: int = Field(3, ge=1, le=5)
    seed: int = 0


class ScenarioConfig(Config):
    """Which data: a scenario name (``lamm bench recipes`` lists them), the split, and for the
    ``generic`` scenario the file and metric family. ``root`` overrides the ``--root`` directory.

    ``params``: options of the scenario's loader (e.g. POPE's negative sampling); ``corruption``: ask
    corrupted copies of the samples (robustness); ``verbalizer``: relabel the options of a
    multiple-choice scenario (instruction following; scored by the ``instruction_following`` family);
    ``circular``: MMBench's circular evaluation of a multiple-choice scenario — every question asked once
    per rotation of its options, headline ``circular_accuracy`` (``lamm.bench.circular``).
    """

    name: str
    split: str = "test"
    file: str | None = None
    metric: str | None = None
    task_type: str | None = None
    root: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    corruption: CorruptionConfig | None = None
    verbalizer: str | None = None
    circular: bool = False


class ICLConfig(Config):
    """In-context examples: ``k`` examples from ``pool`` (a split name such as ``train``, or a LAMM-format
    file relative to the root) chosen by ``retriever``; ``fixed_ids`` for the ``fixed`` retriever."""

    retriever: Literal["none", "random", "fixed", "topk_text", "topk_image"] = "none"
    k: int = Field(0, ge=0, le=16)
    pool: str | None = None
    fixed_ids: list[str] = Field(default_factory=list)
    seed: int = 0


class InstructionConfig(Config):
    """A prompt id (``lamm.bench.instructions``) or text with ``{question}``; an answer template id or
    text with ``{option}``/``{letter}`` (for ``ppl``); a system message overriding the task's own."""

    prompt: str = "default"
    answer_template: str = "default"
    system: str | None = None
    icl: ICLConfig = Field(default_factory=ICLConfig)


class InferencerConfig(Config):
    """How answers are produced. ``max_new_tokens`` defaults large enough for a dozen boxes or a caption."""

    type: Literal["direct", "ppl", "cot", "multiturn"] = "direct"
    batch_size: int = Field(8, ge=1)
    max_new_tokens: int = Field(512, ge=1)
    temperature: float = Field(0.0, ge=0.0)
    #: with temperature > 0: every sample samples with a seed from this and its id (reproducible runs)
    seed: int = 0
    #: ppl: rank options by the mean (LAMM/ChEF) or the sum of the log-probabilities of the option's own
    #: tokens (the filled answer template after its constant head, e.g. "A) cat" after "The answer is (");
    #: ``mean_reply``: the mean over the whole filled template (this project's rule before 2026-11-26)
    ppl_score: Literal["mean", "sum", "mean_reply"] = "mean"


class MetricsConfig(Config):
    """Scoring: the family (default: the scenario's), bootstrap intervals and their seed."""

    family: str | None = None
    ci: bool = True
    seed: int = 0


class Recipe(Config):
    """A benchmark recipe (see the module docstring)."""

    name: str = ""
    description: str = ""
    scenario: ScenarioConfig
    instruction: InstructionConfig = Field(default_factory=InstructionConfig)
    inferencer: InferencerConfig = Field(default_factory=InferencerConfig)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    #: seed of the ``--limit`` subset
    seed: int = 0


def scenario_meta(recipe: Recipe) -> tuple[str, str, str | None]:
    """(metric family, task type, modality) of the recipe's scenario, without reading any data."""
    from lamm.bench.scenarios import get_scenario_spec

    spec = get_scenario_spec(recipe.scenario.name)
    family = recipe.metrics.family or recipe.scenario.metric or spec.metric
    if recipe.scenario.verbalizer and not recipe.metrics.family:
        family = "instruction_following"
    if family is None:
        raise ConfigError(f"recipe {recipe.name!r}: scenario {spec.name!r} needs scenario.metric "
                          "(a metric family, e.g. classification)")
    task_type = recipe.scenario.task_type or spec.task_type or "normal"
    if recipe.scenario.circular:
        check_circular(recipe, spec.name, family)
    return family, task_type, spec.modality


def check_circular(recipe: Recipe, scenario: str, family: str) -> None:
    """Refuse ``scenario.circular`` where it cannot apply, before any data or model is loaded."""
    if recipe.scenario.verbalizer:
        raise ConfigError(f"recipe {recipe.name!r}: scenario.circular and scenario.verbalizer cannot be "
                          "combined (a verbalised run is scored by match rate, not by circular accuracy); "
                          "drop one")
    if family != "multiple_choice":
        raise ConfigError(f"recipe {recipe.name!r}: scenario.circular: scenario {scenario!r} is scored by "
                          f"the {family!r} family; circular evaluation rotates the options of "
                          "multiple-choice questions (family multiple_choice: ScienceQA, AI2D, ScanQA, Synth-VQA, or generic "
                          "with metric: multiple_choice). Remove scenario.circular")


def resolve_recipe_instruction(recipe: Recipe) -> ResolvedInstruction:
    """The instruction texts this recipe puts in front of the model; errors name the recipe and field."""
    family, _, _ = scenario_meta(recipe)
    ins = recipe.instruction
    try:
        return resolve_instruction(family, ins.prompt, ins.answer_template, ins.system)
    except ValueError as e:
        raise ConfigError(f"recipe {recipe.name!r}: instruction: {e}") from None


def recipe_hash(recipe: Recipe, resolved: ResolvedInstruction | None = None) -> str:
    """A 16-hex-digit hash of everything that can change an answer (see the module docstring)."""
    resolved = resolved or resolve_recipe_instruction(recipe)
    _, task_type, _ = scenario_meta(recipe)
    payload = recipe.model_dump(mode="json", exclude={"name", "description", "metrics", "seed"})
    payload["inferencer"].pop("batch_size", None)
    payload["scenario"].pop("root", None)
    # circular evaluation asks more samples but each one as a plain run would (rotation 0 is the original
    # sample under its own id, the others have ids of their own): keeping it out of the hash lets a circular
    # run reuse a plain run's answers, and vice versa
    payload["scenario"].pop("circular", None)
    payload["texts"] = resolved.to_json()
    payload["texts"]["system_effective"] = resolved.system if resolved.system is not None else system_message(task_type)
    if recipe.scenario.verbalizer:  # the relabelled options and their instruction are prompt text too
        from lamm.bench.desiderata.instruction_following import verbalizer_texts

        payload["texts"]["verbalizer"] = verbalizer_texts(recipe.scenario.verbalizer)
    payload["hash_version"] = HASH_VERSION
    if recipe.inferencer.type == "ppl":  # which tokens are scored changed; answers cached before are stale
        payload["ppl_scored_tokens"] = "after_answer_head"
    blob = json.dumps(payload, sort_keys=True, ensure_ascii=False).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()[:16]


def recipe_dirs() -> list[Path]:
    """Where recipe names are looked up, in order: ``$LAMM_RECIPES`` (``os.pathsep``-separated),
    ``./configs/bench/recipes``, and the source checkout's ``configs/bench/recipes``."""
    dirs = [Path(p) for p in os.environ.get("LAMM_RECIPES", "").split(os.pathsep) if p]
    dirs.append(Path.cwd() / "configs" / "bench" / "recipes")
    dirs.append(Path(__file__).resolve().parents[3] / "configs" / "bench" / "recipes")
    out: list[Path] = []
    for d in dirs:
        if d.is_dir() and d.resolve() not in [o.resolve() for o in out]:
            out.append(d)
    return out


def list_recipes() -> dict[str, Path]:
    """Recipe name (file stem) → path, first directory wins."""
    found: dict[str, Path] = {}
    for d in recipe_dirs():
        for p in sorted(d.glob("*.yaml")):
            found.setdefault(p.stem, p)
    return found


def default_recipe(scenario: str) -> Recipe:
    """The plain recipe of a scenario: its own query, direct generation, its metric family."""
    return Recipe(name=scenario, scenario=ScenarioConfig(name=scenario))


def load_recipe(name_or_file: str | os.PathLike, overrides: list[str] | None = None) -> Recipe:
    """A recipe from a YAML path, a recipe name, or a scenario name (its :func:`default_recipe`).

    A ``.yaml`` / ``.yml`` argument or an existing *file* is read as a path; anything else is a name (a
    folder in the working directory that happens to share a recipe's name does not shadow it)."""
    p = Path(name_or_file)
    if p.suffix in (".yaml", ".yml") and p.is_dir():
        raise ConfigError(f"recipe {str(name_or_file)!r}: {p} is a directory; name a recipe YAML file")
    if p.suffix in (".yaml", ".yml") or p.is_file():
        path: Path | None = p
    else:
        path = list_recipes().get(str(name_or_file))
    if path is None:
        from lamm.bench.scenarios import SCENARIOS, load_all

        load_all()
        if str(name_or_file) in SCENARIOS:
            data = default_recipe(str(name_or_file)).model_dump(mode="json")
            from lamm.config import apply_overrides, config_from_dict

            return config_from_dict(Recipe, apply_overrides(data, overrides or []), f"<default recipe {name_or_file}>")
        known = sorted(list_recipes())
        import difflib

        close = difflib.get_close_matches(str(name_or_file), known + SCENARIOS.names(), n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise ConfigError(f"recipe {str(name_or_file)!r}: no such file, recipe or scenario{hint} "
                          f"(recipes in: {', '.join(str(d) for d in recipe_dirs()) or 'none found'})")
    recipe = load_config(Recipe, path, overrides)
    if not recipe.name:
        recipe.name = path.stem
    return recipe


def recipe_summary(recipe: Recipe) -> dict[str, Any]:
    """A one-line description of a recipe for listings."""
    ins = recipe.instruction
    icl = f"{ins.icl.retriever}x{ins.icl.k}" if ins.icl.retriever != "none" else "-"
    return {"name": recipe.name, "scenario": recipe.scenario.name, "split": recipe.scenario.split,
            "inferencer": recipe.inferencer.type, "prompt": ins.prompt, "icl": icl,
            "circular": "yes" if recipe.scenario.circular else "-"}


class SuiteConfig(Config):
    """A named list of recipes run one after another on one model (``lamm bench suite NAME``).

    Each entry of ``recipes`` is a recipe name, a scenario name, or a recipe YAML path; a path (an entry
    ending in ``.yaml`` / ``.yml`` or containing ``/``) is relative to the suite file's folder, else (for
    compatibility) to the working directory (:func:`suite_recipe`)."""

    name: str = ""
    description: str = ""
    recipes: list[str]
    #: default ``--limit`` for every recipe of the suite (``None``: all records)
    limit: int | None = None


def suite_dirs() -> list[Path]:
    """Where suite names are looked up: beside each recipe directory, ``../suites``."""
    return [d.parent / "suites" for d in recipe_dirs() if (d.parent / "suites").is_dir()]


def find_suite(name_or_file: str | os.PathLike) -> Path:
    """The YAML file of a suite given as a path or a name (``lamm2d``, ``lamm3d``, ``synthetic``)."""
    p = Path(name_or_file)
    if p.suffix in (".yaml", ".yml") and p.is_dir():
        raise ConfigError(f"suite {str(name_or_file)!r}: {p} is a directory; name a suite YAML file")
    if p.suffix in (".yaml", ".yml") or p.is_file():
        return p
    found = [d / f"{name_or_file}.yaml" for d in suite_dirs() if (d / f"{name_or_file}.yaml").is_file()]
    if not found:
        known = sorted({f.stem for d in suite_dirs() for f in d.glob("*.yaml")})
        raise ConfigError(f"suite {str(name_or_file)!r}: no such file or suite "
                          f"(known: {', '.join(known) or 'none'})")
    return found[0]


def load_suite(name_or_file: str | os.PathLike) -> SuiteConfig:
    """A suite from a YAML path or a name (``lamm2d``, ``lamm3d``, ``synthetic``)."""
    p = find_suite(name_or_file)
    suite = load_config(SuiteConfig, p)
    if not suite.name:
        suite.name = p.stem
    return suite


def suite_recipe(entry: str, suite_file: str | os.PathLike) -> str | Path:
    """What a suite entry names, for :func:`load_recipe`: an entry that is a path (ends in ``.yaml`` /
    ``.yml`` or contains ``/``) is looked up beside the suite file first, then in the working directory;
    a name is returned as it is. A path found in neither place is an error listing both."""
    p = Path(entry)
    if not (p.suffix in (".yaml", ".yml") or "/" in entry or os.sep in entry):
        return entry
    if p.is_absolute():
        return p
    beside = Path(suite_file).parent / p
    if beside.is_file():
        return beside
    if p.is_file():
        return p
    raise ConfigError(f"suite {str(suite_file)!r}: recipe {entry!r} not found; looked beside the suite "
                      f"({beside}) and in the working directory ({Path.cwd() / p})")
