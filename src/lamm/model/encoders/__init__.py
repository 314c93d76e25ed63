"""Vision encoders: every encoder maps one modality's preprocessed batch to ``(B, num_tokens, out_dim)``.

Each encoder is an ``nn.Module`` with ``modality`` (``"image"`` or ``"pcl"``), ``out_dim``, ``num_tokens``
and ``forward(x)``; image encoders take ``(B, 3, H, W)`` normalised pixels
(:func:`~lamm.model.encoders.preprocess.preprocess_images`), point encoders ``(B, N, 3|6)`` float32
(:func:`~lamm.model.encoders.preprocess.preprocess_point_cloud`) and optionally precomputed FPS
``center_idx``. :func:`build_encoder` builds one from its config, dispatching on ``cfg.type``.

Adding an encoder: write its config (a :class:`lamm.config.Config` with a ``type`` literal) and module,
register the module below, and add the config to :data:`EncoderConfig`.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, TypeAdapter
from torch import nn

from lamm.config import ConfigError
from lamm.model.encoders.image_clip import ClipImageEncoder, ClipImageEncoderConfig
from lamm.model.encoders.image_cnn import CnnImageEncoder, CnnImageEncoderConfig
from lamm.model.encoders.pointcloud import (
    EpclEncoderConfig,
    EpclPointEncoder,
    PointBertEncoder,
    PointEncoderConfig,
    point_encoder_preset,
)
from lamm.registry import Registry

ENCODERS: Registry[type[nn.Module]] = Registry("encoder")
ENCODERS.add("clip", ClipImageEncoder)
ENCODERS.add("cnn", CnnImageEncoder)
ENCODERS.add("point_bert", PointBertEncoder)
ENCODERS.add("epcl", EpclPointEncoder)

EncoderConfig = Annotated[
    ClipImageEncoderConfig | CnnImageEncoderConfig | PointEncoderConfig | EpclEncoderConfig,
    Field(discriminator="type"),
]
"""Any encoder config; pydantic picks the class from the ``type`` key."""

_ADAPTER: TypeAdapter[Any] = TypeAdapter(EncoderConfig)


def parse_encoder_config(data: dict[str, Any]) -> Any:
    """Validate a dict (e.g. a YAML section) as an :data:`EncoderConfig`, chosen by its ``type`` key."""
    from pydantic import ValidationError

    try:
        return _ADAPTER.validate_python(data)
    except ValidationError as e:
        raise ConfigError(f"invalid encoder config: {e}") from None


def build_encoder(cfg: Any) -> nn.Module:
    """Build the encoder for ``cfg`` (an encoder config object, or a dict with a ``type`` key).

    Returns an ``nn.Module`` with ``modality``, ``out_dim``, ``num_tokens``; ``forward(x)`` gives
    ``(B, num_tokens, out_dim)``. Unknown types raise ``KeyError`` with a did-you-mean hint.
    """
    if isinstance(cfg, dict):
        if "type" in cfg:
            ENCODERS.get(cfg["type"])  # a did-you-mean error before pydantic's longer one
        cfg = parse_encoder_config(cfg)
    return ENCODERS.get(cfg.type)(cfg)


__all__ = [
    "ENCODERS",
    "ClipImageEncoderConfig",
    "CnnImageEncoderConfig",
    "EncoderConfig",
    "EpclEncoderConfig",
    "PointEncoderConfig",
    "build_encoder",
    "parse_encoder_config",
    "point_encoder_preset",
]
