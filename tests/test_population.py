"""Tests of accessibility.population with tiny GeoTIFFs made here, hand-computed cells, census
spreading (totals preserved, property-tested) and input validation."""

from __future__ import annotations

import warnings
from pathlib import Path
from types import SimpleNamespace

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio
from hypothesis import given, settings
from hypothesis import strategies as st
from pyproj import Transformer
from rasterio.transform import Affine
from shapely.geometry import box

from accessibility._errors import AccessibilityWarning, CRSMismatchError, DataError
from accessibility.config import Circle, Source
from accessibility.population import (
    CELL_COLUMNS,
    apply_age_share,
    cells_from_grid,
    cells_from_raster,
    load_population,
    read_census,
    spread_census,
)

CRS = "EPSG:32648"
X0, Y0 = 640_000.0, 3_275_000.0
NODATA = -9999.0
# 3 rows x 5 columns of 100 m pixels, top-left corner (X0, Y0 + 300)
GRID = np.array([
    [1.0, 2.0, 0.0, 4.0, 7.0],
    [NODATA, 3.0, 5.0, -5.0, 0.0],
    [1.5, 0.0, 2.0, 2.0, 1.0],
])


def from_origin(west: float, north: float, xsize: float, ysize: float) -> Affine:
    """rasterio.transform.from_origin without its (deprecated) Affine ``*``."""
    return Affine(xsize, 0.0, west, 0.0, -ysize, north)


def _tif(path: Path, data: np.ndarray, transform, crs, nodata=None) -> Path:
    with rasterio.open(path, "w", driver="GTiff", height=data.shape[0], width=data.shape[1], count=1,
                       dtype="float32", crs=crs, transform=transform, nodata=nodata) as dst:
        dst.write(data.astype("float32"), 1)
    return path


def _units_ab() -> gpd.GeoDataFrame:
    """A = columns 0-1, B = columns 2-3 of GRID; column 4 lies outside every unit."""
    return gpd.GeoDataFrame({"unit_code": ["500105001", "500105002"], "unit_name": ["A街道", "B镇"]},
                            geometry=[box(X0, Y0, X0 + 200, Y0 + 300), box(X0 + 200, Y0, X0 + 400, Y0 + 300)],
                            crs=CRS)


def _projected_tif(tmp_path) -> Path:
    return _tif(tmp_path / "pop_utm.tif", GRID, from_origin(X0, Y0 + 300, 100, 100), CRS, NODATA)


def test_cells_from_projected_raster_by_hand(tmp_path):
    with pytest.warns(AccessibilityWarning, match=r"2 populated cells \(8\.0 people"), \
            pytest.warns(AccessibilityWarning, match=r"1 negative pixel\(s\) summing to -5 people"):
        cells = cells_from_raster(_projected_tif(tmp_path), _units_ab(), CRS)
    assert list(cells.columns) == ["cell_id", "population", "unit_code", "geometry"]
    assert cells["cell_id"].tolist() == list(range(8))
    assert cells.crs == CRS
    # populated pixels in units: A: (r0,c0)=1, (r0,c1)=2, (r1,c1)=3, (r2,c0)=1.5 ; B: (r0,c3)=4,
    # (r1,c2)=5, (r2,c2)=2, (r2,c3)=2. Nodata, the negative value and zeros are not cells.
    got = {(round(p.x - X0), round(p.y - Y0)): (v, u)
           for p, v, u in zip(cells.geometry, cells["population"], cells["unit_code"], strict=True)}
    expected = {
        (50, 250): (1.0, "500105001"), (150, 250): (2.0, "500105001"), (150, 150): (3.0, "500105001"),
        (50, 50): (1.5, "500105001"), (350, 250): (4.0, "500105002"), (250, 150): (5.0, "500105002"),
        (250, 50): (2.0, "500105002"), (350, 50): (2.0, "500105002"),
    }
    assert got == expected
    assert cells.groupby("unit_code")["population"].sum().to_dict() == {"500105001": 7.5, "500105002": 13.0}


def test_cells_from_geographic_raster(tmp_path):
    # 0.001 degree pixels near Jiangbei; units A = columns 0-1, B = column 2 (defined in degrees)
    data = np.array([[10.0, 0.0, 30.0], [np.nan, 20.0, -1.0]])
    tif = _tif(tmp_path / "pop_4326.tif", data, from_origin(106.5, 29.602, 0.001, 0.001), "EPSG:4326", np.nan)
    units = gpd.GeoDataFrame({"unit_code": ["500105001", "500105002"], "unit_name": ["A街道", "B街道"]},
                             geometry=[box(106.5, 29.6, 106.502, 29.602), box(106.502, 29.6, 106.503, 29.602)],
                             crs="EPSG:4326").to_crs(CRS)
    with pytest.warns(AccessibilityWarning, match=r"1 negative pixel\(s\) summing to -1 people"):
        cells = cells_from_raster(Source(name="population", kind="raster", path=tif, status="synthetic"), units, CRS)
    assert cells["population"].tolist() == [10.0, 30.0, 20.0]
    assert cells["unit_code"].tolist() == ["500105001", "500105002", "500105001"]
    tr = Transformer.from_crs("EPSG:4326", CRS, always_xy=True)
    ex, ey = tr.transform([106.5005, 106.5025, 106.5015], [29.6015, 29.6015, 29.6005])
    np.testing.assert_allclose(cells.geometry.x, ex, atol=1e-6)
    np.testing.assert_allclose(cells.geometry.y, ey, atol=1e-6)


def test_raster_without_crs(tmp_path):
    tif = _tif(tmp_path / "nocrs.tif", GRID, from_origin(X0, Y0 + 300, 100, 100), None, NODATA)
    with pytest.raises(CRSMismatchError, match=r"nocrs\.tif.*gdal_edit\.py -a_srs EPSG:4326"):
        cells_from_raster(tif, _units_ab(), CRS)


def test_raster_not_overlapping(tmp_path):
    tif = _tif(tmp_path / "far.tif", GRID, from_origin(X0 + 50_000, Y0 + 300, 100, 100), CRS, NODATA)
    with pytest.raises(DataError, match=r"far\.tif.*does not overlap the units"):
        cells_from_raster(tif, _units_ab(), CRS)
    zeros = _tif(tmp_path / "zeros.tif", np.zeros((3, 5)), from_origin(X0, Y0 + 300, 100, 100), CRS, NODATA)
    with pytest.raises(DataError, match="no pixel with population > 0"):
        cells_from_raster(zeros, _units_ab(), CRS)


def test_only_window_is_read_for_large_raster(tmp_path):
    # a 2000 x 2000 raster; the units cover 4 x 3 pixels of it: result identical to the small one
    big = np.zeros((2000, 2000), dtype="float32")
    big[1000:1003, 1000:1005] = GRID
    tif = _tif(tmp_path / "big.tif", big, from_origin(X0 - 100_000, Y0 + 300 + 100_000, 100, 100), CRS, NODATA)
    with pytest.warns(AccessibilityWarning):
        cells = cells_from_raster(tif, _units_ab(), CRS)
    assert len(cells) == 8 and cells["population"].sum() == pytest.approx(20.5)


# --- grid -----------------------------------------------------------------------------------------

def test_cells_from_grid_by_hand():
    units = _units_ab()
    tiny = gpd.GeoDataFrame({"unit_code": ["500105003"], "unit_name": ["C街道"]},
                            geometry=[box(X0 + 1000, Y0, X0 + 1040, Y0 + 40)], crs=CRS)
    units = pd.concat([units, tiny], ignore_index=True)
    cells = cells_from_grid(units, CRS, size_m=100)
    counts = cells["unit_code"].value_counts().to_dict()
    # A: 2 x 3 centres, B: 2 x 3 centres; C holds no 100 m centre -> one representative point
    assert counts == {"500105001": 6, "500105002": 6, "500105003": 1}
    assert (cells["population"] == 0).all() and cells["cell_id"].tolist() == list(range(13))
    a = cells[cells["unit_code"] == "500105001"]
    assert sorted(zip(a.geometry.x - X0, a.geometry.y - Y0, strict=True)) == [
        (50, 50), (50, 150), (50, 250), (150, 50), (150, 150), (150, 250)]
    assert units.geometry.iloc[2].contains(cells.geometry.iloc[-1])


# --- census spreading -----------------------------------------------------------------------------

def _cells(pops, codes):
    return gpd.GeoDataFrame({"cell_id": np.arange(len(pops)), "population": np.asarray(pops, float),
                             "unit_code": codes},
                            geometry=gpd.points_from_xy(np.arange(len(pops)) * 10.0, np.zeros(len(pops))), crs=CRS)


def test_spread_census_by_hand():
    cells = _cells([1, 3, 0, 0, 0], ["A", "A", "B", "B", "B"]).set_index(pd.Index([10, 11, 12, 13, 14]))
    census = pd.DataFrame({"unit_code": ["A", "B"], "population": [100.0, 60.0]})
    out = spread_census(cells, census)
    assert out.index.equals(cells.index)
    np.testing.assert_allclose(out["population"], [25, 75, 20, 20, 20])  # pattern kept in A, even in B
    assert cells["population"].tolist() == [1, 3, 0, 0, 0]  # input untouched


def test_spread_census_reports_both_sides():
    cells = _cells([1, 2, 5], ["A", "A", "Z"])
    census = pd.DataFrame({"unit_code": ["A", "Q"], "population": [30.0, 40.0]})
    with pytest.warns(AccessibilityWarning) as rec:
        out = spread_census(cells, census)
    msgs = " | ".join(str(w.message) for w in rec)
    assert "without any cell: Q (40.0 people" in msgs
    assert "no census row: Z" in msgs
    np.testing.assert_allclose(out["population"], [10, 20, 5])
    with pytest.raises(DataError, match="duplicate unit codes A"):
        spread_census(cells, pd.DataFrame({"unit_code": ["A", "A"], "population": [1.0, 2.0]}))


@settings(deadline=None, max_examples=60, derandomize=True)
@given(
    pops=st.lists(st.floats(0, 1e5, allow_nan=False), min_size=1, max_size=40),
    seed=st.integers(0, 2**16),
)
def test_spread_census_preserves_totals(pops, seed):
    rng = np.random.default_rng(seed)
    units = ["500105001", "500105002", "500105003"]
    codes = [units[i] for i in rng.integers(0, 3, len(pops))]
    present = sorted(set(codes))
    targets = rng.uniform(0, 2e5, len(present))
    cells = _cells(pops, codes)
    out = spread_census(cells, pd.DataFrame({"unit_code": present, "population": targets}))
    sums = out.groupby("unit_code")["population"].sum()
    np.testing.assert_allclose(sums[present].to_numpy(), targets, rtol=1e-12, atol=1e-6)
    assert out["population"].sum() == pytest.approx(targets.sum(), rel=1e-12, abs=1e-6)
    assert (out["population"] >= 0).all()


# --- age share and census reading ---------------------------------------------------------------

def test_apply_age_share():
    cells = _cells([10, 20, 30], ["A", "B", "B"])
    out = apply_age_share(cells, pd.Series({"A": 0.5, "B": 0.1}), keep_share=True)
    np.testing.assert_allclose(out["pop_60plus"], [5, 2, 3])
    np.testing.assert_allclose(out["share_60plus"], [0.5, 0.1, 0.1])
    assert "pop_60plus" not in cells.columns
    np.testing.assert_allclose(apply_age_share(cells, 0.191)["pop_60plus"], [1.91, 3.82, 5.73])
    with pytest.raises(DataError, match="percent"):
        apply_age_share(cells, 19.1)
    with pytest.raises(DataError, match="no 60\\+ share for units B"):
        apply_age_share(cells, pd.Series({"A": 0.2}))


def _csv(tmp_path, text, name="census.csv") -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def test_read_census_ok_with_column_mapping(tmp_path):
    p = _csv(tmp_path, "编码,人口,老龄\n500105001,\"12,000\",0.2\n500105005,67186,19.1%\n")
    src = Source(name="census", kind="table", path=p, status="synthetic",
                 columns={"code": "编码", "population": "人口", "share_60plus": "老龄"})
    with pytest.raises(DataError, match=r"line 3: share_60plus 19\.1 is outside 0-1: 19\.1 looks like a percentage"):
        read_census(src)
    p.write_text("编码,人口,老龄\n500105001,\"12,000\",0.2\n500105005,67186,0.191\n", encoding="utf-8")
    df = read_census(src)
    assert df["unit_code"].tolist() == ["500105001", "500105005"]
    assert df["population"].tolist() == [12000.0, 67186.0]
    assert df["share_60plus"].tolist() == [0.2, 0.191]


def test_read_census_gathers_problems(tmp_path):
    p = _csv(tmp_path, "unit_code,population,share_60plus\n"
                       "500105001,100,0.2\n500105002,-5,0.2\n500105001,,0.3\n,7,1.5\n500105004,abc,x\n")
    with pytest.raises(DataError) as e:
        read_census(p)
    msg = str(e.value)
    for part in ["census.csv", "code 500105001 appears on lines 2, 4", "line 3: population -5 is negative",
                 "line 4: population '' is missing", "line 5: empty code", "line 5: share_60plus 1.5 is outside 0-1",
                 "line 6: population 'abc'", "line 6: share_60plus 'x' is not a number"]:
        assert part in msg, part
    with pytest.raises(DataError, match="column 'pop'"):
        read_census(Source(name="census", kind="table", path=p, status="real", columns={"population": "pop"}))


# --- end to end through a (minimal) configuration -------------------------------------------------

def _config(sources, circles=()):
    return SimpleNamespace(crs=CRS, sources=sources, config_path=Path("test.yaml"),
                           circles={c.id: c for c in circles})


def test_load_population_raster_census_share(tmp_path):
    tif = _projected_tif(tmp_path)
    census = _csv(tmp_path, "unit_code,population,share_60plus\n500105001,750,0.2\n500105002,1300,0.1\n")
    cfg = _config({"population": Source(name="population", kind="raster", path=tif, status="synthetic"),
                   "census": Source(name="census", kind="table", path=census, status="synthetic")})
    with pytest.warns(AccessibilityWarning, match="lie in no unit"), \
            pytest.warns(AccessibilityWarning, match="negative pixel"), \
            pytest.warns(AccessibilityWarning, match=r"the raster holds 20 people in the units, the census .* 2,050"):
        cells = load_population(cfg, _units_ab())
    assert list(cells.columns) == CELL_COLUMNS
    assert cells["cell_id"].tolist() == list(range(8))
    assert cells["population"].sum() == pytest.approx(2050)
    by = cells.groupby("unit_code")[["population", "pop_60plus"]].sum()
    assert by.loc["500105001", "population"] == pytest.approx(750)
    assert by.loc["500105001", "pop_60plus"] == pytest.approx(150)
    assert by.loc["500105002", "pop_60plus"] == pytest.approx(130)
    # the raster pattern is kept: cell (r1,c1) had 3 of A's 7.5 people
    assert cells["population"].max() == pytest.approx(5 / 13 * 1300)


def test_load_population_census_only_needs_share_for_60plus_circle(tmp_path):
    census = _csv(tmp_path, "unit_code,population\n500105001,600\n500105002,300\n")
    circle = Circle(id="eldercare", label_zh="", label_en="", categories=("x",), mode="time", threshold=900,
                    profile="elderly", population="60plus", target_share=1.0)
    src = Source(name="population", kind="table", path=census, status="synthetic")
    with pytest.raises(DataError, match="eldercare count residents aged 60\\+"):
        load_population(_config({"population": src}, [circle]), _units_ab())
    src2 = Source(name="population", kind="table", path=census, status="synthetic",
                  options={"share_60plus": 0.191, "grid_m": 100})
    cells = load_population(_config({"population": src2}, [circle]), _units_ab())
    assert len(cells) == 12  # 2 x 3 grid centres per unit
    np.testing.assert_allclose(cells.groupby("unit_code")["population"].sum().to_numpy(), [600, 300])
    np.testing.assert_allclose(cells["population"].to_numpy()[:6], 100)
    assert cells["pop_60plus"].sum() == pytest.approx(900 * 0.191)


# --- plausibility checks (issue 15) ---------------------------------------------------------------

def test_negative_and_nonfinite_pixels_are_counted_and_reported(tmp_path):
    data = GRID.copy()
    data[2, 1] = np.inf
    tif = _tif(tmp_path / "bad_pixels.tif", data, from_origin(X0, Y0 + 300, 100, 100), CRS, NODATA)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", AccessibilityWarning)
        cells = cells_from_raster(tif, _units_ab(), CRS)
    msgs = [str(w.message) for w in caught]
    bad = [m for m in msgs if "are not population counts" in m]
    # the -5 at (r1,c3) and the inf at (r2,c1); the declared nodata (-9999) is not counted
    assert len(bad) == 1 and "bad_pixels.tif: 1 negative pixel(s) summing to -5 people and 1 NaN/infinite" in bad[0]
    assert "gdal_edit.py -a_nodata" in bad[0]
    assert cells["population"].sum() == pytest.approx(20.5)  # both counted as nobody


def _census_and_cfg(tmp_path, tif, census_text, units_path="units.gpkg"):
    census = _csv(tmp_path, census_text)
    cfg = _config({"population": Source(name="population", kind="raster", path=tif, status="synthetic"),
                   "census": Source(name="census", kind="table", path=census, status="synthetic"),
                   "units": Source(name="units", kind="vector", path=Path(units_path), status="synthetic")})
    return cfg, census


def test_raster_total_far_from_the_census_is_reported_before_rescaling(tmp_path):
    """Review finding: a raster in people per km² (100 x the census) was rescaled with no note."""
    per_km2 = np.where(GRID > 0, GRID * 100.0, GRID)  # 100 m pixels: people per km² = 100 x people per pixel
    tif = _tif(tmp_path / "density.tif", per_km2, from_origin(X0, Y0 + 300, 100, 100), CRS, NODATA)
    cfg, census = _census_and_cfg(tmp_path, tif, "unit_code,population,share_60plus\n500105001,7.5,0.2\n"
                                  "500105002,13,0.1\n")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", AccessibilityWarning)
        cells = load_population(cfg, _units_ab())
    far = [str(w.message) for w in caught if "the cells are rescaled" in str(w.message)]
    assert len(far) == 1
    assert f"{tif}: the raster holds 2,050 people in the units, the census {census} 20 (1e+02 x)" in far[0]
    assert "looks like people per km², not people per pixel" in far[0]
    assert cells["population"].sum() == pytest.approx(20.5)  # rescaled all the same
    # a raster within 1.5 x of the census: nothing said
    cfg, _ = _census_and_cfg(tmp_path, tif, "unit_code,population,share_60plus\n500105001,600,0.2\n"
                             "500105002,1200,0.1\n")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", AccessibilityWarning)
        load_population(cfg, _units_ab())
    assert not [w for w in caught if "the cells are rescaled" in str(w.message)]


def test_census_codes_that_do_not_match_the_units_name_both_sides(tmp_path):
    """Review finding: 12-digit census codes gave 'no share_60plus for units ...: add their rows'."""
    tif = _projected_tif(tmp_path)
    cfg, census = _census_and_cfg(tmp_path, tif, "unit_code,population,share_60plus\n500105001001,400,0.2\n"
                                  "500105001002,350,0.2\n500105002001,1300,0.1\n", units_path="units_2023.gpkg")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AccessibilityWarning)  # cells outside the units
        with pytest.raises(DataError) as err:
            load_population(cfg, _units_ab())
    msg = str(err.value)
    assert msg.startswith(f"{census}: the census unit codes do not match the units layer units_2023.gpkg: 0 of 2")
    assert "Census codes: 500105001001, 500105001002, 500105002001 (12 digits)" in msg
    assert "unit codes: 500105001, 500105002 (9 digits)" in msg
    assert "add the rows up per unit (the first 9 digits of the code)" in msg
    # other codes entirely: the generic fix
    cfg, _ = _census_and_cfg(tmp_path, tif, "unit_code,population,share_60plus\nA1,400,0.2\nA2,350,0.2\n")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AccessibilityWarning)
        with pytest.raises(DataError, match="sources.census.columns.code"):
            load_population(cfg, _units_ab())
