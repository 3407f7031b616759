"""Any district, any planner: nothing generic is tied to Jiangbei; codes, kinds and labels follow the area."""

from __future__ import annotations

import re
import warnings

import geopandas as gpd
import pytest
from shapely.geometry import box

from accessibility import DataError
from accessibility.labels import district_names, is_unnamed, primary, split_bilingual, unnamed
from accessibility.units import read_units
from tests.conftest import ROOT

#: Files that may name the Jiangbei demo: its data generator (moved to accessibility/demo/ by the
#: API work) and nothing else inside the package.
_DEMO = ("synthetic.py", "_synthcity.py")


def _generic_files():
    for p in sorted((ROOT / "accessibility").rglob("*")):
        rel = p.relative_to(ROOT / "accessibility")
        if not p.is_file() or p.suffix not in (".py", ".j2", ".html", ".yaml", ".txt", ".md", ".css"):
            continue
        if rel.parts[0] == "demo" or rel.name in _DEMO or "_assets" in rel.parts:
            continue
        yield p


def test_no_jiangbei_strings_in_generic_modules():
    files = list(_generic_files())
    assert any(p.name == "pipeline.py" for p in files)  # the scan sees the package
    hits = []
    for p in files:
        for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
            if re.search(r"500105|全区|Chongqing", line):
                hits.append(f"{p.relative_to(ROOT)}:{i}: {line.strip()}")
    assert not hits, "\n".join(hits)


def test_the_scan_would_catch_a_planted_string(tmp_path, monkeypatch):
    # the pattern itself is not dead: the same regex finds the strings in the demo config
    text = (ROOT / "config" / "areas" / "jiangbei.yaml").read_text(encoding="utf-8")
    assert re.search(r"500105|全区|Chongqing", text)


def _units_file(tmp_path, codes, names, name="u.gpkg"):
    gdf = gpd.GeoDataFrame({"code": codes, "name": names},
                           geometry=[box(i * 1000, 0, (i + 1) * 1000, 1000) for i in range(len(codes))],
                           crs="EPSG:3067")
    path = tmp_path / name
    gdf.to_file(path)
    return path


def test_any_unique_codes_and_no_kind_warning(tmp_path):
    path = _units_file(tmp_path, ["004", "Z-2", "kallio"], ["Kaartinkaupunki", "Zone 2", "Kallio"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "cannot tell street from town" when kinds are not declared
        units = read_units(path, "EPSG:3067")
    assert units["unit_code"].tolist() == ["004", "Z-2", "kallio"]
    assert set(units["unit_kind"]) == {""}


def test_official_code_check_only_when_declared(tmp_path):
    path = _units_file(tmp_path, ["004", "500101001"], ["甲街道", "乙镇"])
    with pytest.raises(DataError, match="'004' is not a 9-digit official code.*unit_codes: cn_official"):
        read_units(path, "EPSG:3067", codes="cn_official")
    assert read_units(path, "EPSG:3067")["unit_code"].tolist() == ["004", "500101001"]


def test_kind_warning_under_official_codes(tmp_path):
    from accessibility._errors import AccessibilityWarning

    path = _units_file(tmp_path, ["500101001", "500101002"], ["甲街道", "Somewhere"])
    with pytest.warns(AccessibilityWarning, match="cannot tell street"):
        units = read_units(path, "EPSG:3067", codes="cn_official")
    assert units["unit_kind"].tolist() == ["街道", ""]


def test_duplicate_code_with_two_names_still_refused(tmp_path):
    path = _units_file(tmp_path, ["A", "A"], ["One", "Two"])
    with pytest.raises(DataError, match="code A is used by several names"):
        read_units(path, "EPSG:3067")


def test_labels_helpers():
    assert primary("图书馆", "library", "en") == "library"
    assert primary("图书馆", "library", "zh") == "图书馆"
    assert primary("", "library", "bilingual") == "library"
    assert unnamed("图书馆", "library", "en") == "library (unnamed)"
    assert all(is_unnamed(unnamed("图书馆", "library", lang)) for lang in ("zh", "en", "bilingual"))
    assert not is_unnamed("Unnamed Gallery of Art")
    assert split_bilingual("单元名称 unit name") == ("单元名称", "unit name")

    class Cfg:
        name = "helsinki"
        district_name = ""
        district_name_en = "Central Helsinki"

    assert district_names(Cfg()) == ("Central Helsinki", "Central Helsinki")


def test_config_defaults_district_row_from_titles(tmp_path):
    import yaml

    from accessibility.config import load_area

    src = yaml.safe_load((ROOT / "config" / "areas" / "jiangbei.yaml").read_text(encoding="utf-8"))
    for k in ("district_code", "district_name", "district_name_en", "unit_codes"):
        src.pop(k)
    src["base_dir"] = str(ROOT)
    src["categories"] = str(ROOT / "config" / "categories.yaml")
    path = tmp_path / "a.yaml"
    path.write_text(yaml.safe_dump(src, allow_unicode=True), encoding="utf-8")
    cfg = load_area(path, check_files=False)
    assert (cfg.district_name, cfg.district_name_en) == (src["title_zh"], src["title_en"])
    assert cfg.unit_codes == "any"
    src["unit_codes"] = "gb"
    path.write_text(yaml.safe_dump(src, allow_unicode=True), encoding="utf-8")
    from accessibility import ConfigError

    with pytest.raises(ConfigError, match="unit_codes"):
        load_area(path, check_files=False)


# ---------------------------------------------------------------------------------------------
# classification outside China


@pytest.fixture(scope="module")
def jb_cfg():
    from accessibility.config import load_area

    return load_area(ROOT / "config" / "areas" / "jiangbei.yaml", check_files=False)


def test_helsinki_named_facilities(helsinki_pbf, jb_cfg):
    from accessibility.facilities import facilities_from_osm
    from accessibility.osm import read_osm

    fac = facilities_from_osm(read_osm(helsinki_pbf), jb_cfg)
    by_name = fac.groupby("name")["category"].agg(list)
    assert by_name["Kansalliskirjasto"] == ["library"]  # node + building 51 m apart: once
    assert by_name["Helsingin keskustakirjasto Oodi"] == ["library"]
    assert by_name["Rikhardinkadun kirjasto"] == ["library"]
    assert by_name["Yrjönkadun uimahalli"] == ["sports_centre"]  # the public swimming hall stays
    for gone in ("Fitness 24Seven Hakaniemi", "Somatic Studio", "elixia", "Konst Hair & Gallery",
                 "Hypnoosi- ja luontaisterapeuttia Anneli Rusanen"):
        assert gone not in by_name.index, gone
    assert (fac["category"] == "pitch_court").sum() >= 5  # public pitches and courts kept
    assert (fac["category"] == "fitness_station").sum() == 3
    assert "Galleria B5" in by_name.index  # a real gallery stays culture


def _lib_osm(rows):
    import pandas as pd
    from shapely.geometry import Point

    from accessibility.osm import OSMData

    pois = gpd.GeoDataFrame(
        {"osm_type": [r[0] for r in rows], "osm_id": pd.Series([r[1] for r in rows], dtype="int64"),
         "name": pd.Series([r[2] for r in rows], dtype=object), "tags": [{"amenity": "library", **r[3]} for r in rows],
         "footprint": pd.Series([r[4] for r in rows], dtype=object)},
        geometry=[Point(*r[5]) if r[4] is None else r[4].centroid for r in rows], crs="EPSG:4326")
    return OSMData(nodes=None, ways=None, pois=pois, source="x.osm", status="real")


def _deg_box(x0_m, y0_m, w_m, h_m, lat0=60.17, lon0=24.95):
    import math

    dx = 1 / (111_320 * math.cos(math.radians(lat0)))
    dy = 1 / 110_574
    return box(lon0 + x0_m * dx, lat0 + y0_m * dy, lon0 + (x0_m + w_m) * dx, lat0 + (y0_m + h_m) * dy)


def test_node_inside_its_building_is_one_facility(jb_cfg):
    from accessibility.facilities import facilities_from_osm

    big = _deg_box(0, 0, 200, 40)  # centroid 100 m east of the node placed near its west end
    node_in = _deg_box(5, 20, 0.001, 0.001).centroid
    node_out = _deg_box(-45, 20, 0.001, 0.001).centroid  # 45 m outside the west wall
    osm = _lib_osm([("node", 1, "Kirjasto", {}, None, (node_in.x, node_in.y)),
                    ("way", 2, "Kirjasto", {"building": "yes"}, big, None),
                    ("node", 3, "Kirjasto", {}, None, (node_out.x, node_out.y)),
                    ("node", 4, None, {}, None, (node_in.x, node_in.y)),
                    ("way", 5, "Toinen", {"building": "yes"}, _deg_box(0, 100, 20, 20), None),
                    ("node", 6, "Kolmas", {}, None, tuple(_deg_box(5, 105, 1e-3, 1e-3).centroid.coords[0]))])
    fac = facilities_from_osm(osm, jb_cfg)
    # way 2 merged into node 1 (inside, 95 m from the centroid); node 3 (45 m outside, 145 m from
    # the centroid) stays; unnamed node 4 inside stays apart (node 1 already took the building);
    # a differently named node inside another building stays apart
    assert fac["fac_id"].tolist() == ["osm:n1", "osm:n3", "osm:n4", "osm:w5", "osm:n6"]
    # the old 50 m name rule alone would have kept the building
    assert len(facilities_from_osm(osm, jb_cfg, footprint_m=-1)) == 6


def test_unnamed_node_takes_its_buildings_name(jb_cfg):
    from accessibility.facilities import facilities_from_osm

    b = _deg_box(0, 0, 100, 100)
    inside = _deg_box(10, 10, 1e-3, 1e-3).centroid
    fac = facilities_from_osm(_lib_osm([("node", 1, None, {}, None, (inside.x, inside.y)),
                                        ("way", 2, "Oodi", {"building": "yes"}, b, None)]), jb_cfg)
    assert fac[["fac_id", "name"]].values.tolist() == [["osm:n1", "Oodi"]]


def test_exclusions_are_recorded(jb_cfg):
    from accessibility.facilities import classify

    cats = jb_cfg.categories
    assert classify("Fitness 24Seven Hakaniemi", {"leisure": "sports_centre"}, cats) == (
        None, "name contains fitness (excluded from sports_centre)")
    assert classify("Iron", {"leisure": "sports_centre", "brand": "Iron"}, cats) == (
        None, "tag leisure=sports_centre&brand=* (excluded from sports_centre)")
    assert classify("Kuntosali X", {"leisure": "fitness_centre", "fee": "yes"}, cats)[0] is None
    assert classify(None, {"leisure": "pitch", "access": "private"}, cats) == (
        None, "tag access=private (excluded from pitch_court)")
    assert classify(None, {"leisure": "pitch", "sport": "basketball"}, cats) == ("pitch_court", "tag leisure=pitch")
    assert classify(None, {"leisure": "fitness_station"}, cats) == ("fitness_station", "tag leisure=fitness_station")
    # an excluded category is named when the object lands in another one
    cat, why = classify("Kirjasto & Galleria", {"amenity": "library", "tourism": "gallery", "shop": "books"}, cats)
    assert cat == "library" and why == "tag amenity=library; excluded from museum_art: tag shop=*"
    cat, why = classify("Galleria", {"tourism": "gallery", "shop": "art", "amenity": "arts_centre"}, cats)
    assert cat is None and why == "tag shop=* (excluded from museum_art)"
