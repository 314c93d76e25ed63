"""Versioned prompt packs for C1–C3 generation (``generate/packs/*.yaml`` or a user's YAML file).

A pack holds everything that decides what the LLM is asked: the system prompt, few-shot examples
(context → JSON response), the human questions of one-round descriptions, the output kind and the
validation limits. Its ``version`` is set by hand; its ``sha256`` is computed from the content, so a
record's provenance (``template_id`` = ``name@version#hash12``) pins the exact prompt that made it::

    name: c1_conversation
    version: "1.0"
    kind: conversation            # conversation | description | commonsenseqa
    modality: image               # image | pcl
    output: dialogue              # dialogue → {"conversation": [...]}; description → {"description": "..."}
    system: "..."
    questions: [{id, text}]       # description packs: the human turn, drawn per record
    limits: {min_turns: 2, max_turns: 10, min_words: 1, max_words: 250}
    forbidden: ["..."]            # phrases that betray the text source (added to the defaults)
    few_shot: [{context: "...", response: "..."}]
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

PACK_DIR = Path(__file__).resolve().parent / "packs"
KINDS = ("conversation", "description", "commonsenseqa")
OUTPUTS = ("dialogue", "description")

# Phrases that show the answer was written from text rather than seen: LLaVA-style data must read as
# if the assistant looks at the image itself.
DEFAULT_FORBIDDEN = (
    "the annotation",
    "annotations",
    "the description",
    "the caption",
    "captions",
    "bounding box",
    "coordinates",
    "the context provided",
    "the provided context",
    "the given information",
    "the information provided",
    "the provided information",
    "the text provided",
    "as described",
)


class PromptPackError(ValueError):
    """A prompt pack is malformed; the message names the file and the field."""


@dataclass(frozen=True)
class Limits:
    """Validation bounds: turns per dialogue (messages, both roles), words per turn, words in total."""

    min_turns: int = 2
    max_turns: int = 12
    min_words: int = 1
    max_words: int = 300
    max_total_words: int = 1500


@dataclass(frozen=True)
class PromptPack:
    name: str
    version: str
    kind: str
    modality: str
    output: str
    system: str
    few_shot: tuple[tuple[str, str], ...]
    questions: tuple[tuple[str, str], ...]
    limits: Limits
    forbidden: tuple[str, ...]
    source: str
    sha256: str = field(default="")

    @property
    def task_type(self) -> str:
        """The LAMM task type of the records this pack makes (``conversation3d`` for point clouds)."""
        return self.kind + ("3d" if self.modality == "pcl" else "")

    @property
    def ref(self) -> str:
        """``name@version#hash12``: what a record's provenance names."""
        return f"{self.name}@{self.version}#{self.sha256[:12]}"


def parse_pack(data: Any, source: str) -> PromptPack:
    """Validate a parsed pack mapping."""
    if not isinstance(data, dict):
        raise PromptPackError(f"{source}: a prompt pack must be a mapping")
    allowed = {
        "name",
        "version",
        "kind",
        "modality",
        "output",
        "system",
        "few_shot",
        "questions",
        "limits",
        "forbidden",
        "notes",
    }
    unknown = set(data) - allowed
    if unknown:
        raise PromptPackError(
            f"{source}: unknown key(s) {sorted(unknown)}; allowed: {', '.join(sorted(allowed))}"
        )
    for key in ("name", "version", "kind", "modality", "output", "system"):
        if not isinstance(data.get(key), (str, int, float)) or str(data.get(key)).strip() == "":
            raise PromptPackError(f"{source}: {key!r} is required (a non-empty string)")
    if data["kind"] not in KINDS:
        raise PromptPackError(f"{source}: kind must be one of {', '.join(KINDS)}, got {data['kind']!r}")
    if data["modality"] not in ("image", "pcl"):
        raise PromptPackError(f"{source}: modality must be 'image' or 'pcl', got {data['modality']!r}")
    if data["output"] not in OUTPUTS:
        raise PromptPackError(f"{source}: output must be one of {', '.join(OUTPUTS)}, got {data['output']!r}")
    shots = []
    for i, ex in enumerate(data.get("few_shot") or []):
        if (
            not isinstance(ex, dict)
            or not isinstance(ex.get("context"), str)
            or not isinstance(ex.get("response"), str)
        ):
            raise PromptPackError(f"{source}: few_shot[{i}] needs string 'context' and 'response'")
        try:
            json.loads(ex["response"])
        except json.JSONDecodeError as e:
            raise PromptPackError(
                f"{source}: few_shot[{i}].response is not valid JSON ({e.msg}); "
                "examples must show the exact output format"
            ) from None
        shots.append((ex["context"].strip(), ex["response"].strip()))
    questions = []
    for i, q in enumerate(data.get("questions") or []):
        if not isinstance(q, dict) or not isinstance(q.get("id"), str) or not isinstance(q.get("text"), str):
            raise PromptPackError(f"{source}: questions[{i}] needs string 'id' and 'text'")
        questions.append((q["id"], q["text"]))
    if data["output"] == "description" and not questions:
        raise PromptPackError(f"{source}: a description pack needs 'questions' (the human turn)")
    lim = data.get("limits") or {}
    try:
        limits = Limits(**lim)
    except TypeError as e:
        raise PromptPackError(f"{source}: limits: {e}") from None
    forbidden = tuple(
        dict.fromkeys([*DEFAULT_FORBIDDEN, *[str(f).lower() for f in data.get("forbidden") or []]])
    )
    digest = hashlib.sha256(json.dumps(data, sort_keys=True, ensure_ascii=False).encode()).hexdigest()
    return PromptPack(
        str(data["name"]),
        str(data["version"]),
        data["kind"],
        data["modality"],
        data["output"],
        str(data["system"]).strip(),
        tuple(shots),
        tuple(questions),
        limits,
        forbidden,
        source,
        digest,
    )


def load_pack(name_or_path: str | os.PathLike) -> PromptPack:
    """A bundled pack by name (``c1_conversation``) or a YAML file."""
    s = str(name_or_path)
    p = Path(s) if s.endswith((".yaml", ".yml")) or os.sep in s else PACK_DIR / f"{s}.yaml"
    if not p.exists():
        raise PromptPackError(f"prompt pack {s!r} not found ({p}); bundled: {', '.join(bundled_packs())}")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise PromptPackError(f"{p}: not valid YAML: {e}") from None
    return parse_pack(data, str(p))


def bundled_packs() -> list[str]:
    return sorted(q.stem for q in PACK_DIR.glob("*.yaml"))


def default_pack(kind: str, modality: str) -> str:
    """The bundled pack for a kind and modality, e.g. ``c3_description_3d``."""
    num = {"conversation": "c1", "commonsenseqa": "c2", "description": "c3"}[kind]
    return f"{num}_{kind}" + ("_3d" if modality == "pcl" else "")
