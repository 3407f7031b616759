"""Street/town (unit) polygons and the district boundary.

Reads GeoJSON, Shapefile or GeoPackage in any CRS (including CGCS2000, EPSG:4490, which pyproj
transforms as its own datum) and returns the ``Units`` contract of DESIGN.md in the area's
projected CRS::

    unit_code (str), unit_name, unit_name_en, unit_kind ('街道'/'镇' or ''), geometry

Unit codes are any unique strings; with ``codes="cn_official"`` (the area's ``unit_codes:
cn_official``) they must be China's 9-digit official codes (统计用区划代码) and a unit whose kind
(street 街道 / town 镇) cannot be told is warned about.

:func:`check_partition` reports how well the units tile the district (gaps, overlaps, area
outside the boundary).
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import CRS

from accessibility._errors import (
    AccessibilityWarning,
    CRSMismatchError,
    DataError,
    problems_message,
)
from accessibility.config import Source

__all__ = [
    "UNIT_COLUMNS",
    "check_partition",
    "normalise_codes",
    "read_boundary",
    "read_unit_table",
    "read_units",
    "unit_kind_from_name",
    "units_from_osm_admin",
]

log = logging.getLogger(__name__)

UNIT_COLUMNS = ["unit_code", "unit_name", "unit_name_en", "unit_kind", "geometry"]

# Fields tried, in order, when ``source.columns`` does not name them.
_DEFAULT_FIELDS = {
    "code": ("unit_code", "code", "adcode", "ref:NBS", "ref", "CODE", "XZQDM", "ADCODE"),
    "name": ("unit_name", "name", "name:zh", "NAME", "XZQMC"),
    "name_en": ("unit_name_en", "name_en", "name:en", "NAME_EN"),
    "kind": ("unit_kind", "kind"),
}
_KIND_WORDS = {
    "街道": "街道", "subdistrict": "街道", "street": "街道", "jiedao": "街道",
    "镇": "镇", "乡": "镇", "town": "镇", "township": "镇", "zhen": "镇", "xiang": "镇",
}


def _as_source(source: Source | str | Path, name: str, kind: str = "vector") -> Source:
    if isinstance(source, Source):
        return source
    return Source(name=name, kind=kind, path=Path(source), status="real")


def _read_vector(src: Source, crs) -> gpd.GeoDataFrame:
    """Read a vector file, refuse a missing CRS, undo GCJ/BD coordinates, project to ``crs``."""
    path = src.path
    if path is None or not Path(path).exists():
        raise DataError(f"{path}: {src.name} file not found: check 'sources.{src.name}.path'")
    kwargs = {}
    if src.options.get("layer") is not None:
        kwargs["layer"] = src.options["layer"]
    try:
        gdf = gpd.read_file(path, **kwargs)
    except Exception as exc:  # pyogrio raises DataSourceError / DataLayerError
        raise DataError(f"{path}: cannot read {src.name} as a vector file ({exc}): use GeoJSON, "
                        "Shapefile or GeoPackage (name the layer in options.layer)") from exc
    if gdf.crs is None:
        raise CRSMismatchError(
            f"{path}: the {src.name} layer has no CRS: write the file with its CRS "
            "(e.g. in Python `gdf.set_crs('EPSG:4326').to_file(...)`, or with "
            "`ogr2ogr -a_srs EPSG:4326 out.gpkg in.shp`); a Shapefile needs its .prj"
        )
    if src.coords != "wgs84":
        if not CRS.from_user_input(gdf.crs).is_geographic:
            raise CRSMismatchError(
                f"{path}: 'sources.{src.name}.coords' is {src.coords!r} but the file is in a "
                f"projected CRS ({gdf.crs}): GCJ-02/BD-09 apply to longitude/latitude only; "
                "set coords: wgs84 or supply the file in degrees")
        from accessibility.coords import to_wgs84, transform_geometry

        gdf = transform_geometry(gdf, lambda x, y: to_wgs84(x, y, src.coords))
        log.info("%s: converted %s coordinates to WGS-84", path, src.coords)
    if CRS.from_user_input(gdf.crs).is_geographic and len(gdf):
        xmin, ymin, xmax, ymax = gdf.total_bounds
        if not (np.isfinite([xmin, ymin, xmax, ymax]).all() and xmin >= -180 and xmax <= 180
                and ymin >= -90 and ymax <= 90):
            raise CRSMismatchError(
                f"{path}: the {src.name} layer says its CRS is {gdf.crs} (degrees) but its coordinates "
                f"reach ({xmin:.6g}, {ymin:.6g}) - ({xmax:.6g}, {ymax:.6g}): they are not degrees (metres "
                "labelled as degrees?): fix the file's CRS label (e.g. `gdf.set_crs('EPSG:32648', "
                "allow_override=True)`) ")
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        out = gdf.to_crs(crs)
    bounds = out.total_bounds if len(out) else np.zeros(4)
    if not np.isfinite(bounds).all():
        raise CRSMismatchError(f"{path}: the {src.name} layer cannot be reprojected from {gdf.crs} to {crs} "
                               "(coordinates come out infinite): check the file's CRS label")
    return out


def _repair(geoms: np.ndarray, labels: list[str], path) -> tuple[np.ndarray, list[str]]:
    """make_valid invalid geometries, keep their polygonal parts; return (geoms, problems)."""
    problems: list[str] = []
    geoms = np.asarray(geoms, dtype=object).copy()
    missing = shapely.is_missing(geoms) | shapely.is_empty(geoms)
    for i in np.flatnonzero(missing):
        problems.append(f"{labels[i]} has no geometry: give every unit a polygon")
    invalid = ~missing & ~shapely.is_valid(geoms)
    for i in np.flatnonzero(invalid):
        reason = shapely.is_valid_reason(geoms[i])
        geoms[i] = _polygonal(shapely.make_valid(geoms[i]))
        log.warning("%s: %s had an invalid geometry (%s); repaired with shapely.make_valid",
                    path, labels[i], reason)
    for i in np.flatnonzero(~missing):
        if geoms[i] is None:  # make_valid left nothing polygonal
            problems.append(f"{labels[i]} has an invalid geometry that cannot be repaired: redraw it")
            continue
        if shapely.get_type_id(geoms[i]) not in (3, 6):  # Polygon, MultiPolygon
            g = _polygonal(geoms[i])
            if g is None or g.is_empty:
                problems.append(f"{labels[i]} is a {geoms[i].geom_type}, not a polygon: units must be areas")
            geoms[i] = g
    return geoms, problems


def _polygonal(geom):
    """The polygonal part of a geometry (GeometryCollections from make_valid), or None."""
    if geom is None:
        return None
    if geom.geom_type in ("Polygon", "MultiPolygon"):
        return geom
    parts = [g for g in shapely.get_parts(geom) if g.geom_type in ("Polygon", "MultiPolygon")]
    if not parts:
        return None
    return shapely.union_all(parts)


def read_boundary(source: Source | str | Path, crs) -> gpd.GeoDataFrame:
    """Read the study-area boundary as one dissolved polygon in ``crs``.

    Parameters
    ----------
    source : Source or path
        The boundary layer (any CRS; ``source.coords`` gcj02/bd09 is undone first).
    crs : CRS-like
        The area's projected CRS.

    Returns
    -------
    geopandas.GeoDataFrame
        One row: ``name`` (the first feature's name, else the source name) and ``geometry``
        (Polygon or MultiPolygon).

    Raises
    ------
    CRSMismatchError
        If the file has no CRS.
    DataError
        If the file is missing, unreadable, empty or not polygonal.
    """
    src = _as_source(source, "boundary")
    gdf = _read_vector(src, crs)
    if gdf.empty:
        raise DataError(f"{src.path}: the boundary layer has no features: supply the district outline")
    geoms, problems = _repair(gdf.geometry.values, [f"feature {i}" for i in range(len(gdf))], src.path)
    good = [g for g in geoms if g is not None and not g.is_empty]
    if not good:
        raise DataError(problems_message(str(src.path), problems or ["no polygon in the boundary layer"]))
    for p in problems:
        log.warning("%s: %s (ignored)", src.path, p)
    geom = _polygonal(shapely.make_valid(shapely.union_all(good)))
    name = str(gdf["name"].iloc[0]) if "name" in gdf.columns and pd.notna(gdf["name"].iloc[0]) else src.name
    return gpd.GeoDataFrame({"name": [name]}, geometry=[geom], crs=gdf.crs)


def normalise_codes(values) -> pd.Series:
    """Normalise administrative codes to strings of digits.

    Integers and floats read from a file (``500101001``, ``500101001.0``) become ``"500101001"``;
    strings are stripped; missing values become ``""``.
    """
    s = pd.Series(values)
    out = []
    for v in s.tolist():
        if v is None or (not isinstance(v, str) and bool(pd.isna(v))):
            out.append("")
        elif isinstance(v, (bool, np.bool_)):
            out.append(str(v))
        elif isinstance(v, (int, np.integer)):
            out.append(str(int(v)))
        elif isinstance(v, (float, np.floating)):
            out.append(str(int(v)) if float(v).is_integer() else str(v))
        else:
            t = str(v).strip()
            if t.endswith(".0") and t[:-2].isdigit():
                t = t[:-2]
            out.append(t)
    return pd.Series(out, index=s.index, dtype=object).astype(str)


def unit_kind_from_name(name: str) -> str:
    """'街道' for names ending in 街道, '镇' for names ending in 镇 or 乡, else ''."""
    name = str(name).strip()
    if name.endswith("街道"):
        return "街道"
    if name.endswith(("镇", "乡")):
        return "镇"
    return ""


def _field(gdf: pd.DataFrame, src: Source, key: str, *, required: bool, problems: list[str]) -> str | None:
    if key in src.columns:
        col = src.columns[key]
        if col not in gdf.columns:
            problems.append(
                f"field '{col}' (sources.{src.name}.columns.{key}) is not in the file; "
                f"available fields: {', '.join(map(str, gdf.columns))}")
            return None
        return col
    for cand in _DEFAULT_FIELDS[key]:
        if cand in gdf.columns:
            return cand
    if required:
        problems.append(
            f"no {key} field found (tried {', '.join(_DEFAULT_FIELDS[key])}): name it in "
            f"sources.{src.name}.columns.{key}; available fields: {', '.join(map(str, gdf.columns))}")
    return None


def read_unit_table(source: Source | str | Path) -> pd.DataFrame:
    """Read the official unit table (CSV with columns code, name; mapped by ``source.columns``).

    Returns
    -------
    pandas.DataFrame
        ``unit_code`` (str), ``unit_name`` (str), in file order.
    """
    src = _as_source(source, "unit_table", "table")
    if src.path is None or not Path(src.path).exists():
        raise DataError(f"{src.path}: unit table not found: check 'sources.{src.name}.path'")
    df = pd.read_csv(src.path, dtype=str, encoding="utf-8-sig", keep_default_na=False)
    code = src.columns.get("code", "code")
    name = src.columns.get("name", "name")
    missing = [c for c in (code, name) if c not in df.columns]
    if missing:
        raise DataError(f"{src.path}: unit table lacks column(s) {', '.join(missing)}; available: "
                        f"{', '.join(df.columns)}: rename them or set sources.{src.name}.columns")
    out = pd.DataFrame({"unit_code": normalise_codes(df[code]).to_numpy(),
                        "unit_name": df[name].astype(str).str.strip().to_numpy()})
    dup = out["unit_code"][out["unit_code"].duplicated()].unique().tolist()
    if dup:
        raise DataError(f"{src.path}: duplicate codes in the unit table: {', '.join(dup)}: keep one row each")
    return out


def read_units(source: Source | str | Path, crs, *, unit_table: Source | str | Path | None = None,
               codes: str = "any") -> gpd.GeoDataFrame:
    """Read street/town polygons into the ``Units`` contract.

    Parameters
    ----------
    source : Source or path
        Vector file in any CRS. ``source.columns`` maps ``code`` and ``name`` (optionally
        ``name_en`` and ``kind``) to the file's fields; without a mapping common field names are
        tried (unit_code/code/adcode/ref, unit_name/name). ``source.options['layer']`` picks a
        GeoPackage layer.
    crs : CRS-like
        The area's projected CRS.
    unit_table : Source or path, optional
        Official table (CSV with code, name). Codes missing on either side raise
        :class:`DataError`; names that differ are replaced by the official ones (warned); if the
        polygons have names but no codes, codes are looked up by name.
    codes : {"any", "cn_official"}, default "any"
        The area's code system (``unit_codes`` in the area file): ``any`` accepts any unique
        string; ``cn_official`` requires 9-digit official codes and warns when a unit's kind
        (街道/镇) cannot be told from its name or a kind field.

    Returns
    -------
    geopandas.GeoDataFrame
        ``unit_code``, ``unit_name``, ``unit_name_en`` ('' if unknown), ``unit_kind``, geometry,
        one row per unit (rows sharing a code are dissolved into one MultiPolygon), sorted by code,
        index 0..n-1, in ``crs``.

    Raises
    ------
    CRSMismatchError
        The file has no CRS.
    DataError
        Missing fields, missing or duplicate codes, non-polygon geometries, mismatch with the
        unit table (all problems are listed together).
    """
    src = _as_source(source, "units")
    return _units_from_frame(_read_vector(src, crs), src, unit_table, codes=codes)


def _check_codes(codes: np.ndarray, labels: list[str], system: str) -> list[str]:
    """Problems with the unit codes under ``system`` (``any`` or ``cn_official``)."""
    if system not in ("any", "cn_official"):
        raise ValueError(f"codes={system!r}: use 'any' or 'cn_official'")
    if system != "cn_official":
        return []
    problems = []
    for i, c in enumerate(codes):
        if c and not (c.isdigit() and len(c) == 9):
            if c.isdigit() and len(c) == 12 and c.endswith("000"):
                problems.append(f"{labels[i]}: 12-digit code {c}: use the 9-digit form {c[:9]}")
            else:
                problems.append(f"{labels[i]}: code '{c}' is not a 9-digit official code (the area "
                                "declares unit_codes: cn_official; remove that key to allow any codes)")
    return problems


def _units_from_frame(gdf: gpd.GeoDataFrame, src: Source, unit_table, *, codes: str = "any"  # noqa: C901  (every field and geometry problem of a units layer gathered in one pass)
                      ) -> gpd.GeoDataFrame:
    """The body of :func:`read_units` on an already projected frame."""
    path = src.path
    system = codes
    problems: list[str] = []
    if gdf.empty:
        raise DataError(f"{path}: the units layer has no features: supply the unit polygons")

    table = read_unit_table(unit_table) if unit_table is not None else None
    code_col = _field(gdf, src, "code", required=table is None, problems=problems)
    name_col = _field(gdf, src, "name", required=code_col is None or table is None, problems=problems)
    name_en_col = _field(gdf, src, "name_en", required=False, problems=problems)
    kind_col = _field(gdf, src, "kind", required=False, problems=problems)
    if problems:
        raise DataError(problems_message(f"{path} (units)", problems))

    n = len(gdf)
    names = (gdf[name_col].fillna("").astype(str).str.strip().to_numpy() if name_col
             else np.full(n, "", dtype=object))
    if code_col is not None:
        codes = normalise_codes(gdf[code_col].to_numpy()).to_numpy()
    else:  # look codes up by name in the official table
        by_name = dict(zip(table["unit_name"], table["unit_code"], strict=True))
        codes = np.array([by_name.get(nm, "") for nm in names], dtype=object)
        for i in np.flatnonzero(codes == ""):
            problems.append(f"feature {i} ('{names[i]}'): name not in the unit table {table_path(unit_table)}, "
                            "so no code: fix the name or add a code field")
    labels = [f"feature {i} (code '{codes[i]}')" for i in range(n)]
    for i in np.flatnonzero(codes == ""):
        if code_col is not None:
            problems.append(f"{labels[i]}: empty '{code_col}': every unit needs a code")
    problems += _check_codes(codes, labels, system)

    geoms, geom_problems = _repair(gdf.geometry.values, labels, path)
    problems += geom_problems

    name_en = (gdf[name_en_col].fillna("").astype(str).str.strip().to_numpy() if name_en_col
               else np.full(n, "", dtype=object))
    if kind_col:
        raw_kind = gdf[kind_col].fillna("").astype(str).str.strip()
        kinds = np.array([_KIND_WORDS.get(k.lower(), _KIND_WORDS.get(k, "")) for k in raw_kind], dtype=object)
        for i in np.flatnonzero(kinds == ""):
            kinds[i] = unit_kind_from_name(names[i])
    else:
        kinds = np.array([unit_kind_from_name(nm) for nm in names], dtype=object)

    # rows sharing one code are the parts of one unit; different names under one code are an error
    df = pd.DataFrame({"unit_code": codes, "unit_name": names, "unit_name_en": name_en,
                       "unit_kind": kinds, "geometry": geoms})
    for code, grp in df[df["unit_code"] != ""].groupby("unit_code", sort=False):
        if grp["unit_name"].nunique() > 1:
            problems.append(f"code {code} is used by several names ({', '.join(grp['unit_name'].unique())}): "
                            "each code must name one unit")

    if table is not None and not problems:
        have, official = set(df["unit_code"]), set(table["unit_code"])
        extra = sorted(have - official)
        lacking = sorted(official - have)
        if extra:
            problems.append(f"codes in the polygons but not in the unit table {table_path(unit_table)}: "
                            f"{', '.join(extra)}: fix the codes or use the right table")
        if lacking:
            names_l = dict(zip(table["unit_code"], table["unit_name"], strict=True))
            problems.append("codes in the unit table but without a polygon: "
                            + ", ".join(f"{c} {names_l[c]}" for c in lacking)
                            + ": add their polygons (or remove them from the table on purpose)")
    if problems:
        raise DataError(problems_message(f"{path} (units)", problems))

    parts = df.groupby("unit_code", sort=True)
    multi = [c for c, g in parts if len(g) > 1]
    if multi:
        log.info("%s: dissolved several features per unit for %s", path, ", ".join(multi))
    out = pd.DataFrame({
        "unit_code": list(parts.groups),
        "unit_name": parts["unit_name"].first().to_numpy(),
        "unit_name_en": parts["unit_name_en"].first().to_numpy(),
        "unit_kind": parts["unit_kind"].first().to_numpy(),
    })
    out["geometry"] = [
        g.iloc[0] if len(g) == 1 else _polygonal(shapely.union_all(g.to_numpy()))
        for _, g in parts["geometry"]
    ]
    if table is not None:
        official = dict(zip(table["unit_code"], table["unit_name"], strict=True))
        renamed = [(c, nm, official[c]) for c, nm in zip(out["unit_code"], out["unit_name"], strict=True)
                   if nm != official[c]]
        if renamed:
            warnings.warn(
                f"{path}: unit names differ from the official table {table_path(unit_table)}; using the "
                "official names: " + "; ".join(f"{c}: '{a}' -> '{b}'" for c, a, b in renamed),
                AccessibilityWarning, stacklevel=2)
        out["unit_name"] = out["unit_code"].map(official)
        out["unit_kind"] = [k or unit_kind_from_name(nm) for k, nm in zip(out["unit_kind"], out["unit_name"],
                                                                         strict=True)]
    unknown = out.loc[out["unit_kind"] == "", "unit_name"].tolist()
    if unknown and system == "cn_official":
        warnings.warn(f"{path}: cannot tell street (街道) from town (镇) for {', '.join(unknown)}: "
                      f"add a kind field (sources.{src.name}.columns.kind)", AccessibilityWarning, stacklevel=2)
    for col in ("unit_code", "unit_name", "unit_name_en", "unit_kind"):
        out[col] = out[col].astype(str)
    return gpd.GeoDataFrame(out, geometry="geometry", crs=gdf.crs)[UNIT_COLUMNS]


def table_path(source) -> str:
    """File name of a Source or path (for messages)."""
    return str(source.path if isinstance(source, Source) else source)


def check_partition(units: gpd.GeoDataFrame, boundary, *, tol_m2: float = 1e4) -> pd.DataFrame:
    """Report how well the units tile the boundary.

    Parameters
    ----------
    units : geopandas.GeoDataFrame
        The ``Units`` table (projected CRS).
    boundary : GeoDataFrame, GeoSeries or shapely geometry
        The district outline, in the same CRS as ``units`` (a GeoDataFrame in another CRS is
        reprojected).
    tol_m2 : float, default 1e4
        Gaps, overlaps and area outside the boundary above this (m²) are warned about.

    Returns
    -------
    pandas.DataFrame
        Tidy table, one row per finding: ``kind`` ('gap', 'overlap', 'outside'), ``units``
        (';'-joined unit codes involved, '' for a gap), ``area_m2``, ``area_km2``, ``share``
        (of the boundary's area). The 'gap' and 'outside' rows are always present (area 0 if
        none); one 'overlap' row per pair of units whose intersection has positive area.
    """
    if units.crs is not None and not CRS.from_user_input(units.crs).is_projected:
        raise CRSMismatchError(f"units are in a geographic CRS ({units.crs}): project them first "
                               "(`units.to_crs(config.crs)`) so areas are in m²")
    if isinstance(boundary, (gpd.GeoDataFrame, gpd.GeoSeries)):
        if units.crs is not None and boundary.crs is not None and boundary.crs != units.crs:
            boundary = boundary.to_crs(units.crs)
        bgeom = shapely.union_all(np.asarray(boundary.geometry.values if isinstance(boundary, gpd.GeoDataFrame)
                                             else boundary.values, dtype=object))
    else:
        bgeom = boundary
    barea = float(bgeom.area)
    geoms = np.asarray(units.geometry.values, dtype=object)
    codes = units["unit_code"].astype(str).to_numpy() if "unit_code" in units.columns \
        else np.array([str(i) for i in units.index])
    union = shapely.union_all(geoms)
    rows = [{"kind": "gap", "units": "", "area_m2": float(shapely.difference(bgeom, union).area)}]
    tree = shapely.STRtree(geoms)
    left, right = tree.query(geoms, predicate="intersects")
    keep = left < right
    for i, j in zip(left[keep], right[keep], strict=True):
        a = float(shapely.intersection(geoms[i], geoms[j]).area)
        if a > 0:
            rows.append({"kind": "overlap", "units": f"{codes[i]};{codes[j]}", "area_m2": a})
    outside = float(shapely.difference(union, bgeom).area)
    rows.append({"kind": "outside", "units": "", "area_m2": outside})
    out = pd.DataFrame(rows)
    if outside > tol_m2:
        out_units = [c for c, g in zip(codes, geoms, strict=True)
                     if shapely.difference(g, bgeom).area > tol_m2]
        out.loc[out["kind"] == "outside", "units"] = ";".join(out_units)
    out["area_km2"] = out["area_m2"] / 1e6
    out["share"] = out["area_m2"] / barea if barea > 0 else np.nan
    out = out[["kind", "units", "area_m2", "area_km2", "share"]]
    bad = out[out["area_m2"] > tol_m2]
    if not bad.empty:
        lines = [f"{r.kind} {r.units or ''} {r.area_km2:.3f} km² ({r.share:.2%} of the district)".replace("  ", " ")
                 for r in bad.itertuples()]
        warnings.warn("units do not tile the boundary (tolerance "
                      f"{tol_m2:g} m²): " + "; ".join(lines)
                      + ": residents in gaps are dropped, overlaps double-count; fix the unit polygons",
                      AccessibilityWarning, stacklevel=2)
    log.info("partition check: %s", out.to_dict("records"))
    return out


def units_from_osm_admin(features: gpd.GeoDataFrame, crs, *, admin_level: str = "8",
                         unit_table: Source | str | Path | None = None, codes: str = "any"
                         ) -> gpd.GeoDataFrame:
    """Units from OSM administrative boundaries (e.g. ``osmnx.features_from_polygon`` results).

    Keeps polygons tagged ``boundary=administrative`` and ``admin_level`` (default '8', the
    street/town level in China); the code is taken from ``ref:NBS``/``ref``, else looked up by
    name in ``unit_table``.

    Parameters
    ----------
    features : geopandas.GeoDataFrame
        OSM features with tag columns (``boundary``, ``admin_level``, ``name``, ...), any CRS.
    crs : CRS-like
        The area's projected CRS.
    admin_level : str, default '8'
    unit_table : Source or path, optional
        As in :func:`read_units`.
    codes : {"any", "cn_official"}, default "any"
        As in :func:`read_units`; without a ``ref``/``ref:NBS`` on every polygon and without a
        unit table, the OSM id (``r<id>``) is the code.
    """
    if features.crs is None:
        raise CRSMismatchError("OSM admin features have no CRS: set it with `gdf.set_crs('EPSG:4326')`")
    f = features
    mask = np.ones(len(f), dtype=bool)
    if "boundary" in f.columns:
        mask &= (f["boundary"].astype(str) == "administrative").to_numpy()
    if "admin_level" not in f.columns:
        raise DataError("OSM admin features have no 'admin_level' column: request the tag "
                        "{'boundary': 'administrative'} from osmnx")
    mask &= (f["admin_level"].astype(str) == str(admin_level)).to_numpy()
    mask &= f.geometry.geom_type.isin(["Polygon", "MultiPolygon"]).to_numpy()
    sel = f.loc[mask].copy()
    if sel.empty:
        raise DataError(f"no polygon with boundary=administrative and admin_level={admin_level} "
                        "among the OSM features: try another admin_level or supply unit polygons")
    cols = {"name": "name"}
    for cand in ("ref:NBS", "ref"):
        if cand in sel.columns and sel[cand].notna().all():
            cols["code"] = cand
            break
    if "name:en" in sel.columns:
        sel["name:en"] = sel["name:en"].fillna("")
        cols["name_en"] = "name:en"
    src = Source(name="units", kind="overpass", path=Path("OSM admin_level=" + str(admin_level)),
                 status="real", columns=cols)
    if "code" not in cols and unit_table is None:
        ids = sel["osmid"] if "osmid" in sel.columns else pd.Series(sel.index.get_level_values(-1), index=sel.index)
        sel["unit_code"] = ["r" + str(v) for v in ids]
        cols["code"] = "unit_code"
    return _units_from_frame(sel.to_crs(crs), src, unit_table, codes=codes)
