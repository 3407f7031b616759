"""Where to build: candidate sites, coverage sets and coverage-location models.

The models are pure functions on a coverage matrix ``A`` (``scipy.sparse.csr_matrix``, bool,
``n_demand x n_sites``: ``A[i, c]`` is true when site ``c`` would cover demand point ``i``) and a
vector of demand weights ``w``:

* :func:`greedy_mclp` - the nested greedy ranking "the next best site" (exact marginal gains,
  updated incrementally, ``O(nnz(A))`` in total);
* :func:`solve_mclp` - the maximal covering location problem solved exactly with
  ``scipy.optimize.milp`` (HiGHS), with a time limit and the reported MIP gap;
* :func:`solve_lscp` / :func:`greedy_lscp` - the fewest new sites so the covered share reaches a
  target, district-wide and per unit, capped at what the candidates can reach;
* :func:`solve_capacitated_mclp` / :func:`greedy_capacitated_mclp` - the same question when a
  site can serve only so many (beds, places): demand may be split between sites in reach, the
  served demand is maximised (not wired into the pipeline);
* :func:`coverage_curve` - covered weight as a function of the number of new sites;
* :func:`two_step_fca` - supply-per-demand ratios (2SFCA) where facilities have capacities.

:func:`candidate_sites` thins network nodes into candidate sites, :func:`coverage_sets` builds
``A`` from the walking network with one batched bounded search, and :func:`site_circle` runs the
whole question for one circle (ranking curve, sites needed per unit, picked sites as a layer).
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.optimize import Bounds, LinearConstraint, milp

from accessibility._errors import (
    AccessibilityWarning,
    CRSMismatchError,
    DataError,
    problems_message,
)
from accessibility.labels import district_names
from accessibility.rules import as_rules

__all__ = [
    "SitingOptions",
    "SitingResult",
    "candidate_sites",
    "coverage_curve",
    "coverage_sets",
    "evaluate_scenario",
    "greedy_capacitated_mclp",
    "greedy_lscp",
    "greedy_mclp",
    "site_circle",
    "solve_capacitated_mclp",
    "solve_lscp",
    "solve_mclp",
    "two_step_fca",
]

log = logging.getLogger(__name__)

_REL_TOL = 1e-9


# ---------------------------------------------------------------------------------------------
# result type


@dataclass
class SitingResult:
    """Outcome of a siting model.

    Attributes
    ----------
    sites : list of int
        Column indices of ``A`` (sites) in pick order. For exact solutions the chosen set is
        ordered greedily (largest marginal gain first) so ``added_weight`` is meaningful.
    added_weight : numpy.ndarray
        Weight newly covered by each pick, in order.
    cumulative : numpy.ndarray
        Cumulative covered weight after each pick (new coverage only; excludes ``covered``).
    objective : float
        MCLP: newly covered weight. LSCP: number of sites.
    status : str
        ``"optimal"``, ``"time_limit"``, ``"greedy"``, ``"target_met"``, ``"nothing_to_do"``, or
        the solver's message when it failed.
    gap : float
        Relative MIP gap (0 for proven optima, NaN for greedy results).
    method : str
        ``"greedy"`` or ``"milp"``.
    capped : bool
        LSCP: the target could not be reached and was capped at the reachable maximum.
    unreachable_weight : float
        Demand weight that no candidate site can cover.
    time_s : float
        Wall-clock time of the call.
    time_limited : bool
        The MILP stopped at its time limit (the solution may not be optimal; see ``gap``).
    bound : float
        Best bound on the objective the solver proved (MCLP: upper bound on covered weight;
        LSCP: lower bound on the number of sites); NaN for greedy results.
    details : dict
        Extra information (target weights, reduction sizes, per-unit numbers).
    """

    sites: list[int]
    added_weight: np.ndarray
    cumulative: np.ndarray
    objective: float
    status: str
    gap: float = float("nan")
    method: str = "greedy"
    capped: bool = False
    unreachable_weight: float = 0.0
    time_s: float = 0.0
    time_limited: bool = False
    bound: float = float("nan")
    details: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------
# input checks and small helpers


def _as_csr_bool(A, name: str = "A") -> sp.csr_matrix:
    if not sp.issparse(A):
        A = np.asarray(A)
        if A.ndim != 2:
            raise DataError(f"{name}: coverage matrix must be 2-D (demand x sites), got shape "
                            f"{A.shape}; fix: pass a scipy.sparse matrix or a 2-D array")
    A = sp.csr_matrix(A, dtype=bool)
    A.eliminate_zeros()
    A.sum_duplicates()
    A.sort_indices()
    return A


def _as_weights(w, n: int, name: str = "w") -> np.ndarray:
    w = np.asarray(w, dtype=float).ravel()
    problems = []
    if w.shape[0] != n:
        problems.append(f"field '{name}' has {w.shape[0]} values but the coverage matrix has {n} "
                        "demand rows: pass one weight per row")
    elif not np.all(np.isfinite(w)):
        problems.append(f"field '{name}' has {int((~np.isfinite(w)).sum())} non-finite value(s): "
                        "fill missing population with 0")
    elif np.any(w < 0):
        problems.append(f"field '{name}' has {int((w < 0).sum())} negative value(s): demand weights "
                        "must be >= 0")
    if problems:
        raise DataError(problems_message("siting demand weights", problems))
    return w


def _as_mask(covered, n: int, name: str = "covered") -> np.ndarray:
    if covered is None:
        return np.zeros(n, dtype=bool)
    m = np.asarray(covered, dtype=bool).ravel()
    if m.shape[0] != n:
        raise DataError(f"field '{name}' has {m.shape[0]} values but the coverage matrix has {n} "
                        "demand rows: pass one flag per row")
    return m


def _order_by_gain(A: sp.csr_matrix, w: np.ndarray, chosen: Sequence[int], *, drop_idle: bool = False):
    """Order a chosen set greedily; return (order, added, cumulative).

    ``drop_idle`` leaves out the sites that add nothing once the others are in (a ``<= k`` MCLP
    may pick idle sites; they are no proposal). LSCP keeps every chosen site (it counts them).
    """
    chosen = [int(c) for c in chosen]
    if not chosen:
        return [], np.zeros(0), np.zeros(0)
    sub = A[:, chosen]
    res = greedy_mclp(sub, w, len(chosen), _allow_stop=drop_idle)
    order = [chosen[j] for j in res.sites]
    return order, res.added_weight, res.cumulative


def _covered_weight(A: sp.csr_matrix, w: np.ndarray, sites: Sequence[int]) -> float:
    if len(sites) == 0:
        return 0.0
    hit = np.asarray(A[:, list(sites)].sum(axis=1)).ravel() > 0
    return float(w[hit].sum())


def _merge_rows(A: sp.csr_matrix, w: np.ndarray, labels: np.ndarray | None = None):
    """Merge identical demand rows (same site set and, if given, same label); sum their weights.

    Returns (A_merged, w_merged, labels_merged, group_of_row).
    """
    n = A.shape[0]
    keys: dict[bytes, int] = {}
    group = np.empty(n, dtype=np.int64)
    indptr, indices = A.indptr, A.indices
    for i in range(n):
        key = indices[indptr[i]:indptr[i + 1]].tobytes()
        if labels is not None:
            key = str(labels[i]).encode() + b"\x00" + key
        group[i] = keys.setdefault(key, len(keys))
    n_g = len(keys)
    first = np.full(n_g, n, dtype=np.int64)
    np.minimum.at(first, group, np.arange(n))
    w_g = np.bincount(group, weights=w, minlength=n_g)
    A_g = A[first]
    lab_g = None if labels is None else np.asarray(labels)[first]
    return A_g, w_g, lab_g, group


def _unique_columns(A: sp.csr_matrix) -> np.ndarray:
    """Indices of the first column of each group of identical non-empty columns."""
    C = A.tocsc()
    C.sort_indices()
    seen: dict[bytes, int] = {}
    keep = []
    for j in range(C.shape[1]):
        rows = C.indices[C.indptr[j]:C.indptr[j + 1]]
        if rows.size == 0:
            continue
        key = rows.tobytes()
        if key not in seen:
            seen[key] = j
            keep.append(j)
    return np.asarray(keep, dtype=np.int64)


def _milp_status(res) -> tuple[str, bool]:
    if res.status == 0:
        return "optimal", False
    if res.status == 1:
        return "time_limit", True
    return f"solver status {res.status}: {res.message}", False


# ---------------------------------------------------------------------------------------------
# MCLP


def greedy_mclp(A, w, k: int, *, covered=None, _allow_stop: bool = True) -> SitingResult:
    """Greedy maximal covering: pick ``k`` sites one by one, each with the largest marginal gain.

    The gains ``A.T @ w_uncovered`` are computed once and updated incrementally: when a pick
    covers new demand rows, only the gains of sites covering those rows decrease. Every row is
    removed at most once, so the whole run costs ``O(nnz(A) + k * n_sites)``. The sequence is
    nested (the best ``k`` contains the best ``k-1``) and within ``1 - 1/e`` of the optimum.

    Parameters
    ----------
    A : scipy.sparse matrix, bool, (n_demand, n_sites)
        Coverage matrix.
    w : array-like, (n_demand,)
        Non-negative demand weights.
    k : int
        Number of sites to pick. Picking stops early once no site adds any weight.
    covered : array-like of bool, optional
        Demand already covered by existing facilities (contributes no gain).

    Returns
    -------
    SitingResult
        ``method="greedy"``; ties are broken by the lowest column index. ``bound`` is a
        certified upper bound on the optimal ``k``-site coverage (the smallest, over the greedy
        steps, of ``f(S) + the k largest marginal gains given S``, valid because coverage is
        monotone submodular) and ``gap = (bound - objective) / objective``.
    """
    t0 = time.perf_counter()
    A = _as_csr_bool(A)
    n_d, n_s = A.shape
    w = _as_weights(w, n_d)
    cov = _as_mask(covered, n_d)
    w_eff = np.where(cov, 0.0, w)
    Af = A.astype(np.float64)
    C = A.tocsc()
    gains = np.asarray(Af.T @ w_eff).ravel()
    alive = np.ones(n_s, dtype=bool)
    sites: list[int] = []
    added: list[float] = []
    unreachable = float(w_eff[np.diff(A.indptr) == 0].sum())
    k_eff = max(min(int(k), n_s), 0)
    bound = np.inf
    cum_now = 0.0
    tol = 1e-9 * max(float(w_eff.sum()), 1.0)
    for step in range(k_eff + 1):
        g = np.where(alive, gains, -np.inf)
        # submodular bound: OPT_k <= f(S) + sum of the k largest marginal gains given S
        top = g[alive]
        if top.size > k_eff:
            top = np.partition(top, top.size - k_eff)[top.size - k_eff:] if k_eff > 0 else top[:0]
        bound = min(bound, cum_now + float(np.clip(top, 0, None).sum()))
        if step == k_eff:
            break
        j = int(np.argmax(g))
        if not alive[j] or (_allow_stop and g[j] <= tol):
            break
        rows = C.indices[C.indptr[j]:C.indptr[j + 1]]
        rows = rows[w_eff[rows] > 0]
        gain = float(w_eff[rows].sum())
        if _allow_stop and gain <= tol:
            # the incrementally updated gains keep float crumbs: a site that covers nobody new
            # must not be proposed (its true gain is recomputed from the rows it covers)
            break
        if rows.size:
            gains -= np.asarray(Af[rows].T @ w_eff[rows]).ravel()
            w_eff[rows] = 0.0
        alive[j] = False
        sites.append(j)
        added.append(gain)
        cum_now += gain
    added_arr = np.asarray(added, dtype=float)
    cum = np.cumsum(added_arr)
    obj = float(cum[-1]) if cum.size else 0.0
    bound = max(bound, obj) if np.isfinite(bound) else obj
    gap = (bound - obj) / obj if obj > 0 else (0.0 if bound <= 0 else float("inf"))
    return SitingResult(
        sites=sites, added_weight=added_arr, cumulative=cum, objective=obj, status="greedy",
        gap=gap, method="greedy", unreachable_weight=unreachable,
        time_s=time.perf_counter() - t0, bound=bound,
    )


def solve_mclp(A, w, k: int, *, time_limit_s: float = 30.0, covered=None,
               mip_rel_gap: float = 1e-6, max_nnz: int = 400_000) -> SitingResult:
    """Exact maximal covering location problem (MILP with HiGHS through ``scipy.optimize.milp``).

    ``max sum_i w_i y_i`` subject to ``y_i <= sum_{c covers i} x_c``, ``sum_c x_c <= k``,
    ``x`` binary, ``0 <= y <= 1`` (continuous is enough: at an optimum ``y`` is 0 or 1).
    Coverage is monotone, so ``<= k`` has the same optimum as ``= k`` for ``k <= n_sites``.

    Before solving, demand rows that are already covered, have zero weight or that no site
    covers are dropped, identical rows are merged (weights summed) and identical columns are
    kept once. If the time limit stops the solver, the better of its incumbent and the greedy
    solution is returned, with the gap measured against the solver's proven bound.

    Parameters
    ----------
    A, w, k, covered
        As in :func:`greedy_mclp`.
    time_limit_s : float
        Solver time limit in seconds.
    mip_rel_gap : float
        Relative gap at which HiGHS stops.
    max_nnz : int
        Largest reduced coverage matrix (non-zeros) handed to the solver. HiGHS's presolve does
        not honour the time limit, and on ~700k non-zeros it alone takes about a minute; above
        this size the greedy solution is returned with its certified bound
        (``details["milp_skipped"]``).

    Returns
    -------
    SitingResult
        ``method="milp"`` (or ``"greedy"`` when greedy beat the time-limited incumbent);
        ``objective`` is the newly covered weight recomputed from ``A``; ``bound`` the proven
        upper bound; ``gap = (bound - objective) / objective``.
    """
    t0 = time.perf_counter()
    A = _as_csr_bool(A)
    n_d, n_s = A.shape
    w = _as_weights(w, n_d)
    cov = _as_mask(covered, n_d)
    w_eff = np.where(cov, 0.0, w)
    rowdeg = np.diff(A.indptr)
    unreachable = float(w_eff[rowdeg == 0].sum())
    keep_rows = (w_eff > 0) & (rowdeg > 0)
    greedy = greedy_mclp(A, w, k, covered=cov)
    details: dict[str, Any] = {"greedy_objective": greedy.objective}
    if not keep_rows.any() or k <= 0:
        return SitingResult([], np.zeros(0), np.zeros(0), 0.0, "nothing_to_do", gap=0.0,
                            method="milp", unreachable_weight=unreachable,
                            time_s=time.perf_counter() - t0, bound=0.0, details=details)
    A_r, w_r, _, _ = _merge_rows(A[keep_rows], w_eff[keep_rows])
    cols = _unique_columns(A_r)
    A_r = A_r[:, cols]
    m, n = A_r.shape
    details.update(n_rows=int(m), n_cols=int(n), n_rows_in=int(n_d), n_cols_in=int(n_s))
    if k >= n:  # every distinct site fits: take them all
        order, added, cum = _order_by_gain(A, w_eff, cols.tolist(), drop_idle=True)
        obj = float(cum[-1]) if cum.size else 0.0
        return SitingResult(order, added, cum, obj, "optimal", gap=0.0, method="milp",
                            unreachable_weight=unreachable, time_s=time.perf_counter() - t0,
                            bound=obj, details=details)
    if A_r.nnz > max_nnz:
        details["milp_skipped"] = f"reduced matrix has {A_r.nnz} non-zeros > max_nnz={max_nnz}"
        log.info("MCLP k=%d: %s; returning greedy with bound %.1f", k, details["milp_skipped"],
                 greedy.bound)
        greedy.details.update(details)
        greedy.time_s = time.perf_counter() - t0
        return greedy
    c = np.concatenate([np.zeros(n), -w_r])
    cover = sp.hstack([-A_r.astype(float), sp.identity(m, format="csr")], format="csr")
    card = sp.csr_matrix(np.concatenate([np.ones(n), np.zeros(m)])[None, :])
    constraints = [LinearConstraint(cover, -np.inf, 0.0), LinearConstraint(card, 0, int(k))]
    integrality = np.concatenate([np.ones(n), np.zeros(m)])
    res = milp(c, integrality=integrality, bounds=Bounds(0, 1), constraints=constraints,
               options={"time_limit": float(time_limit_s), "mip_rel_gap": mip_rel_gap,
                        "disp": False})
    status, limited = _milp_status(res)
    bound = -float(res.mip_dual_bound) if getattr(res, "mip_dual_bound", None) is not None \
        else float("nan")
    chosen: list[int] = []
    if res.x is not None:
        chosen = cols[np.flatnonzero(res.x[:n] > 0.5)].tolist()
    obj = _covered_weight(A, w_eff, chosen)
    method = "milp"
    if res.x is None or greedy.objective > obj + _REL_TOL * max(obj, 1.0):
        if res.status == 0:  # cannot happen unless the solver is wrong: say so
            warnings.warn(f"MILP optimum {obj:g} below greedy {greedy.objective:g}; using greedy",
                          AccessibilityWarning, stacklevel=2)
        chosen, obj, method = list(greedy.sites), greedy.objective, "greedy"
    order, added, cum = _order_by_gain(A, w_eff, chosen, drop_idle=True)
    if res.status == 0:
        bound = max(bound, obj) if np.isfinite(bound) else obj
    bound = min(bound, greedy.bound) if np.isfinite(bound) else greedy.bound
    gap = (bound - obj) / obj if obj > 0 and np.isfinite(bound) else (0.0 if bound == 0 else
                                                                         float("nan"))
    if res.status == 0 and gap < 0:
        gap = 0.0
    details["solver_mip_gap"] = float(res.mip_gap) if getattr(res, "mip_gap", None) is not None \
        else float("nan")
    log.info("MCLP k=%d: %s, covered %.1f (greedy %.1f), gap %.3g, %.2f s", k, status, obj,
             greedy.objective, gap, time.perf_counter() - t0)
    return SitingResult(order, added, cum, obj, status, gap=max(gap, 0.0) if np.isfinite(gap)
                        else gap, method=method, unreachable_weight=unreachable,
                        time_s=time.perf_counter() - t0, time_limited=limited, bound=bound,
                        details=details)


# ---------------------------------------------------------------------------------------------
# capacitated MCLP (sites with a limited number of places, e.g. elderly-care beds)


def _as_capacity(cap, n: int, name: str, *, allow_inf: bool) -> np.ndarray:
    """One non-negative capacity per site column (``+inf`` allowed where ``allow_inf``)."""
    arr = np.asarray(cap, dtype=float)
    if arr.ndim == 0:
        arr = np.full(n, float(arr))
    arr = arr.ravel()
    problems = []
    if arr.shape[0] != n:
        problems.append(f"field '{name}' has {arr.shape[0]} values but the coverage matrix has "
                        f"{n} site columns: pass one capacity per site (or one number for all)")
    else:
        bad_nan = int(np.isnan(arr).sum())
        if bad_nan:
            problems.append(f"field '{name}' has {bad_nan} NaN value(s): fill unknown capacities "
                            "(e.g. with the standard size of a new facility)")
        if np.any(arr < 0):
            problems.append(f"field '{name}' has {int((arr < 0).sum())} negative value(s): "
                            "capacities must be >= 0")
        if not allow_inf and np.any(np.isinf(arr)):
            problems.append(f"field '{name}' has {int(np.isinf(arr).sum())} infinite value(s): "
                            "existing capacities must be finite")
    if problems:
        raise DataError(problems_message(f"siting {name}", problems))
    return arr


def _capacitated_inputs(A, w, capacity, covered, existing_capacity):
    A = _as_csr_bool(A)
    n_d, n_s = A.shape
    w = _as_weights(w, n_d)
    cov = _as_mask(covered, n_d)
    cap = _as_capacity(capacity, n_s, "capacity", allow_inf=True)
    ex = (np.zeros(n_s) if existing_capacity is None
          else _as_capacity(existing_capacity, n_s, "existing_capacity", allow_inf=False))
    return A, w, cov, cap, ex


def greedy_capacitated_mclp(A, w, k: int, capacity, *, covered=None,
                            existing_capacity=None) -> SitingResult:
    """Greedy capacitated maximal covering: pick sites one by one by newly served demand.

    Each site ``j`` can serve at most ``capacity[j]`` units of the demand it reaches (places,
    beds). In the plan's terms: with ``w`` = elderly residents needing a place in each cell
    (e.g. ``pop_60plus`` times an uptake rate) and ``capacity`` = places of a standard new
    elderly-care station, the picks say where ``k`` stations of that size serve most people
    within the 15-minute circle. The plan's district total of 6,650 elderly-care beds by 2025
    bounds ``sum(capacity of picked sites) + sum(existing_capacity)``; the model does not
    enforce that total, it shows how many of the places would actually be within reach of
    demand. The exact model is :func:`solve_capacitated_mclp`.

    **Fill rule (proportional).** Let ``r`` be the demand still unserved. A site's gain is
    ``min(spare capacity, sum of r over the rows it reaches)``. The picked site takes that
    amount *proportionally*: every row it reaches gives up the same fraction ``f`` of its
    remaining demand (``f = 1`` when the site reaches less than its capacity). Proportional
    filling is vectorised and does not depend on row order, but it can strand capacity that a
    smarter assignment would use (see the tests), so the greedy value is a lower bound on what
    its sites could serve. Ties go to the lowest column index; picking stops early once no
    site adds anything.

    Existing facilities (``existing_capacity[j] > 0``) are open from the start: before the
    first pick they fill, in column order and by the same rule, from the demand they reach.
    A column with both ``existing_capacity`` and ``capacity`` is an expansion: picking it adds
    ``capacity[j]`` places on top of what is left of its existing ones.

    The running time is ``O(nnz(A))`` for the set-up plus, per pick, the non-zeros of the rows
    the picked site touches (the reachable demand of every site is updated incrementally).

    Parameters
    ----------
    A : scipy.sparse matrix, bool, (n_demand, n_sites)
        Coverage matrix.
    w : array-like, (n_demand,)
        Non-negative demand, in the same unit as the capacities.
    k : int
        Largest number of new sites (or expansions).
    capacity : array-like, (n_sites,) or scalar
        Places a new site at each column would offer; ``+inf`` = unlimited, ``0`` = not a
        candidate.
    covered : array-like of bool, optional
        Demand rows already served by existing facilities; excluded (as in :func:`greedy_mclp`).
    existing_capacity : array-like, (n_sites,), optional
        Places already open at each column (finite, ``>= 0``).

    Returns
    -------
    SitingResult
        ``method="greedy"``, ``status="greedy"``; ``sites`` in pick order; ``added_weight`` the
        demand each pick served; ``objective`` the demand served by the new sites (existing
        facilities' fill in ``details["served_existing"]``); ``bound`` and ``gap`` are NaN (the
        proportional fill gives no certified bound). ``details["remaining_demand"]`` is the
        unserved demand per row.
    """
    t0 = time.perf_counter()
    A, w, cov, cap, ex = _capacitated_inputs(A, w, capacity, covered, existing_capacity)
    n_d, n_s = A.shape
    r = np.where(cov, 0.0, w)
    unreachable = float(r[np.diff(A.indptr) == 0].sum())
    Af = A.astype(np.float64)
    C = A.tocsc()
    reach = np.asarray(Af.T @ r).ravel()  # unserved demand each site reaches
    spare = ex.copy()

    def fill(j: int, limit: float) -> float:
        rows = C.indices[C.indptr[j]:C.indptr[j + 1]]
        rows = rows[r[rows] > 0]
        tot = float(r[rows].sum())
        take = min(limit, tot)
        if take <= 0:
            return 0.0
        delta = r[rows].copy() if take >= tot else r[rows] * (take / tot)
        r[rows] -= delta
        reach[:] -= np.asarray(Af[rows].T @ delta).ravel()
        return take

    served_existing = 0.0
    for j in np.flatnonzero(ex > 0):
        got = fill(int(j), float(ex[j]))
        spare[j] -= got
        served_existing += got
    alive = cap > 0
    sites: list[int] = []
    added: list[float] = []
    tol = _REL_TOL * max(float(r.sum()), 1.0)
    for _ in range(max(min(int(k), n_s), 0)):
        gains = np.where(alive, np.minimum(cap + spare, np.clip(reach, 0.0, None)), -np.inf)
        j = int(np.argmax(gains))
        if not alive[j] or gains[j] <= tol:
            break
        got = fill(j, float(cap[j] + spare[j]))
        alive[j] = False
        sites.append(j)
        added.append(got)
    added_arr = np.asarray(added, dtype=float)
    cum = np.cumsum(added_arr)
    obj = float(cum[-1]) if cum.size else 0.0
    details = {"served_existing": served_existing, "remaining_demand": r,
               "fill_rule": "proportional"}
    log.info("capacitated greedy k=%d: %d sites serve %.1f (existing %.1f), %.2f s", k,
             len(sites), obj, served_existing, time.perf_counter() - t0)
    return SitingResult(sites, added_arr, cum, obj, "greedy", method="greedy",
                        unreachable_weight=unreachable, time_s=time.perf_counter() - t0,
                        details=details)


def solve_capacitated_mclp(A, w, k: int, capacity, *, covered=None, existing_capacity=None,  # noqa: PLR0913  (model inputs as in solve_mclp, plus the solver settings and a test hook)
                           time_limit_s: float = 30.0, mip_rel_gap: float = 1e-6,
                           max_nnz: int = 200_000, _shortcut: bool = True) -> SitingResult:
    """Exact capacitated maximal covering (MILP with HiGHS through ``scipy.optimize.milp``).

    Like :func:`solve_mclp`, but a site serves at most ``capacity[j]`` units of demand and a
    demand row may be split between the sites that reach it. This is the question behind the
    plan's capacity indicators, notably the 6,650 elderly-care beds the district is to have
    by 2025: with ``w`` = elderly residents needing a place (``pop_60plus`` times an uptake
    rate) and ``capacity`` = beds/places of each candidate station, the model says where ``k``
    new stations serve the most of that demand within the 15-minute circle, and how many of
    their places would be used by people in reach. (The 6,650 total is not a constraint here;
    compare it with ``sum(capacity[sites]) + sum(existing_capacity)``.)

    Model (``z_ij`` only where ``A[i, j]`` is true)::

        max  sum_ij z_ij
        s.t. sum_j z_ij <= w_i                               (each demand served once)
             sum_i z_ij <= existing_j + capacity_j * x_j     (site capacity)
             z_ij <= w_i * x_j        for sites without existing capacity
             sum_j x_j <= k,  x binary,  0 <= z_ij <= w_i

    ``capacity_j = +inf`` is replaced by the demand site ``j`` reaches, so with unlimited
    capacities the optimum equals :func:`solve_mclp`'s. Before solving, rows that are already
    covered, have zero weight or that no site reaches are dropped, identical rows are merged
    (weights summed; splitting makes this exact) and columns that can serve nothing are
    dropped. Identical columns are kept (their capacities differ). When the greedy solution
    already serves ``min(reachable demand, existing places + the k largest new capacities)``
    it is optimal and returned without calling the solver (``details["milp_skipped"]``,
    ``method="greedy"``, ``status="optimal"``); that simple bound also caps the solver's.

    Parameters
    ----------
    A, w, k, capacity, covered, existing_capacity
        As in :func:`greedy_capacitated_mclp`.
    time_limit_s : float
        Solver time limit in seconds; when reached, the better of the incumbent and the greedy
        solution is returned, with the gap against the solver's proven bound.
    mip_rel_gap : float
        Relative gap at which HiGHS stops.
    max_nnz : int
        Largest reduced coverage matrix (non-zeros = assignment variables) accepted. Above it a
        :class:`~accessibility._errors.DataError` is raised: use
        :func:`greedy_capacitated_mclp`, coarser cells or fewer candidates.

    Returns
    -------
    SitingResult
        ``method="milp"`` (or ``"greedy"``); ``objective`` = total demand served (by new sites
        and existing capacity; equal to the newly served demand when ``existing_capacity`` is
        None); ``bound`` the proven upper bound; ``gap = (bound - objective) / objective``.
        ``sites`` are ordered by the demand assigned to them (largest first) and
        ``added_weight`` is that assigned demand. ``details`` holds ``served_existing_only``
        (the optimum with no new site), ``newly_served`` (objective minus it),
        ``served_by_site`` and the reduction sizes.

    Raises
    ------
    DataError
        Bad inputs, or a reduced instance above ``max_nnz``.
    """
    t0 = time.perf_counter()
    A, w, cov, cap, ex = _capacitated_inputs(A, w, capacity, covered, existing_capacity)
    n_d, n_s = A.shape
    w_eff = np.where(cov, 0.0, w)
    rowdeg = np.diff(A.indptr)
    unreachable = float(w_eff[rowdeg == 0].sum())
    keep_rows = (w_eff > 0) & (rowdeg > 0)
    details: dict[str, Any] = {"n_rows_in": int(n_d), "n_cols_in": int(n_s)}
    if not keep_rows.any():
        return SitingResult([], np.zeros(0), np.zeros(0), 0.0, "nothing_to_do", gap=0.0,
                            method="milp", unreachable_weight=unreachable,
                            time_s=time.perf_counter() - t0, bound=0.0, details=details)
    A_r, w_r, _, _ = _merge_rows(A[keep_rows], w_eff[keep_rows])
    colsum = np.asarray(A_r.astype(np.float64).T @ w_r).ravel()
    cols = np.flatnonzero((colsum > 0) & ((cap > 0) | (ex > 0)))
    A_r = A_r[:, cols].tocsr()
    A_r.sort_indices()
    m, n = A_r.shape
    nnz = int(A_r.nnz)
    details.update(n_rows=int(m), n_cols=int(n), nnz=nnz)
    if n == 0 or nnz == 0:  # no site with places reaches any remaining demand
        return SitingResult([], np.zeros(0), np.zeros(0), 0.0, "nothing_to_do", gap=0.0,
                            method="milp", unreachable_weight=unreachable,
                            time_s=time.perf_counter() - t0, bound=0.0, details=details)
    if nnz > max_nnz:
        raise DataError(
            f"solve_capacitated_mclp: the reduced coverage matrix has {nnz} non-zeros "
            f"({m} demand rows x {n} sites), above max_nnz={max_nnz}: the MILP would have "
            f"{nnz + n} variables. Fix: use greedy_capacitated_mclp (fast, no optimality "
            "guarantee), fewer candidate sites (larger candidate_spacing_m), coarser cells, or "
            "raise max_nnz if you can wait.")
    greedy = greedy_capacitated_mclp(A, w, k, capacity, covered=cov, existing_capacity=ex)
    greedy_total = greedy.objective + greedy.details["served_existing"]
    details["greedy_objective"] = greedy_total
    cap_r = np.minimum(cap[cols], colsum[cols])  # +inf -> what the site can reach at most
    ex_r = np.minimum(ex[cols], colsum[cols])
    is_new = ex_r <= 0
    # a simple valid bound: all reachable demand, or all existing places + the k largest new ones
    k_eff = max(min(int(k), n), 0)
    top_k = np.sort(cap_r)[::-1][:k_eff].sum() if k_eff else 0.0
    simple_bound = float(min(w_r.sum(), ex_r.sum() + top_k))
    details["simple_bound"] = simple_bound
    if _shortcut and greedy_total >= simple_bound * (1 - _REL_TOL):  # greedy provably optimal
        order = np.lexsort((np.asarray(greedy.sites, dtype=np.int64), -greedy.added_weight))
        sites = [int(greedy.sites[i]) for i in order]
        added = greedy.added_weight[order]
        base = _served_existing_only(A_r, w_r, ex_r) if np.any(ex_r > 0) else 0.0
        details.update(served_existing_only=base, newly_served=greedy_total - base,
                       served_by_site=dict(zip(sites, added.tolist(), strict=True)),
                       milp_skipped="greedy reaches the simple bound")
        return SitingResult(sites, added, np.cumsum(added), greedy_total, "optimal", gap=0.0,
                            method="greedy", unreachable_weight=unreachable,
                            time_s=time.perf_counter() - t0, bound=simple_bound, details=details)
    # variables: x (n sites) then z (one per non-zero of A_r, CSR order)
    e_row = np.repeat(np.arange(m), np.diff(A_r.indptr))
    e_col = A_r.indices
    e = np.arange(nnz)
    demand = sp.csr_matrix((np.ones(nnz), (e_row, n + e)), shape=(m, n + nnz))
    capac = sp.csr_matrix((np.concatenate([-cap_r, np.ones(nnz)]),
                           (np.concatenate([np.arange(n), e_col]), np.concatenate([np.arange(n),
                                                                                    n + e]))),
                          shape=(n, n + nnz))
    link_e = e[is_new[e_col]]
    n_l = link_e.size
    link = sp.csr_matrix((np.concatenate([-w_r[e_row[link_e]], np.ones(n_l)]),
                          (np.concatenate([np.arange(n_l), np.arange(n_l)]),
                           np.concatenate([e_col[link_e], n + link_e]))), shape=(n_l, n + nnz))
    card = sp.csr_matrix((np.ones(n), (np.zeros(n, dtype=np.int64), np.arange(n))),
                         shape=(1, n + nnz))
    constraints = [LinearConstraint(demand, -np.inf, w_r), LinearConstraint(capac, -np.inf, ex_r),
                   LinearConstraint(card, 0, max(int(k), 0))]
    if n_l:
        constraints.append(LinearConstraint(link, -np.inf, 0.0))
    ub = np.concatenate([np.where(cap_r > 0, 1.0, 0.0), w_r[e_row]])
    c = np.concatenate([np.zeros(n), -np.ones(nnz)])
    integrality = np.concatenate([np.ones(n), np.zeros(nnz)])
    res = milp(c, integrality=integrality, bounds=Bounds(np.zeros(n + nnz), ub),
               constraints=constraints,
               options={"time_limit": float(time_limit_s), "mip_rel_gap": mip_rel_gap,
                        "disp": False})
    status, limited = _milp_status(res)
    bound = -float(res.mip_dual_bound) if getattr(res, "mip_dual_bound", None) is not None \
        else float("nan")
    method = "milp"
    if res.x is not None:
        x = res.x[:n] > 0.5
        z = np.clip(res.x[n:], 0.0, None)
        flow = np.bincount(e_col, weights=z, minlength=n)
        chosen = cols[x].tolist()
        served = flow[x]
        obj = float(z.sum())
    if res.x is None or greedy_total > obj + _REL_TOL * max(obj, 1.0):
        if res.status == 0:  # cannot happen unless the solver is wrong: say so
            warnings.warn(f"capacitated MILP optimum {obj:g} below greedy {greedy_total:g}; "
                          "using greedy", AccessibilityWarning, stacklevel=2)
        chosen, served, obj, method = (list(greedy.sites), greedy.added_weight,
                                       greedy_total, "greedy")
    order = np.lexsort((np.asarray(chosen, dtype=np.int64), -np.asarray(served, dtype=float)))
    sites = [int(chosen[i]) for i in order]
    added = np.asarray(served, dtype=float)[order]
    if res.status == 0:
        bound = max(bound, obj) if np.isfinite(bound) else obj
    bound = min(bound, simple_bound) if np.isfinite(bound) else simple_bound
    gap = (bound - obj) / obj if obj > 0 else (0.0 if bound <= 0 else float("inf"))
    gap = max(gap, 0.0)
    base = _served_existing_only(A_r, w_r, ex_r) if np.any(ex_r > 0) else 0.0
    details.update(served_existing_only=base, newly_served=obj - base,
                   served_by_site=dict(zip(sites, added.tolist(), strict=True)),
                   solver_mip_gap=float(res.mip_gap) if getattr(res, "mip_gap", None)
                   is not None else float("nan"))
    log.info("capacitated MCLP k=%d: %s, served %.1f (greedy %.1f), gap %.3g, %.2f s", k, status,
             obj, greedy_total, gap, time.perf_counter() - t0)
    return SitingResult(sites, added, np.cumsum(added), obj, status, gap=gap, method=method,
                        unreachable_weight=unreachable, time_s=time.perf_counter() - t0,
                        time_limited=limited, bound=bound, details=details)


def _served_existing_only(A_r: sp.csr_matrix, w_r: np.ndarray, ex_r: np.ndarray) -> float:
    """Largest demand the existing capacities alone can serve (a transportation LP)."""
    from scipy.optimize import linprog

    use = np.flatnonzero(ex_r > 0)
    sub = A_r[:, use].tocsr()
    sub.sort_indices()
    m, n, nnz = sub.shape[0], use.size, sub.nnz
    if nnz == 0:
        return 0.0
    e_row = np.repeat(np.arange(m), np.diff(sub.indptr))
    e = np.arange(nnz)
    A_ub = sp.vstack([sp.csr_matrix((np.ones(nnz), (e_row, e)), shape=(m, nnz)),
                      sp.csr_matrix((np.ones(nnz), (sub.indices, e)), shape=(n, nnz))],
                     format="csr")
    res = linprog(-np.ones(nnz), A_ub=A_ub, b_ub=np.concatenate([w_r, ex_r[use]]),
                  bounds=(0, None), method="highs")
    return float(-res.fun) if res.status == 0 else float("nan")


# ---------------------------------------------------------------------------------------------
# LSCP


def _lscp_prepare(A, w, target_share, total_weight, covered_weight, unit_labels, unit_targets):
    """Validated inputs and the requirement groups shared by greedy_lscp and solve_lscp."""
    A = _as_csr_bool(A)
    n_d, n_s = A.shape
    w = _as_weights(w, n_d)
    reqs = _lscp_requirements(A, w, target_share=target_share, total_weight=total_weight,
                              covered_weight=covered_weight, unit_labels=unit_labels,
                              unit_targets=unit_targets)
    unreachable_total = float(w[np.diff(A.indptr) == 0].sum())
    capped, details = _lscp_result_common(reqs)
    return A, w, n_d, n_s, reqs, unreachable_total, capped, details


def _lscp_requirements(A, w, *, target_share, total_weight, covered_weight, unit_labels,
                       unit_targets):
    """Groups of rows and the new weight each must reach: list of (name, rows_mask, need, ...)."""
    n_d = A.shape[0]
    reach = np.diff(A.indptr) > 0
    groups = []
    if unit_labels is None:
        tot = float(total_weight)
        need = float(target_share) * tot - float(covered_weight)
        groups.append(("__all__", np.ones(n_d, dtype=bool), tot, float(covered_weight),
                       float(target_share), need))
    else:
        labels = np.asarray(unit_labels).astype(str)
        if labels.shape[0] != n_d:
            raise DataError(f"field 'unit_labels' has {labels.shape[0]} values but the coverage "
                            f"matrix has {n_d} demand rows: pass one unit code per row")
        targets = _unit_target_table(labels, w, target_share, unit_targets)
        for lab in sorted(set(labels)):
            tot, cw, share = targets[lab]
            groups.append((lab, labels == lab, tot, cw, share, share * tot - cw))
    out = []
    for name, rows, tot, cw, share, need in groups:
        reachable_new = float(w[rows & reach].sum())
        unreach = float(w[rows & ~reach].sum())
        need = max(need, 0.0)
        capped = need > reachable_new * (1 + _REL_TOL) + 1e-12
        if capped:
            need = reachable_new
        full = need >= reachable_new * (1 - _REL_TOL) and need > 0
        out.append({"name": name, "rows": rows, "total": tot, "covered": cw, "share": share,
                    "need": need, "capped": capped, "full": full, "unreachable": unreach,
                    "reachable_max_share": (cw + reachable_new) / tot if tot > 0 else float("nan")})
    return out


def _unit_target_table(labels, w, target_share, unit_targets):
    """Map unit -> (total_weight, covered_weight, target_share)."""
    table = {}
    if unit_targets is None:
        for lab in set(labels):
            table[lab] = (float(w[labels == lab].sum()), 0.0, float(target_share))
        return table
    if isinstance(unit_targets, pd.DataFrame):
        missing = [c for c in ("total_weight", "covered_weight") if c not in unit_targets.columns]
        if missing:
            raise DataError(f"unit_targets: missing column(s) {missing}; fix: give a DataFrame "
                            "indexed by unit with total_weight, covered_weight[, target_share]")
        recs = {str(i): r for i, r in unit_targets.iterrows()}
    else:
        recs = {str(key): val for key, val in dict(unit_targets).items()}
    problems = []
    for lab in sorted(set(labels)):
        if lab not in recs:
            problems.append(f"unit '{lab}' has demand rows but no entry in unit_targets: add it")
            continue
        r = recs[lab]
        get = r.get if hasattr(r, "get") else (lambda key, default=None, _r=r: getattr(_r, key,
                                                                                       default))
        share = get("target_share", None)
        share = float(target_share) if share is None or pd.isna(share) else float(share)
        table[lab] = (float(get("total_weight")), float(get("covered_weight", 0.0)), share)
    if problems:
        raise DataError(problems_message("unit_targets", problems))
    return table


def _lscp_result_common(reqs):
    capped = any(r["capped"] for r in reqs)
    details = {
        "units": {r["name"]: {k: r[k] for k in ("total", "covered", "share", "need", "capped",
                                                 "unreachable", "reachable_max_share")}
                  for r in reqs},
    }
    return capped, details


def greedy_lscp(A, w, *, target_share: float, total_weight: float, covered_weight: float = 0.0,
                unit_labels=None, unit_targets=None, max_sites: int | None = None
                ) -> SitingResult:
    """Greedy set covering: add the site covering most still-needed weight until targets are met.

    Same requirements and capping as :func:`solve_lscp`. A site's gain counts only demand of
    units (or the district) whose requirement is not yet met.

    Parameters
    ----------
    A, w, target_share, total_weight, covered_weight, unit_labels, unit_targets
        See :func:`solve_lscp`.
    max_sites : int, optional
        Stop after this many sites even if a target is not met (``status="max_sites"``).
    """
    t0 = time.perf_counter()
    A, w, n_d, n_s, reqs, unreachable_total, capped, details = _lscp_prepare(
        A, w, target_share, total_weight, covered_weight, unit_labels, unit_targets)
    # group index per row (rows in no group: none, since groups partition rows)
    grp = np.zeros(n_d, dtype=np.int64)
    for g, r in enumerate(reqs):
        grp[r["rows"]] = g
    remaining = np.array([r["need"] for r in reqs], dtype=float)
    tol = np.array([_REL_TOL * max(r["total"], 1.0) for r in reqs])
    w_live = w.copy()
    w_live[remaining[grp] <= tol[grp]] = 0.0
    Af = A.astype(np.float64)
    C = A.tocsc()
    gains = np.asarray(Af.T @ w_live).ravel()
    alive = np.ones(n_s, dtype=bool)
    sites: list[int] = []
    added: list[float] = []
    covered_rows = np.zeros(n_d, dtype=bool)
    status = "target_met"
    limit = n_s if max_sites is None else min(n_s, int(max_sites))
    while np.any(remaining > tol):
        if len(sites) >= limit:
            status = "max_sites"
            break
        g = np.where(alive, gains, -np.inf)
        j = int(np.argmax(g))
        if not alive[j] or g[j] <= 0:  # cannot happen after capping; guard anyway
            status = "stuck"
            break
        rows = C.indices[C.indptr[j]:C.indptr[j + 1]]
        new = rows[~covered_rows[rows]]
        covered_rows[new] = True
        added.append(float(w[new].sum()))
        np.subtract.at(remaining, grp[new], w[new])
        drop = new[w_live[new] > 0]
        done = np.flatnonzero((remaining <= tol) & np.isin(np.arange(len(reqs)), grp[new]))
        if done.size:
            extra = np.flatnonzero(np.isin(grp, done) & (w_live > 0))
            drop = np.union1d(drop, extra)
        if drop.size:
            gains -= np.asarray(Af[drop].T @ w_live[drop]).ravel()
            w_live[drop] = 0.0
        alive[j] = False
        sites.append(j)
    added_arr = np.asarray(added)
    return SitingResult(sites, added_arr, np.cumsum(added_arr), float(len(sites)),
                        status if sites or status != "target_met" else "nothing_to_do",
                        method="greedy", capped=capped, unreachable_weight=unreachable_total,
                        time_s=time.perf_counter() - t0, details=details)


def solve_lscp(A, w, *, target_share: float, total_weight: float, covered_weight: float = 0.0,
               unit_labels=None, unit_targets=None, time_limit_s: float = 30.0) -> SitingResult:
    """Fewest new sites so covered demand (existing + new) reaches a target share (MILP).

    District-wide (one constraint ``covered_weight + sum_i w_i y_i >= target * total_weight``)
    or per unit (one such constraint per unit when ``unit_labels`` is given). Where a group's
    requirement equals all the demand the candidates can reach (e.g. a 100 % target), the
    weighted constraint is replaced by plain set-covering rows ``sum_{c covers i} x_c >= 1``,
    which is tighter and solves faster.

    Demand that no candidate can reach is reported as ``unreachable_weight``; when a target
    cannot be reached the requirement is capped at the reachable maximum and ``capped=True``.

    Parameters
    ----------
    A : scipy.sparse matrix, bool, (n_demand, n_sites)
        Coverage of the demand rows still to be covered (usually: demand not covered now).
    w : array-like
        Weights of those rows.
    target_share : float
        Target share of ``total_weight`` (0..1).
    total_weight : float
        Total demand (covered now + the rows of ``A`` + anything else counted in the share).
    covered_weight : float
        Demand already covered by existing facilities.
    unit_labels : array-like of str, optional
        Unit of each demand row; one constraint per unit.
    unit_targets : pandas.DataFrame or mapping, optional
        Per unit: ``total_weight``, ``covered_weight`` and optionally ``target_share``
        (DataFrame indexed by unit, or ``{unit: {...}}``). Without it each unit's total is the
        weight of its rows, nothing is covered yet and ``target_share`` applies.
    time_limit_s : float
        Solver time limit; when reached, the better of incumbent and greedy is returned.

    Returns
    -------
    SitingResult
        ``objective`` = number of new sites; ``bound`` = proven lower bound.
    """
    t0 = time.perf_counter()
    A, w, n_d, n_s, reqs, unreachable_total, capped, details = _lscp_prepare(
        A, w, target_share, total_weight, covered_weight, unit_labels, unit_targets)
    greedy = greedy_lscp(A, w, target_share=target_share, total_weight=total_weight,
                         covered_weight=covered_weight, unit_labels=unit_labels,
                         unit_targets=unit_targets)
    details["greedy_sites"] = len(greedy.sites)
    active = [r for r in reqs if r["need"] > _REL_TOL * max(r["total"], 1.0)]
    if not active:
        return SitingResult([], np.zeros(0), np.zeros(0), 0.0, "nothing_to_do", gap=0.0,
                            method="milp", capped=capped, unreachable_weight=unreachable_total,
                            time_s=time.perf_counter() - t0, bound=0.0, details=details)
    reach = np.diff(A.indptr) > 0
    labels = np.zeros(n_d, dtype=np.int64)
    for g, r in enumerate(reqs):
        labels[r["rows"]] = g
    use = reach & (w > 0) & np.isin(labels, [reqs.index(r) for r in active])
    A_r, w_r, lab_r, _ = _merge_rows(A[use], w[use], labels[use])
    cols = _unique_columns(A_r)
    A_r = A_r[:, cols].astype(float)
    m, n = A_r.shape
    details.update(n_rows=int(m), n_cols=int(n))
    # variables: x (n sites) then y (one per merged row of a weighted group)
    full_groups = {reqs.index(r) for r in active if r["full"]}
    cover_rows = np.isin(lab_r, list(full_groups))
    y_rows = np.flatnonzero(~cover_rows)
    n_y = y_rows.size
    cons = []
    if cover_rows.any():
        cons.append(LinearConstraint(
            sp.hstack([A_r[cover_rows], sp.csr_matrix((int(cover_rows.sum()), n_y))],
                      format="csr"), 1.0, np.inf))
    if n_y:
        Ay = A_r[y_rows]
        cons.append(LinearConstraint(
            sp.hstack([-Ay, sp.identity(n_y, format="csr")], format="csr"), -np.inf, 0.0))
        weighted = [g for g in (reqs.index(r) for r in active) if g not in full_groups]
        rows_w = []
        lbs = []
        for g in weighted:
            sel = lab_r[y_rows] == g
            row = np.zeros(n + n_y)
            row[n + np.flatnonzero(sel)] = w_r[y_rows][sel]
            rows_w.append(row)
            lbs.append(reqs[g]["need"] * (1 - _REL_TOL))
        cons.append(LinearConstraint(np.vstack(rows_w), np.asarray(lbs), np.inf))
    c = np.concatenate([np.ones(n), np.zeros(n_y)])
    integrality = np.concatenate([np.ones(n), np.zeros(n_y)])
    res = milp(c, integrality=integrality, bounds=Bounds(0, 1), constraints=cons,
               options={"time_limit": float(time_limit_s), "disp": False})
    status, limited = _milp_status(res)
    bound = float(res.mip_dual_bound) if getattr(res, "mip_dual_bound", None) is not None \
        else float("nan")
    method = "milp"
    chosen: list[int] = []
    if res.x is not None:
        chosen = cols[np.flatnonzero(res.x[:n] > 0.5)].tolist()
    if res.x is None or (greedy.status == "target_met" and len(greedy.sites) < len(chosen)):
        chosen, method = list(greedy.sites), "greedy"
    if res.status == 0:
        bound = float(np.ceil(bound - 1e-6)) if np.isfinite(bound) else float(len(chosen))
    order, added, cum = _order_by_gain(A, w, chosen)
    obj = float(len(chosen))
    gap = (obj - bound) / obj if obj > 0 and np.isfinite(bound) else 0.0
    log.info("LSCP: %s, %d sites (greedy %d), gap %.3g, %.2f s", status, len(chosen),
             len(greedy.sites), gap, time.perf_counter() - t0)
    return SitingResult(order, added, cum, obj, status, gap=max(gap, 0.0), method=method,
                        capped=capped, unreachable_weight=unreachable_total,
                        time_s=time.perf_counter() - t0, time_limited=limited, bound=bound,
                        details=details)


# ---------------------------------------------------------------------------------------------
# curve and 2SFCA


def coverage_curve(A, w, K: int, *, covered=None, exact: bool = False,
                   time_limit_s: float = 10.0) -> pd.DataFrame:
    """Covered weight as a function of the number of new sites (greedy; optionally exact per k).

    Parameters
    ----------
    A, w, covered
        As in :func:`greedy_mclp`.
    K : int
        Largest number of sites.
    exact : bool
        Also solve the MCLP exactly for every ``k`` (columns ``exact_cumulative``, ``exact_gap``);
        for small instances only.
    time_limit_s : float
        Time limit per exact solve.

    Returns
    -------
    pandas.DataFrame
        ``k, site, added, cumulative, share`` where ``share`` is
        ``(covered weight + cumulative) / total weight`` (all rows of ``w``).
    """
    A = _as_csr_bool(A)
    w = _as_weights(w, A.shape[0])
    cov = _as_mask(covered, A.shape[0])
    res = greedy_mclp(A, w, K, covered=cov)
    total = float(w.sum())
    base = float(w[cov].sum())
    df = pd.DataFrame({
        "k": np.arange(1, len(res.sites) + 1, dtype=np.int64),
        "site": np.asarray(res.sites, dtype=np.int64),
        "added": res.added_weight,
        "cumulative": res.cumulative,
    })
    df["share"] = (base + df["cumulative"]) / total if total > 0 else np.nan
    if exact:
        ex, gaps = [], []
        for k in df["k"]:
            r = solve_mclp(A, w, int(k), covered=cov, time_limit_s=time_limit_s)
            ex.append(r.objective)
            gaps.append(r.gap)
        df["exact_cumulative"] = ex
        df["exact_gap"] = gaps
    return df


def two_step_fca(cells_weight, fac_capacity, R, *, unit_labels=None, per: float = 1.0):
    """Two-step floating catchment area (2SFCA) supply-to-demand ratios.

    Step 1: each facility's ratio ``r_j = capacity_j / sum_{i reaches j} weight_i``.
    Step 2: each cell's accessibility ``a_i = sum_{j reachable from i} r_j``. Per unit the
    demand-weighted mean of ``a_i`` is reported (it equals the capacity "shared" into the unit
    per person, so the district value is total usable capacity / total demand in reach).

    Parameters
    ----------
    cells_weight : array-like (n_cells,)
        Demand per cell.
    fac_capacity : array-like (n_facilities,)
        Capacities; NaN (unknown) counts as 0 with a warning.
    R : scipy.sparse matrix (n_cells, n_facilities)
        Non-zero where the cell reaches the facility within the threshold.
    unit_labels : array-like of str, optional
        Unit of each cell, for the per-unit table.
    per : float
        Scale of the ratio (e.g. 1000 for "places per 1,000 people").

    Returns
    -------
    cell_ratio : numpy.ndarray (n_cells,)
    by_unit : pandas.DataFrame or None
        ``unit_code, demand, ratio`` (demand-weighted mean of ``cell_ratio``).
    """
    R = _as_csr_bool(R, "R").astype(np.float64)
    n_c, n_f = R.shape
    dem = _as_weights(cells_weight, n_c, "cells_weight")
    cap = np.asarray(fac_capacity, dtype=float).ravel()
    if cap.shape[0] != n_f:
        raise DataError(f"field 'fac_capacity' has {cap.shape[0]} values but R has {n_f} "
                        "facility columns: pass one capacity per facility")
    if np.isnan(cap).any():
        warnings.warn(f"2SFCA: {int(np.isnan(cap).sum())} facilities without capacity count as 0",
                      AccessibilityWarning, stacklevel=2)
        cap = np.nan_to_num(cap, nan=0.0)
    demand_in_reach = np.asarray(R.T @ dem).ravel()
    ratio = np.divide(cap, demand_in_reach, out=np.zeros(n_f), where=demand_in_reach > 0)
    cell_ratio = np.asarray(R @ ratio).ravel() * per
    by_unit = None
    if unit_labels is not None:
        lab = np.asarray(unit_labels).astype(str)
        df = pd.DataFrame({"unit_code": lab, "demand": dem, "wr": dem * cell_ratio})
        by_unit = df.groupby("unit_code", sort=True)[["demand", "wr"]].sum().reset_index()
        by_unit["ratio"] = np.where(by_unit["demand"] > 0,
                                    by_unit["wr"] / by_unit["demand"].where(by_unit["demand"] > 0),
                                    np.nan)
        by_unit = by_unit.drop(columns="wr")
    return cell_ratio, by_unit


# ---------------------------------------------------------------------------------------------
# candidates and coverage sets (need the network)


def _to_crs(gdf, crs, what: str, problems: list[str]):
    if gdf is None:
        return None
    if isinstance(gdf, gpd.GeoSeries):
        gdf = gpd.GeoDataFrame(geometry=gdf)
    elif not isinstance(gdf, gpd.GeoDataFrame):  # a shapely geometry in the network CRS
        return gpd.GeoDataFrame(geometry=[gdf], crs=crs)
    if gdf.crs is None:
        problems.append(f"layer '{what}' has no CRS: set it with gdf.set_crs(...) before siting")
        return None
    return gdf.to_crs(crs) if gdf.crs != crs else gdf


def _nearest_nodes(net, x, y):
    """Snap points to nodes with the travel-time engine's ``snap`` (KD-tree fallback)."""
    try:
        from accessibility.traveltime import snap
    except ImportError:  # engine not available: nearest node by KD-tree
        from scipy.spatial import cKDTree

        tree = cKDTree(np.column_stack([net.nodes["x"].to_numpy(), net.nodes["y"].to_numpy()]))
        d, idx = tree.query(np.column_stack([x, y]))
        return np.asarray(idx, dtype=np.int64), np.asarray(d, dtype=float)
    node, dist = snap(net, np.asarray(x, dtype=float), np.asarray(y, dtype=float))
    return np.asarray(node, dtype=np.int64), np.asarray(dist, dtype=float)


def _thin_grid(x, y, spacing_m: float) -> np.ndarray:
    """Positions of one point per grid square (the one nearest the square's centre)."""
    gx = np.floor(x / spacing_m).astype(np.int64)
    gy = np.floor(y / spacing_m).astype(np.int64)
    d2 = (x - (gx + 0.5) * spacing_m) ** 2 + (y - (gy + 0.5) * spacing_m) ** 2
    order = np.lexsort((np.arange(x.size), d2, gy, gx))  # by cell, then distance, then position
    gxs, gys = gx[order], gy[order]
    first = np.ones(order.size, dtype=bool)
    first[1:] = (gxs[1:] != gxs[:-1]) | (gys[1:] != gys[:-1])
    return np.sort(order[first])


def candidate_sites(net, units, *, spacing_m: float = 200.0, exclude=None, parcels=None,
                    boundary=None, cells=None) -> gpd.GeoDataFrame:
    """Candidate sites for new facilities: network nodes thinned to one per grid square.

    A node is eligible when it lies inside a unit (spatial join, which records its
    ``unit_code``), inside ``boundary`` (if given), outside every ``exclude`` polygon, and
    belongs to the largest connected component or to a component holding demand (nodes of
    ``cells`` with positive population, when ``cells`` has a ``node`` column). The eligible
    nodes are thinned to one per ``spacing_m`` grid square (squares anchored at the CRS origin;
    the node nearest the square's centre wins, ties by node id: deterministic).

    With ``parcels`` only planner-supplied land is used: polygon parcels keep the eligible nodes
    inside them (thinned as above); point parcels are snapped to their nearest node and each is
    kept (not thinned).

    Parameters
    ----------
    net : WalkNetwork
    units : geopandas.GeoDataFrame
        Unit polygons with ``unit_code``.
    spacing_m : float
        Grid spacing in metres.
    exclude : geopandas.GeoDataFrame, optional
        Polygons where nothing may be built (water, forest park, ...).
    parcels : geopandas.GeoDataFrame, optional
        Planner-supplied parcels (polygons or points).
    boundary : geopandas.GeoDataFrame, GeoSeries or shapely geometry, optional
        Study-area boundary.
    cells : geopandas.GeoDataFrame, optional
        Cells with ``node`` (and ``population``) columns, to keep components holding demand.

    Returns
    -------
    geopandas.GeoDataFrame
        ``site_id`` ("cand_00001", ...), ``node``, ``unit_code``, ``x``, ``y``, ``geometry``
        (projected, ``net.crs``), ordered by node id.
    """
    problems: list[str] = []
    if not spacing_m or spacing_m <= 0:
        problems.append(f"field 'spacing_m' is {spacing_m!r}: use a positive number of metres")
    if "unit_code" not in getattr(units, "columns", []):
        problems.append("units: field 'unit_code' is missing: load units with accessibility.units")
    crs = net.crs
    units_p = _to_crs(units, crs, "units", problems)
    excl_p = _to_crs(exclude, crs, "exclude", problems)
    parc_p = _to_crs(parcels, crs, "parcels", problems)
    bnd_p = _to_crs(boundary, crs, "boundary", problems)
    if problems:
        err = CRSMismatchError if all("CRS" in p for p in problems) else DataError
        raise err(problems_message("candidate_sites", problems))
    nodes = net.nodes
    comp = nodes["component"].to_numpy() if "component" in nodes.columns \
        else np.zeros(len(nodes), dtype=np.int64)
    keep_comp = {0}
    if cells is not None and "node" in cells.columns:
        cn = np.asarray(cells["node"].to_numpy(), dtype=float)
        pop = cells["population"].to_numpy(dtype=float) if "population" in cells.columns \
            else np.ones(len(cells))
        ok = np.isfinite(cn) & (cn >= 0) & (pop > 0)
        keep_comp |= set(np.unique(comp[cn[ok].astype(np.int64)]).tolist())
    eligible = np.isin(comp, list(keep_comp))
    pts = gpd.GeoDataFrame({"node": np.arange(len(nodes), dtype=np.int64)},
                           geometry=gpd.points_from_xy(nodes["x"], nodes["y"]), crs=crs)
    if bnd_p is not None:
        eligible &= pts.within(bnd_p.union_all()).to_numpy()
    if excl_p is not None and len(excl_p):
        eligible &= ~pts.intersects(excl_p.union_all()).to_numpy()
    j = gpd.sjoin(pts[eligible], units_p[["unit_code", "geometry"]], how="inner",
                  predicate="within")
    j = j.sort_values(["node", "unit_code"]).drop_duplicates("node")
    unit_of = pd.Series(j["unit_code"].astype(str).to_numpy(), index=j["node"].to_numpy())
    in_unit = np.zeros(len(nodes), dtype=bool)
    in_unit[unit_of.index.to_numpy()] = True
    x = nodes["x"].to_numpy(dtype=float)
    y = nodes["y"].to_numpy(dtype=float)
    if parc_p is not None:
        geom_type = parc_p.geometry.geom_type
        poly = parc_p[geom_type.isin(["Polygon", "MultiPolygon"])]
        pnt = parc_p[geom_type.isin(["Point", "MultiPoint"])]
        chosen = np.zeros(0, dtype=np.int64)
        if len(poly):
            inside = in_unit & pts.within(poly.union_all()).to_numpy()
            idx = np.flatnonzero(inside)
            chosen = idx[_thin_grid(x[idx], y[idx], spacing_m)]
        if len(pnt):
            p = pnt.geometry.explode(index_parts=False)
            sn, _ = _nearest_nodes(net, p.x.to_numpy(), p.y.to_numpy())
            sn = sn[(sn >= 0)]
            sn = sn[in_unit[sn]]
            chosen = np.union1d(chosen, sn)
        chosen = np.unique(chosen)
    else:
        idx = np.flatnonzero(in_unit)
        chosen = idx[_thin_grid(x[idx], y[idx], spacing_m)]
    chosen = np.sort(chosen)
    out = gpd.GeoDataFrame({
        "site_id": [f"cand_{i + 1:05d}" for i in range(chosen.size)],
        "node": chosen.astype(np.int64),
        "unit_code": unit_of.reindex(chosen).to_numpy().astype(str) if chosen.size
        else np.zeros(0, dtype=str),
        "x": x[chosen], "y": y[chosen],
    }, geometry=gpd.points_from_xy(x[chosen], y[chosen]), crs=crs)
    log.info("candidate sites: %d of %d nodes (spacing %g m)", len(out), len(nodes), spacing_m)
    return out


def _ensure_snapped(net, cells):
    if "node" in cells.columns and "snap_m" in cells.columns:
        return (np.asarray(cells["node"].to_numpy(), dtype=float),
                cells["snap_m"].to_numpy(dtype=float))
    node, dist = _nearest_nodes(net, cells.geometry.x.to_numpy(), cells.geometry.y.to_numpy())
    return node.astype(float), dist


def coverage_sets(net, cells, candidates, rule, *, progress: bool = False,
                  batch_size: int = 256) -> sp.csr_matrix:
    """Which cells each candidate site would cover: a sparse bool ``n_cells x n_candidates``.

    Cell ``i`` is covered by candidate ``c`` iff
    ``rule.within(walk_i + d(node_i -> node_c) + walk_c)`` where ``walk = rule.walk(snap_m)``
    (the profile's flat speed; ``inf`` beyond ``rule.max_snap_m``) and ``d`` the directed network
    cost on ``rule.weight``. Candidates sitting on nodes have no walk (``walk_c = 0``); a ``snap_m``
    column on ``candidates`` is used as their walk otherwise.

    One batched bounded search over all candidates, then the same pair test as coverage
    (:func:`accessibility.coverage._reach_pairs`): a cell is coverable by a site exactly when
    coverage would call it covered by a facility there. With the run's rule
    (:func:`accessibility.rules.circle_rule` without overrides) the sets agree with the run.

    Parameters
    ----------
    net : WalkNetwork
    cells : geopandas.GeoDataFrame
        Cells; ``node`` and ``snap_m`` are added by snapping when absent (``node < 0``: not
        snapped, covered by nothing).
    candidates : geopandas.GeoDataFrame
        With ``node`` (and optionally ``snap_m``).
    rule : CircleRule
        Threshold, weight column, walks and snap limit of the circle.
    progress : bool
        Progress bar of the search.
    batch_size : int
        Sources per bounded search batch.

    Returns
    -------
    scipy.sparse.csr_matrix
        Bool, rows aligned to ``cells`` (positional), columns to ``candidates``.

    Examples
    --------
    >>> import pandas as pd
    >>> from accessibility.demo import example_grid
    >>> g = example_grid()
    >>> sites = pd.DataFrame({"node": [0, 3]})
    >>> coverage_sets(g.net, g.cells, sites, g.rules["shop"]).toarray().tolist()
    [[True, False], [True, False], [False, True]]
    """
    from accessibility.coverage import _reach_pairs
    from accessibility.rules import as_rules

    (rule,) = as_rules(rule)
    problems = []
    if rule.weight not in net.edges.columns:
        problems.append(f"network edges have no field '{rule.weight}': build the network with profile "
                        f"{rule.profile!r} (network.build_walk_network)")
    if "node" not in candidates.columns:
        problems.append("candidates: field 'node' is missing: make them with candidate_sites()")
    if problems:
        raise DataError(problems_message("coverage_sets", problems))
    node_c, snap_c = _ensure_snapped(net, cells)
    walk_c = rule.walk(snap_c)
    n_cells, n_cand = len(cells), len(candidates)
    if n_cand == 0 or n_cells == 0:
        return sp.csr_matrix((n_cells, n_cand), dtype=bool)
    cand_nodes = candidates["node"].to_numpy().astype(np.int64)
    offsets = (rule.walk(candidates["snap_m"].to_numpy(dtype=float))
               if "snap_m" in candidates.columns else np.zeros(n_cand))
    ok = np.isfinite(node_c) & (node_c >= 0) & np.isfinite(walk_c)
    cell, cand = _reach_pairs(net, rule, cand_nodes, offsets, np.where(ok, node_c, 0).astype(np.int64),
                              np.where(ok, walk_c, np.inf), progress=progress, batch_size=batch_size)
    A = sp.csr_matrix((np.ones(cell.size, dtype=bool), (cell, cand)), shape=(n_cells, n_cand))
    log.info("coverage sets: %d cells x %d candidates, %d pairs", n_cells, n_cand, A.nnz)
    return A


# ---------------------------------------------------------------------------------------------
# high level


def _lonlat(x, y, crs):
    from pyproj import Transformer

    tr = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
    lon, lat = tr.transform(np.asarray(x, dtype=float), np.asarray(y, dtype=float))
    return np.asarray(lon), np.asarray(lat)


@dataclass(frozen=True)
class SitingOptions:
    """How :func:`site_circle` searches: ranking length, method, time limits, the all-units row.

    ``SitingOptions.from_config(config)`` gives the run's settings (``siting:`` of the area
    configuration and its district row); the plain defaults are those of an empty ``siting:``.

    Examples
    --------
    >>> SitingOptions(k_max=5).method
    'auto'
    """

    k_max: int = 30
    method: str = "auto"
    time_limit_s: float = 30.0
    max_milp_nnz: int = 400_000
    district_code: str = "DISTRICT"
    district_name: str = "whole area"
    progress: bool = False

    def __post_init__(self):
        if self.method not in ("auto", "greedy", "milp"):
            raise DataError(f"site_circle: method={self.method!r}; use 'auto', 'greedy' or 'milp'")
        if int(self.k_max) < 0:
            raise DataError(f"site_circle: k_max={self.k_max!r} must be 0 or more")

    @classmethod
    def from_config(cls, config, **overrides) -> SitingOptions:
        """The run's options: ``config.siting`` (max_new_sites, time_limit_s) and the district row."""
        base = {"k_max": int(config.siting.max_new_sites), "time_limit_s": float(config.siting.time_limit_s),
                "district_code": str(config.district_code), "district_name": district_names(config)[0]}
        return cls(**{**base, **{k: v for k, v in overrides.items() if v is not None}})


def site_circle(cells, results, net, candidates, rule, *, options: SitingOptions | None = None,
                units=None, facilities=None) -> dict:
    """Where to build for one circle: ranked new sites, sites needed per unit, a layer of sites.

    Demand is ``cells[rule.demand_column]`` of cells not covered now
    (``results[f"{rule.id}_covered"]``); coverage sets come from :func:`coverage_sets` with the
    same rule, so a site covers a cell exactly when coverage would say so.

    Parameters
    ----------
    cells, results : DataFrames aligned on the same index (cells contract; per-cell results).
    net : WalkNetwork
    candidates : geopandas.GeoDataFrame
        From :func:`candidate_sites`.
    rule : CircleRule
        The circle's rule (:func:`accessibility.rules.circle_rule`).
    options : SitingOptions, optional
        Ranking length ``k_max``, ``method`` (``greedy``: nested greedy ranking; ``milp``: exact
        ``k_max`` set ordered by gain; ``auto``: greedy ranking plus an exact solve for ``k_max``
        when the coverage matrix has at most ``max_milp_nnz`` entries), ``time_limit_s`` (MILP
        limit of the ranking and of the all-units LSCP; each unit's own LSCP gets
        ``max(2, time_limit_s / n_units)``) and the all-units row's code and name. The run uses
        ``SitingOptions.from_config(config)``.
    units : geopandas.GeoDataFrame, optional
        For unit names in ``lscp_by_unit``.
    facilities : geopandas.GeoDataFrame, optional
        Existing facilities (only counted for the summary; coverage comes from ``results``).

    Returns
    -------
    dict
        ``curve`` (rank, site_id, unit_code, lon, lat, added_covered_population,
        cumulative_covered_population, cumulative_coverage_share), ``lscp_by_unit`` (unit_code,
        unit_name, population, covered_now, target, sites_needed, reachable_max_share, capped,
        method, gap), ``sites`` (GeoDataFrame of the ranked sites, projected geometry plus
        lon/lat), ``exact_sites`` (the exact best set of ``k_max`` sites when it was solved beside
        a greedy ranking, else None: order, site_id, unit_code, lon, lat, added and cumulative
        covered population, greedy_rank (NA when the ranking's first ``k_max`` leave it out)),
        ``summary`` (dict).
    """
    from accessibility.rules import as_rules

    (rule,) = as_rules(rule)
    opt = options if options is not None else SitingOptions()
    circle = rule.circle
    k_max, method, time_limit_s, progress = opt.k_max, opt.method, opt.time_limit_s, opt.progress
    t0 = time.perf_counter()
    cov_col = f"{circle.id}_covered"
    problems = []
    if circle.weight_column not in cells.columns:
        problems.append(f"cells: field '{circle.weight_column}' missing: run population first")
    if cov_col not in results.columns:
        problems.append(f"results: field '{cov_col}' missing: run coverage.cell_results first")
    if "unit_code" not in cells.columns:
        problems.append("cells: field 'unit_code' missing")
    if problems:
        raise DataError(problems_message("site_circle", problems))
    w_all = cells[circle.weight_column].to_numpy(dtype=float)
    w_all = np.nan_to_num(w_all, nan=0.0)
    covered_now = results[cov_col].reindex(cells.index).fillna(False).to_numpy(dtype=bool)
    unit_all = cells["unit_code"].astype(str).to_numpy()
    demand = (~covered_now) & (w_all > 0)
    A_all = coverage_sets(net, cells, candidates, rule, progress=progress)
    A = A_all[np.flatnonzero(demand)]
    w = w_all[demand]
    units_d = unit_all[demand]
    total = float(w_all.sum())
    covered_w = float(w_all[covered_now].sum())

    # ranking
    greedy = greedy_mclp(A, w, k_max)
    chosen = greedy
    exact = None
    if method == "milp" or (method == "auto" and A.nnz <= opt.max_milp_nnz):
        exact = solve_mclp(A, w, k_max, time_limit_s=time_limit_s)
        if method == "milp":
            chosen = exact
    sites_idx = np.asarray(chosen.sites, dtype=np.int64)
    cand = candidates.iloc[sites_idx]
    curve = _site_table(candidates, chosen, net.crs, "rank")
    curve["cumulative_coverage_share"] = ((covered_w + curve["cumulative_covered_population"])
                                          / total if total > 0 else np.nan)
    sites = gpd.GeoDataFrame(
        curve.assign(node=cand["node"].to_numpy(), x=cand["x"].to_numpy(),
                     y=cand["y"].to_numpy(), circle=circle.id),
        geometry=gpd.points_from_xy(cand["x"], cand["y"]), crs=net.crs)
    # the exact best set of k_max sites, when it was solved beside the greedy ranking: the ranking
    # is nested (the first k are the advice for any budget k), the exact set is the advice for
    # exactly k_max; both are published so a planner sees where they differ
    exact_sites = None
    # (only a set the solver produced: on a time limit or an oversized model solve_mclp hands back
    # the greedy set, which must not be published as "exact")
    if exact is not None and chosen is not exact and exact.method == "milp" and len(exact.sites):
        g_rank = {int(c): r + 1 for r, c in enumerate(sites_idx)}
        exact_sites = _site_table(candidates, exact, net.crs, "order").assign(
            greedy_rank=pd.array([g_rank.get(int(c)) for c in exact.sites], dtype="Int64"))

    # sites needed per unit (each unit alone) and for all units together
    names = {}
    if units is not None and "unit_name" in units.columns:
        names = dict(zip(units["unit_code"].astype(str), units["unit_name"].astype(str),
                         strict=False))
    rows = []
    unit_tab = pd.DataFrame({"u": unit_all, "w": w_all, "c": covered_now})
    per_unit = {}
    n_units = max(1, unit_tab["u"].nunique())
    unit_limit_s = max(2.0, float(time_limit_s) / n_units)
    for code, g in unit_tab.groupby("u", sort=True):
        tot_u = float(g["w"].sum())
        cov_u = float(g.loc[g["c"], "w"].sum())
        per_unit[code] = {"total_weight": tot_u, "covered_weight": cov_u}
        sel = units_d == code
        res = _lscp(A[np.flatnonzero(sel)], w[sel],
                    {"target_share": circle.target_share, "total_weight": tot_u, "covered_weight": cov_u},
                    time_limit_s=unit_limit_s, method=method)
        rows.append(_lscp_row(code, names.get(code, code), tot_u, cov_u, circle.target_share,
                              res))
    res_all = _lscp(A, w, {"target_share": circle.target_share, "total_weight": total,
                           "covered_weight": covered_w, "unit_labels": units_d,
                           "unit_targets": pd.DataFrame.from_dict(per_unit, orient="index")},
                    time_limit_s=time_limit_s, method=method)
    rows.append(_lscp_row(opt.district_code, opt.district_name, total, covered_w, circle.target_share,
                          res_all))
    lscp_by_unit = pd.DataFrame(rows)
    summary = {
        "circle": circle.id,
        "n_candidates": int(len(candidates)),
        "n_existing_facilities": (int((rule.facility_mask(facilities)
                                       if "circles" in facilities.columns else np.ones(len(facilities))).sum())
                                  if facilities is not None and len(facilities) else 0),
        "demand_total": total,
        "covered_now": covered_w,
        "share_now": covered_w / total if total > 0 else float("nan"),
        "uncovered_demand": float(w.sum()),
        "unreachable_by_candidates": greedy.unreachable_weight,
        "k_max": int(k_max),
        "ranking_method": chosen.method,
        "greedy_covered_k_max": greedy.objective,
        "exact_covered_k_max": exact.objective if exact is not None else None,
        "exact_bound_k_max": exact.bound if exact is not None else None,
        "exact_gap_k_max": exact.gap if exact is not None else None,
        "exact_status": exact.status if exact is not None else None,
        "sites_needed_all_units": int(res_all.objective),
        "sites_needed_method": res_all.method,
        "sites_needed_gap": res_all.gap,
        "capped": bool(res_all.capped),
        "time_s": time.perf_counter() - t0,
    }
    return {"curve": curve, "lscp_by_unit": lscp_by_unit, "sites": sites, "exact_sites": exact_sites,
            "summary": summary}


def _site_table(candidates, result: SitingResult, crs, first: str) -> pd.DataFrame:
    """One row per picked site, in pick order: ``first`` (1..k), site_id, unit_code, lon, lat,
    added and cumulative covered population."""
    idx = np.asarray(result.sites, dtype=np.int64)
    cand = candidates.iloc[idx]
    lon, lat = _lonlat(cand["x"], cand["y"], crs)
    return pd.DataFrame({
        first: np.arange(1, idx.size + 1, dtype=np.int64),
        "site_id": cand["site_id"].astype(str).to_numpy(),
        "unit_code": cand["unit_code"].astype(str).to_numpy(),
        "lon": lon, "lat": lat,
        "added_covered_population": result.added_weight,
        "cumulative_covered_population": result.cumulative,
    })


def _lscp(A, w, kw: dict, *, time_limit_s: float, method: str):
    """LSCP by ``method`` (greedy, or the MILP with a time limit); ``kw``: the demand and targets
    (``target_share``, ``total_weight``, ``covered_weight``, optionally ``unit_labels``/``unit_targets``)."""
    if method == "greedy":
        return greedy_lscp(A, w, **kw)
    return solve_lscp(A, w, time_limit_s=time_limit_s, **kw)


def _lscp_row(code, name, tot, cov, share, res: SitingResult) -> dict:
    units = res.details.get("units", {})
    if len(units) == 1:
        reach_max = next(iter(units.values()))["reachable_max_share"]
    else:  # several units: district-wide reachable maximum
        reach_max = ((cov + sum(u["total"] * u["reachable_max_share"] - u["covered"]
                                for u in units.values())) / tot) if tot > 0 else float("nan")
    return {"unit_code": str(code), "unit_name": name, "population": tot, "covered_now": cov,
            "covered_share_now": cov / tot if tot > 0 else float("nan"), "target": share,
            "sites_needed": int(res.objective), "reachable_max_share": reach_max,
            "capped": bool(res.capped), "unreachable_population": res.unreachable_weight,
            "method": res.method, "gap": res.gap}


def evaluate_scenario(cells, results, net, planned, circle, config, *,
                      units=None, progress: bool = False) -> pd.DataFrame:
    """Coverage per unit before and after a set of planned projects for one circle.

    The planned sites are snapped to the network (their snap distance becomes their walk from
    the network) and their coverage sets are computed with :func:`coverage_sets`; a cell is
    covered after if it was covered before or a planned site covers it. (For circles with
    ``min_reachable > 1`` this is a lower bound: counts are not recomputed.)

    Parameters
    ----------
    cells, results, net, circle, config
        As in :func:`site_circle`.
    planned : geopandas.GeoDataFrame
        Planned project points (any CRS; reprojected), optionally a ``circles`` column
        (``;``-joined ids): rows naming other circles are ignored.
    units : geopandas.GeoDataFrame, optional
        For unit names.

    Returns
    -------
    pandas.DataFrame
        ``unit_code, unit_name, population, covered_before, covered_after, share_before,
        share_after, gain`` plus a district row (``config.district_code``).
    """
    problems: list[str] = []
    planned = _to_crs(planned, net.crs, "planned", problems)
    if problems:
        raise CRSMismatchError(problems_message("evaluate_scenario", problems))
    (rule,) = as_rules(circle, config)
    circle = rule.circle
    if "circles" in planned.columns:
        planned = planned[rule.facility_mask(planned)]
    w_all = np.nan_to_num(cells[circle.weight_column].to_numpy(dtype=float), nan=0.0)
    before = results[f"{circle.id}_covered"].reindex(cells.index).fillna(False).to_numpy(bool)
    after = before.copy()
    if len(planned):
        node, dist = _nearest_nodes(net, planned.geometry.x.to_numpy(),
                                    planned.geometry.y.to_numpy())
        cand = pd.DataFrame({"node": node, "snap_m": dist})
        A = coverage_sets(net, cells, cand, rule, progress=progress)
        after |= np.diff(A.indptr) > 0
    names = {str(getattr(config, "district_code", "DISTRICT")): district_names(config)[0]}
    if units is not None and "unit_name" in units.columns:
        names.update(zip(units["unit_code"].astype(str), units["unit_name"].astype(str),
                         strict=False))
    df = pd.DataFrame({"unit_code": cells["unit_code"].astype(str).to_numpy(), "w": w_all,
                       "b": w_all * before, "a": w_all * after})
    g = df.groupby("unit_code", sort=True)[["w", "b", "a"]].sum().reset_index()
    tot = g[["w", "b", "a"]].sum()
    g = pd.concat([g, pd.DataFrame([{"unit_code": getattr(config, "district_code", "DISTRICT"),
                                     **tot.to_dict()}])], ignore_index=True)
    out = pd.DataFrame({
        "unit_code": g["unit_code"],
        "unit_name": [names.get(c, c) for c in g["unit_code"]],
        "population": g["w"], "covered_before": g["b"], "covered_after": g["a"],
    })
    denom = out["population"].where(out["population"] > 0)
    out["share_before"] = out["covered_before"] / denom
    out["share_after"] = out["covered_after"] / denom
    out["gain"] = out["covered_after"] - out["covered_before"]
    return out

