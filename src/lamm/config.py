"""Typed configs: pydantic models serialised as YAML, with dotted command-line overrides.

Every config class derives from :class:`Config`, which forbids unknown keys. Loading a YAML file and
applying overrides such as ``train.lr=1e-4`` either yields a fully validated object or raises a
:class:`ConfigError` that names the file and the dotted key at fault.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from lamm.fileio import write_text_atomic

C = TypeVar("C", bound="Config")


class ConfigError(ValueError):
    """A config could not be loaded: the message names the file and the key, and what was expected."""


class Config(BaseModel):
    """Base of all typed configs: unknown keys are errors, assignments are validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, protected_namespaces=())

    def to_yaml(self) -> str:
        """The resolved config as YAML (every field, defaults included)."""
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False, allow_unicode=True)

    def dump(self, path: str | os.PathLike) -> None:
        """Write the resolved config to ``path`` atomically (saved beside every artifact)."""
        write_text_atomic(path, self.to_yaml())


def parse_override(text: str) -> tuple[list[str], Any]:
    """Split ``a.b.c=value`` into (["a", "b", "c"], value); the value is parsed as YAML (1e-4 → float).

    >>> parse_override("train.lr=1e-4")
    (['train', 'lr'], 0.0001)
    >>> parse_override("data.files=[a.json, b.json]")
    (['data', 'files'], ['a.json', 'b.json'])
    """
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like key.subkey=value")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise ConfigError(f"override {text!r} has an empty key")
    value = yaml.safe_load(raw) if raw.strip() else ""
    # YAML reads "1e-4" as a string (no dot in the mantissa); a researcher means a float.
    if isinstance(value, str):
        try:
            value = float(value) if any(c in value.lower() for c in "e.") and value.strip() else value
        except ValueError:
            pass
    return key.split("."), value


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Return a copy of ``data`` with each dotted override applied (intermediate dicts are created).

    A whole-number part indexes a list that is already there (``data.train.0.weight=2``; an index past
    its end is an error naming the list's length) — lists are never grown by an override.

    >>> apply_overrides({"data": {"train": [{"file": "a.json"}]}}, ["data.train.0.weight=2"])
    {'data': {'train': [{'file': 'a.json', 'weight': 2}]}}
    """
    out = _deepcopy(data)
    for text in overrides:
        path, value = parse_override(text)
        node: Any = out
        for depth, part in enumerate(path):
            last = depth == len(path) - 1
            where = ".".join(path[:depth]) or "the top level"
            if isinstance(node, list):
                if not part.isdigit():
                    raise ConfigError(f"override {text!r}: {where} is a list; index it with a number "
                                      f"(0–{len(node) - 1}), not {part!r}")
                i = int(part)
                if i >= len(node):
                    raise ConfigError(f"override {text!r}: {where} has {len(node)} items; index {i} is past "
                                      "its end (overrides change items, they do not add them)")
                if last:
                    node[i] = value
                else:
                    node = node[i]
                continue
            if not isinstance(node, dict):
                raise ConfigError(f"override {text!r}: {where} is a value ({node!r}), not a section or a list")
            if last:
                node[part] = value
                break
            nxt = node.get(part)
            if nxt is None:
                nxt = node[part] = {}
            node = nxt
    return out


def _deepcopy(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _deepcopy(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_deepcopy(v) for v in obj]
    return obj


def _format_validation_error(err: ValidationError, source: str) -> str:
    lines = [f"{source}: invalid config"]
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"]) or "<root>"
        if e["type"] == "extra_forbidden":
            lines.append(f"  {key}: unknown key (remove it or check its spelling)")
        else:
            got = e.get("input")
            got_s = "" if isinstance(got, dict) else f" (got {got!r})"
            lines.append(f"  {key}: {e['msg']}{got_s}")
    return "\n".join(lines)


def config_from_dict(cls: type[C], data: dict[str, Any], source: str = "<dict>") -> C:
    """Validate ``data`` against ``cls``; errors name ``source`` and every bad key."""
    try:
        return cls.model_validate(data)
    except ValidationError as e:
        raise ConfigError(_format_validation_error(e, source)) from None


def load_yaml(path: str | os.PathLike) -> dict[str, Any]:
    """Read a YAML mapping; an empty file is ``{}``; anything but a mapping is an error."""
    p = Path(path)
    if not p.exists():
        raise ConfigError(f"{p}: config file not found")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise ConfigError(f"{p}: not valid YAML: {e}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def load_config(cls: type[C], path: str | os.PathLike | None, overrides: list[str] | None = None) -> C:
    """Load ``cls`` from a YAML file (or defaults when ``path`` is None) plus dotted overrides."""
    data = load_yaml(path) if path is not None else {}
    source = str(path) if path is not None else "<defaults>"
    if overrides:
        data = apply_overrides(data, overrides)
        source += " + overrides " + " ".join(overrides)
    return config_from_dict(cls, data, source)
