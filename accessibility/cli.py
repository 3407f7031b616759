"""The ``accessibility`` command.

    accessibility init      helsinki --osm city.osm.pbf --bbox W,S,E,N   # a new area's configuration
    accessibility demo-data config/areas/jiangbei.yaml     # write the synthetic demo layers (offline)
    accessibility summary   config/areas/jiangbei.yaml     # load, validate and summarise the study area
    accessibility run       config/areas/jiangbei.yaml     # coverage tables, siting, maps, report
    accessibility fetch     config/areas/jiangbei.yaml     # online: OSM network and POIs via Overpass
    accessibility batch     config/areas/jiangbei.yaml --scenarios scenarios.yaml   # many runs on Dask
    accessibility whatif    config/areas/jiangbei.yaml --circle eldercare_15min --add 106.57,29.60
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
import warnings
from pathlib import Path

from accessibility import AccessibilityError, AccessibilityWarning, ConfigError, __version__

DEFAULT_AREA = "config/areas/jiangbei.yaml"


def _add_area(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", nargs="?", default=DEFAULT_AREA,
                   help=f"study-area configuration file (default: {DEFAULT_AREA})")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="accessibility",
        description=(
            "Public-service accessibility analyser: which streets and towns meet the plan's walking-"
            "distance promises (15-minute culture, fitness and elderly-care circles), who is left out, "
            "and where new facilities should go."
        ),
        epilog="Quick start (offline): accessibility demo-data && accessibility run",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log every step")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    _add_init(sub)

    p = sub.add_parser("demo-data", help="write the synthetic demo layers of an area (deterministic, offline)",
                       description="Generate the synthetic demo layers named in the area configuration "
                       "(street network as OSM PBF, population and DEM GeoTIFFs, unit polygons, inventories). "
                       "Every file name says 'synthetic_demo'. Existing files are kept unless --force.")
    _add_area(p)
    p.add_argument("--force", action="store_true", help="rewrite files that already exist")
    p.add_argument("--seed", type=int, default=20211, help="random seed (default 20211)")

    p = sub.add_parser("summary", help="load, validate and summarise a study area",
                       description="Load every layer through the real loaders, validate it, and print units, "
                       "population, facilities per circle, network size and which layers are real or synthetic.")
    _add_area(p)

    p = sub.add_parser("run", help="compute coverage, siting, maps and the report",
                       description="Run the whole analysis and write data/processed/<run_id>/: "
                       "coverage_by_unit.csv, coverage.xlsx, cells_results.gpkg, analysis_inputs.gpkg, "
                       "siting_<circle>.csv/.geojson, maps/overview.html, maps/unit_<code>.html, report.html, "
                       "figures/<circle>_<chart>.svg/.png, atlas.pdf.")
    _add_area(p)
    p.add_argument("--out", type=Path, default=None, help="output folder (default data/processed/<run_id>)")
    p.add_argument("--basemap", choices=["osm", "none", "amap"], default="osm",
                   help="map tiles: OpenStreetMap, none (offline), or Gaode/Amap (layers shifted to GCJ-02)")
    p.add_argument("--no-maps", action="store_true", help="skip the HTML maps")
    p.add_argument("--no-siting", action="store_true", help="skip the siting models")
    p.add_argument("--no-atlas", action="store_true", help="skip the printable PDF atlas (atlas.pdf)")
    p.add_argument("--k-max", type=int, default=None, help="largest number of new sites in the MCLP curve")
    p.add_argument("--cdn-assets", action="store_true",
                   help="load Leaflet from its CDN instead of embedding it (smaller files, needs internet)")

    p = sub.add_parser("fetch", help="online: download the area's OSM network and POIs via Overpass",
                       description="Download the walking network and facility POIs inside the area's boundary "
                       "through osmnx/Overpass, cache the answers under data/raw/<area>/overpass_cache/ and write "
                       "them as data/raw/<area>/downloads/<area>_overpass.osm.pbf for offline runs. Optional: "
                       "download URLs for a population raster (WorldPop) and a DEM (SRTM).")
    _add_area(p)
    p.add_argument("--overpass-url", default=None, help="Overpass API endpoint (default: osmnx's)")
    p.add_argument("--url", action="append", default=[], metavar="URL",
                   help="also download this file (e.g. a WorldPop or SRTM GeoTIFF) into data/raw/<area>/downloads/")

    p = sub.add_parser("batch", help="run many scenarios or areas on Dask distributed",
                       description="Run several scenarios (YAML mapping name -> configuration overrides) or "
                       "several area configurations as independent tasks on a local Dask cluster or an existing "
                       "scheduler. Failed tasks are reported and retried; completed ones are skipped on re-runs.")
    p.add_argument("configs", nargs="+", help="one or more area configuration files")
    p.add_argument("--scenarios", type=Path, default=None, help="YAML file: scenario name -> overrides")
    p.add_argument("--per-unit-siting", action="store_true",
                   help="one task per street/town: its own siting sweep (its uncovered demand, its candidate "
                   "sites), written to data/processed/<run_id>/unit_siting/<unit code>/ with a summary table")
    p.add_argument("--units", default=None, help="with --per-unit-siting: comma list of unit codes (default: all)")
    p.add_argument("--k", type=int, default=None,
                   help="with --per-unit-siting: new sites ranked per unit (default: siting.max_new_sites)")
    p.add_argument("--scheduler", default=None, help="address of an existing Dask scheduler (tcp://host:8786)")
    p.add_argument("--workers", type=int, default=2, help="local cluster workers (default 2)")
    p.add_argument("--retries", type=int, default=2)
    p.add_argument("--worker-timeout", type=float, default=300.0, metavar="SECONDS",
                   help="stop with an error when no Dask worker is connected for this long (default 300)")

    p = sub.add_parser("whatif", help="what if we build here (or close that)? coverage before and after",
                       description="Coverage per street/town and for the district before and after adding new "
                       "sites (--add LON,LAT or a candidate site id such as cand_00012) and removing existing "
                       "facilities (--remove FAC_ID, as in facilities.gpkg), with the run's own rule. Sites on "
                       "a fragment cut off from the street network or too far from any street are reported.")
    _add_area(p)
    p.add_argument("--circle", action="append", default=None, metavar="CIRCLE",
                   help="circle id (repeat for several; default: the plan circles)")
    p.add_argument("--add", action="append", default=[], metavar="LON,LAT",
                   help="a new site: longitude,latitude (see --coords) or a candidate site id (repeatable)")
    p.add_argument("--remove", action="append", default=[], metavar="FAC_ID",
                   help="an existing facility to take away, by its fac_id (repeatable)")
    p.add_argument("--coords", choices=["wgs84", "gcj02", "bd09"], default="wgs84",
                   help="system of the --add coordinates (Amap/Tencent: gcj02, Baidu: bd09; default wgs84)")
    p.add_argument("--out", type=Path, default=None, metavar="FILE.csv",
                   help="write the before/after table (one row per unit and circle plus the district row)")
    return parser


def _bbox(text: str) -> tuple[float, float, float, float]:
    try:
        parts = tuple(float(v) for v in text.split(","))
    except ValueError:
        parts = ()
    if len(parts) != 4:
        raise argparse.ArgumentTypeError(f"{text!r}: write WEST,SOUTH,EAST,NORTH in degrees, e.g. "
                                         "24.936,60.165,24.953,60.178")
    return parts  # type: ignore[return-value]


def _add_init(sub) -> None:
    p = sub.add_parser(
        "init", help="write the configuration of a new study area from what you have",
        description="Write config/areas/NAME.yaml (validated), a copy of the facility categories and the "
        "derived layers under data/raw/NAME/ from an OSM extract (or Overpass when online), a boundary, "
        "units, population and an optional DEM; picks the UTM zone; says what is missing and how to add "
        "it. Without population, residents are estimated from residential buildings or streets and every "
        "output says ESTIMATE. The configuration runs as it is: accessibility run config/areas/NAME.yaml")
    p.add_argument("name", help="area id (letters, digits, _ or -): names the files and the run folder")
    p.add_argument("--osm", type=Path, default=None,
                   help="OSM extract (.osm.pbf/.osm/.osm.bz2); without it: Overpass inside the boundary (online)")
    g = p.add_argument_group("boundary (one of; default: the extent of the OSM extract)")
    g.add_argument("--boundary", type=Path, default=None, help="vector file of the area's outline (any CRS)")
    g.add_argument("--boundary-relation", type=int, default=None, metavar="ID",
                   help="OSM administrative relation id in the extract")
    g.add_argument("--bbox", type=_bbox, default=None, metavar="W,S,E,N", help="longitude/latitude box")
    g = p.add_argument_group("units (one of; default: the whole area is one unit)")
    g.add_argument("--units", type=Path, default=None, help="unit polygons (code and name fields)")
    g.add_argument("--units-code-field", default=None, help="field of the unit code (default: tried)")
    g.add_argument("--units-name-field", default=None, help="field of the unit name (default: tried)")
    g.add_argument("--units-admin-level", default=None, metavar="N", help="OSM admin_level of the units")
    g.add_argument("--units-grid-m", type=float, default=None, metavar="M",
                   help="square analysis zones of M metres (not administrative units)")
    g = p.add_argument_group("population (default: an ESTIMATE from residential buildings or streets)")
    g.add_argument("--population", type=Path, default=None, help="population GeoTIFF (e.g. WorldPop)")
    g.add_argument("--census", type=Path, default=None,
                   help="census CSV: unit_code, population[, share_60plus] (totals per unit)")
    g.add_argument("--population-total", type=float, default=None, help="total residents of the estimate")
    g.add_argument("--share-60plus", type=float, default=None, help="share aged 60+ (default 0.2, assumed)")
    p.add_argument("--dem", type=Path, default=None, help="elevation GeoTIFF (e.g. SRTM 30 m)")
    p.add_argument("--language", choices=["zh", "en", "bilingual"], default="bilingual",
                   help="labels of maps, report, workbook and console (default bilingual)")
    p.add_argument("--title", default="", help="English title (default: from the name)")
    p.add_argument("--title-zh", default="", help="Chinese title (default: the English one)")
    p.add_argument("--like", type=Path, default=None,
                   help="copy circles, profiles and terrain from this area (default: the plan's, jiangbei.yaml)")
    p.add_argument("--root", type=Path, default=Path("."), help="project folder (default: here)")
    p.add_argument("--force", action="store_true", help="overwrite an existing configuration")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    warnings.simplefilter("default")
    warnings.showwarning = _show_warning
    try:
        return _COMMANDS[args.command](args)
    except AccessibilityError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: previous outputs are left as they were", file=sys.stderr)
        return 130
    except OSError as exc:  # a file system failure no check caught: one line, never a traceback
        from accessibility._io import output_error

        err = output_error(exc, getattr(exc, "filename", None) or ".")
        print(f"error: {err or exc}", file=sys.stderr)
        return 2


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ARG001
    """Warnings for people: one line, no source line; the package's own ones without a class name."""
    kind = "warning" if issubclass(category, AccessibilityWarning) else f"warning ({category.__name__})"
    print(f"{kind}: {message}", file=file or sys.stderr)


def _cmd_init(args) -> int:
    from accessibility.setup_area import DEFAULT_TEMPLATE, AreaSpec, init_area

    spec = AreaSpec(
        name=args.name, root=args.root, osm=args.osm, boundary=args.boundary,
        boundary_relation=args.boundary_relation, bbox=args.bbox, units=args.units,
        units_code_field=args.units_code_field, units_name_field=args.units_name_field,
        units_admin_level=args.units_admin_level, units_grid_m=args.units_grid_m,
        population=args.population, census=args.census, dem=args.dem,
        population_total=args.population_total, share_60plus=args.share_60plus,
        language=args.language, title_en=args.title, title_zh=args.title_zh,
        template=args.like or DEFAULT_TEMPLATE, force=args.force,
    )
    res = init_area(spec)
    root = Path(args.root).resolve()
    print(f"Study area '{args.name}' ({res.crs}, UTM zone from the boundary); files written:")
    for f in res.files:
        print(f"  {f.relative_to(root) if f.is_relative_to(root) else f}")
    print("Missing, and how to add it:")
    for m in res.missing:
        print(f"  - {m}")
    cfg = res.config_path.relative_to(root) if res.config_path.is_relative_to(root) else res.config_path
    print(f"Next: accessibility run {cfg}")
    return 0


def _cmd_demo_data(args) -> int:
    from accessibility.config import load_area
    from accessibility.demo import make_demo_data

    cfg = load_area(args.config, check_files=False)
    t0 = time.perf_counter()
    written = make_demo_data(cfg, seed=args.seed, force=args.force, progress=not args.quiet)
    print(f"Synthetic demo layers for '{cfg.name}' (SYNTHETIC DEMO - not real data), "
          f"{time.perf_counter() - t0:.1f} s:")
    for name, path in written.items():
        print(f"  {name:<22} {path}")
    return 0


def _cmd_summary(args) -> int:
    from accessibility.pipeline import load_study_area, summary_text

    study = load_study_area(args.config, progress=not args.quiet)
    print(summary_text(study))
    return 0


def _cmd_run(args) -> int:
    from accessibility.coverage import unit_summary_text
    from accessibility.pipeline import run, summary_text

    t0 = time.perf_counter()
    res = run(
        args.config,
        output_dir=args.out,
        progress=not args.quiet,
        maps=not args.no_maps,
        siting=not args.no_siting,
        basemap=args.basemap,
        embed_assets=not args.cdn_assets,
        k_max=args.k_max,
        atlas=not args.no_atlas,
    )
    print(summary_text(res.study))
    print()
    print(unit_summary_text(res.coverage, res.study.config))
    if res.siting:
        print()
        print("Where to build (siting_<circle>.csv: best k new sites; siting_<circle>_lscp_by_unit.csv: "
              "fewest sites per unit):")
        for cid, r in res.siting.items():
            print("  " + _siting_line(res.study.config.circles[cid], r.get("summary", {}),
                                      res.study.config.language))
    print()
    print("Timings: " + ", ".join(f"{k} {v:.1f}s" for k, v in res.timings.items()))
    print(f"Outputs ({len(res.files)} files, {time.perf_counter() - t0:.0f} s) in {res.output_dir}:")
    for f in res.files:
        if f.parent == res.output_dir:
            print(f"  {f.name}")
    print(f"  maps/ ({sum(1 for f in res.files if f.parent.name == 'maps')} HTML maps)")
    print(f"  figures/ ({sum(1 for f in res.files if f.parent.name == 'figures')} chart files, SVG and PNG)")
    return 0


def _siting_line(circle, s: dict, language: str = "bilingual") -> str:
    """One readable sentence per circle from site_circle's summary."""
    from accessibility.labels import pick

    who = "residents aged 60+" if circle.population == "60plus" else "residents"
    k = s.get("k_max", "?")
    label = pick(circle.label_zh, circle.label_en, language)
    parts = [f"{label}: {s.get('uncovered_demand', float('nan')):,.0f} {who} "
             f"not covered now ({s.get('share_now', float('nan')):.1%} covered)"]
    greedy = s.get("greedy_covered_k_max")
    if greedy is not None:
        txt = f"the best {k} new sites would cover {greedy:,.0f} of them"
        exact = s.get("exact_covered_k_max")
        if exact is not None and exact == exact:
            txt += (f" (ranked greedily; the best set of {k} sites covers {exact:,.0f}: "
                    f"{s.get('exact_proof_en', '')})")
        parts.append(txt)
    need = s.get("sites_needed_all_units")
    if need is not None:
        txt = f"reaching the target in every unit needs {need} new sites ({s.get('sites_needed_proof_en', '')})"
        if s.get("capped"):
            txt += f" (capped: {s.get('unreachable_by_candidates', 0):,.0f} {who} no candidate site can reach)"
        parts.append(txt)
    return "; ".join(parts)


def _cmd_fetch(args) -> int:
    from accessibility import fetch

    written = fetch.fetch_area(args.config, overpass_url=args.overpass_url, urls=args.url)
    for name, path in written.items():
        print(f"  {name:<22} {path}")
    print("Point the configuration's sources at these files (kind: osm_file) to run offline.")
    return 0


def _batch_unit_siting(args) -> int:
    import pandas as pd

    from accessibility.batch import (
        batch_report,
        run_batch,
        run_unit_siting_task,
        unit_siting_overview,
        unit_siting_tasks,
        write_unit_siting_summary,
    )
    from accessibility.config import load_area

    if args.scenarios is not None:
        print("error: --per-unit-siting and --scenarios do not combine: run them as two batches", file=sys.stderr)
        return 2
    units = [u.strip() for u in args.units.split(",") if u.strip()] if args.units else None
    parts = []
    status = 0
    for cfg_path in args.configs:
        tasks = unit_siting_tasks(cfg_path, units, k_max=args.k)
        table = run_batch(tasks, scheduler=args.scheduler, n_workers=args.workers, retries=args.retries,
                          progress=not args.quiet, func=run_unit_siting_task, worker_timeout_s=args.worker_timeout)
        print(table.drop(columns="error").to_string(index=False))
        print(batch_report(table))
        status |= int((table["status"] == "failed").any())
        # the summary covers every finished unit folder (earlier batches too), never just this call's
        root = Path(tasks[0]["output_dir"]).parent
        summary = write_unit_siting_summary(root, load_area(cfg_path, check_files=False))
        if len(summary):
            print(f"(summary of {summary['unit_code'].nunique()} unit(s): {root / 'unit_siting_summary.csv'})")
            parts.append(summary[summary["unit_code"].isin([t["task_id"] for t in tasks])])
        else:
            print(f"no finished unit sweep under {root}: summary not written")
    show = unit_siting_overview(pd.concat(parts, ignore_index=True)) if parts else None
    if show is not None and len(show):
        print()
        print("Per street/town, with candidate sites inside the unit only: coverage now, after its own best "
              "k new sites, fewest sites to reach the target (the district run may also use sites across "
              "the border):")
        print(show.to_string(index=False))
    return status


def _read_scenarios(path: Path, configs) -> dict | None:
    """The scenario file, every scenario checked against every area before any task starts
    (a typo must not be retried three times on the workers). None after printing the problems."""
    import yaml

    from accessibility.config import load_area

    try:
        scen = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError as exc:
        print(f"error: scenario file {path}: {exc.strerror or exc}", file=sys.stderr)
        return None
    except yaml.YAMLError as exc:
        print(f"error: scenario file {path} is not valid YAML: {exc}", file=sys.stderr)
        return None
    if not isinstance(scen, dict):
        print(f"error: scenario file {path} must map scenario names to overrides (name: {{profiles: ...}}), "
              f"not a {type(scen).__name__}", file=sys.stderr)
        return None
    problems = []
    for cfg in configs:
        for name, overrides in scen.items():
            if overrides is not None and not isinstance(overrides, dict):
                problems.append(f"scenario '{name}': overrides must be a mapping, not {type(overrides).__name__}")
                continue
            try:
                load_area(cfg, check_files=False, overrides=overrides or None)
            except ConfigError as exc:
                problems.append(f"scenario '{name}' (file {path}) on {cfg}: {exc}")
    if problems:
        print("error: " + "\n".join(problems), file=sys.stderr)
        return None
    return scen


def _cmd_batch(args) -> int:
    from accessibility.batch import batch_report, run_batch, scenario_tasks, write_scenario_summary

    if not args.verbose:  # distributed logs every worker start and stop at INFO
        for name in ("distributed", "distributed.nanny", "distributed.scheduler", "distributed.core",
                     "distributed.worker", "distributed.http.proxy"):
            logging.getLogger(name).setLevel(logging.WARNING)

    if args.per_unit_siting:
        return _batch_unit_siting(args)
    if args.units is not None or args.k is not None:
        print("error: --units and --k belong to --per-unit-siting", file=sys.stderr)
        return 2
    tasks = []
    if args.scenarios is not None:
        scen = _read_scenarios(args.scenarios, args.configs)
        if scen is None:
            return 2
        for cfg in args.configs:
            tasks += scenario_tasks(cfg, scen)
    else:
        from accessibility.config import load_area

        for cfg in args.configs:
            a = load_area(cfg)
            tasks.append({"task_id": a.run_id, "config": str(cfg), "scenario": None,
                          "output_dir": str(a.output_dir)})
    table = run_batch(tasks, scheduler=args.scheduler, n_workers=args.workers, retries=args.retries,
                      progress=not args.quiet, worker_timeout_s=args.worker_timeout)
    print(table.drop(columns="error").to_string(index=False))
    for row in table[table["status"] == "failed"].itertuples():
        print(f"task {row.task_id} failed:\n{row.error}", file=sys.stderr)
    print(batch_report(table))
    # one comparison table: district coverage share per circle (rows) and task (columns)
    summary, path = write_scenario_summary(table, tasks)
    if path is not None:
        print()
        print("District coverage share per circle and task:")
        print(summary.map(lambda v: f"{v:.1%}").to_string())
        print(f"(written to {path}; tasks of earlier batches are kept beside these)")
    return 0 if (table["status"] != "failed").all() else 1


def _parse_site(text: str):
    """``LON,LAT`` -> (lon, lat); anything without a comma is a candidate site id."""
    from accessibility._errors import DataError

    if "," not in text:
        return text.strip()
    parts = text.split(",")
    try:
        if len(parts) != 2:
            raise ValueError
        return float(parts[0]), float(parts[1])
    except ValueError:
        raise DataError(f"--add {text!r}: give LON,LAT in degrees (e.g. --add 106.57,29.60) or a candidate "
                        "site id (e.g. --add cand_00012)") from None


def _cmd_whatif(args) -> int:
    from accessibility import whatif
    from accessibility.area import open_area

    area = open_area(args.config, progress=not args.quiet)
    sites = [_parse_site(a) for a in args.add]
    t0 = time.perf_counter()
    res = area.whatif(args.circle, add=sites, remove=args.remove, coords=args.coords)
    print(whatif.result_text(res, area.config))
    print(f"(answered in {time.perf_counter() - t0:.2f} s after loading the area)")
    if args.out is not None:
        res.to_csv(args.out)
        print(f"Before/after table written to {args.out}")
    return 0


_COMMANDS = {
    "init": _cmd_init,
    "demo-data": _cmd_demo_data,
    "summary": _cmd_summary,
    "run": _cmd_run,
    "fetch": _cmd_fetch,
    "batch": _cmd_batch,
    "whatif": _cmd_whatif,
}


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
