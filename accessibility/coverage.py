"""Per-cell walking times and per-unit coverage tables.

A cell is covered by a facility iff (DESIGN.md, "The question and the formula")::

    snap_m(cell) / v  +  network_time(cell.node -> facility.node)  +  snap_m(facility) / v  <= threshold

with ``v`` the profile's flat speed; in distance mode the same with metres. A cell is covered for
a circle when at least ``circle.min_reachable`` facilities of the circle satisfy this.
"""

from __future__ import annotations

import logging
import warnings

import numpy as np
import pandas as pd

from accessibility._errors import AccessibilityWarning, CRSMismatchError, DataError
from accessibility.rules import as_rules, circle_rule, facility_sets
from accessibility.traveltime import REACH_EPS, limit_slack, multi_source, reach_matrix, snap

__all__ = [
    "COVERAGE_COLUMNS",
    "audit_layers",
    "cell_results",
    "cell_facility_reach",
    "circle_facilities",
    "gap_population",
    "time_classes",
    "coverage_by_unit",
    "unit_summary_text",
    "weighted_quantile",
    "worst_places",
]

logger = logging.getLogger(__name__)

#: Columns of coverage_by_unit.csv, in order (DESIGN.md, plus ``t_unit``).
COVERAGE_COLUMNS = [
    "unit_code", "unit_name", "unit_name_en", "circle", "circle_label", "mode", "threshold",
    "population", "covered_population", "coverage_share", "target_share", "meets_target",
    "uncovered_population", "gap_population", "median_t", "p90_t", "t_unit", "coverage_share_flat",
    "data_status",
]
#: ``<circle>_t`` is searched up to this multiple of the threshold; beyond it is ``inf``.
SEARCH_LIMIT_FACTOR = 3.0


def _check_crs(gdf, net, what: str) -> None:
    from pyproj import CRS

    if gdf.crs is None:
        raise CRSMismatchError(f"{what} has no CRS: set it with `.set_crs(...)` and reproject to the "
                               f"network CRS {net.crs} with `.to_crs(...)`")
    if not CRS.from_user_input(gdf.crs).equals(CRS.from_user_input(net.crs)):
        raise CRSMismatchError(f"{what} is in {gdf.crs}, the network in {net.crs}: reproject with "
                               f"`.to_crs({str(net.crs)!r})`")


def _xy(gdf) -> tuple[np.ndarray, np.ndarray]:
    import shapely

    geom = np.asarray(gdf.geometry.values)
    if len(geom) and not (shapely.get_type_id(geom) == 0).all():  # 0 = Point
        geom = shapely.point_on_surface(geom)
    return shapely.get_x(geom).astype(float), shapely.get_y(geom).astype(float)


def _snap_gdf(net, gdf) -> tuple[np.ndarray, np.ndarray]:
    x, y = _xy(gdf)
    return snap(net, x, y)


def circle_facilities(facilities, circle_id: str) -> np.ndarray:
    """Boolean mask of the facilities whose ``circles`` (``;``-joined ids) contain ``circle_id``.

    The parser is :func:`accessibility.rules.facility_sets` (one place for the ``circles`` column).

    Examples
    --------
    >>> import pandas as pd
    >>> circle_facilities(pd.DataFrame({"circles": ["a;b", "b"]}), "a").tolist()
    [True, False]
    """
    return facility_sets(facilities)(circle_id)


def _warn_far(cells, facilities, cell_snap, fac_snap, max_snap_m: float) -> None:
    cell_far = ~(cell_snap <= max_snap_m)
    if cell_far.any():
        pop = cells["population"].to_numpy(dtype=float)[cell_far].sum() if "population" in cells else np.nan
        warnings.warn(f"{int(cell_far.sum())} of {len(cells)} cells (population {pop:,.0f}) are more than "
                      f"max_snap_m = {max_snap_m:g} m from any walkable street: counted as not "
                      "covered (check the network extract covers them, or raise max_snap_m)",
                      AccessibilityWarning, stacklevel=3)
    fac_far = ~(fac_snap <= max_snap_m)
    if fac_far.any():
        names = facilities["name"].astype(str).to_numpy()[fac_far][:5] if "name" in facilities else []
        warnings.warn(f"{int(fac_far.sum())} of {len(facilities)} facilities are more than max_snap_m = "
                      f"{max_snap_m:g} m from any walkable street and are left out (e.g. "
                      f"{', '.join(names)}): check their coordinates (GCJ-02 declared as WGS-84?)",
                      AccessibilityWarning, stacklevel=3)


def cell_results(cells, facilities, net, rules, *, flat: bool = True, counts: bool = True,
                 search_factor: float = SEARCH_LIMIT_FACTOR, progress: bool = True) -> pd.DataFrame:
    """Per-cell time (or distance) to the nearest facility, reachable count and coverage.

    Parameters
    ----------
    cells : GeoDataFrame
        Cells (DESIGN.md "Cells"), in the network CRS.
    facilities : GeoDataFrame
        Facilities (DESIGN.md "Facilities"), in the network CRS.
    net : WalkNetwork
    rules : AreaConfig, CircleRule or iterable of CircleRule
        The circles to compute and how (:func:`accessibility.rules.circle_rules`); an
        ``AreaConfig`` means every circle with the configuration's own rules.
    flat : bool, default True
        Also compute ``<circle>_t_flat`` (time-mode circles, flat terrain).
    counts : bool, default True
        Also count the facilities reachable within the threshold (``<circle>_n``), by bounded
        per-facility searches. ``False`` (verdicts only, for scenario sweeps) leaves ``<circle>_n``
        out and takes ``<circle>_covered`` from ``<circle>_t``; circles that need more than one
        facility (``min_reachable > 1``) are always counted.
    search_factor : float, default 3
        ``<circle>_t`` is searched up to ``search_factor`` x the threshold (``inf`` beyond), so that
        medians and 90th percentiles mean something for poorly served units. 1 is enough for the
        coverage verdicts alone.
    progress : bool, default True
        Progress bar over circles.

    Returns
    -------
    pandas.DataFrame
        Indexed like ``cells``; per circle ``<c>_t`` (s or m, both walks included; ``inf`` when
        no facility within 3x the threshold), ``<c>_n`` (facilities within the threshold),
        ``<c>_covered`` (``<c>_n >= min_reachable``), and ``<c>_t_flat`` for time circles.

    Examples
    --------
    >>> from accessibility.demo import example_grid
    >>> g = example_grid()
    >>> res = cell_results(g.cells, g.facilities, g.net, g.rules, progress=False)
    >>> res[["shop_t", "shop_covered"]].round(1).values.tolist()
    [[50.0, True], [150.0, True], [250.0, False]]
    """
    _check_crs(cells, net, "the cells layer")
    if len(facilities):
        _check_crs(facilities, net, "the facilities layer")
    rule_list = as_rules(rules)
    cell_node, cell_snap = _snap_gdf(net, cells)
    fac_node, fac_snap = (_snap_gdf(net, facilities) if len(facilities)
                          else (np.empty(0, np.int64), np.empty(0)))
    for snap_limit in dict.fromkeys(r.max_snap_m for r in rule_list):
        _warn_far(cells, facilities, cell_snap, fac_snap, snap_limit)

    out: dict[str, np.ndarray] = {}
    circles_of = facility_sets(facilities)
    it = rule_list
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(rule_list, desc="circles")
    for rule in it:
        out.update(_circle_columns(net, rule, circles_of(rule.id), (fac_node, fac_snap, cell_node, cell_snap),
                                   flat=flat, counts=counts, search_factor=search_factor))
    # column order: per circle _t, _n, _covered, _t_flat; one frame built at the end (adding
    # columns one by one to a DataFrame costs more than the searches on small areas)
    cols = []
    for rule in rule_list:
        cid = rule.id
        cols += [c for c in (f"{cid}_t", f"{cid}_n", f"{cid}_covered", f"{cid}_t_flat") if c in out]
    return pd.DataFrame({c: out[c] for c in cols}, index=cells.index, columns=cols)


def _circle_columns(net, rule, member, snapped, *, flat, counts, search_factor) -> dict[str, np.ndarray]:
    """The result columns of one circle (see :func:`cell_results`); ``member``: its facilities,
    ``snapped``: (facility nodes, facility snap_m, cell nodes, cell snap_m)."""
    cid = rule.id
    fac_node, fac_snap, cell_node, cell_snap = snapped
    fac_walk = rule.walk(fac_snap)
    sel = member & np.isfinite(fac_walk)
    if not sel.any():
        warnings.warn(f"circle {cid}: no facility of categories {', '.join(rule.categories)} is "
                      "available: every cell is uncovered (check the facility sources and "
                      "config/categories.yaml)", AccessibilityWarning, stacklevel=3)
    s_nodes, s_off = fac_node[sel], fac_walk[sel]
    c_walk = rule.walk(cell_snap)
    cell_far = ~np.isfinite(c_walk)
    weights = [(rule.weight, "_t")]
    if flat and rule.flat_weight is not None:
        weights.append((rule.flat_weight, "_t_flat"))
    reach = max(float(search_factor), 1.0) * rule.threshold
    out = {}
    for w, suffix in weights:
        times, _ = multi_source(net, w, s_nodes, s_off, limit=reach, with_origin=False)
        t = c_walk + times[cell_node]
        t[cell_far | ~(t <= reach + limit_slack(reach))] = np.inf
        out[f"{cid}{suffix}"] = t
        if suffix != "_t":
            continue
        if counts or rule.min_reachable > 1:
            cell, _ = _reach_pairs(net, rule, s_nodes, s_off, cell_node, c_walk)
            n_reach = np.bincount(cell, minlength=cell_node.size).astype(np.int64)
            out[f"{cid}_n"] = n_reach
            out[f"{cid}_covered"] = n_reach >= rule.min_reachable
        else:
            out[f"{cid}_covered"] = rule.within(t)
    return out


def cell_facility_reach(cells, facilities, net, rule):
    """Which facilities each cell reaches within the circle's threshold (DESIGN.md formula).

    Parameters
    ----------
    cells, facilities : GeoDataFrame
        In the network CRS. Pass only the facilities you want as columns (e.g. those of the circle).
    net : WalkNetwork
    rule : CircleRule
        The circle's rule (:func:`accessibility.rules.circle_rule`): threshold, weight, walks.

    Returns
    -------
    scipy.sparse.csr_matrix of bool, shape (len(cells), len(facilities))
        Cells and facilities farther than ``rule.max_snap_m`` from the network reach nothing.

    Examples
    --------
    >>> from accessibility.demo import example_grid
    >>> g = example_grid()
    >>> cell_facility_reach(g.cells, g.facilities, g.net, g.rules["shop"]).toarray().tolist()
    [[True], [True], [False]]
    """
    from scipy.sparse import csr_matrix

    (rule,) = as_rules(rule)
    n_cells, n_fac = len(cells), len(facilities)
    if n_cells == 0 or n_fac == 0:
        return csr_matrix((n_cells, n_fac), dtype=bool)
    cell_node, cell_snap = _snap_gdf(net, cells)
    fac_node, fac_snap = _snap_gdf(net, facilities)
    cell, fac = _reach_pairs(net, rule, fac_node, rule.walk(fac_snap), cell_node, rule.walk(cell_snap))
    return csr_matrix((np.ones(cell.size, dtype=bool), (cell, fac)), shape=(n_cells, n_fac))


def _reach_pairs(net, rule, s_nodes, s_off, cell_node, c_walk, *, progress: bool = False,
                 batch_size: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """(cell, source) index pairs with ``rule.within(c_walk[cell] + offset + d(cell's node -> source))``.

    The one test of the DESIGN.md formula for all pairs: counts, the facility reach (2SFCA) and
    siting's coverage sets all use it, so a cell is covered by a site exactly when coverage would
    call it covered by a facility there.
    """
    if s_nodes.size == 0 or cell_node.size == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    r = reach_matrix(net, rule.weight, s_nodes, limit=rule.threshold, offsets=s_off, progress=progress,
                     batch_size=batch_size).tocsc()
    m = r[:, cell_node].tocsc()  # facilities x cells, columns repeated for cells sharing a node
    col = np.repeat(np.arange(cell_node.size), np.diff(m.indptr))
    ok = rule.within((m.data - REACH_EPS) + c_walk[col])
    return col[ok], m.indices[ok].astype(np.int64)


def weighted_quantile(values, weights, q: float) -> float:
    """Weighted quantile (lower): the smallest value whose cumulative weight reaches ``q``.

    ``inf`` values take part (a unit where most people reach nothing has an infinite median).
    NaN for zero total weight.
    """
    v = np.asarray(values, dtype=float)
    w = np.asarray(weights, dtype=float)
    keep = (w > 0) & ~np.isnan(v)
    v, w = v[keep], w[keep]
    if v.size == 0 or w.sum() <= 0:
        return float("nan")
    order = np.argsort(v, kind="stable")
    v, w = v[order], w[order]
    cw = np.cumsum(w)
    i = int(np.searchsorted(cw, q * cw[-1] - 1e-12 * cw[-1], side="left"))
    return float(v[min(i, v.size - 1)])


def _grouped_quantiles(v, w, bounds, qs) -> np.ndarray:
    """:func:`weighted_quantile` of each slice ``bounds[g]:bounds[g + 1]`` of ``v`` sorted within slices.

    Returns an array ``(n_groups, len(qs))``; NaN rows for groups of zero weight. Cumulative
    weights are summed per slice (a running sum across slices would round each unit's ties at
    the size of the units before it and could pick the next cell).
    """
    v = np.asarray(v, dtype=float)
    w = np.where((np.asarray(w, dtype=float) > 0) & ~np.isnan(v), w, 0.0)
    bounds = np.asarray(bounds, dtype=np.int64)
    out = np.full((bounds.size - 1, len(qs)), np.nan)
    qs = np.asarray(qs, dtype=float)
    for g in range(bounds.size - 1):
        a, b = int(bounds[g]), int(bounds[g + 1])
        if b <= a:
            continue
        cw = np.cumsum(w[a:b])
        total = cw[-1]
        if not total > 0:
            continue
        i = np.searchsorted(cw, qs * total - 1e-12 * total, side="left")
        out[g] = v[a + np.minimum(i, b - a - 1)]
    return out


def gap_population(target_share: float, population, covered):
    """People short of the target: ``max(0, target_share * population - covered)``.

    Float noise (less than 1e-9 of the population) counts as no gap; ``meets_target`` is
    ``gap == 0``. The one definition of the gap for the coverage table and the what-if.

    Examples
    --------
    >>> gap_population(1.0, [100.0, 50.0], [90.0, 50.0]).tolist()
    [10.0, 0.0]
    """
    pops = np.asarray(population, dtype=float)
    gap = np.maximum(0.0, float(target_share) * pops - np.asarray(covered, dtype=float))
    gap[gap < 1e-9 * np.maximum(pops, 1.0)] = 0.0
    return gap


def coverage_by_unit(cells, results, units, config, *, circles=None, district_code: str | None = None,
                     district_name: str | None = None, district_name_en: str | None = None) -> pd.DataFrame:
    """Population-weighted coverage per unit and circle, plus a district row.

    Parameters
    ----------
    cells : DataFrame
        Cells with ``unit_code``, ``population``, ``pop_60plus``.
    results : DataFrame
        Output of :func:`cell_results`, indexed like ``cells``.
    units : DataFrame
        Units with ``unit_code``, ``unit_name``, ``unit_name_en`` (row order is kept).
    config : AreaConfig
        Data status and the district row's code and names.
    circles : iterable of str or CircleRule, optional
        Circle ids (the configuration's rules) or the rules the results were computed with
        (overrides: their threshold is the table's); default the circles with a ``<c>_covered``
        column in ``results``.
    district_code, district_name, district_name_en : str
        Identify the district row.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`COVERAGE_COLUMNS`; per circle, one row per unit then the district row.
        ``threshold``, ``median_t`` and ``p90_t`` are in ``t_unit`` (``min`` in time mode, ``m``
        in distance mode); ``gap_population = max(0, target_share * population - covered)``;
        ``meets_target`` is ``gap_population == 0``; ``coverage_share_flat`` is NaN for distance
        circles and for circles needing more than one facility.
    """
    if not results.index.equals(cells.index):
        raise DataError("results are not indexed like the cells: pass the output of cell_results(cells, ...)")
    from accessibility.labels import district_names, primary

    district_code = getattr(config, "district_code", "DISTRICT") if district_code is None else district_code
    default_name, default_name_en = district_names(config)
    district_name = default_name if district_name is None else district_name
    district_name_en = default_name_en if district_name_en is None else district_name_en
    language = getattr(config, "language", "bilingual")
    if circles is None:
        circles = [c for c in config.circles if f"{c}_covered" in results.columns]
    # ids resolve to the configuration's rules; rules (with overrides) are taken as they are
    rule_list = [circle_rule(config, c) if isinstance(c, str) else as_rules(c)[0] for c in circles]
    ids = [r.id for r in rule_list]
    missing = [c for c in ids if f"{c}_covered" not in results.columns]
    if missing:
        raise DataError(f"results lack circle(s) {', '.join(missing)}: run cell_results with them")
    codes = cells["unit_code"].astype(str).to_numpy()
    unit_codes = units["unit_code"].astype(str).to_numpy()
    stray = sorted(set(codes) - set(unit_codes))
    if stray:
        warnings.warn(f"{len(stray)} unit code(s) of cells are not in the units layer ({', '.join(stray[:5])}): "
                      "their cells count only in the district row", AccessibilityWarning, stacklevel=2)
    names = units["unit_name"].astype(str).to_numpy() if "unit_name" in units else unit_codes
    names_en = units["unit_name_en"].astype(str).to_numpy() if "unit_name_en" in units else names
    inv, uniq = pd.factorize(codes)  # compare small ints, not strings (hash-based, fast)

    # group of each cell: index into the units (table order), -1 for stray codes
    unit_pos = {c: i for i, c in enumerate(unit_codes)}
    gmap = np.array([unit_pos.get(c, -1) for c in uniq], dtype=np.int64)
    gidx = gmap[inv] if len(inv) else np.zeros(0, dtype=np.int64)
    n_groups = len(unit_codes)
    in_unit = gidx >= 0
    gidx16 = gidx.astype(np.int16 if n_groups < 2**15 else np.int64)
    bounds = np.concatenate([[0], np.cumsum(np.bincount(gidx[in_unit], minlength=n_groups))])
    codes_g = [*unit_codes.tolist(), str(district_code)]
    names_g = [*names.tolist(), district_name]
    names_en_g = [*names_en.tolist(), district_name_en]
    blocks = []
    for rule in rule_list:
        cid, circle = rule.id, rule.circle
        demand = cells[rule.demand_column].to_numpy(dtype=float)
        demand = np.nan_to_num(demand, nan=0.0)
        covered = results[f"{cid}_covered"].to_numpy(dtype=bool)
        t = results[f"{cid}_t"].to_numpy(dtype=float)
        scale, t_unit = (60.0, "min") if circle.mode == "time" else (1.0, "m")
        t_flat = results[f"{cid}_t_flat"].to_numpy(dtype=float) if f"{cid}_t_flat" in results else None
        with_flat = t_flat is not None and circle.min_reachable == 1

        def sums(weights, _g=gidx[in_unit], _m=in_unit):
            per_unit = np.bincount(_g, weights[_m], minlength=n_groups)
            return np.append(per_unit, weights.sum())  # last: the district

        pops = sums(demand)
        covs = sums(demand * covered)
        flats = sums(demand * rule.within(t_flat)) if with_flat else None
        # quantiles: one sort by (group, time); each unit is a contiguous slice, the district the
        # whole sorted-by-time array
        # the order among equal times does not change a quantile's value, so the (SIMD) quicksort
        # will do; a stable sort of the units' small integer codes (radix sort) then keeps time
        # order within each unit: lexsort((t, unit)) at the cost of one float sort
        order_all = np.argsort(t)
        in_sorted = order_all[in_unit[order_all]]
        order = in_sorted[np.argsort(gidx16[in_sorted], kind="stable")]
        q_units = _grouped_quantiles(t[order], demand[order], bounds, (0.5, 0.9))
        q_all = _grouped_quantiles(t[order_all], demand[order_all], [0, t.size], (0.5, 0.9))[0]
        # one block of rows per circle (units in table order, then the district), built as columns
        q = np.vstack([q_units, q_all[None, :]])
        with np.errstate(invalid="ignore", divide="ignore"):
            share = np.where(pops > 0, covs / np.where(pops > 0, pops, 1.0), np.nan)
            share_flat = (np.where(pops > 0, flats / np.where(pops > 0, pops, 1.0), np.nan) if with_flat
                          else np.full(pops.size, np.nan))
        gap = gap_population(circle.target_share, pops, covs)
        k = pops.size
        blocks.append({
            "unit_code": codes_g, "unit_name": names_g, "unit_name_en": names_en_g,
            "circle": [cid] * k, "circle_label": [primary(circle.label_zh, circle.label_en, language)] * k, "mode": [circle.mode] * k,
            "threshold": np.full(k, circle.threshold / scale),
            "population": pops, "covered_population": covs, "coverage_share": share,
            "target_share": np.full(k, float(circle.target_share)), "meets_target": gap == 0.0,
            "uncovered_population": pops - covs, "gap_population": gap,
            "median_t": q[:, 0] / scale, "p90_t": q[:, 1] / scale, "t_unit": [t_unit] * k,
            "coverage_share_flat": share_flat, "data_status": [config.data_status] * k,
        })
    text_cols = {"unit_code", "unit_name", "unit_name_en", "circle", "circle_label", "mode", "t_unit",
                 "data_status"}
    data = {}
    for c in COVERAGE_COLUMNS:
        parts = [b[c] for b in blocks]
        if c in text_cols:
            data[c] = pd.array([str(v) for part in parts for v in part], dtype="str")
        elif c == "meets_target":
            data[c] = np.concatenate(parts).astype(bool) if parts else np.zeros(0, dtype=bool)
        else:
            data[c] = np.concatenate(parts).astype(float) if parts else np.zeros(0)
    return pd.DataFrame(data, columns=COVERAGE_COLUMNS)


def time_classes(results: pd.DataFrame, circle) -> np.ndarray:
    """Each cell's class for maps and the atlas: 0, 1, 2 = covered within the first, second, last
    third of the threshold; 3 = not covered (beyond the threshold, too few facilities, not reached).

    Parameters
    ----------
    results : pandas.DataFrame
        Per-cell results with ``<circle>_t`` and ``<circle>_covered`` (the verdict of
        :func:`cell_results`; without it, ``circle`` must be a :class:`~accessibility.rules.CircleRule`,
        whose threshold test decides).
    circle : Circle or CircleRule

    Returns
    -------
    numpy.ndarray of int

    Examples
    --------
    >>> from types import SimpleNamespace as NS
    >>> res = pd.DataFrame({"c_t": [100.0, 500.0, 900.0, 901.0, np.inf],
    ...                     "c_covered": [True, True, True, False, False]})
    >>> time_classes(res, NS(id="c", threshold=900.0)).tolist()
    [0, 1, 2, 3, 3]
    """
    t = pd.to_numeric(results[f"{circle.id}_t"], errors="coerce").to_numpy(dtype=float)
    cov_col = f"{circle.id}_covered"
    if cov_col in results.columns:
        covered = results[cov_col].fillna(False).to_numpy(dtype=bool)
    elif hasattr(circle, "within"):
        covered = circle.within(t)
    else:
        raise DataError(f"results: no column {cov_col!r}; pass the per-cell results of cell_results, or the "
                        "circle's CircleRule (accessibility.rules.circle_rule) so its threshold test decides")
    edges = np.array([0, 1, 2, 3]) * circle.threshold / 3
    cls = np.full(len(t), 3, dtype=int)
    for k in (2, 1, 0):
        cls[covered & np.isfinite(t) & (t <= edges[k + 1])] = k
    # covered at the threshold within the test's slack: the last third, not "not covered"
    cls[covered & (cls == 3)] = 2
    return cls


def worst_places(cells, results, units, circle, *, square_m: float = 1000.0, n: int = 10) -> pd.DataFrame:
    """The places where most of a circle's demand is left out: uncovered demand per square.

    Uncovered cells are grouped into ``square_m`` squares (projected CRS) split at unit
    boundaries: a place is the part of a square inside one unit (its own cells), so no place
    counts more uncovered demand than its unit has. The ``n`` places with the most uncovered
    demand are returned with their unit, the demand-weighted centre in WGS-84 and the median
    time/distance to the nearest facility.

    Returns
    -------
    pandas.DataFrame
        ``unit_code, unit_name, lon, lat, uncovered, median_t, t_unit`` (times in minutes or metres).
    """
    from pyproj import Transformer

    cols = ["unit_code", "unit_name", "lon", "lat", "uncovered", "median_t", "t_unit"]
    w = np.nan_to_num(cells[circle.weight_column].to_numpy(dtype=float), nan=0.0)
    unc = ~results[f"{circle.id}_covered"].to_numpy(dtype=bool) & (w > 0)
    if not unc.any():
        return pd.DataFrame(columns=cols)
    x, y = _xy(cells)
    t = results[f"{circle.id}_t"].to_numpy(dtype=float)
    df = pd.DataFrame({"sq": list(zip(np.floor(x / square_m).astype(np.int64),
                                      np.floor(y / square_m).astype(np.int64), strict=True)),
                       "w": w, "wx": w * x, "wy": w * y, "t": t,
                       "unit": cells["unit_code"].astype(str).to_numpy()})[unc]
    # ties in uncovered demand broken by square and unit, so the list is the same on any machine
    tot = df.groupby(["sq", "unit"])["w"].sum().reset_index()
    tot = tot.sort_values(["w", "sq", "unit"], ascending=[False, True, True], kind="mergesort")
    top = tot.head(n)
    names = dict(zip(units["unit_code"].astype(str), units.get("unit_name", units["unit_code"]).astype(str),
                     strict=False))
    to_ll = Transformer.from_crs(cells.crs, "EPSG:4326", always_xy=True)
    scale, t_unit = (60.0, "min") if circle.mode == "time" else (1.0, "m")
    rows = []
    for sq, unit, tot in top[["sq", "unit", "w"]].itertuples(index=False):
        part = df[(df["sq"] == sq) & (df["unit"] == unit)]
        lon, lat = to_ll.transform(part["wx"].sum() / tot, part["wy"].sum() / tot)
        med = weighted_quantile(part["t"].to_numpy(), part["w"].to_numpy(), 0.5)
        rows.append({"unit_code": unit, "unit_name": names.get(unit, unit), "lon": lon, "lat": lat,
                     "uncovered": float(tot), "median_t": med / scale, "t_unit": t_unit})
    return pd.DataFrame(rows, columns=cols)


def audit_layers(net, cells, facilities, config) -> dict:
    """The three layers of ``analysis_inputs.gpkg``: enough to recompute every share by hand.

    Returns
    -------
    dict of str to GeoDataFrame
        ``edges`` (u, v, length_m, time_s_<profile>, LineString geometry), ``cells`` (cell_id,
        population, pop_60plus, unit_code, node, walk_s_<profile>, snap_m), ``facilities`` (fac_id,
        name, category, circles, node, snap_m, walk_s_<profile>). ``node`` is the snapped network
        node; points with ``snap_m > max_snap_m`` are never covered (the audit must apply this rule).
        Edge times are ``inf`` where a profile may not walk.
    """
    import geopandas as gpd
    import shapely

    profiles = list(config.profiles)
    e = net.edges
    xy = net.nodes[["x", "y"]].to_numpy(dtype=float)
    u = e["u"].to_numpy()
    v = e["v"].to_numpy()
    lines = shapely.linestrings(np.stack([xy[u], xy[v]], axis=1))
    ecols = ["u", "v", "length_m"] + [f"time_s_{p}" for p in profiles if f"time_s_{p}" in e.columns]
    edges = gpd.GeoDataFrame(e[ecols].reset_index(drop=True), geometry=lines, crs=net.crs)

    def _points(gdf, cols):
        node, dist = _snap_gdf(net, gdf) if len(gdf) else (np.empty(0, np.int64), np.empty(0))
        out = gpd.GeoDataFrame(gdf[[c for c in cols if c in gdf.columns]].copy(),
                               geometry=gdf.geometry.to_numpy(), crs=gdf.crs)
        out["node"] = node
        out["snap_m"] = dist
        for p, prof in config.profiles.items():
            out[f"walk_s_{p}"] = dist / prof.flat_speed_mps
        return out

    _check_crs(cells, net, "the cells layer")
    cell_layer = _points(cells, ["cell_id", "population", "pop_60plus", "unit_code"])
    cell_layer = cell_layer[["cell_id", "population", "pop_60plus", "unit_code", "node",
                             *[f"walk_s_{p}" for p in profiles], "snap_m", "geometry"]
                            if "cell_id" in cell_layer else list(cell_layer.columns)]
    if len(facilities):
        _check_crs(facilities, net, "the facilities layer")
    fac_layer = _points(facilities, ["fac_id", "name", "category", "circles"])
    fac_cols = ["fac_id", "name", "category", "circles", "node", "snap_m",
                *[f"walk_s_{p}" for p in profiles], "geometry"]
    fac_layer = fac_layer[[c for c in fac_cols if c in fac_layer.columns]]
    return {"edges": edges, "cells": cell_layer, "facilities": fac_layer}


def unit_summary_text(table: pd.DataFrame, config=None) -> str:
    """A readable per-unit table: which units meet each circle and by how many people they miss.

    Parameters
    ----------
    table : DataFrame
        Output of :func:`coverage_by_unit`.
    config : AreaConfig, optional
        Names the demand of each circle (all residents, or residents aged 60+).
    """
    from accessibility.labels import pick

    lines = []
    for cid, part in table.groupby("circle", sort=False):
        first = part.iloc[0]
        thr = f"{first['threshold']:g} {first['t_unit']}"
        lines.append(f"{first['circle_label']} ({cid}, {first['mode']} {thr}, target "
                     f"{first['target_share']:.0%})")
        circle = config.circles.get(cid) if config is not None else None
        demand = "aged 60+" if circle is not None and circle.population == "60plus" else "population"
        lines.append(f"  {'unit':<24} {demand:>12} {'covered':>8} {'meets':>6} {'short by (people)':>18}")
        language = getattr(config, "language", "bilingual")
        for _, r in part.iterrows():
            name = pick(str(r["unit_name"]), str(r["unit_name_en"]), language, sep=" ")
            share = "n/a" if pd.isna(r["coverage_share"]) else f"{r['coverage_share']:.1%}"
            meets = "yes" if r["meets_target"] else "NO"
            short = "" if r["meets_target"] else f"{r['gap_population']:,.0f}"
            lines.append(f"  {name[:24]:<24} {r['population']:>12,.0f} {share:>8} {meets:>6} {short:>18}")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"
