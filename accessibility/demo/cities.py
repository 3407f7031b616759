"""Synthetic city networks of any size, for benchmarks and scale tests.

:func:`synthetic_city` builds, fully vectorised with numpy, a jittered-grid street network of about
``n_nodes`` nodes (10 thousand to a few million) that follows the ``WalkNetwork`` data contract of
DESIGN.md: random links removed, a share of the steep links tagged as steps, elevations from a smooth
random terrain, Tobler walking times for an adult (1.2 m/s) and an elderly (0.9 m/s) profile, plus
population cells (about ``n_nodes / 4``), facilities for the three plan circles (about
``n_nodes / 500`` each), a 3 x 3 grid of units and a matching :class:`~accessibility.config.AreaConfig`
(:func:`synthetic_config`).

Everything here is SYNTHETIC (``status = "synthetic"``); it exists to time and size the engine,
never to describe a real place.
"""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace
from typing import Any, NamedTuple

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

__all__ = ["CIRCLES", "PROFILES", "SyntheticCity", "synthetic_city", "synthetic_config", "synthetic_demand"]

#: flat walking speeds of the synthetic profiles (m/s)
PROFILES = {"adult": 1.2, "elderly": 0.9}
#: circle id -> (facility category, profile, demand column)
CIRCLES = {
    "culture_15min": ("culture_room", "adult", "all"),
    "fitness_15min": ("fitness_station", "adult", "all"),
    "eldercare_15min": ("elderly_service_station", "elderly", "60plus"),
}
_SPACING_M = 80.0  # street-grid spacing (a typical urban block)
_JITTER_M = 18.0
_REMOVE_SHARE = 0.12  # links dropped at random from the full grid
_STEPS_SHARE = 0.3  # share of steep links (|grade| > 10 %) that are stairs
_ORIGIN = (630_000.0, 3_270_000.0)  # UTM 48N, near Chongqing (the numbers only need to be plausible)
_HIGHWAYS = np.array(["residential", "footway", "service", "tertiary", "steps"], dtype=object)


class SyntheticCity(NamedTuple):
    """The parts of a synthetic city (unpack as ``net, cells, facilities, units``)."""

    net: Any  # accessibility.network.WalkNetwork (or a namespace with nodes, edges, crs)
    cells: gpd.GeoDataFrame
    facilities: gpd.GeoDataFrame
    units: gpd.GeoDataFrame


def _parse_size(n_nodes: int | str) -> int:
    if isinstance(n_nodes, str):
        s = n_nodes.strip().lower()
        mult = {"k": 1_000, "m": 1_000_000}.get(s[-1:], 1)
        return int(float(s[:-1] if mult > 1 else s) * mult)
    return int(n_nodes)


def _terrain(x: np.ndarray, y: np.ndarray, rng: np.random.Generator, extent_m: float) -> np.ndarray:
    """Smooth random terrain (m): a few random plane waves, 150-650 m like Chongqing's hills."""
    z = np.zeros_like(x)
    for k in range(6):
        wavelength = rng.uniform(1_500.0, 6_000.0) * (1.0 + 0.15 * k)
        theta = rng.uniform(0, np.pi)
        phase = rng.uniform(0, 2 * np.pi)
        amp = rng.uniform(15.0, 45.0)
        z += amp * np.sin((x * np.cos(theta) + y * np.sin(theta)) * (2 * np.pi / wavelength) + phase)
    # one broad ridge across the city
    z += 80.0 * np.exp(-(((x - x.mean()) / max(extent_m / 5, 500.0)) ** 2))
    return 350.0 + z


def _tobler_times(length_m, rise_m, is_steps, flat_mps) -> np.ndarray:
    """Tobler hiking times scaled to the profile's flat speed; stairs by climb (6 s/m up, 2 s/m down)."""
    grade = np.clip(rise_m / length_m, -1.0, 1.0)
    speed = flat_mps / 5.04 * 6.0 * np.exp(-3.5 * np.abs(grade + 0.05))
    t = length_m / speed
    stairs = length_m / flat_mps + np.where(rise_m > 0, 6.0 * rise_m, 2.0 * -rise_m)
    return np.where(is_steps, stairs, t)


def _edge_times(edges: pd.DataFrame) -> dict[str, np.ndarray]:
    """Times per profile: ``accessibility.terrain.edge_times`` (Tobler) when available."""
    length = edges["length_m"].to_numpy()
    rise = edges["rise_m"].to_numpy()
    steps = edges["is_steps"].to_numpy()
    try:
        from accessibility.config import Profile, Terrain
        from accessibility.terrain import edge_times
    except ImportError:
        edge_times = None
    out = {}
    for name, mps in PROFILES.items():
        if edge_times is not None:
            out[f"time_s_{name}"] = edge_times(length, rise, steps, Profile(name=name, flat_speed_mps=mps),
                                               Terrain(model="tobler"))
        else:
            out[f"time_s_{name}"] = _tobler_times(length, rise, steps, mps)
        out[f"time_s_{name}_flat"] = length / mps
    return out


def synthetic_city(
    n_nodes: int | str, *, seed: int = 0, crs: str = "EPSG:32648", geometry: bool = True
) -> SyntheticCity:
    """Generate a synthetic city of about ``n_nodes`` street nodes.

    Parameters
    ----------
    n_nodes : int or str
        Wanted number of nodes (``10_000``, ``"100k"``, ``"1m"``); the grid is the nearest square.
    seed : int, default 0
        Seed of ``numpy.random.default_rng``; the same seed gives the same city.
    crs : str, default "EPSG:32648"
        Projected CRS stamped on the layers (coordinates are plausible UTM 48N metres).
    geometry : bool, default True
        Build the node point geometries (skip them to save time and memory in pure engine benchmarks;
        ``nodes`` then is a plain DataFrame).

    Returns
    -------
    SyntheticCity
        ``(net, cells, facilities, units)`` following the DESIGN.md contracts. ``net`` is a
        ``accessibility.network.WalkNetwork`` when that module is importable, else a namespace with
        ``nodes``, ``edges`` and ``crs``.
    """
    n = _parse_size(n_nodes)
    if n < 4:
        raise ValueError(f"n_nodes={n_nodes!r}: a synthetic city needs at least 4 nodes")
    rng = np.random.default_rng(seed)
    side = max(2, round(math.sqrt(n)))
    n = side * side
    extent = side * _SPACING_M

    # --- nodes: jittered grid
    ij = np.arange(n, dtype=np.int64)
    row, col = np.divmod(ij, side)
    x = _ORIGIN[0] + col * _SPACING_M + rng.uniform(-_JITTER_M, _JITTER_M, n)
    y = _ORIGIN[1] + row * _SPACING_M + rng.uniform(-_JITTER_M, _JITTER_M, n)
    elev = _terrain(x - _ORIGIN[0], y - _ORIGIN[1], rng, extent)

    # --- undirected links: right and up neighbours, some removed
    right = ij[col < side - 1]
    up = ij[row < side - 1]
    a = np.concatenate([right, up])
    b = np.concatenate([right + 1, up + side])
    horizontal = np.concatenate([np.ones(right.size, bool), np.zeros(up.size, bool)])
    keep = rng.random(a.size) >= _REMOVE_SHARE
    a, b, horizontal = a[keep], b[keep], horizontal[keep]
    m = a.size
    length = np.hypot(x[b] - x[a], y[b] - y[a])
    rise_ab = elev[b] - elev[a]
    steep = np.abs(rise_ab) / length > 0.10
    is_steps = steep & (rng.random(m) < _STEPS_SHARE)
    hw_code = np.where(is_steps, 4, rng.choice(4, size=m, p=[0.45, 0.35, 0.1, 0.1]))
    way_id = np.arange(1, m + 1, dtype=np.int64) + 10_000_000
    # street names: one per grid row (horizontal) / column (vertical)
    names = np.array([f"Synthetic Road {k}" for k in range(side)]
                     + [f"Synthetic Street {k}" for k in range(side)], dtype=object)
    name_code = np.where(horizontal, row[a], side + col[a])

    # --- directed edges: both directions
    u = np.concatenate([a, b])
    v = np.concatenate([b, a])
    edges = pd.DataFrame(
        {
            "u": u,
            "v": v,
            "length_m": np.concatenate([length, length]),
            "highway": pd.array(_HIGHWAYS[np.concatenate([hw_code, hw_code])], dtype="str"),
            "is_steps": np.concatenate([is_steps, is_steps]),
            "name": pd.array(names[np.concatenate([name_code, name_code])], dtype="str"),
            "osm_way_id": np.concatenate([way_id, way_id]),
            "rise_m": np.concatenate([rise_ab, -rise_ab]),
        }
    )
    for col_name, values in _edge_times(edges).items():
        edges[col_name] = values
    # rows ordered by (v, u), as build_walk_network does
    edges = edges.iloc[np.lexsort((edges["u"].to_numpy(), edges["v"].to_numpy()))].reset_index(drop=True)

    # --- components (0 = largest weakly connected)
    graph = coo_matrix((np.ones(m, np.int8), (a, b)), shape=(n, n)).tocsr()
    _, labels = connected_components(graph, directed=False)
    sizes = np.bincount(labels)
    rank = np.empty_like(sizes)
    rank[np.argsort(-sizes, kind="stable")] = np.arange(sizes.size)
    component = rank[labels].astype(np.int64)

    node_cols = {
        "osm_id": ij + 1,
        "x": x,
        "y": y,
        "elev_m": elev,
        "component": component,
    }
    if geometry:
        nodes = gpd.GeoDataFrame(node_cols, geometry=gpd.points_from_xy(x, y), crs=crs)
    else:
        nodes = pd.DataFrame(node_cols)
    nodes.index.name = "node"

    x0, y0 = _ORIGIN[0] - _SPACING_M / 2, _ORIGIN[1] - _SPACING_M / 2
    cells, facilities, units = _demand(x0, y0, extent, extent, n, rng, crs)
    net = _walk_network(nodes, edges, crs)
    return SyntheticCity(net, cells, facilities, units)


def _demand(x0: float, y0: float, width: float, height: float, n: int, rng: np.random.Generator, crs):
    """Cells (~n/4 on a regular grid), facilities (~n/500 per circle) and 3 x 3 units over a box."""
    x1, y1 = x0 + width, y0 + height

    # --- units: 3 x 3 boxes
    k = 3
    ux = np.linspace(x0, x1, k + 1)
    uy = np.linspace(y0, y1, k + 1)
    boxes, codes, names_u = [], [], []
    for r in range(k):
        for c in range(k):
            idx = r * k + c
            boxes.append(shapely.box(ux[c], uy[r], ux[c + 1], uy[r + 1]))
            codes.append(f"500105{idx + 1:03d}")
            names_u.append(f"合成街道{idx + 1}")
    units = gpd.GeoDataFrame(
        {
            "unit_code": pd.array(codes, dtype="str"),
            "unit_name": pd.array(names_u, dtype="str"),
            "unit_name_en": pd.array([f"Synthetic Street {i + 1}" for i in range(k * k)], dtype="str"),
            "unit_kind": pd.array(["街道"] * (k * k), dtype="str"),
        },
        geometry=boxes,
        crs=crs,
    )

    # --- population cells: a regular grid of ~n/4 centres
    n_cells = max(1, n // 4)
    cstep = math.sqrt(width * height / n_cells)
    ncx, ncy = max(1, round(width / cstep)), max(1, round(height / cstep))
    cx, cy = np.meshgrid(x0 + (np.arange(ncx) + 0.5) * width / ncx, y0 + (np.arange(ncy) + 0.5) * height / ncy)
    cx, cy = cx.ravel(), cy.ravel()
    pop = np.round(rng.lognormal(mean=4.0, sigma=0.8, size=cx.size), 1)
    share60 = np.clip(rng.normal(0.19, 0.04, cx.size), 0.05, 0.45)
    ucol = np.minimum(((cx - x0) / (width / k)).astype(np.int64), k - 1)
    urow = np.minimum(((cy - y0) / (height / k)).astype(np.int64), k - 1)
    unit_codes = np.array(codes, dtype=object)[urow * k + ucol]
    cell_cols = {
        "cell_id": np.arange(cx.size, dtype=np.int64),
        "population": pop,
        "pop_60plus": pop * share60,
        "unit_code": pd.array(unit_codes, dtype="str"),
    }
    cells = gpd.GeoDataFrame(cell_cols, geometry=gpd.points_from_xy(cx, cy), crs=crs)

    # --- facilities: ~n/500 per circle, uniform in the extent
    per = max(2, n // 500)
    frames = []
    for cid, (cat, _profile, _pop) in CIRCLES.items():
        fx = rng.uniform(x0, x1, per)
        fy = rng.uniform(y0, y1, per)
        ids = [f"syn:{cid}:{i}" for i in range(per)]
        frames.append(
            pd.DataFrame(
                {
                    "fac_id": ids,
                    "name": [f"{cat} {i}" for i in range(per)],
                    "category": cat,
                    "circles": cid,
                    "source": "synthetic_city",
                    "status": "synthetic",
                    "classified_by": "synthetic generator",
                    "capacity": np.round(rng.uniform(10, 200, per)),
                    "x": fx,
                    "y": fy,
                }
            )
        )
    fac = pd.concat(frames, ignore_index=True)
    for col_name in ("fac_id", "name", "category", "circles", "source", "status", "classified_by"):
        fac[col_name] = fac[col_name].astype("str")
    facilities = gpd.GeoDataFrame(
        fac.drop(columns=["x", "y"]), geometry=gpd.points_from_xy(fac["x"], fac["y"]), crs=crs
    )

    return cells, facilities, units


def _walk_network(nodes, edges, crs):
    try:
        from accessibility.network import WalkNetwork
    except ImportError:
        return SimpleNamespace(nodes=nodes, edges=edges, crs=crs)
    return WalkNetwork(nodes, edges, crs, profiles=list(PROFILES))


def synthetic_demand(net, *, seed: int = 0):
    """Synthetic cells, facilities and units over the bounding box of a real network's nodes.

    Same rules as :func:`synthetic_city` (``~n/4`` cells, ``max(10, n/500)`` facilities per circle,
    3 x 3 units), for benchmarking a real graph (e.g. an OSM extract) with made-up demand.

    Returns
    -------
    cells, facilities, units : GeoDataFrame
    """
    rng = np.random.default_rng(seed)
    x = net.nodes["x"].to_numpy(dtype=float)
    y = net.nodes["y"].to_numpy(dtype=float)
    n = max(len(x), 5_000)
    return _demand(float(x.min()), float(y.min()), float(np.ptp(x)), float(np.ptp(y)), n, rng, net.crs)


def synthetic_config(*, crs: str = "EPSG:32648", base_dir: str | Path = ".", threshold_min: float = 15.0):
    """An :class:`~accessibility.config.AreaConfig` for a synthetic city (three 15-minute circles).

    Parameters
    ----------
    crs : str, default "EPSG:32648"
    base_dir : str or Path, default "."
        Folder that stands in for the config's base and output folders.
    threshold_min : float, default 15
        Threshold of every circle in minutes.
    """
    from accessibility.config import AreaConfig, Category, Circle, Profile, Siting, Terrain

    base = Path(base_dir)
    profiles = {p: Profile(name=p, flat_speed_mps=s, allow_steps=True, label=f"{p} {s} m/s")
                for p, s in PROFILES.items()}
    categories = {cat: Category(id=cat, label_zh=cat, label_en=cat, names=(cat,))
                  for cat, _, _ in CIRCLES.values()}
    circles = {
        cid: Circle(id=cid, label_zh=cid, label_en=cid, categories=(cat,), mode="time",
                    threshold=threshold_min * 60.0, profile=prof, population=pop, target_share=1.0)
        for cid, (cat, prof, pop) in CIRCLES.items()
    }
    return AreaConfig(
        name="synthetic_city",
        title_zh="合成城市（基准测试）",
        title_en="Synthetic city (benchmark)",
        crs=crs,
        config_path=base / "synthetic_city.yaml",
        base_dir=base,
        output_root=base,
        sources={},
        facility_sources=(),
        profiles=profiles,
        terrain=Terrain(),
        circles=circles,
        categories=categories,
        siting=Siting(),
    )
