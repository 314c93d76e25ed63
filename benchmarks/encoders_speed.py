"""Encoder throughput: the point-cloud tokenizer (FPS separately) and the image encoders.

Each line prints ms/batch and samples/s; each group ends with a ratio against a named baseline measured
in the same run:

* FPS: batched (vectorised over the batch) vs one cloud at a time (baseline ``fps_per_sample``);
* point encoder: forward with precomputed FPS centres vs the full forward (FPS inside) — what caching
  FPS in data workers saves;
* CLIP: our encoder (layers after ``feature_layer`` pruned, no post-norm) vs transformers'
  ``CLIPVisionModel(..., output_hidden_states=True)`` (baseline ``hf_hidden_states``).

Models are randomly initialised (no downloads). CPU defaults finish in well under a minute::

    python benchmarks/encoders_speed.py
    python benchmarks/encoders_speed.py --device cuda --preset all --image all --dtype bfloat16
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch

from lamm.model.encoders import ClipImageEncoderConfig, build_encoder, point_encoder_preset
from lamm.model.encoders.point_ops import fps_indices

IMAGE_SHAPES = {
    # tiny: the tests' CLIP (hidden 32, 2 layers, 32 px, patch 8 → 16 tokens)
    "tiny": {
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "image_size": 32,
        "patch_size": 8,
    },
    # LAMM's CLIP ViT-L/14 at 224 px (256 patch tokens, 1024-d, 24 layers), random weights
    "vitl14": {
        "hidden_size": 1024,
        "intermediate_size": 4096,
        "num_hidden_layers": 24,
        "num_attention_heads": 16,
        "image_size": 224,
        "patch_size": 14,
    },
}
DEFAULT_BATCH = {
    ("cpu", "tiny"): 8,
    ("cpu", "pointllm"): 2,
    ("cpu", "lamm"): 1,
    ("cpu", "img:tiny"): 16,
    ("cpu", "img:vitl14"): 1,
    ("cuda", "tiny"): 64,
    ("cuda", "pointllm"): 32,
    ("cuda", "lamm"): 16,
    ("cuda", "img:tiny"): 256,
    ("cuda", "img:vitl14"): 64,
}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], object], device: torch.device, iters: int, warmup: int) -> float:
    """Mean wall-clock seconds per call of ``fn`` after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(iters):
        fn()
    _sync(device)
    return (time.perf_counter() - t0) / iters


def report(name: str, seconds: float, batch: int) -> None:
    print(f"  {name:<34} {seconds * 1e3:10.2f} ms/batch {batch / seconds:12.1f} samples/s")


def bench_points(preset: str, args: argparse.Namespace, device: torch.device, dtype: torch.dtype) -> None:
    cfg = point_encoder_preset(preset)
    batch = args.batch or DEFAULT_BATCH[(device.type, preset)]
    enc = build_encoder(cfg).to(device=device, dtype=dtype).eval()
    g = torch.Generator().manual_seed(0)
    pts = torch.rand(batch, cfg.num_points, cfg.in_channels, generator=g).to(device) * 2 - 1
    xyz = pts[..., :3].contiguous()
    print(
        f"point encoder preset={preset} ({cfg.num_points} pts x {cfg.in_channels} ch -> "
        f"{cfg.num_groups} tokens x {cfg.embed_dim}, depth {cfg.depth}) batch={batch} dtype={args.dtype}"
    )
    with torch.inference_mode():
        t_fps = timed(lambda: fps_indices(xyz, cfg.num_groups), device, args.iters, args.warmup)
        t_fps1 = timed(
            lambda: [fps_indices(xyz[i : i + 1], cfg.num_groups) for i in range(batch)],
            device,
            min(args.iters, 3),  # thousands of tiny launches per call on a GPU: a few calls suffice
            min(args.warmup, 1),
        )
        centres = fps_indices(xyz, cfg.num_groups)
        t_full = timed(lambda: enc(pts.to(dtype)), device, args.iters, args.warmup)
        t_cached = timed(lambda: enc(pts.to(dtype), center_idx=centres), device, args.iters, args.warmup)
    report("fps (batched)", t_fps, batch)
    report("fps_per_sample [baseline]", t_fps1, batch)
    report("encoder forward, FPS inside", t_full, batch)
    report("encoder forward, cached centres", t_cached, batch)
    print(f"  ratio fps_per_sample / fps batched = {t_fps1 / t_fps:.2f}x")
    print(
        f"  ratio full / cached-centres forward = {t_full / t_cached:.2f}x (FPS share {t_fps / t_full:.0%})"
    )


def bench_image(shape: str, args: argparse.Namespace, device: torch.device, dtype: torch.dtype) -> None:
    vc = IMAGE_SHAPES[shape]
    batch = args.batch or DEFAULT_BATCH[(device.type, f"img:{shape}")]
    t0 = time.perf_counter()
    enc = build_encoder(ClipImageEncoderConfig(vision_config=vc, image_size=vc["image_size"]))
    enc = enc.to(device=device, dtype=dtype).eval()
    build_s = time.perf_counter() - t0
    from transformers import CLIPVisionConfig, CLIPVisionModel

    base = CLIPVisionModel(CLIPVisionConfig(**vc)).to(device=device, dtype=dtype).eval()
    s = vc["image_size"]
    x = torch.randn(batch, 3, s, s, generator=torch.Generator().manual_seed(0)).to(device=device, dtype=dtype)
    print(
        f"image encoder clip:{shape} ({s}px, patch {vc['patch_size']}, {vc['num_hidden_layers']} layers, "
        f"hidden {vc['hidden_size']} -> {enc.num_tokens} tokens) batch={batch} dtype={args.dtype} "
        f"(built in {build_s:.1f}s)"
    )
    with torch.inference_mode():
        t_ours = timed(lambda: enc(x), device, args.iters, args.warmup)
        t_base = timed(
            lambda: base(pixel_values=x, output_hidden_states=True).hidden_states[-1][:, 1:],
            device,
            args.iters,
            args.warmup,
        )
    report("lamm ClipImageEncoder", t_ours, batch)
    report("hf_hidden_states [baseline]", t_base, batch)
    print(f"  ratio hf_hidden_states / ours = {t_base / t_ours:.2f}x")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    ap.add_argument(
        "--preset",
        default="tiny,pointllm",
        help="point encoder presets, comma-separated, from tiny,pointllm,lamm, 'all' or 'none' "
        "(default tiny,pointllm)",
    )
    ap.add_argument(
        "--image",
        default="tiny,vitl14",
        help="image encoder shapes, comma-separated, from tiny,vitl14, 'all' or 'none' (default tiny,vitl14)",
    )
    ap.add_argument("--batch", type=int, default=None, help="batch size (default: per device and model)")
    ap.add_argument("--iters", type=int, default=None, help="timed iterations (default 3 cpu, 20 cuda)")
    ap.add_argument("--warmup", type=int, default=1, help="untimed warm-up iterations (default 1)")
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    args = ap.parse_args(argv)

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        ap.error("--device cuda but no CUDA device is available")
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.iters is None:
        args.iters = 20 if device.type == "cuda" else 3
    dtype = getattr(torch, args.dtype)
    presets = (
        ["tiny", "pointllm", "lamm"] if args.preset == "all" else [p for p in args.preset.split(",") if p]
    )
    images = list(IMAGE_SHAPES) if args.image == "all" else [s for s in args.image.split(",") if s]
    presets = [p for p in presets if p != "none"]
    images = [s for s in images if s != "none"]
    for s in images:
        if s not in IMAGE_SHAPES:
            ap.error(f"unknown --image {s!r} (known: {', '.join(IMAGE_SHAPES)})")
    dev_name = (
        torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu x{torch.get_num_threads()}"
    )
    print(f"device: {dev_name}; torch {torch.__version__}; iters={args.iters} warmup={args.warmup}")
    for p in presets:
        bench_points(p, args, device, dtype)
    for s in images:
        bench_image(s, args, device, dtype)


if __name__ == "__main__":
    main()
