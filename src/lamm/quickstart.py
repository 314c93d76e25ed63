"""``lamm quickstart``: the whole LAMM loop on the CPU, from nothing, in about ten minutes.

1. ``lamm data synth`` — synthetic 2D shapes and 3D primitive clouds/scenes, train and test splits
   that share no image or scene;
2. C4 instruction data from the TRAIN split with the data builders (``configs/data/synthetic.yaml``),
   one file per task so the trainer can mix tasks by weight;
3. the tiny model (``model_preset("tiny")``) initialised at random and trained from scratch with
   ``lamm.train`` (everything trains: there are no pretrained weights here);
4. the ``synthetic`` benchmark suite on the TEST split, run on the untrained and on the trained model
   through the same recipes, engine and metrics as the LAMM benchmark;
5. ``report.md`` and a self-contained ``report.html``: learning curve, per-task bars (untrained vs
   trained vs chance).

Every stage is resumable: finished stages are detected from their outputs (a ``COMPLETE`` marker or a
results file), training resumes from its last checkpoint and the benchmark from its answer cache. The
same seed gives the same numbers: the number of training steps is a function of ``--minutes`` (a fixed
steps-per-minute rate measured on a 2-core machine), never of the wall clock.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

from lamm.config import Config, ConfigError, load_config
from lamm.fileio import read_json_or_jsonl, write_json_atomic, write_text_atomic

#: training steps per minute of budget: measured for the tiny preset, micro-batch 32, 2 CPU threads
#: (0.5 s per step on this project's 2-core machine)
STEPS_PER_MINUTE = 120
#: tasks of the last (instruct) stage, with their mixing weights (per record; a counting record holds up
#: to 3 questions and a VQA record up to 4, see :data:`MULTI_TURN`): long-answer tasks are cheap to learn
#: the format of and expensive per sample, so they get a small share; classification already learned
#: its features in the earlier stages and keeps a share so that it is not forgotten. Counting competes
#: with 3D classification here: at 3 / 2.5 counting reached 40%, at 3.5 / 2 49%, at 4 / 2 75% with 3D
#: classification at 38% (benchmarks/RESULTS.md, qs8–qs10)
TASK_WEIGHTS = {
    "classification": 3.0, "counting": 4.0, "VQA": 3.0, "classification3d": 2.0,
    "detection": 0.2, "detection3d": 0.1, "visual_grounding3d": 0.2,
}
#: the curriculum, in order: (stage, task weights, share of the steps). From scratch, the CNN found shape
#: features only when shape classification had the batch to itself for ~150 steps first: mixed with
#: counting or VQA from the start (any weights we tried), every task's loss fell but the answers stayed
#: the prior for 700+ steps; after a classification warm-up, the mixture kept 78–89% shape accuracy.
#: With 2D and 3D classification sharing the first stage, the 2D onset came late or not at all in some
#: runs; with a 2D-only warm-up first, every run we made ended at 92–99% shape accuracy (w1, qs8–qs12;
#: greedy answers of qs10's checkpoints: 19% after the warm-up, 50% after perception — the warm-up starts
#: the onset, the later stages finish it; benchmarks/RESULTS.md). 3D classification needs the larger
#: share of the perception stage (29% at 1:1, 38–44% at 1:2). A colour task (the largest shape's colour)
#: anywhere in this curriculum cost either the shape or the colour (RESULTS.md, x1–x8), so there is none
CURRICULUM: tuple[tuple[str, dict[str, float], float], ...] = (
    ("warmup", {"classification": 1.0}, 0.2),
    ("perception", {"classification": 1.0, "classification3d": 2.0}, 0.28),
    ("instruct", TASK_WEIGHTS, 0.52),
)
#: optimiser settings of a :data:`CURRICULUM` stage that differ from :class:`QuickstartConfig`'s: after the
#: perception stage the CNN learns at half the rate (from the same perception checkpoint, counting went
#: from 37% to 54% and shape accuracy stayed at 82%; from a perception stage whose loss left its plateau
#: late, shape accuracy fell to 12% — to 18% with the old settings: benchmarks/RESULTS.md, r3, qs7, r8)
STAGE_OPTIM: dict[str, dict[str, float]] = {"instruct": {"encoder_lr": 1.5e-3, "projector_lr": 1.5e-3}}
#: tasks whose train records of one image are merged into one multi-turn conversation, at most this many
#: turns each: the image is encoded once for several supervised answers (``configs/data/synthetic.yaml``
#: asks 3 counting and up to 4 VQA questions per image); a step costs ~0.7 s instead of ~0.6 s
MULTI_TURN: dict[str, int] = {"counting": 3, "VQA": 4}
#: the tiny preset, changed for training from scratch in one process: BatchNorm in the CNN found shape
#: features after 100–150 steps instead of ~250 with GroupNorm (the preset's default, chosen because it
#: keeps the loss independent of how a batch is split across micro-batches and ranks)
MODEL_OVERRIDES = ("encoders.image.norm=batch",)
#: the tasks the quickstart promises to learn: (metric, factor over chance it must reach)
TARGETS = {
    "synth_classification": ("accuracy", 3.0), "synth_counting": ("accuracy", 2.5),
    "synth_vqa": ("accuracy", 2.0), "synth3d_classification": ("accuracy", 2.5),
}


class QuickstartConfig(Config):
    """Sizes of the quickstart; the defaults fit ~10 minutes on 2 CPU cores."""

    seed: int = 0
    minutes: float = 7.0
    n_train_2d: int = 2000
    n_test_2d: int = 200
    n_train_objects_3d: int = 1400
    n_test_objects_3d: int = 150
    n_train_scenes_3d: int = 300
    n_test_scenes_3d: int = 60
    micro_batch_size: int = 32
    lr: float = 1e-3
    #: encoders and projectors learn from scratch through the LLM; 3x the LLM's rate (with BatchNorm in
    #: the CNN) moved the onset of shape recognition from ~250 to ~120 steps in our measurements
    encoder_lr: float = 3e-3
    bench_limit: int = 100
    cpu_threads: int = 2

    @property
    def steps(self) -> int:
        return max(10, round(self.minutes * STEPS_PER_MINUTE))


@dataclass
class QuickstartResult:
    """Paths of everything written and the two benchmark tables."""

    out: Path
    paths: dict[str, Path] = field(default_factory=dict)
    untrained: dict[str, dict[str, Any]] = field(default_factory=dict)
    trained: dict[str, dict[str, Any]] = field(default_factory=dict)
    losses: list[float] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)


Stage = Callable[[str], None]


def repo_config(relative: str) -> Path:
    """A config shipped in the repository's ``configs/`` (the quickstart runs from a clone)."""
    path = Path(__file__).resolve().parents[2] / "configs" / relative
    if not path.exists():
        raise FileNotFoundError(f"{path}: the quickstart needs the repository's configs/ folder; run it from a "
                                "clone of the lamm repository (pip install -e .)")
    return path


def _synthesize(cfg: QuickstartConfig, out: Path) -> Path:
    from lamm.data.synthetic import SynthConfig, synthesize

    root = out / "synthetic"
    synth_cfg = SynthConfig(seed=cfg.seed, n_train_2d=cfg.n_train_2d, n_test_2d=cfg.n_test_2d,
                            n_train_objects_3d=cfg.n_train_objects_3d, n_test_objects_3d=cfg.n_test_objects_3d,
                            n_train_scenes_3d=cfg.n_train_scenes_3d, n_test_scenes_3d=cfg.n_test_scenes_3d)
    stats = root / "stats.json"
    if stats.exists() and json.loads(stats.read_text()).get("config") == synth_cfg.model_dump(mode="json"):
        return root  # same config, already written (the generator is deterministic)
    synthesize(root, synth_cfg)
    synth_cfg.dump(root / "synth_config.yaml")
    return root


def _build_instructions(cfg: QuickstartConfig, out: Path, synth_root: Path) -> dict[str, Path]:
    from lamm.data.build import build, load_build_config
    from lamm.data.records import write_records

    data_dir = out / "data"
    done = data_dir / "by_task" / "COMPLETE"
    if not done.exists():
        build_cfg = load_build_config(repo_config("data/synthetic.yaml"), [
            f"paths.synthetic={synth_root}", f"out_dir={data_dir}", f"seed={cfg.seed}"])
        build(build_cfg)
        records = read_json_or_jsonl(data_dir / "train.json")
        by_task: dict[str, list[dict[str, Any]]] = {}
        for r in records:
            by_task.setdefault(r["task_type"], []).append(r)
        missing = sorted(set(TASK_WEIGHTS) - set(by_task))
        if missing:
            raise RuntimeError(f"{data_dir / 'train.json'}: the synthetic build made no records for {missing}")
        for task, recs in by_task.items():
            if MULTI_TURN.get(task, 1) > 1:
                recs = merge_turns(recs, MULTI_TURN[task])
            write_records(data_dir / "by_task" / f"train_{task}.json", recs)
        write_text_atomic(done, "ok\n")
    return {task: data_dir / "by_task" / f"train_{task}.json" for task in TASK_WEIGHTS}


def merge_turns(records: list[dict[str, Any]], max_turns: int) -> list[dict[str, Any]]:
    """Records of one task on the same image (or point cloud) merged, in order, into conversations of at
    most ``max_turns`` question/answer pairs; a merged record keeps its first record's id and fields."""
    groups: dict[str, list[list[dict[str, Any]]]] = {}
    for r in records:
        media = r.get("image") or r.get("pcl") or r["id"]
        chunks = groups.setdefault(media, [[]])
        if len(chunks[-1]) >= max_turns:
            chunks.append([])
        chunks[-1].append(r)
    out = []
    for chunks in groups.values():
        for chunk in chunks:
            first = chunk[0]
            out.append({**first, "conversations": [t for r in chunk for t in r["conversations"]],
                        "template_id": "|".join(r["template_id"] for r in chunk)})
    return out


def _init_model(cfg: QuickstartConfig, out: Path) -> Path:
    from lamm.model.checkpoint import is_checkpoint, save_checkpoint
    from lamm.model.config import model_preset
    from lamm.model.mllm import MultimodalLM

    path = out / "model" / "init"
    if not is_checkpoint(path):
        model = MultimodalLM.from_config(model_preset("tiny", [f"seed={cfg.seed}", *MODEL_OVERRIDES]))
        save_checkpoint(model, path, extra_manifest={"made_by": "lamm quickstart"})
    return path


def stage_steps(cfg: QuickstartConfig) -> list[int]:
    """Training steps of each :data:`CURRICULUM` stage: ``cfg.steps`` cut at the cumulative shares (the
    last cut is ``cfg.steps`` itself), at least 5 steps a stage."""
    bounds, cum = [0], 0.0
    for _, _, share in CURRICULUM:
        cum += share
        bounds.append(round(cfg.steps * cum))
    bounds[-1] = cfg.steps
    return [max(5, b - a) for a, b in pairwise(bounds)]


def train_config(cfg: QuickstartConfig, init: Path, task_files: dict[str, Path], synth_root: Path,
                 val_file: Path, *, steps: int | None = None, weights: dict[str, float] | None = None,
                 optim: dict[str, float] | None = None) -> Any:
    """The TrainConfig of one quickstart stage (also written to ``<run>/train_config.yaml`` by the trainer):
    ``weights`` (default :data:`TASK_WEIGHTS`) picks the tasks and mixes them, ``steps`` (default all);
    ``optim`` overrides optimiser settings (:data:`STAGE_OPTIM`)."""
    from lamm.train import TrainConfig

    weights = TASK_WEIGHTS if weights is None else weights
    steps = cfg.steps if steps is None else steps
    return TrainConfig.model_validate({
        "model": {"checkpoint": str(init)},
        "stage": "full",
        "data": {
            "train": [{"file": str(task_files[t]), "root": str(synth_root), "weight": w} for t, w in weights.items()],
            "eval": [{"file": str(val_file), "root": str(synth_root)}],
            "max_length": 384, "packing": True, "too_long": "drop", "max_drop_fraction": 0.0, "num_workers": 1,
        },
        "steps": steps, "micro_batch_size": cfg.micro_batch_size, "grad_accum": 1,
        # constant LR after warm-up: a from-scratch vision path "switches on" late in a short run, and a
        # decaying schedule starved it in our measurements
        "optim": {"lr": cfg.lr, "betas": [0.9, 0.95], "weight_decay": 0.01, "warmup_steps": min(30, steps // 4),
                  "schedule": "constant", "clip_grad_norm": 1.0,
                  "encoder_lr": cfg.encoder_lr, "projector_lr": cfg.encoder_lr, **(optim or {})},
        "precision": "fp32", "cpu_threads": cfg.cpu_threads, "seed": cfg.seed,
        "checkpoint": {"save_every": 100, "keep_last": 1},
        "eval": {"every": max(50, steps // 4), "max_samples": 128},
        "log_every": 1,
    })


def _train(cfg: QuickstartConfig, out: Path, init: Path, task_files: dict[str, Path], synth_root: Path,
           val_file: Path, say: Stage) -> tuple[Path, list[dict[str, Any]]]:
    """Run the :data:`CURRICULUM` stages in order, each a ``lamm train`` run in ``out/train/<stage>`` that
    starts from the previous stage's last checkpoint (a finished stage is skipped, an interrupted one
    resumes). Returns the last checkpoint and the per-step log of all stages on one step axis, which is
    also written to ``out/train/metrics.jsonl`` (rows carry their ``stage``)."""
    from lamm.fileio import write_jsonl_atomic
    from lamm.train import train

    start, offset, rows_all = init, 0, []
    for (name, weights, _), steps in zip(CURRICULUM, stage_steps(cfg)):
        run = out / "train" / name
        say(f"   stage {name!r}: {steps} steps on {', '.join(weights)}")
        tcfg = train_config(cfg, start, task_files, synth_root, val_file, steps=steps, weights=weights,
                            optim=STAGE_OPTIM.get(name))
        last = _latest_checkpoint(run)
        if last is None or _step_of(last) < steps:
            train(tcfg, run, resume=last is not None, progress=True)
            last = _latest_checkpoint(run)
        if last is None or _step_of(last) != steps:
            raise RuntimeError(f"{run}: training stopped at {last}; expected a checkpoint of step {steps}")
        rows = read_json_or_jsonl(run / "metrics.jsonl") if (run / "metrics.jsonl").exists() else []
        # a resumed run repeats the steps after its checkpoint: keep the last row of each (step, kind)
        by_key = {(r["step"], "loss" in r): r for r in rows if "step" in r and ("loss" in r or "eval_loss" in r)}
        rows_all += [{**by_key[k], "step": k[0] + offset, "stage": name} for k in sorted(by_key)]
        offset += steps
        start = last
    write_jsonl_atomic(out / "train" / "metrics.jsonl", rows_all)
    return start, rows_all


def _step_of(checkpoint: Path) -> int:
    return int(checkpoint.name.split("-")[-1])


def _latest_checkpoint(run: Path) -> Path | None:
    from lamm.model.checkpoint import is_checkpoint

    done = [p for p in sorted((run / "checkpoints").glob("step-*")) if is_checkpoint(p)]
    return done[-1] if done else None


def _bench(model_dir: Path, synth_root: Path, out_dir: Path, limit: int) -> dict[str, dict[str, Any]]:
    from lamm.bench.runner import run_suite

    run_suite("synthetic", f"lamm:{model_dir}", out_dir=out_dir, root=synth_root, limit=limit, show_progress=True)
    table = {}
    for res in sorted(out_dir.glob("*/results.json")):
        r = json.loads(res.read_text())
        table[res.parent.name] = {k: r.get(k) for k in ("headline", "score", "chance", "n", "unparsed", "metrics")}
    if "synth_counting" in table and table["synth_counting"].get("chance") is None:
        table["synth_counting"]["chance"] = counting_chance(synth_root)
    return table


def counting_chance(synth_root: Path) -> float:
    """Exact-count accuracy of guessing uniformly among the counts that occur in the test split (percent)."""
    records = read_json_or_jsonl(synth_root / "benchmark" / "test" / "Counting_Synth.json")
    return 100.0 / len({r["num"] for r in records})


#: settings that change no result already written (the benchmark answers are cached per sample)
RESUMABLE_CHANGES = ("bench_limit", "cpu_threads")


def check_same_settings(cfg: QuickstartConfig, out: Path) -> None:
    """Refuse to resume a run in ``out`` made with other settings: its data, model and stages would be
    reused as they are (e.g. instructions of seed 0 beside images of seed 1) and reported as this run's."""
    saved = out / "quickstart_config.yaml"
    if not saved.exists():
        return
    old = load_config(QuickstartConfig, saved).model_dump()
    new = cfg.model_dump()
    changed = [f"{k}: {old.get(k)!r} → {v!r}" for k, v in new.items()
               if k not in RESUMABLE_CHANGES and old.get(k) != v]
    if changed:
        raise ConfigError(f"{out} holds a quickstart run made with other settings ({'; '.join(changed)}); "
                          "re-running resumes it, so use another --out, or delete that folder")


def run_quickstart(cfg: QuickstartConfig, out: str | Path, stage: Stage | None = None) -> QuickstartResult:
    """Run every stage (skipping those already done) and write the report. See the module docstring."""
    out = Path(out)
    check_same_settings(cfg, out)
    out.mkdir(parents=True, exist_ok=True)
    cfg.dump(out / "quickstart_config.yaml")
    say = stage or (lambda s: None)
    res = QuickstartResult(out)
    t = time.time()

    def tick(name: str) -> None:
        nonlocal t
        res.timings[name] = round(time.time() - t, 1)
        t = time.time()

    say("1/6 synthetic data (lamm data synth)")
    synth_root = _synthesize(cfg, out)
    tick("synth")
    say("2/6 C4 instruction data from the train split (lamm data build)")
    task_files = _build_instructions(cfg, out, synth_root)
    tick("build")
    say("3/6 tiny model, random init (lamm model init --preset tiny)")
    init = _init_model(cfg, out)
    tick("init")
    say("4/6 benchmark of the untrained model (lamm bench suite synthetic)")
    res.untrained = _bench(init, synth_root, out / "bench" / "untrained", cfg.bench_limit)
    tick("bench_untrained")
    say(f"5/6 training from scratch: {cfg.steps} steps in {len(CURRICULUM)} stages (lamm train)")
    final, metrics = _train(cfg, out, init, task_files, synth_root, out / "data" / "val.json", say)
    res.losses = [m["loss"] for m in metrics if "loss" in m]
    tick("train")
    say("6/6 benchmark of the trained model, report")
    res.trained = _bench(final, synth_root, out / "bench" / "trained", cfg.bench_limit)
    tick("bench_trained")
    from lamm.quickstart_report import write_report

    res.paths = {
        "synthetic data": synth_root, "instruction data": out / "data", "untrained model": init,
        "trained model": final, "training log": out / "train" / "metrics.jsonl",
        "benchmark (untrained)": out / "bench" / "untrained", "benchmark (trained)": out / "bench" / "trained",
    }
    res.paths.update(write_report(res, metrics))
    write_json_atomic(out / "summary.json", {
        "untrained": res.untrained, "trained": res.trained, "targets": TARGETS,
        "timings_s": res.timings, "steps": cfg.steps, "paths": {k: str(v) for k, v in res.paths.items()},
    })
    return res
