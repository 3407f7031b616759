"""The directed walking network.

:func:`build_walk_network` turns :class:`~accessibility.osm.OSMData` into a :class:`WalkNetwork`
(DESIGN.md, "WalkNetwork"): the ways a pedestrian may use, every consecutive node pair of a kept
way as two directed edges, projected lengths, elevations from a smoothed DEM, and one time column
per walking profile (terrain-aware and flat). Everything is vectorised: the only Python loop is
the tag filter over ways.
"""

from __future__ import annotations

import dataclasses
import logging
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from accessibility._errors import AccessibilityWarning, DataError
from accessibility.config import Profile, Terrain

__all__ = [
    "MIN_LENGTH_M",
    "WALKABLE_HIGHWAYS",
    "WalkNetwork",
    "build_walk_network",
    "component_report",
    "is_walkable",
    "node_components",
    "to_networkx",
]

logger = logging.getLogger(__name__)

#: Highway values a pedestrian may always use (unless foot=no / access=private|no).
WALKABLE_HIGHWAYS = frozenset({
    "footway", "path", "steps", "pedestrian", "living_street", "residential", "service",
    "unclassified", "track", "road", "tertiary", "tertiary_link", "secondary", "secondary_link",
    "primary", "primary_link", "corridor", "crossing", "platform", "bridleway",
})
#: Highway values walkable only with a sidewalk or an explicit foot permission.
CONDITIONAL_HIGHWAYS = frozenset({"trunk", "trunk_link"})
#: Highway values walkable unless foot=no.
SHARED_HIGHWAYS = frozenset({"cycleway"})
#: Highway values kept as an outline when tagged area=yes (a square: one can walk round it).
AREA_HIGHWAYS = frozenset({"pedestrian", "footway", "platform", "living_street", "path"})
FOOT_OK = frozenset({"yes", "designated", "permissive", "official"})
SIDEWALK_OK = frozenset({"yes", "both", "left", "right"})
NO_ACCESS = frozenset({"no", "private"})
#: Length given to zero/NaN-length segments (they are reported, never dropped silently).
MIN_LENGTH_M = 0.01


def is_walkable(tags: dict) -> bool:
    """Whether a way with these OSM tags may be walked.

    Rules: ``foot=no`` never; ``access=no|private`` only with ``foot=yes|designated|permissive``;
    ``highway`` in :data:`WALKABLE_HIGHWAYS`; ``trunk`` only with a sidewalk or foot permission;
    ``cycleway`` unless ``foot=no``; motorways, construction and proposed roads never;
    ``area=yes`` only for squares (pedestrian/footway/...), whose outline is kept.
    """
    if not isinstance(tags, dict):
        return False
    hw = tags.get("highway")
    if not hw:
        return False
    foot = str(tags.get("foot", "")).lower()
    if foot == "no":
        return False
    foot_ok = foot in FOOT_OK
    if str(tags.get("access", "")).lower() in NO_ACCESS and not foot_ok:
        return False
    if str(tags.get("area", "")).lower() == "yes" and hw not in AREA_HIGHWAYS:
        return False
    if hw in WALKABLE_HIGHWAYS or hw in SHARED_HIGHWAYS:
        return True
    if hw in CONDITIONAL_HIGHWAYS:
        sidewalk = {str(tags.get(k, "")).lower() for k in ("sidewalk", "sidewalk:both", "sidewalk:left",
                                                           "sidewalk:right")}
        return foot_ok or bool(sidewalk & SIDEWALK_OK)
    return False


@dataclass(eq=False)
class WalkNetwork:
    """The directed walking graph (DESIGN.md "WalkNetwork").

    Attributes
    ----------
    nodes : geopandas.GeoDataFrame
        Index 0..n-1; ``osm_id``, ``x``, ``y``, ``elev_m``, ``component``, ``geometry``.
    edges : pandas.DataFrame
        One row per directed edge: ``u``, ``v``, ``length_m``, ``highway``, ``is_steps``, ``name``,
        ``osm_way_id``, ``rise_m`` (DEM, else OSM step_count/incline tags, else 0), ``time_s_<profile>``,
        ``time_s_<profile>_flat``.
    crs : str
        The projected CRS of ``x``/``y``.
    profiles : list of str
        Profile names that have time columns.

    Treat it as immutable: compiled matrices and KD-trees are cached on it.
    """

    nodes: Any
    edges: pd.DataFrame
    crs: Any
    profiles: list[str] = field(default_factory=list)
    _cache: dict = field(default_factory=dict, repr=False)

    @property
    def n_nodes(self) -> int:
        return len(self.nodes)

    def matrix(self, weight: str, *, reverse: bool = False):
        """Compiled sparse matrix of ``weight`` (see :func:`accessibility.traveltime.graph_matrix`).

        Cached and shared: treat it as read-only (its index arrays are shared across weights and
        write-protected; ``.copy()`` it before in-place operations such as ``eliminate_zeros``).
        """
        from accessibility.traveltime import graph_matrix

        return graph_matrix(self, weight, reverse=reverse)

    def weight_columns(self) -> list[str]:
        """Edge columns usable as weights."""
        return ["length_m"] + [c for c in self.edges.columns if c.startswith("time_s_")]

    def __getstate__(self):  # do not ship caches to Dask workers
        state = self.__dict__.copy()
        state["_cache"] = {}
        return state


def _explode_ways(ways: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Consecutive node pairs of every way: (a, b, way_position), fully vectorised."""
    refs = [np.asarray(r, dtype=np.int64) for r in ways["refs"]]
    lens = np.fromiter((r.size for r in refs), dtype=np.int64, count=len(refs))
    if lens.sum() == 0:
        empty = np.empty(0, dtype=np.int64)
        return empty, empty, empty
    flat = np.concatenate(refs) if refs else np.empty(0, dtype=np.int64)
    way_pos = np.repeat(np.arange(len(refs)), lens)
    same_way = way_pos[:-1] == way_pos[1:]
    a = flat[:-1][same_way]
    b = flat[1:][same_way]
    return a, b, way_pos[:-1][same_way]


def _tag_column(tags: pd.Series, key: str) -> np.ndarray:
    return np.array([str(t.get(key, "")) if isinstance(t, dict) and t.get(key) is not None else ""
                     for t in tags], dtype=object)


#: Height of one step (m) when a flight's rise comes from its ``step_count`` tag (EN 1991 / GB
#: 50352 stairs: 0.15-0.175 m risers; outdoor flights lean low).
STEP_RISER_M = 0.16


def _incline(text: str) -> tuple[float, float]:
    """``incline`` tag -> (direction along the way: +1 up, -1 down, 0 unknown; grade or NaN).

    ``up``/``down`` give a direction only; ``12%``, ``-8 %``, ``5°`` give a signed grade.
    """
    # "º" (ordinal sign) is often typed for "°"; "1,5%" is a decimal comma
    t = str(text).strip().lower().replace(" ", "").replace("º", "°").replace(",", ".")
    if t in ("up", "yes"):
        return (1.0 if t == "up" else 0.0), np.nan
    if t == "down":
        return -1.0, np.nan
    try:
        if t.endswith("%"):
            g = float(t[:-1]) / 100.0
        elif t.endswith("°") or t.endswith("deg"):
            g = float(np.tan(np.radians(float(t.rstrip("°").removesuffix("deg")))))
        else:
            return 0.0, np.nan
    except ValueError:
        return 0.0, np.nan
    if not np.isfinite(g) or abs(g) > 1.0:  # > 45°: a typo, not a street
        return 0.0, np.nan
    return float(np.sign(g)), g


def tag_rise(tags: pd.Series, is_steps: np.ndarray, seg_way: np.ndarray, seg_len: np.ndarray,
             *, way_len: np.ndarray | None = None, way_ids=None, source: str = "OSM data"):
    """Rise of each way segment (in way direction) from OSM tags, for networks without a DEM.

    - steps with ``step_count``: the flight climbs ``step_count x`` :data:`STEP_RISER_M`, spread
      over its segments by length; ``incline=up/down`` (or a signed grade) gives the direction;
    - any way with a numeric ``incline`` (``10%``, ``-6%``, ``4°``): rise = grade x length, and for
      steps without ``step_count`` too.

    A ``step_count`` implying a climb steeper than 45° over the flight's length (``count x``
    :data:`STEP_RISER_M` > length: a typo, or a count of the whole staircase on a short piece)
    is not used, and said in the log.

    Parameters
    ----------
    tags : pandas.Series of dict
        Tags per way.
    is_steps : numpy.ndarray of bool
        Per way: ``highway=steps``.
    seg_way, seg_len : numpy.ndarray
        Per segment: its way's position and its length (m).
    way_len : numpy.ndarray, optional
        Per way: its whole length (m), including segments merged into other ways; default the
        sum of ``seg_len`` per way.
    way_ids : array-like, optional
        OSM way ids, named in the log.
    source : str
        Named in the log.

    Returns
    -------
    rise : numpy.ndarray
        Metres along the way direction; NaN where the tags say nothing.
    unknown_dir : numpy.ndarray of bool
        Steps whose rise is known (``step_count``) but not whether the way goes up or down.
    """
    incl = [_incline(t.get("incline", "")) if isinstance(t, dict) else (0.0, np.nan) for t in tags]
    sign = np.array([d for d, _ in incl], dtype=float)
    grade = np.array([g for _, g in incl], dtype=float)
    count = np.full(len(tags), np.nan)
    for i, t in enumerate(tags):
        if is_steps[i] and isinstance(t, dict) and t.get("step_count") is not None:
            try:
                c = float(str(t["step_count"]).strip())
            except ValueError:
                continue
            if 0 < c < 10_000:
                count[i] = c
    if way_len is None:
        way_len = np.bincount(seg_way, weights=seg_len, minlength=len(tags))
    way_len = np.asarray(way_len, dtype=float)
    steep = np.isfinite(count) & (count * STEP_RISER_M > way_len)
    if steep.any():
        first = int(np.flatnonzero(steep)[0])
        logger.info("%s: step_count of %d flight(s) ignored: steeper than 45° over the flight's length "
                    "(e.g. way %s: %g steps over %.1f m)", source, int(steep.sum()),
                    way_ids[first] if way_ids is not None else f"#{first}", count[first], way_len[first])
        count[steep] = np.nan
    share = np.minimum(seg_len / np.where(way_len[seg_way] > 0, way_len[seg_way], 1.0), 1.0)
    by_count = count[seg_way] * STEP_RISER_M * share
    rise = np.where(np.isfinite(grade[seg_way]), grade[seg_way] * seg_len, np.nan)
    use_count = np.isfinite(by_count)
    rise = np.where(use_count, by_count * np.where(sign[seg_way] == 0, 1.0, sign[seg_way]), rise)
    unknown_dir = use_count & (sign[seg_way] == 0)
    return rise, unknown_dir


def build_walk_network(
    osm,
    crs,
    *,
    profiles: dict[str, Profile],
    terrain: Terrain | None = None,
    dem_path=None,
    dem_vertical_units: str | None = None,
    progress: bool = False,
) -> WalkNetwork:
    """Build the directed walking network from OSM data.

    Parameters
    ----------
    osm : OSMData
        ``nodes`` (index id, lon, lat), ``ways`` (id, refs, tags); see DESIGN.md.
    crs : anything pyproj accepts
        The area's projected CRS (metres).
    profiles : dict of str to Profile
        Walking profiles; each gets ``time_s_<name>`` and ``time_s_<name>_flat`` columns.
    terrain : Terrain, optional
        Time model and step costs; defaults to ``Terrain()`` (Tobler).
    dem_path : path, optional
        DEM GeoTIFF; without it elevations are NaN and every rise is 0.
    dem_vertical_units : {"m", "ft", "us_ft"}, optional
        The DEM's vertical unit (default: the raster's band unit, else metres); street grades
        too steep to be real are warned about (:func:`accessibility.terrain.check_grades`).
    progress : bool, default False
        Show a progress bar over the tag filter.

    Returns
    -------
    WalkNetwork

    Raises
    ------
    DataError
        If no way is walkable, or the node table lacks lon/lat.
    """
    import geopandas as gpd
    import shapely
    from pyproj import Transformer
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    from accessibility import terrain as terrain_mod

    terrain = terrain or Terrain()
    source = getattr(osm, "source", "OSM data")
    ways = osm.ways
    nodes_in = osm.nodes
    missing = [c for c in ("lon", "lat") if c not in nodes_in.columns]
    missing += [c for c in ("id", "refs", "tags") if c not in ways.columns]
    if missing:
        raise DataError(f"{source}: OSM tables lack column(s) {', '.join(missing)}: read the file with "
                        "accessibility.osm.read_osm")

    tag_iter = ways["tags"]
    if progress:
        from tqdm.auto import tqdm

        tag_iter = tqdm(tag_iter, desc="walkable ways", total=len(ways))
    keep = np.fromiter((is_walkable(t) for t in tag_iter), dtype=bool, count=len(ways))
    kept = ways.loc[keep].reset_index(drop=True)
    if kept.empty:
        raise DataError(f"{source}: none of its {len(ways)} ways is walkable (no highway=footway/"
                        "residential/... without foot=no): check the extract covers streets")
    logger.info("%s: %d of %d ways walkable", source, len(kept), len(ways))

    a, b, wpos = _explode_ways(kept)
    loops = a == b
    if loops.any():
        logger.debug("dropped %d repeated consecutive nodes", int(loops.sum()))
        a, b, wpos = a[~loops], b[~loops], wpos[~loops]

    # node coordinates; segments touching unknown nodes are dropped (clipped extracts)
    node_ids = nodes_in.index.to_numpy(dtype=np.int64)
    known_a = np.isin(a, node_ids)
    known_b = np.isin(b, node_ids)
    known = known_a & known_b
    if not known.all():
        n_bad = int((~known).sum())
        warnings.warn(f"{source}: {n_bad} way segment(s) refer to nodes missing from the extract and "
                      "were dropped (extract clipped without complete ways?)", AccessibilityWarning,
                      stacklevel=2)
        a, b, wpos = a[known], b[known], wpos[known]

    hw = _tag_column(kept["tags"], "highway")
    names = _tag_column(kept["tags"], "name")
    oneway_foot = _tag_column(kept["tags"], "oneway:foot")
    is_steps_way = hw == "steps"

    # each way's whole length (metres, local equirectangular), before shared segments are merged:
    # a flight's step_count rise is spread over the whole flight, not only the segments it keeps
    lon_a, lat_a = nodes_in["lon"].reindex(a).to_numpy(float), nodes_in["lat"].reindex(a).to_numpy(float)
    lon_b, lat_b = nodes_in["lon"].reindex(b).to_numpy(float), nodes_in["lat"].reindex(b).to_numpy(float)
    m_per_deg = 111_320.0
    approx = np.hypot((lon_b - lon_a) * m_per_deg * np.cos(np.radians(0.5 * (lat_a + lat_b))),
                      (lat_b - lat_a) * m_per_deg)
    way_len_full = np.bincount(wpos, weights=np.nan_to_num(approx), minlength=len(kept))

    # dedupe identical segments (same unordered node pair), preferring non-steps, then way order
    lo = np.minimum(a, b)
    hi = np.maximum(a, b)
    seg = pd.DataFrame({"lo": lo, "hi": hi, "a": a, "b": b, "w": wpos, "st": is_steps_way[wpos]})
    seg = seg.sort_values(["st", "w"], kind="stable").drop_duplicates(["lo", "hi"], keep="first")
    seg = seg.sort_values("w", kind="stable")
    a = seg["a"].to_numpy()
    b = seg["b"].to_numpy()
    wpos = seg["w"].to_numpy()

    used, inv = np.unique(np.concatenate([a, b]), return_inverse=True)
    ua = inv[: a.size].astype(np.int64)
    ub = inv[a.size:].astype(np.int64)
    ll = nodes_in.loc[used, ["lon", "lat"]].to_numpy(dtype=float)
    tr = Transformer.from_crs("EPSG:4326", crs, always_xy=True)
    x, y = tr.transform(ll[:, 0], ll[:, 1])
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)

    length = np.hypot(x[ub] - x[ua], y[ub] - y[ua])
    bad = ~np.isfinite(length) | (length <= 0)
    if bad.any():
        warnings.warn(f"{source}: {int(bad.sum())} walkable segment(s) have zero or unknown length "
                      f"(duplicate node positions or missing coordinates); given {MIN_LENGTH_M} m",
                      AccessibilityWarning, stacklevel=2)
        length = np.where(bad, MIN_LENGTH_M, length)

    # directions: both, unless oneway:foot says otherwise
    ow = oneway_foot[wpos]
    fwd = ow != "-1"
    bwd = ~np.isin(ow, ["yes", "true", "1"])
    u = np.concatenate([ua[fwd], ub[bwd]])
    v = np.concatenate([ub[fwd], ua[bwd]])
    order = np.concatenate([np.flatnonzero(fwd), np.flatnonzero(bwd)])
    w_e = wpos[order]
    len_e = length[order]

    n = used.size
    if dem_path is not None:
        elev = terrain_mod.sample_dem(dem_path, x, y, crs, smoothing_m=terrain.smoothing_m,
                                      vertical_units=dem_vertical_units)
    else:
        elev = np.full(n, np.nan)
    rise = elev[v] - elev[u]
    if dem_path is not None:
        terrain_mod.check_grades(len_e, rise, is_steps_way[w_e], source=str(dem_path))
    # where the DEM says nothing (no DEM given, or outside it), OSM's step_count / incline tags do
    seg_rise, seg_unknown = tag_rise(kept["tags"], is_steps_way, wpos, length, way_len=way_len_full,
                                     way_ids=kept["id"].to_numpy(), source=source)
    along = np.concatenate([np.ones(int(fwd.sum())), -np.ones(int(bwd.sum()))])  # edge follows the way?
    from_tags = np.isnan(rise) & np.isfinite(seg_rise[order])
    rise = np.where(from_tags, along * seg_rise[order], rise)
    rise = np.nan_to_num(rise, nan=0.0)
    # flights whose direction is unknown: the mean of going up and going down, both ways
    unknown_dir = from_tags & seg_unknown[order]
    if from_tags.any():
        logger.info("%s: rise of %d edge(s) from step_count/incline tags (%d flights of unknown "
                    "direction)", source, int(from_tags.sum()), int(unknown_dir.sum()))

    edges = pd.DataFrame({
        "u": u.astype(np.int64),
        "v": v.astype(np.int64),
        "length_m": len_e.astype(float),
        "highway": pd.array(hw[w_e], dtype="str"),
        "is_steps": is_steps_way[w_e],
        "name": pd.array(names[w_e], dtype="str"),
        "osm_way_id": kept["id"].to_numpy(dtype=np.int64)[w_e],
        "rise_m": rise.astype(float),
    })
    flat_terrain = dataclasses.replace(terrain, model="flat")
    steps = edges["is_steps"].to_numpy()
    for pname, prof in profiles.items():
        t = terrain_mod.edge_times(len_e, rise, steps, prof, terrain)
        if unknown_dir.any():
            t_rev = terrain_mod.edge_times(len_e, -rise, steps, prof, terrain)
            t = np.where(unknown_dir, 0.5 * (t + t_rev), t)
        edges[f"time_s_{pname}"] = t
        edges[f"time_s_{pname}_flat"] = terrain_mod.edge_times(len_e, np.zeros_like(rise), steps, prof,
                                                               flat_terrain)

    # rows ordered by (v, u): the transposed CSR ("home to facility" searches) compiles without a sort
    edges = edges.iloc[np.lexsort((edges["u"].to_numpy(), edges["v"].to_numpy()))].reset_index(drop=True)

    # weakly connected components, labelled by size (0 = largest)
    g = coo_matrix((np.ones(u.size), (u, v)), shape=(n, n)).tocsr()
    _, labels = connected_components(g, directed=True, connection="weak")
    sizes = np.bincount(labels)
    rank = np.empty_like(sizes)
    rank[np.argsort(-sizes, kind="stable")] = np.arange(sizes.size)
    comp = rank[labels].astype(np.int64)

    nodes = gpd.GeoDataFrame(
        {
            "osm_id": used.astype(np.int64),
            "x": x,
            "y": y,
            "elev_m": elev.astype(float),
            "component": comp,
        },
        geometry=shapely.points(x, y),
        crs=crs,
    )
    nodes.index.name = "node"
    logger.info("walk network: %d nodes, %d directed edges, %d components (largest %d nodes)",
                n, len(edges), sizes.size, int(sizes.max()))
    return WalkNetwork(nodes=nodes, edges=edges, crs=crs, profiles=list(profiles))


def node_components(net: WalkNetwork, nodes) -> np.ndarray:
    """Component label (0 = largest) of positional ``nodes``; -1 where a node is -1."""
    nodes = np.asarray(nodes, dtype=np.int64)
    comp = net.nodes["component"].to_numpy()
    return np.where(nodes >= 0, comp[np.clip(nodes, 0, None)], -1)


def component_report(net: WalkNetwork, cells=None, facilities=None, *, weight_col: str = "population"):
    """Population and facilities per network component (who sits on cut-off fragments).

    Parameters
    ----------
    net : WalkNetwork
    cells : GeoDataFrame, optional
        Cells (projected, same CRS); snapped to the nearest node.
    facilities : GeoDataFrame, optional
        Facilities (projected, same CRS); snapped to the nearest node.
    weight_col : str, default "population"
        Demand column of ``cells``.

    Returns
    -------
    pandas.DataFrame
        Index ``component``; columns ``n_nodes``, ``population``, ``n_cells``, ``n_facilities``,
        sorted by component (0 = largest). Rows other than 0 are fragments cut off from the main
        network: residents there reach only the facilities of their own fragment.
    """
    from accessibility.traveltime import snap

    comp = net.nodes["component"].to_numpy()
    out = pd.DataFrame({"n_nodes": np.bincount(comp)})
    out.index.name = "component"
    out["population"] = 0.0
    out["n_cells"] = 0
    out["n_facilities"] = 0
    if cells is not None and len(cells):
        node, _ = snap(net, cells.geometry.x.to_numpy(), cells.geometry.y.to_numpy())
        c = comp[node]
        out["population"] = np.bincount(c, weights=cells[weight_col].to_numpy(dtype=float),
                                        minlength=len(out))
        out["n_cells"] = np.bincount(c, minlength=len(out))
    if facilities is not None and len(facilities):
        node, _ = snap(net, facilities.geometry.x.to_numpy(), facilities.geometry.y.to_numpy())
        out["n_facilities"] = np.bincount(comp[node], minlength=len(out))
    return out


def to_networkx(net: WalkNetwork, weight: str):
    """A ``networkx.DiGraph`` with ``weight`` as edge attribute (minimum over parallel edges).

    Edges with infinite weight (forbidden for the profile) are left out. Meant for tests and
    oracles, not for production searches.
    """
    import networkx as nx

    e = net.edges[["u", "v", weight]]
    e = e[np.isfinite(e[weight].to_numpy())]
    e = e.sort_values(weight, kind="stable").drop_duplicates(["u", "v"], keep="first")
    g = nx.DiGraph()
    g.add_nodes_from(range(net.n_nodes))
    g.add_weighted_edges_from(
        zip(e["u"].tolist(), e["v"].tolist(), e[weight].tolist(), strict=True), weight=weight
    )
    return g
