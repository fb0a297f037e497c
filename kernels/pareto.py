"""Pareto frontiers in numba (every objective maximized; a minimized metric enters negated):
of one group, and of merged partials; two objectives, or any number."""
import numpy as np
from numba import njit

# Bins of the pre-filter in :func:`frontier`; groups smaller than PREFILTER_MIN skip it.
PREFILTER_BINS = 256
PREFILTER_MIN = 64


@njit(cache=True)
def frontier(x, y, idx):
    """The non-dominated points among ``x[idx], y[idx]`` (maximizing both), ascending.

    A point is dominated when another point is >= in both objectives and > in at least one;
    identical points are all kept. Exact, O(n log n) in the survivors of an O(n) pre-filter:
    the points are binned by x (bins are monotone in x, so a point in a higher bin has a
    strictly larger x) and a point whose y does not exceed the best y of all higher bins is
    dominated. The survivors (the frontier and its bin-mates, usually a few percent) are
    sorted by x descending (ties: y descending) and swept with a running best y.

    Parameters
    ----------
    x, y : float64 [n]
    idx : int64 [m], the candidate points (feasible ones)

    Returns
    -------
    int64 [k], the kept entries of ``idx`` in ascending order
    """
    m = idx.size
    if m == 0:
        return idx[:0].copy()
    cand = idx
    x_lo = np.inf
    x_hi = -np.inf
    for i in idx:
        x_lo = min(x_lo, x[i])
        x_hi = max(x_hi, x[i])
    width = x_hi - x_lo
    if width == 0:
        # one x for all: the points of the highest y, without sorting (a sort's temporaries
        # would hold several copies of a group of millions of strategies)
        top_y = -np.inf
        for i in idx:
            top_y = max(top_y, y[i])
        n = 0
        for i in idx:
            if y[i] == top_y:
                n += 1
        keep = np.empty(n, dtype=np.int64)
        n = 0
        for i in idx:
            if y[i] == top_y:
                keep[n] = i
                n += 1
        return np.sort(keep)
    if m >= PREFILTER_MIN and width > 0 and np.isfinite(width):
        nb = PREFILTER_BINS
        scale = nb / width
        top = np.full(nb + 1, -np.inf)  # top[b]: best y in bins above b - 1
        for i in idx:
            b = min(int((x[i] - x_lo) * scale), nb - 1)
            top[b] = max(top[b], y[i])
        for b in range(nb - 1, -1, -1):
            top[b] = max(top[b], top[b + 1])
        cand = np.empty(m, dtype=np.int64)
        n = 0
        for i in idx:
            b = min(int((x[i] - x_lo) * scale), nb - 1)
            if y[i] > top[b + 1]:
                cand[n] = i
                n += 1
        cand = cand[:n]
    by_y = cand[np.argsort(-y[cand], kind="mergesort")]
    order = by_y[np.argsort(-x[by_y], kind="mergesort")]
    keep = np.empty(order.size, dtype=np.int64)
    k = 0
    best_y = -np.inf
    best_x = np.inf
    for i in order:
        if y[i] > best_y:
            keep[k] = i
            k += 1
            best_y = y[i]
            best_x = x[i]
        elif y[i] == best_y and x[i] == best_x:
            keep[k] = i
            k += 1
    return np.sort(keep[:k])


@njit(cache=True)
def pareto_sorted(group, x, y):
    """Frontier per group of rows already sorted by group, x descending, y descending.

    Used to merge per-chunk frontiers: the frontier of a union is the frontier of the union
    of the parts' frontiers.
    """
    n = group.size
    keep = np.zeros(n, dtype=np.bool_)
    current = -1
    best_y = -np.inf
    best_x = np.inf
    for i in range(n):
        if group[i] != current:
            current = group[i]
            best_y = -np.inf
            best_x = np.inf
        if y[i] > best_y:
            keep[i] = True
            best_y = y[i]
            best_x = x[i]
        elif y[i] == best_y and x[i] == best_x:
            keep[i] = True
    return keep


@njit(cache=True)
def _dominated_by_kept(vals, i, kept, n_kept):
    """Whether a kept point is >= point i in every objective and > in one (vals [k, n])."""
    k = vals.shape[0]
    for t in range(n_kept):
        q = kept[t]
        ge = True
        gt = False
        for d in range(k):
            if vals[d, q] < vals[d, i]:
                ge = False
                break
            if vals[d, q] > vals[d, i]:
                gt = True
        if ge and gt:
            return True
    return False


@njit(cache=True)
def frontier_nd(vals, idx):
    """The non-dominated points among ``vals[:, idx]`` (k objectives, all maximized),
    ascending; identical points are all kept, as in :func:`frontier`.

    The candidates are sorted lexicographically descending (first objective, then the
    next, ...): a point can then be dominated only by one before it, so one pass that
    compares each point with the frontier kept so far is exact, O(n * f * k) for a frontier
    of f points.

    Parameters
    ----------
    vals : float64 [k, n]
    idx : int64 [m], the candidate points
    """
    m = idx.size
    k = vals.shape[0]
    order = idx.copy()
    for d in range(k - 1, -1, -1):  # stable sorts, last key first: lexicographic
        order = order[np.argsort(-vals[d, order], kind="mergesort")]
    kept = np.empty(m, dtype=np.int64)
    n = 0
    for i in order:
        if not _dominated_by_kept(vals, i, kept, n):
            kept[n] = i
            n += 1
    return np.sort(kept[:n])


@njit(cache=True)
def pareto_sorted_nd(group, vals):
    """:func:`pareto_sorted` for k objectives: rows sorted by group, then lexicographically
    descending in ``vals`` [k, n] (every objective maximized)."""
    n = group.size
    keep = np.zeros(n, dtype=np.bool_)
    kept = np.empty(n, dtype=np.int64)
    n_kept = 0
    current = -1
    for i in range(n):
        if group[i] != current:
            current = group[i]
            n_kept = 0
        if not _dominated_by_kept(vals, i, kept, n_kept):
            keep[i] = True
            kept[n_kept] = i
            n_kept += 1
    return keep
