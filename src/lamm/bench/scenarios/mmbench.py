"""MMBench (multiple-choice perception and reasoning questions, 20 ability categories), scored by
``multiple_choice``; ``scenario.circular: true`` gives MMBench's CircularEval.

``MMBench`` reads one of MMBench's release TSV files under ``--root`` (``scenario.file``, default
``MMBench_DEV_EN.tsv``; the CN and CC variants read the same way): a header row, then one question per
row with the columns ``index``, ``question``, ``hint`` (may be empty or ``nan``), the options ``A`` … ``F``
(``C`` … ``F`` may be absent; an empty or ``nan`` cell is no option), ``answer`` (a letter),
``category``, ``l2-category`` (some versions), ``split``, ``source``, ``comment`` and ``image``: the
image as base64, or — in a row that shares another row's image — that row's ``index``. The TEST files
have no ``answer`` column: loading one is an error (their scores come from MMBench's evaluation server).

Records: ``id`` = the ``index``; ``query`` = the hint (when given) on its own line before the question,
then ``Options: (A) … (B) …`` (LAMM's multiple-choice style, :func:`lamm.data.records.format_options`,
which the option parsers, circular evaluation and the desiderata read); ``gt_choices`` = the non-empty
options in letter order (re-lettered A, B, ... should a letter be skipped), ``gt_choice`` = the answer's
0-based index among them; ``hint`` / ``question`` (as in the file), ``category`` / ``l2_category`` /
``split`` / ``source`` where the file has them, ``src_line`` (the TSV line) and ``image`` (the decoded file,
relative to the image folder).

MMBench's circular copies: MMBench's DEV files hold, beside each question (``index`` < 1000000), copies
of it with the options rotated (``index`` = k × 1000000 + the question's index), which MMBench's own
evaluation groups back together. By default (``scenario.params.copies: drop``) a copy of a question of the
same file is not asked: a plain run asks each question once (MMBench's vanilla accuracy), and
``scenario.circular: true`` asks every rotation itself (the same rotations). The copies are counted in the
scenario's ``layout_stats`` (``circular_copies``), and a copy whose question, hint or option set differs
from its question's is an error naming both lines. ``copies: keep`` asks every row as its own question.

Images are decoded once into a folder, by default beside the TSV (``<stem>.images/``), else
``scenario.params.image_dir`` (relative to the root, or absolute; e.g. when the TSV's folder is
read-only): one file ``<index>.<ext>`` per distinct image (``ext`` from the decoded bytes' format:
``jpg``, ``png``, ...), written atomically; rows that name another row's index use that row's file. The
folder's ``lamm_images.json`` records, per image, a SHA-256 of its base64 text and the file's size and
``mtime_ns``: a later load hashes the text (no decoding) and reuses every file whose entry still matches,
so the answer cache, which fingerprints media by path, size and mtime, stays valid. A file without a
matching entry is decoded and compared byte for byte, and rewritten only when it differs. An image that
does not decode is an error naming the TSV, its line and the row's index.

``scenario.file`` ending in ``.json`` / ``.jsonl`` is read as a LAMM-format file of such records instead
(media relative to the root), e.g. an in-context example pool.
"""

from __future__ import annotations

import base64
import binascii
import csv
import hashlib
import io
import json
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from lamm.bench.scenarios.base import SCENARIOS, MissingDataError, RecordScenario, ScenarioError, ScenarioSpec
from lamm.bench.scenarios.lamm_files import make_builder, read_benchmark_file
from lamm.config import Config, ConfigError, config_from_dict
from lamm.data.records import OPTION_LETTERS, format_options
from lamm.fileio import write_bytes_atomic, write_json_atomic

DEFAULT_FILE = "MMBench_DEV_EN.tsv"
#: MMBench numbers the circular copies of question ``i`` as ``k * COPY_STRIDE + i``
COPY_STRIDE = 1_000_000
MANIFEST = "lamm_images.json"
REQUIRED_COLUMNS = ("index", "question", "image", "A", "B")
#: image format (PIL's name) -> file extension; other formats use their name in lower case
EXTENSIONS = {"JPEG": "jpg", "MPO": "jpg", "PNG": "png", "GIF": "gif", "BMP": "bmp", "WEBP": "webp",
              "TIFF": "tif"}


class MMBenchConfig(Config):
    """``scenario.params`` of ``MMBench``: ``image_dir`` (where the decoded images go; relative to the
    root, or absolute; default ``<tsv stem>.images`` beside the TSV) and ``copies`` (``drop``: MMBench's
    circular copies of a question are not asked, ``keep``: every row is a question)."""

    image_dir: str | None = None
    copies: Literal["drop", "keep"] = "drop"


@dataclass
class MMBenchScenario(RecordScenario):
    """A :class:`RecordScenario` of MMBench questions. ``layout_stats`` (reported by the run): TSV rows,
    questions asked, circular copies not asked, distinct images; ``image_stats`` (this load only, not
    reported): images ``decoded`` and ``written`` now, ``reused`` from the image folder."""

    layout_stats: dict[str, int] = field(default_factory=dict)
    image_stats: dict[str, int] = field(default_factory=dict)


def cell(value: str | None) -> str | None:
    """A TSV cell's text, stripped; ``None`` for an empty cell or ``nan`` (how pandas writes a missing one).

    >>> cell("  red "), cell("nan"), cell(""), cell("NaN")
    ('red', None, None, None)
    """
    if value is None:
        return None
    text = value.strip()
    # the length test first: an image cell is 100s of KB, not worth lower-casing
    return None if not text or (len(text) == 3 and text.lower() == "nan") else text


def mmbench_query(question: str, hint: str | None, choices: list[str]) -> str:
    """The text asked: the hint on its own line before the question, then LAMM's options tail.

    >>> mmbench_query("What is shown?", "A photo.", ["a cat", "a dog"])
    'A photo.\\nWhat is shown? Options: (A) a cat (B) a dog'
    """
    stem = f"{hint}\n{question}" if hint else question
    return f"{stem} Options: {format_options(choices)}"


def image_extension(data: bytes) -> str:
    """The file extension of encoded image bytes (``jpg``, ``png``, ...); ``ValueError`` when PIL cannot
    identify them as an image."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as img:
            fmt = img.format or ""
            img.verify()  # header and (for PNG) checksums; pixels are decoded when the model reads it
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise ValueError(f"not an image PIL can read ({e})") from None
    if not fmt:
        raise ValueError("PIL identified no image format")
    return EXTENSIONS.get(fmt, fmt.lower())


def _raise_field_limit() -> None:
    # MMBench's base64 images are far beyond csv's default 128 KiB field limit
    limit = sys.maxsize
    while True:
        try:
            csv.field_size_limit(max(csv.field_size_limit(), limit))
            return
        except OverflowError:  # a C long narrower than sys.maxsize
            limit //= 2


class ImageStore:
    """The decoded images of one TSV in one folder, with the manifest that lets a load reuse them."""

    def __init__(self, folder: Path, tsv: Path) -> None:
        self.folder, self.tsv = folder, tsv
        self.stats = {"decoded": 0, "written": 0, "reused": 0}
        self.manifest: dict[str, dict[str, Any]] = {}
        self.dirty = False
        path = folder / MANIFEST
        if path.is_file():
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                data = None
            images = data.get("images") if isinstance(data, dict) else None
            if isinstance(images, dict):
                self.manifest = images
            else:  # an unreadable manifest only costs a byte comparison per image; save() rewrites it
                self.dirty = True
        else:
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise ScenarioError(
                    f"scenario 'MMBench': cannot create the image folder {folder} ({e}); set "
                    "scenario.params.image_dir to a writable folder"
                ) from None

    def file_for(self, index: int, b64: str, line: int) -> str:
        """The file name of row ``index``'s image (base64 ``b64``, TSV line ``line``), written if needed."""
        key = str(index)
        digest = hashlib.sha256(b64.encode("ascii", "replace")).hexdigest()
        entry = self.manifest.get(key)
        name = entry.get("file") if isinstance(entry, dict) else None
        # only a file of this row in this folder (``<index>.<ext>``), whatever the manifest says
        mine = isinstance(name, str) and re.fullmatch(rf"{index}\.[a-z0-9]+", name) is not None
        if mine and entry.get("b64_sha256") == digest:
            st = _stat(self.folder / name)
            if st is not None and [st.st_size, st.st_mtime_ns] == [entry.get("size"), entry.get("mtime_ns")]:
                self.stats["reused"] += 1
                return name
        where = f"{self.tsv}: line {line} (index {index}): field 'image'"
        try:
            data = base64.b64decode(b64)
            if not data:
                raise ValueError("it decodes to no bytes")
            ext = image_extension(data)
        except (binascii.Error, ValueError) as e:
            raise ScenarioError(
                f"{where}: does not decode as a base64 image: {e}; the file may be damaged: download it "
                "again"
            ) from None
        self.stats["decoded"] += 1
        name = f"{index}.{ext}"
        path = self.folder / name
        st = _stat(path)
        # equal bytes keep the file as it is: a rewrite would change its mtime and void cached answers
        if st is None or st.st_size != len(data) or path.read_bytes() != data:
            try:
                write_bytes_atomic(path, data)
            except OSError as e:
                raise ScenarioError(
                    f"{where}: cannot write {path} ({e}); set scenario.params.image_dir to a writable folder"
                ) from None
            self.stats["written"] += 1
            st = path.stat()
        else:
            self.stats["reused"] += 1
        self.manifest[key] = {"file": name, "b64_sha256": digest, "size": st.st_size,
                              "mtime_ns": st.st_mtime_ns}
        self.dirty = True
        return name

    def save(self) -> None:
        """Write the manifest when this load changed it."""
        if self.dirty:
            write_json_atomic(self.folder / MANIFEST, {"format": 1, "images": self.manifest})
            self.dirty = False


def _stat(path: Path) -> os.stat_result | None:
    try:
        return path.stat()
    except OSError:
        return None


@dataclass
class _Row:
    index: int
    line: int
    record: dict[str, Any]
    image: str | None  # base64, or None when ``ref`` names the row holding the image
    ref: int | None


def _parse_row(values: dict[str, str | None], line: int, path: Path, letters: list[str]) -> _Row:
    """One TSV row as a record (without its image file yet); errors name the file, line and field."""
    raw_index = cell(values["index"])
    where = f"{path}: line {line}"
    if raw_index is None or not re.fullmatch(r"\d+", raw_index):
        raise ScenarioError(f"{where}: field 'index': expected a non-negative integer, "
                            f"got {values['index']!r}")
    index = int(raw_index)
    where = f"{where} (index {index})"
    question = cell(values["question"])
    if question is None:
        raise ScenarioError(f"{where}: field 'question': empty")
    hint = cell(values.get("hint"))
    given = [(letter, cell(values[letter])) for letter in letters]
    present = [(letter, text) for letter, text in given if text is not None]
    if len(present) < 2:
        raise ScenarioError(f"{where}: fields {'/'.join(letters)}: {len(present)} non-empty option(s); a "
                            "multiple-choice question needs at least 2")
    answer = cell(values["answer"])
    if answer is None:
        raise ScenarioError(f"{where}: field 'answer': empty; every question of a DEV file needs its answer "
                            "letter")
    letter = answer.upper()
    if letter not in letters:
        raise ScenarioError(f"{where}: field 'answer': {answer!r} is not an option letter "
                            f"({', '.join(letters)})")
    position = next((k for k, (lab, _) in enumerate(present) if lab == letter), None)
    if position is None:
        raise ScenarioError(f"{where}: field 'answer': {letter!r} names option {letter}, which is empty on "
                            "this line")
    choices = [text for _, text in present]
    record: dict[str, Any] = {
        "id": str(index),
        "query": mmbench_query(question, hint, choices),
        "gt_choices": choices,
        "gt_choice": position,
        "question": question,
        "hint": hint,
    }
    for column, key in (("category", "category"), ("l2-category", "l2_category"), ("split", "split"),
                        ("source", "source")):
        text = cell(values.get(column))
        if text is not None:
            record[key] = text
    record["src_line"] = line
    image = cell(values["image"])
    if image is None:
        raise ScenarioError(f"{where}: field 'image': empty; every question needs its image")
    if re.fullmatch(r"\d+", image) and len(image) <= 64:  # another row's index, as MMBench writes it
        return _Row(index, line, record, None, int(image))
    return _Row(index, line, record, image, None)


def _is_copy_of(copy: dict[str, Any], original: dict[str, Any]) -> bool:
    """Whether ``copy`` asks ``original`` with its options in another order."""
    return (copy["question"] == original["question"] and copy["hint"] == original["hint"]
            and sorted(copy["gt_choices"]) == sorted(original["gt_choices"])
            and copy["gt_choices"][copy["gt_choice"]] == original["gt_choices"][original["gt_choice"]])


def read_mmbench_tsv(path: Path, image_dir: Path, copies: str = "drop"
                     ) -> tuple[list[dict[str, Any]], dict[str, int], dict[str, int]]:
    """(records, layout stats, image stats) of an MMBench TSV; images are decoded into ``image_dir``."""
    _raise_field_limit()
    rows: list[_Row] = []
    by_index: dict[int, _Row] = {}
    files: dict[int, str] = {}
    try:
        f = open(path, encoding="utf-8-sig", newline="")  # noqa: SIM115 - closed by the `with f` below
    except OSError as e:
        raise ScenarioError(f"scenario 'MMBench': cannot read {path}: {e}") from None
    with f:
        reader = csv.reader(f, delimiter="\t")
        try:
            header = next(reader, None)
        except (csv.Error, UnicodeDecodeError) as e:
            raise ScenarioError(f"{path}: line 1: not a readable TSV header ({e})") from None
        if not header:
            raise ScenarioError(f"{path}: empty file; expected MMBench's TSV with a header row")
        header = [h.strip() for h in header]
        missing = [c for c in REQUIRED_COLUMNS if c not in header]
        if missing:
            raise ScenarioError(f"{path}: line 1: no column {', '.join(repr(c) for c in missing)} in the "
                                f"header ({', '.join(header)}); is this an MMBench TSV?")
        if "answer" not in header:
            raise ScenarioError(
                f"{path}: no 'answer' column: this is a TEST file, whose answers MMBench keeps; its scores "
                "come from MMBench's evaluation server. Score a DEV file (e.g. MMBench_DEV_EN.tsv) here")
        extra = [h for h in header if re.fullmatch(r"[G-Z]", h)]
        if extra:
            raise ScenarioError(f"{path}: line 1: option column(s) {', '.join(extra)}: at most 6 options "
                                "(A-F) are read")
        letters = [c for c in OPTION_LETTERS if c in header]
        store = ImageStore(image_dir, path)
        line = 1
        try:
            for values in reader:
                start, line = line + 1, reader.line_num
                if not any(v.strip() for v in values):
                    continue  # a blank line (e.g. a trailing newline) holds no question
                if len(values) != len(header):
                    raise ScenarioError(f"{path}: line {start}: {len(values)} fields, the header has "
                                        f"{len(header)}; the file is damaged (download it again)")
                row = _parse_row(dict(zip(header, values)), start, path, letters)
                if row.index in by_index:
                    raise ScenarioError(f"{path}: line {start}: field 'index': {row.index} is also the index "
                                        f"on line {by_index[row.index].line}; indices must be unique")
                by_index[row.index] = row
                if row.image is not None:
                    files[row.index] = store.file_for(row.index, row.image, start)
                    row.image = None  # the base64 text is not kept: it may be 100s of MB in all
                rows.append(row)
        except (csv.Error, UnicodeDecodeError) as e:
            raise ScenarioError(f"{path}: line {line + 1}: not readable as TSV ({e})") from None
        finally:
            store.save()
    records = []
    n_copies = 0
    for row in rows:
        if row.ref is not None:
            if row.ref not in files:
                what = "is not an index of this file" if row.ref not in by_index else "has no image itself"
                raise ScenarioError(f"{path}: line {row.line} (index {row.index}): field 'image': names row "
                                    f"{row.ref} for its image, which {what}")
            files[row.index] = files[row.ref]
        row.record["image"] = files[row.index]
        original = by_index.get(row.index % COPY_STRIDE) if row.index >= COPY_STRIDE else None
        if copies == "drop" and original is not None:
            if not _is_copy_of(row.record, original.record):
                raise ScenarioError(
                    f"{path}: line {row.line} (index {row.index}): index {row.index} marks a circular copy "
                    f"of index {original.index} (line {original.line}), but its question, hint or options "
                    "differ; set scenario.params.copies: keep to ask every row as its own question")
            n_copies += 1
            continue
        records.append(row.record)
    if not records:
        raise ScenarioError(f"{path}: no question (only a header row)")
    layout = {"rows": len(rows), "questions": len(records), "circular_copies": n_copies,
              "images": len(set(files.values()))}
    return records, layout, dict(store.stats)


def load_mmbench(root: Path | None, *, split: str = "test", file: str | None = None,
                 metric: str | None = None, task_type: str | None = None,
                 params: dict[str, Any] | None = None) -> MMBenchScenario:
    """``MMBench`` over a release TSV, or a LAMM-format JSON/JSONL file of such records (module docstring)."""
    if root is None:
        raise ScenarioError("scenario 'MMBench': pass --root, the folder that holds MMBench's TSV files")
    try:
        cfg = config_from_dict(MMBenchConfig, dict(params or {}), "scenario 'MMBench': scenario.params")
    except ConfigError as e:
        raise ScenarioError(str(e)) from None
    name = file or DEFAULT_FILE
    path = Path(name) if Path(name).is_absolute() else root / name
    if not path.is_file():
        raise MissingDataError(f"scenario 'MMBench': file {path} not found; pass --root with the folder of "
                               "MMBench's TSV files (MMBench_DEV_EN.tsv, ...) or set scenario.file")
    layout: dict[str, int] = {}
    images: dict[str, int] = {}
    if path.suffix.lower() in (".json", ".jsonl"):  # e.g. an in-context example pool in LAMM's format
        records, media_root = read_benchmark_file(path), root
    else:
        if cfg.image_dir is None:
            media_root = path.parent / f"{path.stem}.images"
        else:
            media_root = Path(cfg.image_dir) if Path(cfg.image_dir).is_absolute() else root / cfg.image_dir
        records, layout, images = read_mmbench_tsv(path, media_root, cfg.copies)
    sizes = [len(r["gt_choices"]) for r in records
             if isinstance(r.get("gt_choices"), list) and r["gt_choices"]]
    family = metric or "multiple_choice"
    tt = task_type or "VQA"
    return MMBenchScenario(
        name="MMBench", metric=family, task_type=tt, modality="image", source=str(path), root=media_root,
        records=records, build=make_builder(family, tt, media_root, str(path), None),
        chance=100.0 * sum(1.0 / s for s in sizes) / len(sizes) if sizes else None,
        layout_stats=layout, image_stats=images,
    )


SCENARIOS.add("MMBench", ScenarioSpec(
    name="MMBench", metric="multiple_choice", task_type="VQA", modality="image", load=load_mmbench,
    splits=("test",), description="MMBench multiple choice from its release TSV (scenario.file, default "
    "MMBench_DEV_EN.tsv; base64 images decoded once beside it)", suite="mmbench"))
