"""Counting sources: FSC147-style point annotations, or a generic list of counts / points / boxes.

FSC147 (``annotation_FSC147_384.json`` + ``ImageClasses_FSC147.txt`` + optional
``Train_Test_Val_FSC_147.json``) gives one class and a dot per instance: the count is the number of
dots. Its class names are plurals ("sea shells", "apples"): the record's label is the singular
("sea shell", derived by :func:`lamm.data.builders.inflect.singular`) and ``plurals`` keeps the given
plural, so counting templates read "How many sea shells ..." and "There is 1 sea shell"; a name that is
not a plural ("brick") is the label as it is.

The generic format is a JSON list of ``{"image", "label", "count" | "points" | "boxes"}`` (several
entries may name the same image with different labels). Box-annotated counting sets (Locount-style)
in COCO format load with the ``coco`` source; the counting builder tallies their objects.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from lamm.data.builders.inflect import is_plural, singular

from .base import SourceError, check_unique_ids, media_path, need, norm_label, read_json, register_source


@register_source("fsc147")
def load_fsc147(
    annotations: str | os.PathLike,
    classes: str | os.PathLike,
    image_prefix: str = "",
    splits: str | os.PathLike | None = None,
    split: str | None = None,
    dataset: str = "fsc147",
) -> list[dict[str, Any]]:
    """FSC147: ``counts = {class: len(points)}`` per image; ``split`` selects one of ``splits``' lists."""
    ann = read_json(annotations)
    if not isinstance(ann, dict):
        raise SourceError(f"{annotations}: expected a mapping image name → {{points, ...}}")
    cpath = Path(classes)
    if not cpath.exists():
        raise SourceError(f"{cpath}: class list not found")
    names: dict[str, tuple[str, str | None]] = {}  # image -> (label, given plural)
    for n, line in enumerate(cpath.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            parts = line.split("\t") if "\t" in line else line.split(None, 1)
            if len(parts) != 2:
                raise SourceError(f"{cpath}: line {n}: expected 'image<TAB>class', got {line!r}")
            given = norm_label(parts[1])
            names[parts[0].strip()] = (singular(given), given) if is_plural(given) else (given, None)
    keep = None
    if split is not None:
        if splits is None:
            raise SourceError("fsc147 source: 'split' needs the 'splits' file (Train_Test_Val_FSC_147.json)")
        sp = read_json(splits)
        if split not in sp:
            raise SourceError(f"{splits}: no split {split!r}; splits: {', '.join(sp)}")
        keep = set(sp[split])
    out = []
    for name in sorted(ann):
        if keep is not None and name not in keep:
            continue
        where = f"{annotations}: {name!r}"
        pts = need(ann[name], "points", where)
        if name not in names:
            raise SourceError(f"{where}: no class for this image in {cpath}")
        if not isinstance(pts, list):
            raise SourceError(f"{where}.points: expected a list of [x, y] points, got {type(pts).__name__}")
        label, given_plural = names[name]
        out.append(
            {
                "src_dataset": dataset,
                "src_id": Path(name).stem,
                "image": media_path(image_prefix, name),
                "counts": {label: len(pts)},
                "points": {label: pts},
                **({"plurals": {label: given_plural}} if given_plural else {}),
                **({"split": split} if split else {}),
            }
        )
    return check_unique_ids(out, str(annotations))


@register_source("counting")
def load_counting(
    path: str | os.PathLike, image_prefix: str = "", dataset: str = "counting"
) -> list[dict[str, Any]]:
    """Generic counting list (see the module docstring); entries of one image are merged."""
    data = read_json(path)
    if not isinstance(data, list):
        raise SourceError(f"{path}: expected a JSON list of {{image, label, count|points|boxes}}")
    by_image: dict[str, dict[str, Any]] = {}
    for i, e in enumerate(data):
        where = f"{path}: entry {i}"
        image = str(need(e, "image", where))
        label = norm_label(need(e, "label", where))
        if "count" in e:
            n = e["count"]
        elif "points" in e:
            n = len(e["points"])
        elif "boxes" in e:
            n = len(e["boxes"])
        else:
            raise SourceError(f"{where}: needs one of 'count', 'points', 'boxes'")
        if not isinstance(n, int) or isinstance(n, bool) or n < 0:
            raise SourceError(f"{where}.count: must be a non-negative integer, got {n!r}")
        rec = by_image.setdefault(
            image,
            {
                "src_dataset": dataset,
                "src_id": str(e.get("id") or Path(image).with_suffix("").as_posix()),
                "image": media_path(image_prefix, image),
                "counts": {},
            },
        )
        if label in rec["counts"]:
            raise SourceError(f"{where}: image {image!r} has label {label!r} twice")
        rec["counts"][label] = n
    return check_unique_ids(list(by_image.values()), str(path))
