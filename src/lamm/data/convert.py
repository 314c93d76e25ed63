"""Convert instruction data between LAMM and the LLaVA, PointLLM and ShareGPT conversation formats.

=========  ==========================================================================================
lamm       ``{"id", "image"|"pcl", "task_type", "conversations": [{"from", "value"}], provenance...}``
llava      ``{"id", "image", "conversations"}``; the first human turn starts with ``<image>\\n``
pointllm   ``{"object_id", "conversation_type", "conversations"}``; ``<point>\\n`` in the first turn;
           the cloud is ``{object_id}_8192.npy`` (``pcl_template``)
sharegpt   ``{"id", "system", "conversations", "images"|"point_clouds": [path]}`` (LLaMA-Factory style;
           ``messages`` with ``role``/``content`` are read too)
=========  ==========================================================================================

A record with neither image nor point cloud is a text-only dialogue (LLaVA mixes such records into its
data): LAMM, LLaVA and ShareGPT carry it without media or placeholder; PointLLM refuses it.
Keys a format does not define (``task_type``, provenance) are kept on export, so LAMM → X → LAMM gives
back the same records. Every record that cannot be converted is an error naming its index and id.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from pathlib import Path
from typing import Any, NamedTuple

from lamm.conversation import SYSTEM_MESSAGES, canonical_task_type, system_message
from lamm.data.records import TEXT_MODALITY
from lamm.fileio import read_json_or_jsonl

FORMATS = ("lamm", "llava", "pointllm", "sharegpt")
_ROLES = {"human": "human", "user": "human", "gpt": "gpt", "assistant": "gpt", "system": "system"}
_PLACEHOLDERS = re.compile(r"\s*<(?:image|pcl|point)>\s*\n?")


class ConvertError(ValueError):
    """A record cannot be converted; the message names its index, id and the field."""


def _where(i: int, rec: Any) -> str:
    rid = rec.get("id", rec.get("object_id")) if isinstance(rec, dict) else None
    return f"record {i}" + (f" (id={rid!r})" if rid is not None else "")


def _turns(rec: dict[str, Any], i: int) -> list[dict[str, str]]:
    conv = rec.get("conversations", rec.get("messages"))
    if not isinstance(conv, list) or not conv:
        raise ConvertError(f"{_where(i, rec)}: 'conversations' must be a non-empty list")
    out = []
    for t, turn in enumerate(conv):
        if not isinstance(turn, dict):
            raise ConvertError(f"{_where(i, rec)}: conversations[{t}] must be an object")
        role = _ROLES.get(str(turn.get("from", turn.get("role", ""))).lower())
        value = turn.get("value", turn.get("content"))
        if role is None or not isinstance(value, str):
            raise ConvertError(
                f"{_where(i, rec)}: conversations[{t}] needs from/role (human|gpt|user|assistant|system) "
                "and a string value/content"
            )
        out.append({"from": role, "value": value})
    return out


def _strip_placeholders(turns: list[dict[str, str]]) -> list[dict[str, str]]:
    return [{"from": t["from"], "value": _PLACEHOLDERS.sub(" ", t["value"]).strip()} for t in turns]


def _with_placeholder(turns: list[dict[str, str]], token: str) -> list[dict[str, str]]:
    out = [dict(t) for t in turns]
    if token not in out[0]["value"]:
        out[0]["value"] = f"{token}\n{out[0]['value']}"
    return out


def _modality(rec: dict[str, Any], i: int) -> str:
    """``image``, ``pcl`` or ``text`` (a text-only record has neither)."""
    have = [k for k in ("image", "pcl") if rec.get(k)]
    if len(have) > 1:
        raise ConvertError(f"{_where(i, rec)}: a LAMM record has at most one of 'image' / 'pcl', has both")
    return have[0] if have else TEXT_MODALITY


# ------------------------------------------------------------------------------------------------ LLaVA


def to_llava(records: list[dict[str, Any]], skip_other_modality: bool = False) -> list[dict[str, Any]]:
    """LAMM → LLaVA (images only; point clouds go to PointLLM). ``skip_other_modality`` leaves point-cloud
    records out (a mixed 2D + 3D file) instead of refusing them."""
    out = []
    for i, rec in enumerate(records):
        mod = _modality(rec, i)
        if mod == TEXT_MODALITY:  # LLaVA's own text-only records: no image, no placeholder
            out.append({**rec, "conversations": _turns(rec, i)})
            continue
        if mod != "image":
            if skip_other_modality:
                continue
            raise ConvertError(
                f"{_where(i, rec)}: LLaVA has no point clouds; convert 3D records with --to pointllm "
                "(a file mixing 2D and 3D records: --skip-other-modality, once with each format)"
            )
        out.append({**rec, "conversations": _with_placeholder(_turns(rec, i), "<image>")})
    return out


def from_llava(
    records: list[dict[str, Any]], default_task_type: str = "conversation"
) -> list[dict[str, Any]]:
    """LLaVA → LAMM; ``<image>`` placeholders are removed; a record without an image (LLaVA mixes
    text-only dialogues into its data) becomes a text-only LAMM record."""
    out = []
    for i, rec in enumerate(records):
        if "image" in rec and not (isinstance(rec["image"], str) and rec["image"].strip()):
            raise ConvertError(f"{_where(i, rec)}: 'image' must be a non-empty path, got {rec['image']!r}")
        out.append(
            {
                **rec,
                "task_type": rec.get("task_type", default_task_type),
                "conversations": _strip_placeholders(_turns(rec, i)),
            }
        )
    return out


# ------------------------------------------------------------------------------------------------ PointLLM


def _pointllm_type(task_type: str, n_turns: int) -> str:
    if canonical_task_type(task_type) == "description3d":
        return "detailed_description"
    return "single_round" if n_turns <= 2 else "multi_round"


def to_pointllm(records: list[dict[str, Any]], skip_other_modality: bool = False) -> list[dict[str, Any]]:
    """LAMM → PointLLM (point clouds only); ``object_id`` is the cloud's file stem. ``skip_other_modality``
    leaves image records out (a mixed 2D + 3D file) instead of refusing them."""
    out = []
    for i, rec in enumerate(records):
        mod = _modality(rec, i)
        if mod != "pcl":
            if skip_other_modality:
                continue
            if mod == TEXT_MODALITY:
                raise ConvertError(
                    f"{_where(i, rec)}: PointLLM has no text-only records; convert them with --to llava or "
                    "--to sharegpt (--skip-other-modality leaves them out)"
                )
            raise ConvertError(
                f"{_where(i, rec)}: PointLLM has no images; convert 2D records with --to llava "
                "(a file mixing 2D and 3D records: --skip-other-modality, once with each format)"
            )
        turns = _turns(rec, i)
        out.append(
            {
                "object_id": Path(rec["pcl"]).stem,
                "conversation_type": _pointllm_type(rec.get("task_type", ""), len(turns)),
                **{k: v for k, v in rec.items() if k != "conversations"},
                "conversations": _with_placeholder(turns, "<point>"),
            }
        )
    return out


def from_pointllm(
    records: list[dict[str, Any]], pcl_template: str = "{object_id}_8192.npy"
) -> list[dict[str, Any]]:
    """PointLLM → LAMM: ``pcl`` from ``pcl_template``; descriptions → ``description3d``, others →
    ``conversation3d``; ids ``{object_id}_{conversation_type}_{k}`` (an object has several)."""
    out, seen = [], Counter()
    for i, rec in enumerate(records):
        if "pcl" not in rec and not rec.get("object_id"):
            raise ConvertError(f"{_where(i, rec)}: needs 'object_id'")
        ctype = str(rec.get("conversation_type", "single_round"))
        task = rec.get("task_type") or ("description3d" if "description" in ctype else "conversation3d")
        base = f"{rec.get('object_id')}_{ctype}"
        rid = rec.get("id") or f"{base}_{seen[base]}"
        seen[base] += 1
        lamm = {k: v for k, v in rec.items() if k not in ("object_id", "conversation_type", "conversations")}
        lamm.update(
            id=rid,
            pcl=rec.get("pcl") or pcl_template.format(object_id=rec["object_id"]),
            task_type=task,
            conversations=_strip_placeholders(_turns(rec, i)),
        )
        out.append(lamm)
    return out


# ------------------------------------------------------------------------------------------------ ShareGPT

_SYSTEM_TO_TASK = {v: k for k, v in SYSTEM_MESSAGES.items()}


def to_sharegpt(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """LAMM → ShareGPT with the task's system message and a media list."""
    out = []
    for i, rec in enumerate(records):
        mod = _modality(rec, i)
        rest = {k: v for k, v in rec.items() if k not in ("conversations", mod)}
        if mod == TEXT_MODALITY:
            out.append({**rest, "system": system_message(rec.get("task_type")), "conversations": _turns(rec, i)})
            continue
        token, key = ("<image>", "images") if mod == "image" else ("<pcl>", "point_clouds")
        out.append(
            {
                **rest,
                "system": system_message(rec.get("task_type")),
                key: [rec[mod]],
                "conversations": _with_placeholder(_turns(rec, i), token),
            }
        )
    return out


def from_sharegpt(
    records: list[dict[str, Any]], default_task_type: str | None = None
) -> list[dict[str, Any]]:
    """ShareGPT → LAMM. The task type is the record's ``task_type``, else the one whose system message
    matches, else ``default_task_type``, else ``conversation`` / ``conversation3d``."""
    out = []
    for i, rec in enumerate(records):
        turns = _turns(rec, i)
        system = rec.get("system") or next((t["value"] for t in turns if t["from"] == "system"), None)
        turns = [t for t in turns if t["from"] != "system"]
        media = {"image": rec.get("images") or [], "pcl": rec.get("point_clouds") or rec.get("pcls") or []}
        if isinstance(rec.get("image"), str):
            media["image"] = [rec["image"]]
        if isinstance(rec.get("pcl"), str):
            media["pcl"] = [rec["pcl"]]
        have = {k: v for k, v in media.items() if v}
        if len(have) > 1 or (have and len(next(iter(have.values()))) != 1):
            raise ConvertError(
                f"{_where(i, rec)}: a LAMM record has at most one image or point cloud; found "
                f"{sum(len(v) for v in media.values())} media"
            )
        mod, paths = next(iter(have.items())) if have else (TEXT_MODALITY, [])
        task = (
            rec.get("task_type")
            or _SYSTEM_TO_TASK.get(system or "")
            or default_task_type
            or ("conversation3d" if mod == "pcl" else "conversation")
        )
        lamm = {
            k: v
            for k, v in rec.items()
            if k
            not in ("conversations", "messages", "system", "images", "point_clouds", "pcls", "image", "pcl")
        }
        lamm.setdefault("id", f"sharegpt_{i}")
        lamm.update({"task_type": task, "conversations": _strip_placeholders(turns)})
        if paths:
            lamm[mod] = paths[0]
        out.append(lamm)
    return out


# ------------------------------------------------------------------------------------------------ API


def convert(records: list[dict[str, Any]], src: str, dst: str, **options: Any) -> list[dict[str, Any]]:
    """Convert ``records`` from format ``src`` to ``dst`` (via LAMM). Options: ``pcl_template``
    (from pointllm), ``default_task_type`` (from llava / sharegpt), ``skip_other_modality`` (to llava /
    pointllm: leave out the records of the modality the format lacks)."""
    for f in (src, dst):
        if f not in FORMATS:
            raise ConvertError(f"unknown format {f!r}; expected one of {', '.join(FORMATS)}")
    for i, rec in enumerate(records):
        if not isinstance(rec, dict):
            raise ConvertError(f"record {i}: must be an object, got {type(rec).__name__}")
    if src == "llava":
        records = from_llava(records, **{k: v for k, v in options.items() if k == "default_task_type" and v})
    elif src == "pointllm":
        records = from_pointllm(records, **{k: v for k, v in options.items() if k == "pcl_template" and v})
    elif src == "sharegpt":
        records = from_sharegpt(records, options.get("default_task_type"))
    skip = bool(options.get("skip_other_modality"))
    if dst == "llava":
        return to_llava(records, skip)
    if dst == "pointllm":
        return to_pointllm(records, skip)
    return {"lamm": list, "sharegpt": to_sharegpt}[dst](records)


class Converted(NamedTuple):
    """What :func:`convert_file` did: records ``read`` and ``written`` (fewer only with
    ``skip_other_modality``)."""

    written: int
    read: int


def convert_file(
    in_path: str | os.PathLike, out_path: str | os.PathLike, src: str, dst: str, **options: Any
) -> Converted:
    """Convert a JSON / JSONL file; LAMM output is validated first (errors list every problem)."""
    from lamm.data.records import validate_records, write_records

    records = read_json_or_jsonl(in_path)
    try:
        out = convert(records, src, dst, **options)
    except ConvertError as e:
        raise ConvertError(f"{in_path}: {e}") from None
    if dst == "lamm":
        report = validate_records(out, file=f"{in_path} (converted)", kind="instruction", check_media=False)
        if not report.ok:
            lines = [str(p) for p in report.problems if p.severity == "error"][:20]
            raise ConvertError(
                f"{in_path}: converted records are not valid LAMM records:\n" + "\n".join(lines)
            )
    write_records(out_path, out)
    return Converted(len(out), len(records))
