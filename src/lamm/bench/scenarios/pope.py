"""POPE scenarios (hallucination desideratum): yes/no object-presence questions, scored by the ``pope`` family.

* ``Synth-POPE`` — root: the output of ``lamm data synth``; questions are built at load time from the
  split's 2D annotations (``ROOT/2d/annotations/{split}.json``), splits ``train`` / ``test``;
* ``POPE`` — root: an image root; ``scenario.file`` (relative to the root, or absolute) is either a
  prebuilt POPE file (``lamm data pope``, or the official POPE JSONL) or a COCO instances JSON, from which
  the questions are built at load time.

``scenario.params`` (:class:`lamm.bench.desiderata.pope.PopeConfig`): ``strategy`` (random | popular |
adversarial, default random), ``per_image`` (3), ``seed`` (0), ``balanced`` (true), ``n_images`` (all),
``min_objects`` (1) shape how questions are built from annotations — they are an error with a prebuilt
file, which is already built; ``images`` (``POPE`` only) is the image folder relative to the root that
the records' ``image`` paths are relative to (default the root). Recipe::

    scenario: {name: POPE, file: annotations/instances_val2014.json,
               params: {strategy: adversarial, images: val2014, n_images: 500, min_objects: 3}}

Every sample offers the options ``yes`` / ``no`` (for the ``ppl`` inferencer); chance is 50 (a fair coin
scores F1 = accuracy = 50 on a balanced set).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lamm.bench.desiderata.pope import PopeConfig, PopeStats, build_pope, read_pope_input
from lamm.bench.scenarios.base import (
    SCENARIOS,
    MissingDataError,
    RecordScenario,
    Sample,
    ScenarioError,
    ScenarioSpec,
)
from lamm.bench.scenarios.lamm_files import make_builder
from lamm.config import ConfigError, config_from_dict

OPTIONS = ["yes", "no"]
#: the params that sample questions from annotations (meaningless for a prebuilt POPE file)
SAMPLING_PARAMS = ("strategy", "per_image", "seed", "balanced", "n_images", "min_objects")


@dataclass
class PopeScenario(RecordScenario):
    """A :class:`RecordScenario` of POPE records; ``pope_stats``: what the build did with the images
    (:class:`lamm.bench.desiderata.pope.PopeStats` as a dict; empty for a prebuilt file)."""

    pope_stats: dict[str, int] = field(default_factory=dict)


def _params(name: str, params: dict[str, Any] | None) -> PopeConfig:
    try:
        return config_from_dict(PopeConfig, dict(params or {}), f"scenario {name!r}: scenario.params")
    except ConfigError as e:
        raise ScenarioError(str(e)) from None


def _builder(task_type: str, media_root: Path, source: str):
    base = make_builder("pope", task_type, media_root, source, OPTIONS)

    def build(rec: dict[str, Any], i: int) -> list[Sample]:
        samples = base(rec, i)
        for s in samples:  # the gold answer, shown with in-context examples
            s.answer = "Yes" if str(rec.get("gt_answer", "")).lower() == "yes" else "No"
        return samples

    return build


def pope_scenario(name: str, path: Path, media_root: Path, params: dict[str, Any] | None,
                  metric: str | None = None, task_type: str | None = None) -> PopeScenario:
    """The POPE scenario of ``path`` (a COCO instances JSON built with ``params``, or a prebuilt POPE
    file); media paths resolve against ``media_root``."""
    cfg = _params(name, params)
    stats = PopeStats()
    try:
        kind, payload = read_pope_input(path)
        if kind == "coco":
            images, categories = payload
            records = build_pope(images, categories, cfg.strategy, cfg.per_image, cfg.seed, balanced=cfg.balanced,
                                 n_images=cfg.n_images, min_objects=cfg.min_objects, stats=stats)
        else:
            given = sorted(set(params or {}) & set(SAMPLING_PARAMS))
            if given:
                raise ScenarioError(f"scenario {name!r}: {path} is a prebuilt POPE file; scenario.params {given} "
                                    "only apply when building from a COCO instances JSON: remove them")
            records = payload
    except ScenarioError:
        raise
    except ValueError as e:  # PopeError, and SourceError from the COCO reader
        raise ScenarioError(f"scenario {name!r}: {e}") from None
    if not records:
        raise ScenarioError(f"scenario {name!r}: {path}: no POPE question could be built "
                            f"(images: {stats.to_dict()}); check the annotations and min_objects / n_images")
    tt = task_type or "VQA"
    return PopeScenario(name=name, metric=metric or "pope", task_type=tt, modality="image", source=str(path),
                        root=media_root, records=records, build=_builder(tt, media_root, str(path)),
                        options=list(OPTIONS), chance=50.0, pope_stats=stats.to_dict())


def load_synth_pope(root: Path | None, *, split: str = "test", file: str | None = None, metric: str | None = None,
                    task_type: str | None = None, params: dict[str, Any] | None = None) -> PopeScenario:
    """``Synth-POPE`` over ``lamm data synth`` output (see the module docstring)."""
    if root is None:
        raise ScenarioError("scenario 'Synth-POPE': pass --root, the output directory of `lamm data synth`")
    if params and params.get("images") is not None:
        raise ScenarioError("scenario 'Synth-POPE': scenario.params.images is for the POPE scenario; synthetic "
                            "image paths are relative to the synth root")
    if file is not None:  # e.g. an in-context example pool
        path = Path(file) if Path(file).is_absolute() else root / file
        if not path.is_file():
            raise MissingDataError(f"scenario 'Synth-POPE': file {path} not found")
    else:
        path = root / "2d" / "annotations" / f"{split}.json"
        if not path.is_file():
            raise MissingDataError(f"scenario 'Synth-POPE': {path} not found; run `lamm data synth --out {root}` "
                                   "first (with 2D images in that split)")
    return pope_scenario("Synth-POPE", path, root, params, metric, task_type)


def load_pope(root: Path | None, *, split: str = "test", file: str | None = None, metric: str | None = None,
              task_type: str | None = None, params: dict[str, Any] | None = None) -> PopeScenario:
    """``POPE`` over a prebuilt POPE file or a COCO instances JSON (see the module docstring)."""
    if root is None:
        raise ScenarioError("scenario 'POPE': pass --root, the folder that holds the images (and the file)")
    if not file:
        raise ScenarioError("scenario 'POPE': set scenario.file: a POPE benchmark file (`lamm data pope`) or a COCO "
                            "instances JSON, relative to --root")
    path = Path(file) if Path(file).is_absolute() else root / file
    if not path.is_file():
        raise MissingDataError(f"scenario 'POPE': file {path} not found")
    images = _params("POPE", params).images
    return pope_scenario("POPE", path, root / images if images else root, params, metric, task_type)


SCENARIOS.add("Synth-POPE", ScenarioSpec(
    name="Synth-POPE", metric="pope", task_type="VQA", modality="image", load=load_synth_pope,
    splits=("train", "test"), description="POPE questions from the synthetic 2D annotations (2d/annotations/<split>.json)",
    suite="desiderata"))
SCENARIOS.add("POPE", ScenarioSpec(
    name="POPE", metric="pope", task_type="VQA", modality="image", load=load_pope, splits=("test",),
    description="POPE questions: a prebuilt POPE file or a COCO instances JSON (scenario.file)", suite="desiderata"))
