"""Classification sources: a folder per class, or a CSV / JSON list of (image, label)."""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any

from lamm.media import IMAGE_SUFFIXES

from .base import SourceError, check_unique_ids, media_path, norm_label, read_json, register_source


@register_source("image_folder")
def load_image_folder(
    root: str | os.PathLike,
    image_prefix: str | None = None,
    dataset: str = "imagefolder",
    split: str | None = None,
) -> list[dict[str, Any]]:
    """``root/<class>/<image>`` (torchvision ImageFolder layout), or ``root/<split>/<class>/<image>``
    when ``split`` is given. ``image_prefix`` (default: ``root`` itself, absolute) forms the paths."""
    base = Path(root) / split if split else Path(root)
    if not base.is_dir():
        raise SourceError(f"{base}: image folder not found")
    prefix = str(Path(root).resolve()) if image_prefix is None else image_prefix
    out = []
    for cls_dir in sorted(p for p in base.iterdir() if p.is_dir()):
        for f in sorted(cls_dir.rglob("*")):
            if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file():
                rel = f.relative_to(Path(root)).as_posix()
                out.append(
                    {
                        "src_dataset": dataset,
                        "src_id": f.relative_to(base).with_suffix("").as_posix(),
                        "image": media_path(prefix, rel),
                        "label": norm_label(cls_dir.name),
                        **({"split": split} if split else {}),
                    }
                )
    if not out:
        raise SourceError(f"{base}: no images found in class sub-folders (expected {base}/<class>/<image>)")
    return check_unique_ids(out, str(base))


@register_source("label_list")
def load_label_list(
    path: str | os.PathLike,
    image_prefix: str = "",
    dataset: str = "labels",
    image_key: str = "image",
    label_key: str = "label",
    label_names: dict[str, str] | None = None,
) -> list[dict[str, Any]]:
    """A CSV with a header (``image_key``, ``label_key`` columns), a JSON list of objects, or a JSON
    mapping ``{image: label}``. ``label_names`` maps raw labels (e.g. class ids) to names; extra
    columns ``knowledge`` and ``split`` are kept."""
    p = Path(path)
    rows: list[dict[str, Any]]
    if p.suffix.lower() == ".csv":
        if not p.exists():
            raise SourceError(f"{p}: label file not found")
        with open(p, newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
    else:
        data = read_json(p)
        rows = [{image_key: k, label_key: v} for k, v in data.items()] if isinstance(data, dict) else data
    if not isinstance(rows, list):
        raise SourceError(f"{p}: expected a list of {{{image_key}, {label_key}}} entries")
    out = []
    for i, row in enumerate(rows):
        where = f"{p}: entry {i}"
        if not isinstance(row, dict) or not row.get(image_key) or row.get(label_key) in (None, ""):
            raise SourceError(f"{where}: needs non-empty {image_key!r} and {label_key!r}")
        raw = str(row[label_key])
        if label_names is not None:
            if raw not in label_names:
                raise SourceError(f"{where}: label {raw!r} is not in label_names")
            raw = label_names[raw]
        rec = {
            "src_dataset": dataset,
            "src_id": str(row.get("id") or Path(str(row[image_key])).with_suffix("").as_posix()),
            "image": media_path(image_prefix, str(row[image_key])),
            "label": norm_label(raw),
        }
        for k in ("knowledge", "split"):
            if row.get(k):
                rec[k] = row[k]
        out.append(rec)
    return check_unique_ids(out, str(p))
