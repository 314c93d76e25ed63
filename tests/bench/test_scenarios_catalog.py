"""The scenario catalog: every LAMM scenario, its files, modality, metric family and chance level."""

from __future__ import annotations

import pytest

from lamm.bench.metrics import METRICS
from lamm.bench.scenarios.catalog import CATALOG, get_scenario_info, scenario_for_file

NAMES = ["CIFAR10", "VOC2012", "ScienceQA", "AI2D", "Flickr30k", "UCMerced", "FSC147", "SVT", "CelebA-Smile",
         "CelebA-Hair", "LSP", "Locating-VOC2012", "Locating-LSP", "Locating-FSC147", "ScanNet", "ScanRefer",
         "ScanQA"]


def test_all_scenarios_have_a_metric_family():
    assert list(CATALOG) == NAMES
    for info in CATALOG.values():
        assert info.metric in METRICS
        assert set(info.gt_fields) >= set(METRICS.get(info.metric).required_fields)
    assert {n for n, i in CATALOG.items() if i.modality == "pcl"} == {"ScanNet", "ScanRefer", "ScanQA"}


def test_files_and_lookup():
    assert scenario_for_file("VQA_SQAimage.json").name == "ScienceQA"
    assert scenario_for_file("Locating_FSC147.json").name == "Locating-FSC147"
    assert get_scenario_info("ScanQA").file == "VQA_ScanQA_multiplechoice.json"
    with pytest.raises(KeyError, match="did you mean 'ScanQA'"):
        get_scenario_info("ScanQ")


def test_chance_levels():
    assert get_scenario_info("UCMerced").chance_level() == pytest.approx(100 / 21)
    assert get_scenario_info("CelebA-Smile").chance_level() == 50.0
    hair = [{"attr": "Black_Hair"}, {"attr": "Blond_Hair"}, {"attr": "black hair"}, {"attr": "Gray_Hair"}]
    assert get_scenario_info("CelebA-Hair").chance_level(hair) == pytest.approx(100 / 3)
    # colours count once however they are spelled, as in the options of a run
    assert get_scenario_info("CelebA-Hair").chance_level([{"attr": "Black_Hair"}, {"attr": "black"}]) == 100.0
    assert get_scenario_info("CIFAR10").classes[:2] == ("airplane", "automobile")
    recs = [{"gt_choices": list("abcdef")}, {"gt_choices": ["x", "y"]}]
    assert get_scenario_info("ScanQA").chance_level(recs) == pytest.approx(100 * (1 / 6 + 1 / 2) / 2)
    assert get_scenario_info("ScanQA").chance_level() is None
    assert get_scenario_info("VOC2012").chance_level() is None


def test_docs_table_of_scenario_files_equals_the_catalog():
    """docs/benchmark.md lists every LAMM scenario's files and ground-truth fields; it must not drift."""
    from pathlib import Path

    from lamm.bench.scenarios.catalog import CATALOG

    doc = (Path(__file__).resolve().parents[2] / "docs" / "benchmark.md").read_text(encoding="utf-8")
    for name, s in CATALOG.items():
        row = (f"| `{name}` | {', '.join(f'`{f}`' for f in s.files)} | `{s.task_type}` | `{s.metric}` | "
               f"{', '.join(f'`{g}`' for g in s.gt_fields)} |")
        assert row in doc, row
