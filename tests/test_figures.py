"""Charts (accessibility.figures): what each chart draws is checked against hand-computed values,
output is deterministic, Chinese text is drawn with a real CJK font, untrusted names stay text."""

from __future__ import annotations

import io
import warnings
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from accessibility import figures as fg
from accessibility._errors import AccessibilityWarning


def _circle(mode="time", threshold=900.0, population="all"):
    return SimpleNamespace(id="c", mode=mode, threshold=threshold, population=population,
              weight_column="pop_60plus" if population == "60plus" else "population",
              label_zh="文化圈", label_en="culture circle", target_share=1.0, plan=True)


def _cfg(circle=None, language="bilingual"):
    return SimpleNamespace(circles={"c": circle or _circle()}, language=language, district_code="9")


def _coverage():
    return pd.DataFrame({
        "unit_code": ["1", "2", "3", "9"], "unit_name": ["甲街道", "乙镇", "丙街道", "全区"],
        "unit_name_en": ["Jia", "Yi", "Bing", "District"], "circle": "c",
        "coverage_share": [0.9, 1.0, 0.97, 0.95], "target_share": 1.0,
        "gap_population": [1234.0, 0.0, 56.0, 1290.0], "coverage_share_flat": [0.95, 1.0, 0.97, 0.97],
    })


def _texts(fig) -> list[str]:
    return [t.get_text() for ax in fig.axes for t in ax.texts]


def test_coverage_bars_sorted_with_gaps_in_people():
    fig = fg.coverage_bars(_coverage(), "c", config=_cfg(language="en"))
    ax = fig.axes[0]
    # the district row is left out; best first (top), worst last
    assert [t.get_text() for t in ax.get_yticklabels()] == ["Yi", "Bing", "Jia"]
    bars = sorted(ax.patches, key=lambda p: -p.get_y())
    assert [round(b.get_width(), 6) for b in bars] == [100.0, 97.0, 90.0]
    texts = _texts(fig)
    assert "90.0 %  gap 1,234 people" in texts and "97.0 %  gap 56 people" in texts
    assert "100.0 %" in texts  # no gap label where the target is met
    # meets / just short / far short have their own colours
    from matplotlib.colors import to_hex

    assert [to_hex(b.get_facecolor()) for b in bars] == [fg.MEETS_COLOUR, fg.SHORT_COLOUR, fg.FAR_SHORT_COLOUR]


def test_labels_follow_the_language():
    zh = _texts(fg.coverage_bars(_coverage(), "c", config=_cfg(language="zh")))
    assert "90.0 %  缺口 1,234 人" in zh
    both = _texts(fg.coverage_bars(_coverage(), "c", config=_cfg(language="bilingual")))
    assert "90.0 %  缺口 1,234 人 / gap 1,234 people" in both


def test_siting_curve_plots_cumulative_gains_and_the_fewest_sites():
    curve = pd.DataFrame({"rank": [1, 2, 3], "added_covered_population": [300.0, 120.0, 30.0]})
    summ = {"demand_total": 1000.0, "covered_now": 400.0, "k_max": 3, "sites_needed_all_units": 2,
            "exact_covered_k_max": 460.0, "exact_bound_k_max": 460.0, "exact_status": "optimal"}
    fig = fg.siting_curve({"curve": curve, "summary": summ}, "c", config=_cfg(language="en"))
    ax = fig.axes[0]
    lines = {ln.get_label(): ln for ln in ax.get_lines()}
    greedy = lines["greedy ranking (first k sites)"]
    assert list(greedy.get_xdata()) == [0, 1, 2, 3]
    assert list(greedy.get_ydata()) == [0, 300, 420, 450]
    exact = lines["exact best 3 sites (MILP)"]
    assert list(exact.get_xdata()) == [3] and list(exact.get_ydata()) == [460]
    # people still needed for a 100 % target: 1000 - 400
    assert "needed for the target: 600 people" in lines
    assert "fewest new sites to reach the target: 2" in " ".join(_texts(fig))
    # the right axis reads coverage: 0 new people is today's 40 %
    sec = [a for a in fig.axes if a is not ax] or ax.child_axes
    assert sec


def test_siting_curve_says_when_the_answer_is_beyond_the_chart():
    curve = pd.DataFrame({"rank": [1], "added_covered_population": [10.0]})
    summ = {"demand_total": 100.0, "covered_now": 50.0, "k_max": 1, "sites_needed_all_units": 7, "capped": True}
    fig = fg.siting_curve({"curve": curve, "summary": summ}, "c", config=_cfg(language="en"))
    text = " ".join(_texts(fig))
    assert "reachable maximum: 7" in text and "beyond this chart" in text


def test_time_distribution_is_weighted_by_people_brute_force():
    rng = np.random.default_rng(7)
    n = 500
    t = rng.uniform(0, 3000, n)
    t[:20] = np.inf
    w = rng.uniform(0, 10, n)
    cells = pd.DataFrame({"population": w})
    res = pd.DataFrame({"c_t": t, "c_covered": t <= 900})
    fig = fg.time_distribution(cells, res, "c", config=_cfg(language="en"))
    bars = fig.axes[0].patches
    # every resident is in exactly one bar (within 3x the threshold, or the "not reached" bar)
    assert sum(b.get_height() for b in bars) == pytest.approx(w.sum())
    # brute force: the bar of 3-4 minutes holds the people whose time is in [180, 240) s
    b = next(b for b in bars if abs(b.get_x() - 3.0) < 1e-9)
    assert b.get_height() == pytest.approx(w[(t >= 180) & (t < 240)].sum())
    share = w[t <= 900].sum() / w.sum()
    assert f"threshold 15 min: {100 * share:.1f} % covered" in " ".join(_texts(fig)).replace("  ", " ")


def test_slope_effect_only_for_time_circles():
    fig = fg.slope_effect(_coverage(), "c", config=_cfg(language="en"))
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()][-1] == "Jia"  # largest loss on top
    assert "−5.0" in _texts(fig)
    cov = _coverage().assign(coverage_share_flat=np.nan)
    fig = fg.slope_effect(cov, "c", config=_cfg(_circle(mode="distance", threshold=500), language="en"))
    assert "distance mode: slopes play no part" in _texts(fig)


def test_circle_figures_per_plan_circle_and_captions():
    cells = pd.DataFrame({"population": [1.0, 2.0]})
    res = pd.DataFrame({"c_t": [60.0, 2000.0], "c_covered": [True, False]})
    curve = pd.DataFrame({"rank": [1], "added_covered_population": [1.0]})
    figs = fg.circle_figures(_cfg(), _coverage(), cells, res, {"c": {"curve": curve, "summary": {"k_max": 1}}})
    assert list(figs) == ["c_coverage", "c_siting", "c_times", "c_slopes"]
    assert fg.chart_caption(_cfg(language="en"), "c", "siting") == "culture circle: new sites and newly covered people"


def test_output_is_deterministic_and_has_no_dates():
    fig = fg.coverage_bars(_coverage(), "c", config=_cfg())
    a, b = fg.figure_svg(fig), fg.figure_svg(fg.coverage_bars(_coverage(), "c", config=_cfg()))
    assert a == b
    assert "<dc:date>" not in a
    p1, p2 = fg.figure_png(fig), fg.figure_png(fg.coverage_bars(_coverage(), "c", config=_cfg()))
    assert p1 == p2
    from PIL import Image

    info = Image.open(io.BytesIO(p1)).info
    assert "Software" not in info and not any("date" in k.lower() for k in info)


def test_hostile_names_stay_text_in_svg():
    cov = _coverage()
    cov.loc[0, "unit_name"] = "--><script>alert(1)</script>"
    svg = fg.figure_svg(fg.coverage_bars(cov, "c", config=_cfg(language="zh")))
    assert "<script>" not in svg


def test_cjk_font_is_installed_by_the_project_setup():
    # .ci/run and the Makefile install Debian's fonts-noto-cjk
    assert fg.cjk_font_family() == "Noto Sans CJK SC"


def test_chinese_is_drawn_with_real_glyphs_not_boxes():
    """Distinct characters give distinct pixels; with a font lacking them, all are one .notdef box."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    def draw(ch, family=None):
        with fg.figure_style():
            fig = Figure(figsize=(0.6, 0.6), dpi=60)
            FigureCanvasAgg(fig)
            kw = {"family": family} if family else {}
            fig.text(0.5, 0.5, ch, fontsize=24, ha="center", va="center", **kw)
            fig.canvas.draw()
            return np.asarray(fig.canvas.buffer_rgba())[..., 0].copy()

    real = [draw(ch) for ch in "江北区"]
    assert not np.array_equal(real[0], real[1]) and not np.array_equal(real[1], real[2])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # matplotlib: "Glyph ... missing from font"
        boxes = [draw(ch, "DejaVu Sans") for ch in "江北区"]
    assert np.array_equal(boxes[0], boxes[1])  # the oracle: DejaVu has no Chinese, all are .notdef
    assert not np.array_equal(real[0], boxes[0])


def test_missing_cjk_font_is_a_clear_warning(monkeypatch):
    monkeypatch.setattr(fg, "_find_cjk_family", lambda: None)
    with pytest.warns(AccessibilityWarning, match="fonts-noto-cjk"):
        assert fg.cjk_font_family() is None


def test_save_figure_by_suffix(tmp_path):
    fig = fg.slope_effect(_coverage(), "c", config=_cfg())
    assert fg.save_figure(fig, tmp_path / "a.svg").read_text(encoding="utf-8").lstrip().startswith("<?xml")
    assert fg.save_figure(fig, tmp_path / "a.png").read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(ValueError, match="svg or .png"):
        fg.save_figure(fig, tmp_path / "a.jpg")
