"""Benchmark questions and referring expressions over synthetic 2D and 3D scenes.

Turns a :class:`~lamm.data.synthetic.shapes2d.Scene2D` or :class:`~lamm.data.synthetic.scenes3d.Scene3D`
into the ground-truth fields of LAMM-Benchmark records (``query`` plus ``label`` / ``object`` / ``num`` /
``word_list`` / ``gt_choice`` + ``gt_choices``). Every question is unambiguous by construction:
descriptions pick out one object, spatial relations need clear margins, and 3D expressions are checked
again with :func:`resolve`. Multiple-choice queries list 4 options as ``(A) .. (D)`` in a seeded order.
"""

from __future__ import annotations

import math

import numpy as np

from lamm.data.records import format_options
from lamm.data.synthetic.scenes3d import SHAPES_3D, Object3D
from lamm.data.synthetic.shapes2d import PALETTE, SHAPES_2D, Object2D, Scene2D, plural

# --- 2D ---------------------------------------------------------------------------------------------

POSITIONS_2D = ("left", "right", "above", "below")


def choices(rng: np.random.Generator, correct: str, pool: list[str] | tuple[str, ...], n: int = 4):
    """``n`` distinct options: ``correct`` plus ``n-1`` others from ``pool``, in a seeded random order.

    Returns ``(options, gt_choice)`` with ``gt_choice`` the 0-based index of ``correct``.
    """
    others = [p for p in dict.fromkeys(pool) if p != correct]
    if len(others) < n - 1:
        raise ValueError(f"need {n - 1} distractors for {correct!r}, the pool has {len(others)}")
    picked = [others[int(i)] for i in rng.choice(len(others), size=n - 1, replace=False)]
    options = [correct, *picked]
    options = [options[int(i)] for i in rng.permutation(n)]
    return options, options.index(correct)


def norm_box(bbox: tuple[int, int, int, int], width: int, height: int) -> list[float]:
    """COCO pixel box [x, y, w, h] -> LAMM box [x1, y1, x2, y2] in [0, 1], rounded to 4 decimals."""
    x, y, w, h = bbox
    return [round(x / width, 4), round(y / height, 4), round((x + w) / width, 4), round((y + h) / height, 4)]


def relation_2d(a: Object2D, b: Object2D, size: int) -> str | None:
    """Where ``a`` is relative to ``b`` (left/right/above/below), or None when not clear-cut: the
    centres must differ by >= 15% of the image along one axis and by 1.5x more than along the other."""
    dx, dy = a.keypoint[0] - b.keypoint[0], a.keypoint[1] - b.keypoint[1]
    if abs(dx) >= 1.5 * abs(dy) and abs(dx) >= 0.15 * size:
        return "left" if dx < 0 else "right"
    if abs(dy) >= 1.5 * abs(dx) and abs(dy) >= 0.15 * size:
        return "above" if dy < 0 else "below"
    return None


def tasks_2d(scene: Scene2D, rng: np.random.Generator) -> dict[str, tuple[dict, str]]:
    """Ground-truth fields (``query`` + the LAMM answer field) of each benchmark task for ``scene``.

    Keys: classification, detection, counting, locating, vqa, and ocr when words were drawn. Each
    value is ``(fields, kind)`` where ``kind`` is the class or question type, for statistics.
    """
    size = scene.image.width
    objs = scene.objects
    dom = scene.dominant
    out: dict[str, tuple[dict, str]] = {
        "classification": ({"query": "What is the largest shape in the image?", "label": dom.category},
                           dom.category),
        "detection": ({"query": "Identify all the objects in the image and give their bounding boxes.",
                       "object": [{"label": o.category, "bbox": norm_box(o.bbox, size, size)} for o in objs]},
                      "all"),
    }
    present = sorted({o.category for o in objs}, key=SHAPES_2D.index)
    if rng.random() < 0.5:
        out["counting"] = ({"query": "How many objects are there in this image?", "num": len(objs)}, "objects")
    else:
        c = present[int(rng.integers(len(present)))]
        out["counting"] = ({"query": f"How many {plural(c)} are there in this image?",
                            "num": sum(o.category == c for o in objs)}, c)
    if scene.words:
        out["ocr"] = ({"query": "Please recognize all the words in the image.", "word_list": list(scene.words)},
                      "words")
    c = present[int(rng.integers(len(present)))]
    out["locating"] = ({"query": f"Point out the location of every {c} in the image.",
                        "object": [{"label": c, "bbox": norm_box(o.bbox, size, size)}
                                   for o in objs if o.category == c]}, c)

    n_of = {k: sum(o.category == k for o in objs) for k in present}
    unique_shape = [o for o in objs if n_of[o.category] == 1]
    pairs = [(a, b, rel) for a in objs for b in objs if a is not b and (rel := relation_2d(a, b, size))]
    kinds = (["color"] if unique_shape else []) + ["shape"] + (["position"] if pairs else [])
    kind = kinds[int(rng.integers(len(kinds)))]
    if kind == "color":
        o = unique_shape[int(rng.integers(len(unique_shape)))]
        question = f"What color is the {o.category}?"
        options, gt = choices(rng, o.color, list(PALETTE))
    elif kind == "shape":  # colours are distinct within an image, so "the <colour> object" is unique
        o = objs[int(rng.integers(len(objs)))]
        question = f"What shape is the {o.color} object?"
        options, gt = choices(rng, o.category, SHAPES_2D)
    else:
        a, b, rel = pairs[int(rng.integers(len(pairs)))]
        question = f"Where is the {a.color} {a.category} relative to the {b.color} {b.category}?"
        options, gt = choices(rng, rel, POSITIONS_2D)
    out["vqa"] = ({"query": f"Question: {question} Options: {format_options(options)}",
                   "gt_choice": gt, "gt_choices": options}, kind)
    return out


# --- 3D ---------------------------------------------------------------------------------------------
# A description is (color, shape) with either part None; an
# expression is {"text", "target": desc, "relation": None | RELATIONS[i], "anchor": desc | None}.

RELATIONS = ("left of", "right of", "in front of", "behind", "closest to")
REL_MARGIN = 0.15  # metres a target must be clearly on the named side (and every rival on the other)
CLOSEST_GAP = 0.3  # metres the closest object must beat the runner-up by


def describe(desc: tuple[str | None, str | None]) -> str:
    """``("red", "cube")`` -> "the red cube"; ``(None, "cube")`` -> "the cube"; ``("red", None)`` ->
    "the red object"."""
    color, shape = desc
    return "the " + " ".join(w for w in (color, shape or "object") if w)


def _matches(desc, obj: Object3D) -> bool:
    return (desc[0] is None or obj.color == desc[0]) and (desc[1] is None or obj.category == desc[1])


def _side(relation: str, obj: Object3D, anchor: Object3D) -> float:
    """Signed distance (metres) by which ``obj`` is on ``relation``'s side of ``anchor`` (> 0: it is)."""
    axis, sign = {"left of": (0, -1), "right of": (0, 1), "in front of": (1, -1), "behind": (1, 1)}[relation]
    return sign * (obj.center[axis] - anchor.center[axis])


def _dist(a: Object3D, b: Object3D) -> float:
    return math.hypot(a.center[0] - b.center[0], a.center[1] - b.center[1])


def resolve(expr: dict, objects: list[Object3D]) -> list[int]:
    """Indices of the objects ``expr`` can refer to under its plain reading (no margins): exactly one
    index means the expression is unambiguous. With several anchors, the union over anchors."""
    cands = [i for i, o in enumerate(objects) if _matches(expr["target"], o)]
    if expr.get("relation") is None:
        return cands
    found: set[int] = set()
    for j, anchor in enumerate(objects):
        if not _matches(expr["anchor"], anchor):
            continue
        cs = [i for i in cands if i != j]
        if expr["relation"] == "closest to":
            if cs:
                best = min(_dist(objects[i], anchor) for i in cs)
                found |= {i for i in cs if _dist(objects[i], anchor) <= best + 1e-9}
        else:
            found |= {i for i in cs if _side(expr["relation"], objects[i], anchor) > 0}
    return sorted(found)


def unique_desc(j: int, objects: list[Object3D]):
    """The shortest description (shape, colour + shape, colour) that picks out only object ``j``."""
    o = objects[j]
    for desc in ((None, o.category), (o.color, o.category), (o.color, None)):
        if [i for i, x in enumerate(objects) if _matches(desc, x)] == [j]:
            return desc
    return None


def referring_expressions(objects: list[Object3D]) -> list[list[dict]]:
    """Every unambiguous expression for each object (list per object, possibly empty).

    Plain descriptions are kept when they match only the target. Relational ones ("the cube left of
    the sphere") need a uniquely described anchor, the target clearly (``REL_MARGIN``) on the named side
    and every rival of the same description clearly on the other side, or, for "closest to", nearer by
    ``CLOSEST_GAP``; each is then checked with :func:`resolve`.
    """
    out: list[list[dict]] = []
    anchors = {j: unique_desc(j, objects) for j in range(len(objects))}
    for t, obj in enumerate(objects):
        exprs = []
        for desc in ((None, obj.category), (obj.color, obj.category), (obj.color, None)):
            if [i for i, x in enumerate(objects) if _matches(desc, x)] == [t]:
                exprs.append({"text": describe(desc), "target": desc, "relation": None, "anchor": None})
        for j, adesc in anchors.items():
            if j == t or adesc is None:
                continue
            a = objects[j]
            for desc in ((None, obj.category), (obj.color, obj.category)):
                rivals = [x for i, x in enumerate(objects) if i not in (t, j) and _matches(desc, x)]
                for rel in RELATIONS:
                    if rel == "closest to":
                        ok = all(_dist(obj, a) + CLOSEST_GAP <= _dist(x, a) for x in rivals)
                    else:
                        ok = _side(rel, obj, a) >= REL_MARGIN and all(_side(rel, x, a) <= -REL_MARGIN
                                                                     for x in rivals)
                    expr = {"text": f"{describe(desc)} {rel} {describe(adesc)}", "target": desc,
                            "relation": rel, "anchor": adesc}
                    if ok and resolve(expr, objects) == [t]:
                        exprs.append(expr)
        out.append(exprs)
    return out


def pick_expression(rng: np.random.Generator, exprs: list[dict], relational_share: float = 0.6) -> dict | None:
    """One expression, relational with probability ``relational_share`` when there is one."""
    rel = [e for e in exprs if e["relation"] is not None]
    plain = [e for e in exprs if e["relation"] is None]
    pool = rel if rel and (not plain or rng.random() < relational_share) else plain
    return pool[int(rng.integers(len(pool)))] if pool else None


def _ordered_choices(rng, correct: str, preferred: list[str]) -> tuple[list[str], int]:
    """4 options: ``correct`` + the first 3 distinct distractors of ``preferred``, in a seeded order."""
    picked = [d for d in dict.fromkeys(preferred) if d != correct][:3]
    return choices(rng, correct, picked)


def _count_choices(rng, n: int) -> tuple[list[str], int]:
    return choices(rng, str(n), [str(v) for v in range(max(0, n - 3), n + 5)])


def vqa_3d(
    rng: np.random.Generator, objs: list[Object3D], exprs: list[list[dict]], max_questions: int = 3
) -> list[tuple[str, dict]]:
    """Up to ``max_questions`` multiple-choice questions of different types about a scene's objects
    ``objs``, given their :func:`referring_expressions` ``exprs``.

    Types: ``color`` (of an object described without its colour), ``count_all``, ``count_shape``,
    ``shape`` (of the only object of a colour), ``closest`` (which object is nearest a uniquely described
    anchor, by ``CLOSEST_GAP``; options name objects by colour + shape, the answer's pair being unique,
    distractors the scene's other objects first). Returns ``(type, {"query", "gt_choice",
    "gt_choices"})`` with 4 options each, ``gt_choice`` 0-based.
    """
    colorless = [e for es in exprs for e in es if e["target"][0] is None]
    lone_colors = [c for c in PALETTE if sum(o.color == c for o in objs) == 1]
    closest = []
    for j, anchor in enumerate(objs):
        adesc = unique_desc(j, objs)
        near = sorted((i for i in range(len(objs)) if i != j), key=lambda i: _dist(objs[i], anchor))
        if adesc is None or not near:
            continue
        best = objs[near[0]]
        clear = len(near) == 1 or _dist(best, anchor) + CLOSEST_GAP <= _dist(objs[near[1]], anchor)
        if clear and sum(o.color == best.color and o.category == best.category for o in objs) == 1:
            closest.append((j, best))
    feasible = [t for t, ok in (("color", colorless), ("count_all", True), ("count_shape", True),
                                ("shape", lone_colors), ("closest", closest)) if ok]
    out = []
    for t in [feasible[int(i)] for i in rng.permutation(len(feasible))[:max_questions]]:
        if t == "color":
            e = colorless[int(rng.integers(len(colorless)))]
            question = f"What color is {e['text']}?"
            options, gt = choices(rng, objs[resolve(e, objs)[0]].color, list(PALETTE))
        elif t == "count_all":
            question = "How many objects are there in the scene?"
            options, gt = _count_choices(rng, len(objs))
        elif t == "count_shape":
            present = sorted({o.category for o in objs}, key=SHAPES_3D.index)
            k = present[int(rng.integers(len(present)))]
            question = f"How many {plural(k)} are there in the scene?"
            options, gt = _count_choices(rng, sum(o.category == k for o in objs))
        elif t == "shape":
            c = lone_colors[int(rng.integers(len(lone_colors)))]
            question = f"What shape is the {c} object?"
            options, gt = choices(rng, next(o.category for o in objs if o.color == c), SHAPES_3D)
        else:
            j, best = closest[int(rng.integers(len(closest)))]
            others = [f"{o.color} {o.category}" for i, o in enumerate(objs) if i != j]
            absent = [f"{c} {k}" for c in PALETTE for k in SHAPES_3D]
            absent = [absent[int(i)] for i in rng.permutation(len(absent))]
            question = f"Which object is closest to {describe(unique_desc(j, objs))}?"
            options, gt = _ordered_choices(rng, f"{best.color} {best.category}", others + absent)
        out.append((t, {"query": f"{question} Options: {format_options(options)}",
                        "gt_choice": gt, "gt_choices": options}))
    return out
