"""Parse and check an LLM's reply: JSON of the pack's output kind, alternating turns, bounded lengths,
no sign that the text was written from annotations, no refusals, no coordinates."""

from __future__ import annotations

import json
import re
from typing import Any

from lamm.data.quality import find_refusal

from .prompts import PromptPack

_FENCE = re.compile(r"^```(?:json)?\s*|\s*```$", re.IGNORECASE)
_COORDS = re.compile(r"\[\s*-?\d*\.?\d+\s*,\s*-?\d*\.?\d+\s*,")
_ROLE = {"human": "human", "user": "human", "gpt": "gpt", "assistant": "gpt"}


class InvalidOutput(ValueError):
    """The reply cannot be used; the message says why (it is logged with the record id)."""


def extract_json(text: str) -> Any:
    """The JSON object in ``text``: code fences are removed and, failing a direct parse, the span from
    the first ``{`` to the last ``}`` is tried (models like to add a sentence around the JSON)."""
    t = _FENCE.sub("", text.strip()).strip()
    try:
        return json.loads(t)
    except json.JSONDecodeError:
        pass
    start, end = t.find("{"), t.rfind("}")
    if start < 0 or end <= start:
        raise InvalidOutput(f"malformed JSON: no JSON object in the reply ({text[:80]!r}...)")
    try:
        return json.loads(t[start : end + 1])
    except json.JSONDecodeError as e:
        raise InvalidOutput(f"malformed JSON: {e.msg} at column {e.colno}") from None


def check_text(text: str, pack: PromptPack, where: str) -> str:
    """Normalise whitespace and apply the per-turn checks; returns the cleaned text."""
    if not isinstance(text, str):
        raise InvalidOutput(f"{where}: expected a string, got {type(text).__name__}")
    clean = text.replace("<image>", "").replace("<pcl>", "").strip()
    clean = re.sub(r"[ \t]+", " ", clean)
    n = len(clean.split())
    lim = pack.limits
    if n < lim.min_words or n > lim.max_words:
        raise InvalidOutput(f"{where}: {n} words, outside [{lim.min_words}, {lim.max_words}]")
    low = clean.lower()
    for phrase in pack.forbidden:
        if phrase in low:
            raise InvalidOutput(
                f"{where}: mentions {phrase!r} (answers must read as if the assistant sees "
                f"the {'point cloud' if pack.modality == 'pcl' else 'image'})"
            )
    refusal = find_refusal(clean)
    if refusal:
        raise InvalidOutput(f"{where}: refusal phrase {refusal!r}")
    if _COORDS.search(clean):
        raise InvalidOutput(f"{where}: contains coordinates")
    return clean


def parse_reply(text: str, pack: PromptPack) -> list[dict[str, str]]:
    """The reply as LAMM turns. Dialogue packs give the whole conversation; description packs give the
    assistant's description only (one ``gpt`` turn; the caller adds the human question)."""
    data = extract_json(text)
    if not isinstance(data, dict):
        raise InvalidOutput(f"expected a JSON object, got {type(data).__name__}")
    if pack.output == "description":
        if not isinstance(data.get("description"), str):
            raise InvalidOutput("missing 'description' (a string)")
        return [{"from": "gpt", "value": check_text(data["description"], pack, "description")}]
    conv = data.get("conversation", data.get("conversations"))
    if not isinstance(conv, list) or not conv:
        raise InvalidOutput("missing 'conversation' (a non-empty list of turns)")
    lim = pack.limits
    if not lim.min_turns <= len(conv) <= lim.max_turns:
        raise InvalidOutput(f"{len(conv)} turns, outside [{lim.min_turns}, {lim.max_turns}]")
    if len(conv) % 2:
        raise InvalidOutput(f"{len(conv)} turns: the dialogue must end with an answer")
    turns = []
    for i, t in enumerate(conv):
        if not isinstance(t, dict):
            raise InvalidOutput(f"turn {i}: expected an object with 'from' and 'value'")
        role = _ROLE.get(str(t.get("from", t.get("role", ""))).lower())
        want = "human" if i % 2 == 0 else "gpt"
        if role != want:
            raise InvalidOutput(
                f"turn {i}: expected a {want!r} turn, got {t.get('from', t.get('role'))!r} "
                "(turns must alternate, starting with the human)"
            )
        turns.append({"from": role, "value": check_text(t.get("value", t.get("content")), pack, f"turn {i}")})
    total = sum(len(t["value"].split()) for t in turns)
    if total > lim.max_total_words:
        raise InvalidOutput(f"{total} words in total, above {lim.max_total_words}")
    return turns
