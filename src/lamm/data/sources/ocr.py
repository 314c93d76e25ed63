"""OCR sources: Street View Text XML, TextOCR JSON (the ground truth of TextVQA images), word lists.

Words are put in reading order: lines top to bottom (a word joins a line when its vertical centre lies
within the line's height), left to right within a line.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from .base import SourceError, check_unique_ids, media_path, need, numbers, read_json, register_source


def reading_order(words: list[tuple[str, list[float]]]) -> list[str]:
    """Sort ``(word, [x, y, w, h])`` into reading order.

    >>> reading_order([("B", [50, 0, 10, 10]), ("C", [0, 30, 10, 10]), ("A", [0, 2, 10, 10])])
    ['A', 'B', 'C']
    """
    lines: list[list[tuple[str, list[float]]]] = []
    for w in sorted(words, key=lambda t: t[1][1] + t[1][3] / 2):
        cy = w[1][1] + w[1][3] / 2
        if lines:
            top = min(b[1] for _, b in lines[-1])
            bottom = max(b[1] + b[3] for _, b in lines[-1])
            if top <= cy <= bottom:
                lines[-1].append(w)
                continue
        lines.append([w])
    return [t for line in lines for t, _ in sorted(line, key=lambda t: t[1][0])]


@register_source("svt")
def load_svt(xml: str | os.PathLike, image_prefix: str = "", dataset: str = "svt") -> list[dict[str, Any]]:
    """SVT ``train.xml`` / ``test.xml``: ``<image><imageName>`` with
    ``<taggedRectangle x y width height><tag>``."""
    p = Path(xml)
    if not p.exists():
        raise SourceError(f"{p}: SVT XML not found")
    try:
        root = ET.parse(p).getroot()
    except ET.ParseError as e:
        raise SourceError(f"{p}: not valid XML: {e}") from None
    out = []
    for i, img in enumerate(root.iter("image")):
        name = (img.findtext("imageName") or "").strip()
        if not name:
            raise SourceError(f"{p}: <image> {i} has no <imageName>")
        words = []
        for j, rect in enumerate(img.iter("taggedRectangle")):
            tag = (rect.findtext("tag") or "").strip()
            try:
                box = [float(rect.get(k, "nan")) for k in ("x", "y", "width", "height")]
            except ValueError:
                raise SourceError(
                    f"{p}: image {name!r} rectangle {j}: x/y/width/height must be numbers"
                ) from None
            if tag:
                words.append((tag, box))
        out.append(
            {
                "src_dataset": dataset,
                "src_id": Path(name).with_suffix("").as_posix(),
                "image": media_path(image_prefix, name),
                "words": reading_order(words),
            }
        )
    return check_unique_ids(out, str(p))


@register_source("textocr")
def load_textocr(
    path: str | os.PathLike, image_prefix: str = "", dataset: str = "textocr", min_words: int = 1
) -> list[dict[str, Any]]:
    """TextOCR JSON (``imgs``, ``anns`` with ``utf8_string`` and ``bbox``); illegible words ("." ) dropped."""
    data = read_json(path)
    if not isinstance(data, dict) or "imgs" not in data or "anns" not in data:
        raise SourceError(f"{path}: expected TextOCR JSON with 'imgs' and 'anns'")
    words: dict[str, list[tuple[str, list[float]]]] = {k: [] for k in data["imgs"]}
    for aid, ann in data["anns"].items():
        where = f"{path}: anns[{aid!r}]"
        iid = str(need(ann, "image_id", where))
        text = str(need(ann, "utf8_string", where)).strip()
        if iid not in words:
            raise SourceError(f"{where}: image_id {iid!r} not in 'imgs'")
        if text and text != ".":
            words[iid].append((text, numbers(need(ann, "bbox", where), f"{where}.bbox", 4)))
    out = []
    for iid in sorted(words):
        if len(words[iid]) < min_words:
            continue
        img = data["imgs"][iid]
        out.append(
            {
                "src_dataset": dataset,
                "src_id": iid,
                "image": media_path(image_prefix, str(need(img, "file_name", f"{path}: imgs[{iid!r}]"))),
                "width": img.get("width"),
                "height": img.get("height"),
                "words": reading_order(words[iid]),
            }
        )
    return check_unique_ids(out, str(path))


@register_source("word_list")
def load_word_lists(
    path: str | os.PathLike, image_prefix: str = "", dataset: str = "ocr"
) -> list[dict[str, Any]]:
    """A JSON list of ``{"image", "words"}`` (or LAMM's OCR benchmark shape ``{"image", "word_list"}``)."""
    data = read_json(path)
    if not isinstance(data, list):
        raise SourceError(f"{path}: expected a JSON list of {{image, words}}")
    out = []
    for i, e in enumerate(data):
        where = f"{path}: entry {i}"
        ws = e.get("words", e.get("word_list")) if isinstance(e, dict) else None
        if not isinstance(ws, list) or not all(isinstance(w, str) for w in ws):
            raise SourceError(f"{where}: 'words' must be a list of strings")
        image = str(need(e, "image", where))
        out.append(
            {
                "src_dataset": dataset,
                "src_id": str(e.get("id") or Path(image).with_suffix("").as_posix()),
                "image": media_path(image_prefix, image),
                "words": list(ws),
            }
        )
    return check_unique_ids(out, str(path))
