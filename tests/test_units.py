"""Tests of accessibility.units: reading unit polygons in any CRS, codes, kinds, joins with the
official table, repairs, and the partition check with hand-computed areas."""

from __future__ import annotations

import logging
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from shapely.geometry import MultiPolygon, Polygon, box

from accessibility import coords
from accessibility._errors import AccessibilityWarning, CRSMismatchError, DataError
from accessibility.config import Source
from accessibility.units import (
    UNIT_COLUMNS,
    check_partition,
    normalise_codes,
    read_boundary,
    read_units,
    unit_kind_from_name,
    units_from_osm_admin,
)

CRS = "EPSG:32648"
REF = Path(__file__).resolve().parents[1] / "data" / "raw" / "jiangbei" / "reference"
X0, Y0 = 640_000.0, 3_275_000.0  # near Jiangbei in UTM 48N


def _squares_utm() -> list[Polygon]:
    """Three 1 km x 1 km squares side by side (UTM 48N)."""
    return [box(X0 + i * 1000, Y0, X0 + (i + 1) * 1000, Y0 + 1000) for i in range(3)]


def _write(gdf: gpd.GeoDataFrame, path: Path, **kw) -> Path:
    gdf.to_file(path, **kw)
    return path


def _src(path: Path, **kw) -> Source:
    return Source(name="units", kind="vector", path=path, status="synthetic", **kw)


def _table(tmp_path: Path, rows) -> Path:
    p = tmp_path / "units_table.csv"
    pd.DataFrame(rows, columns=["code", "name"]).to_csv(p, index=False)
    return p


def test_read_units_cgcs2000_int_codes_and_kinds(tmp_path):
    sq = gpd.GeoSeries(_squares_utm(), crs=CRS).to_crs("EPSG:4490")
    gdf = gpd.GeoDataFrame(
        {"CODE": np.array([500105001, 500105002, 500105100], dtype=np.int64),
         "XZQMC": ["华新街街道", "江北城街道", "鱼嘴镇"]},
        geometry=sq.values, crs="EPSG:4490")
    p = _write(gdf, tmp_path / "units.gpkg")
    units = read_units(_src(p, columns={"code": "CODE", "name": "XZQMC"}), CRS)
    assert list(units.columns) == UNIT_COLUMNS
    assert units.crs == CRS
    assert units["unit_code"].tolist() == ["500105001", "500105002", "500105100"]
    assert units["unit_kind"].tolist() == ["街道", "街道", "镇"]
    assert units["unit_name_en"].tolist() == ["", "", ""]
    # CGCS2000 -> UTM: areas back to 1 km² within 1 m² and positions within a metre
    np.testing.assert_allclose(units.area.to_numpy(), 1e6, atol=1.0)
    np.testing.assert_allclose(units.geometry.values[0].bounds, _squares_utm()[0].bounds, atol=1.0)


def test_float_codes_from_shapefile_become_9_digit_strings(tmp_path):
    gdf = gpd.GeoDataFrame({"code": [500105001.0, 500105005.0], "name": ["华新街街道", "寸滩街道"]},
                           geometry=_squares_utm()[:2], crs=CRS)
    p = _write(gdf, tmp_path / "u.shp")
    units = read_units(p, CRS)  # default field names, plain path accepted
    assert units["unit_code"].tolist() == ["500105001", "500105005"]
    assert normalise_codes([500105001, 500105001.0, " 500105001 ", "500105001.0", None]).tolist() == \
        ["500105001"] * 4 + [""]
    assert normalise_codes(pd.array([500105002, None], dtype="Int64")).tolist() == ["500105002", ""]


def test_multipart_unit_kept_as_multipolygon(tmp_path):
    a, b, c = _squares_utm()
    gdf = gpd.GeoDataFrame({"unit_code": ["500105001", "500105002", "500105001"],
                            "unit_name": ["华新街街道", "江北城街道", "华新街街道"]},
                           geometry=[a, b, c], crs=CRS)
    units = read_units(_write(gdf, tmp_path / "u.geojson"), CRS)
    assert len(units) == 2
    g = units.set_index("unit_code").geometry
    assert g["500105001"].geom_type == "MultiPolygon"
    assert g["500105001"].area == pytest.approx(2e6)
    # a MultiPolygon feature stays one MultiPolygon
    gdf2 = gpd.GeoDataFrame({"unit_code": ["500105001"], "unit_name": ["华新街街道"]},
                            geometry=[MultiPolygon([a, c])], crs=CRS)
    u2 = read_units(_write(gdf2, tmp_path / "u2.geojson"), CRS)
    assert u2.geometry.iloc[0].geom_type == "MultiPolygon"


def test_invalid_geometry_repaired_and_logged(tmp_path, caplog):
    bowtie = Polygon([(X0, Y0), (X0 + 1000, Y0 + 1000), (X0 + 1000, Y0), (X0, Y0 + 1000)])
    assert not bowtie.is_valid
    gdf = gpd.GeoDataFrame({"unit_code": ["500105001"], "unit_name": ["华新街街道"]}, geometry=[bowtie], crs=CRS)
    with caplog.at_level(logging.WARNING, logger="accessibility.units"):
        units = read_units(_write(gdf, tmp_path / "u.gpkg"), CRS)
    g = units.geometry.iloc[0]
    assert g.is_valid and g.geom_type == "MultiPolygon"
    assert g.area == pytest.approx(0.5e6)  # two triangles of 1000*500/2 each
    assert "make_valid" in caplog.text


def test_missing_crs_is_refused_with_fix(tmp_path):
    gdf = gpd.GeoDataFrame({"unit_code": ["500105001"], "unit_name": ["华新街街道"]}, geometry=[_squares_utm()[0]])
    with pytest.warns(UserWarning, match="'crs' was not provided"):
        p = _write(gdf, tmp_path / "nocrs.shp")
    assert gpd.read_file(p).crs is None
    with pytest.raises(CRSMismatchError, match=r"nocrs\.shp.*no CRS.*set_crs"):
        read_units(p, CRS)
    with pytest.raises(CRSMismatchError, match="set_crs"):
        read_boundary(p, CRS)


def test_unit_table_join_and_mismatch(tmp_path):
    gdf = gpd.GeoDataFrame({"c": ["500105001", "500105002", "500105999"],
                            "n": ["华新街", "江北城街道", "某某镇"]},
                           geometry=_squares_utm(), crs=CRS)
    p = _write(gdf, tmp_path / "u.gpkg")
    src = _src(p, columns={"code": "c", "name": "n"})
    table = _table(tmp_path, [("500105001", "华新街街道"), ("500105002", "江北城街道"), ("500105003", "石马河街道")])
    with pytest.raises(DataError) as e:
        read_units(src, CRS, unit_table=table)
    msg = str(e.value)
    assert "500105999" in msg and "500105003 石马河街道" in msg and "u.gpkg" in msg
    # a matching table: official names replace the file's names (warned), kinds from them
    table2 = _table(tmp_path, [("500105001", "华新街街道"), ("500105002", "江北城街道"), ("500105999", "某某镇")])
    with pytest.warns(AccessibilityWarning, match="'华新街' -> '华新街街道'"):
        units = read_units(src, CRS, unit_table=table2)
    assert units["unit_name"].tolist() == ["华新街街道", "江北城街道", "某某镇"]
    assert units["unit_kind"].tolist() == ["街道", "街道", "镇"]


def test_codes_looked_up_by_name_and_real_table(tmp_path):
    gdf = gpd.GeoDataFrame({"name": ["寸滩街道", "五宝镇"]}, geometry=_squares_utm()[:2], crs=CRS)
    p = _write(gdf, tmp_path / "u.geojson")
    # the real NBS table has 12 units; the 10 without polygons are named in the error
    with pytest.raises(DataError, match="500105001 华新街街道"):
        read_units(p, CRS, unit_table=REF / "units_nbs2023.csv")
    table = _table(tmp_path, [("500105005", "寸滩街道"), ("500105102", "五宝镇")])
    units = read_units(p, CRS, unit_table=table)
    assert units["unit_code"].tolist() == ["500105005", "500105102"]


def test_bad_fields_and_codes_gathered(tmp_path):
    gdf = gpd.GeoDataFrame({"code": ["500105001", "", "500105001000", "12"], "name": ["a街道", "b街道", "c镇", "d"]},
                           geometry=[*_squares_utm(), box(0, 0, 1, 1)], crs=CRS)
    p = _write(gdf, tmp_path / "u.gpkg")
    with pytest.raises(DataError, match="available fields") as e:
        read_units(_src(p, columns={"code": "XZQDM", "name": "name"}), CRS)
    assert "XZQDM" in str(e.value)
    with pytest.raises(DataError) as e:
        read_units(p, CRS, codes="cn_official")
    msg = str(e.value)
    assert "empty 'code'" in msg and "9-digit form 500105001" in msg and "'12' is not a 9-digit" in msg


def test_points_are_not_units(tmp_path):
    gdf = gpd.GeoDataFrame({"code": ["500105001"], "name": ["华新街街道"]},
                           geometry=[shapely.Point(X0, Y0)], crs=CRS)
    with pytest.raises(DataError, match="Point, not a polygon"):
        read_units(_write(gdf, tmp_path / "p.gpkg"), CRS)


def test_unit_kind_from_name():
    assert unit_kind_from_name("观音桥街道") == "街道"
    assert unit_kind_from_name("复盛镇") == "镇"
    assert unit_kind_from_name("某某乡") == "镇"
    assert unit_kind_from_name("Guanyinqiao") == ""


def test_gcj02_units_are_converted(tmp_path):
    sq = gpd.GeoSeries(_squares_utm()[:1], crs=CRS).to_crs("EPSG:4326")
    gcj = coords.transform_geometry(sq, coords.wgs84_to_gcj02)
    gdf = gpd.GeoDataFrame({"code": ["500105001"], "name": ["华新街街道"]}, geometry=gcj.values, crs="EPSG:4326")
    p = _write(gdf, tmp_path / "gcj.geojson")
    plain = read_units(p, CRS)
    fixed = read_units(_src(p, coords="gcj02"), CRS)
    # the GCJ offset is several hundred metres; undone, the square is back within 1 mm
    assert plain.geometry.iloc[0].hausdorff_distance(_squares_utm()[0]) > 300
    assert fixed.geometry.iloc[0].hausdorff_distance(_squares_utm()[0]) < 1e-3


def test_read_real_boundary():
    b = read_boundary(REF / "district_boundary_wgs84.geojson", CRS)
    assert len(b) == 1 and b.crs == CRS and b["name"].iloc[0] == "江北区"
    # PROVENANCE.md: ~222 km² (official 220.77 km²)
    assert 215e6 < b.area.iloc[0] < 230e6
    src = Source(name="boundary", kind="vector", path=REF / "district_boundary_gcj02.geojson",
                 status="real", coords="gcj02")
    b2 = read_boundary(src, CRS)
    # the GCJ file, converted, matches the WGS-84 file within a few metres everywhere
    assert b2.geometry.iloc[0].hausdorff_distance(b.geometry.iloc[0]) < 5.0


# --- check_partition: hand-computed areas ---------------------------------------------------------

def _units_frame(geoms):
    return gpd.GeoDataFrame({"unit_code": [f"50010500{i + 1}" for i in range(len(geoms))],
                             "unit_name": ["a", "b", "c"][: len(geoms)]}, geometry=geoms, crs=CRS)


def test_check_partition_perfect_tiling():
    units = _units_frame(_squares_utm())
    boundary = gpd.GeoDataFrame(geometry=[box(X0, Y0, X0 + 3000, Y0 + 1000)], crs=CRS)
    rep = check_partition(units, boundary)
    assert list(rep.columns) == ["kind", "units", "area_m2", "area_km2", "share"]
    assert rep["kind"].tolist() == ["gap", "outside"]
    assert rep["area_m2"].abs().max() < 1e-6


def test_check_partition_gap_overlap_outside():
    # boundary 3000 x 1000 m. A = [0,1000], B = [900,2000] (overlap with A: 100 x 1000 = 1e5 m²),
    # C = [2050,3100] (gap 2000-2050: 50 x 1000 = 5e4 m²; outside 3000-3100: 1e5 m²)
    units = _units_frame([box(X0, Y0, X0 + 1000, Y0 + 1000), box(X0 + 900, Y0, X0 + 2000, Y0 + 1000),
                          box(X0 + 2050, Y0, X0 + 3100, Y0 + 1000)])
    boundary = box(X0, Y0, X0 + 3000, Y0 + 1000)
    with pytest.warns(AccessibilityWarning, match=r"gap\s+0\.050 km²"):
        rep = check_partition(units, boundary)
    r = rep.set_index("kind")
    assert r.loc["gap", "area_m2"] == pytest.approx(5e4)
    assert r.loc["gap", "share"] == pytest.approx(5e4 / 3e6)
    assert r.loc["overlap", "units"] == "500105001;500105002"
    assert r.loc["overlap", "area_m2"] == pytest.approx(1e5)
    assert r.loc["overlap", "area_km2"] == pytest.approx(0.1)
    assert r.loc["outside", "area_m2"] == pytest.approx(1e5)
    assert r.loc["outside", "units"] == "500105003"
    # below tolerance: no warning (pytest turns warnings into errors)
    check_partition(units, boundary, tol_m2=2e5)


def test_check_partition_refuses_degrees():
    units = _units_frame(_squares_utm()).to_crs("EPSG:4326")
    with pytest.raises(CRSMismatchError, match="to_crs"):
        check_partition(units, box(0, 0, 1, 1))


def test_units_from_osm_admin():
    sq = gpd.GeoSeries(_squares_utm()[:2], crs=CRS).to_crs("EPSG:4326")
    feats = gpd.GeoDataFrame({"boundary": ["administrative", "administrative", "administrative"],
                              "admin_level": ["8", "8", "6"],
                              "name": ["寸滩街道", "五宝镇", "江北区"],
                              "name:en": ["Cuntan", None, "Jiangbei"]},
                             geometry=[*sq.values, sq.union_all()], crs="EPSG:4326")
    table = pd.DataFrame({"code": ["500105005", "500105102"], "name": ["寸滩街道", "五宝镇"]})
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "t.csv"
        table.to_csv(p, index=False)
        units = units_from_osm_admin(feats, CRS, unit_table=p)
    assert units["unit_code"].tolist() == ["500105005", "500105102"]
    assert units["unit_name_en"].tolist() == ["Cuntan", ""]
    assert units.crs == CRS


def test_metres_labelled_as_degrees_is_named(tmp_path):
    """Review finding: UTM metres tagged EPSG:4326 ended in an AttributeError traceback."""
    import geopandas as gpd
    import shapely

    from accessibility._errors import CRSMismatchError
    from accessibility.units import read_boundary

    path = tmp_path / "boundary.gpkg"
    gpd.GeoDataFrame({"name": ["x"]}, geometry=[shapely.box(600_000, 3_270_000, 610_000, 3_280_000)],
                     crs="EPSG:4326").to_file(path)
    with pytest.raises(CRSMismatchError, match=r"not degrees \(metres labelled as degrees\?\)"):
        read_boundary(path, "EPSG:32648")
