"""Coverage: the DESIGN.md formula on hand cases, a brute-force oracle, per-unit tables, audit layers."""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path

import geopandas as gpd
import networkx as nx
import numpy as np
import pandas as pd
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st
from pyproj import Transformer

from accessibility._errors import AccessibilityWarning, CRSMismatchError
from accessibility.config import AreaConfig, Circle, Profile, Siting, Source, Terrain
from accessibility.coverage import (
    COVERAGE_COLUMNS,
    audit_layers,
    cell_results,
    coverage_by_unit,
    unit_summary_text,
    weighted_quantile,
)
from accessibility.network import build_walk_network
from accessibility.rules import circle_rule, circle_rules
from tests.conftest import make_osm

CRS = "EPSG:32648"
X0, Y0 = 600_000.0, 3_270_000.0
PROFILES = {"adult": Profile("adult", 1.2), "elderly": Profile("elderly", 0.9)}




def make_config(circles: dict[str, Circle], *, max_snap_m=500.0, synthetic=True) -> AreaConfig:
    src = {"network": Source("network", "osm_file", Path("net.osm.pbf"), "synthetic" if synthetic else "real")}
    return AreaConfig(
        name="test", title_zh="测试", title_en="test", crs=CRS, config_path=Path("test.yaml"),
        base_dir=Path("."), output_root=Path("out"), sources=src, facility_sources=(),
        profiles=PROFILES, terrain=Terrain(), circles=circles, categories={}, siting=Siting(),
        max_snap_m=max_snap_m,
    )


def circle(cid, mode, threshold, *, profile="adult", population="all", target=1.0, k=1):
    return Circle(id=cid, label_zh=f"圈{cid}", label_en=f"circle {cid}", categories=("x",), mode=mode,
                  threshold=threshold, profile=profile, population=population, target_share=target,
                  min_reachable=k)


def points(xy, **cols):
    xy = np.asarray(xy, dtype=float)
    return gpd.GeoDataFrame(cols, geometry=shapely.points(X0 + xy[:, 0], Y0 + xy[:, 1]), crs=CRS)


@pytest.fixture
def line_case():
    """A street of 5 nodes 100 m apart (x = 0..400), two facilities and five cells (see below)."""
    osm = make_osm({i: (100.0 * i, 0.0) for i in range(5)}, [([0, 1, 2, 3, 4], {"highway": "residential"})])
    net = build_walk_network(osm, CRS, profiles=PROFILES)
    fac = points([(400, 5), (0, -20)], fac_id=["f1", "f2"], name=["一号", "二号"], category=["x", "x"],
                 circles=["a;b", "b"])
    cells = points([(0, 10), (200, 0), (300, 3), (100, 0), (1000, 0)],
                   cell_id=np.arange(1, 6, dtype=np.int64),
                   population=[100.0, 200.0, 300.0, 50.0, 150.0],
                   pop_60plus=[10.0, 20.0, 30.0, 40.0, 50.0],
                   unit_code=["U1", "U1", "U1", "U2", "U2"])
    cells.index = [11, 12, 13, 14, 15]  # results must follow the cells' own index
    cfg = make_config({
        "a": circle("a", "time", 300.0),
        "b": circle("b", "distance", 250.0, population="60plus", target=0.5, k=2),
    })
    return net, fac, cells, cfg


def test_cell_results_by_hand(line_case):
    net, fac, cells, cfg = line_case
    with pytest.warns(AccessibilityWarning, match=r"1 of 5 cells \(population 150\) are more than max_snap_m"):
        res = cell_results(cells, fac, net, cfg, progress=False)
    assert list(res.index) == [11, 12, 13, 14, 15]
    assert list(res.columns) == ["a_t", "a_n", "a_covered", "a_t_flat", "b_t", "b_n", "b_covered"]
    # circle a: only f1 (node x=400, 5 m off the street); walk + network + walk at 1.2 m/s
    exp_a = np.array([10 + 400 + 5, 0 + 200 + 5, 3 + 100 + 5, 0 + 300 + 5, np.inf]) / 1.2
    np.testing.assert_allclose(res.a_t, exp_a)
    np.testing.assert_allclose(res.a_t_flat, exp_a)
    assert res.a_covered.tolist() == [False, True, True, True, False]
    assert res.a_n.tolist() == [0, 1, 1, 1, 0]
    # circle b (metres): f1 offset 5 at x=400, f2 offset 20 at x=0; two needed within 250 m
    np.testing.assert_allclose(res.b_t, [10 + 20, 205, 108, 120, np.inf])
    assert res.b_n.tolist() == [1, 2, 1, 1, 0]
    assert res.b_covered.tolist() == [False, True, False, False, False]
    assert res.a_covered.dtype == bool and res.a_n.dtype == np.int64


def test_threshold_is_inclusive():
    osm = make_osm({0: (0, 0), 1: (120, 0)}, [([0, 1], {"highway": "footway"})])
    net = build_walk_network(osm, CRS, profiles=PROFILES)
    fac = points([(120, 0)], fac_id=["f"], name=["f"], category=["x"], circles=["a"])
    cells = points([(0, 0)], cell_id=[1], population=[1.0], pop_60plus=[0.0], unit_code=["U"])
    cfg = make_config({"a": circle("a", "time", 100.0), "d": circle("d", "distance", 120.0)})
    fac["circles"] = "a;d"
    res = cell_results(cells, fac, net, cfg, progress=False)
    assert res.a_t.iloc[0] == pytest.approx(100.0) and bool(res.a_covered.iloc[0])
    assert res.d_t.iloc[0] == pytest.approx(120.0) and bool(res.d_covered.iloc[0])


def test_empty_facility_set_and_crs(line_case):
    net, fac, cells, cfg = line_case
    fac = fac.assign(circles="b")
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        res = cell_results(cells, fac, net, circle_rules(cfg, ["a"]), progress=False)
    assert any("circle a: no facility" in str(w.message) for w in rec)
    assert np.isinf(res.a_t).all() and not res.a_covered.any() and (res.a_n == 0).all()
    with pytest.raises(CRSMismatchError, match="cells layer is in EPSG:4326.*to_crs"):
        cell_results(cells.to_crs("EPSG:4326"), fac, net, cfg, progress=False)


def test_far_facility_is_left_out(line_case):
    net, fac, cells, cfg = line_case
    fac = pd.concat([fac, points([(200, 900)], fac_id=["far"], name=["远"], category=["x"], circles=["a"])])
    with pytest.warns(AccessibilityWarning) as rec:
        res = cell_results(cells, fac, net, cfg, progress=False)
    assert any("1 of 3 facilities are more than max_snap_m" in str(w.message) and "远" in str(w.message)
               for w in rec)
    assert res.a_n.tolist() == [0, 1, 1, 1, 0]


def test_coverage_by_unit_by_hand(line_case):
    net, fac, cells, cfg = line_case
    with pytest.warns(AccessibilityWarning):
        res = cell_results(cells, fac, net, cfg, progress=False)
    units = pd.DataFrame({"unit_code": ["U1", "U2"], "unit_name": ["甲街道", "乙镇"], "unit_name_en": ["Jia", "Yi"]})
    tab = coverage_by_unit(cells, res, units, cfg, district_code="500105")
    assert list(tab.columns) == COVERAGE_COLUMNS
    assert tab.unit_code.tolist() == ["U1", "U2", "500105", "U1", "U2", "500105"]
    # the district row's names come from the configuration (here unnamed: the area's name)
    assert tab.unit_name.tolist()[2] == "test" and tab.unit_name_en.tolist()[2] == "test"
    named = coverage_by_unit(cells, res, units, dataclasses.replace(cfg, district_name="某区", district_name_en="Moqu"))
    assert named.unit_code.tolist()[2] == "DISTRICT" and named.unit_name.tolist()[2] == "某区"
    assert named.unit_name_en.tolist()[2] == "Moqu"
    a = tab[tab.circle == "a"].set_index("unit_code")
    # circle a (all residents, target 100 %): U1 covers C2 + C3 = 500 of 600, U2 covers C4 = 50 of 200
    assert a.population.tolist() == [600.0, 200.0, 800.0]
    assert a.covered_population.tolist() == [500.0, 50.0, 550.0]
    assert a.coverage_share.tolist() == pytest.approx([5 / 6, 0.25, 550 / 800])
    assert a.gap_population.tolist() == pytest.approx([100.0, 150.0, 250.0])
    assert a.uncovered_population.tolist() == pytest.approx([100.0, 150.0, 250.0])
    assert a.meets_target.tolist() == [False, False, False]
    assert (a.threshold == 5.0).all() and (a.t_unit == "min").all() and (a["mode"] == "time").all()
    # population-weighted median / p90 in minutes: U1 times 90 s (300 p), 170.8 s (200 p), 345.8 s (100 p)
    assert a.loc["U1", "median_t"] == pytest.approx(90 / 60)
    assert a.loc["U1", "p90_t"] == pytest.approx(415 / 1.2 / 60)
    assert np.isinf(a.loc["U2", "median_t"])  # 150 of 200 people reach nothing
    assert a.coverage_share_flat.tolist() == pytest.approx(a.coverage_share.tolist())
    # circle b (60+, target 50 %, two facilities): only C2 (20 people of 60+) covered
    b = tab[tab.circle == "b"].set_index("unit_code")
    assert b.population.tolist() == [60.0, 90.0, 150.0]
    assert b.covered_population.tolist() == [20.0, 0.0, 20.0]
    assert b.gap_population.tolist() == pytest.approx([10.0, 45.0, 55.0])
    assert (b.t_unit == "m").all() and (b.threshold == 250.0).all() and b.coverage_share_flat.isna().all()
    assert (tab.data_status == cfg.data_status).all() and "SYNTHETIC" in tab.data_status.iloc[0]
    # targets: lowering b's target to 1/3 makes U1 meet it exactly
    cfg2 = make_config({"a": cfg.circles["a"], "b": circle("b", "distance", 250.0, population="60plus",
                                                                target=1 / 3, k=2)})
    t2 = coverage_by_unit(cells, res, units, cfg2, circles=["b"]).set_index("unit_code")
    assert bool(t2.loc["U1", "meets_target"]) and t2.loc["U1", "gap_population"] == 0.0
    text = unit_summary_text(tab)
    assert "甲街道 Jia" in text and "NO" in text and "250" in text and "100" in text


def test_weighted_quantile():
    assert weighted_quantile([3, 1, 2], [1, 1, 1], 0.5) == 2
    assert weighted_quantile([1, 10], [9, 1], 0.9) == 1
    assert weighted_quantile([1, 10], [8, 2], 0.9) == 10
    assert np.isnan(weighted_quantile([1.0], [0.0], 0.5))


def test_grid_oracle_and_audit_layers(tmp_path):
    # 8 x 8 grid, 50 m spacing; random cells and facilities; brute force with networkx per pair
    k, step = 8, 50.0
    pts = {i * k + j: (step * j, step * i) for i in range(k) for j in range(k)}
    ways = [([i * k + j for j in range(k)], {"highway": "residential"}) for i in range(k)]
    ways += [([i * k + j for i in range(k)], {"highway": "residential"}) for j in range(k)]
    ways.append(([0, 9], {"highway": "footway", "oneway:foot": "yes"}))  # a directed shortcut
    net = build_walk_network(make_osm(pts, ways), CRS, profiles=PROFILES)
    rng = np.random.default_rng(3)
    cxy = rng.uniform(-20, step * (k - 1) + 20, size=(40, 2))
    fxy = rng.uniform(0, step * (k - 1), size=(6, 2))
    cells = points(cxy, cell_id=np.arange(40), population=rng.uniform(1, 100, 40),
                   pop_60plus=rng.uniform(0, 20, 40), unit_code=rng.choice(["U1", "U2"], 40))
    fac = points(fxy, fac_id=[f"f{i}" for i in range(6)], name=[f"n{i}" for i in range(6)],
                 category="x", circles=["e", "e;d", "e", "d", "e;d", "e"])
    cfg = make_config({"e": circle("e", "time", 240.0, profile="elderly", k=2), "d": circle("d", "distance", 150.0)})
    res = cell_results(cells, fac, net, cfg, progress=False)

    # recompute every number from the audit layers alone (what tests/test_audit.py promises)
    layers = audit_layers(net, cells, fac, cfg)
    assert set(layers) == {"edges", "cells", "facilities"}
    e, c, f = layers["edges"], layers["cells"], layers["facilities"]
    assert list(c.columns) == ["cell_id", "population", "pop_60plus", "unit_code", "node", "walk_s_adult",
                               "walk_s_elderly", "snap_m", "geometry"]
    assert {"u", "v", "length_m", "time_s_adult", "time_s_elderly"} <= set(e.columns)
    g = {w: nx.DiGraph() for w in ("length_m", "time_s_elderly")}
    for w, gw in g.items():
        for a, b, val in zip(e.u, e.v, e[w], strict=True):
            if np.isfinite(val) and (not gw.has_edge(a, b) or gw[a][b]["w"] > val):
                gw.add_edge(int(a), int(b), w=float(val))
    for cid, w, walk, thr, kmin in [("e", "time_s_elderly", "walk_s_elderly", 240.0, 2),
                                    ("d", "length_m", "snap_m", 150.0, 1)]:
        sel = f[f.circles.str.split(";").apply(lambda s, cid=cid: cid in s)]
        tt = np.full((len(c), len(sel)), np.inf)
        for i, (cn, cw) in enumerate(zip(c.node, c[walk], strict=True)):
            dist = nx.single_source_dijkstra_path_length(g[w], int(cn), weight="w")
            for j, (fn, fw) in enumerate(zip(sel.node, sel[walk], strict=True)):
                if int(fn) in dist:
                    tt[i, j] = cw + dist[int(fn)] + fw
        best = tt.min(axis=1)
        np.testing.assert_allclose(res[f"{cid}_t"].to_numpy(), np.where(best <= 3 * thr, best, np.inf), atol=1e-6)
        n_exp = (tt <= thr + 1e-9).sum(axis=1)
        assert res[f"{cid}_n"].tolist() == n_exp.tolist()
        assert res[f"{cid}_covered"].tolist() == (n_exp >= kmin).tolist()
    assert 0 < res.e_covered.sum() < len(res) and 0 < res.d_covered.sum() < len(res)
    # min_reachable = 1: covered is the same as t <= threshold
    assert res.d_covered.tolist() == (res.d_t <= 150.0).tolist()

    # the layers can be written to a GeoPackage (inf times included)
    for name, layer in layers.items():
        layer.to_file(tmp_path / "analysis_inputs.gpkg", layer=name, driver="GPKG")
    back = gpd.read_file(tmp_path / "analysis_inputs.gpkg", layer="cells")
    assert len(back) == 40 and back.node.tolist() == c.node.tolist()


def test_verdicts_only_mode_agrees_with_full_mode():
    """counts=False, search_factor=1 (scenario sweeps) gives the same verdicts and times within T."""
    import warnings as _w

    from accessibility.demo.cities import synthetic_city, synthetic_config

    city = synthetic_city(4_000, seed=11)
    cfg = synthetic_config(crs=city.net.crs)
    with _w.catch_warnings():
        _w.simplefilter("ignore", AccessibilityWarning)
        full = cell_results(city.cells, city.facilities, city.net, cfg, progress=False)
        fast = cell_results(city.cells, city.facilities, city.net, cfg, flat=False, counts=False,
                            search_factor=1.0, progress=False)
    for cid, c in cfg.circles.items():
        assert f"{cid}_n" not in fast and f"{cid}_t_flat" not in fast
        assert (fast[f"{cid}_covered"] == full[f"{cid}_covered"]).all()
        within = full[f"{cid}_t"] <= c.threshold
        assert within.any() and (~within).any()
        np.testing.assert_allclose(fast.loc[within, f"{cid}_t"], full.loc[within, f"{cid}_t"])
        assert np.isinf(fast.loc[~within, f"{cid}_t"]).all()


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 2000) | st.just(np.inf), st.floats(0, 50)), min_size=1, max_size=40),
       st.sampled_from([0.1, 0.5, 0.9]))
def test_grouped_quantiles_one_group_equal_weighted_quantile(pairs, q):
    from accessibility.coverage import _grouped_quantiles, weighted_quantile

    v = np.array([p[0] for p in pairs])
    w = np.array([p[1] for p in pairs])
    order = np.argsort(v, kind="stable")
    got = _grouped_quantiles(v[order], w[order], [0, v.size], (q,))[0, 0]
    want = weighted_quantile(v, w, q)
    assert (np.isnan(got) and np.isnan(want)) or got == want


def test_cell_facility_reach_counts_match_cell_results():
    import warnings as _w

    from accessibility.coverage import cell_facility_reach, circle_facilities
    from accessibility.demo.cities import synthetic_city, synthetic_config

    city = synthetic_city(4_000, seed=4)
    cfg = synthetic_config(crs=city.net.crs)
    with _w.catch_warnings():
        _w.simplefilter("ignore", AccessibilityWarning)
        res = cell_results(city.cells, city.facilities, city.net, cfg, flat=False, progress=False)
    for cid in cfg.circles:
        fac = city.facilities[circle_facilities(city.facilities, cid)]
        R = cell_facility_reach(city.cells, fac, city.net, circle_rule(cfg, cid))
        assert R.shape == (len(city.cells), len(fac))
        np.testing.assert_array_equal(np.asarray(R.sum(axis=1)).ravel(), res[f"{cid}_n"].to_numpy())


def test_worst_places_by_hand():
    from types import SimpleNamespace

    import geopandas as gpd

    from accessibility.coverage import worst_places

    crs = "EPSG:32648"
    x = np.array([500_100.0, 500_300.0, 500_900.0, 503_500.0, 500_200.0])
    y = np.array([3_270_100.0, 3_270_200.0, 3_270_900.0, 3_270_500.0, 3_270_500.0])
    cells = gpd.GeoDataFrame({"population": [10.0, 30.0, 20.0, 100.0, 1000.0],
                              "unit_code": ["A", "A", "B", "B", "A"]},
                             geometry=gpd.points_from_xy(x, y), crs=crs)
    # the last cell is covered: it must not count
    results = pd.DataFrame({"c_covered": [False, False, False, False, True],
                            "c_t": [1200.0, 960.0, 1500.0, np.inf, 300.0]})
    units = pd.DataFrame({"unit_code": ["A", "B"], "unit_name": ["甲", "乙"]})
    circle = SimpleNamespace(id="c", weight_column="population", mode="time")
    out = worst_places(cells, results, units, circle, square_m=1000.0, n=5)
    # square (503, 3270): 100 (unit B); square (500, 3270) holds cells 0-2 of two units, so it is
    # split at the boundary: unit A's part (cells 0, 1: 40 people) and unit B's (cell 2: 20)
    assert out["uncovered"].tolist() == [100.0, 40.0, 20.0]
    assert out["unit_name"].tolist() == ["乙", "甲", "乙"]
    lon, lat = Transformer.from_crs(crs, 4326, always_xy=True).transform(
        (10 * 500_100 + 30 * 500_300) / 40, (10 * 3_270_100 + 30 * 3_270_200) / 40)
    assert out.loc[1, "lon"] == pytest.approx(lon) and out.loc[1, "lat"] == pytest.approx(lat)
    # lower weighted median of 960 s (30 people), 1200 s (10): half of 40 is reached at 960 s =
    # 16 min; inf for the unreached square
    assert out.loc[1, "median_t"] == pytest.approx(16.0) and np.isinf(out.loc[0, "median_t"])
    assert out.loc[2, "median_t"] == pytest.approx(25.0)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 5000), st.floats(0, 5000), st.sampled_from(["A", "B", "C"]),
                          st.sampled_from([0.0, 1.0, 7.0, 250.0]), st.booleans()), min_size=1, max_size=60),
       st.sampled_from([300.0, 1000.0, 2500.0]))
def test_worst_places_never_exceed_their_unit(rows, square_m):
    """Review finding (a 1 km square showed 3,428 uncovered residents in a unit of 2,211): every
    place belongs to one unit, so its figure is at most that unit's uncovered total, and the
    places of a unit add up to at most its total (all of it when every place is listed)."""
    from types import SimpleNamespace

    import geopandas as gpd

    from accessibility.coverage import worst_places

    x, y, unit, pop, cov = (np.array(v) for v in zip(*rows, strict=True))
    cells = gpd.GeoDataFrame({"population": pop.astype(float), "unit_code": unit},
                             geometry=gpd.points_from_xy(500_000 + x, 3_270_000 + y), crs="EPSG:32648")
    results = pd.DataFrame({"c_covered": cov.astype(bool), "c_t": np.full(len(x), 1000.0)})
    units = pd.DataFrame({"unit_code": ["A", "B", "C"], "unit_name": ["甲", "乙", "丙"]})
    circle = SimpleNamespace(id="c", weight_column="population", mode="time")
    out = worst_places(cells, results, units, circle, square_m=square_m, n=len(x))
    unc = pd.Series(np.where(cov, 0.0, pop), index=unit).groupby(level=0).sum()
    for _, r in out.iterrows():
        assert r["uncovered"] <= unc[r["unit_code"]] + 1e-9
    got = out.groupby("unit_code")["uncovered"].sum()
    for u, total in unc.items():
        assert got.get(u, 0.0) == pytest.approx(total)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.sampled_from([0.0, 1.0, 2.5, 7.0, np.inf, np.nan]),
                          st.sampled_from([0.0, 0.5, 1.0, 3.0])), max_size=40),
       st.sampled_from([0.1, 0.5, 0.9, 1.0]))
def test_grouped_quantiles_equal_weighted_quantile_per_group(rows, q):
    """The vectorised per-unit quantiles == weighted_quantile applied to each unit alone."""
    from accessibility.coverage import _grouped_quantiles

    g = np.array([r[0] for r in rows], dtype=np.int64)
    v = np.array([r[1] for r in rows], dtype=float)
    w = np.array([r[2] for r in rows], dtype=float)
    order = np.lexsort((v, g))
    bounds = np.concatenate([[0], np.cumsum(np.bincount(g, minlength=4))])
    got = _grouped_quantiles(v[order], w[order], bounds, (q,))[:, 0]
    for k in range(4):
        want = weighted_quantile(v[g == k], w[g == k], q)
        assert (np.isnan(want) and np.isnan(got[k])) or got[k] == want, (k, got[k], want)


def test_grouped_quantiles_exact_ties_after_a_large_unit():
    """Regression (review): a running sum across units rounded the second unit's tie away."""
    from accessibility.coverage import _grouped_quantiles

    v = np.array([1.0, 21.39, 35.96, 47.73])
    w = np.array([180985.4, 0.8, 0.7, 0.1])
    got = _grouped_quantiles(v, w, [0, 1, 4], (0.5,))[:, 0]
    assert got[1] == weighted_quantile(v[1:], w[1:], 0.5) == 21.39
