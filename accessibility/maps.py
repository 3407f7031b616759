"""Folium maps for planners: a district overview and one map per street/town.

Maps are drawn in WGS-84 (EPSG:4326). With the Amap (Gaode) basemap every vector layer is shifted
to GCJ-02 for display only, because Amap tiles are drawn in GCJ-02.

Everything that comes from OSM or inventories (names, categories, sources) is HTML-escaped before
it goes into a tooltip or popup. Maps are kept light: geometries are simplified in the projected
CRS, reprojected, rounded to 5 decimals (about 1 m), and cells are merged into one polygon per
time class instead of one square per cell.

``save_map(..., embed_assets=True)`` replaces the CDN links folium emits by the inlined vendored
copies in ``accessibility/_assets`` (see its README), so maps work offline.
"""

from __future__ import annotations

import base64
import html
import json
import logging
import re
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import folium
import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from branca.element import Element, MacroElement
from folium.plugins import MarkerCluster
from jinja2 import Template

from accessibility._errors import AccessibilityWarning, DataError
from accessibility._io import write_text_atomic
from accessibility.labels import district_names, pick

__all__ = ["circle_node_times", "overview_map", "reachable_facilities", "save_map", "service_areas",
           "street_lines", "unit_map"]

logger = logging.getLogger(__name__)

ASSETS_DIR = Path(__file__).parent / "_assets"

BASEMAPS = ("osm", "none", "amap")
AMAP_TILES = "https://webrd0{s}.is.autonavi.com/appmaptile?lang=zh_cn&size=1&scale=1&style=8&x={x}&y={y}&z={z}"
AMAP_ATTRIBUTION = "© 高德地图 AutoNavi"
NO_BASEMAP_BACKGROUND = "#e8e8e8"
SYNTHETIC_NOTE = "SYNTHETIC DEMO 合成示例数据 — not real data"

# Coverage-share classes (lower bound inclusive, upper bound exclusive; the last is exactly 100 %).
COVERAGE_CLASSES: tuple[tuple[float, float, str, str], ...] = (
    (0.0, 0.60, "#d7191c", "< 60 %"),
    (0.60, 0.80, "#fdae61", "60–80 %"),
    (0.80, 0.95, "#fee08b", "80–95 %"),
    (0.95, 1.0, "#a6d96a", "95–<100 %"),
    (1.0, np.inf, "#1a9641", "100 %"),
)
NO_DATA_COLOUR = "#bdbdbd"

# Travel-time classes of cells: thirds of the threshold, then "not covered".
TIME_CLASS_COLOURS = ("#1a9850", "#91cf60", "#fee08b")
UNCOVERED_COLOUR = "#762a83"

CATEGORY_PALETTE = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf", "#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173", "#3182bd",
    "#e6550d", "#31a354", "#756bb1", "#636363",
)  # fmt: skip

_PRECISION_DEG = 5


# ---------------------------------------------------------------------------------------------
# public API


def overview_map(  # noqa: PLR0913  (the layers of the overview, keyword-only; StudyArea.overview_map is the short entry)
    units: gpd.GeoDataFrame,
    coverage: pd.DataFrame,
    facilities: gpd.GeoDataFrame,
    config,
    *,
    circles: Iterable[str] | None = None,
    basemap: str = "osm",
    title: str | None = None,
    simplify_m: float = 10.0,
    streets: gpd.GeoDataFrame | None = None,
    proposed_sites: gpd.GeoDataFrame | None = None,
) -> folium.Map:
    """District overview: coverage share per unit, one switchable layer per circle.

    Parameters
    ----------
    units : geopandas.GeoDataFrame
        Unit polygons in the projected CRS (``unit_code``, ``unit_name``, ``unit_name_en``).
    coverage : pandas.DataFrame
        The ``coverage_by_unit`` table (one row per unit and circle, plus the district row).
    facilities : geopandas.GeoDataFrame
        Facilities in the projected CRS (``fac_id``, ``name``, ``category``, ``circles``,
        ``source``, ``capacity``).
    config : accessibility.config.AreaConfig
        The study area.
    circles : iterable of str, optional
        Circle ids to draw (default: every circle of ``config`` present in ``coverage``).
        The first is shown, the others can be switched on in the layer control.
    basemap : {"osm", "none", "amap"}
        Background tiles; ``"none"`` works offline; ``"amap"`` shifts vector layers to GCJ-02.
    title : str, optional
        Title box text (default: the area's Chinese and English titles).
    simplify_m : float
        Simplification tolerance in metres applied before reprojection.
    streets : geopandas.GeoDataFrame, optional
        Context lines from :func:`street_lines` (e.g. the ``major`` kind only), drawn above the
        fills as a switchable layer: the map stays readable without background tiles.
    proposed_sites : geopandas.GeoDataFrame, optional
        Ranked new sites (``rank``, ``site_id``, ``added_covered_population``, ``circle``), e.g.
        the ``sites`` of :func:`accessibility.siting.site_circle`: drawn as numbered stars in
        their circle's layer, so the whole district's proposals are seen at once.

    Returns
    -------
    folium.Map
    """
    _check_basemap(basemap)
    _require_columns(units, ("unit_code", "geometry"), "units")
    _require_columns(coverage, ("unit_code", "circle", "coverage_share"), "coverage")
    rules = _resolve_circles(config, circles, available=coverage["circle"].astype(str).unique())
    circle_ids = list(rules)

    shown_units = units[["unit_code", "geometry"]].copy()
    for col in ("unit_name", "unit_name_en"):
        shown_units[col] = units[col] if col in units.columns else ""
    shown_units["unit_code"] = shown_units["unit_code"].astype(str)
    units_ll = _display_frame(shown_units, config, basemap, simplify_m=simplify_m)

    m = _base_map(units_ll, basemap)
    cov = coverage.copy()
    cov["unit_code"] = cov["unit_code"].astype(str)
    cov["circle"] = cov["circle"].astype(str)

    fac_ll = _facilities_display(facilities, config, basemap)
    colours = _category_colours(config, fac_ll)

    for i, cid in enumerate(circle_ids):
        circle = rules[cid].circle
        group = folium.FeatureGroup(name=_circle_label(circle), overlay=True, show=(i == 0))
        rows = cov[cov["circle"] == cid].drop_duplicates("unit_code").set_index("unit_code")
        rows = rows.drop(columns=[c for c in rows.columns if c in units_ll.columns])
        feats = units_ll.join(rows, on="unit_code")
        fills = [_coverage_colour(s) for s in feats["coverage_share"]]
        tips = [_unit_tooltip(r, circle) for _, r in feats.iterrows()]
        layer = gpd.GeoDataFrame(
            {"fill": fills, "tip": tips}, geometry=feats.geometry.values, crs="EPSG:4326"
        )
        folium.GeoJson(
            _feature_collection(layer),
            name=f"{cid} units",
            style_function=_fill_style,
            highlight_function=_highlight_style,
            tooltip=folium.GeoJsonTooltip(fields=["tip"], labels=False),
            control=False,
        ).add_to(group)
        _add_facilities(group, fac_ll, cid, colours)
        if proposed_sites is not None and len(proposed_sites):
            _add_proposed(group, proposed_sites, cid, config, basemap)
        group.add_to(m)

    street_kinds = _add_streets(m, streets, config, basemap, simplify_m=simplify_m)
    _add_unit_labels(m, shown_units, basemap)
    folium.LayerControl(collapsed=False).add_to(m)
    title_text = title or f"{config.title_zh} · {config.title_en}"
    _set_page_title(m, f"{title_text} — 覆盖率总览 coverage overview", config)
    district = _district_lines(cov, circle_ids, config)
    _add_title_box(m, title_text, "覆盖率 coverage (population share) · " + district, config)
    first = _coverage_legend_rows() + _street_legend_rows(street_kinds)
    if proposed_sites is not None and len(proposed_sites):
        first += ('<div><span class="acc-star" style="font-size:14px;line-height:14px">★</span> '
                  "建议新址（按新增覆盖排序）proposed site, numbered by rank</div>")
    _add_legend(m, first, _category_legend_rows(config, colours, fac_ll), config)
    return m


def _set_page_title(m, text: str, config) -> None:
    """The browser tab's title (escaped), with SYNTHETIC DEMO first when any layer is synthetic."""
    prefix = "[SYNTHETIC DEMO 合成示例] " if config.is_synthetic else ""
    if getattr(config, "estimated_layers", None):
        prefix += "[ESTIMATE] "
    m.get_root().title = _esc(prefix + str(text))


def _add_unit_labels(m, units, basemap: str) -> None:
    """Permanent bilingual unit names at a point inside each unit (not clickable)."""
    pts = units[["unit_name", "unit_name_en"]].copy()
    pts = gpd.GeoDataFrame(pts, geometry=units.geometry.representative_point(), crs=units.crs)
    ll = pts.to_crs("EPSG:4326")
    geoms = np.asarray(ll.geometry.values)
    if basemap == "amap":
        geoms = _to_gcj02(geoms)
    # own pane above the facility markers and clusters (markerPane is 600), never catching clicks
    folium.map.CustomPane("acc-labels", z_index=650, pointer_events=False).add_to(m)
    group = folium.FeatureGroup(name="街镇名称 unit names", overlay=True, show=True, control=False)
    for (_, r), g in zip(ll.iterrows(), geoms, strict=True):
        html = (f'<div class="acc-label">{_esc(r["unit_name"])}<br>'
                f'<span>{_esc(r["unit_name_en"])}</span></div>')
        folium.Marker(
            location=[round(g.y, 5), round(g.x, 5)],
            icon=folium.DivIcon(html=html, icon_size=(110, 30), icon_anchor=(55, 15),
                                class_name="acc-label-icon"),
            interactive=False,
            pane="acc-labels",
        ).add_to(group)
    group.add_to(m)


def unit_map(  # noqa: PLR0913  (the layers and display settings of a unit map, keyword-only; StudyArea.unit_map is the short entry)
    unit_code: str,
    units: gpd.GeoDataFrame,
    cells: gpd.GeoDataFrame,
    results: pd.DataFrame,
    facilities: gpd.GeoDataFrame,
    config,
    *,
    net=None,
    node_times: Mapping[str, np.ndarray] | None = None,
    circles: Iterable[str] | None = None,
    proposed_sites: gpd.GeoDataFrame | None = None,
    basemap: str = "osm",
    cell_size_m: float | None = None,
    service_buffer_m: float = 30.0,
    simplify_m: float = 5.0,
    service_areas: Mapping[str, Any] | None = None,
    streets: gpd.GeoDataFrame | None = None,
) -> folium.Map:
    """One street/town: cells coloured by time (or distance) to the nearest facility.

    Parameters
    ----------
    unit_code : str
        Official code of the unit to draw.
    units, cells, facilities : geopandas.GeoDataFrame
        DESIGN.md contracts, projected CRS.
    results : pandas.DataFrame
        Per-cell results indexed like ``cells`` (``<circle>_t``, ``<circle>_covered``).
    config : accessibility.config.AreaConfig
    net : WalkNetwork, optional
        With ``node_times``, draws each circle's service area from the reached network.
    node_times : mapping of circle id to numpy.ndarray, optional
        Time (or distance) from the nearest facility to every network node, in the circle's
        threshold units, positional like ``net.nodes``; ``inf`` where not reached.
    circles : iterable of str, optional
        Circle ids (default: every circle of ``config`` with a ``<circle>_t`` column in ``results``).
    proposed_sites : geopandas.GeoDataFrame, optional
        Proposed new sites (``rank``, ``site_id``, ``added_covered_population``, ``circle``).
    basemap : {"osm", "none", "amap"}
    cell_size_m : float, optional
        Side of a population cell; inferred from the cell centres when omitted (100 m fallback).
    service_buffer_m : float
        Half-width of the corridor drawn around reached network edges.
    simplify_m : float
        Simplification tolerance in metres (projected, before reprojection).
    service_areas : mapping of circle id to geometry, optional
        From :func:`service_areas` (whole area, computed once for many unit maps); clipped to the
        unit's surroundings. Takes the place of ``net``/``node_times`` for the service areas.
    streets : geopandas.GeoDataFrame, optional
        Context lines from :func:`street_lines` (streets, paths, stairs), clipped to the unit's
        surroundings and drawn above the fills: readable without background tiles.

    Returns
    -------
    folium.Map
    """
    _check_basemap(basemap)
    _require_columns(units, ("unit_code", "geometry"), "units")
    _require_columns(cells, ("unit_code", "geometry"), "cells")
    # the network, its service areas and streets are in the area's CRS: bring the other layers
    # there (a units layer kept in another CRS would silently clip every street away)
    units, cells = _in_crs(units, config), _in_crs(cells, config)
    if proposed_sites is not None and len(proposed_sites):
        proposed_sites = _in_crs(proposed_sites, config)
    codes = units["unit_code"].astype(str)
    if str(unit_code) not in set(codes):
        raise DataError(
            f"unit_map: unit_code {unit_code!r} is not in the units table (field 'unit_code'); "
            f"fix: use one of {', '.join(sorted(codes)[:20])}"
        )
    available = [c for c in config.circles if f"{c}_t" in results.columns]
    rules = _resolve_circles(config, circles, available=available)
    circle_ids = list(rules)
    missing = [f"{c}_t" for c in circle_ids if f"{c}_t" not in results.columns]
    if missing:
        raise DataError(
            f"unit_map: results lack column(s) {', '.join(missing)}; fix: pass the per-cell "
            "results of accessibility.coverage.cell_results for these circles"
        )

    unit = units.loc[codes == str(unit_code)]
    unit_row = unit.iloc[0]
    unit_geom = shapely.union_all(unit.geometry.values)
    crs = units.crs

    in_unit = (cells["unit_code"].astype(str) == str(unit_code)).to_numpy(dtype=bool)
    if "population" in cells.columns:
        # near-empty cells (forest, water: < 0.5 residents) would paint gaps where nobody lives
        pop = pd.to_numeric(cells["population"], errors="coerce").fillna(0).to_numpy(dtype=float)
        in_unit = in_unit & (pop >= 0.5)
    ucells = cells.loc[in_unit]
    ures = results.loc[ucells.index]
    size = (cell_size_m, cell_size_m) if cell_size_m else _infer_cell_size(cells)

    outline = gpd.GeoDataFrame({"tip": [_unit_title_html(unit_row)]}, geometry=[unit_geom], crs=crs)
    outline_ll = _display_frame(outline, config, basemap, simplify_m=simplify_m)
    m = _base_map(outline_ll, basemap)

    fac_ll = _facilities_display(facilities, config, basemap)
    colours = _category_colours(config, fac_ll)
    near = _near_facility_mask(facilities, unit_geom, rules)

    for i, cid in enumerate(circle_ids):
        circle = rules[cid].circle
        group = folium.FeatureGroup(name=_circle_label(circle), overlay=True, show=(i == 0))

        area = None
        if service_areas is not None and cid in service_areas:
            whole = service_areas[cid]
            area = shapely.intersection(whole, _unit_window(unit_geom)) if whole is not None else None
        elif net is not None and node_times is not None and cid in node_times:
            area = _service_area(
                net, node_times[cid], rules[cid], _unit_window(unit_geom), service_buffer_m
            )
        if area is not None and not area.is_empty:
            sa = gpd.GeoDataFrame({"tip": [_service_area_tip(circle)]}, geometry=[area], crs=crs)
            folium.GeoJson(
                _feature_collection(_display_frame(sa, config, basemap, simplify_m=simplify_m)),
                style_function=_service_area_style,
                tooltip=folium.GeoJsonTooltip(fields=["tip"], labels=False),
                control=False,
            ).add_to(group)

        classes = _cell_classes(ucells, ures, circle, size, crs, clip=unit_geom)
        if len(classes):
            folium.GeoJson(
                _feature_collection(
                    _display_frame(classes, config, basemap, simplify_m=simplify_m)
                ),
                style_function=_class_style,
                highlight_function=_highlight_style,
                tooltip=folium.GeoJsonTooltip(fields=["tip"], labels=False),
                control=False,
            ).add_to(group)

        fac_sub = fac_ll.loc[near[cid]] if cid in near else fac_ll.iloc[:0]
        _add_facilities(group, fac_sub, cid, colours)

        if proposed_sites is not None and len(proposed_sites):
            same_crs = proposed_sites.crs is None or proposed_sites.crs == crs
            _add_proposed(group, proposed_sites, cid, config, basemap,
                          near=unit_geom.buffer(500) if same_crs else None)
        group.add_to(m)

    street_kinds = _add_streets(m, streets, config, basemap, window=_unit_window(unit_geom),
                                simplify_m=simplify_m)
    folium.GeoJson(
        _feature_collection(outline_ll),
        style_function=_outline_style,
        tooltip=folium.GeoJsonTooltip(fields=["tip"], labels=False),
        name="unit outline",
        control=False,
        smooth_factor=0.5,
    ).add_to(m)
    # the outline has no fill, so it only catches the mouse on its stroke, not over the cells
    folium.LayerControl(collapsed=False).add_to(m)

    name = _esc(unit_row.get("unit_name", "")) + " " + _esc(unit_row.get("unit_name_en", ""))
    _set_page_title(m, f"{unit_row.get('unit_name', '')} {unit_row.get('unit_name_en', '')} "
                       f"({unit_code}) — 步行可达 walking access", config)
    _add_title_box(
        m,
        name.strip() or _esc(unit_code),
        f"{_esc(config.title_zh)} · {_esc(unit_code)} · 步行到最近设施 walk to the nearest facility",
        config,
        escaped=True,
    )
    _add_legend(
        m,
        _time_legend_rows([r.circle for r in rules.values()]) + _street_legend_rows(street_kinds),
        _category_legend_rows(config, colours, fac_ll),
        config,
    )
    return m


def save_map(m: folium.Map, path: str | Path, *, embed_assets: bool = False) -> Path:
    """Write a map to an HTML file atomically.

    Parameters
    ----------
    m : folium.Map
    path : str or Path
        Destination ``.html`` file.
    embed_assets : bool, default False
        Replace the CDN ``<script src>`` / ``<link href>`` tags by the inlined vendored copies from
        ``accessibility/_assets`` and drop the libraries our maps do not use (Bootstrap,
        glyphicons, awesome-markers, Font Awesome), so the file works offline.

    Returns
    -------
    pathlib.Path
    """
    text = m.get_root().render()
    if embed_assets:
        text = embed_map_assets(text)
    return write_text_atomic(path, text)


# ---------------------------------------------------------------------------------------------
# asset embedding

_SCRIPT_RE = re.compile(r'<script\s+src="(?P<url>[^"]+)"\s*>\s*</script>', re.I)
_LINK_RE = re.compile(r'<link\s+rel="stylesheet"\s+href="(?P<url>[^"]+)"\s*/?>', re.I)

# basename pattern -> vendored file
_VENDORED = (
    (re.compile(r"^leaflet(\.min)?\.js$"), "leaflet/leaflet.js"),
    (re.compile(r"^leaflet(\.min)?\.css$"), "leaflet/leaflet.css"),
    (re.compile(r"^jquery[-.\d]*(\.min)?\.js$"), "jquery/jquery.min.js"),
    (
        re.compile(r"^leaflet\.markercluster(-src)?\.js$"),
        "leaflet.markercluster/leaflet.markercluster.js",
    ),
    (re.compile(r"^MarkerCluster\.css$"), "leaflet.markercluster/MarkerCluster.css"),
    (
        re.compile(r"^MarkerCluster\.Default\.css$"),
        "leaflet.markercluster/MarkerCluster.Default.css",
    ),
)
# url pattern -> JavaScript name whose use means the library is needed
_REMOVABLE = (
    (re.compile(r"bootstrap", re.I), None),
    (re.compile(r"glyphicons", re.I), None),
    (re.compile(r"awesome-markers", re.I), "L.AwesomeMarkers"),
    (re.compile(r"fontawesome|font-awesome", re.I), "L.AwesomeMarkers"),
    (re.compile(r"awesome\.rotate", re.I), "L.AwesomeMarkers"),
)


def embed_map_assets(text: str) -> str:
    """Return map HTML with CDN assets inlined from ``_assets`` or removed when unused."""

    def replace(match: re.Match, kind: str) -> str:
        url = match.group("url")
        base = url.split("?")[0].rstrip("/").rsplit("/", 1)[-1]
        for pattern, rel in _VENDORED:
            if pattern.match(base):
                content = (ASSETS_DIR / rel).read_text(encoding="utf-8")
                if kind == "js":
                    return (
                        "<script>/* "
                        + rel
                        + " (vendored) */\n"
                        + content.replace("</script", "<\\/script")
                        + "\n</script>"
                    )
                content = _inline_css_images(content, (ASSETS_DIR / rel).parent)
                return (
                    "<style>/* "
                    + rel
                    + " (vendored) */\n"
                    + content.replace("</style", "<\\/style")
                    + "\n</style>"
                )
        for pattern, needed_by in _REMOVABLE:
            if pattern.search(url):
                if needed_by and needed_by in text:
                    break
                return f"<!-- removed unused {html.escape(base)} -->"
        warnings.warn(
            f"save_map(embed_assets=True): no vendored copy of {url}; the map keeps the link and "
            "needs network access for it. Fix: add the file to accessibility/_assets.",
            AccessibilityWarning,
            stacklevel=4,
        )
        return match.group(0)

    text = _SCRIPT_RE.sub(lambda mt: replace(mt, "js"), text)
    return _LINK_RE.sub(lambda mt: replace(mt, "css"), text)


def _inline_css_images(css: str, folder: Path) -> str:
    def sub(match: re.Match) -> str:
        rel = match.group(1).strip("'\"")
        p = folder / rel
        if rel.startswith(("data:", "#", "http")) or not p.is_file():
            return match.group(0)
        data = base64.b64encode(p.read_bytes()).decode("ascii")
        return f"url(data:image/png;base64,{data})"

    return re.sub(r"url\(([^)]+)\)", sub, css)


# ---------------------------------------------------------------------------------------------
# geometry helpers


def _check_basemap(basemap: str) -> None:
    if basemap not in BASEMAPS:
        raise ValueError(f"basemap={basemap!r} is not supported; use one of {', '.join(BASEMAPS)}")


def _require_columns(df: pd.DataFrame, cols: Iterable[str], what: str) -> None:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise DataError(
            f"{what}: missing column(s) {', '.join(missing)}; fix: follow the {what} contract in DESIGN.md"
        )


def _resolve_circles(config, circles, *, available) -> dict:
    """``circle id -> CircleRule`` to draw: ids get the configuration's rule, rules (overrides)
    are kept as given; default every configured circle in ``available``."""
    from accessibility.rules import CircleRule, circle_rule

    available = {str(a) for a in available}
    if circles is None:
        ids = [c for c in config.circles if c in available]
        if not ids:
            raise DataError(
                "maps: none of the configured circles appear in the data; "
                f"fix: pass circles= (configured: {', '.join(config.circles)})"
            )
        return {c: circle_rule(config, c) for c in ids}
    circles = list(circles)
    unknown = [str(c) for c in circles if not isinstance(c, CircleRule) and str(c) not in config.circles]
    if unknown:
        raise DataError(
            f"maps: unknown circle id(s) {', '.join(unknown)}; fix: use ids from the area config "
            f"({', '.join(config.circles)})"
        )
    return {(c.id if isinstance(c, CircleRule) else str(c)):
            (c if isinstance(c, CircleRule) else circle_rule(config, str(c))) for c in circles}


def _round_coords(geoms: np.ndarray) -> np.ndarray:
    return shapely.transform(geoms, lambda xy: np.round(xy, _PRECISION_DEG))


def _to_gcj02(geoms: np.ndarray) -> np.ndarray:
    """Shift WGS-84 geometries to GCJ-02 (display only, for the Amap basemap)."""
    from accessibility.coords import transform_geometry, wgs84_to_gcj02

    return transform_geometry(np.asarray(geoms, dtype=object), wgs84_to_gcj02)


def _parts_and_holes(geoms) -> tuple[np.ndarray, np.ndarray]:
    """Number of parts and of interior rings (holes) of each geometry."""
    g = np.atleast_1d(np.asarray(geoms, dtype=object))
    parts, idx = shapely.get_parts(g, return_index=True)
    holes = np.bincount(idx, weights=shapely.get_num_interior_rings(parts), minlength=g.size)
    return shapely.get_num_geometries(g), holes


def _simplify(geoms, tolerance: float):
    """Douglas-Peucker without topology checks (~30x faster on big service areas); the
    topology-preserving version for geometries that came out invalid or lost a part or a hole
    (a small exclave, a courtyard) on the way."""
    fast = shapely.simplify(geoms, tolerance, preserve_topology=False)
    bad = ~shapely.is_valid(fast) | (shapely.is_empty(fast) & ~shapely.is_empty(geoms))
    (p0, h0), (p1, h1) = _parts_and_holes(geoms), _parts_and_holes(fast)
    lost = (p1 != p0) | (h1 != h0)
    bad = bad | (lost if np.ndim(fast) else bool(lost[0]))
    if np.any(bad):
        safe = shapely.simplify(geoms, tolerance, preserve_topology=True)
        fast = np.where(bad, safe, fast) if np.ndim(fast) else safe
    return fast


def _display_frame(
    gdf: gpd.GeoDataFrame, config, basemap: str, *, simplify_m: float
) -> gpd.GeoDataFrame:
    """Simplify in metres, reproject to WGS-84, shift for Amap, round coordinates."""
    if gdf.crs is None:
        gdf = gdf.set_crs(config.crs)
    out = gdf.reset_index(drop=True)
    geoms = out.geometry.values
    if simplify_m and simplify_m > 0 and gdf.crs.is_projected:
        geoms = _simplify(np.asarray(geoms), simplify_m)
    out = gpd.GeoDataFrame(
        out.drop(columns=out.geometry.name),
        geometry=gpd.GeoSeries(list(geoms), index=out.index),
        crs=gdf.crs,
    )
    out = out.to_crs("EPSG:4326")
    geoms = np.asarray(out.geometry.values)
    if basemap == "amap":
        geoms = _to_gcj02(geoms)
    geoms = _round_coords(geoms)
    return out.set_geometry(gpd.GeoSeries(list(geoms), index=out.index, crs="EPSG:4326"))


def _feature_collection(gdf: gpd.GeoDataFrame) -> dict:
    """GeoJSON dict with ids 0..n-1 (folium keys its per-feature styles on them)."""
    gdf = gdf.reset_index(drop=True)
    keep = ~(gdf.geometry.isna() | gdf.geometry.is_empty)
    gdf = gdf.loc[keep].reset_index(drop=True)
    return json.loads(gdf.to_json(drop_id=False, na="null"))


def _base_map(frame_ll: gpd.GeoDataFrame, basemap: str) -> folium.Map:
    minx, miny, maxx, maxy = frame_ll.total_bounds if len(frame_ll) else (106.4, 29.5, 106.7, 29.7)
    if not np.all(np.isfinite([minx, miny, maxx, maxy])):
        minx, miny, maxx, maxy = 106.4, 29.5, 106.7, 29.7
    m = folium.Map(
        location=[(miny + maxy) / 2, (minx + maxx) / 2],
        zoom_start=12,
        tiles=None,
        control_scale=False,
        prefer_canvas=False,
        # MarkerCluster needs the map's own maxZoom when there are no tiles (basemap="none")
        **{"maxZoom": 19},
    )
    if basemap == "osm":
        folium.TileLayer("OpenStreetMap", name="OpenStreetMap", control=False).add_to(m)
    elif basemap == "amap":
        folium.TileLayer(
            tiles=AMAP_TILES,
            attr=AMAP_ATTRIBUTION,
            name="高德地图 Amap",
            subdomains="1234",
            max_zoom=18,
            control=False,
        ).add_to(m)
    else:
        css = f"<style>.leaflet-container {{ background: {NO_BASEMAP_BACKGROUND}; }}</style>"
        m.get_root().header.add_child(Element(css))
    m.fit_bounds([[float(miny), float(minx)], [float(maxy), float(maxx)]])
    _MetricScale().add_to(m)
    return m


class _MetricScale(MacroElement):
    """A metric-only scale bar (folium's control_scale also shows miles and feet)."""

    _template = Template(
        """
        {% macro script(this, kwargs) %}
        L.control.scale({metric: true, imperial: false, maxWidth: 150, position: "bottomleft"})
            .addTo({{ this._parent.get_name() }});
        {% endmacro %}
        """
    )

    def __init__(self):
        super().__init__()
        self._name = "MetricScale"


def _infer_cell_size(cells: gpd.GeoDataFrame) -> tuple[float, float]:
    """Width and height of the box drawn per cell, from the spacing of the cell centres.

    Population rasters are often in degrees, so their centres form a slightly rotated,
    rectangular grid in the projected CRS: the width is the median horizontal step to the
    nearest neighbours, the height the median vertical one (2 % overlap, no slivers).
    """
    from scipy.spatial import cKDTree

    xy = np.column_stack([cells.geometry.x.to_numpy(), cells.geometry.y.to_numpy()])
    if len(xy) < 2:
        return 100.0, 100.0
    k = min(5, len(xy))
    _, idx = cKDTree(xy).query(xy, k=k)
    vec = xy[idx[:, 1:]] - xy[:, None, :]
    dx, dy = np.abs(vec[..., 0]).ravel(), np.abs(vec[..., 1]).ravel()
    horiz, vert = (dx > dy) & (dx > 0.5), (dy >= dx) & (dy > 0.5)
    w = float(np.median(dx[horiz])) if horiz.any() else 100.0
    h = float(np.median(dy[vert])) if vert.any() else w
    if not horiz.any():
        w = h
    return round(w * 1.02, 1), round(h * 1.02, 1)


def _cell_classes(ucells, ures, circle, size: tuple[float, float], crs, clip=None) -> gpd.GeoDataFrame:
    """Dissolve the unit's cell squares into one polygon per time/distance class."""
    t = pd.to_numeric(ures[f"{circle.id}_t"], errors="coerce").to_numpy(dtype=float)
    cov_col = f"{circle.id}_covered"
    covered = (
        ures[cov_col].fillna(False).to_numpy(dtype=bool)
        if cov_col in ures.columns
        else np.isfinite(t) & (t <= circle.threshold)
    )
    weight = (
        pd.to_numeric(ucells[circle.weight_column], errors="coerce").fillna(0.0).to_numpy()
        if circle.weight_column in ucells.columns
        else np.zeros(len(ucells))
    )
    edges = np.array([0, 1, 2, 3]) * circle.threshold / 3
    cls = np.full(len(t), 3, dtype=int)  # 3 = not covered
    for k in (2, 1, 0):
        sel = covered & np.isfinite(t) & (t <= edges[k + 1])
        cls[sel] = k
    labels = _class_labels(circle)
    x = ucells.geometry.x.to_numpy()
    y = ucells.geometry.y.to_numpy()
    hw, hh = size[0] / 2, size[1] / 2
    rows = []
    for k in range(4):
        sel = cls == k
        if not sel.any():
            continue
        boxes = shapely.box(
            np.round(x[sel] - hw, 3),
            np.round(y[sel] - hh, 3),
            np.round(x[sel] + hw, 3),
            np.round(y[sel] + hh, 3),
        )
        # closing (grow, merge, shrink) removes the slivers a slightly rotated grid leaves
        geom = shapely.union_all(boxes).buffer(0.1 * hw, join_style="mitre").buffer(
            -0.1 * hw, join_style="mitre")
        if clip is not None:
            geom = geom.intersection(clip)
        pop = float(weight[sel].sum())
        who = "60岁以上 aged 60+" if circle.population == "60plus" else "人 people"
        tip = (
            f"<b>{_esc(circle.label_zh)}</b><br>{_esc(labels[k])}<br>"
            f"{pop:,.0f} {who} · {int(sel.sum())} 格 cells"
        )
        colour = UNCOVERED_COLOUR if k == 3 else TIME_CLASS_COLOURS[k]
        rows.append({"cls": k, "fill": colour, "tip": tip, "geometry": geom})
    if not rows:
        return gpd.GeoDataFrame({"cls": [], "fill": [], "tip": []}, geometry=[], crs=crs)
    return gpd.GeoDataFrame(rows, geometry="geometry", crs=crs)


def _class_labels(circle) -> list[str]:
    if circle.mode == "time":
        b = [circle.threshold / 60 * k / 3 for k in range(4)]
        unit = "min"
        beyond = f"> {b[3]:g} min 或不可达 / not covered"
    else:
        b = [circle.threshold * k / 3 for k in range(4)]
        unit = "m"
        beyond = f"> {b[3]:g} m 或不可达 / not covered"
    return [f"{b[k]:g}–{b[k + 1]:g} {unit}" for k in range(3)] + [beyond]


#: Street kinds of the context layer and how they are drawn (thin, grey, above the fills).
STREET_STYLES = {
    "major": {"color": "#4d5156", "weight": 1.8, "opacity": 0.6},
    "minor": {"color": "#70757a", "weight": 0.7, "opacity": 0.45},
    "steps": {"color": "#7a3e12", "weight": 2.0, "opacity": 0.85, "dashArray": "2 3"},
}
_MAJOR_HIGHWAYS = {"motorway", "trunk", "primary", "secondary", "tertiary"}


def street_lines(net, *, kinds: Iterable[str] = ("major", "minor", "steps")) -> gpd.GeoDataFrame:
    """The walking network's streets as a map context layer: one merged line per kind.

    ``major`` = trunk/primary/secondary/tertiary (and their links), ``steps`` = flights of
    stairs (a mountain city's shortcuts, drawn dashed), ``minor`` = every other walkable way.
    Drawn by :func:`overview_map` / :func:`unit_map` (``streets=``) so that a map without
    background tiles (offline, ``basemap="none"``) still shows where the streets and stairs are.

    Returns
    -------
    geopandas.GeoDataFrame
        ``kind`` and a (Multi)LineString per kind present, in the network CRS.
    """
    unknown = set(kinds) - set(STREET_STYLES)
    if unknown:
        raise DataError(f"street_lines: unknown kind(s) {sorted(unknown)}; use {sorted(STREET_STYLES)}")
    e = net.edges
    u = e["u"].to_numpy(dtype=np.int64)
    v = e["v"].to_numpy(dtype=np.int64)
    hw = e["highway"].astype(str).str.removesuffix("_link").to_numpy() if "highway" in e else np.full(u.size, "")
    steps = (e["is_steps"].to_numpy(dtype=bool) if "is_steps" in e else np.zeros(u.size, bool)) | (hw == "steps")
    kind = np.where(steps, "steps", np.where(np.isin(hw, list(_MAJOR_HIGHWAYS)), "major", "minor"))
    x = net.nodes["x"].to_numpy(dtype=float)
    y = net.nodes["y"].to_numpy(dtype=float)
    rows, geoms = [], []
    for k in STREET_STYLES:
        if k not in kinds:
            continue
        sel = kind == k
        if not sel.any():
            continue
        rows.append(k)
        geoms.append(_merged(_segments(x, y, u[sel], v[sel])))
    return gpd.GeoDataFrame({"kind": rows}, geometry=geoms, crs=net.crs)


def _segments(x, y, u, v) -> np.ndarray:
    """One straight LineString per street segment (directed edges u->v and v->u drawn once)."""
    pairs = np.unique(np.sort(np.column_stack([u, v]), axis=1), axis=0)
    return shapely.linestrings(np.stack([np.column_stack([x[pairs[:, 0]], y[pairs[:, 0]]]),
                                         np.column_stack([x[pairs[:, 1]], y[pairs[:, 1]]])], axis=1))


def _merged(lines):
    """Segments joined into long lines at their shared end nodes (one (Multi)LineString)."""
    return shapely.line_merge(shapely.multilinestrings(lines))


def _add_streets(m, streets, config, basemap: str, *, window=None, simplify_m: float = 5.0) -> list[str]:
    """Draw a :func:`street_lines` layer in its own pane above the fills, never catching the mouse.

    Returns the kinds drawn (for the legend): none when nothing is left inside ``window``.
    """
    if streets is None or not len(streets):
        return []
    streets = _in_crs(streets, config)
    if window is not None:
        streets = streets.assign(geometry=shapely.intersection(np.asarray(streets.geometry.values), window))
    ll = _display_frame(streets[["kind", "geometry"]], config, basemap, simplify_m=simplify_m)
    fc = _feature_collection(ll)
    if not len(fc["features"]):
        return []
    folium.map.CustomPane("acc-streets", z_index=450, pointer_events=False).add_to(m)
    styles = {k: dict(v, interactive=False) for k, v in STREET_STYLES.items()}
    drawn = {f["properties"]["kind"] for f in fc["features"]}
    kinds = [k for k in STREET_STYLES if k in drawn]
    folium.GeoJson(
        fc,
        name=" · ".join(_STREET_LABELS[k].replace(" street or path", " streets").replace(
            " street", " streets") for k in kinds),
        style_function=lambda f: styles.get(f["properties"]["kind"], styles["minor"]),
        pane="acc-streets",
        interactive=False,
        control=True,
        show=True,
    ).add_to(m)
    return kinds


_STREET_LABELS = {"major": "主要道路 main street", "minor": "其他道路 other street or path",
                  "steps": "台阶 stairs"}


def _street_legend_rows(kinds) -> str:
    """Legend rows for the street kinds actually drawn (none when nothing was drawn)."""
    kinds = set(kinds or ())
    line = {"major": "3px solid", "minor": "1px solid", "steps": "3px dashed"}
    return "".join(
        f'<div><span class="ln" style="border-top:{line[k]} {STREET_STYLES[k]["color"]}"></span>'
        f"{_STREET_LABELS[k]}</div>"
        for k in STREET_STYLES if k in kinds
    )


def service_areas(net, node_times: Mapping[str, np.ndarray], rules, *, buffer_m: float = 30.0) -> dict:
    """Service area of each circle over the whole network, for many :func:`unit_map` calls.

    Buffering and merging the reached streets is the costly part of a unit map; done once for
    the whole area and clipped per unit, twelve unit maps cost about a third as much.

    Parameters
    ----------
    net : WalkNetwork
    node_times : mapping of circle id to numpy.ndarray
        From :func:`circle_node_times`.
    rules : AreaConfig or iterable of CircleRule
        The circles' rules (their threshold test decides which streets are reached).
    buffer_m : float
        Half-width of the corridor around reached edges.

    Returns
    -------
    dict of circle id to shapely geometry (or None when nothing is reached)
    """
    from accessibility.rules import as_rules

    by_id = {r.id: r for r in as_rules(rules)}
    x = net.nodes["x"].to_numpy(dtype=float)
    y = net.nodes["y"].to_numpy(dtype=float)
    pad = 2.0 * buffer_m + 1.0  # the corridors reach buffer_m beyond the outermost nodes: keep them
    whole = shapely.box(x.min() - pad, y.min() - pad, x.max() + pad, y.max() + pad) if len(x) else None
    return {cid: (_service_area(net, t, by_id[cid], whole, buffer_m) if whole is not None else None)
            for cid, t in node_times.items() if cid in by_id}


def circle_node_times(net, facilities, rules) -> dict[str, np.ndarray]:
    """Per-node time (or distance) from every network node to the nearest facility of each circle.

    Used to draw service areas from the reached network. Values are in the circle's threshold unit
    (seconds or metres), include the facility's walk from the network (``rule.walk``: facilities
    beyond ``max_snap_m`` are left out, as in coverage), and are ``inf`` beyond the threshold.

    Parameters
    ----------
    net : WalkNetwork
    facilities : geopandas.GeoDataFrame
        In the network CRS, with ``circles``.
    rules : AreaConfig, CircleRule or iterable of CircleRule

    Returns
    -------
    dict of circle id to numpy.ndarray (positional like ``net.nodes``)

    Examples
    --------
    >>> from accessibility.demo import example_grid
    >>> g = example_grid()
    >>> circle_node_times(g.net, g.facilities, g.rules)["shop"].round(1).tolist()
    [0.0, 100.0, 200.0, inf]
    """
    from accessibility import traveltime as tt
    from accessibility.rules import as_rules, facility_sets

    n = len(net.nodes)
    x, y = facilities.geometry.x.to_numpy(), facilities.geometry.y.to_numpy()
    fnode, fsnap = tt.snap(net, x, y) if len(facilities) else (np.zeros(0, np.int64), np.zeros(0))
    member = facility_sets(facilities)
    out = {}
    for rule in as_rules(rules):
        off = rule.walk(fsnap)
        sel = member(rule.id) & np.isfinite(off)
        if not sel.any():
            out[rule.id] = np.full(n, np.inf)
            continue
        out[rule.id], _ = tt.multi_source(net, rule.weight, fnode[sel], off[sel], limit=rule.threshold)
    return out


def reachable_facilities(net, facilities, rules) -> gpd.GeoDataFrame:
    """The facilities a map should draw: those within ``max_snap_m`` of the network for at least
    one of the rules (the others are left out of coverage and warned about)."""
    from accessibility import traveltime as tt
    from accessibility.rules import as_rules

    if facilities is None or not len(facilities):
        return facilities
    limit = max((r.max_snap_m for r in as_rules(rules)), default=np.inf)
    _, fsnap = tt.snap(net, facilities.geometry.x.to_numpy(), facilities.geometry.y.to_numpy())
    return facilities[fsnap <= limit]


def _in_crs(gdf, config):
    """``gdf`` in ``config.crs`` (unchanged when it has no CRS or is already there)."""
    target = getattr(config, "crs", None)
    if target is None or gdf.crs is None:
        return gdf
    from pyproj import CRS

    return gdf if CRS.from_user_input(gdf.crs).equals(CRS.from_user_input(target)) else gdf.to_crs(target)


def _unit_window(unit_geom):
    return shapely.buffer(shapely.envelope(unit_geom), 2000.0)


def _service_area(net, times, rule, window, buffer_m: float):
    """Union of buffered network edges whose both ends the rule calls reached, in ``window``."""
    times = np.asarray(times, dtype=float)
    nodes = net.nodes
    if len(times) != len(nodes):
        raise DataError(
            f"unit_map: node_times has {len(times)} values but the network has {len(nodes)} nodes; "
            "fix: pass per-node times positional like net.nodes"
        )
    edges = net.edges
    u = edges["u"].to_numpy(dtype=np.int64)
    v = edges["v"].to_numpy(dtype=np.int64)
    ok = rule.within(times[u]) & rule.within(times[v])
    if not ok.any():
        return None
    u, v = u[ok], v[ok]
    x = nodes["x"].to_numpy(dtype=float)
    y = nodes["y"].to_numpy(dtype=float)
    # edges whose bounding box misses the window's cannot intersect it: dropped before any geometry
    xmin, ymin, xmax, ymax = shapely.bounds(window)
    near = ((np.minimum(x[u], x[v]) <= xmax) & (np.maximum(x[u], x[v]) >= xmin)
            & (np.minimum(y[u], y[v]) <= ymax) & (np.maximum(y[u], y[v]) >= ymin))
    u, v = u[near], v[near]
    if not u.size:
        return None
    lines = _segments(x, y, u, v)
    lines = lines[shapely.intersects(lines, window)]
    if not len(lines):
        return None
    # joining the segments into long lines first (at shared end nodes) leaves ~6x fewer, longer
    # pieces to buffer and merge: ~2.5x faster for the same corridor
    lines = shapely.get_parts(_merged(lines))
    area = shapely.union_all(shapely.buffer(lines, buffer_m, quad_segs=2))
    return _simplify(shapely.intersection(area, window), buffer_m / 3)


def _near_facility_mask(facilities, unit_geom, rules) -> dict[str, np.ndarray]:
    """Facilities of each circle within reach of the unit (straight-line threshold + 200 m)."""
    out = {}
    if facilities is None or not len(facilities):
        return out
    dist = np.asarray(shapely.distance(np.asarray(facilities.geometry.values), unit_geom))
    for cid, rule in rules.items():
        reach = rule.threshold * rule.walk_speed_mps  # seconds x m/s, or metres x 1
        out[cid] = rule.facility_mask(facilities) & (dist <= reach + 200.0)
    return out


# ---------------------------------------------------------------------------------------------
# facilities and sites


def _facilities_display(facilities, config, basemap) -> gpd.GeoDataFrame:
    if facilities is None or not len(facilities):
        return gpd.GeoDataFrame(
            {"category": [], "circles": [], "popup": []}, geometry=[], crs="EPSG:4326"
        )
    fac = facilities.copy()
    cat_labels = {k: f"{c.label_zh} / {c.label_en}" for k, c in config.categories.items()}
    popups = []
    for _, r in fac.iterrows():
        cat = "" if pd.isna(r.get("category")) else str(r.get("category"))
        cap = r.get("capacity")
        cap_txt = "—" if cap is None or pd.isna(cap) else f"{float(cap):,.0f}"
        name = r.get("name")
        name = "（无名称 unnamed）" if name is None or pd.isna(name) or not str(name) else str(name)
        popups.append(
            f"<b>{_esc(name)}</b><br>类别 category: {_esc(cat_labels.get(cat, cat))}"
            f"<br>容量 capacity: {_esc(cap_txt)}<br>来源 source: {_esc(r.get('source', ''))}"
            + (f"<br>编号 id: {_esc(r.get('fac_id'))}" if "fac_id" in fac.columns else "")
        )
    frame = gpd.GeoDataFrame(
        {
            "category": fac["category"].astype(str).to_numpy() if "category" in fac.columns else "",
            "circles": fac["circles"].fillna("").astype(str).to_numpy()
            if "circles" in fac.columns
            else "",
            "popup": popups,
        },
        geometry=list(fac.geometry.values),
        crs=fac.crs or config.crs,
    )
    return _display_frame(frame, config, basemap, simplify_m=0)


def _category_colours(config, fac_ll) -> dict[str, str]:
    cats = list(config.categories)
    extra = sorted(set(fac_ll["category"].astype(str)) - set(cats)) if len(fac_ll) else []
    return {c: CATEGORY_PALETTE[i % len(CATEGORY_PALETTE)] for i, c in enumerate(cats + extra)}


def _add_facilities(group, fac_ll, cid: str, colours: dict[str, str]) -> None:
    if not len(fac_ll):
        return
    from accessibility.rules import facility_sets

    sub = fac_ll.loc[facility_sets(fac_ll)(cid)]
    if not len(sub):
        return
    sub = gpd.GeoDataFrame(
        {
            "colour": [colours.get(c, "#333333") for c in sub["category"]],
            "popup": sub["popup"].to_numpy(),
        },
        geometry=list(sub.geometry.values),
        crs="EPSG:4326",
    )
    cluster = MarkerCluster(
        name=f"{cid} facilities",
        control=False,
        options={"disableClusteringAtZoom": 15, "maxClusterRadius": 40},
    )
    folium.GeoJson(
        _feature_collection(sub),
        marker=folium.CircleMarker(
            radius=6, weight=1.5, color="#222222", fill=True, fill_opacity=0.9
        ),
        style_function=_marker_style,
        popup=folium.GeoJsonPopup(fields=["popup"], labels=False, max_width=320),
        control=False,
    ).add_to(cluster)
    cluster.add_to(group)


def _add_proposed(group, sites, cid: str, config, basemap: str, near=None) -> None:
    if "circle" in sites.columns:
        sites = sites.loc[sites["circle"].astype(str) == cid]
    if near is not None and len(sites):
        sites = sites.loc[sites.geometry.intersects(near)]
    if not len(sites):
        return
    sites = sites.copy()
    if sites.crs is None:
        sites = sites.set_crs(config.crs)
    ll = sites.to_crs("EPSG:4326")
    geoms = np.asarray(ll.geometry.values)
    if basemap == "amap":
        geoms = _to_gcj02(geoms)
    geoms = _round_coords(geoms)
    # lon/lat in WGS-84 whatever the basemap: what a planner types into a GPS or a site survey
    wgs = zip(ll.geometry.x.to_numpy(), ll.geometry.y.to_numpy(), strict=True)
    for (_, r), g, (lon, lat) in zip(sites.iterrows(), geoms, wgs, strict=True):
        rank = r.get("rank", "")
        rank_txt = "" if rank is None or pd.isna(rank) else f"{int(rank)}"
        added = r.get("added_covered_population", np.nan)
        added_txt = "—" if added is None or pd.isna(added) else f"{float(added):,.0f}"
        popup = (
            f"<b>建议新址 proposed site #{_esc(rank_txt)}</b><br>编号 id: {_esc(r.get('site_id', ''))}"
            f"<br>新增覆盖人口 added covered population: {_esc(added_txt)}"
            f"<br>服务圈 circle: {_esc(config.circles[cid].label_zh)}"
            f"<br>经纬度 lon, lat (WGS-84): {float(lon):.5f}, {float(lat):.5f}"
        )
        icon = folium.DivIcon(
            html=f'<div class="acc-star" title="proposed site {_esc(rank_txt)}">★<span>{_esc(rank_txt)}</span></div>',
            icon_size=(30, 30),
            icon_anchor=(15, 15),
            class_name="acc-star-icon",
        )
        folium.Marker(
            location=[g.y, g.x],
            icon=icon,
            popup=folium.Popup(popup, max_width=320),
            z_index_offset=1000,
        ).add_to(group)


# ---------------------------------------------------------------------------------------------
# styles (evaluated in Python per feature by folium)


def _fill_style(feature) -> dict:
    return {
        "fillColor": feature["properties"]["fill"],
        "color": "#333333",
        "weight": 1,
        "fillOpacity": 0.7,
    }


def _class_style(feature) -> dict:
    uncovered = feature["properties"]["cls"] == 3
    return {
        "fillColor": feature["properties"]["fill"],
        "color": "#000000" if uncovered else feature["properties"]["fill"],
        "weight": 1.5 if uncovered else 0.5,
        "dashArray": "4 3" if uncovered else None,
        "fillOpacity": 0.65,
    }


def _highlight_style(_feature) -> dict:
    return {"weight": 3, "color": "#000000", "fillOpacity": 0.85}


def _outline_style(_feature) -> dict:
    return {"fill": False, "color": "#08306b", "weight": 3}


def _service_area_style(_feature) -> dict:
    # no stroke: drawn under the cells, it shows where the network reach goes beyond them
    return {"fillColor": "#6baed6", "color": "#2171b5", "weight": 0, "fillOpacity": 0.3}


def _marker_style(feature) -> dict:
    return {"fillColor": feature["properties"]["colour"]}


def _coverage_colour(share) -> str:
    if share is None or pd.isna(share):
        return NO_DATA_COLOUR
    share = float(share)
    for lo, hi, colour, _ in COVERAGE_CLASSES:
        if lo <= share < hi or (hi == np.inf and share >= lo):
            return colour
    return COVERAGE_CLASSES[0][2]


# ---------------------------------------------------------------------------------------------
# text


def _esc(value: Any) -> str:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return ""
    return html.escape(str(value), quote=True)


def _pct(x) -> str:
    return "—" if x is None or pd.isna(x) else f"{100 * float(x):.1f} %"


def _circle_label(circle) -> str:
    return f"{circle.label_zh} / {circle.label_en} ({circle.threshold_label})"


def _unit_title_html(r) -> str:
    return f"<b>{_esc(r.get('unit_name', ''))}</b> {_esc(r.get('unit_name_en', ''))} ({_esc(r.get('unit_code', ''))})"


def _unit_tooltip(r, circle) -> str:
    meets = r.get("meets_target")
    meets_txt = "—" if meets is None or pd.isna(meets) else ("是 yes" if bool(meets) else "否 no")
    gap = r.get("gap_population")
    gap_txt = "—" if gap is None or pd.isna(gap) else f"{float(gap):,.0f}"
    return (
        f"{_unit_title_html(r)}<br><i>{_esc(circle.label_zh)} / {_esc(circle.label_en)}</i>"
        f"<br>覆盖率 coverage: {_pct(r.get('coverage_share'))}"
        f"<br>目标 target: {_pct(r.get('target_share', circle.target_share))}"
        f"<br>缺口 gap: {gap_txt} 人 people"
        f"<br>达标 meets target: {meets_txt}"
    )


def _service_area_tip(circle) -> str:
    return (
        f"服务范围 service area: {_esc(circle.label_zh)} — "
        f"street network reached within {_esc(circle.threshold_label)}"
    )


def _district_lines(cov: pd.DataFrame, circle_ids, config) -> str:
    parts = []
    district = cov[cov["unit_code"] == str(config.district_code)]
    for cid in circle_ids:
        row = district[district["circle"] == cid]
        if len(row):
            parts.append(
                f"{_esc(config.circles[cid].label_zh)}: {_pct(row['coverage_share'].iloc[0])}"
            )
    name, name_en = district_names(config)
    return f"{_esc(pick(name, name_en, getattr(config, 'language', 'bilingual')))} — " + "; ".join(parts) if parts else ""


# ---------------------------------------------------------------------------------------------
# title box and legend (own HTML/CSS; no CDN resources)

_BOX_CSS = """
<style>
.acc-box { position: absolute; z-index: 1000; background: rgba(255,255,255,0.93);
  border: 1px solid #888; border-radius: 4px; padding: 6px 10px; font: 12px/1.35 sans-serif;
  box-shadow: 0 1px 4px rgba(0,0,0,0.3); max-width: 420px; }
.acc-title { top: 10px; left: 55px; }
.acc-title h1 { font-size: 15px; margin: 0 0 2px 0; }
.acc-legend { bottom: 24px; right: 10px; max-height: 55%; overflow-y: auto; max-width: 330px; }
.leaflet-control-layers { font-size: 11px; line-height: 1.3; }
.acc-legend summary { cursor: pointer; font-weight: bold; margin: 4px 0 2px 0; }
.acc-legend h2 { font-size: 12px; margin: 4px 0 2px 0; }
.acc-legend .sw { display: inline-block; width: 14px; height: 12px; margin-right: 5px;
  vertical-align: middle; border: 1px solid #555; }
.acc-legend .ln { display: inline-block; width: 16px; height: 0; margin-right: 5px;
  vertical-align: middle; }
.acc-legend .dot { display: inline-block; width: 10px; height: 10px; margin-right: 5px;
  border-radius: 50%; vertical-align: middle; border: 1px solid #222; }
.acc-synthetic { color: #c00000; font-weight: bold; }
.acc-star { color: #d4006a; font-size: 26px; line-height: 26px; text-align: center;
  text-shadow: 0 0 3px #fff, 0 0 3px #fff; position: relative; }
.acc-star span { position: absolute; left: 0; right: 0; top: 7px; font-size: 9px; color: #fff;
  text-shadow: none; font-weight: bold; }
.acc-star-icon { background: none; border: none; }
.acc-label-icon { background: none; border: none; pointer-events: none; }
.acc-label { text-align: center; font: bold 12px/1.15 sans-serif; color: #222;
  text-shadow: 0 0 3px #fff, 0 0 3px #fff, 0 0 3px #fff; white-space: nowrap; }
.acc-label span { font-weight: normal; font-size: 10px; }
</style>
"""


class _Box(MacroElement):
    """A fixed HTML box over the map (title or legend)."""

    _template = Template(
        """
        {% macro header(this, kwargs) %}{{ this.css }}{% endmacro %}
        {% macro html(this, kwargs) %}{{ this.body }}{% endmacro %}
        """
    )

    def __init__(self, body: str, css: str = ""):
        super().__init__()
        self._name = "AccBox"
        self.body = body
        self.css = css


def _synthetic_html(config) -> str:
    out = f'<div class="acc-synthetic">{_esc(SYNTHETIC_NOTE)}</div>' if config.is_synthetic else ""
    estimated = list(getattr(config, "estimated_layers", []))
    if estimated:  # layers made by a proxy (e.g. population from street density): said on every map
        out += (f'<div class="acc-synthetic">ESTIMATE: {_esc(", ".join(estimated))} estimated by a proxy, '
                "not observed</div>")
    return out


def _add_title_box(m, title: str, subtitle: str, config, *, escaped: bool = False) -> None:
    t = title if escaped else _esc(title)
    body = (
        f'<div class="acc-box acc-title"><h1>{t}</h1><div>{subtitle}</div>'
        f"{_synthetic_html(config)}</div>"
    )
    m.get_root().add_child(_Box(body, _BOX_CSS))


def _add_legend(m, first_rows: str, second_rows: str, config) -> None:
    body = (
        f'<div class="acc-box acc-legend">{first_rows}{second_rows}{_synthetic_html(config)}</div>'
    )
    m.get_root().add_child(_Box(body))


def _coverage_legend_rows() -> str:
    rows = "".join(
        f'<div><span class="sw" style="background:{c}"></span>{_esc(label)}</div>'
        for _, _, c, label in COVERAGE_CLASSES
    )
    rows += f'<div><span class="sw" style="background:{NO_DATA_COLOUR}"></span>无数据 no data</div>'
    return "<h2>覆盖率 coverage share</h2>" + rows


def _time_legend_rows(circles) -> str:
    """Legend rows of the time/distance classes of ``circles`` (config Circles as drawn)."""
    modes = {c.mode for c in circles}
    parts = []
    for mode in sorted(modes, reverse=True):  # time first
        in_mode = [c for c in circles if c.mode == mode]
        head = "步行时间 walking time" if mode == "time" else "步行距离 walking distance"
        if len({c.threshold for c in in_mode}) > 1:
            # circles of this mode differ in threshold: classes are thirds of each one's threshold
            labels = ["0–⅓ 阈值 of the threshold", "⅓–⅔ 阈值 of the threshold",
                      "⅔ 阈值–阈值 of the threshold", "超过阈值或不可达 beyond the threshold / not covered"]
            head += " (" + ", ".join(f"{c.threshold_label}" for c in in_mode) + ")"
        else:
            labels = _class_labels(in_mode[0])
        rows = "".join(
            f'<div><span class="sw" style="background:{TIME_CLASS_COLOURS[k]}"></span>{_esc(labels[k])}</div>'
            for k in range(3)
        )
        rows += (
            f'<div><span class="sw" style="background:{UNCOVERED_COLOUR};border:2px dashed #000"></span>'
            f"{_esc(labels[3])}</div>"
        )
        parts.append(f"<h2>{head}</h2>{rows}")
    parts.append(
        '<div><span class="sw" style="background:#6baed6;opacity:0.6"></span>服务范围 service area (reached streets)</div>'
        '<div><span class="acc-star" style="font-size:14px;line-height:14px">★</span> 建议新址 proposed site</div>'
    )
    return "".join(parts)


def _category_legend_rows(config, colours, fac_ll) -> str:
    if not len(fac_ll):
        return ""
    present = list(dict.fromkeys(fac_ll["category"].astype(str)))
    order = [c for c in colours if c in present]
    rows = []
    for c in order:
        cat = config.categories.get(c)
        label = f"{cat.label_zh} / {cat.label_en}" if cat else c
        rows.append(
            f'<div><span class="dot" style="background:{colours[c]}"></span>{_esc(label)}</div>'
        )
    return "<details><summary>设施 facilities</summary>" + "".join(rows) + "</details>"
