"""Object point-cloud sources: ModelNet-style class folders, ShapeNet-style flat files, JSON lists."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from lamm.media import POINT_CLOUD_SUFFIXES

from .base import SourceError, check_unique_ids, media_path, need, norm_label, read_json, register_source

# ShapeNetCore v2 synset ids → category names (the 55 classes).
SHAPENET_SYNSETS: dict[str, str] = {
    "02691156": "airplane",
    "02747177": "trash bin",
    "02773838": "bag",
    "02801938": "basket",
    "02808440": "bathtub",
    "02818832": "bed",
    "02828884": "bench",
    "02843684": "birdhouse",
    "02871439": "bookshelf",
    "02876657": "bottle",
    "02880940": "bowl",
    "02924116": "bus",
    "02933112": "cabinet",
    "02942699": "camera",
    "02946921": "can",
    "02954340": "cap",
    "02958343": "car",
    "02992529": "cellphone",
    "03001627": "chair",
    "03046257": "clock",
    "03085013": "keyboard",
    "03207941": "dishwasher",
    "03211117": "display",
    "03261776": "earphone",
    "03325088": "faucet",
    "03337140": "file cabinet",
    "03467517": "guitar",
    "03513137": "helmet",
    "03593526": "jar",
    "03624134": "knife",
    "03636649": "lamp",
    "03642806": "laptop",
    "03691459": "loudspeaker",
    "03710193": "mailbox",
    "03759954": "microphone",
    "03761084": "microwave",
    "03790512": "motorbike",
    "03797390": "mug",
    "03928116": "piano",
    "03938244": "pillow",
    "03948459": "pistol",
    "03991062": "flowerpot",
    "04004475": "printer",
    "04074963": "remote",
    "04090263": "rifle",
    "04099429": "rocket",
    "04225987": "skateboard",
    "04256520": "sofa",
    "04330267": "stove",
    "04379243": "table",
    "04401088": "telephone",
    "04460130": "tower",
    "04468005": "train",
    "04530566": "watercraft",
    "04554684": "washer",
}


def _clouds(folder: Path) -> list[Path]:
    return sorted(f for f in folder.rglob("*") if f.is_file() and f.suffix.lower() in POINT_CLOUD_SUFFIXES)


@register_source("object_folder")
def load_object_folder(
    root: str | os.PathLike,
    pcl_prefix: str | None = None,
    dataset: str = "modelnet",
    split: str | None = None,
    names: dict[str, str] | None = None,
) -> list[dict[str, Any]]:
    """``root/<class>/[<split>/]<file>.npy`` (ModelNet layout; ``<class>`` may be a ShapeNet synset id,
    named through ``names`` or :data:`SHAPENET_SYNSETS`). ``pcl_prefix`` defaults to ``root`` (absolute)."""
    base = Path(root)
    if not base.is_dir():
        raise SourceError(f"{base}: object folder not found")
    prefix = str(base.resolve()) if pcl_prefix is None else pcl_prefix
    out = []
    for cls_dir in sorted(p for p in base.iterdir() if p.is_dir()):
        folder = cls_dir / split if split else cls_dir
        if not folder.is_dir():
            continue
        raw = cls_dir.name
        label = (names or {}).get(raw) or SHAPENET_SYNSETS.get(raw) or raw
        for f in _clouds(folder):
            rel = f.relative_to(base).as_posix()
            out.append(
                {
                    "src_dataset": dataset,
                    "src_id": f.relative_to(base).with_suffix("").as_posix(),
                    "pcl": media_path(prefix, rel),
                    "label": norm_label(label),
                    **({"split": split} if split else {}),
                }
            )
    if not out:
        raise SourceError(
            f"{base}: no point clouds found (expected {base}/<class>/[{split or '<split>'}/]<file>.npy)"
        )
    return check_unique_ids(out, str(base))


_SHAPENET_FLAT = re.compile(r"^(\d{8})_([0-9a-zA-Z]+)")


@register_source("shapenet_flat")
def load_shapenet_flat(
    root: str | os.PathLike,
    pcl_prefix: str | None = None,
    dataset: str = "ShapeNet",
    names: dict[str, str] | None = None,
) -> list[dict[str, Any]]:
    """Flat files named ``{synset}_{model}_{npoints}.npy`` (LAMM's ``shapenet_pcls``)."""
    base = Path(root)
    if not base.is_dir():
        raise SourceError(f"{base}: folder not found")
    prefix = str(base.resolve()) if pcl_prefix is None else pcl_prefix
    table = {**SHAPENET_SYNSETS, **(names or {})}
    out = []
    for f in _clouds(base):
        m = _SHAPENET_FLAT.match(f.name)
        if not m:
            raise SourceError(f"{f}: name does not look like '{{synset}}_{{model}}_N.npy'")
        if m.group(1) not in table:
            raise SourceError(f"{f}: unknown synset {m.group(1)!r}; pass its name in 'names'")
        out.append(
            {
                "src_dataset": dataset,
                "src_id": f"{m.group(1)}_{m.group(2)}",
                "pcl": media_path(prefix, f.relative_to(base).as_posix()),
                "label": norm_label(table[m.group(1)]),
            }
        )
    return check_unique_ids(out, str(base))


@register_source("object_list")
def load_object_list(
    path: str | os.PathLike, pcl_prefix: str = "", dataset: str = "objects3d"
) -> list[dict[str, Any]]:
    """A JSON list of ``{"pcl", "label"}`` (optional ``id``, ``captions``, ``color``, ``split``)."""
    data = read_json(path)
    if not isinstance(data, list):
        raise SourceError(f"{path}: expected a JSON list of {{pcl, label}}")
    out = []
    for i, e in enumerate(data):
        where = f"{path}: entry {i}"
        pcl = str(need(e, "pcl", where))
        rec = {
            "src_dataset": dataset,
            "src_id": str(e.get("id") or Path(pcl).with_suffix("").as_posix()),
            "pcl": media_path(pcl_prefix, pcl),
            "label": norm_label(need(e, "label", where)),
        }
        rec.update({k: e[k] for k in ("captions", "color", "split", "knowledge") if k in e})
        out.append(rec)
    return check_unique_ids(out, str(path))
