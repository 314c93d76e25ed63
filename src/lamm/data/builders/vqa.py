"""C4 visual question answering (2D), open-ended or multiple choice.

Questions come from the source record's ``qa`` list and/or are generated from its object annotations
(``attributes``): the colour of a uniquely named object, the shape (class) of a uniquely coloured
object, where one object is relative to another, how many of a class there are. Every generated
question is answerable from the annotations alone: an object is only referred to by a description
that fits it and no other object, and a relation is only asked when it is clear-cut.

``qa`` entries: ``{"question", "answer"}`` (open), ``{"question", "choices", "answer_index"}``
(multiple choice) or ``{"question", "answer", "distractors"}`` (multiple choice, shuffled here).
Multiple-choice answers read "The answer is (X)." as the VQA system message asks (``answer_style:
letter``, the default); ``answer_style: text`` answers with the option's text ("The answer is blue."),
which the benchmark parser maps to its letter — one hop less for a small model trained from scratch
(the quickstart), at the price of not following the system message's letter format.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from lamm.data.records import OPTION_LETTERS, format_options

from .base import BuilderError, Sample, draw_balanced, is_unnamed, label_fields, register_builder, source_ref
from .templates import TemplateSet


def _qa_candidates(record: dict[str, Any], builder: str) -> list[dict[str, Any]]:
    qa = record.get("qa") or []
    if not isinstance(qa, list):
        raise BuilderError(f"source record {source_ref(record)}: builder {builder!r}: 'qa' must be a list")
    out = []
    for j, e in enumerate(qa):
        where = f"source record {source_ref(record)}: builder {builder!r}: qa[{j}]"
        if not isinstance(e, dict) or not isinstance(e.get("question"), str) or not e["question"].strip():
            raise BuilderError(f"{where}.question: must be a non-empty string")
        key = str(e.get("id", j))
        if "choices" in e:
            ch, gt = e["choices"], e.get("answer_index")
            if not isinstance(ch, list) or not 2 <= len(ch) <= len(OPTION_LETTERS):
                raise BuilderError(f"{where}.choices: must be a list of 2..{len(OPTION_LETTERS)} options")
            if not isinstance(gt, int) or isinstance(gt, bool) or not 0 <= gt < len(ch):
                raise BuilderError(f"{where}.answer_index: must index choices (0..{len(ch) - 1}), got {gt!r}")
            out.append(
                {
                    "kind": "qa",
                    "question": e["question"].strip(),
                    "choices": [str(c) for c in ch],
                    "gt": gt,
                    "shuffle": False,
                    "key": key,
                    "qid": "qa",
                }
            )
        elif isinstance(e.get("answer"), str) and e["answer"].strip():
            if e.get("distractors") is not None and not isinstance(e["distractors"], list):
                # a string would be read letter by letter as options
                raise BuilderError(
                    f"{where}.distractors: must be a list of strings, got {type(e['distractors']).__name__} "
                    f"{e['distractors']!r}; write [{e['distractors']!r}] for a single distractor"
                )
            if e.get("distractors"):
                ds = [str(d) for d in dict.fromkeys(e["distractors"]) if str(d) != e["answer"]]
                out.append(
                    {
                        "kind": "qa",
                        "question": e["question"].strip(),
                        "choices": [e["answer"].strip(), *ds],
                        "gt": 0,
                        "shuffle": True,
                        "key": key,
                        "qid": "qa",
                    }
                )
            else:
                out.append(
                    {
                        "kind": "qa",
                        "question": e["question"].strip(),
                        "answer": e["answer"].strip(),
                        "key": key,
                        "qid": "qa",
                    }
                )
        else:
            raise BuilderError(f"{where}: needs 'answer' (a non-empty string) or 'choices' + 'answer_index'")
    return out


def _center(o: dict[str, Any], frame: str) -> tuple[float, float]:
    if frame == "3d":
        return float(o["bbox"][0]), float(o["bbox"][1])
    if o.get("center"):
        return float(o["center"][0]), float(o["center"][1])
    b = o["bbox"]
    return (b[0] + b[2]) / 2, (b[1] + b[3]) / 2


def relation(a: dict[str, Any], b: dict[str, Any], frame: str) -> str | None:
    """Where ``a`` is relative to ``b``, or None when not clear-cut (the centres must differ by 1.5x
    more along one axis than the other, and by at least 15% of the image / 0.3 m).

    2D (image, y down): left / right / above / below. 3D (z up, viewer at -y looking at +y):
    left / right / in front / behind.
    """
    (ax, ay), (bx, by) = _center(a, frame), _center(b, frame)
    dx, dy = ax - bx, ay - by
    least = 0.15 if frame == "2d" else 0.3
    if abs(dx) >= 1.5 * abs(dy) and abs(dx) >= least:
        return "left" if dx < 0 else "right"
    if abs(dy) >= 1.5 * abs(dx) and abs(dy) >= least:
        if frame == "2d":
            return "above" if dy < 0 else "below"
        return "in front" if dy < 0 else "behind"
    return None


def _attribute_candidates(
    record: dict[str, Any], templates: TemplateSet, kinds: list[str], frame: str
) -> list[dict[str, Any]]:
    if any(is_unnamed(o) for o in record.get("objects") or []):
        return []  # uniqueness ("the chair") and counts are unknown when some objects have no class
    objs = [
        o for o in record.get("objects") or [] if isinstance(o, dict) and o.get("label") and o.get("bbox")
    ]
    if not objs:
        return []
    vocab = {**templates.vocab, **(record.get("vocab") or {})}
    n_label = Counter(o["label"] for o in objs)
    n_color = Counter(o.get("color") for o in objs if o.get("color"))
    n_both = Counter((o.get("color"), o["label"]) for o in objs)

    def desc(o: dict[str, Any]) -> str | None:
        if n_label[o["label"]] == 1:
            return o["label"]
        if o.get("color") and n_both[(o["color"], o["label"])] == 1:
            return f"{o['color']} {o['label']}"
        return None

    out: list[dict[str, Any]] = []
    for k, o in enumerate(objs):
        if "color" in kinds and o.get("color") and n_label[o["label"]] == 1:
            out.append(
                {
                    "kind": "color",
                    "fields": label_fields(o["label"]),
                    "truth": o["color"],
                    "pool": vocab.get("colors", []),
                    "key": f"color{k}",
                }
            )
        if "shape" in kinds and o.get("color") and n_color[o["color"]] == 1:
            out.append(
                {
                    "kind": "shape",
                    "fields": {"color": o["color"]},
                    "truth": o["label"],
                    "pool": vocab.get("shapes", []),
                    "key": f"shape{k}",
                }
            )
    if "position" in kinds:
        for i, a in enumerate(objs):
            for j, b in enumerate(objs):
                da, db = desc(a), desc(b)
                if i != j and da and db and (rel := relation(a, b, frame)):
                    out.append(
                        {
                            "kind": "position",
                            "fields": {"a": da, "b": db},
                            "truth": rel,
                            "pool": vocab.get("positions", []),
                            "key": f"pos{i}-{j}",
                        }
                    )
    if "count" in kinds:
        top = max(n_label.values())
        for label, n in sorted(n_label.items()):
            out.append(
                {
                    "kind": "count",
                    "fields": label_fields(label),
                    "truth": str(n),
                    "pool": [str(v) for v in range(max(6, top + 3))],
                    "key": f"count-{label}",
                }
            )
    return [c for c in out if templates.has("questions", f"attr_{c['kind']}")]


def _choices(rng: np.random.Generator, truth: str, pool: list[str], n: int) -> tuple[list[str], int] | None:
    others = [p for p in dict.fromkeys(pool) if p != truth]
    n = min(n, len(others) + 1, len(OPTION_LETTERS))
    if n < 2:
        return None
    picked = [others[int(i)] for i in rng.choice(len(others), size=n - 1, replace=False)]
    opts = [truth, *picked]
    opts = [opts[int(i)] for i in rng.permutation(n)]
    return opts, opts.index(truth)


def build_vqa_samples(
    record: dict[str, Any],
    templates: TemplateSet,
    rng: np.random.Generator,
    *,
    builder: str,
    frame: str,
    sources: list[str],
    kinds: list[str],
    per_record: int,
    n_choices: int,
    shuffle_choices: bool,
    answer_style: str = "letter",
) -> list[Sample]:
    """Shared by ``vqa`` (2D) and ``vqa3d``: up to ``per_record`` distinct questions per record."""
    if answer_style not in ("letter", "text"):
        raise ValueError(f"{builder}: answer_style must be 'letter' or 'text', got {answer_style!r}")
    bad = set(sources) - {"qa", "attributes"}
    if bad:
        raise ValueError(f"{builder}: unknown question source(s) {sorted(bad)}; use qa and/or attributes")
    cands: list[dict[str, Any]] = []
    if "qa" in sources:
        cands += _qa_candidates(record, builder)
    if "attributes" in sources:
        cands += _attribute_candidates(record, templates, kinds, frame)
    if not cands:
        return []
    out = []
    for c in draw_balanced(cands, per_record, rng, key=lambda c: c["kind"]):
        if c["kind"] != "qa":
            qt = templates.pick("questions", f"attr_{c['kind']}", rng)
            question, qid = qt.render(**c["fields"]), qt.id
            made = _choices(rng, c["truth"], c["pool"], n_choices)
            if made is None:
                continue
            choices, gt = made
        else:
            question, qid = c["question"], "qa"
            if "answer" in c:
                wrap = templates.pick("questions", "open", rng)
                a = templates.pick("answers", "open", rng)
                f = {
                    "question": question,
                    "answer": c["answer"],
                    "Answer": c["answer"][:1].upper() + c["answer"][1:],
                }
                out.append(Sample(wrap.render(**f), a.render(**f), f"{qid}+{wrap.id}+{a.id}", f"q{c['key']}"))
                continue
            choices, gt = c["choices"][: len(OPTION_LETTERS)], c["gt"]
            if c["shuffle"] or shuffle_choices:
                truth = choices[gt]
                if c["shuffle"] and len(choices) > n_choices:  # keep the answer, sample the distractors
                    keep = rng.choice(len(choices) - 1, size=n_choices - 1, replace=False) + 1
                    choices = [truth] + [choices[int(i)] for i in keep]
                choices = [choices[int(i)] for i in rng.permutation(len(choices))]
                gt = choices.index(truth)
        wrap = templates.pick("questions", "mc", rng)
        a = templates.pick("answers", "mc" if answer_style == "letter" else "mc_text", rng)
        f = {
            "question": question,
            "options": format_options(choices),
            "letter": OPTION_LETTERS[gt],
            "choice": choices[gt],
        }
        out.append(Sample(wrap.render(**f), a.render(**f), f"{qid}+{wrap.id}+{a.id}", f"q{c['key']}"))
    return out


_PARAMS = {
    "sources": ["qa", "attributes"],
    "kinds": ["color", "shape", "position"],
    "per_record": 1,
    "n_choices": 4,
    "shuffle_choices": False,
    "answer_style": "letter",
}


@register_builder("vqa", version=1, task_type="VQA", modality="image", params=_PARAMS)
def build_vqa(
    record: dict[str, Any],
    templates: TemplateSet,
    rng: np.random.Generator,
    sources: list[str],
    kinds: list[str],
    per_record: int,
    n_choices: int,
    shuffle_choices: bool,
    answer_style: str,
) -> list[Sample]:
    """2D VQA; see the module docstring. ``kinds`` ⊆ color, shape, position, count."""
    return build_vqa_samples(
        record,
        templates,
        rng,
        builder="vqa",
        frame="2d",
        sources=sources,
        kinds=kinds,
        per_record=per_record,
        n_choices=n_choices,
        shuffle_choices=shuffle_choices,
        answer_style=answer_style,
    )
