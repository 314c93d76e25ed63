"""Encoders (CLIP, SigLIP, CNN, Point-BERT, EPCL), the registry, and image / point-cloud preprocessing."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from lamm.config import Config, ConfigError
from lamm.model.encoders import (
    ENCODERS,
    ClipImageEncoderConfig,
    CnnImageEncoderConfig,
    EpclEncoderConfig,
    PointEncoderConfig,
    build_encoder,
    parse_encoder_config,
    point_encoder_preset,
)
from lamm.model.encoders.point_ops import fps_indices
from lamm.model.encoders.preprocess import (
    CLIP_MEAN,
    CLIP_STD,
    ImagePreprocessConfig,
    PointPreprocessConfig,
    preprocess_images,
    preprocess_point_cloud,
    sample_seed,
    unit_sphere_transform,
)

torch.set_num_threads(1)

TINY_VISION = {
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "image_size": 32,
    "patch_size": 8,
}


def _pixels(b: int = 2, s: int = 32, seed: int = 0) -> torch.Tensor:
    return torch.randn(b, 3, s, s, generator=torch.Generator().manual_seed(seed))


def _points(b: int, n: int, c: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    xyz = torch.rand(b, n, 3, generator=g) * 2 - 1
    return torch.cat([xyz, torch.rand(b, n, 3, generator=g)], -1) if c == 6 else xyz


def _assert_interface(enc: nn.Module, out: torch.Tensor, batch: int) -> None:
    assert isinstance(enc.modality, str) and enc.modality in ("image", "pcl")
    assert out.shape == (batch, enc.num_tokens, enc.out_dim)
    assert torch.isfinite(out).all()


def _assert_all_grads(module: nn.Module) -> None:
    missing = [n for n, p in module.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing, f"no gradient reached: {missing}"


# ------------------------------------------------------------------------------------------------ CLIP
def _reference_clip(family: str = "clip", seed: int = 0):
    from transformers import CLIPVisionConfig, CLIPVisionModel, SiglipVisionConfig, SiglipVisionModel

    cfg_cls, model_cls = (
        (SiglipVisionConfig, SiglipVisionModel) if family == "siglip" else (CLIPVisionConfig, CLIPVisionModel)
    )
    torch.manual_seed(seed)  # the encoder initialises under manual_seed(cfg.seed): same weights
    return model_cls(cfg_cls(**TINY_VISION)).eval()


def test_clip_patch_tokens_equal_last_hidden_state_without_cls():
    enc = build_encoder(ClipImageEncoderConfig(vision_config=TINY_VISION, image_size=32))
    ref = _reference_clip()
    x = _pixels()
    out = enc(x)
    _assert_interface(enc, out, 2)
    assert enc.modality == "image" and enc.num_tokens == 16 and enc.out_dim == 32
    with torch.no_grad():
        hs = ref(pixel_values=x, output_hidden_states=True).hidden_states
    assert torch.allclose(out, hs[-1][:, 1:], atol=1e-5)
    # LAMM takes the block output before the final LayerNorm: post-normed features must differ.
    assert not torch.allclose(out, ref.post_layernorm(hs[-1])[:, 1:], atol=1e-3)


def test_clip_feature_layer_and_cls_selection():
    ref = _reference_clip()
    x = _pixels(seed=1)
    with torch.no_grad():
        hs = ref(pixel_values=x, output_hidden_states=True).hidden_states
    penult = build_encoder(ClipImageEncoderConfig(vision_config=TINY_VISION, image_size=32, feature_layer=-2))
    assert len(penult.model.encoder.layers) == 1  # the unused last block is not computed
    assert torch.allclose(penult(x), hs[-2][:, 1:], atol=1e-5)
    cls = build_encoder(ClipImageEncoderConfig(vision_config=TINY_VISION, image_size=32, select="cls_patch"))
    out = cls(x)
    assert cls.num_tokens == 17 and out.shape == (2, 17, 32)
    assert torch.allclose(out, hs[-1], atol=1e-5)


def test_siglip_patch_tokens():
    enc = build_encoder(ClipImageEncoderConfig(vision_config=TINY_VISION, image_size=32, family="siglip"))
    ref = _reference_clip("siglip")
    x = _pixels(seed=2)
    with torch.no_grad():
        hs = ref(pixel_values=x, output_hidden_states=True).hidden_states
    out = enc(x)
    assert enc.num_tokens == 16 and out.shape == (2, 16, 32)
    assert torch.allclose(out, hs[-1], atol=1e-5)


def test_clip_frozen_vs_trainable():
    frozen = build_encoder(ClipImageEncoderConfig(vision_config=TINY_VISION, image_size=32))
    assert all(not p.requires_grad for p in frozen.parameters())
    frozen.train()
    assert not frozen.training  # a frozen tower stays in eval mode
    assert frozen(_pixels()).grad_fn is None  # no activations kept for backward
    live = build_encoder(ClipImageEncoderConfig(vision_config=TINY_VISION, image_size=32, freeze=False))
    live.train()
    assert live.training
    live(_pixels()).square().mean().backward()
    _assert_all_grads(live)


def test_clip_config_errors():
    with pytest.raises(ValueError, match="exactly one"):
        ClipImageEncoderConfig(image_size=32)
    with pytest.raises(ValueError, match="exactly one"):
        ClipImageEncoderConfig(name_or_path="x", vision_config=TINY_VISION)
    with pytest.raises(ValueError, match="expects 32"):
        build_encoder(ClipImageEncoderConfig(vision_config=TINY_VISION, image_size=224))
    with pytest.raises(ValueError, match="feature_layer"):
        build_encoder(ClipImageEncoderConfig(vision_config=TINY_VISION, image_size=32, feature_layer=-4))
    with pytest.raises(ValueError, match="CLS"):
        ClipImageEncoderConfig(vision_config=TINY_VISION, family="siglip", select="cls_patch")


# ------------------------------------------------------------------------------------------------- CNN
def test_cnn_shapes_and_pooling():
    enc = build_encoder(CnnImageEncoderConfig())
    out = enc(_pixels(2, 64))
    _assert_interface(enc, out, 2)
    assert enc.num_tokens == 64 and enc.out_dim == 128
    pooled = build_encoder(CnnImageEncoderConfig(pool_to=4, out_dim=48))
    assert pooled(_pixels(3, 64)).shape == (3, 16, 48)
    with pytest.raises(ValueError, match="divisible"):
        CnnImageEncoderConfig(image_size=60)
    with pytest.raises(ValueError, match="expects"):
        enc(_pixels(1, 32))


def test_cnn_gradients_and_freeze():
    enc = build_encoder(CnnImageEncoderConfig(image_size=32, channels=[8, 16], out_dim=16))
    enc(_pixels(2, 32)).square().mean().backward()
    _assert_all_grads(enc)
    assert enc.stages[0][0].weight.grad.abs().sum() > 0
    frozen = build_encoder(CnnImageEncoderConfig(image_size=32, channels=[8, 16], out_dim=16, freeze=True))
    assert all(not p.requires_grad for p in frozen.parameters())


def test_cnn_pixel_branch_keeps_colour_when_the_deep_stages_ignore_it():
    """With the deep stages made colour-blind (their output zeroed), only the pixel branch can tell a
    red image from a blue one; the token count and width do not change."""
    red, blue = torch.zeros(1, 3, 32, 32), torch.zeros(1, 3, 32, 32)
    red[:, 0, 8:20, 8:20], blue[:, 2, 8:20, 8:20] = 1.0, 1.0
    outs = {}
    for k in (0, 6):
        enc = build_encoder(CnnImageEncoderConfig(image_size=32, channels=[8, 16], out_dim=16, pixel_branch=k))
        with torch.no_grad():
            enc.stages[-1][1].weight.zero_()  # the last stage's norm gain: deep features become constant
            enc.stages[-1][1].bias.zero_()
        enc.eval()
        outs[k] = (enc(red), enc(blue))
        assert outs[k][0].shape == (1, 64, 16)
    assert torch.allclose(*outs[0])  # colour-blind without the branch
    assert not torch.allclose(*outs[6], atol=1e-4)
    enc = build_encoder(CnnImageEncoderConfig(image_size=32, channels=[8, 16], out_dim=16, pixel_branch=4))
    enc(_pixels(2, 32)).square().mean().backward()
    _assert_all_grads(enc)
    with pytest.raises(ValueError, match="pixel_branch"):
        CnnImageEncoderConfig(pixel_branch=-1)
    # frozen: the branch stays at its seeded init and gets no gradient; the rest trains
    frozen = build_encoder(CnnImageEncoderConfig(image_size=32, channels=[8, 16], out_dim=16, pixel_branch=4,
                                                 pixel_branch_frozen=True))
    torch.testing.assert_close(frozen.pixel.state_dict(), enc.pixel.state_dict())
    frozen(_pixels(2, 32)).square().mean().backward()
    assert all(p.grad is None and not p.requires_grad for p in frozen.pixel.parameters())
    assert all(p.grad is not None for n, p in frozen.named_parameters() if not n.startswith("pixel."))
    # its own tokens: G*G more, after the conv grid; the colour of a cell reaches only those tokens
    sep = build_encoder(CnnImageEncoderConfig(image_size=32, channels=[8, 16], out_dim=16, pixel_branch=4,
                                              pixel_tokens=2))
    assert sep.num_tokens == 64 + 4 and sep(red).shape == (1, 68, 16)
    sep.eval()
    with torch.no_grad():
        sep.stages[-1][1].weight.zero_()
        sep.stages[-1][1].bias.zero_()
        a, b = sep(red), sep(blue)
    torch.testing.assert_close(a[:, :64], b[:, :64])
    assert not torch.allclose(a[:, 64:], b[:, 64:], atol=1e-4)
    with pytest.raises(ValueError, match="pixel_tokens"):
        CnnImageEncoderConfig(pixel_tokens=2)


def test_cnn_cell_colour_code():
    """``cell_colour``: a fixed code of each cell's mean colour on the grid tokens, untrained and unsaved."""
    red, blue = torch.zeros(1, 3, 32, 32), torch.zeros(1, 3, 32, 32)
    red[:, 0, :16, :16], blue[:, 2, :16, :16] = 1.0, 1.0  # the top-left quarter differs in colour
    cfg = CnnImageEncoderConfig(image_size=32, channels=[8, 16], out_dim=16, summary_token=True, cell_colour=True)
    enc = build_encoder(cfg)
    assert enc.num_tokens == 65 and enc(red).shape == (1, 65, 16)
    assert not any("colour" in k for k in enc.state_dict())  # derived from the seed, not saved
    code_r, code_b = enc._cell_colour(red), enc._cell_colour(blue)
    grid = torch.arange(64).view(8, 8)
    top_left, rest = grid[:4, :4].flatten(), grid[4:, :].flatten()
    assert not torch.allclose(code_r[0, top_left], code_b[0, top_left], atol=1e-3)
    torch.testing.assert_close(code_r[0, rest], code_b[0, rest])  # black cells: the same code
    assert torch.count_nonzero(code_r[0, 64]) == 0  # the summary token gets none
    torch.testing.assert_close(code_r[0, :64].std(-1), torch.ones(64), atol=1e-3, rtol=0)  # standardised
    # it is added to the learned tokens, which still train; a rebuilt encoder has the same code
    enc.eval()
    plain = build_encoder(cfg.model_copy(update={"cell_colour": False})).eval()
    with torch.no_grad():
        torch.testing.assert_close(enc(red) - plain(red), enc._cell_colour(red))
    torch.testing.assert_close(build_encoder(cfg)._cell_colour(red), code_r)
    # the code comes from a CPU generator of its own: a GPU build (CUDA generator) and its checkpoint
    # rebuilt on the CPU get the same code
    g = torch.Generator().manual_seed(cfg.seed)
    torch.testing.assert_close(enc.colour_w, 2.0 * torch.randn(3, 16, generator=g))
    enc.train()
    enc(_pixels(2, 32)).square().mean().backward()
    _assert_all_grads(enc)


def test_cnn_learns_where_a_square_is():
    """The quickstart relies on the CNN learning fast: 4-way 'which quadrant' from scratch in 60 steps."""
    torch.manual_seed(0)
    enc = build_encoder(CnnImageEncoderConfig(image_size=32, channels=[16, 32], out_dim=32))
    head = nn.Linear(enc.num_tokens * enc.out_dim, 4)
    opt = torch.optim.AdamW([*enc.parameters(), *head.parameters()], lr=3e-3)

    def batch(n: int, g: torch.Generator):
        y = torch.randint(0, 4, (n,), generator=g)
        x = torch.randn(n, 3, 32, 32, generator=g) * 0.3
        for i, q in enumerate(y.tolist()):
            r0, c0 = 16 * (q // 2), 16 * (q % 2)
            ox, oy = torch.randint(0, 10, (2,), generator=g).tolist()
            x[i, :, r0 + oy : r0 + oy + 6, c0 + ox : c0 + ox + 6] += 2.0
        return x, y

    g = torch.Generator().manual_seed(1)
    for _ in range(60):
        x, y = batch(32, g)
        loss = nn.functional.cross_entropy(head(enc(x).flatten(1)), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    enc.eval()
    x, y = batch(200, torch.Generator().manual_seed(99))
    with torch.no_grad():
        acc = (head(enc(x).flatten(1)).argmax(-1) == y).float().mean().item()
    assert acc > 0.9, acc


# --------------------------------------------------------------------------------------- point clouds
@pytest.mark.parametrize("channels", [3, 6])
def test_point_bert_shapes_both_channel_counts(channels):
    enc = build_encoder(point_encoder_preset("tiny", in_channels=channels, num_points=256))
    out = enc(_points(2, 256, channels))
    _assert_interface(enc, out, 2)
    assert enc.modality == "pcl" and enc.num_tokens == 32 and enc.out_dim == 64
    with pytest.raises(ValueError, match=f"\\(B, N, {channels}\\)"):
        enc(_points(2, 256, 9 - channels))


def test_point_bert_precomputed_centres_batch_independence_and_seed():
    cfg = point_encoder_preset("tiny", num_points=200)
    enc = build_encoder(cfg).eval()
    pts = _points(3, 200, 6, seed=1)
    with torch.no_grad():
        full = enc(pts)
        cached = enc(pts, center_idx=fps_indices(pts[..., :3], cfg.num_groups))
        alone = enc(pts[1:2])
    assert torch.equal(full, cached)
    assert torch.allclose(full[1:2], alone, atol=1e-5)  # LayerNorm, no BatchNorm: batch-independent
    again = build_encoder(cfg).eval()
    with torch.no_grad():
        assert torch.equal(again(pts), full)  # same seed, same weights, same output
    other = build_encoder(point_encoder_preset("tiny", num_points=200, seed=1)).eval()
    with torch.no_grad():
        assert not torch.allclose(other(pts), full)
    with pytest.raises(ValueError, match="center_idx"):
        enc(pts, center_idx=torch.zeros(3, 5, dtype=torch.long))
    with pytest.raises(ValueError, match="at least"):
        enc(_points(1, 20, 6))


def test_point_bert_gradients_and_freeze():
    enc = build_encoder(point_encoder_preset("tiny", num_points=128, in_channels=3))
    enc.train()
    enc(_points(2, 128, 3)).square().mean().backward()
    _assert_all_grads(enc)
    frozen = build_encoder(point_encoder_preset("tiny", num_points=128, freeze=True))
    assert all(not p.requires_grad for p in frozen.parameters())
    frozen.train()
    assert not frozen.training
    assert frozen(_points(1, 128, 6)).grad_fn is None


def test_point_encoder_tokens_depend_on_geometry_and_colour():
    enc = build_encoder(point_encoder_preset("tiny", num_points=256)).eval()
    pts = _points(1, 256, 6, seed=3)
    recoloured = pts.clone()
    recoloured[..., 3:] = 1 - recoloured[..., 3:]
    moved = pts.clone()
    moved[..., :3] += 0.5
    with torch.no_grad():
        base = enc(pts)
        assert not torch.allclose(enc(recoloured), base, atol=1e-4)
        assert not torch.allclose(enc(moved), base, atol=1e-4)


def test_point_tokenizer_relative_scale_multiplies_local_xyz_only():
    """``relative_scale`` scales each group's centre-relative xyz before the mini-PointNet; colour and
    the centres (grouping, position embedding) are untouched."""
    seen = {}
    pts = _points(2, 256, 6, seed=5)
    for scale in (1.0, 30.0):
        enc = build_encoder(point_encoder_preset("tiny", num_points=256, relative_scale=scale)).eval()
        pointnet = enc.tokenizer.group_encoder
        hook = pointnet.register_forward_hook(lambda m, args, out, s=scale: seen.update({s: args[0]}))
        with torch.no_grad():
            enc(pts)
        hook.remove()
    torch.testing.assert_close(seen[30.0][..., :3], 30.0 * seen[1.0][..., :3])
    torch.testing.assert_close(seen[30.0][..., 3:], seen[1.0][..., 3:])
    assert point_encoder_preset("pointllm").relative_scale == 1.0  # published encoders keep their inputs
    with pytest.raises(ValueError, match="relative_scale"):
        point_encoder_preset("tiny", relative_scale=0.0)


def test_presets():
    pl = point_encoder_preset("pointllm")
    assert (pl.num_points, pl.num_groups, pl.group_size, pl.in_channels) == (8192, 512, 32, 6)
    lamm = point_encoder_preset("lamm")
    assert (lamm.num_points, lamm.num_groups, lamm.in_channels) == (40000, 256, 3)
    enc = build_encoder(pl)
    assert (enc.num_tokens, enc.out_dim) == (512, 384)
    with pytest.raises(KeyError, match="tiny"):
        point_encoder_preset("small")
    with pytest.raises(ValueError, match="divisible"):
        PointEncoderConfig(embed_dim=30, num_heads=4)


def test_epcl_frozen_clip_blocks_trainable_tokenizer():
    cfg = EpclEncoderConfig(vision_config=TINY_VISION, num_points=128, num_groups=16, group_size=8)
    enc = build_encoder(cfg)
    enc.train()
    out = enc(_points(2, 128, 3))
    _assert_interface(enc, out, 2)
    assert (enc.num_tokens, enc.out_dim) == (16, 32)
    assert all(not p.requires_grad for p in enc.blocks.parameters()) and not enc.blocks.training
    out.square().mean().backward()
    _assert_all_grads(enc.tokenizer)


# --------------------------------------------------------------------------------------------- registry
def test_registry_and_config_union():
    assert set(ENCODERS.names()) >= {"clip", "cnn", "point_bert", "epcl"}
    cfg = parse_encoder_config(
        {"type": "point_bert", **point_encoder_preset("tiny").model_dump(exclude={"type"})}
    )
    assert isinstance(cfg, PointEncoderConfig)
    enc = build_encoder({"type": "cnn", "image_size": 32, "channels": [8], "out_dim": 8})
    assert enc.num_tokens == 256
    with pytest.raises(KeyError, match="did you mean 'clip'"):
        build_encoder({"type": "clips"})
    with pytest.raises(ConfigError, match="pool"):
        parse_encoder_config({"type": "cnn", "pool": 4})
    assert issubclass(PointEncoderConfig, Config)


# ---------------------------------------------------------------------------------------- preprocessing
def test_image_preprocess_values_mean_std():
    img = Image.new("RGB", (50, 30), (255, 0, 128))
    out = preprocess_images([img, img.convert("L").convert("RGB")], ImagePreprocessConfig())
    assert out.shape == (2, 3, 224, 224) and out.dtype == torch.float32
    expect = (torch.tensor([255, 0, 128]) / 255.0 - torch.tensor(CLIP_MEAN)) / torch.tensor(CLIP_STD)
    assert torch.allclose(out[0], expect.view(3, 1, 1).expand(3, 224, 224), atol=1e-5)
    assert preprocess_images([], ImagePreprocessConfig(size=16)).shape == (0, 3, 16, 16)
    # RGBA and palette images are accepted as RGB
    odd_modes = [Image.new("RGBA", (8, 8)), Image.new("P", (8, 8))]
    assert preprocess_images(odd_modes, ImagePreprocessConfig(size=8)).shape == (2, 3, 8, 8)


def test_image_preprocess_matches_pil_bicubic_and_modes():
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 256, (20, 40, 3), dtype=np.uint8)
    img = Image.fromarray(arr)
    cfg = ImagePreprocessConfig(size=16, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
    out = preprocess_images([img], cfg)[0]
    ref = np.asarray(img.resize((16, 16), Image.Resampling.BICUBIC), dtype=np.float32) / 255.0
    assert np.allclose(out.permute(1, 2, 0).numpy(), ref, atol=1e-6)
    # squash keeps the whole image: a red left edge stays; a centre crop cuts it away
    wide = np.zeros((20, 40, 3), dtype=np.uint8)
    wide[:, :8, 0] = 255
    squash = preprocess_images([Image.fromarray(wide)], cfg)[0]
    crop = preprocess_images([Image.fromarray(wide)], cfg.model_copy(update={"resize": "center_crop"}))[0]
    assert squash[0, :, 0].min() > 0.9 and crop[0].max() < 0.05
    # pad fills with the mean colour, i.e. zero after normalisation
    pad = preprocess_images([Image.fromarray(wide)], ImagePreprocessConfig(size=16, resize="pad"))[0]
    assert pad[:, 0, :].abs().max() < 0.01 and pad[:, -1, :].abs().max() < 0.01


def test_sample_seed_is_stable():
    assert sample_seed("scene0000_00", 0) == 4426076504799487155  # fixed across processes and Python runs
    assert sample_seed("a", 0) != sample_seed("a", 1) != sample_seed("b", 1)
    assert 0 <= sample_seed("x", 123) < 2**63


def test_point_preprocess_sampling_and_determinism():
    rng = np.random.default_rng(0)
    cloud = np.concatenate([rng.normal(size=(500, 3)) * 3 + 10, rng.integers(0, 256, (500, 3))], 1)
    cfg = PointPreprocessConfig(num_points=200)
    a = preprocess_point_cloud(cloud, cfg, seed=5)
    assert a.shape == (200, 6) and a.dtype == np.float32
    assert np.array_equal(a, preprocess_point_cloud(cloud, cfg, seed=5))
    assert not np.array_equal(a, preprocess_point_cloud(cloud, cfg, seed=6))
    assert len(np.unique(a, axis=0)) == 200  # without replacement
    assert 0.0 <= a[:, 3:].min() and a[:, 3:].max() <= 1.0 and a[:, 3:].max() > 0.9  # 0–255 → 0–1
    assert np.linalg.norm(a[:, :3], axis=1).max() <= 1.0 + 1e-6
    full = preprocess_point_cloud(cloud, PointPreprocessConfig(num_points=500), seed=0)
    assert np.allclose(full[:, :3].mean(0), 0, atol=1e-5)
    assert np.isclose(np.linalg.norm(full[:, :3], axis=1).max(), 1.0, atol=1e-5)
    # unit_sphere_transform inverts the normalisation: every output point maps back onto an input point
    centre, scale = unit_sphere_transform(cloud[:, :3])
    back = full[:, :3].astype(np.float64) * scale + centre
    nearest = np.sqrt(((back[:, None, :] - cloud[None, :, :3]) ** 2).sum(-1)).min(1)
    assert nearest.max() < 1e-4


def test_point_preprocess_upsampling_keeps_every_point_and_frame():
    cloud = np.arange(30, dtype=np.float64).reshape(10, 3)
    out = preprocess_point_cloud(
        cloud, PointPreprocessConfig(num_points=25, use_color=False, normalize="none"), 1
    )
    assert out.shape == (25, 3)
    rows = {tuple(r) for r in out.tolist()}
    assert rows == {tuple(r) for r in cloud.tolist()}  # every point kept, coordinates untouched


def test_point_preprocess_errors():
    cfg = PointPreprocessConfig(num_points=4)
    with pytest.raises(ValueError, match="use_color"):
        preprocess_point_cloud(np.zeros((10, 3)), cfg, 0)
    bad = np.zeros((10, 6))
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        preprocess_point_cloud(bad, cfg, 0)
    with pytest.raises(ValueError, match="shape"):
        preprocess_point_cloud(np.zeros((10, 4)), cfg, 0)
    with pytest.raises(ValueError, match="empty"):
        preprocess_point_cloud(np.zeros((0, 6)), cfg, 0)


def test_cnn_summary_token_is_the_spatial_max():
    import torch

    from lamm.model.encoders.image_cnn import CnnImageEncoder, CnnImageEncoderConfig

    torch.manual_seed(0)
    enc = CnnImageEncoder(CnnImageEncoderConfig(pool_to=2, summary_token=True, out_dim=16))
    assert enc.num_tokens == 5
    x = torch.randn(2, 3, 64, 64)
    out = enc(x)
    assert out.shape == (2, 5, 16)
    f = enc.stages(x)
    want = enc.norm(enc.proj(f.amax(dim=(2, 3))) + enc.pos_embed[:, -1])
    torch.testing.assert_close(out[:, -1], want)
