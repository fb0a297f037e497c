"""Parallel broadcast-copy: materialize a small array broadcast to many rows.

numpy's copy of a broadcast view is slow when the innermost dims have stride 0 (the
results table's innermost axes, dp and what-if scales, are broadcast dims of most
columns). Here the offsets of an inner block of rows are computed once and reused.
"""
import numpy as np
from numba import njit, prange


@njit(parallel=True, cache=True)
def gather_rows(src, outer_offsets, inner_offsets, out):
    """out[o * B + i] = src[outer_offsets[o] + inner_offsets[i]] with B = inner size."""
    block = inner_offsets.size
    for o in prange(outer_offsets.size):
        base = outer_offsets[o]
        row = o * block
        for i in range(block):
            out[row + i] = src[base + inner_offsets[i]]


def _offsets(shape, strides):
    off = np.zeros(1, dtype=np.int64)
    for n, s in zip(shape, strides):
        off = (off[:, None] + np.arange(n, dtype=np.int64)[None, :] * s).ravel()
    return off


def broadcast_ravel(small: np.ndarray, shape, min_block: int = 4096) -> np.ndarray:
    """C-order ravel of ``np.broadcast_to(small, shape)``, copied in parallel.

    ``small`` has the same number of dims as ``shape``, each 1 or equal to it.
    """
    small = np.ascontiguousarray(small)
    shape = tuple(int(n) for n in shape)
    size = int(np.prod(shape))
    if size < min_block:
        return np.broadcast_to(small, shape).ravel()
    strides = []
    step = 1
    for n_small, n in zip(reversed(small.shape), reversed(shape)):
        strides.append(step if n_small == n and n > 1 else 0)
        step *= n_small
    strides = strides[::-1]
    split = len(shape)
    while split > 0 and int(np.prod(shape[split - 1:])) <= min_block:
        split -= 1
    inner = _offsets(shape[split:], strides[split:])
    outer = _offsets(shape[:split], strides[:split])
    out = np.empty(size, dtype=small.dtype)
    gather_rows(small.ravel(), outer, inner, out)
    return out
