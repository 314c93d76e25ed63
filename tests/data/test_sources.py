"""Source readers: each dataset format, made tiny in code, read into normalised source records; errors
name the file, the entry and the field."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lamm.data.builders import run_builder
from lamm.data.sources import SOURCES, SourceError, load_source
from lamm.data.sources.ocr import reading_order


def dump(path: Path, obj) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))
    return path


def coco_files(tmp: Path) -> dict[str, Path]:
    images = [
        {"id": 1, "file_name": "a.jpg", "width": 200, "height": 100},
        {"id": 2, "file_name": "b.jpg", "width": 50, "height": 50},
    ]
    cats = [
        {"id": 1, "name": "person", "keypoints": ["nose", "left_eye"]},
        {"id": 18, "name": "dog"},
        {"id": 44, "name": "hot_dog"},
    ]
    inst = {
        "images": images,
        "categories": cats,
        "annotations": [
            {"id": 10, "image_id": 1, "category_id": 18, "bbox": [20, 10, 80, 40], "iscrowd": 0},
            {"id": 11, "image_id": 1, "category_id": 1, "bbox": [100, 0, 50, 100], "iscrowd": 0},
            {"id": 12, "image_id": 1, "category_id": 44, "bbox": [0, 0, 10, 10], "iscrowd": 1},
        ],
    }
    kps = {
        "images": images,
        "categories": cats,
        "annotations": [
            {
                "id": 11,
                "image_id": 1,
                "category_id": 1,
                "bbox": [100, 0, 50, 100],
                "keypoints": [120, 20, 2, 0, 0, 0],
            }
        ],
    }
    caps = {
        "images": images,
        "annotations": [
            {"image_id": 1, "caption": " A dog  and a person. "},
            {"image_id": 2, "caption": "Nothing here."},
        ],
    }
    return {
        "instances": dump(tmp / "inst.json", inst),
        "keypoints": dump(tmp / "kp.json", kps),
        "captions": dump(tmp / "cap.json", caps),
    }


def test_registry_names():
    assert {
        "coco",
        "image_folder",
        "label_list",
        "fsc147",
        "counting",
        "svt",
        "textocr",
        "word_list",
        "vqav2",
        "textvqa",
        "scienceqa",
        "qa_list",
        "object_folder",
        "shapenet_flat",
        "object_list",
        "aligned_bbox",
        "scene_list",
        "scanrefer",
        "scanqa",
        "synthetic2d",
        "synthetic_objects3d",
        "synthetic_scenes3d",
    } <= set(SOURCES.names())


def test_coco(tmp_path):
    f = coco_files(tmp_path)
    recs = load_source("coco", **{k: str(v) for k, v in f.items()}, image_prefix="coco_images")
    a, b = recs
    assert (
        a["src_id"] == "1" and a["image"] == "coco_images/a.jpg" and a["captions"] == ["A dog and a person."]
    )
    assert [o["label"] for o in a["objects"]] == ["dog", "person"] and a["crowd_labels"] == ["hot dog"]
    assert a["objects"][0]["bbox"] == [0.1, 0.1, 0.5, 0.5]
    assert a["objects"][1]["keypoints"] == [[0.6, 0.2, 2], [0.0, 0.0, 0]] and a["keypoint_names"] == [
        "nose",
        "left eye",
    ]
    assert b["objects"] == [] and "crowd_labels" not in b
    assert load_source("coco", instances=str(f["instances"]), require_objects=True)[0]["src_id"] == "1"
    # the detection builder's boxes go back to the pixel boxes within rounding (without the crowd region:
    # with it, "all the objects" cannot be answered and the image is not applicable)
    assert run_builder("detection", a, params={"mode": "all"}) == []
    no_crowd = {k: v for k, v in a.items() if k != "crowd_labels"}
    det = run_builder("detection", no_crowd, params={"mode": "all"})[0]["conversations"][1]["value"]
    assert "[0.10, 0.10, 0.50, 0.50]" in det and "[0.50, 0.00, 0.75, 1.00]" in det
    bad = json.loads(f["instances"].read_text())
    bad["annotations"][0]["category_id"] = 99
    with pytest.raises(SourceError, match=r"bad\.json: annotations\[0\]: category_id 99"):
        load_source("coco", instances=str(dump(tmp_path / "bad.json", bad)))
    with pytest.raises(SourceError, match="unknown argument"):
        load_source("coco", instance=str(f["instances"]))


def test_image_folder_and_label_lists(tmp_path):
    for cls, n in (("cat", 2), ("hot_dog", 1)):
        for i in range(n):
            p = tmp_path / "imgs" / "train" / cls / f"{i}.png"
            p.parent.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (4, 4)).save(p)
    recs = load_source("image_folder", root=str(tmp_path / "imgs"), split="train", image_prefix="bamboo")
    assert [(r["src_id"], r["label"], r["image"]) for r in recs] == [
        ("cat/0", "cat", "bamboo/train/cat/0.png"),
        ("cat/1", "cat", "bamboo/train/cat/1.png"),
        ("hot_dog/0", "hot dog", "bamboo/train/hot_dog/0.png"),
    ]
    (tmp_path / "l.csv").write_text("image,label,knowledge\nx/1.jpg,3,Cats purr.\nx/2.jpg,5,\n")
    recs = load_source("label_list", path=str(tmp_path / "l.csv"), label_names={"3": "cat", "5": "dog"})
    assert recs[0] == {
        "src_dataset": "labels",
        "src_id": "x/1",
        "image": "x/1.jpg",
        "label": "cat",
        "knowledge": "Cats purr.",
    }
    assert (
        load_source("label_list", path=str(dump(tmp_path / "l.json", {"a.png": "red panda"})))[0]["label"]
        == "red panda"
    )
    with pytest.raises(SourceError, match=r"l\.csv: entry 1: label '5' is not in label_names"):
        load_source("label_list", path=str(tmp_path / "l.csv"), label_names={"3": "cat"})


def test_counting_sources(tmp_path):
    ann = dump(tmp_path / "fsc.json", {"2.jpg": {"points": [[1, 2]] * 36}, "3.jpg": {"points": [[0, 0]] * 4}})
    (tmp_path / "classes.txt").write_text("2.jpg\tsea shells\n3.jpg\tapples\n")
    splits = dump(tmp_path / "split.json", {"train": ["2.jpg"], "test": ["3.jpg"]})
    recs = load_source(
        "fsc147",
        annotations=str(ann),
        classes=str(tmp_path / "classes.txt"),
        splits=str(splits),
        split="train",
    )
    # FSC147 names are plurals: the label is the singular, the given plural is kept for the templates
    assert len(recs) == 1 and recs[0]["counts"] == {"sea shell": 36}
    assert recs[0]["plurals"] == {"sea shell": "sea shells"}
    gen = dump(
        tmp_path / "c.json",
        [
            {"image": "a.jpg", "label": "cup", "count": 3},
            {"image": "a.jpg", "label": "plate", "boxes": [[0, 0, 1, 1]] * 2},
        ],
    )
    assert load_source("counting", path=str(gen))[0]["counts"] == {"cup": 3, "plate": 2}
    with pytest.raises(SourceError, match=r"c2\.json: entry 0: needs one of"):
        load_source("counting", path=str(dump(tmp_path / "c2.json", [{"image": "a", "label": "x"}])))


def test_ocr_sources(tmp_path):
    (tmp_path / "svt.xml").write_text(
        "<tagset><image><imageName>img/14_03.jpg</imageName><taggedRectangles>"
        '<taggedRectangle x="300" y="10" width="50" height="20"><tag>STUFF</tag></taggedRectangle>'
        '<taggedRectangle x="100" y="12" width="60" height="20"><tag>PUFF</tag></taggedRectangle>'
        '<taggedRectangle x="5" y="80" width="60" height="20"><tag>CAFE</tag></taggedRectangle>'
        "</taggedRectangles></image></tagset>"
    )
    (rec,) = load_source("svt", xml=str(tmp_path / "svt.xml"), image_prefix="svt_images")
    assert rec["words"] == ["PUFF", "STUFF", "CAFE"] and rec["image"] == "svt_images/img/14_03.jpg"
    tocr = dump(
        tmp_path / "t.json",
        {
            "imgs": {"i1": {"file_name": "train/i1.jpg", "width": 10, "height": 10}},
            "anns": {
                "a": {"image_id": "i1", "utf8_string": "OPEN", "bbox": [0, 0, 5, 2]},
                "b": {"image_id": "i1", "utf8_string": ".", "bbox": [0, 5, 5, 2]},
            },
        },
    )
    assert load_source("textocr", path=str(tocr))[0]["words"] == ["OPEN"]
    wl = dump(tmp_path / "w.json", [{"image": "svt/0.jpg", "word_list": ["A"]}])
    assert load_source("word_list", path=str(wl))[0]["words"] == ["A"]
    assert reading_order([("b", [0, 50, 5, 5]), ("a", [9, 0, 5, 5])]) == ["a", "b"]


def test_vqa_sources(tmp_path):
    qs = dump(
        tmp_path / "q.json",
        {
            "questions": [
                {"image_id": 9, "question": "How many?", "question_id": 90},
                {"image_id": 9, "question": "Color?", "question_id": 91},
            ]
        },
    )
    an = dump(
        tmp_path / "a.json",
        {
            "annotations": [
                {"question_id": 90, "multiple_choice_answer": "2"},
                {"question_id": 91, "answers": [{"answer": "red"}] * 3},
            ]
        },
    )
    (rec,) = load_source("vqav2", questions=str(qs), annotations=str(an), image_prefix="coco")
    assert rec["image"] == "coco/000000000009.jpg" and [q["answer"] for q in rec["qa"]] == ["2", "red"]
    tv = dump(
        tmp_path / "tv.json",
        {"data": [{"image_id": "ab", "question": "What brand?", "answers": ["nike"] * 6 + ["adidas"] * 4}]},
    )
    assert load_source("textvqa", path=str(tv))[0]["qa"][0]["answer"] == "nike"
    sq = dump(
        tmp_path / "p.json",
        {
            "12": {
                "question": "Attract or repel?",
                "choices": ["attract", "repel"],
                "answer": 1,
                "image": "image.png",
                "hint": "Two magnets.",
                "split": "train",
            },
            "13": {"question": "No image", "choices": ["a", "b"], "answer": 0, "image": None},
        },
    )
    (rec,) = load_source("scienceqa", problems=str(sq))
    assert rec["image"] == "train/12/image.png" and rec["qa"][0]["answer_index"] == 1
    assert rec["qa"][0]["question"] == "Context: Two magnets. Question: Attract or repel?"
    ql = dump(tmp_path / "ql.json", [{"image": "x.png", "question": "Q?"}])
    with pytest.raises(SourceError, match=r"ql\.json: entry 0: needs 'answer'"):
        load_source("qa_list", path=str(ql))


def test_object_and_scene_sources(tmp_path):
    cloud = np.zeros((8, 3), dtype=np.float32)
    for rel in (
        "mn/night_stand/train/a.npy",
        "mn/chair/train/b.npy",
        "mn/chair/test/c.npy",
        "flat/04256520_cb71_4096.npy",
    ):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        np.save(tmp_path / rel, cloud)
    recs = load_source("object_folder", root=str(tmp_path / "mn"), split="train", pcl_prefix="modelnet")
    assert [(r["label"], r["pcl"]) for r in recs] == [
        ("chair", "modelnet/chair/train/b.npy"),
        ("night stand", "modelnet/night_stand/train/a.npy"),
    ]
    (rec,) = load_source("shapenet_flat", root=str(tmp_path / "flat"), pcl_prefix="shapenet_pcls")
    assert rec["label"] == "sofa" and rec["src_id"] == "04256520_cb71"
    boxes = np.array(
        [[1, 2, 0.5, 0.6, 0.6, 0.9, 5, 3], [0, 0, 0.4, 1.4, 0.8, 0.8, 7, 4], [0, 0, 0, 1, 1, 1, 1, 9]],
        dtype=np.float32,
    )
    (tmp_path / "boxes").mkdir()
    np.save(tmp_path / "boxes" / "scene0001_00_aligned_bbox.npy", boxes)
    (rec,) = load_source(
        "aligned_bbox", bbox_dir=str(tmp_path / "boxes"), pcl_prefix="scannet", pcl_pattern="{scene}.npy"
    )
    assert rec["pcl"] == "scannet/scene0001_00.npy"
    assert [(o["label"], o["object_id"]) for o in rec["objects"]] == [
        ("chair", 3),
        ("table", 4),
    ]  # id 1 is not one of the 18
    sr = dump(
        tmp_path / "sr.json",
        [
            {
                "scene_id": "scene0001_00",
                "object_id": "4",
                "object_name": "table",
                "ann_id": "0",
                "description": "the table in the middle.",
            }
        ],
    )
    (rec,) = load_source("scanrefer", path=str(sr), bbox_dir=str(tmp_path / "boxes"))
    assert rec["referrals"] == [
        {"id": "4-0", "object_id": 4, "label": "table", "description": "the table in the middle."}
    ]
    assert len(rec["objects"]) == 3  # ScanRefer covers every ScanNet class
    vg = run_builder("visual_grounding3d", rec, params={"sources": ["referrals"]})[0]
    assert (
        vg["conversations"][1]["value"].endswith("[0.00, 0.00, 0.40, 1.40, 0.80, 0.80]")
        or "[0.00, 0.00, 0.40, 1.40, 0.80, 0.80]" in vg["conversations"][1]["value"]
    )
    qa = dump(
        tmp_path / "qa.json",
        [
            {
                "scene_id": "s1",
                "question_id": "q1",
                "question": "What color is the chair?",
                "answers": ["brown"],
            },
            {
                "scene_id": "s1",
                "question_id": "q2",
                "question": "What color is the bed?",
                "answers": ["white"],
            },
            {
                "scene_id": "s2",
                "question_id": "q3",
                "question": "What color is the door?",
                "answers": ["red", "dark red"],
            },
        ],
    )
    recs = load_source("scanqa", path=str(qa))
    assert [r["src_id"] for r in recs] == ["s1", "s2"]
    q1 = recs[0]["qa"][0]
    assert (
        q1["answer"] == "brown"
        and set(q1["distractors"]) <= {"white", "red"}
        and "brown" not in q1["distractors"]
    )
    assert load_source("scanqa", path=str(qa)) == recs  # distractors are seeded


def test_fsc147_labels_are_singular_and_counting_reads_naturally(tmp_path):
    ann = dump(
        tmp_path / "ann.json",
        {f"{i}.jpg": {"points": [[1, 2]] * n} for i, n in ((2, 36), (3, 5), (4, 12), (5, 9))},
    )
    (tmp_path / "ImageClasses_FSC147.txt").write_text(
        "2.jpg\tsea shells\n3.jpg\tapples\n4.jpg\tglasses\n5.jpg\tbrick\n"
    )
    recs = load_source("fsc147", annotations=str(ann), classes=str(tmp_path / "ImageClasses_FSC147.txt"))
    assert [r["counts"] for r in recs] == [{"sea shell": 36}, {"apple": 5}, {"glasses": 12}, {"brick": 9}]
    assert [r.get("plurals") for r in recs] == [
        {"sea shell": "sea shells"},
        {"apple": "apples"},
        {"glasses": "glasses"},
        None,
    ]
    want = {"2": "sea shells", "3": "apples", "4": "glasses", "5": "bricks"}
    for r in recs:
        for seed in range(6):
            q, a = (t["value"] for t in run_builder("counting", r, seed=seed)[0]["conversations"])
            assert want[r["src_id"]] in q, q
            assert not re.search(r"\w+ses\b", (q + " " + a).replace("glasses", "")), (q, a)


def _bad_coco(tmp_path: Path, name: str, edit) -> Path:
    data = {
        "images": [{"id": 1, "file_name": "a.jpg", "width": 640, "height": 480}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 10, 20, 20]}],
        "categories": [{"id": 1, "name": "cat", "keypoints": ["a", "b"]}],
    }
    edit(data)
    return dump(tmp_path / name, data)


@pytest.mark.parametrize(
    "case, kind, match",
    [
        ("coco_null_bbox", "coco", r"c\.json: annotations\[0\]\.bbox\[2\]: expected a number, got None"),
        ("coco_string_width", "coco", r"c\.json: images\[0\]\.width: expected a number, got '640'"),
        ("coco_string_keypoint", "coco", r"c\.json: annotations\[0\]\.keypoints\[3\]: expected a number"),
        ("vqav2_no_question_id", "vqav2", r"a\.json: annotations\[0\]: missing field 'question_id'"),
        ("textocr_string_bbox", "textocr", r"t\.json: anns\['a1'\]\.bbox\[3\]: expected a number, got 'n/a'"),
        ("scene_list_string_bbox", "scene_list", r"s\.json: entry 0: objects\[0\]\.bbox\[5\]: expected a"),
        ("scanrefer_bad_object_id", "scanrefer", r"sr\.json: entry 0\.object_id: expected an integer"),
    ],
)
def test_malformed_values_name_file_record_and_field(tmp_path, case, kind, match):
    if case == "coco_null_bbox":
        args = {
            "instances": str(
                _bad_coco(tmp_path, "c.json", lambda d: d["annotations"][0].update(bbox=[10, 10, None, 20]))
            )
        }
    elif case == "coco_string_width":
        args = {"instances": str(_bad_coco(tmp_path, "c.json", lambda d: d["images"][0].update(width="640")))}
    elif case == "coco_string_keypoint":
        args = {
            "instances": str(
                _bad_coco(
                    tmp_path, "c.json", lambda d: d["annotations"][0].update(keypoints=[1, 2, 2, "x", 3, 2])
                )
            )
        }
    elif case == "vqav2_no_question_id":
        args = {
            "questions": str(
                dump(
                    tmp_path / "q.json", {"questions": [{"question_id": 1, "image_id": 1, "question": "q?"}]}
                )
            ),
            "annotations": str(
                dump(tmp_path / "a.json", {"annotations": [{"qid": 1, "multiple_choice_answer": "yes"}]})
            ),
        }
    elif case == "textocr_string_bbox":
        args = {
            "path": str(
                dump(
                    tmp_path / "t.json",
                    {
                        "imgs": {"i1": {"file_name": "a.jpg"}},
                        "anns": {"a1": {"image_id": "i1", "utf8_string": "HI", "bbox": [1, 2, 3, "n/a"]}},
                    },
                )
            )
        }
    elif case == "scene_list_string_bbox":
        args = {
            "path": str(
                dump(
                    tmp_path / "s.json",
                    [
                        {
                            "scene_id": "s0",
                            "pcl": "s0.npy",
                            "objects": [{"label": "chair", "bbox": [0, 0, 0, 1, 1, "1m"]}],
                        }
                    ],
                )
            )
        }
    else:
        np.save(tmp_path / "scene0_aligned_bbox.npy", np.array([[0, 0, 0, 1, 1, 1, 5, 0]], dtype=np.float32))
        args = {
            "path": str(
                dump(
                    tmp_path / "sr.json",
                    [{"scene_id": "scene0", "object_id": "x1", "description": "a chair."}],
                )
            ),
            "bbox_dir": str(tmp_path),
        }
    with pytest.raises(SourceError, match=match):
        load_source(kind, **args)


def test_string_where_a_list_belongs_is_an_error(tmp_path):
    sq = dump(
        tmp_path / "scanqa.json",
        [{"scene_id": "s0", "question_id": "q1", "question": "What color is the chair?", "answers": "brown"}],
    )
    with pytest.raises(SourceError, match=r"scanqa\.json: entry 0\.answers: must be a list of strings, got"):
        load_source("scanqa", path=str(sq))
    ql = dump(
        tmp_path / "qa.json",
        [{"image": "a.jpg", "question": "What color is the car?", "answer": "blue", "distractors": "green"}],
    )
    with pytest.raises(SourceError, match=r"qa\.json: entry 0\.distractors: must be a list"):
        load_source("qa_list", path=str(ql))


def test_scanrefer_objects_are_named_by_referrals_or_left_unnamed(tmp_path):
    # rows: cx cy cz dx dy dz nyu40_label object_id
    np.save(
        tmp_path / "scene0000_00_aligned_bbox.npy",
        np.array(
            [
                [1.0, 0.5, 0.4, 0.6, 0.6, 0.9, 5, 0],  # a chair, referred to below
                [2.0, 1.0, 0.4, 1.2, 0.8, 0.7, 7, 1],  # a table nobody refers to
            ]
        ),
    )
    sr = dump(
        tmp_path / "sr.json",
        [
            {
                "scene_id": "scene0000_00",
                "object_id": "0",
                "object_name": "office_chair",
                "ann_id": "0",
                "description": "the brown chair next to the table.",
            }
        ],
    )
    (rec,) = load_source("scanrefer", path=str(sr), bbox_dir=str(tmp_path))
    assert [(o["label"], o["object_id"], o.get("unnamed", False)) for o in rec["objects"]] == [
        ("office chair", 0, False),
        (None, 1, True),
    ]
    texts = []
    for seed in range(12):
        for builder in ("visual_grounding3d", "detection3d", "vqa3d"):
            texts += [t["value"] for r in run_builder(builder, rec, seed=seed) for t in r["conversations"]]
    assert texts and not any(re.search(r"\blabel\d|None", t) for t in texts)
    assert run_builder("detection3d", rec, params={"mode": "all"}) == []  # not applicable, not a placeholder
    # with a label table, those names are used (and only their ids read)
    (named,) = load_source(
        "scanrefer", path=str(sr), bbox_dir=str(tmp_path), label_names={5: "chair", 7: "table"}
    )
    assert [o["label"] for o in named["objects"]] == ["chair", "table"]


def test_synthetic_sources(tmp_path):
    from lamm.data.synthetic import SynthConfig, synthesize

    synthesize(
        tmp_path,
        SynthConfig(
            n_train_2d=6,
            n_test_2d=1,
            n_train_objects_3d=3,
            n_test_objects_3d=1,
            n_train_scenes_3d=3,
            n_test_scenes_3d=1,
            points_per_object=32,
            points_per_scene=128,
        ),
    )
    r2 = load_source("synthetic2d", root=str(tmp_path))
    assert len(r2) == 6 and all((tmp_path / r["image"]).exists() for r in r2)
    coco = json.loads((tmp_path / "2d/annotations/train.json").read_text())
    first = [a for a in coco["annotations"] if a["image_id"] == coco["images"][0]["id"]]
    assert r2[0]["label"] == next(
        coco["categories"][a["category_id"] - 1]["name"] for a in first if a["dominant"]
    )
    assert {o["color"] for o in r2[0]["objects"]} == {a["color"] for a in first}
    assert r2[0]["vocab"]["colors"] and r2[0]["vocab"]["shapes"]
    o3 = load_source("synthetic_objects3d", root=str(tmp_path), split="test")
    assert len(o3) == 1 and o3[0]["pcl"].startswith("3d/objects/test/")
    s3 = load_source("synthetic_scenes3d", root=str(tmp_path))
    assert any(r["referrals"] for r in s3) and all(f["style"] == "phrase" for r in s3 for f in r["referrals"])
    with pytest.raises(SourceError, match="annotation file not found"):
        load_source("synthetic2d", root=str(tmp_path / "nope"))
