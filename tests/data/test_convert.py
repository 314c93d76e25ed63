"""Conversion between LAMM and the LLaVA, PointLLM and ShareGPT formats, both ways."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lamm.conversation import system_message
from lamm.data.convert import ConvertError, convert, convert_file
from lamm.data.records import validate_records

REF = Path("/work/shared/reference/examples")


def lamm_2d() -> list[dict]:
    return [
        {
            "id": "det_1",
            "image": "coco_images/1.jpg",
            "task_type": "detection",
            "conversations": [
                {"from": "human", "value": "Find the dog."},
                {"from": "gpt", "value": "The dog is located at [0.10, 0.20, 0.50, 0.90]."},
            ],
            "src_dataset": "coco2017",
            "src_id": "1",
            "builder": "detection@1",
            "template_id": "a+b",
            "seed": 0,
        },
        {
            "id": "conv_2",
            "image": "coco_images/2.jpg",
            "task_type": "conversation",
            "conversations": [
                {"from": "human", "value": "What is this?"},
                {"from": "gpt", "value": "A kitchen."},
                {"from": "human", "value": "Anyone cooking?"},
                {"from": "gpt", "value": "No."},
            ],
        },
    ]


def lamm_3d() -> list[dict]:
    return [
        {
            "id": "sn_1",
            "pcl": "shapenet_pcls/04256520_cb71_4096.npy",
            "task_type": "classification3d",
            "conversations": [
                {"from": "human", "value": "What is this?"},
                {"from": "gpt", "value": "A sofa."},
            ],
            "src_dataset": "ShapeNet",
            "src_id": "04256520_cb71",
        },
        {
            "id": "sn_2",
            "pcl": "shapenet_pcls/x_4096.npy",
            "task_type": "description3d",
            "conversations": [
                {"from": "human", "value": "Describe it."},
                {"from": "gpt", "value": "A long sofa."},
            ],
        },
    ]


@pytest.mark.parametrize(
    "fmt,data", [("llava", lamm_2d), ("sharegpt", lamm_2d), ("sharegpt", lamm_3d), ("pointllm", lamm_3d)]
)
def test_round_trip_is_lossless(fmt, data):
    records = data()
    there = convert(records, "lamm", fmt)
    assert convert(there, fmt, "lamm") == records


def test_exported_shapes():
    llava = convert(lamm_2d(), "lamm", "llava")
    assert (
        llava[0]["conversations"][0]["value"] == "<image>\nFind the dog."
        and llava[0]["image"] == "coco_images/1.jpg"
    )
    pl = convert(lamm_3d(), "lamm", "pointllm")
    assert pl[0]["object_id"] == "04256520_cb71_4096" and pl[0]["conversation_type"] == "single_round"
    assert pl[1]["conversation_type"] == "detailed_description"
    assert pl[0]["conversations"][0]["value"] == "<point>\nWhat is this?"
    sg = convert(lamm_3d(), "lamm", "sharegpt")
    assert sg[0]["system"] == system_message("classification3d") and sg[0]["point_clouds"] == [
        lamm_3d()[0]["pcl"]
    ]
    assert sg[0]["conversations"][0]["value"].startswith("<pcl>\n")


def test_import_foreign_records():
    llava = [
        {
            "id": "000000033471",
            "image": "000000033471.jpg",
            "conversations": [
                {"from": "human", "value": "What are the colors of the bus in the image?\n<image>"},
                {"from": "gpt", "value": "The bus in the image is white and red."},
            ],
        }
    ]
    (rec,) = convert(llava, "llava", "lamm")
    assert rec["conversations"][0]["value"] == "What are the colors of the bus in the image?"
    assert rec["task_type"] == "conversation"
    pointllm = [
        {
            "object_id": "abc",
            "conversation_type": "detailed_description",
            "conversations": [
                {"from": "human", "value": "<point>\nDescribe."},
                {"from": "gpt", "value": "A chair."},
            ],
        },
        {
            "object_id": "abc",
            "conversation_type": "detailed_description",
            "conversations": [
                {"from": "human", "value": "<point>\nMore?"},
                {"from": "gpt", "value": "Wooden."},
            ],
        },
    ]
    recs = convert(pointllm, "pointllm", "lamm", pcl_template="pcls/{object_id}_8192.npy")
    assert [r["id"] for r in recs] == ["abc_detailed_description_0", "abc_detailed_description_1"]
    assert recs[0]["pcl"] == "pcls/abc_8192.npy" and recs[0]["task_type"] == "description3d"
    sharegpt = [
        {
            "messages": [
                {"role": "system", "content": system_message("counting")},
                {"role": "user", "content": "<image>How many?"},
                {"role": "assistant", "content": "3"},
            ],
            "images": ["a.png"],
        }
    ]
    (rec,) = convert(sharegpt, "sharegpt", "lamm")
    assert (
        rec["task_type"] == "counting"
        and rec["image"] == "a.png"
        and rec["conversations"][0]["value"] == "How many?"
    )
    assert validate_records(recs + [rec], check_media=False).ok


def test_errors_name_the_record():
    with pytest.raises(ConvertError, match=r"record 0 \(id='sn_1'\): LLaVA has no point clouds"):
        convert(lamm_3d(), "lamm", "llava")
    with pytest.raises(ConvertError, match="record 0: 'image' must be a non-empty path"):
        convert([{"image": "", "conversations": [{"from": "human", "value": "hi"}]}], "llava", "lamm")
    with pytest.raises(ConvertError, match="found 2 media"):
        convert(
            [{"images": ["a.png", "b.png"], "conversations": [{"from": "human", "value": "x"}]}],
            "sharegpt",
            "lamm",
        )
    with pytest.raises(ConvertError, match="unknown format 'alpaca'"):
        convert([], "lamm", "alpaca")


def test_convert_file_validates_and_reads_reference_examples(tmp_path):
    src = REF / "instruct_2d.json" if REF.exists() else None
    records = json.loads(src.read_text()) if src else lamm_2d()
    inp = tmp_path / "in.json"
    inp.write_text(json.dumps(records))
    assert convert_file(inp, tmp_path / "llava.jsonl", "lamm", "llava").written == len(records)
    back = convert_file(tmp_path / "llava.jsonl", tmp_path / "back.json", "llava", "lamm")
    assert back.written == len(records)
    assert json.loads((tmp_path / "back.json").read_text()) == records
    bad = tmp_path / "bad.json"
    bad.write_text(
        json.dumps([{"id": "x", "image": "a.png", "conversations": [{"from": "gpt", "value": "hi"}]}])
    )
    with pytest.raises(
        ConvertError, match=r"(?s)not valid LAMM records.*bad\.json \(converted\): record 0 id='x'"
    ):
        convert_file(bad, tmp_path / "out.json", "llava", "lamm")


def test_a_mixed_2d_3d_file_converts_with_skip_other_modality(tmp_path):
    """A file of 2D and 3D records (the docs' own training data) converts to LLaVA and to PointLLM once
    each with --skip-other-modality; without it the first record of the other modality stops it."""
    from typer.testing import CliRunner

    from lamm.cli.main import app

    mixed = lamm_2d() + lamm_3d()
    inp = tmp_path / "mixed.json"
    inp.write_text(json.dumps(mixed))
    with pytest.raises(ConvertError, match="--skip-other-modality"):
        convert_file(inp, tmp_path / "x.json", "lamm", "llava")
    assert convert_file(inp, tmp_path / "l.json", "lamm", "llava", skip_other_modality=True) == (
        len(lamm_2d()), len(mixed))
    p = convert_file(inp, tmp_path / "p.json", "lamm", "pointllm", skip_other_modality=True)
    assert p.written == len(lamm_3d())
    res = CliRunner().invoke(app, ["data", "convert", str(inp), str(tmp_path / "c.json"), "--to", "llava",
                                   "--skip-other-modality"])
    assert res.exit_code == 0, res.output
    out = " ".join(res.output.split())  # rich wraps long lines
    assert f"wrote {len(lamm_2d())} records" in out
    assert f"{len(lamm_3d())} records of the other modality left out" in out


def test_text_only_records_cross_every_format_but_pointllm():
    """LLaVA's mix has text-only dialogues (no "image"): they become text-only LAMM records and go back
    unchanged; ShareGPT carries them without a media list; PointLLM refuses them unless told to skip."""
    llava = [{"id": "t1", "conversations": [{"from": "human", "value": "Tell me a joke."},
                                            {"from": "gpt", "value": "No."}]},
             {"id": "i1", "image": "a.png", "conversations": [{"from": "human", "value": "<image>\nWhat?"},
                                                              {"from": "gpt", "value": "A cat."}]}]
    lamm = convert(llava, "llava", "lamm")
    assert "image" not in lamm[0] and "pcl" not in lamm[0] and lamm[0]["task_type"] == "conversation"
    assert lamm[0]["conversations"][0]["value"] == "Tell me a joke." and lamm[1]["image"] == "a.png"
    assert validate_records(lamm, check_media=False).ok
    back = convert(lamm, "lamm", "llava")  # task_type is kept (LAMM → X → LAMM gives back the same records)
    assert [{k: v for k, v in r.items() if k != "task_type"} for r in back] == llava
    share = convert(lamm, "lamm", "sharegpt")
    assert "images" not in share[0] and "<image>" not in share[0]["conversations"][0]["value"]
    assert convert(share, "sharegpt", "lamm") == lamm
    with pytest.raises(ConvertError, match=r"record 0 \(id='t1'\): PointLLM has no text-only records"):
        convert(lamm, "lamm", "pointllm")
    assert convert(lamm[:1], "lamm", "pointllm", skip_other_modality=True) == []
