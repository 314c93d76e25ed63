"""Question/answer sources: VQA v2, TextVQA, ScienceQA and a generic list. One record per image,
with a ``qa`` list; open answers are the annotators' most common answer."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Any

from .base import SourceError, check_unique_ids, media_path, need, read_json, register_source


def majority(answers: list[Any]) -> str:
    """The most common answer (ties: the first seen), whitespace-normalised.

    >>> majority(["two", "2", "2", "two", "2"])
    '2'
    """
    norm = [" ".join(str(a.get("answer", "") if isinstance(a, dict) else a).split()) for a in answers]
    norm = [a for a in norm if a]
    if not norm:
        return ""
    counts = Counter(norm)
    return max(norm, key=lambda a: (counts[a], -norm.index(a)))


def _group(
    rows: list[tuple[str, str, dict[str, Any]]], dataset: str, image_prefix: str
) -> list[dict[str, Any]]:
    by_image: dict[str, dict[str, Any]] = {}
    for src_id, image, qa in rows:
        rec = by_image.setdefault(
            src_id,
            {"src_dataset": dataset, "src_id": src_id, "image": media_path(image_prefix, image), "qa": []},
        )
        rec["qa"].append(qa)
    return check_unique_ids(list(by_image.values()), dataset)


@register_source("vqav2")
def load_vqav2(
    questions: str | os.PathLike,
    annotations: str | os.PathLike,
    image_prefix: str = "",
    image_pattern: str = "{image_id:012d}.jpg",
    dataset: str = "vqav2",
) -> list[dict[str, Any]]:
    """VQA v2 ``*_questions.json`` + ``*_annotations.json``; ``image_pattern`` names the image file."""
    qs = need(read_json(questions), "questions", str(questions))
    anns = {
        need(a, "question_id", f"{annotations}: annotations[{i}]"): a
        for i, a in enumerate(need(read_json(annotations), "annotations", str(annotations)))
    }
    rows = []
    for i, q in enumerate(qs):
        where = f"{questions}: questions[{i}]"
        qid = need(q, "question_id", where)
        if qid not in anns:
            raise SourceError(f"{where}: question_id {qid!r} has no entry in {annotations}")
        a = anns[qid]
        ans = str(a.get("multiple_choice_answer") or majority(a.get("answers") or []))
        iid = need(q, "image_id", where)
        rows.append(
            (
                str(iid),
                image_pattern.format(image_id=iid),
                {"id": str(qid), "question": str(need(q, "question", where)), "answer": ans},
            )
        )
    return _group(rows, dataset, image_prefix)


@register_source("textvqa")
def load_textvqa(
    path: str | os.PathLike, image_prefix: str = "", dataset: str = "textvqa"
) -> list[dict[str, Any]]:
    """TextVQA ``TextVQA_0.5.1_*.json`` (``data``: question, answers, image_id); images ``{image_id}.jpg``."""
    data = need(read_json(path), "data", str(path))
    rows = []
    for i, e in enumerate(data):
        where = f"{path}: data[{i}]"
        iid = str(need(e, "image_id", where))
        ans = majority(e.get("answers") or [])
        if not ans:
            continue  # test split: no answers to learn from
        rows.append(
            (
                iid,
                f"{iid}.jpg",
                {
                    "id": str(e.get("question_id", i)),
                    "question": str(need(e, "question", where)),
                    "answer": ans,
                },
            )
        )
    return _group(rows, dataset, image_prefix)


@register_source("scienceqa")
def load_scienceqa(
    problems: str | os.PathLike, image_prefix: str = "", split: str | None = None, dataset: str = "scienceqa"
) -> list[dict[str, Any]]:
    """ScienceQA ``problems.json``: multiple choice; only problems with an image; images at
    ``{split}/{pid}/{image}``. The hint, when present, is given as context before the question."""
    data = read_json(problems)
    if not isinstance(data, dict):
        raise SourceError(f"{problems}: expected a mapping problem id → problem")
    rows = []
    for pid in sorted(data):
        p = data[pid]
        where = f"{problems}: {pid!r}"
        if not p.get("image") or (split is not None and p.get("split") != split):
            continue
        choices = need(p, "choices", where)
        ans = need(p, "answer", where)
        if not isinstance(ans, int) or not 0 <= ans < len(choices):
            raise SourceError(f"{where}.answer: must index choices (0..{len(choices) - 1}), got {ans!r}")
        q = str(need(p, "question", where))
        if p.get("hint"):
            q = f"Context: {p['hint']} Question: {q}"
        rows.append(
            (
                str(pid),
                f"{p.get('split', 'train')}/{pid}/{p['image']}",
                {"id": str(pid), "question": q, "choices": [str(c) for c in choices], "answer_index": ans},
            )
        )
    return _group(rows, dataset, image_prefix)


@register_source("qa_list")
def load_qa_list(
    path: str | os.PathLike, image_prefix: str = "", dataset: str = "vqa"
) -> list[dict[str, Any]]:
    """A JSON list of ``{"image", "question", "answer"}`` or ``{"image", "question", "choices",
    "answer_index"}`` (optional ``id``, ``distractors``); entries of one image are grouped."""
    data = read_json(path)
    if not isinstance(data, list):
        raise SourceError(f"{path}: expected a JSON list of {{image, question, answer}}")
    rows = []
    for i, e in enumerate(data):
        where = f"{path}: entry {i}"
        image = str(need(e, "image", where))
        qa = {k: e[k] for k in ("question", "answer", "choices", "answer_index", "distractors") if k in e}
        need(qa, "question", where)
        if "answer" not in qa and "choices" not in qa:
            raise SourceError(f"{where}: needs 'answer' or 'choices' + 'answer_index'")
        for key in ("choices", "distractors"):
            if key in qa and not isinstance(qa[key], list):  # a string would be read letter by letter
                raise SourceError(f"{where}.{key}: must be a list of strings, got {qa[key]!r}")
        qa["id"] = str(e.get("id", i))
        rows.append((Path(image).with_suffix("").as_posix(), image, qa))
    return _group(rows, dataset, image_prefix)
