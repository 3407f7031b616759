"""Facilities: classification of OSM objects and planners' inventories into categories.

Classification rules live in ``config/categories.yaml`` (see :func:`classify`). OSM points of
interest become facilities with :func:`facilities_from_osm`; CSV/Excel inventories (WGS-84,
GCJ-02 or BD-09 coordinates) with :func:`read_inventory`; :func:`load_facilities` reads every
facility source of a study area. The result follows the "Facilities" contract of DESIGN.md.
"""

from __future__ import annotations

import functools
import logging
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd

from accessibility._errors import AccessibilityWarning, DataError, problems_message

__all__ = [
    "FACILITY_COLUMNS",
    "check_datum",
    "classify",
    "facilities_from_osm",
    "load_facilities",
    "read_inventory",
    "warn_if_category_empty",
]

logger = logging.getLogger(__name__)

FACILITY_COLUMNS = ("fac_id", "name", "category", "circles", "source", "status", "classified_by",
                    "capacity", "geometry")

#: OSM tags read as a capacity, first numeric one wins.
_CAPACITY_TAGS = ("capacity", "beds", "capacity:persons", "capacity:beds", "seats")

#: Excel formats read through openpyxl.
_EXCEL = (".xlsx", ".xlsm")


# ---------------------------------------------------------------------------------------------
# classification


@functools.lru_cache(maxsize=4096)
def _parse_rule(rule: str) -> tuple[tuple[str, str], ...]:
    parts = []
    for part in rule.split("&"):
        key, _, value = part.partition("=")
        parts.append((key.strip(), value.strip()))
    return tuple(parts)


def _tag_matches(tags: Mapping[str, Any], key: str, value: str) -> bool:
    if key not in tags or tags[key] is None:
        return False
    if value == "*":
        return True
    have = str(tags[key])
    return have == value or value in (v.strip() for v in have.split(";"))


def classify(name: str | None, tags: Mapping[str, Any] | None, categories: Mapping[str, Any]) -> tuple[str | None, str]:
    """Classify one object into a facility category.

    First the name rules (substring match, case-insensitive) of every category in file order,
    then the OSM tag rules (``key=value``, ``key=*``, several joined by ``&``) in file order.
    A category whose ``exclude_names`` occur in the name is ruled out entirely (a 健身房 is
    not a public sports centre, whatever its tags say).

    Parameters
    ----------
    name : str or None
        The object's name.
    tags : mapping or None
        OSM tags (``{}`` for inventory rows).
    categories : mapping of id -> Category
        From :func:`accessibility.config.load_categories`, in file order.

    Returns
    -------
    (category id or None, reason)
        E.g. ``('elderly_service_station', 'name contains 养老服务站')``,
        ``('library', 'tag amenity=library')``, ``(None, 'no rule matched')``.
    """
    text = (name or "").casefold()
    tags = tags or {}
    vetoed: dict[str, str] = {}
    if text:
        for cid, cat in categories.items():
            excl = next((x for x in cat.exclude_names if x.casefold() in text), None)
            if excl is not None:
                vetoed[cid] = excl
                continue
            for rule in cat.names:
                if rule.casefold() in text:
                    return cid, f"name contains {rule}"
    if tags:
        for cid, cat in categories.items():
            if cid in vetoed:
                continue
            for rule in cat.osm:
                if all(_tag_matches(tags, k, v) for k, v in _parse_rule(rule)):
                    return cid, f"tag {rule}"
    if vetoed:
        cid, excl = next(iter(vetoed.items()))
        return None, f"name contains {excl} (excluded from {cid})"
    return None, "no rule matched"


def _capacity(tags: Mapping[str, Any]) -> float:
    for key in _CAPACITY_TAGS:
        value = tags.get(key)
        if value is None:
            continue
        try:
            number = float(str(value).strip())
        except ValueError:
            continue
        if np.isfinite(number) and number >= 0:
            return number
    return float("nan")


def _frame(rows: dict[str, list], geometry: Any, crs: Any) -> gpd.GeoDataFrame:
    df = pd.DataFrame(
        {
            "fac_id": pd.Series(rows["fac_id"], dtype=object),
            "name": pd.Series(rows["name"], dtype=object),
            "category": pd.Series(rows["category"], dtype=object),
            "circles": pd.Series(rows["circles"], dtype=object),
            "source": pd.Series(rows["source"], dtype=object),
            "status": pd.Series(rows["status"], dtype=object),
            "classified_by": pd.Series(rows["classified_by"], dtype=object),
            "capacity": pd.Series(rows["capacity"], dtype="float64"),
        }
    )
    return gpd.GeoDataFrame(df, geometry=geometry, crs=crs)


def _empty_rows() -> dict[str, list]:
    return {c: [] for c in FACILITY_COLUMNS if c != "geometry"}


def _unnamed(config: Any, category: str) -> str:
    cat = config.categories.get(category)
    label = cat.label_zh if cat is not None else category
    return f"{label}（未命名）"


def facilities_from_osm(
    osm: Any,
    config: Any,
    *,
    status: str | None = None,
    dedupe_m: float = 50.0,
) -> gpd.GeoDataFrame:
    """Classify the points of interest of an :class:`~accessibility.osm.OSMData`.

    Parameters
    ----------
    osm : OSMData
    config : AreaConfig
        Gives the categories, the circles and the projected CRS.
    status : str, optional
        Overrides ``osm.status`` (the facility source's own status).
    dedupe_m : float, default 50
        A facility mapped twice (a node inside its building way) is kept once: objects of the
        same category and the same non-empty name closer than this are merged (the first kept,
        nodes before ways). ``0`` keeps everything.

    Returns
    -------
    geopandas.GeoDataFrame
        The Facilities contract (DESIGN.md), projected to ``config.crs``. Unclassified points of
        interest are dropped (the count is logged).
    """
    rows = _empty_rows()
    geoms = []
    pois = osm.pois
    for otype, oid, name, tags, geom in zip(pois["osm_type"], pois["osm_id"], pois["name"],
                                            pois["tags"], pois.geometry, strict=True):
        cat, reason = classify(name, tags, config.categories)
        if cat is None:
            continue
        rows["fac_id"].append(f"osm:{otype[0]}{int(oid)}")
        rows["name"].append(str(name) if name else _unnamed(config, cat))
        rows["category"].append(cat)
        rows["circles"].append(";".join(config.circles_for(cat)))
        rows["source"].append(osm.source)
        rows["status"].append(status or osm.status)
        rows["classified_by"].append(reason)
        rows["capacity"].append(_capacity(tags or {}))
        geoms.append(geom)
    n_drop = len(pois) - len(geoms)
    out = _frame(rows, geoms, "EPSG:4326").to_crs(config.crs)
    if dedupe_m > 0 and len(out):
        out = _dedupe(out, dedupe_m)
    logger.info("%s: %d facilities classified, %d points of interest matched no category (dropped)",
                osm.source, len(out), n_drop)
    return out.reset_index(drop=True)


def _dedupe(fac: gpd.GeoDataFrame, dedupe_m: float) -> gpd.GeoDataFrame:
    keep = np.ones(len(fac), dtype=bool)
    x = fac.geometry.x.to_numpy()
    y = fac.geometry.y.to_numpy()
    order = np.argsort(fac["fac_id"].str.startswith("osm:w").to_numpy(), kind="stable")  # nodes first
    groups: dict[tuple[str, str], list[int]] = {}
    for i in order:
        name = fac["name"].iat[i]
        if not name or name.endswith("（未命名）"):
            continue
        key = (fac["category"].iat[i], name)
        kept = groups.setdefault(key, [])
        if any(np.hypot(x[i] - x[j], y[i] - y[j]) < dedupe_m for j in kept):
            keep[i] = False
        else:
            kept.append(i)
    if not keep.all():
        logger.info("%d facilities mapped twice (same name and category within %g m) merged",
                    int((~keep).sum()), dedupe_m)
    return fac[keep]


# ---------------------------------------------------------------------------------------------
# inventories


def _read_table(path: Path) -> pd.DataFrame:
    suffix = path.suffix.lower()
    if suffix in _EXCEL:
        try:
            df = pd.read_excel(path, dtype=object, engine="openpyxl")
        except Exception as exc:  # openpyxl raises several types for broken files
            raise DataError(f"{path}: cannot read this Excel file ({exc}): save it again as .xlsx") from exc
    elif suffix in (".csv", ".txt"):
        if path.stat().st_size == 0:
            raise DataError(f"{path}: the inventory file is empty: export the table again with a header row")
        errors = []
        df = None
        # utf-8-sig first: it reads plain UTF-8 too and drops a BOM instead of gluing it to the
        # first column name; then GBK (Excel's default in Chinese Windows).
        for enc in ("utf-8-sig", "utf-8", "gbk"):
            try:
                df = pd.read_csv(path, dtype=str, keep_default_na=False, encoding=enc)
                break
            except UnicodeDecodeError as exc:
                errors.append(f"{enc}: {exc.reason}")
            except pd.errors.EmptyDataError as exc:
                raise DataError(f"{path}: the inventory file is empty: export the table again with a "
                                "header row") from exc
            except pd.errors.ParserError as exc:
                raise DataError(f"{path}: not a readable CSV table ({exc}): check the separator "
                                "(comma) and quotes") from exc
        if df is None:
            raise DataError(f"{path}: cannot decode the text ({'; '.join(errors)}): save it as UTF-8 "
                            "or GBK CSV")
    elif suffix == ".xls":
        raise DataError(f"{path}: old Excel .xls files are not read: open it and save as .xlsx")
    else:
        raise DataError(f"{path}: unsupported inventory type {suffix!r}: use .csv (UTF-8 or GBK) or .xlsx")
    df.columns = [str(c).strip() for c in df.columns]
    return df


def _blank(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and np.isnan(value):
        return True
    return isinstance(value, str) and not value.strip()


def _number(value: Any) -> float | None:
    """Parse a number (also Excel numbers and '106,52' with a decimal comma); None if not one."""
    if _blank(value):
        return None
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
        return float(value)
    text = str(value).strip().replace("，", ",")
    if text.count(",") == 1 and "." not in text:
        text = text.replace(",", ".")
    try:
        return float(text)
    except ValueError:
        return None


def read_inventory(
    source: Any,
    config: Any,
    *,
    bbox_wgs84: tuple[float, float, float, float] | None = None,
) -> gpd.GeoDataFrame:
    """Read a planners' inventory (CSV or Excel) of facilities.

    Parameters
    ----------
    source : Source
        ``path``, ``coords`` (``wgs84`` | ``gcj02`` | ``bd09``), ``status`` and ``columns``
        mapping the logical names ``name``, ``category``, ``lon``, ``lat`` and optional
        ``capacity`` to the file's column names (unmapped names default to themselves).
    config : AreaConfig
    bbox_wgs84 : (min_lon, min_lat, max_lon, max_lat), optional
        The study area's bounding box: points outside it (after conversion to WGS-84) are
        errors.

    Returns
    -------
    geopandas.GeoDataFrame
        The Facilities contract, projected to ``config.crs``; ``fac_id`` is
        ``inv:<file stem>:<row>`` with the spreadsheet row number (header = row 1).

    Raises
    ------
    DataError
        Every problem of the file at once: missing columns, empty or non-numeric coordinates,
        swapped lon/lat, points outside the study area, unknown categories.
    """
    path = Path(source.path)
    if not path.exists():
        raise DataError(f"{path}: inventory file not found: check 'path' of this facility source "
                        "in the study-area configuration")
    df = _read_table(path)
    if len(df) == 0:
        raise DataError(f"{path}: the inventory has a header but no rows: add the facilities or remove "
                        "this source from the configuration")

    mapping = {k: source.columns.get(k, k) for k in ("name", "category", "lon", "lat")}
    cap_col = source.columns.get("capacity", "capacity" if "capacity" in df.columns else None)
    missing = [f"{logical} -> column {col!r}" for logical, col in mapping.items() if col not in df.columns]
    if cap_col is not None and cap_col not in df.columns:
        missing.append(f"capacity -> column {cap_col!r}")
    if missing:
        raise DataError(problems_message(str(path), [
            f"missing column(s): {', '.join(missing)}; the file has columns {list(df.columns)}; fix "
            "the 'columns' mapping of this source, e.g. columns: {name: 名称, category: 类别, "
            "lon: 经度, lat: 纬度}",
        ]))

    cats = config.categories
    problems: list[str] = []
    rownum = np.arange(len(df)) + 2  # header is row 1
    lon = np.full(len(df), np.nan)
    lat = np.full(len(df), np.nan)
    cap = np.full(len(df), np.nan)
    category: list[str | None] = [None] * len(df)
    reason: list[str] = [""] * len(df)
    lon_col, lat_col, cat_col, name_col = mapping["lon"], mapping["lat"], mapping["category"], mapping["name"]

    for i in range(len(df)):
        r = int(rownum[i])
        name = "" if _blank(df[name_col].iat[i]) else str(df[name_col].iat[i]).strip()
        ok = True
        for col, arr in ((lon_col, lon), (lat_col, lat)):
            raw = df[col].iat[i]
            value = _number(raw)
            if value is None:
                what = "is empty" if _blank(raw) else f"is {str(raw)!r}, not a number"
                problems.append(f"row {r}: column {col!r} {what} (decimal degrees expected)")
                ok = False
            else:
                arr[i] = value
        if ok:
            x, y = lon[i], lat[i]
            if abs(y) > 90 and abs(x) <= 90:
                problems.append(f"row {r}: {lon_col}={x:g}, {lat_col}={y:g} look swapped (a latitude "
                                f"cannot exceed 90°): swap lon and lat in the 'columns' mapping or in the row")
            elif abs(x) > 180 or abs(y) > 90:
                problems.append(f"row {r}: {lon_col}={x:g}, {lat_col}={y:g} are not longitude/latitude "
                                "degrees (projected metres?): give decimal degrees")
        raw_cat = df[cat_col].iat[i]
        text = "" if _blank(raw_cat) else str(raw_cat).strip()
        if text in cats:
            category[i], reason[i] = text, f"inventory column {cat_col}={text}"
        else:
            cid, why = classify(text, {}, cats) if text else (None, "")
            if cid is not None:
                category[i], reason[i] = cid, f"inventory column {cat_col}={text}"
            else:
                cid, why = classify(f"{name} {text}".strip(), {}, cats)
                if cid is not None:
                    category[i], reason[i] = cid, f"{why} (inventory column {cat_col}={text})"
                else:
                    problems.append(
                        f"row {r}: column {cat_col!r} is {text!r} and the name {name!r} matches no "
                        f"category: use a category id ({', '.join(cats)}) or a known Chinese name "
                        "(see config/categories.yaml)"
                    )
        if cap_col is not None:
            raw = df[cap_col].iat[i]
            value = _number(raw)
            if value is None and not _blank(raw):
                problems.append(f"row {r}: column {cap_col!r} is {str(raw)!r}, not a number "
                                "(leave it empty when unknown)")
            elif value is not None:
                cap[i] = value

    # conversion to WGS-84 of the rows whose coordinates are usable
    good = np.isfinite(lon) & np.isfinite(lat) & (np.abs(lon) <= 180) & (np.abs(lat) <= 90)
    wlon, wlat = lon.copy(), lat.copy()
    if source.coords != "wgs84" and good.any():
        from accessibility.coords import to_wgs84

        cl, ct = to_wgs84(lon[good], lat[good], source.coords)
        wlon[good], wlat[good] = np.asarray(cl, dtype=float), np.asarray(ct, dtype=float)
    if bbox_wgs84 is not None:
        minx, miny, maxx, maxy = bbox_wgs84
        for i in np.flatnonzero(good):
            x, y = wlon[i], wlat[i]
            if minx <= x <= maxx and miny <= y <= maxy:
                continue
            r = int(rownum[i])
            if minx <= lat[i] <= maxx and miny <= lon[i] <= maxy:
                problems.append(f"row {r}: {lon_col}={lon[i]:g}, {lat_col}={lat[i]:g} look swapped (swapped "
                                "they fall inside the study area): swap lon and lat")
            else:
                problems.append(
                    f"row {r}: point ({x:.6f}, {y:.6f}) lies outside the study area's bounding box "
                    f"({minx:.4f}, {miny:.4f}, {maxx:.4f}, {maxy:.4f}): fix the coordinates, or the "
                    f"source's 'coords' ({source.coords}) if it is the wrong system"
                )
    if problems:
        raise DataError(problems_message(f"{path} (inventory)", problems))

    stem = path.stem
    rows = _empty_rows()
    for i in range(len(df)):
        name = "" if _blank(df[name_col].iat[i]) else str(df[name_col].iat[i]).strip()
        cat = category[i]
        rows["fac_id"].append(f"inv:{stem}:{int(rownum[i])}")
        rows["name"].append(name or _unnamed(config, cat))
        rows["category"].append(cat)
        rows["circles"].append(";".join(config.circles_for(cat)))
        rows["source"].append(path.name)
        rows["status"].append(source.status)
        rows["classified_by"].append(reason[i])
        rows["capacity"].append(cap[i])
    geom = gpd.points_from_xy(wlon, wlat, crs="EPSG:4326")
    out = _frame(rows, geom, "EPSG:4326").to_crs(config.crs)
    logger.info("%s: %d inventory facilities (%s coordinates)", path.name, len(out), source.coords)
    return out


# ---------------------------------------------------------------------------------------------
# checks


def _local_xy(lon: np.ndarray, lat: np.ndarray, lat0: float) -> np.ndarray:
    r = 6371008.8
    return np.column_stack([np.radians(lon) * r * np.cos(np.radians(lat0)), np.radians(lat) * r])


def check_datum(
    facilities_wgs84_lonlat: Any,
    network_nodes_lonlat: Any,
    *,
    min_offset_m: float = 250.0,
    max_offset_m: float = 900.0,
    min_points: int = 5,
) -> str | None:
    """Detect GCJ-02 coordinates declared as WGS-84.

    GCJ-02 shifts points in and near China by roughly 300-700 m. If the points sit typically
    (median) that far from the nearest network node, and read as GCJ-02 they come at least
    twice as close, they were almost certainly GCJ-02.

    Parameters
    ----------
    facilities_wgs84_lonlat : array-like, shape (n, 2)
        Facility lon/lat as declared (WGS-84).
    network_nodes_lonlat : array-like, shape (m, 2)
        Walking-network node lon/lat (WGS-84, from OSM).

    Returns
    -------
    str or None
        A warning text, or None when nothing looks wrong (or too few points to tell).
    """
    from scipy.spatial import cKDTree

    fac = np.asarray(facilities_wgs84_lonlat, dtype=float).reshape(-1, 2)
    net = np.asarray(network_nodes_lonlat, dtype=float).reshape(-1, 2)
    fac = fac[np.isfinite(fac).all(axis=1)]
    if len(fac) < min_points or len(net) == 0:
        return None
    lat0 = float(np.median(net[:, 1]))
    tree = cKDTree(_local_xy(net[:, 0], net[:, 1], lat0))
    d_declared = float(np.median(tree.query(_local_xy(fac[:, 0], fac[:, 1], lat0))[0]))
    if not min_offset_m <= d_declared <= max_offset_m:
        return None
    from accessibility.coords import to_wgs84

    lon2, lat2 = to_wgs84(fac[:, 0].copy(), fac[:, 1].copy(), "gcj02")
    d_gcj = float(np.median(tree.query(_local_xy(np.asarray(lon2), np.asarray(lat2), lat0))[0]))
    if d_gcj <= 0.5 * d_declared:
        return (f"looks like GCJ-02 declared as WGS-84 (points fall ~{d_declared:.0f} m off the network; "
                f"read as GCJ-02 they fall ~{d_gcj:.0f} m off): set coords: gcj02 for this source")
    return None


def warn_if_category_empty(facilities: gpd.GeoDataFrame, config: Any) -> list[str]:
    """Warn (:class:`AccessibilityWarning`) for every circle none of whose categories has a facility.

    Returns the ids of those circles.
    """
    present = set(facilities["category"].dropna().astype(str)) if len(facilities) else set()
    empty = []
    for cid, circle in config.circles.items():
        if not present.intersection(circle.categories):
            empty.append(cid)
            warnings.warn(
                f"circle {cid!r} ({circle.label_en}) has no facility of its categories "
                f"({', '.join(circle.categories)}): every home will count as uncovered; check the "
                "facility sources and the classification rules (config/categories.yaml)",
                AccessibilityWarning,
                stacklevel=2,
            )
    return empty


def load_facilities(
    config: Any,
    *,
    osm_cache: dict[Any, Any] | None = None,
    bbox_wgs84: tuple[float, float, float, float] | None = None,
) -> gpd.GeoDataFrame:
    """Read every facility source of a study area into one Facilities table.

    Parameters
    ----------
    config : AreaConfig
    osm_cache : dict, optional
        ``{path: OSMData}`` so a file read for the network is not read again; filled with the
        files read here. An ``overpass`` source is taken from ``osm_cache['overpass']`` (fetched
        by the pipeline).
    bbox_wgs84 : tuple, optional
        Study-area bounding box for the inventory checks (see :func:`read_inventory`).

    Returns
    -------
    geopandas.GeoDataFrame
        The Facilities contract, projected to ``config.crs``, index 0..n-1.
    """
    from accessibility.osm import read_osm

    cache = osm_cache if osm_cache is not None else {}
    parts = []
    for src in config.facility_sources:
        if src.kind == "osm_file":
            key = Path(src.path)
            osm = cache.get(key)
            if osm is None:
                osm = cache.get(str(key))
            if osm is None:
                osm = read_osm(key, status=src.status, require_streets=False)
                cache[key] = osm
            parts.append(facilities_from_osm(osm, config, status=src.status))
        elif src.kind == "overpass":
            osm = cache.get("overpass")
            if osm is None:
                raise DataError(f"facility source {src.name} is 'overpass' but no Overpass data was "
                                "fetched: run `accessibility fetch` first (or pass osm_cache={'overpass': "
                                "fetch_overpass(...)})")
            parts.append(facilities_from_osm(osm, config, status=src.status))
        elif src.kind == "inventory":
            parts.append(read_inventory(src, config, bbox_wgs84=bbox_wgs84))
        else:
            raise DataError(f"facility source {src.name}: unknown kind {src.kind!r}: use osm_file, "
                            "overpass or inventory")
    if not parts:
        return _frame(_empty_rows(), [], config.crs)
    out = pd.concat(parts, ignore_index=True)
    out = gpd.GeoDataFrame(out, geometry="geometry", crs=config.crs)
    dup = out["fac_id"].duplicated()
    if dup.any():
        raise DataError("facility ids repeat across sources: "
                        f"{sorted(out.loc[dup, 'fac_id'])[:5]}: two sources point to the same file?")
    return out
