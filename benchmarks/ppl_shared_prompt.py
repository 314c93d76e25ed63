"""PPL (likelihood) scoring of a multiple-choice benchmark: the shared prompt computed once vs a full
forward per option — through the whole benchmark pipeline (scenario → ppl inferencer → engine).

Both runs use the ``lamm`` backend on the same model and the same ScienceQA-format records (made here:
``--questions`` questions with ``--options`` options and a context of ``--context-words`` words, tiny
images). The PPL inferencer sends every option of every question of a batch in one
``Engine.loglikelihood`` call; the engine groups requests that share a prompt and

* ``kv_reuse=True`` (ours): runs each prompt once and reuses its KV cache for every option's tokens;
* ``kv_reuse=False`` (baseline): runs prompt + option as a full forward for every option (batched).

Timed: the inference phase of ``lamm.bench.runner.run_recipe`` (model build, data, scoring excluded),
best of ``--repeats`` runs on fresh caches; printed with the ratio baseline / ours, and a check that both
chose the same options with option log-likelihoods equal to rounding::

    python benchmarks/ppl_shared_prompt.py                                   # CPU, tiny preset
    python benchmarks/ppl_shared_prompt.py --preset lamm7b --device cuda --batch-size 16 --questions 64
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

WORDS = ["the", "magnet", "north", "south", "pole", "field", "attract", "repel", "iron", "metal", "force", "plate", "near", "far", "left", "right", "object", "large", "small", "weight", "push", "pull", "stronger", "weaker", "same", "opposite", "side"]
OPTIONS = ["attract", "repel", "neither attract nor repel", "attract then repel", "it depends on the distance",
           "they do not interact", "only the north poles attract", "only the south poles repel"]


def make_benchmark(root: Path, n: int, k: int, context_words: int, image_size: int, seed: int = 0) -> None:
    """``VQA_ScienceQA.json`` with ``n`` questions of ``k`` options under ``root``."""
    rng = np.random.default_rng(seed)
    (root / "img").mkdir(parents=True, exist_ok=True)
    recs = []
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (image_size, image_size, 3), dtype=np.uint8)).save(root / "img" / f"{i}.png")
        context = " ".join(rng.choice(WORDS, size=context_words))
        opts = [OPTIONS[(i + j) % len(OPTIONS)] for j in range(k)]
        query = (f"Context: {context}. Question: Will these magnets attract or repel each other? Options: "
                 + " ".join(f"({chr(65 + j)}) {o}" for j, o in enumerate(opts)))
        recs.append({"id": f"q{i}", "image": f"img/{i}.png", "query": query, "gt_choice": int(rng.integers(k)),
                     "gt_choices": opts})
    (root / "VQA_ScienceQA.json").write_text(json.dumps(recs), encoding="utf-8")


def build_model(preset: str, device: str):
    from lamm.model.config import model_preset
    from lamm.model.mllm import MultimodalLM

    cfg = model_preset(preset)
    if cfg.llm.config and cfg.tokenizer == "tiny":
        cfg.llm.config.pop("vocab_size", None)  # size the head to the built-in tokenizer (see generate_speed.py)
    torch.manual_seed(0)
    with torch.device(device):  # random init straight on the device
        return MultimodalLM.from_config(cfg).eval()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="tiny")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--dtype", default=None, help="LLM dtype, e.g. bfloat16 (default: as built)")
    p.add_argument("--questions", type=int, default=32)
    p.add_argument("--options", type=int, default=4)
    p.add_argument("--context-words", type=int, default=120)
    p.add_argument("--batch-size", type=int, default=8, help="questions per inferencer batch (and engine batch)")
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()

    from lamm.bench.recipe import Recipe
    from lamm.bench.runner import run_recipe
    from lamm.infer.backends.lamm import LammEngine

    model = build_model(args.preset, args.device)
    size = model.config.image_preprocess.size
    recipe = Recipe.model_validate({"name": "ppl_bench", "scenario": {"name": "ScienceQA"},
                                    "instruction": {"answer_template": "letter_option"},
                                    "inferencer": {"type": "ppl", "batch_size": args.batch_size},
                                    "metrics": {"ci": False}})
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "data"
        make_benchmark(root, args.questions, args.options, args.context_words, size)
        engines = {name: LammEngine(args.preset, device=args.device, dtype=args.dtype, batch_size=args.batch_size,
                                    kv_reuse=reuse, model=model)
                   for name, reuse in (("shared prompt (kv_reuse)", True), ("full forward per option", False))}
        best: dict[str, float] = {}
        answers: dict[str, list[dict]] = {}
        for r in range(args.repeats + 1):  # repeat 0 warms up (allocator, kernels)
            for name, eng in engines.items():
                out = Path(tmp) / f"run_{r}_{len(best)}_{abs(hash(name))}"
                if args.device.startswith("cuda"):
                    torch.cuda.synchronize()
                t = time.perf_counter()
                res = run_recipe(recipe, eng, out_dir=out, root=root, show_progress=False)
                elapsed = res.timings["inference_s"] if res else time.perf_counter() - t
                if r > 0:
                    best[name] = min(best.get(name, float("inf")), elapsed)
                answers[name] = [json.loads(line) for line in (out / "answers.jsonl").read_text().splitlines()]
    (ours, a), (base, b) = answers.items()
    same = sum(x["extra"]["choice"] == y["extra"]["choice"] for x, y in zip(a, b))
    diff = max(abs(u - v) for x, y in zip(a, b) for u, v in zip(x["extra"]["option_scores"], y["extra"]["option_scores"]))
    print(f"device {args.device}, preset {args.preset}, dtype {args.dtype or 'as built'}: {args.questions} questions x "
          f"{args.options} options, context {args.context_words} words, batch {args.batch_size}")
    for name, t in best.items():
        print(f"  {name:28s} {t:8.3f} s  ({args.questions / t:7.1f} questions/s)")
    print(f"  same choice on {same}/{len(a)} questions; max |mean log-prob difference| {diff:.2e}")
    print(f"ratio (baseline / shared prompt): {best[base] / best[ours]:.2f}x")


if __name__ == "__main__":
    main()
