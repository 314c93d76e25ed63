"""Question and answer phrasings as data: ``lamm/data/templates/*.yaml``.

A template file holds, for one task, groups of question templates and groups of answer templates,
every template with a unique ``id`` (recorded in each built record's ``template_id``)::

    task: counting
    version: 1
    questions:
      default:
        - {id: count.q01, text: "How many {plural} are there in the image?"}
    answers:
      default:
        - {id: count.a01, text: "There {be} {n} {noun} in the image."}
        - {id: count.a.short, text: "{n}"}
    vocab: {}          # optional word lists a builder may use (e.g. colours for distractors)

Answer templates for list answers (detection, OCR, keypoints) may add ``item`` (one element) and
``join`` (the separator); ``text`` then receives ``{items}``. Fields are Python ``str.format`` names.
A config may restrict a set to some ids (glob patterns) with :meth:`TemplateSet.restrict`.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import yaml

TEMPLATE_DIR = Path(__file__).resolve().parent.parent / "templates"


class TemplateError(ValueError):
    """A template file or a template rendering is wrong; the message names the file and template id."""


@dataclass(frozen=True)
class Template:
    """One phrasing. ``extra`` holds ``item`` / ``join`` for list answers."""

    id: str
    text: str
    source: str = "<templates>"
    extra: dict[str, str] = field(default_factory=dict)

    def render(self, **fields: Any) -> str:
        """Fill ``text`` (and, when ``items`` is a list, ``item`` per element joined by ``join``)."""
        if "items" in fields and isinstance(fields["items"], list) and "item" in self.extra:
            parts = [self._fmt(self.extra["item"], it) for it in fields["items"]]
            fields = {**fields, "items": self.extra.get("join", " ").join(parts)}
        return self._fmt(self.text, fields)

    def _fmt(self, text: str, fields: dict[str, Any]) -> str:
        try:
            return text.format(**fields)
        except KeyError as e:
            raise TemplateError(
                f"{self.source}: template {self.id!r} uses field {{{e.args[0]}}}, which this "
                f"builder does not provide (available: {', '.join(sorted(fields))})"
            ) from None
        except (IndexError, ValueError) as e:
            raise TemplateError(
                f"{self.source}: template {self.id!r} is not a valid format string: {e}"
            ) from None


@dataclass
class TemplateSet:
    """The templates of one task file: ``questions[group]`` and ``answers[group]`` lists."""

    task: str
    version: int
    questions: dict[str, list[Template]]
    answers: dict[str, list[Template]]
    vocab: dict[str, list[str]]
    source: str
    sha256: str

    def group(self, kind: str, name: str) -> list[Template]:
        """Templates of ``kind`` ("questions" | "answers") in group ``name``; an error names the file."""
        groups = self.questions if kind == "questions" else self.answers
        if name not in groups or not groups[name]:
            raise TemplateError(
                f"{self.source}: no {kind[:-1]} templates in group {name!r} (groups: "
                f"{', '.join(sorted(groups)) or 'none'}); add some or widen the id filter"
            )
        return groups[name]

    def has(self, kind: str, name: str) -> bool:
        groups = self.questions if kind == "questions" else self.answers
        return bool(groups.get(name))

    def pick(self, kind: str, name: str, rng: np.random.Generator) -> Template:
        """A uniformly random template of the group, drawn from ``rng``."""
        items = self.group(kind, name)
        return items[int(rng.integers(len(items)))]

    def ids(self) -> list[str]:
        return [t.id for g in (*self.questions.values(), *self.answers.values()) for t in g]

    def restrict(
        self, question_ids: list[str] | None = None, answer_ids: list[str] | None = None
    ) -> TemplateSet:
        """A copy keeping only templates whose id matches one of the glob patterns (None keeps all)."""
        for pats in (question_ids, answer_ids):
            for pat in pats or []:
                if not any(fnmatch.fnmatchcase(i, pat) for i in self.ids()):
                    raise TemplateError(
                        f"{self.source}: template id pattern {pat!r} matches nothing; "
                        f"ids: {', '.join(self.ids())}"
                    )

        def keep(groups: dict[str, list[Template]], pats: list[str] | None) -> dict[str, list[Template]]:
            if pats is None:
                return groups
            out = {
                g: [t for t in ts if any(fnmatch.fnmatchcase(t.id, p) for p in pats)]
                for g, ts in groups.items()
            }
            return {g: ts for g, ts in out.items() if ts}

        return TemplateSet(
            self.task,
            self.version,
            keep(self.questions, question_ids),
            keep(self.answers, answer_ids),
            self.vocab,
            self.source,
            self.sha256,
        )


def _parse_groups(raw: Any, kind: str, source: str, seen: set[str]) -> dict[str, list[Template]]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise TemplateError(f"{source}: {kind!r} must map group names to lists of templates")
    out: dict[str, list[Template]] = {}
    for gname, items in raw.items():
        if not isinstance(items, list):
            raise TemplateError(f"{source}: {kind}.{gname} must be a list of {{id, text}} entries")
        group = []
        for j, it in enumerate(items):
            where = f"{source}: {kind}.{gname}[{j}]"
            if (
                not isinstance(it, dict)
                or not isinstance(it.get("id"), str)
                or not isinstance(it.get("text"), str)
            ):
                raise TemplateError(f"{where}: each template needs a string 'id' and a string 'text'")
            unknown = set(it) - {"id", "text", "item", "join"}
            if unknown:
                raise TemplateError(
                    f"{where}: unknown key(s) {sorted(unknown)}; allowed: id, text, item, join"
                )
            if it["id"] in seen:
                raise TemplateError(f"{where}: duplicate template id {it['id']!r}")
            seen.add(it["id"])
            extra = {k: str(it[k]) for k in ("item", "join") if k in it}
            group.append(Template(it["id"], it["text"], source, extra))
        out[str(gname)] = group
    return out


def parse_templates(data: Any, source: str) -> TemplateSet:
    """Validate a parsed template mapping (see the module docstring)."""
    if not isinstance(data, dict):
        raise TemplateError(f"{source}: expected a mapping with task, version, questions, answers")
    unknown = set(data) - {"task", "version", "questions", "answers", "vocab", "notes"}
    if unknown:
        raise TemplateError(f"{source}: unknown top-level key(s) {sorted(unknown)}")
    for key in ("task", "version"):
        if key not in data:
            raise TemplateError(f"{source}: missing {key!r}")
    seen: set[str] = set()
    vocab = data.get("vocab") or {}
    if not isinstance(vocab, dict) or not all(isinstance(v, list) for v in vocab.values()):
        raise TemplateError(f"{source}: 'vocab' must map names to lists of words")
    digest = hashlib.sha256(json.dumps(data, sort_keys=True, ensure_ascii=False).encode()).hexdigest()
    return TemplateSet(
        task=str(data["task"]),
        version=int(data["version"]),
        questions=_parse_groups(data.get("questions"), "questions", source, seen),
        answers=_parse_groups(data.get("answers"), "answers", source, seen),
        vocab={k: [str(w) for w in v] for k, v in vocab.items()},
        source=source,
        sha256=digest,
    )


@lru_cache(maxsize=64)
def _load_cached(path: str, mtime: float) -> TemplateSet:
    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise TemplateError(f"{p}: not valid YAML: {e}") from None
    return parse_templates(data, str(p))


def template_path(name_or_path: str | os.PathLike) -> Path:
    """A bundled template set by name (``"counting"``) or a YAML file path."""
    s = str(name_or_path)
    if s.endswith((".yaml", ".yml")) or os.sep in s:
        p = Path(s)
    else:
        p = TEMPLATE_DIR / f"{s}.yaml"
    if not p.exists():
        bundled = ", ".join(sorted(q.stem for q in TEMPLATE_DIR.glob("*.yaml")))
        raise TemplateError(f"template set {s!r} not found ({p}); bundled sets: {bundled}")
    return p


def load_templates(name_or_path: str | os.PathLike) -> TemplateSet:
    """Load (and cache) a template set by bundled name or path."""
    p = template_path(name_or_path).resolve()
    return _load_cached(str(p), p.stat().st_mtime)


def bundled_template_names() -> list[str]:
    return sorted(q.stem for q in TEMPLATE_DIR.glob("*.yaml"))
