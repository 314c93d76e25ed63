"""What a previous build left in its ``out_dir``: the split files it wrote, so a rebuild can remove the
ones it no longer writes (a dropped ``val`` split must not linger beside the new ``train``).

The previous build is known by its ``build_report.json``: its ``files`` ({split: file name}), or, for
reports older than that field, its validated split names with the suffix of its ``build_config.yaml``.
Only plain split-file names inside ``out_dir`` are ever removed; every other file is left alone.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from lamm.config import ConfigError, load_yaml

_OWN_FILES = {"stats.json", "build_report.json", "dropped.jsonl"}  # rewritten by every build, never stale
_SPLIT_FILE = re.compile(r"[A-Za-z0-9_.\-]+\.jsonl?")


def previous_split_files(out: Path) -> set[str]:
    """The split files the last build into ``out`` wrote, by its ``build_report.json`` (``files``; for
    reports older than that field, its validated split names with the suffix of its config)."""
    rp = out / "build_report.json"
    if not rp.is_file():
        return set()
    try:
        prev = json.loads(rp.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return set()  # not ours to interpret: leave every file alone
    if not isinstance(prev, dict):
        return set()
    files = prev.get("files")
    if isinstance(files, dict):
        names = files.values()
    elif isinstance(prev.get("validation"), dict):
        suffix = ".json"
        try:
            old_cfg = load_yaml(out / "build_config.yaml")
            if isinstance(old_cfg, dict) and old_cfg.get("output_format") == "jsonl":
                suffix = ".jsonl"
        except (OSError, ValueError, ConfigError):
            pass  # no readable old config: JSON, the default
        names = [f"{s}{suffix}" for s in prev["validation"]]
    else:
        return set()
    # only plain split-file names inside out_dir, never a path that leads elsewhere
    return {n for n in names if isinstance(n, str) and _SPLIT_FILE.fullmatch(n)}


def remove_stale_splits(out: Path, previous: set[str], written: dict[str, str]) -> list[str]:
    """Delete the previous build's split files that this build did not write; return their names."""
    removed = []
    for name in sorted(previous - set(written.values()) - _OWN_FILES):
        p = out / name
        if p.is_file() and not p.is_symlink():
            p.unlink()
            removed.append(name)
    return removed
