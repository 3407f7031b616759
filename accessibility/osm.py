"""OSM readers: local extracts (``.osm.pbf``, ``.osm``, ``.osm.bz2``, ``.osm.gz``) and Overpass.

Both readers return the same :class:`OSMData` (see DESIGN.md, "Data contracts"):

- :func:`read_osm` streams a local file once with pyosmium (node locations are cached by
  libosmium, untagged nodes never reach Python), keeps the ways tagged ``highway`` and every
  tagged object that is a point of interest;
- :func:`fetch_overpass` downloads the walking network and the points of interest of a polygon
  through osmnx, whose answers are cached on disk keyed by the request, so a second run works
  offline. Error answers (HTTP errors, rate limiting, Overpass "remark" errors) are refused and
  never cached.
"""

from __future__ import annotations

import contextlib
import logging
import math
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
from shapely.geometry import LineString, Point, Polygon

from accessibility._errors import CRSMismatchError, DataError

__all__ = [
    "OSMData", "POI_KEYS", "SUPPORTED_FORMATS", "admin_areas", "fetch_admin_boundaries", "fetch_overpass",
    "is_poi", "read_osm"]

logger = logging.getLogger(__name__)

#: Tag keys that make an object a point of interest (besides having a ``name``).
POI_KEYS: tuple[str, ...] = (
    "amenity",
    "leisure",
    "healthcare",
    "social_facility",
    "tourism",
    "sport",
    "office",
    "club",
)

#: File name endings pyosmium reads, as listed in error messages.
SUPPORTED_FORMATS: tuple[str, ...] = (".osm.pbf", ".pbf", ".osm", ".osm.bz2", ".osm.gz")

from accessibility.config import STATUSES as _STATUSES  # noqa: E402  (one list of layer statuses)

#: Edge attributes osmnx adds itself; they are not OSM tags.
_OSMNX_EDGE_ATTRS = {"osmid", "oneway", "reversed", "length", "geometry", "key"}

#: Way tags kept on Overpass edges on top of osmnx's defaults (walking needs them).
_EXTRA_WAY_TAGS = ("foot", "sidewalk", "footway", "incline", "step_count", "surface", "lit",
                   "ramp", "wheelchair", "level", "layer", "covered", "indoor")


@dataclass
class OSMData:
    """OSM objects needed by the network and facility loaders.

    Attributes
    ----------
    nodes : pandas.DataFrame
        Index ``id`` (int64 OSM node id); columns ``lon``, ``lat`` (float64, WGS-84). Holds the
        nodes of the kept ways and the point-of-interest nodes.
    ways : pandas.DataFrame
        Columns ``id`` (int64), ``refs`` (numpy int64 array of node ids, every one in ``nodes``),
        ``tags`` (dict). Only ways tagged ``highway``. From Overpass, each row is one two-node
        segment and ``id`` (the OSM way id) repeats along a way.
    pois : geopandas.GeoDataFrame
        EPSG:4326; columns ``osm_type`` ('node' | 'way'), ``osm_id`` (int64), ``name``
        (str or None), ``tags`` (dict), ``geometry`` (Point; ways give their centroid),
        ``footprint`` (shapely Polygon in WGS-84 for closed ways - a building or area - else
        None; not a geometry column). Frames without ``footprint`` are accepted downstream.
    source : str
        File name, or ``'overpass'``.
    status : str
        ``'real'`` or ``'synthetic'``.
    """

    nodes: pd.DataFrame
    ways: pd.DataFrame
    pois: gpd.GeoDataFrame
    source: str
    status: str


# ---------------------------------------------------------------------------------------------
# shared helpers


def _check_status(status: str) -> None:
    if status not in _STATUSES:
        raise ValueError(f"status is {status!r}: use one of {', '.join(map(repr, _STATUSES))}")


def is_poi(tags: dict[str, str], *, is_way: bool) -> bool:
    """Whether an object with these tags is a point of interest.

    Anything with a ``name`` or one of :data:`POI_KEYS` counts, except plain highway ways
    (a named street is not a facility).
    """
    has_key = any(k in tags for k in POI_KEYS)
    if is_way and "highway" in tags:
        return has_key
    return has_key or "name" in tags


def _poi_name(tags: dict[str, str]) -> str | None:
    for key in ("name", "name:zh", "name:zh-Hans", "official_name", "name:en"):
        value = tags.get(key)
        if value:
            return str(value)
    return None


def _way_geometry(lons: list[float], lats: list[float]) -> tuple[Point, Polygon | None]:
    """``(centroid, footprint)`` of a way: the footprint is its polygon when closed and valid."""
    if len(lons) >= 4 and lons[0] == lons[-1] and lats[0] == lats[-1]:
        poly = Polygon(zip(lons, lats, strict=True))
        if poly.is_valid and poly.area > 0:
            return poly.centroid, poly
        line = LineString(zip(lons, lats, strict=True))
        return line.centroid, None
    return Point(float(np.mean(lons)), float(np.mean(lats))), None


def _empty_pois() -> gpd.GeoDataFrame:
    return _pois_frame([])


def _pois_frame(rows: list[dict[str, Any]]) -> gpd.GeoDataFrame:
    df = pd.DataFrame(
        {
            "osm_type": pd.Series([r["osm_type"] for r in rows], dtype=object),
            "osm_id": pd.Series([r["osm_id"] for r in rows], dtype="int64"),
            "name": pd.Series([r["name"] for r in rows], dtype=object),
            "tags": pd.Series([r["tags"] for r in rows], dtype=object),
            "footprint": pd.Series([r.get("footprint") for r in rows], dtype=object),
        }
    )
    return gpd.GeoDataFrame(df, geometry=[r["geometry"] for r in rows], crs="EPSG:4326")


def _nodes_frame(ids: np.ndarray, lons: np.ndarray, lats: np.ndarray) -> pd.DataFrame:
    ids = np.asarray(ids, dtype=np.int64)
    uniq, first = np.unique(ids, return_index=True)
    return pd.DataFrame(
        {"lon": np.asarray(lons, dtype=np.float64)[first], "lat": np.asarray(lats, dtype=np.float64)[first]},
        index=pd.Index(uniq, dtype="int64", name="id"),
    )


def _ways_frame(ids: list[int], refs: list[np.ndarray], tags: list[dict]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "id": pd.Series(ids, dtype="int64"),
            "refs": pd.Series(refs, dtype=object),
            "tags": pd.Series(tags, dtype=object),
        }
    )


# ---------------------------------------------------------------------------------------------
# local files


def _format_ok(path: Path) -> bool:
    name = path.name.lower()
    return any(name.endswith(s) for s in SUPPORTED_FORMATS)


def read_osm(  # noqa: C901  (one streaming pass over the extract: node, way and POI handlers)
    path: str | Path,
    *,
    status: str = "real",
    progress: bool = False,
    require_streets: bool = True,
) -> OSMData:
    """Read an OSM extract into :class:`OSMData`.

    Parameters
    ----------
    path : str or Path
        An ``.osm.pbf``, ``.osm``, ``.osm.bz2`` or ``.osm.gz`` file.
    status : {'real', 'synthetic'}, default 'real'
        Recorded on the result.
    progress : bool, default False
        Show a progress bar (objects read).
    require_streets : bool, default True
        Raise when the file has no ``highway`` way. ``False`` is for files read only for their
        points of interest.

    Returns
    -------
    OSMData

    Raises
    ------
    DataError
        The file is missing, unreadable or corrupt, or holds no walkable streets.
    """
    import osmium

    _check_status(status)
    path = Path(path)
    supported = ", ".join(SUPPORTED_FORMATS)
    if not path.exists():
        raise DataError(f"{path}: OSM file not found: check the path in the study-area configuration "
                        "(sources.network.path), or run `accessibility fetch` to download the area")
    if not path.is_file():
        raise DataError(f"{path}: is a folder, not an OSM file: point to a file ({supported})")
    if not _format_ok(path):
        raise DataError(f"{path}: unsupported file type {path.suffix!r}: OSM data must be one of "
                        f"{supported} (convert with `osmium cat in.xyz -o out.osm.pbf`)")

    way_ids: list[int] = []
    way_refs: list[np.ndarray] = []
    way_tags: list[dict[str, str]] = []
    node_ids: list[np.ndarray] = []
    node_lons: list[np.ndarray] = []
    node_lats: list[np.ndarray] = []
    poi_rows: list[dict[str, Any]] = []
    n_missing = 0
    n_short = 0
    n_objects = 0

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(desc=f"reading {path.name}", unit=" objects", leave=False)
    try:
        fp = (
            osmium.FileProcessor(str(path), osmium.osm.NODE | osmium.osm.WAY)
            .with_locations()
            .with_filter(osmium.filter.EmptyTagFilter())
        )
        for obj in fp:
            n_objects += 1
            if bar is not None and n_objects % 10000 == 0:
                bar.update(10000)
            tags = {t.k: t.v for t in obj.tags}
            if obj.is_node():
                if not is_poi(tags, is_way=False) or not obj.location.valid():
                    continue
                lon, lat = obj.location.lon, obj.location.lat
                poi_rows.append({"osm_type": "node", "osm_id": obj.id, "name": _poi_name(tags),
                                 "tags": tags, "geometry": Point(lon, lat)})
                node_ids.append(np.array([obj.id], dtype=np.int64))
                node_lons.append(np.array([lon]))
                node_lats.append(np.array([lat]))
                continue
            highway = "highway" in tags
            poi = is_poi(tags, is_way=True)
            if not (highway or poi):
                continue
            refs, lons, lats = [], [], []
            for nd in obj.nodes:
                loc = nd.location
                if loc.valid():
                    refs.append(nd.ref)
                    lons.append(loc.lon)
                    lats.append(loc.lat)
                else:
                    n_missing += 1
            if poi and refs:
                point, footprint = _way_geometry(lons, lats)
                poi_rows.append({"osm_type": "way", "osm_id": obj.id, "name": _poi_name(tags),
                                 "tags": tags, "geometry": point, "footprint": footprint})
            if highway and len(refs) < 2:
                n_short += 1
            elif highway:
                way_ids.append(obj.id)
                way_refs.append(np.asarray(refs, dtype=np.int64))
                way_tags.append(tags)
                node_ids.append(way_refs[-1])
                node_lons.append(np.asarray(lons))
                node_lats.append(np.asarray(lats))
    except RuntimeError as exc:  # libosmium reports every read/parse problem as RuntimeError
        raise DataError(
            f"{path}: cannot read this OSM file ({exc}). It may be truncated, corrupt or not OSM "
            f"data; supported formats: {supported}. Fix: download the extract again (or check it "
            "with `osmium fileinfo`)."
        ) from exc
    finally:
        if bar is not None:
            bar.close()

    if n_missing:
        logger.warning("%s: %d way node reference(s) have no node in the file (clipped extract); "
                       "they were left out of their ways; %d highway way(s) kept fewer than 2 nodes "
                       "and were dropped", path.name, n_missing, n_short)
    if require_streets and not way_ids:
        raise DataError(f"no walkable streets found in {path}; is this the right extract? "
                        "(the file has no ways tagged 'highway')")
    if node_ids:
        nodes = _nodes_frame(np.concatenate(node_ids), np.concatenate(node_lons), np.concatenate(node_lats))
    else:
        nodes = _nodes_frame(np.zeros(0, np.int64), np.zeros(0), np.zeros(0))
    ways = _ways_frame(way_ids, way_refs, way_tags)
    pois = _pois_frame(poi_rows)
    logger.info("%s: %d highway ways, %d nodes, %d points of interest", path.name, len(ways),
                len(nodes), len(pois))
    return OSMData(nodes=nodes, ways=ways, pois=pois, source=path.name, status=status)


def admin_areas(path: str | Path, *, admin_level: str | None = None) -> gpd.GeoDataFrame:
    """Administrative areas (``boundary=administrative`` relations and closed ways) of a local extract.

    Multipolygons are assembled by libosmium; a relation whose members are cut off by the
    extract's edge is incomplete and left out (libosmium cannot close it).

    Parameters
    ----------
    path : str or Path
        An OSM file (see :data:`SUPPORTED_FORMATS`).
    admin_level : str, optional
        Keep only this ``admin_level``.

    Returns
    -------
    geopandas.GeoDataFrame
        EPSG:4326; ``osm_type`` ('relation'|'way'), ``osm_id``, ``admin_level``, ``name``,
        ``name_en``, ``ref``, geometry (MultiPolygon).
    """
    import osmium
    import shapely.wkb
    from osmium.geom import WKBFactory

    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: OSM file not found")
    factory = WKBFactory()
    rows = []
    try:
        fp = (osmium.FileProcessor(str(path)).with_areas(osmium.filter.KeyFilter("boundary"))
              .with_filter(osmium.filter.EntityFilter(osmium.osm.AREA)))
        for area in fp:
            tags = {t.k: t.v for t in area.tags}
            if tags.get("boundary") != "administrative":
                continue
            if admin_level is not None and tags.get("admin_level") != str(admin_level):
                continue
            try:
                geom = shapely.wkb.loads(factory.create_multipolygon(area), hex=True)
            except RuntimeError:  # an invalid ring that libosmium could not build
                continue
            rows.append({"osm_type": "way" if area.from_way() else "relation", "osm_id": int(area.orig_id()),
                         "admin_level": tags.get("admin_level", ""), "name": tags.get("name", ""),
                         "name_en": tags.get("name:en", ""), "ref": tags.get("ref", ""), "geometry": geom})
    except RuntimeError as exc:
        raise DataError(f"{path}: cannot read this OSM file ({exc})") from exc
    cols = ["osm_type", "osm_id", "admin_level", "name", "name_en", "ref"]
    return gpd.GeoDataFrame(pd.DataFrame(rows, columns=[*cols, "geometry"])[cols],
                            geometry=[r["geometry"] for r in rows], crs="EPSG:4326")


# ---------------------------------------------------------------------------------------------
# Overpass (through osmnx)


class _OverpassAnswerError(Exception):
    """Raised from a requests hook when the Overpass server answers with an error."""

    def __init__(self, url: str, message: str):
        super().__init__(message)
        self.url = url


def _refuse_error_answers(response, *args, **kwargs):  # noqa: ARG001 (requests hook signature)
    """requests response hook: turn Overpass error answers into an exception.

    osmnx itself sleeps and retries forever on 429/504, and hands a JSON error body of other
    HTTP errors (or an answer with a runtime-error "remark") on as if it were data. Raising here
    stops both; nothing reaches osmnx's cache.
    """
    url = str(response.url)
    if not url.split("?")[0].rstrip("/").endswith("/interpreter"):
        return response
    if not response.ok:
        body = " ".join(response.text[:300].split())
        hint = {
            429: "the server is rate limiting you: wait a few minutes and retry",
            504: "the server is busy: retry later or use another Overpass server",
        }.get(response.status_code, "retry later, or use another Overpass server")
        raise _OverpassAnswerError(
            url, f"HTTP {response.status_code} {response.reason} ({hint}); answer began: {body!r}"
        )
    tail = response.content[-2000:]
    if b'"remark"' in tail:
        try:
            remark = str(response.json().get("remark", ""))
        except ValueError:
            remark = tail.decode("utf-8", "replace")
        if "error" in remark.lower():
            raise _OverpassAnswerError(
                url, f"the answer is incomplete, the server remarked {remark!r} (a larger "
                "timeout_s, a smaller polygon or a quieter server may help)"
            )
    return response


@contextlib.contextmanager
def _osmnx_settings(**changes: Any) -> Iterator[Any]:
    """Set osmnx settings for the block and restore them (and ``socket.getaddrinfo``) after."""
    import osmnx as ox

    old = {k: getattr(ox.settings, k) for k in changes}
    old_getaddrinfo = socket.getaddrinfo  # osmnx's DNS pinning replaces it globally
    try:
        for k, v in changes.items():
            setattr(ox.settings, k, v)
        yield ox
    finally:
        for k, v in old.items():
            setattr(ox.settings, k, v)
        socket.getaddrinfo = old_getaddrinfo


@contextlib.contextmanager
def _overpass_errors(query: str, url: str, cache_dir: Path, fix: str) -> Iterator[None]:
    """Turn refused answers and unreachable servers into one DataError each (nothing is cached)."""
    import requests

    try:
        yield
    except _OverpassAnswerError as exc:
        raise DataError(f"Overpass server {exc.url.split('?')[0]} refused the {query} query: {exc}. "
                        "Nothing was cached.") from exc
    except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
        raise DataError(f"cannot reach the Overpass server {url} for the {query} query "
                        f"({type(exc).__name__}) and no cached answer for this area is in {cache_dir}: "
                        f"{fix}") from exc


def _guarded_settings(cache_dir: Path, timeout_s: float) -> dict[str, Any]:
    """osmnx settings for one cached, error-refusing Overpass session."""
    import osmnx as ox

    req_kwargs = dict(ox.settings.requests_kwargs)
    hooks = dict(req_kwargs.get("hooks") or {})
    prior = hooks.get("response")
    prior_list = [] if prior is None else (list(prior) if isinstance(prior, (list, tuple)) else [prior])
    hooks["response"] = [*prior_list, _refuse_error_answers]
    req_kwargs["hooks"] = hooks
    useful = list(ox.settings.useful_tags_way)
    useful += [t for t in _EXTRA_WAY_TAGS if t not in useful]
    return {
        "cache_folder": cache_dir,
        "use_cache": True,
        "cache_only_mode": False,
        "requests_timeout": timeout_s,
        "requests_kwargs": req_kwargs,
        "useful_tags_way": useful,
        "log_console": False,
    }


def fetch_admin_boundaries(polygon_wgs84: Any, *, cache_dir: str | Path, admin_level: str = "8",
                           timeout_s: float = 180) -> gpd.GeoDataFrame:
    """OSM administrative boundaries inside a polygon, through osmnx/Overpass (cached).

    For street/town units (admin_level 8 in China) when no unit polygons are supplied; pass the
    result to :func:`accessibility.units.units_from_osm_admin`. Error answers are refused and
    never cached, as in :func:`fetch_overpass`.

    Returns
    -------
    geopandas.GeoDataFrame
        EPSG:4326 features with tag columns (``boundary``, ``admin_level``, ``name``, ``ref`` ...).
    """
    _check_polygon(polygon_wgs84)
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    with _osmnx_settings(**_guarded_settings(cache_dir, timeout_s)) as ox:
        url = ox.settings.overpass_url
        try:
            with _overpass_errors("boundary", url, cache_dir, "retry when online, or give the unit "
                                  "polygons as a file (sources.units.kind: vector)"):
                feats = ox.features_from_polygon(
                    polygon_wgs84, tags={"boundary": "administrative", "admin_level": str(admin_level)})
        except ox._errors.InsufficientResponseError as exc:
            raise DataError(f"no admin_level={admin_level} boundaries in the Overpass answer from {url} "
                            "for this polygon: give the unit polygons as a file (sources.units.kind: "
                            "vector)") from exc
    return feats


def _isnull(value: Any) -> bool:
    if value is None:
        return True
    return isinstance(value, float) and math.isnan(value)


def _tag_text(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ";".join(str(v) for v in value)
    return str(value)


def _check_polygon(polygon: Any) -> None:
    from shapely.geometry import MultiPolygon

    if not isinstance(polygon, (Polygon, MultiPolygon)):
        raise DataError(f"fetch_overpass needs a shapely Polygon or MultiPolygon, got {type(polygon).__name__}: "
                        "pass the study-area boundary (e.g. boundary.to_crs(4326).union_all())")
    minx, miny, maxx, maxy = polygon.bounds
    if not (-180 <= minx <= maxx <= 180 and -90 <= miny <= maxy <= 90):
        raise CRSMismatchError(
            f"the polygon given to fetch_overpass has bounds {polygon.bounds}, which are not "
            "WGS-84 longitude/latitude: reproject it first (gdf.to_crs('EPSG:4326'))"
        )
    if not polygon.is_valid:
        raise DataError("the polygon given to fetch_overpass is not valid: repair it first "
                        "(shapely.make_valid or geometry.buffer(0))")


def fetch_overpass(
    polygon_wgs84: Any,
    *,
    cache_dir: str | Path,
    status: str = "real",
    timeout_s: float = 180,
    tags: dict[str, bool | str | list[str]] | None = None,
) -> OSMData:
    """Download the walking network and points of interest of a polygon (online).

    Uses osmnx with ``ox.settings.cache_folder = cache_dir`` and ``use_cache = True``: each
    Overpass answer is stored under ``cache_dir`` keyed by the request (server URL and query),
    so the same call later runs offline. Error answers are refused and never cached. The
    Overpass server is ``ox.settings.overpass_url``. osmnx settings changed here are restored
    afterwards.

    Parameters
    ----------
    polygon_wgs84 : shapely Polygon or MultiPolygon
        Study-area boundary in WGS-84 longitude/latitude.
    cache_dir : str or Path
        Folder of the Overpass answer cache (``data/raw/<area>/overpass_cache``).
    status : {'real', 'synthetic'}, default 'real'
    timeout_s : float, default 180
        HTTP timeout and Overpass ``[timeout:]``; part of the query, so changing it misses
        the cache.
    tags : dict, optional
        osmnx ``tags`` of the points-of-interest query; default every :data:`POI_KEYS` key.

    Returns
    -------
    OSMData
        ``source='overpass'``. Ways are two-node segments (one per graph edge, both directions
        merged) with the edge's OSM tags (``highway``, ``name``, ``foot``, ``access``, ...).

    Raises
    ------
    DataError
        The server cannot be reached and nothing is cached, the server answers with an error,
        or the area has no walkable streets.
    """

    _check_status(status)
    _check_polygon(polygon_wgs84)
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    poi_tags = dict(tags) if tags is not None else dict.fromkeys(POI_KEYS, True)

    changes = _guarded_settings(cache_dir, timeout_s)
    with _osmnx_settings(**changes) as ox:
        url = ox.settings.overpass_url
        try:
            with _overpass_errors("street-network", url, cache_dir, "run `accessibility fetch` when "
                                  "online, or use a local extract (sources.network.kind: osm_file)"):
                graph = ox.graph_from_polygon(polygon_wgs84, network_type="walk", simplify=False,
                                              retain_all=True, truncate_by_edge=True)
        except ox._errors.InsufficientResponseError as exc:
            raise DataError(f"no walkable streets found in the Overpass answer from {url} for this "
                            f"polygon ({exc}); is the polygon the study area, in lon/lat?") from exc
        try:
            with _overpass_errors("points-of-interest", url, cache_dir, "retry when online"):
                feats = ox.features_from_polygon(polygon_wgs84, tags=poi_tags)
        except ox._errors.InsufficientResponseError:
            logger.warning("Overpass: no points of interest (%s) in the polygon", ", ".join(poi_tags))
            feats = None

    nodes, ways = _graph_to_tables(graph)
    pois = _features_to_pois(feats)
    if len(ways) == 0:
        raise DataError(f"no walkable streets found in the Overpass answer from {url}; "
                        "is the polygon the study area?")
    # POI nodes join the node table (the contract: nodes hold POI nodes too)
    pnodes = pois[pois["osm_type"] == "node"]
    if len(pnodes):
        extra = pd.DataFrame({"lon": pnodes.geometry.x.to_numpy(), "lat": pnodes.geometry.y.to_numpy()},
                             index=pd.Index(pnodes["osm_id"].to_numpy(), dtype="int64", name="id"))
        extra = extra[~extra.index.isin(nodes.index)]
        nodes = pd.concat([nodes, extra]).sort_index()
    logger.info("Overpass: %d street segments, %d nodes, %d points of interest", len(ways),
                len(nodes), len(pois))
    return OSMData(nodes=nodes, ways=ways, pois=pois, source="overpass", status=status)


def _graph_to_tables(graph: Any) -> tuple[pd.DataFrame, pd.DataFrame]:
    """osmnx MultiDiGraph -> (nodes, two-node ways); both directions of a segment merge."""
    ids = np.fromiter(graph.nodes, dtype=np.int64, count=graph.number_of_nodes())
    lons = np.array([graph.nodes[n]["x"] for n in graph.nodes], dtype=np.float64)
    lats = np.array([graph.nodes[n]["y"] for n in graph.nodes], dtype=np.float64)
    nodes = _nodes_frame(ids, lons, lats)

    seen: dict[tuple[int, int, int], int] = {}
    way_ids: list[int] = []
    refs: list[np.ndarray] = []
    tags: list[dict[str, str]] = []
    for u, v, data in graph.edges(data=True):
        osmid = data.get("osmid")
        if isinstance(osmid, (list, tuple)):
            osmid = osmid[0]
        osmid = int(osmid)
        key = (min(u, v), max(u, v), osmid)
        forward = not bool(data.get("reversed", False))
        pair = np.array([u, v] if forward else [v, u], dtype=np.int64)
        row_tags = {k: _tag_text(val) for k, val in data.items()
                    if k not in _OSMNX_EDGE_ATTRS and not _isnull(val)}
        if key in seen:
            if forward:  # prefer the edge in the way's own node order
                refs[seen[key]] = pair
            continue
        seen[key] = len(way_ids)
        way_ids.append(osmid)
        refs.append(pair)
        tags.append(row_tags)
    return nodes, _ways_frame(way_ids, refs, tags)


def _features_to_pois(feats: gpd.GeoDataFrame | None) -> gpd.GeoDataFrame:
    if feats is None or len(feats) == 0:
        return _empty_pois()
    df = feats.reset_index()
    n_rel = int((df["element"] == "relation").sum())
    if n_rel:
        logger.info("Overpass: %d relation feature(s) skipped (only nodes and ways are used)", n_rel)
    df = df[df["element"].isin(["node", "way"])]
    tag_cols = [c for c in df.columns if c not in ("element", "id", "geometry", "nodes", "ways")]
    rows = []
    for (etype, oid), rec, geom in zip(
        zip(df["element"], df["id"], strict=True),
        df[tag_cols].to_dict("records"),
        df.geometry,
        strict=True,
    ):
        tags = {k: _tag_text(v) for k, v in rec.items() if not _isnull(v)}
        if etype == "way" and not is_poi(tags, is_way=True):
            continue
        point = geom if isinstance(geom, Point) else geom.centroid
        footprint = geom if geom is not None and geom.geom_type in ("Polygon", "MultiPolygon") else None
        rows.append({"osm_type": etype, "osm_id": int(oid), "name": _poi_name(tags), "tags": tags,
                     "geometry": point, "footprint": footprint})
    return _pois_frame(rows)
