"""The planner's entry point: one study area and the questions asked of it.

>>> import accessibility
>>> area = accessibility.open_area("config/areas/jiangbei.yaml")        # doctest: +SKIP
>>> area.coverage_by_unit("culture_15min", threshold_min=10)           # doctest: +SKIP

:func:`open_area` loads and validates every layer once (:func:`accessibility.pipeline.load_study_area`)
and returns a :class:`StudyArea`. Its methods answer a planner's questions with frames indexed like
their input (cells, units) and carrying unit names; each takes the circle overrides of
:func:`accessibility.rules.circle_rule` (``threshold_min``, ``threshold_m``, ``profile``,
``terrain``, ``max_snap_m``), which keep the circle's facilities. Results are computed when first
asked for and remembered per rule and per content of the layers: a changed override is a new rule,
an edited layer a new key, never a stale answer.
"""

from __future__ import annotations

import logging
import warnings as _warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd

from accessibility._errors import AccessibilityWarning, DataError
from accessibility.config import AreaConfig

__all__ = ["StudyArea", "open_area"]

log = logging.getLogger(__name__)

#: Rule overrides every question accepts (see accessibility.rules.circle_rule).
RULE_OVERRIDES = ("threshold_min", "threshold_m", "profile", "terrain", "max_snap_m")


@dataclass(eq=False, repr=False)
class StudyArea:
    """Every layer of one study area, validated and in the area's projected CRS, and the
    questions a planner asks of it (coverage, per-unit tables, siting, maps, report, before/after).

    Made by :func:`open_area` (or :func:`accessibility.pipeline.load_study_area`). The layers follow
    the contracts of DESIGN.md; treat them as read-only (results are remembered per content of
    the layers, so an edited layer is recomputed, at the cost of recomputing).
    """

    config: AreaConfig
    boundary: gpd.GeoDataFrame
    units: gpd.GeoDataFrame
    network: Any  # accessibility.network.WalkNetwork
    facilities: gpd.GeoDataFrame
    cells: gpd.GeoDataFrame
    partition_report: pd.DataFrame = field(default_factory=pd.DataFrame)
    warnings: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    _memo: dict = field(default_factory=dict)

    # -- what it is -------------------------------------------------------------------------

    def __repr__(self) -> str:
        cfg = self.config
        status = "SYNTHETIC DEMO" if cfg.is_synthetic else "real data"
        pop = float(self.cells["population"].sum()) if "population" in self.cells else float("nan")
        circles = ", ".join(cfg.circles)
        return (f"<StudyArea {cfg.name!r} ({cfg.title_en}) · {status} · {len(self.units)} units · "
                f"population {pop:,.0f} in {len(self.cells):,} cells · network {self.network.n_nodes:,} "
                f"nodes / {len(self.network.edges):,} edges · {len(self.facilities):,} facilities · "
                f"circles: {circles}>")

    def summary(self) -> str:
        """A readable summary: units, population, facilities per circle, network, data status."""
        from accessibility.pipeline import summary_text

        return summary_text(self)

    def unit_names(self) -> dict[str, str]:
        """``unit_code -> unit_name``: planners read names, not codes."""
        return dict(zip(self.units["unit_code"].astype(str), self.units["unit_name"].astype(str), strict=False))

    def provenance(self) -> list[dict]:
        """One row per input layer: name, status (real/synthetic), path and where it came from."""
        rows = []
        for src in [*self.config.sources.values(), *self.config.facility_sources]:
            path = src.path
            try:
                rel = str(path.relative_to(self.config.base_dir)) if path else "(online)"
            except ValueError:
                rel = str(path)
            rows.append({"layer": src.name, "kind": src.kind, "status": src.status, "path": rel,
                         "coords": src.coords, "provenance": src.provenance})
        return rows

    # -- rules ------------------------------------------------------------------------------

    def rule(self, circle: str, **overrides):
        """The :class:`~accessibility.rules.CircleRule` of one circle, with overrides.

        ``area.rule("culture_15min", threshold_min=10)`` keeps the culture facilities and
        searches 10 minutes; see :func:`accessibility.rules.circle_rule` for the overrides.
        """
        from accessibility.rules import circle_rule

        return circle_rule(self.config, circle, **overrides)

    def rules(self, circles=None, **overrides) -> dict:
        """``circle id -> CircleRule`` for ``circles`` (a circle id, several, or None for all)."""
        from accessibility.rules import CircleRule, circle_rules

        if isinstance(circles, CircleRule):
            return {circles.id: circles}
        if isinstance(circles, str):
            circles = [circles]
        elif circles is not None:
            circles = list(circles)
            if circles and all(isinstance(c, CircleRule) for c in circles):
                return {c.id: c for c in circles}
        return circle_rules(self.config, circles, **overrides)

    def plan_circles(self) -> list[str]:
        """Ids of the circles the plan promises (``plan: true``), in configuration order."""
        return [cid for cid, c in self.config.circles.items() if c.plan]

    # -- coverage ---------------------------------------------------------------------------

    def _layers_key(self) -> bytes:
        """Digest of what the answers depend on (cells, facilities, network columns)."""
        from accessibility.traveltime import _digest

        c, f, e = self.cells, self.facilities, self.network.edges
        fac_ids = "\x1f".join(f["circles"].fillna("").astype(str)) if "circles" in f else ""
        arrays = [np.asarray(c.geometry.x), np.asarray(c.geometry.y),
                  np.asarray(f.geometry.x) if len(f) else np.zeros(0),
                  np.asarray(f.geometry.y) if len(f) else np.zeros(0),
                  np.frombuffer(fac_ids.encode(), dtype=np.uint8),
                  *(c[col].to_numpy(dtype=float) for col in ("population", "pop_60plus") if col in c),
                  e["u"].to_numpy(), e["v"].to_numpy(), self.network.nodes["x"].to_numpy(),
                  self.network.nodes["y"].to_numpy(),
                  *(e[col].to_numpy(dtype=float) for col in self.network.weight_columns())]
        return _digest(*arrays)

    @contextmanager
    def _noting_warnings(self) -> Iterator[None]:
        """Pass warnings on, and keep the package's own in ``self.warnings`` (once each)."""
        with _warnings.catch_warnings(record=True) as caught:
            _warnings.simplefilter("always", AccessibilityWarning)
            yield
        for w in caught:
            if issubclass(w.category, AccessibilityWarning) and str(w.message) not in self.warnings:
                self.warnings.append(str(w.message))
            _warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)

    def _cell_results(self, rules: dict) -> pd.DataFrame:
        """Per-cell result columns of ``rules``, computed once per rule and layer content."""
        from accessibility.coverage import cell_results

        key = self._layers_key()
        memo = self._memo.setdefault("results", {})
        missing = [r for r in rules.values() if (key, r) not in memo]
        if missing:
            with self._noting_warnings():
                res = cell_results(self.cells, self.facilities, self.network, missing, progress=False)
            for r in missing:
                mine = {f"{r.id}{suffix}" for suffix in ("_t", "_n", "_covered", "_t_flat")}
                memo[(key, r)] = res[[c for c in res.columns if c in mine]]
        return pd.concat([memo[(key, r)] for r in rules.values()], axis=1)

    def coverage(self, circles=None, *, threshold_min: float | None = None, threshold_m: float | None = None,
                 profile: str | None = None, terrain: str | None = None,
                 max_snap_m: float | None = None) -> gpd.GeoDataFrame:
        """Per-cell walking time, reachable count and verdict for some or all circles.

        Parameters
        ----------
        circles : str or iterable of str, optional
            Circle ids (default: all of the configuration).
        threshold_min, threshold_m, profile, terrain, max_snap_m
            Overrides of :func:`accessibility.rules.circle_rule` (the circles keep their facilities).

        Returns
        -------
        geopandas.GeoDataFrame
            Indexed like ``area.cells``: ``cell_id``, ``unit_code``, ``unit_name``, ``population``,
            ``pop_60plus``, then per circle ``<c>_t`` (seconds or metres), ``<c>_n``,
            ``<c>_covered``, ``<c>_t_flat`` (see :func:`accessibility.coverage.cell_results`).
        """
        rules = self.rules(circles, threshold_min=threshold_min, threshold_m=threshold_m, profile=profile,
                           terrain=terrain, max_snap_m=max_snap_m)
        res = self._cell_results(rules)
        keep = [c for c in ("cell_id", "unit_code", "population", "pop_60plus") if c in self.cells]
        base = self.cells[keep].copy()
        base.insert(keep.index("unit_code") + 1 if "unit_code" in keep else 0, "unit_name",
                    self.cells["unit_code"].astype(str).map(self.unit_names()))
        return gpd.GeoDataFrame(pd.concat([base, res], axis=1), geometry=self.cells.geometry,
                                crs=self.cells.crs)

    def coverage_by_unit(self, circles=None, **overrides) -> pd.DataFrame:
        """Population-weighted coverage per unit and circle, plus the district row.

        The ``coverage_by_unit.csv`` table (DESIGN.md) for some or all circles, with the
        overrides of :meth:`coverage`. One row per unit (in the units' order) then the district.
        """
        from accessibility.coverage import coverage_by_unit

        rules = self.rules(circles, **overrides)
        return coverage_by_unit(self.cells, self._cell_results(rules), self.units, self.config,
                                circles=list(rules.values()))

    # -- siting -----------------------------------------------------------------------------

    def candidates(self) -> gpd.GeoDataFrame:
        """Candidate sites as the configuration asks (spacing, exclusion zones, parcels); computed once."""
        from accessibility.pipeline import candidate_sites_for

        key = ("candidates", self._layers_key())
        if key not in self._memo:
            self._memo[key] = candidate_sites_for(self)
        return self._memo[key]

    def site(self, circle: str, *, k: int | None = None, method: str = "auto",
             node_limit: int | None = None, units=None, **overrides) -> dict:
        """Where to build for one circle: ranked new sites and the fewest sites per unit.

        Parameters
        ----------
        circle : str
            Circle id.
        k : int, optional
            Length of the ranking (default: ``siting.max_new_sites`` of the configuration).
        method : {"auto", "greedy", "milp"}
            See :class:`accessibility.siting.SitingOptions`.
        node_limit : int, optional
            Branch-and-bound nodes per exact model (default ``siting.node_limit`` of the
            configuration): a limit on work, never on time, so the answer is the same on any
            machine; each result says whether it is proven optimal (``proof_en``).
        units : iterable of str, optional
            Site only for these units: their uncovered demand and the candidate sites inside them
            (a street office's own sweep; as ``siting.units`` of the configuration).
        **overrides
            Rule overrides (``threshold_min``, ``profile``, ...): demand and coverage sets follow them.

        Returns
        -------
        dict
            As :func:`accessibility.siting.site_circle` (``curve``, ``lscp_by_unit``, ``sites``,
            ``exact_sites``, ``summary``), tables with unit names.
        """
        from accessibility import siting as siting_mod
        from accessibility.pipeline import _with_unit_names

        rule = self.rule(circle, **overrides)
        codes = None if units is None else tuple(sorted({str(u) for u in ([units] if isinstance(units, str)
                                                                          else units)}))
        sel = {}
        if codes:
            unknown = sorted(set(codes) - set(self.units["unit_code"].astype(str)))
            if unknown:
                raise DataError(f"site: unit(s) {', '.join(unknown)} not in the units layer; use codes of "
                                f"{', '.join(self.units['unit_code'].astype(str))}")
            from accessibility.labels import selected_units_label

            sel = {"district_code": "selected:" + "+".join(codes), "district_name": selected_units_label(self.config.language)}
        limits = None if node_limit is None else siting_mod.SolverLimits(
            node_limit=int(node_limit), time_limit_s=float(self.config.siting.time_limit_s))
        options = siting_mod.SitingOptions.from_config(self.config, k_max=k, method=method,
                                                       limits=limits, **sel)
        key = ("site", self._layers_key(), rule, options, codes)
        if key not in self._memo:
            results = self._cell_results({rule.id: rule})
            cells, cands, units_l = self.cells, self.candidates(), self.units
            if codes:
                cells = cells[cells["unit_code"].astype(str).isin(codes)]
                cands = cands[cands["unit_code"].astype(str).isin(codes)]
                units_l = units_l[units_l["unit_code"].astype(str).isin(codes)]
            out = siting_mod.site_circle(cells, results.loc[cells.index], self.network, cands, rule,
                                         options=options, units=units_l, facilities=self.facilities)
            names = self.unit_names()
            for part in ("curve", "exact_sites"):
                if out.get(part) is not None:
                    out[part] = _with_unit_names(out[part], names)
            self._memo[key] = out
        return self._memo[key]

    def whatif(self, circles=None, *, add=(), remove=(), coords: str = "wgs84", warn: bool = True,
               **overrides):
        """What if we build here (or close that)? Before/after per unit and district.

        A thin front of :class:`accessibility.whatif.WhatIf` (its state is kept on the area, so
        the next question of a circle costs only the new sites' searches).

        Parameters
        ----------
        circles : str or iterable of str, optional
            Circle ids (default: the plan circles).
        add : sequence or GeoDataFrame
            New sites: ``(lon, lat)`` pairs in ``coords``, candidate ``site_id`` strings, or points.
        remove : iterable of str
            ``fac_id`` of existing facilities to take away.
        coords : {"wgs84", "gcj02", "bd09"}
        warn : bool
            Warn about sites on cut-off fragments or beyond ``max_snap_m``.
        **overrides
            Rule overrides of :meth:`coverage` (``threshold_min=10`` ...).

        Returns
        -------
        accessibility.whatif.WhatIfResult

        Examples
        --------
        >>> from accessibility.demo import example_grid
        >>> from accessibility.whatif import WhatIf
        >>> g = example_grid()
        >>> WhatIf(g.cells, g.facilities, g.net, g.config).evaluate("shop").district()["gain"].tolist()
        [0.0]
        """
        from accessibility.whatif import WhatIf

        key = ("whatif", self._layers_key())
        if key not in self._memo:
            self._memo[key] = WhatIf.from_study(self)
        wi = self._memo[key]
        if not isinstance(add, gpd.GeoDataFrame) and any(isinstance(a, str) for a in add):
            wi.candidates = self.candidates()
        which = list(self.rules(circles, **overrides).values()) if overrides else circles
        return wi.evaluate(which, add=add, remove=remove, coords=coords, warn=warn)

    def whatif_map(self, circle: str, path, *, basemap: str = "none"):
        """Write the what-if page of one circle (``maps/whatif_<circle>.html`` of the run) to ``path``."""
        from accessibility.whatif_map import write_whatif_map

        self.whatif(circle, warn=False)  # builds the state
        wi = self._memo[("whatif", self._layers_key())]
        ranked = []
        key = next((k for k in self._memo if isinstance(k, tuple) and k[:1] == ("site",)), None)
        if key is not None and self._memo[key].get("curve") is not None:
            ranked = self._memo[key]["curve"]["site_id"].astype(str).tolist()[:10]
        return write_whatif_map(path, wi, circle, candidates=self.candidates(), ranked_site_ids=ranked,
                                basemap=basemap)

    def before_after(self, planned=None, circles=None, **overrides) -> pd.DataFrame:
        """Coverage per unit before and after planned projects or hypothetical sites.

        Parameters
        ----------
        planned : GeoDataFrame or path, optional
            Points (any CRS) with a ``circles`` column (``;``-joined ids; a ``circle`` column is
            accepted too), e.g. ``area.site(...)["sites"]``, or a planned-projects CSV; default the
            configuration's ``siting.planned_projects``.
        circles : str or iterable of str, optional
            Circles to evaluate (default: every circle a project names).
        **overrides
            Rule overrides of :meth:`coverage`.

        Returns
        -------
        pandas.DataFrame
            Per circle: ``unit_code, unit_name, population, covered_before, covered_after,
            share_before, share_after, gain`` and the district row, plus ``circle``, ``projects``.
        """
        from accessibility import siting as siting_mod
        from accessibility.pipeline import read_planned_projects

        if planned is None:
            if self.config.siting.planned_projects is None:
                raise DataError(f"{self.config.config_path}: no siting.planned_projects configured: pass "
                                "planned= (points with a circles column, or a CSV)")
            planned = self.config.siting.planned_projects
        if isinstance(planned, str | Path):
            planned = read_planned_projects(planned, self.config.crs)
        if "circles" not in planned.columns and "circle" in planned.columns:
            planned = planned.rename(columns={"circle": "circles"})
        if "circles" not in planned.columns:
            raise DataError("before_after: the planned sites have no 'circles' column: name the circle(s) "
                            "each serves (;-joined ids), e.g. planned.assign(circles='eldercare_15min')")
        rules = self.rules(circles, **overrides)
        table = siting_mod.planned_before_after(
            self.cells, lambda rule: self._cell_results({rule.id: rule}), self.network, planned,
            rules.values(), self.config, units=self.units, named_only=circles is None)
        return table

    # -- maps -------------------------------------------------------------------------------

    def _node_times(self, rules: dict) -> dict:
        from accessibility import maps as maps_mod

        key = self._layers_key()
        memo = self._memo.setdefault("node_times", {})
        for r in rules.values():
            if (key, r) not in memo:
                memo[(key, r)] = maps_mod.circle_node_times(self.network, self.facilities, r)[r.id]
        return {r.id: memo[(key, r)] for r in rules.values()}

    def _streets(self):
        from accessibility import maps as maps_mod

        if "streets" not in self._memo:
            self._memo["streets"] = maps_mod.street_lines(self.network)
        return self._memo["streets"]

    def overview_map(self, circles=None, *, basemap: str = "none", sites=False, **overrides):
        """The district overview map (coverage share per unit), one layer per circle.

        ``sites=True`` adds each circle's ranked proposed sites (:meth:`site` with the
        configuration's settings); a GeoDataFrame (e.g. ``area.site(c, k=5)["sites"]``) draws those.
        ``basemap`` is ``"none"`` (offline), ``"osm"`` or ``"amap"``.
        """
        from accessibility import maps as maps_mod

        rules = self.rules(circles, **overrides)
        table = self.coverage_by_unit(list(rules.values()))
        streets = self._streets()
        fac = maps_mod.reachable_facilities(self.network, self.facilities, rules)
        return maps_mod.overview_map(self.units, table, fac, self.config, circles=list(rules.values()),
                                     basemap=basemap, streets=streets[streets["kind"] == "major"],
                                     proposed_sites=self._proposed(rules, sites))

    def unit_map(self, code: str, circles=None, *, basemap: str = "none", sites=False, **overrides):
        """One street/town: cells coloured by walking time, each circle's service area.

        ``code`` is the unit's official code (``area.units.unit_code``); ``sites`` as in
        :meth:`overview_map` (proposed sites near the unit).
        """
        from accessibility import maps as maps_mod

        rules = self.rules(circles, **overrides)
        results = self._cell_results(rules)
        fac = maps_mod.reachable_facilities(self.network, self.facilities, rules)
        return maps_mod.unit_map(str(code), self.units, self.cells, results, fac, self.config,
                                 net=self.network, node_times=self._node_times(rules),
                                 circles=list(rules.values()), basemap=basemap, streets=self._streets(),
                                 proposed_sites=self._proposed(rules, sites))

    def _proposed(self, rules: dict, sites):
        if sites is None or sites is False:
            return None
        if sites is not True:  # a frame of sites given by the caller
            return sites if "circle" in sites.columns else sites.assign(circle=next(iter(rules)))
        parts = []
        for rule in rules.values():
            s = self.site(rule.id, **_overrides_of(rule, self))["sites"]
            if s is not None and len(s):
                parts.append(s.assign(circle=rule.id))
        return gpd.GeoDataFrame(pd.concat(parts, ignore_index=True), crs=parts[0].crs) if parts else None

    # -- outputs ----------------------------------------------------------------------------

    def report(self, path, *, siting: bool = True) -> Path:
        """Write the HTML report of the configuration's circles to ``path`` (no unit maps linked)."""
        from accessibility import pipeline

        rules = self.rules()
        table = self.coverage_by_unit()
        siting_out = self._run_siting_plan() if siting else {}
        planned = self.before_after() if siting and self.config.siting.planned_projects is not None else None
        results = self._cell_results(rules)
        return pipeline.write_report(Path(path), self, table, results, siting_out, maps=False, planned=planned,
                                     charts=pipeline.chart_set(self, table, results, siting_out))

    def workbook(self, path, *, siting: bool = True) -> Path:
        """Write ``coverage.xlsx``-style workbook (tables, siting sheets, planned projects) to ``path``."""
        from accessibility import pipeline

        table = self.coverage_by_unit()
        siting_out = self._run_siting_plan() if siting else {}
        planned = self.before_after() if siting and self.config.siting.planned_projects is not None else None
        charts = pipeline.chart_set(self, table, self._cell_results(self.rules()), siting_out)
        return pipeline.write_workbook(Path(path), self, table, siting_out, planned, charts=charts)

    def figures(self, *, siting: bool = True, language: str | None = None) -> dict:
        """The charts of every plan circle (:func:`accessibility.figures.circle_figures`): coverage
        per unit against its target, the siting curve (with ``siting``), walking times, slopes.

        Returns ``{"<circle>_<kind>": matplotlib.figure.Figure}``; save one with
        :func:`accessibility.figures.save_figure` or show it in a notebook.
        """
        from accessibility import figures as fig_mod

        table = self.coverage_by_unit()
        return fig_mod.circle_figures(self.config, table, self.cells, self._cell_results(self.rules()),
                                      self._run_siting_plan() if siting else {}, language=language)

    def atlas(self, path, *, siting: bool = True, circles: list[str] | None = None, language: str | None = None,
              date: str | None = None) -> Path:
        """Write the printable A4 atlas (:func:`accessibility.atlas.write_atlas`) to ``path``: cover,
        a district summary per plan circle (or per circle of ``circles``), a map page per unit and
        circle; with ``siting``, the proposed sites and the fewest sites each unit needs."""
        from accessibility.atlas import write_atlas

        return write_atlas(Path(path), self, self._cell_results(self.rules()), self.coverage_by_unit(),
                           self._run_siting_plan() if siting else {}, language=language, date=date,
                           circles=circles)

    def _run_siting_plan(self) -> dict:
        return {cid: self.site(cid) for cid in self.plan_circles()}

    def run(self, **kwargs):
        """The whole run (:func:`accessibility.pipeline.run`) on this loaded area: every output
        written to ``output_dir`` (default ``data/processed/<run_id>/``)."""
        from accessibility.pipeline import run

        return run(self, **kwargs)


def _overrides_of(rule, area: StudyArea) -> dict:
    """Overrides that turn the configuration's rule of ``rule.id`` into ``rule``."""
    base = area.rule(rule.id)
    out = {}
    if rule.threshold != base.threshold:
        out["threshold_min" if rule.mode == "time" else "threshold_m"] = (
            rule.threshold / 60.0 if rule.mode == "time" else rule.threshold)
    if rule.profile != base.profile:
        out["profile"] = rule.profile
    if rule.flat_weight is not None and rule.weight == rule.flat_weight:
        out["terrain"] = "flat"
    if rule.max_snap_m != base.max_snap_m:
        out["max_snap_m"] = rule.max_snap_m
    return out


def open_area(config, *, progress: bool = False, demo_data: bool = False, **overrides) -> StudyArea:
    """Open a study area: load and validate every layer, ready for questions.

    Parameters
    ----------
    config : path or AreaConfig
        The area configuration, e.g. ``"config/areas/jiangbei.yaml"``.
    progress : bool, default False
        Progress bar while loading.
    demo_data : bool, default False
        Write the synthetic demo layers the configuration names and that are missing
        (deterministic, offline; see :mod:`accessibility.demo`).
    **overrides
        Configuration keys merged into the file before validation (a scenario), e.g.
        ``max_snap_m=300`` or ``terrain={"model": "flat"}``.

    Returns
    -------
    StudyArea

    Examples
    --------
    >>> import accessibility
    >>> area = accessibility.open_area("config/areas/jiangbei.yaml", demo_data=True)  # doctest: +SKIP
    >>> area.coverage_by_unit("eldercare_15min", profile="frail")                      # doctest: +SKIP
    """
    from accessibility.pipeline import config_for, load_study_area

    cfg = config_for(config, overrides or None, check_files=not demo_data)
    if demo_data and cfg.is_synthetic:
        from accessibility.demo.jiangbei import make_demo_data

        make_demo_data(cfg, progress=progress)
    return load_study_area(cfg, progress=progress)
