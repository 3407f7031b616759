"""Terrain: DEM sampling, smoothed elevations, and the walking-speed functions.

In a hilly city the same street takes longer uphill than downhill. The network
stores, for every directed edge, the rise ``elev[v] - elev[u]`` taken from a *smoothed* DEM
(raw DEM noise invents ups and downs on flat streets), and the time models here turn length and
rise into seconds for one walking profile:

- ``tobler``: Tobler's hiking function ``v = 6 exp(-3.5 |s + 0.05|)`` km/h for grade ``s``,
  scaled so that the flat grade gives exactly the profile's flat speed (the ratio to the flat
  value is Tobler's: +9 % -> 73 %, +15 % -> 59 % of the flat speed);
- ``naismith``: flat time plus ``naismith_s_per_m_climb`` seconds per metre climbed;
- ``flat``: length over the flat speed (rise ignored).

Steps (``highway=steps``) are costed by the vertical: horizontal time at the flat speed plus
``steps_climb_s_per_m`` per metre climbed, or ``steps_descent_s_per_m`` per metre descended; a
profile with ``allow_steps = False`` cannot use them (infinite time).
"""

from __future__ import annotations

import logging
import math
import warnings
from pathlib import Path

import numpy as np

from accessibility._errors import AccessibilityWarning, CRSMismatchError, DataError
from accessibility.config import Profile, Terrain

__all__ = [
    "TOBLER_FLAT_KMH",
    "VERTICAL_UNITS",
    "check_grades",
    "edge_times",
    "naismith_time_s",
    "sample_dem",
    "tobler_speed_mps",
]

logger = logging.getLogger(__name__)

#: Metres per DEM unit, by the names a configuration (``sources.dem.options.vertical_units``) or a
#: raster's band unit may use.
VERTICAL_UNITS = {
    "m": 1.0, "metre": 1.0, "metres": 1.0, "meter": 1.0, "meters": 1.0,
    "ft": 0.3048, "foot": 0.3048, "feet": 0.3048, "international foot": 0.3048,
    "us_ft": 1200 / 3937, "us survey foot": 1200 / 3937, "ftus": 1200 / 3937,
}

#: Streets steeper than this median |grade| (or with more than ``_STEEP_SHARE`` of them above 25 %)
#: do not exist even in a mountain city (the demo's hills: median 5 %, 1 % above 25 %); elevations in feet
#: read as metres make grades 3.28 x steeper (median 17 %, 32 % above 25 %).
_MEDIAN_GRADE_MAX = 0.12
_STEEP_SHARE = 0.15

#: Tobler's speed on the flat, ``6 exp(-0.175)`` = 5.036 km/h (quoted as 5.04 km/h).
TOBLER_FLAT_KMH = 6.0 * math.exp(-3.5 * 0.05)


def tobler_speed_mps(grade, flat_speed_mps: float) -> np.ndarray:
    """Walking speed on a grade by Tobler's hiking function, scaled to a profile.

    Parameters
    ----------
    grade : array_like
        Rise over run (0.09 is +9 %, negative is downhill).
    flat_speed_mps : float
        The profile's speed on the flat, m/s.

    Returns
    -------
    numpy.ndarray
        Speed in m/s; equals ``flat_speed_mps`` at grade 0 and peaks (x 1.19) at -5 %.
    """
    s = np.asarray(grade, dtype=float)
    kmh = 6.0 * np.exp(-3.5 * np.abs(s + 0.05))
    return kmh / TOBLER_FLAT_KMH * float(flat_speed_mps)


def naismith_time_s(length_m, rise_m, flat_speed_mps: float, s_per_m_climb: float = 6.0) -> np.ndarray:
    """Naismith's rule: flat time plus ``s_per_m_climb`` seconds per metre climbed.

    Parameters
    ----------
    length_m, rise_m : array_like
        Horizontal length and rise (negative = descent, which costs nothing extra).
    flat_speed_mps : float
        Speed on the flat, m/s.
    s_per_m_climb : float, default 6.0
        Seconds added per metre of ascent (Naismith: 1 h per 600 m).

    Returns
    -------
    numpy.ndarray
        Time in seconds.
    """
    length = np.asarray(length_m, dtype=float)
    rise = np.asarray(rise_m, dtype=float)
    return length / float(flat_speed_mps) + float(s_per_m_climb) * np.clip(rise, 0.0, None)


def edge_times(length_m, rise_m, is_steps, profile: Profile, terrain: Terrain) -> np.ndarray:
    """Walking time of directed edges for one profile and terrain model.

    Parameters
    ----------
    length_m : array_like
        Horizontal edge lengths, metres (> 0).
    rise_m : array_like
        ``elev[v] - elev[u]``, metres; NaN is read as 0 (no elevation known).
    is_steps : array_like of bool
        Whether the edge is a flight of steps.
    profile : Profile
        Flat speed and whether steps are allowed.
    terrain : Terrain
        Model (``tobler``, ``naismith``, ``flat``), grade clip and step costs.

    Returns
    -------
    numpy.ndarray
        Seconds per edge; ``inf`` for steps when ``profile.allow_steps`` is False.
    """
    length = np.asarray(length_m, dtype=float)
    rise = np.nan_to_num(np.asarray(rise_m, dtype=float), nan=0.0)
    steps = np.asarray(is_steps, dtype=bool)
    v0 = float(profile.flat_speed_mps)
    if terrain.model == "flat":
        rise = np.zeros_like(rise)
    if terrain.model == "tobler":
        with np.errstate(divide="ignore", invalid="ignore"):
            grade = np.where(length > 0, rise / np.where(length > 0, length, 1.0), 0.0)
        grade = np.clip(grade, -terrain.max_abs_grade, terrain.max_abs_grade)
        t = length / tobler_speed_mps(grade, v0)
    elif terrain.model == "naismith":
        t = naismith_time_s(length, rise, v0, terrain.naismith_s_per_m_climb)
    elif terrain.model == "flat":
        t = length / v0
    else:  # config validation refuses other models; guard programmatic use
        raise ValueError(f"unknown terrain model {terrain.model!r}: use tobler, naismith or flat")
    # the per-metre stair costs are for a walker at steps_reference_speed_mps; slower profiles
    # (older people) climb and descend proportionally slower
    slow = terrain.steps_reference_speed_mps / v0
    step_t = (
        length / v0
        + slow * terrain.steps_climb_s_per_m * np.clip(rise, 0.0, None)
        + slow * terrain.steps_descent_s_per_m * np.clip(-rise, 0.0, None)
    )
    t = np.where(steps, step_t, t)
    if not profile.allow_steps:
        t = np.where(steps, np.inf, t)
    return t


def _nan_gaussian(data: np.ndarray, sigma: tuple[float, float]) -> np.ndarray:
    """Gaussian filter that ignores NaN (normalised convolution); all-NaN neighbourhoods stay NaN."""
    from scipy.ndimage import gaussian_filter

    valid = np.isfinite(data)
    filled = np.where(valid, data, 0.0)
    num = gaussian_filter(filled, sigma=sigma, mode="nearest", truncate=3.0)
    den = gaussian_filter(valid.astype(float), sigma=sigma, mode="nearest", truncate=3.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = num / den
    out[den < 1e-6] = np.nan
    return out


def _metres_per_unit(path: Path, declared: str | None, band_unit: str | None) -> float:
    """The DEM's vertical unit: declared in the configuration, else the raster's band unit, else metres."""
    if declared is not None:
        key = str(declared).strip().lower()
        if key not in VERTICAL_UNITS:
            raise DataError(f"{path}: sources.dem.options.vertical_units = {declared!r} is not a unit this tool "
                            "knows: use m (metres), ft (international feet) or us_ft (US survey feet)")
        return VERTICAL_UNITS[key]
    key = (band_unit or "").strip().lower()
    if not key:
        return 1.0  # no unit in the file: metres (SRTM, ASTER, Copernicus DEMs all are)
    if key in VERTICAL_UNITS:
        if VERTICAL_UNITS[key] != 1.0:
            logger.info("%s: the raster's band unit is %r: elevations converted to metres", path, band_unit)
        return VERTICAL_UNITS[key]
    warnings.warn(f"{path}: the DEM's band unit {band_unit!r} is not a length unit this tool knows: elevations "
                  "are read as metres (declare sources.dem.options.vertical_units: m | ft | us_ft)",
                  AccessibilityWarning, stacklevel=3)
    return 1.0


def check_grades(length_m, rise_m, is_steps, *, source: str = "the DEM", min_length_m: float = 20.0) -> str | None:
    """Warn when street grades are too steep to be real: a DEM in feet read as metres, typically.

    Parameters
    ----------
    length_m, rise_m : array_like
        Edge lengths and DEM rises (metres).
    is_steps : array_like of bool
        Flights of steps are left out (they are steep).
    source : str
        The DEM file, named in the message.
    min_length_m : float, default 20
        Shorter segments are left out (their grades are noisy).

    Returns
    -------
    str or None
        The warning's text (also warned as :class:`AccessibilityWarning`), None when plausible.

    Examples
    --------
    >>> check_grades([100.0, 100.0], [5.0, -4.0], [False, False]) is None
    True
    """
    length = np.asarray(length_m, dtype=float)
    rise = np.asarray(rise_m, dtype=float)
    sel = ~np.asarray(is_steps, dtype=bool) & (length >= min_length_m) & np.isfinite(rise)
    if sel.sum() < 20:
        return None
    grade = np.abs(rise[sel] / length[sel])
    median, steep = float(np.median(grade)), float(np.mean(grade > 0.25))
    if median <= _MEDIAN_GRADE_MAX and steep <= _STEEP_SHARE:
        return None
    msg = (f"{source}: the streets come out implausibly steep (median grade {median:.0%}, {steep:.0%} of the "
           f"segments steeper than 25 %; a hilly city has about 5 % and 1 %): if the DEM is in feet, declare "
           "it (sources.dem.options.vertical_units: ft), or check that it holds elevations in metres")
    warnings.warn(msg, AccessibilityWarning, stacklevel=2)
    return msg


def sample_dem(path, x, y, crs, *, smoothing_m: float = 60.0, vertical_units: str | None = None) -> np.ndarray:
    """Elevation in metres at points from a smoothed GeoTIFF DEM (bilinear).

    Parameters
    ----------
    path : str or Path
        A single-band DEM raster in any CRS (it must declare one).
    x, y : array_like
        Point coordinates in ``crs``.
    crs : anything pyproj accepts
        CRS of ``x``/``y`` (the area's projected CRS).
    smoothing_m : float, default 60
        Gaussian sigma in metres applied before sampling (0 = no smoothing). Nodata is ignored
        by the filter (normalised convolution).
    vertical_units : {"m", "ft", "us_ft"}, optional
        The DEM's vertical unit (``sources.dem.options.vertical_units``); default the raster's
        band unit where it declares one, else metres. Elevations are converted to metres.
        Elevations no place on Earth has (above 8,900 m, below -450 m) are warned about.

    Returns
    -------
    numpy.ndarray
        Elevation in metres, NaN for points outside the DEM (warned once, with the count).

    Raises
    ------
    CRSMismatchError
        If the raster has no CRS.
    DataError
        If the file cannot be read.
    """
    import rasterio
    from pyproj import CRS, Transformer
    from scipy.ndimage import map_coordinates

    path = Path(path)
    xs = np.asarray(x, dtype=float)
    ys = np.asarray(y, dtype=float)
    try:
        src = rasterio.open(path)
    except Exception as exc:  # rasterio raises RasterioIOError
        raise DataError(f"{path}: cannot read the DEM ({exc}): give a GeoTIFF with one elevation band") from exc
    with src:
        if src.crs is None:
            raise CRSMismatchError(
                f"{path}: the DEM has no CRS: assign one (e.g. `gdal_edit.py -a_srs EPSG:4326 {path.name}` "
                "or rasterio `dst.crs = ...`) before using it"
            )
        rcrs = CRS.from_user_input(src.crs.to_wkt())
        factor = _metres_per_unit(path, vertical_units, src.units[0] if src.units else None)
        band = src.read(1, masked=True).astype(float) * factor
        data = band.filled(np.nan)
        transform = src.transform
        height, width = src.height, src.width
    res_x, res_y = abs(transform.a), abs(transform.e)
    tr = Transformer.from_crs(CRS.from_user_input(crs), rcrs, always_xy=True)
    rx, ry = tr.transform(xs, ys)
    rx = np.asarray(rx, dtype=float)
    ry = np.asarray(ry, dtype=float)
    if smoothing_m and smoothing_m > 0:
        if rcrs.is_geographic:  # degrees: convert the pixel size to metres at the data's latitude
            lat = float(np.nanmean(ry)) if np.isfinite(ry).any() else 0.0
            px_x = res_x * 111_320.0 * max(math.cos(math.radians(lat)), 1e-6)
            px_y = res_y * 110_574.0
        else:
            px_x, px_y = res_x, res_y
        data = _nan_gaussian(data, (smoothing_m / px_y, smoothing_m / px_x))
    inv = ~transform
    col = inv.a * rx + inv.b * ry + inv.c - 0.5  # pixel centres at integer coordinates
    row = inv.d * rx + inv.e * ry + inv.f - 0.5
    inside = (col >= -0.5) & (col <= width - 0.5) & (row >= -0.5) & (row <= height - 0.5)
    inside &= np.isfinite(col) & np.isfinite(row)
    elev = np.full(xs.shape, np.nan)
    if inside.any():
        coords = np.vstack([np.clip(row[inside], 0, height - 1), np.clip(col[inside], 0, width - 1)])
        elev[inside] = map_coordinates(data, coords, order=1, mode="nearest", prefilter=False)
    n_out = int((~inside).sum())
    if n_out:
        warnings.warn(
            f"{n_out} of {xs.size} points (network nodes) lie outside the DEM {path}: the DEM does not "
            "cover the area; their elevation is unknown and their edges are treated as flat "
            "(use a DEM that covers the whole study area)",
            AccessibilityWarning,
            stacklevel=2,
        )
    n_nan = int((inside & ~np.isfinite(elev)).sum())
    if n_nan and n_nan >= 0.5 * max(int(inside.sum()), 1):
        # most of the area on nodata: the run would silently be a flat-terrain run
        warnings.warn(f"{n_nan} of {int(inside.sum())} points inside the DEM {path} fall on nodata: their "
                      "edges are treated as flat (check the DEM's nodata value and that it holds elevations "
                      "for the study area)", AccessibilityWarning, stacklevel=2)
    elif n_nan:
        logger.info("%d points fall on DEM nodata in %s; treated as flat", n_nan, path)
    _check_elevation_range(elev, path)
    return elev


def _check_elevation_range(elev: np.ndarray, path: Path) -> None:
    ok = elev[np.isfinite(elev)]
    if ok.size and (ok.max() > 8_900 or ok.min() < -450):
        warnings.warn(f"{path}: elevations {ok.min():,.0f} to {ok.max():,.0f} m are outside any on Earth: check the "
                      "DEM's unit (sources.dem.options.vertical_units: m | ft | us_ft) and its nodata value",
                      AccessibilityWarning, stacklevel=3)
