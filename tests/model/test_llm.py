"""The LLM side: tiny tokenizer, media tokens, random-init LLMs, LoRA target resolution, fingerprints."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from lamm.model.llm import (
    LLMConfig,
    add_media_tokens,
    build_llm,
    build_tiny_tokenizer,
    llm_fingerprint,
    media_token_ids,
)
from lamm.model.lora import LoraSettings, apply_llm_mode, resolve_lora_targets

LLAMA = {"model_type": "llama", "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
         "num_attention_heads": 2, "num_key_value_heads": 2, "max_position_embeddings": 128}
GPT2 = {"model_type": "gpt2", "n_embd": 32, "n_layer": 2, "n_head": 2, "n_positions": 128}


def _seeded(cfg: dict, vocab: int, seed: int = 0):
    torch.manual_seed(seed)
    return build_llm(LLMConfig(config=cfg), vocab_size=vocab)


def test_tiny_tokenizer_specials_and_round_trip(tiny_tokenizer):
    tok = tiny_tokenizer
    assert (tok.unk_token_id, tok.bos_token_id, tok.eos_token_id, tok.pad_token_id) == (0, 1, 2, 3)
    assert media_token_ids(tok) == {"image": 4, "pcl": 5}
    text = "How many red cubes? [0.12, -3.50] «unseen» 🙂\n### Assistant:"
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert tok.decode(ids) == text  # byte level: anything round-trips
    digits = tok("2024", add_special_tokens=False)["input_ids"]
    assert len(digits) == 4  # one token per digit
    assert tok.chat_template is not None


def test_tiny_tokenizer_identical_in_another_process(tiny_tokenizer, tmp_path):
    # BPE training must not depend on hash seeds or anything else of the process.
    script = ("import json, sys; from lamm.model.llm import build_tiny_tokenizer; "
              "json.dump(build_tiny_tokenizer().get_vocab(), open(sys.argv[1], 'w'))")
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    subprocess.run([sys.executable, "-c", script, str(tmp_path / "v.json")], check=True, env=env)
    assert json.loads((tmp_path / "v.json").read_text()) == tiny_tokenizer.get_vocab()
    assert build_tiny_tokenizer().backend_tokenizer.to_str() == tiny_tokenizer.backend_tokenizer.to_str()


def test_add_media_tokens_resizes_deterministically():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2, "a": 3, "b": 4}
    raw = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    raw.pre_tokenizer = pre_tokenizers.Whitespace()
    tok = PreTrainedTokenizerFast(tokenizer_object=raw, unk_token="<unk>", bos_token="<s>", eos_token="</s>")
    assert media_token_ids(tok) == {}
    model = _seeded(LLAMA, len(tok))
    assert add_media_tokens(tok, model) == 2
    ids = media_token_ids(tok)
    assert sorted(ids.values()) == [5, 6]
    emb = model.get_input_embeddings().weight
    assert emb.shape[0] == 7
    torch.testing.assert_close(emb[5], emb[:5].mean(0))
    out = model.get_output_embeddings().weight
    torch.testing.assert_close(out[6], out[:5].mean(0))
    assert add_media_tokens(tok, model) == 0  # idempotent
    assert tok("a <image> b", add_special_tokens=False)["input_ids"] == [3, 5, 4]


def test_build_llm_fills_vocab_and_dtype():
    model = build_llm(LLMConfig(config=LLAMA, dtype="bfloat16"), vocab_size=50)
    assert model.config.vocab_size == 50
    assert model.get_input_embeddings().weight.dtype == torch.bfloat16
    with pytest.raises(ValueError, match="exactly one of name_or_path"):
        LLMConfig(name_or_path="x", config=LLAMA)
    with pytest.raises(ValueError, match="model_type"):
        LLMConfig(config={"hidden_size": 8})


def test_lora_targets_llama_and_gpt2():
    assert resolve_lora_targets(_seeded(LLAMA, 40)) == [
        "self_attn.k_proj", "self_attn.o_proj", "self_attn.q_proj", "self_attn.v_proj"]
    gpt2 = _seeded(GPT2, 40)
    assert resolve_lora_targets(gpt2) == ["attn.c_attn", "attn.c_proj"]  # not mlp.c_proj
    wrapped, _ = apply_llm_mode(gpt2, "lora", LoraSettings(r=4))
    names = [n for n, p in wrapped.named_parameters() if p.requires_grad]
    assert names and all("lora_" in n for n in names)
    assert not any("mlp" in n for n in names)
    assert len(names) == 2 * 2 * 2  # layers × (c_attn, c_proj) × (A, B)
    assert wrapped.peft_config["default"].fan_in_fan_out is True
    out = wrapped(input_ids=torch.tensor([[1, 2, 3]]))
    assert out.logits.shape == (1, 3, 40)


def test_llm_modes_set_trainable_parameters():
    full, _ = apply_llm_mode(_seeded(LLAMA, 40), "full", LoraSettings())
    assert all(p.requires_grad for p in full.parameters())
    frozen, _ = apply_llm_mode(_seeded(LLAMA, 40), "frozen", LoraSettings())
    assert not any(p.requires_grad for p in frozen.parameters())
    lora, targets = apply_llm_mode(_seeded(LLAMA, 40), "lora", LoraSettings())
    cfg = lora.peft_config["default"]
    assert (cfg.r, cfg.lora_alpha, cfg.lora_dropout) == (32, 32.0, 0.1)  # LAMM v1 defaults
    assert len(targets) == 4


def test_fingerprint_ignores_lora_but_sees_weights():
    a = _seeded(LLAMA, 40, seed=0)
    fp = llm_fingerprint(a)
    assert llm_fingerprint(_seeded(LLAMA, 40, seed=0)) == fp
    assert llm_fingerprint(_seeded(LLAMA, 40, seed=1)) != fp
    wrapped, _ = apply_llm_mode(a, "lora", LoraSettings(r=2))
    assert llm_fingerprint(wrapped) == fp  # same base, with or without adapters
    with torch.no_grad():
        wrapped.get_base_model().model.norm.weight[0] += 1e-3
    assert llm_fingerprint(wrapped) != fp


def test_architectures_whose_defaults_clash_build_or_say_what_to_set():
    """Phi-3's default pad/eos id (32000) lies outside a tokenizer-sized vocabulary: cleared, it builds.
    Gemma-2 refuses SDPA: the error names lamm's setting, llm.attn_implementation."""
    from lamm.model.llm import LLMConfig, build_llm

    small = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 1, "num_attention_heads": 4,
             "num_key_value_heads": 4}
    phi3 = build_llm(LLMConfig(config={"model_type": "phi3", **small}, dtype="float32"), vocab_size=300)
    assert phi3.get_input_embeddings().weight.shape[0] == 300
    with pytest.raises(ValueError, match="set llm.attn_implementation=eager"):
        build_llm(LLMConfig(config={"model_type": "gemma2", "head_dim": 16, **small}, dtype="float32",
                            attn_implementation="sdpa"), vocab_size=300)


def test_alibi_models_are_refused_static_decoding_and_scaled_heads_get_all_logits():
    from transformers import AutoConfig, AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM

    from lamm.model.mllm import _plain_lm_head
    from lamm.model.static_decode import supports_static_decoding

    bloom = AutoModelForCausalLM.from_config(AutoConfig.for_model("bloom", hidden_size=32, n_layer=1, n_head=2,
                                                                  vocab_size=100))
    ok, why = supports_static_decoding(bloom)
    assert not ok and "ALiBi" in why
    scaled = LlamaForCausalLM(LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                          num_attention_heads=2, vocab_size=100, lm_head_multiplier=0.25))
    assert not _plain_lm_head(scaled)  # the trainer must not apply the output embedding alone


def test_a_bidirectional_encoder_is_refused_as_llm():
    """BertLMHeadModel passes AutoModelForCausalLM but, with is_decoder false, attends to the future."""
    from lamm.model.llm import LLMConfig, build_llm

    small = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2}
    with pytest.raises(ValueError, match="set llm.config.is_decoder=true"):
        build_llm(LLMConfig(config={"model_type": "bert", **small}, dtype="float32"), vocab_size=100)
    ok = build_llm(LLMConfig(config={"model_type": "bert", "is_decoder": True, **small}, dtype="float32"),
                   vocab_size=100)
    assert ok.config.is_decoder
