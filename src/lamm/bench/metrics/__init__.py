"""Metric families for the LAMM-Benchmark: pure functions of (answers, records).

API
---
``METRICS`` is a ``lamm.registry.Registry`` of metric families by name:

=====================  ==========================================  ===================  =====================
family                 metrics (percent unless noted)              headline             scenarios
=====================  ==========================================  ===================  =====================
classification         accuracy                                    accuracy             CIFAR10, UCMerced
facial_smile           accuracy                                    accuracy             CelebA-Smile
facial_hair            accuracy                                    accuracy             CelebA-Hair
detection              ap50, ap, precision50, recall50,            ap50                 VOC2012
                       lamm_recall50
multiple_choice        accuracy, unparsed (a count)                accuracy             ScienceQA, AI2D, ScanQA
caption                bleu1..bleu4, rouge_l, cider, lamm_bleu4    bleu4                Flickr30k
counting               mae (in objects), accuracy                  mae (lower = better) FSC147
ocr                    word_recall                                 word_recall          SVT
keypoints              pck                                         pck                  LSP
locating               accuracy, lamm_accuracy                     accuracy             Locating-*
detection3d            map25, map50, ar25, ar50, lamm_recall50     map25                ScanNet
grounding3d            acc25, acc50 (+ _unique, _multiple)         acc50                ScanRefer
instruction_following  match_rate, label_rate, unparsed (a count)  match_rate           multiple choice + verbalizer
pope                   f1, accuracy, precision, recall, yes_ratio  f1                   POPE, Synth-POPE
mme                    score (sum of acc + acc+ per subtask; not    score                MME, generic files
                       a percent), perception, cognition,
                       accuracy, accuracy_plus
=====================  ==========================================  ===================  =====================

Circular evaluation (``scenario.circular``, MMBench's CircularEval) wraps ``multiple_choice`` in
``lamm.bench.metrics.circular.CircularFamily``: headline ``circular_accuracy``, plus ``accuracy`` over
rotation 0 and ``rotation_accuracy``; it is not a family of its own.

Every family (a ``MetricFamily``) exposes::

    family.parse(answer, record) -> JSON-ready prediction | None      # None = unparsed; never raises
    family.evaluate(answers: list, records: list[dict], *, ci: bool = True, seed: int = 0,
                    n_boot: int = 1000) -> MetricReport
    family.needs_image_size(record) -> bool     # keypoints / some locating records need record["image_size"]
    family.required_fields, family.metric_names, family.headline

``records`` are raw LAMM-Benchmark records (fields as in the benchmark files: ``label``, ``object``,
``gt_choice`` / ``gt_choices``, ``sentences``, ``num``, ``word_list``, ``attr``, ``gt_joints``, ``points``;
``verbal_labels`` for instruction following, ``gt_answer`` yes/no for POPE);
``answers[i]`` is the model's text for ``records[i]`` (for LSP keypoints a dict joint name → text). A
record missing a needed field raises ``RecordError`` naming the record index, id and field.

``MetricReport`` holds ``metrics`` (name → value), ``headline``, ``n``, ``unparsed`` (answers that could
not be read; they are scored as wrong), ``ci`` (name → seeded 95% percentile-bootstrap interval over
samples, at least for the headline; corpus metrics are recomputed on each resample), ``per_sample`` (one
dict per input in input order: ``index``, ``id``, ``parsed``, ``unparsed`` and the sample's scores) and
``info``; ``to_dict()`` / ``to_json()`` serialise it (NaN → null). Where LAMM's published number differs
from the correct metric, the LAMM-compatible value is also given under a ``lamm_`` name.

>>> report = METRICS.get("counting").evaluate(["5.", "six"], [{"num": 5}, {"num": 4}], ci=False)
>>> report.metrics["mae"], report.n, report.unparsed
(1.0, 2, 0)
"""

from __future__ import annotations

from lamm.bench.metrics import (  # noqa: F401  (importing registers each family)
    caption,
    classification,
    counting,
    detection2d,
    detection3d,
    grounding3d,
    instruction_following,
    keypoints,
    locating,
    mme,
    multiple_choice,
    ocr,
    pope,
)
from lamm.bench.metrics.base import METRICS, MetricFamily, MetricReport, PerSampleFamily, RecordError

__all__ = ["METRICS", "MetricFamily", "MetricReport", "PerSampleFamily", "RecordError", "get_metric"]


def get_metric(name: str) -> MetricFamily:
    """The metric family called ``name`` (``KeyError`` with did-you-mean suggestions otherwise)."""
    return METRICS.get(name)
