"""The printable atlas (图集): ``atlas.pdf``, A4, one page per street/town and plan circle.

Pages, in order:

1. a cover: the area, the run (its date is in run.json), the data status (a red SYNTHETIC DEMO banner naming the synthetic
   layers when any layer is synthetic), a map of the units and the contents;
2. per plan circle a district summary: key figures, coverage per unit against its target, the
   siting curve and the distribution of walking times (:mod:`accessibility.figures`);
3. per unit and plan circle: a static map (cells by walking time, uncovered cells, facilities,
   proposed sites, the unit's outline, legend, scale bar, north arrow, source and data-status
   note), the unit's key figures and its fewest-sites answer.

Pages are drawn with matplotlib (:class:`matplotlib.figure.Figure`, no pyplot) into
:class:`~matplotlib.backends.backend_pdf.PdfPages`, in two halves (the second in a side task of
:mod:`accessibility._parallel`, beside the first) joined in page order by pypdf with fixed metadata
(no creation date, no file id), so the same run gives the same file, in one process or two.
Chinese labels use the CJK font found by :func:`accessibility.figures.cjk_font_family`; labels
follow the area's ``language``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

import accessibility
from accessibility import figures as fig_mod
from accessibility.labels import district_names, pick

__all__ = ["ATLAS_NAME", "write_atlas"]

log = logging.getLogger(__name__)

#: File name of the atlas in a run folder (fixed).
ATLAS_NAME = "atlas.pdf"

A4_IN = (8.27, 11.69)
_MAP_BOX = (0.06, 0.27, 0.88, 0.64)  # left, bottom, width, height of a unit page's map (figure fraction)
_FACILITY_COLOUR = "#000000"
_SITE_COLOUR = "#cc79a7"  # reddish purple: never one of the time-class fills
_BANNER_RED = "#c00000"


@dataclass
class _Run:
    """What every page needs, gathered once."""

    config: object
    units: object
    cells: object
    results: pd.DataFrame
    coverage: pd.DataFrame
    facilities: object
    siting: Mapping
    streets: tuple  # (segments of main streets, of other streets): arrays n x 2 x 2 in metres
    outlines: dict  # unit_code -> matplotlib Path of the unit's polygon (holes included)
    cell_size: tuple[float, float]
    language: str
    date: str
    source_note: str


def write_atlas(path: str | Path, study, results: pd.DataFrame, coverage: pd.DataFrame,
                siting: Mapping[str, Mapping] | None = None, *, language: str | None = None,
                date: str | None = None, circles: list[str] | None = None) -> Path:
    """Write the printable A4 atlas of a run.

    Parameters
    ----------
    path : str or Path
        Destination (a run writes ``atlas.pdf`` in its folder).
    study : accessibility.pipeline.StudyArea
    results : pandas.DataFrame
        Per-cell results (indexed like ``study.cells``).
    coverage : pandas.DataFrame
        The ``coverage_by_unit`` table.
    siting : mapping of circle id to siting result, optional
        Proposed sites, the siting curve and the fewest sites per unit.
    language : {"zh", "en", "bilingual"}, optional
        Default: the area's ``language``.
    date : str, optional
        Date on the cover (default: none; the cover says the run date is in ``run.json``, so the
        same inputs give the same file on any day).
    circles : list of str, optional
        Default: the plan circles.

    Returns
    -------
    pathlib.Path

    Examples
    --------
    >>> # a run writes it: accessibility.pipeline.run(config)  ->  <run folder>/atlas.pdf
    >>> ATLAS_NAME
    'atlas.pdf'
    """
    from accessibility._io import write_bytes_atomic
    from accessibility._parallel import two_halves

    cfg = study.config
    ids = circles if circles is not None else [c.id for c in cfg.circles.values() if c.plan]
    run = _gather(study, results, coverage, siting or {}, language=language, date=date)
    codes = sorted(study.units["unit_code"].astype(str))
    pages = [("cover", ids, codes)] + [("district", cid) for cid in ids] + \
        [("unit", code, cid) for code in codes for cid in ids]
    # the second half is drawn beside the first (accessibility._parallel): two PDF files, joined
    # in page order; the halves depend only on the page count, so one process gives the same file
    parts = [p for p in two_halves(lambda part, k: _draw_pages(run, part, k + 1), pages) if p is not None]
    meta = {"Title": f"{cfg.title_zh} · {cfg.title_en} — atlas", "Author": "accessibility",
            "Subject": cfg.data_status, "Creator": f"accessibility {accessibility.__version__}",
            "Producer": "accessibility"}
    write_bytes_atomic(Path(path), _join_pdfs(parts, meta))
    log.info("atlas: %d pages -> %s", len(pages), path)
    return Path(path)


def _draw_pages(run: _Run, pages: list[tuple], first_number: int) -> bytes:
    """The given pages as one PDF file (bytes); ``first_number`` is the first page's number."""
    import io

    from matplotlib.backends.backend_pdf import PdfPages

    buf = io.BytesIO()
    with fig_mod.figure_style(), PdfPages(buf, metadata={"CreationDate": None, "Producer": "accessibility"}) as pdf:
        for n, (kind, *what) in enumerate(pages, start=first_number):
            if kind == "cover":
                pdf.savefig(_cover(run, *what))
            elif kind == "district":
                pdf.savefig(_district_page(run, what[0], n))
            else:
                pdf.savefig(_unit_page(run, what[0], what[1], n), dpi=150)
    return buf.getvalue()


def _join_pdfs(parts: list[bytes], meta: Mapping[str, str]) -> bytes:
    """PDF files joined in order (pypdf), with the atlas's metadata (no date, no file id)."""
    import io

    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter()
    for data in parts:
        writer.append(PdfReader(io.BytesIO(data)))
    writer.add_metadata({f"/{k}": v for k, v in meta.items()})
    buf = io.BytesIO()
    writer.write(buf)
    return buf.getvalue()


def _gather(study, results, coverage, siting, *, language, date) -> _Run:
    from accessibility import traveltime as tt
    from accessibility.maps import _infer_cell_size

    cfg = study.config
    lang = language or getattr(cfg, "language", "bilingual")
    _, fsnap = tt.snap(study.network, study.facilities.geometry.x.to_numpy(), study.facilities.geometry.y.to_numpy())
    by_status: dict[str, list[str]] = {}
    for p in study.provenance():
        by_status.setdefault(str(p["status"]), []).append(str(p["layer"]).split(":")[0])
    note = pick("数据", "Data", lang) + ": " + "; ".join(
        f"{status} {', '.join(dict.fromkeys(layers))}" for status, layers in sorted(by_status.items()))
    note += " · " + pick("路网 © OpenStreetMap 贡献者", "network © OpenStreetMap contributors", lang) \
        if not cfg.is_synthetic else ""
    if cfg.is_synthetic:
        note = "SYNTHETIC DEMO " + pick("合成示例数据，非真实数据", "— not real data", lang) + " · " + note
    return _Run(
        config=cfg, units=study.units, cells=study.cells, results=results, coverage=coverage,
        # facilities farther than max_snap_m from any street serve nobody (as in coverage and maps)
        facilities=study.facilities[fsnap <= cfg.max_snap_m], siting=siting, streets=_street_segments(study.network),
        outlines={str(c): _polygon_path(g) for c, g in zip(study.units["unit_code"], study.units.geometry,
                                                             strict=True)},
        cell_size=_infer_cell_size(study.cells), language=lang,
        date=date or "", source_note=note,
    )


def _polygon_path(geom):
    """A (Multi)Polygon as one matplotlib Path (exteriors and holes; even-odd filling)."""
    import shapely
    from matplotlib.path import Path as MplPath

    verts, codes = [], []
    for poly in getattr(geom, "geoms", [geom]):
        for ring in [poly.exterior, *poly.interiors]:
            xy = shapely.get_coordinates(ring)
            if len(xy) < 3:
                continue
            verts.append(xy)
            codes.append(np.r_[MplPath.MOVETO, np.full(len(xy) - 2, MplPath.LINETO), MplPath.CLOSEPOLY])
    if not verts:
        return MplPath(np.zeros((1, 2)))
    return MplPath(np.concatenate(verts), np.concatenate(codes).astype(np.uint8))


def _outlines(ax, run: _Run, codes, *, facecolor="none", edgecolor="#333333", linewidth=0.6, zorder=1):
    """The units' outlines as one collection (the axes' limits are set by the page, not by them)."""
    from matplotlib.collections import PathCollection

    paths = [run.outlines[str(code)] for code in codes]
    if paths:
        ax.add_collection(PathCollection(paths, facecolors=facecolor, edgecolors=edgecolor, linewidths=linewidth,
                                         zorder=zorder), autolim=False)


def _street_segments(net) -> tuple[np.ndarray, np.ndarray]:
    """Main and other walkable street segments (each once), as n x 2 x 2 arrays of metres."""
    e = net.edges
    u, v = e["u"].to_numpy(np.int64), e["v"].to_numpy(np.int64)
    keep = u < v
    hw = e["highway"].astype(str).str.removesuffix("_link").to_numpy()[keep]
    u, v = u[keep], v[keep]
    x, y = net.nodes["x"].to_numpy(float), net.nodes["y"].to_numpy(float)
    seg = np.stack([np.column_stack([x[u], y[u]]), np.column_stack([x[v], y[v]])], axis=1)
    major = np.isin(hw, ["motorway", "trunk", "primary", "secondary", "tertiary"])
    return seg[major], seg[~major]


def _t(run: _Run, zh: str, en: str) -> str:
    return pick(zh, en, run.language)


def _dz(run: _Run) -> str:
    """The whole area's name (the config's district row), Chinese side."""
    return district_names(run.config)[0]


def _de(run: _Run) -> str:
    """The whole area's name, English side."""
    return district_names(run.config)[1]


def _page(run: _Run, title: str, subtitle: str, number: int | None):
    fig = fig_mod._figure(*A4_IN)
    fig.set_layout_engine(None)
    fig.text(0.06, 0.965, title, fontsize=15, fontweight="bold", va="top")
    fig.text(0.06, 0.935, subtitle, fontsize=9.5, color="#444444", va="top")
    if run.config.is_synthetic:
        fig.text(0.94, 0.965, "SYNTHETIC DEMO", fontsize=10, fontweight="bold", color="white", ha="right", va="top",
                 bbox={"boxstyle": "square,pad=0.3", "facecolor": _BANNER_RED, "edgecolor": _BANNER_RED})
    fig.text(0.06, 0.02, _wrap(run.source_note, 150), fontsize=6, color="#555555", va="bottom")
    if number is not None:
        fig.text(0.94, 0.02, str(number), fontsize=8, ha="right", va="bottom")
    return fig


def _wrap(text: str, width: int) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(text, width=width, break_long_words=True)[:3])


# ---------------------------------------------------------------------------------------------
# cover and district pages


def _cover(run: _Run, ids: list[str], codes: list[str]):
    cfg = run.config
    title = (f"{cfg.title_zh}\n{cfg.title_en}" if run.language == "bilingual"
             else pick(cfg.title_zh, cfg.title_en, run.language))
    fig = _page(run, "", "", None)
    fig.text(0.06, 0.93, title, fontsize=17, fontweight="bold", va="top", linespacing=1.4)
    fig.text(0.06, 0.85, _t(run, "公共服务可达性图集", "Public-service accessibility atlas"), fontsize=13, va="top")
    lines = [
        # no clock time unless asked for: the same inputs give the same file on any day
        (f"{_t(run, '日期', 'Date')}: {run.date}" if run.date
         else _t(run, "运行日期见 run.json", "run date: see run.json")),
        f"{_t(run, '运行', 'Run')}: {cfg.run_id} · accessibility {accessibility.__version__}",
        f"{_t(run, '数据状态', 'Data status')}: " + (_t(run, "含合成示例图层", "synthetic demo layers")
                                                 if cfg.is_synthetic else _t(run, "真实数据", "real data")),
    ]
    fig.text(0.06, 0.815, "\n".join(lines), fontsize=9.5, va="top", linespacing=1.5)
    if cfg.is_synthetic:
        banner = ("SYNTHETIC DEMO 合成示例数据 — not real data\n"
                  + _t(run, "以下图层为合成示例数据，结果不可用于规划决策：",
                       "these layers are synthetic; the results must not be used for planning:")
                  + "\n" + _wrap(", ".join(cfg.synthetic_layers), 100))
        fig.text(0.075, 0.735, banner, fontsize=9, color=_BANNER_RED, fontweight="bold", va="top",
                 linespacing=1.4,
                 bbox={"boxstyle": "square,pad=0.7", "facecolor": "#fde8e8", "edgecolor": _BANNER_RED})
    _units_map(fig.add_axes(_COVER_MAP), run, codes)
    names = dict(zip(run.units["unit_code"].astype(str), run.units["unit_name"].astype(str), strict=False))
    en = dict(zip(run.units["unit_code"].astype(str), run.units["unit_name_en"].astype(str), strict=False))
    contents = []
    for k, cid in enumerate(ids):
        c = cfg.circles[cid]
        contents.append(f"{k + 2:>3}   {pick(c.label_zh, c.label_en, run.language)}: "
                        + _t(run, _dz(run) + "概况", _de(run) + " summary"))
    page = 2 + len(ids)
    for k, code in enumerate(codes, start=1):
        contents.append(f"{page:>3}   [{k}] {pick(names.get(code, code), en.get(code, ''), run.language)} ({code})")
        page += len(ids)
    fig.text(0.06, 0.305, _t(run, "目录", "Contents"), fontsize=10, fontweight="bold", va="top")
    fig.text(0.06, 0.285, "\n".join(contents), fontsize=7.5, va="top", linespacing=1.35)
    return fig


_COVER_MAP = (0.06, 0.33, 0.88, 0.30)  # the cover's map box (figure fraction)


def _units_map(ax, run: _Run, codes: list[str]) -> None:
    """The cover's map: every unit's outline and name; where two names would overlap (estimated
    from their lengths: 6.5 pt text, a Chinese character two columns) or touch the north arrow or
    the scale bar (drawn in a strip below the units), the units' numbers in the contents instead."""
    units = run.units
    _outlines(ax, run, units["unit_code"])
    x0, y0, x1, y1 = units.total_bounds
    y0 -= 0.12 * (y1 - y0)  # a strip below the units for the scale bar
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    by_code = {str(c): r for c, (_, r) in zip(units["unit_code"], units.iterrows(), strict=True)}
    pts = np.array([[p.x, p.y] for p in (by_code[c].geometry.representative_point() for c in codes)])
    names = [pick(str(by_code[c]["unit_name"]), str(by_code[c].get("unit_name_en", "")), run.language)
             for c in codes]
    per_pt = max((x1 - x0) / (_COVER_MAP[2] * A4_IN[0] * 72), (y1 - y0) / (_COVER_MAP[3] * A4_IN[1] * 72))
    half_w = np.array([(_display_len(n) + 5) * 6.5 * 0.55 / 2 for n in names]) * per_pt
    half_h = 6.5 * 0.7 * per_pt
    dx = np.abs(pts[:, None, 0] - pts[None, :, 0])
    dy = np.abs(pts[:, None, 1] - pts[None, :, 1])
    overlap = (dx < half_w[:, None] + half_w[None, :]) & (dy < 2 * half_h)
    np.fill_diagonal(overlap, False)
    crowded = overlap.any(axis=1) | _on_furniture(pts, half_w, half_h, (x0, y0, x1, y1), per_pt)
    for k, (name, (px, py), tight) in enumerate(zip(names, pts, crowded, strict=True), start=1):
        ax.text(px, py, str(k) if tight else f"[{k}] {name}", fontsize=7 if tight else 6.5,
                fontweight="bold" if tight else "normal", ha="center", va="center")
    ax.set_aspect("equal")
    ax.set_axis_off()
    _north_arrow(ax)
    _scale_bar(ax)


def _on_furniture(pts: np.ndarray, half_w: np.ndarray, half_h: float, window, per_pt: float) -> np.ndarray:
    """Which labels (centres ``pts``, half sizes in map units) would touch the scale bar (bottom
    left, with its labels) or the north arrow (top left) of :func:`_scale_bar` / :func:`_north_arrow`."""
    x0, y0, x1, y1 = window
    w, h = x1 - x0, y1 - y0
    scale = (x0, y0, x0 + 0.03 * w + _nice_length(w) + 12 * per_pt, y0 + 0.06 * h + 10 * per_pt)
    north = (x0, y0 + 0.86 * h - 10 * per_pt, x0 + 0.05 * w + 10 * per_pt, y1)
    hit = np.zeros(len(pts), dtype=bool)
    for bx0, by0, bx1, by1 in (scale, north):
        hit |= ((pts[:, 0] - half_w < bx1) & (pts[:, 0] + half_w > bx0)
                & (pts[:, 1] - half_h < by1) & (pts[:, 1] + half_h > by0))
    return hit


def _district_page(run: _Run, cid: str, number: int):
    cfg = run.config
    c = cfg.circles[cid]
    fig = _page(run, pick(c.label_zh, c.label_en, run.language), _t(run, _dz(run) + "概况", _de(run) + " summary")
                + f" · {cfg.title_en if run.language == 'en' else cfg.title_zh}", number)
    d = run.coverage[(run.coverage["circle"] == cid) & (run.coverage["unit_code"].astype(str) == str(cfg.district_code))]
    units = run.coverage[(run.coverage["circle"] == cid) & (run.coverage["unit_code"].astype(str) != str(cfg.district_code))]
    if len(d):
        r = d.iloc[0]
        kpi = (f"{_t(run, _dz(run) + '覆盖率', _de(run) + ' coverage')} {100 * float(r['coverage_share']):.1f} %   ·   "
               f"{_t(run, '目标', 'target')} {100 * float(r['target_share']):.0f} %   ·   "
               f"{_t(run, '未覆盖', 'uncovered')} {float(r['uncovered_population']):,.0f}   ·   "
               f"{_t(run, '达标街镇', 'units meeting the target')} {int(units['meets_target'].sum())} / {len(units)}")
        fig.text(0.06, 0.905, kpi, fontsize=9.5, va="top")
    fig_mod.plot_coverage_bars(fig.add_axes((0.27, 0.56, 0.68, 0.31)), run.coverage, cid,
                               district_code=cfg.district_code, language=run.language,
                               title=_t(run, "各街镇覆盖率与目标", "coverage per unit against its target"))
    if cid in run.siting:
        fig_mod.plot_siting_curve(fig.add_axes((0.10, 0.30, 0.78, 0.20)), run.siting[cid].get("curve"),
                                  run.siting[cid].get("summary", {}), target_share=c.target_share,
                                  language=run.language,
                                  title=_t(run, "新增设施与新增覆盖人口", "new sites and newly covered people"))
    fig_mod.plot_time_distribution(fig.add_axes((0.10, 0.07, 0.84, 0.17)), run.cells, run.results, c,
                                   language=run.language,
                                   title=_t(run, "步行时间分布（按人口加权）", "walking times, weighted by people"))
    return fig


# ---------------------------------------------------------------------------------------------
# unit pages


def _unit_page(run: _Run, code: str, cid: str, number: int):
    cfg = run.config
    c = cfg.circles[cid]
    unit = run.units[run.units["unit_code"].astype(str) == code].iloc[0]
    name = pick(str(unit["unit_name"]), str(unit.get("unit_name_en", "")), run.language)
    kind = str(unit.get("unit_kind", "") or "")
    fig = _page(run, f"{name}  {code}", pick(c.label_zh, c.label_en, run.language)
                + (f" · {kind}" if kind else ""), number)
    ax = fig.add_axes(_MAP_BOX)
    sites = _unit_map(ax, run, unit, c)
    _key_figures(fig, run, code, c, sites)
    return fig


def _fit_bounds(geom, box_w_in: float, box_h_in: float, pad: float = 0.06) -> tuple[float, float, float, float]:
    x0, y0, x1, y1 = geom.bounds
    w, h = (x1 - x0) * (1 + 2 * pad), (y1 - y0) * (1 + 2 * pad)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    if w / h < box_w_in / box_h_in:
        w = h * box_w_in / box_h_in
    else:
        h = w * box_h_in / box_w_in
    return cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2


def _unit_map(ax, run: _Run, unit, circle) -> pd.DataFrame:
    """Draw one unit's map for one circle; returns the proposed sites drawn (rank, people added).

    Cells and streets (drawn one after the other) are one raster image in the PDF (150 dpi); the
    outlines, symbols and text stay vector.
    """
    from matplotlib.patches import PathPatch

    box_w, box_h = _MAP_BOX[2] * A4_IN[0], _MAP_BOX[3] * A4_IN[1]
    x0, y0, x1, y1 = _fit_bounds(unit.geometry, box_w, box_h)
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_aspect("equal", adjustable="box")
    ax.set_facecolor("#f4f4f4")
    ax.set_xticks([])
    ax.set_yticks([])
    code = str(unit["unit_code"])
    _outlines(ax, run, [c for c in run.outlines if c != code], facecolor="#e6e6e6", edgecolor="#9a9a9a")
    _outlines(ax, run, [code], facecolor="white", edgecolor="none")
    _draw_cells(ax, run, circle, code, (x0, y0, x1, y1), box_w)
    for segs, colour, lw in ((run.streets[1], "#8c8c8c", 0.25), (run.streets[0], "#555555", 0.8)):
        inside = _in_window(segs, (x0, y0, x1, y1))
        if inside.any():
            # add_artist, not add_patch: the limits are the page's, and 100k segments need no data-limit update
            ax.add_artist(PathPatch(_segments_path(segs[inside]), facecolor="none", edgecolor=colour, linewidth=lw,
                                    zorder=3, rasterized=True))
    _outlines(ax, run, [code], edgecolor="#000000", linewidth=1.6, zorder=5)
    from accessibility.coverage import circle_facilities

    fac = run.facilities[circle_facilities(run.facilities, circle.id)]
    fx, fy = fac.geometry.x.to_numpy(), fac.geometry.y.to_numpy()
    near = (fx >= x0) & (fx <= x1) & (fy >= y0) & (fy <= y1)
    ax.scatter(fx[near], fy[near], marker="^", s=34, color=_FACILITY_COLOUR, edgecolors="white", linewidths=0.7,
               zorder=6)
    sites = _unit_sites(run, circle.id, str(unit["unit_code"]))
    if len(sites):
        ax.scatter(sites["x"], sites["y"], marker="*", s=190, color=_SITE_COLOUR, edgecolors="black",
                   linewidths=0.7, zorder=7)
        for _, s in sites.iterrows():
            ax.annotate(str(int(s["rank"])), (s["x"], s["y"]), xytext=(5, 4), textcoords="offset points",
                        fontsize=8, fontweight="bold", zorder=8,
                        bbox={"boxstyle": "round,pad=0.15", "facecolor": "white", "edgecolor": _SITE_COLOUR,
                              "linewidth": 0.6})
    _legend(ax, run, circle, sites=_axes_fraction(sites, (x0, y0, x1, y1)))
    _north_arrow(ax)
    _scale_bar(ax)
    return sites


def _segments_path(segs: np.ndarray):
    """Line segments (n x 2 x 2) as one matplotlib Path of n two-point pieces."""
    from matplotlib.path import Path as MplPath

    codes = np.tile(np.array([MplPath.MOVETO, MplPath.LINETO], dtype=np.uint8), len(segs))
    return MplPath(segs.reshape(-1, 2), codes)


def _in_window(segs: np.ndarray, window) -> np.ndarray:
    if not len(segs):
        return np.zeros(0, dtype=bool)
    x0, y0, x1, y1 = window
    xs, ys = segs[:, :, 0], segs[:, :, 1]
    return (xs.max(axis=1) >= x0) & (xs.min(axis=1) <= x1) & (ys.max(axis=1) >= y0) & (ys.min(axis=1) <= y1)


def _draw_cells(ax, run: _Run, circle, code: str, window, box_w_in: float) -> None:
    """The unit's populated cells as squares coloured by time class (one raster image in the PDF)."""
    from accessibility.coverage import time_classes
    from accessibility.maps import TIME_CLASS_COLOURS, UNCOVERED_COLOUR

    x0, y0, x1, y1 = window
    cx, cy = run.cells.geometry.x.to_numpy(), run.cells.geometry.y.to_numpy()
    pad = max(run.cell_size)
    sel = (cx >= x0 - pad) & (cx <= x1 + pad) & (cy >= y0 - pad) & (cy <= y1 + pad)
    sel &= run.cells["unit_code"].astype(str).to_numpy() == code
    sel &= pd.to_numeric(run.cells[circle.weight_column], errors="coerce").fillna(0).to_numpy() > 0
    if not sel.any():
        return
    cls = time_classes(run.results.loc[run.cells.index[sel]], circle)
    colours = np.array([*TIME_CLASS_COLOURS, UNCOVERED_COLOUR])[cls]
    # marker side in points = cell side in metres x points per metre of this map
    side_pt = max(run.cell_size) * box_w_in * 72 / (x1 - x0)
    ax.scatter(cx[sel], cy[sel], marker="s", s=side_pt**2, c=colours, linewidths=0, zorder=2, rasterized=True)


def _unit_sites(run: _Run, cid: str, code: str) -> pd.DataFrame:
    res = run.siting.get(cid) or {}
    sites = res.get("sites")
    if sites is None or not len(sites):
        return pd.DataFrame(columns=["rank", "x", "y", "added_covered_population"])
    s = sites[sites["unit_code"].astype(str) == code]
    return pd.DataFrame({"rank": s["rank"].to_numpy(), "x": s.geometry.x.to_numpy(), "y": s.geometry.y.to_numpy(),
                         "added_covered_population": s["added_covered_population"].to_numpy()})


def _axes_fraction(sites: pd.DataFrame, window) -> np.ndarray:
    """The sites' positions as fractions of the map window (n x 2)."""
    x0, y0, x1, y1 = window
    return np.column_stack([(sites["x"].to_numpy(float) - x0) / (x1 - x0),
                            (sites["y"].to_numpy(float) - y0) / (y1 - y0)])


#: Where a unit map's legend may go, in order of preference: (loc, anchor box); the left corners
#: leave room for the scale bar (bottom) and the north arrow (top).
_LEGEND_PLACES = (("lower right", (0, 0, 1, 1)), ("upper right", (0, 0, 1, 1)),
                  ("lower left", (0, 0.1, 1, 0.9)), ("upper left", (0.1, 0, 0.9, 1)))


def _legend_place(labels: list[str], sites: np.ndarray) -> tuple[str, tuple]:
    """The first place of :data:`_LEGEND_PLACES` whose legend box covers the fewest proposed sites.

    The box is estimated from the labels (6.5 pt text, a Chinese character two columns) so no
    text has to be measured; sites within a star's size and its rank label of the box count.

    Examples
    --------
    >>> _legend_place(["0-5 min"], np.array([[0.95, 0.05]]))[0]
    'upper right'
    """
    box_w_pt, box_h_pt = _MAP_BOX[2] * A4_IN[0] * 72, _MAP_BOX[3] * A4_IN[1] * 72
    w = (max(map(_display_len, labels)) * 6.5 * 0.55 + 32) / box_w_pt
    h = (len(labels) * 6.5 * 1.75 + 10) / box_h_pt
    margin = 0.03
    best = None
    for k, (loc, (ax0, ay0, aw, ah)) in enumerate(_LEGEND_PLACES):
        left = ax0 + 0.01 if "left" in loc else ax0 + aw - 0.01 - w
        bottom = ay0 + 0.01 if "lower" in loc else ay0 + ah - 0.01 - h
        inside = ((sites[:, 0] > left - margin) & (sites[:, 0] < left + w + margin)
                  & (sites[:, 1] > bottom - margin) & (sites[:, 1] < bottom + h + margin)) if len(sites) else []
        key = (int(np.sum(inside)), k)
        if best is None or key < best[0]:
            best = (key, loc, (ax0, ay0, aw, ah))
    return best[1], best[2]


def _legend(ax, run: _Run, circle, *, sites: np.ndarray) -> None:
    """The map's legend, placed where it covers no proposed site (:func:`_legend_place`)."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    from accessibility.maps import TIME_CLASS_COLOURS, UNCOVERED_COLOUR

    unit = "min" if circle.mode == "time" else "m"
    limit = circle.threshold / 60 if circle.mode == "time" else circle.threshold
    b = [limit * k / 3 for k in range(4)]
    handles = [Patch(color=TIME_CLASS_COLOURS[k], label=f"{b[k]:g}–{b[k + 1]:g} {unit}") for k in range(3)]
    handles.append(Patch(color=UNCOVERED_COLOUR, label=_t(run, f"未覆盖（> {limit:g} {unit} 或不可达）",
                                                          f"not covered (> {limit:g} {unit} or not reached)")))
    handles.append(Line2D([], [], marker="^", ls="", color=_FACILITY_COLOUR, markeredgecolor="white", ms=7,
                          label=_t(run, "现有设施", "existing facility")))
    if len(sites):
        handles.append(Line2D([], [], marker="*", ls="", color=_SITE_COLOUR, markeredgecolor="black", ms=11,
                              label=_t(run, "建议新增（排序）", "proposed site (rank)")))
    handles.append(Line2D([], [], color="#000000", lw=1.6, label=_t(run, "本街镇边界", "unit boundary")))
    handles.append(Line2D([], [], color="#555555", lw=0.8, label=_t(run, "道路", "streets")))
    loc, anchor = _legend_place([h.get_label() for h in handles], sites)
    ax.legend(handles=handles, loc=loc, bbox_to_anchor=anchor, fontsize=6.5, framealpha=0.92).set_zorder(20)


def _north_arrow(ax) -> None:
    """A north arrow top left (the projected grid's north; UTM grid convergence is below 2°)."""
    ax.annotate("", xy=(0.05, 0.97), xytext=(0.05, 0.89), xycoords="axes fraction",
                arrowprops={"arrowstyle": "-|>,head_width=0.35,head_length=0.7", "color": "black", "lw": 1.6},
                zorder=10)
    ax.text(0.05, 0.875, "N 北", transform=ax.transAxes, ha="center", va="top", fontsize=8, fontweight="bold",
            zorder=10)


def _nice_length(span_m: float) -> float:
    """A round scale-bar length near a quarter of the map's width (1, 2 or 5 x 10^k metres).

    Examples
    --------
    >>> _nice_length(9000.0)
    2000.0
    """
    target = span_m / 4
    k = 10 ** np.floor(np.log10(target))
    return float(max(m * k for m in (1, 2, 5) if m * k <= target))


def _scale_bar(ax) -> None:
    x0, x1 = ax.get_xlim()
    y0, y1 = ax.get_ylim()
    length = _nice_length(x1 - x0)
    bx, by = x0 + 0.03 * (x1 - x0), y0 + 0.04 * (y1 - y0)
    h = 0.012 * (y1 - y0)
    ax.add_patch(_rect(bx, by, length / 2, h, "black"))
    ax.add_patch(_rect(bx + length / 2, by, length / 2, h, "white"))
    label = f"{length / 1000:g} km" if length >= 1000 else f"{length:g} m"
    ax.text(bx, by + 1.6 * h, "0", fontsize=7, ha="center", va="bottom", zorder=11)
    ax.text(bx + length, by + 1.6 * h, label, fontsize=7, ha="center", va="bottom", zorder=11)


def _rect(x, y, w, h, colour):
    from matplotlib.patches import Rectangle

    return Rectangle((x, y), w, h, facecolor=colour, edgecolor="black", linewidth=0.8, zorder=11)


def _key_figures(fig, run: _Run, code: str, circle, sites: pd.DataFrame) -> None:
    """The unit's figures (left), its fewest-sites answer and proposed sites (right)."""
    row = run.coverage[(run.coverage["circle"] == circle.id) & (run.coverage["unit_code"].astype(str) == code)]
    left = [_t(run, "主要指标", "Key figures")]
    if len(row):
        r = row.iloc[0]
        unit = r.get("t_unit", "min")
        who = _t(run, "60岁以上居民", "residents aged 60+") if circle.population == "60plus" else \
            _t(run, "居民", "residents")
        meets = bool(r["meets_target"])
        left += [
            f"{_t(run, '需求人口', 'demand')} ({who}): {float(r['population']):,.0f}",
            f"{_t(run, '覆盖率', 'coverage')}: {100 * float(r['coverage_share']):.1f} %   "
            f"{_t(run, '目标', 'target')}: {100 * float(r['target_share']):.0f} %",
            _t(run, "达标", "meets the target") if meets else _t(run, "未达标", "short of the target"),
            f"{_t(run, '未覆盖', 'uncovered')}: {float(r['uncovered_population']):,.0f}   "
            f"{_t(run, '缺口', 'gap')}: {float(r['gap_population']):,.0f}",
            f"{_t(run, '中位', 'median')}: {_num(r.get('median_t'), unit)}   P90: {_num(r.get('p90_t'), unit)}",
        ]
        flat = r.get("coverage_share_flat")
        if flat is not None and pd.notna(flat):
            left.append(f"{_t(run, '平地覆盖率', 'coverage on flat ground')}: {100 * float(flat):.1f} %")
    fig.text(0.06, 0.25, _wrap_lines(left, 62), fontsize=8.5, va="top", linespacing=1.5)
    fig.text(0.52, 0.25, _wrap_lines(_fewest_lines(run, code, circle, sites), 62), fontsize=8.5, va="top",
             linespacing=1.5)


def _display_len(text: str) -> int:
    return sum(2 if ord(ch) > 0x2E80 else 1 for ch in text)


def _wrap_lines(lines: list[str], width: int) -> str:
    """Lines wrapped at spaces to ``width`` columns (a Chinese character counts two).

    Examples
    --------
    >>> print(_wrap_lines(["aaa bbb ccc"], 7))
    aaa bbb
      ccc
    """
    out = []
    for line in lines:
        cur = ""
        for word in line.split(" "):
            trial = f"{cur} {word}" if cur else word
            if cur and _display_len(trial) > width:
                out.append(cur)
                cur = "  " + word
            else:
                cur = trial
        out.append(cur)
    return "\n".join(out)


def _num(v, unit: str) -> str:
    if v is None or pd.isna(v) or not np.isfinite(float(v)):
        return "—"
    return f"{float(v):.1f} min" if unit == "min" else f"{float(v):,.0f} m"


def _fewest_lines(run: _Run, code: str, circle, sites: pd.DataFrame) -> list[str]:
    lines = [_t(run, "新增设施", "New sites")]
    res = run.siting.get(circle.id)
    if not res:
        return [*lines, _t(run, "未运行选址", "siting not run")]
    lscp = res.get("lscp_by_unit")
    r = lscp[lscp["unit_code"].astype(str) == code] if lscp is not None else pd.DataFrame()
    if len(r):
        r = r.iloc[0]
        n = int(r["sites_needed"])
        if bool(r.get("capped")):
            lines.append(_t(run, f"目标不可达：候选点最多覆盖 {100 * float(r['reachable_max_share']):.1f} %，",
                            f"target out of reach: candidate sites reach at most "
                            f"{100 * float(r['reachable_max_share']):.1f} %;"))
            lines.append(_t(run, f"达到该上限至少需新增 {n} 处", f"fewest new sites to get there: {n}"))
        elif n == 0:
            lines.append(_t(run, "已达标，无需新增", "target met: no new site needed"))
        else:
            lines.append(_t(run, f"达标至少需新增 {n} 处（本街镇单独计算）",
                            f"fewest new sites to reach the target: {n} (this unit alone)"))
    if len(sites):
        lines.append(_t(run, "总排序中位于本街镇的建议点：", "ranked sites of the whole area in this unit:"))
        for _, s in sites.head(6).iterrows():
            lines.append(f"  #{int(s['rank'])}: +{float(s['added_covered_population']):,.0f} "
                         + _t(run, "人", "people"))
    return lines
