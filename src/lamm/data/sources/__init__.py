"""Source readers: datasets' own annotation files → plain dict source records (schema in
:mod:`lamm.data.sources.base`). Each reader is registered in :data:`SOURCES` under the name a build
config's ``type`` uses; :func:`load_source` calls one by name."""

from __future__ import annotations

from typing import Any

from . import coco, counting, image_folder, objects3d, ocr, scanqa, scanrefer, scenes3d, synthetic, vqa  # noqa: F401
from .base import SOURCES, SourceError, register_source


def load_source(kind: str, **args: Any) -> list[dict[str, Any]]:
    """Run the reader registered as ``kind`` with ``args``; unknown arguments are a clear error."""
    import inspect

    fn = SOURCES.get(kind)
    params = inspect.signature(fn).parameters
    unknown = sorted(set(args) - set(params))
    if unknown:
        raise SourceError(f"source type {kind!r}: unknown argument(s) {unknown}; known: {', '.join(params)}")
    return fn(**args)


__all__ = ["SOURCES", "SourceError", "load_source", "register_source"]
