"""``ModelConfig``: encoders + projectors + LLM + tokenizer + template + how the LLM trains.

Presets (:func:`model_preset`):

* ``tiny`` — the CPU quickstart model, trained from scratch in minutes on 2 cores: a small CNN on 64-px
  images (the full 8×8 grid, 64 tokens: pooling it to 4×4 kept the LM at chance for 400 steps in our
  measurements, while 64 tokens with a constant learning rate reached 88% shape accuracy; GroupNorm, so the
  loss does not depend on how a batch is split — the quickstart switches to BatchNorm), a Point-BERT-style encoder on 1,024 points (32 tokens), a 4-layer Llama-style LM
  (hidden 128, 4 heads) on the built-in tiny tokenizer; everything trains (``llm_mode="full"``).
* ``lamm7b`` — LAMM's shapes: CLIP ViT-L/14-336 (frozen) and a Llama-2-7B-shaped LM, LoRA r=32, all
  random-init. For GPU benchmarks of speed and memory only; it knows nothing.

Encoders carry their own ``freeze`` flag (``encoders.image.freeze``); a frozen encoder runs in eval mode
without autograd. Projectors always train.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import model_validator

from lamm.config import Config
from lamm.model.encoders import ENCODERS, EncoderConfig, point_encoder_preset
from lamm.model.encoders.preprocess import ImagePreprocessConfig, PointPreprocessConfig
from lamm.model.llm import LLMConfig
from lamm.model.lora import LLMMode, LoraSettings
from lamm.model.projector import ProjectorConfig

ModalityName = Literal["image", "pcl"]


class ModelConfig(Config):
    """A whole multimodal model. ``encoders`` and ``projectors`` have the same modality keys.

    ``tokenizer``: ``"tiny"`` (built in code), a local path / hub id, or None for ``llm.name_or_path``.
    ``template``: ``"lamm"`` (LAMM v1 ``### Human:`` format) or ``"chat"`` (the tokenizer's chat template).
    ``seed`` seeds the random init of the LLM (from a config) and the projectors; encoders have their own.
    """

    encoders: dict[ModalityName, EncoderConfig]
    projectors: dict[ModalityName, ProjectorConfig]
    image_preprocess: ImagePreprocessConfig = ImagePreprocessConfig()
    pcl_preprocess: PointPreprocessConfig = PointPreprocessConfig()
    llm: LLMConfig
    tokenizer: str | None = None
    template: Literal["lamm", "chat"] = "lamm"
    llm_mode: LLMMode = "lora"
    lora: LoraSettings = LoraSettings()
    seed: int = 0

    @model_validator(mode="after")
    def _consistent(self) -> ModelConfig:
        if set(self.encoders) != set(self.projectors):
            raise ValueError(f"encoders {sorted(self.encoders)} and projectors {sorted(self.projectors)} "
                             "must name the same modalities")
        if not self.encoders:
            raise ValueError("a model needs at least one encoder")
        for modality, enc in self.encoders.items():
            mod_of_type = ENCODERS.get(enc.type).modality
            if mod_of_type != modality:
                raise ValueError(f"encoders.{modality} has type {enc.type!r}, an encoder for {mod_of_type!r}")
        img = self.encoders.get("image")
        if img is not None and getattr(img, "image_size", self.image_preprocess.size) != self.image_preprocess.size:
            raise ValueError(f"image_preprocess.size={self.image_preprocess.size} but encoders.image.image_size="
                             f"{img.image_size}; set both to the same size")
        pcl = self.encoders.get("pcl")
        if pcl is not None:
            if pcl.in_channels != self.pcl_preprocess.channels:
                raise ValueError(f"encoders.pcl.in_channels={pcl.in_channels} but pcl_preprocess gives "
                                 f"{self.pcl_preprocess.channels} channels (use_color="
                                 f"{self.pcl_preprocess.use_color}); make them agree")
            need = max(pcl.num_groups, pcl.group_size)
            if self.pcl_preprocess.num_points < need:
                raise ValueError(f"pcl_preprocess.num_points={self.pcl_preprocess.num_points} < {need} "
                                 "(the point encoder's num_groups / group_size)")
        if self.tokenizer is None and self.llm.name_or_path is None:
            raise ValueError("tokenizer: give 'tiny' or a path / hub id (llm has no name_or_path to take it from)")
        return self

    @property
    def tokenizer_source(self) -> str:
        """Where the tokenizer comes from (``tokenizer`` or, if unset, ``llm.name_or_path``)."""
        src = self.tokenizer or self.llm.name_or_path
        assert src is not None
        return src


def _tiny() -> dict[str, Any]:
    hidden = 128
    return {
        "encoders": {
            "image": {"type": "cnn", "image_size": 64, "channels": [32, 64, 96], "out_dim": 128, "pool_to": None},
            "pcl": point_encoder_preset("tiny").model_dump(mode="json"),
        },
        "projectors": {
            "image": {"type": "linear", "in_dim": 128, "out_dim": hidden},
            "pcl": {"type": "linear", "in_dim": 64, "out_dim": hidden},
        },
        "image_preprocess": {"size": 64, "resample": "bilinear"},
        # scene answers (3D boxes) are in the input frame, so the frame is kept as is
        "pcl_preprocess": {"num_points": 1024, "use_color": True, "normalize": "none"},
        "llm": {
            "config": {
                "model_type": "llama", "hidden_size": hidden, "intermediate_size": 384, "num_hidden_layers": 4,
                "num_attention_heads": 4, "num_key_value_heads": 4, "max_position_embeddings": 1024,
                "rms_norm_eps": 1e-5, "tie_word_embeddings": False,
            },
            "dtype": "float32",
        },
        "tokenizer": "tiny",
        "template": "lamm",
        "llm_mode": "full",
    }


def _lamm7b() -> dict[str, Any]:
    clip_l14_336 = {"hidden_size": 1024, "intermediate_size": 4096, "num_hidden_layers": 24,
                    "num_attention_heads": 16, "image_size": 336, "patch_size": 14, "projection_dim": 768}
    llama2_7b = {"model_type": "llama", "hidden_size": 4096, "intermediate_size": 11008, "num_hidden_layers": 32,
                 "num_attention_heads": 32, "num_key_value_heads": 32, "max_position_embeddings": 4096,
                 "rms_norm_eps": 1e-5, "vocab_size": 32000, "tie_word_embeddings": False}
    return {
        "encoders": {
            "image": {"type": "clip", "vision_config": clip_l14_336, "image_size": 336, "freeze": True},
            "pcl": point_encoder_preset("lamm").model_dump(mode="json"),
        },
        "projectors": {
            "image": {"type": "linear", "in_dim": 1024, "out_dim": 4096},
            "pcl": {"type": "linear", "in_dim": 384, "out_dim": 4096},
        },
        "image_preprocess": {"size": 336},
        "pcl_preprocess": {"num_points": 40000, "use_color": False, "normalize": "none"},
        "llm": {"config": llama2_7b, "dtype": "bfloat16"},
        "tokenizer": "tiny",
        "template": "lamm",
        "llm_mode": "lora",
        "lora": {"r": 32, "alpha": 32, "dropout": 0.1},
    }


_PRESETS = {"tiny": _tiny, "lamm7b": _lamm7b}
PRESET_NAMES = tuple(_PRESETS)


def model_preset(name: str, overrides: list[str] | None = None) -> ModelConfig:
    """A named :class:`ModelConfig` (``tiny``, ``lamm7b``), with optional dotted overrides."""
    from lamm.config import apply_overrides, config_from_dict

    if name not in _PRESETS:
        raise KeyError(f"unknown model preset {name!r} (known: {', '.join(PRESET_NAMES)})")
    data = _PRESETS[name]()
    if overrides:
        data = apply_overrides(data, overrides)
    return config_from_dict(ModelConfig, data, f"preset {name!r}" + (f" + {overrides}" if overrides else ""))
