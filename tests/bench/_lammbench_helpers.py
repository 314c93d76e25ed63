"""Test helpers for tests/bench: tiny LAMM-Benchmark and synthetic-layout files made in code, and a
slow, call-counting engine for the kill/resume test.

Imported by path from the test modules (``sys.path`` gets this folder), and by ``_slow_run.py``.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from lamm.infer.backends.dummy import DummyEngine

JOINTS = [[10.0 + j, 12.0 + j, 1] for j in range(14)]


def _image(path: Path, seed: int, size: int = 16) -> None:
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(path)


def _cloud(path: Path, seed: int, n: int = 64) -> None:
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    pts = np.concatenate([rng.uniform(-1, 1, (n, 3)), rng.uniform(0, 1, (n, 3))], axis=1).astype(np.float32)
    np.save(path, pts)


def _records(kind: str, i: int) -> dict[str, Any]:
    """Ground-truth fields of record ``i`` of each LAMM file kind."""
    labels = ["cat", "dog", "ship", "truck"]
    return {
        "cls": {"query": "What is the object in the image?", "label": labels[i % 4]},
        "ucm": {"query": "What is the land use in the image?",  # UCMerced: one of its 21 classes
                "label": ["forest", "dense residential", "harbor", "river"][i % 4]},
        "det": {"query": "Identify all the objects in the image and give their bounding boxes.",
                "object": [{"label": labels[i % 4], "bbox": [0.1, 0.1, 0.6, 0.7]}]},
        "mc": {"query": f"Question {i}? Options: (A) red (B) blue (C) green", "gt_choice": i % 3,
               "gt_choices": ["red", "blue", "green"]},
        "cap": {"query": "Generate a caption for this image.", "sentences": ["A cat on a mat.", "A small cat sits."]},
        "count": {"query": "How many sea shells are there in this image?", "num": 3 + i},
        "ocr": {"query": "Please recognize all the words in the image.", "word_list": ["PUFF", "STUFF"]},
        "smile": {"query": "Is the person in the image smiling?", "attr": "1" if i % 2 else "-1"},
        "hair": {"query": "What is the hair colour of the person?", "attr": ["Black_Hair", "Blond_Hair"][i % 2]},
        "lsp": {"query": "Tell me the exact location of the {} key point of the person.", "gt_joints": JOINTS},
        "loc_voc": {"query": "Point out the location of every object in the image.",
                    "object": [{"label": "horse", "bbox": [0.1, 0.2, 0.8, 0.9]}]},
        "loc_lsp": {"query": "Point out the location of the person.", "gt_joints": JOINTS},
        "loc_fsc": {"query": "Point out the location of a sea shell.", "points": [[0.2, 0.2, 0.5, 0.5]]},
        "det3d": {"query": "Identify all the objects in the point cloud and give their 3D bounding boxes.",
                  "object": [{"label": "chair", "bbox": [0.1, 0.2, 0.3, 0.5, 0.5, 0.8]}]},
        "vg": {"query": "Find the brown chair closest to the window.", "object": [0.1, 0.2, 0.3, 0.5, 0.5, 0.8]},
        "mc3d": {"query": "What is on the table? Options: (A) a lamp (B) a cup (C) books (D) a plant (E) x (F) y",
                 "gt_choice": i % 6, "gt_choices": ["a lamp", "a cup", "books", "a plant", "x", "y"]},
    }[kind]


#: scenario → (file name, record kind, modality, recipe name)
LAMM_FILES = {
    "CIFAR10": ("Classification_CIFAR10.json", "cls", "image", "cifar10"),
    "VOC2012": ("Detection_VOC2012.json", "det", "image", "voc2012"),
    "ScienceQA": ("VQA_ScienceQA.json", "mc", "image", "scienceqa"),
    "AI2D": ("VQA_AI2D.json", "mc", "image", "ai2d"),
    "Flickr30k": ("Caption_flickr30k.json", "cap", "image", "flickr30k"),
    "UCMerced": ("Fine-grained_Classification_UCMerced.json", "ucm", "image", "ucmerced"),
    "FSC147": ("Counting_FSC147.json", "count", "image", "fsc147"),
    "SVT": ("OCR_SVT.json", "ocr", "image", "svt"),
    "CelebA-Smile": ("Facial_Classification_CelebA(Smile).json", "smile", "image", "celeba_smile"),
    "CelebA-Hair": ("Facial_Classification_CelebA(Hair).json", "hair", "image", "celeba_hair"),
    "LSP": ("Keypoints_Detection_LSP.json", "lsp", "image", "lsp"),
    "Locating-VOC2012": ("Locating_VOC2012.json", "loc_voc", "image", "locating_voc2012"),
    "Locating-LSP": ("Locating_LSP.json", "loc_lsp", "image", "locating_lsp"),
    "Locating-FSC147": ("Locating_FSC147.json", "loc_fsc", "image", "locating_fsc147"),
    "ScanNet": ("Detection_ScanNet.json", "det3d", "pcl", "scannet"),
    "ScanRefer": ("VG_ScanRefer.json", "vg", "pcl", "scanrefer"),
    "ScanQA": ("VQA_ScanQA_multiplechoice.json", "mc3d", "pcl", "scanqa"),
}


def make_lamm_benchmark(root: Path, n: int = 3, scenarios: list[str] | None = None) -> Path:
    """Write LAMM-Benchmark files (``n`` records each) with tiny media under ``root``; returns ``root``."""
    for name in scenarios or list(LAMM_FILES):
        fname, kind, modality, _ = LAMM_FILES[name]
        recs = []
        for i in range(n):
            rel = f"{kind}_media/{i}." + ("png" if modality == "image" else "npy")
            (_image if modality == "image" else _cloud)(root / rel, seed=hash((kind, i)) % 2**31)
            recs.append({"id": f"{kind}_{i}", modality: rel, **_records(kind, i)})
        (root / fname).write_text(json.dumps(recs, indent=1), encoding="utf-8")
    return root


def make_release_pool(tmp_path: Path, pool_where: str) -> tuple[Path, dict[str, list[dict[str, Any]]]]:
    """ROOT/2D_Benchmark/meta_file/Classification_CIFAR10.json plus a pool file at ``pool_where`` (relative to
    ROOT), all with media paths relative to ROOT/2D_Benchmark, as in LAMM's release layout."""
    root = tmp_path / "LAMM"
    bench = root / "2D_Benchmark"
    recs = {}
    for name, prefix in (("2D_Benchmark/meta_file/Classification_CIFAR10.json", "t"), (pool_where, "p")):
        rows = []
        for i in range(3):
            rel = f"cifar10_images/{prefix}{i}.png"
            (bench / rel).parent.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (8, 8), (40 * i, 0, 0)).save(bench / rel)
            rows.append({"id": f"{prefix}{i}", "image": rel, "query": "What is it?", "label": "cat"})
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(json.dumps(rows), encoding="utf-8")
        recs[name] = rows
    return root, recs


#: synthetic scenario → (file, record kind, modality)
SYNTH_FILES = {
    "Synth-Classification": ("Classification_Synth.json", "cls", "image"),
    "Synth-VQA": ("VQA_Synth.json", "mc", "image"),
    "Synth3D-Grounding": ("VG_Synth.json", "vg", "pcl"),
}


def make_synth_layout(root: Path, n_train: int = 6, n_test: int = 4) -> Path:
    """A few files in the ``lamm data synth`` layout: ``root/benchmark/{train,test}/<file>``."""
    for fname, kind, modality in SYNTH_FILES.values():
        for split, n, base in (("train", n_train, 1), ("test", n_test, 500001)):
            recs = []
            for i in range(n):
                ext = "png" if modality == "image" else "npy"
                rel = f"media/{split}/{kind}_{i}.{ext}"
                (_image if modality == "image" else _cloud)(root / rel, seed=base + i + hash(kind) % 1000)
                recs.append({"id": f"{base + i}", modality: rel, **_records(kind, i)})
            path = root / "benchmark" / split / fname
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(recs), encoding="utf-8")
    return root


class CountingEngine(DummyEngine):
    """The dummy engine that logs each finished generation (one line per request) to ``log_path``,
    sleeps ``delay`` seconds per request, and blocks forever once ``block_after`` requests are done
    (after touching ``ready_path``), so a test can SIGKILL it at a known point."""

    def __init__(self, log_path: str, delay: float = 0.0, block_after: int | None = None,
                 ready_path: str | None = None) -> None:
        super().__init__("echo")
        self.spec = "dummy"
        self.log_path, self.delay, self.block_after, self.ready_path = log_path, delay, block_after, ready_path
        self.done = 0

    def generate(self, requests, progress=None):
        out = []
        for req in requests:
            if self.block_after is not None and self.done >= self.block_after:
                if self.ready_path:
                    Path(self.ready_path).touch()
                while True:  # wait to be killed
                    time.sleep(0.05)
            time.sleep(self.delay)
            text = super().generate([req])[0]
            with open(self.log_path, "a", encoding="utf-8") as fh:
                fh.write(f"{req.conversation.id}\n")
                fh.flush()
                os.fsync(fh.fileno())
            self.done += 1
            out.append(text)
            if progress:
                progress(1)
        return out
