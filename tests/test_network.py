"""Walk network: tag filter, hand-computable small networks, DEM rises, components."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio
import shapely
from affine import Affine
from pyproj import Transformer

from accessibility._errors import AccessibilityWarning, DataError
from accessibility.config import Profile, Terrain
from accessibility.network import (
    MIN_LENGTH_M,
    build_walk_network,
    component_report,
    is_walkable,
    node_components,
    to_networkx,
)
from accessibility.osm import OSMData

CRS = "EPSG:32648"
X0, Y0 = 600_000.0, 3_270_000.0
PROFILES = {"adult": Profile("adult", 1.2), "frail": Profile("frail", 0.8, allow_steps=False)}


def make_osm(points: dict[int, tuple[float, float]], ways: list[tuple[list[int], dict]]) -> OSMData:
    """OSMData from projected (x, y) offsets in metres, so lengths are known exactly."""
    tr = Transformer.from_crs(CRS, "EPSG:4326", always_xy=True)
    ids = np.array(list(points), dtype=np.int64)
    xy = np.array(list(points.values()), dtype=float)
    lon, lat = tr.transform(X0 + xy[:, 0], Y0 + xy[:, 1])
    nodes = pd.DataFrame({"lon": lon, "lat": lat}, index=pd.Index(ids, name="id"))
    wdf = pd.DataFrame({
        "id": np.arange(1, len(ways) + 1, dtype=np.int64) * 10,
        "refs": [np.asarray(r, dtype=np.int64) for r, _ in ways],
        "tags": [t for _, t in ways],
    })
    pois = gpd.GeoDataFrame({"osm_type": [], "osm_id": [], "name": [], "tags": []},
                            geometry=[], crs="EPSG:4326")
    return OSMData(nodes=nodes, ways=wdf, pois=pois, source="hand-made.osm", status="synthetic")


@pytest.mark.parametrize(("tags", "ok"), [
    ({"highway": "footway"}, True),
    ({"highway": "steps"}, True),
    ({"highway": "residential"}, True),
    ({"highway": "primary_link"}, True),
    ({"highway": "corridor"}, True),
    ({"highway": "motorway"}, False),
    ({"highway": "motorway_link", "foot": "yes"}, False),
    ({"highway": "construction"}, False),
    ({"highway": "proposed"}, False),
    ({"highway": "trunk"}, False),
    ({"highway": "trunk", "sidewalk": "both"}, True),
    ({"highway": "trunk", "foot": "yes"}, True),
    ({"highway": "cycleway"}, True),
    ({"highway": "cycleway", "foot": "no"}, False),
    ({"highway": "footway", "foot": "no"}, False),
    ({"highway": "service", "access": "private"}, False),
    ({"highway": "service", "access": "private", "foot": "permissive"}, True),
    ({"highway": "residential", "access": "no", "foot": "designated"}, True),
    ({"highway": "pedestrian", "area": "yes"}, True),
    ({"highway": "service", "area": "yes"}, False),
    ({"building": "yes"}, False),
    ({}, False),
])
def test_is_walkable(tags, ok):
    assert is_walkable(tags) is ok


def test_line_of_three_nodes():
    osm = make_osm({1: (0, 0), 2: (100, 0), 3: (200, 0)}, [([1, 2, 3], {"highway": "footway", "name": "甲路"})])
    net = build_walk_network(osm, CRS, profiles=PROFILES)
    e = net.edges.sort_values(["u", "v"]).reset_index(drop=True)
    assert list(zip(e.u, e.v, strict=True)) == [(0, 1), (1, 0), (1, 2), (2, 1)]
    np.testing.assert_allclose(e.length_m, 100.0, atol=1e-6)
    np.testing.assert_allclose(e.time_s_adult, 100 / 1.2, rtol=1e-8)
    np.testing.assert_allclose(e.time_s_frail_flat, 100 / 0.8, rtol=1e-8)
    assert (e.rise_m == 0).all() and not e.is_steps.any()
    assert (e.name == "甲路").all() and (e.highway == "footway").all() and (e.osm_way_id == 10).all()
    n = net.nodes
    assert list(n.index) == [0, 1, 2] and list(n.osm_id) == [1, 2, 3]
    np.testing.assert_allclose(n.x - X0, [0, 100, 200], atol=1e-6)
    assert n.elev_m.isna().all() and (n.component == 0).all()
    assert n.crs.equals(CRS) and n.geometry.x.iloc[2] == pytest.approx(X0 + 200)
    for col, dt in [("u", np.int64), ("v", np.int64), ("length_m", np.float64), ("osm_way_id", np.int64)]:
        assert e[col].dtype == dt
    assert net.profiles == ["adult", "frail"]


def test_filter_dedupe_oneway_and_bad_segments():
    pts = {1: (0, 0), 2: (100, 0), 3: (200, 0), 4: (300, 0), 5: (300, 0), 6: (0, 100), 7: (100, 100)}
    ways = [
        ([1, 2, 3], {"highway": "residential"}),
        ([2, 3], {"highway": "footway"}),  # duplicate segment 2-3: kept once
        ([3, 4, 5], {"highway": "footway"}),  # 4 and 5 at the same place: zero length
        ([1, 6], {"highway": "motorway"}),  # dropped
        ([6, 7], {"highway": "footway", "foot": "no"}),  # dropped
        ([1, 7], {"highway": "footway", "oneway:foot": "yes"}),  # only 1 -> 7
        ([7, 2], {"highway": "footway", "oneway:foot": "-1"}),  # only 2 -> 7
        ([3, 99], {"highway": "footway"}),  # node 99 missing from the extract
    ]
    osm = make_osm(pts, ways)
    with pytest.warns(AccessibilityWarning) as rec:
        net = build_walk_network(osm, CRS, profiles=PROFILES)
    msgs = " ".join(str(w.message) for w in rec)
    assert "1 way segment(s) refer to nodes missing" in msgs
    assert "1 walkable segment(s) have zero or unknown length" in msgs
    osm_of = dict(enumerate(net.nodes.osm_id))
    pairs = sorted((osm_of[u], osm_of[v]) for u, v in zip(net.edges.u, net.edges.v, strict=True))
    assert pairs == sorted([(1, 2), (2, 1), (2, 3), (3, 2), (3, 4), (4, 3), (4, 5), (5, 4), (1, 7), (2, 7)])
    seg23 = net.edges[[(osm_of[u], osm_of[v]) == (2, 3) for u, v in zip(net.edges.u, net.edges.v, strict=True)]]
    assert seg23.osm_way_id.tolist() == [10]  # the first way wins
    zero = net.edges[[{osm_of[u], osm_of[v]} == {4, 5} for u, v in zip(net.edges.u, net.edges.v, strict=True)]]
    assert (zero.length_m == MIN_LENGTH_M).all()
    assert 6 not in set(net.nodes.osm_id)


def test_no_walkable_way_raises():
    osm = make_osm({1: (0, 0), 2: (1, 0)}, [([1, 2], {"highway": "motorway"})])
    with pytest.raises(DataError, match="hand-made.osm.*none of its 1 ways is walkable"):
        build_walk_network(osm, CRS, profiles=PROFILES)


def test_components_labelled_by_size():
    pts = {i: (100.0 * i, 0.0) for i in range(1, 6)} | {11: (0, 500), 12: (100, 500)}
    osm = make_osm(pts, [([11, 12], {"highway": "path"}), ([1, 2, 3, 4, 5], {"highway": "path"})])
    net = build_walk_network(osm, CRS, profiles=PROFILES)
    comp = dict(zip(net.nodes.osm_id, net.nodes.component, strict=True))
    assert {comp[i] for i in range(1, 6)} == {0} and comp[11] == comp[12] == 1
    cells = gpd.GeoDataFrame({"population": [10.0, 5.0, 7.0]},
                             geometry=shapely.points([X0 + 10, X0 + 10, X0 + 390], [Y0 + 490, Y0 + 5, Y0]),
                             crs=CRS)
    fac = gpd.GeoDataFrame({"fac_id": ["a"]}, geometry=shapely.points([X0 + 95], [Y0 + 480]), crs=CRS)
    rep = component_report(net, cells, fac)
    assert rep.n_nodes.tolist() == [5, 2]
    assert rep.population.tolist() == [12.0, 10.0]
    assert rep.n_cells.tolist() == [2, 1] and rep.n_facilities.tolist() == [0, 1]
    assert node_components(net, [0, -1]).tolist()[1] == -1


def write_plane_dem(path, slope_x: float):
    """DEM in the network CRS: elevation = slope_x * (x - X0), 10 m pixels from X0 - 200 m to X0 + 1200 m."""
    px, size = 10.0, 140
    tf = Affine(px, 0.0, X0 - 200.0, 0.0, -px, Y0 + 1200.0)
    centres = -200.0 + (np.arange(size) + 0.5) * px  # x offsets of the pixel centres
    data = np.tile(slope_x * centres, (size, 1))
    with rasterio.open(path, "w", driver="GTiff", height=size, width=size, count=1,
                       dtype="float64", crs=CRS, transform=tf) as dst:
        dst.write(data, 1)
    return path


def test_dem_rises_steps_and_profiles(tmp_path):
    dem = write_plane_dem(tmp_path / "dem.tif", 0.1)
    # A (100, 500) -steps- B (300, 500); detour A - C (100, 800) - D (300, 800) - B
    pts = {1: (100, 500), 2: (300, 500), 3: (100, 800), 4: (300, 800)}
    osm = make_osm(pts, [([1, 2], {"highway": "steps"}), ([1, 3, 4, 2], {"highway": "residential"})])
    net = build_walk_network(osm, CRS, profiles=PROFILES, terrain=Terrain(smoothing_m=30), dem_path=dem)
    elev = dict(zip(net.nodes.osm_id, net.nodes.elev_m, strict=True))
    assert elev[1] == pytest.approx(10.0, abs=1e-6) and elev[2] == pytest.approx(30.0, abs=1e-6)
    osm_of = dict(enumerate(net.nodes.osm_id))
    e = net.edges.assign(a=[osm_of[u] for u in net.edges.u], b=[osm_of[v] for v in net.edges.v]).set_index(["a", "b"])
    assert e.loc[(1, 2), "rise_m"] == pytest.approx(20.0, abs=1e-6)
    assert e.loc[(2, 1), "rise_m"] == pytest.approx(-20.0, abs=1e-6)
    assert bool(e.loc[(1, 2), "is_steps"]) and not bool(e.loc[(3, 4), "is_steps"])
    # steps: 200 m at flat speed + 6 s/m up, 2 s/m down; frail may not use them
    assert e.loc[(1, 2), "time_s_adult"] == pytest.approx(200 / 1.2 + 6 * 20, rel=1e-6)
    assert e.loc[(2, 1), "time_s_adult"] == pytest.approx(200 / 1.2 + 2 * 20, rel=1e-6)
    assert e.loc[(1, 2), "time_s_adult_flat"] == pytest.approx(200 / 1.2)
    assert np.isinf(e.loc[(1, 2), "time_s_frail"]) and np.isinf(e.loc[(1, 2), "time_s_frail_flat"])
    # street C -> D climbs 10 % : Tobler 0.1 -> exp(-3.5*0.15)/exp(-3.5*0.05) of the flat speed
    ratio = np.exp(-3.5 * 0.15) / np.exp(-3.5 * 0.05)
    assert e.loc[(3, 4), "time_s_adult"] == pytest.approx(200 / (1.2 * ratio), rel=1e-6)
    assert e.loc[(3, 1), "rise_m"] == pytest.approx(0.0, abs=1e-6)


def _edges_by_osm(net):
    osm_of = dict(enumerate(net.nodes.osm_id))
    return net.edges.assign(a=[osm_of[u] for u in net.edges.u],
                            b=[osm_of[v] for v in net.edges.v]).set_index(["a", "b"])


def test_stairs_rise_from_step_count_and_incline_without_dem():
    """No DEM: a flight of 50 steps climbs 50 x 0.16 = 8 m, in the direction incline says."""
    from accessibility.network import STEP_RISER_M

    pts = {1: (0, 0), 2: (40, 0), 3: (0, 100), 4: (40, 100), 5: (0, 200), 6: (40, 200), 7: (0, 300),
           8: (100, 300), 9: (0, 400), 10: (40, 400)}
    osm = make_osm(pts, [
        ([1, 2], {"highway": "steps", "step_count": "50", "incline": "up"}),
        ([4, 3], {"highway": "steps", "step_count": "50", "incline": "down"}),  # drawn downhill
        ([5, 6], {"highway": "steps", "step_count": "50"}),  # direction unknown
        ([7, 8], {"highway": "footway", "incline": "10%"}),
        ([9, 10], {"highway": "steps", "step_count": "many", "incline": "up"}),  # unreadable count
    ])
    net = build_walk_network(osm, CRS, profiles=PROFILES)
    e = _edges_by_osm(net)
    r = 50 * STEP_RISER_M
    assert e.loc[(1, 2), "rise_m"] == pytest.approx(r) and e.loc[(2, 1), "rise_m"] == pytest.approx(-r)
    assert e.loc[(1, 2), "time_s_adult"] == pytest.approx(40 / 1.2 + 6 * r)
    assert e.loc[(2, 1), "time_s_adult"] == pytest.approx(40 / 1.2 + 2 * r)
    # way drawn 4 -> 3 going down: walking 3 -> 4 climbs
    assert e.loc[(3, 4), "time_s_adult"] == pytest.approx(40 / 1.2 + 6 * r)
    # unknown direction: the mean of up and down, both ways
    for k in ((5, 6), (6, 5)):
        assert e.loc[k, "time_s_adult"] == pytest.approx(40 / 1.2 + 4 * r)
    # a 10 % footway: Tobler uphill one way, downhill the other
    ratio = np.exp(-3.5 * 0.15) / np.exp(-3.5 * 0.05)
    assert e.loc[(7, 8), "time_s_adult"] == pytest.approx(100 / (1.2 * ratio))
    # Tobler peaks at -5 %: -10 % is exactly as fast as the flat
    assert e.loc[(8, 7), "time_s_adult"] == pytest.approx(100 / 1.2)
    assert e.loc[(8, 7), "rise_m"] == pytest.approx(-10.0)
    # flat columns ignore the rise; an unreadable count adds nothing
    assert e.loc[(1, 2), "time_s_adult_flat"] == pytest.approx(40 / 1.2)
    assert e.loc[(9, 10), "time_s_adult"] == pytest.approx(40 / 1.2)


def test_step_count_spread_over_the_whole_flight_and_implausible_counts_ignored(caplog):
    """A flight sharing a segment with a footway keeps its pro-rata rise on the rest; a count
    steeper than 45° over the flight is a typo and is not used (review findings)."""
    import logging

    from accessibility.network import STEP_RISER_M

    pts = {1: (0, 0), 2: (10, 0), 3: (20, 0), 4: (30, 0), 5: (0, 100), 6: (4, 100)}
    osm = make_osm(pts, [
        ([1, 2, 3, 4], {"highway": "steps", "step_count": "60", "incline": "up"}),
        ([3, 4], {"highway": "footway"}),  # the flight's last segment is also a footway: it wins
        ([5, 6], {"highway": "steps", "step_count": "9000", "incline": "up"}),
    ])
    with caplog.at_level(logging.INFO, logger="accessibility.network"):
        net = build_walk_network(osm, CRS, profiles=PROFILES)
    e = _edges_by_osm(net)
    third = 60 * STEP_RISER_M / 3
    assert e.loc[(1, 2), "rise_m"] == pytest.approx(third, rel=1e-3)
    assert e.loc[(2, 3), "rise_m"] == pytest.approx(third, rel=1e-3)
    assert e.loc[(3, 4), "rise_m"] == 0.0 and not bool(e.loc[(3, 4), "is_steps"])
    assert e.loc[(5, 6), "rise_m"] == 0.0
    assert e.loc[(5, 6), "time_s_adult"] == pytest.approx(4 / 1.2)
    assert "step_count of 1 flight(s) ignored" in caplog.text and "9000 steps" in caplog.text


def test_dem_wins_over_tags(tmp_path):
    dem = write_plane_dem(tmp_path / "dem.tif", 0.1)
    osm = make_osm({1: (100, 500), 2: (300, 500)},
                   [([1, 2], {"highway": "steps", "step_count": "300", "incline": "down"})])
    e = _edges_by_osm(build_walk_network(osm, CRS, profiles=PROFILES, dem_path=dem))
    assert e.loc[(1, 2), "rise_m"] == pytest.approx(20.0, abs=1e-6)


def test_dem_not_covering_warns(tmp_path):
    dem = write_plane_dem(tmp_path / "dem.tif", 0.1)
    osm = make_osm({1: (100, 500), 2: (5000, 500)}, [([1, 2], {"highway": "path"})])
    with pytest.warns(AccessibilityWarning, match="1 of 2 points.*dem.tif.*does not cover the area"):
        net = build_walk_network(osm, CRS, profiles=PROFILES, dem_path=dem)
    assert (net.edges.rise_m == 0).all()
    assert net.nodes.elev_m.isna().sum() == 1


def test_to_networkx_keeps_minimum_and_drops_inf():
    osm = make_osm({1: (0, 0), 2: (100, 0), 3: (100, 100)},
                   [([1, 2], {"highway": "steps"}), ([2, 3], {"highway": "footway"})])
    net = build_walk_network(osm, CRS, profiles=PROFILES)
    g = to_networkx(net, "time_s_frail")
    assert g.number_of_nodes() == 3 and g.number_of_edges() == 2
    g2 = to_networkx(net, "length_m")
    assert g2.number_of_edges() == 4
    assert g2[0][1]["length_m"] == pytest.approx(100.0)


@pytest.mark.parametrize("text,direction,grade", [
    ("up", 1.0, None), ("down", -1.0, None), ("yes", 0.0, None), ("steep", 0.0, None),
    ("10 %", 1.0, 0.10), ("-8%", -1.0, -0.08), ("1,5%", 1.0, 0.015), ("-5°", -1.0, -0.0874887),
    ("-5º", -1.0, -0.0874887), ("25", 0.0, None), ("up;down", 0.0, None), ("nan%", 0.0, None),
    ("inf%", 0.0, None), ("150%", 0.0, None),
])
def test_incline_tag_values(text, direction, grade):
    from accessibility.network import _incline

    d, g = _incline(text)
    assert d == direction
    assert (np.isnan(g) if grade is None else g == pytest.approx(grade, rel=1e-5))


def test_dem_all_nodata_warns(tmp_path):
    """Review finding: a DEM of nodata only made a silent flat-terrain run."""
    path = tmp_path / "nodata.tif"
    tf = Affine(10.0, 0.0, X0 - 200.0, 0.0, -10.0, Y0 + 1200.0)
    with rasterio.open(path, "w", driver="GTiff", height=140, width=140, count=1, dtype="float32",
                       crs=CRS, transform=tf, nodata=-9999.0) as dst:
        dst.write(np.full((140, 140), -9999.0, dtype="float32"), 1)
    osm = make_osm({1: (100, 500), 2: (300, 500)}, [([1, 2], {"highway": "path"})])
    with pytest.warns(AccessibilityWarning, match="2 of 2 points inside the DEM .*nodata.tif fall on nodata"):
        net = build_walk_network(osm, CRS, profiles=PROFILES, dem_path=path)
    assert (net.edges.rise_m == 0).all()
