"""Siting: coverage models against hand-worked answers, brute force, spopt, and networkx."""

from __future__ import annotations

import itertools
import math
from types import SimpleNamespace

import geopandas as gpd
import networkx as nx
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from shapely.geometry import Point, box

from accessibility._errors import CRSMismatchError, DataError
from accessibility.config import Circle
from accessibility.rules import CircleRule, circle_rule
from accessibility.siting import (
    SitingOptions,
    SolverLimits,
    candidate_sites,
    coverage_curve,
    coverage_sets,
    evaluate_scenario,
    greedy_capacitated_mclp,
    greedy_lscp,
    greedy_mclp,
    proof_label,
    site_circle,
    solve_capacitated_mclp,
    solve_lscp,
    solve_mclp,
    two_step_fca,
)

CRS = "EPSG:32648"

# ---------------------------------------------------------------------------------------------
# hand case: 4 demand points, 3 sites
#   site 0 covers demand {0, 1}    weights w = [4, 5, 5, 4]
#   site 1 covers demand {2, 3}
#   site 2 covers demand {1, 2}
# k=1: best single site is 2 (5+5 = 10 > 9).
# k=2: sets {0,1} -> 18, {0,2} -> 4+5+5 = 14, {1,2} -> 14.  Optimum 18 ({0,1}).
# greedy: takes site 2 (10), then both others add 4; tie -> lowest index 0: total 14.

HAND_A = sp.csr_matrix(np.array([[1, 0, 0], [1, 0, 1], [0, 1, 1], [0, 1, 0]], dtype=bool))
HAND_W = np.array([4.0, 5.0, 5.0, 4.0])


def test_hand_mclp_greedy_and_exact():
    g = greedy_mclp(HAND_A, HAND_W, 2)
    assert g.sites == [2, 0]
    assert g.added_weight.tolist() == [10.0, 4.0]
    assert g.cumulative.tolist() == [10.0, 14.0]
    assert g.objective == 14.0
    # certified bound: min over steps of f(S) + two largest gains: {} -> 0 + 10 + 9 = 19;
    # {2} -> 10 + 4 + 4 = 18; {2, 0} -> 14 + 4 + 0 = 18. So bound 18, gap 4/14.
    assert g.bound == 18.0 and g.gap == pytest.approx(4 / 14)
    ex = solve_mclp(HAND_A, HAND_W, 2)
    assert ex.status == "optimal" and ex.method == "milp"
    assert ex.objective == 18.0
    assert sorted(ex.sites) == [0, 1]
    assert ex.cumulative[-1] == 18.0
    assert ex.gap == pytest.approx(0.0, abs=1e-9)
    one = solve_mclp(HAND_A, HAND_W, 1)
    assert one.sites == [2] and one.objective == 10.0


def test_hand_mclp_with_existing_coverage():
    # demand 1 and 2 already covered: site 2 is worth nothing, sites 0 and 1 are worth 4 each
    covered = np.array([False, True, True, False])
    g = greedy_mclp(HAND_A, HAND_W, 3, covered=covered)
    assert g.sites == [0, 1]  # stops once no site adds anything
    assert g.objective == 8.0
    assert solve_mclp(HAND_A, HAND_W, 1, covered=covered).objective == 4.0


def test_hand_lscp_district_and_units():
    total = HAND_W.sum()  # 18
    # 100 %: need sites 0 and 1
    r = solve_lscp(HAND_A, HAND_W, target_share=1.0, total_weight=total)
    assert r.objective == 2 and sorted(r.sites) == [0, 1] and not r.capped
    # 55 % of 18 = 9.9: only site 2 (10) does it alone (sites 0 and 1 cover 9 each)
    r = solve_lscp(HAND_A, HAND_W, target_share=0.55, total_weight=total)
    assert r.objective == 1 and r.sites == [2]
    # 50 % with 9 already covered elsewhere: nothing to build
    r = solve_lscp(HAND_A, HAND_W, target_share=0.5, total_weight=total, covered_weight=9.0)
    assert r.objective == 0 and r.status == "nothing_to_do"
    # per unit: a = rows {0,1} (9), b = rows {2,3} (9). 50 % each = 4.5: site 2 gives 5 to both.
    labels = np.array(["a", "a", "b", "b"])
    r = solve_lscp(HAND_A, HAND_W, target_share=0.5, total_weight=total, unit_labels=labels)
    assert r.objective == 1 and r.sites == [2]
    # per unit 100 %: unit a needs rows 0,1 -> site 0; unit b rows 2,3 -> site 1
    r = solve_lscp(HAND_A, HAND_W, target_share=1.0, total_weight=total, unit_labels=labels)
    assert r.objective == 2 and sorted(r.sites) == [0, 1]
    # unit_targets: unit a has 91 of 100 covered elsewhere (>= 90 %), b has 0 of 9; target 0.9:
    # a needs 0, b needs 8.1 -> rows 2 and 3 (5 + 4) -> site 1
    targets = pd.DataFrame({"total_weight": [100.0, 9.0], "covered_weight": [91.0, 0.0]},
                           index=["a", "b"])
    r = solve_lscp(HAND_A, HAND_W, target_share=0.9, total_weight=109.0, unit_labels=labels,
                   unit_targets=targets)
    assert r.objective == 1 and r.sites == [1]
    g = greedy_lscp(HAND_A, HAND_W, target_share=0.9, total_weight=109.0, unit_labels=labels,
                    unit_targets=targets)
    assert g.sites == [1]


def test_lscp_unreachable_demand_is_capped_and_reported():
    # add demand row 4 (weight 7) that no site reaches
    A = sp.vstack([HAND_A, sp.csr_matrix((1, 3), dtype=bool)], format="csr")
    w = np.append(HAND_W, 7.0)
    # exact: sites 0 and 1; greedy takes 2 first (10), then still needs 0 and 1: 3 sites
    for fn, expect in ((solve_lscp, [0, 1]), (greedy_lscp, [2, 0, 1])):
        r = fn(A, w, target_share=1.0, total_weight=w.sum())
        assert r.capped
        assert r.unreachable_weight == 7.0
        assert sorted(r.sites) == sorted(expect) and r.objective == len(expect)
        u = r.details["units"]["__all__"]
        assert u["reachable_max_share"] == pytest.approx(18.0 / 25.0)
    # 60 % of 25 = 15 is reachable: not capped, still reports the unreachable 7
    r = solve_lscp(A, w, target_share=0.6, total_weight=w.sum())
    assert not r.capped and r.unreachable_weight == 7.0 and r.objective == 2
    # MCLP reports it too
    assert greedy_mclp(A, w, 3).unreachable_weight == 7.0


def test_bad_inputs_raise_dataerror():
    with pytest.raises(DataError, match="w"):
        greedy_mclp(HAND_A, [1.0, 2.0], 1)
    with pytest.raises(DataError, match="negative"):
        solve_mclp(HAND_A, [1.0, -2.0, 1.0, 1.0], 1)
    with pytest.raises(DataError, match="unit_targets"):
        solve_lscp(HAND_A, HAND_W, target_share=1.0, total_weight=18.0,
                   unit_labels=["a", "a", "b", "b"], unit_targets={"a": {"total_weight": 9.0}})


def test_coverage_curve_hand():
    df = coverage_curve(HAND_A, HAND_W, 3, exact=True)
    assert df["k"].tolist() == [1, 2, 3]
    assert df["cumulative"].tolist() == [10.0, 14.0, 18.0]
    assert df["share"].tolist() == pytest.approx([10 / 18, 14 / 18, 1.0])
    assert df["exact_cumulative"].tolist() == [10.0, 18.0, 18.0]


# ---------------------------------------------------------------------------------------------
# brute force and property tests


def _brute_mclp(A: np.ndarray, w: np.ndarray, k: int) -> float:
    best = 0.0
    for combo in itertools.combinations(range(A.shape[1]), min(k, A.shape[1])):
        best = max(best, float(w[A[:, list(combo)].any(axis=1)].sum()))
    return best


def _brute_lscp(A: np.ndarray) -> int:
    need = A.any(axis=1)
    for k in range(0, A.shape[1] + 1):
        for combo in itertools.combinations(range(A.shape[1]), k):
            if (A[:, list(combo)].any(axis=1) >= need).all():
                return k
    raise AssertionError


def _naive_greedy(A: np.ndarray, w: np.ndarray, k: int) -> list[float]:
    cov = np.zeros(A.shape[0], dtype=bool)
    out = []
    for _ in range(k):
        gains = (A & ~cov[:, None]).astype(float).T @ w
        j = int(np.argmax(gains))
        if gains[j] <= 0:
            break
        cov |= A[:, j]
        out.append(float(gains[j]))
    return out


@settings(deadline=None, max_examples=40, derandomize=True)
@given(seed=st.integers(0, 10_000), n_d=st.integers(1, 25), n_s=st.integers(1, 8),
       k=st.integers(1, 4), density=st.floats(0.05, 0.6))
def test_greedy_and_exact_against_brute_force(seed, n_d, n_s, k, density):
    rng = np.random.default_rng(seed)
    A = rng.random((n_d, n_s)) < density
    w = rng.integers(0, 20, n_d).astype(float)
    opt = _brute_mclp(A, w, k)
    ex = solve_mclp(sp.csr_matrix(A), w, k)
    assert ex.objective == pytest.approx(opt)
    assert len(ex.sites) <= k
    assert ex.bound >= opt - 1e-9
    g = greedy_mclp(sp.csr_matrix(A), w, k)
    assert g.objective <= opt + 1e-9
    assert g.bound >= opt - 1e-9  # the certified submodular bound really bounds the optimum
    assert g.objective >= (1 - 1 / math.e) * opt - 1e-9
    assert g.added_weight.tolist() == pytest.approx(_naive_greedy(A, w, k))
    # LSCP 100 % on the coverable rows = brute-force set cover
    lw = np.where(A.any(axis=1), np.maximum(w, 1.0), w)
    r = solve_lscp(sp.csr_matrix(A), lw, target_share=1.0, total_weight=lw.sum())
    assert r.objective == _brute_lscp(A[lw > 0])
    assert r.capped == bool((~A.any(axis=1) & (lw > 0)).any())
    gl = greedy_lscp(sp.csr_matrix(A), lw, target_share=1.0, total_weight=lw.sum())
    assert gl.objective >= r.objective
    covered = A[:, gl.sites].any(axis=1) if gl.sites else np.zeros(n_d, dtype=bool)
    assert covered[A.any(axis=1) & (lw > 0)].all()


# ---------------------------------------------------------------------------------------------
# spopt (pulp + CBC) as an independent oracle


def _cbc():
    pulp = pytest.importorskip("pulp")
    solver = pulp.PULP_CBC_CMD(msg=False)
    if not solver.available():
        pytest.skip("pulp's bundled CBC solver is not available")
    return solver


# pulp 3.3 warns (DeprecationWarning) about its own 4.0 API changes inside spopt's model builder
@pytest.mark.filterwarnings("ignore:.*(deprecated|PuLP 4).*:DeprecationWarning")
@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_mclp_and_lscp_match_spopt(seed):
    solver = _cbc()
    from spopt.locate import LSCP, MCLP

    rng = np.random.default_rng(seed)
    cost = rng.random((30, 12))
    radius = 0.25
    # every demand point coverable (LSCP needs it): put a site at distance 0 where none is near
    lonely = np.flatnonzero((cost <= radius).sum(axis=1) == 0)
    cost[lonely, rng.integers(0, 12, lonely.size)] = 0.0
    weights = rng.integers(1, 50, 30).astype(float)
    A = sp.csr_matrix(cost <= radius)
    for k in (2, 4):
        m = MCLP.from_cost_matrix(cost, weights, radius, p_facilities=k).solve(solver)
        ours = solve_mclp(A, weights, k)
        assert ours.status == "optimal"
        assert ours.objective == pytest.approx(m.problem.objective.value())
        assert greedy_mclp(A, weights, k).objective <= ours.objective + 1e-9
    lscp = LSCP.from_cost_matrix(cost, radius).solve(solver)
    ours = solve_lscp(A, weights, target_share=1.0, total_weight=weights.sum())
    assert not ours.capped and ours.status == "optimal"
    assert ours.objective == pytest.approx(lscp.problem.objective.value())


def test_mclp_node_limit_is_reproducible_and_reports_gap():
    """A node limit (work, not time) stops a hard MILP the same way every time: the best set
    found with the bound HiGHS proved, labelled as such."""
    rng = np.random.default_rng(0)
    A = sp.random(200, 50, density=0.08, random_state=rng, format="csr").astype(bool)
    w = rng.random(200) * 100
    lim = SolverLimits(node_limit=1)
    r = solve_mclp(A, w, 6, limits=lim)
    again = solve_mclp(A, w, 6, limits=lim)
    assert (r.sites, r.objective, r.bound, r.status) == (again.sites, again.objective, again.bound, again.status)
    assert r.status == "node_limit" and not r.time_limited
    assert np.isfinite(r.gap) and r.gap > 0 and r.bound > r.objective
    assert r.objective >= greedy_mclp(A, w, 6).objective - 1e-9
    assert r.gap == pytest.approx((r.bound - r.objective) / r.objective)
    zh, en = proof_label(r.status, r.gap, method=r.method)
    assert "best found" in en and f"{r.gap:.1%}" in en and "optim" not in en and "最优" not in zh
    # above max_nnz the MILP is skipped: the best known set with its certified (LP) bound
    s = solve_mclp(A, w, 6, max_nnz=10)
    assert s.status == "too_large" and "milp_skipped" in s.details
    assert s.objective >= greedy_mclp(A, w, 6).objective - 1e-9
    assert s.bound >= r.objective - 1e-6 and s.bound <= greedy_mclp(A, w, 6).bound + 1e-6


# ---------------------------------------------------------------------------------------------
# 2SFCA


def test_two_step_fca_hand():
    # cells c0 (w 100) reaches f0; c1 (w 300) reaches f0 and f1; c2 (w 50) reaches nothing.
    # f0: 20 places / 400 people = 0.05; f1: 30 / 300 = 0.1
    # a = [0.05, 0.15, 0]; unit u (c0, c1): (100*0.05 + 300*0.15) / 400 = 50 / 400 = 0.125
    R = sp.csr_matrix(np.array([[1, 0], [1, 1], [0, 0]], dtype=bool))
    a, by_unit = two_step_fca([100, 300, 50], [20, 30], R, unit_labels=["u", "u", "v"], per=1.0)
    assert a.tolist() == pytest.approx([0.05, 0.15, 0.0])
    assert by_unit.set_index("unit_code")["ratio"].to_dict() == pytest.approx({"u": 0.125,
                                                                                "v": 0.0})
    # capacity is fully shared out: sum of demand * ratio = total capacity in reach
    assert float(np.dot([100, 300, 50], a)) == pytest.approx(50.0)


# ---------------------------------------------------------------------------------------------
# network-based parts


def _grid_net(n=6, spacing=100.0, seed=0, extra_island=True):
    """A directed n x n grid (asymmetric random times) plus, optionally, a 2-node island."""
    from accessibility.network import WalkNetwork

    rng = np.random.default_rng(seed)
    xs, ys = np.meshgrid(np.arange(n) * spacing, np.arange(n) * spacing)
    x, y = xs.ravel(), ys.ravel()
    comp = np.zeros(x.size, dtype=np.int64)
    if extra_island:
        x = np.append(x, [5000.0, 5100.0])
        y = np.append(y, [5000.0, 5000.0])
        comp = np.append(comp, [1, 1])
    rows = []
    for i in range(n):
        for j in range(n):
            a = i * n + j
            for b in ([a + 1] if j < n - 1 else []) + ([a + n] if i < n - 1 else []):
                for u, v in ((a, b), (b, a)):
                    rows.append((u, v, spacing, spacing / 1.2 * rng.uniform(0.7, 1.6)))
    if extra_island:
        m = n * n
        rows += [(m, m + 1, 100.0, 90.0), (m + 1, m, 100.0, 90.0)]
    edges = pd.DataFrame(rows, columns=["u", "v", "length_m", "time_s_adult"])
    nodes = gpd.GeoDataFrame({"osm_id": np.arange(x.size, dtype=np.int64), "x": x, "y": y,
                              "elev_m": np.nan, "component": comp},
                             geometry=gpd.points_from_xy(x, y), crs=CRS)
    return WalkNetwork(nodes=nodes, edges=edges, crs=CRS, profiles=["adult"])


def _circle(threshold, mode="time", target=1.0):
    return Circle(id="test_circle", label_zh="测试", label_en="test", categories=("x",),
                  mode=mode, threshold=threshold, profile="adult", population="all",
                  target_share=target)


def _rule(threshold, mode="time", *, speed=1.2, weight=None, max_snap_m=math.inf, target=1.0):
    """A hand-made rule (no configuration): adult profile at ``speed`` m/s."""
    time_mode = mode == "time"
    return CircleRule(circle=_circle(threshold, mode, target), threshold=float(threshold),
                      weight=weight or ("time_s_adult" if time_mode else "length_m"),
                      flat_weight="time_s_adult_flat" if time_mode else None,
                      walk_speed_mps=speed if time_mode else 1.0, max_snap_m=max_snap_m, profile="adult")


@pytest.mark.parametrize("mode", ["time", "distance"])
def test_coverage_sets_against_networkx(mode):
    net = _grid_net(n=7, seed=3)
    rng = np.random.default_rng(11)
    n_cells = 60
    cx, cy = rng.uniform(-20, 620, n_cells), rng.uniform(-20, 620, n_cells)
    cells = gpd.GeoDataFrame({"population": rng.integers(1, 100, n_cells).astype(float)},
                             geometry=gpd.points_from_xy(cx, cy), crs=CRS)
    cand_nodes = np.sort(rng.choice(49, 15, replace=False))
    cand = pd.DataFrame({"node": cand_nodes})
    speed = 1.2
    weight = "time_s_adult" if mode == "time" else "length_m"
    thr = 300.0 if mode == "time" else 350.0
    A = coverage_sets(net, cells, cand, _rule(thr, mode, speed=speed))
    assert A.shape == (n_cells, 15) and A.dtype == bool
    # brute force: nearest node by hand, networkx Dijkstra in the walking direction
    G = nx.DiGraph()
    for u, v, wt in net.edges[["u", "v", weight]].itertuples(index=False):
        G.add_edge(int(u), int(v), w=float(wt))
    xy = net.nodes[["x", "y"]].to_numpy()
    expect = np.zeros((n_cells, 15), dtype=bool)
    for i in range(n_cells):
        d2 = (xy[:, 0] - cx[i]) ** 2 + (xy[:, 1] - cy[i]) ** 2
        node = int(np.argmin(d2))
        walk = math.sqrt(d2[node]) / (speed if mode == "time" else 1.0)
        dist = nx.single_source_dijkstra_path_length(G, node, weight="w")
        for c, cn in enumerate(cand_nodes):
            expect[i, c] = walk + dist.get(int(cn), math.inf) <= thr
    assert expect.any() and not expect.all()
    np.testing.assert_array_equal(A.toarray(), expect)


def test_coverage_sets_uses_given_snap_and_offsets():
    net = _grid_net(n=3, extra_island=False)
    # one cell on node 0 with 12 m walk (10 s); candidate at node 0 with 24 m walk (20 s)
    cells = gpd.GeoDataFrame({"node": [0, -1], "snap_m": [12.0, 0.0]},
                             geometry=[Point(0, 0), Point(0, 0)], crs=CRS)
    cand = pd.DataFrame({"node": [0], "snap_m": [24.0]})
    A = coverage_sets(net, cells, cand, _rule(30.0))
    assert A.toarray().tolist() == [[True], [False]]  # 10 + 0 + 20 = 30 <= 30; node -1: nothing
    A = coverage_sets(net, cells, cand, _rule(29.9))
    assert A.toarray().tolist() == [[False], [False]]
    with pytest.raises(DataError, match="time_s_elderly"):
        coverage_sets(net, cells, cand, _rule(30.0, weight="time_s_elderly"))


def test_coverage_sets_remembered_by_content():
    """The memo of coverage_sets answers only while everything the sets depend on is unchanged:
    an edited weight column, another threshold or other candidates are computed anew."""
    net = _grid_net(n=3, extra_island=False)
    cells = gpd.GeoDataFrame({"node": [0], "snap_m": [12.0]}, geometry=[Point(0, 0)], crs=CRS)
    cand = pd.DataFrame({"node": [0, 1], "snap_m": [0.0, 0.0]})
    A1 = coverage_sets(net, cells, cand, _rule(1000.0))
    A1[0, 0] = False  # a caller's edit must not reach the memo
    A2 = coverage_sets(net, cells, cand, _rule(1000.0))
    assert A2.toarray().tolist() == [[True, True]]
    net.edges["time_s_adult"] *= 100.0  # same arrays object, new content
    assert coverage_sets(net, cells, cand, _rule(1000.0)).toarray().tolist() == [[True, False]]
    net.edges["time_s_adult"] /= 100.0
    assert coverage_sets(net, cells, cand, _rule(10.0)).toarray().tolist() == [[True, False]]
    assert coverage_sets(net, cells, cand.iloc[1:], _rule(1000.0)).toarray().tolist() == [[True]]


def _units():
    return gpd.GeoDataFrame({"unit_code": ["500105001", "500105002"],
                             "unit_name": ["西", "东"]},
                            geometry=[box(-50, -50, 250, 550), box(250, -50, 550, 550)], crs=CRS)


def test_candidate_sites_thinning_units_exclusion_components():
    net = _grid_net(n=6, spacing=100.0)  # nodes at 0..500; island at (5000, 5000)
    units = _units()
    c = candidate_sites(net, units, spacing_m=200)
    # squares of 200 m: x in [0,200) holds nodes 0,100; centre 100 -> node at x=100 wins.
    # squares along x: [0,200): x=100; [200,400): x=300; [400,600): centre 500 -> x=500 (x=400 is
    # 100 away, 500 is 0 away). Same along y: 3 x 3 = 9 candidates, at x,y in {100, 300, 500}.
    assert len(c) == 9
    assert sorted(set(c["x"])) == [100.0, 300.0, 500.0]
    assert sorted(set(c["y"])) == [100.0, 300.0, 500.0]
    assert c["site_id"].tolist()[:2] == ["cand_00001", "cand_00002"]
    assert c["node"].is_monotonic_increasing
    assert (c["unit_code"] == np.where(c["x"] < 250, "500105001", "500105002")).all()
    assert c.crs == net.crs
    assert (c.geometry.x == c["x"]).all()
    # deterministic
    pd.testing.assert_frame_equal(pd.DataFrame(c.drop(columns="geometry")),
                                  pd.DataFrame(candidate_sites(net, units, spacing_m=200)
                                               .drop(columns="geometry")))
    # exclusion zone over the node at (300, 300): that square falls back to its next-nearest node
    excl = gpd.GeoDataFrame(geometry=[Point(300, 300).buffer(10)], crs=CRS)
    c2 = candidate_sites(net, units, spacing_m=200, exclude=excl)
    assert len(c2) == 9
    assert not ((c2["x"] == 300) & (c2["y"] == 300)).any()
    # the island (component 1) is dropped unless a unit covers it and cells live there
    units_big = pd.concat([units, gpd.GeoDataFrame({"unit_code": ["500105003"], "unit_name": ["岛"]},
                                                   geometry=[box(4900, 4900, 5200, 5100)],
                                                   crs=CRS)], ignore_index=True)
    assert (candidate_sites(net, units_big, spacing_m=200)["unit_code"] != "500105003").all()
    cells = pd.DataFrame({"node": [36], "population": [10.0]})
    c3 = candidate_sites(net, units_big, spacing_m=200, cells=cells)
    assert (c3["unit_code"] == "500105003").sum() == 1  # both island nodes in one 200 m square
    # parcels: a polygon around the lower-left quarter + one point near (500, 0)
    parcels = gpd.GeoDataFrame(geometry=[box(-10, -10, 210, 210), Point(490, 8)], crs=CRS)
    c4 = candidate_sites(net, units, spacing_m=200, parcels=parcels)
    pts = set(zip(c4["x"], c4["y"], strict=True))
    # polygon: squares [0,200)^2 -> (100,100); [200,400)x[0,200) -> (200,100) (100 m from the
    # centre (300,100), (200,0) is 141 m); [0,200)x[200,400) -> (100,200); and (200,200).
    # point (490, 8) snaps to node (500, 0) and is kept as is.
    assert pts == {(100.0, 100.0), (200.0, 100.0), (100.0, 200.0), (200.0, 200.0), (500.0, 0.0)}
    # CRS-less layers are refused with a fix
    with pytest.raises(CRSMismatchError, match="set_crs"):
        candidate_sites(net, gpd.GeoDataFrame(units.drop(columns="geometry"),
                                              geometry=list(units.geometry)), spacing_m=200)
    # other CRS is reprojected
    c5 = candidate_sites(net, units.to_crs("EPSG:4326"), spacing_m=200)
    assert len(c5) == 9


def test_site_circle_and_scenario_end_to_end():
    net = _grid_net(n=6, spacing=100.0, extra_island=False)
    units = _units()
    rng = np.random.default_rng(5)
    n = 40
    cx, cy = rng.uniform(0, 500, n), rng.uniform(0, 500, n)
    cells = gpd.GeoDataFrame({"cell_id": np.arange(n), "population": rng.integers(1, 50, n) * 1.0,
                              "pop_60plus": 1.0,
                              "unit_code": np.where(cx < 250, "500105001", "500105002")},
                             geometry=gpd.points_from_xy(cx, cy), crs=CRS)
    covered = cx < 120  # pretend existing facilities cover the far west
    results = pd.DataFrame({"test_circle_covered": covered}, index=cells.index)
    cand = candidate_sites(net, units, spacing_m=200)
    circle = _rule(150.0)
    config = SimpleNamespace(crs=CRS, district_code="500105", district_name="全区")
    options = SitingOptions(k_max=5, district_code="500105", district_name="全区")
    out = site_circle(cells, results, net, cand, circle, options=options, units=units)
    curve, lscp, sites, summary = out["curve"], out["lscp_by_unit"], out["sites"], out["summary"]
    assert list(curve.columns) == ["rank", "site_id", "unit_code", "lon", "lat",
                                   "added_covered_population", "cumulative_covered_population",
                                   "cumulative_coverage_share"]
    # independent check of the ranking: recompute coverage of the picked sites directly
    A = coverage_sets(net, cells, cand, circle)
    idx = cand.reset_index(drop=True).index[cand["site_id"].isin(curve["site_id"])]
    order = [int(np.flatnonzero(cand["site_id"].to_numpy() == s)[0]) for s in curve["site_id"]]
    assert set(order) == set(idx)
    pop = cells["population"].to_numpy()
    newly = (~covered) & A[:, order].toarray().any(axis=1)
    assert curve["cumulative_covered_population"].iloc[-1] == pytest.approx(pop[newly].sum())
    assert curve["cumulative_coverage_share"].iloc[-1] == pytest.approx(
        (pop[covered].sum() + pop[newly].sum()) / pop.sum())
    assert len(curve) >= 2 and curve["added_covered_population"].is_monotonic_decreasing
    # UTM 48N: easting 0 lies 500 km west of 105°E on the equator, about 100.5°E
    assert 100.4 < curve["lon"].iloc[0] < 100.6 and 0 <= curve["lat"].iloc[0] < 0.01
    assert isinstance(sites, gpd.GeoDataFrame) and len(sites) == len(curve)
    assert {"lon", "lat"} <= set(sites.columns)
    # LSCP rows: two units + the district row; the joint solution needs at least what the
    # neediest unit needs and at most the sum of the units' own solutions
    assert lscp["unit_code"].tolist() == ["500105001", "500105002", "500105"]
    assert lscp.iloc[-1]["unit_name"] == "全区"
    assert lscp.iloc[-1]["sites_needed"] >= lscp.iloc[:-1]["sites_needed"].max()
    assert lscp.iloc[-1]["sites_needed"] <= lscp.iloc[:-1]["sites_needed"].sum()
    assert summary["greedy_covered_k_max"] <= summary["exact_covered_k_max"] + 1e-9
    # the exact best set of k_max sites is published beside the ranking, and recomputing its
    # coverage directly gives the solver's objective
    ex = out["exact_sites"]
    assert ex is not None and len(ex) <= 5 and ex["order"].tolist() == list(range(1, len(ex) + 1))
    ex_cols = [int(np.flatnonzero(cand["site_id"].to_numpy() == s)[0]) for s in ex["site_id"]]
    ex_newly = (~covered) & A[:, ex_cols].toarray().any(axis=1)
    assert pop[ex_newly].sum() == pytest.approx(summary["exact_covered_k_max"])
    assert ex["cumulative_covered_population"].iloc[-1] == pytest.approx(summary["exact_covered_k_max"])
    # a solver that falls back (time limit) hands back the greedy set unproven: never
    # published as the best set
    import accessibility.siting as siting_mod

    def fallback(A, w, k, **_kw):
        res = greedy_mclp(A, w, k)
        res.status = "time_limit"
        return res

    orig, siting_mod.solve_mclp = siting_mod.solve_mclp, fallback
    try:
        rushed = site_circle(cells, results, net, cand, circle, options=options, units=units)
    finally:
        siting_mod.solve_mclp = orig
    assert rushed["summary"]["exact_status"] == "time_limit" and rushed["exact_sites"] is None
    assert "NOT REPRODUCIBLE" in rushed["summary"]["exact_proof_en"]
    in_rank = dict(zip(curve["site_id"], curve["rank"], strict=True))
    assert [in_rank.get(s) for s in ex["site_id"]] == [None if pd.isna(r) else r for r in ex["greedy_rank"]]
    assert lscp.loc[lscp["unit_code"] == "500105001", "unit_name"].item() == "西"
    # scenario: a planned project on the first picked site adds exactly its added coverage
    first = sites.iloc[0]
    planned = gpd.GeoDataFrame({"circles": ["test_circle"]},
                               geometry=[Point(first["x"], first["y"])], crs=CRS)
    ev = evaluate_scenario(cells, results, net, planned, circle, config, units=units)
    row = ev.set_index("unit_code").loc["500105"]  # the district row uses the district code
    assert row["covered_before"] == pytest.approx(pop[covered].sum())
    assert row["gain"] > 0
    assert row["gain"] == pytest.approx(curve["added_covered_population"].iloc[0])
    other = planned.assign(circles="other_circle")
    ev2 = evaluate_scenario(cells, results, net, other, circle, config)
    assert (ev2["gain"] == 0).all()


# ---------------------------------------------------------------------------------------------
# capacitated MCLP
#
# hand case: 3 demand points, 2 sites, weights w = [5, 5, 4]
#   site 0 covers demand {0, 1} (reaches 10)   site 1 covers demand {1, 2} (reaches 9)
# k=1 without capacities: site 0 (10 > 9), as in solve_mclp.
# k=1 with capacities [6, 9]: site 0 serves min(6, 10) = 6, site 1 serves min(9, 9) = 9 -> site 1.
# k=2 with capacities [6, 9]: site 0 takes demand 0 (5) + 1 of demand 1, site 1 takes demand 2 (4)
#   + 4 of demand 1: everything (14) is served. (The split of demand 1 is not unique: site 0 may
#   take 0..1 of it, so site 0 serves 5..6 and site 1 serves 8..9; site 1 always serves more.)
# greedy (proportional fill): gains min(6, 10) = 6 and min(9, 9) = 9 -> site 1 fills demand 1 and 2
#   completely; then site 0 reaches only demand 0 (5 <= 6): total 14.

CAP_A = sp.csr_matrix(np.array([[1, 0], [1, 1], [0, 1]], dtype=bool))
CAP_W = np.array([5.0, 5.0, 4.0])


def test_capacitated_hand_case_capacity_changes_the_optimum():
    unc = solve_capacitated_mclp(CAP_A, CAP_W, 1, np.inf)
    assert unc.sites == [0] and unc.objective == pytest.approx(10.0)
    assert solve_mclp(CAP_A, CAP_W, 1).sites == [0]
    # greedy serves 9 = the simple bound min(14, largest capacity 9): optimal without a solver
    r = solve_capacitated_mclp(CAP_A, CAP_W, 1, [6.0, 9.0])
    assert r.status == "optimal" and r.method == "greedy" and "milp_skipped" in r.details
    assert r.sites == [1] and r.objective == 9.0 and r.bound == 9.0 and r.gap == 0.0
    r = solve_capacitated_mclp(CAP_A, CAP_W, 1, [6.0, 9.0], _shortcut=False)
    assert r.status == "optimal" and r.method == "milp" and not r.time_limited
    assert r.sites == [1] and r.objective == pytest.approx(9.0)
    assert r.added_weight.tolist() == pytest.approx([9.0])
    assert r.bound == pytest.approx(9.0) and r.gap == pytest.approx(0.0, abs=1e-9)
    r2 = solve_capacitated_mclp(CAP_A, CAP_W, 2, [6.0, 9.0], _shortcut=False)
    assert sorted(r2.sites) == [0, 1] and r2.objective == pytest.approx(14.0)
    by_site = r2.details["served_by_site"]
    assert 5.0 - 1e-9 <= by_site[0] <= 6.0 + 1e-9 and 8.0 - 1e-9 <= by_site[1] <= 9.0 + 1e-9
    assert by_site[0] + by_site[1] == pytest.approx(14.0)
    assert r2.sites == [1, 0]  # ordered by assigned demand, largest first
    g = greedy_capacitated_mclp(CAP_A, CAP_W, 2, [6.0, 9.0])
    assert g.sites == [1, 0] and g.added_weight.tolist() == pytest.approx([9.0, 5.0])
    assert g.objective == pytest.approx(14.0) and g.status == "greedy"
    # demand 1 already covered by an existing facility: site 0 serves 5, site 1 serves 4
    cov = np.array([False, True, False])
    assert solve_capacitated_mclp(CAP_A, CAP_W, 1, [6.0, 9.0], covered=cov).objective == 5.0
    # a scalar capacity applies to every site: 3 each -> k=1 serves 3
    assert solve_capacitated_mclp(CAP_A, CAP_W, 1, 3.0).objective == pytest.approx(3.0)


def test_capacitated_greedy_proportional_fill_strands_capacity():
    # site 0 covers demand {0, 1} (cap 5), site 1 covers demand {1} (cap 5), w = [5, 5], k = 2.
    # greedy: gains min(5, 10) = 5 and min(5, 5) = 5, tie -> site 0, which takes half of each
    #   row (2.5 + 2.5); site 1 then reaches only 2.5 of demand 1: total 7.5.
    # optimum: site 0 serves demand 0, site 1 serves demand 1: 10.
    A = sp.csr_matrix(np.array([[1, 0], [1, 1]], dtype=bool))
    w = [5.0, 5.0]
    g = greedy_capacitated_mclp(A, w, 2, [5.0, 5.0])
    assert g.sites == [0, 1] and g.added_weight.tolist() == pytest.approx([5.0, 2.5])
    assert g.details["remaining_demand"].tolist() == pytest.approx([2.5, 0.0])
    ex = solve_capacitated_mclp(A, w, 2, [5.0, 5.0])
    assert ex.objective == pytest.approx(10.0) and ex.details["greedy_objective"] == 7.5


def test_capacitated_existing_capacity_hand():
    # site 0 is an existing facility with 6 places (not a candidate: capacity 0); site 1 a
    # candidate with 3. Existing alone: 6 of demand {0, 1}. With site 1: 6 + 3 = 9 served,
    # 3 newly. k = 0: only the existing 6.
    kw = {"existing_capacity": [6.0, 0.0]}
    r = solve_capacitated_mclp(CAP_A, CAP_W, 1, [0.0, 3.0], **kw)
    assert r.sites == [1] and r.objective == pytest.approx(9.0)
    assert r.details["served_existing_only"] == pytest.approx(6.0)
    assert r.details["newly_served"] == pytest.approx(3.0)
    assert solve_capacitated_mclp(CAP_A, CAP_W, 0, [0.0, 3.0], **kw).objective == 6.0
    g = greedy_capacitated_mclp(CAP_A, CAP_W, 1, [0.0, 3.0], **kw)
    # existing site 0 fills proportionally: 6 of 10 -> demand 0 and 1 keep 2 each; site 1 then
    # reaches 2 + 4 = 6 and serves its 3
    assert g.details["served_existing"] == pytest.approx(6.0)
    assert g.sites == [1] and g.objective == pytest.approx(3.0)
    # an expansion: site 0 (existing 6) may add 4 more places; k = 1 -> 10 of its 10 in reach
    r = solve_capacitated_mclp(CAP_A, CAP_W, 1, [4.0, 0.0], existing_capacity=[6.0, 0.0])
    assert r.sites == [0] and r.objective == pytest.approx(10.0)


def test_capacitated_bad_inputs_and_size_limit():
    with pytest.raises(DataError, match=r"(?s)capacity.*NaN.*negative"):
        solve_capacitated_mclp(CAP_A, CAP_W, 1, [np.nan, -1.0])
    with pytest.raises(DataError, match="one capacity per site"):
        greedy_capacitated_mclp(CAP_A, CAP_W, 1, [1.0, 2.0, 3.0])
    with pytest.raises(DataError, match="existing_capacity.*infinite"):
        solve_capacitated_mclp(CAP_A, CAP_W, 1, [1.0, 1.0], existing_capacity=[np.inf, 0.0])
    with pytest.raises(DataError, match=r"4 non-zeros.*max_nnz=3.*greedy_capacitated_mclp"):
        solve_capacitated_mclp(CAP_A, CAP_W, 1, [6.0, 9.0], max_nnz=3)
    # the limit applies after reduction: with demand 1 covered, 2 non-zeros remain
    r = solve_capacitated_mclp(CAP_A, CAP_W, 1, [6.0, 9.0], max_nnz=3,
                               covered=[False, True, False])
    assert r.details["nnz"] == 2 and r.objective == 5.0


def _transport_lp(A: np.ndarray, w: np.ndarray, cap: np.ndarray) -> float:
    """Most demand sites with capacities ``cap`` can serve (dense linprog, independent model)."""
    from scipy.optimize import linprog

    ii, jj = np.nonzero(A)
    if ii.size == 0:
        return 0.0
    n_e = ii.size
    A_ub = np.zeros((A.shape[0] + A.shape[1], n_e))
    A_ub[ii, np.arange(n_e)] = 1.0
    A_ub[A.shape[0] + jj, np.arange(n_e)] = 1.0
    res = linprog(-np.ones(n_e), A_ub=A_ub, b_ub=np.concatenate([w, cap]), bounds=(0, None),
                  method="highs")
    assert res.status == 0
    return float(-res.fun)


def _brute_capacitated(A, w, k, cap, ex):
    best = -1.0
    for size in range(0, min(k, A.shape[1]) + 1):
        for combo in itertools.combinations(range(A.shape[1]), size):
            c = ex.copy()
            c[list(combo)] += cap[list(combo)]
            best = max(best, _transport_lp(A, w, c))
    return best


@settings(deadline=None, max_examples=30, derandomize=True)
@given(seed=st.integers(0, 10_000), n_d=st.integers(1, 8), n_s=st.integers(1, 5),
       k=st.integers(1, 3), density=st.floats(0.1, 0.7), with_existing=st.booleans())
def test_capacitated_against_transportation_lp_brute_force(seed, n_d, n_s, k, density,
                                                           with_existing):
    rng = np.random.default_rng(seed)
    A = rng.random((n_d, n_s)) < density
    w = rng.integers(0, 12, n_d).astype(float)
    cap = rng.integers(0, 15, n_s).astype(float)
    ex = (rng.integers(0, 3, n_s) * rng.integers(0, 8, n_s)).astype(float) if with_existing \
        else np.zeros(n_s)
    covered = rng.random(n_d) < 0.2
    w_eff = np.where(covered, 0.0, w)
    opt = _brute_capacitated(A, w_eff, k, cap, ex)
    for shortcut in (True, False):
        r = solve_capacitated_mclp(sp.csr_matrix(A), w, k, cap, covered=covered,
                                   existing_capacity=ex if with_existing else None,
                                   _shortcut=shortcut)
        assert r.objective == pytest.approx(opt, abs=1e-6)
        assert r.status in ("optimal", "nothing_to_do") and r.bound >= opt - 1e-6
        assert r.gap == pytest.approx(0.0, abs=1e-6)
        assert len(r.sites) <= k and all(cap[j] > 0 for j in r.sites)
        if not shortcut and r.status == "optimal":
            assert r.method == "milp"
        # the reported sites really serve the objective (re-solved independently)
        c = ex.copy()
        c[r.sites] += cap[r.sites]
        assert _transport_lp(A, w_eff, c) == pytest.approx(r.objective, abs=1e-6)
        if r.status == "optimal":
            assert r.details["served_existing_only"] == pytest.approx(
                _transport_lp(A, w_eff, ex), abs=1e-6)
    # greedy: feasible and no better than the optimum
    g = greedy_capacitated_mclp(sp.csr_matrix(A), w, k, cap, covered=covered,
                                existing_capacity=ex if with_existing else None)
    total_g = g.objective + g.details["served_existing"]
    assert total_g <= opt + 1e-6
    rem = g.details["remaining_demand"]
    assert np.all(rem >= -1e-9) and np.all(rem <= w_eff + 1e-9)
    assert float((w_eff - rem).sum()) == pytest.approx(total_g, abs=1e-6)
    assert np.all(g.added_weight <= cap[g.sites] + ex[g.sites] + 1e-9)
    assert len(g.sites) <= k and len(set(g.sites)) == len(g.sites)


@settings(deadline=None, max_examples=30, derandomize=True)
@given(seed=st.integers(0, 10_000), n_d=st.integers(1, 25), n_s=st.integers(1, 8),
       k=st.integers(1, 4), density=st.floats(0.05, 0.6), big=st.booleans())
def test_capacitated_with_unlimited_capacity_equals_mclp(seed, n_d, n_s, k, density, big):
    rng = np.random.default_rng(seed)
    A = sp.csr_matrix(rng.random((n_d, n_s)) < density)
    w = rng.integers(0, 20, n_d).astype(float)
    covered = rng.random(n_d) < 0.15
    cap = np.full(n_s, w.sum() if big else np.inf)  # >= total demand, or +inf
    r = solve_capacitated_mclp(A, w, k, cap, covered=covered, _shortcut=False)
    m = solve_mclp(A, w, k, covered=covered)
    assert r.objective == pytest.approx(m.objective, abs=1e-6)
    # unlimited capacity: the greedy is greedy_mclp (same gains, same tie-break)
    g = greedy_capacitated_mclp(A, w, k, cap, covered=covered)
    gm = greedy_mclp(A, w, k, covered=covered)
    assert g.sites == gm.sites
    assert g.added_weight.tolist() == pytest.approx(gm.added_weight.tolist())


def test_capacitated_node_limit_reports_status_and_gap():
    rng = np.random.default_rng(3)
    n_d, n_s = 600, 80
    A = sp.random(n_d, n_s, density=0.05, random_state=rng, format="csr").astype(bool)
    w = rng.integers(1, 30, n_d).astype(float)
    cap = rng.integers(20, 120, n_s).astype(float)
    r = solve_capacitated_mclp(A, w, 6, cap, limits=SolverLimits(node_limit=1))
    g = greedy_capacitated_mclp(A, w, 6, cap)
    assert r.status in ("optimal", "node_limit") and not r.time_limited
    assert np.isfinite(r.gap) and r.gap >= 0 and r.bound >= r.objective - 1e-6
    assert r.objective >= g.objective - 1e-9
    assert r.objective <= cap[r.sites].sum() + 1e-6 and len(r.sites) <= 6
    assert r.cumulative[-1] == pytest.approx(r.objective)
    # capacity binding everywhere: greedy serves 6 x 20 = the simple bound, no solver needed
    r = solve_capacitated_mclp(A, w, 6, np.full(n_s, 20.0), limits=SolverLimits(node_limit=1))
    assert r.status == "optimal" and r.objective == pytest.approx(120.0) and r.gap == 0.0
    assert r.method == "greedy" and "milp_skipped" in r.details


def test_coverage_sets_respect_max_snap_m():
    """A cell (or planned site) farther than max_snap_m from the network is covered by nothing,
    as in coverage.cell_results: siting must not count people a re-run would call uncovered."""
    import geopandas as gpd

    from accessibility.demo.cities import synthetic_city, synthetic_config
    from accessibility.siting import coverage_sets

    city = synthetic_city(3_000, seed=8)
    cfg = synthetic_config(crs=city.net.crs)
    rule = circle_rule(cfg, "culture_15min")
    assert rule.max_snap_m == cfg.max_snap_m == 500.0  # the run's limit, by default
    cells = city.cells.iloc[:50].copy()
    # 600 m west of the westernmost node: beyond max_snap_m (500 m) but 500 s of walk leaves
    # 400 s of network time, so without the limit a candidate near the edge would cover it
    x, y = city.net.nodes["x"].to_numpy(), city.net.nodes["y"].to_numpy()
    i = int(np.argmin(x))
    far = gpd.GeoDataFrame(geometry=gpd.points_from_xy([x[i] - 600.0], [y[i]]), crs=cells.crs)
    cells = gpd.GeoDataFrame(pd.concat([cells, far], ignore_index=True), crs=cells.crs)
    cand = pd.DataFrame({"node": np.arange(0, city.net.n_nodes, 7)})
    A_inf = coverage_sets(city.net, cells, cand, circle_rule(cfg, "culture_15min", max_snap_m=1e9))
    A_lim = coverage_sets(city.net, cells, cand, rule)
    assert A_inf[len(cells) - 1].nnz > 0  # without the limit the far cell counts as coverable
    assert A_lim[len(cells) - 1].nnz == 0
    assert (A_lim[: len(cells) - 1] != A_inf[: len(cells) - 1]).nnz == 0  # near cells unchanged


def test_capacitated_with_no_usable_site_is_nothing_to_do():
    """Regression (found by hypothesis): the only site has no places -> an empty MILP."""
    A = sp.csr_matrix(np.array([[True], [False], [True]]))
    r = solve_capacitated_mclp(A, np.array([5.0, 3.0, 2.0]), 1, np.array([0.0]), _shortcut=False)
    assert r.status == "nothing_to_do" and r.objective == 0.0 and r.sites == []


def test_sites_that_cover_nobody_new_are_not_proposed():
    """Review finding: float crumbs of the incremental gains let idle sites into the ranking, and a
    '<= k' MILP could list idle sites in the exact set."""
    import scipy.sparse as sp

    # site 0 covers every row; sites 1 and 2 cover subsets whose weights do not sum exactly
    A = sp.csr_matrix(np.array([[1, 1, 0], [1, 1, 1], [1, 0, 1]], dtype=bool))
    w = np.array([0.1, 0.7, 0.2])
    g = greedy_mclp(A, w, 3)
    assert g.sites == [0] and g.added_weight.tolist() == [pytest.approx(1.0)]
    ex = solve_mclp(A, w, 3)
    assert ex.sites == [0] and ex.objective == pytest.approx(1.0)
    ex2 = solve_mclp(A, w, 2)  # the MILP path proper (k < distinct sites)
    assert ex2.sites == [0] and (ex2.added_weight > 0).all()


def test_zero_sites_asked():
    """Regression (fuzzing): k = 0 crashed the greedy bound."""
    import scipy.sparse as sp

    A = sp.csr_matrix(np.array([[1, 0, 1]], dtype=bool))
    g = greedy_mclp(A, [1.0], 0)
    assert g.sites == [] and g.objective == 0.0
    e = solve_mclp(A, [1.0], 0)
    assert e.sites == [] and e.status == "nothing_to_do"


# ---------------------------------------------------------------------------------------------
# exact reductions, column generation and proof labels (issue 12)


def _random_instance(seed, n_d, n_s, density):
    rng = np.random.default_rng(seed)
    A = rng.random((n_d, n_s)) < density
    w = rng.integers(0, 20, n_d).astype(float)
    return rng, A, w


@settings(deadline=None, max_examples=60, derandomize=True)
@given(seed=st.integers(0, 10_000), n_d=st.integers(1, 14), n_s=st.integers(1, 8),
       density=st.floats(0.05, 0.7))
def test_reductions_keep_the_optimum(seed, n_d, n_s, density):
    """Dominated columns, merged rows, set-cover reductions and the split into parts leave the
    optimum unchanged (brute force on the reduced and the unreduced instance)."""
    from accessibility.siting import (
        _components,
        _merge_rows,
        _reduce_set_cover,
        _undominated_columns,
    )

    _, A, w = _random_instance(seed, n_d, n_s, density)
    keep = _undominated_columns(sp.csr_matrix(A))
    assert set(keep) <= set(range(n_s)) and list(keep) == sorted(keep)
    A_m, w_m, _, group = _merge_rows(sp.csr_matrix(A), w)
    for k in (1, 2, 3):
        opt = _brute_mclp(A, w, k)
        assert _brute_mclp(A[:, keep], w, k) == pytest.approx(opt)
        assert _brute_mclp(A_m.toarray(), w_m, k) == pytest.approx(opt)
    assert w_m.sum() == pytest.approx(w.sum()) and group.max() + 1 == A_m.shape[0]
    # set cover of the coverable rows
    B = A[A.any(axis=1)]
    if not B.shape[0]:
        return
    opt = _brute_lscp(B)
    assert _brute_lscp(B[:, keep]) == opt
    fixed, rows, cols = _reduce_set_cover(sp.csr_matrix(B))
    core = B[np.ix_(rows, cols)]
    assert len(set(fixed) & set(cols)) == 0
    parts = _components(sp.csr_matrix(core))
    part_opt = [_brute_lscp(core[np.ix_(r, c)]) for r, c in parts]
    assert len(fixed) + sum(part_opt) == opt
    assert sum(r.size for r, _ in parts) == core.shape[0]
    # the fixed sites plus a cover of the core cover every row
    core_cover = []
    for (r, c), _k in zip(parts, part_opt, strict=True):
        sub = core[np.ix_(r, c)]
        best = next(combo for kk in range(c.size + 1) for combo in itertools.combinations(range(c.size), kk)
                    if sub[:, list(combo)].any(axis=1).all())
        core_cover += [cols[c[j]] for j in best]
    assert B[:, list(fixed) + core_cover].any(axis=1).all()
    r = solve_lscp(sp.csr_matrix(B), np.ones(B.shape[0]), target_share=1.0, total_weight=B.shape[0])
    assert r.objective == opt and r.status == "optimal" and r.bound == opt


@pytest.mark.parametrize("seed", range(6))
def test_mclp_column_generation_equals_the_full_lp_and_bounds_the_optimum(seed):
    """The column-generation LP reaches the LP optimum of the whole model (solved at once by
    linprog), and its bound, from any prices, is above the brute-force optimum."""
    from scipy.optimize import linprog

    from accessibility.siting import DEFAULT_LIMITS, _mclp_bound, _mclp_lp

    rng, A, w = _random_instance(seed, 40, 12, 0.2)
    A = A[A.any(axis=1)]
    w = w[: A.shape[0]] + 1.0
    m, n = A.shape
    for k in (2, 3):
        opt = _brute_mclp(A, w, k)
        full = linprog(np.concatenate([np.zeros(n), -w]),
                       A_ub=np.vstack([np.hstack([-A.astype(float), np.eye(m)]),
                                       np.concatenate([np.ones(n), np.zeros(m)])[None, :]]),
                       b_ub=np.concatenate([np.zeros(m), [k]]), bounds=(0, 1), method="highs")
        lp = _mclp_lp(sp.csr_matrix(A), w, k, [0], DEFAULT_LIMITS)
        assert lp["converged"]
        assert lp["bound"] == pytest.approx(-full.fun, rel=1e-9)
        assert lp["bound"] >= opt - 1e-9
        for _ in range(5):
            p = rng.random(m) * w
            assert _mclp_bound(sp.csr_matrix(A), w, p, k)[0] >= opt - 1e-9


@settings(deadline=None, max_examples=30, derandomize=True)
@given(seed=st.integers(0, 10_000), n_d=st.integers(12, 20), n_s=st.integers(7, 9),
       k=st.integers(2, 3), density=st.floats(0.2, 0.4))
def test_mclp_reduced_cost_fixing_and_milp_path_against_brute_force(seed, n_d, n_s, k, density):
    """One column-generation round mostly leaves the LP unconverged: the result then comes from
    reduced-cost fixing and the MILP on the sites left, and is still the brute-force optimum."""
    _, A, w = _random_instance(seed, n_d, n_s, density)
    r = solve_mclp(sp.csr_matrix(A), w, k, limits=SolverLimits(lp_rounds=1))
    opt = _brute_mclp(A, w, k)
    assert r.status in ("optimal", "nothing_to_do") and r.objective == pytest.approx(opt)
    assert r.bound >= opt - 1e-9 and r.gap == 0.0


@pytest.mark.parametrize("seed", [2, 5, 13])
def test_mclp_milp_path_with_fixed_sites_against_brute_force(seed):
    """Instances where reduced-cost fixing drops sites before the MILP: still the optimum."""
    _, A, w = _random_instance(seed, 20, 9, 0.3)
    r = solve_mclp(sp.csr_matrix(A), w, 3, limits=SolverLimits(lp_rounds=1))
    assert r.details["proof"] == "milp" and r.details["milp_columns"] < r.details["n_cols"]
    assert r.status == "optimal" and r.objective == pytest.approx(_brute_mclp(A, w, 3))


def test_solver_limits_are_checked_and_words_are_honest():
    with pytest.raises(DataError, match="node_limit"):
        SolverLimits(node_limit=0)
    with pytest.raises(DataError, match="time_limit_s"):
        SolverLimits(time_limit_s=-1)
    with pytest.raises(DataError, match="lp_rounds"):
        SolverLimits(lp_rounds=0)
    assert proof_label("optimal", 0.0) == ("已证最优", "proven optimal")
    for status in ("node_limit", "gap_limit", "time_limit", "too_large", "greedy", "target_met"):
        for gap in (0.0, 0.265, float("nan")):
            zh, en = proof_label(status, gap, method="greedy" if status in ("greedy", "target_met") else "milp")
            assert "optim" not in en.lower() and "最优" not in zh, (status, gap)
            assert en.startswith("best found")
    assert "NOT REPRODUCIBLE" in proof_label("time_limit", 0.1)[1]
    assert "26.5%" in proof_label("node_limit", 0.265)[1]
    # a result is called optimal only within 1e-6 of its proven bound
    assert proof_label("optimal", 0.01)[1].startswith("best found")
