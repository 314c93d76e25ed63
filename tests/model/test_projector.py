"""Projectors: linear (LAMM), mlp2x_gelu (LLaVA-1.5), resampler (token cap)."""

from __future__ import annotations

import pytest
import torch
from pydantic import ValidationError

from lamm.model.projector import ProjectorConfig, build_projector

torch.set_num_threads(1)


def _x(b: int, n: int, d: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(b, n, d, generator=torch.Generator().manual_seed(seed))


def test_linear_is_an_affine_map_with_lamm_layout():
    proj = build_projector(ProjectorConfig(type="linear", in_dim=24, out_dim=40))
    x = _x(2, 7, 24)
    out = proj(x)
    assert out.shape == (2, 7, 40)
    assert torch.allclose(out, x @ proj.weight.T + proj.bias, atol=1e-6)
    assert set(proj.state_dict()) == {"weight", "bias"}  # loads LAMM's llama_proj.{weight,bias} directly
    assert proj.num_output_tokens(7) == 7 and (proj.in_dim, proj.out_dim) == (24, 40)


def test_mlp2x_gelu_layout_and_shape():
    proj = build_projector(ProjectorConfig(type="mlp2x_gelu", in_dim=24, out_dim=40))
    x = _x(3, 5, 24)
    out = proj(x)
    assert out.shape == (3, 5, 40)
    assert set(proj.state_dict()) == {"0.weight", "0.bias", "2.weight", "2.bias"}  # LLaVA mm_projector
    expect = torch.nn.functional.gelu(x @ proj[0].weight.T + proj[0].bias) @ proj[2].weight.T + proj[2].bias
    assert torch.allclose(out, expect, atol=1e-5)
    assert proj.num_output_tokens(5) == 5


@pytest.mark.parametrize("n_in", [3, 16, 100])
def test_resampler_caps_tokens(n_in):
    proj = build_projector(
        ProjectorConfig(type="resampler", in_dim=24, out_dim=32, num_queries=16, num_heads=4)
    )
    out = proj(_x(2, n_in, 24))
    assert out.shape == (2, 16, 32)
    assert proj.num_output_tokens(n_in) == 16
    assert torch.isfinite(out).all()


def test_resampler_depends_on_input_gradients_and_batch_independence():
    proj = build_projector(
        ProjectorConfig(type="resampler", in_dim=24, out_dim=32, num_queries=8, num_heads=4, depth=2)
    )
    x = _x(3, 20, 24)
    out = proj(x)
    assert not torch.allclose(out[0], out[1], atol=1e-4)  # the output reads the tokens
    assert torch.allclose(proj(x[2:3]), out[2:3], atol=1e-5)
    out.square().mean().backward()
    missing = [n for n, p in proj.named_parameters() if p.grad is None]
    assert not missing, missing


def test_projector_config_validation():
    with pytest.raises(ValidationError, match="divisible"):
        ProjectorConfig(type="resampler", in_dim=8, out_dim=30, num_heads=8)
    with pytest.raises(ValidationError, match="extra"):
        ProjectorConfig(type="linear", in_dim=8, out_dim=8, bias=False)
    with pytest.raises(ValidationError):
        ProjectorConfig(type="qformer", in_dim=8, out_dim=8)
