"""Static charts of a run: what the report, the workbook and the atlas show beside the tables.

Pure functions from the run's tables (``coverage_by_unit``, per-cell results, siting results) to
:class:`matplotlib.figure.Figure` objects drawn on the Agg canvas: no pyplot, no global figure
registry. Each chart also has a ``plot_*`` form that draws into a given Axes (the atlas composes
its pages from them). Per plan circle:

- :func:`coverage_bars` -- coverage share per unit against its target, sorted, gap in people;
- :func:`siting_curve` -- newly covered people against the number of new sites (greedy ranking,
  the exact best set, the fewest sites to reach the target);
- :func:`time_distribution` -- population-weighted distribution of walking times (or distances);
- :func:`slope_effect` -- coverage with the terrain against the same network on flat ground.

Output is deterministic: SVG ids come from a fixed ``svg.hashsalt`` and no date is written into
SVG, PNG or PDF metadata. Chinese labels need a CJK font (:func:`cjk_font_family`: Debian's
``fonts-noto-cjk``, found through matplotlib's font manager by family name); without one a clear
:class:`~accessibility._errors.AccessibilityWarning` says so.
"""

from __future__ import annotations

import functools
import io
import logging
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd

from accessibility._errors import AccessibilityWarning
from accessibility.labels import pick

__all__ = [
    "CHART_KINDS",
    "CJK_FAMILIES",
    "chart_caption",
    "circle_figures",
    "cjk_font_family",
    "coverage_bars",
    "figure_png",
    "figure_style",
    "figure_svg",
    "figure_svg_png",
    "plot_coverage_bars",
    "plot_siting_curve",
    "plot_slope_effect",
    "plot_time_distribution",
    "save_figure",
    "siting_curve",
    "slope_effect",
    "time_distribution",
    "write_figures",
]

log = logging.getLogger(__name__)

#: CJK font families looked for, in order (the first is what the project's set-up installs:
#: Debian/Ubuntu ``fonts-noto-cjk``; the others are common on Windows/macOS desktops).
CJK_FAMILIES = ("Noto Sans CJK SC", "Noto Sans SC", "Source Han Sans SC", "Source Han Sans CN",
                "WenQuanYi Zen Hei", "Microsoft YaHei", "PingFang SC", "SimHei")

#: Colours shared by every chart and the atlas (colour-blind safe: blue / orange / vermillion).
MEETS_COLOUR = "#0072b2"
SHORT_COLOUR = "#e69f00"
FAR_SHORT_COLOUR = "#d55e00"
TARGET_COLOUR = "#222222"
FLAT_COLOUR = "#999999"

#: A unit more than this many percentage points below its target is "far short".
FAR_SHORT_POINTS = 0.05

_SVG_SALT = "accessibility"
_A4_WIDTH_IN = 8.27


@functools.lru_cache(maxsize=1)
def _find_cjk_family() -> str | None:
    from matplotlib import font_manager as fm

    def known() -> set[str]:
        return {f.name for f in fm.fontManager.ttflist}

    names = known()
    for fam in CJK_FAMILIES:
        if fam in names:
            return fam
    # installed after matplotlib built its font cache: add the system's CJK files once
    for path in fm.findSystemFonts():
        if "cjk" in Path(path).name.lower() or "wqy" in Path(path).name.lower():
            try:
                fm.fontManager.addfont(path)
            except (OSError, RuntimeError, ValueError):  # an unreadable font file is skipped
                continue
    names = known()
    return next((fam for fam in CJK_FAMILIES if fam in names), None)


def cjk_font_family() -> str | None:
    """The family name of an installed font with Chinese glyphs, or ``None`` (with a warning).

    Looked up through matplotlib's font manager by family name (:data:`CJK_FAMILIES`, Noto Sans
    CJK SC first); fonts installed after matplotlib built its cache are found too.

    Returns
    -------
    str or None

    Examples
    --------
    >>> fam = cjk_font_family()
    >>> fam is None or isinstance(fam, str)
    True
    """
    fam = _find_cjk_family()
    if fam is None:
        warnings.warn(
            "no font with Chinese glyphs found (looked for " + ", ".join(CJK_FAMILIES) + "): Chinese "
            "labels in charts and the atlas will show as boxes; fix: install Noto Sans CJK "
            "(Debian/Ubuntu: apt-get install fonts-noto-cjk; conda: conda install -c conda-forge "
            "font-ttf-noto-cjk) and run again", AccessibilityWarning, stacklevel=2)
    return fam


@contextmanager
def figure_style() -> Iterator[None]:
    """Matplotlib settings of every chart and atlas page (fonts, deterministic SVG ids).

    Used around drawing and saving; matplotlib's own settings are restored afterwards.

    Examples
    --------
    >>> with figure_style():
    ...     fig = coverage_bars(pd.DataFrame(), "none")
    """
    import matplotlib

    fam = cjk_font_family()
    rc = {
        "font.family": ["sans-serif"],
        "font.sans-serif": ([fam] if fam else []) + ["DejaVu Sans"],
        "svg.hashsalt": _SVG_SALT,
        "svg.fonttype": "path",  # the report shows Chinese on machines without the font
        "pdf.compression": 6,
        "axes.spines.top": False,
        "axes.spines.right": False,
        "axes.titlesize": 11,
        "axes.labelsize": 9,
        "xtick.labelsize": 8,
        "ytick.labelsize": 8,
        "legend.fontsize": 8,
        "figure.dpi": 100,
    }
    with matplotlib.rc_context(rc):
        yield


def _figure(width_in: float, height_in: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width_in, height_in), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _lang(language: str | None, config=None) -> str:
    return language or getattr(config, "language", None) or "bilingual"


def _unit_label(row, language: str) -> str:
    zh = "" if pd.isna(row.get("unit_name")) else str(row.get("unit_name", ""))
    en = "" if pd.isna(row.get("unit_name_en")) else str(row.get("unit_name_en", ""))
    return pick(zh, en, language) or str(row.get("unit_code", ""))


def _circle_rows(coverage: pd.DataFrame, circle_id: str, district_code: str | None) -> pd.DataFrame:
    if not len(coverage) or "circle" not in coverage.columns:
        return coverage.iloc[0:0]
    rows = coverage[coverage["circle"].astype(str) == str(circle_id)]
    if district_code is not None:
        rows = rows[rows["unit_code"].astype(str) != str(district_code)]
    return rows


def _empty(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="#666666")
    ax.set_axis_off()


def _share_colour(share: float, target: float) -> str:
    if share >= target - 1e-12:
        return MEETS_COLOUR
    return SHORT_COLOUR if target - share <= FAR_SHORT_POINTS else FAR_SHORT_COLOUR


# ---------------------------------------------------------------------------------------------
# coverage per unit against its target


def plot_coverage_bars(ax, coverage: pd.DataFrame, circle_id: str, *, district_code: str | None = None,
                       language: str = "bilingual", title: str | None = None) -> None:
    """Draw coverage per unit against its target into ``ax`` (see :func:`coverage_bars`)."""
    rows = _circle_rows(coverage, circle_id, district_code)
    if not len(rows):
        _empty(ax, pick("无数据", "no data", language))
        return
    rows = rows.assign(_label=[_unit_label(r, language) for _, r in rows.iterrows()])
    rows = rows.sort_values(["coverage_share", "_label"], ascending=[False, True], kind="mergesort")
    share = rows["coverage_share"].to_numpy(dtype=float)
    target = rows["target_share"].to_numpy(dtype=float) if "target_share" in rows else np.ones(len(rows))
    gap = (rows["gap_population"].to_numpy(dtype=float) if "gap_population" in rows
           else np.zeros(len(rows)))
    y = np.arange(len(rows))[::-1]
    ax.barh(y, 100 * share, color=[_share_colour(s, t) for s, t in zip(share, target, strict=True)],
            height=0.7)
    ax.scatter(100 * target, y, marker="|", s=220, color=TARGET_COLOUR, linewidths=2, zorder=3,
               label=pick("目标", "target", language))
    for yi, s, t, g in zip(y, share, target, gap, strict=True):
        text = f"{100 * s:.1f} %"
        if g > 0.5:
            text += "  " + pick(f"缺口 {g:,.0f} 人", f"gap {g:,.0f} people", language)
        dark = s < 0.25 or _share_colour(s, t) == SHORT_COLOUR
        ax.text(1.5, yi, text, va="center", ha="left", fontsize=7.5, color="#222" if dark else "white",
                fontweight="bold")
    ax.set_yticks(y, rows["_label"].tolist())
    ax.set_xlim(0, 105)
    ax.set_xlabel(pick("覆盖率 (%)", "coverage (%)", language))
    from matplotlib.patches import Patch

    handles = [Patch(color=MEETS_COLOUR, label=pick("达标", "meets the target", language)),
               Patch(color=SHORT_COLOUR, label=pick(f"差距 ≤ {100 * FAR_SHORT_POINTS:g} 个百分点",
                                                    f"short by ≤ {100 * FAR_SHORT_POINTS:g} points", language)),
               Patch(color=FAR_SHORT_COLOUR, label=pick("差距更大", "far short", language))]
    ax.legend(handles=[*handles, *ax.get_legend_handles_labels()[0]], loc="lower right", fontsize=7,
              framealpha=0.9)
    if title:
        ax.set_title(title, loc="left")


def coverage_bars(coverage: pd.DataFrame, circle_id: str, *, config=None, language: str | None = None,
                  district_code: str | None = None) -> object:
    """Coverage share per unit of one circle against its target, sorted, gaps in people labelled.

    Parameters
    ----------
    coverage : pandas.DataFrame
        The ``coverage_by_unit`` table (DESIGN.md).
    circle_id : str
    config : AreaConfig, optional
        For the circle's label, the district code and the language.
    language : {"zh", "en", "bilingual"}, optional
        Default: ``config.language``, else bilingual.
    district_code : str, optional
        Code of the district row to leave out (default ``config.district_code``).

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> t = pd.DataFrame({"unit_code": ["1", "2"], "unit_name": ["甲", "乙"], "circle": "c",
    ...                   "coverage_share": [1.0, 0.9], "target_share": 1.0, "gap_population": [0, 50]})
    >>> fig = coverage_bars(t, "c", language="en")
    >>> len(fig.axes)
    1
    """
    return _per_unit_figure(plot_coverage_bars, coverage, circle_id, config, language, district_code,
                            ("各街镇覆盖率与目标", "coverage per unit against its target"))


def _per_unit_figure(plot, coverage, circle_id: str, config, language, district_code, what: tuple[str, str]):
    """A page-wide figure with one row per unit, drawn by ``plot`` (coverage bars, slope effect)."""
    language = _lang(language, config)
    dcode = district_code if district_code is not None else getattr(config, "district_code", None)
    with figure_style():
        rows = _circle_rows(coverage, circle_id, dcode)
        fig = _figure(_A4_WIDTH_IN, 1.4 + 0.3 * max(len(rows), 3))
        plot(fig.add_subplot(), coverage, circle_id, district_code=dcode, language=language,
             title=_circle_title(config, circle_id, pick(*what, language), language))
    return fig


def _circle_title(config, circle_id: str, what: str, language: str) -> str:
    c = getattr(config, "circles", {}).get(circle_id) if config is not None else None
    name = pick(c.label_zh, c.label_en, language) if c is not None else str(circle_id)
    return f"{name}\n{what}"


# ---------------------------------------------------------------------------------------------
# siting curve


def plot_siting_curve(ax, curve: pd.DataFrame, summary: Mapping, *, target_share: float,
                      language: str = "bilingual", title: str | None = None) -> None:
    """Draw newly covered people against the number of new sites into ``ax`` (see :func:`siting_curve`)."""
    if curve is None or not len(curve) or "added_covered_population" not in curve:
        _empty(ax, pick("无新增选址", "no new site adds anyone", language))
        return
    demand = float(summary.get("demand_total", np.nan))
    now = float(summary.get("covered_now", np.nan))
    k = np.concatenate([[0], curve["rank"].to_numpy(dtype=float)])
    gained = np.concatenate([[0.0], np.cumsum(curve["added_covered_population"].to_numpy(dtype=float))])
    ax.plot(k, gained, "-o", color=MEETS_COLOUR, ms=3.5, lw=1.6,
            label=pick("贪心排序（前 k 个）", "greedy ranking (first k sites)", language))
    k_max = int(summary.get("k_max", k[-1]))
    exact = summary.get("exact_covered_k_max")
    if exact is not None and np.isfinite(float(exact)):
        optimal = summary.get("exact_status") == "optimal"
        bound = float(summary.get("exact_bound_k_max", exact) or exact)
        lab = (pick(f"精确最优 {k_max} 个（MILP）", f"exact best {k_max} sites (MILP)", language) if optimal else
               pick(f"MILP {k_max} 个（时限内，上界为竖线）", f"MILP {k_max} sites (time limit; bar = bound)",
                    language))
        ax.plot([k_max], [float(exact)], "D", color=FAR_SHORT_COLOUR, ms=6, zorder=4, label=lab)
        if not optimal and bound > float(exact):
            ax.vlines(k_max, float(exact), bound, color=FAR_SHORT_COLOUR, lw=1.2)
    need = max(0.0, target_share * demand - now) if np.isfinite(demand) and np.isfinite(now) else np.nan
    if np.isfinite(need) and need > 0:
        ax.axhline(need, color=TARGET_COLOUR, ls="--", lw=1,
                   label=pick(f"达到目标需新增覆盖 {need:,.0f} 人", f"needed for the target: {need:,.0f} people",
                              language))
    _mark_fewest(ax, summary, k_max, language)
    ax.set_xlabel(pick("新增设施数", "number of new sites", language))
    ax.set_ylabel(pick("新增覆盖人口", "newly covered people", language))
    ax.set_xlim(0, max(k_max, k[-1]) + 0.5)
    top = max(gained.max(), float(exact or 0), float(summary.get("exact_bound_k_max") or 0),
              need if np.isfinite(need) else 0)
    ax.set_ylim(0, top * 1.12 or 1)
    ax.yaxis.set_major_formatter(_thousands())
    if np.isfinite(demand) and demand > 0:
        sec = ax.secondary_yaxis("right", functions=(lambda v: 100 * (now + v) / demand,
                                                     lambda s: s * demand / 100 - now))
        sec.set_ylabel(pick("覆盖率 (%)", "coverage (%)", language))
    ax.legend(loc="lower right", fontsize=7, framealpha=0.9)
    if title:
        ax.set_title(title, loc="left")


def _mark_fewest(ax, summary: Mapping, k_max: int, language: str) -> None:
    n = summary.get("sites_needed_all_units")
    if n is None or pd.isna(n):
        return
    n = int(n)
    if n == 0:
        ax.text(0.02, 0.95, pick("已达标，无需新增", "target met: no new site needed", language),
                transform=ax.transAxes, va="top", fontsize=8)
        return
    if summary.get("capped"):
        text = pick(f"达到可达上限至少需 {n} 个新增设施", f"fewest new sites to reach the reachable maximum: {n}",
                    language)
    else:
        text = pick(f"达到目标至少需 {n} 个新增设施", f"fewest new sites to reach the target: {n}", language)
    if n <= k_max:
        ax.axvline(n, color=TARGET_COLOUR, ls=":", lw=1.2)
        ax.text(n, 0.03, " " + text, transform=ax.get_xaxis_transform(), rotation=90, va="bottom",
                ha="right", fontsize=7.5)
    else:
        # in the band above the data (the y axis ends 12 % above the highest point): clear of the curve
        ax.annotate(text + pick("（超出本图范围）", " (beyond this chart)", language), xy=(1.0, 0.95),
                    xycoords="axes fraction", xytext=(0.97, 0.95), textcoords="axes fraction", ha="right",
                    va="center", fontsize=7.5, arrowprops={"arrowstyle": "->", "color": TARGET_COLOUR})


def _thousands():
    from matplotlib.ticker import FuncFormatter

    return FuncFormatter(lambda v, _pos: f"{v:,.0f}")


def siting_curve(siting_result: Mapping, circle_id: str, *, config=None, language: str | None = None) -> object:
    """Newly covered people against the number of new sites, for one plan circle.

    The greedy ranking's curve (its first k sites are the advice for any budget k), the exact
    MILP set for ``k_max`` sites (its upper bound as a bar when the solver stopped at its time
    limit), the people the target still needs, and the fewest new sites that reach it (LSCP,
    the all-units answer; beyond the chart when larger than ``k_max``).

    Parameters
    ----------
    siting_result : mapping
        One circle's result of :func:`accessibility.siting.site_circle` (``curve``, ``summary``).
    circle_id : str
    config : AreaConfig, optional
    language : {"zh", "en", "bilingual"}, optional

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> curve = pd.DataFrame({"rank": [1, 2], "added_covered_population": [300.0, 100.0]})
    >>> summ = {"demand_total": 1000.0, "covered_now": 500.0, "k_max": 2, "sites_needed_all_units": 2}
    >>> fig = siting_curve({"curve": curve, "summary": summ}, "c", language="en")
    >>> len(fig.axes) >= 1
    True
    """
    language = _lang(language, config)
    c = getattr(config, "circles", {}).get(circle_id) if config is not None else None
    target = float(c.target_share) if c is not None else 1.0
    with figure_style():
        fig = _figure(_A4_WIDTH_IN, 3.6)
        plot_siting_curve(fig.add_subplot(), siting_result.get("curve"), siting_result.get("summary", {}),
                          target_share=target, language=language,
                          title=_circle_title(config, circle_id, pick("新增设施与新增覆盖人口",
                                                                       "new sites and newly covered people",
                                                                       language), language))
    return fig


# ---------------------------------------------------------------------------------------------
# distribution of walking times


def _time_values(results: pd.DataFrame, circle) -> tuple[np.ndarray, float, str]:
    """The circle's per-cell times in display units (minutes or metres), threshold, unit."""
    t = pd.to_numeric(results[f"{circle.id}_t"], errors="coerce").to_numpy(dtype=float)
    if circle.mode == "time":
        return t / 60.0, circle.threshold / 60.0, "min"
    return t, float(circle.threshold), "m"


def plot_time_distribution(ax, cells: pd.DataFrame, results: pd.DataFrame, circle, *,
                           language: str = "bilingual", title: str | None = None) -> None:
    """Draw the population-weighted distribution of times to the circle's nearest facility into ``ax``."""
    if f"{circle.id}_t" not in results or not len(results):
        _empty(ax, pick("无数据", "no data", language))
        return
    t, limit, unit = _time_values(results, circle)
    w = pd.to_numeric(cells.loc[results.index, circle.weight_column], errors="coerce").fillna(0).to_numpy()
    total = float(w.sum())
    top = 3 * limit
    step = limit / 15
    bins = np.arange(0, top + step / 2, step)
    reached = np.isfinite(t) & (t <= top)
    hist, _ = np.histogram(np.clip(t[reached], 0, top), bins=bins, weights=w[reached])
    left = bins[:-1]
    within = left < limit - 1e-9
    ax.bar(left[within], hist[within], width=step, align="edge", color=MEETS_COLOUR,
           label=pick("阈值以内", "within the threshold", language))
    ax.bar(left[~within], hist[~within], width=step, align="edge", color=SHORT_COLOUR,
           label=pick("超出阈值", "beyond the threshold", language))
    beyond = float(w[~reached].sum())
    ax.bar([top + step], [beyond], width=2 * step, align="edge", color=FAR_SHORT_COLOUR,
           label=pick(f"> {top:g} {unit} 或不可达", f"> {top:g} {unit} or not reached", language))
    ax.axvline(limit, color=TARGET_COLOUR, ls="--", lw=1)
    covered_col = f"{circle.id}_covered"
    cov = (results[covered_col].fillna(False).to_numpy(dtype=bool) if covered_col in results
           else np.isfinite(t) & (t <= limit))
    share = float(w[cov].sum() / total) if total > 0 else np.nan
    ax.text(limit, ax.get_ylim()[1] * 0.95,
            " " + pick(f"阈值 {limit:g} {unit}：覆盖 {100 * share:.1f} %",
                       f"threshold {limit:g} {unit}: {100 * share:.1f} % covered", language),
            va="top", ha="left", fontsize=8)
    who = pick("60岁以上居民", "residents aged 60+", language) if circle.population == "60plus" else \
        pick("居民", "residents", language)
    ax.set_ylabel(who)
    ax.set_xlabel(pick(f"到最近设施的步行时间 ({unit})", f"walking time to the nearest facility ({unit})", language)
                  if unit == "min" else
                  pick(f"到最近设施的路网距离 ({unit})", f"network distance to the nearest facility ({unit})",
                       language))
    ax.yaxis.set_major_formatter(_thousands())
    ax.legend(loc="center right", fontsize=7, frameon=False)
    if title:
        ax.set_title(title, loc="left")


def time_distribution(cells: pd.DataFrame, results: pd.DataFrame, circle_id: str, *, config,
                      language: str | None = None) -> object:
    """Population-weighted distribution of times (or distances) to the circle's nearest facility.

    Parameters
    ----------
    cells : pandas.DataFrame
        The cells (DESIGN.md), with the circle's weight column (``population`` or ``pop_60plus``).
    results : pandas.DataFrame
        Per-cell results (``<circle>_t`` in seconds or metres, ``<circle>_covered``).
    circle_id : str
    config : AreaConfig
    language : {"zh", "en", "bilingual"}, optional

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> from types import SimpleNamespace as NS
    >>> c = NS(id="c", mode="time", threshold=900.0, population="all", weight_column="population",
    ...        label_zh="圈", label_en="circle")
    >>> cfg = NS(circles={"c": c}, language="en")
    >>> cells = pd.DataFrame({"population": [10.0, 5.0]})
    >>> res = pd.DataFrame({"c_t": [300.0, 1200.0], "c_covered": [True, False]})
    >>> fig = time_distribution(cells, res, "c", config=cfg)
    """
    language = _lang(language, config)
    circle = config.circles[circle_id]
    with figure_style():
        fig = _figure(_A4_WIDTH_IN, 3.4)
        plot_time_distribution(fig.add_subplot(), cells, results, circle, language=language,
                               title=_circle_title(config, circle_id, pick("步行时间分布（按人口加权）",
                                                                            "walking times, weighted by people",
                                                                            language)
                                                   if circle.mode == "time" else
                                                   pick("路网距离分布（按人口加权）",
                                                        "network distances, weighted by people", language),
                                                   language))
    return fig


# ---------------------------------------------------------------------------------------------
# slopes vs flat


def plot_slope_effect(ax, coverage: pd.DataFrame, circle_id: str, *, district_code: str | None = None,
                      language: str = "bilingual", title: str | None = None) -> None:
    """Draw coverage with the terrain against flat ground, per unit, into ``ax``."""
    rows = _circle_rows(coverage, circle_id, district_code)
    if not len(rows) or "coverage_share_flat" not in rows or rows["coverage_share_flat"].isna().all():
        _empty(ax, pick("距离模式：与坡度无关", "distance mode: slopes play no part", language))
        return
    rows = rows.assign(_label=[_unit_label(r, language) for _, r in rows.iterrows()],
                       _loss=rows["coverage_share_flat"] - rows["coverage_share"])
    rows = rows.sort_values(["_loss", "_label"], ascending=[True, True], kind="mergesort")
    y = np.arange(len(rows))
    flat = 100 * rows["coverage_share_flat"].to_numpy(dtype=float)
    real = 100 * rows["coverage_share"].to_numpy(dtype=float)
    ax.hlines(y, np.minimum(flat, real), np.maximum(flat, real), color="#bbbbbb", lw=2)
    ax.plot(flat, y, "o", color=FLAT_COLOUR, ms=5, label=pick("平地（不计坡度）", "flat ground", language))
    ax.plot(real, y, "o", color=FAR_SHORT_COLOUR, ms=5, label=pick("计入坡度与台阶", "with slopes and steps",
                                                                     language))
    for yi, f, r in zip(y, flat, real, strict=True):
        if f - r >= 0.05:
            ax.text(max(f, r) + 0.4, yi, f"−{f - r:.1f}", va="center", fontsize=7, color="#444")
    ax.set_yticks(y, rows["_label"].tolist())
    lo = float(np.nanmin(np.concatenate([flat, real])))
    ax.set_xlim(max(0.0, np.floor(lo / 5) * 5 - 2), 103)
    ax.set_xlabel(pick("覆盖率 (%)，数字为坡度造成的损失（百分点）",
                       "coverage (%); numbers: points lost to slopes", language))
    ax.legend(loc="best", fontsize=7, framealpha=0.9)
    if title:
        ax.set_title(title, loc="left")


def slope_effect(coverage: pd.DataFrame, circle_id: str, *, config=None, language: str | None = None,
                 district_code: str | None = None) -> object:
    """Coverage per unit with slopes and steps against the same network on flat ground.

    Parameters
    ----------
    coverage : pandas.DataFrame
        The ``coverage_by_unit`` table (``coverage_share`` and ``coverage_share_flat``).
    circle_id : str
    config : AreaConfig, optional
    language : {"zh", "en", "bilingual"}, optional
    district_code : str, optional

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> t = pd.DataFrame({"unit_code": ["1"], "unit_name": ["甲"], "circle": "c",
    ...                   "coverage_share": [0.8], "coverage_share_flat": [0.9]})
    >>> fig = slope_effect(t, "c", language="en")
    """
    return _per_unit_figure(plot_slope_effect, coverage, circle_id, config, language, district_code,
                            ("坡度的影响：计入坡度与平地相比", "what slopes cost, against flat ground"))


# ---------------------------------------------------------------------------------------------
# the run's set and writing


#: The charts of each plan circle, in the order the report shows them: (key, Chinese, English).
CHART_KINDS = (
    ("coverage", "各街镇覆盖率与目标", "coverage per unit against its target"),
    ("siting", "新增设施与新增覆盖人口", "new sites and newly covered people"),
    ("times", "步行时间分布", "distribution of walking times"),
    ("slopes", "坡度的影响", "slopes against flat ground"),
)


def chart_caption(config, circle_id: str, kind: str, *, language: str | None = None) -> str:
    """Caption of one chart of a circle (its circle's label and what the chart shows).

    Examples
    --------
    >>> from types import SimpleNamespace as NS
    >>> cfg = NS(circles={"c": NS(label_zh="文化圈", label_en="culture circle")}, language="en")
    >>> chart_caption(cfg, "c", "times")
    'culture circle: distribution of walking times'
    """
    language = _lang(language, config)
    what = {k: pick(zh, en, language) for k, zh, en in CHART_KINDS}[kind]
    c = getattr(config, "circles", {}).get(circle_id)
    name = pick(c.label_zh, c.label_en, language) if c is not None else str(circle_id)
    return f"{name}: {what}"


def circle_figures(config, coverage: pd.DataFrame, cells: pd.DataFrame, results: pd.DataFrame,
                   siting: Mapping[str, Mapping] | None = None, *, circles: list[str] | None = None,
                   language: str | None = None) -> dict[str, object]:
    """Every chart of the run: per plan circle coverage, siting curve, times and slopes.

    Parameters
    ----------
    config : AreaConfig
    coverage : pandas.DataFrame
        ``coverage_by_unit``.
    cells, results : pandas.DataFrame
        Cells and per-cell results.
    siting : mapping of circle id to its siting result, optional
        The siting curve is drawn for circles that have one.
    circles : list of str, optional
        Default: the plan circles of ``config``.
    language : {"zh", "en", "bilingual"}, optional

    Returns
    -------
    dict
        ``"<circle>_<kind>" -> Figure`` (kinds: :data:`CHART_KINDS`), in report order.

    Examples
    --------
    >>> from types import SimpleNamespace as NS
    >>> c = NS(id="c", mode="distance", threshold=500.0, population="all", weight_column="population",
    ...        label_zh="圈", label_en="circle", target_share=1.0, plan=True)
    >>> cfg = NS(circles={"c": c}, language="en", district_code="0")
    >>> cov = pd.DataFrame({"unit_code": ["1"], "unit_name": ["甲"], "circle": "c", "coverage_share": [0.5],
    ...                     "target_share": 1.0, "gap_population": [5.0]})
    >>> figs = circle_figures(cfg, cov, pd.DataFrame({"population": [10.0]}),
    ...                       pd.DataFrame({"c_t": [100.0], "c_covered": [True]}))
    >>> sorted(figs)
    ['c_coverage', 'c_slopes', 'c_times']
    """
    language = _lang(language, config)
    ids = circles if circles is not None else [c.id for c in config.circles.values() if c.plan]
    out: dict[str, object] = {}
    for cid in ids:
        out[f"{cid}_coverage"] = coverage_bars(coverage, cid, config=config, language=language)
        if siting and cid in siting:
            out[f"{cid}_siting"] = siting_curve(siting[cid], cid, config=config, language=language)
        if f"{cid}_t" in results:
            out[f"{cid}_times"] = time_distribution(cells, results, cid, config=config, language=language)
        out[f"{cid}_slopes"] = slope_effect(coverage, cid, config=config, language=language)
    return out


def figure_svg(fig) -> str:
    """The figure as an SVG document (text drawn as paths; deterministic ids, no date).

    Examples
    --------
    >>> figure_svg(slope_effect(pd.DataFrame(), "c")).lstrip().startswith("<?xml")
    True
    """
    buf = io.StringIO()
    with figure_style():
        fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": "accessibility"})
    return buf.getvalue()


def figure_png(fig, *, dpi: int = 110) -> bytes:
    """The figure as PNG bytes (no date or software version in the metadata).

    Examples
    --------
    >>> figure_png(slope_effect(pd.DataFrame(), "c"))[:4]
    b'\\x89PNG'
    """
    buf = io.BytesIO()
    with figure_style():
        fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
    return buf.getvalue()


def figure_svg_png(fig, *, dpi: int = 110) -> tuple[str, bytes]:
    """The figure as SVG text and PNG bytes (what :func:`figure_svg` and :func:`figure_png` give),
    laid out once.

    Text dominates the drawing time (every glyph of the CJK font is shaped and loaded again in
    each pass). Saved one by one, each format lays the figure out in a draw of its own before
    drawing it; here the PNG's Agg draw computes the layout and the pixels at once, and the SVG
    is drawn with that layout: two passes over the text instead of four. The figure's layout
    engine and dpi are restored afterwards.

    Examples
    --------
    >>> svg, png = figure_svg_png(slope_effect(pd.DataFrame(), "c"))
    >>> svg.lstrip().startswith("<?xml"), png[:4]
    (True, b'\\x89PNG')
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.image import imsave

    engine, dpi0 = fig.get_layout_engine(), fig.dpi
    canvas = fig.canvas if isinstance(fig.canvas, FigureCanvasAgg) else FigureCanvasAgg(fig)
    png, svg = io.BytesIO(), io.StringIO()
    with figure_style():
        try:
            fig.set_dpi(dpi)
            canvas.draw()  # the layout engine runs here, then the pixels are drawn
            imsave(png, np.asarray(canvas.buffer_rgba()), format="png", dpi=dpi, metadata={"Software": None})
            fig.set_layout_engine(None)  # keep that layout for the SVG (no layout draw of its own)
            fig.savefig(svg, format="svg", metadata={"Date": None, "Creator": "accessibility"})
        finally:
            fig.set_dpi(dpi0)
            fig.set_layout_engine(engine)
    return svg.getvalue(), png.getvalue()


def save_figure(fig, path: str | Path, *, dpi: int = 110) -> Path:
    """Write a figure atomically as ``.svg`` or ``.png`` (by the file's suffix).

    Examples
    --------
    >>> import tempfile
    >>> p = save_figure(slope_effect(pd.DataFrame(), "c"), Path(tempfile.mkdtemp()) / "x.svg")
    >>> p.suffix
    '.svg'
    """
    from accessibility._io import write_bytes_atomic

    path = Path(path)
    if path.suffix.lower() == ".svg":
        data = figure_svg(fig).encode("utf-8")
    elif path.suffix.lower() == ".png":
        data = figure_png(fig, dpi=dpi)
    else:
        raise ValueError(f"{path}: save figures as .svg or .png")
    return write_bytes_atomic(path, data)


def write_figures(folder: str | Path, figures: Mapping[str, object]) -> list[Path]:
    """Write every figure as ``<folder>/<key>.svg`` and ``<key>.png``; returns the files.

    Examples
    --------
    >>> import tempfile
    >>> files = write_figures(tempfile.mkdtemp(), {"c_slopes": slope_effect(pd.DataFrame(), "c")})
    >>> [f.name for f in files]
    ['c_slopes.svg', 'c_slopes.png']
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    from accessibility._io import write_bytes_atomic, write_text_atomic

    for key, fig in figures.items():
        svg, png = figure_svg_png(fig)
        files.append(write_text_atomic(folder / f"{key}.svg", svg))
        files.append(write_bytes_atomic(folder / f"{key}.png", png))
    return files
