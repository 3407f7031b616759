"""The what-if map: one offline HTML page per circle where a planner adds and removes sites.

``maps/whatif_<circle>.html`` shows the unit coverage choropleth, a table of units (coverage,
gap in people, meets target) and the district total. Clicking the map adds a new site at the
nearest candidate site; clicking an existing facility or an added site removes it; everything
updates in the page, with no server: the page holds, compactly, the cells' demand and unit, the
current count of facilities reaching each cell and the sparse coverage set of every candidate and
every existing facility (run-length encoded), and applies the rule of :mod:`accessibility.whatif`
(``covered = count >= min_reachable``; the gap of :func:`accessibility.coverage.gap_population`).
The chosen sites export as CSV or GeoJSON that ``siting.planned_projects`` of ``accessibility run``
reads as it is (:func:`accessibility.pipeline.read_planned_projects`).

Every text from the data (unit and facility names come from OSM and inventories: untrusted) is
put into the page as JSON with ``<``, ``>`` and ``&`` escaped, and shown with ``textContent`` or
HTML-escaped tooltips; Leaflet is inlined from ``accessibility/_assets``.
"""

from __future__ import annotations

import functools
import json
import logging
from pathlib import Path

import numpy as np

from accessibility._io import write_text_atomic
from accessibility.labels import pick

log = logging.getLogger(__name__)

__all__ = ["encode_runs", "whatif_map_data", "whatif_map_html", "write_whatif_map"]

TEMPLATE = Path(__file__).parent / "templates" / "whatif_map.html.j2"
_LEAFLET_JS = "https://unpkg.com/leaflet@1.9.4/dist/leaflet.js"
_LEAFLET_CSS = "https://unpkg.com/leaflet@1.9.4/dist/leaflet.css"
_DEG = 7  # decimals of display coordinates (~1 cm)


def encode_runs(rows) -> list[int]:
    """Sorted, distinct cell positions as runs: ``[gap, length, gap, length, ...]``.

    Each run starts ``gap`` positions after the end of the previous one (the first after 0).

    Examples
    --------
    >>> encode_runs([2, 3, 4, 9, 10])  # 2..4, then 9..10 (four positions after 4)
    [2, 3, 4, 2]
    """
    r = np.unique(np.asarray(rows, dtype=np.int64))
    if r.size == 0:
        return []
    brk = np.flatnonzero(np.diff(r) != 1) + 1
    starts = r[np.r_[0, brk]]
    ends = r[np.r_[brk - 1, r.size - 1]]
    prev = np.r_[0, ends[:-1] + 1]
    return np.column_stack([starts - prev, ends - starts + 1]).ravel().tolist()


def _column_runs(M, new_pos: np.ndarray) -> list[list[int]]:
    """:func:`encode_runs` of every column of a sparse matrix (rows renumbered by ``new_pos``,
    rows mapped to -1 dropped), vectorised over all columns at once."""
    A = M.tocsc().copy()
    A.sort_indices()
    col = np.repeat(np.arange(A.shape[1]), np.diff(A.indptr))
    r = new_pos[A.indices]
    keep = r >= 0
    r, col = r[keep], col[keep]
    if r.size == 0:
        return [[] for _ in range(A.shape[1])]
    first = np.ones(r.size, dtype=bool)
    first[1:] = (col[1:] != col[:-1]) | (r[1:] != r[:-1] + 1)
    last = np.ones(r.size, dtype=bool)
    last[:-1] = first[1:]
    starts, ends, run_col = r[first], r[last], col[first]
    new_col = np.ones(starts.size, dtype=bool)
    new_col[1:] = run_col[1:] != run_col[:-1]
    prev_end = np.r_[0, ends[:-1] + 1]
    gaps = np.where(new_col, starts, starts - prev_end)
    flat = np.column_stack([gaps, ends - starts + 1]).ravel().tolist()
    bounds = np.searchsorted(run_col, np.arange(A.shape[1] + 1)) * 2
    return [flat[bounds[j]:bounds[j + 1]] for j in range(A.shape[1])]


def _labels(language: str) -> dict[str, str]:
    texts = {
        "title": ("假如在这里建设？", "What if we build here?"),
        "help": ("点击地图：在最近的候选点新增设施；点击现有设施或新增点：移除（再次点击恢复）。",
                 "Click the map: add a site at the nearest candidate; click an existing facility or an "
                 "added site: remove it (click again to restore)."),
        "unit": ("街镇", "unit"), "coverage": ("覆盖率", "coverage"), "gap": ("距目标缺口（人）", "gap (people)"),
        "meets": ("达标", "meets target"), "yes": ("是", "yes"), "no": ("否", "no"),
        "district": ("合计", "whole area"), "before": ("现状", "now"), "after": ("方案", "with changes"),
        "gain": ("新增覆盖（人）", "newly covered (people)"),
        "top": ("载入排名前列的选址", "load the top ranked sites"), "reset": ("重置", "reset"),
        "csv": ("导出 CSV", "export CSV"), "geojson": ("导出 GeoJSON", "export GeoJSON"),
        "added": ("新增点", "added sites"), "removed": ("已移除设施", "removed facilities"),
        "none": ("无", "none"), "candidate": ("候选点", "candidate site"), "facility": ("现有设施", "facility"),
        "far": ("附近没有候选点", "no candidate site near here"),
        "export_note": ("导出文件只含新增点（可直接作为 siting.planned_projects 输入）；移除的设施不在其中。",
                        "The export holds the added sites only (usable as siting.planned_projects as it is); "
                        "removed facilities are not in it."),
        "demand_all": ("常住人口", "residents"), "demand_60": ("60岁及以上老人", "residents aged 60+"),
    }
    return {k: pick(zh, en, language) for k, (zh, en) in texts.items()}


def _json_for_script(obj) -> str:
    """JSON safe inside ``<script type="application/json">``: no tag or entity can start in it."""
    text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026") \
        .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def _display_lonlat(x, y, crs, basemap: str):
    """WGS-84 lon/lat of projected points, and the display coordinates (GCJ-02 under Amap tiles)."""
    from accessibility.coords import wgs84_to_gcj02
    from accessibility.whatif import _to_lonlat

    lon, lat = (np.asarray(a, dtype=float) for a in _to_lonlat(x, y, crs))
    if basemap == "amap":
        dlon, dlat = (np.asarray(a, dtype=float) for a in wgs84_to_gcj02(lon, lat))
    else:
        dlon, dlat = lon, lat
    return lon, lat, np.round(dlon, _DEG), np.round(dlat, _DEG)


def _target_bins(target: float, language: str) -> list:
    """The maps' classes against the target (:data:`accessibility.maps.TARGET_CLASSES`) as
    ``[lo, hi, colour, label]`` bins of the coverage share for this circle's target (hi None: open).

    Examples
    --------
    >>> [b[:2] for b in _target_bins(1.0, "en")]
    [[1.0, None], [0.95, 1.0], [0.8, 0.95], [-1.0, 0.8]]
    """
    from accessibility import maps as maps_mod

    bins, hi = [], None
    for _id, lo, colour, zh, en in maps_mod.TARGET_CLASSES:
        low = round(target + lo, 12) if np.isfinite(lo) else -1.0
        bins.append([low, hi, colour, pick(zh, en, language)])
        hi = low
    return bins


def _units_geojson(units, crs, basemap: str, codes: list[str]) -> dict:
    from accessibility.coords import transform_geometry, wgs84_to_gcj02

    u = units.to_crs(crs)
    geoms = u.geometry.simplify(10.0, preserve_topology=True).to_crs(4326)
    feats = []
    pos = {c: i for i, c in enumerate(codes)}
    for code, g in zip(u["unit_code"].astype(str), geoms, strict=True):
        if basemap == "amap":
            g = transform_geometry(g, wgs84_to_gcj02)
        import shapely

        g = shapely.set_precision(g, 10.0 ** -5)
        feats.append({"type": "Feature", "properties": {"i": pos.get(code, -1)},
                      "geometry": json.loads(shapely.to_geojson(g))})
    return {"type": "FeatureCollection", "features": feats}


def _streets_geojson(net, crs, basemap: str) -> dict | None:
    """Main streets as context (the page stays readable without background tiles)."""
    import shapely

    from accessibility.coords import transform_geometry, wgs84_to_gcj02
    from accessibility.maps import street_lines

    lines = street_lines(net, kinds=("major",))
    if len(lines) == 0:
        return None
    g = lines.geometry.simplify(8.0).set_crs(crs, allow_override=True).to_crs(4326).iloc[0]
    if basemap == "amap":
        g = transform_geometry(g, wgs84_to_gcj02)
    g = shapely.set_precision(g, 10.0 ** -5)
    return {"type": "Feature", "properties": {}, "geometry": json.loads(shapely.to_geojson(g))}


def whatif_map_data(wi, circle_id: str, *, candidates, ranked_site_ids=(), basemap: str = "none",
                    streets: bool = True) -> dict:
    """Everything the what-if page needs for one circle, JSON-ready.

    Parameters
    ----------
    wi : accessibility.whatif.WhatIf
        The study area's what-if state (its rule, cells, facilities and counts).
    circle_id : str
    candidates : geopandas.GeoDataFrame
        Candidate sites (``site_id``, ``node``, ``x``, ``y``): where a click adds a site.
    ranked_site_ids : sequence of str
        The greedy ranking's sites (``siting_<circle>.csv``), loaded by the page's button.
    basemap : {"none", "osm", "amap"}
        Background tiles; with ``amap`` every layer is shown in GCJ-02 (exports stay WGS-84).
    streets : bool, default True
        Draw the main streets of the network.

    Returns
    -------
    dict

    Examples
    --------
    >>> from accessibility.demo import synthetic_city, synthetic_config
    >>> from accessibility.siting import candidate_sites
    >>> from accessibility.whatif import WhatIf
    >>> net, cells, fac, units = synthetic_city(2000, seed=1)
    >>> cands = candidate_sites(net, units, spacing_m=300)
    >>> wi = WhatIf(cells, fac, net, synthetic_config(), units=units)
    >>> data = whatif_map_data(wi, "eldercare_15min", candidates=cands)
    >>> len(data["cand"]["id"]) == len(cands)
    True
    """
    from accessibility import maps as maps_mod
    from accessibility import siting as siting_mod

    b = wi.base(circle_id)
    c = b.circle
    cfg = wi.config
    keep = np.flatnonzero(b.demand > 0)  # cells of zero demand change no sum
    new_pos = np.full(b.demand.size, -1, dtype=np.int64)
    new_pos[keep] = np.arange(keep.size)

    crs = wi.net.crs
    F = wi._reach(b)
    fac = wi.facilities.set_index(wi.facilities["fac_id"].astype(str)).loc[list(b.fac_ids)]
    fx, fy = fac.geometry.x.to_numpy(), fac.geometry.y.to_numpy()
    flon, flat, fdlon, fdlat = _display_lonlat(fx, fy, crs, basemap)
    fac_cells = _column_runs(F, new_pos)
    A = siting_mod.coverage_sets(wi.net, wi.cells, candidates, b.rule).tocsc()
    clon, clat, cdlon, cdlat = _display_lonlat(candidates["x"], candidates["y"], crs, basemap)
    cand_cells = _column_runs(A, new_pos)
    n_units = len(wi._unit_codes) - 1
    language = getattr(cfg, "language", "bilingual")
    synthetic = bool(getattr(cfg, "is_synthetic", False))
    demand_label = _labels(language)["demand_60" if c.weight_column == "pop_60plus" else "demand_all"]
    return {
        "meta": {
            "circle": c.id, "circle_label": pick(c.label_zh, c.label_en, language),
            "threshold": c.threshold_label, "target_share": float(c.target_share),
            "min_reachable": int(c.min_reachable), "category": c.categories[0] if c.categories else "",
            "title": pick(getattr(cfg, "title_zh", ""), getattr(cfg, "title_en", ""), language),
            "data_status": str(getattr(cfg, "data_status", "")), "synthetic": synthetic,
            "basemap": basemap, "demand_label": demand_label,
            "district": pick(wi._unit_names[-1], wi._unit_names_en[-1], language),
        },
        "labels": _labels(language),
        "classes": _target_bins(float(c.target_share), language),
        "no_data_colour": maps_mod.NO_DATA_COLOUR,
        "units": [{"code": wi._unit_codes[i], "name": pick(wi._unit_names[i], wi._unit_names_en[i], language)}
                  for i in range(n_units)],
        "units_geo": _units_geojson(wi._units_frame, crs, basemap, wi._unit_codes[:-1])
        if wi._units_frame is not None else None,
        "streets": _streets_geojson(wi.net, crs, basemap) if streets else None,
        "w": b.demand[keep].tolist(),
        "unit": wi._group[keep].tolist(),
        "count0": b.count[keep].tolist(),
        "fac": {"id": list(map(str, b.fac_ids)), "name": fac["name"].astype(str).tolist()
                if "name" in fac.columns else list(map(str, b.fac_ids)),
                "lon": flon.tolist(), "lat": flat.tolist(), "dlon": fdlon.tolist(), "dlat": fdlat.tolist(),
                "cells": fac_cells},
        "cand": {"id": candidates["site_id"].astype(str).tolist(), "lon": clon.tolist(), "lat": clat.tolist(),
                 "dlon": cdlon.tolist(), "dlat": cdlat.tolist(), "cells": cand_cells},
        "ranked": [str(s) for s in ranked_site_ids],
    }


@functools.lru_cache(maxsize=1)
def _page_template():
    """The page's Jinja template, compiled once per process (autoescaped)."""
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    env = Environment(loader=FileSystemLoader(str(TEMPLATE.parent)),
                      autoescape=select_autoescape(enabled_extensions=("html", "j2"), default=True))
    return env.get_template(TEMPLATE.name)


def whatif_map_html(data: dict, *, embed_assets: bool = True) -> str:
    """The page for :func:`whatif_map_data`'s ``data`` (Leaflet inlined when ``embed_assets``).

    Examples
    --------
    >>> from accessibility.demo import synthetic_city, synthetic_config
    >>> from accessibility.siting import candidate_sites
    >>> from accessibility.whatif import WhatIf
    >>> net, cells, fac, units = synthetic_city(2000, seed=1)
    >>> wi = WhatIf(cells, fac, net, synthetic_config(), units=units)
    >>> data = whatif_map_data(wi, "eldercare_15min", candidates=candidate_sites(net, units, spacing_m=300))
    >>> whatif_map_html(data, embed_assets=False).startswith("<!DOCTYPE html>")
    True
    """
    meta = data["meta"]
    title = f"{data['labels']['title']} — {meta['circle_label']}"
    if meta["synthetic"]:
        title = "SYNTHETIC DEMO — " + title
    text = _page_template().render(
        page_title=title, meta=meta, labels=data["labels"], data_json=_json_for_script(data),
        leaflet_js=_LEAFLET_JS, leaflet_css=_LEAFLET_CSS)
    if embed_assets:
        from accessibility.maps import embed_map_assets

        text = embed_map_assets(text)
    return text


def write_whatif_map(path, wi, circle_id: str, *, candidates, ranked_site_ids=(), basemap: str = "none",
                     embed_assets: bool = True) -> Path:
    """Write ``maps/whatif_<circle>.html`` (atomically); returns the path.

    Parameters
    ----------
    path : str or Path
    wi : accessibility.whatif.WhatIf
    circle_id : str
    candidates : geopandas.GeoDataFrame
    ranked_site_ids : sequence of str
    basemap : {"none", "osm", "amap"}
    embed_assets : bool, default True
        Inline Leaflet so the page works offline.

    Examples
    --------
    >>> import tempfile, warnings
    >>> from accessibility._errors import AccessibilityWarning
    >>> from accessibility.demo import synthetic_city, synthetic_config
    >>> from accessibility.siting import candidate_sites
    >>> from accessibility.whatif import WhatIf
    >>> net, cells, fac, units = synthetic_city(2000, seed=1)
    >>> cands = candidate_sites(net, units, spacing_m=300)
    >>> wi = WhatIf(cells, fac, net, synthetic_config(), units=units, candidates=cands)
    >>> with tempfile.TemporaryDirectory() as d, warnings.catch_warnings():
    ...     _ = warnings.simplefilter("ignore", AccessibilityWarning)
    ...     p = write_whatif_map(f"{d}/whatif_eldercare_15min.html", wi, "eldercare_15min",
    ...                          candidates=cands)
    ...     "whatifState" in p.read_text(encoding="utf-8")
    True
    """
    data = whatif_map_data(wi, circle_id, candidates=candidates, ranked_site_ids=ranked_site_ids,
                           basemap=basemap)
    out = write_text_atomic(path, whatif_map_html(data, embed_assets=embed_assets))
    log.info("what-if map %s: %.1f MB", out, out.stat().st_size / 1e6)
    return out

