"""Recipes: every YAML under configs/bench validates and resolves; the hash covers the prompt texts."""

from __future__ import annotations

from pathlib import Path

import pytest

from lamm.bench import instructions
from lamm.bench.recipe import (
    Recipe,
    SuiteConfig,
    default_recipe,
    list_recipes,
    load_recipe,
    load_suite,
    recipe_hash,
    resolve_recipe_instruction,
    scenario_meta,
)
from lamm.bench.scenarios import SCENARIOS, load_all
from lamm.bench.scenarios.catalog import CATALOG
from lamm.bench.scenarios.synthetic import SYNTHETIC
from lamm.config import ConfigError, load_config

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "bench"
RECIPE_FILES = sorted((CONFIGS / "recipes").glob("*.yaml"))
SUITE_FILES = sorted((CONFIGS / "suites").glob("*.yaml"))


@pytest.mark.parametrize("path", RECIPE_FILES, ids=lambda p: p.stem)
def test_recipe_yaml_validates_and_resolves(path):
    recipe = load_config(Recipe, path)  # unknown keys are errors
    assert recipe.name == path.stem, "a recipe's name is its file name"
    load_all()
    assert recipe.scenario.name in SCENARIOS
    family, task_type, _ = scenario_meta(recipe)
    assert task_type
    ins = resolve_recipe_instruction(recipe)
    assert ins.family == family
    assert len(recipe_hash(recipe)) == 16
    if recipe.inferencer.type == "multiturn":
        assert ins.multiturn is not None
    if recipe.inferencer.type == "ppl":
        assert "{option}" in ins.answer_template or "{letter}" in ins.answer_template


def test_one_recipe_per_scenario():
    used = {load_config(Recipe, p).scenario.name for p in RECIPE_FILES}
    missing = (set(CATALOG) | set(SYNTHETIC)) - used
    assert not missing, f"scenarios without a recipe: {sorted(missing)}"


@pytest.mark.parametrize("path", SUITE_FILES, ids=lambda p: p.stem)
def test_suite_yaml_validates(path):
    suite = load_config(SuiteConfig, path)
    assert suite.name == path.stem
    names = set(list_recipes())
    assert suite.recipes and set(suite.recipes) <= names
    assert load_suite(path.stem).recipes == suite.recipes


def test_suites_cover_their_scenarios():
    def scenarios(suite):
        return {load_recipe(r).scenario.name for r in load_suite(suite).recipes}

    assert scenarios("lamm2d") == {n for n, i in CATALOG.items() if i.modality == "image"}
    assert scenarios("lamm3d") == {n for n, i in CATALOG.items() if i.modality == "pcl"}
    assert scenarios("synthetic") == set(SYNTHETIC)


def test_hash_changes_with_prompt_text(monkeypatch):
    recipe = load_recipe("fsc147", ["instruction.prompt=number"])
    before = recipe_hash(recipe)
    monkeypatch.setitem(instructions.PROMPTS["counting"], "number", "{question} Reply with digits only.")
    assert recipe_hash(recipe) != before
    monkeypatch.undo()
    assert recipe_hash(recipe) == before
    # literal prompt text (quoted: YAML reads a bare {...} as a mapping), system message and CoT texts too
    custom = load_recipe("fsc147", ["instruction.prompt='{question} How many?'"])
    assert recipe_hash(custom) != recipe_hash(load_recipe("fsc147", ["instruction.prompt='{question} How many!'"]))
    assert recipe_hash(load_recipe("fsc147", ["instruction.system=Be brief."])) != recipe_hash(load_recipe("fsc147"))
    cot = load_recipe("scienceqa_cot")
    h = recipe_hash(cot)
    monkeypatch.setattr(instructions, "COT_TRIGGER", "Think carefully.")
    assert recipe_hash(cot) != h


def test_hash_ignores_what_cannot_change_an_answer():
    base = load_recipe("cifar10")
    h = recipe_hash(base)
    for o in ("inferencer.batch_size=3", "name=other", "description=x", "metrics.ci=false", "seed=5",
              "scenario.root=/elsewhere"):
        assert recipe_hash(load_recipe("cifar10", [o])) == h, o
    for o in ("inferencer.max_new_tokens=7", "inferencer.type=ppl", "scenario.name=UCMerced",
              "instruction.icl.retriever=random"):
        assert recipe_hash(load_recipe("cifar10", [o])) != h, o


def test_load_recipe_by_name_file_or_scenario(tmp_path):
    assert load_recipe("cifar10").scenario.name == "CIFAR10"
    assert load_recipe(RECIPE_FILES[0]).name == RECIPE_FILES[0].stem
    r = load_recipe("Synth-Counting")  # a scenario without its own YAML: the default recipe
    assert r == default_recipe("Synth-Counting")
    with pytest.raises(ConfigError, match="did you mean"):
        load_recipe("cifar1O")
    bad = tmp_path / "bad.yaml"
    bad.write_text("scenario: {name: CIFAR10}\ninferencer: {type: direct, batchsize: 4}\n")
    with pytest.raises(ConfigError, match=r"(?s)bad\.yaml.*inferencer\.batchsize: unknown key"):
        load_recipe(bad)
    bad.write_text("scenario: {name: CIFAR10}\ninstruction: {prompt: concis}\n")
    with pytest.raises(ConfigError, match="did you mean 'concise'"):
        resolve_recipe_instruction(load_recipe(bad))
    bad.write_text("scenario: {name: generic, file: x.json}\n")
    with pytest.raises(ConfigError, match="scenario.metric"):
        scenario_meta(load_recipe(bad))


def test_instruction_formatting():
    ins = instructions.resolve_instruction("classification", "choose")
    assert ins.format_question("What is it?", ["cat", "dog"]) == "What is it? Choose one of: cat, dog."
    with pytest.raises(ValueError, match="no options"):
        ins.format_question("What is it?", None)
    mc = instructions.resolve_instruction("multiple_choice", "options", "answer_is_letter")
    assert "(A) red (B) blue" in mc.format_question("Q?", ["red", "blue"])
    assert mc.format_answer("blue", 1) == "The answer is (B)"
    with pytest.raises(ValueError, match="instruction.answer_template"):
        instructions.resolve_instruction("classification", answer_template="nope")


@pytest.mark.parametrize("name", ["lamm.bench.instructions", "lamm.bench.inferencers.ppl"])
def test_doctests(name):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(name))
    assert result.failed == 0 and result.attempted > 0


def test_template_fields_are_checked_when_resolved(tmp_path):
    import yaml

    bad = tmp_path / "brace.yaml"
    for prompt in ('Reply as JSON like {"count": 3}. {question}', "{}", "{question} Count the {objects}.",
                   "{question} Answer in the form {} items.", "{question} {"):
        recipe = {"scenario": {"name": "Synth-Counting"}, "instruction": {"prompt": prompt}}
        bad.write_text(yaml.safe_dump(recipe))
        with pytest.raises(ConfigError, match=r"recipe 'brace': instruction: instruction\.prompt .*\{\{ or"):
            resolve_recipe_instruction(load_recipe(bad))
    with pytest.raises(ConfigError, match=r"instruction\.answer_template '\{option\} \{0\}' uses \{0\}"):
        instructions.resolve_instruction("multiple_choice", answer_template="{option} {0}")
    # doubled braces are literal; braces in the question are data (LSP's joint placeholder), not template
    ins = instructions.resolve_instruction("counting", 'Reply as JSON like {{"count": 3}}. {question}')
    assert ins.format_question("How many?") == 'Reply as JSON like {"count": 3}. How many?'
    assert instructions.resolve_instruction("keypoints").format_question("Where is the {} joint?") == \
        "Where is the {} joint?"
    # every shipped prompt and answer template passes the check
    for family in instructions.PROMPTS:
        for pid in instructions.prompt_pool(family):
            for aid in instructions.ANSWER_TEMPLATES:
                instructions.resolve_instruction(family, pid, aid)


def test_a_folder_named_like_a_recipe_or_suite_does_not_shadow_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in ("cifar10", "CIFAR10", "synth_vqa", "synthetic"):
        (tmp_path / name).mkdir()
    assert load_recipe("cifar10").scenario.name == "CIFAR10"
    assert load_recipe("CIFAR10") == default_recipe("CIFAR10")
    assert load_recipe("synth_vqa").scenario.name == "Synth-VQA"
    assert load_suite("synthetic").recipes
    (tmp_path / "dir.yaml").mkdir()
    with pytest.raises(ConfigError, match="is a directory"):
        load_recipe("dir.yaml")
    with pytest.raises(ConfigError, match="is a directory"):
        load_suite("dir.yaml")


def test_suite_recipe_paths_are_relative_to_the_suite_file(tmp_path, monkeypatch):
    from lamm.bench.recipe import find_suite, suite_recipe

    suite_dir = tmp_path / "suites" / "mine"
    (suite_dir / "sub").mkdir(parents=True)
    (suite_dir / "r1.yaml").write_text("name: beside\nscenario: {name: Synth-VQA}\n")
    (suite_dir / "sub" / "r2.yml").write_text("name: below\nscenario: {name: Synth-VQA}\n")
    suite = suite_dir / "s.yaml"
    suite.write_text("name: s\nrecipes: [r1.yaml, sub/r2.yml, cwd.yaml, cifar10]\n")
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    (cwd / "r1.yaml").write_text("name: shadow\nscenario: {name: Synth-VQA}\n")
    (cwd / "cwd.yaml").write_text("name: from_cwd\nscenario: {name: Synth-VQA}\n")
    monkeypatch.chdir(cwd)
    found = find_suite(Path("../suites/mine/s.yaml"))
    names = [load_recipe(suite_recipe(e, found)).name for e in load_suite(found).recipes]
    assert names == ["beside", "below", "from_cwd", "cifar10"]  # beside the suite first, then the cwd
    with pytest.raises(ConfigError, match=r"recipe 'nope\.yaml' not found; looked beside the suite .*"
                                          r"and in the working directory"):
        suite_recipe("nope.yaml", found)
