"""Write a synthetic 2D + 3D dataset: media, raw annotations, LAMM-Benchmark files and statistics.

Layout under the output root ``OUT`` (which is also the vision / benchmark root: every ``image`` /
``pcl`` / ``file_name`` / ``file`` path below is relative to it)::

    synth_config.yaml                           the resolved SynthConfig
    stats.json                                  counts per split, task and class (see synthesize)
    2d/images/{split}/{image_id:06d}.png        RGB, image_size x image_size
    2d/annotations/{split}.json                 COCO-style: images, annotations, categories
    3d/objects/{split}/{object_id}.npy          float32 (points_per_object, 6): xyz metres + rgb 0-1
    3d/scenes/{split}/{scene_id}.npy            float32 (points_per_scene, 6)
    3d/scenes/{split}/{scene_id}_aligned_bbox.npy  float32 (K, 8): cx cy cz dx dy dz label_id object_id
    3d/annotations/objects_{split}.json, scenes_{split}.json
    benchmark/{split}/<Task>_Synth.json         LAMM-Benchmark records (JSON arrays)

Ids never collide between splits: item ``i`` of ``train`` has number ``i + 1`` and of ``test``
``500001 + i``; 2D image ids and 3D object ids are that number, scene ids ``scene{number:06d}``. Each
item draws from its own generator ``np.random.default_rng([seed, stream, split_index, i])`` (and its
questions from ``[..., i, 1]``), so items are independent of each other and of the split sizes.
"""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image
from pydantic import Field

from lamm.config import Config
from lamm.data.synthetic.questions import pick_expression, referring_expressions, tasks_2d, vqa_3d
from lamm.data.synthetic.scenes3d import SHAPES_3D, sample_object_cloud, sample_scene_3d
from lamm.data.synthetic.shapes2d import PALETTE, SHAPES_2D, sample_scene_2d
from lamm.fileio import write_bytes_atomic, write_json_atomic

GENERATOR_VERSION = "1"
SPLITS = ("train", "test")
ID_BASE = {"train": 1, "test": 500_001}
MAX_ITEMS = 500_000
STREAM_2D, STREAM_OBJECTS, STREAM_SCENES = 0, 1, 2

FILES_2D = {
    "classification": "Classification_Synth.json",
    "detection": "Detection_Synth.json",
    "counting": "Counting_Synth.json",
    "ocr": "OCR_Synth.json",
    "locating": "Locating_Synth.json",
    "vqa": "VQA_Synth.json",
}
FILES_3D = {
    "classification": "Classification3D_Synth.json",
    "detection": "Detection3D_Synth.json",
    "grounding": "VG_Synth.json",
    "vqa": "VQA3D_Synth.json",
}
QUERY_CLS_3D = "What kind of object is this point cloud?"
QUERY_DET_3D = "Identify all the objects in the point cloud and give their 3D bounding boxes."

Progress = Callable[[str, int, int], None]


class SynthConfig(Config):
    """Sizes and seed of a synthetic dataset. Counts are items per split; 3D sizes are points per cloud."""

    seed: int = Field(0, ge=0)
    image_size: int = Field(64, ge=64, le=224)
    n_train_2d: int = Field(800, ge=0, le=MAX_ITEMS)
    n_test_2d: int = Field(200, ge=0, le=MAX_ITEMS)
    n_train_objects_3d: int = Field(600, ge=0, le=MAX_ITEMS)
    n_test_objects_3d: int = Field(150, ge=0, le=MAX_ITEMS)
    n_train_scenes_3d: int = Field(200, ge=0, le=MAX_ITEMS)
    n_test_scenes_3d: int = Field(60, ge=0, le=MAX_ITEMS)
    points_per_object: int = Field(1024, ge=16)
    points_per_scene: int = Field(4096, ge=64)
    max_objects_2d: int = Field(5, ge=1, le=len(PALETTE))
    max_objects_3d: int = Field(4, ge=1, le=8)
    words: bool = True


class _Bench:
    """Benchmark records per file, with counts by kind (class or question type) for the stats."""

    def __init__(self) -> None:
        self.records: dict[str, list[dict]] = {}
        self.kinds: dict[str, Counter] = {}

    def add(self, fname: str, record: dict, kinds: list[str]) -> None:
        self.records.setdefault(fname, []).append(record)
        self.kinds.setdefault(fname, Counter()).update(kinds)

    def write(self, root: Path) -> dict:
        summary = {}
        for fname in sorted(self.records):
            recs = self.records[fname]
            write_json_atomic(root / fname, recs)
            entry = {"records": len(recs), "per_kind": _sorted(self.kinds[fname])}
            if "gt_choice" in recs[0]:  # answer positions should be near uniform
                entry["per_answer_position"] = _sorted(Counter("ABCDEF"[r["gt_choice"]] for r in recs))
            summary[fname] = entry
        return summary


def _sorted(counter: Counter) -> dict:
    return {k: counter[k] for k in sorted(counter)}


def _png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=False, compress_level=6)  # fixed settings: same bytes every run
    return buf.getvalue()


def _npy_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    return buf.getvalue()


def _rngs(cfg: SynthConfig, stream: int, split_index: int, i: int):
    return (np.random.default_rng([cfg.seed, stream, split_index, i]),
            np.random.default_rng([cfg.seed, stream, split_index, i, 1]))


def _write_2d(out: Path, cfg: SynthConfig, split: str, si: int, bench: _Bench, progress: Progress | None) -> dict:
    n = cfg.n_train_2d if split == "train" else cfg.n_test_2d
    images, anns = [], []
    objects, dominant, colors = Counter(), Counter(), Counter()
    words = 0
    for i in range(n):
        image_id = ID_BASE[split] + i
        rng, qrng = _rngs(cfg, STREAM_2D, si, i)
        # classes cycle with the item index so every split is balanced (the order is invisible to a model)
        scene = sample_scene_2d(rng, cfg.image_size, cfg.max_objects_2d, cfg.words, SHAPES_2D[i % len(SHAPES_2D)])
        rel = f"2d/images/{split}/{image_id:06d}.png"
        write_bytes_atomic(out / rel, _png_bytes(scene.image))
        entry = {"id": image_id, "file_name": rel, "width": cfg.image_size, "height": cfg.image_size,
                 "background": scene.background}
        if scene.words:
            entry["words"] = list(scene.words)
            entry["word_boxes"] = [list(b) for b in scene.word_boxes]
            words += len(scene.words)
        images.append(entry)
        for o in scene.objects:
            anns.append({"id": len(anns) + 1, "image_id": image_id, "category_id": SHAPES_2D.index(o.category) + 1,
                         "bbox": list(o.bbox), "area": o.area, "keypoints": [*o.keypoint, 2], "num_keypoints": 1,
                         "iscrowd": 0, "color": o.color, "dominant": o.dominant})
            objects[o.category] += 1
            colors[o.color] += 1
        dominant[scene.dominant.category] += 1
        for task, (fields, kind) in tasks_2d(scene, qrng).items():
            kinds = [o["label"] for o in fields["object"]] if task == "detection" else [kind]
            bench.add(FILES_2D[task], {"id": f"{image_id:06d}", "image": rel, **fields}, kinds)
        if progress:
            progress(f"2d {split}", i + 1, n)
    coco = {
        "info": {"description": "lamm synthetic 2D shapes", "split": split, "seed": cfg.seed,
                 "version": GENERATOR_VERSION},
        "images": images,
        "annotations": anns,
        "categories": [{"id": k + 1, "name": name, "supercategory": "shape", "keypoints": ["center"],
                        "skeleton": []} for k, name in enumerate(SHAPES_2D)],
        "colors": {name: list(rgb) for name, rgb in PALETTE.items()},
    }
    write_json_atomic(out / f"2d/annotations/{split}.json", coco)
    return {"images": n, "objects": len(anns), "images_with_words": sum("words" in im for im in images),
            "words": words, "dominant_per_class": _sorted(dominant), "objects_per_class": _sorted(objects),
            "objects_per_color": _sorted(colors)}


def _write_objects(out: Path, cfg: SynthConfig, split: str, si: int, bench: _Bench, progress) -> dict:
    n = cfg.n_train_objects_3d if split == "train" else cfg.n_test_objects_3d
    entries, per_class = [], Counter()
    for i in range(n):
        oid = f"{ID_BASE[split] + i:06d}"
        rng, _ = _rngs(cfg, STREAM_OBJECTS, si, i)
        pts, obj = sample_object_cloud(rng, cfg.points_per_object, SHAPES_3D[i % len(SHAPES_3D)])
        rel = f"3d/objects/{split}/{oid}.npy"
        write_bytes_atomic(out / rel, _npy_bytes(pts))
        entries.append({"id": oid, "file": rel, "label": obj.category, "label_id": SHAPES_3D.index(obj.category),
                        "color": obj.color, "bbox": obj.bbox, "yaw": obj.yaw, "num_points": len(pts)})
        per_class[obj.category] += 1
        bench.add(FILES_3D["classification"], {"id": oid, "pcl": rel, "query": QUERY_CLS_3D,
                                               "label": obj.category}, [obj.category])
        if progress:
            progress(f"3d objects {split}", i + 1, n)
    write_json_atomic(out / f"3d/annotations/objects_{split}.json",
                      {"info": _info_3d(cfg, split), "categories": _categories_3d(), "objects": entries})
    return {"clouds": n, "per_class": _sorted(per_class)}


def _write_scenes(out: Path, cfg: SynthConfig, split: str, si: int, bench: _Bench, progress) -> dict:
    n = cfg.n_train_scenes_3d if split == "train" else cfg.n_test_scenes_3d
    entries, per_class = [], Counter()
    n_expr = no_expr = 0
    for i in range(n):
        sid = f"scene{ID_BASE[split] + i:06d}"
        rng, qrng = _rngs(cfg, STREAM_SCENES, si, i)
        scene = sample_scene_3d(rng, cfg.points_per_scene, cfg.max_objects_3d)
        rel = f"3d/scenes/{split}/{sid}.npy"
        rel_box = f"3d/scenes/{split}/{sid}_aligned_bbox.npy"
        boxes = np.array([[*o.bbox, SHAPES_3D.index(o.category), o.object_id] for o in scene.objects],
                         dtype=np.float32).reshape(-1, 8)
        write_bytes_atomic(out / rel, _npy_bytes(scene.points))
        write_bytes_atomic(out / rel_box, _npy_bytes(boxes))
        exprs = referring_expressions(scene.objects)
        objs = []
        for o, es in zip(scene.objects, exprs):
            objs.append({"object_id": o.object_id, "label": o.category, "label_id": SHAPES_3D.index(o.category),
                         "color": o.color, "bbox": o.bbox, "yaw": o.yaw,
                         "num_points": int((scene.instance == o.object_id).sum()),
                         "referring_expressions": es})
            per_class[o.category] += 1
            n_expr += len(es)
            chosen = pick_expression(qrng, es)
            if chosen is None:
                no_expr += 1  # e.g. two identical objects with no clear relation between them
                continue
            bench.add(FILES_3D["grounding"], {"id": f"{sid}_{o.object_id}", "pcl": rel,
                                              "query": f"Find {chosen['text']}.", "object": o.bbox},
                      [o.category])
        entries.append({"scene_id": sid, "file": rel, "bbox_file": rel_box, "num_points": len(scene.points),
                        "floor": {"z": 0.0, "size": list(scene.floor_size)}, "objects": objs})
        bench.add(FILES_3D["detection"], {"id": sid, "pcl": rel, "query": QUERY_DET_3D,
                                          "object": [{"label": o.category, "bbox": o.bbox} for o in scene.objects]},
                  [o.category for o in scene.objects])
        for k, (qtype, fields) in enumerate(vqa_3d(qrng, scene.objects, exprs)):
            bench.add(FILES_3D["vqa"], {"id": f"{sid}_q{k}", "pcl": rel, **fields}, [qtype])
        if progress:
            progress(f"3d scenes {split}", i + 1, n)
    write_json_atomic(out / f"3d/annotations/scenes_{split}.json",
                      {"info": _info_3d(cfg, split), "categories": _categories_3d(), "scenes": entries})
    return {"scenes": n, "objects": sum(per_class.values()), "per_class": _sorted(per_class),
            "referring_expressions": n_expr, "objects_without_unique_expression": no_expr}


def _info_3d(cfg: SynthConfig, split: str) -> dict:
    return {"description": "lamm synthetic 3D primitives", "split": split, "seed": cfg.seed,
            "version": GENERATOR_VERSION, "frame": "metres, z up, floor at z=0; left=-x, behind=+y",
            "bbox": "axis-aligned [cx, cy, cz, lx, ly, lz]"}


def _categories_3d() -> list[dict]:
    return [{"id": k, "name": name} for k, name in enumerate(SHAPES_3D)]


def synthesize(out_dir: str | Path, cfg: SynthConfig, progress: Progress | None = None) -> dict:
    """Generate the whole synthetic dataset under ``out_dir`` (see the module docstring for the layout).

    ``progress(stage, done, total)`` is called after each item. Existing files of the same names are
    overwritten (atomically); nothing else in ``out_dir`` is touched. Returns the statistics, also
    written to ``out_dir/stats.json``: ``2d`` / ``3d_objects`` / ``3d_scenes`` per split (counts per
    class and colour), and ``benchmark`` per split and file (records, ``per_kind`` = counts per class
    or question type, ``per_answer_position`` for multiple choice). Only benchmark files with at least
    one record are written.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cfg.dump(out / "synth_config.yaml")
    stats: dict = {"generator": "lamm.data.synthetic", "version": GENERATOR_VERSION, "seed": cfg.seed,
                   "config": cfg.model_dump(mode="json"), "2d": {}, "3d_objects": {}, "3d_scenes": {},
                   "benchmark": {}}
    for si, split in enumerate(SPLITS):
        bench = _Bench()
        stats["2d"][split] = _write_2d(out, cfg, split, si, bench, progress)
        stats["3d_objects"][split] = _write_objects(out, cfg, split, si, bench, progress)
        stats["3d_scenes"][split] = _write_scenes(out, cfg, split, si, bench, progress)
        stats["benchmark"][split] = bench.write(out / "benchmark" / split)
    write_json_atomic(out / "stats.json", stats)
    return stats
