"""MultimodalLM on the tiny model: placeholder splicing, losses, generation, log-likelihoods, LoRA mode."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from lamm.conversation import Conversation, MediaRef, Message, tokenize_continuation
from lamm.model.config import model_preset
from lamm.model.encoders.preprocess import sample_seed
from lamm.model.mllm import MultimodalLM, expand_placeholders


def image(seed: int, size: int = 48) -> MediaRef:
    rng = np.random.default_rng(seed)
    arr = (rng.random((size, size + 8, 3)) * 255).astype(np.uint8)
    return MediaRef("image", data=Image.fromarray(arr))


def cloud(seed: int, n: int = 1500) -> MediaRef:
    return MediaRef("pcl", data=np.random.default_rng(seed).random((n, 6)).astype(np.float32))


def conv(media: MediaRef, q: str = "What is this?", a: str | None = "A red circle.", cid: str = "s") -> Conversation:
    msgs = [Message("user", q, [media])] + ([Message("assistant", a)] if a is not None else [])
    return Conversation(msgs, task_type="classification" if media.modality == "image" else "classification3d", id=cid)


def collate(model: MultimodalLM, convs: list[Conversation]) -> dict:
    """A minimal right-padded collate: tokenize, expand placeholders, preprocess media."""
    rows = []
    for c in convs:
        tc = model.tokenize(c)
        rows.append(model.expand_placeholders(tc.input_ids, tc.labels, [m.modality for m in tc.media], c.id))
    width = max(len(r[0]) for r in rows)
    ids = torch.full((len(rows), width), model.tokenizer.pad_token_id)
    labels = torch.full((len(rows), width), -100)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, (a, b) in enumerate(rows):
        ids[i, : len(a)], labels[i, : len(b)], mask[i, : len(a)] = torch.tensor(a), torch.tensor(b), 1
    seeds = [sample_seed(c.id, 0) for c in convs for _ in c.media]  # keyed by sample id, as the design asks
    media = model.preprocess_media([m for c in convs for m in c.media], sample_seeds=seeds)
    return {"input_ids": ids, "attention_mask": mask, "labels": labels, "media": media}


def grad_norm(module: torch.nn.Module) -> float | None:
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    return None if not grads else float(sum(g.abs().sum() for g in grads))


@pytest.mark.parametrize("kinds", [("image", "image"), ("pcl", "pcl"), ("image", "pcl", "image")])
def test_forward_backward(tiny_model, kinds):
    model = tiny_model.train()
    convs = [conv(image(i) if k == "image" else cloud(i), cid=f"s{i}") for i, k in enumerate(kinds)]
    out = model(**collate(model, convs))
    assert torch.isfinite(out.loss) and out.loss.item() > 0
    assert out.logits.shape[:2] == collate(model, convs)["input_ids"].shape
    out.loss.backward()
    for m in ("image", "pcl"):
        used = m in kinds
        for part in (model.encoders[m], model.projectors[m]):
            g = grad_norm(part)
            assert (g is not None and g > 0) if used else g is None, (m, g)
    assert grad_norm(model.llm) > 0


def test_unused_modality_joins_graph_when_asked(tiny_model):
    model = tiny_model.train()
    model.ensure_all_params_used = True  # what DDP needs; automatic when torch.distributed is initialised
    out = model(**collate(model, [conv(image(0))]))
    out.loss.backward()
    pcl_grads = [p.grad for p in model.encoders["pcl"].parameters()] + [p.grad for p in model.projectors["pcl"].parameters()]
    assert all(g is not None and float(g.abs().sum()) == 0.0 for g in pcl_grads)
    model.ensure_all_params_used = False
    model.zero_grad(set_to_none=True)
    model(**collate(model, [conv(image(0))])).loss.backward()
    assert grad_norm(model.encoders["pcl"]) is None


def test_sum_reduction_is_independent_of_micro_batching(tiny_model):
    model = tiny_model
    convs = [conv(image(0), a="Yes.", cid="a"), conv(cloud(1), a="A long answer with many more words in it.", cid="b"),
             conv(image(2), a="Two.", cid="c")]
    with torch.no_grad():
        full = model(**collate(model, convs))
        parts = [model(**collate(model, convs[:1]), reduction="sum"), model(**collate(model, convs[1:]), reduction="sum")]
    n = sum(int(p.n_supervised) for p in parts)
    assert n == int(full.n_supervised)
    torch.testing.assert_close(sum(p.loss for p in parts) / n, full.loss, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("mode", ["full", "lora"])
def test_supervised_logits_give_the_same_loss_and_gradients(tiny_model, tiny_tokenizer, mode):
    """The trainer's ``logits="supervised"`` (LM head on supervised positions only) is the full path's maths."""
    model = tiny_model if mode == "full" else MultimodalLM.from_config(model_preset("tiny", ["llm_mode=lora"]))
    model.train()
    batch = collate(model, [conv(image(0), a="Yes.", cid="a"), conv(cloud(1), a="A longer answer here.", cid="b")])
    results = []
    for logits in ("all", "supervised"):
        model.zero_grad(set_to_none=True)
        torch.manual_seed(0)  # LoRA dropout draws the same masks in both
        out = model(**batch, reduction="sum", logits=logits)
        out.loss.backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        results.append((out, grads))
    (full, g_full), (sup, g_sup) = results
    n = int(full.n_supervised)
    assert int(sup.n_supervised) == n > 0 and sup.logits.shape == (n, full.logits.shape[-1])
    torch.testing.assert_close(sup.loss, full.loss, rtol=1e-6, atol=1e-5)
    assert g_full.keys() == g_sup.keys() and len(g_full) > 0
    for name in g_full:
        torch.testing.assert_close(g_sup[name], g_full[name], rtol=1e-5, atol=1e-6, msg=name)
    with pytest.raises(ValueError, match="logits must be"):
        model(**batch, logits="some")


def test_expand_placeholders_and_mismatch_errors(tiny_model):
    model = tiny_model
    tid, pid = model.media_token_ids["image"], model.media_token_ids["pcl"]
    spec = model.placeholder_spec
    ids, labels = expand_placeholders([1, tid, 9, pid, 10], [1, 2, 9, 4, 10], ["image", "pcl"], spec, "x")
    assert ids == [1] + [tid] * 64 + [9] + [pid] * 32 + [10]
    assert labels == [1] + [-100] * 64 + [9] + [-100] * 32 + [10]
    assert model.num_media_tokens("image") == 64 and model.num_media_tokens("pcl") == 32
    with pytest.raises(ValueError, match=r"sample 'x'.*<image>: 1 in the text vs 2 media"):
        expand_placeholders([1, tid, 9], [1, 2, 9], ["image", "image"], spec, "x")
    with pytest.raises(ValueError, match=r"sample 'y'.*<pcl>: 0 in the text vs 1 media"):
        model.expand_placeholders([1, tid], [1, 2], ["image", "pcl"], "y")
    # unexpanded ids reaching forward: both counts in the message
    with pytest.raises(ValueError, match=r"1 <image> positions in input_ids but 1 image items × 64 tokens = 64"):
        model(torch.tensor([[1, tid, 9]]), media={"image": torch.zeros(1, 3, 64, 64)})
    with pytest.raises(ValueError, match="no image media"):
        model(torch.tensor([[1] + [tid] * 16]))


def test_preprocess_media_shapes_and_seeds(tiny_model):
    media = [image(0), cloud(1), image(2)]
    out = tiny_model.preprocess_media(media, sample_seeds=[0, 7, 0])
    assert out["image"].shape == (2, 3, 64, 64) and out["pcl"].shape == (1, 1024, 6)
    again = tiny_model.preprocess_media(media, sample_seeds=[0, 7, 0])
    other = tiny_model.preprocess_media(media, sample_seeds=[0, 8, 0])
    assert torch.equal(out["pcl"], again["pcl"]) and not torch.equal(out["pcl"], other["pcl"])


def test_preprocess_media_from_files_does_not_cache(tiny_model, tmp_path):
    Image.new("RGB", (30, 20), (0, 0, 255)).save(tmp_path / "a.png")
    np.save(tmp_path / "b.npy", np.random.default_rng(0).random((900, 6)).astype(np.float32))
    refs = [MediaRef("image", path="a.png"), MediaRef("pcl", path="b.npy")]
    out = tiny_model.preprocess_media(refs, root=tmp_path, sample_seeds=[0, 1])
    assert out["image"].shape == (1, 3, 64, 64) and out["pcl"].shape == (1, 1024, 6)
    assert all(r.data is None for r in refs)  # DataLoader workers must not accumulate loaded media


def prompts(model, n: int = 3):
    media = [image(0), cloud(1), image(2)][:n]
    qs = ["What is this?", "What object is in this point cloud?", "Describe it in detail, please."]
    return [model.tokenize(conv(m, q=q, a=None, cid=f"p{i}"), add_generation_prompt=True)
            for i, (m, q) in enumerate(zip(media, qs))]


def test_generate_greedy_deterministic_and_batch_invariant(tiny_model):
    ps = prompts(tiny_model)
    batched = tiny_model.generate(ps, max_new_tokens=12, stop_strings=[])
    assert batched == tiny_model.generate(ps, max_new_tokens=12, stop_strings=[])
    single = [tiny_model.generate([p], max_new_tokens=12, stop_strings=[])[0] for p in ps]
    assert batched == single
    assert all(isinstance(t, str) and t for t in batched)


def test_generate_stops_at_stop_string(tiny_model):
    p = prompts(tiny_model, 1)
    text = tiny_model.generate(p, max_new_tokens=16, stop_strings=[])[0]
    chars = [c for c in text if not c.isspace()]
    assert len(chars) >= 3, text
    stop = chars[2]
    cut = tiny_model.generate(p, max_new_tokens=16, stop_strings=[stop])[0]
    assert cut == text[: text.index(stop)].strip()


def test_generate_sampling_is_seeded(tiny_model):
    ps = prompts(tiny_model, 2)
    a = tiny_model.generate(ps, max_new_tokens=8, do_sample=True, temperature=1.5, top_p=0.9, seed=3, stop_strings=[])
    b = tiny_model.generate(ps, max_new_tokens=8, do_sample=True, temperature=1.5, top_p=0.9, seed=3, stop_strings=[])
    assert a == b


def test_loglikelihood_matches_forward_by_hand(tiny_model):
    model = tiny_model
    ps = prompts(model)
    conts = [tokenize_continuation(t, model.tokenizer, "lamm") for t in ("A red circle.", "A cube", "No.")]
    got = model.loglikelihood(ps, conts)
    for p, c, (total, mean, n) in zip(ps, conts, got):
        ids, _ = model.expand_placeholders(p.input_ids, p.labels, [m.modality for m in p.media])
        full = torch.tensor([ids + c])
        with torch.no_grad():
            logits = model(full, media=model.preprocess_media(p.media)).logits[0]
        logp = torch.log_softmax(logits.float(), -1)
        by_hand = sum(logp[len(ids) - 1 + j, t].item() for j, t in enumerate(c))
        assert n == len(c)
        assert total == pytest.approx(by_hand, abs=1e-4)
        assert mean == pytest.approx(by_hand / len(c), abs=1e-4)
    assert model.loglikelihood(ps[1:2], conts[1:2])[0][0] == pytest.approx(got[1][0], abs=1e-4)


def test_lora_mode_trains_only_lora_and_projectors(tiny_tokenizer):
    cfg = model_preset("tiny", ["llm_mode=lora", "lora.r=4", "encoders.image.freeze=true", "encoders.pcl.freeze=true"])
    model = MultimodalLM.from_config(cfg, tokenizer=tiny_tokenizer).train()
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n or n.startswith("projectors.") for n in trainable)
    assert any("lora_" in n for n in trainable) and any(n.startswith("projectors.") for n in trainable)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    for _ in range(2):  # two steps: LoRA B starts at zero, so A moves only from the second step
        model(**collate(model, [conv(image(0)), conv(cloud(1))])).loss.backward()
        opt.step()
        opt.zero_grad()
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert changed == trainable
    counts = model.parameter_counts()
    assert counts["llm"]["trainable"] == 0 and counts["llm.lora"]["trainable"] > 0
    assert counts["encoders.image"]["trainable"] == 0


def test_chat_template_model_on_gpt2(tiny_tokenizer):
    cfg = model_preset("tiny", ["template=chat", "llm.config={model_type: gpt2, n_embd: 128, n_layer: 2, n_head: 4}",
                                "llm_mode=lora", "lora.r=4"])
    model = MultimodalLM.from_config(cfg, tokenizer=tiny_tokenizer)
    assert model.lora_targets == ["attn.c_attn", "attn.c_proj"]
    out = model(**collate(model, [conv(image(0)), conv(cloud(1))]))
    assert torch.isfinite(out.loss)
    ps = prompts(model, 2)
    assert model.stop_strings() == ["</s>"]
    assert model.generate(ps, max_new_tokens=5) == [model.generate([p], max_new_tokens=5)[0] for p in ps]
