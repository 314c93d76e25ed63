"""MME (yes/no perception and cognition questions, two per image, 14 subtasks), scored by ``mme``.

``MME`` reads MME's release layout under ``--root`` (the release folder, e.g.
``MME_Benchmark_release_version``, or a folder holding just that one): one folder per subtask, in either
of the two layouts the release uses —

* ``<subtask>/images/<name>.jpg`` with ``<subtask>/questions_answers_YN/<name>.txt`` (artwork, celebrity,
  landmark, posters, scene);
* ``<subtask>/<name>.jpg`` (or ``.png``) beside ``<subtask>/<name>.txt`` (the others).

Each text file holds one question per line, ``question<TAB>answer``, the answer ``Yes`` or ``No`` (any
case; blank lines are ignored, a UTF-8 byte-order mark and ``\\r\\n`` line ends are accepted). A line
without a tab or with another answer, a text file without its image, or a subtask folder with no question
is an error naming the file and line; an image without a text file asks nothing and is counted in the
scenario's ``layout_stats``. Record ``k`` (0-based) of image ``<name>.jpg`` of subtask ``s`` gets the id
``s/<name>.jpg:k``, ``image`` (relative to the release folder), ``query``, ``gt_answer`` (``yes`` /
``no``) and ``category`` (the subtask folder's name, e.g. ``OCR``).

``scenario.params``: ``subtasks`` (a list of folder names; default all). ``scenario.file``: a LAMM-format
JSON/JSONL file of such records instead (relative to the root; e.g. an in-context example pool); the
``generic`` scenario with ``metric: mme`` reads the same files. Every sample offers the options yes / no
(for ``ppl``); ``chance`` is the expected ``score`` of a fair coin (:func:`mme_chance`: 75 per subtask of
two-question images).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lamm.bench.scenarios.base import SCENARIOS, MissingDataError, RecordScenario, ScenarioError, ScenarioSpec
from lamm.bench.scenarios.lamm_files import make_builder, read_benchmark_file
from lamm.config import Config, ConfigError, config_from_dict
from lamm.fileio import read_text_utf8

OPTIONS = ["yes", "no"]
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".JPG", ".JPEG", ".PNG")
#: the folder names of the two-folder layout
IMAGES_DIR, QA_DIR = "images", "questions_answers_YN"


class MMEConfig(Config):
    """``scenario.params`` of ``MME``: ``subtasks`` to read (folder names; ``None``: every subtask)."""

    subtasks: list[str] | None = None


@dataclass
class MMEScenario(RecordScenario):
    """A :class:`RecordScenario` of MME records; ``layout_stats``: subtasks read, text files, images
    without a text file (asked nothing)."""

    layout_stats: dict[str, int] = field(default_factory=dict)


def mme_chance(records: list[dict[str, Any]]) -> float | None:
    """Expected ``score`` (sum over categories of acc + acc+) of answering yes or no by a fair coin:
    per category 50 + 100 × the mean over its images of 0.5 ** (questions of the image).

    >>> mme_chance([{"category": "OCR", "image": "a.jpg"}, {"category": "OCR", "image": "a.jpg"}])
    75.0
    """
    imgs: dict[str, dict[str, int]] = {}
    for r in records:
        if isinstance(r, dict) and isinstance(r.get("category"), str) and isinstance(r.get("image"), str):
            per = imgs.setdefault(r["category"], {})
            per[r["image"]] = per.get(r["image"], 0) + 1
    if not imgs:
        return None
    return sum(50.0 + 100.0 * sum(0.5**q for q in per.values()) / len(per) for per in imgs.values())


def _is_subtask(folder: Path) -> bool:
    return (folder / QA_DIR).is_dir() or any(folder.glob("*.txt"))


def release_folder(root: Path) -> Path:
    """The MME release folder: ``root`` when it holds subtask folders, else its one child that does."""
    if any(_is_subtask(d) for d in root.iterdir() if d.is_dir()):
        return root
    inner = [
        d for d in root.iterdir() if d.is_dir() and any(_is_subtask(s) for s in d.iterdir() if s.is_dir())
    ]
    if len(inner) == 1:
        return inner[0]
    raise MissingDataError(
        f"scenario 'MME': no MME subtask folder under {root} (a folder with "
        f"{QA_DIR}/ or with .txt question files beside its images); pass --root with MME's "
        "release folder (MME_Benchmark_release_version)"
    )


def _image_for(txt: Path, image_dir: Path) -> Path:
    for suffix in IMAGE_SUFFIXES:
        p = image_dir / (txt.stem + suffix)
        if p.is_file():
            return p
    raise ScenarioError(
        f"{txt}: no image {txt.stem}.jpg / .png in {image_dir}; the questions of this file "
        "cannot be asked without it (restore the image or remove the text file)"
    )


def parse_question_line(line: str, where: str) -> tuple[str, str]:
    """``(question, "yes" | "no")`` from one ``question<TAB>answer`` line; ``ScenarioError`` naming
    ``where`` (file and line) otherwise.

    >>> parse_question_line("Is there a dog? Please answer yes or no.\\tYes ", "f.txt: line 1")
    ('Is there a dog? Please answer yes or no.', 'yes')
    """
    if "\t" not in line:
        raise ScenarioError(f"{where}: expected 'question<TAB>answer', found no tab in {line[:80]!r}")
    question, answer = (part.strip() for part in line.rsplit("\t", 1))
    if not question:
        raise ScenarioError(f"{where}: the question before the tab is empty")
    if answer.lower() not in ("yes", "no"):
        raise ScenarioError(f"{where}: answer {answer[:40]!r}: expected Yes or No")
    return question, answer.lower()


def read_subtask(folder: Path, release: Path, stats: dict[str, int]) -> list[dict[str, Any]]:
    """The records of one subtask folder (either layout), in file-name order."""
    two_folders = (folder / QA_DIR).is_dir()
    text_dir, image_dir = (folder / QA_DIR, folder / IMAGES_DIR) if two_folders else (folder, folder)
    texts = sorted(text_dir.glob("*.txt"))
    records: list[dict[str, Any]] = []
    asked = set()
    for txt in texts:
        image = _image_for(txt, image_dir)
        asked.add(image.name)
        rel_image = image.relative_to(release).as_posix()
        k = 0
        for n, line in enumerate(read_text_utf8(txt).split("\n"), start=1):
            line = line.rstrip("\r")
            if not line.strip():
                continue
            question, answer = parse_question_line(line, f"{txt}: line {n}")
            records.append(
                {
                    "id": f"{folder.name}/{image.name}:{k}",
                    "image": rel_image,
                    "query": question,
                    "gt_answer": answer,
                    "category": folder.name,
                    "src_file": txt.relative_to(release).as_posix(),
                    "src_line": n,
                }
            )
            k += 1
    if not records:
        raise ScenarioError(
            f"{folder}: subtask {folder.name!r} has no question (no 'question<TAB>answer' line in "
            f"{text_dir}/*.txt); remove the folder or pick subtasks with scenario.params.subtasks"
        )
    stats["text_files"] = stats.get("text_files", 0) + len(texts)
    stats["images_without_questions"] = stats.get("images_without_questions", 0) + sum(
        1 for p in image_dir.iterdir() if p.suffix in IMAGE_SUFFIXES and p.name not in asked
    )
    return records


def read_mme_release(
    root: Path, subtasks: list[str] | None = None
) -> tuple[Path, list[dict[str, Any]], dict[str, int]]:
    """(release folder, records of every chosen subtask in folder-name order, layout stats)."""
    release = release_folder(root)
    folders = {d.name: d for d in sorted(release.iterdir()) if d.is_dir() and _is_subtask(d)}
    if subtasks is not None:
        unknown = [s for s in subtasks if s not in folders]
        if unknown:
            import difflib

            close = {u: difflib.get_close_matches(u, folders, 2) for u in unknown}
            hints = [f"{u!r} (did you mean {', '.join(repr(c) for c in close[u])}?)" if close[u] else repr(u)
                     for u in unknown]
            raise ScenarioError(
                f"scenario 'MME': scenario.params.subtasks: no subtask folder {', '.join(hints)} "
                f"in {release}; found: {', '.join(folders)}"
            )
        folders = {s: folders[s] for s in subtasks}
    stats: dict[str, int] = {"subtasks": len(folders)}
    records = [r for folder in folders.values() for r in read_subtask(folder, release, stats)]
    return release, records, stats


def load_mme(
    root: Path | None,
    *,
    split: str = "test",
    file: str | None = None,
    metric: str | None = None,
    task_type: str | None = None,
    params: dict[str, Any] | None = None,
) -> MMEScenario:
    """``MME`` over its release layout, or over a LAMM-format file of MME records (module docstring)."""
    if root is None:
        raise ScenarioError(
            "scenario 'MME': pass --root, MME's release folder (MME_Benchmark_release_version)"
        )
    try:
        cfg = config_from_dict(MMEConfig, dict(params or {}), "scenario 'MME': scenario.params")
    except ConfigError as e:
        raise ScenarioError(str(e)) from None
    stats: dict[str, int] = {}
    if file is not None:
        path = Path(file) if Path(file).is_absolute() else root / file
        if not path.is_file():
            raise MissingDataError(f"scenario 'MME': file {path} not found")
        source, media_root, records = str(path), root, read_benchmark_file(path)
    else:
        if not root.is_dir():
            raise MissingDataError(
                f"scenario 'MME': {root} is not a folder; pass --root with MME's release folder"
            )
        media_root, records, stats = read_mme_release(root, cfg.subtasks)
        source = str(media_root)
    tt = task_type or "VQA"
    family = metric or "mme"
    return MMEScenario(
        name="MME",
        metric=family,
        task_type=tt,
        modality="image",
        source=source,
        root=media_root,
        records=records,
        build=make_builder(family, tt, media_root, source, list(OPTIONS)),
        options=list(OPTIONS),
        chance=mme_chance(records),
        layout_stats=stats,
    )


SCENARIOS.add(
    "MME",
    ScenarioSpec(
        name="MME",
        metric="mme",
        task_type="VQA",
        modality="image",
        load=load_mme,
        splits=("test",),
        description="MME yes/no subtasks from its release folder (<subtask>/images + "
        "questions_answers_YN, or images beside .txt)",
        suite="mme",
    ),
)
