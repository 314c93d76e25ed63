"""Synthetic data generators: annotations agree with pixels and points, files are byte-deterministic,
splits are disjoint, and benchmark records use LAMM's field names with answers that can be re-derived."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lamm.config import ConfigError, config_from_dict
from lamm.data.synthetic import SynthConfig, synthesize
from lamm.data.synthetic.questions import referring_expressions, resolve, vqa_3d
from lamm.data.synthetic.scenes3d import (
    JITTER_MAX,
    SHAPES_3D,
    Object3D,
    box_size,
    sample_object_cloud,
    sample_primitive,
    sample_scene_3d,
    sample_surface,
)
from lamm.data.synthetic.shapes2d import PALETTE, SHAPES_2D, TEXT_COLOR, mask_bbox, sample_scene_2d

SMALL = {"n_train_2d": 14, "n_test_2d": 7, "n_train_objects_3d": 8, "n_test_objects_3d": 7, "n_train_scenes_3d": 8,
         "n_test_scenes_3d": 5, "points_per_object": 256, "points_per_scene": 1024}
TOL = JITTER_MAX + 1e-4  # clipped jitter plus the 0.1 mm rounding of stored boxes


@pytest.fixture(scope="module")
def out(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synth")
    stats = synthesize(root, SynthConfig(seed=3, **SMALL))
    assert json.loads((root / "stats.json").read_text()) == stats
    return root


def _load(root: Path, rel: str):
    return json.loads((root / rel).read_text())


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# --- 2D: pixels ----------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [64, 96, 160, 224])
def test_2d_annotations_match_pixels(size):
    for i in range(12):
        scene = sample_scene_2d(np.random.default_rng([size, i]), size, 5, True)
        px = np.asarray(scene.image)
        assert px.shape == (size, size, 3) and px.dtype == np.uint8
        covered = np.zeros((size, size), dtype=bool)
        assert sum(o.dominant for o in scene.objects) == 1
        for o in scene.objects:
            mask = (px == PALETTE[o.color]).all(axis=2)  # colours are distinct within an image
            assert mask.sum() == o.area > 0
            assert mask_bbox(mask) == o.bbox  # tight: exactly the extent of the shape's pixels
            x, y, w, h = o.bbox
            kx, ky = o.keypoint
            assert x <= kx < x + w and y <= ky < y + h
            assert tuple(px[int(ky), int(kx)]) == PALETTE[o.color]  # centre of the filled shape
            covered |= mask
            if not o.dominant:
                assert scene.dominant.area >= 2 * o.area
        ink = (px == TEXT_COLOR).all(axis=2)
        for (x, y, w, h) in scene.word_boxes:
            assert ink[y:y + h, x:x + w].any()
            assert not covered[max(y - 1, 0):y + h + 1, max(x - 1, 0):x + w + 1].any()
            covered[y:y + h, x:x + w] = True
        assert ink.sum() == ink[covered].sum()  # no ink outside word boxes
        assert (px[~covered] >= 200).all()  # the background is light everywhere else


def test_2d_shapes_do_not_touch():
    for i in range(20):
        scene = sample_scene_2d(np.random.default_rng([7, i]), 64, 7, False)
        boxes = [o.bbox for o in scene.objects]
        px = np.asarray(scene.image)
        masks = [(px == PALETTE[o.color]).all(axis=2) for o in scene.objects]
        for a in range(len(masks)):
            ys, xs = np.nonzero(masks[a])
            for b in range(a + 1, len(masks)):
                yb, xb = np.nonzero(masks[b])
                gap = np.min(np.maximum(np.abs(ys[:, None] - yb[None]), np.abs(xs[:, None] - xb[None])))
                assert gap >= 2, (boxes[a], boxes[b])


# --- 2D: files ----------------------------------------------------------------------------------


def test_coco_annotations_match_image_files(out):
    for split in ("train", "test"):
        coco = _load(out, f"2d/annotations/{split}.json")
        assert [c["name"] for c in coco["categories"]] == list(SHAPES_2D)
        by_image = {}
        for a in coco["annotations"]:
            by_image.setdefault(a["image_id"], []).append(a)
            assert a["num_keypoints"] == 1 and a["iscrowd"] == 0 and a["keypoints"][2] == 2
        assert len({a["id"] for a in coco["annotations"]}) == len(coco["annotations"])
        for im in coco["images"]:
            assert im["file_name"] == f"2d/images/{split}/{im['id']:06d}.png"
            px = np.asarray(Image.open(out / im["file_name"]).convert("RGB"))
            assert px.shape == (im["height"], im["width"], 3)
            for a in by_image[im["id"]]:
                mask = (px == PALETTE[a["color"]]).all(axis=2)
                x, y, w, h = mask_bbox(mask)
                assert a["bbox"] == [x, y, w, h] and a["area"] == int(mask.sum())


def test_2d_benchmark_records(out):
    fields = {"Classification_Synth.json": "label", "Detection_Synth.json": "object", "Counting_Synth.json": "num",
              "OCR_Synth.json": "word_list", "Locating_Synth.json": "object", "VQA_Synth.json": "gt_choice"}
    for split in ("train", "test"):
        coco = _load(out, f"2d/annotations/{split}.json")
        images = {im["file_name"]: im for im in coco["images"]}
        anns = {}
        for a in coco["annotations"]:
            anns.setdefault(a["image_id"], []).append(a)
        name = {c["id"]: c["name"] for c in coco["categories"]}
        for fname, gt in fields.items():
            recs = _load(out, f"benchmark/{split}/{fname}")
            assert recs and len({r["id"] for r in recs}) == len(recs)
            for r in recs:
                extra = {"gt_choices"} if fname == "VQA_Synth.json" else set()
                assert set(r) == {"id", "image", "query", gt} | extra
                im = images[r["image"]]
                objs = anns[im["id"]]
                s = im["width"]
                boxes = [[round(a["bbox"][0] / s, 4), round(a["bbox"][1] / s, 4),
                          round((a["bbox"][0] + a["bbox"][2]) / s, 4), round((a["bbox"][1] + a["bbox"][3]) / s, 4)]
                         for a in objs]
                if fname.startswith("Classification"):
                    assert r["label"] == name[next(a for a in objs if a["dominant"])["category_id"]]
                elif fname.startswith("Detection"):
                    assert [o["bbox"] for o in r["object"]] == boxes
                    assert [o["label"] for o in r["object"]] == [name[a["category_id"]] for a in objs]
                elif fname.startswith("Counting"):
                    m = re.fullmatch(r"How many (\w+) are there in this image\?", r["query"])
                    want = [a for a in objs if m[1] == "objects" or name[a["category_id"]] + "s" == m[1]
                            or name[a["category_id"]] + "es" == m[1]]
                    assert r["num"] == len(want) > 0
                elif fname.startswith("OCR"):
                    assert r["word_list"] == im["words"]
                elif fname.startswith("Locating"):
                    cls = re.fullmatch(r"Point out the location of every (\w+) in the image\.", r["query"])[1]
                    assert r["object"] == [{"label": cls, "bbox": b} for a, b in zip(objs, boxes)
                                           if name[a["category_id"]] == cls]
                else:
                    _check_vqa_2d(r, objs, name)


def _check_vqa_2d(r, objs, name):
    q = re.fullmatch(r"Question: (.+\?) Options: \(A\) (.+) \(B\) (.+) \(C\) (.+) \(D\) (.+)", r["query"])
    assert q and list(q.groups()[1:]) == r["gt_choices"] and len(set(r["gt_choices"])) == 4
    answer = r["gt_choices"][r["gt_choice"]]
    if m := re.fullmatch(r"What color is the (\w+)\?", q[1]):
        (obj,) = [a for a in objs if name[a["category_id"]] == m[1]]
        assert answer == obj["color"]
    elif m := re.fullmatch(r"What shape is the (\w+) object\?", q[1]):
        (obj,) = [a for a in objs if a["color"] == m[1]]
        assert answer == name[obj["category_id"]]
    else:
        m = re.fullmatch(r"Where is the (\w+) (\w+) relative to the (\w+) (\w+)\?", q[1])
        (a,) = [o for o in objs if o["color"] == m[1] and name[o["category_id"]] == m[2]]
        (b,) = [o for o in objs if o["color"] == m[3] and name[o["category_id"]] == m[4]]
        dx, dy = a["keypoints"][0] - b["keypoints"][0], a["keypoints"][1] - b["keypoints"][1]
        expect = ("left" if dx < 0 else "right") if abs(dx) > abs(dy) else ("above" if dy < 0 else "below")
        assert answer == expect


# --- 3D -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", SHAPES_3D)
def test_primitive_surface_fills_its_box(kind):
    rng = np.random.default_rng(0)
    prim = sample_primitive(rng, kind, 0.8)
    pts = sample_surface(prim, rng, 4000)
    size = np.array(box_size(prim))
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    assert np.allclose((lo + hi)[:2], 0, atol=0.02 * size.max()) and -1e-9 <= lo[2] < 0.01 * size[2]
    assert (hi - lo <= size + 1e-9).all() and (hi - lo >= 0.93 * size).all()  # inside and tight


def test_object_clouds():
    for i in range(14):
        pts, obj = sample_object_cloud(np.random.default_rng([1, i]), 512, SHAPES_3D[i % 7])
        assert pts.shape == (512, 6) and pts.dtype == np.float32
        assert obj.category == SHAPES_3D[i % 7] and obj.center == (0.0, 0.0, 0.0)
        assert (np.abs(pts[:, :3]) <= np.array(obj.size) / 2 + TOL).all()
        assert np.allclose(pts[:, 3:], np.array(PALETTE[obj.color]) / 255)


def test_scene_points_inside_boxes_and_floor_below():
    for i in range(25):
        scene = sample_scene_3d(np.random.default_rng([2, i]), 2048, 4)
        assert scene.points.shape == (2048, 6) and scene.points.dtype == np.float32
        assert 2 <= len(scene.objects) <= 4
        floor = scene.points[scene.instance == -1]
        assert (np.abs(floor[:, 2]) <= TOL).all()
        assert (np.abs(floor[:, :2]) <= np.array(scene.floor_size) / 2 + TOL).all()
        for k, o in enumerate(scene.objects):
            c, h = np.array(o.center), np.array(o.size) / 2
            assert abs(c[2] - h[2]) < 1e-3  # stands on the floor
            pts = scene.points[scene.instance == k, :3]
            assert len(pts) > 50 and (np.abs(pts - c) <= h + TOL).all()
            for other in scene.objects[k + 1:]:  # footprints do not overlap
                assert (np.abs(c[:2] - np.array(other.center[:2])) >= h[:2] + np.array(other.size[:2]) / 2).any()


def test_referring_expressions_are_unambiguous():
    seen_relational = 0
    for i in range(40):
        objs = sample_scene_3d(np.random.default_rng([4, i]), 256, 4).objects
        for t, exprs in enumerate(referring_expressions(objs)):
            for e in exprs:
                assert resolve(e, objs) == [t], e["text"]
                seen_relational += e["relation"] is not None
    assert seen_relational > 20


def test_resolve_reads_relations_plainly():
    objs = [Object3D(0, "cube", "red", (-1.0, 0.0, 0.2), (0.4,) * 3, 0.0),
            Object3D(1, "cube", "red", (1.0, 0.0, 0.2), (0.4,) * 3, 0.0),
            Object3D(2, "sphere", "blue", (0.0, 1.0, 0.2), (0.4,) * 3, 0.0)]
    left = {"target": (None, "cube"), "relation": "left of", "anchor": (None, "sphere")}
    assert resolve(left, objs) == [0]
    assert resolve({"target": ("red", None), "relation": None, "anchor": None}, objs) == [0, 1]
    assert resolve({**left, "relation": "in front of"}, objs) == [0, 1]
    exprs = referring_expressions(objs)
    assert all(e["relation"] is not None for e in exprs[0])  # the two red cubes need a relation


def test_3d_files_and_benchmark(out):
    for split in ("train", "test"):
        scenes = _load(out, f"3d/annotations/scenes_{split}.json")["scenes"]
        by_pcl = {s["file"]: s for s in scenes}
        for s in scenes:
            pts = np.load(out / s["file"])
            boxes = np.load(out / s["bbox_file"])
            assert pts.dtype == boxes.dtype == np.float32 and pts.shape == (1024, 6) and boxes.shape[1] == 8
            assert np.allclose(boxes[:, :6], [o["bbox"] for o in s["objects"]], atol=1e-6)
            assert boxes[:, 6].tolist() == [SHAPES_3D.index(o["label"]) for o in s["objects"]]
            assert boxes[:, 7].tolist() == [o["object_id"] for o in s["objects"]]
        det = _load(out, f"benchmark/{split}/Detection3D_Synth.json")
        assert [d["object"] for d in det] == [[{"label": o["label"], "bbox": o["bbox"]} for o in s["objects"]]
                                              for s in scenes]
        for r in _load(out, f"benchmark/{split}/VG_Synth.json"):
            assert set(r) == {"id", "pcl", "query", "object"}
            s = by_pcl[r["pcl"]]
            obj = s["objects"][int(r["id"].rsplit("_", 1)[1])]
            assert r["object"] == obj["bbox"]
            (e,) = [e for e in obj["referring_expressions"] if f"Find {e['text']}." == r["query"]]
            objs = [Object3D(o["object_id"], o["label"], o["color"], tuple(o["bbox"][:3]), tuple(o["bbox"][3:]),
                             o["yaw"]) for o in s["objects"]]
            assert resolve(e, objs) == [obj["object_id"]]
        for r in _load(out, f"benchmark/{split}/VQA3D_Synth.json"):
            assert set(r) == {"id", "pcl", "query", "gt_choice", "gt_choices"} and len(set(r["gt_choices"])) == 4
            objs = by_pcl[r["pcl"]]["objects"]
            answer = r["gt_choices"][r["gt_choice"]]
            if r["query"].startswith("How many objects"):
                assert answer == str(len(objs))
            elif m := re.match(r"How many (\w+) are there", r["query"]):
                assert answer == str(sum(m[1] in (o["label"] + "s", o["label"] + "es") for o in objs))
            elif m := re.match(r"What shape is the (\w+) object\?", r["query"]):
                assert answer == next(o["label"] for o in objs if o["color"] == m[1])
        objects = _load(out, f"3d/annotations/objects_{split}.json")["objects"]
        cls = _load(out, f"benchmark/{split}/Classification3D_Synth.json")
        assert [(r["pcl"], r["label"]) for r in cls] == [(o["file"], o["label"]) for o in objects]
        for o in objects:
            assert np.load(out / o["file"]).shape == (256, 6)


def test_vqa_3d_answers():
    types = set()
    for i in range(30):
        objs = sample_scene_3d(np.random.default_rng([5, i]), 256, 4).objects
        exprs = referring_expressions(objs)
        by_text = {e["text"]: resolve(e, objs) for es in exprs for e in es}
        for qtype, r in vqa_3d(np.random.default_rng(i), objs, exprs):
            types.add(qtype)
            answer = r["gt_choices"][r["gt_choice"]]
            assert r["query"].endswith(" ".join(f"({c}) {o}" for c, o in zip("ABCD", r["gt_choices"])))
            if qtype == "closest":
                (j,) = by_text[re.match(r"Which object is closest to (.+)\? Options", r["query"])[1]]
                d = [np.hypot(o.center[0] - objs[j].center[0], o.center[1] - objs[j].center[1]) if k != j
                     else np.inf for k, o in enumerate(objs)]
                best = objs[int(np.argmin(d))]
                assert answer == f"{best.color} {best.category}"
            elif qtype == "color":
                (k,) = by_text[re.match(r"What color is (.+)\? Options", r["query"])[1]]
                assert answer == objs[k].color
    assert types == {"color", "count_all", "count_shape", "shape", "closest"}


# --- whole dataset --------------------------------------------------------------------------------


def test_deterministic_and_seed_dependent(out, tmp_path):
    synthesize(tmp_path / "again", SynthConfig(seed=3, **SMALL))
    first, again = _files(out), _files(tmp_path / "again")
    assert first.keys() == again.keys()
    assert [k for k in first if first[k] != again[k]] == []
    synthesize(tmp_path / "other", SynthConfig(seed=4, **SMALL))
    other = _files(tmp_path / "other")
    assert other["2d/images/train/000001.png"] != first["2d/images/train/000001.png"]


def test_splits_disjoint_and_independent_of_sizes(out, tmp_path):
    files = _files(out)
    for kind in ("2d/images", "3d/objects", "3d/scenes"):
        train = {Path(k).name for k in files if k.startswith(f"{kind}/train/")}
        test = {Path(k).name for k in files if k.startswith(f"{kind}/test/")}
        assert train and test and not train & test
    bigger = dict(SMALL, n_train_2d=20, n_train_objects_3d=3, n_train_scenes_3d=2)
    synthesize(tmp_path / "b", SynthConfig(seed=3, **bigger))
    other = _files(tmp_path / "b")
    for k, v in files.items():  # the test split does not depend on how many train items exist
        if "/test/" in k or k.endswith(("/test.json", "_test.json")):
            assert other[k] == v, k


def test_stats_count_the_files(out):
    stats = _load(out, "stats.json")
    for split, n in (("train", 14), ("test", 7)):
        assert stats["2d"][split]["images"] == n
        bench = stats["benchmark"][split]
        for fname, entry in bench.items():
            assert entry["records"] == len(_load(out, f"benchmark/{split}/{fname}"))
        assert sum(bench["Classification_Synth.json"]["per_kind"].values()) == n
        assert stats["3d_objects"][split]["clouds"] == sum(stats["3d_objects"][split]["per_class"].values())


def test_config_is_strict():
    with pytest.raises(ConfigError, match="unknown key"):
        config_from_dict(SynthConfig, {"n_train": 3})
    with pytest.raises(ConfigError, match="image_size"):
        config_from_dict(SynthConfig, {"image_size": 32})
    assert SynthConfig().image_size == 64
