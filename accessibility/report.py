"""The planners' HTML report and Excel workbook.

``write_report`` renders one self-contained ``report.html`` (Jinja2, autoescaped: every name from
OSM or an inventory is escaped) with a red banner when any layer is synthetic, a one-page summary per
circle, a section per street/town with a lazy map, the parameters and the provenance of every layer.
``write_workbook`` writes an ``.xlsx`` whose first sheet explains the data status and the columns.
Both are written atomically.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from jinja2 import Environment, FileSystemLoader, select_autoescape

import accessibility
from accessibility._errors import DataError
from accessibility._io import atomic_path, reproducible_zip_after, write_text_atomic
from accessibility.labels import district_names, pick, split_bilingual

__all__ = ["COLUMN_GLOSSARY", "write_report", "write_workbook"]

logger = logging.getLogger(__name__)

TEMPLATES_DIR = Path(__file__).parent / "templates"
SYNTHETIC_BANNER = "SYNTHETIC DEMO 合成示例数据 — not real data"

COLUMN_GLOSSARY: dict[str, str] = {
    "unit_code": "单元代码 unit code (the area's codes; the whole-area row's code is district_code)",
    "unit_name": "单元名称 unit name",
    "unit_name_en": "unit name (English)",
    "unit_kind": "街道 street or 镇 town (empty when the area does not declare it)",
    "circle": "服务圈编号 circle id",
    "circle_label": "服务圈名称 circle label",
    "mode": "time (walking time) or distance (network metres)",
    "threshold": "阈值 threshold, in t_unit (minutes in time mode, metres in distance mode)",
    "t_unit": "单位 unit of threshold, median_t and p90_t: min or m",
    "population": "需求人口 demand population of the unit (all residents or aged 60+, per circle)",
    "covered_population": "覆盖人口 demand population within the threshold of enough facilities",
    "coverage_share": "覆盖率 covered_population / population",
    "target_share": "目标覆盖率 the plan's target share",
    "meets_target": "是否达标 coverage_share >= target_share",
    "uncovered_population": "未覆盖人口 population - covered_population",
    "gap_population": "缺口 people to cover to reach the target",
    "median_t": "中位时间/距离 population-weighted median time (min) or distance (m) to the nearest "
                "facility; empty = not reached within 3x the threshold",
    "p90_t": "90th percentile time (min) or distance (m) to the nearest facility; empty = not reached "
             "within 3x the threshold",
    "coverage_share_flat": "coverage share if the terrain were flat (time mode)",
    "data_status": "数据状态 real data or SYNTHETIC DEMO",
    "area_km2": "面积 area in km²",
    "demand": "需求 demand of the circle in the unit (residents, or residents aged 60+)",
    "capacity_per_1000_in_reach": "2SFCA: capacity (beds, seats ...) per 1,000 demand, counting only "
                                  "facilities within the threshold, shared among all who reach them",
    "capacity_per_1000_overall": "all known capacity of the circle per 1,000 demand of the whole area",
    "capacity_total": "known capacity of the circle's facilities",
    "facilities_with_capacity": "facilities whose capacity is known (only they take part in 2SFCA)",
    "facilities_in_circle": "all facilities of the circle",
    "also_in": "ids of OSM rows merged into this inventory row (same name and category within 100 m)",
    "fac_id": "设施编号 facility id (osm:n123, inv:eldercare:17)",
    "name": "名称 name",
    "category": "设施类别 facility category id",
    "circles": "服务圈 circles the facility counts for (;-joined)",
    "source": "来源文件 source file",
    "status": "real or synthetic",
    "classified_by": "分类依据 rule that classified the facility",
    "capacity": "容量 capacity (beds, seats; empty if unknown)",
    "rank": "排序 order in which the site is added",
    "site_id": "候选点编号 candidate site id",
    "added_covered_population": "新增覆盖人口 population newly covered by this site",
    "cumulative_covered_population": "累计覆盖人口 covered population after adding this site",
    "order": "次序 order within the best set of K sites (largest gain first)",
    "greedy_rank": "该点在贪心排序中的名次 the site's place in the greedy ranking (empty: not in its first K)",
    "cumulative_coverage_share": "累计覆盖率 coverage share after adding this site",
    "covered_now": "现状覆盖人口 demand covered by existing facilities",
    "target": "目标覆盖率 the plan's target share",
    "covered_share_now": "现状覆盖率 share covered by existing facilities",
    "unreachable_population": "候选点不可达人口 demand no candidate site can reach",
    "gap": "相对间隙 relative gap between the number and the bound the solver proved (0: proven, nothing "
           "better exists; empty: greedy, no bound)",
    "proof": "结果性质 what the number is: proven, or the best found with its gap to the proven bound and "
             "why the search stopped (node limit; a safety-net time limit makes it not reproducible)",
    "sites_needed_bound": "已证下界 proven lower bound on the sites needed",
    "sites_needed": "最少新增设施数 fewest new sites to reach the target (LSCP)",
    "reachable_max_share": "候选点可达上限 highest share reachable with every candidate site built",
    "capped": "目标受限 the target was capped at what candidate sites can reach",
    "method": "求解方法 milp (solver) or greedy",
    "lon": "经度 longitude, WGS-84 degrees (GPS; not GCJ-02)",
    "lat": "纬度 latitude, WGS-84 degrees (GPS; not GCJ-02)",
    "layer": "图层 input layer",
    "kind": "类型 kind (of layer, or of partition problem: gap / overlap / outside)",
    "path": "文件 file the layer was read from",
    "coords": "坐标系 coordinate system declared for the file (wgs84 / gcj02 / bd09)",
    "provenance": "来源 where the layer comes from",
    "units": "涉及街镇 units concerned",
    "area_m2": "面积 area in m²",
    "share": "占比 share of the district's area",
    "covered_before": "建成前覆盖人口 demand covered before the planned projects",
    "covered_after": "建成后覆盖人口 demand covered after the planned projects",
    "share_before": "建成前覆盖率 coverage share before",
    "share_after": "建成后覆盖率 coverage share after",
    "gain": "新增覆盖 demand newly covered by the projects",
    "projects": "规划项目 the plan's projects counted",
    "meets_target_before": "建成前是否达标 share_before >= target_share",
    "meets_target_after": "建成后是否达标 share_after >= target_share",
    "site_problems": "选址问题 projects that snap to a cut-off fragment or beyond max_snap_m (empty: none)",
    "cell_id": "格网编号 population cell id",
    "pop_60plus": "60岁以上人口 residents aged 60+",
}

_BAD_SHEET_CHARS = re.compile(r"[\[\]:*?/\\]")
_SAFE_HREF = re.compile(r"^(?![a-z][a-z0-9+.-]*:)|^(https?|file):", re.I)


# ---------------------------------------------------------------------------------------------
# HTML report


def write_report(  # noqa: PLR0913  (the report's sections, keyword-only)
    path: str | Path,
    *,
    config,
    coverage: pd.DataFrame,
    unit_maps: Mapping[str, str],
    overview_href: str | None,
    siting: Mapping[str, pd.DataFrame] | None = None,
    provenance: list[dict] | None = None,
    parameters: Mapping[str, Any] | None = None,
    places: Mapping[str, pd.DataFrame] | None = None,
    figures: Mapping[str, str] | None = None,
    charts: Mapping[str, tuple[str, str, str]] | None = None,
    whatif_maps: Mapping[str, str] | None = None,
    worst_n: int = 10,
) -> Path:
    """Write the self-contained HTML report.

    Parameters
    ----------
    path : str or Path
        Destination ``report.html``.
    config : accessibility.config.AreaConfig
    coverage : pandas.DataFrame
        The ``coverage_by_unit`` table (DESIGN.md), including the district row.
    unit_maps : mapping of unit_code to str
        Relative hrefs of the unit maps (linked and shown in lazy iframes).
    overview_href : str or None
        Relative href of the overview map.
    siting : mapping of str to pandas.DataFrame, optional
        Siting tables (e.g. per circle: rank, site_id, added_covered_population ...).
    provenance : list of dict, optional
        One dict per layer with ``name``, ``status``, ``path``, ``provenance``; default: the
        layers of ``config``.
    parameters : mapping, optional
        Further run parameters to list (run id, snap limits, scenario ...).
    places : mapping of circle id to pandas.DataFrame, optional
        Worst-served places per circle (:func:`accessibility.coverage.worst_places`): columns
        ``unit_name, lon, lat, uncovered, median_t, t_unit``; shown in the circle's summary.
    figures : mapping of caption to href, optional
        Images to show.
    charts : mapping of key to (circle id, caption, SVG text), optional
        Charts (:mod:`accessibility.figures`) embedded in their circle's summary as SVG data
        URIs, so the report stays one file.
    whatif_maps : mapping of circle id to str, optional
        Relative hrefs of the what-if maps (``maps/whatif_<circle>.html``), linked from their
        circle's summary.
    worst_n : int
        How many worst-served units to list per circle.

    Returns
    -------
    pathlib.Path
    """
    _require(coverage, ("unit_code", "circle", "coverage_share"), "coverage")
    cov = coverage.copy()
    cov["unit_code"] = cov["unit_code"].astype(str)
    cov["circle"] = cov["circle"].astype(str)
    is_district = cov["unit_code"].eq(str(getattr(config, "district_code", "DISTRICT")))
    district, units = cov[is_district], cov[~is_district]
    circle_ids = [c for c in config.circles if c in set(cov["circle"])]
    circle_ids += [c for c in dict.fromkeys(cov["circle"]) if c not in circle_ids]

    dname, dname_en = district_names(config)
    ctx = {
        "district_label": pick(f"{dname}覆盖率", f"{dname_en} coverage", getattr(config, "language", "bilingual")),
        "title_zh": config.title_zh,
        "title_en": config.title_en,
        # no clock time here: identical runs give identical bytes (run.json records the date)
        "generated": "运行日期见 run.json / run date: see run.json",
        "version": accessibility.__version__,
        "config_name": Path(config.config_path).name,
        "run_id": config.run_id,
        "synthetic": config.is_synthetic,
        "synthetic_layers": config.synthetic_layers,
        "estimated_layers": list(getattr(config, "estimated_layers", [])),
        "data_status": config.data_status,
        "overview_href": _href(overview_href),
        "circles": [_circle_summary(config, cid, units, district, worst_n, (places or {}).get(cid))
                    | {"charts": _chart_images(charts or {}, cid),
                       "whatif_href": _href((whatif_maps or {}).get(cid))} for cid in circle_ids],
        "units": _unit_sections(config, units, circle_ids, unit_maps),
        "siting": _siting_tables(config, siting or {}),
        "figures": [{"caption": str(k), "href": _href(v)} for k, v in (figures or {}).items()],
        "profiles": [
            {
                "name": p.name,
                "speed": f"{p.flat_speed_mps:g}",
                "steps": _say(config, "是", "yes") if p.allow_steps else _say(config, "否", "no"),
                "label": p.label,
            }
            for p in config.profiles.values()
        ],
        "circle_params": [_circle_params(config, c) for c in config.circles.values()],
        "terrain": [
            ("地形模型 terrain model", config.terrain.model),
            ("DEM 平滑 smoothing (m)", f"{config.terrain.smoothing_m:g}"),
            ("最大坡度 max |grade|", f"{config.terrain.max_abs_grade:g}"),
            ("Naismith s per m climbed", f"{config.terrain.naismith_s_per_m_climb:g}"),
            ("台阶上行 steps climb (s/m)", f"{config.terrain.steps_climb_s_per_m:g}"),
            ("台阶下行 steps descent (s/m)", f"{config.terrain.steps_descent_s_per_m:g}"),
            ("最大吸附距离 snap limit max_snap_m (m)", f"{config.max_snap_m:g}"),
        ],
        "run_parameters": [(str(k), _plain(v)) for k, v in (parameters or {}).items()],
        "provenance": _provenance(config, provenance),
    }
    env = Environment(
        loader=FileSystemLoader(TEMPLATES_DIR),
        autoescape=select_autoescape(enabled_extensions=("html", "j2"), default=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    lang = _language(config)
    env.globals["t"] = lambda zh, en: pick(zh, en, lang, sep=" ")
    env.globals["h"] = lambda zh, en: _heading(zh, en, lang)
    ctx["lang"] = lang
    ctx["html_lang"] = "en" if lang == "en" else "zh-CN"
    text = env.get_template("report.html.j2").render(**ctx)
    return write_text_atomic(path, text)


def _language(config) -> str:
    return str(getattr(config, "language", "bilingual") or "bilingual")


def _say(config, zh: str, en: str) -> str:
    """A label in the area's language (bilingual: Chinese, a space, English)."""
    return pick(zh, en, _language(config), sep=" ")


def _heading(zh: str, en: str, language: str):
    """A heading: bilingual shows the English part muted after a slash."""
    from markupsafe import Markup, escape

    zh, en = str(zh or ""), str(en or "")
    if language == "bilingual" and zh and en and zh != en:
        return Markup(f'{escape(zh)} <span class="en">/ {escape(en)}</span>')
    return pick(zh, en, language)


def _chart_images(charts: Mapping[str, tuple[str, str, str]], circle_id: str) -> list[dict]:
    """A circle's charts as ``<img>`` sources: SVG in a base64 data URI (ids stay per image)."""
    import base64

    out = []
    for key, (cid, caption, svg) in charts.items():
        if str(cid) != str(circle_id):
            continue
        data = base64.b64encode(svg.encode("utf-8")).decode("ascii")
        out.append({"key": str(key), "caption": str(caption), "src": f"data:image/svg+xml;base64,{data}"})
    return out


def _require(df: pd.DataFrame, cols, what: str) -> None:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise DataError(
            f"{what}: missing column(s) {', '.join(missing)}; fix: pass the coverage_by_unit table "
            "described in DESIGN.md"
        )


def _href(href: str | None) -> str | None:
    """Keep relative and http(s)/file links; drop javascript: and other schemes."""
    if href is None:
        return None
    href = str(href)
    return href if _SAFE_HREF.match(href) else None


def _pct(x) -> str:
    return "—" if x is None or pd.isna(x) else f"{100 * float(x):.1f} %"


def _int(x) -> str:
    return "—" if x is None or pd.isna(x) else f"{float(x):,.0f}"


def _t(x, mode: str, unit: str | None = None) -> str:
    """A median/p90 of the coverage table, which is already in its ``t_unit`` (min or m)."""
    if x is None or pd.isna(x):
        return "—"
    x = float(x)
    if not np.isfinite(x):
        return "不可达 not reached (> 3× threshold)"
    unit = unit if isinstance(unit, str) and unit in ("min", "m") else ("min" if mode == "time" else "m")
    return f"{x:.1f} min" if unit == "min" else f"{x:,.0f} m"


def _plain(v) -> str:
    if isinstance(v, Mapping):
        return "; ".join(f"{k}={_plain(x)}" for k, x in v.items())
    if isinstance(v, list | tuple):
        return ", ".join(_plain(x) for x in v)
    return str(v)


def _unit_label(r) -> str:
    zh = "" if pd.isna(r.get("unit_name")) else str(r.get("unit_name", ""))
    en = "" if pd.isna(r.get("unit_name_en")) else str(r.get("unit_name_en", ""))
    return f"{zh} {en}".strip() or str(r["unit_code"])


def _meets(r, config=None) -> tuple[str, str]:
    v = r.get("meets_target")
    if v is None or pd.isna(v):
        share, target = r.get("coverage_share"), r.get("target_share")
        if share is None or target is None or pd.isna(share) or pd.isna(target):
            return "", "—"
        v = float(share) >= float(target)
    return ("yes", _say(config, "是", "yes")) if bool(v) else ("no", _say(config, "否", "no"))


def _place_rows(places: pd.DataFrame | None) -> list[dict]:
    if places is None or not len(places):
        return []
    return [{
        "unit": str(r.get("unit_name", "")),
        "lon": f"{float(r['lon']):.5f}", "lat": f"{float(r['lat']):.5f}",
        "uncovered": _int(r.get("uncovered")),
        "median": _t(r.get("median_t"), "time", r.get("t_unit")),
    } for _, r in places.iterrows()]


def _circle_summary(config, cid, units, district, worst_n: int, places=None) -> dict:
    circle = config.circles.get(cid)
    rows = units[units["circle"] == cid]
    drow = district[district["circle"] == cid]
    mode = (
        circle.mode
        if circle
        else str(rows["mode"].iloc[0])
        if "mode" in rows and len(rows)
        else "time"
    )
    meet_flags = [_meets(r)[0] for _, r in rows.iterrows()]
    meeting = [
        _unit_label(r) for (_, r), f in zip(rows.iterrows(), meet_flags, strict=True) if f == "yes"
    ]
    if len(drow):
        d = drow.iloc[0]
        share, uncovered = d.get("coverage_share"), d.get("uncovered_population")
    else:
        pop = rows.get("population", pd.Series(dtype=float)).sum()
        cov = rows.get("covered_population", pd.Series(dtype=float)).sum()
        share = cov / pop if pop else np.nan
        uncovered = rows["uncovered_population"].sum() if "uncovered_population" in rows else np.nan
    bad = rows[[f == "no" for f in meet_flags]]
    if "gap_population" in bad.columns:
        bad = bad.sort_values(["gap_population", "coverage_share"], ascending=[False, True])
    else:
        bad = bad.sort_values("coverage_share")
    worst = [
        {
            "code": r["unit_code"],
            "name": _unit_label(r),
            "share": _pct(r.get("coverage_share")),
            "gap": _int(r.get("gap_population")),
            "uncovered": _int(r.get("uncovered_population")),
            "median": _t(r.get("median_t"), mode, r.get("t_unit")),
            "p90": _t(r.get("p90_t"), mode, r.get("t_unit")),
        }
        for _, r in bad.head(worst_n).iterrows()
    ]
    if circle:
        who = (
            _say(config, "60岁以上居民", "residents aged 60+")
            if circle.population == "60plus"
            else _say(config, "全部居民", "all residents")
        )
        prof = config.profiles.get(circle.profile)
        how = (
            f"{_say(config, '步行', 'walking')}, {prof.label or prof.name}"
            if (circle.mode == "time" and prof)
            else _say(config, "路网距离", "network distance")
        )
        rule = (
            f"{who}; {how}; {_say(config, '阈值', 'threshold')} {circle.threshold_label}; "
            + pick(f"至少 {circle.min_reachable} 处设施", f"at least {circle.min_reachable} facility(ies)",
                   _language(config), sep=" ") + f": {', '.join(circle.categories)}"
        )
        target = _pct(circle.target_share)
        label_zh, label_en = circle.label_zh, circle.label_en
    else:
        rule, target, label_zh, label_en = (
            "",
            _pct(rows["target_share"].iloc[0]) if len(rows) and "target_share" in rows else "—",
            cid,
            cid,
        )
    return {
        "places": _place_rows(places),
        "id": cid,
        "label": pick(label_zh, label_en, _language(config)),
        "label_zh": label_zh,
        "label_en": label_en,
        "rule": rule,
        "district_share": _pct(share),
        "target": target,
        "uncovered": _int(uncovered),
        "n_meet": len(meeting),
        "n_units": len(rows),
        "meeting": meeting,
        "worst": worst,
        "t_unit": "(min)" if mode == "time" else "(m)",
    }


def _unit_sections(config, units, circle_ids, unit_maps) -> list[dict]:
    out = []
    order = units.drop_duplicates("unit_code").sort_values("unit_code")
    for _, first in order.iterrows():
        code = first["unit_code"]
        rows = units[units["unit_code"] == code].set_index("circle")
        table = []
        for cid in circle_ids:
            if cid not in rows.index:
                continue
            r = rows.loc[cid]
            if isinstance(r, pd.DataFrame):
                r = r.iloc[0]
            circle = config.circles.get(cid)
            mode = circle.mode if circle else str(r.get("mode", "time"))
            flag, text = _meets(r, config)
            table.append(
                {
                    "label": pick(circle.label_zh, circle.label_en, _language(config)) if circle else cid,
                    "share": _pct(r.get("coverage_share")),
                    "target": _pct(
                        r.get("target_share", circle.target_share if circle else np.nan)
                    ),
                    "meets": flag,
                    "meets_text": text,
                    "population": _int(r.get("population")),
                    "uncovered": _int(r.get("uncovered_population")),
                    "gap": _int(r.get("gap_population")),
                    "median": _t(r.get("median_t"), mode, r.get("t_unit")),
                    "p90": _t(r.get("p90_t"), mode, r.get("t_unit")),
                }
            )
        out.append(
            {
                "code": code,
                "name_zh": ""
                if pd.isna(first.get("unit_name"))
                else str(first.get("unit_name", "")),
                "name_en": ""
                if pd.isna(first.get("unit_name_en"))
                else str(first.get("unit_name_en", "")),
                "rows": table,
                "href": _href(unit_maps.get(code)) if unit_maps else None,
            }
        )
    return out


SITING_HEADERS = {
    "rank": "排序 rank", "order": "次序 order", "greedy_rank": "贪心排序中的名次 place in the ranking",
    "site_id": "候选点 site", "unit_code": "街镇代码 unit code",
    "unit_name": "街镇 unit", "lon": "经度 lon (WGS-84)", "lat": "纬度 lat (WGS-84)",
    "added_covered_population": "新增覆盖 people added",
    "cumulative_covered_population": "累计新增 cumulative added",
    "cumulative_coverage_share": "累计覆盖率 coverage after", "population": "需求人口 demand",
    "covered_now": "现状覆盖 covered now", "covered_share_now": "现状覆盖率 share now",
    "target": "目标 target", "sites_needed": "最少新增 fewest new sites",
    "reachable_max_share": "可达上限 reachable max", "capped": "目标受限 capped",
    "method": "方法 method", "covered_before": "建成前 covered before",
    "covered_after": "建成后 covered after", "share_before": "建成前覆盖率 share before",
    "share_after": "建成后覆盖率 share after", "gain": "新增 gain", "circle": "服务圈 circle",
    "projects": "规划项目 projects", "gap": "距已证界限 gap to the proven bound",
    "proof": "结果性质 what the number is", "sites": "新增选址数 new sites",
    "bound_population": "已证上界 proven upper bound (people)",
}


def _siting_cell(col: str, v, config=None) -> tuple[str, bool]:
    """Text of one siting-table cell and whether it is numeric (right-aligned)."""
    if isinstance(v, bool | np.bool_):
        return (_say(config, "是", "yes") if v else _say(config, "否", "no")), False
    num = isinstance(v, int | float | np.integer | np.floating)
    if not num:
        return ("" if v is None or (np.ndim(v) == 0 and pd.isna(v)) else str(v)), False
    if pd.isna(v):
        return "—", True
    v = float(v)
    if col in ("lon", "lat"):
        return f"{v:.5f}", True  # 1 m: a planner must find the spot
    if col == "reachable_max_share" and 0.999 <= v < 1.0:
        return f"{100 * v:.2f} %", True  # never "100.0 %" beside "capped: yes"
    if "share" in col or col in ("target", "gap"):
        return _pct(v), True
    if col in ("rank", "sites_needed") or "population" in col or col.startswith("covered") or col == "gain":
        return f"{v:,.0f}", True
    return (f"{v:,.0f}" if v.is_integer() else f"{v:,.2f}"), True


def _header(config, col: str) -> str:
    """A siting-table header in the area's language (SITING_HEADERS hold "中文 English")."""
    text = SITING_HEADERS.get(col)
    if text is None:
        return col
    zh, _, en = text.partition(" ")
    return pick(zh, en, _language(config), sep=" ")


def _siting_tables(config, siting: Mapping[str, pd.DataFrame]) -> list[dict]:
    out = []
    for key, df in siting.items():
        circle = config.circles.get(str(key))
        lang = _language(config)
        title = pick(circle.label_zh, circle.label_en, lang) if circle else str(key)
        if circle:
            title += ": " + pick("最佳新增选址（贪心排序）", "best new sites, ranked greedily (MCLP)", lang)
            only = tuple(getattr(getattr(config, "siting", None), "units", ()) or ())
            if only:  # a restricted run: its shares are those of the selected units, not the district's
                title += " — " + pick(f"仅限街镇 {', '.join(only)} 的需求与候选点",
                                      f"only the demand and candidate sites of unit(s) {', '.join(only)}: "
                                      "coverage shares are theirs, not the district's", lang)
        cols = [c for c in df.columns if c != "geometry"]
        rows = []
        for _, r in df[cols].iterrows():
            cells = []
            for c in cols:
                text, num = _siting_cell(str(c), r[c], config)
                cells.append({"text": text, "num": num})
            rows.append(cells)
        out.append({"title": title, "columns": [_header(config, str(c)) for c in cols],
                    "rows": rows})
    return out


def _circle_params(config, c) -> dict:
    prof = config.profiles.get(c.profile) if c.mode == "time" else None
    return {
        "id": c.id,
        "mode": c.mode,
        "threshold": c.threshold_label,
        "profile": f"{c.profile} ({prof.flat_speed_mps:g} m/s)" if prof else "—",
        "population": "60+" if c.population == "60plus" else "all",
        "min_reachable": c.min_reachable,
        "target": _pct(c.target_share),
        "categories": ", ".join(c.categories),
    }


def _provenance(config, provenance: list[dict] | None) -> list[dict]:
    if provenance is None:
        layers = list(config.sources.values()) + list(config.facility_sources)
        provenance = [
            {"name": s.name, "status": s.status, "path": s.path, "provenance": s.provenance}
            for s in layers
        ]
    out = []
    base = Path(config.base_dir)
    for p in provenance:
        path = p.get("path")
        if path is not None:
            with contextlib.suppress(ValueError):
                path = Path(path).relative_to(base)
        out.append(
            {
                "name": str(p.get("layer", p.get("name", ""))),  # StudyArea.provenance() says "layer"
                "status": str(p.get("status", "")),
                "path": "" if path is None else str(path),
                "provenance": str(p.get("provenance", "")),
            }
        )
    return out


# ---------------------------------------------------------------------------------------------
# Excel workbook


def write_workbook(path: str | Path, tables: Mapping[str, pd.DataFrame], *, config,
                   charts: list[tuple[str, bytes]] | None = None) -> Path:
    """Write tables to an ``.xlsx`` with a README sheet first (and a ``charts`` sheet second).

    Parameters
    ----------
    path : str or Path
        Destination ``.xlsx``.
    tables : mapping of str to pandas.DataFrame
        Sheet title -> table. Names are sanitised to Excel's rules (<= 31 characters, no
        ``[]:*?/\\``, unique). A non-default index is written as columns; geometry columns are
        written as WKT.
    config : accessibility.config.AreaConfig
    charts : list of (caption, PNG bytes), optional
        Images placed one under the other on a ``charts`` sheet, each under its caption.

    Returns
    -------
    pathlib.Path
    """
    from openpyxl.styles import Alignment, Font

    names = _sheet_names(["charts", *tables] if charts else list(tables))[1 if charts else 0:]
    path = Path(path)
    # openpyxl dates the workbook and its zip members with the time of writing: fixed, so that
    # identical runs give identical bytes
    with atomic_path(path, suffix=".xlsx") as tmp, reproducible_zip_after(tmp), \
            pd.ExcelWriter(tmp, engine="openpyxl") as writer:
        book = writer.book
        readme = book.create_sheet("README", 0)
        _fill_readme(readme, config, tables, names, Font, Alignment)
        if charts:
            _fill_charts(book.create_sheet("charts", 1), charts, config, Font)
        for (key, df), sheet in zip(tables.items(), names, strict=True):
            frame = _excel_frame(df)
            frame.to_excel(writer, sheet_name=sheet, index=False)
            ws = writer.sheets[sheet]
            # nothing written here is a formula: text starting with "=" (a name from OSM or an
            # inventory) must stay text, never run when a planner opens the file
            for row in ws.iter_rows():
                for cell in row:
                    if cell.data_type == "f":
                        cell.data_type = "s"
            ws.freeze_panes = "A2"
            for cell in ws[1]:
                cell.font = Font(bold=True)
            for j, col in enumerate(frame.columns, start=1):
                letter = ws.cell(row=1, column=j).column_letter
                ws.column_dimensions[letter].width = _width(col, frame[col])
                fmt = _number_format(col, frame[col])
                if fmt:
                    for row in ws.iter_rows(min_row=2, min_col=j, max_col=j):
                        row[0].number_format = fmt
            logger.debug("sheet %s <- %s (%d rows)", sheet, key, len(frame))
    return path


def _fill_charts(ws, charts: list[tuple[str, bytes]], config, font) -> None:
    """One chart under the other, each under its caption (rows of 20 px)."""
    import io

    from openpyxl.drawing.image import Image

    ws["A1"] = f"{config.title_zh} · {config.title_en}"
    ws["A1"].font = font(bold=True, size=14)
    row = 2
    if config.is_synthetic:
        ws.cell(row=row, column=1, value=SYNTHETIC_BANNER).font = font(bold=True, color="C00000")
        row += 1
    row += 1
    for caption, png in charts:
        ws.cell(row=row, column=1, value=_formula_safe_text(caption)).font = font(bold=True)
        img = Image(io.BytesIO(png))
        ws.add_image(img, f"A{row + 1}")
        row += 2 + int(np.ceil(img.height / 20))


def _formula_safe_text(text: str) -> str:
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text


def _sheet_names(keys: list[str]) -> list[str]:
    used = {"readme"}
    out = []
    for key in keys:
        base = _BAD_SHEET_CHARS.sub("_", str(key)).strip("'").strip() or "sheet"
        name = base[:31]
        k = 2
        while name.lower() in used:
            suffix = f"~{k}"
            name = base[: 31 - len(suffix)] + suffix
            k += 1
        used.add(name.lower())
        out.append(name)
    return out


def _excel_frame(df: pd.DataFrame) -> pd.DataFrame:
    frame = df
    if not isinstance(frame.index, pd.RangeIndex) or frame.index.name is not None:
        frame = frame.reset_index()
    frame = pd.DataFrame(frame)  # a GeoDataFrame becomes plain
    for col in frame.columns:
        s = frame[col]
        if hasattr(s, "geom_type") or str(s.dtype) == "geometry":
            frame[col] = s.to_wkt()
        elif s.dtype == object and len(s) and s.map(lambda v: hasattr(v, "wkt")).any():
            frame[col] = s.map(lambda v: v.wkt if hasattr(v, "wkt") else v)
    frame.columns = [str(c) for c in frame.columns]
    return frame


def _is_share(col: str) -> bool:
    return col.endswith("share") or "_share" in col


def _number_format(col: str, s: pd.Series) -> str | None:
    if pd.api.types.is_string_dtype(s) and col.endswith(("code", "_id")):
        return "@"  # codes stay text (official codes, ids)
    if s.dtype == bool or not pd.api.types.is_numeric_dtype(s):
        return None
    if _is_share(col):
        return "0.0%"
    if col.endswith(("population", "_population")) or col in (
        "population",
        "pop_60plus",
        "capacity",
    ):
        return "#,##0"
    return None


def _display_len(text: str) -> int:
    return sum(2 if ord(ch) > 0x2E80 else 1 for ch in text)


def _width(col: str, s: pd.Series) -> float:
    sample = s.head(500)
    lens = [_display_len(str(v)) for v in sample if not (np.ndim(v) == 0 and pd.isna(v))]
    if pd.api.types.is_float_dtype(s):
        lens = [min(n, 12) for n in lens]
    longest = max([_display_len(col)] + lens)
    return float(min(max(longest + 2, 8), 60))


def _fill_readme(ws, config, tables, names, font, alignment) -> None:
    red = font(bold=True, color="C00000", size=12)
    ws["A1"] = f"{config.title_zh} · {config.title_en}"
    ws["A1"].font = font(bold=True, size=14)
    ws["A2"] = _say(config, "公共服务可达性分析", "public-service accessibility analysis")
    if config.is_synthetic:
        ws["A3"] = SYNTHETIC_BANNER
        ws["A3"].font = red
        ws["A4"] = _say(config, "合成图层", "synthetic layers") + ": " + ", ".join(config.synthetic_layers)
        ws["A4"].font = font(color="C00000")
    else:
        ws["A3"] = _say(config, "数据状态", "data status") + ": real data"
    ws["A5"] = _say(config, "数据状态", "data status") + f": {config.data_status}"
    ws["A6"] = (
        _say(config, "生成", "generated by") + f" accessibility {accessibility.__version__}, "
        f"config {Path(config.config_path).name}, run {config.run_id} "
        + _say(config, "（运行日期见 run.json）", "(run date: see run.json)")
    )
    row = 8
    ws.cell(row=row, column=1, value=_say(config, "工作表", "sheets")).font = font(bold=True)
    row += 1
    for (key, df), sheet in zip(tables.items(), names, strict=True):
        ws.cell(row=row, column=1, value=sheet)
        ws.cell(row=row, column=2, value=f"{key} ({len(df)} rows)")
        row += 1
    row += 1
    ws.cell(row=row, column=1, value=_say(config, "列说明", "column glossary")).font = font(bold=True)
    row += 1
    seen: list[str] = []
    for df in tables.values():
        for c in _excel_frame(df.head(0)).columns:
            if c not in seen:
                seen.append(c)
    for c in seen:
        ws.cell(row=row, column=1, value=c)
        ws.cell(row=row, column=2, value=_glossary(c, config))
        row += 1
    ws.column_dimensions["A"].width = 34
    ws.column_dimensions["B"].width = 90
    for r in ws.iter_rows(min_row=1, max_row=row, max_col=2):
        for cell in r:
            cell.alignment = alignment(wrap_text=False, vertical="top")


def _glossary(col: str, config=None) -> str:
    """The glossary line of a column, for the area (its district row, its language).

    ``language: en`` drops the Chinese term that starts most lines; ``zh`` and ``bilingual`` keep
    the whole line (the explanations exist in English only).
    """
    if col in COLUMN_GLOSSARY:
        text = COLUMN_GLOSSARY[col]
        if col == "unit_code" and config is not None:
            code = getattr(config, "district_code", "DISTRICT")
            system = ("official 9-digit street/town code (统计用区划代码)"
                      if getattr(config, "unit_codes", "any") == "cn_official" else "unit code")
            text = f"单元代码 {system}; {code} = {district_names(config)[1]} (the whole-area row)"
        if getattr(config, "language", "bilingual") == "en":
            text = split_bilingual(text)[1] or text
        return text
    for suffix, text in (
        ("_t_flat", "time to the nearest facility on flat terrain (s)"),
        ("_t_min", "time to the nearest facility incl. both walks, minutes; empty if none within 3x"),
        ("_t", "time (s) or distance (m) to the nearest facility incl. both walks; inf if none"),
        ("_n", "number of facilities reachable within the threshold"),
        ("_covered", "covered within the threshold (True/False)"),
        ("_share", "share (0-1, shown as %)"),
        ("_m", "metres"),
        ("_s", "seconds"),
    ):
        if col.endswith(suffix):
            return text
    return ""
