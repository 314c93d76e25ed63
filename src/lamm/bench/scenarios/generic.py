"""``generic``: any LAMM-format benchmark file (JSON array or JSONL) scored by a named metric family.

Recipe::

    scenario: {name: generic, file: my_eval.jsonl, metric: classification}

``file`` is relative to ``--root`` (or absolute, or relative to the working directory when no root is
given); media paths are relative to ``--root``, else to the file's folder. ``split`` is free text here
(it only labels the results); an ICL ``pool`` is another file.
"""

from __future__ import annotations

from pathlib import Path

from lamm.bench.scenarios.base import SCENARIOS, MissingDataError, RecordScenario, ScenarioError, ScenarioSpec
from lamm.bench.scenarios.lamm_files import records_scenario


def load_generic(root: Path | None, *, split: str = "test", file: str | None = None, metric: str | None = None,
                 task_type: str | None = None) -> RecordScenario:
    """A scenario over ``file`` scored by the family ``metric`` (both required)."""
    if not file:
        raise ScenarioError("scenario 'generic': set scenario.file (a LAMM-format JSON/JSONL benchmark file)")
    if not metric:
        raise ScenarioError(f"scenario 'generic' ({file}): set scenario.metric, a metric family "
                            "(lamm bench recipes lists them)")
    from lamm.bench.metrics import METRICS

    METRICS.get(metric)  # did-you-mean error before reading any data
    p = Path(file)
    path = p if p.is_absolute() or root is None else Path(root) / p
    if not path.is_file():
        raise MissingDataError(f"scenario 'generic': file {path} not found")
    media_root = Path(root) if root is not None else path.parent
    return records_scenario(f"generic:{path.name}", path, media_root, metric, task_type)


SCENARIOS.add("generic", ScenarioSpec(name="generic", metric=None, task_type=None, modality=None, load=load_generic,
                                      splits=(), description="any LAMM-format file + a metric family",
                                      suite="generic"))
