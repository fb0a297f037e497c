"""Parallel broadcast-copy: materialize small arrays broadcast to many rows, slab by slab.

numpy's copy of a broadcast view is slow when the innermost dims have stride 0 (the
results table's innermost axes, dp and what-if scales, are broadcast dims of most
columns). Here the offsets of an inner block of rows are computed once and reused.
"""
import numpy as np
from numba import njit, prange


# One compiled version per column dtype (int8/int32 dictionary indices, int64, float64,
# bool): Slabs.prepare hands over writable arrays, since a readonly source compiles a second
# version of each. Not declared as signatures: those would compile (or load) all five at
# import, before a sweep has sized its chunks to what the process holds.
@njit(parallel=True, cache=True, nogil=True)
def gather_runs(src, outer_offsets, inner_offsets, run, out):
    """out[(o * B + i) * run + j] = src[outer_offsets[o] + inner_offsets[i]] for every
    j < run, with B = inner size: each gathered value fills a run of ``run`` rows."""
    block = inner_offsets.size
    for o in prange(outer_offsets.size):
        base = outer_offsets[o]
        row = o * block * run
        if run == 1:
            for i in range(block):
                out[row + i] = src[base + inner_offsets[i]]
        else:  # a slice fill compiles to a vectorized one (an element loop does not here)
            for i in range(block):
                start = row + i * run
                out[start:start + run] = src[base + inner_offsets[i]]


def offsets(shape, strides) -> np.ndarray:
    """Flat offsets of every point of ``shape`` (C order) given per-dim ``strides``."""
    off = np.zeros(1, dtype=np.int64)
    for n, s in zip(shape, strides):
        off = (off[:, None] + np.arange(n, dtype=np.int64)[None, :] * s).ravel()
    return off


def broadcast_strides(small_shape, shape) -> list:
    """Element strides of a C-contiguous ``small_shape`` array broadcast to ``shape``
    (0 along broadcast dims)."""
    strides, step = [], 1
    for n_small, n in zip(reversed(small_shape), reversed(shape)):
        strides.append(step if n_small == n and n > 1 else 0)
        step *= n_small
    return strides[::-1]


# Runs shorter than this are gathered element by element (a fill per run costs more).
SHORT_RUN = 8


class Slabs:
    """Broadcast copies of small arrays, one slab at a time.

    A slab of ``shape`` is one index on each of the first ``k`` dims and the whole of the
    others. :meth:`prepare` precomputes a small array's offsets once; :meth:`take` copies
    one slab of it, in parallel. The trailing dims an array does not vary over become runs
    of one value (filled, not gathered); the others are addressed through an inner block
    of at most ``inner_rows`` offsets.
    """

    def __init__(self, shape, k: int, inner_rows: int = 4096):
        self.shape = tuple(int(n) for n in shape)
        self.k = k
        self.inner_rows = inner_rows
        self.rows = int(np.prod(self.shape[k:]))

    def prepare(self, small: np.ndarray):
        """``small`` has the same number of dims as ``shape``, each 1 or equal to it."""
        small = np.require(small, requirements=["C", "W"])  # one compiled gather per dtype
        shape, k = self.shape, self.k
        st = broadcast_strides(small.shape, shape)
        end = len(shape)
        while end > k and st[end - 1] == 0:
            end -= 1
        run = int(np.prod(shape[end:]))
        split = end
        while split > k and int(np.prod(shape[split - 1:end])) <= self.inner_rows:
            split -= 1
        inner = offsets(shape[split:end], st[split:end])
        if run < SHORT_RUN:  # short runs copy faster as a plain gather
            inner, run = np.repeat(inner, run), 1
        return small.ravel(), st[:k], offsets(shape[k:split], st[k:split]), inner, run

    def take(self, prepared, outer) -> np.ndarray:
        """The slab at indices ``outer`` (one per leading dim), flat in C order."""
        flat, outer_strides, middle, inner, run = prepared
        base = sum(int(o) * s for o, s in zip(outer, outer_strides))
        out = np.empty(self.rows, dtype=flat.dtype)
        gather_runs(flat, middle + base, inner, run, out)
        return out
