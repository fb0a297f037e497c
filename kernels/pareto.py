"""Pareto frontier (maximize both objectives) per group, in numba, parallel over groups."""
import numpy as np
from numba import njit, prange


@njit(parallel=True, cache=True)
def pareto_mask(x, y, valid):
    """Non-dominated points of each row, maximizing ``x`` and ``y``.

    A valid point is dominated when another valid point of its row is >= in both objectives
    and > in at least one; identical points are all kept. O(n log n) per row: sort by x
    descending (ties by y descending) and keep points that beat the running best y.

    Parameters
    ----------
    x, y : float64 [n_groups, n_points]
    valid : bool [n_groups, n_points]

    Returns
    -------
    bool [n_groups, n_points]
    """
    n_groups, n_points = x.shape
    keep = np.zeros((n_groups, n_points), dtype=np.bool_)
    for g in prange(n_groups):
        idx = np.nonzero(valid[g])[0]
        if idx.size == 0:
            continue
        by_y = idx[np.argsort(-y[g, idx], kind="mergesort")]
        order = by_y[np.argsort(-x[g, by_y], kind="mergesort")]
        best_y = -np.inf
        best_x = np.inf
        for i in order:
            if y[g, i] > best_y:
                keep[g, i] = True
                best_y = y[g, i]
                best_x = x[g, i]
            elif y[g, i] == best_y and x[g, i] == best_x:
                keep[g, i] = True
    return keep


@njit(cache=True)
def pareto_sorted(group, x, y):
    """:func:`pareto_mask` over rows already sorted by group, x descending, y descending.

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
