"""The ``hf:`` backend on a tiny random LLaVA: same greedy output as calling ``model.generate`` directly."""

from __future__ import annotations

import pytest
import torch

from lamm.conversation import Conversation, MediaRef, Message, context_token_count
from lamm.infer.engine import GenerateRequest, GenerationSettings, LoglikelihoodRequest, load_engine


@pytest.fixture(scope="module")
def engine(tiny_llava_dir):
    eng = load_engine(f"hf:{tiny_llava_dir}", device="cpu", batch_size=4)
    yield eng
    eng.close()


def _direct(engine, conv: Conversation, max_new_tokens: int) -> str:
    """What a user of transformers would write by hand for one prompt."""
    proc, model = engine.processor, engine.model
    msgs = [{"role": "system", "content": [{"type": "text", "text": conv.system_text}]},
            {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": conv.messages[0].content}]}]
    text = proc.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False)
    inputs = proc(images=[conv.media[0].load()], text=[text], return_tensors="pt")
    with torch.inference_mode():
        out = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
    return proc.tokenizer.decode(out[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True)


def test_greedy_matches_model_generate(engine, image_file):
    questions = ["what is in the image?", "describe the picture in detail please, with every shape."]
    reqs = [GenerateRequest(Conversation.single_turn(q, [MediaRef("image", path=str(image_file))]),
                            GenerationSettings(max_new_tokens=12)) for q in questions]
    # both in one left-padded batch: each must equal its own unbatched model.generate
    got = engine.generate(reqs)
    want = [_direct(engine, r.conversation, 12) for r in reqs]
    assert got == want
    assert engine.usage.requests >= 2 and engine.usage.completion_tokens > 0


def test_prompt_uses_processor_chat_template(engine, image_file):
    conv = Conversation.single_turn("how many shapes?", [MediaRef("image", path=str(image_file))], system="Be brief.")
    assert engine.prompt_text(conv) == "Be brief. USER: <image>\nhow many shapes? ASSISTANT:"


def test_stream_equals_generate(engine, image_file):
    req = GenerateRequest(Conversation.single_turn("what?", [MediaRef("image", path=str(image_file))]),
                          GenerationSettings(max_new_tokens=10))
    assert "".join(engine.stream(req)) == engine.generate([req])[0]


def test_stop_string_cuts_reply(engine, image_file):
    req = GenerateRequest(Conversation.single_turn("what?", [MediaRef("image", path=str(image_file))]),
                          GenerationSettings(max_new_tokens=10))
    full = engine.generate([req])[0]
    assert len(full) >= 3
    stop = full[2:4]
    req.settings.stop = [stop]
    assert engine.generate([req])[0] == full[: full.index(stop)]


def test_loglikelihood_matches_direct_forward(engine, image_file):
    conv = Conversation.single_turn("is it red?", [MediaRef("image", path=str(image_file))])
    res = engine.loglikelihood([LoglikelihoodRequest(conv, " yes"), LoglikelihoodRequest(conv, " no maybe")])
    proc, model = engine.processor, engine.model
    inputs = proc(images=[conv.media[0].load()], text=[engine.prompt_text(conv)], return_tensors="pt")
    cont = proc.tokenizer(" no maybe", add_special_tokens=False)["input_ids"]
    ids = torch.cat([inputs["input_ids"], torch.tensor([cont])], dim=1)
    with torch.inference_mode():
        logits = model(input_ids=ids, pixel_values=inputs["pixel_values"]).logits
    logp = torch.log_softmax(logits[0, :-1].float(), -1)
    p = inputs["input_ids"].shape[1]
    want = sum(logp[p - 1 + i, t].item() for i, t in enumerate(cont))
    assert res[1].n_tokens == len(cont)
    assert res[1].sum_logprob == pytest.approx(want, abs=1e-4)
    assert res[0].sum_logprob < 0 and res[0].mean_logprob == pytest.approx(res[0].sum_logprob / res[0].n_tokens)


def test_loglikelihood_context_is_not_scored(engine, image_file):
    """``context`` is fed after the prompt but only the continuation's tokens are scored: the sum equals
    the whole reply's minus its leading context tokens'."""
    conv = Conversation.single_turn("is it red?", [MediaRef("image", path=str(image_file))])
    whole, part = engine.loglikelihood([LoglikelihoodRequest(conv, " the answer is yes"),
                                        LoglikelihoodRequest(conv, " yes", context=" the answer is")])
    tok = engine.processor.tokenizer
    reply = tok(" the answer is yes", add_special_tokens=False)["input_ids"]
    k = context_token_count(reply, tok(" the answer is", add_special_tokens=False)["input_ids"])
    inputs = engine.processor(images=[conv.media[0].load()], text=[engine.prompt_text(conv)], return_tensors="pt")
    ids = torch.cat([inputs["input_ids"], torch.tensor([reply])], dim=1)
    with torch.inference_mode():
        logits = engine.model(input_ids=ids, pixel_values=inputs["pixel_values"]).logits
    logp = torch.log_softmax(logits[0, :-1].float(), -1)
    p = inputs["input_ids"].shape[1]
    per_token = [logp[p - 1 + i, t].item() for i, t in enumerate(reply)]
    assert 0 < k < len(reply) and part.n_tokens == len(reply) - k and whole.n_tokens == len(reply)
    assert part.sum_logprob == pytest.approx(sum(per_token[k:]), abs=1e-4)
    assert whole.sum_logprob == pytest.approx(sum(per_token), abs=1e-4)


def test_point_cloud_is_refused_clearly(engine, pcl_file):
    conv = Conversation([Message("user", "what?", [MediaRef("pcl", path=str(pcl_file))])])
    with pytest.raises(ValueError, match="point clouds are not supported"):
        engine.generate([GenerateRequest(conv)])


def test_fingerprint_follows_weights(engine, tiny_llava_dir):
    assert engine.fingerprint().startswith("hf:") and engine.fingerprint() == engine.fingerprint()
    assert len(engine.fingerprint()) > len("hf:") + 16


def test_seeded_sampling_does_not_depend_on_the_batch(engine, image_file):
    """model.generate samples all rows from one generator: seeded sampling requests run one at a time,
    so a reply is the same alone, among other requests, and streamed."""
    def req(q: str, seed: int = 5) -> GenerateRequest:
        return GenerateRequest(Conversation.single_turn(q, [MediaRef("image", path=str(image_file))]),
                               GenerationSettings(max_new_tokens=10, temperature=1.0, seed=seed))

    target = req("what is in the image?")
    alone = engine.generate([target])[0]
    batched = engine.generate([req("describe the picture in detail please."), target,
                               req("how many shapes?")])
    assert batched[1] == alone
    assert "".join(engine.stream(target)) == alone
    assert len({alone, *engine.generate([req("what is in the image?", seed=s) for s in (6, 7)])}) > 1


def test_usage_records_decoded_tokens_and_finish_reason(engine, image_file):
    """Each request's GenerationInfo: the prompt's tokens, the tokens decoded (up to EOS) and "length"
    only when max_new_tokens were decoded without an EOS; generate and stream agree."""
    conv = Conversation.single_turn("what is in the image?", [MediaRef("image", path=str(image_file))])
    reqs = [GenerateRequest(conv, GenerationSettings(max_new_tokens=n)) for n in (2, 5)]
    engine.generate(reqs)
    infos = list(engine.usage.last)
    assert [(i.completion_tokens, i.finish_reason) for i in infos] == [(2, "length"), (5, "length")]
    assert infos[0].prompt_tokens == engine.prompt_tokens(reqs[0]) > 0
    "".join(engine.stream(reqs[1]))
    assert engine.usage.last == [infos[1]]
    assert engine.context_length == engine.model.config.text_config.max_position_embeddings
