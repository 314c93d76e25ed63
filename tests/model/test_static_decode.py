"""Static-cache decoding (the CUDA-graph path, run here without graphs) equals the dynamic loop."""

from __future__ import annotations

import pytest
import torch

from lamm.model.config import model_preset
from lamm.model.llm import RowFinisher, decode_loop
from lamm.model.mllm import MultimodalLM
from lamm.model.static_decode import StaticDecoder, supports_static_decoding

torch.set_num_threads(1)
LENS = [5, 9, 3, 12]


def _model(*overrides: str) -> MultimodalLM:
    torch.manual_seed(0)
    return MultimodalLM.from_config(model_preset("tiny", list(overrides))).eval()


@pytest.fixture(scope="module")
def tiny() -> MultimodalLM:
    return _model()


def _batch(model: MultimodalLM) -> tuple[torch.Tensor, torch.Tensor]:
    """Random prompt embeddings, LEFT padded to the longest of LENS."""
    width = max(LENS)
    dim = model.llm.get_input_embeddings().weight.shape[1]
    embeds = torch.randn(len(LENS), width, dim, generator=torch.Generator().manual_seed(1))
    mask = torch.zeros(len(LENS), width, dtype=torch.long)
    for i, n in enumerate(LENS):
        mask[i, width - n:] = 1
    return embeds, mask


def _settings(**kw):
    return {"max_new_tokens": 40, "do_sample": False, "temperature": 1.0, "top_p": 1.0, "stops": ["###"],
            "seed": None, **kw}


@pytest.mark.parametrize("sync_every", [1, 3, 8])
def test_greedy_static_equals_dynamic(tiny, sync_every):
    embeds, mask = _batch(tiny)
    with torch.no_grad():
        want = decode_loop(tiny.llm, tiny.tokenizer, embeds, mask, **_settings())
    dec = StaticDecoder(tiny.llm, bucket=32, sync_every=sync_every, use_graphs=False)
    got = dec.decode(tiny.tokenizer, embeds, mask, **_settings())
    assert got == want
    assert all(len(t) > 10 for t in got)  # the random model talks; the comparison is not of empty strings
    assert dec.graphs_captured == 0


def test_left_padded_rows_decode_as_alone(tiny):
    embeds, mask = _batch(tiny)
    dec = StaticDecoder(tiny.llm, bucket=32, use_graphs=False)
    batched = dec.decode(tiny.tokenizer, embeds, mask, **_settings(max_new_tokens=20))
    width = max(LENS)
    for i, n in enumerate(LENS):
        alone = dec.decode(tiny.tokenizer, embeds[i:i + 1, width - n:], mask[i:i + 1, width - n:],
                           **_settings(max_new_tokens=20))
        assert alone == [batched[i]]


def test_seeded_sampling_equals_dynamic_and_repeats(tiny):
    embeds, mask = _batch(tiny)
    kw = _settings(do_sample=True, temperature=0.9, top_p=0.9, seed=3, max_new_tokens=30, stops=[])
    with torch.no_grad():
        want = decode_loop(tiny.llm, tiny.tokenizer, embeds, mask, **kw)
    dec = StaticDecoder(tiny.llm, bucket=32, use_graphs=False)
    assert dec.decode(tiny.tokenizer, embeds, mask, **kw) == want
    assert dec.decode(tiny.tokenizer, embeds, mask, **kw) == want
    other = dec.decode(tiny.tokenizer, embeds, mask, **{**kw, "seed": 4})
    assert other != want


def test_shapes_share_a_bucket_and_old_ones_are_evicted(tiny):
    embeds, mask = _batch(tiny)
    dec = StaticDecoder(tiny.llm, bucket=64, keep=1, use_graphs=False)
    first = dec.decode(tiny.tokenizer, embeds, mask, **_settings(max_new_tokens=10))
    dec.decode(tiny.tokenizer, embeds, mask, **_settings(max_new_tokens=30))  # 12 + 30 still fits 64
    assert list(dec._slots) == [(4, 64, "cpu")]
    dec.decode(tiny.tokenizer, embeds, mask, **_settings(max_new_tokens=60))  # needs 128
    assert list(dec._slots) == [(4, 128, "cpu")]
    # a reused cache holds the previous call's entries beyond the prompt: they must stay invisible
    assert dec.decode(tiny.tokenizer, embeds, mask, **_settings(max_new_tokens=10)) == first


def test_lora_wrapped_llm(tiny):
    model = _model("llm_mode=lora")
    with torch.no_grad():
        for name, p in model.llm.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.2, generator=torch.Generator().manual_seed(0))
    embeds, mask = _batch(model)
    with torch.no_grad():
        want = decode_loop(model.llm, model.tokenizer, embeds, mask, **_settings())
    got = StaticDecoder(model.llm, bucket=32, use_graphs=False).decode(model.tokenizer, embeds, mask, **_settings())
    assert got == want


def test_sliding_window_models_are_refused():
    from transformers import AutoConfig, AutoModelForCausalLM

    conf = AutoConfig.for_model("mistral", hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                num_attention_heads=2, num_key_value_heads=1, vocab_size=50, sliding_window=8)
    llm = AutoModelForCausalLM.from_config(conf)
    ok, why = supports_static_decoding(llm)
    assert not ok and "sliding" in why
    with pytest.raises(ValueError, match="static decoding is not available"):
        StaticDecoder(llm)


def test_row_finisher_cuts_at_a_stop_completed_late(tiny):
    tok = tiny.tokenizer
    text = "the red circle is on the left of the blue square " * 6 + "### ignored"
    ids = tok(text, add_special_tokens=False)["input_ids"]
    rows = RowFinisher(tok, 2, ["###"])
    ended_at = None
    for k, t in enumerate(ids):
        if rows.push([t, tok.eos_token_id if k == 3 else t]):
            ended_at = k
            break
    assert ended_at is not None and "###" in tok.decode(ids[: ended_at + 1]) and "###" not in tok.decode(ids[:ended_at])
    texts = rows.texts()
    assert texts[0] == text.split("###")[0].strip()
    assert texts[1] == tok.decode(ids[:3]).strip()  # the EOS row keeps what came before it


@pytest.mark.slow
def test_compiled_step_equals_eager(tiny):
    """``compile_step`` (torch.compile of the step, ~40 s on 2 CPU cores) gives the eager static path's replies."""
    embeds, mask = _batch(tiny)
    want = StaticDecoder(tiny.llm, bucket=32, use_graphs=False).decode(tiny.tokenizer, embeds, mask, **_settings())
    dec = StaticDecoder(tiny.llm, bucket=32, use_graphs=False, compile_step=True)
    assert dec.decode(tiny.tokenizer, embeds, mask, **_settings()) == want


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_graph_replay_equals_dynamic_loop(tiny):
    model = _model().to("cuda")
    embeds, mask = (t.to("cuda") for t in _batch(model))
    with torch.no_grad():
        want = decode_loop(model.llm, model.tokenizer, embeds, mask, **_settings())
    dec = StaticDecoder(model.llm, bucket=32, sync_every=4)
    assert dec.decode(model.tokenizer, embeds, mask, **_settings()) == want
    assert dec.graphs_captured == 1
    assert dec.decode(model.tokenizer, embeds, mask, **_settings()) == want and dec.graphs_captured == 1


def test_row_finisher_counts_decoded_tokens_and_says_why_each_row_ended():
    """counts(): tokens decoded (stop-string tokens in, the ending EOS out); finish_reasons(): "stop" at
    EOS or a stop string, "length" for a row still running when the budget ran out."""
    from lamm.model.llm import build_tiny_tokenizer

    tok = build_tiny_tokenizer()
    ids = tok("The cube is red.\n### Human:", add_special_tokens=False)["input_ids"]
    rows = RowFinisher(tok, 3, ["###"])
    for k, t in enumerate(ids[:-1]):
        rows.push([t, tok.eos_token_id if k == 2 else t, ids[k % 2]])
    ended = next(k for k in range(1, len(ids)) if "###" in tok.decode(ids[:k]))
    assert rows.counts() == [ended, 2, len(ids) - 1]
    assert rows.finish_reasons() == ["stop", "stop", "length"]


@pytest.mark.parametrize("do_sample", [False, True])
def test_static_rows_report_the_dynamic_loops_counts_and_reasons(tiny, do_sample):
    from lamm.model.llm import decode_rows

    embeds, mask = _batch(tiny)
    kw = _settings(max_new_tokens=12, do_sample=do_sample, seed=[1, 2, 3, 4], stops=["###", "e"])
    want = decode_rows(tiny.llm, tiny.tokenizer, embeds, mask, **kw)
    got = StaticDecoder(tiny.llm, bucket=32, sync_every=5, use_graphs=False).decode_rows(
        tiny.tokenizer, embeds, mask, **kw)
    assert got.texts() == want.texts()
    assert (got.counts(), got.finish_reasons()) == (want.counts(), want.finish_reasons())
    assert all(n <= 12 for n in want.counts())
