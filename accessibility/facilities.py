"""Facilities: classification of OSM objects and planners' inventories into categories.

Classification rules live in ``config/categories.yaml`` (see :func:`classify`). OSM points of
interest become facilities with :func:`facilities_from_osm`; CSV/Excel inventories (WGS-84,
GCJ-02 or BD-09 coordinates) with :func:`read_inventory`; :func:`load_facilities` reads every
facility source of a study area. The result follows the "Facilities" contract of DESIGN.md.
"""

from __future__ import annotations

import functools
import logging
import unicodedata
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from accessibility._errors import (
    AccessibilityWarning,
    CRSMismatchError,
    DataError,
    problems_message,
)
from accessibility.labels import is_unnamed, unnamed

__all__ = [
    "FACILITY_COLUMNS",
    "check_datum",
    "check_datum_by_names",
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


def _tag_rule_matches(tags: Mapping[str, Any], rule: str) -> bool:
    return all(_tag_matches(tags, k, v) for k, v in _parse_rule(rule))


def _vetoes(text: str, tags: Mapping[str, Any], categories: Mapping[str, Any]) -> dict[str, str]:
    """``{category id: why it is ruled out}`` from ``exclude_names`` and ``exclude_osm``."""
    out: dict[str, str] = {}
    for cid, cat in categories.items():
        excl = next((x for x in cat.exclude_names if x.casefold() in text), None) if text else None
        if excl is not None:
            out[cid] = f"name contains {excl}"
            continue
        rule = next((r for r in getattr(cat, "exclude_osm", ()) if _tag_rule_matches(tags, r)), None)
        if rule is not None:
            out[cid] = f"tag {rule}"
    return out


def classify(name: str | None, tags: Mapping[str, Any] | None, categories: Mapping[str, Any]) -> tuple[str | None, str]:
    """Classify one object into a facility category.

    First the name rules (substring match, case-insensitive) of every category in file order,
    then the OSM tag rules (``key=value``, ``key=*``, several joined by ``&``) in file order.
    A category is ruled out entirely when one of its ``exclude_names`` occurs in the name (a
    健身房 is not a public sports centre, whatever its tags say) or one of its ``exclude_osm`` tag
    rules matches (a ``leisure=fitness_centre`` with a ``brand``, a ``shop`` tagged as a gallery).

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
        ``('library', 'tag amenity=library')``, ``(None, 'no rule matched')``,
        ``(None, 'tag shop=* (excluded from museum_art)')``. A match after an exclusion records
        both: ``'tag amenity=library; excluded from museum_art: tag shop=*'``.

    Examples
    --------
    >>> from accessibility.config import Category
    >>> cats = {"sports_centre": Category("sports_centre", "体育中心", "sports centre",
    ...                                   osm=("leisure=sports_centre",), exclude_names=("fitness",),
    ...                                   exclude_osm=("brand=*",))}
    >>> classify("Uimahalli", {"leisure": "sports_centre"}, cats)
    ('sports_centre', 'tag leisure=sports_centre')
    >>> classify("Fitness 24Seven", {"leisure": "sports_centre"}, cats)
    (None, 'name contains fitness (excluded from sports_centre)')
    """
    text = (name or "").casefold()
    tags = tags or {}
    vetoed = _vetoes(text, tags, categories)
    found: tuple[str, str] | None = None
    if text:
        found = next(((cid, f"name contains {rule}") for cid, cat in categories.items() if cid not in vetoed
                      for rule in cat.names if rule.casefold() in text), None)
    if found is None and tags:
        found = next(((cid, f"tag {rule}") for cid, cat in categories.items() if cid not in vetoed
                      for rule in cat.osm if _tag_rule_matches(tags, rule)), None)
    if found is not None:
        cid, reason = found
        notes = [f"excluded from {c}: {why}" for c, why in vetoed.items() if _could_match(text, tags, categories[c])]
        return cid, "; ".join([reason, *notes])
    # the exclusion of a category whose own rules would have matched, else a name exclusion
    cid = next((c for c in vetoed if _could_match(text, tags, categories[c])),
               next((c for c, why in vetoed.items() if why.startswith("name")), None))
    if cid is not None:
        return None, f"{vetoed[cid]} (excluded from {cid})"
    return None, "no rule matched"


def _could_match(text: str, tags: Mapping[str, Any], cat: Any) -> bool:
    """Whether a category's own rules would have matched (so its exclusion is worth recording)."""
    return (bool(text) and any(r.casefold() in text for r in cat.names)) or any(
        _tag_rule_matches(tags, r) for r in cat.osm)


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
    """Placeholder name of an unnamed facility, in the area's language (:func:`labels.unnamed`)."""
    cat = config.categories.get(category)
    zh, en = (cat.label_zh, cat.label_en) if cat is not None else (category, category)
    return unnamed(zh, en, getattr(config, "language", "bilingual"))


def facilities_from_osm(
    osm: Any,
    config: Any,
    *,
    status: str | None = None,
    dedupe_m: float = 50.0,
    footprint_m: float = 30.0,
) -> gpd.GeoDataFrame:
    """Classify the points of interest of an :class:`~accessibility.osm.OSMData`.

    Parameters
    ----------
    osm : OSMData
    config : AreaConfig
        Gives the categories, the circles, the projected CRS and the language of the placeholder
        names of unnamed facilities.
    status : str, optional
        Overrides ``osm.status`` (the facility source's own status).
    dedupe_m : float, default 50
        A facility mapped twice is kept once: objects of the same category and the same
        non-empty name closer than this are merged (the first kept, nodes before ways). ``0``
        keeps everything (including the footprint rule below).
    footprint_m : float, default 30
        A node inside (or this close to: an entrance or address node across the courtyard) the footprint of a building/area way of the same
        category is the same facility, however far the footprint's centroid is, when their names
        agree or one is unnamed: the node is kept (it takes the way's name if it has none).

    Returns
    -------
    geopandas.GeoDataFrame
        The Facilities contract (DESIGN.md), projected to ``config.crs``. Unclassified points of
        interest are dropped (the count is logged).

    Examples
    --------
    >>> import geopandas as gpd
    >>> from shapely.geometry import Point, box
    >>> from accessibility.config import Category
    >>> from accessibility.osm import OSMData
    >>> lib = Category("library", "图书馆", "library", osm=("amenity=library",))
    >>> class Cfg:
    ...     categories, crs, language = {"library": lib}, "EPSG:3067", "en"
    ...     def circles_for(self, category): return ["culture_15min"]
    >>> building = box(24.9500, 60.1700, 24.9510, 60.1705)  # about 55 m x 55 m
    >>> pois = gpd.GeoDataFrame({"osm_type": ["node", "way"], "osm_id": [1, 2],
    ...     "name": ["Kansalliskirjasto", "Kansalliskirjasto"],
    ...     "tags": [{"amenity": "library"}, {"amenity": "library", "building": "yes"}],
    ...     "footprint": [None, building]},
    ...     geometry=[Point(24.95001, 60.17001), building.centroid], crs="EPSG:4326")
    >>> fac = facilities_from_osm(OSMData(None, None, pois, "x.osm", "real"), Cfg())
    >>> fac["fac_id"].tolist()
    ['osm:n1']
    """
    rows = _empty_rows()
    geoms, footprints = [], []
    pois = osm.pois
    prints = pois["footprint"] if "footprint" in pois.columns else [None] * len(pois)
    for otype, oid, name, tags, geom, fp in zip(pois["osm_type"], pois["osm_id"], pois["name"],
                                                pois["tags"], pois.geometry, prints, strict=True):
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
        footprints.append(fp)
    n_drop = len(pois) - len(geoms)
    out = _frame(rows, geoms, "EPSG:4326").to_crs(config.crs)
    if dedupe_m > 0 and len(out):
        fps = gpd.GeoSeries(footprints, crs="EPSG:4326", index=out.index).to_crs(config.crs)
        out = _dedupe_footprints(out, fps, footprint_m)
        out = _dedupe(out, dedupe_m)
    logger.info("%s: %d facilities classified, %d points of interest matched no category (dropped)",
                osm.source, len(out), n_drop)
    return out.reset_index(drop=True)


def _dedupe_footprints(fac: gpd.GeoDataFrame, footprints: gpd.GeoSeries, near_m: float) -> gpd.GeoDataFrame:
    """Drop a way whose footprint holds (within ``near_m``) a node of the same facility."""
    is_way = fac["fac_id"].str.startswith("osm:w").to_numpy() & footprints.notna().to_numpy()
    if not is_way.any():
        return fac
    nodes = np.flatnonzero(fac["fac_id"].str.startswith("osm:n").to_numpy())
    ways = np.flatnonzero(is_way)
    tree = shapely.STRtree(footprints.to_numpy()[ways])
    pairs = tree.query(fac.geometry.to_numpy()[nodes], predicate="dwithin", distance=near_m)
    names = fac["name"].to_numpy(dtype=object).copy()
    drop: set[int] = set()
    for ni, wi in zip(nodes[pairs[0]], ways[pairs[1]], strict=True):
        if wi in drop or fac["category"].iat[ni] != fac["category"].iat[wi]:
            continue
        a, b = _name_key(names[ni]), _name_key(names[wi])
        if a is not None and b is not None and a != b:
            continue
        drop.add(int(wi))
        if a is None and b is not None:
            names[ni] = names[wi]
    if not drop:
        return fac
    logger.info("%d building/area ways merged into the node of the same facility inside them", len(drop))
    keep = np.ones(len(fac), dtype=bool)
    keep[sorted(drop)] = False
    return fac.assign(name=pd.Series(names, index=fac.index, dtype=object))[keep]


def _dedupe(fac: gpd.GeoDataFrame, dedupe_m: float) -> gpd.GeoDataFrame:
    keep = np.ones(len(fac), dtype=bool)
    x = fac.geometry.x.to_numpy()
    y = fac.geometry.y.to_numpy()
    order = np.argsort(fac["fac_id"].str.startswith("osm:w").to_numpy(), kind="stable")  # nodes first
    groups: dict[tuple[str, str], list[int]] = {}
    for i in order:
        name = fac["name"].iat[i]
        if is_unnamed(name):
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


def _sheet_names(path: Path) -> list[str]:
    try:
        import openpyxl

        return openpyxl.load_workbook(path, read_only=True).sheetnames
    except Exception:  # only used to word a message
        return []


def _read_table(path: Path, sheet=None) -> pd.DataFrame:
    suffix = path.suffix.lower()
    if suffix in _EXCEL:
        sheets = _sheet_names(path)
        if sheet is not None and sheets and str(sheet) not in sheets:
            raise DataError(f"{path}: options.sheet is {sheet!r} but the workbook's sheets are {sheets}: "
                            "name one of them")
        try:
            df = pd.read_excel(path, dtype=object, engine="openpyxl", sheet_name=0 if sheet is None else str(sheet))
        except Exception as exc:  # openpyxl raises several types for broken files
            raise DataError(f"{path}: cannot read this Excel file ({exc}): save it again as .xlsx") from exc
        df.attrs["other_sheets"] = [n for n in sheets if n != (sheets[0] if sheet is None else str(sheet))]
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
        v = float(value)
        return v if np.isfinite(v) else None  # 'nan'/'inf' are no coordinate or capacity
    text = str(value).strip().replace("，", ",")
    if text.count(",") == 1 and "." not in text:
        text = text.replace(",", ".")
    try:
        v = float(text)
    except ValueError:
        return None
    return v if np.isfinite(v) else None


def read_inventory(  # noqa: C901  (every row problem of an inventory gathered in one pass, each named by row)
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
    df = _read_table(path, source.options.get("sheet"))
    others = df.attrs.get("other_sheets") or []
    hint = (f" (the workbook also has sheet(s) {others}: name the right one in the source's options.sheet)"
            if others else "")
    if len(df) == 0:
        raise DataError(f"{path}: the inventory has a header but no rows{hint}: add the facilities or remove "
                        "this source from the configuration")

    mapping = {k: source.columns.get(k, k) for k in ("name", "category", "lon", "lat")}
    cap_col = source.columns.get("capacity", "capacity" if "capacity" in df.columns else None)
    missing = [f"{logical} -> column {col!r}" for logical, col in mapping.items() if col not in df.columns]
    if cap_col is not None and cap_col not in df.columns:
        missing.append(f"capacity -> column {cap_col!r}")
    if missing:
        raise DataError(problems_message(str(path), [
            f"missing column(s): {', '.join(missing)}; the file has columns {list(df.columns)}{hint}; fix "
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
            elif value is not None and value < 0:
                problems.append(f"row {r}: column {cap_col!r} is {str(raw)!r}: a capacity cannot be negative "
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
    _warn_duplicate_ids(path, df, source.columns.get("id", "id" if "id" in df.columns else None), rownum)

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
    # the same facility listed twice (a row pasted again) would be counted twice, its capacity too:
    # same name and category within 1 m -> the first row is kept, the others are named
    key = pd.DataFrame({"n": [_name_key(n) or f"#{i}" for i, n in enumerate(out["name"])],
                        "c": out["category"].to_numpy(),
                        "x": np.round(out.geometry.x.to_numpy()), "y": np.round(out.geometry.y.to_numpy())})
    dup = key.duplicated(keep="first").to_numpy()
    if dup.any():
        first = key.drop_duplicates(keep="first").reset_index().set_index(["n", "c", "x", "y"])["index"]
        pairs = [f"row {int(rownum[i])} = row {int(rownum[first.loc[tuple(key.iloc[i])]])}"
                 for i in np.flatnonzero(dup)[:5]]
        warnings.warn(f"{path}: {int(dup.sum())} row(s) repeat a facility already listed (same name and category "
                      f"at the same place: {', '.join(pairs)}{' ...' if dup.sum() > 5 else ''}); each is counted "
                      "once (remove the repeated rows to silence this)", AccessibilityWarning, stacklevel=2)
        out = out.loc[~dup].reset_index(drop=True)
    logger.info("%s: %d inventory facilities (%s coordinates)", path.name, len(out), source.coords)
    return out


def _warn_duplicate_ids(path: Path, df: pd.DataFrame, id_col: str | None, rownum: np.ndarray) -> None:
    """An inventory's own id column (``columns.id``, or a column named ``id``) repeating a value."""
    if id_col is None:
        return
    if id_col not in df.columns:
        raise DataError(f"{path}: columns.id names column {id_col!r}, which the file lacks (it has "
                        f"{list(df.columns)}): fix the 'columns' mapping of this source")
    ids = df[id_col].map(lambda v: "" if _blank(v) else str(v).strip())
    dup = ids.duplicated(keep=False).to_numpy() & (ids != "").to_numpy()
    if not dup.any():
        return
    groups = [f"{v!r} on rows {', '.join(str(int(r)) for r in rownum[(ids == v).to_numpy()])}"
              for v in pd.unique(ids[dup])]
    warnings.warn(f"{path}: column {id_col!r} gives {len(groups)} id(s) to several rows: {'; '.join(groups[:5])}"
                  f"{' ...' if len(groups) > 5 else ''}; each row is kept as its own facility: give every facility "
                  "its own id, or remove the rows that repeat one", AccessibilityWarning, stacklevel=3)


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


def _name_key(name: Any) -> str | None:
    """Normalised name for matching across sources; None for blank and unnamed placeholders.

    NFKC folds full-width letters, digits and brackets to half-width; case is folded; spaces,
    punctuation (brackets included, their content kept) and symbols are removed. The placeholders
    given to unnamed facilities (:func:`accessibility.labels.is_unnamed`) never match.
    """
    if _blank(name) or is_unnamed(name):
        return None
    text = unicodedata.normalize("NFKC", str(name)).casefold().strip()
    key = "".join(ch for ch in text if unicodedata.category(ch)[0] not in "PZSC")
    return key or None


def _points_lonlat(frame: Any, what: str) -> tuple[np.ndarray, np.ndarray]:
    """WGS-84 lon/lat of a GeoDataFrame's (point) geometries; NaN where empty."""
    if frame.crs is None:
        raise CRSMismatchError(f"{what}: the GeoDataFrame has no CRS: set it with "
                               "`gdf.set_crs(...)` (EPSG:4326 for lon/lat) before the datum check")
    geom = frame.geometry.to_crs(4326) if not frame.crs.equals("EPSG:4326") else frame.geometry
    if len(geom) and not (geom.geom_type == "Point").all():
        geom = geom.representative_point()
    lon = np.full(len(geom), np.nan)
    lat = np.full(len(geom), np.nan)
    ok = ~(geom.is_empty | geom.isna()).to_numpy()
    if ok.any():
        lon[ok] = geom[ok].x.to_numpy()
        lat[ok] = geom[ok].y.to_numpy()
    return lon, lat


_EARTH_R_M = 6371008.8


def _east_north_m(lon: np.ndarray, lat: np.ndarray, lon0: np.ndarray, lat0: np.ndarray) -> np.ndarray:
    """Metres east/north of (lon, lat) from (lon0, lat0), local equirectangular (fine below ~5 km)."""
    k = np.pi / 180 * _EARTH_R_M
    return np.column_stack([(lon - lon0) * k * np.cos(np.radians(lat0)), (lat - lat0) * k])


_COMPASS = ("north", "northeast", "east", "southeast", "south", "southwest", "west", "northwest")


def _compass(east_m: float, north_m: float) -> str:
    bearing = np.degrees(np.arctan2(east_m, north_m)) % 360
    return _COMPASS[int((bearing + 22.5) // 45) % 8]


def _split_ids(value: Any) -> list[str]:
    if _blank(value):
        return []
    return [v for v in str(value).split(";") if v]


def check_datum_by_names(  # noqa: C901  (pairs, displacement statistics and the message, kept together)
    inventory: gpd.GeoDataFrame,
    reference: gpd.GeoDataFrame,
    *,
    declared: str = "wgs84",
    min_matches: int = 3,
    max_pair_m: float = 1500.0,
    min_shift_m: float = 200.0,
    tolerance_m: float = 100.0,
    min_share: float = 0.6,
) -> str | None:
    """Detect an inventory in the wrong coordinate system from the facilities it shares with OSM.

    Planners' inventories list many facilities OSM also has, under the same names. Each
    inventory facility is paired with the nearest reference facility of the same normalised
    name (spaces, brackets and punctuation removed, full-width folded to half-width; the
    "（未命名）" placeholders never match) within ``max_pair_m``. If the pairs are typically
    (median) displaced by more than ``min_shift_m`` and at least ``min_share`` of them lie within
    ``tolerance_m`` of the displacement a coordinate-system mix-up gives at that place (e.g. the
    GCJ-02 offset, a few hundred metres in China, for GCJ-02 data declared WGS-84), the file is
    almost certainly in that other system. Unlike :func:`check_datum` this works in dense street
    grids, where a shifted point still lands next to some street.

    Parameters
    ----------
    inventory : geopandas.GeoDataFrame
        The inventory's facilities as loaded (converted from ``declared`` to WGS-84), any CRS;
        column ``name``. Rows with a non-empty ``also_in`` (set by :func:`load_facilities`
        when it merged the row with an OSM facility within its ``merge_duplicates_m``) whose
        merged ids are not in ``reference['fac_id']`` count as pairs with no displacement.
    reference : geopandas.GeoDataFrame
        The OSM facilities (WGS-84 by construction), any CRS; column ``name``.
    declared : {'wgs84', 'gcj02', 'bd09'}, default 'wgs84'
        The system the inventory's source declares (``coords``).
    min_matches : int, default 3
        Fewer name pairs than this: no verdict (None).
    max_pair_m : float, default 1500
        The farthest a same-name reference facility may be to form a pair.
    min_shift_m, tolerance_m, min_share : float
        The verdict's thresholds (see above).

    Returns
    -------
    str or None
        A warning text naming the likely system and the fix, or None when nothing looks wrong
        (or too few pairs to tell).

    Raises
    ------
    CRSMismatchError
        If either frame has no CRS.
    """
    from accessibility.coords import SYSTEMS, from_wgs84, to_wgs84

    declared = str(declared).lower().replace("-", "").replace("_", "")
    if declared not in SYSTEMS:
        raise ValueError(f"unknown coordinate system {declared!r}: use one of {', '.join(SYSTEMS)}")
    if len(inventory) == 0 or (len(reference) == 0 and "also_in" not in inventory.columns):
        return None
    ilon, ilat = _points_lonlat(inventory, "inventory")
    rlon, rlat = (_points_lonlat(reference, "reference") if len(reference)
                  else (np.empty(0), np.empty(0)))
    ref_ids = set(reference["fac_id"].astype(str)) if "fac_id" in reference.columns else set()

    by_key: dict[str, list[int]] = {}
    for j, name in enumerate(reference["name"] if len(reference) else []):
        key = _name_key(name)
        if key is not None and np.isfinite(rlon[j]) and np.isfinite(rlat[j]):
            by_key.setdefault(key, []).append(j)

    also = inventory["also_in"] if "also_in" in inventory.columns else None
    # pairs: inventory lon/lat, reference lon/lat (a merged row is its own reference)
    pi_lon, pi_lat, pr_lon, pr_lat = [], [], [], []
    for i, name in enumerate(inventory["name"]):
        if not (np.isfinite(ilon[i]) and np.isfinite(ilat[i])):
            continue
        merged = _split_ids(also.iat[i]) if also is not None else []
        if merged and not ref_ids.intersection(merged):
            pi_lon.append(ilon[i])
            pi_lat.append(ilat[i])
            pr_lon.append(ilon[i])
            pr_lat.append(ilat[i])
            continue
        key = _name_key(name)
        cand = by_key.get(key, []) if key is not None else []
        if not cand:
            continue
        cand = np.asarray(cand)
        d = np.hypot(*_east_north_m(np.full(len(cand), ilon[i]), np.full(len(cand), ilat[i]),
                                    rlon[cand], rlat[cand]).T)
        best = int(np.argmin(d))
        if d[best] <= max_pair_m:
            pi_lon.append(ilon[i])
            pi_lat.append(ilat[i])
            pr_lon.append(rlon[cand[best]])
            pr_lat.append(rlat[cand[best]])
    n_pairs = len(pi_lon)
    if n_pairs < min_matches:
        logger.debug("datum check by names: %d pairs (< %d), no verdict", n_pairs, min_matches)
        return None
    pi_lon, pi_lat, pr_lon, pr_lat = map(np.asarray, (pi_lon, pi_lat, pr_lon, pr_lat))
    shift = _east_north_m(pi_lon, pi_lat, pr_lon, pr_lat)
    if float(np.median(np.hypot(shift[:, 0], shift[:, 1]))) <= min_shift_m:
        return None

    best_verdict: tuple[int, str, np.ndarray] | None = None
    for actual in SYSTEMS:
        if actual == declared:
            continue
        # where a reference point would land if the file held `actual` coordinates read as `declared`
        ax, ay = from_wgs84(pr_lon, pr_lat, actual)
        lx, ly = to_wgs84(np.asarray(ax, dtype=float), np.asarray(ay, dtype=float), declared)
        expected = _east_north_m(np.asarray(lx, dtype=float), np.asarray(ly, dtype=float), pr_lon, pr_lat)
        fits = np.hypot(*(shift - expected).T) <= tolerance_m
        if fits.sum() >= min_share * n_pairs and (best_verdict is None or fits.sum() > best_verdict[0]):
            best_verdict = (int(fits.sum()), actual, fits)
    if best_verdict is None:
        return None
    n_fit, actual, fits = best_verdict
    med = np.median(shift[fits], axis=0)
    dist = float(np.median(np.hypot(shift[fits, 0], shift[fits, 1])))
    label = {"wgs84": "WGS-84", "gcj02": "GCJ-02", "bd09": "BD-09"}
    what = (f"the {label[actual]} offset" if declared == "wgs84"
            else f"what {label[actual]} coordinates read as {label[declared]} give")
    return (f"{n_fit} of {n_pairs} facilities that also appear in OSM (same name) sit ~{dist:.0f} m "
            f"{_compass(float(med[0]), float(med[1]))} of their OSM position, {what}: this file looks "
            f"like {label[actual]} declared as {label[declared]}; declare `coords: {actual}`")


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
    merge_duplicates_m: float = 100.0,
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
    merge_duplicates_m : float, default 100
        A facility listed both in an inventory and in OSM (same normalised name, same category,
        at most this far apart) is kept once: the inventory's row (planners trust their own
        list, and it carries the capacity), whose ``also_in`` lists the ids of the merged OSM facilities.
        An OSM facility merges into the nearest such inventory row. ``0`` keeps everything.

    Returns
    -------
    geopandas.GeoDataFrame
        The Facilities contract, projected to ``config.crs``, index 0..n-1, plus ``also_in``
        (str, ``;``-joined ids of OSM facilities merged into the row, ``""`` if none).
    """
    from accessibility.osm import read_osm

    cache = osm_cache if osm_cache is not None else {}
    parts = []
    kinds = []
    for src in config.facility_sources:
        kinds.append(src.kind)
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
        return _with_also_in(_frame(_empty_rows(), [], config.crs))
    is_inv = np.concatenate([np.full(len(p), k == "inventory") for p, k in zip(parts, kinds, strict=True)])
    out = pd.concat(parts, ignore_index=True)
    out = gpd.GeoDataFrame(out, geometry="geometry", crs=config.crs)
    dup = out["fac_id"].duplicated()
    if dup.any():
        raise DataError("facility ids repeat across sources: "
                        f"{sorted(out.loc[dup, 'fac_id'])[:5]}: two sources point to the same file?")
    out = _with_also_in(out)
    if merge_duplicates_m > 0 and is_inv.any() and not is_inv.all():
        out = _merge_cross_source(out, is_inv, merge_duplicates_m)
    return out


def _with_also_in(fac: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    fac = fac.copy()
    fac.insert(fac.columns.get_loc("geometry"), "also_in", pd.Series([""] * len(fac), index=fac.index,
                                                                     dtype=object))
    return fac


def _merge_cross_source(fac: gpd.GeoDataFrame, is_inv: np.ndarray, merge_m: float) -> gpd.GeoDataFrame:
    """Drop OSM rows that an inventory row lists too; the inventory row records them in ``also_in``."""
    keys = [_name_key(n) for n in fac["name"]]
    cats = fac["category"].astype(object).tolist()
    x = fac.geometry.x.to_numpy()
    y = fac.geometry.y.to_numpy()
    inv_by_key: dict[tuple[str, str], list[int]] = {}
    for i in np.flatnonzero(is_inv):
        if keys[i] is not None and cats[i] is not None:
            inv_by_key.setdefault((keys[i], cats[i]), []).append(int(i))
    keep = np.ones(len(fac), dtype=bool)
    merged: dict[int, list[str]] = {}
    for j in np.flatnonzero(~is_inv):
        cand = inv_by_key.get((keys[j], cats[j])) if keys[j] is not None else None
        if not cand:
            continue
        d = np.hypot(x[cand] - x[j], y[cand] - y[j])
        best = int(np.argmin(d))
        if d[best] <= merge_m:
            keep[j] = False
            merged.setdefault(cand[best], []).append(str(fac["fac_id"].iat[j]))
    if not merged:
        return fac
    also = fac["also_in"].tolist()
    for i, ids in merged.items():
        also[i] = ";".join(ids)
    fac = fac.assign(also_in=pd.Series(also, index=fac.index, dtype=object))
    logger.info("%d OSM facilities also listed in an inventory (same name and category within %g m) "
                "merged into %d inventory rows (kept; see column also_in)",
                int((~keep).sum()), merge_m, len(merged))
    return fac[keep].reset_index(drop=True)
