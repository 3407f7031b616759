"""Chinese map coordinate systems: WGS-84, GCJ-02 ("Mars", Amap/Tencent) and BD-09 (Baidu).

All functions are pure and vectorised with numpy: they take scalars or array-likes of longitudes
and latitudes (degrees) and return float64 arrays of the same shape (0-d inputs give numpy floats).
NaN coordinates stay NaN.

- WGS-84 -> GCJ-02 is the published (leaked) obfuscation formula on the Krasovsky ellipsoid;
  points outside the rough bounding box of China are returned unchanged (the standard
  "out of China" test), as every Chinese map provider does.
- GCJ-02 -> WGS-84 has no closed form; it is solved by fixed-point iteration
  ``x <- x - (f(x) - target)`` from the simple subtraction, to ``tol_deg`` (default 1e-9 degrees,
  about 0.1 mm), which converges in a handful of steps because ``f`` is a small smooth shift.
- GCJ-02 <-> BD-09 are Baidu's published formulas. The published BD-09 -> GCJ-02 formula is only an
  approximate inverse (errors of a few centimetres); :func:`bd09_to_gcj02` refines it by the same
  fixed-point iteration unless ``refine=False``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import shapely

__all__ = [
    "SYSTEMS",
    "bd09_to_gcj02",
    "bd09_to_wgs84",
    "from_wgs84",
    "gcj02_to_bd09",
    "gcj02_to_wgs84",
    "out_of_china",
    "to_wgs84",
    "transform_geometry",
    "wgs84_to_bd09",
    "wgs84_to_gcj02",
]

SYSTEMS = ("wgs84", "gcj02", "bd09")

# Krasovsky 1940 ellipsoid, as used by the GCJ-02 formula.
_A = 6378245.0
_EE = 0.00669342162296594323
_X_PI = np.pi * 3000.0 / 180.0


def _arrays(lon, lat) -> tuple[np.ndarray, np.ndarray]:
    lon = np.asarray(lon, dtype=np.float64)
    lat = np.asarray(lat, dtype=np.float64)
    if lon.shape != lat.shape:
        lon, lat = np.broadcast_arrays(lon, lat)
    return lon, lat


def _out(a: np.ndarray):
    """Return 0-d arrays as numpy floats, others as arrays."""
    return a[()] if a.ndim == 0 else a


def out_of_china(lon, lat) -> np.ndarray:
    """True where a point lies outside the rough bounding box in which GCJ-02 applies.

    Parameters
    ----------
    lon, lat : float or array_like
        Degrees.

    Returns
    -------
    numpy.ndarray of bool
    """
    lon, lat = _arrays(lon, lat)
    return _out((lon < 72.004) | (lon > 137.8347) | (lat < 0.8293) | (lat > 55.8271))


def _transform_lat(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    ret = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * np.sqrt(np.abs(x))
    ret += (20.0 * np.sin(6.0 * x * np.pi) + 20.0 * np.sin(2.0 * x * np.pi)) * 2.0 / 3.0
    ret += (20.0 * np.sin(y * np.pi) + 40.0 * np.sin(y / 3.0 * np.pi)) * 2.0 / 3.0
    ret += (160.0 * np.sin(y / 12.0 * np.pi) + 320.0 * np.sin(y * np.pi / 30.0)) * 2.0 / 3.0
    return ret


def _transform_lon(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    ret = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * np.sqrt(np.abs(x))
    ret += (20.0 * np.sin(6.0 * x * np.pi) + 20.0 * np.sin(2.0 * x * np.pi)) * 2.0 / 3.0
    ret += (20.0 * np.sin(x * np.pi) + 40.0 * np.sin(x / 3.0 * np.pi)) * 2.0 / 3.0
    ret += (150.0 * np.sin(x / 12.0 * np.pi) + 300.0 * np.sin(x / 30.0 * np.pi)) * 2.0 / 3.0
    return ret


def _gcj_offset(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """GCJ-02 minus WGS-84 (degrees) at a WGS-84 point; zero outside China."""
    dlat = _transform_lat(lon - 105.0, lat - 35.0)
    dlon = _transform_lon(lon - 105.0, lat - 35.0)
    radlat = lat / 180.0 * np.pi
    magic = 1.0 - _EE * np.sin(radlat) ** 2
    sqrtmagic = np.sqrt(magic)
    dlat = (dlat * 180.0) / ((_A * (1.0 - _EE)) / (magic * sqrtmagic) * np.pi)
    dlon = (dlon * 180.0) / (_A / sqrtmagic * np.cos(radlat) * np.pi)
    outside = (lon < 72.004) | (lon > 137.8347) | (lat < 0.8293) | (lat > 55.8271)
    return np.where(outside, 0.0, dlon), np.where(outside, 0.0, dlat)


def wgs84_to_gcj02(lon, lat):
    """Convert WGS-84 to GCJ-02 (exact published formula; unchanged outside China).

    Parameters
    ----------
    lon, lat : float or array_like
        WGS-84 degrees.

    Returns
    -------
    (lon, lat) : tuple of numpy.ndarray (float64)
        GCJ-02 degrees.
    """
    lon, lat = _arrays(lon, lat)
    dlon, dlat = _gcj_offset(lon, lat)
    return _out(lon + dlon), _out(lat + dlat)


def _invert(forward: Callable, lon: np.ndarray, lat: np.ndarray, x: np.ndarray, y: np.ndarray,
            tol_deg: float, max_iter: int) -> tuple[np.ndarray, np.ndarray]:
    """Solve forward(x, y) == (lon, lat) by fixed-point iteration from (x, y)."""
    for _ in range(max_iter):
        fx, fy = forward(x, y)
        dx = np.asarray(fx) - lon
        dy = np.asarray(fy) - lat
        x = x - dx
        y = y - dy
        delta = np.maximum(np.abs(dx), np.abs(dy))
        if delta.size == 0 or not np.any(delta[np.isfinite(delta)] >= tol_deg):
            break
    return x, y


def gcj02_to_wgs84(lon, lat, *, tol_deg: float = 1e-9, max_iter: int = 30):
    """Convert GCJ-02 to WGS-84 by iterating the forward formula.

    Starts from ``target - offset(target)`` and repeats ``x <- x - (wgs84_to_gcj02(x) - target)``
    until the largest correction is below ``tol_deg``. Points outside China are unchanged.

    Parameters
    ----------
    lon, lat : float or array_like
        GCJ-02 degrees.
    tol_deg : float, default 1e-9
        Stop when every correction is smaller than this (1e-9 degrees is about 0.1 mm).
    max_iter : int, default 30
        Upper bound on the number of iterations (5-6 are enough in practice).

    Returns
    -------
    (lon, lat) : tuple of numpy.ndarray (float64)
        WGS-84 degrees.
    """
    lon, lat = _arrays(lon, lat)
    dlon, dlat = _gcj_offset(lon, lat)
    x, y = _invert(wgs84_to_gcj02, lon, lat, lon - dlon, lat - dlat, tol_deg, max_iter)
    outside = (lon < 72.004) | (lon > 137.8347) | (lat < 0.8293) | (lat > 55.8271)
    return _out(np.where(outside, lon, x)), _out(np.where(outside, lat, y))


def gcj02_to_bd09(lon, lat):
    """Convert GCJ-02 to BD-09 (Baidu's published formula).

    Parameters
    ----------
    lon, lat : float or array_like
        GCJ-02 degrees.

    Returns
    -------
    (lon, lat) : tuple of numpy.ndarray (float64)
        BD-09 degrees.
    """
    x, y = _arrays(lon, lat)
    z = np.sqrt(x * x + y * y) + 0.00002 * np.sin(y * _X_PI)
    theta = np.arctan2(y, x) + 0.000003 * np.cos(x * _X_PI)
    return _out(z * np.cos(theta) + 0.0065), _out(z * np.sin(theta) + 0.006)


def bd09_to_gcj02(lon, lat, *, refine: bool = True, tol_deg: float = 1e-9, max_iter: int = 30):
    """Convert BD-09 to GCJ-02.

    Parameters
    ----------
    lon, lat : float or array_like
        BD-09 degrees.
    refine : bool, default True
        Refine Baidu's published approximate inverse by fixed-point iteration on
        :func:`gcj02_to_bd09` so that the round trip is exact to ``tol_deg``. ``False`` returns the
        published formula (differences are a few centimetres).
    tol_deg, max_iter
        As in :func:`gcj02_to_wgs84`.

    Returns
    -------
    (lon, lat) : tuple of numpy.ndarray (float64)
        GCJ-02 degrees.
    """
    bx, by = _arrays(lon, lat)
    x = bx - 0.0065
    y = by - 0.006
    z = np.sqrt(x * x + y * y) - 0.00002 * np.sin(y * _X_PI)
    theta = np.arctan2(y, x) - 0.000003 * np.cos(x * _X_PI)
    gx, gy = z * np.cos(theta), z * np.sin(theta)
    if refine:
        gx, gy = _invert(gcj02_to_bd09, bx, by, gx, gy, tol_deg, max_iter)
    return _out(gx), _out(gy)


def bd09_to_wgs84(lon, lat, *, tol_deg: float = 1e-9, max_iter: int = 30):
    """Convert BD-09 to WGS-84 (BD-09 -> GCJ-02 -> WGS-84)."""
    gx, gy = bd09_to_gcj02(lon, lat, tol_deg=tol_deg, max_iter=max_iter)
    return gcj02_to_wgs84(gx, gy, tol_deg=tol_deg, max_iter=max_iter)


def wgs84_to_bd09(lon, lat):
    """Convert WGS-84 to BD-09 (WGS-84 -> GCJ-02 -> BD-09)."""
    return gcj02_to_bd09(*wgs84_to_gcj02(lon, lat))


def _system(system: str) -> str:
    key = str(system).lower().replace("-", "").replace("_", "")
    if key not in SYSTEMS:
        raise ValueError(f"unknown coordinate system {system!r}: use one of {', '.join(SYSTEMS)}")
    return key


def _convert(lon, lat, system: str, functions: dict):
    func = functions.get(_system(system))
    if func is not None:
        return func(lon, lat)
    lon, lat = _arrays(lon, lat)  # WGS-84 to WGS-84: a copy
    return _out(lon.copy()), _out(lat.copy())


def to_wgs84(lon, lat, system: str):
    """Convert coordinates given in ``system`` ('wgs84', 'gcj02' or 'bd09') to WGS-84.

    Raises
    ------
    ValueError
        For an unknown system (the message lists the allowed values).
    """
    return _convert(lon, lat, system, {"gcj02": gcj02_to_wgs84, "bd09": bd09_to_wgs84})


def from_wgs84(lon, lat, system: str):
    """Convert WGS-84 coordinates to ``system`` ('wgs84', 'gcj02' or 'bd09').

    Raises
    ------
    ValueError
        For an unknown system (the message lists the allowed values).
    """
    return _convert(lon, lat, system, {"gcj02": wgs84_to_gcj02, "bd09": wgs84_to_bd09})


def transform_geometry(geom, func: Callable):
    """Apply a ``(lon, lat) -> (lon, lat)`` function to every vertex of shapely geometries.

    Parameters
    ----------
    geom : shapely geometry, array of geometries, GeoSeries or GeoDataFrame
        Geometries in geographic degrees.
    func : callable
        E.g. :func:`wgs84_to_gcj02`; receives two 1-D float64 arrays.

    Returns
    -------
    Same kind as ``geom`` (a new object; the input is not modified). A GeoSeries/GeoDataFrame keeps
    its index, columns and CRS label.
    """

    def _f(x, y):
        fx, fy = func(x, y)
        return np.asarray(fx, dtype=np.float64), np.asarray(fy, dtype=np.float64)

    try:
        import geopandas as gpd
    except ImportError:  # pragma: no cover - geopandas is a core dependency
        gpd = None
    if gpd is not None and isinstance(geom, gpd.GeoDataFrame):
        out = geom.copy()
        out[geom.geometry.name] = transform_geometry(geom.geometry, func)
        return out
    if gpd is not None and isinstance(geom, gpd.GeoSeries):
        values = shapely.transform(np.asarray(geom.values, dtype=object), _f, interleaved=False)
        return gpd.GeoSeries(values, index=geom.index, crs=geom.crs, name=geom.name)
    return shapely.transform(geom, _f, interleaved=False)
