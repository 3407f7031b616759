"""Tests of the Jiangbei SYNTHETIC DEMO generator (accessibility.demo.jiangbei).

The data are generated once per module into a temporary folder (about 5 s) and checked against
the calibration figures of the brief (census total, core share, 60+ share, elevation range),
geometric invariants (partition, no street across a river, ridge crossings) and reproducibility.
"""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio
import shapely

from accessibility._errors import ConfigError
from accessibility._io import sha256_file
from accessibility.config import load_area
from accessibility.demo.jiangbei import CORE_CODES, make_demo_data

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "config" / "areas" / "jiangbei.yaml"
BOUNDARY = ROOT / "data" / "raw" / "jiangbei" / "reference" / "district_boundary_wgs84.geojson"


@pytest.fixture(scope="module")
def cfg():
    return load_area(CONFIG, check_files=False)


@pytest.fixture(scope="module")
def demo(cfg, tmp_path_factory):
    out = tmp_path_factory.mktemp("demo_a")
    return make_demo_data(cfg, out_dir=out, progress=False)


@pytest.fixture(scope="module")
def osm(demo):
    import osmium

    nodes, ways = {}, []
    for o in osmium.FileProcessor(str(demo["network"])):
        if o.is_node():
            nodes[o.id] = (o.location.lon, o.location.lat, dict(o.tags))
        elif o.is_way():
            ways.append((o.id, [n.ref for n in o.nodes], dict(o.tags)))
    return nodes, ways


def _centres(t, rows, cols):
    return t.c + (cols + 0.5) * t.a, t.f + (rows + 0.5) * t.e


def _segments(nodes, ways, pred):
    segs = []
    for _, refs, tags in ways:
        if pred(tags):
            xy = np.array([nodes[r][:2] for r in refs])
            segs.append(np.stack([xy[:-1], xy[1:]], axis=1))
    return shapely.linestrings(np.concatenate(segs)) if segs else np.array([])


# ------------------------------------------------------------------------------------------
# fast checks


def test_refuses_paths_that_are_not_synthetic_demo(cfg, tmp_path):
    units = dataclasses.replace(cfg.sources["units"], path=tmp_path / "units_real.gpkg")
    bad = dataclasses.replace(cfg, sources={**cfg.sources, "units": units})
    with pytest.raises(ConfigError, match="synthetic_demo"):
        make_demo_data(bad, out_dir=tmp_path, progress=False)
    assert not any(tmp_path.iterdir())


def test_all_configured_outputs_named_synthetic_demo(demo, cfg):
    assert len(demo) == 9
    names = {p.name for p in demo.values()}
    assert names == {
        Path(cfg.sources[k].path).name for k in ("units", "network", "population", "census", "dem")
    } | {Path(s.path).name for s in cfg.facility_sources} | {
        Path(cfg.siting.exclude[0]).name, Path(cfg.siting.planned_projects).name}
    assert all("synthetic_demo" in n for n in names)
    assert all(p.exists() and p.stat().st_size > 0 for p in demo.values())


# ------------------------------------------------------------------------------------------
# calibration


@pytest.mark.slow
def test_population_totals_and_census(demo):
    with rasterio.open(demo["population"]) as src:
        assert src.crs.to_epsg() == 4326
        assert src.nodata == -99999
        assert src.dtypes[0] == "float32"
        assert abs(src.res[0] - 1 / 1200) < 1e-12
        assert src.tags()["DATA_STATUS"].startswith("SYNTHETIC DEMO")
        a = src.read(1, masked=True)
    assert a.min() >= 0
    assert abs(float(a.sum(dtype="float64")) - 925_800) < 2.0
    c = pd.read_csv(demo["census"], dtype={"unit_code": str})
    assert list(c.columns) == ["unit_code", "unit_name", "population", "share_60plus", "data_status"]
    assert len(c) == 12 and c.population.sum() == 925_800
    assert c.set_index("unit_code").population["500105005"] == 67_186  # real Cuntan figure
    core = c[c.unit_code.isin(CORE_CODES)].population.sum() / 925_800
    assert abs(core - 0.767) < 0.005
    w = (c.population * c.share_60plus).sum() / c.population.sum()
    assert abs(w - 0.191) < 5e-4
    assert c.share_60plus.nunique() > 5
    assert c.data_status.str.contains("SYNTHETIC DEMO").all()


@pytest.mark.slow
def test_census_matches_raster_per_unit(demo):
    """Per-unit totals are the raster sums of the pixels whose centre lies in the unit."""
    units = gpd.read_file(demo["units"]).to_crs("EPSG:4326")
    c = pd.read_csv(demo["census"], dtype={"unit_code": str}).set_index("unit_code")
    with rasterio.open(demo["population"]) as src:
        a = src.read(1)
        rows, cols = np.nonzero(a > 0)
        xs, ys = _centres(src.transform, rows, cols)
    pts = gpd.GeoDataFrame({"p": a[rows, cols].astype("float64")},
                           geometry=gpd.points_from_xy(xs, ys), crs="EPSG:4326")
    joined = gpd.sjoin(pts, units[["unit_code", "geometry"]], predicate="within")
    sums = joined.groupby("unit_code").p.sum()
    for code, pop in c.population.items():
        assert abs(sums.get(code, 0.0) - pop) <= max(5.0, 0.002 * pop), code


@pytest.mark.slow
def test_dem_range_and_ridge(demo):
    with rasterio.open(demo["dem"]) as src:
        assert src.crs.to_epsg() == 4326 and src.dtypes[0] == "int16"
        assert abs(src.res[0] - 1 / 3600) < 1e-12
        assert "SYNTHETIC DEMO" in src.tags()["DATA_STATUS"]
        dem = src.read(1)
        b = src.bounds
        bnd = gpd.read_file(BOUNDARY).total_bounds
        assert b.left < bnd[0] and b.bottom < bnd[1] and b.right > bnd[2] and b.top > bnd[3]

        def box_mean(lon0, lon1, lat0, lat1):
            r0, c0 = src.index(lon0, lat1)
            r1, c1 = src.index(lon1, lat0)
            return dem[r0:r1, c0:c1].mean()

        ridge = box_mean(106.682, 106.698, 29.61, 29.64)
        core = box_mean(106.50, 106.55, 29.575, 29.595)
    assert dem.min() == 152 and dem.max() == 679
    assert 190 < core < 360
    assert ridge > core + 150


@pytest.mark.slow
def test_units_partition_the_boundary(demo):
    u = gpd.read_file(demo["units"])
    assert u.crs.to_epsg() == 4490
    assert sorted(u.columns) == sorted(["unit_code", "unit_name", "unit_name_en", "unit_kind",
                                        "data_status", "geometry"])
    assert len(u) == 12 and u.unit_code.str.fullmatch(r"50010\d{4}").all()
    assert (u.unit_kind == "镇").sum() == 3 and (u.unit_kind == "街道").sum() == 9
    assert (u.data_status == "SYNTHETIC DEMO").all()
    up = u.to_crs("EPSG:32648")
    bnd = gpd.read_file(BOUNDARY).to_crs("EPSG:32648").union_all()
    union = up.union_all()
    assert abs(union.area - bnd.area) / bnd.area < 1e-3  # covers: no gaps
    assert abs(up.area.sum() - bnd.area) / bnd.area < 1e-3  # no overlaps
    assert shapely.symmetric_difference(union, bnd).area / bnd.area < 1e-3


# ------------------------------------------------------------------------------------------
# the OSM file


@pytest.mark.slow
def test_osm_tag_kinds(osm):
    nodes, ways = osm
    assert 40_000 <= len(nodes) <= 150_000
    kinds = Counter()
    for _, _, t in ways:
        for k in ("highway", "waterway", "bridge", "access", "foot", "tunnel"):
            if k in t:
                kinds[f"{k}={t[k]}"] += 1
    for hw in ("primary", "secondary", "tertiary", "residential", "service", "living_street",
               "footway", "path", "steps", "track", "pedestrian", "trunk"):
        assert kinds[f"highway={hw}"] > 0, hw
    assert kinds["waterway=river"] >= 3
    assert kinds["bridge=yes"] >= 3
    assert kinds["access=private"] > 0 and kinds["foot=no"] > 0
    steps = [t for _, _, t in ways if t.get("highway") == "steps"]
    assert all(int(t["step_count"]) >= 1 for t in steps)
    bridges = [t for _, _, t in ways if t.get("bridge") == "yes"]
    assert all(t.get("layer") == "1" for t in bridges)
    trunks = [t for _, _, t in ways if t.get("highway") == "trunk"]
    assert all(t.get("foot") == "no" for t in trunks)
    named = [t["name"] for _, _, t in ways if t.get("highway") == "residential" and "name" in t]
    assert len(named) > 1000 and all(any("\u4e00" <= ch <= "\u9fff" for ch in n) for n in named)
    # ways are broken into nodes at most ~40 m apart (grades get sampled)
    _, refs, _ = next(w for w in ways if w[2].get("highway") == "secondary")
    xy = np.array([nodes[r][:2] for r in refs])
    step_m = np.hypot(np.diff(xy[:, 0]) * 96_800, np.diff(xy[:, 1]) * 111_000)
    assert step_m.max() < 45


@pytest.mark.slow
def test_no_street_crosses_a_river_except_bridges(osm):
    nodes, ways = osm
    rivers = shapely.union_all(_segments(nodes, ways, lambda t: t.get("waterway") == "river"))
    streets = _segments(nodes, ways, lambda t: "highway" in t and t.get("bridge") != "yes"
                        and t.get("tunnel") != "yes")
    assert len(streets) > 30_000
    assert not shapely.intersects(streets, rivers).any()
    bridges = _segments(nodes, ways, lambda t: t.get("bridge") == "yes")
    assert shapely.intersects(bridges, rivers).any()


@pytest.mark.slow
def test_ridge_crossed_only_by_paths_and_steps(osm):
    from accessibility.demo.jiangbei import _TONGLUO_CREST

    nodes, ways = osm
    crest = shapely.LineString(_TONGLUO_CREST)
    walk = _segments(nodes, ways, lambda t: "highway" in t and t.get("foot") != "no")
    streets = _segments(nodes, ways, lambda t: "highway" in t and t.get("foot") != "no"
                        and t["highway"] not in ("path", "steps"))
    assert 1 <= shapely.intersects(walk, crest).sum() <= 20
    assert not shapely.intersects(streets, crest).any()


@pytest.mark.slow
def test_facility_counts_and_names(osm):
    nodes, ways = osm
    tags = [t for _, _, t in nodes.values() if t] + [t for _, _, t in ways if "highway" not in t
                                                      and "waterway" not in t]
    names = [t.get("name", "") for t in tags]

    def count(pred):
        return sum(1 for n in names if pred(n))

    assert count(lambda n: n.startswith("江北区图书馆") and n.endswith("分馆")) == 58
    assert count(lambda n: "文化馆" in n) == 13
    assert count(lambda n: n.endswith("综合文化服务中心")) == 12
    assert count(lambda n: "自助图书馆" in n) == 10
    assert 80 <= count(lambda n: n.endswith("文化室") or n.endswith("文化活动室")) <= 132
    assert count(lambda n: n.endswith("养老服务中心")) + count(lambda n: n.endswith("养老服务站")) == 121
    assert count(lambda n: n.endswith("养老院") or n.endswith("敬老院") or "福利院" in n
                 or "老年公寓" in n) == 9
    assert count(lambda n: "日间照料" in n) > 5 and count(lambda n: "老年食堂" in n) > 5
    assert sum(1 for t in tags if t.get("amenity") == "kindergarten") == 139
    assert sum(1 for t in tags if t.get("isced:level") == "1") > 20
    assert sum(1 for t in tags if t.get("isced:level") == "2") > 10
    assert count(lambda n: "社区卫生服务" in n or "卫生院" in n) > 20
    fitness = sum(1 for t in tags if t.get("leisure") in ("fitness_station", "pitch", "sports_centre",
                                                          "stadium")
                  or "体育公园" in t.get("name", "") or "步道" in t.get("name", ""))
    assert 250 <= fitness <= 350
    gyms = [t for t in tags if "健身房" in t.get("name", "")]
    assert len(gyms) >= 2 and all(t.get("leisure") == "fitness_centre" for t in gyms)
    assert '<b>测试&"引号"</b>文化站' in names
    assert any(t.get("leisure") == "pitch" for _, _, t in ways)  # some facilities are areas


@pytest.mark.slow
def test_outer_towns_have_gaps_core_is_covered(osm, demo):
    """Proxy coverage: population within 700 m (straight line) of an elderly-care station."""
    from scipy.spatial import cKDTree

    nodes, _ = osm
    fac = np.array([(x, y) for x, y, t in nodes.values() if "养老服务" in t.get("name", "")])
    with rasterio.open(demo["population"]) as src:
        a = src.read(1)
        rows, cols = np.nonzero(a > 0)
        xs, ys = _centres(src.transform, rows, cols)
    scale = np.array([96_800.0, 111_000.0])
    d, _ = cKDTree(fac * scale).query(np.column_stack([xs, ys]) * scale)
    units = gpd.read_file(demo["units"]).to_crs("EPSG:4326")
    pts = gpd.GeoDataFrame({"p": a[rows, cols], "cov": d < 700},
                           geometry=gpd.points_from_xy(xs, ys), crs="EPSG:4326")
    j = gpd.sjoin(pts, units[["unit_code", "geometry"]], predicate="within")
    share = j.assign(cp=j.p * j["cov"]).groupby("unit_code")[["cp", "p"]].sum()
    share = share.cp / share.p
    tot = j.assign(cp=j.p * j["cov"]).groupby("unit_code")[["cp", "p"]].sum()
    core = tot.loc[list(CORE_CODES)].sum()
    assert core.cp / core.p > 0.85  # core streets mostly covered
    assert share[list(CORE_CODES)].min() > 0.65
    towns = share[["500105100", "500105101", "500105102"]]
    assert towns.between(0.3, 0.85).all(), towns.to_dict()  # outer towns have gaps


# ------------------------------------------------------------------------------------------
# inventories, siting inputs


@pytest.mark.slow
def test_inventories_and_siting_inputs(demo):
    from accessibility.coords import bd09_to_wgs84, gcj02_to_wgs84

    bnd = gpd.read_file(BOUNDARY).union_all()
    raw = demo["eldercare_inventory"].read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    e = pd.read_csv(demo["eldercare_inventory"], encoding="utf-8-sig")
    assert list(e.columns)[:5] == ["名称", "类别", "经度", "纬度", "床位数"]
    # 40 inventory-only rows plus up to 8 that OSM also has (same name, a few metres apart)
    assert 35 <= len(e) <= 50
    assert set(e["类别"]) == {"养老服务站", "日间照料中心", "养老院", "养老服务中心"}
    lon, lat = gcj02_to_wgs84(e["经度"].to_numpy(), e["纬度"].to_numpy())
    assert shapely.contains_xy(bnd, lon, lat).mean() > 0.9
    # the GCJ-02 shift is real: the raw coordinates are ~300-600 m off the WGS-84 positions
    shift_m = np.hypot((e["经度"] - lon) * 96_800, (e["纬度"] - lat) * 111_000)
    assert shift_m.between(200, 800).all()
    c = pd.read_excel(demo["culture_inventory"])
    assert list(c.columns)[:5] == ["name", "category", "lng", "lat", "seats"]
    assert len(c) == 20 and set(c.category) == {"城市书房", "文化驿站"}
    lon, lat = bd09_to_wgs84(c.lng.to_numpy(), c.lat.to_numpy())
    assert shapely.contains_xy(bnd, lon, lat).mean() > 0.9
    p = pd.read_csv(demo["planned_projects"])
    assert list(p.columns)[:7] == ["name", "category", "lon", "lat", "capacity", "circle", "note"]
    assert {"郭家沱养老服务中心", "五里店社区卫生服务中心", "郭家沱社区卫生服务中心",
            "五里店万丰工校片区养老院", "大石坝原江陵厂片区养老院", "郭家沱全民健身中心"} <= set(p.name)
    assert p.note.str.contains("synthetic location").all()
    assert shapely.contains_xy(bnd, p.lon, p.lat).all()
    fc = json.loads(demo["exclusion_zones"].read_text(encoding="utf-8"))
    props = [f["properties"] for f in fc["features"]]
    assert {"铁山坪森林公园", "长江", "嘉陵江"} <= {q["name"] for q in props}
    assert all(q["reason"] and q["data_status"] == "SYNTHETIC DEMO" for q in props)


# ------------------------------------------------------------------------------------------
# determinism and skip/force


@pytest.mark.slow
def test_reproducible_bytes(demo, cfg, tmp_path):
    again = make_demo_data(cfg, out_dir=tmp_path, progress=False)
    for key, p in demo.items():
        assert sha256_file(p) == sha256_file(again[key]), key


@pytest.mark.slow
def test_existing_files_are_kept_unless_forced(demo, cfg):
    out = demo["units"].parent
    before = {k: p.stat().st_mtime_ns for k, p in demo.items()}
    make_demo_data(cfg, out_dir=out, progress=False)
    assert {k: p.stat().st_mtime_ns for k, p in demo.items()} == before
    census = demo["census"]
    census.write_text("tampered\n", encoding="utf-8")
    make_demo_data(cfg, out_dir=out, progress=False)  # exists: kept
    assert census.read_text(encoding="utf-8") == "tampered\n"
    census.unlink()
    make_demo_data(cfg, out_dir=out, progress=False)  # missing: regenerated
    assert pd.read_csv(census).population.sum() == 925_800
    assert demo["units"].stat().st_mtime_ns == before["units"]
