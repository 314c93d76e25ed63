"""Length-grouped batching with an "auto" batch size that halves on out-of-memory.

Backends sort requests by prompt length so a batch pads little (padding is wasted compute), run the
batches through a function, and put the results back in request order. With ``batch_size="auto"`` the
size starts at :data:`AUTO_START` and halves each time a batch runs out of device memory; the size that
worked is kept for the next call, so the probing cost is paid once per engine.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal, TypeVar

T = TypeVar("T")
R = TypeVar("R")

BatchSize = int | Literal["auto"]
AUTO_START = 64


def settings_key(req: Any, seed: bool = True) -> tuple:
    """Generation requests with equal keys (``GenerationSettings``) can share one batch.

    ``seed=False`` leaves the seed out, for backends that seed every row on its own."""
    s = req.settings
    key = (s.max_new_tokens, s.greedy, s.temperature, s.top_p, tuple(s.stop))
    return key + (s.seed,) if seed else key


def is_oom(exc: BaseException) -> bool:
    """True for a device out-of-memory error (CUDA, MPS, or a CPU allocator failure)."""
    try:
        import torch

        if isinstance(exc, torch.OutOfMemoryError):
            return True
    except (ImportError, AttributeError):
        pass
    if isinstance(exc, MemoryError):
        return True
    msg = str(exc).lower()
    return isinstance(exc, RuntimeError) and ("out of memory" in msg or "can't allocate memory" in msg)


def _free_device_memory() -> None:
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:
        pass


def length_groups(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Indices grouped into batches of at most ``batch_size``, longest first.

    Longest-first makes the first batch the most memory-hungry one, so an OOM shows up at once rather
    than after most of the work. Ties keep request order (a stable sort), so results are deterministic.

    >>> length_groups([3, 10, 5, 10], 2)
    [[1, 3], [2, 0]]
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


def parse_batch_size(value: int | str) -> BatchSize:
    """``"auto"`` or a positive int (strings from the command line are accepted)."""
    if value == "auto":
        return "auto"
    try:
        n = int(value)
    except (TypeError, ValueError):
        raise ValueError(f"batch size must be a positive integer or 'auto', got {value!r}") from None
    if n < 1:
        raise ValueError(f"batch size must be a positive integer or 'auto', got {value!r}")
    return n


class Batcher:
    """Runs items through ``fn`` in length-grouped batches; remembers the auto-found batch size.

    ``fn(items) -> results`` must return one result per item, in the order given.
    """

    def __init__(self, batch_size: int | str = "auto", auto_start: int = AUTO_START) -> None:
        self.batch_size: BatchSize = parse_batch_size(batch_size)
        self.auto = self.batch_size == "auto"
        #: the size in use: fixed, or the largest that has not run out of memory
        self.current = auto_start if self.auto else int(self.batch_size)  # type: ignore[arg-type]
        self.oom_backoffs = 0

    def run(self, items: Sequence[T], lengths: Sequence[int], fn: Callable[[list[T]], list[R]],
            progress: Callable[[int], None] | None = None) -> list[R]:
        """Results of ``fn`` over all ``items``, in item order. ``progress(n)`` after each batch."""
        if len(items) != len(lengths):
            raise ValueError("items and lengths differ in length")
        results: list[R | None] = [None] * len(items)
        todo = sorted(range(len(items)), key=lambda i: -lengths[i])
        pos = 0
        while pos < len(todo):
            idx = todo[pos:pos + self.current]
            try:
                out = fn([items[i] for i in idx])
            except Exception as e:
                if not is_oom(e):
                    raise
                if not self.auto or len(idx) == 1:
                    hint = "lower the batch size" if not self.auto else "the model does not fit one request"
                    raise RuntimeError(f"out of memory at batch size {self.current} "
                                       f"(prompt length up to {lengths[idx[0]]}): {hint}") from e
                # halve and retry the same requests; nothing of the failed batch was kept
                self.current = max(1, min(self.current, len(idx)) // 2)
                self.oom_backoffs += 1
                _free_device_memory()
                continue
            if len(out) != len(idx):
                raise RuntimeError(f"batch function returned {len(out)} results for {len(idx)} items")
            for i, r in zip(idx, out):
                results[i] = r
            pos += len(idx)
            if progress:
                progress(len(idx))
        return results  # type: ignore[return-value]
