"""Collation: packing keeps samples independent, lengths are checked up front, never cut in a media span."""

from __future__ import annotations

import json

import pytest
import torch
from _train_helpers import SMALL_MODEL, make_instruction_data

from lamm.conversation import IGNORE_INDEX
from lamm.train.collate import Collator, block_causal_mask, model_attention_mask, pack_rows
from lamm.train.config import DataConfig
from lamm.train.data import DataError, InstructionDataset, SampleSpec


@pytest.fixture(scope="module")
def model():
    from lamm.model.config import model_preset
    from lamm.model.mllm import MultimodalLM

    overrides = [f"{k}={v}" for k, v in SMALL_MODEL.items()]
    return MultimodalLM.from_config(model_preset("tiny", overrides)).eval()


def _dataset(model, path, **kw):
    cfg = DataConfig(train=[{"file": str(path)}], **kw)
    return InstructionDataset(cfg.train, SampleSpec.from_model(model), cfg)


def test_pack_rows_first_fit_and_deterministic():
    assert pack_rows([5, 3, 4, 2], 8) == [[0, 1], [2, 3]]
    assert pack_rows([6, 6, 2, 2], 8) == [[0, 2], [1, 3]]
    with pytest.raises(ValueError, match="more than a packed row"):
        pack_rows([9], 8)


def test_block_causal_mask_blocks_other_samples_and_padding():
    seq = torch.tensor([[0, 0, 1, 1, 1, -1]])
    m = block_causal_mask(seq)[0, 0]
    assert m[1, 0] and not m[0, 1]  # causal
    assert not m[2, 1] and m[4, 2]  # sample 1 never sees sample 0
    assert m[5].tolist() == [False] * 5 + [True]  # padding sees only itself (no NaN rows)
    add = model_attention_mask(m[None, None], "eager", torch.float32)
    assert add[0, 0, 2, 1] == torch.finfo(torch.float32).min and add[0, 0, 4, 2] == 0
    assert model_attention_mask(m[None, None], "flash_attention_2", torch.float32) is None


def _packed_vs_alone(model, samples):
    """Pack ``samples`` into one row, check each sample's logits equal its logits alone; returns the
    packed batch, its output, and the summed loss and supervised count of the samples alone."""
    packed = Collator(model.tokenizer.pad_token_id, packing=True, row_length=1024)(samples)
    assert packed["input_ids"].shape[0] == 1
    out = model(packed["input_ids"], packed["attention_mask"], packed["media"], packed["labels"],
                packed["position_ids"], reduction="sum")
    at, total, n_sup = 0, 0.0, 0
    for s in samples:
        alone = Collator(model.tokenizer.pad_token_id)([s])
        o = model(alone["input_ids"], alone["attention_mask"], alone["media"], alone["labels"],
                  alone["position_ids"], reduction="sum")
        n = len(s["input_ids"])
        torch.testing.assert_close(out.logits[0, at:at + n], o.logits[0], atol=1e-5, rtol=0)
        total += float(o.loss)
        n_sup += int(o.n_supervised)
        at += n
    return packed, out, total, n_sup


@torch.no_grad()
def test_packed_logits_equal_each_sample_alone(model, train_data):
    ds = _dataset(model, train_data)
    samples = [ds[i] for i in (0, 1, 13, 3)]  # images, a point cloud, a multi-turn record
    packed, out, total, n_sup = _packed_vs_alone(model, samples)
    # the loss of the packed row is exactly the sum of the samples' losses: nothing crosses a boundary
    assert int(out.n_supervised) == n_sup == packed["n_supervised"]
    assert float(out.loss) == pytest.approx(total, rel=1e-5)


def test_padding_batch_counts_and_media_order(model, train_data):
    ds = _dataset(model, train_data)
    samples = [ds[i] for i in (12, 0, 13)]  # pcl, image, pcl
    b = Collator(model.tokenizer.pad_token_id)(samples)
    assert b["attention_mask"].shape == b["input_ids"].shape
    assert b["n_tokens"] == sum(len(s["input_ids"]) for s in samples) == int(b["attention_mask"].sum())
    assert b["media"]["pcl"].shape[0] == 2 and b["media"]["image"].shape[0] == 1
    assert torch.equal(b["media"]["pcl"][1], samples[2]["media"]["pcl"][0])
    assert b["n_supervised"] == int((b["labels"][:, 1:] != IGNORE_INDEX).sum())


def test_too_long_is_an_error_naming_the_record(model, train_data):
    with pytest.raises(DataError, match=r"train\.json: record \d+ id='img\d+'.*max_length 30"):
        _dataset(model, train_data, max_length=30)


def test_too_long_drops_are_counted_above_threshold(model, tmp_path):
    path = make_instruction_data(tmp_path, n_images=4, n_clouds=0)
    recs = json.loads(path.read_text())
    recs[1]["conversations"][1]["value"] = "a very long answer " * 60
    path.write_text(json.dumps(recs))
    ds = _dataset(model, path, max_length=160, max_drop_fraction=0.5)
    assert len(ds) == 3 and len(ds.dropped) == 1 and ds.dropped[0].id == "img1"
    with pytest.raises(DataError, match="1 of 4 samples"):
        _dataset(model, path, max_length=160, max_drop_fraction=0.1)


def test_truncate_never_cuts_inside_a_media_span(model, tmp_path):
    path = make_instruction_data(tmp_path, n_images=2, n_clouds=0)
    recs = json.loads(path.read_text())
    recs[0]["conversations"][1]["value"] = "a very long answer " * 60
    path.write_text(json.dumps(recs))
    ds = _dataset(model, path, max_length=160, too_long="truncate")
    assert ds.n_truncated == 1 and len(ds[0]["input_ids"]) == 160
    assert (ds[0]["labels"][1:] != IGNORE_INDEX).any()
    # a cap inside the image span (the system prompt + 64 image tokens do not fit in 20): dropped, not cut
    with pytest.raises(DataError, match="inside a media span"):
        _dataset(model, path, max_length=20, too_long="truncate")


def test_invalid_records_are_reported_with_file_record_and_field(model, tmp_path):
    path = make_instruction_data(tmp_path, n_images=2, n_clouds=0)
    recs = json.loads(path.read_text())
    recs[1]["conversations"][0]["from"] = "robot"
    path.write_text(json.dumps(recs))
    with pytest.raises(DataError, match=r"record 1 id='img1': conversations\[0\]\.from"):
        _dataset(model, path)


@torch.no_grad()
def test_text_only_records_train_beside_media_records(model, tmp_path):
    """A text-only record (neither image nor pcl, as in LLaVA's mix) passes the record checks, packs
    beside image and point-cloud samples without crossing them, and a batch of text alone has no media."""
    path = make_instruction_data(tmp_path, n_images=2, n_clouds=1)
    recs = json.loads(path.read_text())
    recs.append({"id": "txt0", "task_type": "conversation",
                 "conversations": [{"from": "human", "value": "Say hello."}, {"from": "gpt", "value": "Hello."}]})
    path.write_text(json.dumps(recs))
    ds = _dataset(model, path)
    text = ds[len(recs) - 1]
    assert not text["media"] or all(len(v) == 0 for v in text["media"].values())
    _packed_vs_alone(model, [ds[0], text, ds[2]])
    only_text = Collator(model.tokenizer.pad_token_id)([text])
    assert not only_text["media"] or all(v.shape[0] == 0 for v in only_text["media"].values())
    o = model(only_text["input_ids"], only_text["attention_mask"], only_text["media"], only_text["labels"],
              only_text["position_ids"], reduction="sum")
    assert int(o.n_supervised) > 0 and torch.isfinite(o.loss)
