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
import functools
import html
import json
import logging
import re
import threading
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import branca.element
import folium
import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from branca.element import Element, MacroElement
from folium.plugins import MarkerCluster
from jinja2 import Template
from pyproj import CRS, Transformer

from accessibility._errors import AccessibilityWarning, DataError
from accessibility._io import write_text_atomic
from accessibility.labels import district_names, pick
from accessibility.rules import facility_sets

__all__ = ["circle_node_times", "overview_map", "reachable_facilities", "save_map", "service_areas",
           "street_lines", "unit_map"]

logger = logging.getLogger(__name__)

ASSETS_DIR = Path(__file__).parent / "_assets"

BASEMAPS = ("osm", "none", "amap")
AMAP_TILES = "https://webrd0{s}.is.autonavi.com/appmaptile?lang=zh_cn&size=1&scale=1&style=8&x={x}&y={y}&z={z}"
AMAP_ATTRIBUTION = "© 高德地图 AutoNavi"
NO_BASEMAP_BACKGROUND = "#e8e8e8"
SYNTHETIC_NOTE = "SYNTHETIC DEMO 合成示例数据 — not real data"

# Coverage classes of a unit against ITS OWN target (a unit at 97 % of a 100 % target is short):
# (class id, lowest coverage_share - target_share of the class, fill, label zh, label en).
# "meets" is the coverage table's own verdict (meets_target); the others split the shortfall.
# Colours from ColorBrewer RdBu (colour-blind safe): blue meets, reds fall short.
TARGET_CLASSES: tuple[tuple[str, float, str, str, str], ...] = (
    ("meets", 0.0, "#2166ac", "达到目标", "meets target"),
    ("just_short", -0.05, "#fddbc7", "略低于目标（差 < 5 个百分点）", "just short (< 5 points below target)"),
    ("short", -0.20, "#ef8a62", "低于目标 5–20 个百分点", "short (5–20 points below target)"),
    ("far_short", -np.inf, "#b2182b", "远低于目标（差 > 20 个百分点）", "far short (> 20 points below target)"),
)
NO_DATA_COLOUR = "#bdbdbd"
SERVICE_AREA_COLOUR = "#9ecae1"

# Travel-time classes of cells: thirds of the threshold (blues), then "not covered" (red, dashed).
TIME_CLASS_COLOURS = ("#2166ac", "#67a9cf", "#d1e5f0")
UNCOVERED_COLOUR = "#b2182b"

# Facility markers: Okabe-Ito colours that are neither blue nor red, so they never melt into the
# fills above; a dark rim keeps the light ones visible on the pale classes. Colours are given
# per circle (a circle has few categories and only one circle is shown at a time).
CATEGORY_PALETTE = ("#E69F00", "#009E73", "#CC79A7", "#F0E442", "#000000", "#8C8C8C")

_PRECISION_DEG = 5
MIN_ZOOM, MAX_ZOOM, FIT_MAX_ZOOM = 9, 18, 16


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
    categories = _facility_categories(facilities)
    of_circle = facility_sets(facilities)
    sites_ll = (_proposed_display(proposed_sites, config, basemap)
                if proposed_sites is not None and len(proposed_sites) > 0 else None)
    legends, groups = [], []
    for i, cid in enumerate(circle_ids):
        circle = rules[cid].circle
        group = _circle_group(circle, config, first=(i == 0))
        groups.append(group)
        rows = cov[cov["circle"] == cid].drop_duplicates("unit_code").set_index("unit_code")
        rows = rows.drop(columns=[c for c in rows.columns if c in units_ll.columns])
        feats = units_ll.join(rows, on="unit_code")
        fills = [_target_class(r)[1] for _, r in feats.iterrows()]
        tips = [_unit_tooltip(r, circle, config) for _, r in feats.iterrows()]
        layer = gpd.GeoDataFrame(
            {"fill": fills, "tip": tips, "circle": cid}, geometry=feats.geometry.values, crs="EPSG:4326"
        )
        _GeoJson(
            _feature_collection(layer),
            name=f"{cid} units",
            style_function=_fill_style,
            highlight_function=_highlight_style,
            tooltip=folium.GeoJsonTooltip(fields=["tip"], labels=False),
            control=False,
        ).add_to(group)
        colours = _category_colours(config, categories, cid)
        fac_own = fac_ll.take(of_circle(cid))
        _add_facilities(group, fac_own, cid, colours)
        sites_drawn = _add_proposed(group, sites_ll, cid, config) if sites_ll is not None else 0
        group.add_to(m)
        rows_html = (_district_line(cov, circle, config) + _target_legend_rows(circle, config)
                     + _sites_legend_row(config, sites_drawn)
                     + _category_legend_rows(config, colours, fac_own))
        legends.append((cid, _circle_label(circle), rows_html))

    street_kinds = _add_streets(m, streets, config, basemap, simplify_m=simplify_m)
    _add_unit_labels(m, shown_units, basemap)
    control = folium.LayerControl(collapsed=False)
    control.add_to(m)
    title_text = title or _t(config, config.title_zh, config.title_en, sep=" · ")
    _set_page_title(m, f"{title_text} — {_t(config, '覆盖率总览', 'coverage overview')}", config)
    _add_title_box(m, title_text, _esc(_t(config, "各街镇人口覆盖率（对照各自目标）",
                                          "population coverage of each unit against its target")),
                   config)
    _add_legend(m, legends, _street_legend_rows(street_kinds, config), config)
    _CircleSwitch(control, groups).add_to(m)
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
    # cells on one grid are drawn as the grid's own cells; others as boxes of the cell size
    grid = _lattice(ucells.geometry.x.to_numpy(), ucells.geometry.y.to_numpy())
    if grid is not None:
        size = None
    else:
        size = (cell_size_m, cell_size_m) if cell_size_m else _infer_cell_size(cells)

    outline = _Layer([unit_geom], {"tip": [_unit_title_html(unit_row)]})
    outline_ll = _display_layer(outline, crs, config, basemap, simplify_m=simplify_m)
    m = _base_map(outline_ll, basemap)

    near = _near_facility_mask(facilities, unit_geom, rules)
    # only the facilities drawn here (near the unit for some circle) get a popup
    drawn = np.logical_or.reduce(list(near.values())) if near else None
    fac_ll = _facilities_display(facilities, config, basemap, rows=drawn)
    categories = _facility_categories(facilities)
    window = _unit_window(unit_geom)
    sites_ll = None
    if proposed_sites is not None and len(proposed_sites):
        same_crs = proposed_sites.crs is None or proposed_sites.crs == crs
        sites_ll = _proposed_display(proposed_sites, config, basemap,
                                     near=unit_geom.buffer(500) if same_crs else None)

    legends, groups = [], []
    for i, cid in enumerate(circle_ids):
        circle = rules[cid].circle
        group = _circle_group(circle, config, first=(i == 0))
        groups.append(group)
        area = None
        if service_areas is not None and cid in service_areas:
            whole = service_areas[cid]
            area = _clip(whole, window) if whole is not None else None
        elif net is not None and node_times is not None and cid in node_times:
            area = _service_area(net, node_times[cid], rules[cid], window)
        drawn_area = _add_service_area(group, area, circle, config, basemap, crs, simplify_m)
        classes = _cell_classes(ucells, ures, circle, size, clip=unit_geom, grid=grid, config=config)
        if len(classes):
            _GeoJson(
                _feature_collection(
                    _display_layer(classes.assign(circle=cid), crs, config, basemap, simplify_m=simplify_m)
                ),
                style_function=_class_style,
                highlight_function=_highlight_style,
                tooltip=folium.GeoJsonTooltip(fields=["tip"], labels=False),
                control=False,
            ).add_to(group)
        colours = _category_colours(config, categories, cid)
        # near[cid]: the circle's own facilities near the unit
        fac_sub = fac_ll.take(near[cid][drawn]) if cid in near else fac_ll.take(np.zeros(len(fac_ll), bool))
        _add_facilities(group, fac_sub, cid, colours)
        sites_drawn = _add_proposed(group, sites_ll, cid, config) if sites_ll is not None else 0
        group.add_to(m)
        rows_html = (_time_legend_rows(circle, config, service_area=drawn_area)
                     + _sites_legend_row(config, sites_drawn)
                     + _category_legend_rows(config, colours, fac_sub))
        legends.append((cid, _circle_label(circle), rows_html))

    street_kinds = _add_streets(m, streets, config, basemap, window=window, simplify_m=simplify_m)
    # the outline has no fill, so it only catches the mouse on its stroke, not over the cells
    _GeoJson(
        _feature_collection(outline_ll),
        style_function=_outline_style,
        tooltip=folium.GeoJsonTooltip(fields=["tip"], labels=False),
        name="unit outline",
        control=False,
        smooth_factor=0.5,
    ).add_to(m)
    control = folium.LayerControl(collapsed=False)
    control.add_to(m)

    name_text = _t(config, str(unit_row.get("unit_name", "") or ""), str(unit_row.get("unit_name_en", "") or ""),
                   sep=" ")
    _set_page_title(m, f"{name_text} ({unit_code}) — {_t(config, '步行可达', 'walking access')}", config)
    _add_title_box(
        m,
        _esc(name_text) or _esc(unit_code),
        f"{_esc(_t(config, config.title_zh, config.title_en, sep=' · '))} · {_esc(unit_code)} · "
        + _esc(_t(config, "步行到最近设施", "walk to the nearest facility")),
        config,
        escaped=True,
    )
    _add_legend(m, legends, _street_legend_rows(street_kinds, config), config)
    _CircleSwitch(control, groups).add_to(m)
    return m


def _add_service_area(group, area, circle, config, basemap: str, crs, simplify_m: float) -> bool:
    """Draw a circle's reached streets under its cells; False when there is nothing to draw."""
    if area is None or area.is_empty:
        return False
    sa = _Layer([area], {"tip": [_service_area_tip(circle, config)]})
    _GeoJson(
        _feature_collection(_display_layer(sa, crs, config, basemap, simplify_m=simplify_m)),
        style_function=_service_area_style,
        tooltip=folium.GeoJsonTooltip(fields=["tip"], labels=False),
        control=False,
    ).add_to(group)
    return True


def _circle_group(circle, config, *, first: bool) -> folium.FeatureGroup:
    """A circle's layer: fills, facilities, sites. Circles are base layers of the layer control,
    so exactly one is shown at a time (radio buttons); its legend follows (:class:`_CircleSwitch`)."""
    group = folium.FeatureGroup(name=_esc(_circle_label(circle, config)), overlay=False, control=True,
                                show=first)
    group.acc_circle = circle.id
    return group


class _CircleSwitch(MacroElement):
    """Shows the legend of the circle chosen in the layer control; compact layout in an iframe.

    Embedded in another page (the report), the layer control and the legend start folded and the
    title box drops its second line, so the map itself stays visible.
    """

    _template = Template(
        """
        {% macro script(this, kwargs) %}
        (function () {
            var map = {{ this._parent.get_name() }};
            var control = {{ this.control.get_name() }};
            function showLegend(id) {
                document.querySelectorAll(".acc-circle-legend").forEach(function (el) {
                    el.style.display = el.getAttribute("data-circle") === id ? "" : "none";
                });
            }
            var circles = {};
            {%- for group in this.groups %}
            circles[L.stamp({{ group.get_name() }})] = {{ group.acc_circle|tojson }};
            {%- endfor %}
            map.on("baselayerchange", function (e) { showLegend(circles[L.stamp(e.layer)]); });
            var embedded = false;
            try { embedded = window.self !== window.top; } catch (err) { embedded = true; }
            if (embedded) {
                document.documentElement.classList.add("acc-embedded");
                control.remove();
                control.options.collapsed = true;
                control.addTo(map);
                document.querySelectorAll("details.acc-fold").forEach(function (d) { d.open = false; });
            }
        })();
        {% endmacro %}
        """
    )

    def __init__(self, control, groups):
        super().__init__()
        self._name = "CircleSwitch"
        self.control = control
        self.groups = list(groups)


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
    text = stable_element_ids(render_page(m))
    if embed_assets:
        text = embed_map_assets(text)
    return write_text_atomic(path, text)


# branca's MacroElement.render (and folium's Popup, Layer and GeoJson tooltip/popup renders) wrap
# each rendered header/html/script text in Element(text), which compiles that text as a Jinja
# template, and folium's GeoJsonTooltip/GeoJsonPopup compile their style template on every render:
# the maps' largest cost once the data were spliced in.
_JINJA_SYNTAX = ("{{", "{%", "{#", "\r")
_RENDER_LOCK = threading.Lock()


def _as_jinja_renders(text: str) -> str | None:
    """What Jinja renders for ``text`` when it holds no template syntax (None when it does):
    the text itself minus one trailing newline (Jinja's ``keep_trailing_newline=False``)."""
    if any(mark in text for mark in _JINJA_SYNTAX):
        return None
    return text[:-1] if text.endswith("\n") else text


class _PlainElement(Element):
    """branca's ``Element(template)`` for already rendered text: kept as the text Jinja would
    render from it, without compiling it (text with template syntax is compiled as before)."""

    def __init__(self, template: str | None = None, template_name: str | None = None):
        plain = _as_jinja_renders(str(template)) if template is not None and template_name is None else None
        if plain is None:
            super().__init__(template, template_name)
        else:
            super().__init__()
        self._plain = plain

    def render(self, **kwargs) -> str:
        return self._plain if self._plain is not None else super().render(**kwargs)


@functools.lru_cache(maxsize=64)
def _compiled_template(source: str):
    """folium's ``Template(source)``, compiled once per source text."""
    from folium.template import Template as FoliumTemplate

    return FoliumTemplate(source)


def _render_swaps() -> list[tuple[Any, str, Any]]:
    """(module, name, stand-in) for :func:`render_page`: the names the render methods look up."""
    import folium.features
    import folium.map

    swaps = [(branca.element, "Element", _PlainElement), (folium.features, "Element", _PlainElement),
             (folium.map, "Element", _PlainElement), (folium.features, "Template", _compiled_template)]
    return [(mod, name, new) for mod, name, new in swaps if hasattr(mod, name)]


def render_page(m: folium.Map) -> str:
    """The page of a map, as ``m.get_root().render()`` gives it.

    While rendering, the ``Element`` that branca's and folium's render methods wrap every rendered
    part in is :class:`_PlainElement` (the same text, not compiled as a template once more), and
    folium.features' ``Template`` is compiled once per source (:func:`_compiled_template`); tested
    against folium's own rendering. The swap holds a lock and is undone afterwards.
    """
    with _RENDER_LOCK:
        swaps = _render_swaps()
        saved = [(mod, name, getattr(mod, name)) for mod, name, _ in swaps]
        try:
            for mod, name, new in swaps:
                setattr(mod, name, new)
            return m.get_root().render()
        finally:
            for mod, name, old in saved:
                setattr(mod, name, old)


_FOLIUM_ID = re.compile(r"(?<=_)[0-9a-f]{32}(?![0-9a-f])")


def stable_element_ids(html: str) -> str:
    """Folium's random element ids (``map_<32 hex>``) numbered in order of appearance instead,
    so the same map gives the same bytes (ids keep their length and form).

    Examples
    --------
    >>> h = "ab" * 16
    >>> stable_element_ids(f"map_{h} geo_json_{h}_onEachFeature")
    'map_00000000000000000000000000000001 geo_json_00000000000000000000000000000001_onEachFeature'
    """
    ids: dict[str, str] = {}
    return _FOLIUM_ID.sub(lambda m: ids.setdefault(m.group(0), f"{len(ids) + 1:032x}"), html)


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
    holes = np.zeros(g.size)
    # lines have no holes: only polygons and collections are split into parts (a service area's
    # thousands of lines are not)
    polygonal = np.isin(shapely.get_type_id(g), (3, 6, 7))
    if polygonal.any():
        parts, idx = shapely.get_parts(g[polygonal], return_index=True)
        holes[polygonal] = np.bincount(idx, weights=shapely.get_num_interior_rings(parts),
                                       minlength=int(polygonal.sum()))
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


class _Layer:
    """Features to draw: geometries and their properties as equal-length object arrays (in
    column order, as a GeoDataFrame's columns).

    What a GeoDataFrame carries for a map layer without its cost per operation (1-2 ms for a
    constructor, a selection or a column drop under pandas 3: a unit map made hundreds).
    """

    __slots__ = ("geoms", "props")

    def __init__(self, geoms, props: Mapping[str, Any] | None = None):
        self.geoms = _objects(geoms)
        n = self.geoms.size
        self.props = {k: _objects(v) if _is_column(v) else _objects([v] * n) for k, v in (props or {}).items()}

    @classmethod
    def from_frame(cls, gdf: gpd.GeoDataFrame) -> _Layer:
        geom = gdf.geometry.name
        return cls(gdf.geometry.values, {c: gdf[c].to_numpy() for c in gdf.columns if c != geom})

    def __len__(self) -> int:
        return self.geoms.size

    def __getitem__(self, column: str) -> np.ndarray:
        return self.props[column]

    def take(self, sel) -> _Layer:
        """The features at ``sel`` (a boolean mask or positions)."""
        return _Layer(self.geoms[sel], {k: v[sel] for k, v in self.props.items()})

    def assign(self, **columns) -> _Layer:
        return _Layer(self.geoms, {**self.props, **columns})

    def with_geoms(self, geoms) -> _Layer:
        return _Layer(geoms, self.props)

    @property
    def total_bounds(self) -> np.ndarray:
        return shapely.total_bounds(self.geoms)


def _is_column(v) -> bool:
    return isinstance(v, list | tuple | np.ndarray | pd.Series | pd.Index)


def _objects(values) -> np.ndarray:
    """A 1-d object array of ``values`` (geometries or property values kept as they are)."""
    values = values.to_numpy() if isinstance(values, pd.Series | pd.Index) else values
    out = np.empty(len(values), dtype=object)
    out[:] = list(values)
    return out


def _display_geoms(geoms, crs, config, basemap: str, *, simplify_m: float) -> np.ndarray:
    """Simplify in metres, reproject to WGS-84, shift for Amap, round coordinates."""
    crs = CRS.from_user_input(crs if crs is not None else config.crs)
    geoms = _objects(geoms)
    if simplify_m and simplify_m > 0 and crs.is_projected:
        geoms = _simplify(geoms, simplify_m)
    geoms = _to_wgs84(geoms, crs)
    if basemap == "amap":
        geoms = _to_gcj02(geoms)
    return _round_coords(geoms)


def _display_layer(layer: _Layer, crs, config, basemap: str, *, simplify_m: float) -> _Layer:
    """:func:`_display_geoms` of a layer in ``crs`` (None: the area's CRS)."""
    return layer.with_geoms(_display_geoms(layer.geoms, crs, config, basemap, simplify_m=simplify_m))


def _display_frame(
    gdf: gpd.GeoDataFrame, config, basemap: str, *, simplify_m: float
) -> gpd.GeoDataFrame:
    """:func:`_display_geoms` of a GeoDataFrame's geometries, as a GeoDataFrame in WGS-84."""
    geoms = _display_geoms(gdf.geometry.values, gdf.crs, config, basemap, simplify_m=simplify_m)
    attrs = pd.DataFrame(gdf.drop(columns=gdf.geometry.name)).reset_index(drop=True)
    return gpd.GeoDataFrame(attrs, geometry=gpd.GeoSeries(list(geoms), index=attrs.index),
                            crs="EPSG:4326")


@functools.lru_cache(maxsize=8)
def _wgs84_transformer(crs: CRS) -> Transformer:
    return Transformer.from_crs(crs, "EPSG:4326", always_xy=True)


def _to_wgs84(geoms: np.ndarray, crs) -> np.ndarray:
    """Geometries in ``crs`` reprojected to WGS-84 (one vectorised pass over the coordinates)."""
    crs = CRS.from_user_input(crs)
    if crs.equals(CRS.from_epsg(4326)) or not len(geoms):
        return geoms
    tr = _wgs84_transformer(crs)

    def project(xy):
        lon, lat = tr.transform(xy[:, 0], xy[:, 1])
        return np.column_stack([lon, lat])

    return shapely.transform(geoms, project)


def _feature_collection(gdf: gpd.GeoDataFrame | _Layer) -> dict:
    """GeoJSON dict with ids "0".."n-1" (folium keys its per-feature styles on them).

    The geometries are kept as GeoJSON text from ``shapely.to_geojson`` (vectorised) under
    ``acc_geometries``, each feature's ``geometry`` naming its entry: :class:`_GeoJson` writes
    them into the page as they are, so the coordinates are never parsed into Python objects and
    dumped again (about ten times faster than ``GeoDataFrame.to_json`` on large polygons).
    :func:`_plain_geojson` gives the ordinary dict.
    """
    layer = gdf if isinstance(gdf, _Layer) else _Layer.from_frame(gdf)
    geoms = layer.geoms
    keep = ~(shapely.is_missing(geoms) | shapely.is_empty(geoms))
    keys = list(layer.props)
    columns = [[_json_value(v) for v in layer.props[k][keep]] for k in keys]
    records = [dict(zip(keys, r, strict=True)) for r in zip(*columns, strict=True)] if keys else (
        [{} for _ in range(int(keep.sum()))])
    features = [
        {"id": str(i), "type": "Feature", "properties": r, "geometry": f"{_GEOM_TOKEN}{i}@"}
        for i, r in enumerate(records)
    ]
    raw = shapely.to_geojson(geoms[keep]).tolist() if keep.any() else []
    return {"type": "FeatureCollection", "features": features, "acc_geometries": raw}


_GEOM_TOKEN = "@acc-geometry-"
_GEOM_TOKEN_RE = re.compile(r'"geometry": "' + _GEOM_TOKEN + r'(\d+)@"')


def _plain_geojson(fc: dict) -> dict:
    """A :func:`_feature_collection` result as an ordinary GeoJSON dict (geometries parsed)."""
    raw = fc.get("acc_geometries")
    if raw is None:
        return fc
    feats = [dict(f, geometry=json.loads(raw[int(f["geometry"][len(_GEOM_TOKEN):-1])]))
             for f in fc["features"]]
    return {"type": "FeatureCollection", "features": feats}


def _json_value(v):
    """A property value as JSON can hold it (NaN -> null, numpy scalars -> Python)."""
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not np.isfinite(v):
        return None
    return v


class _Raw(Element):
    """Rendered text kept as it is (branca would compile an element's text as a Jinja template)."""

    def __init__(self, text: str):
        super().__init__()
        self._text = text

    def render(self, **_kwargs) -> str:
        return self._text


class _GeoJson(folium.GeoJson):
    """``folium.GeoJson`` whose data never pass through Jinja.

    branca compiles every element's rendered script once more as a Jinja template: for a map's
    large GeoJSON that compilation costs more than everything else, and a name from OSM or an
    inventory containing ``{{`` would be evaluated as template code. This class renders its
    script with a tiny stand-in for the data and puts the real JSON in afterwards, in an
    element that is never compiled. The page is the same as folium's.
    """

    def __init__(self, data, **kwargs):
        self._acc_geometries = None
        if isinstance(data, dict) and "acc_geometries" in data:
            data = dict(data)
            self._acc_geometries = data.pop("acc_geometries")
        super().__init__(data, **kwargs)

    def render(self, **kwargs):
        from folium.features import GeoJsonStyleMapper
        from folium.utilities import get_obj_in_upper_tree
        from jinja2.utils import htmlsafe_json_dumps

        real = self.data
        feats = real["features"]
        self.parent_map = get_obj_in_upper_tree(self, folium.Map)
        if (self.style or self.highlight) and feats:
            mapper = GeoJsonStyleMapper(real, self.feature_identifier, self)
            if self.style:
                self.style_map = mapper.get_style_map(self.style_function)
            if self.highlight:
                self.highlight_map = mapper.get_highlight_map(self.highlight_function)
        keys = list(feats[0]["properties"]) if feats else []
        stub = {"acc_payload": self.get_name(), "type": "FeatureCollection",
                "features": [{"type": "Feature", "properties": dict.fromkeys(keys), "geometry": None}]
                if feats else []}
        self.data = stub
        try:
            super(folium.GeoJson, self).render(**kwargs)  # folium.GeoJson.render minus the style maps
        finally:
            self.data = real
        script = self.get_root().script
        text = script._children[self.get_name()].render()
        stub_json = htmlsafe_json_dumps(stub, sort_keys=True)
        if text.count(stub_json) != 1:
            raise RuntimeError("maps._GeoJson: folium's GeoJson template changed; the data stand-in "
                               "was not found once in the rendered script")
        payload = htmlsafe_json_dumps(real)
        if self._acc_geometries is not None:
            raw = self._acc_geometries
            payload = _GEOM_TOKEN_RE.sub(lambda mt: '"geometry": ' + raw[int(mt.group(1))], payload)
        script._children[self.get_name()] = _Raw(text.replace(stub_json, payload))


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
        # zoom bounds: beyond street level a small area's page gets too big to draw (headless
        # Chromium: "tile memory limits exceeded"); MarkerCluster needs the map's own maxZoom
        # when there are no tiles (basemap="none")
        **{"minZoom": MIN_ZOOM, "maxZoom": MAX_ZOOM},
    )
    if basemap == "osm":
        folium.TileLayer("OpenStreetMap", name="OpenStreetMap", control=False).add_to(m)
    elif basemap == "amap":
        folium.TileLayer(
            tiles=AMAP_TILES,
            attr=AMAP_ATTRIBUTION,
            name="高德地图 Amap",
            subdomains="1234",
            max_zoom=MAX_ZOOM,
            control=False,
        ).add_to(m)
    else:
        css = f"<style>.leaflet-container {{ background: {NO_BASEMAP_BACKGROUND}; }}</style>"
        m.get_root().header.add_child(Element(css))
    m.fit_bounds([[float(miny), float(minx)], [float(maxy), float(maxx)]], max_zoom=FIT_MAX_ZOOM)
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


def _cell_classes(ucells, ures, circle, size, *, clip=None, grid=None, config=None) -> _Layer:
    """Dissolve the unit's cells into one polygon per time/distance class.

    ``grid`` is the cells' :func:`_lattice` (computed once per unit map for all its circles);
    without it the cells are ``size`` boxes (width, height in metres). The classes are
    :func:`accessibility.coverage.time_classes`, shared with the atlas.
    """
    from accessibility.coverage import time_classes

    weight = (
        pd.to_numeric(ucells[circle.weight_column], errors="coerce").fillna(0.0).to_numpy()
        if circle.weight_column in ucells.columns
        else np.zeros(len(ucells))
    )
    cls = time_classes(ures, circle)  # 0-2: thirds of the threshold, 3: not covered
    labels = _class_labels(circle, config)
    who = _t(config, "60岁以上", "aged 60+") if circle.population == "60plus" else _t(config, "人", "people")
    cells_word = _t(config, "格", "cells")
    shapes = _class_shapes(ucells.geometry.x.to_numpy(), ucells.geometry.y.to_numpy(), cls, size,
                           grid=grid)
    keys = list(shapes)
    geoms = _objects([shapes[k] for k in keys])
    if clip is not None:
        geoms = shapely.intersection(geoms, clip)
    head = f"<b>{_esc(_t(config, circle.label_zh, circle.label_en, sep=' / '))}</b><br>"
    tips = []
    for k in keys:
        sel = cls == k
        pop = float(weight[sel].sum())
        tips.append(f"{head}{_esc(labels[k])}<br>{pop:,.0f} {_esc(who)} · {int(sel.sum())} {_esc(cells_word)}")
    fills = [UNCOVERED_COLOUR if k == 3 else TIME_CLASS_COLOURS[k] for k in keys]
    return _Layer(geoms, {"cls": keys, "fill": fills, "tip": tips})


def _class_shapes(x, y, cls, size, *, grid="auto") -> dict[int, Any]:
    """One (Multi)Polygon per class value of the cells at ``x, y``.

    Cells on one regular grid (a population raster, even a slightly rotated one in the projected
    CRS) are drawn as the raster's own cells: the class grid is polygonised by
    ``rasterio.features.shapes`` (fast, exact tiling). Other cells fall back to the union of
    ``size`` boxes around their centres (:func:`_boxes_union`, the brute-force definition).
    ``grid`` is the points' :func:`_lattice` when already known ("auto": fitted here).
    """
    if isinstance(grid, str):
        grid = _lattice(x, y)
    if grid is None:
        if size is None:
            size = _infer_cell_size(gpd.GeoDataFrame(geometry=gpd.points_from_xy(x, y)))
        return {int(k): _boxes_union(x[cls == k], y[cls == k], size) for k in np.unique(cls)}
    from rasterio.features import shapes
    from rasterio.transform import Affine

    ij, (origin, e1, e2) = grid
    lo = ij.min(axis=0)
    ni, nj = ij.max(axis=0) - lo + 1
    arr = np.full((nj, ni), -1, dtype=np.int32)
    arr[ij[:, 1] - lo[1], ij[:, 0] - lo[0]] = cls
    corner = origin + (lo[0] - 0.5) * e1 + (lo[1] - 0.5) * e2
    transform = Affine(e1[0], e2[0], corner[0], e1[1], e2[1], corner[1])
    parts: dict[int, list] = {}
    for geom, value in shapes(arr, mask=arr >= 0, connectivity=4, transform=transform):
        rings = [np.asarray(r, dtype=float) for r in geom["coordinates"]]  # shell, then holes
        parts.setdefault(int(value), []).append(shapely.Polygon(rings[0], rings[1:]))
    return {k: shapely.multipolygons(v) if len(v) > 1 else v[0] for k, v in sorted(parts.items())}


def _boxes_union(x, y, size: tuple[float, float]):
    """Union of ``size`` boxes around the points (closing removes a rotated grid's slivers)."""
    hw, hh = size[0] / 2, size[1] / 2
    boxes = shapely.box(np.round(x - hw, 3), np.round(y - hh, 3), np.round(x + hw, 3), np.round(y + hh, 3))
    return shapely.union_all(boxes).buffer(0.1 * hw, join_style="mitre").buffer(-0.1 * hw, join_style="mitre")


def _lattice(x, y, *, tol: float = 0.2):
    """Integer grid positions of points on one regular (possibly rotated, rectangular) grid.

    Returns ``(ij, (origin, e1, e2))`` with ``(x, y) = origin + i * e1 + j * e2`` up to ``tol``
    of a step for every point (least-squares fit), or None when the points are not on one grid
    (too few, one row only, irregular, or two points in one grid cell).
    """
    from scipy.spatial import cKDTree

    xy = np.column_stack([np.asarray(x, float), np.asarray(y, float)])
    n = len(xy)
    if n < 4:
        return None
    _, idx = cKDTree(xy).query(xy, k=min(5, n))
    vec = (xy[idx[:, 1:]] - xy[:, None, :]).reshape(-1, 2)
    steps = []
    for axis in (0, 1):
        along, across = np.abs(vec[:, axis]), np.abs(vec[:, 1 - axis])
        v = vec[along > 2.0 * across]  # within ~27 degrees of the axis: no diagonals
        if not len(v):
            return None
        v = v * np.sign(v[:, axis])[:, None]
        length = np.hypot(v[:, 0], v[:, 1])
        v = v[length <= 1.5 * np.quantile(length, 0.1)]  # one step, not two
        steps.append(np.median(v, axis=0))
    basis = np.column_stack(steps)
    if abs(np.linalg.det(basis)) < 1e-9:
        return None
    ij = np.linalg.solve(basis, (xy - xy[0]).T).T
    r = np.round(ij)
    if np.abs(ij - r).max() > tol:
        return None
    design = np.column_stack([np.ones(n), r])
    coef, *_ = np.linalg.lstsq(design, xy, rcond=None)
    origin, e1, e2 = coef
    step = min(np.hypot(*e1), np.hypot(*e2))
    if np.hypot(*(xy - design @ coef).T).max() > tol * step:
        return None
    ij = r.astype(np.int64)
    if len(np.unique(ij, axis=0)) != n:
        return None
    return ij, (origin, e1, e2)


def _class_labels(circle, config=None) -> list[str]:
    """Labels of a circle's cell classes: thirds of its threshold, then beyond / not reached."""
    if circle.mode == "time":
        b = [circle.threshold / 60 * k / 3 for k in range(4)]
        unit = "min"
    else:
        b = [circle.threshold * k / 3 for k in range(4)]
        unit = "m"
    beyond = f"> {b[3]:g} {unit} " + (_t(config, "或不可达", "or not reached") if config is not None
                                      else "或不可达 / not covered")
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
    lo, hi = np.minimum(u, v), np.maximum(u, v)
    # the node pairs in lexicographic order, as np.unique(..., axis=0) sorts them (one int64 key
    # per pair is ten times faster than sorting rows)
    n = int(hi.max()) + 1 if hi.size else 1
    key = np.unique(lo * n + hi)
    pairs = np.column_stack([key // n, key % n])
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
    lines = _Layer(streets.geometry.values, {"kind": streets["kind"].to_numpy()})
    if window is not None:
        lines = lines.with_geoms(_clip(lines.geoms, window))
    fc = _feature_collection(_display_layer(lines, streets.crs, config, basemap, simplify_m=simplify_m))
    if not len(fc["features"]):
        return []
    folium.map.CustomPane("acc-streets", z_index=450, pointer_events=False).add_to(m)
    styles = {k: dict(v, interactive=False) for k, v in STREET_STYLES.items()}
    drawn = {f["properties"]["kind"] for f in fc["features"]}
    kinds = [k for k in STREET_STYLES if k in drawn]
    _GeoJson(
        fc,
        name=_esc(" · ".join(_t(config, *_STREET_LAYER_NAMES[k]) for k in kinds)),
        style_function=lambda f: styles.get(f["properties"]["kind"], styles["minor"]),
        pane="acc-streets",
        interactive=False,
        control=True,
        show=True,
    ).add_to(m)
    return kinds


_STREET_LABELS = {"major": ("主要道路", "main street"), "minor": ("其他道路", "other street or path"),
                  "steps": ("台阶", "stairs")}
_STREET_LAYER_NAMES = {"major": ("主要道路", "main streets"), "minor": ("其他道路", "other streets"),
                       "steps": ("台阶", "stairs")}


def _street_legend_rows(kinds, config=None) -> str:
    """Legend rows for the street kinds actually drawn (none when nothing was drawn)."""
    kinds = set(kinds or ())
    line = {"major": "3px solid", "minor": "1px solid", "steps": "3px dashed"}
    rows = "".join(
        f'<div><span class="ln" style="border-top:{line[k]} {STREET_STYLES[k]["color"]}"></span>'
        f"{_esc(_t(config, *_STREET_LABELS[k]))}</div>"
        for k in STREET_STYLES if k in kinds
    )
    return f"<h3>{_esc(_t(config, '街道', 'streets'))}</h3>{rows}" if rows else ""


def service_areas(net, node_times: Mapping[str, np.ndarray], rules) -> dict:
    """Service area of each circle over the whole network, for many :func:`unit_map` calls.

    A circle's service area is the streets it reaches: the network edges whose both ends are
    reached within the threshold, joined into long lines. Computed once for the whole area and
    clipped per unit map.

    Parameters
    ----------
    net : WalkNetwork
    node_times : mapping of circle id to numpy.ndarray
        From :func:`circle_node_times`.
    rules : AreaConfig or iterable of CircleRule
        The circles' rules (their threshold test decides which streets are reached).

    Returns
    -------
    dict of circle id to shapely geometry ((Multi)LineString, or None when nothing is reached)

    Examples
    --------
    >>> from accessibility.demo import example_grid
    >>> g = example_grid()
    >>> areas = service_areas(g.net, circle_node_times(g.net, g.facilities, g.rules), g.rules)
    >>> round(areas["shop"].length)
    200
    """
    from accessibility.rules import as_rules

    by_id = {r.id: r for r in as_rules(rules)}
    return {cid: _service_area(net, t, by_id[cid], None) for cid, t in node_times.items() if cid in by_id}


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
    return gdf if CRS.from_user_input(gdf.crs).equals(CRS.from_user_input(target)) else gdf.to_crs(target)


def _unit_window(unit_geom, pad_m: float = 2000.0) -> tuple[float, float, float, float]:
    """The unit's surroundings drawn on its map: its box grown by ``pad_m`` (xmin, ymin, xmax, ymax)."""
    xmin, ymin, xmax, ymax = shapely.bounds(unit_geom)
    return xmin - pad_m, ymin - pad_m, xmax + pad_m, ymax + pad_m


def _clip(geoms, window):
    """Geometries cut to a ``(xmin, ymin, xmax, ymax)`` window (GEOS' rectangle clip, fast)."""
    return shapely.clip_by_rect(geoms, *window)


def _service_area(net, times, rule, window):
    """Network edges whose both ends the rule calls reached (in ``window`` when given), joined
    into long lines at their shared end nodes."""
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
    if window is not None:
        # edges whose bounding box misses the window cannot reach into it: dropped before any geometry
        xmin, ymin, xmax, ymax = window
        near = ((np.minimum(x[u], x[v]) <= xmax) & (np.maximum(x[u], x[v]) >= xmin)
                & (np.minimum(y[u], y[v]) <= ymax) & (np.maximum(y[u], y[v]) >= ymin))
        u, v = u[near], v[near]
    if not u.size:
        return None
    lines = _merged(_segments(x, y, u, v))
    if window is not None:
        lines = _clip(lines, window)
    return None if lines.is_empty else lines


def _near_facility_mask(facilities, unit_geom, rules) -> dict[str, np.ndarray]:
    """Facilities of each circle within reach of the unit (straight-line threshold + 200 m)."""
    out = {}
    if facilities is None or not len(facilities):
        return out
    dist = np.asarray(shapely.distance(np.asarray(facilities.geometry.values), unit_geom))
    of_circle = facility_sets(facilities)  # the rules' facility_mask, parsed once for all circles
    for cid, rule in rules.items():
        reach = rule.threshold * rule.walk_speed_mps  # seconds x m/s, or metres x 1
        out[cid] = of_circle(rule.id) & (dist <= reach + 200.0)
    return out


# ---------------------------------------------------------------------------------------------
# facilities and sites


def _facilities_display(facilities, config, basemap, rows=None) -> _Layer:
    """Facilities (those of the boolean mask ``rows`` when given) in display coordinates with
    ``category``, ``circles`` and their popup, in the order of ``facilities``."""
    if facilities is not None and rows is not None:
        facilities = facilities.iloc[np.flatnonzero(rows)]
    if facilities is None or not len(facilities):
        return _Layer([], {"category": [], "circles": [], "popup": []})
    fac = facilities
    n = len(fac)
    cat_labels = {k: f"{c.label_zh} / {c.label_en}" for k, c in config.categories.items()}

    def col(name):
        return fac[name].tolist() if name in fac.columns else [None] * n

    def blank(v) -> bool:
        return v is None or (not isinstance(v, str) and pd.isna(v))

    popups = []
    for name, cat, cap, source, fid in zip(col("name"), col("category"), col("capacity"),
                                           col("source"), col("fac_id"), strict=True):
        cat = "" if blank(cat) else str(cat)
        cap_txt = "—" if blank(cap) else f"{float(cap):,.0f}"
        name = "（无名称 unnamed）" if blank(name) or not str(name) else str(name)
        popups.append(
            f"<b>{_esc(name)}</b><br>类别 category: {_esc(cat_labels.get(cat, cat))}"
            f"<br>容量 capacity: {_esc(cap_txt)}<br>来源 source: {_esc('' if blank(source) else source)}"
            + (f"<br>编号 id: {_esc(fid)}" if "fac_id" in fac.columns else "")
        )
    layer = _Layer(
        fac.geometry.values,
        {
            "category": fac["category"].astype(str).to_numpy() if "category" in fac.columns else "",
            "circles": fac["circles"].fillna("").astype(str).to_numpy()
            if "circles" in fac.columns
            else "",
            "popup": popups,
        },
    )
    return _display_layer(layer, fac.crs or config.crs, config, basemap, simplify_m=0)


def _facility_categories(facilities) -> set[str]:
    """The facilities' categories as drawn (text; "" for a table without the column)."""
    if facilities is None or not len(facilities):
        return set()
    return set(facilities["category"].astype(str)) if "category" in facilities.columns else {""}


def _category_colours(config, categories: set[str], cid: str | None = None) -> dict[str, str]:
    """Marker colour of each facility category; per circle (its own categories first) when ``cid``."""
    cats = list(config.categories)
    if cid is not None and cid in config.circles:
        own = [c for c in getattr(config.circles[cid], "categories", []) or [] if c in config.categories]
        cats = own + [c for c in cats if c not in own]
    extra = sorted(categories - set(cats))
    return {c: CATEGORY_PALETTE[i % len(CATEGORY_PALETTE)] for i, c in enumerate(cats + extra)}


def _add_facilities(group, sub: _Layer, cid: str, colours: dict[str, str]) -> None:
    """The circle's facilities ``sub`` (already selected) as clustered markers."""
    if not len(sub):
        return
    sub = _Layer(sub.geoms, {"colour": [colours.get(c, "#333333") for c in sub["category"]],
                             "popup": sub["popup"]})
    # grey bubbles (see _BOX_CSS), never in the fills' colours; labels sit above them (own pane)
    cluster = MarkerCluster(
        name=f"{cid} facilities",
        control=False,
        options={"disableClusteringAtZoom": 15, "maxClusterRadius": 35, "showCoverageOnHover": False},
    )
    _GeoJson(
        _feature_collection(sub),
        marker=folium.CircleMarker(
            radius=6, weight=1.5, color="#222222", fill=True, fill_opacity=0.9
        ),
        style_function=_marker_style,
        popup=folium.GeoJsonPopup(fields=["popup"], labels=False, max_width=320),
        control=False,
    ).add_to(cluster)
    cluster.add_to(group)


def _proposed_display(sites, config, basemap: str, near=None) -> _Layer:
    """Proposed sites (those in ``near`` when given) in display coordinates, with ``circle``
    (None: every circle), ``rank``, ``site_id``, ``added`` and ``lon``/``lat`` in WGS-84."""
    if near is not None and len(sites):
        sites = sites.loc[sites.geometry.intersects(near)]
    if sites.crs is None:
        sites = sites.set_crs(config.crs)
    geoms = np.asarray(sites.geometry.values, dtype=object)
    wgs = _to_wgs84(geoms, sites.crs)
    shown = _to_gcj02(wgs) if basemap == "amap" else wgs

    def col(name, default):
        return sites[name].to_numpy() if name in sites.columns else [default] * len(sites)

    return _Layer(_round_coords(shown), {
        "circle": sites["circle"].astype(str).to_numpy() if "circle" in sites.columns else None,
        "rank": col("rank", ""), "site_id": col("site_id", ""),
        "added": col("added_covered_population", np.nan),
        "lon": shapely.get_x(wgs), "lat": shapely.get_y(wgs)})


def _add_proposed(group, sites: _Layer, cid: str, config) -> int:
    """Numbered badges for the circle's proposed sites (:func:`_proposed_display`); returns how many."""
    sites = sites.take(np.array([c is None or c == cid for c in sites["circle"]], dtype=bool))
    if not len(sites):
        return 0
    circle_name = _esc(_t(config, config.circles[cid].label_zh, config.circles[cid].label_en))
    # lon/lat in WGS-84 whatever the basemap: what a planner types into a GPS or a site survey
    p = sites.props
    for g, rank, site_id, added, lon, lat in zip(sites.geoms, p["rank"], p["site_id"], p["added"], p["lon"],
                                                 p["lat"], strict=True):
        rank_txt = "" if rank is None or pd.isna(rank) else f"{int(rank)}"
        added_txt = "—" if added is None or pd.isna(added) else f"{float(added):,.0f}"
        popup = (
            f"<b>{_esc(_t(config, '建议新址', 'proposed site'))} #{_esc(rank_txt)}</b>"
            f"<br>{_esc(_t(config, '编号', 'id'))}: {_esc(site_id)}"
            f"<br>{_esc(_t(config, '新增覆盖人口', 'added covered population'))}: {_esc(added_txt)}"
            f"<br>{_esc(_t(config, '服务圈', 'circle'))}: {circle_name}"
            f"<br>{_esc(_t(config, '经纬度', 'lon, lat'))} (WGS-84): {float(lon):.5f}, {float(lat):.5f}"
        )
        width = 22 + 8 * len(rank_txt)
        icon = folium.DivIcon(
            html=f'<div class="acc-site" title="proposed site {_esc(rank_txt)}">★{_esc(rank_txt)}</div>',
            icon_size=(width, 22),
            icon_anchor=(width // 2, 11),
            class_name="acc-site-icon",
        )
        folium.Marker(
            location=[g.y, g.x],
            icon=icon,
            popup=folium.Popup(popup, max_width=320),
            z_index_offset=1000,
        ).add_to(group)
    return len(sites)


# ---------------------------------------------------------------------------------------------
# styles (evaluated in Python per feature by folium)


def _fill_style(feature) -> dict:
    return {
        "fillColor": feature["properties"]["fill"],
        "color": "#333333",
        "weight": 1,
        "fillOpacity": 0.75,
        # lets a test (and a planner's CSS) tell which circle's fills are drawn
        "className": f"acc-fill acc-fill-{feature['properties'].get('circle', '')}",
    }


def _class_style(feature) -> dict:
    uncovered = feature["properties"]["cls"] == 3
    return {
        "fillColor": feature["properties"]["fill"],
        "color": "#000000" if uncovered else feature["properties"]["fill"],
        "weight": 1.5 if uncovered else 0.5,
        "dashArray": "4 3" if uncovered else None,
        "fillOpacity": 0.7,
        "className": f"acc-fill acc-fill-{feature['properties'].get('circle', '')}",
    }


def _highlight_style(_feature) -> dict:
    return {"weight": 3, "color": "#000000", "fillOpacity": 0.85}


def _outline_style(_feature) -> dict:
    return {"fill": False, "color": "#000000", "weight": 3}


def _service_area_style(_feature) -> dict:
    # wide, light strokes drawn under the cells: where the network reach goes beyond them
    return {"color": SERVICE_AREA_COLOUR, "weight": 6, "opacity": 0.55, "lineCap": "round",
            "lineJoin": "round", "fill": False}


def _marker_style(feature) -> dict:
    return {"fillColor": feature["properties"]["colour"]}


def _target_class(row) -> tuple[str, str, str, str]:
    """Class of a coverage row against its own target: (id, fill, label zh, label en).

    Meeting the target is the coverage table's verdict (``meets_target``, from
    :func:`accessibility.coverage.coverage_by_unit`); without it, share >= target. The shortfall
    classes split ``coverage_share - target_share`` at -5 and -20 points.
    """
    share = row.get("coverage_share")
    target = row.get("target_share")
    if share is None or pd.isna(share) or target is None or pd.isna(target):
        return "no_data", NO_DATA_COLOUR, "无数据", "no data"
    meets = row.get("meets_target")
    met = bool(meets) if meets is not None and not pd.isna(meets) else float(share) >= float(target)
    if met:
        return TARGET_CLASSES[0][0], TARGET_CLASSES[0][2], TARGET_CLASSES[0][3], TARGET_CLASSES[0][4]
    diff = float(share) - float(target)
    for cid, lo, colour, zh, en in TARGET_CLASSES[1:]:
        if diff >= lo:
            return cid, colour, zh, en
    return TARGET_CLASSES[-1][0], TARGET_CLASSES[-1][2], TARGET_CLASSES[-1][3], TARGET_CLASSES[-1][4]


# ---------------------------------------------------------------------------------------------
# text


def _esc(value: Any) -> str:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return ""
    # braces too: folium renders popups and labels through Jinja, where "{{ ... }}" would run
    return html.escape(str(value), quote=True).replace("{", "&#123;").replace("}", "&#125;")


def _t(config, zh: str, en: str, *, sep: str = " ") -> str:
    """A fixed label in the area's language (``config.language``; see accessibility.labels)."""

    return pick(zh, en, getattr(config, "language", "bilingual") or "bilingual", sep=sep)


def _pct(x) -> str:
    return "—" if x is None or pd.isna(x) else f"{100 * float(x):.1f} %"


def _circle_label(circle, config=None) -> str:
    names = _t(config, circle.label_zh, circle.label_en, sep=" / ") if config is not None else (
        f"{circle.label_zh} / {circle.label_en}")
    return f"{names} ({circle.threshold_label})"


def _unit_title_html(r) -> str:
    return f"<b>{_esc(r.get('unit_name', ''))}</b> {_esc(r.get('unit_name_en', ''))} ({_esc(r.get('unit_code', ''))})"


def _unit_tooltip(r, circle, config) -> str:
    meets = r.get("meets_target")
    yes, no = _t(config, "是", "yes"), _t(config, "否", "no")
    meets_txt = "—" if meets is None or pd.isna(meets) else (yes if bool(meets) else no)
    gap = r.get("gap_population")
    gap_txt = "—" if gap is None or pd.isna(gap) else f"{float(gap):,.0f}"
    _, _, cls_zh, cls_en = _target_class(r)
    return (
        f"{_unit_title_html(r)}<br><i>{_esc(_t(config, circle.label_zh, circle.label_en, sep=' / '))}</i>"
        f"<br>{_esc(_t(config, '覆盖率', 'coverage'))}: {_pct(r.get('coverage_share'))}"
        f"<br>{_esc(_t(config, '目标', 'target'))}: {_pct(r.get('target_share', circle.target_share))}"
        f"<br>{_esc(_t(config, '缺口', 'gap'))}: {gap_txt} {_esc(_t(config, '人', 'people'))}"
        f"<br>{_esc(_t(config, '达标', 'meets target'))}: {_esc(meets_txt)}"
        f"<br><b>{_esc(_t(config, cls_zh, cls_en))}</b>"
    )


def _service_area_tip(circle, config) -> str:
    return _esc(_t(config, f"服务范围：{circle.label_zh}，{circle.threshold_label}内可达的街道",
                   f"service area: {circle.label_en}, streets reached within {circle.threshold_label}"))


def _district_line(cov: pd.DataFrame, circle, config) -> str:
    """The whole district's coverage of the circle (its legend's first line), or ""."""
    row = cov[(cov["unit_code"] == str(config.district_code)) & (cov["circle"] == circle.id)]
    if not len(row):
        return ""
    name, name_en = district_names(config)
    return (f"<div><b>{_esc(_t(config, name + '覆盖率', name_en + ' coverage'))}: "
            f"{_pct(row['coverage_share'].iloc[0])}</b></div>")


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
.acc-legend summary { cursor: pointer; font-weight: bold; margin: 2px 0; }
.acc-legend h2 { font-size: 12px; margin: 4px 0 2px 0; }
.acc-legend h3 { font-size: 11px; margin: 4px 0 1px 0; }
.acc-legend .sw { display: inline-block; width: 14px; height: 12px; margin-right: 5px;
  vertical-align: middle; border: 1px solid #555; }
.acc-legend .ln { display: inline-block; width: 16px; height: 0; margin-right: 5px;
  vertical-align: middle; }
.acc-legend .dot { display: inline-block; width: 10px; height: 10px; margin-right: 5px;
  border-radius: 50%; vertical-align: middle; border: 1.5px solid #222; }
.acc-synthetic { color: #c00000; font-weight: bold; }
.acc-site { background: #000; color: #fff; border: 2px solid #fff; border-radius: 11px;
  font: bold 12px/18px sans-serif; text-align: center; white-space: nowrap;
  box-shadow: 0 0 0 1px #000, 0 1px 4px rgba(0,0,0,0.5); }
.acc-site-icon { background: none; border: none; }
.acc-legend .acc-site { display: inline-block; padding: 0 5px; margin-right: 5px; font-size: 10px;
  line-height: 14px; }
.acc-label-icon { background: none; border: none; pointer-events: none; }
.acc-label { text-align: center; font: bold 12px/1.15 sans-serif; color: #222;
  text-shadow: 0 0 3px #fff, 0 0 3px #fff, 0 0 3px #fff; white-space: nowrap; }
.acc-label span { font-weight: normal; font-size: 10px; }
.marker-cluster-small, .marker-cluster-medium, .marker-cluster-large {
  background-color: rgba(40, 40, 40, 0.25); }
.marker-cluster-small div, .marker-cluster-medium div, .marker-cluster-large div {
  background-color: rgba(40, 40, 40, 0.85); color: #fff; font-weight: bold; }
.acc-embedded .acc-title { padding: 3px 6px; max-width: 260px; }
.acc-embedded .acc-title h1 { font-size: 12px; }
.acc-embedded .acc-title .acc-sub, .acc-embedded .acc-title .acc-synthetic { display: none; }
.acc-embedded .acc-legend { bottom: 20px; max-height: 45%; max-width: 250px; font-size: 11px; }
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
        f'<div class="acc-box acc-title"><h1>{t}</h1><div class="acc-sub">{subtitle}</div>'
        f"{_synthetic_html(config)}</div>"
    )
    m.get_root().add_child(_Box(body, _BOX_CSS))


def _add_legend(m, legends, common_rows: str, config) -> None:
    """Legend box: one block per circle (only the shown circle's is visible), then the rows common
    to all circles (streets), folded into a <details> that starts closed when embedded."""
    hidden = ' style="display:none"'
    blocks = "".join(
        f'<div class="acc-circle-legend" data-circle="{_esc(cid)}"{"" if i == 0 else hidden}>'
        f"<h2>{_esc(label)}</h2>{rows}</div>"
        for i, (cid, label, rows) in enumerate(legends)
    )
    body = (
        f'<div class="acc-box acc-legend"><details class="acc-fold" open>'
        f"<summary>{_esc(_t(config, '图例', 'legend'))}</summary>{blocks}{common_rows}</details>"
        f"{_synthetic_html(config)}</div>"
    )
    m.get_root().add_child(_Box(body))


def _swatch(colour: str, label: str, *, dashed: bool = False) -> str:
    border = ";border:2px dashed #000" if dashed else ""
    return f'<div><span class="sw" style="background:{colour}{border}"></span>{_esc(label)}</div>'


def _target_legend_rows(circle, config) -> str:
    """The overview's classes against the circle's target."""
    head = _t(config, "覆盖率对照目标", "coverage against the target")
    rows = "".join(_swatch(colour, _t(config, zh, en)) for _, _, colour, zh, en in TARGET_CLASSES)
    rows += _swatch(NO_DATA_COLOUR, _t(config, "无数据", "no data"))
    target = _t(config, "目标", "target") + f" {_pct(circle.target_share)}"
    return f"<h3>{_esc(head)} ({_esc(target)})</h3>{rows}"


def _time_legend_rows(circle, config, *, service_area: bool = True) -> str:
    """A unit map's classes of the circle: thirds of its threshold, then not covered."""
    head = (_t(config, "步行时间", "walking time") if circle.mode == "time"
            else _t(config, "步行距离", "walking distance"))
    labels = _class_labels(circle, config)
    rows = "".join(_swatch(TIME_CLASS_COLOURS[k], labels[k]) for k in range(3))
    rows += _swatch(UNCOVERED_COLOUR, labels[3], dashed=True)
    if service_area:
        rows += (f'<div><span class="ln" style="border-top:6px solid {SERVICE_AREA_COLOUR}"></span>'
                 f"{_esc(_t(config, '服务范围（可达街道）', 'service area (reached streets)'))}</div>")
    return f"<h3>{_esc(head)}</h3>{rows}"


def _sites_legend_row(config, n_sites: int) -> str:
    if not n_sites:
        return ""
    text = _t(config, "建议新址（数字为排序）", "proposed site, numbered by rank")
    return f'<div><span class="acc-site">★1</span>{_esc(text)}</div>'


def _category_legend_rows(config, colours, fac_ll: _Layer) -> str:
    """Facility categories of the facilities drawn (``fac_ll``, one circle's)."""
    if not len(fac_ll):
        return ""
    present = list(dict.fromkeys(str(c) for c in fac_ll["category"]))
    rows = []
    for c in [c for c in colours if c in present]:
        cat = config.categories.get(c)
        label = _t(config, cat.label_zh, cat.label_en, sep=" / ") if cat else c
        rows.append(
            f'<div><span class="dot" style="background:{colours[c]}"></span>{_esc(label)}</div>'
        )
    if not rows:
        return ""
    return f"<h3>{_esc(_t(config, '设施', 'facilities'))}</h3>" + "".join(rows)
