"""Where to build: candidate sites, coverage sets and coverage-location models.

The models are pure functions on a coverage matrix ``A`` (``scipy.sparse.csr_matrix``, bool,
``n_demand x n_sites``: ``A[i, c]`` is true when site ``c`` would cover demand point ``i``) and a
vector of demand weights ``w``:

* :func:`greedy_mclp` - the nested greedy ranking "the next best site" (exact marginal gains,
  updated incrementally, ``O(nnz(A))`` in total);
* :func:`solve_mclp` - the maximal covering location problem solved exactly: exact
  reductions, its LP relaxation by column generation (a certified bound; usually integral on
  coverage matrices, which proves the set optimal), else reduced-cost fixing and a MILP
  (``scipy.optimize.milp``, HiGHS) within a node limit;
* :func:`solve_lscp` / :func:`greedy_lscp` - the fewest new sites so the covered share reaches a
  target, district-wide and per unit, capped at what the candidates can reach (set-cover
  reductions and independent parts before the MILP);
* :func:`solve_capacitated_mclp` / :func:`greedy_capacitated_mclp` - the same question when a
  site can serve only so many (beds, places): demand may be split between sites in reach, the
  served demand is maximised (not wired into the pipeline);
* :func:`coverage_curve` - covered weight as a function of the number of new sites;
* :func:`two_step_fca` - supply-per-demand ratios (2SFCA) where facilities have capacities.

:func:`candidate_sites` thins network nodes into candidate sites, :func:`coverage_sets` builds
``A`` from the walking network with one batched bounded search, and :func:`site_circle` runs the
whole question for one circle (ranking curve, sites needed per unit, picked sites as a layer).

No clock limits an answer: the exact models stop on work limits (:class:`SolverLimits`: HiGHS
branch-and-bound nodes, column-generation rounds), so the same inputs give the same sites on any
machine under any load; a time limit remains only as a safety net, and reaching it is logged as an
error (the result is then marked not reproducible). :func:`proof_label` is the one place that
words how good a result is: only proven optima are called optimal.
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
    "solver_started",
    "DEFAULT_LIMITS",
    "SitingOptions",
    "SitingResult",
    "SolverLimits",
    "candidate_sites",
    "coverage_curve",
    "coverage_sets",
    "evaluate_scenario",
    "planned_before_after",
    "greedy_capacitated_mclp",
    "greedy_lscp",
    "greedy_mclp",
    "proof_label",
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
        ``"optimal"`` (proven: gap <= 1e-6), ``"node_limit"`` / ``"gap_limit"`` (best found,
        see ``gap``), ``"time_limit"`` (the safety net stopped it: not reproducible),
        ``"too_large"``, ``"greedy"``, ``"target_met"``, ``"nothing_to_do"``, or the solver's
        message when it failed. Word it with :func:`proof_label`.
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
        The safety-net time limit stopped a solver (the result depends on the machine).
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


def _undominated_columns(A: sp.csr_matrix) -> np.ndarray:
    """Sorted indices of the columns no other column dominates (exact for covering models).

    Column ``j`` is dominated when the rows it covers are a subset of another column's: in a
    covering model with equal site costs, swapping ``j`` for the other never covers less. Of
    identical columns the lowest index is kept; empty columns are dropped. (For uniqueness
    only, on many columns: ``A.T @ A`` counts the common rows of every pair of columns.)
    """
    C = sp.csc_matrix(A, dtype=np.int32)
    size = np.diff(C.indptr)
    M = (C.T @ C).tocoo()
    sub = (M.row != M.col) & (M.data == size[M.row])  # rows(j) subset of rows(k)
    j, k = M.row[sub], M.col[sub]
    drop = np.zeros(C.shape[1], dtype=bool)
    drop[j[(size[j] < size[k]) | (j > k)]] = True
    drop |= size == 0
    return np.flatnonzero(~drop)


def _dominated_rows(B: sp.csr_matrix) -> np.ndarray:
    """Rows whose columns include all columns of another row (of identical rows, all but the
    first): in "cover every row", covering the other row covers them."""
    Bi = sp.csr_matrix(B, dtype=np.int32)
    size = np.diff(Bi.indptr)
    M = (Bi @ Bi.T).tocoo()
    sub = (M.row != M.col) & (M.data == size[M.row])  # cols(r) subset of cols(i)
    r, i = M.row[sub], M.col[sub]
    drop = np.zeros(B.shape[0], dtype=bool)
    drop[i[(size[r] < size[i]) | (i > r)]] = True
    return drop


def _reduce_set_cover(A: sp.csr_matrix):
    """Shrink "cover every row with the fewest columns" without changing its optimum.

    Repeats until nothing changes: a row only one column covers fixes that column (and every
    row it covers is done); a column whose rows are a subset of another's is dropped; a row
    whose columns include all columns of another row is dropped (covering the other covers
    it). Returns ``(fixed, rows, cols)``: fixed column indices, and the rows and columns of
    the remaining core, all as indices into ``A`` (sorted).
    """
    B = sp.csr_matrix(A, dtype=bool)
    rows = np.arange(B.shape[0])
    cols = np.arange(B.shape[1])
    fixed: list[np.ndarray] = []
    while B.shape[0]:
        deg = np.diff(B.indptr)
        single = np.flatnonzero(deg == 1)
        if single.size:
            ess = np.unique(B.indices[B.indptr[single]])
            fixed.append(cols[ess])
            done = np.diff(B[:, ess].tocsr().indptr) > 0
            keep_c = np.ones(B.shape[1], dtype=bool)
            keep_c[ess] = False
            B, rows, cols = B[~done][:, keep_c].tocsr(), rows[~done], cols[keep_c]
            continue
        n_cols = B.shape[1]
        keep_c = _undominated_columns(B)
        B, cols = B[:, keep_c].tocsr(), cols[keep_c]
        drop_r = _dominated_rows(B)
        if not drop_r.any() and keep_c.size == n_cols:
            break
        B, rows = B[~drop_r], rows[~drop_r]
    fixed_all = np.sort(np.concatenate(fixed)) if fixed else np.zeros(0, dtype=np.int64)
    return fixed_all, rows, cols


def _components(B: sp.csr_matrix) -> list[tuple[np.ndarray, np.ndarray]]:
    """(rows, cols) of each connected part of the row-column graph of ``B``, in column order."""
    from scipy.sparse.csgraph import connected_components

    m, n = B.shape
    if m == 0:
        return []
    G = sp.bmat([[None, sp.csr_matrix(B, dtype=np.int8)], [sp.csr_matrix(B.T, dtype=np.int8), None]],
                format="csr")
    _, lab = connected_components(G, directed=False)
    out = []
    for comp in np.unique(lab[m:]):  # every kept row has a column, so comps are those of columns
        out.append((np.flatnonzero(lab[:m] == comp), np.flatnonzero(lab[m:] == comp)))
    out.sort(key=lambda rc: int(rc[1][0]))
    return out


# ---------------------------------------------------------------------------------------------
# solver work limits (never the clock)


@dataclass(frozen=True)
class SolverLimits:
    """Work limits of the exact models: the same inputs give the same answer on any machine.

    Attributes
    ----------
    node_limit : int
        Largest number of branch-and-bound nodes HiGHS explores per MILP (a count of work, not
        of time). When it is reached, the best set found is returned with the bound HiGHS
        proved and the gap (``status="node_limit"``): reproducible, but not proven optimal.
    time_limit_s : float
        Safety net only, far above what the models need. Reaching it makes the answer depend
        on the machine's speed and load: it is logged as an error and the result is marked
        ``status="time_limit"`` (not reproducible).
    mip_rel_gap : float
        Relative gap at which HiGHS stops. A result is called proven optimal only when its gap
        to the proven bound is at most 1e-6, whatever this value; a larger tolerance gives
        "best found" results (``status="gap_limit"``).
    lp_rounds : int
        Largest number of column-generation rounds of the MCLP's LP relaxation (see
        :func:`solve_mclp`).
    """

    node_limit: int = 10_000
    time_limit_s: float = 600.0
    mip_rel_gap: float = 1e-6
    lp_rounds: int = 200

    def __post_init__(self):
        problems = []
        if not (isinstance(self.node_limit, (int, np.integer)) and self.node_limit >= 1):
            problems.append(f"field 'node_limit' is {self.node_limit!r}: use a whole number >= 1")
        if not (np.isfinite(self.time_limit_s) and self.time_limit_s > 0):
            problems.append(f"field 'time_limit_s' is {self.time_limit_s!r}: use a positive number of "
                            "seconds (a safety net, e.g. 600)")
        if not (0 <= self.mip_rel_gap < 1):
            problems.append(f"field 'mip_rel_gap' is {self.mip_rel_gap!r}: use a share in [0, 1)")
        if not (isinstance(self.lp_rounds, (int, np.integer)) and self.lp_rounds >= 1):
            problems.append(f"field 'lp_rounds' is {self.lp_rounds!r}: use a whole number >= 1")
        if problems:
            raise DataError(problems_message("siting solver limits", problems))


DEFAULT_LIMITS = SolverLimits()
#: Coverage-set matrices remembered per network (distinct walking rules x candidate sets).
_COVERAGE_SETS_MEMO = 4


_SOLVER = {"started": False}


def solver_started() -> bool:
    """Whether this process has run a HiGHS solve (then a forked child must not run one)."""
    return _SOLVER["started"]


def _run_milp(c, integrality, constraints, limits: SolverLimits, what: str, *, bounds=None):
    """``scipy.optimize.milp`` under ``limits``; returns ``(res, status)``.

    ``status`` is ``"optimal"``, ``"node_limit"``, ``"time_limit"`` (logged as an error: the
    answer then depends on the machine) or the solver's message.
    """
    _SOLVER["started"] = True
    res = milp(c, integrality=integrality, bounds=Bounds(0, 1) if bounds is None else bounds,
               constraints=constraints,
               options={"node_limit": int(limits.node_limit), "time_limit": float(limits.time_limit_s),
                        "mip_rel_gap": float(limits.mip_rel_gap), "disp": False})
    if res.status == 0:
        return res, "optimal"
    if res.status == 1 and "time limit" in str(res.message).lower():
        log.error("%s: the safety-net time limit of %g s stopped the solver: this result depends on "
                  "the machine's speed and load and is NOT REPRODUCIBLE; raise siting.time_limit_s "
                  "(or lower siting.node_limit)", what, limits.time_limit_s)
        return res, "time_limit"
    msg = str(res.message).lower()
    if res.status == 1 or "solution limit" in msg or "node limit" in msg:  # HiGHS 16: node limit
        return res, "node_limit"
    return res, f"solver status {res.status}: {res.message}"


#: Largest relative gap between a result and its proven bound that is called proven optimal.
_PROOF_GAP = 1e-6

_WORST = {"optimal": 0, "nothing_to_do": 0, "gap_limit": 1, "node_limit": 1, "greedy": 1, "time_limit": 2}


def _worst_status(statuses) -> str:
    """The status of a result put together from parts: its least proven part's."""
    out = "optimal"
    for s in statuses:
        if _WORST.get(s, 3) > _WORST.get(out, 3):
            out = s
    return out


def proof_label(status: str, gap: float, *, method: str = "milp") -> tuple[str, str]:
    """What a published siting number is, as ``(zh, en)`` words.

    The one place that words a result's quality: only a proven optimum is called optimal;
    anything else is "best found" with its gap to the proven bound and why the search stopped.

    Examples
    --------
    >>> proof_label("optimal", 0.0)
    ('已证最优', 'proven optimal')
    >>> proof_label("node_limit", 0.05)[1]
    'best found, at most 5.0% from the proven bound (node limit reached)'
    """
    if status in ("optimal", "nothing_to_do") and (gap is None or not np.isfinite(gap) or gap <= _PROOF_GAP):
        return ("已证最优", "proven optimal") if status == "optimal" else ("无需新增", "nothing to add")
    reasons = {
        "node_limit": ("达到节点上限", "node limit reached"),
        "gap_limit": ("达到间隙容差", "stopped at the gap tolerance"),
        "too_large": ("模型过大，未精确求解", "model too large for the exact solver"),
        "time_limit": ("安全时限中断，结果不可复现", "safety-net time limit: NOT REPRODUCIBLE"),
        "greedy": ("贪心", "greedy"),
        "max_sites": ("达到选址上限", "site limit reached"),
    }
    if status in reasons:
        reason = reasons[status]
    elif method == "greedy":
        reason = reasons["greedy"]
    else:
        reason = ("求解器未完成", f"solver stopped: {status}")
    if gap is None or not np.isfinite(gap):
        return (f"最佳可行解，未知间隙（{reason[0]}）", f"best found, gap unknown ({reason[1]})")
    return (f"最佳可行解，距已证界限不超过 {gap:.1%}（{reason[0]}）",
            f"best found, at most {gap:.1%} from the proven bound ({reason[1]})")


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


def _top_sum(P: np.ndarray, k: int) -> float:
    """Sum of the ``k`` largest entries of ``P`` that are positive."""
    P = np.clip(P, 0.0, None)
    if k >= P.size:
        return float(P.sum())
    return float(np.partition(P, P.size - k)[P.size - k:].sum()) if k > 0 else 0.0


def _mclp_bound(A: sp.csr_matrix, w: np.ndarray, p: np.ndarray, k: int) -> tuple[float, np.ndarray]:
    """Upper bound on any ``k``-site coverage from row prices ``0 <= p <= w`` (and ``A.T @ p``).

    For every set ``S`` of at most ``k`` sites, ``covered(S) <= sum(w - p) + sum_{c in S} P_c``
    with ``P = A.T @ p`` (a row's weight is its price plus the rest, and a covered row's price
    is paid by at least one site of ``S``), hence ``<= sum(w - p) + the k largest P``. The
    prices of an optimal LP dual make this the LP optimum; any prices give a valid bound.
    """
    p = np.clip(p, 0.0, w)
    P = np.asarray(A.T.astype(np.float64) @ p).ravel()
    return float((w - p).sum()) + _top_sum(P, k), P


def _mclp_lp(A: sp.csr_matrix, w: np.ndarray, k: int, start, limits: SolverLimits,
             *, max_rounds: int = 200) -> dict:
    """LP relaxation of the MCLP by column generation, with a certified bound.

    The restricted LP holds the ``start`` sites (and those added so far) and only the rows they
    cover, merged where they have the same sites among them; its row prices (duals), with
    ``p_i = w_i`` for rows none of them covers, price every other site: sites whose price sum
    exceeds the cardinality price are added (largest first), until none does. Every round is
    deterministic work; the bound of :func:`_mclp_bound` is recomputed from the prices, so it
    does not rely on the LP solver's claim of optimality.

    Returns a dict with ``x`` (site -> LP value, sites of the restricted LP), ``lp`` (its
    value), ``bound`` (certified, best over the rounds), ``prices`` (for that bound),
    ``rounds`` and ``converged``.
    """
    from scipy.optimize import linprog

    m, n = A.shape
    sel = np.unique(np.asarray(start, dtype=np.int64))
    batch = max(int(k), 50)
    best = {"bound": np.inf}
    x_sel, lp_val, rounds, converged = {}, 0.0, 0, False
    for rounds in range(1, max_rounds + 1):  # noqa: B007 (rounds is reported)
        sub = A[:, sel].tocsr()
        rows = np.flatnonzero(np.diff(sub.indptr) > 0)
        As, ws, _, grp = _merge_rows(sub[rows], w[rows])
        mg, ns = As.shape
        M = sp.vstack([sp.hstack([-As.astype(np.float64), sp.identity(mg, format="csr")]),
                       sp.csr_matrix(np.concatenate([np.ones(ns), np.zeros(mg)])[None, :])], format="csr")
        _SOLVER["started"] = True
        res = linprog(np.concatenate([np.zeros(ns), -ws]), A_ub=M,
                      b_ub=np.concatenate([np.zeros(mg), [float(k)]]), bounds=(0, 1), method="highs-ds",
                      options={"time_limit": float(limits.time_limit_s)})
        if res.status != 0:
            log.error("MCLP LP relaxation: %s", res.message)
            break
        lp_val = -float(res.fun)
        x_sel = dict(zip(sel.tolist(), res.x[:ns].tolist(), strict=True))
        duals = -np.asarray(res.ineqlin.marginals)
        pg = np.clip(duals[:mg], 0.0, ws)
        share = np.divide(w[rows], ws[grp], out=np.zeros(rows.size), where=ws[grp] > 0)
        p = w.copy()
        p[rows] = pg[grp] * share
        bound, P = _mclp_bound(A, w, p, k)
        if bound < best["bound"]:
            best = {"bound": bound, "prices": p}
        tol = 1e-9 * max(lp_val, 1.0)
        rc = P - max(float(duals[mg]), 0.0)
        rc[sel] = -np.inf
        new = np.flatnonzero(rc > tol)
        if new.size == 0 or best["bound"] <= lp_val + tol:
            converged = True
            break
        new = new[np.lexsort((new, -rc[new]))][:batch]  # largest reduced cost first, ties by index
        sel = np.union1d(sel, new)
    return {"x": x_sel, "lp": lp_val, "bound": best["bound"], "prices": best.get("prices"),
            "rounds": rounds, "converged": converged}


def _mclp_milp(A: sp.csr_matrix, w: np.ndarray, k: int, limits: SolverLimits):
    """The MCLP MILP on (reduced) ``A``: ``(chosen columns, proven bound, status)``."""
    A_r, w_r, _, _ = _merge_rows(A.tocsr(), w)
    m, n = A_r.shape
    c = np.concatenate([np.zeros(n), -w_r])
    cover = sp.hstack([-A_r.astype(float), sp.identity(m, format="csr")], format="csr")
    card = sp.csr_matrix(np.concatenate([np.ones(n), np.zeros(m)])[None, :])
    res, status = _run_milp(c, np.concatenate([np.ones(n), np.zeros(m)]),
                            [LinearConstraint(cover, -np.inf, 0.0), LinearConstraint(card, 0, int(k))],
                            limits, f"MCLP k={k}")
    chosen = np.flatnonzero(res.x[:n] > 0.5).tolist() if res.x is not None else []
    bound = -float(res.mip_dual_bound) if getattr(res, "mip_dual_bound", None) is not None else np.inf
    return chosen, bound, status


def solve_mclp(A, w, k: int, *, covered=None, limits: SolverLimits = DEFAULT_LIMITS,
               max_nnz: int = 400_000) -> SitingResult:
    """Exact maximal covering location problem, with a certificate; no clock involved.

    ``max sum_i w_i y_i`` subject to ``y_i <= sum_{c covers i} x_c``, ``sum_c x_c <= k``,
    ``x`` binary, ``0 <= y <= 1``. Coverage is monotone, so ``<= k`` has the same optimum as
    ``= k`` for ``k <= n_sites``.

    The steps, each exact: rows already covered, of zero weight or that no site covers are
    dropped and identical rows merged (weights summed); sites whose rows are a subset of
    another site's are dropped (never better than it). The LP relaxation is then solved by
    column generation (:func:`_mclp_lp`), which gives a certified upper bound; on these
    coverage matrices its solution is usually integral, which proves the set optimal. If not,
    a site can only belong to a set better than the best one known if ``sum(w - p) + P_c +
    the k-1 largest other P`` exceeds it (reduced-cost fixing); the MILP on the remaining
    sites is solved by HiGHS within ``limits.node_limit`` nodes.

    Parameters
    ----------
    A, w, k, covered
        As in :func:`greedy_mclp`.
    limits : SolverLimits
        Node limit (deterministic), safety-net time limit, optimality tolerance.
    max_nnz : int
        Largest coverage matrix (non-zeros, after fixing) handed to the MILP; above it the best
        known set is returned with its certified bound (``status="too_large"``).

    Returns
    -------
    SitingResult
        ``method="milp"`` (or ``"greedy"`` when the greedy set is the best known);
        ``status="optimal"`` only when proven (``gap <= 1e-6``), else
        ``"node_limit"``, ``"time_limit"`` (not reproducible) or ``"too_large"``; ``objective``
        the newly covered weight recomputed from ``A``; ``bound`` the proven upper bound;
        ``gap = (bound - objective) / objective``. ``details`` holds the reduction sizes and
        how the proof was obtained (``proof``: ``"lp"``, ``"milp"`` or ``"none"``).

    Examples
    --------
    >>> import numpy as np
    >>> A = np.array([[1, 0, 0], [1, 0, 1], [0, 1, 1], [0, 1, 0]], dtype=bool)
    >>> r = solve_mclp(A, [4, 5, 5, 4], 2)
    >>> sorted(r.sites), r.objective, r.status
    ([0, 1], 18.0, 'optimal')
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
    cols = _undominated_columns(A_r)
    A_r = A_r[:, cols].tocsr()
    m, n = A_r.shape
    details.update(n_rows=int(m), n_cols=int(n), n_rows_in=int(n_d), n_cols_in=int(n_s))
    if k >= n:  # every site worth having fits: take them all
        order, added, cum = _order_by_gain(A, w_eff, cols.tolist(), drop_idle=True)
        obj = float(cum[-1]) if cum.size else 0.0
        details["proof"] = "all sites fit"
        return SitingResult(order, added, cum, obj, "optimal", gap=0.0, method="milp",
                            unreachable_weight=unreachable, time_s=time.perf_counter() - t0,
                            bound=obj, details=details)
    chosen, obj, bound, status, method = _mclp_exact(A, w_eff, (A_r, w_r, cols), k, greedy, limits,
                                                     max_nnz, details)
    order, added, cum = _order_by_gain(A, w_eff, chosen, drop_idle=True)
    gap = max((bound - obj) / obj, 0.0) if obj > 0 else (0.0 if bound <= 0 else float("inf"))
    if gap <= _PROOF_GAP:
        status, gap = "optimal", 0.0
    elif status == "optimal":  # the solver stopped at its gap tolerance
        status = "gap_limit"
    log.info("MCLP k=%d: %s, covered %.1f (greedy %.1f), gap %.3g, %.2f s", k, status, obj,
             greedy.objective, gap, time.perf_counter() - t0)
    return SitingResult(order, added, cum, obj, status, gap=gap, method=method,
                        unreachable_weight=unreachable, time_s=time.perf_counter() - t0,
                        time_limited=status == "time_limit", bound=bound, details=details)


def _mclp_exact(A, w_eff, reduced, k, greedy, limits, max_nnz, details):
    """LP bound by column generation, then (if needed) the MILP on the sites that can still
    beat the best known set; ``reduced`` = ``(A_r, w_r, cols)``, the reduced model and its
    columns in ``A``. Returns ``(chosen, objective, bound, status, method)``."""
    A_r, w_r, cols = reduced
    g_r = greedy_mclp(A_r, w_r, k)
    gains = np.asarray(A_r.T.astype(np.float64) @ w_r).ravel()
    start = np.concatenate([np.asarray(g_r.sites, dtype=np.int64), np.argsort(-gains, kind="stable")[:k]])
    lp = _mclp_lp(A_r, w_r, k, start, limits, max_rounds=limits.lp_rounds)
    bound = min(lp["bound"], greedy.bound)
    details.update(lp_rounds=lp["rounds"], lp_columns=len(lp["x"]), lp_bound=lp["bound"],
                   lp_converged=lp["converged"])
    # best known set: greedy, or the LP's sites taken by value (integral when the LP is)
    by_value = sorted(lp["x"], key=lambda c: (-lp["x"][c], c))[:k]
    lp_set = [int(cols[c]) for c in by_value if lp["x"][c] > 1e-6]
    lp_obj = _covered_weight(A, w_eff, lp_set)
    chosen, obj, method = (lp_set, lp_obj, "milp") if lp_obj > greedy.objective else \
        (list(greedy.sites), greedy.objective, "greedy")
    details["proof"] = "lp"
    if lp["prices"] is None:
        return chosen, obj, max(bound, obj), "lp_failed", method
    if obj >= bound * (1 - _PROOF_GAP):
        return chosen, obj, max(bound, obj), "optimal", method
    # reduced-cost fixing: a site can be in a better set only if its bound beats the incumbent
    _, P = _mclp_bound(A_r, w_r, lp["prices"], k)
    base = float((w_r - np.clip(lp["prices"], 0.0, w_r)).sum())
    Pp = np.clip(P, 0.0, None)
    kth = np.sort(Pp)[::-1][k - 1]
    top = _top_sum(Pp, k)
    ub_with = base + np.where(Pp >= kth, top, top - kth + Pp)
    keep = np.flatnonzero(ub_with > obj * (1 + _PROOF_GAP))
    details.update(proof="milp", milp_columns=int(keep.size))
    if keep.size == 0:
        return chosen, obj, obj, "optimal", method
    sub = A_r[:, keep].tocsr()
    if sub.nnz > max_nnz:
        details["milp_skipped"] = f"{sub.nnz} non-zeros > max_nnz={max_nnz}"
        return chosen, obj, bound, "too_large", method
    picked, m_bound, status = _mclp_milp(sub, w_r, k, limits)
    m_set = [int(cols[keep[c]]) for c in picked]
    m_obj = _covered_weight(A, w_eff, m_set)
    if m_obj > obj * (1 + _REL_TOL):
        chosen, obj, method = m_set, m_obj, "milp"
    return chosen, obj, min(bound, max(m_bound, obj)), status, method


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


def solve_capacitated_mclp(A, w, k: int, capacity, *, covered=None, existing_capacity=None,  # noqa: PLR0913  (model inputs as in solve_mclp, plus the solver limits and a test hook)
                           limits: SolverLimits = DEFAULT_LIMITS, max_nnz: int = 200_000,
                           _shortcut: bool = True) -> SitingResult:
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
    limits : SolverLimits
        Node limit (deterministic), safety-net time limit, optimality tolerance; when the node
        limit stops HiGHS, the better of its incumbent and the greedy solution is returned,
        with the gap against the solver's proven bound (``status="node_limit"``).
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
    res, status = _run_milp(c, integrality, constraints, limits, f"capacitated MCLP k={k}",
                            bounds=Bounds(np.zeros(n + nnz), ub))
    limited = status == "time_limit"
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
    _SOLVER["started"] = True
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
               unit_labels=None, unit_targets=None, limits: SolverLimits = DEFAULT_LIMITS) -> SitingResult:
    """Fewest new sites so covered demand (existing + new) reaches a target share (MILP).

    District-wide (one constraint ``covered_weight + sum_i w_i y_i >= target * total_weight``)
    or per unit (one such constraint per unit when ``unit_labels`` is given). Where a group's
    requirement equals all the demand the candidates can reach (e.g. a 100 % target), the
    weighted constraint is replaced by plain set-covering rows ``sum_{c covers i} x_c >= 1``,
    which is tighter and solves faster.

    Demand that no candidate can reach is reported as ``unreachable_weight``; when a target
    cannot be reached the requirement is capped at the reachable maximum and ``capped=True``.

    Exact reductions come first: identical rows are merged, sites whose rows are a subset of
    another's dropped. When every group must be covered in full (a pure set cover), rows only
    one site covers fix that site, rows that include another row's sites are dropped, and
    what is left falls apart into independent parts, each a small MILP (HiGHS, within
    ``limits.node_limit`` nodes: deterministic).

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
    limits : SolverLimits
        Node limit (deterministic), safety-net time limit, optimality tolerance.

    Returns
    -------
    SitingResult
        ``objective`` = number of new sites; ``bound`` = proven lower bound; ``status`` is
        ``"optimal"`` only when ``objective == bound``.

    Examples
    --------
    >>> import numpy as np
    >>> A = np.array([[1, 0, 0], [1, 0, 1], [0, 1, 1], [0, 1, 0]], dtype=bool)
    >>> r = solve_lscp(A, [4, 5, 5, 4], target_share=1.0, total_weight=18)
    >>> sorted(r.sites), r.status
    ([0, 1], 'optimal')
    """
    t0 = time.perf_counter()
    A, w, n_d, n_s, reqs, unreachable_total, capped, details = _lscp_prepare(
        A, w, target_share, total_weight, covered_weight, unit_labels, unit_targets)
    active = [g for g, r in enumerate(reqs) if r["need"] > _REL_TOL * max(r["total"], 1.0)]
    if not active:
        return SitingResult([], np.zeros(0), np.zeros(0), 0.0, "nothing_to_do", gap=0.0,
                            method="milp", capped=capped, unreachable_weight=unreachable_total,
                            time_s=time.perf_counter() - t0, bound=0.0, details=details)
    labels = np.zeros(n_d, dtype=np.int64)
    for g, r in enumerate(reqs):
        labels[r["rows"]] = g
    use = (np.diff(A.indptr) > 0) & (w > 0) & np.isin(labels, active)
    A_r, w_r, lab_r, _ = _merge_rows(A[use], w[use], labels[use])
    cols = _undominated_columns(A_r)
    A_r = A_r[:, cols].tocsr()
    details.update(n_rows=int(A_r.shape[0]), n_cols=int(A_r.shape[1]))
    full = np.isin(lab_r, [g for g in active if reqs[g]["full"]])
    if full.all():
        picked, bound, status = _set_cover(A_r, limits, details)
    else:
        picked, bound, status = _lscp_milp(A_r, w_r, lab_r, full, [(g, reqs[g]["need"]) for g in active
                                                                   if not reqs[g]["full"]], limits)
    chosen, method = [int(c) for c in cols[np.asarray(picked or [], dtype=np.int64)]], "milp"
    if picked is None or status != "optimal":  # not proven: the greedy cover may need fewer sites
        greedy = greedy_lscp(A, w, target_share=target_share, total_weight=total_weight,
                             covered_weight=covered_weight, unit_labels=unit_labels,
                             unit_targets=unit_targets)
        details["greedy_sites"] = len(greedy.sites)
        if picked is None or (greedy.status == "target_met" and len(greedy.sites) < len(chosen)):
            chosen, method = list(greedy.sites), "greedy"
    order, added, cum = _order_by_gain(A, w, chosen)
    obj = float(len(chosen))
    bound = float(min(max(bound, 0.0), obj))
    gap = (obj - bound) / obj if obj > 0 else 0.0
    if gap <= 0:
        status = "optimal"
    elif status == "optimal":  # the solver stopped at its gap tolerance
        status = "gap_limit"
    log.info("LSCP: %s, %d sites, bound %g, %.2f s", status, len(chosen), bound, time.perf_counter() - t0)
    return SitingResult(order, added, cum, obj, status, gap=gap, method=method,
                        capped=capped, unreachable_weight=unreachable_total,
                        time_s=time.perf_counter() - t0, time_limited=status == "time_limit", bound=bound,
                        details=details)


def _set_cover(B: sp.csr_matrix, limits: SolverLimits, details: dict):
    """Fewest columns covering every row: reductions, then one MILP per independent part.

    Returns ``(columns, lower bound, status)``."""
    fixed, rows, cols = _reduce_set_cover(B)
    core = B[rows][:, cols].tocsr()
    chosen = [int(c) for c in fixed]
    bound = float(len(fixed))
    statuses = []
    parts = _components(core)
    for r_i, c_i in parts:
        picked, lb, st = _set_cover_milp(core[r_i][:, c_i].tocsr(), limits)
        chosen += [int(cols[c_i[j]]) for j in picked]
        bound += lb
        statuses.append(st)
    details.update(fixed_sites=len(fixed), core_rows=int(rows.size), core_cols=int(cols.size),
                   core_parts=len(parts), largest_part=max((r.size for r, _ in parts), default=0))
    return sorted(chosen), bound, _worst_status(statuses)


def _set_cover_milp(B: sp.csr_matrix, limits: SolverLimits):
    """One set-cover part as a MILP; ``(columns, lower bound, status)``."""
    m, n = B.shape
    res, status = _run_milp(np.ones(n), np.ones(n), [LinearConstraint(B.astype(float), 1.0, np.inf)],
                            limits, f"LSCP part ({m} rows x {n} sites)")
    lb = getattr(res, "mip_dual_bound", None)
    lb = float(np.ceil(lb - 1e-6)) if lb is not None and np.isfinite(lb) else 1.0
    picked = np.flatnonzero(res.x > 0.5).tolist() if res.x is not None else None
    if status != "optimal" or picked is None:  # the greedy cover may be better than the incumbent
        g = greedy_lscp(B, np.ones(m), target_share=1.0, total_weight=float(m))
        if picked is None or len(g.sites) < len(picked):
            picked = sorted(g.sites)
    return picked, min(lb, float(len(picked))), status


def _lscp_milp(A_r, w_r, lab_r, full, weighted, limits: SolverLimits):
    """LSCP with weighted requirements: set-covering rows for groups to cover in full, one
    ``sum w_i y_i >= need`` row per other group. Returns ``(columns, lower bound, status)``."""
    A_r = A_r.astype(float)
    m, n = A_r.shape
    y_rows = np.flatnonzero(~full)
    n_y = y_rows.size
    cons = []
    if full.any():
        cons.append(LinearConstraint(sp.hstack([A_r[full], sp.csr_matrix((int(full.sum()), n_y))],
                                               format="csr"), 1.0, np.inf))
    Ay = A_r[y_rows]
    cons.append(LinearConstraint(sp.hstack([-Ay, sp.identity(n_y, format="csr")], format="csr"),
                                 -np.inf, 0.0))
    rows_w, lbs = [], []
    for g, need in weighted:
        sel = lab_r[y_rows] == g
        row = np.zeros(n + n_y)
        row[n + np.flatnonzero(sel)] = w_r[y_rows][sel]
        rows_w.append(row)
        lbs.append(need * (1 - _REL_TOL))
    cons.append(LinearConstraint(np.vstack(rows_w), np.asarray(lbs), np.inf))
    res, status = _run_milp(np.concatenate([np.ones(n), np.zeros(n_y)]),
                            np.concatenate([np.ones(n), np.zeros(n_y)]), cons, limits,
                            f"LSCP ({m} rows x {n} sites)")
    picked = np.flatnonzero(res.x[:n] > 0.5).tolist() if res.x is not None else []
    lb = getattr(res, "mip_dual_bound", None)
    lb = float(np.ceil(lb - 1e-6)) if lb is not None and np.isfinite(lb) else 0.0
    if res.x is None:
        return None, lb, status  # the caller falls back on the greedy set
    return picked, min(lb, float(len(picked))), status


# ---------------------------------------------------------------------------------------------
# curve and 2SFCA


def coverage_curve(A, w, K: int, *, covered=None, exact: bool = False,
                   limits: SolverLimits = DEFAULT_LIMITS) -> pd.DataFrame:
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
    limits : SolverLimits
        Work limits of each exact solve.

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
            r = solve_mclp(A, w, int(k), covered=cov, limits=limits)
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
    c_node = np.where(ok, node_c, 0).astype(np.int64)
    c_walk = np.where(ok, walk_c, np.inf)
    # circles with the same walking rule (e.g. culture and fitness: 15 min, adult, hilly) have the
    # same sets, and the what-if maps ask again: remembered per network, keyed by the contents
    # of everything the sets are computed from (DESIGN.md "Cache policy")
    from accessibility.traveltime import _digest

    e = net.edges
    token = _digest(c_node, c_walk, cand_nodes, offsets, np.array([rule.threshold + rule.slack]),
                    e["u"].to_numpy(), e["v"].to_numpy(), e[rule.weight].to_numpy())
    memo = net._cache.setdefault("coverage_sets", {})
    if token in memo:
        return memo[token].copy()
    cell, cand = _reach_pairs(net, rule, cand_nodes, offsets, c_node, c_walk,
                              progress=progress, batch_size=batch_size)
    A = sp.csr_matrix((np.ones(cell.size, dtype=bool), (cell, cand)), shape=(n_cells, n_cand))
    log.info("coverage sets: %d cells x %d candidates, %d pairs", n_cells, n_cand, A.nnz)
    memo[token] = A
    while len(memo) > _COVERAGE_SETS_MEMO:
        memo.pop(next(iter(memo)))
    return A.copy()


def remembered_coverage_sets(net) -> dict:
    """The coverage-set matrices remembered on ``net`` (content digest -> matrix), e.g. to hand
    them from a side process back to the run (:func:`remember_coverage_sets`)."""
    return dict(net._cache.get("coverage_sets", {}))


def remember_coverage_sets(net, entries: dict) -> None:
    """Add coverage-set matrices computed elsewhere for the same network (keyed by the digest of
    everything they depend on, so an entry can only answer the question it was computed for)."""
    memo = net._cache.setdefault("coverage_sets", {})
    for token, A in entries.items():
        memo.setdefault(token, A)
    while len(memo) > _COVERAGE_SETS_MEMO:
        memo.pop(next(iter(memo)))


# ---------------------------------------------------------------------------------------------
# high level


def _lonlat(x, y, crs):
    from pyproj import Transformer

    tr = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
    lon, lat = tr.transform(np.asarray(x, dtype=float), np.asarray(y, dtype=float))
    return np.asarray(lon), np.asarray(lat)


@dataclass(frozen=True)
class SitingOptions:
    """How :func:`site_circle` searches: ranking length, method, solver work limits, the all-units row.

    ``SitingOptions.from_config(config)`` gives the run's settings (``siting:`` of the area
    configuration and its district row); the plain defaults are those of an empty ``siting:``.

    Examples
    --------
    >>> SitingOptions(k_max=5).method
    'auto'
    """

    k_max: int = 30
    method: str = "auto"
    limits: SolverLimits = DEFAULT_LIMITS
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
        """The run's options: ``config.siting`` (max_new_sites, node_limit, time_limit_s) and the
        district row."""
        limits = SolverLimits(node_limit=int(config.siting.node_limit),
                              time_limit_s=float(config.siting.time_limit_s))
        base = {"k_max": int(config.siting.max_new_sites), "limits": limits,
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
        when the coverage matrix has at most ``max_milp_nnz`` entries), ``limits``
        (:class:`SolverLimits` of every exact model: node limits, the time limit only a safety
        net, so the same inputs give the same answer on any machine) and the all-units row's code
        and name. The run uses ``SitingOptions.from_config(config)``.
    units : geopandas.GeoDataFrame, optional
        For unit names in ``lscp_by_unit``.
    facilities : geopandas.GeoDataFrame, optional
        Existing facilities (only counted for the summary; coverage comes from ``results``).

    Returns
    -------
    dict
        ``curve`` (rank, site_id, unit_code, lon, lat, added_covered_population,
        cumulative_covered_population, cumulative_coverage_share), ``lscp_by_unit`` (unit_code,
        unit_name, population, covered_now, target, sites_needed, sites_needed_bound,
        reachable_max_share, capped, method, status, gap, proof_zh, proof_en), ``sites`` (GeoDataFrame of the ranked sites, projected geometry plus
        lon/lat), ``exact_sites`` (the exact best set of ``k_max`` sites when it was solved beside
        a greedy ranking, else None: order, site_id, unit_code, lon, lat, added and cumulative
        covered population, greedy_rank (NA when the ranking's first ``k_max`` leave it out)),
        ``summary`` (dict).
    """
    from accessibility.rules import as_rules

    (rule,) = as_rules(rule)
    opt = options if options is not None else SitingOptions()
    circle = rule.circle
    k_max, method, limits, progress = opt.k_max, opt.method, opt.limits, opt.progress
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
        exact = solve_mclp(A, w, k_max, limits=limits)
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
    # (a proven optimum, or a set the solver produced and labelled with its gap; when solve_mclp
    # hands back the greedy set unproven, it is the ranking's own first k_max, not published twice)
    if (exact is not None and chosen is not exact and (exact.method == "milp" or exact.status == "optimal")
            and len(exact.sites)):
        g_rank = {int(c): r + 1 for r, c in enumerate(sites_idx)}
        exact_sites = _site_table(candidates, exact, net.crs, "order").assign(
            greedy_rank=pd.array([g_rank.get(int(c)) for c in exact.sites], dtype="Int64"),
            status=exact.status, gap=exact.gap)

    # sites needed per unit (each unit alone) and for all units together
    names = {}
    if units is not None and "unit_name" in units.columns:
        names = dict(zip(units["unit_code"].astype(str), units["unit_name"].astype(str),
                         strict=False))
    rows = []
    unit_tab = pd.DataFrame({"u": unit_all, "w": w_all, "c": covered_now})
    per_unit = {}
    for code, g in unit_tab.groupby("u", sort=True):
        tot_u = float(g["w"].sum())
        cov_u = float(g.loc[g["c"], "w"].sum())
        per_unit[code] = {"total_weight": tot_u, "covered_weight": cov_u}
        sel = units_d == code
        res = _lscp(A[np.flatnonzero(sel)], w[sel],
                    {"target_share": circle.target_share, "total_weight": tot_u, "covered_weight": cov_u},
                    limits=limits, method=method)
        rows.append(_lscp_row(code, names.get(code, code), tot_u, cov_u, circle.target_share,
                              res))
    res_all = _lscp(A, w, {"target_share": circle.target_share, "total_weight": total,
                           "covered_weight": covered_w, "unit_labels": units_d,
                           "unit_targets": pd.DataFrame.from_dict(per_unit, orient="index")},
                    limits=limits, method=method)
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
        "exact_method": exact.method if exact is not None else None,
        "sites_needed_all_units": int(res_all.objective),
        "sites_needed_method": res_all.method,
        "sites_needed_gap": res_all.gap,
        "sites_needed_bound": res_all.bound,
        "sites_needed_status": res_all.status,
        "capped": bool(res_all.capped),
        "time_s": time.perf_counter() - t0,
    }
    # what each published number is (proof_label: the only wording of a result's quality)
    if exact is not None:
        summary["exact_proof_zh"], summary["exact_proof_en"] = proof_label(exact.status, exact.gap,
                                                                           method=exact.method)
    summary["sites_needed_proof_zh"], summary["sites_needed_proof_en"] = proof_label(
        res_all.status, res_all.gap, method=res_all.method)
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


def _lscp(A, w, kw: dict, *, limits: SolverLimits, method: str):
    """LSCP by ``method`` (greedy, or the MILP within ``limits``); ``kw``: the demand and targets
    (``target_share``, ``total_weight``, ``covered_weight``, optionally ``unit_labels``/``unit_targets``)."""
    if method == "greedy":
        return greedy_lscp(A, w, **kw)
    return solve_lscp(A, w, limits=limits, **kw)


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
            "sites_needed_bound": res.bound,
            "capped": bool(res.capped), "unreachable_population": res.unreachable_weight,
            "method": res.method, "status": res.status, "gap": res.gap,
            **dict(zip(("proof_zh", "proof_en"), proof_label(res.status, res.gap, method=res.method),
                       strict=True))}


def planned_before_after(cells, results, net, planned, rules, config, *, units=None,
                         named_only: bool = True) -> pd.DataFrame:
    """:func:`evaluate_scenario` for several circles, one table: what ``accessibility run`` writes
    to ``scenario_planned_projects.csv`` and :meth:`StudyArea.before_after` returns.

    Parameters
    ----------
    results : pandas.DataFrame or callable
        The per-cell results, or a function giving them for a rule (one rule's results).
    rules : iterable of CircleRule
    named_only : bool, default True
        Only the circles some project names (else every rule, with zero gain where none does).

    Returns
    -------
    pandas.DataFrame
        The rows of :func:`evaluate_scenario` per circle, plus ``circle``, ``projects`` (names of
        the projects counted, ``; ``-joined) and ``data_status``.
    """
    parts = []
    for rule in as_rules(list(rules), config):
        mine = rule.facility_mask(planned)
        if named_only and not mine.any():
            continue
        res = results(rule) if callable(results) else results
        t = evaluate_scenario(cells, res, net, planned, rule, config, units=units)
        names = planned.loc[mine, "name"] if "name" in planned.columns else pd.Series([], dtype=str)
        parts.append(t.assign(circle=rule.id, projects="; ".join(map(str, names))))
    table = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    table["data_status"] = getattr(config, "data_status", "")
    return table


def evaluate_scenario(cells, results, net, planned, circle, config, *,
                      units=None, warn: bool = True) -> pd.DataFrame:
    """Coverage per unit before and after a set of planned projects for one circle.

    The what-if's own computation (:class:`accessibility.whatif.WhatIf` with the run's results as
    baseline): the projects are snapped like facilities and checked like tried sites (a project
    on a fragment cut off from the main network, or farther than ``max_snap_m``, is named in the
    ``site_problems`` column and, with ``warn``, in an
    :class:`~accessibility._errors.AccessibilityWarning`); a cell is covered after when at least
    ``min_reachable`` facilities, existing or planned, are within the threshold: exact for every
    ``min_reachable`` (the counts ``<circle>_n`` of ``results`` are updated).

    Parameters
    ----------
    cells, results, net, circle, config
        As in :func:`site_circle`.
    planned : geopandas.GeoDataFrame
        Planned project points (any CRS; reprojected), optionally a ``circles`` column
        (``;``-joined ids): rows naming other circles are ignored; ``name`` labels them.
    units : geopandas.GeoDataFrame, optional
        For unit names and the order of the rows.
    warn : bool, default True
        Warn about projects that cannot serve where they are.

    Returns
    -------
    pandas.DataFrame
        ``unit_code, unit_name, population, covered_before, covered_after, share_before,
        share_after, gain, target_share, meets_target_before, meets_target_after,
        site_problems`` plus a district row (``config.district_code``).
    """
    from accessibility.whatif import WhatIf

    problems: list[str] = []
    planned = _to_crs(planned, net.crs, "planned", problems)
    if problems:
        raise CRSMismatchError(problems_message("evaluate_scenario", problems))
    (rule,) = as_rules(circle, config)
    if "circles" in planned.columns:
        planned = planned[rule.facility_mask(planned)]
    if "name" not in planned.columns:
        planned = planned.assign(name=[f"project {i + 1}" for i in range(len(planned))])
    no_facilities = gpd.GeoDataFrame({"fac_id": pd.Series(dtype=str)}, geometry=[], crs=net.crs)
    wi = WhatIf(cells, no_facilities, net, config, units=units, baseline=results)
    layer = planned.drop(columns=["circles"], errors="ignore")  # already limited to this circle
    r = wi.evaluate([rule], add=layer, warn=warn)
    t = r.table
    bad = r.sites.loc[r.sites["problem"] != "", "problem"]
    return pd.DataFrame({
        "unit_code": t["unit_code"], "unit_name": t["unit_name"], "population": t["population"],
        "covered_before": t["covered_population_before"], "covered_after": t["covered_population_after"],
        "share_before": t["coverage_share_before"], "share_after": t["coverage_share_after"],
        "gain": t["gain"], "target_share": t["target_share"],
        "meets_target_before": t["meets_target_before"], "meets_target_after": t["meets_target_after"],
        "site_problems": " | ".join(bad),
    })

