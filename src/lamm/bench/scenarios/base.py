"""What a scenario is: :class:`Sample` (one question to a model) and the :class:`Scenario` protocol.

A scenario owns a list of *records* — the raw benchmark records, in file order, exactly as the metric
families score them — and turns each record into one or more samples. Most records give one sample;
an LSP keypoint record gives one sample per joint (its ``query`` holds a ``{}`` for the joint name), and
the runner reassembles those answers into one ``{joint name: text}`` answer per record before scoring.

Sample ids are the cache keys of the benchmark (``lamm.bench.cache``), so they are stable: the record's
``id``, plus ``"/<part>"`` for multi-question records. A record id repeated inside one file gets the
suffix ``"@<index>"`` (its 0-based record index) from the second occurrence on; the scenario counts
those in ``duplicate_ids`` so the run reports them rather than silently merging two questions.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from lamm.conversation import MediaRef
from lamm.registry import Registry


class ScenarioError(ValueError):
    """A scenario cannot be built: the message names the file, the record and the field."""


class MissingDataError(ScenarioError, FileNotFoundError):
    """A scenario's benchmark file is not under the given root (a suite may skip it when asked)."""


@dataclass
class Sample:
    """One question to a model.

    ``media``: absolute media refs (the scenario resolves record paths against its root);
    ``question``: the text shown to the model before any instruction template; ``references``: the raw
    record (ground truth included); ``options``: the answer options of multiple-choice and
    closed-vocabulary tasks (``None`` for open tasks); ``task_type``: the conversation task type that
    selects the system message; ``group``/``part``: the record id and the sub-question name of
    multi-question records (``part`` is ``None`` otherwise); ``answer``: the gold answer as text, used
    only to show in-context examples; ``index``: the record's index in the scenario's records;
    ``labels``: the label of each option where it is not its letter (A, B, ...) — a verbalised
    multiple-choice sample (instruction following) — used to render options and ``ppl`` answers.
    """

    id: str
    media: list[MediaRef]
    question: str
    references: dict[str, Any]
    options: list[str] | None = None
    task_type: str = "normal"
    group: str = ""
    part: str | None = None
    answer: str | None = None
    index: int = 0
    labels: list[str] | None = None

    def __post_init__(self) -> None:
        if not self.group:
            self.group = self.id

    @property
    def media_paths(self) -> list[str]:
        return [str(m.path) for m in self.media if m.path is not None]


@runtime_checkable
class Scenario(Protocol):
    """A benchmark dataset: records in file order and the samples built from them."""

    name: str
    #: metric family (``lamm.bench.metrics.METRICS``) that scores this scenario
    metric: str
    #: conversation task type of its samples (selects the system message)
    task_type: str
    #: ``"image"`` or ``"pcl"``
    modality: str
    #: where the records came from (a file path), for error messages
    source: str
    records: list[dict[str, Any]]

    def samples(self, indices: Sequence[int] | None = None) -> list[Sample]:
        """Samples of the records at ``indices`` (all when ``None``), in record order."""
        ...


SampleBuilder = Callable[[dict[str, Any], int], list[Sample]]


@dataclass
class RecordScenario:
    """A :class:`Scenario` over a list of records and a function that turns one record into samples.

    ``root`` is the directory media paths are relative to; ``options`` the closed answer vocabulary
    (e.g. the class names, for likelihood scoring) when the task has one; ``chance`` the expected score
    of a random answer in the headline metric, when known.
    """

    name: str
    metric: str
    task_type: str
    modality: str
    source: str
    root: Path
    records: list[dict[str, Any]]
    build: SampleBuilder
    options: list[str] | None = None
    chance: float | None = None
    duplicate_ids: int = 0
    _ids: list[str] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        self._ids = unique_record_ids(self.records, self.source)
        self.duplicate_ids = sum(i != str(r.get("id")) for i, r in zip(self._ids, self.records))

    def record_id(self, index: int) -> str:
        """The (de-duplicated) id of record ``index``: the group id of its samples."""
        return self._ids[index]

    def samples(self, indices: Sequence[int] | None = None) -> list[Sample]:
        idx = range(len(self.records)) if indices is None else indices
        out: list[Sample] = []
        for i in idx:
            try:
                made = self.build(self.records[i], i)
            except ScenarioError:
                raise
            except (KeyError, TypeError, ValueError, IndexError) as e:
                rid = self.records[i].get("id")
                raise ScenarioError(f"{self.source}: record {i} (id {rid!r}): cannot build a question: {e}") from e
            rid = self._ids[i]
            for s in made:
                s.group = rid
                s.id = rid if s.part is None else f"{rid}/{s.part}"
                s.index = i
            out.extend(made)
        return out


def unique_record_ids(records: Sequence[dict[str, Any]], source: str) -> list[str]:
    """Record ids as strings; a repeated id gets ``@<index>`` (see the module docstring)."""
    seen: set[str] = set()
    out = []
    for i, r in enumerate(records):
        if not isinstance(r, dict):
            raise ScenarioError(f"{source}: record {i}: expected a JSON object, got {type(r).__name__}")
        rid = r.get("id")
        if rid is None or str(rid).strip() == "":
            raise ScenarioError(f"{source}: record {i}: field 'id': missing or empty; every record needs an id")
        s = str(rid)
        if s in seen:
            s = f"{s}@{i}"
        seen.add(s)
        out.append(s)
    return out


def require(record: dict[str, Any], field_name: str, index: int, source: str) -> Any:
    """``record[field_name]``, or a :class:`ScenarioError` naming the file, record and field."""
    if field_name not in record or record[field_name] is None:
        raise ScenarioError(f"{source}: record {index} (id {record.get('id')!r}): field {field_name!r}: missing")
    return record[field_name]


def media_of(record: dict[str, Any], root: Path, index: int, source: str) -> list[MediaRef]:
    """The record's image or point cloud as an absolute :class:`MediaRef` (exactly one must be given)."""
    keys = [k for k in ("image", "pcl") if record.get(k)]
    if len(keys) != 1:
        what = "neither 'image' nor 'pcl'" if not keys else "both 'image' and 'pcl'"
        raise ScenarioError(f"{source}: record {index} (id {record.get('id')!r}): field 'image|pcl': "
                            f"has {what}; give exactly one")
    key = keys[0]
    value = record[key]
    if not isinstance(value, str):
        raise ScenarioError(f"{source}: record {index} (id {record.get('id')!r}): field {key!r}: "
                            f"must be a path, got {value!r}")
    p = Path(value)
    return [MediaRef(key, path=str(p if p.is_absolute() else (root / p)))]


def stable_hash(*parts: object) -> int:
    """A 64-bit integer from the parts' text: the seed of every per-sample random choice."""
    text = "\x1f".join(str(p) for p in parts)
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big")


def subset_indices(scenario: Scenario, limit: int | None, seed: int = 0) -> list[int]:
    """A seeded subset of ``limit`` record indices, in file order (all records when ``limit`` is None).

    Each record is ranked by a hash of (seed, record id), so the subset of a file does not depend on the
    records around it, and a larger limit contains every smaller one.
    """
    n = len(scenario.records)
    if limit is None or limit >= n:
        return list(range(n))
    if limit < 0:
        raise ValueError(f"--limit must be >= 0, got {limit}")
    ids = unique_record_ids(scenario.records, scenario.source)
    ranked = sorted(range(n), key=lambda i: (stable_hash(seed, "subset", ids[i]), i))
    return sorted(ranked[:limit])


@dataclass(frozen=True)
class ScenarioSpec:
    """A named scenario: static facts (known without reading data) and its loader.

    ``load(root, *, split, file, metric, task_type)`` returns the :class:`Scenario`; ``metric`` /
    ``task_type`` / ``modality`` are ``None`` where the recipe must give them (the generic scenario).
    ``splits`` lists the splits the loader accepts (LAMM-Benchmark files have only ``test``).
    """

    name: str
    metric: str | None
    task_type: str | None
    modality: str | None
    load: Callable[..., Scenario]
    splits: tuple[str, ...] = ("test",)
    description: str = ""
    suite: str = ""


#: every scenario by name (``lamm2d`` / ``lamm3d`` / ``synthetic`` / ``generic`` in ``ScenarioSpec.suite``)
SCENARIOS: Registry[ScenarioSpec] = Registry("scenario")
