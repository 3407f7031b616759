"""Population into cells: a WorldPop-style raster, census totals per unit, and the 60+ share.

Produces the ``Cells`` contract of DESIGN.md in the area's projected CRS::

    cell_id (int64, 0..n-1), population (float64), pop_60plus (float64), unit_code (str),
    geometry (Point at the cell centre)

Workflow (:func:`load_population`): :func:`cells_from_raster` (one cell per populated pixel,
assigned to units by point-in-polygon) -> :func:`spread_census` (rescale so every unit sums to its
census total) -> :func:`apply_age_share`. Without a raster, :func:`cells_from_grid` lays a regular
grid over the units and the census totals are spread evenly over it.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
from pyproj import CRS, Transformer

from accessibility._errors import (
    AccessibilityWarning,
    CRSMismatchError,
    DataError,
    problems_message,
)
from accessibility.config import Source

__all__ = [
    "CELL_COLUMNS",
    "apply_age_share",
    "cells_from_grid",
    "cells_from_raster",
    "check_codes_match",
    "check_raster_total",
    "load_population",
    "read_census",
    "spread_census",
]

log = logging.getLogger(__name__)

CELL_COLUMNS = ["cell_id", "population", "pop_60plus", "unit_code", "geometry"]


def _path_of(source) -> Path:
    return Path(source.path) if isinstance(source, Source) else Path(source)


def _assign_units(points: gpd.GeoDataFrame, units: gpd.GeoDataFrame) -> np.ndarray:
    """unit_code of the unit containing each point ('' for none); first match on shared edges."""
    joined = gpd.sjoin(points[["geometry"]], units[["unit_code", "geometry"]], how="left",
                       predicate="intersects")
    joined = joined[~joined.index.duplicated(keep="first")]
    codes = joined["unit_code"].reindex(points.index)
    return codes.fillna("").astype(str).to_numpy()


def _units_in(units: gpd.GeoDataFrame, crs) -> gpd.GeoDataFrame:
    if units.crs is None:
        raise CRSMismatchError("units have no CRS: read them with accessibility.units.read_units")
    return units if CRS.from_user_input(units.crs) == CRS.from_user_input(crs) else units.to_crs(crs)


def cells_from_raster(path: str | Path | Source, units: gpd.GeoDataFrame, crs, *, band: int = 1
                      ) -> gpd.GeoDataFrame:
    """One cell per populated pixel of a population raster, assigned to units.

    Only the window of the raster covering the units is read. Nodata, NaN and negative values are
    treated as no population. Each pixel with population > 0 becomes a point at the pixel centre,
    projected to ``crs`` and given the code of the unit that contains it. Cells in no unit are
    counted, warned about (with the population lost) and dropped.

    Parameters
    ----------
    path : str, Path or Source
        GeoTIFF (WorldPop style: people per pixel), any CRS.
    units : geopandas.GeoDataFrame
        The ``Units`` table.
    crs : CRS-like
        The area's projected CRS.
    band : int, default 1

    Returns
    -------
    geopandas.GeoDataFrame
        ``cell_id`` (0..n-1), ``population``, ``unit_code``, geometry (Point), in ``crs``.

    Raises
    ------
    CRSMismatchError
        The raster has no CRS.
    DataError
        Unreadable file, no overlap with the units, or no populated pixel inside any unit.
    """
    import rasterio
    from rasterio.transform import Affine
    from rasterio.windows import Window

    path = _path_of(path)
    units = _units_in(units, crs)
    if not path.exists():
        raise DataError(f"{path}: population raster not found: check 'sources.population.path'")
    try:
        ds = rasterio.open(path)
    except rasterio.errors.RasterioIOError as exc:
        raise DataError(f"{path}: cannot read the population raster ({exc}): supply a GeoTIFF") from exc
    with ds:
        if ds.crs is None:
            raise CRSMismatchError(
                f"{path}: the population raster has no CRS: set the CRS with "
                "`gdal_edit.py -a_srs EPSG:4326 FILE` or rasterio (`dst.crs = 'EPSG:4326'` in 'r+' mode)")
        if not 1 <= band <= ds.count:
            raise DataError(f"{path}: band {band} requested but the raster has {ds.count} band(s)")
        ub = units.to_crs(ds.crs).total_bounds
        rb = ds.bounds
        if ub[0] >= rb.right or ub[2] <= rb.left or ub[1] >= rb.top or ub[3] <= rb.bottom:
            raise DataError(
                f"{path}: the population raster (bounds {tuple(round(v, 6) for v in rb)} in {ds.crs}) "
                f"does not overlap the units (bounds {tuple(round(v, 6) for v in ub)}): use a raster "
                "of the study area, or check both CRSs")
        t = ds.transform
        inv = ~t
        bx = np.array([ub[0], ub[0], ub[2], ub[2]])
        by = np.array([ub[1], ub[3], ub[1], ub[3]])
        # affine applied by hand: rasterio's helpers use Affine '*', deprecated in affine >= 3
        fc = inv.a * bx + inv.b * by + inv.c
        fr = inv.d * bx + inv.e * by + inv.f
        col0 = max(int(np.floor(fc.min())) - 1, 0)
        row0 = max(int(np.floor(fr.min())) - 1, 0)
        col1 = min(int(np.ceil(fc.max())) + 1, ds.width)
        row1 = min(int(np.ceil(fr.max())) + 1, ds.height)
        if col1 <= col0 or row1 <= row0:
            raise DataError(f"{path}: the population raster does not overlap the units: use a raster of "
                            "the study area, or check both CRSs")
        window = Window(col0, row0, col1 - col0, row1 - row0)
        data = ds.read(band, window=window, masked=True)
        wt = Affine(t.a, t.b, t.a * col0 + t.b * row0 + t.c, t.d, t.e, t.d * col0 + t.e * row0 + t.f)
        src_crs = ds.crs
    raw = np.ma.getdata(data).astype(np.float64)
    valid = ~np.ma.getmaskarray(data)  # pixels the raster does not declare nodata
    values = np.where(valid, raw, np.nan)
    good = np.isfinite(values) & (values > 0)
    rows, cols = np.nonzero(good)
    pop = values[rows, cols]
    _warn_bad_pixels(path, raw, valid)
    if pop.size == 0:
        raise DataError(f"{path}: no pixel with population > 0 where the units are: check the raster "
                        "(nodata value, band) or use census totals with a grid (population kind: table)")
    # pixel centres through the affine transform (vectorised)
    cc, rr = cols + 0.5, rows + 0.5
    xs = wt.a * cc + wt.b * rr + wt.c
    ys = wt.d * cc + wt.e * rr + wt.f
    tr = Transformer.from_crs(src_crs, crs, always_xy=True)
    px, py = tr.transform(xs, ys)
    pts = gpd.GeoDataFrame({"population": pop}, geometry=gpd.points_from_xy(px, py), crs=crs)
    pts["unit_code"] = _assign_units(pts, units)
    outside = pts["unit_code"] == ""
    if outside.all():
        raise DataError(f"{path}: none of the {len(pts)} populated pixels near the units falls inside "
                        "a unit: check the raster and unit CRSs")
    if outside.any():
        lost = float(pts.loc[outside, "population"].sum())
        warnings.warn(
            f"{path}: {int(outside.sum())} populated cells ({lost:,.1f} people of "
            f"{float(pts['population'].sum()):,.1f} in the window) lie in no unit and are dropped "
            "(outside the district or in gaps between units; see check_partition)",
            AccessibilityWarning, stacklevel=2)
    cells = pts.loc[~outside].reset_index(drop=True)
    cells.insert(0, "cell_id", np.arange(len(cells), dtype=np.int64))
    cells.attrs["pixel_area_m2"] = _pixel_area_m2(wt, src_crs, float(np.mean(ys)) if ys.size else 0.0)
    log.info("%s: %d populated cells, %.1f people in %d units", path, len(cells),
             cells["population"].sum(), cells["unit_code"].nunique())
    return cells[["cell_id", "population", "unit_code", "geometry"]]


def _warn_bad_pixels(path: Path, raw: np.ndarray, valid: np.ndarray) -> None:
    """Negative or non-finite values that are not the raster's nodata: counted and warned about."""
    neg = valid & np.isfinite(raw) & (raw < 0)
    nonfinite = valid & ~np.isfinite(raw)
    if not (neg.any() or nonfinite.any()):
        return
    parts = []
    if neg.any():
        parts.append(f"{int(neg.sum()):,} negative pixel(s) summing to {float(raw[neg].sum()):,.0f} people")
    if nonfinite.any():
        parts.append(f"{int(nonfinite.sum()):,} NaN/infinite pixel(s)")
    warnings.warn(f"{path}: {' and '.join(parts)} (of {int(valid.sum()):,} pixels around the units) are not "
                  "population counts; they are counted as nobody. If they mean 'no data', declare the value as "
                  "the raster's nodata (e.g. `gdal_edit.py -a_nodata -99999 FILE`); otherwise fix the raster",
                  AccessibilityWarning, stacklevel=3)


def _pixel_area_m2(transform, crs, y_mid: float) -> float:
    area = abs(transform.a * transform.e - transform.b * transform.d)
    if CRS.from_user_input(crs).is_geographic:  # degrees
        area *= 111_320.0 * 110_574.0 * max(np.cos(np.radians(y_mid)), 1e-6)
    return float(area)


def check_raster_total(cells: gpd.GeoDataFrame, census: pd.DataFrame, *, raster: str, census_file: str,
                       factor: float = 1.5) -> str | None:
    """Warn, before rescaling, when the raster's people differ from the census by more than ``factor``.

    A raster in people per km² instead of people per pixel, another year, or another area all show
    up here; the cells are rescaled to the census either way (the message says so).

    Returns
    -------
    str or None
        The warning's text, None when the totals agree within ``factor``.

    Examples
    --------
    >>> cells = gpd.GeoDataFrame({"unit_code": ["1"], "population": [100.0]}, geometry=gpd.points_from_xy([0], [0]))
    >>> check_raster_total(cells, pd.DataFrame({"unit_code": ["1"], "population": [120.0]}),
    ...                    raster="pop.tif", census_file="census.csv") is None
    True
    """
    codes = set(cells["unit_code"].astype(str))
    counted = census[census["unit_code"].astype(str).isin(codes)]
    raster_total = float(cells["population"].sum())
    census_total = float(counted["population"].sum())
    if raster_total <= 0 or census_total <= 0:
        return None
    ratio = raster_total / census_total
    if 1 / factor <= ratio <= factor:
        return None
    hint = ""
    px_km2 = float(cells.attrs.get("pixel_area_m2", 0.0)) / 1e6
    if px_km2 > 0 and 0.5 < ratio * px_km2 < 2:
        hint = (f"; the ratio is close to 1 / pixel area ({1 / px_km2:,.0f} for {px_km2:g} km² pixels): the raster "
                "looks like people per km², not people per pixel")
    msg = (f"{raster}: the raster holds {raster_total:,.0f} people in the units, the census {census_file} "
           f"{census_total:,.0f} ({ratio:.2g} x){hint}; the cells are rescaled to the census totals: check that "
           "the raster counts people per pixel, for the census year and area")
    warnings.warn(msg, AccessibilityWarning, stacklevel=3)
    return msg


def check_codes_match(cells: gpd.GeoDataFrame, census: pd.DataFrame, *, census_file: str, units_file: str) -> None:
    """Refuse a census whose unit codes (almost) never match the units layer's, showing both sides.

    Raises
    ------
    DataError
        Fewer than half of the units with cells find their code in the census: names both files,
        shows a few codes of each and suggests the fix (e.g. 12-digit community codes whose first
        9 digits are the unit codes).
    """
    cell_codes = sorted(set(cells["unit_code"].astype(str)))
    census_codes = sorted(set(census["unit_code"].astype(str)))
    matched = set(cell_codes) & set(census_codes)
    if not cell_codes or len(matched) * 2 >= len(cell_codes):
        return
    def show(codes):
        lengths = sorted({len(c) for c in codes})
        return f"{', '.join(codes[:4])}{' ...' if len(codes) > 4 else ''} ({'/'.join(map(str, lengths))} digits)"
    fix = ("make the census' code column hold the units' codes, or point sources.census.columns.code at the column "
           "that does")
    longer = [c for c in census_codes if any(c.startswith(u) and len(c) > len(u) for u in cell_codes)]
    if longer:
        n = min(len(u) for u in cell_codes)
        fix = (f"the census codes are longer and begin with the unit codes (community/village level?): add the rows "
               f"up per unit (the first {n} digits of the code) and give one row per unit")
    raise DataError(f"{census_file}: the census unit codes do not match the units layer {units_file}: "
                    f"{len(matched)} of {len(cell_codes)} units found. Census codes: {show(census_codes)}; unit "
                    f"codes: {show(cell_codes)}. Fix: {fix}")


def cells_from_grid(units: gpd.GeoDataFrame, crs, *, size_m: float = 100.0) -> gpd.GeoDataFrame:
    """A regular grid of cell centres inside the units (population 0), for census-only areas.

    Centres sit at ``((i + 0.5) * size_m, (j + 0.5) * size_m)`` in ``crs``. A unit too small to
    contain any centre gets one cell at its representative point (logged), so every unit can
    receive its census total.

    Returns
    -------
    geopandas.GeoDataFrame
        ``cell_id``, ``population`` (0.0), ``unit_code``, geometry (Point), in ``crs``.
    """
    if not size_m > 0:
        raise ValueError(f"size_m must be > 0, got {size_m!r}")
    units = _units_in(units, crs)
    x0, y0, x1, y1 = units.total_bounds
    i = np.arange(np.floor(x0 / size_m), np.ceil(x1 / size_m))
    j = np.arange(np.floor(y0 / size_m), np.ceil(y1 / size_m))
    gx, gy = np.meshgrid((i + 0.5) * size_m, (j + 0.5) * size_m)
    pts = gpd.GeoDataFrame(geometry=gpd.points_from_xy(gx.ravel(), gy.ravel()), crs=crs)
    pts["unit_code"] = _assign_units(pts, units)
    pts = pts[pts["unit_code"] != ""]
    empty = sorted(set(units["unit_code"].astype(str)) - set(pts["unit_code"]))
    if empty:
        rep = units.set_index(units["unit_code"].astype(str)).loc[empty].representative_point()
        extra = gpd.GeoDataFrame({"unit_code": empty}, geometry=rep.to_numpy(), crs=crs)
        pts = pd.concat([pts, extra], ignore_index=True)
        log.info("grid of %g m: units %s hold no cell centre; one cell placed at their "
                 "representative point", size_m, ", ".join(empty))
    pts = pts.sort_values("unit_code", kind="stable").reset_index(drop=True)
    out = gpd.GeoDataFrame({"cell_id": np.arange(len(pts), dtype=np.int64),
                            "population": np.zeros(len(pts)),
                            "unit_code": pts["unit_code"].astype(str).to_numpy()},
                           geometry=pts.geometry.to_numpy(), crs=crs)
    return out


def spread_census(cells: gpd.GeoDataFrame, census: pd.DataFrame, *, code_col: str = "unit_code",
                  pop_col: str = "population") -> gpd.GeoDataFrame:
    """Rescale cell populations so each unit sums to its census total.

    Within a unit, every cell is multiplied by ``census / sum(cells)`` (the raster's spatial
    pattern is kept); the rounding residue goes to the unit's largest cell, so unit sums equal the
    census totals to floating-point precision. A unit with a census total but no populated cells
    gets the total spread evenly over its cells (logged). Units in the census without any cell,
    and units with cells but absent from the census (kept unchanged), are warned about.

    Parameters
    ----------
    cells : geopandas.GeoDataFrame
        Cells with ``unit_code`` and ``population``.
    census : pandas.DataFrame
        One row per unit: ``code_col`` and ``pop_col``.

    Returns
    -------
    geopandas.GeoDataFrame
        A copy of ``cells`` (same index) with ``population`` rescaled.
    """
    missing = [c for c in (code_col, pop_col) if c not in census.columns]
    if missing:
        raise DataError(f"census table lacks column(s) {', '.join(missing)} "
                        f"(has {', '.join(map(str, census.columns))}): rename them or pass code_col/pop_col")
    target = pd.Series(census[pop_col].to_numpy(dtype=np.float64),
                       index=census[code_col].astype(str).to_numpy())
    if target.index.duplicated().any():
        dup = target.index[target.index.duplicated()].unique().tolist()
        raise DataError(f"census table has duplicate unit codes {', '.join(dup)}: keep one row per unit")
    out = cells.copy()
    codes = out["unit_code"].astype(str).to_numpy()
    pop = out["population"].to_numpy(dtype=np.float64).copy()
    cell_units = pd.unique(codes)
    sums = pd.Series(pop).groupby(codes).sum()
    counts = pd.Series(codes).value_counts()

    no_cells = [c for c in target.index if c not in counts.index]
    lost = float(target[no_cells].sum()) if no_cells else 0.0
    if no_cells and lost > 0:
        warnings.warn(
            f"census units without any cell: {', '.join(no_cells)} ({lost:,.1f} people cannot be "
            "placed and are missing from the cells): check the unit codes of the census and units",
            AccessibilityWarning, stacklevel=2)
    not_in_census = [c for c in cell_units if c not in target.index]
    if not_in_census:
        kept = float(sums[not_in_census].sum())
        warnings.warn(
            f"units with cells but no census row: {', '.join(map(str, not_in_census))}; their raster "
            f"population ({kept:,.1f}) is kept unscaled: add them to the census table",
            AccessibilityWarning, stacklevel=2)

    for code in cell_units:
        if code not in target.index:
            continue
        idx = np.flatnonzero(codes == code)
        t = float(target[code])
        s = float(pop[idx].sum())
        if s > 0:
            new = pop[idx] * (t / s)
        else:
            new = np.full(idx.size, t / idx.size)
            if t > 0:
                log.info("unit %s: no populated cell; census total %.1f spread evenly over %d cells",
                         code, t, idx.size)
        k = int(np.argmax(new))
        new[k] += t - new.sum()
        pop[idx] = new
    out["population"] = pop
    log.info("census spread: %d units rescaled, total %.1f", len(set(cell_units) & set(target.index)),
             pop.sum())
    return out


def apply_age_share(cells: gpd.GeoDataFrame, shares: pd.Series | float, *, keep_share: bool = False
                    ) -> gpd.GeoDataFrame:
    """Add ``pop_60plus = population * share`` (share per unit or one for all).

    Parameters
    ----------
    cells : geopandas.GeoDataFrame
        Cells with ``population`` and ``unit_code``.
    shares : pandas.Series (index unit_code) or float
        Share of residents aged 60+, between 0 and 1.
    keep_share : bool, default False
        Also add the per-cell ``share_60plus`` column.

    Raises
    ------
    DataError
        A share outside 0-1, or units of the cells without a share.
    """
    out = cells.copy()
    if isinstance(shares, pd.Series):
        s = pd.Series(shares.to_numpy(dtype=np.float64), index=shares.index.astype(str))
        bad = s[(s < 0) | (s > 1) | s.isna()]
        if not bad.empty:
            raise DataError("60+ shares must be between 0 and 1: " + ", ".join(f"{k}: {v}" for k, v in bad.items())
                            + (" (values like 19.1 are percent: divide by 100)" if (bad > 1).any() else ""))
        per_cell = out["unit_code"].astype(str).map(s)
        miss = sorted(out.loc[per_cell.isna(), "unit_code"].astype(str).unique())
        if miss:
            raise DataError(f"no 60+ share for units {', '.join(miss)}: add them to the census "
                            "share column, or give one district-wide share")
        share = per_cell.to_numpy(dtype=np.float64)
    else:
        v = float(shares)
        if not 0 <= v <= 1:
            raise DataError(f"60+ share {v} is not between 0 and 1"
                            + (" (looks like percent: use 0.191 for 19.1 %)" if v > 1 else ""))
        share = np.full(len(out), v)
    out["pop_60plus"] = out["population"].to_numpy(dtype=np.float64) * share
    if keep_share:
        out["share_60plus"] = share
    return out


def read_census(source: Source | str | Path) -> pd.DataFrame:
    """Read a census table (CSV): one row per unit.

    ``source.columns`` maps ``code``, ``population`` and optionally ``share_60plus`` to the
    file's columns (defaults: unit_code or code, population, share_60plus if present).

    Returns
    -------
    pandas.DataFrame
        ``unit_code`` (str), ``population`` (float64) and, if present, ``share_60plus`` (float64).

    Raises
    ------
    DataError
        Listing every problem: missing columns, empty/duplicate codes, negative/missing/non-numeric
        populations, shares outside 0-1 (19.1 is recognised as percent); rows named by file line.
    """
    src = source if isinstance(source, Source) else Source(name="census", kind="table", path=Path(source),
                                                           status="real")
    path = src.path
    if path is None or not Path(path).exists():
        raise DataError(f"{path}: census table not found: check 'sources.{src.name}.path'")
    df = pd.read_csv(path, dtype=str, encoding="utf-8-sig", keep_default_na=False)
    cols = dict(src.columns)
    cols.setdefault("code", "unit_code" if "unit_code" in df.columns else "code")
    cols.setdefault("population", "population")
    if "share_60plus" not in cols and "share_60plus" in df.columns:
        cols["share_60plus"] = "share_60plus"
    problems = [f"column '{cols[k]}' ({k}) is missing; columns are {', '.join(df.columns)}: rename it or "
                f"set sources.{src.name}.columns.{k}"
                for k in ("code", "population", "share_60plus") if k in cols and cols[k] not in df.columns]
    if problems:
        raise DataError(problems_message(f"{path} (census)", problems))

    from accessibility.units import normalise_codes

    codes = normalise_codes(df[cols["code"]].to_numpy()).to_numpy()
    line = np.arange(len(df)) + 2  # header is line 1
    for i in np.flatnonzero(codes == ""):
        problems.append(f"line {line[i]}: empty code in '{cols['code']}'")
    dup = pd.Series(codes).duplicated(keep=False).to_numpy() & (codes != "")
    for c in pd.unique(codes[dup]):
        problems.append(f"code {c} appears on lines {', '.join(map(str, line[codes == c]))}: keep one row per unit")
    pop = pd.to_numeric(df[cols["population"]].str.replace(",", "").str.strip(), errors="coerce").to_numpy()
    for i in np.flatnonzero(np.isnan(pop)):
        problems.append(f"line {line[i]}: population {df[cols['population']].iloc[i]!r} is missing or not a number")
    for i in np.flatnonzero(pop < 0):
        problems.append(f"line {line[i]}: population {pop[i]:g} is negative")
    out = pd.DataFrame({"unit_code": codes, "population": pop.astype(np.float64)})
    if "share_60plus" in cols:
        raw = df[cols["share_60plus"]].str.replace("%", "").str.strip()
        share = pd.to_numeric(raw, errors="coerce").to_numpy()
        for i in np.flatnonzero(np.isnan(share) & (raw.to_numpy() != "")):
            problems.append(f"line {line[i]}: share_60plus {df[cols['share_60plus']].iloc[i]!r} is not a number")
        for i in np.flatnonzero(share < 0):
            problems.append(f"line {line[i]}: share_60plus {share[i]:g} is negative")
        for i in np.flatnonzero(share > 1):
            hint = (f": {share[i]:g} looks like a percentage, write it as a share ({share[i] / 100:g})"
                    if share[i] <= 100 else "")
            problems.append(f"line {line[i]}: share_60plus {share[i]:g} is outside 0-1{hint}")
        out["share_60plus"] = share.astype(np.float64)
    if problems:
        raise DataError(problems_message(f"{path} (census)", problems))
    out["unit_code"] = out["unit_code"].astype(str)
    return out


def _default_share_60plus(*sources) -> float | None:
    """``options.share_60plus`` of the first source that has it (``0.191`` or ``'19.1%'``), checked."""
    for s in sources:
        if s is None or s.options.get("share_60plus") is None:
            continue
        raw = s.options["share_60plus"]
        try:
            share = float(str(raw).strip().rstrip("%")) / (100.0 if str(raw).strip().endswith("%") else 1.0)
        except ValueError:
            raise DataError(f"{s.path}: options.share_60plus = {raw!r} is not a number: write a share "
                            "like 0.191 (or 19.1%)") from None
        if not 0.0 <= share <= 1.0:
            raise DataError(f"{s.path}: options.share_60plus = {raw!r} is not a share between 0 and 1: "
                            "write e.g. 0.191 (or 19.1%)")
        return share
    return None


def load_population(config, units: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Cells of a study area: raster, then census totals, then the 60+ share.

    - ``sources.population`` of kind ``raster`` -> :func:`cells_from_raster`; of kind ``table``
      (a census-like CSV) -> :func:`cells_from_grid` (``options.grid_m``, default 100) and its totals.
    - ``sources.census`` (optional) -> :func:`spread_census`.
    - the 60+ share: the census ``share_60plus`` column, filled where empty by
      ``options.share_60plus`` of the census or population source; else that option alone.
      Without any share and with a 60+ circle configured, :class:`DataError`; without a 60+ circle,
      ``pop_60plus`` is NaN.

    Returns
    -------
    geopandas.GeoDataFrame
        The ``Cells`` contract, ``cell_id`` 0..n-1.
    """
    crs = config.crs
    psrc = config.sources.get("population")
    csrc = config.sources.get("census")
    census = None
    if psrc is None:
        if csrc is None:
            raise DataError(f"{config.config_path}: no 'sources.population' and no 'sources.census': "
                            "add a population raster or a census table")
        cells = cells_from_grid(units, crs, size_m=float(csrc.options.get("grid_m", 100)))
    elif psrc.kind == "raster":
        cells = cells_from_raster(psrc, units, crs, band=int(psrc.options.get("band", 1)))
    else:
        census = read_census(psrc)
        cells = cells_from_grid(units, crs, size_m=float(psrc.options.get("grid_m", 100)))
    if csrc is not None:
        census = read_census(csrc)
    census_file = str((csrc or psrc).path) if census is not None else ""
    if census is not None:
        units_src = config.sources.get("units")
        check_codes_match(cells, census, census_file=census_file,
                          units_file=str(units_src.path) if units_src is not None and units_src.path else "(units)")
        if psrc is not None and psrc.kind == "raster":
            check_raster_total(cells, census, raster=str(psrc.path), census_file=census_file)
        cells = spread_census(cells, census)

    default = _default_share_60plus(csrc, psrc)
    if census is not None and "share_60plus" in census.columns:
        shares = census.set_index("unit_code")["share_60plus"]
        if shares.isna().any():
            if default is None:
                raise DataError(f"{census_file}: no share_60plus for {', '.join(shares.index[shares.isna()])}: fill "
                                "them or set options.share_60plus (e.g. 0.191) on the census source")
            shares = shares.fillna(default)
        known = set(shares.index)
        extra = sorted(set(cells["unit_code"].astype(str)) - known)
        if extra:
            if default is None:
                raise DataError(f"{census_file}: no share_60plus for units {', '.join(extra)} (no row with their "
                                "code): add their rows or set options.share_60plus on the census source")
            shares = pd.concat([shares, pd.Series(default, index=extra)])
        cells = apply_age_share(cells, shares)
    elif default is not None:
        cells = apply_age_share(cells, default)
    else:
        needs = [c.id for c in config.circles.values() if c.population == "60plus"]
        if needs:
            raise DataError(f"{config.config_path}: circles {', '.join(needs)} count residents aged 60+, but no "
                            "share is given: add a share_60plus column to the census or set "
                            "sources.census.options.share_60plus (e.g. 0.191)")
        cells = cells.copy()
        cells["pop_60plus"] = np.nan
    cells = cells.reset_index(drop=True)
    cells["cell_id"] = np.arange(len(cells), dtype=np.int64)
    cells["unit_code"] = cells["unit_code"].astype(str)
    return gpd.GeoDataFrame(cells[CELL_COLUMNS], geometry="geometry", crs=crs)
