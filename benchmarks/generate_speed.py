"""Generation throughput of the ``lamm:`` engine backend against a plain loop, and option scoring.

Generation: the same requests (images shared by several questions, prompts of varied length) answered

* by the engine in each of ``--variants`` (batch size : decoding path): length-grouped batches, media
  encoded once per distinct image, with the dynamic decoding loop or the static one (static KV cache,
  and on a GPU the decode step replayed as a CUDA graph; ``lamm.model.static_decode``);
* by the baseline ``model_generate_loop``: ``MultimodalLM.generate`` called once per request (batch 1),
  as a user without the engine would write it.

All decode greedily (the test suite checks that batched, unbatched and static replies are equal in
float32); in bf16 a left-padded batch rounds differently, so each variant is credited with its own
new-token count and the ratio of new tokens/s is the speed-up.

Scoring (``--loglikelihood``): ``--options`` continuations per question scored by the engine with the
prompt run once and its KV cache shared (``kv_reuse``), against the baseline ``batched_forward``: one
batched forward of prompt + option per option.

The tiny preset is written to a temporary checkpoint and loaded through ``lamm:DIR`` (the real path);
``--preset lamm7b`` random-initialises LAMM's 7B shapes in memory on the device (GPU only, ~16 GB)::

    python benchmarks/generate_speed.py
    python benchmarks/generate_speed.py --preset lamm7b --device cuda --variants 1:static,16:dynamic,16:static \\
        --max-new-tokens 128 --baseline-requests 4 --merge-lora --loglikelihood
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch
from PIL import Image

from lamm.conversation import Conversation, MediaRef
from lamm.infer.engine import GenerateRequest, GenerationSettings, LoglikelihoodRequest, load_engine

QUESTIONS = ["What is in the image?", "Describe the image in detail: every object, its colour and position.",
             "How many shapes are there?", "Is there a red circle in the image? Answer yes or no.",
             "What colour is the largest object, and what is next to it on the left side of the image?"]
COLOURS = ["red", "green", "blue", "yellow", "purple", "orange", "white", "black"]


def build_engine(args: argparse.Namespace, workdir: str):
    from lamm.model.checkpoint import save_checkpoint
    from lamm.model.config import model_preset
    from lamm.model.mllm import MultimodalLM

    cfg = model_preset(args.preset)
    if cfg.llm.config and cfg.tokenizer == "tiny":
        # lamm7b pairs LLaMA-2 shapes with the built-in ~1k-token tokenizer: with its 32k-row head a
        # random model emits ids the tokenizer cannot decode, so replies (and token counts) would be
        # empty. The head is sized to the tokenizer instead (2% of a 7B model's weights).
        cfg.llm.config.pop("vocab_size", None)
    if args.preset == "tiny":
        save_checkpoint(MultimodalLM.from_config(cfg), f"{workdir}/ckpt")
        return load_engine(f"lamm:{workdir}/ckpt", device=args.device, batch_size=args.batch_size,
                           static_bucket=args.bucket)
    with torch.device(args.device):  # random init straight on the device: a 7B init on CPU takes minutes
        model = MultimodalLM.from_config(cfg)
    from lamm.infer.backends.lamm import LammEngine

    return LammEngine(args.preset, device=args.device, batch_size=args.batch_size, model=model.eval(),
                      static_bucket=args.bucket)


def make_requests(n: int, max_new_tokens: int, workdir: str) -> list[GenerateRequest]:
    reqs = []
    for i in range(n):
        path = f"{workdir}/img{i % max(1, n // 2)}.png"  # every image is asked about twice
        Image.new("RGB", (96, 80), COLOURS[i % len(COLOURS)]).save(path)
        conv = Conversation.single_turn(QUESTIONS[i % len(QUESTIONS)], [MediaRef("image", path=path)])
        # no stop string beyond the template's: both sides decode the full max_new_tokens where they can
        reqs.append(GenerateRequest(conv, GenerationSettings(max_new_tokens=max_new_tokens)))
    return reqs


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed(fn, device: str):
    sync(device)
    t = time.perf_counter()
    out = fn()
    sync(device)
    return out, time.perf_counter() - t


def count_tokens(engine, texts: list[str]) -> int:
    return sum(len(engine.tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts)


DECODINGS = ("dynamic", "static", "static-nograph", "static-compiled")


def set_variant(engine, batch_size: int, decoding: str) -> None:
    """Point the engine at one configuration: batch size, and ``dynamic`` decoding (growing KV cache),
    ``static`` (static KV cache; the step replayed as a CUDA graph on a GPU), ``static-nograph`` or
    ``static-compiled`` (``static`` with the step compiled by torch.compile)."""
    from lamm.infer.batching import Batcher

    engine.batcher = Batcher(batch_size)
    engine.static_cache = decoding != "dynamic"
    engine.cuda_graphs = False if decoding == "static-nograph" else None
    engine.compile_step = decoding == "static-compiled"
    engine._static = None


def bench_generate(engine, reqs: list[GenerateRequest], args: argparse.Namespace) -> None:
    model = engine.model
    base_reqs = reqs[: args.baseline_requests or len(reqs)]

    def baseline() -> list[str]:
        out = []
        for r in base_reqs:
            tc = model.tokenize(r.conversation, add_generation_prompt=True)
            out += model.generate([tc], model.preprocess_media(tc.media), max_new_tokens=args.max_new_tokens)
        return out

    # warm-up outside the timings (allocator growth, kernel selection)
    tc0 = model.tokenize(reqs[0].conversation, add_generation_prompt=True)
    model.generate([tc0], model.preprocess_media(tc0.media), max_new_tokens=2)
    base_out, t_base = timed(baseline, args.device)
    base_rate = count_tokens(engine, base_out) / t_base
    print(f"generate: {len(reqs)} requests, {args.max_new_tokens} max new tokens each (baseline on the first "
          f"{len(base_reqs)}); new tokens/s include prefill and image encoding")
    print(f"  {'model_generate_loop (batch 1, dynamic cache)':56s} {t_base:8.3f} s {base_rate:9.1f} new tokens/s",
          flush=True)
    stages = {"no": [False], "yes": [False, True], "only": [True]}[args.merge_lora]
    for merged in stages:
        if merged and not engine.merge_lora():
            print("  (no LoRA to merge)")
            break
        for bs, dec in args.variants:
            label = f"lamm engine (batch {bs}, {dec}{', LoRA merged' if merged else ''})"
            try:
                set_variant(engine, bs, dec)
                # warm-up at the timed shapes: captures the static path's CUDA graphs outside the timing
                engine.generate(reqs[:bs])
                out, t = timed(lambda: engine.generate(reqs), args.device)
            except Exception as e:  # noqa: BLE001 - a failed variant is reported and the others still run
                import traceback

                traceback.print_exc()
                print(f"  {label:56s} FAILED: {type(e).__name__}: {e}", flush=True)
                continue
            n = count_tokens(engine, out)
            ratio = f"x{(n / t) / base_rate:5.2f} baseline" if base_rate > 0 else "(baseline made no tokens)"
            print(f"  {label:56s} {t:8.3f} s {n / t:9.1f} new tokens/s  {ratio}", flush=True)
            if args.profile:
                profile_once(engine, reqs, args)


def profile_once(engine, reqs: list[GenerateRequest], args: argparse.Namespace) -> None:
    """Run the timed call once more under ``torch.profiler`` and print the operators and kernels that
    took the most device time (CUDA kernels replayed inside CUDA graphs included), or CPU time on a CPU."""
    from torch.profiler import ProfilerActivity, profile

    cuda = args.device.startswith("cuda")
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=activities) as prof:
        engine.generate(reqs)
        sync(args.device)
    key = "self_cuda_time_total" if cuda else "self_cpu_time_total"
    print(prof.key_averages().table(sort_by=key, row_limit=args.profile_rows, max_name_column_width=70), flush=True)


def bench_loglikelihood(engine, reqs: list[GenerateRequest], args: argparse.Namespace) -> None:
    options = [" yes", " no", " a red circle", " a blue square next to a green triangle",
               " three", " the image is empty"]
    ll = [LoglikelihoodRequest(r.conversation, options[k % len(options)] + ("" if k < len(options) else f" {k}"))
          for r in reqs for k in range(args.options)]
    engine.loglikelihood(ll[: args.options])  # warm-up

    def run(kv: bool):
        engine.kv_reuse = kv
        return engine.loglikelihood(ll)

    plain, t_plain = timed(lambda: run(False), args.device)
    kv, t_kv = timed(lambda: run(True), args.device)
    engine.kv_reuse = True
    err = max(abs(a.sum_logprob - b.sum_logprob) for a, b in zip(plain, kv))
    print(f"loglikelihood: {len(reqs)} questions x {args.options} options (max |diff| {err:.2e})")
    print(f"  batched_forward (prompt per option): {t_plain:8.3f} s  {len(ll) / t_plain:9.1f} options/s")
    print(f"  lamm engine kv_reuse (prompt once):  {t_kv:8.3f} s  {len(ll) / t_kv:9.1f} options/s")
    print(f"  ratio kv_reuse / batched_forward: {t_plain / t_kv:.2f}x")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", choices=["tiny", "lamm7b"], default="tiny", help="model preset (random init)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="cpu | cuda")
    p.add_argument("--requests", type=int, default=16, help="number of generation requests")
    p.add_argument("--variants", default="1:dynamic,1:static,8:dynamic,8:static",
                   help="engine configurations to time, comma-separated BATCH:DECODING; DECODING is dynamic "
                        "(growing KV cache), static (static KV cache; CUDA graphs on a GPU) or static-nograph")
    p.add_argument("--baseline-requests", type=int, default=0,
                   help="time the batch-1 baseline on the first N requests only (0: all; it is slow on a 7B model)")
    p.add_argument("--max-new-tokens", type=int, default=32, help="tokens generated per request")
    p.add_argument("--loglikelihood", action="store_true", help="also time option scoring (KV reuse)")
    p.add_argument("--options", type=int, default=4, help="options per question when scoring")
    p.add_argument("--merge-lora", nargs="?", const="yes", default="no", choices=["no", "yes", "only"],
                   help="also (yes) or only (only) time the engine with LoRA merged (lora presets)")
    p.add_argument("--bucket", type=int, default=256, help="static KV cache lengths are multiples of this")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--profile", action="store_true",
                   help="after each variant, run it once more under torch.profiler and print where the time went")
    p.add_argument("--profile-rows", type=int, default=20, help="rows of the --profile table")
    args = p.parse_args()
    try:
        args.variants = [(int(v.split(":")[0]), v.split(":")[1]) for v in args.variants.split(",")]
    except (IndexError, ValueError):
        p.error(f"--variants {args.variants!r}: expected BATCH:DECODING pairs, e.g. 1:static,16:static")
    if bad := {d for _, d in args.variants} - set(DECODINGS):
        p.error(f"--variants: unknown decoding {sorted(bad)}; expected one of {', '.join(DECODINGS)}")
    args.batch_size = max(b for b, _ in args.variants)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.preset == "lamm7b" and not args.device.startswith("cuda"):
        p.error("--preset lamm7b needs --device cuda (a random 7B model on the CPU takes hours to decode)")
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory(prefix="lamm-genspeed-") as workdir, torch.inference_mode():
        engine = build_engine(args, workdir)
        name = torch.cuda.get_device_name() if args.device.startswith("cuda") else f"cpu x{torch.get_num_threads()}"
        print(f"preset {args.preset} on {name}")
        reqs = make_requests(args.requests, args.max_new_tokens, workdir)
        bench_generate(engine, reqs, args)
        if args.loglikelihood:
            bench_loglikelihood(engine, reqs, args)


if __name__ == "__main__":
    main()
