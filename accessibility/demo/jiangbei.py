"""Deterministic SYNTHETIC DEMO data for the Jiangbei study area.

No real street network, facility points, street/town polygons, population grid or DEM of
Jiangbei exist offline. The default study area is therefore a REAL skeleton (the district
boundary, the 12 official unit codes and names, the 2020 census total and the real Cuntan
figure, rough anchor points) dressed with SYNTHETIC layers written in the same raw formats as
the real sources (OSM PBF, WorldPop-style and SRTM-style GeoTIFFs, a GeoPackage, CSV/XLSX
inventories in GCJ-02 and BD-09), so that the demo exercises the real loaders.

Everything comes from one ``numpy.random.default_rng(seed)``; two runs with the same seed write
byte-identical files (GeoPackage and XLSX timestamps are pinned). Every file says
``SYNTHETIC DEMO`` in its metadata, columns or properties.

Entry point: :func:`make_demo_data` (used by ``accessibility demo-data`` and
``scripts/make_demo_data.py``).
"""

from __future__ import annotations

import io
import logging
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import shapely
from pyproj import Transformer

from accessibility._errors import ConfigError, DataError
from accessibility._io import atomic_path

__all__ = ["DATA_STATUS", "DEFAULT_SEED", "make_demo_data"]

logger = logging.getLogger(__name__)

DEFAULT_SEED = 20211
DATA_STATUS = "SYNTHETIC DEMO"
FIXED_TIMESTAMP = "2021-01-01T00:00:00Z"
TOTAL_POPULATION = 925_800  # 2020 census, real
CUNTAN_CODE = "500105005"
CUNTAN_POPULATION = 67_186  # 2020 census, real
CORE_SHARE = 0.767  # the five core streets (plan)
SHARE_60PLUS = 0.191  # district 60+ share 2020 (plan)
PROJ_CRS = "EPSG:32648"
POP_RES_DEG = 1.0 / 1200.0  # 3 arc-seconds (WorldPop 100 m)
DEM_RES_DEG = 1.0 / 3600.0  # 1 arc-second (SRTM 30 m)
DEM_MIN_M, DEM_MAX_M = 152, 679

# the five core streets: 华新街, 石马河, 大石坝, 观音桥, 五里店
CORE_CODES = ("500105001", "500105003", "500105004", "500105006", "500105007")

# Per-unit synthetic population targets: the core five sum to 76.7 % of 925,800 (710,089),
# Cuntan keeps its real figure, the rest is spread over the other six units.
_UNIT_TARGETS = {
    "500105001": 105_000,  # 华新街
    "500105003": 150_000,  # 石马河
    "500105004": 115_089,  # 大石坝
    "500105006": 215_000,  # 观音桥
    "500105007": 125_000,  # 五里店
    "500105002": 45_000,  # 江北城
    "500105005": CUNTAN_POPULATION,  # 寸滩 (real)
    "500105008": 42_000,  # 郭家沱
    "500105009": 12_500,  # 铁山坪
    "500105100": 22_000,  # 鱼嘴
    "500105101": 13_000,  # 复盛
    "500105102": 14_025,  # 五宝
}
# Raw 60+ shares (older in old core streets and outer towns); shifted to a weighted mean of 0.191.
_RAW_60PLUS = {
    "500105001": 0.215, "500105002": 0.140, "500105003": 0.190, "500105004": 0.225,
    "500105005": 0.165, "500105006": 0.180, "500105007": 0.205, "500105008": 0.195,
    "500105009": 0.215, "500105100": 0.175, "500105101": 0.235, "500105102": 0.245,
}
# Street network: (intersection spacing m, layout) per unit; "grid" = jittered grid, "random" = villages.
_UNIT_NETWORK = {
    "500105001": (105.0, "grid"), "500105003": (110.0, "grid"), "500105004": (125.0, "grid"),
    "500105006": (100.0, "grid"), "500105007": (115.0, "grid"), "500105002": (135.0, "grid"),
    "500105005": (170.0, "grid"), "500105008": (190.0, "grid"), "500105009": (420.0, "random"),
    "500105100": (560.0, "random"), "500105101": (620.0, "random"), "500105102": (650.0, "random"),
}
# Town/street centres of the outer units get a denser grid of this spacing within this radius.
_CENTRE_GRID = {"500105009": (170.0, 600.0), "500105100": (150.0, 1100.0),
                "500105101": (170.0, 650.0), "500105102": (170.0, 700.0),
                "500105008": (150.0, 900.0), "500105005": (150.0, 800.0)}

# Rivers and ridges (WGS-84 reference points; synthetic geometry)
_CONFLUENCE = (106.586, 29.566)  # 朝天门: Jialing joins the Yangtze
_CHAOYANG_RIVER = [(106.800, 29.700), (106.797, 29.675), (106.806, 29.655), (106.796, 29.635),
                   (106.808, 29.612), (106.801, 29.592), (106.803, 29.570)]
_TONGLUO_CREST = [(106.676, 29.540), (106.680, 29.580), (106.690, 29.620), (106.696, 29.660),
                  (106.700, 29.700)]
_MINGYUE_CREST = [(106.868, 29.560), (106.874, 29.600), (106.884, 29.640), (106.895, 29.690)]
_TIESHANPING_PARK = (106.688, 29.622, 2300.0, 1500.0)  # centre lon/lat, semi-axes N-S / E-W (m)
_PARKS = [  # core parks: no streets inside, one disconnected footway compound each
    ("鸿恩寺公园", 106.518, 29.590, 230.0),
    ("江北嘴中央公园", 106.578, 29.574, 170.0),
    ("北滨公园", 106.548, 29.571, 120.0),
]
_EXPRESSWAY = [(106.458, 29.600), (106.500, 29.604), (106.545, 29.598), (106.585, 29.603),
               (106.625, 29.612), (106.668, 29.612), (106.712, 29.606), (106.760, 29.622),
               (106.820, 29.625), (106.858, 29.618)]

_STREET_STEMS = [
    "建新", "北城", "红旗", "华新", "嘉陵", "桥北", "洋河", "鲤鱼池", "塔坪", "大庆", "港城", "海尔",
    "寸滩", "石子山", "松石", "北滨", "望江", "盘溪", "五红", "南桥", "金源", "福康", "渝兴", "兴隆",
    "和平", "龙溪", "红土地", "宏帆", "刘家台", "青草坝", "鸿恩", "玉带", "桂花", "溉澜", "黄葛",
    "莺花", "观音", "建北", "建东", "东和", "复兴", "长安", "三洞", "董家", "猫儿石", "五里",
]
_STREET_SUFFIXES = ["路", "街", "大道", "北路", "南路", "东路", "西路", "一支路", "二支路", "巷", "横街"]
_FACILITY_STEMS = [
    "阳光", "春晖", "金色", "童心", "彩虹", "育才", "启航", "新星", "博雅", "晨曦", "明德", "致远",
    "蓝天", "小树苗", "欣悦", "华晨", "锦绣", "朝阳", "文星", "雅居", "和润", "康乐", "东湖", "青枫",
]


@dataclass(frozen=True)
class _Paths:
    units: Path
    network: Path
    population: Path
    census: Path
    dem: Path
    eldercare_inventory: Path
    culture_inventory: Path
    exclusion_zones: Path
    planned_projects: Path

    def as_dict(self) -> dict[str, Path]:
        return dict(self.__dict__)


# =============================================================================================
# public entry point


def make_demo_data(config, *, seed: int = DEFAULT_SEED, force: bool = False, progress: bool = True,
                   out_dir: str | Path | None = None) -> dict[str, Path]:
    """Write the Jiangbei synthetic demo layers that the area configuration names.

    Parameters
    ----------
    config : accessibility.config.AreaConfig
        The study area (``config/areas/jiangbei.yaml``). The output paths are read from
        ``sources.units/network/population/census/dem``, the inventory entries of
        ``sources.facilities``, ``siting.exclude`` and ``siting.planned_projects``; each must
        contain ``synthetic_demo`` in its file name. The real reference files (boundary, unit
        table, anchor points, communities) are read from the boundary's folder.
    seed : int, default 20211
        Seed of the single random generator; the same seed gives byte-identical files.
    force : bool, default False
        Rewrite files that exist. Without it, existing files are kept (and nothing is
        generated when all exist).
    progress : bool, default True
        Show a progress bar over the generation stages.
    out_dir : str or Path, optional
        Write every file into this folder (same file names) instead of the configured paths
        (used by the tests).

    Returns
    -------
    dict of str to Path
        Keys ``units, network, population, census, dem, eldercare_inventory,
        culture_inventory, exclusion_zones, planned_projects``.

    Raises
    ------
    ConfigError
        A configured output path is missing or does not look like a synthetic demo file.
    DataError
        A reference input (boundary, unit table, anchor points) is missing or inconsistent.
    """
    paths = _output_paths(config, out_dir)
    todo = {k: p for k, p in paths.as_dict().items() if force or not p.exists()}
    if not todo:
        logger.info("all synthetic demo files exist; nothing to do (force=True rewrites them)")
        return paths.as_dict()

    from tqdm.auto import tqdm

    stages = ["reference", "units", "rivers", "dem", "population", "network", "facilities", "write"]
    bar = tqdm(total=len(stages), desc="synthetic demo", disable=not progress)

    def step(name: str) -> None:
        bar.set_postfix_str(name)
        bar.update(1)

    rng = np.random.default_rng(seed)
    ref = _load_reference(config)
    step("reference")
    units = _make_units(ref)
    step("units")
    geo = _make_geography(ref)
    step("rivers")
    dem = _make_dem(ref, geo, rng)
    step("dem")
    pop = _make_population(ref, units, geo, dem, rng)
    census = _census_table(units, pop)
    step("population")
    net = _make_network(ref, units, geo, dem, rng)
    step("network")
    fac = _make_facilities(ref, units, pop, rng)
    inv_elder, inv_culture = _make_inventories(ref, units, pop, fac, rng)
    planned = _make_planned(ref, units, pop, rng)
    step("facilities")

    writers = {
        "units": lambda p: _write_units(p, units),
        "network": lambda p: _write_osm(p, net, fac, geo),
        "population": lambda p: _write_raster(p, pop["grid"], pop["transform"], "float32", -99999.0,
                                              "people per pixel, WorldPop-style, total 925,800"),
        "census": lambda p: _write_csv(p, census),
        "dem": lambda p: _write_raster(p, dem["grid"], dem["transform"], "int16", -32768,
                                       "elevation m, SRTM-style"),
        "eldercare_inventory": lambda p: _write_csv(p, inv_elder, encoding="utf-8-sig"),
        "culture_inventory": lambda p: _write_xlsx(p, inv_culture),
        "exclusion_zones": lambda p: _write_exclusions(p, ref, geo),
        "planned_projects": lambda p: _write_csv(p, planned),
    }
    for key in paths.as_dict():
        if key in todo:
            writers[key](todo[key])
            logger.info("wrote %s", todo[key])
    step("write")
    bar.close()
    return paths.as_dict()


# =============================================================================================
# configuration and reference inputs


def _output_paths(config, out_dir) -> _Paths:
    problems: list[str] = []

    def src(name: str) -> Path | None:
        s = config.sources.get(name)
        if s is None or s.path is None:
            problems.append(f"sources.{name}: missing; add the synthetic demo path (see config/areas/jiangbei.yaml)")
            return None
        return Path(s.path)

    found = {k: src(k) for k in ("units", "network", "population", "census", "dem")}
    inv = {"gcj02": None, "bd09": None}
    for s in config.facility_sources:
        if s.kind == "inventory" and s.coords in inv and s.path is not None:
            inv[s.coords] = Path(s.path)
    found["eldercare_inventory"] = inv["gcj02"]
    found["culture_inventory"] = inv["bd09"]
    for key, coords in (("eldercare_inventory", "gcj02"), ("culture_inventory", "bd09")):
        if found[key] is None:
            problems.append(f"sources.facilities: no inventory with coords: {coords}; add the synthetic "
                            f"{key} entry (see config/areas/jiangbei.yaml)")
    found["exclusion_zones"] = Path(config.siting.exclude[0]) if config.siting.exclude else None
    found["planned_projects"] = (Path(config.siting.planned_projects)
                                 if config.siting.planned_projects else None)
    for key in ("exclusion_zones", "planned_projects"):
        if found[key] is None:
            problems.append(f"siting.{'exclude' if key == 'exclusion_zones' else key}: missing; "
                            "add the synthetic demo path")
    for key, p in found.items():
        if p is not None and "synthetic_demo" not in p.name:
            problems.append(f"{key}: {p} does not contain 'synthetic_demo' in its name; the demo "
                            "generator refuses to write over what may be real data: point the "
                            "config at a *synthetic_demo* file")
    if problems:
        raise ConfigError(f"{config.config_path}: cannot write the synthetic demo data:\n"
                          + "\n".join(f"  - {p}" for p in problems))
    if out_dir is not None:
        found = {k: Path(out_dir) / p.name for k, p in found.items()}
    return _Paths(**found)


def _load_reference(config) -> dict[str, Any]:
    import geopandas as gpd

    bsrc = config.sources.get("boundary")
    if bsrc is None or bsrc.path is None or not Path(bsrc.path).exists():
        raise DataError(f"{config.config_path}: sources.boundary is missing or its file does not exist; "
                        "the demo needs the real district boundary (data/raw/jiangbei/reference/)")
    ref_dir = Path(bsrc.path).parent
    files = {
        "anchors": ref_dir / "units_approx_anchor_points_DEMO_ONLY.csv",
        "communities": ref_dir / "communities_nbs2023.csv",
        "units": (Path(config.sources["unit_table"].path) if "unit_table" in config.sources
                  else ref_dir / "units_nbs2023.csv"),
    }
    missing = [str(p) for p in files.values() if not p.exists()]
    if missing:
        raise DataError("synthetic demo: reference file(s) missing: " + ", ".join(missing)
                        + "; restore them from data/raw/jiangbei/reference/ (see PROVENANCE.md)")
    bnd = gpd.read_file(bsrc.path)
    if bnd.crs is None:
        raise DataError(f"{bsrc.path}: no CRS; the boundary must be WGS-84 (set_crs('EPSG:4326'))")
    bnd = bnd.to_crs("EPSG:4326")
    boundary_ll = shapely.union_all(bnd.geometry.values)
    boundary_p = shapely.union_all(bnd.to_crs(PROJ_CRS).geometry.values)
    anchors = pd.read_csv(files["anchors"], dtype={"code_nbs2023": str})
    table = pd.read_csv(files["units"], dtype={"code": str})
    comm = pd.read_csv(files["communities"], dtype={"code": str, "streetCode": str})
    problems = []
    for col in ("code_nbs2023", "name", "name_en", "lon_wgs84", "lat_wgs84"):
        if col not in anchors.columns:
            problems.append(f"{files['anchors']}: column '{col}' missing")
    if not problems:
        unknown = sorted(set(anchors.code_nbs2023) ^ set(table.code))
        if unknown:
            problems.append(f"{files['anchors']} and {files['units']}: unit codes differ: {unknown}")
        if sorted(anchors.code_nbs2023) != sorted(_UNIT_TARGETS):
            problems.append(f"{files['anchors']}: expected the 12 Jiangbei unit codes "
                            f"{sorted(_UNIT_TARGETS)}; this generator is calibrated for Jiangbei only")
    if problems:
        raise DataError("synthetic demo: " + "; ".join(problems))
    anchors = anchors.sort_values("code_nbs2023").reset_index(drop=True)
    to_p = Transformer.from_crs("EPSG:4326", PROJ_CRS, always_xy=True)
    ax, ay = to_p.transform(anchors.lon_wgs84.to_numpy(), anchors.lat_wgs84.to_numpy())
    anchors["x"], anchors["y"] = ax, ay
    comm = comm.sort_values("code").reset_index(drop=True)
    comm["short"] = comm["name"].str.replace("居民委员会", "", regex=False).str.replace(
        "村民委员会", "", regex=False)
    return {
        "boundary_ll": boundary_ll,
        "boundary_p": boundary_p,
        "anchors": anchors,
        "communities": comm,
        "to_p": to_p,
        "to_ll": Transformer.from_crs(PROJ_CRS, "EPSG:4326", always_xy=True),
    }


# =============================================================================================
# units: Voronoi partition of the anchor points clipped to the real boundary


def _make_units(ref) -> pd.DataFrame:
    import geopandas as gpd

    a = ref["anchors"]
    bnd = ref["boundary_p"]
    pts = shapely.points(a.x.to_numpy(), a.y.to_numpy())
    cells = shapely.voronoi_polygons(shapely.multipoints(pts), extend_to=bnd.envelope.buffer(20_000),
                                     ordered=True)
    cells = np.asarray(shapely.get_parts(cells))
    geoms = shapely.intersection(cells, bnd)
    geoms = shapely.make_valid(geoms)
    return gpd.GeoDataFrame(
        {
            "unit_code": a.code_nbs2023.astype(str).to_numpy(),
            "unit_name": a.name.astype(str).to_numpy(),
            "unit_name_en": a.name_en.astype(str).to_numpy(),
            "unit_kind": np.where(a.name.str.endswith("镇"), "镇", "街道"),
            "data_status": DATA_STATUS,
        },
        geometry=geoms,
        crs=PROJ_CRS,
    )


# =============================================================================================
# rivers, ridges, parks (projected geometry)


def _line_p(ref, lonlat) -> shapely.LineString:
    x, y = ref["to_p"].transform(*np.asarray(lonlat, dtype=float).T)
    return shapely.LineString(np.column_stack([x, y]))


def _make_geography(ref) -> dict[str, Any]:
    bnd = ref["boundary_p"]
    poly = max(shapely.get_parts(bnd), key=lambda g: g.area)
    ring = np.asarray(poly.exterior.coords)[:-1]
    iw, ie = int(np.argmin(ring[:, 0])), int(np.argmax(ring[:, 0]))
    n = len(ring)

    def chain(i0, i1):
        idx = [(i0 + k) % n for k in range(((i1 - i0) % n) + 1)]
        return ring[idx]

    c1, c2 = chain(iw, ie), chain(ie, iw)[::-1]
    riverside = c1 if c1[:, 1].mean() < c2[:, 1].mean() else c2  # west -> east along the south edge
    cx, cy = ref["to_p"].transform(*_CONFLUENCE)
    k = int(np.argmin(np.hypot(riverside[:, 0] - cx, riverside[:, 1] - cy)))
    jialing = shapely.LineString(riverside[: k + 1])
    yangtze = shapely.LineString(riverside[k:])
    big_water = shapely.union_all([jialing.buffer(260.0), yangtze.buffer(320.0)])
    chaoyang = _line_p(ref, _CHAOYANG_RIVER)
    # extend the tributary's mouth to the Yangtze and keep it inside the district plus the river
    chaoyang = shapely.intersection(chaoyang, bnd.buffer(300.0))
    if chaoyang.geom_type != "LineString":
        chaoyang = max(shapely.get_parts(chaoyang), key=lambda g: g.length)
    trib_water = chaoyang.buffer(22.0)
    crest = _line_p(ref, _TONGLUO_CREST)
    px, py = ref["to_p"].transform(_TIESHANPING_PARK[0], _TIESHANPING_PARK[1])
    circle = shapely.Point(px, py).buffer(1.0, quad_segs=32)
    park = shapely.affinity.scale(circle, _TIESHANPING_PARK[3], _TIESHANPING_PARK[2])
    park = shapely.intersection(park, bnd)
    parks = []
    for name, lon, lat, r in _PARKS:
        x, y = ref["to_p"].transform(lon, lat)
        parks.append((name, shapely.Point(x, y).buffer(r, quad_segs=16)))
    return {
        "jialing": jialing,
        "yangtze": yangtze,
        "chaoyang": chaoyang,
        "big_water": big_water,
        "trib_water": trib_water,
        "water": shapely.union(big_water, trib_water),
        "crest": crest,
        "forest_park": park,
        "parks": parks,
    }


# =============================================================================================
# DEM


def _grid_ll(bounds, res, margin_deg):
    west = np.floor((bounds[0] - margin_deg) / res) * res
    north = np.ceil((bounds[3] + margin_deg) / res) * res
    east = np.ceil((bounds[2] + margin_deg) / res) * res
    south = np.floor((bounds[1] - margin_deg) / res) * res
    ncol = int(round((east - west) / res))
    nrow = int(round((north - south) / res))
    lon = west + (np.arange(ncol) + 0.5) * res
    lat = north - (np.arange(nrow) + 0.5) * res
    return west, north, lon, lat


def _rasterize(geoms_ll, shape, transform, values=None):
    from rasterio.features import rasterize

    if values is None:
        values = [1] * len(geoms_ll)
    shapes = [(g, v) for g, v in zip(geoms_ll, values, strict=True) if not g.is_empty]
    return rasterize(shapes, out_shape=shape, transform=transform, fill=0, dtype="int32")


def _to_ll(ref, geom):
    return shapely.transform(geom, lambda c: np.column_stack(ref["to_ll"].transform(c[:, 0], c[:, 1])))


def _crest_offset(lon, lat, crest):
    """Signed east-west distance (degrees of lon) from a N-S crest polyline."""
    c = np.asarray(crest)
    order = np.argsort(c[:, 1])
    return lon - np.interp(lat, c[order, 1], c[order, 0])


def _make_dem(ref, geo, rng) -> dict[str, Any]:
    from affine import Affine
    from scipy.ndimage import distance_transform_edt, gaussian_filter

    west, north, lon, lat = _grid_ll(ref["boundary_ll"].bounds, DEM_RES_DEG, 0.01)
    shape = (len(lat), len(lon))
    transform = Affine(DEM_RES_DEG, 0.0, west, 0.0, -DEM_RES_DEG, north)
    # water: the river strips plus the far half of the big rivers (outside the district)
    outside_river = shapely.difference(
        shapely.union(geo["jialing"].buffer(700.0), geo["yangtze"].buffer(800.0)), ref["boundary_p"])
    water = shapely.union_all([geo["big_water"], outside_river])
    wmask = _rasterize([_to_ll(ref, water)], shape, transform) > 0
    tline = _rasterize([_to_ll(ref, geo["chaoyang"].buffer(30.0))], shape, transform) > 0
    dy_m = DEM_RES_DEG * 111_320.0
    dx_m = dy_m * np.cos(np.radians(lat.mean()))
    d_big = distance_transform_edt(~wmask, sampling=(dy_m, dx_m))
    d_trib = distance_transform_edt(~tline, sampling=(dy_m, dx_m))
    d = np.minimum(d_big, d_trib + 0.0)
    lon2, lat2 = np.meshgrid(lon, lat)
    wl = 160.0 - 8.0 * np.clip((lon2 - 106.45) / 0.44, 0.0, 1.0)  # Yangtze water level falls eastwards
    base = 95.0 * (1.0 - np.exp(-d / 700.0)) + 65.0 * (1.0 - np.exp(-d / 4000.0))
    noise = gaussian_filter(rng.standard_normal(shape), sigma=9.0)
    noise /= noise.std()
    noise2 = gaussian_filter(rng.standard_normal(shape), sigma=3.0)
    noise2 /= noise2.std()
    hills = (34.0 * noise + 5.0 * noise2) * (1.0 - np.exp(-d / 350.0))
    m_per_deg_lon = 111_320.0 * np.cos(np.radians(29.6))
    off_t = _crest_offset(lon2, lat2, _TONGLUO_CREST) * m_per_deg_lon
    amp_t = 330.0 + 110.0 * np.exp(-(((lat2 - 29.625) / 0.035) ** 2))
    ridge_t = amp_t * np.exp(-0.5 * (off_t / 1100.0) ** 2) * (1.0 - np.exp(-d / 900.0))
    off_m = _crest_offset(lon2, lat2, _MINGYUE_CREST) * m_per_deg_lon
    ridge_m = 330.0 * np.exp(-0.5 * (off_m / 1000.0) ** 2) * (1.0 - np.exp(-d / 900.0))
    excess = np.maximum(base + hills + ridge_t + ridge_m, 0.0)
    # stretch the land so that the highest pixel is exactly 679 m
    i = np.unravel_index(np.argmax(excess + wl), shape)
    excess *= (DEM_MAX_M - wl[i]) / excess[i]
    h = wl + excess
    h[wmask] = wl[wmask]
    grid = np.clip(np.rint(h), DEM_MIN_M, DEM_MAX_M).astype("int16")
    return {"grid": grid, "transform": transform, "lon": lon, "lat": lat, "west": west, "north": north}


def _sample(grid_info, lon, lat, grid=None):
    """Bilinear sample of a lon/lat grid at points (NaN-free; edges clamp)."""
    from scipy.ndimage import map_coordinates

    g = grid_info["grid"] if grid is None else grid
    res = grid_info["lon"][1] - grid_info["lon"][0]
    col = (np.asarray(lon) - grid_info["lon"][0]) / res
    row = (grid_info["lat"][0] - np.asarray(lat)) / res
    return map_coordinates(g.astype("float64"), [row, col], order=1, mode="nearest")


# =============================================================================================
# population


def _make_population(ref, units, geo, dem, rng) -> dict[str, Any]:
    from affine import Affine
    from scipy.ndimage import gaussian_filter

    west, north, lon, lat = _grid_ll(ref["boundary_ll"].bounds, POP_RES_DEG, 0.002)
    shape = (len(lat), len(lon))
    transform = Affine(POP_RES_DEG, 0.0, west, 0.0, -POP_RES_DEG, north)
    units_ll = [_to_ll(ref, g) for g in units.geometry.values]
    uid = _rasterize(units_ll, shape, transform, values=list(range(1, len(units) + 1)))
    lon2, lat2 = np.meshgrid(lon, lat)
    x, y = ref["to_p"].transform(lon2.ravel(), lat2.ravel())
    x = x.reshape(shape)
    y = y.reshape(shape)
    elev = _sample(dem, lon2.ravel(), lat2.ravel()).reshape(shape)
    blocked = _rasterize([_to_ll(ref, shapely.union_all(
        [geo["water"].buffer(40.0), geo["forest_park"]] + [g for _, g in geo["parks"]]))],
        shape, transform) > 0
    blocked |= elev > 430.0
    texture = np.exp(0.55 * gaussian_filter(rng.standard_normal(shape), sigma=1.5) * 2.2)
    weights = np.zeros(shape)
    anchors = ref["anchors"]
    villages_xy = []
    for k, code in enumerate(units.unit_code):
        inside = (uid == k + 1) & ~blocked
        ax, ay = anchors.x[k], anchors.y[k]
        dist = np.hypot(x - ax, y - ay)
        if code in CORE_CODES or code == "500105002":
            w = (0.35 + np.exp(-dist / 2200.0)) * texture
        else:
            # a town/street centre plus villages (gaussian blobs at random places in the unit)
            r_c = _CENTRE_GRID.get(code, (150.0, 700.0))[1]
            w = 3.0 * np.exp(-0.5 * (dist / (0.6 * r_c)) ** 2)
            cand = np.flatnonzero(inside.ravel() & (elev.ravel() < 380.0))
            n_vil = {"500105005": 10, "500105008": 9, "500105009": 6}.get(code, 14)
            pick = rng.choice(cand, size=min(n_vil, len(cand)), replace=False)
            for p in np.sort(pick):
                vx, vy = x.ravel()[p], y.ravel()[p]
                villages_xy.append((code, vx, vy))
                s = rng.uniform(140.0, 260.0)
                w = w + rng.uniform(0.4, 1.0) * np.exp(-0.5 * (np.hypot(x - vx, y - vy) / s) ** 2)
            w = w * texture + 0.01
        w = np.where(inside, w, 0.0)
        target = _UNIT_TARGETS[code]
        weights += w * (target / w.sum())
    grid = np.where(uid > 0, weights, -99999.0).astype("float32")
    # make the float32 unit sums hit the targets as closely as float32 allows
    for k, code in enumerate(units.unit_code):
        inside = uid == k + 1
        vals = grid[inside].astype("float64")
        vals *= _UNIT_TARGETS[code] / vals.sum()
        grid[inside] = vals.astype("float32")
    return {"grid": grid, "transform": transform, "uid": uid, "lon": lon, "lat": lat,
            "x": x, "y": y, "villages": villages_xy}


def _census_table(units, pop) -> pd.DataFrame:
    grid, uid = pop["grid"], pop["uid"]
    sums = np.array([grid[uid == k + 1].astype("float64").sum() for k in range(len(units))])
    popn = np.rint(sums).astype("int64")
    popn[np.argmax(popn)] += TOTAL_POPULATION - popn.sum()
    raw = np.array([_RAW_60PLUS[c] for c in units.unit_code])
    shift = SHARE_60PLUS - (raw * popn).sum() / popn.sum()
    share = np.round(raw + shift, 4)
    return pd.DataFrame({
        "unit_code": units.unit_code.to_numpy(),
        "unit_name": units.unit_name.to_numpy(),
        "population": popn,
        "share_60plus": share,
        "data_status": DATA_STATUS + " (population from the synthetic raster; total = 2020 census; "
                       "寸滩 = real 2020 census figure)",
    })


# =============================================================================================
# street network


def _zone_points(zone, spacing, layout, rng) -> np.ndarray:
    if zone.is_empty:
        return np.empty((0, 2))
    minx, miny, maxx, maxy = zone.bounds
    if layout == "grid":
        theta = rng.uniform(0.0, np.pi / 2)
        cx, cy = (minx + maxx) / 2, (miny + maxy) / 2
        half = 0.75 * max(maxx - minx, maxy - miny) + spacing
        g = np.arange(-half, half + spacing, spacing)
        u, v = np.meshgrid(g, g)
        u = u.ravel() + rng.uniform(-0.15, 0.15, u.size) * spacing
        v = v.ravel() + rng.uniform(-0.15, 0.15, v.size) * spacing
        x = cx + u * np.cos(theta) - v * np.sin(theta)
        y = cy + u * np.sin(theta) + v * np.cos(theta)
    else:
        n = int((maxx - minx) * (maxy - miny) / spacing**2) + 1
        x = rng.uniform(minx, maxx, n)
        y = rng.uniform(miny, maxy, n)
    keep = shapely.contains_xy(zone, x, y)
    return np.column_stack([x[keep], y[keep]])


def _rng_edges(pts: np.ndarray) -> np.ndarray:
    """Edges of the relative neighbourhood graph (a connected planar subgraph of Delaunay)."""
    from scipy.spatial import Delaunay, cKDTree

    tri = Delaunay(pts)
    s = tri.simplices
    e = np.vstack([s[:, [0, 1]], s[:, [1, 2]], s[:, [0, 2]]])
    e = np.unique(np.sort(e, axis=1), axis=0)
    u, v = e[:, 0], e[:, 1]
    d = np.hypot(*(pts[u] - pts[v]).T)
    k = 16
    _, nn = cKDTree(pts).query(pts, k=k + 1)
    nn = nn[:, 1:]
    witness = np.zeros(len(e), dtype=bool)
    for a, b in ((u, v), (v, u)):
        w = nn[a]  # (E, k)
        daw = np.hypot(*(pts[w] - pts[a][:, None, :]).transpose(2, 0, 1))
        dbw = np.hypot(*(pts[w] - pts[b][:, None, :]).transpose(2, 0, 1))
        witness |= ((daw < d[:, None]) & (dbw < d[:, None]) & (w != b[:, None])).any(axis=1)
    return e[~witness]


def _pick_spread(positions: np.ndarray, n: int) -> np.ndarray:
    """Indices of ``n`` items spread along ``positions`` (quantiles)."""
    if len(positions) == 0:
        return np.array([], dtype=int)
    order = np.argsort(positions, kind="stable")
    q = np.linspace(0, len(order) - 1, n + 2)[1:-1].round().astype(int)
    return np.unique(order[q])


def _street_name(rng_int: int, stems=_STREET_STEMS, suffixes=_STREET_SUFFIXES) -> str:
    return stems[rng_int % len(stems)] + suffixes[(rng_int // len(stems)) % len(suffixes)]


def _make_network(ref, units, geo, dem, rng) -> dict[str, Any]:  # noqa: C901  (one pass drawing the demo network feature by feature; generator code, not analysis)
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components, dijkstra

    bnd = ref["boundary_p"]
    parks = shapely.union_all([g for _, g in geo["parks"]])
    barrier = shapely.union_all([geo["big_water"].buffer(30.0), geo["trib_water"].buffer(15.0), parks])
    anchors = ref["anchors"]
    pts_list, unit_of = [], []
    for k, (code, geom) in enumerate(zip(units.unit_code, units.geometry.values, strict=True)):
        spacing, layout = _UNIT_NETWORK[code]
        zone = shapely.difference(geom, barrier)
        if code in _CENTRE_GRID:
            sc, rc = _CENTRE_GRID[code]
            disk = shapely.Point(anchors.x[k], anchors.y[k]).buffer(rc)
            p = _zone_points(shapely.intersection(zone, disk), sc, "grid", rng)
            pts_list.append(p)
            unit_of.append(np.full(len(p), k))
            zone = shapely.difference(zone, disk)
        p = _zone_points(zone, spacing, layout, rng)
        pts_list.append(p)
        unit_of.append(np.full(len(p), k))
    pts = np.vstack(pts_list)
    unit_of = np.concatenate(unit_of)
    e = _rng_edges(pts)
    lines = shapely.linestrings(np.stack([pts[e[:, 0]], pts[e[:, 1]]], axis=1))
    length = shapely.length(lines)
    keep = shapely.within(lines, bnd.buffer(1.0)) & (length < 1500.0)
    keep &= ~shapely.intersects(lines, shapely.union(geo["big_water"], parks))
    # tributary: keep three bridges, drop the other crossings
    cross_t = shapely.intersects(lines, geo["chaoyang"]) & keep
    idx_t = np.flatnonzero(cross_t)
    pos = shapely.line_locate_point(geo["chaoyang"], shapely.centroid(lines[idx_t]))
    bridges = idx_t[_pick_spread(pos, 3)]
    keep[idx_t] = False
    keep[bridges] = True
    # ridge: only four paths/steps cross the Tongluo crest
    cross_r = shapely.intersects(lines, geo["crest"]) & keep
    idx_r = np.flatnonzero(cross_r & ~np.isin(np.arange(len(e)), bridges))
    pos = shapely.line_locate_point(geo["crest"], shapely.centroid(lines[idx_r]))
    ridge_paths = idx_r[_pick_spread(pos, 4)]
    keep[idx_r] = False
    keep[ridge_paths] = True
    is_bridge = np.zeros(len(e), dtype=bool)
    is_bridge[bridges] = True
    is_ridge = np.zeros(len(e), dtype=bool)
    is_ridge[ridge_paths] = True
    e, length, is_bridge, is_ridge = e[keep], length[keep], is_bridge[keep], is_ridge[keep]
    n = len(pts)
    lon, lat = ref["to_ll"].transform(pts[:, 0], pts[:, 1])
    from scipy.ndimage import gaussian_filter

    dem_s = gaussian_filter(dem["grid"].astype("float64"), sigma=1.5)
    elev = _sample(dem, lon, lat, grid=dem_s)
    rise = elev[e[:, 1]] - elev[e[:, 0]]
    grade = np.abs(rise) / length
    eu = unit_of[e[:, 0]]
    codes = units.unit_code.to_numpy()
    ecode = codes[eu]

    # --- arterials: shortest paths between anchors of neighbouring units (no ridge crossing)
    w = np.where(is_ridge, np.inf, length)
    ok = np.isfinite(w)
    g = coo_matrix((np.r_[w[ok], w[ok]], (np.r_[e[ok, 0], e[ok, 1]], np.r_[e[ok, 1], e[ok, 0]])),
                   shape=(n, n)).tocsr()
    ncomp, comp = connected_components(g, directed=False)
    main = np.argmax(np.bincount(comp))
    anchor_node = []
    for k in range(len(units)):
        cand = np.flatnonzero((unit_of == k) & (comp == main))
        if len(cand) == 0:
            cand = np.flatnonzero(unit_of == k)
        anchor_node.append(cand[np.argmin(np.hypot(pts[cand, 0] - anchors.x[k], pts[cand, 1] - anchors.y[k]))])
    anchor_node = np.array(anchor_node)
    dist, pred = dijkstra(g, directed=False, indices=anchor_node, return_predecessors=True)
    edge_id = {}
    for i, (a, b) in enumerate(e):
        edge_id[(int(a), int(b))] = i
        edge_id[(int(b), int(a))] = i
    hwy = np.full(len(e), "", dtype=object)
    name = np.full(len(e), "", dtype=object)
    rank = {"primary": 3, "secondary": 2, "tertiary": 1}

    def tag_path(src_i, target, cls, nm):
        if not np.isfinite(dist[src_i, target]):
            return
        t = target
        while t != anchor_node[src_i] and t >= 0:
            s = pred[src_i, t]
            if s < 0:
                break
            j = edge_id[(int(s), int(t))]
            if rank.get(hwy[j], 0) < rank[cls]:
                hwy[j] = cls
                name[j] = nm
            t = s

    geoms = units.geometry.values
    for i in range(len(units)):
        for j in range(i + 1, len(units)):
            if shapely.intersects(geoms[i], geoms[j].buffer(1.0)):
                cls = "primary" if codes[i] in CORE_CODES and codes[j] in CORE_CODES else "secondary"
                tag_path(i, anchor_node[j], cls, _street_name(int(rng.integers(1 << 30))) if cls == "secondary"
                         else _street_name(int(rng.integers(1 << 30)), suffixes=["大道", "路", "北路", "南路"]))
    for i in range(len(units)):
        cand = np.flatnonzero((unit_of == i) & np.isfinite(dist[i]))
        if len(cand):
            for t in rng.choice(cand, size=min(4, len(cand)), replace=False):
                tag_path(i, int(t), "tertiary", _street_name(int(rng.integers(1 << 30))))

    # --- ordinary links by unit type
    core = np.isin(ecode, CORE_CODES)
    urban = np.isin(ecode, ["500105002", "500105005", "500105008"])
    r = rng.random(len(e))
    free = hwy == ""
    kinds_core = (["residential"] * 64 + ["service"] * 12 + ["living_street"] * 6 + ["footway"] * 14
                  + ["pedestrian"] * 4)
    kinds_urban = ["residential"] * 60 + ["service"] * 15 + ["footway"] * 15 + ["path"] * 10
    kinds_outer = ["residential"] * 35 + ["track"] * 30 + ["path"] * 25 + ["service"] * 10
    pick = (r * 100).astype(int)
    hwy[free & core] = np.array(kinds_core, dtype=object)[pick[free & core]]
    hwy[free & urban] = np.array(kinds_urban, dtype=object)[pick[free & urban]]
    outer = free & ~core & ~urban
    hwy[outer] = np.array(kinds_outer, dtype=object)[pick[outer]]
    # towns' centre grids are streets, not tracks
    for k, code in enumerate(codes):
        if code in _CENTRE_GRID and code not in ("500105005", "500105008"):
            near = outer & (eu == k) & (np.hypot(pts[e[:, 0], 0] - anchors.x[k], pts[e[:, 0], 1] - anchors.y[k])
                                        < _CENTRE_GRID[code][1])
            hwy[near] = "residential"
    # pedestrian street around 观音桥
    k = int(np.flatnonzero(codes == "500105006")[0])
    mid = (pts[e[:, 0]] + pts[e[:, 1]]) / 2
    dk = np.hypot(mid[:, 0] - anchors.x[k], mid[:, 1] - anchors.y[k])
    ped = (dk < 220.0) & ~np.isin(hwy, ["primary", "secondary"])
    hwy[ped] = "pedestrian"
    name[ped] = "观音桥步行街"
    # private compounds (gated 小区) in the core
    access = np.full(len(e), "", dtype=object)
    core_nodes = np.flatnonzero(np.isin(codes[unit_of], CORE_CODES))
    for c in np.sort(rng.choice(core_nodes, size=8, replace=False)):
        dc = np.hypot(mid[:, 0] - pts[c, 0], mid[:, 1] - pts[c, 1])
        sel = (dc < 160.0) & np.isin(hwy, ["residential", "service", "footway", "living_street"])
        hwy[sel] = "service"
        access[sel] = "private"
    # stairs on steep core links; ridge crossings are paths or steps
    steep = grade > 0.14
    steps = (steep & core & ~np.isin(hwy, ["primary", "secondary", "tertiary"]) & (access == "")) | (
        is_ridge & steep)
    hwy[is_ridge & ~steep] = "path"
    hwy[steps] = "steps"
    # names of ordinary streets: one name per 450 m block and orientation
    ang = (np.degrees(np.arctan2(*(pts[e[:, 1]] - pts[e[:, 0]]).T[::-1])) % 180 // 45).astype(int)
    bx = (mid[:, 0] // 450).astype(np.int64)
    by = (mid[:, 1] // 450).astype(np.int64)
    key = (bx * 7919 + by * 104729 + ang * 31) % (len(_STREET_STEMS) * len(_STREET_SUFFIXES))
    named = np.isin(hwy, ["residential", "living_street", "pedestrian"]) & (name == "") & (r < 0.8)
    name[named] = [_street_name(int(v)) for v in key[named]]
    stp = (hwy == "steps") & (rng.random(len(e)) < 0.3)
    name[stp] = [_STREET_STEMS[int(v) % len(_STREET_STEMS)] + "梯道" for v in key[stp]]
    name[is_bridge & (name == "")] = "朝阳河桥"
    return {"pts": pts, "lon": np.asarray(lon), "lat": np.asarray(lat), "elev": elev, "edges": e,
            "length": length, "rise": rise, "grade": grade, "highway": hwy, "name": name,
            "access": access, "bridge": is_bridge, "ridge": is_ridge, "unit_of": unit_of,
            "anchor_node": anchor_node, "codes": codes}


# =============================================================================================
# facilities (OSM POIs), inventories, planned projects


def _sample_xy(pop, rng, n, unit_index=None, near=None, power=1.0):
    """``n`` points drawn from population pixels (optionally of one unit / near a point)."""
    g = np.where(pop["grid"] > 0, pop["grid"], 0.0).astype("float64") ** power
    if unit_index is not None:
        g = np.where(pop["uid"] == unit_index + 1, g, 0.0)
    if near is not None:
        x0, y0, r = near
        g = np.where(np.hypot(pop["x"] - x0, pop["y"] - y0) < r, g, 0.0)
    flat = g.ravel()
    if flat.sum() <= 0:
        flat = (pop["uid"].ravel() == (unit_index or 0) + 1).astype(float)
    idx = rng.choice(flat.size, size=n, p=flat / flat.sum())
    px = 100.0 * 0.9
    x = pop["x"].ravel()[idx] + rng.uniform(-px / 2, px / 2, n)
    y = pop["y"].ravel()[idx] + rng.uniform(-px / 2, px / 2, n)
    return x, y


def _make_facilities(ref, units, pop, rng) -> list[dict]:  # noqa: C901  (one branch per planted facility kind and data-quality trap of the demo)
    """Facility POIs: dicts with x, y (projected), tags, and ``area_m`` (> 0: a closed way)."""
    codes = list(units.unit_code)
    names = dict(zip(units.unit_code, units.unit_name, strict=True))
    comm = ref["communities"]
    anchors = ref["anchors"]
    out: list[dict] = []

    def add(k, tags, n=1, area_m=0.0, near=None, power=1.0):
        x, y = _sample_xy(pop, rng, n, unit_index=k, near=near, power=power)
        for i in range(n):
            t = dict(tags) if isinstance(tags, dict) else tags(i)
            if t is not None:
                out.append({"x": float(x[i]), "y": float(y[i]), "tags": t, "area_m": area_m,
                            "unit": codes[k] if k is not None else ""})

    def centre(k, r=900.0):
        return (anchors.x[k], anchors.y[k], r)

    def comm_of(code):
        return comm[comm.streetCode == code].short.tolist()

    outer = ("500105005", "500105009", "500105100", "500105101", "500105102")
    # --- culture
    for k, code in enumerate(codes):
        add(k, {"amenity": "community_centre", "community_centre": "culture",
                "name": f"{names[code]}综合文化服务中心"}, near=centre(k))
        add(k, {"amenity": "community_centre", "name": f"江北区文化馆{names[code][:-2] if code[-3] == '0' else names[code][:-1]}分馆"},
            near=centre(k, 1500.0))
    add(2, {"amenity": "arts_centre", "name": "江北区文化馆"})
    shares = np.array([_UNIT_TARGETS[c] for c in codes], dtype=float)
    lib_n = np.maximum(1, np.floor(57 * shares / shares.sum())).astype(int)
    lib_n[np.argmax(lib_n)] += 58 - lib_n.sum()
    for k, code in enumerate(codes):
        cs = comm_of(code)
        for i in range(lib_n[k]):
            add(k, {"amenity": "library", "name": f"江北区图书馆{cs[i % len(cs)].replace('社区', '')}分馆"})
    for i in range(10):
        k = int(rng.choice(len(codes), p=shares / shares.sum()))
        add(k, {"amenity": "library", "name": f"{_FACILITY_STEMS[i]}24小时自助图书馆"})
    for k, code in enumerate(codes):
        for j, c in enumerate(comm_of(code)):
            if code in outer and rng.random() < 0.45:
                continue  # gaps in outer towns
            add(k, {"amenity": "community_centre", "name": f"{c}文化室"} if j % 5 else
                {"name": f"{c}文化活动室"})
    add(codes.index("500105004"), {"tourism": "gallery", "name": "徐悲鸿美术馆"})
    add(codes.index("500105002"), {"amenity": "theatre", "name": "重庆大剧院"})
    add(codes.index("500105001"), {"amenity": "community_centre", "community_centre": "culture",
                                   "name": '<b>测试&"引号"</b>文化站'})
    # --- fitness
    for k, code in enumerate(codes):
        cs = comm_of(code)
        n_st = max(2, round(185 * shares[k] / shares.sum()))
        for i in range(n_st):
            nm = f"{cs[i % len(cs)]}健身路径" if i < len(cs) else f"{_FACILITY_STEMS[i % 24]}全民健身点"
            add(k, {"leisure": "fitness_station", "name": nm} if i % 6 else {"leisure": "fitness_station"})
        n_p = max(1, round(90 * shares[k] / shares.sum()))
        for i in range(n_p):
            sport = ["basketball", "soccer", "badminton", "table_tennis", "multi"][i % 5]
            label = {"basketball": "篮球场", "soccer": "足球场", "badminton": "羽毛球场",
                     "table_tennis": "乒乓球场", "multi": "运动场"}[sport]
            tags = {"leisure": "pitch", "sport": sport}
            if i % 3:
                tags["name"] = f"{cs[(i * 7) % len(cs)]}{label}"
            add(k, tags, area_m=30.0 if sport != "soccer" else 60.0)
    add(codes.index("500105006"), {"leisure": "sports_centre", "name": "江北区全民健身中心"}, area_m=80.0)
    add(codes.index("500105002"), {"leisure": "park", "name": "溉澜溪体育公园"}, area_m=150.0)
    add(codes.index("500105100"), {"leisure": "park", "name": "鱼嘴体育公园"}, area_m=120.0)
    add(codes.index("500105004"), {"leisure": "stadium", "name": "大石坝体育场"}, area_m=90.0)
    for nm, code in (("铁山坪登山步道", "500105009"), ("明月山登山步道", "500105102"),
                     ("鸿恩步道", "500105004"), ("北滨滨江步道", "500105001")):
        add(codes.index(code), {"highway": "trailhead", "name": nm})
    for nm, code in (("力美健身房", "500105006"), ("乐刻健身房（观音桥店）", "500105006"),
                     ("超级猩猩健身房", "500105003")):
        add(codes.index(code), {"leisure": "fitness_centre", "name": nm})
    # --- elderly care: 11 street/town centres (郭家沱's is a planned project), 110 stations
    for k, code in enumerate(codes):
        if code != "500105008":
            add(k, {"amenity": "social_facility", "social_facility": "outreach",
                    "social_facility:for": "senior", "name": f"{names[code]}养老服务中心"}, near=centre(k))
    station_slots = []
    for k, code in enumerate(codes):
        for c in comm_of(code):
            station_slots.append((k, code, c))
    # 110 stations for 132 communities: a few core communities and many villages have none
    groups = [(CORE_CODES, 76), (("500105002", "500105008"), 7), (("500105005",), 8),
              (("500105009",), 5), (("500105100", "500105101", "500105102"), 14)]
    with_station = []
    for group, n_keep in groups:
        slots = [s for s in station_slots if s[1] in group]
        pick = np.sort(rng.choice(len(slots), size=n_keep, replace=False))
        with_station += [slots[i] for i in pick]
    for k, _code, c in with_station:
        add(k, {"amenity": "social_facility", "social_facility:for": "senior",
                "name": f"{c}养老服务站"}, power=0.6)
    for nm, code in (("双溪敬老院", "500105004"), ("江北区社会福利院", "500105006"),
                     ("鱼嘴镇敬老院", "500105100"), ("复盛镇敬老院", "500105101"),
                     ("五宝镇敬老院", "500105102"), ("寸滩颐养养老院", "500105005"),
                     ("观音桥康乐养老院", "500105006"), ("石马河夕阳红养老院", "500105003"),
                     ("铁山坪康养老年公寓", "500105009")):
        add(codes.index(code), {"amenity": "nursing_home", "name": nm})
    for k, _code, c in with_station[: 15 * 5 : 5]:
        add(k, {"amenity": "social_facility", "social_facility": "day_care",
                "social_facility:for": "senior", "name": f"{c}日间照料中心"})
    for k, _code, c in with_station[2: 12 * 7 : 7]:
        add(k, {"amenity": "restaurant", "name": f"{c}老年食堂"})
    # --- health
    for k, code in enumerate(codes):
        if code in ("500105007", "500105008"):
            continue  # planned: 新建五里店/郭家沱社区卫生服务中心
        nm = f"{names[code]}卫生院" if code.startswith("5001051") else f"{names[code]}社区卫生服务中心"
        add(k, {"healthcare": "centre", "amenity": "clinic", "name": nm}, near=centre(k))
    for k, _code, c in with_station[1::4]:
        add(k, {"healthcare": "centre", "name": f"{c}社区卫生服务站"} if "社区" in c else
            {"amenity": "doctors", "name": f"{c}卫生室"})
    # --- kindergartens and schools
    for i in range(139):
        k = int(rng.choice(len(codes), p=shares / shares.sum()))
        cs = comm_of(codes[k])
        nm = (f"江北区{_FACILITY_STEMS[i % 24]}幼儿园" if i % 2 else
              f"{cs[i % len(cs)].replace('社区', '')}幼儿园")
        add(k, {"amenity": "kindergarten", "name": nm}, area_m=35.0 if i % 10 == 0 else 0.0)
    for i in range(42):
        k = int(rng.choice(len(codes), p=shares / shares.sum()))
        add(k, {"amenity": "school", "isced:level": "1", "name": f"江北区{_FACILITY_STEMS[(i * 5) % 24]}小学"},
            area_m=60.0 if i % 4 == 0 else 0.0)
    for i in range(18):
        k = int(rng.choice(len(codes), p=shares / shares.sum()))
        add(k, {"amenity": "school", "isced:level": "2", "name": f"重庆市{_FACILITY_STEMS[(i * 7) % 24]}中学"},
            area_m=80.0 if i % 3 == 0 else 0.0)
    for f in out:
        f["tags"] = dict(sorted(f["tags"].items()))
    return out


def _make_inventories(ref, units, pop, fac, rng):
    from accessibility.coords import wgs84_to_bd09, wgs84_to_gcj02

    codes = list(units.unit_code)
    comm = ref["communities"]
    have = {f["tags"].get("name", "") for f in fac}
    rows = []
    slots = [(codes.index(c), s) for c, s in zip(comm.streetCode, comm.short, strict=True)
             if f"{s}养老服务站" not in have]
    for k, s in slots[:22]:
        rows.append((k, f"{s}居家养老服务站", "养老服务站", int(rng.integers(4, 21))))
    for i in range(12):
        k = int(rng.integers(len(codes)))
        rows.append((k, f"{_FACILITY_STEMS[(i * 5 + 3) % 24]}日间照料中心", "日间照料中心", int(rng.integers(10, 31))))
    for i in range(6):
        k = int(rng.integers(len(codes)))
        rows.append((k, f"{_FACILITY_STEMS[(i * 7 + 1) % 24]}颐养院", "养老院", int(rng.integers(50, 301))))
    xs, ys = [], []
    for k, *_ in rows:
        x, y = _sample_xy(pop, rng, 1, unit_index=k)
        xs.append(x[0])
        ys.append(y[0])
    # as in real civil-affairs lists, some entries are facilities OSM also has (same name, a few
    # metres apart): the loader merges them (keeping the inventory's beds) and the datum check
    # compares the two positions
    elder_osm = [f for f in fac if f["tags"].get("name", "").endswith(("养老服务站", "养老服务中心"))
                 and f.get("area_m", 0.0) == 0.0]
    for j in range(min(8, len(elder_osm))):
        f = elder_osm[(j * 7) % len(elder_osm)]
        if any(r[1] == f["tags"]["name"] for r in rows):
            continue
        kind = "养老服务中心" if f["tags"]["name"].endswith("养老服务中心") else "养老服务站"
        rows.append((codes.index(f["unit"]) if f["unit"] in codes else 0, f["tags"]["name"], kind,
                     int(rng.integers(6, 31))))
        xs.append(f["x"] + float(rng.uniform(-15, 15)))
        ys.append(f["y"] + float(rng.uniform(-15, 15)))
    lon, lat = ref["to_ll"].transform(np.array(xs), np.array(ys))
    glon, glat = wgs84_to_gcj02(lon, lat)
    elder = pd.DataFrame({"名称": [r[1] for r in rows], "类别": [r[2] for r in rows],
                          "经度": np.round(glon, 6), "纬度": np.round(glat, 6),
                          "床位数": [r[3] for r in rows], "数据状态": DATA_STATUS})
    rows = []
    for i in range(20):
        k = int(rng.integers(len(codes)))
        cs = comm[comm.streetCode == codes[k]].short.tolist()
        c = cs[int(rng.integers(len(cs)))]
        rows.append((k, f"城市书房（{c}）" if i < 12 else f"{c}文化驿站",
                     "城市书房" if i < 12 else "文化驿站", int(rng.integers(20, 81))))
    xs, ys = [], []
    for k, *_ in rows:
        x, y = _sample_xy(pop, rng, 1, unit_index=k)
        xs.append(x[0])
        ys.append(y[0])
    lon, lat = ref["to_ll"].transform(np.array(xs), np.array(ys))
    blon, blat = wgs84_to_bd09(lon, lat)
    culture = pd.DataFrame({"name": [r[1] for r in rows], "category": [r[2] for r in rows],
                            "lng": np.round(blon, 6), "lat": np.round(blat, 6),
                            "seats": [r[3] for r in rows], "data_status": DATA_STATUS})
    return elder, culture


_PLANNED = [
    ("郭家沱养老服务中心", "elderly_service_centre", "500105008", 60, "eldercare_15min"),
    ("五里店万丰工校片区养老院", "nursing_home", "500105007", 120, "eldercare_15min"),
    ("五里店合作富强片区养老院", "nursing_home", "500105007", 100, "eldercare_15min"),
    ("大石坝原江陵厂片区养老院", "nursing_home", "500105004", 150, "eldercare_15min"),
    ("五里店社区卫生服务中心", "community_health", "500105007", 50, "health_15min"),
    ("郭家沱社区卫生服务中心", "community_health", "500105008", 50, "health_15min"),
    ("郭家沱全民健身中心", "sports_centre", "500105008", 800, "fitness_15min"),
    ("江北区鸿恩寺图书馆（改建）", "library", "500105004", 300, "culture_15min"),
]


def _make_planned(ref, units, pop, rng) -> pd.DataFrame:
    codes = list(units.unit_code)
    a = ref["anchors"]
    xs, ys = [], []
    for _, _, code, _, _ in _PLANNED:
        k = codes.index(code)
        x, y = _sample_xy(pop, rng, 1, unit_index=k, near=(a.x[k], a.y[k], 1500.0))
        xs.append(x[0])
        ys.append(y[0])
    lon, lat = ref["to_ll"].transform(np.array(xs), np.array(ys))
    return pd.DataFrame({
        "name": [p[0] for p in _PLANNED], "category": [p[1] for p in _PLANNED],
        "lon": np.round(lon, 6), "lat": np.round(lat, 6), "capacity": [p[3] for p in _PLANNED],
        "circle": [p[4] for p in _PLANNED],
        "note": "规划项目（江北区十四五公共服务规划专栏4-4/4-5/4-7）；位置为合成示例 synthetic location",
        "data_status": DATA_STATUS,
    })


# =============================================================================================
# writers


def _write_csv(path: Path, df: pd.DataFrame, *, encoding: str = "utf-8") -> None:
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False, encoding=encoding, lineterminator="\n")


def _write_raster(path: Path, grid: np.ndarray, transform, dtype: str, nodata, what: str) -> None:
    import rasterio

    profile = {"driver": "GTiff", "height": grid.shape[0], "width": grid.shape[1], "count": 1,
               "dtype": dtype, "crs": "EPSG:4326", "transform": transform, "nodata": nodata,
               "compress": "deflate", "tiled": True, "blockxsize": 256, "blockysize": 256}
    with atomic_path(path) as tmp, rasterio.Env(GDAL_PAM_ENABLED="NO"), \
            rasterio.open(tmp, "w", **profile) as dst:
        dst.write(grid.astype(dtype), 1)
        dst.update_tags(DATA_STATUS=f"{DATA_STATUS} - not real data; {what}; generated by "
                                    "accessibility.demo.jiangbei (deterministic)")


def _write_units(path: Path, units) -> None:
    import pyogrio

    out = units.to_crs("EPSG:4490")
    old = pyogrio.get_gdal_config_option("OGR_CURRENT_DATE")
    pyogrio.set_gdal_config_options({"OGR_CURRENT_DATE": FIXED_TIMESTAMP})
    try:
        with atomic_path(path) as tmp:
            pyogrio.write_dataframe(out, tmp, driver="GPKG", layer="units_synthetic_demo",
                                    layer_options={"DESCRIPTION": DATA_STATUS})
    finally:
        pyogrio.set_gdal_config_options({"OGR_CURRENT_DATE": old})


def _write_exclusions(path: Path, ref, geo) -> None:
    import json

    feats = [
        ("铁山坪森林公园", "forest park on the Tongluo ridge (铜锣山); no building", geo["forest_park"]),
        ("嘉陵江", "river water area", shapely.intersection(geo["jialing"].buffer(260.0), ref["boundary_p"])),
        ("长江", "river water area", shapely.intersection(geo["yangtze"].buffer(320.0), ref["boundary_p"])),
        ("朝阳河", "river water area", geo["trib_water"]),
    ]
    fc = {"type": "FeatureCollection", "name": "exclusion_zones_synthetic_demo",
          "crs": {"type": "name", "properties": {"name": "urn:ogc:def:crs:OGC:1.3:CRS84"}},
          "features": []}
    for nm, reason, g in feats:
        gl = shapely.set_precision(_to_ll(ref, g.simplify(5.0)), 1e-7)
        fc["features"].append({"type": "Feature",
                               "properties": {"name": nm, "reason": reason, "data_status": DATA_STATUS},
                               "geometry": json.loads(shapely.to_geojson(gl))})
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(fc, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")


def _write_xlsx(path: Path, df: pd.DataFrame) -> None:
    import datetime as dt

    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    ws.title = "culture_inventory"
    ws.append(list(df.columns))
    for row in df.itertuples(index=False):
        ws.append([v.item() if hasattr(v, "item") else v for v in row])
    fixed = dt.datetime(2021, 1, 1)
    wb.properties.created = fixed
    wb.properties.modified = fixed
    wb.properties.creator = "accessibility.demo.jiangbei"
    wb.properties.title = DATA_STATUS
    wb.properties.description = f"{DATA_STATUS} - not real data"
    buf = io.BytesIO()
    wb.save(buf)
    # openpyxl stamps the zip entries and dcterms:modified with the current time: pin both
    out = io.BytesIO()
    with zipfile.ZipFile(buf) as zin, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            data = zin.read(info.filename)
            if info.filename == "docProps/core.xml":
                data = re.sub(rb"(<dcterms:modified[^>]*>)[^<]*(</dcterms:modified>)",
                              rb"\g<1>2021-01-01T00:00:00Z\g<2>", data)
            zi = zipfile.ZipInfo(info.filename, date_time=(2021, 1, 1, 0, 0, 0))
            zi.compress_type = zipfile.ZIP_DEFLATED
            zout.writestr(zi, data)
    with atomic_path(path) as tmp:
        tmp.write_bytes(out.getvalue())


def _write_osm(path: Path, net, fac, geo) -> None:
    import osmium
    from osmium.osm import mutable

    to_ll = Transformer.from_crs(PROJ_CRS, "EPSG:4326", always_xy=True)
    common = {"version": 1, "changeset": 1, "uid": 1, "user": "synthetic_demo",
              "timestamp": FIXED_TIMESTAMP}
    pts, e = net["pts"], net["edges"]
    nodes_xy = [pts]
    next_id = len(pts) + 1
    way_refs: list[list[int]] = []
    way_tags: list[dict] = []
    # streets, densified every <= 35 m
    for i, (a, b) in enumerate(e):
        nseg = max(1, int(np.ceil(net["length"][i] / 35.0)))
        refs = [int(a) + 1]
        if nseg > 1:
            t = np.arange(1, nseg)[:, None] / nseg
            nodes_xy.append(pts[a] + t * (pts[b] - pts[a]))
            refs += list(range(next_id, next_id + nseg - 1))
            next_id += nseg - 1
        refs.append(int(b) + 1)
        hwy = net["highway"][i]
        tags = {"highway": hwy}
        if net["name"][i]:
            tags["name"] = net["name"][i]
        if net["access"][i]:
            tags["access"] = net["access"][i]
        if net["bridge"][i]:
            tags["bridge"] = "yes"
            tags["layer"] = "1"
        if hwy == "steps":
            climb = abs(float(net["rise"][i]))
            tags["step_count"] = str(max(1, round(climb / 0.15)))
            tags["incline"] = "up" if net["rise"][i] > 0 else "down"
        way_refs.append(refs)
        way_tags.append(tags)

    def add_line(coords, tags, step_m=50.0):
        nonlocal next_id
        line = shapely.LineString(coords)
        n = max(1, int(np.ceil(line.length / step_m)))
        p = shapely.get_coordinates(shapely.line_interpolate_point(line, np.linspace(0, line.length, n + 1)))
        nodes_xy.append(p)
        refs = list(range(next_id, next_id + len(p)))
        next_id += len(p)
        way_refs.append(refs)
        way_tags.append(tags)
        return refs

    # rivers
    add_line(np.asarray(geo["jialing"].coords), {"waterway": "river", "name": "嘉陵江", "name:en": "Jialing River"}, 100.0)
    add_line(np.asarray(geo["yangtze"].coords), {"waterway": "river", "name": "长江", "name:en": "Yangtze River"}, 100.0)
    add_line(np.asarray(geo["chaoyang"].coords), {"waterway": "river", "name": "朝阳河", "note": DATA_STATUS}, 60.0)
    # expressway (not walkable): shares nodes with streets at interchanges, tunnels under the ridge
    _add_expressway(net, geo, add_line, way_refs, way_tags, nodes_xy)
    # parks with disconnected footway compounds (fragments)
    for nm, poly in geo["parks"]:
        ring = np.asarray(poly.exterior.coords)
        refs = add_line(ring, {"leisure": "park", "name": nm}, 60.0)
        refs[-1] = refs[0]
        c = np.asarray(poly.centroid.coords)[0]
        sq = c + np.array([[-40, -40], [40, -40], [40, 40], [-40, 40], [-40, -40]], dtype=float)
        r2 = add_line(sq, {"highway": "footway", "name": f"{nm}园路"}, 40.0)
        r2[-1] = r2[0]
    # facility areas and nodes
    poi_nodes = []
    for f in fac:
        if f["area_m"] > 0:
            h = f["area_m"] / 2
            sq = np.array([[f["x"] - h, f["y"] - h], [f["x"] + h, f["y"] - h], [f["x"] + h, f["y"] + h],
                           [f["x"] - h, f["y"] + h], [f["x"] - h, f["y"] - h]])
            refs = add_line(sq, f["tags"], 1e9)
            refs[-1] = refs[0]
        else:
            poi_nodes.append(f)
    xy = np.vstack(nodes_xy)
    lon, lat = to_ll.transform(xy[:, 0], xy[:, 1])
    px = np.array([f["x"] for f in poi_nodes])
    py = np.array([f["y"] for f in poi_nodes])
    plon, plat = to_ll.transform(px, py)
    header = osmium.io.Header()
    header.set("generator", "accessibility.demo.jiangbei (SYNTHETIC DEMO)")
    header.set("osmosis_replication_timestamp", FIXED_TIMESTAMP)
    header.add_box(osmium.osm.Box(float(lon.min()) - 0.01, float(lat.min()) - 0.01,
                                  float(lon.max()) + 0.01, float(lat.max()) + 0.01))
    with atomic_path(path, suffix=".osm.pbf") as tmp:
        w = osmium.SimpleWriter(str(tmp), header=header)
        try:
            for i in range(len(xy)):
                w.add_node(mutable.Node(id=i + 1, location=(round(float(lon[i]), 7), round(float(lat[i]), 7)),
                                        tags={}, **common))
            for j, f in enumerate(poi_nodes):
                w.add_node(mutable.Node(id=len(xy) + j + 1,
                                        location=(round(float(plon[j]), 7), round(float(plat[j]), 7)),
                                        tags=f["tags"], **common))
            for j, (refs, tags) in enumerate(zip(way_refs, way_tags, strict=True)):
                w.add_way(mutable.Way(id=j + 1, nodes=refs, tags=tags, **common))
        finally:
            w.close()


def _add_expressway(net, geo, add_line, way_refs, way_tags, nodes_xy) -> None:
    """A grade-separated expressway (highway=trunk, foot=no) along the street graph's main axis."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import dijkstra

    pts, e = net["pts"], net["edges"]
    codes = list(net["codes"])
    a0 = net["anchor_node"][codes.index("500105004")]
    a1 = net["anchor_node"][codes.index("500105100")]
    n = len(pts)
    w = net["length"]
    g = coo_matrix((np.r_[w, w], (np.r_[e[:, 0], e[:, 1]], np.r_[e[:, 1], e[:, 0]])), shape=(n, n)).tocsr()
    _, pred = dijkstra(g, directed=False, indices=int(a0), return_predecessors=True)
    path = [int(a1)]
    while path[-1] != a0 and pred[path[-1]] >= 0:
        path.append(int(pred[path[-1]]))
    if path[-1] != a0:
        return
    path = path[::-1]
    # a smoothed alignment: keep every 12th node (interchanges), offset 25 m so it never overlaps a street
    inter = path[::12] + [path[-1]]
    line = shapely.LineString(pts[inter]).simplify(300.0)
    line = shapely.offset_curve(line, 25.0)
    if line.geom_type != "LineString" or shapely.intersects(line, geo["big_water"]):
        return
    # split: tunnel through the ridge, bridge over the tributary, plain trunk elsewhere
    tunnel = shapely.intersection(line, geo["crest"].buffer(900.0))
    bridge = shapely.intersection(line, geo["trib_water"].buffer(40.0))
    plain = shapely.difference(line, shapely.union(geo["crest"].buffer(900.0), geo["trib_water"].buffer(40.0)))
    base = {"highway": "trunk", "foot": "no", "name": "内环快速路", "oneway": "no"}
    from scipy.spatial import cKDTree

    tree = cKDTree(pts)
    for part in shapely.get_parts(shapely.line_merge(plain)):
        refs = add_line(np.asarray(part.coords), dict(base), 50.0)
        xy = nodes_xy[-1]
        for j in range(len(refs) // 2, len(refs), 80):  # interchanges: ramps to the streets
            _, s = tree.query(xy[j])
            way_refs.append([refs[j], int(s) + 1])
            way_tags.append({**base, "name": "内环快速路匝道"})
    for part in shapely.get_parts(shapely.line_merge(tunnel)):
        add_line(np.asarray(part.coords), {**base, "tunnel": "yes", "layer": "-1"}, 50.0)
    for part in shapely.get_parts(shapely.line_merge(bridge)):
        add_line(np.asarray(part.coords), {**base, "bridge": "yes", "layer": "1"}, 20.0)
