"""Length-grouped batching and the "auto" batch size that halves on out-of-memory."""

from __future__ import annotations

import pytest
import torch

from lamm.infer.batching import Batcher, is_oom, length_groups, parse_batch_size


def test_length_groups_longest_first_and_stable():
    assert length_groups([3, 10, 5, 10, 1], 2) == [[1, 3], [2, 0], [4]]
    with pytest.raises(ValueError):
        length_groups([1], 0)


def test_parse_batch_size():
    assert parse_batch_size("auto") == "auto" and parse_batch_size("8") == 8
    for bad in ("0", "-1", "many"):
        with pytest.raises(ValueError, match="positive integer or 'auto'"):
            parse_batch_size(bad)


def test_results_come_back_in_request_order_and_batches_are_grouped():
    seen = []

    def fn(items):
        seen.append([len(x) for x in items])
        return [x.upper() for x in items]

    items = ["a", "bbbb", "cc", "ddd", "eeeee"]
    out = Batcher(2).run(items, [len(x) for x in items], fn)
    assert out == ["A", "BBBB", "CC", "DDD", "EEEEE"]
    assert seen == [[5, 4], [3, 2], [1]]


def test_auto_halves_on_oom_and_remembers():
    calls = []

    def fn(items):
        calls.append(len(items))
        if len(items) > 3:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return items

    b = Batcher("auto", auto_start=16)
    items = list(range(10))
    assert b.run(items, items, fn) == items
    assert calls[:3] == [10, 5, 2] and b.current == 2 and b.oom_backoffs == 2
    calls.clear()
    b.run(items, items, fn)  # the size found is kept: no probing again
    assert set(calls) == {2}


def test_fixed_size_oom_and_other_errors_are_raised():
    def oom(items):
        raise RuntimeError("CUDA error: out of memory")

    with pytest.raises(RuntimeError, match="out of memory at batch size 4.*lower the batch size"):
        Batcher(4).run([1, 2, 3, 4], [1, 1, 1, 1], oom)

    def boom(items):
        raise ValueError("bad input")

    with pytest.raises(ValueError, match="bad input"):
        Batcher("auto").run([1], [1], boom)
    with pytest.raises(RuntimeError, match="does not fit one request"):
        Batcher("auto", auto_start=1).run([1], [1], oom)


def test_is_oom():
    assert is_oom(torch.OutOfMemoryError("x")) and is_oom(RuntimeError("CUDA out of memory"))
    assert not is_oom(RuntimeError("shape mismatch")) and not is_oom(ValueError("out of memory"))
