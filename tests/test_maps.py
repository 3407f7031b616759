"""Tests of accessibility.maps: content, escaping, lightness, offline assets, headless rendering."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st
from pyproj import Transformer

from accessibility import maps
from accessibility._errors import DataError
from accessibility.config import load_area

ROOT = Path(__file__).resolve().parents[1]
CRS = "EPSG:32648"
HOSTILE = '<script>alert(1)</script>&"x"'
CIRCLES = ["culture_15min", "eldercare_15min", "kindergarten_300m"]
X0, Y0 = Transformer.from_crs(4326, CRS, always_xy=True).transform(106.55, 29.58)
X0, Y0 = round(X0, -3), round(Y0, -3)  # a round origin keeps the 100 m grid exact


@pytest.fixture(scope="module")
def config():
    return load_area(ROOT / "config/areas/jiangbei.yaml", check_files=False)


def make_inputs(*, cells_per_side: int = 10, n_units: int = 3):
    """Three 1 km square units side by side, a 100 m cell grid, facilities, results, coverage."""
    side = cells_per_side * 100.0
    codes = [f"5001050{i:02d}" for i in range(1, n_units + 1)]
    units = gpd.GeoDataFrame(
        {
            "unit_code": codes,
            "unit_name": [HOSTILE] + [f"测试街道{i}" for i in range(2, n_units + 1)],
            "unit_name_en": [f"Test Subdistrict {i}" for i in range(1, n_units + 1)],
            "unit_kind": "街道",
        },
        geometry=[
            shapely.box(X0 + i * side, Y0, X0 + (i + 1) * side, Y0 + side) for i in range(n_units)
        ],
        crs=CRS,
    )
    xs, ys, uc = [], [], []
    for i, code in enumerate(codes):
        gx, gy = np.meshgrid(np.arange(cells_per_side), np.arange(cells_per_side))
        xs.append(X0 + i * side + 50 + 100 * gx.ravel())
        ys.append(Y0 + 50 + 100 * gy.ravel())
        uc += [code] * gx.size
    x, y = np.concatenate(xs), np.concatenate(ys)
    n = len(x)
    cells = gpd.GeoDataFrame(
        {
            "cell_id": np.arange(n, dtype=np.int64),
            "population": 100.0,
            "pop_60plus": 20.0,
            "unit_code": uc,
        },
        geometry=gpd.points_from_xy(x, y),
        crs=CRS,
    )
    # one culture facility at the origin corner; time grows with distance at 1.2 m/s
    fac_xy = np.array([[X0 + 100.0, Y0 + 100.0], [X0 + 1500.0, Y0 + 500.0], [X0 + 2500, Y0 + 900]])
    facilities = gpd.GeoDataFrame(
        {
            "fac_id": ["osm:n1", "inv:eldercare:1", "osm:n3"],
            "name": [HOSTILE, "观音桥养老服务站", None],
            "category": ["library", "elderly_service_station", "kindergarten"],
            "circles": ["culture_15min", "eldercare_15min", "kindergarten_300m"],
            "source": ["evil<b>.pbf", "inventory.csv", "x.pbf"],
            "status": "synthetic",
            "classified_by": [
                "tag amenity=library",
                "inventory column 类别",
                "tag amenity=kindergarten",
            ],
            "capacity": [np.nan, 30.0, np.nan],
        },
        geometry=gpd.points_from_xy(fac_xy[:, 0], fac_xy[:, 1]),
        crs=CRS,
    )
    d0 = np.hypot(x - fac_xy[0, 0], y - fac_xy[0, 1])
    d1 = np.hypot(x - fac_xy[1, 0], y - fac_xy[1, 1])
    d2 = np.hypot(x - fac_xy[2, 0], y - fac_xy[2, 1])
    results = pd.DataFrame(index=cells.index)
    for cid, d, speed, thr in (
        ("culture_15min", d0, 1.2, 900.0),
        ("eldercare_15min", d1, 0.9, 900.0),
        ("kindergarten_300m", d2, 1.0, 300.0),
    ):
        t = d / speed
        t[t > 2 * thr] = np.inf
        results[f"{cid}_t"] = t
        results[f"{cid}_n"] = (t <= thr).astype(np.int64)
        results[f"{cid}_covered"] = t <= thr
    coverage = coverage_table(units, cells, results)
    return units, cells, facilities, results, coverage


def coverage_table(units, cells, results):
    rows = []
    for cid in CIRCLES:
        w = cells["pop_60plus"] if cid == "eldercare_15min" else cells["population"]
        cov = results[f"{cid}_covered"]
        groups = [
            (u.unit_code, u.unit_name, u.unit_name_en, cells.unit_code == u.unit_code)
            for u in units.itertuples()
        ]
        groups.append(("500105", "全区", "whole district", np.ones(len(cells), bool)))
        for code, name, name_en, sel in groups:
            pop = float(w[sel].sum())
            covered = float(w[sel & cov].sum())
            share = covered / pop
            rows.append(
                {
                    "unit_code": code, "unit_name": name, "unit_name_en": name_en, "circle": cid,
                    "circle_label": cid, "mode": "distance" if cid.endswith("m") else "time",
                    "threshold": 300.0 if cid.endswith("m") else 900.0, "population": pop,
                    "covered_population": covered, "coverage_share": share, "target_share": 1.0,
                    "meets_target": share >= 1.0, "uncovered_population": pop - covered,
                    "gap_population": max(0.0, pop - covered), "median_t": 400.0, "p90_t": 800.0,
                    "coverage_share_flat": share, "data_status": "synthetic demo",
                }
            )  # fmt: skip
    return pd.DataFrame(rows)


def make_net(cells):
    """A 100 m street grid through the cell centres; times from the culture facility corner."""
    x = np.unique(cells.geometry.x.to_numpy())
    y = np.unique(cells.geometry.y.to_numpy())
    gx, gy = np.meshgrid(x, y)
    nodes = gpd.GeoDataFrame(
        {"x": gx.ravel(), "y": gy.ravel()},
        geometry=gpd.points_from_xy(gx.ravel(), gy.ravel()),
        crs=CRS,
    )
    ny, nx = gx.shape
    idx = np.arange(nx * ny).reshape(ny, nx)
    pairs = np.concatenate(
        [
            np.column_stack([idx[:, :-1].ravel(), idx[:, 1:].ravel()]),
            np.column_stack([idx[:-1].ravel(), idx[1:].ravel()]),
        ]
    )
    u = np.concatenate([pairs[:, 0], pairs[:, 1]])
    v = np.concatenate([pairs[:, 1], pairs[:, 0]])
    edges = pd.DataFrame({"u": u, "v": v, "length_m": 100.0})
    # manhattan distance from node (0, 0) at 1.2 m/s
    t = (np.abs(gx - x[0]) + np.abs(gy - y[0])).ravel() / 1.2
    return SimpleNamespace(nodes=nodes, edges=edges, crs=CRS), {"culture_15min": t}


def test_overview_layers_tooltips_and_legend(config, tmp_path):
    units, cells, fac, results, coverage = make_inputs()
    m = maps.overview_map(units, coverage, fac, config, circles=CIRCLES, basemap="none")
    out = maps.save_map(m, tmp_path / "overview.html")
    text = out.read_text(encoding="utf-8")
    # one feature group per circle, only the first shown
    groups = [c for c in m._children.values() if c.__class__.__name__ == "FeatureGroup" and c.control]
    assert [g.layer_name for g in groups] == [
        maps._circle_label(config.circles[c]) for c in CIRCLES
    ]
    assert [g.show for g in groups] == [True, False, False]
    # the culture layer: unit 1 is closest to the facility, so best covered; tooltip shows its share
    payloads = _geojson_payloads(text)
    unit_layers = [p for p in payloads if p["features"][0]["geometry"]["type"] == "Polygon"]
    assert len(unit_layers) == 3
    tips = [f["properties"]["tip"] for f in unit_layers[0]["features"]]
    fills = [f["properties"]["fill"] for f in unit_layers[0]["features"]]
    cul = coverage.query("circle == 'culture_15min'").set_index("unit_code").coverage_share
    rows = coverage.query("circle == 'culture_15min'").set_index("unit_code")
    for code, tip, fill in zip(units.unit_code, tips, fills, strict=True):
        assert f"覆盖率 coverage: {100 * cul[code]:.1f} %" in tip
        assert fill == maps._target_class(rows.loc[code])[1]
    # hand check: unit 1 has cells within 1080 m of (100, 100) -> partly covered; unit 3 none
    assert 0 < cul["500105001"] < 1 and cul["500105003"] == 0
    assert fills[2] == "#b2182b"  # far short of its 100 % target
    assert "Test Subdistrict 2" in tips[1] and "测试街道2" in tips[1]
    assert "目标 target: 100.0 %" in tips[1] and "达标 meets target: 否 no" in tips[1]
    gap = coverage.query(
        "circle == 'culture_15min' and unit_code == '500105002'"
    ).gap_population.iloc[0]
    assert f"缺口 gap: {gap:,.0f} 人 people" in tips[1]
    assert "SYNTHETIC DEMO 合成示例数据" in text
    assert text.count('class="acc-synthetic"') == 2  # title box and legend
    assert "覆盖率对照目标 coverage against the target" in text  # legend
    assert "图书馆" in text  # facility category label in the legend
    assert "L.control.scale" in text
    assert "L.control.layers" in text
    assert "markerClusterGroup" in text
    assert "L.tileLayer" not in text  # basemap="none"


def test_target_classes_are_relative_to_each_units_target():
    """A unit at 97 % of a 100 % target is short, one at 85 % of an 80 % target meets it."""
    def cls(share, target, meets=None):
        row = {"coverage_share": share, "target_share": target}
        if meets is not None:
            row["meets_target"] = meets
        return maps._target_class(pd.Series(row))[0]

    assert cls(1.0, 1.0, True) == "meets"
    assert cls(0.97, 1.0, False) == "just_short"
    assert cls(0.9501, 1.0, False) == "just_short" and cls(0.9499, 1.0, False) == "short"
    assert cls(0.80, 1.0, False) == "short" and cls(0.7999, 1.0, False) == "far_short"
    assert cls(0.0, 1.0, False) == "far_short"
    assert cls(0.85, 0.8, True) == "meets" and cls(0.79, 0.8, False) == "just_short"
    # the coverage table's verdict decides "meets" (its gap in whole people), not a float compare
    assert cls(0.9999, 1.0, True) == "meets" and cls(1.0, 1.0, False) == "just_short"
    assert cls(0.85, 0.8) == "meets"  # no verdict column: share >= target
    assert cls(np.nan, 1.0) == "no_data"
    assert maps._target_class(pd.Series({"coverage_share": np.nan, "target_share": 1.0}))[1] == maps.NO_DATA_COLOUR
    # fills never share a colour with the facility markers or the proposed-site badges
    fills = {c[2] for c in maps.TARGET_CLASSES} | set(maps.TIME_CLASS_COLOURS) | {maps.UNCOVERED_COLOUR}
    assert not {c.lower() for c in maps.CATEGORY_PALETTE} & {f.lower() for f in fills}


def test_hostile_names_are_escaped(config, tmp_path):
    units, cells, fac, results, coverage = make_inputs()
    coverage.loc[coverage.unit_code == "500105001", "unit_name"] = HOSTILE
    net, times = make_net(cells)
    sites = gpd.GeoDataFrame(
        {
            "rank": [1],
            "site_id": [HOSTILE],
            "added_covered_population": [1234.0],
            "circle": ["culture_15min"],
        },
        geometry=gpd.points_from_xy([X0 + 900], [Y0 + 900]),
        crs=CRS,
    )
    paths = [
        maps.save_map(maps.overview_map(units, coverage, fac, config, circles=CIRCLES, basemap="none"), tmp_path / "o.html"),
        maps.save_map(
            maps.unit_map("500105001", units, cells, results, fac, config, net=net, node_times=times,
                          circles=CIRCLES, proposed_sites=sites, basemap="none"),
            tmp_path / "u.html",
        ),
    ]  # fmt: skip
    for p in paths:
        text = p.read_text(encoding="utf-8")
        assert "<script>alert(1)</script>" not in text
        assert "alert(1)</script" not in text
        assert "evil<b>" not in text
        # the escaped form is what is shown (it may be JSON-escaped once more inside GeoJSON)
        assert "&lt;script&gt;alert(1)" in text or "\\u0026lt;script\\u0026gt;alert(1)" in text


def _geojson_payloads(text):
    """Every GeoJSON embedded by folium (the argument of `<name>_add(...)`)."""
    return [json.loads(s) for s in re.findall(r"_add\((\{.*\})\);$", text, flags=re.M)]


def test_unit_map_classes_service_area_and_sites(config, tmp_path):
    units, cells, fac, results, coverage = make_inputs()
    net, times = make_net(cells)
    sites = gpd.GeoDataFrame(
        {"rank": [1, 2], "site_id": ["c1", "e1"], "added_covered_population": [500.0, 80.0],
         "circle": ["culture_15min", "eldercare_15min"]},
        geometry=gpd.points_from_xy([X0 + 900, X0 + 300], [Y0 + 900, Y0 + 300]),
        crs=CRS,
    )  # fmt: skip
    m = maps.unit_map("500105002", units, cells, results, fac, config, net=net, node_times=times,
                      circles=["culture_15min"], proposed_sites=sites, basemap="none")  # fmt: skip
    text = maps.save_map(m, tmp_path / "u.html").read_text(encoding="utf-8")
    payloads = _geojson_payloads(text)
    # class polygons: unit 2 spans x 1000-2000 m from the facility at (100, 100): times from
    # ~(950 m / 1.2) = 790 s; so it has the 10-15 min class and the not-covered class only
    cls_fc = [p for p in payloads if p["features"] and "cls" in p["features"][0]["properties"]]
    assert len(cls_fc) == 1
    got = {f["properties"]["cls"] for f in cls_fc[0]["features"]}
    d = np.hypot(cells.geometry.x - (X0 + 100), cells.geometry.y - (Y0 + 100))[
        cells.unit_code == "500105002"
    ]
    t = d / 1.2
    expected = set()
    expected |= {2} if ((t > 600) & (t <= 900)).any() else set()
    expected |= {3} if (t > 900).any() else set()
    expected |= {1} if ((t > 300) & (t <= 600)).any() else set()
    assert got == expected == {2, 3}
    # people per class in the tooltip: covered cells x 100 people
    n_covered = int((t <= 900).sum())
    tip2 = next(
        f["properties"]["tip"] for f in cls_fc[0]["features"] if f["properties"]["cls"] == 2
    )
    assert f"{100 * n_covered:,.0f} 人 people · {n_covered} 格 cells" in tip2
    # the dissolved class polygons cover exactly the unit (100 cells x 1 ha)
    geoms = [shapely.geometry.shape(f["geometry"]) for f in cls_fc[0]["features"]]
    area = gpd.GeoSeries(geoms, crs=4326).to_crs(CRS).area.sum()
    assert area == pytest.approx(1e6, rel=0.01)
    # service area: the reached streets (edges with both ends reached), not a hull
    sa = [
        p
        for p in payloads
        if p["features"] and "service area" in p["features"][0]["properties"].get("tip", "")
    ]
    assert len(sa) == 1
    poly = (
        gpd.GeoSeries([shapely.geometry.shape(sa[0]["features"][0]["geometry"])], crs=4326)
        .to_crs(CRS)
        .iloc[0]
    )
    reached = net.nodes.geometry[times["culture_15min"] <= 900]
    assert all(poly.distance(p) < 2 for p in reached)
    unreached = net.nodes.geometry[
        times["culture_15min"] > 900 + 100 / 1.2
    ]  # beyond the last reached edge
    assert all(poly.distance(p) > 30 for p in unreached if p.x < X0 + 3000)
    # the same service area when it is computed once for the whole area and clipped (as the
    # pipeline does for its twelve unit maps)
    areas = maps.service_areas(net, times, config)
    m2 = maps.unit_map("500105002", units, cells, results, fac, config, service_areas=areas,
                       circles=["culture_15min"], basemap="none")
    sa2 = [p for p in _geojson_payloads(maps.save_map(m2, tmp_path / "u2.html").read_text(encoding="utf-8"))
           if p["features"] and "service area" in p["features"][0]["properties"].get("tip", "")]
    poly2 = gpd.GeoSeries([shapely.geometry.shape(sa2[0]["features"][0]["geometry"])], crs=4326).to_crs(CRS).iloc[0]
    assert poly.geom_type in ("LineString", "MultiLineString")  # the reached streets themselves
    assert poly.symmetric_difference(poly2).length < 0.01 * poly.length
    # proposed site of this circle only, with its rank and popup
    assert "建议新址 proposed site #1" in text and "proposed site #2" not in text
    assert "acc-site" in text


def test_overview_shows_proposed_sites_per_circle(config, tmp_path):
    units, cells, fac, results, coverage = make_inputs()
    sites = gpd.GeoDataFrame(
        {"rank": [1, 2, 1], "site_id": ["c1", "<b>c2</b>", "e1"], "added_covered_population": [500.0, 80.0, 30.0],
         "circle": ["culture_15min", "culture_15min", "eldercare_15min"]},
        geometry=gpd.points_from_xy([X0 + 900, X0 + 1500, X0 + 300], [Y0 + 900, Y0 + 500, Y0 + 300]), crs=CRS)
    m = maps.overview_map(units, coverage, fac, config, circles=["culture_15min"], proposed_sites=sites,
                          basemap="amap")
    text = maps.save_map(m, tmp_path / "o.html").read_text(encoding="utf-8")
    # the culture layer's two sites, not the elderly-care one; hostile ids escaped
    assert "proposed site #1" in text and "proposed site #2" in text
    assert "id: c1" in text and "id: e1" not in text
    assert "<b>c2</b>" not in text and "&lt;b&gt;c2&lt;/b&gt;" in text
    # the popup gives WGS-84 lon/lat even though the markers are shifted for the Amap basemap
    lon, lat = Transformer.from_crs(CRS, 4326, always_xy=True).transform(X0 + 900, Y0 + 900)
    assert f"{lon:.5f}, {lat:.5f}" in text
    assert "proposed site, numbered by rank" in text


def test_street_lines_kinds_merge_and_draw(config, tmp_path):
    """Streets drawn from the network: one merged line per kind, stairs dashed, legend as drawn."""
    units, cells, fac, results, coverage = make_inputs()
    net, times = make_net(cells)
    e = net.edges
    x, y = net.nodes["x"].to_numpy(), net.nodes["y"].to_numpy()
    row0 = (y[e["u"]] == y.min()) & (y[e["v"]] == y.min())  # the southern street: primary
    col0 = (x[e["u"]] == x.min()) & (x[e["v"]] == x.min())  # the western one: stairs
    net.edges = e.assign(highway=np.where(row0, "primary_link", np.where(col0, "steps", "residential")),
                         is_steps=col0)
    st = maps.street_lines(net)
    assert st["kind"].tolist() == ["major", "minor", "steps"]
    geo = dict(zip(st["kind"], st.geometry, strict=True))
    # the primary row is one straight line along the whole grid: merged, both directions once
    assert geo["major"].geom_type == "LineString"
    assert geo["major"].length == pytest.approx(x.max() - x.min())
    assert geo["steps"].length == pytest.approx(y.max() - y.min())
    n_minor = int(((~row0) & (~col0) & (e["u"] < e["v"])).sum())
    assert geo["minor"].length == pytest.approx(100.0 * n_minor)
    with pytest.raises(DataError, match="unknown kind"):
        maps.street_lines(net, kinds=["rail"])

    m = maps.unit_map("500105001", units, cells, results, fac, config, circles=["culture_15min"],
                      streets=st, basemap="none")
    text = maps.save_map(m, tmp_path / "s.html").read_text(encoding="utf-8")
    assert "台阶 stairs" in text and "主要道路 main street" in text
    assert '"interactive": false' in text and "acc-streets" in text
    payload = [p for p in _geojson_payloads(text) if p["features"] and "kind" in p["features"][0]["properties"]]
    assert {f["properties"]["kind"] for f in payload[0]["features"]} == {"major", "minor", "steps"}
    # units and cells kept in another CRS: brought into the network's, nothing silently clipped away
    areas = maps.service_areas(net, {"culture_15min": np.zeros(net.nodes.shape[0])}, config)
    m3 = maps.unit_map("500105001", units.to_crs(3857), cells.to_crs(3857), results, fac, config,
                       circles=["culture_15min"], streets=st, service_areas=areas, basemap="none")
    text3 = maps.save_map(m3, tmp_path / "s3.html").read_text(encoding="utf-8")
    kinds3 = [p for p in _geojson_payloads(text3) if p["features"] and "kind" in p["features"][0]["properties"]]
    assert kinds3 and {f["properties"]["kind"] for f in kinds3[0]["features"]} == {"major", "minor", "steps"}
    assert any(p["features"] and "service area" in p["features"][0]["properties"].get("tip", "")
               for p in _geojson_payloads(text3))
    # the overview with main streets only: its legend does not promise stairs
    ov = maps.overview_map(units, coverage, fac, config, streets=st[st["kind"] == "major"], basemap="none")
    ov_text = maps.save_map(ov, tmp_path / "o.html").read_text(encoding="utf-8")
    assert "主要道路 main street" in ov_text and "台阶 stairs" not in ov_text


def test_unit_map_unknown_unit_and_missing_column(config):
    units, cells, fac, results, coverage = make_inputs(n_units=1)
    with pytest.raises(DataError, match="unit_code"):
        maps.unit_map("999", units, cells, results, fac, config, basemap="none")
    with pytest.raises(DataError, match="fitness_15min_t"):
        maps.unit_map(
            "500105001",
            units,
            cells,
            results,
            fac,
            config,
            circles=["fitness_15min"],
            basemap="none",
        )


def test_basemaps(config, tmp_path):
    units, cells, fac, results, coverage = make_inputs(n_units=1)
    osm = maps.save_map(
        maps.overview_map(units, coverage, fac, config, basemap="osm"), tmp_path / "a.html"
    ).read_text()
    assert "tile.openstreetmap.org" in osm
    none = maps.save_map(
        maps.overview_map(units, coverage, fac, config, basemap="none"), tmp_path / "b.html"
    ).read_text()
    assert "L.tileLayer" not in none and maps.NO_BASEMAP_BACKGROUND in none
    with pytest.raises(ValueError, match="basemap"):
        maps.overview_map(units, coverage, fac, config, basemap="google")


@pytest.mark.skipif(
    importlib.util.find_spec("accessibility.coords") is None,
    reason="accessibility.coords (wgs84_to_gcj02) is not written yet; the amap shift needs it",
)
def test_amap_shifts_vectors_to_gcj02(config, tmp_path):
    from accessibility.coords import wgs84_to_gcj02

    units, cells, fac, results, coverage = make_inputs(n_units=1)
    m = maps.overview_map(units, coverage, fac, config, basemap="amap")
    text = maps.save_map(m, tmp_path / "amap.html").read_text(encoding="utf-8")
    assert "webrd0{s}.is.autonavi.com/appmaptile?lang=zh_cn\\u0026size=1" in text
    assert "\\u00a9 \\u9ad8\\u5fb7\\u5730\\u56fe AutoNavi" in text  # © 高德地图 AutoNavi as JSON
    assert '"subdomains": "1234"' in text
    # the facility point is drawn at its GCJ-02 position (rounded to 5 decimals)
    lon, lat = gpd.GeoSeries([fac.geometry.iloc[0]], crs=CRS).to_crs(4326).iloc[0].coords[0]
    glon, glat = (
        float(np.asarray(v).ravel()[0]) for v in wgs84_to_gcj02(np.array([lon]), np.array([lat]))
    )
    assert abs(glon - lon) + abs(glat - lat) > 1e-4  # the shift is real (hundreds of metres)
    pts = [
        f["geometry"]["coordinates"]
        for p in _geojson_payloads(text)
        for f in p["features"]
        if f["geometry"]["type"] == "Point"
    ]
    assert any(abs(x - glon) < 2e-5 and abs(y - glat) < 2e-5 for x, y in pts)
    assert not any(abs(x - lon) < 2e-5 and abs(y - lat) < 2e-5 for x, y in pts)


def test_embed_assets_inlines_or_removes_every_cdn_link(config, tmp_path):
    units, cells, fac, results, coverage = make_inputs(n_units=1)
    m = maps.overview_map(units, coverage, fac, config, basemap="none")
    plain = maps.save_map(m, tmp_path / "plain.html").read_text(encoding="utf-8")
    assert re.search(r'<script src="https://', plain)  # folium links CDNs by default
    text = maps.save_map(m, tmp_path / "embedded.html", embed_assets=True).read_text(
        encoding="utf-8"
    )
    assert not re.search(r"<script[^>]+src=", text)
    assert not re.search(r"<link[^>]+href=", text)
    assert "leaflet/leaflet.js (vendored)" in text and "markercluster.js (vendored)" in text
    assert "url(images/layers.png)" not in text  # layer-control icon inlined as a data URI
    assert "removed unused bootstrap" in text


def test_maps_are_light(config, tmp_path):
    """~10k cells in one unit -> the unit map stays far below 5 MB (cells are dissolved by class)."""
    units, cells, fac, results, coverage = make_inputs(cells_per_side=100, n_units=1)
    assert len(cells) == 10_000
    m = maps.unit_map("500105001", units, cells, results, fac, config, basemap="none")
    size = maps.save_map(m, tmp_path / "big.html").stat().st_size
    assert size < 1_000_000
    o = maps.overview_map(units, coverage, fac, config, basemap="none")
    text = maps.save_map(o, tmp_path / "o.html").read_text()
    # coordinates are rounded to 5 decimals
    assert not re.search(r"\d+\.\d{7,}, \d+\.\d{7,}", text.split("_add(")[1][:2000])


# ---------------------------------------------------------------------------------------------
# headless rendering


def _chromium() -> str | None:
    path = (
        shutil.which("chromium")
        or (Path("/usr/bin/chromium").is_file() and "/usr/bin/chromium")
        or None
    )
    if path is None:
        for _ in range(3):  # it may still be installing
            time.sleep(2)
            path = shutil.which("chromium")
            if path:
                break
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed but CI is set (.ci/run installs it)")
        pytest.skip("chromium not installed; headless rendering test skipped")
    return path


_ERROR_HOOK = (
    "<script>window.__accErrors=[];function __accRec(m){window.__accErrors.push(String(m));"
    "document.documentElement.setAttribute('data-js-errors',JSON.stringify(window.__accErrors));}"
    "window.addEventListener('error',function(e){__accRec(e.message||e.type+' '+(e.target&&(e.target.src||e.target.href)));},true);"
    "window.addEventListener('unhandledrejection',function(e){__accRec(e.reason);});</script>"
)


def render(html_path: Path, tmp: Path, png: Path | None = None) -> tuple[list[str], str]:
    """Render with headless chromium; return the JS errors and the DOM after load."""
    chromium = _chromium()
    hooked = html_path.with_name(html_path.stem + "_hooked.html")
    hooked.write_text(
        html_path.read_text(encoding="utf-8").replace("<head>", "<head>" + _ERROR_HOOK, 1),
        encoding="utf-8",
    )
    base = [
        chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={tmp / 'profile'}", "--enable-logging=stderr", "--v=0",
        "--virtual-time-budget=5000", "--window-size=1200,900",
    ]  # fmt: skip
    dom = subprocess.run(
        base + ["--dump-dom", hooked.as_uri()], capture_output=True, text=True, timeout=120
    )
    errors = []
    mt = re.search(r"data-js-errors=\"([^\"]*)\"", dom.stdout)
    if mt:
        import html as _html

        errors += json.loads(_html.unescape(mt.group(1)))
    errors += [ln for ln in dom.stderr.splitlines() if "Uncaught" in ln]
    if png is not None:
        shot = subprocess.run(
            base + [f"--screenshot={png}", html_path.as_uri()],
            capture_output=True,
            text=True,
            timeout=120,
        )
        errors += [ln for ln in shot.stderr.splitlines() if "Uncaught" in ln]
        assert png.is_file(), shot.stderr[-2000:]
    return errors, dom.stdout


def _map_pixels(png: Path) -> tuple[int, float]:
    from PIL import Image

    img = np.asarray(Image.open(png).convert("RGB"))[
        150:850, 350:1150
    ]  # map area right of the legend
    bg = np.array([0xE8, 0xE8, 0xE8])
    non_bg = np.any(np.abs(img.astype(int) - bg) > 8, axis=2).mean()
    colours = len(np.unique(img.reshape(-1, 3), axis=0))
    return colours, float(non_bg)


@pytest.mark.browser
def test_headless_render_overview_and_unit_map(config, tmp_path):
    units, cells, fac, results, coverage = make_inputs()
    net, times = make_net(cells)
    overview = maps.save_map(
        maps.overview_map(units, coverage, fac, config, circles=CIRCLES, basemap="none"),
        tmp_path / "overview.html", embed_assets=True,
    )  # fmt: skip
    unit = maps.save_map(
        maps.unit_map("500105001", units, cells, results, fac, config, net=net, node_times=times, basemap="none"),
        tmp_path / "unit.html", embed_assets=True,
    )  # fmt: skip
    for path in (overview, unit):
        png = path.with_suffix(".png")
        errors, dom = render(path, tmp_path, png)
        assert errors == [], errors
        assert (
            "leaflet-container" in dom and "leaflet-interactive" in dom
        )  # Leaflet drew vector paths
        assert (
            "acc-legend" in dom
            and "leaflet-control-scale" in dom
            and "leaflet-control-layers" in dom
        )
        colours, non_bg = _map_pixels(png)
        assert colours > 20 and non_bg > 0.2, (colours, non_bg)


def test_cell_size_from_a_degree_grid_projected_to_utm():
    """WorldPop-style 3-arc-second centres are a rotated rectangular grid in UTM: ~80 m x ~92 m."""
    from accessibility.maps import _infer_cell_size

    lon, lat = np.meshgrid(106.50 + np.arange(40) / 1200, 29.55 + np.arange(30) / 1200)
    pts = gpd.GeoSeries(gpd.points_from_xy(lon.ravel(), lat.ravel()), crs=4326).to_crs(CRS)
    w, h = _infer_cell_size(gpd.GeoDataFrame(geometry=pts))
    geod_w = 6378137 * np.cos(np.radians(29.56)) * np.radians(1 / 1200)
    geod_h = 6378137 * np.radians(1 / 1200)
    assert w == pytest.approx(geod_w * 1.02, rel=0.02)
    assert h == pytest.approx(geod_h * 1.02, rel=0.02)


def test_simplify_keeps_small_parts_and_holes():
    """Review finding: the fast Douglas-Peucker dropped an 8 m exclave and an 8 m courtyard."""
    from accessibility.maps import _simplify

    big = shapely.Point(0, 0).buffer(500)
    exclave = shapely.MultiPolygon([big, shapely.Point(900, 0).buffer(8)])
    courtyard = shapely.Polygon(big.exterior.coords, [shapely.Point(100, 0).buffer(8).exterior.coords])
    out = _simplify(np.array([exclave, courtyard, big], dtype=object), 10.0)
    assert shapely.get_num_geometries(out[0]) == 2
    assert shapely.get_num_interior_rings(out[1]) == 1
    assert shapely.get_num_coordinates(out[2]) < shapely.get_num_coordinates(big)  # still simplified
    one = _simplify(exclave, 10.0)  # a single geometry works too
    assert shapely.get_num_geometries(one) == 2


# ---------------------------------------------------------------------------------------------
# fast paths against their brute-force definitions


def _parallelograms(x, y, grid):
    """The cells of a fitted lattice drawn one by one (the brute force behind the polygonising)."""
    _, (_, e1, e2) = grid
    corners = np.array([[-0.5, -0.5], [0.5, -0.5], [0.5, 0.5], [-0.5, 0.5]])
    offs = corners[:, :1] * e1 + corners[:, 1:] * e2
    return [shapely.Polygon(np.column_stack([px, py]) + offs) for px, py in zip(x, y, strict=True)]


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    angle=st.floats(-4.0, 4.0),
    w=st.floats(40.0, 250.0),
    ratio=st.floats(0.8, 1.25),
    n_side=st.integers(3, 14),
    keep=st.floats(0.3, 1.0),
)
def test_class_shapes_equal_the_union_of_the_cells(seed, angle, w, ratio, n_side, keep):
    """Cells of a rotated, rectangular grid with random gaps and classes: the polygonised classes
    cover exactly the union of each class's own cells (GEOS union_all as the oracle)."""
    rng = np.random.default_rng(seed)
    gi, gj = np.meshgrid(np.arange(n_side), np.arange(n_side))
    gi, gj = gi.ravel(), gj.ravel()
    sel = rng.random(gi.size) < keep
    sel[:4] = True
    gi, gj = gi[sel], gj[sel]
    a = np.radians(angle)
    e1 = w * np.array([np.cos(a), np.sin(a)])
    e2 = w * ratio * np.array([-np.sin(a), np.cos(a)])
    xy = np.array([X0, Y0]) + gi[:, None] * e1 + gj[:, None] * e2
    x, y = xy[:, 0], xy[:, 1]
    cls = rng.integers(0, 4, size=x.size)
    grid = maps._lattice(x, y)
    if len(np.unique(gi)) < 2 or len(np.unique(gj)) < 2:
        return  # one row or column: no lattice to fit (the box union is used)
    assert grid is not None
    shapes = maps._class_shapes(x, y, cls, None, grid=grid)
    assert set(shapes) == set(np.unique(cls).tolist())
    cells = np.array(_parallelograms(x, y, grid), dtype=object)
    for k, geom in shapes.items():
        assert geom.is_valid
        oracle = shapely.union_all(cells[cls == k])
        assert geom.symmetric_difference(oracle).area < 1e-6 * oracle.area
    # the classes tile the cells without overlap
    total = sum(g.area for g in shapes.values())
    assert total == pytest.approx(shapely.union_all(cells).area, rel=1e-9)


def test_lattice_refuses_points_off_a_grid():
    rng = np.random.default_rng(3)
    x, y = rng.uniform(0, 1000, 200), rng.uniform(0, 1000, 200)
    assert maps._lattice(x, y) is None
    # irregular points fall back to the union of boxes: still one polygon per class
    cls = (x > 500).astype(int)
    shapes = maps._class_shapes(x, y, cls, (100.0, 100.0))
    assert set(shapes) == {0, 1}
    assert shapes[0].union(shapes[1]).area == pytest.approx(
        maps._boxes_union(x, y, (100.0, 100.0)).area, rel=1e-3)  # closing per class differs a hair


def test_feature_collection_matches_geopandas(config):
    """The vectorised GeoJSON equals geopandas' to_json (ids, properties, null for NaN, geometry)."""
    gdf = gpd.GeoDataFrame(
        {"tip": ["a", HOSTILE, None], "cls": [1, 2, 3], "v": [1.5, np.nan, 2.0]},
        geometry=[shapely.box(0, 0, 1, 1), shapely.Point(2, 3), shapely.MultiLineString([[(0, 0), (1, 1)]])],
        crs=4326)
    fc = maps._plain_geojson(maps._feature_collection(gdf))
    ref = json.loads(gdf.to_json(drop_id=False, na="null"))
    for got, want in zip(fc["features"], ref["features"], strict=True):
        assert got["id"] == want["id"] and got["properties"] == want["properties"]
        assert shapely.geometry.shape(got["geometry"]).equals(shapely.geometry.shape(want["geometry"]))
    # empty geometries are left out, ids stay 0..n-1
    gdf2 = gdf.assign(geometry=[shapely.Polygon(), shapely.Point(2, 3), shapely.Point(4, 5)])
    fc2 = maps._plain_geojson(maps._feature_collection(gdf2))
    assert [f["id"] for f in fc2["features"]] == ["0", "1"]


def test_names_are_never_run_as_template_code(config, tmp_path):
    """folium renders through Jinja: a name holding '{{ ... }}' must be shown, not evaluated."""
    units, cells, fac, results, coverage = make_inputs()
    units = units.assign(unit_name=["{{ 7*7 }}jd", "{% if true %}x{% endif %}", "{# c #}"])
    fac = fac.assign(name=["{{ 6*7 }}hall", "{{ config }}", None])
    m = maps.overview_map(units, coverage, fac, config, basemap="none")
    text = maps.save_map(m, tmp_path / "o.html").read_text(encoding="utf-8")
    um = maps.unit_map("500105001", units, cells, results, fac, config, basemap="none")
    text += maps.save_map(um, tmp_path / "u.html").read_text(encoding="utf-8")
    assert "49jd" not in text and "42hall" not in text
    for shown in ("&#123;&#123; 7*7 &#125;&#125;jd", "&#123;&#123; 6*7 &#125;&#125;hall"):
        # as HTML, or JSON-escaped once more inside GeoJSON
        assert shown in text or shown.replace("&", "\\u0026") in text


@pytest.mark.parametrize("text", ["", "a", "a\n", "a\n\n", "\nx {y} }} {", "L.map({\"a\": {\"b\": 1}});\n  ",
                                  "{{ 1 }}", "{% raw %}", "{# c #}", "a\r\nb\rc\n"])
def test_plain_text_renders_as_jinja_would(text):
    """render_page keeps rendered parts as text: exactly what Jinja renders of them (or None)."""
    from jinja2 import Template

    got = maps._as_jinja_renders(text)
    assert got is None or got == Template(text).render()
    assert (got is None) == any(mark in text for mark in ("{{", "{%", "{#", "\r"))


def test_render_page_equals_folium_rendering(config):
    """Pages rendered without compiling every part (render_page) equal folium's own rendering."""
    units, cells, fac, results, coverage = make_inputs()
    units = units.assign(unit_name=["{{ 7*7 }}jd", HOSTILE, "北{碚}"])
    net, times = make_net(cells)
    sites = gpd.GeoDataFrame(
        {"rank": [1], "site_id": ["c1"], "added_covered_population": [500.0], "circle": ["culture_15min"]},
        geometry=gpd.points_from_xy([X0 + 900], [Y0 + 900]), crs=CRS)

    def pages():
        return [maps.overview_map(units, coverage, fac, config, circles=CIRCLES, basemap="none",
                                  proposed_sites=sites),
                maps.unit_map("500105001", units, cells, results, fac, config, net=net, node_times=times,
                              circles=CIRCLES, proposed_sites=sites, basemap="osm")]

    for fast, plain in zip(pages(), pages(), strict=True):
        assert maps.stable_element_ids(maps.render_page(fast)) == maps.stable_element_ids(plain.get_root().render())
    import branca.element
    import folium.features

    assert branca.element.Element is maps.Element and folium.features.Template is not maps._compiled_template


def test_forked_maps_equal_serial_maps(demo_area, tmp_path):
    """The run's maps written by two processes (the default where fork exists) are the serial
    path's bytes: overview, every unit map and every what-if map."""
    import warnings

    from accessibility import _parallel
    from accessibility._errors import AccessibilityWarning
    from accessibility.pipeline import (
        _write_maps,
        analyse,
        circle_node_times,
        config_for,
        load_study_area,
    )

    if not _parallel.fork_ok(2):
        pytest.skip("no fork on this platform: the maps are written serially")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AccessibilityWarning)
        study = load_study_area(config_for(demo_area), progress=False)
        results, table = analyse(study, progress=False)
        computed = (results, table, {}, circle_node_times(study))
        written = {}
        for workers in (1, 2):
            files = _write_maps(tmp_path / str(workers), study, computed, basemap="none", embed_assets=False,
                                progress=False, workers=workers)
            written[workers] = [(f.relative_to(tmp_path / str(workers)), f.read_bytes()) for f in files]
    assert [n for n, _ in written[1]] == [n for n, _ in written[2]]
    assert len(written[1]) == 1 + len(study.units) + sum(c.plan for c in study.config.circles.values())
    assert [n for n, b in written[1] if b != dict(written[2])[n]] == []


def _browser(tmp_path):
    """Headless Chromium driven by selenium (chromium-driver), or a skip outside CI."""
    _chromium()
    driver_path = shutil.which("chromedriver") or "/usr/bin/chromedriver"
    if not Path(driver_path).is_file():
        if os.environ.get("CI"):
            pytest.fail("chromedriver is not installed but CI is set (.ci/run installs chromium-driver)")
        pytest.skip("chromium-driver not installed; click test skipped")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                f"--user-data-dir={tmp_path / 'selenium-profile'}", "--window-size=1300,900"):
        opts.add_argument(arg)
    return webdriver.Chrome(service=Service(driver_path), options=opts)


def _drawn_fills(driver, circle_ids) -> dict[str, int]:
    """How many fill paths of each circle Leaflet has in the page (removed layers leave the DOM)."""
    return {c: int(driver.execute_script(
        f"return document.querySelectorAll('path.acc-fill-{c}').length")) for c in circle_ids}


def _visible_legends(driver) -> list[str]:
    return driver.execute_script(
        "return Array.from(document.querySelectorAll('.acc-circle-legend'))"
        ".filter(e => e.offsetParent !== null).map(e => e.getAttribute('data-circle'))")


@pytest.mark.browser
def test_circles_are_exclusive_in_the_browser(config, tmp_path):
    """Real clicks on the layer control: choosing a circle shows its fills, facilities, sites and
    legend only, and choosing another replaces them (overview and unit map)."""
    units, cells, fac, results, coverage = make_inputs()
    net, times = make_net(cells)
    sites = gpd.GeoDataFrame(
        {"rank": [1, 1], "site_id": ["c1", "e1"], "added_covered_population": [500.0, 80.0],
         "circle": ["culture_15min", "eldercare_15min"]},
        geometry=gpd.points_from_xy([X0 + 1500, X0 + 1600], [Y0 + 500, Y0 + 400]), crs=CRS)
    circles = ["culture_15min", "eldercare_15min"]
    pages = {
        "overview": maps.save_map(maps.overview_map(units, coverage, fac, config, circles=circles,
                                                    proposed_sites=sites, basemap="none"),
                                  tmp_path / "overview.html", embed_assets=True),
        "unit": maps.save_map(maps.unit_map("500105002", units, cells, results, fac, config, net=net,
                                            node_times=times, circles=circles, proposed_sites=sites,
                                            basemap="none"),
                              tmp_path / "unit.html", embed_assets=True),
    }
    driver = _browser(tmp_path)
    try:
        for kind, page in pages.items():
            driver.get(page.as_uri())
            time.sleep(0.5)
            radios = driver.find_elements("css selector", ".leaflet-control-layers-base input[type=radio]")
            assert len(radios) == 2, kind  # one radio button per circle: exclusive layers
            assert driver.find_elements("css selector", ".leaflet-control-layers-overlays") is not None
            first = _drawn_fills(driver, circles)
            assert first["culture_15min"] > 0 and first["eldercare_15min"] == 0, (kind, first)
            assert _visible_legends(driver) == ["culture_15min"]
            assert driver.execute_script("return document.querySelectorAll('.acc-site').length") >= 1
            radios[1].click()  # the elderly-care circle
            time.sleep(0.3)
            second = _drawn_fills(driver, circles)
            assert second["eldercare_15min"] > 0 and second["culture_15min"] == 0, (kind, second)
            assert _visible_legends(driver) == ["eldercare_15min"]
            assert radios[1].is_selected() and not radios[0].is_selected()
            radios[0].click()  # and back: never both
            time.sleep(0.3)
            third = _drawn_fills(driver, circles)
            assert third == first, (kind, third)
            # the culture circle's own site badge only (popup text names the circle's rank 1 site)
            popups = driver.execute_script("return document.querySelectorAll('.acc-site').length")
            assert popups >= 1
        # embedded in a page (the report's iframe): the layer control and the legend start folded
        host = tmp_path / "host.html"
        host.write_text(f'<iframe src="{pages["overview"].name}" width="900" height="480"></iframe>',
                        encoding="utf-8")
        driver.get(host.as_uri())
        time.sleep(0.5)
        driver.switch_to.frame(0)
        assert driver.execute_script("return document.documentElement.classList.contains('acc-embedded')")
        assert not driver.execute_script(
            "return document.querySelector('.leaflet-control-layers').classList"
            ".contains('leaflet-control-layers-expanded')")
        assert not driver.execute_script("return document.querySelector('details.acc-fold').open")
        assert _drawn_fills(driver, circles)["culture_15min"] > 0
    finally:
        driver.quit()


def test_labels_follow_the_area_language(config, tmp_path):
    """language: en -> the maps' fixed labels in English only; zh -> Chinese only (names as given)."""
    import dataclasses

    units, cells, fac, results, coverage = make_inputs()
    net, times = make_net(cells)
    st = maps.street_lines(net)
    texts = {}
    for lang in ("en", "zh", "bilingual"):
        cfg = dataclasses.replace(config, language=lang)
        ov = maps.overview_map(units, coverage, fac, cfg, circles=["culture_15min"], streets=st, basemap="none")
        um = maps.unit_map("500105002", units, cells, results, fac, cfg, net=net, node_times=times,
                           circles=["culture_15min"], streets=st, basemap="none")
        texts[lang] = (maps.save_map(ov, tmp_path / f"o_{lang}.html").read_text(encoding="utf-8")
                       + maps.save_map(um, tmp_path / f"u_{lang}.html").read_text(encoding="utf-8"))
    assert "coverage against the target" in texts["en"] and "覆盖率对照目标" not in texts["en"]
    assert "步行时间" not in texts["en"] and "walking time" in texts["en"]
    assert "覆盖率对照目标" in texts["zh"] and "coverage against the target" not in texts["zh"]
    assert "覆盖率对照目标 coverage against the target" in texts["bilingual"]
    for text in texts.values():
        assert "streetss" not in text  # review finding: "other streetss" in the layer control
    assert "other streets" in texts["en"]  # the test grid has no highway tags: minor streets only
