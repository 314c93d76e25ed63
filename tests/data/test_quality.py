"""Quality control: filters with reasons, exact and MinHash near-duplicate removal, count
contradictions, and split assignment that never puts one image in two splits."""

from __future__ import annotations

import numpy as np
import pytest

from lamm.data.quality import (
    MinHasher,
    QualityConfig,
    assign_splits,
    check_disjoint,
    contradiction,
    count_claims,
    dedup_exact,
    dedup_near,
    filter_records,
    jaccard,
    near_duplicate_groups,
    shingles,
)


def rec(
    rid: str,
    answer: str,
    image: str = "a.png",
    task: str = "description",
    question: str = "Describe it.",
    src: str = "1",
) -> dict:
    return {
        "id": rid,
        "image": image,
        "task_type": task,
        "src_dataset": "toy",
        "src_id": src,
        "conversations": [{"from": "human", "value": question}, {"from": "gpt", "value": answer}],
    }


LONG = (
    "A brown dog runs across a wide green lawn in a sunny park, chasing a red ball that bounces "
    "towards a row of tall trees while two children watch from a wooden bench nearby."
)


def test_filters_report_reasons():
    cfg = QualityConfig(min_answer_words=2, max_answer_words=30)
    source = {
        ("toy", "1"): {
            "objects": [{"label": "dog", "bbox": [0, 0, 1, 1]}] * 2 + [{"label": "cat", "bbox": [0, 0, 1, 1]}]
        }
    }
    recs = [
        rec("ok", "There are 2 dogs and a cat."),
        rec("short", "Dog."),
        rec("long", LONG + " " + LONG),
        rec("refuse", "I'm sorry, as an AI I cannot see images."),
        rec("wrong", "There are three dogs in the image."),
        rec("crowd", "There are 9 people.", src="2"),
    ]
    kept, dropped = filter_records(recs, cfg, source)
    assert [r["id"] for r in kept] == ["ok", "crowd"]
    why = {r["id"]: reason.split(":")[0] for r, reason in dropped}
    assert why == {
        "short": "answer_too_short",
        "long": "answer_too_long",
        "refuse": "refusal",
        "wrong": "contradicts_annotations",
    }
    assert "states 3 dog but the annotations have 2" in {r["id"]: w for r, w in dropped}["wrong"]
    assert (
        filter_records(recs, QualityConfig(drop_contradictions=False, drop_refusals=False), source)[1] == []
    )


def test_count_claims_read_only_explicit_statements():
    assert count_claims("I can see two red cars and there is one person.", ["car", "person"]) == [
        ("car", 2),
        ("person", 1),
    ]
    assert count_claims("One dog is brown. The two of them play.", ["dog"]) == []
    assert count_claims("There are no cats here.", ["cat"]) == [("cat", 0)]
    src = {"counts": {"sea shell": 36}}
    assert contradiction(rec("x", "There are 36 sea shells in the image."), src) is None
    assert contradiction(rec("x", "There are 35 sea shells."), src)
    assert contradiction(rec("x", "There are 3 people."), {"objects": [], "crowd_labels": ["person"]}) is None


def test_refusals_match_whole_words_in_the_filter_and_the_generator():
    import json

    from lamm.data.generate import InvalidOutput, load_pack, parse_reply
    from lamm.data.generate import validate as gen_validate
    from lamm.data.quality import REFUSAL_RE, find_refusal

    innocent = [
        "The room has an air conditioner mounted above the window and a sofa below it.",
        "A large jet is parked at the gate; the building behind it was an airport terminal.",
        "The plane is painted white, with a blue stripe, such as an airline would use.",
    ]
    refusing = ["As an AI, I cannot see images.", "I\u2019m sorry, but that is not visible here."]
    cfg = QualityConfig(min_answer_words=2)
    kept, dropped = filter_records([rec(f"r{i}", t) for i, t in enumerate(innocent + refusing)], cfg)
    assert [r["id"] for r in kept] == ["r0", "r1", "r2"]
    assert [why for _, why in dropped] == ["refusal: 'as an ai'", 'refusal: "i\'m sorry"']
    # one compiled pattern, shared: the generation validator uses the same function
    assert gen_validate.find_refusal is find_refusal and REFUSAL_RE.search("was an airport") is None
    pack = load_pack("c3_description")
    pad = " " + " ".join(["The scene is calm and bright with soft light everywhere."] * 2)
    for t in innocent:
        parse_reply(json.dumps({"description": t + pad}), pack)
    with pytest.raises(InvalidOutput, match="refusal phrase 'as an ai'"):
        parse_reply(json.dumps({"description": refusing[0] + pad}), pack)


def test_count_claims_accept_the_datasets_own_plural():
    # FSC147-style source record: singular label, the dataset's plural kept beside it
    src = {"counts": {"deer": 7}, "plurals": {"deer": "deers"}}
    assert contradiction(rec("x", "There are 9 deers in the picture."), src)
    assert contradiction(rec("x", "There are 7 deers in the picture."), src) is None
    # objects of unknown class: a stated count cannot be checked
    unnamed = {
        "objects": [
            {"label": "chair", "bbox": [0, 0, 0, 1, 1, 1]},
            {"label": None, "unnamed": True, "bbox": [1, 1, 0, 1, 1, 1]},
        ]
    }
    assert contradiction(rec("x", "There are 2 chairs in the room."), unnamed) is None


def test_exact_dedup_is_per_media_and_task():
    recs = [
        rec("a", "A cat."),
        rec("b", "a  CAT."),
        rec("c", "A cat.", image="b.png"),
        rec("d", "A cat.", task="VQA"),
    ]
    kept, dropped = dedup_exact(recs)
    assert [r["id"] for r in kept] == ["a", "c", "d"] and dropped[0][1] == "exact_duplicate: of a"


def test_minhash_estimates_jaccard():
    a, b = shingles(LONG, 3), shingles(LONG.replace("sunny", "quiet"), 3)
    h = MinHasher(256, seed=1)
    est = float(np.mean(h.signature(a) == h.signature(b)))
    assert est == pytest.approx(jaccard(a, b), abs=0.1)
    assert (h.signature(a) == h.signature(set(a))).all()  # order-free, deterministic


def test_near_dedup_generated_text_only():
    near = LONG.replace("sunny", "quiet")
    other = "Three boats float on a calm lake under a grey sky while a fisherman repairs his net on the pier."
    groups = near_duplicate_groups([LONG, other, near, LONG + " Birds sing."], threshold=0.7)
    assert groups == [0, 1, 0, 0]
    recs = [
        rec("a", LONG, image="1.png"),
        rec("b", near, image="2.png"),
        rec("c", other, image="3.png"),
        rec("d", LONG, image="4.png", task="detection"),
        rec("e", "Short text.", image="5.png"),
    ]
    kept, dropped = dedup_near(recs, QualityConfig(near_threshold=0.7))
    assert [r["id"] for r in kept] == ["a", "c", "d", "e"] and dropped[0][1] == "near_duplicate: of a"
    kept, _ = dedup_near(recs, QualityConfig(near_threshold=0.7, near_scope="media"))
    assert len(kept) == 5  # different images are never compared in media scope


def test_splits_group_by_media_and_are_stable():
    recs = [
        rec(f"{i}-{t}", "x", image=f"img{i}.png", task=t) for i in range(200) for t in ("VQA", "detection")
    ]
    splits = assign_splits(recs, {"train": 0.8, "val": 0.1, "test": 0.1}, seed=0)
    check_disjoint(splits)
    assert 120 < len(splits["train"]) / 2 < 200 and splits["val"] and splits["test"]
    for s in splits.values():
        images = {r["image"] for r in s}
        assert sum(r["image"] in images for r in recs) == len(s)  # both tasks of an image stay together
    assert assign_splits(recs, {"train": 0.8, "val": 0.1, "test": 0.1}, seed=0) == splits
    with pytest.raises(ValueError, match="sum to 1"):
        assign_splits(recs, {"train": 0.8})
    with pytest.raises(ValueError, match="'img0.png' is in splits 'a' and 'b'"):
        check_disjoint({"a": [recs[0]], "b": [recs[1]]})
