"""Robustness desideratum: ask corrupted copies of a scenario's samples, and the RRM score.

A recipe with ``scenario.corruption`` (``{name, severity, seed}``; ``lamm.bench.recipe.CorruptionConfig``)
makes ``load_scenario`` call :func:`corrupt_scenario`: the same records, every sample corrupted by the
named corruption (``lamm.bench.desiderata.corruptions``):

* image / point-cloud corruptions give each sample's media a ``MediaRef.transform`` applied when a
  backend loads the file (lazily: no decoded image is held) and a ``MediaRef.variant``
  (``name@severity#seed/record id``) that every media cache and identity key includes, so a corrupted
  copy is never served from the clean file's cache entry. The media of one record are keyed (and
  seeded) by the record id, so the questions of a multi-question record (LSP joints) see one image;
* text corruptions rewrite the question (the stem only, never embedded options), seeded by the
  sample id.

Sample ids stay the record's, so clean and corrupted answers pair up by id; the recipe hash covers the
corruption, so the answer cache never mixes them.

RRM (ChEF's relative robustness for multi-choice, LAMM reference §5)::

    RRM = (acc_corrupt − acc_chance) / (acc_clean − acc_chance) × 100

100 = as accurate as on clean input, 0 = down to chance; it is not clipped (above 100: better on the
corrupted input; below 0: worse than chance). See :func:`rrm` for when it is undefined.
"""

from __future__ import annotations

import difflib
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any

from lamm.bench.desiderata.corruptions import (
    CORRUPTIONS,
    Corruption,
    CorruptionTransform,
    apply_corruption,
    corruptions_for,
)
from lamm.bench.recipe import CorruptionConfig
from lamm.bench.scenarios.base import RecordScenario, Sample, Scenario, ScenarioError

FIELD = "scenario.corruption.name"


def get_fitting_corruption(scenario: Scenario, cfg: CorruptionConfig) -> Corruption:
    """The corruption ``cfg.name`` after checking it fits the scenario's modality; errors name the recipe
    field and list the corruptions that fit."""
    modality = getattr(scenario, "modality", None)
    fits = corruptions_for(modality) if modality in ("image", "pcl") else sorted(
        n for n in CORRUPTIONS if CORRUPTIONS.get(n).modality == "text")
    if cfg.name not in CORRUPTIONS:
        close = difflib.get_close_matches(cfg.name, CORRUPTIONS.names(), n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(repr(n) for n in close)}?" if close else ""
        raise ScenarioError(f"scenario {scenario.name!r}: recipe field {FIELD}: unknown corruption "
                            f"{cfg.name!r}{hint} (corruptions that fit this scenario: {', '.join(fits)})")
    c = CORRUPTIONS.get(cfg.name)
    if c.modality != "text" and c.modality != modality:
        raise ScenarioError(f"scenario {scenario.name!r}: recipe field {FIELD}: {cfg.name!r} corrupts {c.modality} "
                            f"input but this scenario's samples are {modality or 'of unknown modality'}; "
                            f"corruptions that fit: {', '.join(fits)}")
    return c


def corrupt_sample(sample: Sample, cfg: CorruptionConfig, source: str = "") -> Sample:
    """A corrupted copy of ``sample`` (see the module docstring); the original is not modified.

    Raises :class:`ScenarioError` (naming the source file and sample) when the sample has no media of
    the corruption's modality, or its media are not files (a transform applies to a file as read).
    """
    c = CORRUPTIONS.get(cfg.name)
    if c.modality == "text":
        q = apply_corruption(cfg.name, sample.question, cfg.severity, seed=cfg.seed, sample_id=sample.id)
        return replace(sample, question=q)
    where = f"{source}: sample {sample.id!r}" if source else f"sample {sample.id!r}"
    media, hit = [], False
    for m in sample.media:
        if m.modality != c.modality:
            media.append(m)
            continue
        if m.path is None:
            raise ScenarioError(f"{where}: its {m.modality} is in-memory data, not a file; corruption "
                                f"{cfg.name!r} applies to media files (give the record a path)")
        if m.transform is not None:
            raise ScenarioError(f"{where}: its {m.modality} is already transformed ({m.variant}); "
                                "one corruption per recipe")
        # the record id (group), not the sample id: the questions of one record share one corrupted image
        t = CorruptionTransform(cfg.name, cfg.severity, cfg.seed, sample.group or sample.id)
        media.append(replace(m, data=None, transform=t, variant=t.variant))
        hit = True
    if not hit:
        raise ScenarioError(f"{where}: has no {c.modality} to corrupt with {cfg.name!r} (its media: "
                            f"{[m.modality for m in sample.media] or 'none'})")
    return replace(sample, media=media)


def _corrupt_all(samples: list[Sample], cfg: CorruptionConfig, source: str, unchanged: set[str]) -> list[Sample]:
    out = [corrupt_sample(s, cfg, source) for s in samples]
    # media corruptions always derive a new ref; only a text corruption can leave a sample as it was
    same = [s.id for s, o in zip(samples, out) if o.question == s.question and o.media is s.media]
    if same:
        # e.g. word_swap on a one-word question: counted and reported, not silently passed as corrupted
        new = [i for i in same if i not in unchanged]
        unchanged.update(same)
        if new:
            warnings.warn(f"{source}: corruption {cfg.name!r} left {len(new)} question(s) unchanged "
                          f"(too short to corrupt): {', '.join(new[:5])}{' ...' if len(new) > 5 else ''}",
                          stacklevel=3)
    return out


@dataclass
class CorruptedRecordScenario(RecordScenario):
    """A :class:`RecordScenario` whose samples are corrupted copies (``corruption``); ``unchanged`` holds
    the ids of questions a text corruption could not change."""

    corruption: CorruptionConfig | None = None
    unchanged: set[str] = field(default_factory=set)

    def samples(self, indices: Sequence[int] | None = None) -> list[Sample]:
        assert self.corruption is not None
        return _corrupt_all(super().samples(indices), self.corruption, self.source, self.unchanged)


class CorruptedScenario:
    """Any other :class:`Scenario` with corrupted samples; every other attribute is the wrapped one's."""

    def __init__(self, inner: Scenario, corruption: CorruptionConfig) -> None:
        self.inner, self.corruption = inner, corruption
        self.unchanged: set[str] = set()

    def __getattr__(self, name: str) -> Any:
        inner = self.__dict__.get("inner")  # absent while unpickling: no recursion
        if inner is None:
            raise AttributeError(name)
        return getattr(inner, name)

    def samples(self, indices: Sequence[int] | None = None) -> list[Sample]:
        return _corrupt_all(self.inner.samples(indices), self.corruption, self.inner.source, self.unchanged)


def corrupt_scenario(scenario: Scenario, cfg: CorruptionConfig) -> Scenario:
    """The scenario with every sample corrupted by ``cfg`` (same records, ids, metric and chance).

    Raises :class:`ScenarioError` naming ``scenario.corruption.name`` for an unknown corruption (with
    did-you-mean) or one of another modality (listing those that fit).
    """
    get_fitting_corruption(scenario, cfg)
    if type(scenario) is RecordScenario:  # a subclass may override samples(): wrap it instead
        init = {f.name: getattr(scenario, f.name) for f in fields(RecordScenario)
                if f.init and not f.name.startswith("_") and f.name != "duplicate_ids"}
        return CorruptedRecordScenario(**init, corruption=cfg)
    return CorruptedScenario(scenario, cfg)  # type: ignore[return-value]


def corruption_label(cfg: CorruptionConfig) -> str:
    """``name@severity`` (plus ``#seed`` when not 0), e.g. ``gaussian_noise@3``: a column name for tables."""
    return f"{cfg.name}@{cfg.severity}" + (f"#{cfg.seed}" if cfg.seed else "")


# ------------------------------------------------------------------------------------------------- RRM
def rrm(acc_corrupt: float, acc_clean: float, chance: float) -> float:
    """Relative robustness, percent: ``(acc_corrupt − chance) / (acc_clean − chance) × 100``.

    Accuracies and chance in the same unit (percent, as the metric families report them). Returns NaN
    when ``acc_clean <= chance`` — a model no better than chance on clean input has no above-chance
    accuracy to keep, and the ratio would flip sign or divide by zero — or when any input is NaN.
    :func:`rrm_undefined_reason` says which. Not clipped: above 100 = better on corrupted input.

    >>> rrm(50.0, 80.0, 20.0)
    50.0
    >>> rrm(80.0, 80.0, 25.0), rrm(25.0, 80.0, 25.0)
    (100.0, 0.0)
    >>> rrm(30.0, 20.0, 25.0)
    nan
    """
    if rrm_undefined_reason(acc_corrupt, acc_clean, chance) is not None:
        return math.nan
    return (acc_corrupt - chance) / (acc_clean - chance) * 100.0


def rrm_undefined_reason(acc_corrupt: float, acc_clean: float, chance: float) -> str | None:
    """Why :func:`rrm` is NaN for these inputs, or ``None`` when it is defined."""
    for what, v in (("corrupted accuracy", acc_corrupt), ("clean accuracy", acc_clean), ("chance", chance)):
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return f"{what} is missing (NaN)"
    if acc_clean <= chance:
        return (f"clean accuracy {acc_clean:g} is not above chance {chance:g}: there is no above-chance "
                "accuracy to keep, so RRM is undefined")
    return None


def robustness_summary(clean: float, corrupted: Mapping[str, float], chance: float) -> dict[str, Any]:
    """Per-corruption RRM and an overall figure.

    ``clean``: accuracy on clean input; ``corrupted``: corruption label (e.g. ``gaussian_noise@3``) →
    accuracy on that corrupted copy; ``chance``: the accuracy of a random answer (all in percent).

    The overall ``rrm`` is the RRM of the mean corrupted accuracy. RRM is affine in the corrupted
    accuracy for a fixed clean accuracy and chance, so this equals the mean of the per-corruption RRMs
    (whenever those are defined), and it is the RRM ChEF reports for a test set corrupted with every
    corruption in equal shares. Undefined values are NaN with the reason under ``undefined``.

    >>> s = robustness_summary(80.0, {"jpeg@3": 50.0, "typos@3": 70.0}, 20.0)
    >>> s["per_corruption"]["jpeg@3"]["rrm"], s["mean_corrupted_accuracy"], s["rrm"]
    (50.0, 60.0, 66.66666666666666)
    """
    if not corrupted:
        raise ValueError("robustness_summary needs at least one corrupted accuracy")
    per = {}
    for name, acc in corrupted.items():
        per[name] = {"accuracy": acc, "rrm": rrm(acc, clean, chance),
                     "undefined": rrm_undefined_reason(acc, clean, chance)}
    accs = list(corrupted.values())
    mean_acc = math.nan if any(a is None or math.isnan(a) for a in accs) else sum(accs) / len(accs)
    missing = [n for n, a in corrupted.items() if a is None or math.isnan(a)]
    reason = (f"no accuracy for {', '.join(missing)}" if missing
              else rrm_undefined_reason(mean_acc, clean, chance))
    return {"clean_accuracy": clean, "chance": chance, "n_corruptions": len(accs),
            "mean_corrupted_accuracy": mean_acc, "rrm": rrm(mean_acc, clean, chance), "undefined": reason,
            "per_corruption": per}
