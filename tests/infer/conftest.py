"""Fixtures for inference tests: media files, a tiny random LLaVA built in code, a server runner."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

torch.set_num_threads(1)
# hermetic: Gradio's telemetry / version check and the hub's telemetry never leave the machine
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def run_uvicorn(app: object) -> Iterator[str]:
    """Serve an ASGI app on a free loopback port in a thread; yields the base URL; always shuts down."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            server.should_exit = True
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture
def image_file(tmp_path: Path) -> Path:
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (48, 40), "white")
    ImageDraw.Draw(img).ellipse((5, 5, 30, 30), fill="red")
    p = tmp_path / "red.png"
    img.save(p)
    return p


@pytest.fixture
def pcl_file(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    pts = np.concatenate([rng.normal(size=(600, 3)), rng.uniform(0, 1, size=(600, 3))], axis=1).astype(np.float32)
    p = tmp_path / "cloud.npy"
    np.save(p, pts)
    return p


_LLAVA_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] != 'system' %}{{ message['role'].upper() + ': ' }}{% endif %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}{{ '<image>\n' }}{% endfor %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}{{ content['text'] + ' ' }}"
    "{% endfor %}{% endfor %}{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}"
)


@pytest.fixture(scope="session")
def tiny_llava_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random LLaVA-1.5-shaped model saved as a HF folder: tiny CLIP vision tower (32 px, 4x4 patches
    of 8 px, 2 layers), tiny Llama (hidden 32, 2 layers), a byte-level BPE tokenizer trained in code,
    a CLIP image processor and the LLaVA-1.5 chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import (
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
        PreTrainedTokenizerFast,
    )
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    corpus = ["USER: ASSISTANT: what is in the image? a red circle and a blue square on white.",
              "describe the picture in detail. there is a green triangle. how many shapes? three.",
              "You are a helpful assistant. The answer is (A). yes no maybe"] * 10
    bpe = Tokenizer(models.BPE(unk_token="<unk>"))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(corpus, trainers.BpeTrainer(
        vocab_size=320, special_tokens=["<unk>", "<s>", "</s>", "<pad>", "<image>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                                  pad_token="<pad>", extra_special_tokens={"image_token": "<image>"})
    proc = LlavaProcessor(image_processor=CLIPImageProcessorPil(size={"shortest_edge": 32},
                                                                crop_size={"height": 32, "width": 32}),
                          tokenizer=tok, patch_size=8, vision_feature_select_strategy="default",
                          chat_template=_LLAVA_TEMPLATE, num_additional_image_tokens=1)
    cfg = LlavaConfig(
        vision_config=CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                       num_attention_heads=2, image_size=32, patch_size=8, projection_dim=32),
        text_config=LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=512,
                                bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                                pad_token_id=tok.pad_token_id),
        image_token_index=tok.convert_tokens_to_ids("<image>"), vision_feature_select_strategy="default",
        vision_feature_layer=-2)
    torch.manual_seed(0)
    model = LlavaForConditionalGeneration(cfg).eval()
    out = tmp_path_factory.mktemp("tiny_llava")
    model.save_pretrained(out)
    proc.save_pretrained(out)
    return out


@pytest.fixture(name="run_uvicorn", scope="session")
def _run_uvicorn_fixture():
    """The :func:`run_uvicorn` context manager (tests dirs are not packages, so it comes as a fixture)."""
    return run_uvicorn


@pytest.fixture(name="free_port", scope="session")
def _free_port_fixture():
    return free_port
