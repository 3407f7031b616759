"""What if we build here, or close that? Before/after coverage of added and removed facilities.

A what-if answers, per unit and for the district, how the coverage of one or several circles
changes when new sites are added (points in WGS-84, GCJ-02 or BD-09, planned-project layers, or
candidate site ids) and existing facilities are removed (``fac_id``), with the run's own rule
(DESIGN.md "The question and the formula"): a cell is covered when at least ``min_reachable``
facilities of the circle are within the threshold, each pair tested by
:func:`accessibility.coverage._reach_pairs`, the one pair test of coverage and siting.

Speed comes from precomputing, once per circle, the existing facilities' reach pairs (a sparse
cells x facilities matrix) and each cell's count of reachable facilities. A what-if then costs one
bounded search per *new* site (cached) and a few sparse column updates of the counts:
``count_after = count_now - removed columns + added columns``, ``covered = count >= min_reachable``.
This is exact for every ``min_reachable`` (no lower bound), and adding the existing facilities
back reproduces the baseline exactly.

Tried sites are snapped like facilities (nearest node of any component; the snap distance is the
walk from the network; farther than ``max_snap_m``: covers nobody). A site whose nearest node is
on a fragment cut off from the main network, or beyond ``max_snap_m``, is reported in the result
and with an :class:`~accessibility._errors.AccessibilityWarning` naming the fragment's size and the
nearest node on the main network (:func:`check_sites`).
"""

from __future__ import annotations

import logging
import warnings
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import scipy.sparse as sp

from accessibility._errors import AccessibilityWarning, DataError
from accessibility.labels import district_names

log = logging.getLogger(__name__)

__all__ = ["WHATIF_COLUMNS", "WhatIf", "WhatIfResult", "check_sites", "result_text", "what_if"]

#: Columns of the before/after table (``accessibility whatif --out``), in order.
WHATIF_COLUMNS = [
    "circle", "unit_code", "unit_name", "unit_name_en", "population",
    "covered_population_before", "covered_population_after", "gain",
    "coverage_share_before", "coverage_share_after", "target_share",
    "gap_population_before", "gap_population_after", "meets_target_before", "meets_target_after",
    "data_status",
]
#: Bounded searches of new sites remembered per what-if object (site node and walk, per circle).
_SITE_MEMO = 4096


# ---------------------------------------------------------------------------------------------
# snapping check of tried sites


def _fragment_sizes(net) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and metres of street (each segment once) per network component, cached on ``net``."""
    key = ("whatif_fragments",)
    if key in net._cache:
        return net._cache[key]
    comp = net.nodes["component"].to_numpy()
    n_nodes = np.bincount(comp)
    e = net.edges
    u, v = e["u"].to_numpy(), e["v"].to_numpy()
    seg = pd.DataFrame({"a": np.minimum(u, v), "b": np.maximum(u, v),
                        "len": e["length_m"].to_numpy(dtype=float)}).drop_duplicates(["a", "b"])
    street_m = np.bincount(comp[seg["a"].to_numpy()], weights=seg["len"].to_numpy(),
                           minlength=n_nodes.size)
    net._cache[key] = (n_nodes, street_m)
    return n_nodes, street_m


def check_sites(net, x, y, *, max_snap_m: float, labels: Sequence[str] | None = None,
                nodes=None, warn: bool = True) -> pd.DataFrame:
    """Where tried sites snap, and whether that is a usable place on the walking network.

    Sites snap like facilities: to the nearest network node of any component, the straight-line
    distance being their walk from the network. A site is *usable* when that node is on the main
    network (component 0) and within ``max_snap_m``; otherwise the report names the fragment's
    size and the nearest node on the main network, and (``warn=True``) one
    :class:`~accessibility._errors.AccessibilityWarning` per such site says so.

    Parameters
    ----------
    net : WalkNetwork
    x, y : array_like
        Site coordinates in ``net.crs``.
    max_snap_m : float
        The rule's snap limit (``config.max_snap_m``).
    labels : sequence of str, optional
        Names of the sites in messages (default ``site 1``, ``site 2``, ...).
    nodes : array_like of float, optional
        Nodes the sites already sit on (candidate sites): no snapping, distance 0; NaN where a
        site is to be snapped.
    warn : bool, default True
        Warn about every site that is not usable.

    Returns
    -------
    pandas.DataFrame
        One row per site: ``site, node, snap_m, component, on_main_network, within_max_snap,
        fragment_nodes, fragment_street_m, main_node, main_snap_m, main_x, main_y, main_lon, main_lat,
        problem`` (``main_*``: the nearest node on the main network; ``problem`` is empty for
        usable sites).

    Examples
    --------
    >>> from accessibility.demo import synthetic_city
    >>> net = synthetic_city(2000, seed=1, geometry=False).net
    >>> x, y = net.nodes["x"].iloc[:1], net.nodes["y"].iloc[:1]
    >>> check_sites(net, x, y, max_snap_m=500)["problem"].tolist()
    ['']
    """
    from accessibility.traveltime import snap

    x = np.asarray(x, dtype=float).ravel()
    y = np.asarray(y, dtype=float).ravel()
    labels = [f"site {i + 1}" for i in range(x.size)] if labels is None else [str(s) for s in labels]
    node, dist = snap(net, x, y)
    if nodes is not None:  # sites already on a node (candidates; NaN: snap this one)
        given = np.asarray(nodes, dtype=float).ravel()
        ok = np.isfinite(given)
        node[ok], dist[ok] = given[ok].astype(np.int64), 0.0
    comp = net.nodes["component"].to_numpy()[node] if x.size else np.zeros(0, dtype=np.int64)
    n_nodes, street_m = _fragment_sizes(net)
    main_node, main_dist = snap(net, x, y, components=[0])
    nx_, ny_ = net.nodes["x"].to_numpy(), net.nodes["y"].to_numpy()
    out = pd.DataFrame({
        "site": labels, "node": node, "snap_m": dist, "component": comp,
        "on_main_network": comp == 0, "within_max_snap": dist <= max_snap_m,
        "fragment_nodes": np.where(comp == 0, 0, n_nodes[comp]),
        "fragment_street_m": np.where(comp == 0, 0.0, street_m[comp]),
        "main_node": main_node, "main_snap_m": main_dist,
        "main_x": nx_[main_node], "main_y": ny_[main_node],
    })
    lon, lat = _to_lonlat(out["main_x"].to_numpy(), out["main_y"].to_numpy(), net.crs)
    out["main_lon"], out["main_lat"] = np.asarray(lon, dtype=float), np.asarray(lat, dtype=float)
    out["problem"] = [_site_problem(r, max_snap_m) for r in out.itertuples(index=False)]
    if warn:
        for msg in out["problem"]:
            if msg:
                warnings.warn(msg, AccessibilityWarning, stacklevel=2)
    return out


def _site_problem(r, max_snap_m: float) -> str:
    """The message for a site that cannot serve as tried (empty when it can)."""
    hint = (f"the nearest node on the main network is {r.main_snap_m:,.0f} m away, at lon "
            f"{r.main_lon:.6f}, lat {r.main_lat:.6f} (WGS-84; node {r.main_node}): move the site "
            "there, or connect the fragment")
    if not r.within_max_snap:
        return (f"{r.site}: {r.snap_m:,.0f} m from the nearest walkable street, more than max_snap_m = "
                f"{max_snap_m:g} m: it covers nobody; {hint}")
    if not r.on_main_network:
        return (f"{r.site}: snaps {r.snap_m:,.0f} m to a fragment cut off from the main network "
                f"({r.fragment_nodes} nodes, {r.fragment_street_m:,.0f} m of street): it reaches only "
                f"that fragment; {hint}")
    return ""


# ---------------------------------------------------------------------------------------------
# the precomputed state of one circle


@dataclass
class _Base:
    """One circle, precomputed once: the existing facilities' reach pairs and the counts."""

    circle: Any
    rule: Any  # accessibility.rules.CircleRule
    weight_col: str
    scale: float  # walk metres -> cost units (1 / flat speed in time mode, 1 in distance mode)
    demand: np.ndarray
    fac_ids: np.ndarray  # fac_id of the matrix columns (the circle's usable facilities)
    fac_pos: dict  # fac_id -> column
    fac_node: np.ndarray
    fac_walk: np.ndarray
    count: np.ndarray  # facilities within the threshold, per cell
    covered: np.ndarray  # count >= min_reachable
    cell_node: np.ndarray
    cell_walk: np.ndarray  # cost of the walk to the network (inf beyond max_snap_m)
    others: frozenset = field(default_factory=frozenset)  # fac_ids of the circle left out (too far)
    F: sp.csc_matrix | None = None  # cells x facilities, bool (built when first needed)


@dataclass
class WhatIfResult:
    """The answer of one what-if.

    Attributes
    ----------
    table : pandas.DataFrame
        Per circle, one row per unit then the district row (columns :data:`WHATIF_COLUMNS`).
    cells : geopandas.GeoDataFrame
        The cells whose verdict changes: ``circle, cell_id, unit_code, demand, n_before, n_after,
        covered_before, covered_after``, point geometry (network CRS).
    sites : pandas.DataFrame
        The added sites: label, lon, lat (WGS-84), the snapping check of :func:`check_sites` and,
        per circle, ``gain_alone_<circle>`` (people newly covered by this site alone).
    removed : pandas.DataFrame
        The removed facilities: ``fac_id, name, circle, in_rule`` (``False``: the facility was
        not counted by the circle anyway).
    """

    table: pd.DataFrame
    cells: gpd.GeoDataFrame
    sites: pd.DataFrame
    removed: pd.DataFrame

    def to_csv(self, path) -> None:
        """Write :attr:`table` (rounded for reading, formula-safe text) atomically as UTF-8 CSV."""
        from accessibility._io import atomic_path
        from accessibility.pipeline import _rounded

        with atomic_path(path) as tmp:
            _rounded(self.table).to_csv(tmp, index=False, encoding="utf-8-sig")

    def district(self) -> pd.DataFrame:
        """The district rows only (one per circle)."""
        return self.table.groupby("circle", sort=False).tail(1).reset_index(drop=True)

    def __repr__(self) -> str:
        d = self.district()
        parts = [f"{r.circle}: {r.coverage_share_before:.1%} -> {r.coverage_share_after:.1%} "
                 f"({r.gain:+,.0f} people)" for r in d.itertuples()]
        flagged = int((self.sites["problem"] != "").sum()) if len(self.sites) else 0
        return (f"WhatIfResult({len(self.sites)} site(s) added, {len(self.removed)} removed; "
                + "; ".join(parts) + (f"; {flagged} site(s) flagged" if flagged else "") + ")")


class WhatIf:
    """Before/after coverage of added sites and removed facilities, fast after a one-off setup.

    Parameters
    ----------
    cells, facilities : geopandas.GeoDataFrame
        Cells and facilities (DESIGN.md contracts), in the network CRS.
    net : WalkNetwork
    config : AreaConfig
        Circles, profiles, ``max_snap_m``, district code and name.
    units : geopandas.GeoDataFrame, optional
        Units with ``unit_code`` (and names): the table's rows, in this order (default: the
        cells' unit codes, sorted).
    candidates : geopandas.GeoDataFrame, optional
        Candidate sites (:func:`accessibility.siting.candidate_sites`), so sites can be given by
        ``site_id``.
    baseline : pandas.DataFrame, optional
        The run's per-cell results (:func:`accessibility.coverage.cell_results`, indexed like
        ``cells``): the counts ``<circle>_n`` (or, for circles needing one facility, the verdicts
        ``<circle>_covered``) are taken from it instead of being searched again. The facilities'
        reach pairs are then searched only when a facility is removed.

    Examples
    --------
    >>> from accessibility.demo import synthetic_city, synthetic_config
    >>> net, cells, fac, units = synthetic_city(2000, seed=1)
    >>> wi = WhatIf(cells, fac, net, synthetic_config(), units=units)
    >>> care = fac[fac["circles"] == "eldercare_15min"]
    >>> r = wi.evaluate("eldercare_15min", remove=list(care["fac_id"][:1]), warn=False)
    >>> bool(r.district()["gain"].iloc[0] <= 0)
    True
    """

    def __init__(self, cells, facilities, net, config, *, units=None, candidates=None, baseline=None):
        from accessibility.coverage import _check_crs, _snap_gdf

        _check_crs(cells, net, "the cells layer")
        if len(facilities):
            _check_crs(facilities, net, "the facilities layer")
        self.cells, self.facilities, self.net, self.config = cells, facilities, net, config
        self.candidates = candidates
        self._cell_node, self._cell_snap = _snap_gdf(net, cells)
        self._fac_node, self._fac_snap = (_snap_gdf(net, facilities) if len(facilities)
                                          else (np.empty(0, np.int64), np.empty(0)))
        self._set_units(units)
        if baseline is not None and not baseline.index.equals(cells.index):
            raise DataError("baseline: results are not indexed like the cells: pass the output of "
                            "cell_results(cells, ...)")
        self._baseline = baseline
        self._extra_circles: dict = {}  # Circle objects passed to evaluate() directly
        self._bases: dict[str, _Base] = {}
        self._memo: OrderedDict = OrderedDict()

    @classmethod
    def from_study(cls, study, *, candidates=None) -> WhatIf:
        """A what-if of a loaded study area (``cells``, ``facilities``, ``network``, ``units``)."""
        return cls(study.cells, study.facilities, study.network, study.config, units=study.units,
                   candidates=candidates)

    # -- setup -----------------------------------------------------------------------------

    def _set_units(self, units) -> None:
        """Group of each cell, as in coverage_by_unit: units in table order, -1 for stray codes."""
        codes = self.cells["unit_code"].astype(str).to_numpy()
        self._units_frame = units if isinstance(units, gpd.GeoDataFrame) else None
        if units is None:
            unit_codes = np.array(sorted(set(codes)), dtype=object)
            names = names_en = unit_codes
        else:
            unit_codes = units["unit_code"].astype(str).to_numpy()
            names = units["unit_name"].astype(str).to_numpy() if "unit_name" in units else unit_codes
            names_en = units["unit_name_en"].astype(str).to_numpy() if "unit_name_en" in units else names
        pos = {c: i for i, c in enumerate(unit_codes)}
        inv, uniq = pd.factorize(codes)
        gmap = np.array([pos.get(c, -1) for c in uniq], dtype=np.int64)
        self._group = gmap[inv] if len(inv) else np.zeros(0, dtype=np.int64)
        cfg = self.config
        self._unit_codes = [*map(str, unit_codes), str(getattr(cfg, "district_code", "DISTRICT"))]
        self._unit_names = [*map(str, names), district_names(cfg)[0]]
        self._unit_names_en = [*map(str, names_en), str(getattr(cfg, "district_name_en", "District"))]

    def _circle(self, cid: str):
        return self._rule(cid).circle

    def _rule(self, cid: str):
        """The circle's rule (:func:`accessibility.rules.circle_rule`), or a rule given directly."""
        if cid in self._extra_circles:
            return self._extra_circles[cid]
        circles = getattr(self.config, "circles", {})
        if cid not in circles:
            raise DataError(f"circle {cid!r} is not in {getattr(self.config, 'config_path', 'the configuration')}: "
                            f"use one of {', '.join(circles)}")
        from accessibility.rules import circle_rule

        return circle_rule(self.config, cid)

    def base(self, circle_id: str) -> _Base:
        """The precomputed state of one circle (built on first use, then kept)."""
        if circle_id in self._bases:
            return self._bases[circle_id]
        rule = self._rule(circle_id)
        circle = rule.circle
        weight_col, scale, max_snap = rule.weight, 1.0 / rule.walk_speed_mps, float(rule.max_snap_m)
        member = rule.facility_mask(self.facilities) if len(self.facilities) else np.zeros(0, dtype=bool)
        usable = member & (self._fac_snap <= max_snap)
        cell_ok = self._cell_snap <= max_snap
        ids = self.facilities["fac_id"].astype(str).to_numpy() if len(self.facilities) else np.zeros(0, str)
        demand = np.nan_to_num(self.cells[circle.weight_column].to_numpy(dtype=float), nan=0.0)
        b = _Base(circle=circle, rule=rule, weight_col=weight_col, scale=scale, demand=demand,
                  fac_ids=ids[usable], fac_pos={f: i for i, f in enumerate(ids[usable])},
                  fac_node=self._fac_node[usable], fac_walk=rule.walk(self._fac_snap[usable]),
                  count=np.zeros(0, dtype=np.int32), covered=np.zeros(0, dtype=bool),
                  cell_node=np.where(cell_ok, self._cell_node, 0).astype(np.int64),
                  cell_walk=rule.walk(self._cell_snap),
                  others=frozenset(ids[member & ~usable]))
        count = self._baseline_count(b)
        if count is None:
            count = np.asarray(self._reach(b).sum(axis=1)).ravel().astype(np.int32)
        b.count, b.covered = count, count >= circle.min_reachable
        self._bases[circle_id] = b
        return b

    def _baseline_count(self, b: _Base) -> np.ndarray | None:
        """Counts per cell from the run's results, when they were given."""
        res, cid = self._baseline, b.circle.id
        if res is None:
            return None
        if f"{cid}_n" in res.columns:
            return res[f"{cid}_n"].to_numpy().astype(np.int32)
        if f"{cid}_covered" in res.columns and b.circle.min_reachable == 1:
            return res[f"{cid}_covered"].to_numpy(dtype=bool).astype(np.int32)
        return None

    def _reach(self, b: _Base) -> sp.csc_matrix:
        """The existing facilities' reach pairs of one circle (cells x facilities), searched once."""
        from accessibility.coverage import _reach_pairs

        if b.F is None:
            cell, col = _reach_pairs(self.net, b.rule, b.fac_node, b.fac_walk, b.cell_node, b.cell_walk)
            b.F = sp.csc_matrix((np.ones(cell.size, dtype=bool), (cell, col)),
                                shape=(len(self.cells), b.fac_ids.size))
            log.info("what-if %s: %d facilities, %d reach pairs", b.circle.id, b.fac_ids.size, b.F.nnz)
        return b.F

    def prepare(self, circles: Iterable[str] | None = None) -> WhatIf:
        """Precompute the given circles now (default: the plan circles), including the existing
        facilities' reach pairs (needed to remove one); returns ``self``."""
        for cid in self._circle_ids(circles):
            self._reach(self.base(cid))
        # what the first tried site would otherwise pay for: the fragments' sizes and the
        # main network's KD-tree (check_sites offers its nearest node)
        from accessibility.traveltime import snap

        _fragment_sizes(self.net)
        if len(self.net.nodes):
            snap(self.net, self.net.nodes["x"].to_numpy()[:1], self.net.nodes["y"].to_numpy()[:1],
                 components=[0])
        return self

    def _circle_ids(self, circles) -> list[str]:
        if circles is None:
            return [c.id for c in self.config.circles.values() if getattr(c, "plan", True)]
        if isinstance(circles, str) or hasattr(circles, "walk_speed_mps"):
            circles = [circles]
        ids = []
        for c in circles:
            if hasattr(c, "walk_speed_mps"):  # a CircleRule, e.g. with overrides
                self._extra_circles[c.id] = c
                c = c.id
            ids.append(str(c))
        return ids

    # -- sites -----------------------------------------------------------------------------

    def sites_frame(self, add, *, coords: str = "wgs84") -> pd.DataFrame:
        """The added sites as a frame: ``site, x, y, lon, lat, node, circles`` (see :meth:`evaluate`)."""
        return _sites_frame(add, coords=coords, crs=self.net.crs, candidates=self.candidates)

    def site_columns(self, circle_id: str, nodes, walks) -> list[np.ndarray]:
        """Cells (positions) each site covers for one circle: one bounded search per new site.

        ``nodes`` are the sites' network nodes, ``walks`` their walk from the network in the
        circle's cost unit (``inf``: covers nobody). Answers are remembered.
        """
        from accessibility.coverage import _reach_pairs

        b = self.base(circle_id)
        keys = [(circle_id, int(n), float(w)) for n, w in zip(nodes, walks, strict=True)]
        todo = sorted({k for k in keys if k not in self._memo})
        if todo:
            t_nodes = np.array([k[1] for k in todo], dtype=np.int64)
            t_walk = np.array([k[2] for k in todo], dtype=float)
            cell, src = _reach_pairs(self.net, b.rule, t_nodes, t_walk, b.cell_node, b.cell_walk)
            order = np.argsort(src, kind="stable")
            bounds = np.searchsorted(src[order], np.arange(len(todo) + 1))
            for i, k in enumerate(todo):
                self._memo[k] = np.sort(cell[order[bounds[i]:bounds[i + 1]]])
            while len(self._memo) > _SITE_MEMO:
                self._memo.popitem(last=False)
        return [self._memo[k] for k in keys]

    # -- the question ----------------------------------------------------------------------

    def evaluate(self, circles=None, *, add=(), remove: Iterable[str] = (), coords: str = "wgs84",
                 warn: bool = True) -> WhatIfResult:
        """Coverage before and after adding ``add`` and removing ``remove``, per unit and district.

        Parameters
        ----------
        circles : str, Circle or list of them, optional
            Circle id(s) of the configuration (or CircleRule objects, e.g. from
            :func:`accessibility.rules.circle_rule` with overrides); default the plan circles.
        add : sequence or GeoDataFrame
            New sites: ``(lon, lat)`` pairs in ``coords``, candidate ``site_id`` strings, or a
            GeoDataFrame of points in any CRS (e.g. a planned-projects file; a ``circles``
            column, ``;``-joined, limits each row to the circles it names; ``name`` labels it).
        remove : iterable of str
            ``fac_id`` of existing facilities to take away.
        coords : {"wgs84", "gcj02", "bd09"}
            System of the ``(lon, lat)`` pairs (Amap/Tencent: GCJ-02, Baidu: BD-09).
        warn : bool, default True
            Warn about sites on cut-off fragments or beyond ``max_snap_m`` (:func:`check_sites`).

        Returns
        -------
        WhatIfResult
        """
        ids = self._circle_ids(circles)
        for cid in ids:
            self._circle(cid)
        sites = self.sites_frame(add, coords=coords)
        check = check_sites(self.net, sites["x"], sites["y"], max_snap_m=float(getattr(self.config, "max_snap_m", np.inf)),
                            labels=sites["site"], nodes=sites["node"].to_numpy(dtype=float), warn=warn)
        remove = [str(f) for f in dict.fromkeys(remove)]
        removed = self._removed_table(remove, ids)
        tables, cells, gains = [], [], {}
        for cid in ids:
            t, c, g = self._evaluate_circle(cid, sites, check, removed)
            tables.append(t)
            cells.append(c)
            gains[f"gain_alone_{cid}"] = g
        sites_out = pd.concat([sites[["site", "lon", "lat"]].reset_index(drop=True),
                               check.drop(columns="site").reset_index(drop=True),
                               pd.DataFrame(gains, index=range(len(sites)))], axis=1)
        cells_gdf = gpd.GeoDataFrame(pd.concat(cells, ignore_index=True), geometry="geometry",
                                     crs=self.cells.crs)
        return WhatIfResult(table=pd.concat(tables, ignore_index=True)[WHATIF_COLUMNS], cells=cells_gdf,
                            sites=sites_out, removed=removed)

    def _removed_table(self, remove: list[str], ids: list[str]) -> pd.DataFrame:
        known = set(self.facilities["fac_id"].astype(str)) if len(self.facilities) else set()
        unknown = [f for f in remove if f not in known]
        if unknown:
            raise DataError(f"remove: no facility with fac_id {', '.join(unknown[:10])}; use the fac_id column "
                            "of facilities.gpkg or coverage.xlsx (e.g. osm:n123, inv:eldercare:17)")
        rows = []
        outside = [f for f in remove if not any(f in self.base(c).fac_pos or f in self.base(c).others
                                                for c in ids)]
        if outside:
            warnings.warn(f"remove: {', '.join(outside[:10])} count for none of the circles {', '.join(ids)}: "
                          "removing them changes nothing here", AccessibilityWarning, stacklevel=3)
        names = dict(zip(self.facilities["fac_id"].astype(str), self.facilities.get(
            "name", self.facilities["fac_id"]).astype(str), strict=False)) if remove else {}
        for cid in ids:
            b = self.base(cid)
            for f in remove:
                if f in b.fac_pos or f in b.others:
                    rows.append({"fac_id": f, "name": names.get(f, f), "circle": cid, "in_rule": f in b.fac_pos})
        return pd.DataFrame(rows, columns=["fac_id", "name", "circle", "in_rule"])

    def _evaluate_circle(self, cid, sites, check, removed):
        b = self.base(cid)
        use = _sites_for_circle(sites, cid)
        walk = b.rule.walk(check["snap_m"].to_numpy())
        cols = self.site_columns(cid, check["node"].to_numpy()[use], walk[use]) if use.any() else []
        count = b.count.copy()
        gone = removed.loc[(removed["circle"] == cid) & removed["in_rule"], "fac_id"]
        F = self._reach(b) if len(gone) else None
        for f in gone:
            j = b.fac_pos[f]
            count[F.indices[F.indptr[j]:F.indptr[j + 1]]] -= 1
        for rows in cols:
            count[rows] += 1
        m = b.circle.min_reachable
        after = count >= m
        gain_alone = np.zeros(len(sites))
        for i, rows in zip(np.flatnonzero(use), cols, strict=True):
            newly = rows[(b.count[rows] + 1 >= m) & ~b.covered[rows]]
            gain_alone[i] = float(b.demand[newly].sum())
        table = self._unit_table(b, b.covered, after)
        changed = np.flatnonzero(after != b.covered)
        cells = self._changed_cells(cid, b, changed, count)
        return table, cells, gain_alone

    def _unit_table(self, b: _Base, before: np.ndarray, after: np.ndarray) -> pd.DataFrame:
        from accessibility.coverage import gap_population

        g, ok = self._group, self._group >= 0
        n = len(self._unit_codes) - 1

        def sums(w):
            return np.append(np.bincount(g[ok], w[ok], minlength=n), w.sum())

        pops, cb, ca = sums(b.demand), sums(b.demand * before), sums(b.demand * after)
        target = float(b.circle.target_share)
        with np.errstate(invalid="ignore", divide="ignore"):
            denom = np.where(pops > 0, pops, 1.0)
            sb = np.where(pops > 0, cb / denom, np.nan)
            sa = np.where(pops > 0, ca / denom, np.nan)
        gb, ga = gap_population(target, pops, cb), gap_population(target, pops, ca)
        k = n + 1
        return pd.DataFrame({
            "circle": [b.circle.id] * k, "unit_code": self._unit_codes, "unit_name": self._unit_names,
            "unit_name_en": self._unit_names_en, "population": pops,
            "covered_population_before": cb, "covered_population_after": ca, "gain": ca - cb,
            "coverage_share_before": sb, "coverage_share_after": sa, "target_share": np.full(k, target),
            "gap_population_before": gb, "gap_population_after": ga,
            "meets_target_before": gb == 0.0, "meets_target_after": ga == 0.0,
            "data_status": [getattr(self.config, "data_status", "")] * k,
        })

    def _changed_cells(self, cid: str, b: _Base, changed: np.ndarray, count: np.ndarray) -> pd.DataFrame:
        c = self.cells.iloc[changed]
        ids = c["cell_id"].to_numpy() if "cell_id" in c.columns else c.index.to_numpy()
        return pd.DataFrame({
            "circle": cid, "cell_id": ids, "unit_code": c["unit_code"].astype(str).to_numpy(),
            "demand": b.demand[changed], "n_before": b.count[changed], "n_after": count[changed],
            "covered_before": b.covered[changed], "covered_after": ~b.covered[changed],
            "geometry": c.geometry.to_numpy(),
        })


# ---------------------------------------------------------------------------------------------
# site parsing


def _sites_frame(add, *, coords: str, crs, candidates=None) -> pd.DataFrame:
    """``site, x, y, lon, lat, node, circles`` of the sites to add (node NaN: snap from x, y)."""
    cols = ["site", "x", "y", "lon", "lat", "node", "circles"]
    if add is None or (not isinstance(add, gpd.GeoDataFrame) and len(add) == 0):
        return pd.DataFrame({c: pd.Series(dtype=float if c in ("x", "y", "lon", "lat", "node") else object)
                             for c in cols})
    if isinstance(add, gpd.GeoDataFrame):
        return _sites_from_layer(add, crs)
    rows = []
    for i, s in enumerate(add):
        if isinstance(s, str):
            rows.append(_candidate_row(s, candidates, crs))
        else:
            rows.append(_point_row(s, i, coords, crs))
    return pd.DataFrame(rows, columns=cols)


def _sites_from_layer(layer: gpd.GeoDataFrame, crs) -> pd.DataFrame:
    if layer.crs is None:
        raise DataError("added sites: the layer has no CRS: set it with .set_crs(...) (e.g. EPSG:4326)")
    pts = layer.to_crs(crs)
    geom = pts.geometry
    if len(geom) and not (geom.geom_type == "Point").all():
        raise DataError("added sites: every geometry must be a Point (one site per row)")
    ll = pts.to_crs(4326).geometry
    names = (layer["name"].astype(str).to_numpy() if "name" in layer.columns
             else [f"site {i + 1}" for i in range(len(layer))])
    circles = layer["circles"].fillna("").astype(str).to_numpy() if "circles" in layer.columns \
        else [""] * len(layer)
    return pd.DataFrame({"site": names, "x": geom.x.to_numpy(), "y": geom.y.to_numpy(),
                         "lon": ll.x.to_numpy(), "lat": ll.y.to_numpy(), "node": np.nan,
                         "circles": circles})


def _candidate_row(site_id: str, candidates, crs) -> dict:
    if candidates is None or "site_id" not in getattr(candidates, "columns", []):
        raise DataError(f"added site {site_id!r}: candidate ids need the candidate sites (pass "
                        "candidates=...), or give the site as lon,lat")
    hit = candidates[candidates["site_id"].astype(str) == site_id]
    if len(hit) == 0:
        raise DataError(f"added site {site_id!r}: no candidate site with this id (ids look like "
                        f"{candidates['site_id'].iloc[0] if len(candidates) else 'cand_00001'}; see "
                        "siting_<circle>.csv)")
    r = hit.iloc[0]
    lon, lat = _to_lonlat(np.array([r["x"]]), np.array([r["y"]]), crs)
    return {"site": site_id, "x": float(r["x"]), "y": float(r["y"]), "lon": float(lon[0]),
            "lat": float(lat[0]), "node": float(r["node"]), "circles": ""}


def _point_row(s, i: int, coords: str, crs) -> dict:
    from accessibility.coords import to_wgs84

    try:
        lon, lat = (float(v) for v in s)
    except (TypeError, ValueError) as exc:
        raise DataError(f"added site {i + 1}: {s!r} is not a (lon, lat) pair, a candidate id or a "
                        "point layer; fix: give longitude first, then latitude, in degrees") from exc
    if not (np.isfinite(lon) and np.isfinite(lat) and -180 <= lon <= 180 and -90 <= lat <= 90):
        raise DataError(f"added site {i + 1}: lon {lon!r}, lat {lat!r} are not degrees; fix: longitude "
                        "first (-180..180), then latitude (-90..90)")
    wl, wt = to_wgs84(lon, lat, coords)
    x, y = _from_lonlat(np.array([float(wl)]), np.array([float(wt)]), crs)
    return {"site": f"{lon:.6f},{lat:.6f}", "x": float(x[0]), "y": float(y[0]), "lon": float(wl),
            "lat": float(wt), "node": np.nan, "circles": ""}


def _sites_for_circle(sites: pd.DataFrame, cid: str) -> np.ndarray:
    """Rows of ``sites`` that serve circle ``cid`` (rows naming no circle serve every circle)."""
    named = sites["circles"].fillna("").astype(str).to_numpy()
    return np.array([not s.strip() or cid in {p.strip() for p in s.split(";")} for s in named], dtype=bool)


def _to_lonlat(x, y, crs):
    from pyproj import Transformer

    tr = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
    return tr.transform(np.asarray(x, dtype=float), np.asarray(y, dtype=float))


def _from_lonlat(lon, lat, crs):
    from pyproj import Transformer

    tr = Transformer.from_crs("EPSG:4326", crs, always_xy=True)
    return tr.transform(np.asarray(lon, dtype=float), np.asarray(lat, dtype=float))


# ---------------------------------------------------------------------------------------------
# one call on a loaded study area


def what_if(study, circles=None, *, add=(), remove: Iterable[str] = (), coords: str = "wgs84",
            candidates=None, warn: bool = True) -> WhatIfResult:
    """Before/after coverage of a study area for added sites and removed facilities.

    The precomputed state (:class:`WhatIf`) is kept on ``study``, so the second what-if of a
    circle costs only the new sites' searches.

    Parameters
    ----------
    study : StudyArea
        A loaded study area (``config``, ``cells``, ``facilities``, ``network``, ``units``).
    circles, add, remove, coords, warn
        As in :meth:`WhatIf.evaluate`.
    candidates : geopandas.GeoDataFrame, optional
        Candidate sites, for sites given by ``site_id``.

    Returns
    -------
    WhatIfResult

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> from accessibility.demo import synthetic_city, synthetic_config
    >>> net, cells, fac, units = synthetic_city(2000, seed=1)
    >>> study = SimpleNamespace(cells=cells, facilities=fac, network=net, units=units,
    ...                         config=synthetic_config())
    >>> care = fac[fac["circles"] == "eldercare_15min"]
    >>> r = what_if(study, "eldercare_15min", add=care[["geometry"]].iloc[:1], warn=False)
    >>> float(r.district()["gain"].iloc[0])  # a second station where one already is: nobody new
    0.0
    """
    wi = getattr(study, "_whatif", None)
    if wi is None or wi.cells is not study.cells or wi.facilities is not study.facilities \
            or wi.net is not study.network or wi.config is not study.config:
        wi = WhatIf.from_study(study, candidates=candidates)
        study._whatif = wi
    if candidates is not None:
        wi.candidates = candidates
    return wi.evaluate(circles, add=add, remove=remove, coords=coords, warn=warn)


def result_text(result: WhatIfResult, config=None) -> str:
    """A readable before/after table of a what-if (what ``accessibility whatif`` prints).

    Parameters
    ----------
    result : WhatIfResult
    config : AreaConfig, optional
        Circle labels and the data status line.

    Returns
    -------
    str

    Examples
    --------
    >>> from accessibility.demo import synthetic_city, synthetic_config
    >>> net, cells, fac, units = synthetic_city(2000, seed=1)
    >>> r = WhatIf(cells, fac, net, synthetic_config(), units=units).evaluate("eldercare_15min")
    >>> "eldercare_15min" in result_text(r)
    True
    """
    lines = []
    if config is not None and getattr(config, "is_synthetic", False):
        lines += [str(config.data_status), ""]
    if len(result.sites):
        lines.append("Added sites:")
        for r in result.sites.itertuples(index=False):
            lines.append(f"  {r.site}: lon {r.lon:.6f}, lat {r.lat:.6f}, {r.snap_m:,.0f} m to node {r.node}"
                         + (f"  !! {r.problem}" if r.problem else ""))
    if len(result.removed):
        lines.append("Removed: " + ", ".join(f"{r.fac_id} {r.name} ({r.circle})"
                                              for r in result.removed.itertuples(index=False)))
    for cid, part in result.table.groupby("circle", sort=False):
        c = config.circles.get(cid) if config is not None else None
        lines += ["", f"{c.label_zh} / {c.label_en} ({cid})" if c is not None else cid]
        lines.append(f"  {'unit':<24} {'demand':>10} {'covered before':>15} {'after':>10} {'gain':>8} "
                     f"{'share':>16} {'meets target':>13} {'short by':>9}")
        for r in part.itertuples(index=False):
            name = f"{r.unit_name} {r.unit_name_en}".strip()
            share = f"{_pct(r.coverage_share_before)} -> {_pct(r.coverage_share_after)}"
            meets = f"{_yes(r.meets_target_before)} -> {_yes(r.meets_target_after)}"
            lines.append(f"  {name[:24]:<24} {r.population:>10,.0f} {r.covered_population_before:>15,.0f} "
                         f"{r.covered_population_after:>10,.0f} {r.gain:>+8,.0f} {share:>16} {meets:>13} "
                         f"{r.gap_population_after:>9,.0f}")
    return "\n".join(lines).strip("\n") + "\n"


def _pct(x) -> str:
    return "n/a" if not np.isfinite(x) else f"{x:.1%}"


def _yes(v) -> str:
    return "yes" if bool(v) else "NO"
