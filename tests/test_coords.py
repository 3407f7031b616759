"""Tests of accessibility.coords: published reference values, the real Jiangbei GCJ-02/WGS-84 pair,
round trips (hypothesis) and the out-of-China rule."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st
from pyproj import Geod

from accessibility import coords

REF = Path(__file__).resolve().parents[1] / "data" / "raw" / "jiangbei" / "reference"
GEOD = Geod(ellps="WGS84")


def _dist_m(lon1, lat1, lon2, lat2) -> np.ndarray:
    lon1, lat1, lon2, lat2 = np.broadcast_arrays(*(np.asarray(a, dtype=float) for a in (lon1, lat1, lon2, lat2)))
    return GEOD.inv(lon1, lat1, lon2, lat2)[2]


# --- published reference values ------------------------------------------------------------------
# WGS-84 -> GCJ-02 test vectors of googollee/eviltransform (also in its PHP/JS ports) and of
# wandergis/coordtransform (test/app.js); GCJ-02 <-> BD-09 from wandergis/coordtransform.

@pytest.mark.parametrize(
    ("wgs", "gcj"),
    [
        ((121.5272106, 31.1774276), (121.531541859215, 31.17530398364597)),  # Shanghai
        ((113.912316, 22.543847), (113.9171764808363, 22.540796131694766)),  # Shenzhen
        ((116.377817, 39.911954), (116.38404722455657, 39.91334545536069)),  # Beijing
        ((116.404, 39.915), (116.41024449916938, 39.91640428150164)),  # coordtransform
    ],
)
def test_wgs84_to_gcj02_published_values(wgs, gcj):
    lon, lat = coords.wgs84_to_gcj02(*wgs)
    assert lon == pytest.approx(gcj[0], abs=1e-12)
    assert lat == pytest.approx(gcj[1], abs=1e-12)
    # and the inverse recovers the WGS-84 point to well under a millimetre
    back = coords.gcj02_to_wgs84(*gcj)
    assert _dist_m(*back, *wgs) < 1e-4


def test_bd09_published_values():
    assert coords.gcj02_to_bd09(116.404, 39.915) == pytest.approx((116.41036949371029, 39.92133699351021), abs=1e-12)
    published = coords.bd09_to_gcj02(116.404, 39.915, refine=False)
    assert published == pytest.approx((116.39762729119315, 39.90865673957631), abs=1e-12)
    # the published inverse is off by a few cm; the refined one is exact and within 10 cm of it
    refined = coords.bd09_to_gcj02(116.404, 39.915)
    assert _dist_m(*coords.gcj02_to_bd09(*refined), 116.404, 39.915) < 1e-4
    assert 0.001 < _dist_m(*coords.gcj02_to_bd09(*published), 116.404, 39.915) < 0.1
    assert _dist_m(*refined, *published) < 0.1


def test_offset_in_chongqing_is_300_to_600_m():
    lon = np.array([106.57, 106.50, 106.75, 106.60])  # Jiangbei and around
    lat = np.array([29.58, 29.60, 29.65, 29.70])
    glon, glat = coords.wgs84_to_gcj02(lon, lat)
    d = _dist_m(lon, lat, glon, glat)
    assert np.all((d > 300) & (d < 600)), d
    assert np.all(glon > lon) and np.all(glat < lat)  # shifted east and south here


# --- the real pair: Amap's GCJ-02 outline of Jiangbei and cnmaps' WGS-84 conversion ---------------

def test_real_jiangbei_boundary_gcj02_to_wgs84_within_5_m():
    gcj = gpd.read_file(REF / "district_boundary_gcj02.geojson")
    wgs = gpd.read_file(REF / "district_boundary_wgs84.geojson")
    cg = shapely.get_coordinates(gcj.geometry.values)
    cw = shapely.get_coordinates(wgs.geometry.values)
    # the two files hold the same vertices in the same order (checked, so we compare pairwise)
    assert cg.shape == cw.shape == (1007, 2)
    raw = _dist_m(cg[:, 0], cg[:, 1], cw[:, 0], cw[:, 1])
    assert raw.min() > 300  # the files really differ by the GCJ offset
    lon, lat = coords.gcj02_to_wgs84(cg[:, 0], cg[:, 1])
    d = _dist_m(lon, lat, cw[:, 0], cw[:, 1])
    assert d.max() < 5.0, d.max()
    # and via to_wgs84 / transform_geometry on the geometry itself
    conv = coords.transform_geometry(gcj.geometry, lambda x, y: coords.to_wgs84(x, y, "gcj02"))
    cc = shapely.get_coordinates(conv.values)
    assert _dist_m(cc[:, 0], cc[:, 1], cw[:, 0], cw[:, 1]).max() < 5.0
    assert conv.crs == gcj.crs and conv.index.equals(gcj.index)
    # input untouched
    assert np.array_equal(shapely.get_coordinates(gcj.geometry.values), cg)


# --- round trips -----------------------------------------------------------------------------------

lons = st.floats(73.0, 135.0, allow_nan=False)
lats = st.floats(18.0, 53.0, allow_nan=False)


@settings(deadline=None, max_examples=200, derandomize=True)
@given(lons, lats)
def test_round_trip_wgs_gcj_wgs(lon, lat):
    back = coords.gcj02_to_wgs84(*coords.wgs84_to_gcj02(lon, lat))
    assert _dist_m(*back, lon, lat) < 1e-4  # 0.1 mm (1e-9 degree tolerance)


@settings(deadline=None, max_examples=200, derandomize=True)
@given(lons, lats)
def test_round_trip_wgs_bd_wgs(lon, lat):
    back = coords.bd09_to_wgs84(*coords.wgs84_to_bd09(lon, lat))
    assert _dist_m(*back, lon, lat) < 1e-4
    back2 = coords.to_wgs84(*coords.from_wgs84(lon, lat, "bd09"), "bd09")
    assert _dist_m(*back2, lon, lat) < 1e-4


def test_vectorised_matches_scalar():
    rng = np.random.default_rng(7)
    lon = rng.uniform(73, 135, 50)
    lat = rng.uniform(18, 53, 50)
    vx, vy = coords.gcj02_to_wgs84(lon, lat)
    assert vx.dtype == np.float64 and vx.shape == (50,)
    for i in (0, 17, 49):
        sx, sy = coords.gcj02_to_wgs84(lon[i], lat[i])
        assert sx == pytest.approx(vx[i], abs=1e-12) and sy == pytest.approx(vy[i], abs=1e-12)
    # 2-D arrays keep their shape; NaN stays NaN
    x2, _ = coords.wgs84_to_bd09(lon.reshape(5, 10), lat.reshape(5, 10))
    assert x2.shape == (5, 10)
    nx, ny = coords.gcj02_to_wgs84([np.nan, 106.5], [29.6, 29.6])
    assert np.isnan(nx[0]) and np.isfinite(nx[1])


# --- outside China ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("lon", "lat"), [(24.94, 60.17), (-0.1, 51.5), (139.7, 35.7), (100.5, 0.5)])
def test_out_of_china_unchanged(lon, lat):
    assert coords.out_of_china(lon, lat)
    assert coords.wgs84_to_gcj02(lon, lat) == (lon, lat)
    assert coords.gcj02_to_wgs84(lon, lat) == (lon, lat)
    assert coords.to_wgs84(lon, lat, "wgs84") == (lon, lat)


def test_unknown_system_names_allowed_values():
    with pytest.raises(ValueError, match="wgs84, gcj02, bd09"):
        coords.to_wgs84(106.5, 29.6, "baidu")
    with pytest.raises(ValueError, match="use one of"):
        coords.from_wgs84(106.5, 29.6, "mercator")
    # spelling variants are accepted
    assert coords.to_wgs84(106.5, 29.6, "GCJ-02") == coords.gcj02_to_wgs84(106.5, 29.6)


def test_transform_geometry_on_shapely_objects():
    poly = shapely.box(106.5, 29.5, 106.6, 29.6)
    out = coords.transform_geometry(poly, coords.wgs84_to_gcj02)
    c_in = shapely.get_coordinates(poly)
    c_out = shapely.get_coordinates(out)
    ex, ey = coords.wgs84_to_gcj02(c_in[:, 0], c_in[:, 1])
    np.testing.assert_allclose(c_out, np.column_stack([ex, ey]), atol=1e-12)
    arr = coords.transform_geometry(np.array([poly, shapely.Point(106.5, 29.5)]), coords.wgs84_to_gcj02)
    px, py = coords.wgs84_to_gcj02(106.5, 29.5)
    assert (arr[1].x, arr[1].y) == pytest.approx((px, py), abs=1e-12)
