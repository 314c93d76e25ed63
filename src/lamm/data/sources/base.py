"""Shared by the source readers: the registry, errors, JSON reading, media paths.

A source reader turns a dataset's own annotation files into plain dicts, one per image / point cloud
("source records"), in one normalised schema that the builders and generators read:

==================  ===========================================================================
``src_dataset``     dataset name (provenance), e.g. ``coco2017``
``src_id``          id of the image / cloud / scene within the dataset (a string)
``image`` | ``pcl``  media path as it will appear in instruction records (relative to the vision
                    root, or absolute)
``split``           the dataset's own split, when it has one
``width, height``   image size in pixels (2D)
``label``           class of the whole image / object cloud
``objects``         ``[{"label", "bbox", ...}]``: 2D ``bbox`` = ``[x1, y1, x2, y2]`` normalised to
                    0–1; 3D ``bbox`` = ``[cx, cy, cz, lx, ly, lz]`` metres. Optional ``color``,
                    ``keypoints`` (``[[x, y, v]]`` in 0–1), ``object_id``, ``center``. An object of
                    unknown class is ``{"label": None, "unnamed": True, "bbox", ...}`` (see UNNAMED)
``keypoint_names``  names of the keypoints, in order
``counts``          ``{label: n}`` (counting data given as points or totals)
``plurals``         ``{label: plural}`` where the dataset gives the plural (FSC147 class names)
``crowd_labels``    labels with uncounted crowd regions (their counts are unknown)
``words``           words written in the image, reading order (OCR)
``captions``        reference sentences; ``knowledge``: encyclopedic text (C2)
``qa``              ``[{"question", "answer"}]`` or ``[{"question", "choices", "answer_index"}]``
``referrals``       ``[{"description", "object_id" | "bbox", "label"}]`` (3D grounding)
``vocab``           optional word lists (``colors``, ``shapes``, ``positions``) for distractors
==================  ===========================================================================
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lamm.registry import Registry


class SourceError(ValueError):
    """An annotation file cannot be read; the message names the file, the entry and the field."""


# The marker of an object whose class the annotations do not give (e.g. a ScanNet box that no ScanRefer
# referral names): builders that would have to print its class skip the record instead (not applicable).
UNNAMED: dict[str, Any] = {"label": None, "unnamed": True}


SourceFn = Callable[..., list[dict[str, Any]]]
SOURCES: Registry[SourceFn] = Registry("source")


def register_source(name: str) -> Callable[[SourceFn], SourceFn]:
    """Register a reader under ``name`` (the ``type`` of a source in a build config)."""
    return SOURCES.register(name)


def read_json(path: str | os.PathLike) -> Any:
    """Parse a JSON file; errors name the file and the position."""
    p = Path(path)
    if not p.exists():
        raise SourceError(f"{p}: annotation file not found")
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise SourceError(f"{p}: invalid JSON at line {e.lineno} column {e.colno}: {e.msg}") from None


def media_path(prefix: str | os.PathLike | None, rel: str) -> str:
    """Join a media ``prefix`` (a folder relative to the vision root, or absolute) and a file name."""
    if prefix is None or str(prefix) == "":
        return rel.replace(os.sep, "/")
    return (str(prefix).rstrip("/\\") + "/" + rel.lstrip("/")).replace(os.sep, "/")


def need(entry: Any, key: str, where: str) -> Any:
    """``entry[key]`` or a :class:`SourceError` naming ``where`` (file + entry) and the field."""
    if not isinstance(entry, dict) or key not in entry or entry[key] is None:
        raise SourceError(f"{where}: missing field {key!r}")
    return entry[key]


def number(value: Any, where: str, *, integer: bool = False, strings: bool = False) -> Any:
    """``value`` as a finite ``float`` (``int`` with ``integer``), or a :class:`SourceError` naming
    ``where`` (file, record and field, e.g. ``"inst.json: annotations[3].bbox[2]"``).

    JSON numbers are required: ``None``, booleans and strings ("640", "n/a") are errors, unless
    ``strings`` allows numeric strings (ids that datasets write as text, e.g. ScanRefer's ``"12"``).

    >>> number(3, "f: entry 0.width"), number("12", "f: entry 0.object_id", integer=True, strings=True)
    (3.0, 12)
    """
    v = value
    if strings and isinstance(v, str):
        try:
            v = int(v.strip()) if integer else float(v.strip())
        except ValueError:
            v = value
    ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    if ok and integer and isinstance(v, float):
        ok = v.is_integer()
    if not ok:
        what = "an integer" if integer else "a number"
        raise SourceError(f"{where}: expected {what}, got {value!r}; fix the value in the annotation file")
    return int(v) if integer else float(v)


def numbers(values: Any, where: str, length: int | None = None, *, what: str = "") -> list[float]:
    """A list of numbers (see :func:`number`), each error naming ``where[k]``; ``length`` is checked
    when given (``what`` describes the expected layout, e.g. ``"[x, y, w, h]"``)."""
    if not isinstance(values, (list, tuple)) or (length is not None and len(values) != length):
        shape = what or (f"a list of {length} numbers" if length is not None else "a list of numbers")
        raise SourceError(f"{where}: expected {shape}, got {values!r}")
    return [number(v, f"{where}[{k}]") for k, v in enumerate(values)]


def norm_label(label: Any) -> str:
    """Category names as words: ``night_stand`` → ``night stand``; surrounding space removed."""
    return " ".join(str(label).replace("_", " ").split())


def box_xywh_to_norm(box: Any, width: float, height: float, where: str, decimals: int = 4) -> list[float]:
    """COCO ``[x, y, w, h]`` pixels → ``[x1, y1, x2, y2]`` in 0–1 (clipped to the image).

    ``where`` names the box (file, record, field); a bad value raises a :class:`SourceError` naming it."""
    x, y, w, h = numbers(box, where, 4, what="bbox [x, y, w, h]")
    if width is None or height is None:
        raise SourceError(f"{where}: image width/height missing; cannot normalise the box")
    width, height = number(width, f"{where}: image width"), number(height, f"{where}: image height")
    if width <= 0 or height <= 0:
        raise SourceError(f"{where}: image width/height is zero or negative; cannot normalise the box")
    if w < 0 or h < 0:
        raise SourceError(f"{where}: bbox has a negative width or height: {box!r}")

    def c(v: float) -> float:
        return round(min(1.0, max(0.0, v)), decimals)

    return [c(x / width), c(y / height), c((x + w) / width), c((y + h) / height)]


def box_xyxy_to_norm(box: Any, width: float, height: float, where: str, decimals: int = 4) -> list[float]:
    """Pixel ``[x1, y1, x2, y2]`` → normalised; corners are sorted."""
    x1, y1, x2, y2 = numbers(box, where, 4, what="bbox [x1, y1, x2, y2]")
    return box_xywh_to_norm(
        [min(x1, x2), min(y1, y2), abs(x2 - x1), abs(y2 - y1)], width, height, where, decimals
    )


def check_unique_ids(records: list[dict[str, Any]], source: str) -> list[dict[str, Any]]:
    """Source records must have unique ``src_id``: a clash would merge two images' provenance."""
    seen: dict[str, int] = {}
    for i, r in enumerate(records):
        sid = r["src_id"]
        if sid in seen:
            raise SourceError(f"{source}: src_id {sid!r} appears twice (records {seen[sid]} and {i})")
        seen[sid] = i
    return records
