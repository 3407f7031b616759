"""Terrain: Tobler/Naismith against the published formulas, step costs, DEM sampling."""

from __future__ import annotations

import math

import numpy as np
import pytest
import rasterio
from affine import Affine
from pyproj import Transformer

from accessibility._errors import AccessibilityWarning, CRSMismatchError, DataError
from accessibility.config import Profile, Terrain
from accessibility.terrain import (
    check_grades,
    edge_times,
    naismith_time_s,
    sample_dem,
    tobler_speed_mps,
)

ADULT = Profile("adult", 1.2)
FRAIL = Profile("frail", 0.8, allow_steps=False)


def tobler_kmh(s):
    """Tobler (1993) as published: W = 6 exp(-3.5 |dh/dx + 0.05|) km/h."""
    return 6.0 * math.exp(-3.5 * abs(s + 0.05))


@pytest.mark.parametrize("grade", [-0.2, -0.15, -0.1, -0.05, 0.0, 0.05, 0.09, 0.15, 0.2, 0.3])
def test_tobler_matches_published_formula(grade):
    v = tobler_speed_mps(grade, 1.2)
    expected = tobler_kmh(grade) / tobler_kmh(0.0) * 1.2
    assert v == pytest.approx(expected, rel=1e-12)


def test_tobler_standards_ratios():
    # STANDARDS.md: uphill +9 % gives 73 % of flat speed, +15 % gives 59 %; flat = 5.04 km/h
    assert tobler_speed_mps(0.0, 1.0) == pytest.approx(1.0)
    assert tobler_speed_mps(0.09, 1.0) == pytest.approx(0.73, abs=0.005)
    assert tobler_speed_mps(0.15, 1.0) == pytest.approx(0.59, abs=0.005)
    assert tobler_kmh(0.0) == pytest.approx(5.04, abs=0.005)
    # fastest slightly downhill, at -5 %: 6 km/h
    v = tobler_speed_mps(np.array([-0.1, -0.05, 0.0]), 5.04 / 3.6)
    assert v.argmax() == 1
    assert v[1] * 3.6 == pytest.approx(6.0 * 5.04 / tobler_kmh(0.0))


def test_naismith_by_hand():
    # 100 m climbing 10 m at 1.2 m/s: 83.33 s + 60 s; downhill costs nothing extra
    t = naismith_time_s(np.array([100.0, 100.0, 100.0]), np.array([10.0, -10.0, 0.0]), 1.2)
    np.testing.assert_allclose(t, [100 / 1.2 + 60, 100 / 1.2, 100 / 1.2])
    assert naismith_time_s(600.0, 600.0, 1.0, 6.0) == pytest.approx(600 + 3600)


def test_edge_times_tobler_up_and_down_differ():
    length = np.array([100.0, 100.0, 100.0])
    rise = np.array([9.0, -9.0, 0.0])
    t = edge_times(length, rise, np.zeros(3, bool), ADULT, Terrain())
    assert t[2] == pytest.approx(100 / 1.2)
    assert t[0] == pytest.approx(100 / (1.2 * math.exp(-3.5 * 0.09)))  # 73 % of flat speed
    down = tobler_kmh(-0.09) / tobler_kmh(0.0) * 1.2
    assert t[1] == pytest.approx(100 / down)
    assert t[0] > t[2] > t[1] * 0.9 and t[0] != t[1]


def test_edge_times_grade_is_clipped():
    t = edge_times([10.0], [50.0], [False], ADULT, Terrain(max_abs_grade=1.0))
    assert t[0] == pytest.approx(10 / tobler_speed_mps(1.0, 1.2)[()])


def test_edge_times_steps_and_models():
    terr = Terrain(steps_climb_s_per_m=6.0, steps_descent_s_per_m=2.0)
    length = np.array([20.0, 20.0])
    rise = np.array([10.0, -10.0])
    steps = np.array([True, True])
    t = edge_times(length, rise, steps, ADULT, terr)
    np.testing.assert_allclose(t, [20 / 1.2 + 60, 20 / 1.2 + 20])
    assert np.isinf(edge_times(length, rise, steps, FRAIL, terr)).all()
    # naismith model on a street; flat model ignores the rise
    tn = edge_times([100.0], [5.0], [False], ADULT, Terrain(model="naismith", naismith_s_per_m_climb=8))
    assert tn[0] == pytest.approx(100 / 1.2 + 40)
    tf = edge_times([100.0, 20.0], [5.0, 10.0], [False, True], ADULT, Terrain(model="flat"))
    np.testing.assert_allclose(tf, [100 / 1.2, 20 / 1.2])
    # NaN rise (no elevation) = flat
    assert edge_times([100.0], [np.nan], [False], ADULT, Terrain())[0] == pytest.approx(100 / 1.2)


def from_origin(west, north, xsize, ysize):
    # rasterio.transform.from_origin multiplies Affines with `*`, which affine 3.x warns about
    return Affine(xsize, 0.0, west, 0.0, -ysize, north)


def _write_tif(path, data, transform, crs, nodata=None):
    with rasterio.open(path, "w", driver="GTiff", height=data.shape[0], width=data.shape[1], count=1,
                       dtype="float32", crs=crs, transform=transform, nodata=nodata) as dst:
        dst.write(data.astype("float32"), 1)


def test_sample_dem_plane_projected(tmp_path):
    # 30 m pixels, elevation = 100 + 0.1 * (x - x0) + 0.05 * (y0 - y) at pixel centres
    x0, y0, px = 600_000.0, 3_270_000.0, 30.0
    rows, cols = np.mgrid[0:50, 0:60]
    cx = x0 + (cols + 0.5) * px
    cy = y0 - (rows + 0.5) * px
    elev = 100 + 0.1 * (cx - x0) + 0.05 * (y0 - cy)
    p = tmp_path / "dem.tif"
    _write_tif(p, elev, from_origin(x0, y0, px, px), "EPSG:32648")
    xs = np.array([x0 + 300.0, x0 + 777.7, x0 + 1000.0])
    ys = np.array([y0 - 250.0, y0 - 333.3, y0 - 900.0])
    expect = 100 + 0.1 * (xs - x0) + 0.05 * (y0 - ys)
    # bilinear interpolation is exact on a plane; Gaussian smoothing keeps a plane in the interior
    np.testing.assert_allclose(sample_dem(p, xs, ys, "EPSG:32648", smoothing_m=0), expect, atol=1e-3)
    np.testing.assert_allclose(sample_dem(p, xs, ys, "EPSG:32648", smoothing_m=60), expect, atol=1e-3)


def test_sample_dem_other_crs_smoothing_and_outside(tmp_path):
    # DEM in WGS-84 degrees; a single 100 m spike is smoothed away, nodata holes are filled
    lon0, lat0, res = 106.5, 29.6, 0.0003
    data = np.full((80, 80), 200.0)
    data[40, 40] = 300.0
    data[10, 10] = -9999.0
    p = tmp_path / "dem_wgs84.tif"
    _write_tif(p, data, from_origin(lon0, lat0, res, res), "EPSG:4326", nodata=-9999.0)
    to_utm = Transformer.from_crs("EPSG:4326", "EPSG:32648", always_xy=True)
    lon = np.array([lon0 + 40.5 * res, lon0 + 10.5 * res, lon0 + 20.5 * res, lon0 - 0.01])
    lat = np.array([lat0 - 40.5 * res, lat0 - 10.5 * res, lat0 - 20.5 * res, lat0])
    x, y = to_utm.transform(lon, lat)
    raw = sample_dem(p, x[:3], y[:3], "EPSG:32648", smoothing_m=0)
    assert raw[0] == pytest.approx(300.0, abs=0.5)
    assert np.isnan(raw[1])  # nodata pixel, no smoothing to fill it
    with pytest.warns(AccessibilityWarning, match=r"1 of 4 points .*does not cover the area"):
        sm = sample_dem(p, x, y, "EPSG:32648", smoothing_m=60)
    assert 200.0 < sm[0] < 230.0  # spike spread over ~2 px sigma
    assert sm[1] == pytest.approx(200.0, abs=1e-6)  # hole filled from its neighbours
    assert sm[2] == pytest.approx(200.0, abs=1e-6)
    assert np.isnan(sm[3])


def test_sample_dem_without_crs(tmp_path):
    p = tmp_path / "nocrs.tif"
    _write_tif(p, np.zeros((5, 5)), from_origin(0, 5, 1, 1), None)
    with pytest.raises(CRSMismatchError, match="nocrs.tif.*no CRS"):
        sample_dem(p, [1.0], [1.0], "EPSG:32648")


def test_stair_cost_scales_with_the_profile_speed():
    """An older walker climbs stairs slower too: per-metre stair costs scale by 1.2 m/s / flat speed."""
    from accessibility.config import Profile, Terrain
    from accessibility.terrain import edge_times

    terrain = Terrain(model="tobler")
    length, rise = np.array([20.0, 20.0]), np.array([5.0, -5.0])
    steps = np.array([True, True])
    adult = edge_times(length, rise, steps, Profile("adult", 1.2), terrain)
    elder = edge_times(length, rise, steps, Profile("elderly", 0.9), terrain)
    np.testing.assert_allclose(adult, [20 / 1.2 + 6 * 5, 20 / 1.2 + 2 * 5])
    np.testing.assert_allclose(elder, [20 / 0.9 + (1.2 / 0.9) * 6 * 5, 20 / 0.9 + (1.2 / 0.9) * 2 * 5])


# --- vertical units and plausibility (issue 15) -----------------------------------------------------

def _slope_dem(path, factor=1.0, units=None):
    """A 30 m DEM in UTM 48N rising 8 % to the east (200 m at x0 + 2,500 m), values x ``factor``."""
    x = np.arange(100) * 30.0
    data = np.tile(200.0 + 0.08 * x, (100, 1)) * factor
    with rasterio.open(path, "w", driver="GTiff", height=100, width=100, count=1, dtype="float64",
                       crs="EPSG:32648", transform=Affine(30.0, 0, 600_000.0, 0, -30.0, 3_270_000.0)) as dst:
        dst.write(data, 1)
        if units:
            dst.units = (units,)
    return path


def test_dem_vertical_units_declared_or_from_the_raster(tmp_path):
    xs, ys = np.array([600_015.0 + 30 * 10, 600_015.0 + 30 * 60]), np.array([3_268_500.0, 3_268_500.0])
    metres = sample_dem(_slope_dem(tmp_path / "m.tif"), xs, ys, "EPSG:32648", smoothing_m=0)
    np.testing.assert_allclose(metres, [200 + 0.08 * 300, 200 + 0.08 * 1800])
    feet = _slope_dem(tmp_path / "ft.tif", factor=1 / 0.3048)
    np.testing.assert_allclose(sample_dem(feet, xs, ys, "EPSG:32648", smoothing_m=0, vertical_units="ft"), metres)
    us = _slope_dem(tmp_path / "us.tif", factor=3937 / 1200)
    np.testing.assert_allclose(sample_dem(us, xs, ys, "EPSG:32648", smoothing_m=0, vertical_units="us_ft"), metres)
    tagged = _slope_dem(tmp_path / "tagged.tif", factor=1 / 0.3048, units="ft")  # the raster says feet
    np.testing.assert_allclose(sample_dem(tagged, xs, ys, "EPSG:32648", smoothing_m=0), metres)
    with pytest.raises(DataError, match=r"vertical_units = 'yards' is not a unit .* use m \(metres\), ft"):
        sample_dem(feet, xs, ys, "EPSG:32648", vertical_units="yards")
    odd = _slope_dem(tmp_path / "odd.tif", units="furlong")
    with pytest.warns(AccessibilityWarning, match="band unit 'furlong' is not a length unit"):
        sample_dem(odd, xs, ys, "EPSG:32648", smoothing_m=0)
    with pytest.warns(AccessibilityWarning, match=r"elevations 6,000 to 13,128 m are outside any on Earth"):
        sample_dem(_slope_dem(tmp_path / "cm.tif", factor=30.0), np.array([600_015.0, 602_985.0]),
                   np.array([3_268_500.0] * 2), "EPSG:32648", smoothing_m=0)


def test_street_grades_catch_a_dem_in_feet():
    """Review finding: a DEM in feet was accepted (509-2177 'm') and cut elderly-care coverage by 18 points."""
    rng = np.random.default_rng(15)
    length = rng.uniform(20, 200, 500)
    grade = np.abs(rng.normal(0, 0.06, 500))  # hilly streets, median about 4 %
    rise = grade * length * rng.choice([-1, 1], 500)
    steps = np.zeros(500, dtype=bool)
    assert check_grades(length, rise, steps, source="dem.tif") is None
    with pytest.warns(AccessibilityWarning) as rec:
        msg = check_grades(length, rise / 0.3048, steps, source="dem_ft.tif")
    assert msg == str(rec[0].message)
    assert msg.startswith("dem_ft.tif: the streets come out implausibly steep (median grade 13%")
    assert "sources.dem.options.vertical_units: ft" in msg
    # flights of steps are steep by nature: never counted
    assert check_grades(length, rise / 0.3048, np.ones(500, dtype=bool)) is None
