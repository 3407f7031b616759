"""One study area end to end: load and validate every layer, compute the circles, write the outputs.

``load_study_area`` returns a :class:`StudyArea` (all layers in the area's projected CRS, following
the contracts in DESIGN.md); ``run`` computes coverage, siting, maps, report and tables and writes
them atomically into ``data/processed/<run_id>/`` (a failed run leaves the previous results intact).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd

from accessibility._errors import AccessibilityWarning, DataError, OutputError
from accessibility._io import (
    atomic_dir,
    check_interrupted,
    check_output_folder,
    interrupt_guard,
    recover_run_folder,
    run_lock,
    sha256_file,
    write_text_atomic,
)
from accessibility._parallel import fork_ok, side_task, two_halves
from accessibility.area import StudyArea
from accessibility.config import AreaConfig, load_area
from accessibility.labels import pick, primary, selected_units_label

log = logging.getLogger(__name__)

__all__ = ["RunResult", "StudyArea", "analyse", "candidate_sites_for", "chart_set", "circle_node_times", "config_for",
           "input_files", "inputs_fingerprint", "is_complete", "load_study_area", "read_planned_projects",
           "resolved_configuration", "run", "run_parameters", "siting_report_tables", "summary_text", "supply_by_unit",
           "write_report", "write_siting", "write_workbook"]

COMPLETE_MARKER = "_COMPLETE"


@dataclass
class RunResult:
    """What ``run`` produced."""

    output_dir: Path
    coverage: pd.DataFrame
    files: list[Path]
    study: StudyArea | None = None
    results: pd.DataFrame | None = None
    siting: dict[str, dict] = field(default_factory=dict)
    planned: pd.DataFrame | None = None
    timings: dict[str, float] = field(default_factory=dict)


@contextmanager
def _stage(timings: dict[str, float], name: str, bar=None) -> Iterator[None]:
    t0 = time.perf_counter()
    if bar is not None:
        bar.set_description(name)
    log.info("%s ...", name)
    yield
    timings[name] = time.perf_counter() - t0
    log.info("%s done in %.1f s", name, timings[name])
    if bar is not None:
        bar.update(1)
    check_interrupted()  # a Ctrl-C a library swallowed stops the run here


def _progress_bar(total: int, enabled: bool):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="step", leave=False)


def config_for(config: AreaConfig | str | Path, scenario: dict | None = None, *,
               check_files: bool = True) -> AreaConfig:
    """The configuration of a run: ``config`` (a path or an ``AreaConfig``) with ``scenario``
    overrides merged in (see :func:`accessibility.config.load_area`)."""
    if isinstance(config, AreaConfig):
        if scenario:
            return load_area(config.config_path, overrides={**config.scenario, **scenario},
                             check_files=check_files)
        return config
    return load_area(config, overrides=scenario, check_files=check_files)


def load_study_area(
    config: AreaConfig | str | Path, *, scenario: dict | None = None, progress: bool = True
) -> StudyArea:
    """Load, validate and prepare every layer of a study area.

    Parameters
    ----------
    config : AreaConfig or path
        The area configuration (e.g. ``config/areas/jiangbei.yaml``).
    scenario : dict, optional
        Overrides merged into the configuration (see :func:`accessibility.config.load_area`).
    progress : bool, default True
        Show a progress bar.

    Returns
    -------
    StudyArea
    """
    from accessibility import facilities as fac_mod
    from accessibility import network as net_mod
    from accessibility import osm as osm_mod
    from accessibility import population as pop_mod
    from accessibility import units as units_mod

    cfg = config_for(config, scenario)
    timings: dict[str, float] = {}
    notes: list[str] = []
    bar = _progress_bar(6, progress)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", AccessibilityWarning)
        with _stage(timings, "boundary and units", bar):
            boundary = units_mod.read_boundary(cfg.sources["boundary"], cfg.crs)
            usrc = cfg.sources.get("units")
            if usrc is not None and usrc.kind == "overpass":
                feats = osm_mod.fetch_admin_boundaries(
                    boundary.to_crs(4326).geometry.union_all(),
                    cache_dir=cfg.base_dir / "data" / "raw" / cfg.name / "overpass_cache",
                    admin_level=str(usrc.options.get("admin_level", "8")),
                )
                units = units_mod.units_from_osm_admin(
                    feats, cfg.crs, admin_level=str(usrc.options.get("admin_level", "8")),
                    unit_table=cfg.sources.get("unit_table"), codes=cfg.unit_codes)
            elif usrc is not None:
                units = units_mod.read_units(usrc, cfg.crs, unit_table=cfg.sources.get("unit_table"),
                                             codes=cfg.unit_codes)
            else:  # the whole area is one unit
                units = boundary.assign(unit_code="area", unit_name=cfg.district_name,
                                        unit_name_en=cfg.district_name_en, unit_kind="")
            partition = units_mod.check_partition(units, boundary)
        osm_cache: dict[Path, Any] = {}
        with _stage(timings, "street network (OSM)", bar):
            nsrc = cfg.sources["network"]
            if nsrc.kind == "overpass":
                cache_dir = cfg.base_dir / "data" / "raw" / cfg.name / "overpass_cache"
                poly = boundary.to_crs(4326).geometry.union_all()
                osm = osm_mod.fetch_overpass(poly, cache_dir=cache_dir, status=nsrc.status)
            else:
                osm = osm_mod.read_osm(nsrc.path, status=nsrc.status)
                osm_cache[nsrc.path] = osm
        with _stage(timings, "walking network and terrain", bar):
            dem = cfg.sources.get("dem")
            net = net_mod.build_walk_network(
                osm,
                cfg.crs,
                profiles=cfg.profiles,
                terrain=cfg.terrain,
                dem_path=dem.path if dem is not None else None,
                dem_vertical_units=dem.options.get("vertical_units") if dem is not None else None,
                progress=False,
            )
        with _stage(timings, "facilities", bar):
            # inventory points outside the district (plus a 2 km margin) are errors, named by row
            bx = boundary.to_crs(4326).total_bounds
            margin = 0.02
            bbox = (bx[0] - margin, bx[1] - margin, bx[2] + margin, bx[3] + margin)
            facilities = fac_mod.load_facilities(cfg, osm_cache=osm_cache, bbox_wgs84=bbox)
            fac_mod.warn_if_category_empty(facilities, cfg)
            _check_inventory_datums(cfg, facilities, osm)
        with _stage(timings, "population", bar):
            cells = pop_mod.load_population(cfg, units)
        with _stage(timings, "checks", bar):
            if len(cells) == 0:
                raise DataError(
                    f"{cfg.config_path}: no populated cell falls inside the units: check that the "
                    "population layer and the unit polygons cover the same place"
                )
    if bar is not None:
        bar.close()
    for w in caught:
        notes.append(str(w.message))
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return StudyArea(
        config=cfg,
        boundary=boundary,
        units=units,
        network=net,
        facilities=facilities,
        cells=cells,
        partition_report=partition,
        warnings=notes,
        timings=timings,
    )


def _check_inventory_datums(cfg: AreaConfig, facilities: gpd.GeoDataFrame, osm: Any) -> None:
    """Warn when an inventory's declared coordinate system looks wrong.

    First by names shared with OSM (works in dense streets: the same facility sits ~500 m off its
    OSM position in the GCJ-02 direction); for files declared WGS-84, also by distance to the
    network (works where streets are sparse).
    """
    from accessibility.facilities import check_datum, check_datum_by_names

    nodes = osm.nodes[["lon", "lat"]].to_numpy()
    reference = facilities[facilities["fac_id"].astype(str).str.startswith("osm:")]
    for src in cfg.facility_sources:
        if src.kind != "inventory" or src.path is None:
            continue
        sel = facilities[facilities["source"] == src.path.name]
        if len(sel) == 0:
            continue
        msg = check_datum_by_names(sel, reference, declared=src.coords) if len(reference) else None
        if msg is None and src.coords == "wgs84":
            ll = sel.to_crs(4326).geometry
            old = check_datum(np.column_stack([ll.x, ll.y]), nodes)
            msg = f"{old}; if so, declare `coords: gcj02` for this source" if old else None
        if msg:
            warnings.warn(f"{src.path}: {msg}", AccessibilityWarning, stacklevel=3)


def summary_text(study: StudyArea) -> str:
    """A readable summary of a loaded study area: units, population, facilities, network, data status."""
    cfg = study.config
    net = study.network
    kinds = study.units["unit_kind"].astype(str)
    kinds = kinds[kinds != ""].value_counts()
    lines = [
        f"Study area: {pick(cfg.title_zh, cfg.title_en, cfg.language)}",
        f"Data status: {cfg.data_status}",
        f"CRS: {cfg.crs}",
        f"Units: {len(study.units)}" + (" (" + ", ".join(f"{k} {v}" for k, v in kinds.items()) + ")"
                                        if len(kinds) else ""),
        f"Population: {study.cells['population'].sum():,.0f} in {len(study.cells):,} cells; "
        f"aged 60+: {study.cells['pop_60plus'].sum():,.0f} "
        f"({study.cells['pop_60plus'].sum() / max(study.cells['population'].sum(), 1):.1%})",
        f"Walking network: {len(net.nodes):,} nodes, {len(net.edges):,} directed edges, "
        f"{net.edges['length_m'].sum() / 2000:,.0f} km of walkable segments, "
        f"{int(net.nodes['component'].max()) + 1} components",
    ]
    from accessibility.network import component_report

    comp = component_report(net, study.cells, study.facilities)
    frag = comp.iloc[1:]
    if len(frag) and (frag["n_cells"].sum() or frag["n_facilities"].sum()):
        lines.append(
            f"Cut off from the main network: {len(frag)} fragment(s) holding "
            f"{frag['population'].sum():,.0f} residents in {int(frag['n_cells'].sum())} cells and "
            f"{int(frag['n_facilities'].sum())} facilities (they reach only their own fragment)"
        )
    if "elev_m" in net.nodes and net.nodes["elev_m"].notna().any():
        lines.append(
            f"Elevation on the network: {net.nodes['elev_m'].min():.0f}-{net.nodes['elev_m'].max():.0f} m; "
            f"steps segments: {int(net.edges['is_steps'].sum() // 2):,}"
        )
    lines.append("Facilities per circle (category: count):")
    for c in cfg.circles.values():
        sel = study.facilities[study.facilities["category"].isin(c.categories)]
        counts = sel["category"].value_counts()
        detail = ", ".join(f"{k} {v}" for k, v in counts.items()) or "NONE"
        lines.append(f"  {c.id:<22} {len(sel):>5}  ({detail})")
    lines.append("Layers:")
    for row in study.provenance():
        lines.append(f"  {row['layer']:<16} {row['status'].upper():<9} {row['path']}")
    if study.warnings:
        lines.append(f"Warnings ({len(study.warnings)}):")
        lines += [f"  - {w}" for w in study.warnings]
    return "\n".join(lines)


def analyse(
    study: StudyArea, *, circles: list[str] | None = None, progress: bool = True
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-cell results and the per-unit coverage table of a loaded study area (nothing written).

    Parameters
    ----------
    study : StudyArea
    circles : list of str, optional
        Circle ids (default: every circle of the configuration).
    progress : bool

    Returns
    -------
    (results, coverage) : the per-cell results (indexed like ``study.cells``) and the
        ``coverage_by_unit`` table (see DESIGN.md).
    """
    from accessibility import coverage as cov_mod
    from accessibility.rules import circle_rules

    rules = list(circle_rules(study.config, circles or None).values())
    results = cov_mod.cell_results(study.cells, study.facilities, study.network, rules,
                                   flat=True, progress=progress)
    table = cov_mod.coverage_by_unit(study.cells, results, study.units, study.config, circles=rules)
    return results, table


def input_files(cfg: AreaConfig) -> list[Path]:
    """Every file a run of ``cfg`` reads: the sources, the facility sources and the siting files
    (exclusion zones, parcels, planned projects), with a shapefile's sidecars and a folder's files."""
    paths = [src.path for src in [*cfg.sources.values(), *cfg.facility_sources] if src.path is not None]
    paths += [*cfg.siting.exclude, cfg.siting.parcels, cfg.siting.planned_projects]
    files: list[Path] = []
    for p in (Path(p) for p in paths if p is not None):
        if p.is_dir():
            files += sorted(f for f in p.rglob("*") if f.is_file())
        elif p.suffix.lower() == ".shp":
            files += sorted(f for f in p.parent.glob(p.stem + ".*") if f.is_file())
        else:
            files.append(p)
    return list(dict.fromkeys(files))


def run_parameters(*, maps: bool = True, siting: bool = True, basemap: str = "osm", embed_assets: bool = True,
                   k_max: int | None = None, atlas: bool = True) -> dict:
    """The arguments of :func:`run` that shape its outputs, as recorded in the run's fingerprint.

    Examples
    --------
    >>> run_parameters(maps=False)["maps"]
    False
    """
    return {"maps": bool(maps), "siting": bool(siting), "basemap": str(basemap),
            "embed_assets": bool(embed_assets), "k_max": None if k_max is None else int(k_max),
            "atlas": bool(atlas)}


def inputs_fingerprint(cfg: AreaConfig, params: dict | None = None) -> str:
    """``_COMPLETE``'s key: SHA-256 (20 hex digits) of the configuration, every input file
    (:func:`input_files`; a missing one counts as missing), the run parameters
    (:func:`run_parameters`) and the package version."""
    import hashlib

    from accessibility import __version__

    h = hashlib.sha256(cfg.fingerprint().encode())
    for p in input_files(cfg):
        h.update(str(p.name).encode())
        h.update(sha256_file(p).encode() if p.exists() else b"missing")
    h.update(json.dumps({"params": params or {}, "version": __version__}, sort_keys=True).encode())
    return h.hexdigest()[:20]


def _input_hashes(cfg: AreaConfig) -> dict[str, str]:
    """``path -> sha256`` of every input file, for run.json (paths relative to base_dir)."""
    out = {}
    for p in input_files(cfg):
        try:
            key = str(p.resolve().relative_to(cfg.base_dir.resolve()))
        except ValueError:
            key = str(p)
        out[key] = sha256_file(p) if p.exists() else "missing"
    return out


#: Sub-folders of a run folder written by batch runs (kept when the run itself is redone).
BATCH_SUBFOLDERS = ("scenarios", "unit_siting")


def run(  # noqa: PLR0913  (the switches of `accessibility run`, keyword-only)
    config: AreaConfig | str | Path,
    *,
    output_dir: str | Path | None = None,
    scenario: dict | None = None,
    progress: bool = True,
    maps: bool = True,
    siting: bool = True,
    basemap: str = "osm",
    embed_assets: bool = True,
    k_max: int | None = None,
    atlas: bool = True,
) -> RunResult:
    """Run the whole analysis for one study area and write every output.

    Outputs go to ``output_dir`` (default ``data/processed/<run_id>/``), built in a temporary folder
    and moved into place only when everything succeeded.

    Parameters
    ----------
    config : AreaConfig, path or StudyArea
        The area configuration, or an area already loaded (:func:`accessibility.open_area`).
    output_dir : path, optional
    scenario : dict, optional
        Configuration overrides (speed profiles, terrain model, thresholds ...); a loaded area
        is then loaded again with them.
    progress : bool
        Progress bars.
    maps, siting : bool
        Skip the maps / the siting models (faster batch runs).
    basemap : {"osm", "none", "amap"}
        Tiles of the HTML maps.
    embed_assets : bool, default True
        Inline Leaflet's JavaScript so maps open without internet.
    k_max : int, optional
        Largest number of new sites in the MCLP curve (default: ``siting.max_new_sites``).
    atlas : bool, default True
        Write the printable ``atlas.pdf`` (A4: cover, a summary per plan circle, a map page per
        unit and plan circle).

    Returns
    -------
    RunResult
    """
    if isinstance(config, StudyArea) and not scenario:
        study = config
        cfg = study.config
    else:
        cfg = config_for(config.config if isinstance(config, StudyArea) else config, scenario)
        study = None
    out = Path(output_dir) if output_dir is not None else cfg.output_dir
    params = run_parameters(maps=maps, siting=siting, basemap=basemap, embed_assets=embed_assets, k_max=k_max,
                            atlas=atlas)
    # one run per folder; what a killed run left is repaired first; the folder's writability and
    # free space are checked before any work
    with interrupt_guard(), run_lock(out):
        recover_run_folder(out, keep=BATCH_SUBFOLDERS)
        _check_output_dir(out)
        check_output_folder(out)
        try:
            return _run_locked(cfg, study, out, params, progress=progress)
        except OutputError as exc:
            kept = f"{out} holds the earlier results as they were" if out.exists() else f"nothing was written to {out}"
            raise OutputError(f"{exc} (nothing was replaced: {kept})") from exc


def _run_locked(cfg: AreaConfig, study: StudyArea | None, out: Path, params: dict, *, progress: bool) -> RunResult:
    """The body of :func:`run`, holding the folder's lock."""
    maps, siting, k_max, atlas = params["maps"], params["siting"], params["k_max"], params.get("atlas", True)
    if study is None:
        study = load_study_area(cfg, progress=progress)
    timings = dict(study.timings)
    circles = list(cfg.circles)
    files: list[Path] = []
    siting_out: dict[str, dict] = {}
    planned: pd.DataFrame | None = None

    # batch results live in the run folder (scenarios/, unit_siting/): a new run keeps them
    with atomic_dir(out, keep=BATCH_SUBFOLDERS) as tmp:
        with _stage(timings, "travel times and coverage"), warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", AccessibilityWarning)
            results, table = analyse(study, circles=circles, progress=progress)
        for w in caught:  # keep them for the report, and pass them on to the caller
            study.warnings.append(str(w.message))
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        # side tasks in a second process (accessibility._parallel): the tables while the sites are
        # chosen, the maps while the charts, report and atlas are drawn
        tables = side_task(_timed, _write_tables, tmp, study, results, table)
        try:
            if maps or atlas:
                # folium and the map module (~1 s to import) once here, while the side tasks work:
                # the maps' side task and the atlas then find them loaded
                import accessibility.maps  # noqa: F401
            if siting:
                with _stage(timings, "siting"):
                    siting_out = write_siting(tmp, study, results, k_max=k_max, progress=progress)
                if cfg.siting.planned_projects is not None:
                    with _stage(timings, "planned projects (before/after)"):
                        planned = _planned_projects(tmp, study, results)
            timings["tables"], (table_files, supply) = tables.result()
        finally:
            tables.cancel()
        files += table_files + sorted(tmp.glob("siting_*"))
        if planned is not None:
            files.append(tmp / "scenario_planned_projects.csv")
        check_interrupted()
        maps_task = (side_task(_timed, _maps_stage, tmp, study, (results, table, siting_out), params,
                               progress=progress and not fork_ok()) if maps else None)
        try:
            with _stage(timings, "charts"):
                charts, chart_files = _write_charts(tmp, study, table, results, siting_out,
                                                    split=maps_task is None or not maps_task.forked)
                files += chart_files
            with _stage(timings, "report and workbook"):
                files.append(write_report(tmp / "report.html", study, table, results, siting_out, maps=maps,
                                          planned=planned, charts=charts))
                files.append(write_workbook(tmp / "coverage.xlsx", study, table, siting_out, planned,
                                            supply=supply, charts=charts))
            if atlas:
                with _stage(timings, "atlas"):
                    files.append(_write_atlas(tmp, study, table, results, siting_out))
            if maps_task is not None:
                timings["maps"], map_files = maps_task.result()
                files += map_files
        finally:
            if maps_task is not None:
                maps_task.cancel()
        check_interrupted()
        fingerprint = inputs_fingerprint(cfg, params)
        # the one place two identical runs differ: the date and the timings
        meta = {
            "finished_utc": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
            "run_id": cfg.run_id,
            "data_status": cfg.data_status,
            "inputs_fingerprint": fingerprint,
            "parameters": params,
            "inputs_sha256": _input_hashes(cfg),
            "scenario": cfg.scenario,
            "configuration": resolved_configuration(cfg, k_max=k_max),
            "timings_s": {k: round(v, 2) for k, v in timings.items()},
            "files": sorted(str(f.relative_to(tmp)) for f in files if f.exists()),
        }
        write_text_atomic(tmp / "run.json", json.dumps(meta, ensure_ascii=False, indent=2))
        # written last: batch re-runs skip folders that have it
        write_text_atomic(tmp / COMPLETE_MARKER, json.dumps({"inputs_fingerprint": fingerprint}))
    files = [out / f.relative_to(tmp) for f in files]
    return RunResult(output_dir=out, coverage=table, files=files, study=study, results=results,
                     siting=siting_out, planned=planned, timings=timings)


def _timed(func, *args, **kwargs):
    """``(seconds, func(*args, **kwargs))``: a side task's own duration for the run's timings."""
    t0 = time.perf_counter()
    out = func(*args, **kwargs)
    return time.perf_counter() - t0, out


def _maps_stage(out: Path, study: StudyArea, computed: tuple, params: dict, *, progress: bool) -> list[Path]:
    """The maps of a run: per-node times, then the overview, unit and what-if maps."""
    results, table, siting_out = computed
    node_times = circle_node_times(study)
    return _write_maps(out, study, (results, table, siting_out, node_times), basemap=params["basemap"],
                       embed_assets=params["embed_assets"], progress=progress)


def resolved_configuration(cfg: AreaConfig, *, k_max: int | None = None) -> dict:
    """Every parameter that changes a published number, as the run resolved it (for ``run.json``).

    With the audit bundle (``analysis_inputs.gpkg``) this is enough to recompute every share:
    per circle the edge column searched, the walking speed of the walks to/from the network, the
    threshold (seconds or metres) and its tolerance, the snap limit, the demand column and the
    facility categories; the profiles and terrain model the edge times were built with; the
    siting settings.
    """
    from accessibility.rules import circle_rules
    from accessibility.siting import SitingOptions

    def rel(p):
        if p is None:
            return None
        try:
            return str(Path(p).relative_to(cfg.base_dir))
        except ValueError:
            return str(p)

    circles = {}
    for rule in circle_rules(cfg).values():
        c = rule.circle
        circles[rule.id] = {
            "mode": rule.mode, "threshold": rule.threshold, "threshold_unit": "s" if rule.mode == "time" else "m",
            "threshold_tolerance": rule.slack, "profile": rule.profile if rule.mode == "time" else None,
            "weight": rule.weight, "flat_weight": rule.flat_weight, "walk_speed_mps": rule.walk_speed_mps,
            "max_snap_m": rule.max_snap_m, "demand_column": rule.demand_column,
            "target_share": rule.target_share, "min_reachable": rule.min_reachable,
            "categories": list(rule.categories), "plan": bool(c.plan),
        }
    opt = SitingOptions.from_config(cfg, k_max=k_max)
    return {
        "crs": cfg.crs,
        "max_snap_m": cfg.max_snap_m,
        "threshold_test": "walk_to_network + network + walk_from_network <= threshold + threshold_tolerance",
        "profiles": {k: {"flat_speed_mps": p.flat_speed_mps, "allow_steps": p.allow_steps}
                     for k, p in cfg.profiles.items()},
        "terrain": dict(cfg.terrain.__dict__),
        "circles": circles,
        "siting": {"candidate_spacing_m": cfg.siting.candidate_spacing_m, "k_max": opt.k_max,
                   "method": opt.method, "node_limit": opt.limits.node_limit,
                   "time_limit_s": opt.limits.time_limit_s, "max_milp_nnz": opt.max_milp_nnz,
                   "units": list(cfg.siting.units), "exclude": [rel(p) for p in cfg.siting.exclude],
                   "parcels": rel(cfg.siting.parcels), "planned_projects": rel(cfg.siting.planned_projects)},
        "district_code": cfg.district_code,
    }


def _check_output_dir(out: Path) -> None:
    """A run replaces its output folder as a whole: only a new, empty or earlier run's folder."""
    out = Path(out)
    if not out.exists():
        return
    if not out.is_dir():
        raise DataError(f"output folder {out} is a file: choose a folder (--out)")
    if (out / COMPLETE_MARKER).exists() or not any(out.iterdir()):
        return
    raise DataError(f"output folder {out} exists, is not empty and holds no earlier run (no {COMPLETE_MARKER} "
                    "file): a run replaces its folder as a whole, so it refuses to touch this one. Choose a "
                    "new or empty folder (--out), or delete this one yourself")


def is_complete(output_dir: str | Path, config: AreaConfig | None = None, *, params: dict | None = None) -> bool:
    """True when ``output_dir`` holds a finished run (of the same inputs, when ``config`` is given).

    ``params`` are the run's :func:`run_parameters` (default those of ``run(config)``): a run with
    other parameters (e.g. another ``k_max``) is not the same run.
    """
    marker = Path(output_dir) / COMPLETE_MARKER
    if not marker.exists():
        return False
    if config is None:
        return True
    try:
        fingerprint = inputs_fingerprint(config, run_parameters() if params is None else params)
        return json.loads(marker.read_text())["inputs_fingerprint"] == fingerprint
    except (ValueError, KeyError):
        return False


# ---------------------------------------------------------------------------------------------
# writers


def _write_tables(out: Path, study: StudyArea, results: pd.DataFrame,
                  table: pd.DataFrame) -> tuple[list[Path], pd.DataFrame | None]:
    """The CSV and GeoPackage tables; returns the files and the 2SFCA table (None without capacities)."""
    from accessibility import coverage as cov_mod
    from accessibility._io import atomic_path

    cfg = study.config
    files = []
    p = out / "coverage_by_unit.csv"
    with atomic_path(p) as tmp:
        _rounded(table).to_csv(tmp, index=False, encoding="utf-8-sig")
    files.append(p)

    cells = study.cells.join(results)
    # a GIS user reads minutes: <circle>_t is in seconds (the contract); minutes beside it
    for cid, circle in cfg.circles.items():
        if circle.mode == "time" and f"{cid}_t" in cells:
            cells.insert(cells.columns.get_loc(f"{cid}_t") + 1, f"{cid}_t_min", (cells[f"{cid}_t"] / 60).round(2))
    cells["data_status"] = cfg.data_status
    p = out / "cells_results.gpkg"
    with atomic_path(p) as tmp:
        _to_gpkg(cells.replace([np.inf, -np.inf], np.nan), tmp, "cells")
    files.append(p)

    layers = cov_mod.audit_layers(study.network, study.cells, study.facilities, cfg)
    p = out / "analysis_inputs.gpkg"
    with atomic_path(p) as tmp:
        for name, gdf in layers.items():
            _to_gpkg(gdf.assign(data_status=cfg.data_status), tmp, name)
    files.append(p)

    fac = study.facilities.copy()
    fac["data_status"] = cfg.data_status
    p = out / "facilities.gpkg"
    with atomic_path(p) as tmp:
        _to_gpkg(fac, tmp, "facilities")
    files.append(p)

    supply = _supply_2sfca(out, study)
    if supply is not None:
        files.append(out / "supply_2sfca.csv")
    return files, supply


def _workbook_tables(study: StudyArea, table: pd.DataFrame, supply: pd.DataFrame | None) -> dict:
    """The workbook's first sheets: coverage, units, facilities, partition check, 2SFCA, layers."""
    fac = study.facilities.copy()
    fac["data_status"] = study.config.data_status
    units_tbl = study.units.drop(columns="geometry").copy()
    units_tbl["area_km2"] = study.units.area / 1e6
    return {
        "coverage_by_unit": _rounded(table),
        "units": units_tbl,
        "facilities": pd.DataFrame(fac.drop(columns="geometry")),
        "partition_check": study.partition_report,
        **({"supply_2sfca": supply} if supply is not None else {}),
        "layers": pd.DataFrame(study.provenance()),
    }


def chart_set(study: StudyArea, table: pd.DataFrame, results: pd.DataFrame, siting_out: dict | None, *,
              split: bool = True) -> list[dict]:
    """The charts of every plan circle, each drawn once as SVG and PNG, for the report and the
    workbook: dicts with ``circle``, ``kind``, ``key`` (``<circle>_<kind>``), ``caption``, ``svg``
    (text) and ``png`` (bytes). ``split``: the second half in a side task (no gain when another
    side task, e.g. the run's maps, already uses the second core)."""
    from accessibility import figures as fig_mod

    cfg = study.config
    figs = fig_mod.circle_figures(cfg, table, study.cells, results, siting_out or {})
    keys = list(figs)
    # the second half is drawn beside the first (accessibility._parallel; the same bytes inline)
    first, second = two_halves(_draw_charts, [figs[k] for k in keys], fork=split)
    drawn = first + (second or [])
    out = []
    for key, (svg, png) in zip(keys, drawn, strict=True):
        cid, kind = key.rsplit("_", 1)
        out.append({"circle": cid, "kind": kind, "key": key, "caption": fig_mod.chart_caption(cfg, cid, kind),
                    "svg": svg, "png": png})
    return out


def _draw_charts(figs: list, _start: int = 0) -> list[tuple[str, bytes]]:
    from accessibility import figures as fig_mod

    return [fig_mod.figure_svg_png(fig) for fig in figs]


def _write_charts(out: Path, study: StudyArea, table: pd.DataFrame, results: pd.DataFrame,
                  siting_out: dict, *, split: bool = True) -> tuple[list[dict], list[Path]]:
    """:func:`chart_set` written as ``figures/<circle>_<kind>.svg`` and ``.png``; returns the
    charts (for the report and the workbook) and the files."""
    from accessibility._io import write_bytes_atomic, write_text_atomic

    charts = chart_set(study, table, results, siting_out, split=split)
    files = []
    for c in charts:
        files.append(write_text_atomic(out / "figures" / f"{c['key']}.svg", c["svg"]))
        files.append(write_bytes_atomic(out / "figures" / f"{c['key']}.png", c["png"]))
    return charts, files


def _write_atlas(out: Path, study: StudyArea, table: pd.DataFrame, results: pd.DataFrame,
                 siting_out: dict) -> Path:
    from accessibility import atlas as atlas_mod

    return atlas_mod.write_atlas(out / "atlas.pdf", study, results, table, siting_out)


def write_workbook(path: Path, study: StudyArea, table: pd.DataFrame, siting_out: dict | None = None,
                   planned: pd.DataFrame | None = None, *, supply: pd.DataFrame | None = None,
                   charts: list[dict] | None = None) -> Path:
    """coverage.xlsx: the tables, then per plan circle its ranked sites, the exact best set and
    the fewest sites per unit, then the planned projects (a planner's one file to open).

    ``supply`` is the 2SFCA table (:func:`supply_by_unit`, computed here when omitted).
    """
    from accessibility import report as report_mod

    cfg = study.config
    if supply is None:
        supply = supply_by_unit(study)
    sheets = _workbook_tables(study, table, supply)
    for cid, res in (siting_out or {}).items():
        sheets[f"sites_{cid}"] = _rounded(res["curve"])
        if res.get("exact_sites") is not None:
            sheets[f"exact_{cid}"] = _rounded(res["exact_sites"])
        sheets[f"fewest_{cid}"] = _rounded(res["lscp_by_unit"])
    if planned is not None and len(planned):
        sheets["planned_projects"] = planned
    sheets = {k: (v.assign(data_status=cfg.data_status) if "data_status" not in v.columns else v)
              for k, v in sheets.items()}
    return report_mod.write_workbook(path, sheets, config=cfg,
                                     charts=[(c["caption"], c["png"]) for c in charts or []])


def _with_unit_names(df: pd.DataFrame, names: dict[str, str]) -> pd.DataFrame:
    """``df`` with ``unit_name`` right after ``unit_code`` (unchanged when it already has one)."""
    if "unit_name" in df.columns or "unit_code" not in df.columns:
        return df
    out = df.copy()
    out.insert(out.columns.get_loc("unit_code") + 1, "unit_name", out["unit_code"].astype(str).map(names))
    return out


def _formula_safe(col: pd.Series) -> pd.Series:
    """Text a spreadsheet would run as a formula (``=``, ``+``, ``-``, ``@`` first: names from OSM
    or inventories are untrusted) gets a leading apostrophe, shown as text by Excel and WPS."""
    def fix(v):
        return "'" + v if isinstance(v, str) and v[:1] in ("=", "+", "-", "@", "\t", "\r") else v
    return col.map(fix) if len(col) else col


def _rounded(table: pd.DataFrame) -> pd.DataFrame:
    """Round a table for people to read: shares to 6 decimals, people to 0.1, times to 0.01;
    text that a spreadsheet would run as a formula is neutralised (:func:`_formula_safe`).

    Infinite values (not reached within the search range) become empty cells, not the text 'inf'.
    """
    out = table.copy()
    for col in out.columns:
        if pd.api.types.is_object_dtype(out[col]) or pd.api.types.is_string_dtype(out[col]):
            out[col] = _formula_safe(out[col])
            continue
        if not pd.api.types.is_float_dtype(out[col]):
            continue
        out[col] = out[col].replace([np.inf, -np.inf], np.nan)
        if "share" in col or col in ("lon", "lat", "target", "gap"):  # degrees: 1e-6 is 0.1 m
            out[col] = out[col].round(6)
        elif "population" in col:
            out[col] = out[col].round(1)
        else:
            out[col] = out[col].round(2)
    return out


def _to_gpkg(gdf: gpd.GeoDataFrame, path: Path, layer: str) -> None:
    import os

    os.environ.setdefault("OGR_CURRENT_DATE", "2000-01-01T00:00:00Z")
    gdf = gdf.copy()
    for col in gdf.columns:
        if col != gdf.geometry.name and gdf[col].dtype == object:
            gdf[col] = gdf[col].map(lambda v: v if v is None or isinstance(v, str | int | float) else str(v))
    gdf.to_file(path, layer=layer, driver="GPKG", engine="pyogrio")


def circle_node_times(study: StudyArea, circles: list[str] | None = None) -> dict[str, np.ndarray]:
    """:func:`accessibility.maps.circle_node_times` of a study area with the configuration's rules."""
    from accessibility import maps as maps_mod
    from accessibility.rules import circle_rules

    return maps_mod.circle_node_times(study.network, study.facilities,
                                      circle_rules(study.config, circles or None))


def _write_maps(out, study, computed, *, basemap, embed_assets, progress, workers=None):
    """maps/overview.html, maps/unit_<code>.html and maps/whatif_<circle>.html; ``computed`` =
    (per-cell results, coverage table, siting outputs, per-node times).

    With ``workers`` > 1 (default: :func:`accessibility._parallel.workers` where forking is allowed,
    :func:`accessibility._parallel.fork_ok`)
    a forked process writes the what-if maps while this one draws the overview and the shared
    layers, then a second one shares the unit maps with this one: the same files, byte for byte,
    as ``workers=1``.
    """
    from accessibility import _parallel
    from accessibility import maps as maps_mod
    from accessibility.rules import circle_rules

    results, table, siting_out, node_times = computed
    cfg = study.config
    rules = circle_rules(cfg)
    mdir = out / "maps"
    mdir.mkdir(parents=True, exist_ok=True)
    parallel = _parallel.fork_ok(workers)
    helpers = []
    try:
        if parallel:  # the what-if pages need none of the layers below
            helpers.append(_parallel.side_task(_write_whatif_maps, mdir, study, results, siting_out,
                                               basemap=basemap, embed_assets=embed_assets))
        # facilities farther than max_snap_m from any street are left out of coverage (and warned
        # about): do not draw them as if they served anyone
        facilities = maps_mod.reachable_facilities(study.network, study.facilities, rules)
        # streets and stairs drawn from the network itself: the maps stay readable offline (no tiles)
        streets = maps_mod.street_lines(study.network)
        proposed = _proposed_sites(siting_out)
        m = maps_mod.overview_map(study.units, table, facilities, cfg, basemap=basemap,
                                  streets=streets[streets["kind"] == "major"], proposed_sites=proposed)
        files = [maps_mod.save_map(m, mdir / "overview.html", embed_assets=embed_assets)]
        codes = list(study.units["unit_code"])
        # the service areas (reached streets) once for the whole area, clipped per unit
        areas = maps_mod.service_areas(study.network, node_times, rules) if node_times else None

        def unit_page(code):
            m = maps_mod.unit_map(
                code, study.units, study.cells, results, facilities, cfg,
                net=study.network, node_times=node_times, proposed_sites=proposed, basemap=basemap,
                service_areas=areas, streets=streets,
            )
            return maps_mod.save_map(m, mdir / f"unit_{code}.html", embed_assets=embed_assets)

        if parallel:  # two processes take the next unit map in turn until none is left
            take = _parallel.Counter()
            helpers.append(_parallel.side_task(take.run, unit_page, codes))
            mine = take.run(unit_page, codes, progress=progress, desc="unit maps")
            theirs = helpers[-1].result()
            by_code = {**mine, **theirs}
            files += [by_code[c] for c in codes]
            files += helpers[0].result()
        else:
            it = codes
            if progress:
                from tqdm.auto import tqdm

                it = tqdm(codes, desc="unit maps", leave=False)
            files += [unit_page(code) for code in it]
            files += _write_whatif_maps(mdir, study, results, siting_out, basemap=basemap,
                                        embed_assets=embed_assets)
    finally:
        for h in helpers:
            h.cancel()  # only those still running: after an error here
    return files


def _proposed_sites(siting_out: dict | None) -> gpd.GeoDataFrame | None:
    """Every circle's ranked new sites with their ``circle`` (None when there are none)."""
    parts = []
    for cid, res in (siting_out or {}).items():
        sites = res.get("sites")
        if sites is not None and len(sites):
            parts.append(sites.assign(circle=cid))
    return gpd.GeoDataFrame(pd.concat(parts, ignore_index=True), crs=parts[0].crs) if parts else None


def _write_whatif_maps(mdir: Path, study: StudyArea, results: pd.DataFrame, siting_out: dict, *,
                       basemap: str, embed_assets: bool) -> list[Path]:
    """``maps/whatif_<circle>.html`` per plan circle: add and remove sites in the browser."""
    from accessibility.whatif import WhatIf
    from accessibility.whatif_map import write_whatif_map

    cfg = study.config
    cands = candidate_sites_for(study)
    # the run's counts as baseline: no second search for them
    wi = WhatIf(study.cells, study.facilities, study.network, cfg, units=study.units, candidates=cands,
                baseline=results)
    files = []
    for c in cfg.circles.values():
        if not c.plan:
            continue
        curve = (siting_out or {}).get(c.id, {}).get("curve")
        ranked = curve["site_id"].astype(str).tolist()[:10] if curve is not None else []
        files.append(write_whatif_map(mdir / f"whatif_{c.id}.html", wi, c.id, candidates=cands,
                                      ranked_site_ids=ranked, basemap=basemap, embed_assets=embed_assets))
    return files


def candidate_sites_for(study: StudyArea) -> gpd.GeoDataFrame:
    """Candidate sites of a study area as its configuration asks (spacing, exclusion zones, parcels)."""
    from accessibility import siting as siting_mod

    cfg = study.config
    exclude = None
    if cfg.siting.exclude:
        exclude = gpd.GeoDataFrame(
            pd.concat([gpd.read_file(p).to_crs(cfg.crs) for p in cfg.siting.exclude], ignore_index=True),
            geometry="geometry", crs=cfg.crs)
    parcels = gpd.read_file(cfg.siting.parcels).to_crs(cfg.crs) if cfg.siting.parcels else None
    return siting_mod.candidate_sites(study.network, study.units, spacing_m=cfg.siting.candidate_spacing_m,
                                      exclude=exclude, parcels=parcels, cells=study.cells)


def write_siting(out: Path, study: StudyArea, results: pd.DataFrame, *, k_max=None,
                 progress: bool = False) -> dict[str, dict]:
    """Siting of every plan circle (``siting:`` of the configuration; ``siting.units`` restricts it
    to those units) written into ``out``: ``siting_<circle>.csv``/``_exact.csv``/``_lscp_by_unit.csv``
    and ``.geojson``. Returns ``circle id -> site_circle(...)`` output."""
    from accessibility import siting as siting_mod
    from accessibility._io import atomic_path
    from accessibility.rules import circle_rules

    cfg = study.config
    cands = candidate_sites_for(study)
    cells, units = study.cells, study.units
    if cfg.siting.units:  # one unit's (or a few units') own sweep: its demand, its candidate sites
        known = set(study.units["unit_code"].astype(str))
        unknown = [u for u in cfg.siting.units if u not in known]
        if unknown:
            raise DataError(f"{cfg.config_path}: siting.units {', '.join(unknown)} not in the units layer; "
                            f"use codes of: {', '.join(sorted(known))}")
        keep = set(cfg.siting.units)
        cells = cells[cells["unit_code"].astype(str).isin(keep)]
        units = units[units["unit_code"].astype(str).isin(keep)]
        cands = cands[cands["unit_code"].astype(str).isin(keep)]
    names = study.unit_names()
    # the all-units row is the district, or the selected units together
    sel = ({"district_code": "selected:" + "+".join(cfg.siting.units),
            "district_name": selected_units_label(cfg.language)}
           if cfg.siting.units else {})
    options = siting_mod.SitingOptions.from_config(cfg, k_max=k_max or None, progress=progress, **sel)
    rules = circle_rules(cfg)
    plan = [c.id for c in cfg.circles.values() if c.plan]
    res_cells = results.loc[cells.index]

    def solve(circle_ids, *, quiet: bool = False):
        opts = dataclasses.replace(options, progress=False) if quiet else options
        return {cid: siting_mod.site_circle(cells, res_cells, study.network, cands, rules[cid], options=opts,
                                            units=units, facilities=study.facilities) for cid in circle_ids}

    solved = _in_two_lanes(solve, plan, rules, study.network)
    res_all = {}
    for cid in plan:
        c = cfg.circles[cid]
        res = solved[cid]
        # planners read names, not codes: the unit name right after its code, once, for the CSVs,
        # the workbook and the report alike
        res["curve"] = _with_unit_names(res["curve"], names)
        if res.get("exact_sites") is not None:
            res["exact_sites"] = _with_unit_names(res["exact_sites"], names)
        p = out / f"siting_{c.id}.csv"
        with atomic_path(p) as tmp:
            _rounded(res["curve"].assign(circle=c.id, data_status=cfg.data_status)).to_csv(
                tmp, index=False, encoding="utf-8-sig")
        if res.get("exact_sites") is not None:
            with atomic_path(out / f"siting_{c.id}_exact.csv") as tmp:
                _rounded(res["exact_sites"].assign(circle=c.id, data_status=cfg.data_status)).to_csv(
                    tmp, index=False, encoding="utf-8-sig")
        p = out / f"siting_{c.id}_lscp_by_unit.csv"
        with atomic_path(p) as tmp:
            _rounded(res["lscp_by_unit"]).assign(circle=c.id, data_status=cfg.data_status).to_csv(
                tmp, index=False, encoding="utf-8-sig")
        sites = res["sites"]
        if sites is not None and len(sites):
            p = out / f"siting_{c.id}.geojson"
            with atomic_path(p) as tmp:
                # a layer name, else GDAL stores the temporary file's name in the GeoJSON and two
                # identical runs differ
                sites.to_crs(4326).assign(circle=c.id, data_status=cfg.data_status).to_file(
                    tmp, driver="GeoJSON", layer=f"siting_{c.id}")
        res_all[c.id] = res
    return res_all


def _in_two_lanes(solve, circle_ids: list[str], rules: dict, net) -> dict:
    """``solve(ids)`` for the circles in two lanes: the circles sharing the most common walking rule
    (their coverage sets are computed once: culture and fitness on the demo) here, the others in
    a side task (:func:`accessibility._parallel.side_task`), at the same time.

    Every circle's answer is computed exactly as alone (deterministic solver limits, no shared
    random state), so it does not depend on the lanes. The side lane is a forked process only
    while no HiGHS solve has run in this process (a forked copy of HiGHS's thread pool can hang);
    otherwise it runs here, after the first lane. The side lane's coverage sets come back with its
    answers, so the what-if maps do not search them again.
    """
    from accessibility import siting as siting_mod

    fork = not siting_mod.solver_started()
    quiet = fork and fork_ok()  # a forked lane draws no progress bar: two on one line garble both

    def side_lane(ids):
        return solve(ids, quiet=quiet), siting_mod.remembered_coverage_sets(net)

    lanes: dict = {}
    for cid in circle_ids:
        r = rules[cid]
        lanes.setdefault((r.weight, r.threshold, r.walk_speed_mps, r.max_snap_m), []).append(cid)
    groups = sorted(lanes.values(), key=len, reverse=True)
    here, there = groups[0] if groups else [], [cid for g in groups[1:] for cid in g]
    side = side_task(side_lane, there, fork=fork) if there else None
    try:
        got = solve(here)
        if side is not None:
            theirs, sets = side.result()
            got |= theirs
            siting_mod.remember_coverage_sets(net, sets)
    finally:
        if side is not None:
            side.cancel()
    return {cid: got[cid] for cid in circle_ids}


def supply_by_unit(study: StudyArea, *, per: float = 1000.0) -> pd.DataFrame | None:
    """Two-step floating catchment (2SFCA) capacity per 1,000 people in reach, per unit and circle.

    Only facilities with a known capacity take part (e.g. elderly-care beds from an inventory);
    circles with no capacity at all are left out. ``None`` when no facility has a capacity.
    """
    from accessibility.coverage import cell_facility_reach
    from accessibility.rules import circle_rules
    from accessibility.siting import two_step_fca

    cfg = study.config
    fac = study.facilities
    cap = pd.to_numeric(fac["capacity"], errors="coerce")
    rows = []
    names = study.unit_names()
    for rule in circle_rules(cfg).values():
        c = rule.circle
        sel = rule.facility_mask(fac)
        known = sel & cap.notna().to_numpy() & (cap.fillna(0) > 0).to_numpy()
        if not known.any():
            continue
        R = cell_facility_reach(study.cells, fac[known], study.network, rule)
        _, by_unit = two_step_fca(study.cells[c.weight_column].to_numpy(dtype=float), cap[known].to_numpy(),
                                  R, unit_labels=study.cells["unit_code"].astype(str).to_numpy(), per=per)
        dem = study.cells[c.weight_column].to_numpy(dtype=float)
        total_ratio = float(cap[known].sum() / dem.sum() * per) if dem.sum() > 0 else np.nan
        by_unit = pd.concat([by_unit, pd.DataFrame({"unit_code": [cfg.district_code], "demand": [dem.sum()],
                                                     "ratio": [np.nan]})], ignore_index=True)
        # district row: capacity actually in reach of someone, per 1,000 of the circle's demand
        reached = np.asarray(R.sum(axis=0)).ravel() > 0
        by_unit.loc[by_unit.index[-1], "ratio"] = float(cap[known].to_numpy()[reached].sum() / dem.sum() * per)
        rows.append(by_unit.assign(
            circle=c.id, circle_label=primary(c.label_zh, c.label_en, cfg.language),
            unit_name=by_unit["unit_code"].map(names).fillna(cfg.district_name),
            facilities_with_capacity=int(known.sum()), facilities_in_circle=int(sel.sum()),
            capacity_total=float(cap[known].sum()), capacity_per_1000_overall=total_ratio,
        ))
    if not rows:
        return None
    out = pd.concat(rows, ignore_index=True).rename(columns={"ratio": "capacity_per_1000_in_reach"})
    out["data_status"] = cfg.data_status
    cols = ["circle", "circle_label", "unit_code", "unit_name", "demand", "capacity_per_1000_in_reach",
            "capacity_per_1000_overall", "capacity_total", "facilities_with_capacity", "facilities_in_circle",
            "data_status"]
    return out[cols]


def _supply_2sfca(out: Path, study: StudyArea) -> pd.DataFrame | None:
    from accessibility._io import atomic_path

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AccessibilityWarning)
        table = supply_by_unit(study)
    if table is None:
        return None
    p = out / "supply_2sfca.csv"
    with atomic_path(p) as tmp:
        _rounded(table).to_csv(tmp, index=False, encoding="utf-8-sig")
    return table


def read_planned_projects(path: str | Path, crs: str) -> gpd.GeoDataFrame:
    """Read a planned-projects file: CSV with ``name, category, lon, lat`` (WGS-84) and ``circle``,
    or a point layer (GeoJSON, GeoPackage) with ``name`` and ``circle`` properties.

    ``circle`` names the circle the project serves (several joined with ``;``). The what-if map's
    exports (CSV and GeoJSON) are read as they are.
    """
    path = Path(path)
    if path.suffix.lower() in (".geojson", ".json", ".gpkg", ".shp"):
        return _read_planned_layer(path, crs)
    try:
        df = pd.read_csv(path, encoding="utf-8-sig")
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot read the planned-projects CSV ({exc})") from exc
    required = ["name", "lon", "lat", "circle"]
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {', '.join(missing)} (found: {', '.join(map(str, df.columns))}); "
                        "fix: give name, category, lon, lat (WGS-84) and circle for every project")
    lon = pd.to_numeric(df["lon"], errors="coerce")
    lat = pd.to_numeric(df["lat"], errors="coerce")
    bad = df.index[lon.isna() | lat.isna() | ~lon.between(-180, 180) | ~lat.between(-90, 90)]
    if len(bad):
        rows = ", ".join(str(i + 2) for i in bad[:20])
        raise DataError(f"{path}: fields 'lon'/'lat' are not valid WGS-84 degrees on line(s) {rows}; "
                        "fix: decimal degrees, longitude first")
    gdf = gpd.GeoDataFrame(df.rename(columns={"circle": "circles"}),
                           geometry=gpd.points_from_xy(lon, lat), crs=4326)
    return gdf.to_crs(crs)


def _read_planned_layer(path: Path, crs: str) -> gpd.GeoDataFrame:
    try:
        gdf = gpd.read_file(path)
    except Exception as exc:  # pyogrio raises its own error types for unreadable files
        raise DataError(f"{path}: cannot read the planned-projects layer ({exc})") from exc
    problems = []
    missing = [c for c in ("name", "circle") if c not in gdf.columns]
    if missing:
        problems.append(f"missing field(s) {', '.join(missing)}: give every project a name and the circle "
                        "it serves")
    if gdf.crs is None:
        problems.append("the layer has no CRS: save it with one (GeoJSON is WGS-84 by definition)")
    if len(gdf) and not (gdf.geometry.geom_type == "Point").all():
        problems.append("every project must be a Point")
    if problems:
        raise DataError(f"{path}: " + "; ".join(problems))
    return gdf.rename(columns={"circle": "circles"}).to_crs(crs)


def _planned_projects(out: Path, study: StudyArea, results: pd.DataFrame) -> pd.DataFrame:
    """Coverage before and after the plan's named projects, per circle and unit."""
    from accessibility import siting as siting_mod
    from accessibility._io import atomic_path
    from accessibility.rules import circle_rules

    cfg = study.config
    planned = read_planned_projects(cfg.siting.planned_projects, cfg.crs)
    table = siting_mod.planned_before_after(study.cells, results, study.network, planned,
                                            circle_rules(cfg).values(), cfg, units=study.units)
    p = out / "scenario_planned_projects.csv"
    with atomic_path(p) as tmp:
        _rounded(table).to_csv(tmp, index=False, encoding="utf-8-sig")
    return table


def _proof_text(lscp: pd.DataFrame, cfg) -> list[str]:
    """Each LSCP row's proof label (siting.proof_label's words) in the area's language."""
    from accessibility.labels import pick

    lang = getattr(cfg, "language", "bilingual")
    return [pick(zh, en, lang) for zh, en in zip(lscp["proof_zh"], lscp["proof_en"], strict=True)]


def siting_report_tables(cfg, siting_out: dict | None, planned: pd.DataFrame | None = None) -> dict[str, pd.DataFrame]:
    """The report's siting tables, keyed by their heading: per plan circle the ranking, the best set
    of K sites (its heading says whether it is proven optimal or how far from the bound) and the
    fewest sites per unit (with gap and proof columns), then the planned projects."""
    from accessibility.labels import pick

    siting_tables: dict[str, pd.DataFrame] = {}
    for cid, r in (siting_out or {}).items():
        c = cfg.circles[cid]
        curve = r["curve"]
        keep = [k for k in ["rank", "site_id", "unit_code", "unit_name", "lon", "lat", "added_covered_population",
                            "cumulative_covered_population", "cumulative_coverage_share"] if k in curve.columns]
        siting_tables[cid] = curve[keep]
        ex, summ = r.get("exact_sites"), r.get("summary", {})
        if ex is not None and len(ex):
            k = len(ex)
            g_k = float(curve["added_covered_population"].head(k).sum())
            proof_zh = summ.get("exact_proof_zh", "")
            proof_en = summ.get("exact_proof_en", "")
            siting_tables[
                f"{c.label_zh}：{k} 个新增选址的最佳组合（MILP：{proof_zh}），覆盖 {summ.get('exact_covered_k_max', 0):,.0f} 人；"
                f"贪心前 {k} 个覆盖 {g_k:,.0f} 人 / {c.label_en}: the best set of {k} new sites (MILP: {proof_en}): "
                f"{summ.get('exact_covered_k_max', 0):,.0f} more people covered, against {g_k:,.0f} for the "
                f"first {k} of the ranking; greedy_rank = the site's place in the ranking (blank: not in "
                f"its first {k})"] = ex[[k_ for k_ in ["order", "site_id", "unit_code", "unit_name", "lon", "lat",
                                                      "added_covered_population", "greedy_rank", "gap"]
                                         if k_ in ex.columns]]
        elif summ.get("exact_status") is not None:  # solved, but the best set known is the ranking's own
            k = int(summ.get("k_max", 0))
            siting_tables[
                f"{c.label_zh}：{k} 个新增选址的最佳组合即贪心前 {k} 个（{summ.get('exact_proof_zh', '')}） / "
                f"{c.label_en}: the best set of {k} new sites known is the ranking's first {k} "
                f"({summ.get('exact_proof_en', '')})"] = pd.DataFrame({
                    "sites": [k], "added_covered_population": [summ.get("exact_covered_k_max")],
                    "bound_population": [summ.get("exact_bound_k_max")], "gap": [summ.get("exact_gap_k_max")],
                    "proof": [pick(summ.get("exact_proof_zh", ""), summ.get("exact_proof_en", ""),
                                   getattr(cfg, "language", "bilingual"))]})
        lscp = r["lscp_by_unit"]
        lscp = lscp.assign(proof=_proof_text(lscp, cfg))
        keep = [k for k in ["unit_code", "unit_name", "population", "covered_now", "covered_share_now",
                            "target", "sites_needed", "reachable_max_share", "capped", "method", "gap", "proof"]
                if k in lscp.columns]
        siting_tables[f"{c.label_zh}：各街镇达标所需最少新增设施 / {c.label_en}: fewest new sites "
                      "each unit needs to reach its target (LSCP). Each unit alone, then all together: the "
                      "all-units row needs fewer than the sum, as a site serves residents of several units; "
                      "where the target is out of reach (capped), the count reaches the reachable maximum"
                      ] = _rounded(lscp[keep])
    if planned is not None and len(planned):
        heading = "规划项目建成前后覆盖率 / Coverage before and after the plan's named projects"
        problems = sorted({p for cell in planned.get("site_problems", pd.Series([], dtype=str)).fillna("")
                           for p in str(cell).split(" | ") if p})
        if problems:
            heading += (" — 注意 / note: 以下项目位置无法如实服务 / these projects cannot serve where they are: "
                        + " | ".join(problems))
        siting_tables[heading] = planned.drop(columns=["data_status", "site_problems"], errors="ignore")
    return siting_tables


def write_report(path: Path, study: StudyArea, table: pd.DataFrame, results: pd.DataFrame,
                 siting_out: dict | None = None, *, maps: bool = False,
                 planned: pd.DataFrame | None = None, charts: list[dict] | None = None) -> Path:
    """The HTML report (``report.html``): per circle the summary, charts, worst places and siting
    tables, per unit its section (with a link to ``maps/unit_<code>.html`` when ``maps``),
    parameters and provenance. ``charts`` come from :func:`_write_charts` (none when omitted)."""
    from accessibility import report as report_mod

    cfg = study.config
    unit_maps = {code: f"maps/unit_{code}.html" for code in study.units["unit_code"]} if maps else {}
    params = {
        "profiles": {k: {"flat_speed_mps": p.flat_speed_mps, "allow_steps": p.allow_steps}
                     for k, p in cfg.profiles.items()},
        "terrain": cfg.terrain.__dict__,
        "circles": {c.id: {"threshold": c.threshold_label, "mode": c.mode, "profile": c.profile,
                           "population": c.population, "target_share": c.target_share,
                           "categories": ", ".join(c.categories)} for c in cfg.circles.values()},
        "max_snap_m": cfg.max_snap_m,
        "crs": cfg.crs,
        "scenario": cfg.scenario or "none",
        "data checks (warnings)": "; ".join(dict.fromkeys(study.warnings)) or "none",
    }
    siting_tables = siting_report_tables(cfg, siting_out, planned) or None
    from accessibility.coverage import worst_places

    places = {c.id: worst_places(study.cells, results, study.units, c)
              for c in cfg.circles.values() if c.plan and f"{c.id}_covered" in results}
    return report_mod.write_report(
        path, config=cfg, coverage=table, unit_maps=unit_maps, places=places,
        overview_href="maps/overview.html" if maps else None, siting=siting_tables,
        provenance=study.provenance(), parameters=params,
        charts={c["key"]: (c["circle"], c["caption"], c["svg"]) for c in charts or []},
        whatif_maps={c.id: f"maps/whatif_{c.id}.html" for c in cfg.circles.values() if c.plan} if maps else None,
    )


# names used before issue 10 (kept for callers outside the package)
_as_config = config_for
_inputs_fingerprint = inputs_fingerprint
_run_siting = write_siting
