"""Scoring throughput: a synthetic 62,439-answer workload (classification + multiple choice, the size of
the LAMM 2D benchmark) through ``lamm.bench.scoring.score_records``.

Prints answers/s for our scorer (with and without bootstrap intervals) and the ratio against a named
baseline measured in the same run: ``naive`` — LAMM-style bare matching (label in the answer's words;
the first "(X)" letter), which does no synonym, whole-word, option-text or unparsed handling.

    .venv/bin/python benchmarks/score_speed.py [--n 62439]
"""

from __future__ import annotations

import argparse
import random
import re
import time

from lamm.bench.scoring import score_records

CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
TEMPLATES = ["It is a {}.", "The image shows a {} on the grass.", "{}", "I think this is a {}, not a {}.",
             "This looks like a small animal.", "A {} standing near a {}."]


def make_workload(n: int, seed: int = 0):
    """Half classification, half multiple choice; answers mix right, wrong, hedged and unparsable."""
    rng = random.Random(seed)
    cls_records, cls_answers, mc_records, mc_answers = [], [], [], []
    for i in range(n // 2):
        label = rng.choice(CLASSES)
        said = label if rng.random() < 0.6 else rng.choice(CLASSES)
        t = rng.choice(TEMPLATES)
        cls_records.append({"id": f"c{i}", "image": f"cifar/{i}.png", "query": "What is it?", "label": label})
        cls_answers.append(t.format(said, rng.choice(CLASSES)))
    for i in range(n - n // 2):
        k = rng.randint(2, 6)
        choices = [f"option text {j} {rng.randint(0, 999)}" for j in range(k)]
        gt = rng.randrange(k)
        pick = gt if rng.random() < 0.5 else rng.randrange(k)
        letter = "ABCDEF"[pick]
        answer = rng.choice([f"The answer is ({letter}).", f"ANSWER: {letter}", f"({letter}) {choices[pick]}",
                             f"I believe it is {choices[pick]}.", "I am not sure."])
        mc_records.append({"id": f"m{i}", "image": f"sqa/{i}.png", "query": "Q?", "gt_choice": gt,
                           "gt_choices": choices})
        mc_answers.append(answer)
    return (cls_answers, cls_records), (mc_answers, mc_records)


def naive(cls, mc) -> float:
    """The baseline: LAMM-style bare matching."""
    hits = sum(r["label"] in a.lower().split() for a, r in zip(*cls))
    for a, r in zip(*mc):
        m = re.search(r"\(([A-F])\)", a)
        hits += bool(m) and "ABCDEF".index(m.group(1)) == r["gt_choice"]
    return hits


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=62_439)
    n = ap.parse_args().n
    cls, mc = make_workload(n)
    t_naive = timed(lambda: naive(cls, mc))
    t_fast = timed(lambda: (score_records("CIFAR10", *cls, ci=False), score_records("ScienceQA", *mc, ci=False)))
    t_ci = timed(lambda: (score_records("CIFAR10", *cls), score_records("ScienceQA", *mc)))
    print(f"answers: {n}")
    print(f"baseline naive (LAMM-style bare matching): {n / t_naive:12,.0f} answers/s  ({t_naive:.2f} s)")
    print(f"lamm score, ci=False:                      {n / t_fast:12,.0f} answers/s  ({t_fast:.2f} s)"
          f"  ratio vs naive {t_naive / t_fast:.3f}")
    print(f"lamm score, ci=True (1000 resamples):      {n / t_ci:12,.0f} answers/s  ({t_ci:.2f} s)"
          f"  ratio vs naive {t_naive / t_ci:.3f}")


if __name__ == "__main__":
    main()
