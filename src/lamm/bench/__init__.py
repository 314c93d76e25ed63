"""Benchmark: LAMM-Benchmark scenarios, answer parsers, metrics and scoring (ChEF-style evaluation).

``lamm.bench.parsers`` reads structured predictions from answer text; ``lamm.bench.metrics`` holds the
metric families (``METRICS``); ``lamm.bench.scenarios.catalog`` maps scenario names to benchmark files and
metric families; ``lamm.bench.scoring`` scores a file of answers (``lamm bench score``).
"""
