"""ChEF's six desiderata of a multimodal model, as recipes of the one benchmark runner.

* ``calibration`` — expected calibration error of PPL option probabilities, reliability diagram;
* ``icl`` — accuracy with 1–3 in-context examples per retriever, relative to zero-shot and chance;
* ``instruction_following`` — options relabelled by verbalisers; match rate and choice consistency;
* ``robustness`` — seeded image / point-cloud / text corruptions (``corruptions``) and RRM;
* ``pope`` — POPE object-presence questions built from detection annotations (hallucination);
* language performance — the LLM judge (``lamm.bench.judge``, ``lamm.bench.judge_runs``);
* ``suite`` — ``lamm bench desiderata``: the config, the runs of all six; ``scores`` — the six radar axes
  from the finished runs; ``radar`` — the radar chart (SVG), ``desiderata.md`` and ``desiderata.html``.
"""
