"""What-if: hand cases, a brute-force oracle (a full coverage recomputation), the baseline, fragments."""

from __future__ import annotations

import dataclasses
import warnings

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accessibility._errors import AccessibilityWarning, DataError
from accessibility.coverage import cell_results, coverage_by_unit
from accessibility.network import build_walk_network
from accessibility.rules import circle_rules
from accessibility.whatif import WHATIF_COLUMNS, WhatIf, check_sites, what_if
from tests.conftest import make_osm
from tests.test_coverage import CRS, PROFILES, X0, Y0, circle, make_config, points

# ---------------------------------------------------------------------------------------------
# hand cases


@pytest.fixture
def street():
    """A straight street of 11 nodes 100 m apart (x = 0..1000), a two-node stair fragment at
    y = 300 (x = 0..20), one facility at x = 0 and a cell on every street node (10 people each;
    unit U1 for x <= 500, U2 beyond)."""
    pts = {i: (100.0 * i, 0.0) for i in range(11)}
    pts.update({100: (0.0, 300.0), 101: (20.0, 300.0)})
    osm = make_osm(pts, [(list(range(11)), {"highway": "residential"}),
                         ([100, 101], {"highway": "steps"})])
    net = build_walk_network(osm, CRS, profiles=PROFILES)
    fac = points([(0, 0)], fac_id=["f1"], name=["一号"], category=["x"], circles=["d;k2"])
    xs = np.arange(11) * 100.0
    cells = points(np.column_stack([xs, np.zeros(11)]), cell_id=np.arange(11, dtype=np.int64),
                   population=np.full(11, 10.0), pop_60plus=np.full(11, 1.0),
                   unit_code=["U1"] * 6 + ["U2"] * 5)
    units = pd.DataFrame({"unit_code": ["U1", "U2"], "unit_name": ["一", "二"], "unit_name_en": ["one", "two"]})
    cfg = make_config({"d": circle("d", "distance", 300.0, target=0.5),
                       "k2": circle("k2", "distance", 300.0, k=2)})
    return net, fac, cells, units, cfg


def _lonlat(x, y):
    from pyproj import Transformer

    return Transformer.from_crs(CRS, "EPSG:4326", always_xy=True).transform(X0 + x, Y0 + y)


def test_hand_case_add_and_remove(street):
    net, fac, cells, units, cfg = street
    wi = WhatIf(cells, fac, net, cfg, units=units)
    r = wi.evaluate("d", add=[_lonlat(1000.0, 40.0)])
    t = r.table.set_index("unit_code")
    # before: cells at x = 0..300 covered (40 people, all in U1); the site at (1000, 40) walks
    # 40 m to the network, so it covers x with 40 + (1000 - x) <= 300: x = 800, 900, 1000
    assert t.loc["U1", "covered_population_before"] == 40.0
    assert t.loc["U2", "covered_population_after"] == 30.0
    assert t.loc["DISTRICT", "gain"] == 30.0
    assert t.loc["DISTRICT", "coverage_share_after"] == pytest.approx(70 / 110)
    # target 50 %: U1 meets it (40 of 60), U2 does not before (0 of 50, gap 25), after 30 >= 25
    assert t.loc["U2", "gap_population_before"] == 25.0 and not t.loc["U2", "meets_target_before"]
    assert t.loc["U2", "meets_target_after"] and t.loc["U2", "gap_population_after"] == 0.0
    assert sorted(r.cells["cell_id"]) == [8, 9, 10]
    assert r.sites["snap_m"].iloc[0] == pytest.approx(40.0, abs=1e-6)
    assert r.sites["gain_alone_d"].iloc[0] == 30.0
    assert list(r.table.columns) == WHATIF_COLUMNS

    r = wi.evaluate("d", remove=["f1"])
    t = r.table.set_index("unit_code")
    assert t.loc["U1", "covered_population_after"] == 0.0 and t.loc["DISTRICT", "gain"] == -40.0
    assert r.removed.to_dict("records") == [{"fac_id": "f1", "name": "一号", "circle": "d", "in_rule": True}]


def test_hand_case_two_facilities_needed(street):
    """min_reachable = 2: exact counts, not a lower bound: a second site next to f1 covers x = 0..300."""
    net, fac, cells, units, cfg = street
    wi = WhatIf(cells, fac, net, cfg, units=units)
    r = wi.evaluate("k2", add=[_lonlat(100.0, 0.0)])
    t = r.table.set_index("unit_code")
    assert t.loc["DISTRICT", "covered_population_before"] == 0.0
    # f1 reaches x <= 300, the site at x = 100 reaches x <= 400: both for x = 0..300
    assert t.loc["DISTRICT", "covered_population_after"] == 40.0
    assert set(r.cells["n_after"]) == {2}


def test_planned_projects_are_exact_for_two_facilities_needed(street):
    """evaluate_scenario (the run's planned projects) is the what-if's computation: exact counts for
    min_reachable = 2, where it was once a lower bound (covered before or reached by a project)."""
    from accessibility.siting import evaluate_scenario

    net, fac, cells, units, cfg = street
    base = cell_results(cells, fac, net, circle_rules(cfg))
    x, y = X0 + 100.0, Y0 + 0.0
    planned = gpd.GeoDataFrame({"name": ["p"], "circles": ["k2"]}, geometry=[shapely.Point(x, y)], crs=CRS)
    ev = evaluate_scenario(cells, base, net, planned, "k2", cfg, units=units).set_index("unit_code")
    assert ev.loc["DISTRICT", "covered_before"] == 0.0
    assert ev.loc["DISTRICT", "covered_after"] == 40.0  # x = 0..300 now reach f1 and p
    assert ev.loc["U1", "meets_target_after"] == (cfg.circles["k2"].target_share <= 40.0 / 60.0)
    assert (ev["site_problems"] == "").all()
    # the brute-force oracle: p as a second facility, coverage recomputed from scratch
    both = pd.concat([fac, points([(100.0, 0.0)], fac_id=["p"], name=["p"], category=["x"], circles=["k2"])],
                     ignore_index=True)
    full = cell_results(cells, both, net, circle_rules(cfg))
    w = cells["population"].to_numpy()
    assert ev.loc["DISTRICT", "covered_after"] == pytest.approx(float(w[full["k2_covered"].to_numpy()].sum()))


def test_hand_case_fragment_site_warns(street):
    net, fac, cells, units, cfg = street
    wi = WhatIf(cells, fac, net, cfg, units=units)
    with pytest.warns(AccessibilityWarning, match=r"fragment cut off .*2 nodes, 20 m of street"):
        r = wi.evaluate("d", add=[_lonlat(10.0, 310.0)])
    s = r.sites.iloc[0]
    assert not s["on_main_network"] and s["fragment_nodes"] == 2
    assert s["fragment_street_m"] == pytest.approx(20.0)
    assert s["main_node"] == 0 and s["main_snap_m"] == pytest.approx(np.hypot(10, 310))
    assert r.district()["gain"].iloc[0] == 0.0
    # beyond max_snap_m: covers nobody, said so
    with pytest.warns(AccessibilityWarning, match="more than max_snap_m"):
        r = wi.evaluate("d", add=[_lonlat(1000.0, 900.0)])
    assert not r.sites["within_max_snap"].iloc[0] and r.district()["gain"].iloc[0] == 0.0


def test_bad_sites_and_ids(street):
    net, fac, cells, units, cfg = street
    wi = WhatIf(cells, fac, net, cfg, units=units)
    other = make_config({"d": circle("d", "distance", 300.0), "e": circle("e", "distance", 300.0)})
    with pytest.warns(AccessibilityWarning, match="f1 count for none of the circles e"):
        WhatIf(cells, fac, net, other, units=units).evaluate("e", remove=["f1"])
    with pytest.raises(DataError, match="no facility with fac_id nope"):
        wi.evaluate("d", remove=["nope"])
    with pytest.raises(DataError, match="not degrees"):
        wi.evaluate("d", add=[(29.5, 206.5)])
    with pytest.raises(DataError, match="candidate ids need the candidate sites"):
        wi.evaluate("d", add=["cand_00001"])
    with pytest.raises(DataError, match="circle 'zz' is not in"):
        wi.evaluate("zz")


def test_coords_systems_agree(street):
    """A site given in GCJ-02 lands where the same site given in WGS-84 does."""
    from accessibility.coords import wgs84_to_bd09, wgs84_to_gcj02

    net, fac, cells, units, cfg = street
    wi = WhatIf(cells, fac, net, cfg, units=units)
    lon, lat = _lonlat(1000.0, 40.0)
    a = wi.evaluate("d", add=[(lon, lat)]).sites
    b = wi.evaluate("d", add=[tuple(map(float, wgs84_to_gcj02(lon, lat)))], coords="gcj02").sites
    c = wi.evaluate("d", add=[tuple(map(float, wgs84_to_bd09(lon, lat)))], coords="bd09").sites
    for other in (b, c):
        assert other["node"].iloc[0] == a["node"].iloc[0]
        assert other["snap_m"].iloc[0] == pytest.approx(a["snap_m"].iloc[0], abs=0.01)


# ---------------------------------------------------------------------------------------------
# brute-force oracle: a full coverage recomputation with the changed facility layer


@pytest.fixture(scope="module")
def city():
    from accessibility.demo import synthetic_city, synthetic_config

    net, cells, fac, units = synthetic_city(3000, seed=3)
    cfg = synthetic_config()
    k2 = dataclasses.replace(cfg.circles["culture_15min"], id="culture_two", min_reachable=2,
                             threshold=600.0)
    cfg = dataclasses.replace(cfg, circles={**cfg.circles, "culture_two": k2}, max_snap_m=120.0)
    fac = fac.assign(circles=[c + ";culture_two" if c == "culture_15min" else c for c in fac["circles"]])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AccessibilityWarning)  # cells beyond max_snap_m, on purpose
        wi = WhatIf(cells, fac, net, cfg, units=units).prepare(["eldercare_15min", "culture_two"])
    return net, cells, fac, units, cfg, wi


def _oracle_covered(cells, fac, net, cfg, cid, removed, added_xy):
    keep = fac[~fac["fac_id"].isin(removed)]
    new = gpd.GeoDataFrame({"fac_id": [f"new:{i}" for i in range(len(added_xy))], "name": "new",
                            "category": "x", "circles": cid},
                           geometry=shapely.points(np.asarray(added_xy).reshape(-1, 2)), crs=fac.crs)
    layer = pd.concat([keep, new], ignore_index=True) if len(added_xy) else keep
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AccessibilityWarning)
        res = cell_results(cells, gpd.GeoDataFrame(layer, crs=fac.crs), net, circle_rules(cfg, [cid]),
                           flat=False, progress=False)
    return res[f"{cid}_covered"].to_numpy()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_oracle_full_recomputation(city, data):
    """After = coverage.cell_results on the facility layer with the removals and additions made."""
    net, cells, fac, units, cfg, wi = city
    cid = data.draw(st.sampled_from(["eldercare_15min", "culture_two"]))
    of_circle = fac[[cid in s.split(";") for s in fac["circles"]]]
    removed = data.draw(st.lists(st.sampled_from(of_circle["fac_id"].tolist()), max_size=6, unique=True))
    n_add = data.draw(st.integers(0, 4))
    nodes = data.draw(st.lists(st.integers(0, net.n_nodes - 1), min_size=n_add, max_size=n_add))
    jitter = data.draw(st.lists(st.floats(-200, 200), min_size=2 * n_add, max_size=2 * n_add))
    xy = np.column_stack([net.nodes["x"].to_numpy()[nodes], net.nodes["y"].to_numpy()[nodes]])
    xy = xy + np.asarray(jitter, dtype=float).reshape(-1, 2) if n_add else np.zeros((0, 2))
    sites = gpd.GeoDataFrame(geometry=shapely.points(xy), crs=fac.crs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AccessibilityWarning)  # jittered sites may leave max_snap_m
        r = wi.evaluate(cid, add=sites, remove=removed)
    before = wi.base(cid).covered
    after = before.copy()
    after[np.searchsorted(cells["cell_id"].to_numpy(), r.cells["cell_id"].to_numpy())] ^= True
    np.testing.assert_array_equal(after, _oracle_covered(cells, fac, net, cfg, cid, removed, xy))
    w = cells[cfg.circles[cid].weight_column].to_numpy()
    d = r.district().iloc[0]
    assert d["covered_population_after"] == pytest.approx(w[after].sum(), rel=1e-12, abs=1e-9)


def test_baseline_equals_the_run_and_adding_back_reproduces_it(city):
    net, cells, fac, units, cfg, wi = city
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AccessibilityWarning)
        res = cell_results(cells, fac, net, circle_rules(cfg, ["eldercare_15min", "culture_two"]),
                           progress=False)
    table = coverage_by_unit(cells, res, units, cfg)
    for cid in ("eldercare_15min", "culture_two"):
        b = wi.base(cid)
        np.testing.assert_array_equal(b.covered, res[f"{cid}_covered"].to_numpy())
        np.testing.assert_array_equal(b.count, res[f"{cid}_n"].to_numpy())
        r = wi.evaluate(cid)
        exp = table[table["circle"] == cid].reset_index(drop=True)
        np.testing.assert_array_equal(r.table["unit_code"], exp["unit_code"])
        np.testing.assert_array_equal(r.table["covered_population_before"], exp["covered_population"])
        np.testing.assert_array_equal(r.table["covered_population_after"], exp["covered_population"])
        np.testing.assert_array_equal(r.table["gap_population_before"], exp["gap_population"])
        np.testing.assert_array_equal(r.table["meets_target_before"], exp["meets_target"])
        # remove every facility of the circle and add them all back as new sites: the baseline
        of_circle = fac[[cid in s.split(";") for s in fac["circles"]]]
        gone = wi.evaluate(cid, remove=of_circle["fac_id"])
        assert gone.district()["covered_population_after"].iloc[0] == 0.0
        back = wi.evaluate(cid, remove=of_circle["fac_id"], add=of_circle[["geometry"]])
        assert len(back.cells) == 0
        np.testing.assert_array_equal(back.table["covered_population_after"], exp["covered_population"])
    # the counts may come from the run's results instead of a second search: the same answers
    from_run = WhatIf(cells, fac, net, cfg, units=units, baseline=res)
    for cid in ("eldercare_15min", "culture_two"):
        some = fac.loc[[cid in s.split(";") for s in fac["circles"]], "fac_id"].iloc[:3].tolist()
        a = from_run.evaluate(cid, remove=some, add=fac[["geometry"]].iloc[5:8])
        b = wi.evaluate(cid, remove=some, add=fac[["geometry"]].iloc[5:8])
        pd.testing.assert_frame_equal(a.table, b.table)


def test_what_if_keeps_its_state_on_the_study(city):
    from types import SimpleNamespace

    net, cells, fac, units, cfg, _ = city
    study = SimpleNamespace(cells=cells, facilities=fac, network=net, config=cfg, units=units)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AccessibilityWarning)
        a = what_if(study, "eldercare_15min", remove=[fac["fac_id"].iloc[-1]])
        first = study._whatif
        b = what_if(study, "eldercare_15min")
    assert study._whatif is first and "eldercare_15min" in first._bases
    assert b.district()["gain"].iloc[0] == 0.0 and a.district()["gain"].iloc[0] <= 0.0
    assert "eldercare_15min:" in repr(a)


# ---------------------------------------------------------------------------------------------
# a real OSM extract: a site next to a two-node stair fragment cut off from the network


def test_helsinki_site_on_cut_off_steps_fragment(helsinki_pbf, tmp_path):
    from accessibility.config import Circle
    from accessibility.osm import read_osm

    net = build_walk_network(read_osm(helsinki_pbf), "EPSG:3067", profiles=PROFILES)
    comp = net.nodes["component"].to_numpy()
    e = net.edges
    sizes = np.bincount(comp)
    steps_only = [c for c in np.flatnonzero(sizes == 2)
                  if e["is_steps"].to_numpy()[comp[e["u"].to_numpy()] == c].all()]
    assert steps_only, "the extract has two-node stair fragments"
    frag = int(steps_only[0])
    fx, fy = net.nodes.loc[comp == frag, ["x", "y"]].to_numpy().mean(axis=0)
    # population: one cell every 50 m over the extract, 10 people each
    x0, y0, x1, y1 = net.nodes["x"].min(), net.nodes["y"].min(), net.nodes["x"].max(), net.nodes["y"].max()
    gx, gy = np.meshgrid(np.arange(x0, x1, 50.0), np.arange(y0, y1, 50.0))
    cells = gpd.GeoDataFrame({"cell_id": np.arange(gx.size), "population": 10.0, "pop_60plus": 2.0,
                              "unit_code": "helsinki"}, geometry=shapely.points(gx.ravel(), gy.ravel()),
                             crs="EPSG:3067")
    fac = gpd.GeoDataFrame({"fac_id": [], "name": [], "circles": []}, geometry=[], crs="EPSG:3067")
    cfg = dataclasses.replace(
        make_config({"care": Circle(id="care", label_zh="养老", label_en="care", categories=("x",), mode="time",
                                    threshold=600.0, profile="elderly", population="60plus",
                                    target_share=1.0)}), crs="EPSG:3067")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AccessibilityWarning)  # cells far from streets (water), on purpose
        wi = WhatIf(cells, fac, net, cfg)
    site = gpd.GeoDataFrame({"name": ["planned care station"]}, geometry=[shapely.Point(fx + 2.0, fy)],
                            crs="EPSG:3067")
    with pytest.warns(AccessibilityWarning, match=r"planned care station: snaps \d+ m to a fragment cut off "
                      r"from the main network \(2 nodes, \d+ m of street\).*nearest node on the main network"):
        r = wi.evaluate("care", add=site)
    s = r.sites.iloc[0]
    assert not s["on_main_network"] and s["component"] == frag and s["fragment_nodes"] == 2
    assert comp[s["main_node"]] == 0 and s["main_snap_m"] > s["snap_m"]
    # the offered main-network node serves many more older residents than the fragment
    main = gpd.GeoDataFrame(geometry=[shapely.Point(s["main_x"], s["main_y"])], crs="EPSG:3067")
    better = wi.evaluate("care", add=main)
    assert (better.sites["problem"] == "").all()
    assert better.district()["gain"].iloc[0] > 20 * max(r.district()["gain"].iloc[0], 1.0)
    # the same check answers directly, without a what-if
    rep = check_sites(net, [fx + 2.0], [fy], max_snap_m=500.0, warn=False)
    assert rep["component"].iloc[0] == frag and rep["problem"].iloc[0]
    # a planned-projects file with the same station gets the same check in `accessibility run`
    # (pipeline._planned_projects reads it with read_planned_projects, then evaluate_scenario)
    from accessibility.pipeline import read_planned_projects
    from accessibility.siting import evaluate_scenario

    lon, lat = _lonlat_of(fx + 2.0, fy, "EPSG:3067")
    csv = tmp_path / "planned.csv"
    pd.DataFrame({"name": ["planned care station"], "category": ["eldercare"], "lon": [lon], "lat": [lat],
                  "circle": ["care"]}).to_csv(csv, index=False)
    planned = read_planned_projects(csv, "EPSG:3067")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AccessibilityWarning)
        base = cell_results(cells, fac, net, circle_rules(cfg))
    with pytest.warns(AccessibilityWarning, match=r"planned care station: snaps \d+ m to a fragment cut off"):
        ev = evaluate_scenario(cells, base, net, planned, "care", cfg)
    assert ev["site_problems"].str.contains("planned care station: snaps").all()
    assert ev["gain"].iloc[-1] == pytest.approx(r.district()["gain"].iloc[0])


def _lonlat_of(x, y, crs):
    from pyproj import Transformer

    return Transformer.from_crs(crs, "EPSG:4326", always_xy=True).transform(x, y)


# ---------------------------------------------------------------------------------------------
# the command on the Jiangbei demo run


@pytest.mark.slow
def test_cli_first_ranked_site_gains_its_ranked_coverage(demo_area, demo_run, tmp_path, capsys):
    from accessibility.cli import main

    cid = "eldercare_15min"
    ranked = pd.read_csv(demo_run.output_dir / f"siting_{cid}.csv", encoding="utf-8-sig")
    first = ranked.iloc[0]
    out = tmp_path / "whatif.csv"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AccessibilityWarning)  # the demo's data checks
        assert main(["-q", "whatif", str(demo_area), "--circle", cid, "--add",
                     f"{first['lon']},{first['lat']}", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "SYNTHETIC DEMO" in text and "全区" in text
    t = pd.read_csv(out, dtype={"unit_code": str}, encoding="utf-8-sig")
    for col in ("unit_code", "covered_population_before", "covered_population_after",
                "coverage_share_before", "coverage_share_after"):
        assert col in t.columns
    cfg = demo_run.study.config
    assert len(t) == len(demo_run.study.units) + 1 and t["unit_code"].iloc[-1] == cfg.district_code
    district = t.iloc[-1]
    gain = district["covered_population_after"] - district["covered_population_before"]
    assert gain == pytest.approx(first["added_covered_population"], abs=0.11)  # both rounded to 0.1
    # unrounded, through the Python API: exactly the ranking's gain, by lon/lat or by candidate id
    curve = demo_run.siting[cid]["curve"]
    study = demo_run.study
    from accessibility.pipeline import candidate_sites_for

    r = what_if(study, cid, add=[(first["lon"], first["lat"]), curve["site_id"].iloc[0]],
                candidates=candidate_sites_for(study))
    assert r.sites["gain_alone_" + cid].tolist() == pytest.approx(
        [curve["added_covered_population"].iloc[0]] * 2, rel=1e-12)
    # the before columns are the run's coverage table
    cov = demo_run.coverage[demo_run.coverage["circle"] == cid]
    np.testing.assert_allclose(r.table["covered_population_before"], cov["covered_population"], rtol=1e-12)
