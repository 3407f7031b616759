"""The planner's API: accessibility.open_area -> StudyArea, on the demo run's loaded area."""

from __future__ import annotations

import warnings

import folium
import numpy as np
import pandas as pd
import pytest

import accessibility
from accessibility import AccessibilityWarning

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::accessibility._errors.AccessibilityWarning")]


@pytest.fixture(scope="module")
def area(demo_run):
    """The StudyArea the demo run loaded (the same object open_area returns)."""
    assert isinstance(demo_run.study, accessibility.StudyArea)
    return demo_run.study


def test_package_root_exports_the_api():
    for name in ("open_area", "StudyArea", "AccessibilityWarning", "AccessibilityError", "ConfigError",
                 "DataError", "CRSMismatchError", "circle_rule"):
        assert name in accessibility.__all__ and getattr(accessibility, name) is not None, name
    with pytest.raises(AttributeError):
        accessibility.no_such_thing  # noqa: B018


def test_repr_is_short_and_says_what_it_is(area):
    text = repr(area)
    assert len(text) < 500, len(text)
    for part in ("jiangbei", "SYNTHETIC DEMO", "12 units", "925,800", "nodes", "culture_15min"):
        assert part in text, part


def test_coverage_is_the_run_per_cell(area, demo_run):
    cov = area.coverage()
    assert cov.index.equals(area.cells.index) and cov.crs == area.cells.crs
    assert {"unit_code", "unit_name", "population"} <= set(cov.columns)
    assert cov["unit_name"].notna().all()
    pd.testing.assert_frame_equal(cov[list(demo_run.results.columns)], demo_run.results)
    assert [c for c in area.coverage("culture_15min").columns if c != "geometry"][-4:] == [
        "culture_15min_t", "culture_15min_n", "culture_15min_covered", "culture_15min_t_flat"]


def test_coverage_by_unit_is_the_run_table(area, demo_run):
    pd.testing.assert_frame_equal(area.coverage_by_unit(), demo_run.coverage)


def test_overrides_keep_facilities_and_change_the_answer(area):
    shares = {p: area.coverage_by_unit("eldercare_15min", profile=p).iloc[-1]["coverage_share"]
              for p in ("adult", "elderly", "frail")}
    # the faster walker reaches more; the frail walker (0.8 m/s, no stairs) fewest; none is zero
    assert shares["adult"] > shares["elderly"] > shares["frail"] > 0.3, shares
    ten = area.coverage_by_unit("culture_15min", threshold_min=10).iloc[-1]
    fifteen = area.coverage_by_unit("culture_15min").iloc[-1]
    assert ten["threshold"] == 10.0 and 0 < ten["coverage_share"] < fifteen["coverage_share"]
    flat = area.coverage_by_unit("culture_15min", terrain="flat").iloc[-1]
    assert flat["coverage_share"] == pytest.approx(fifteen["coverage_share_flat"])
    # remembered per rule: the same question is answered from memory, a new one is not
    a = area.coverage("culture_15min", threshold_min=10)
    b = area.coverage("culture_15min", threshold_min=10)
    c = area.coverage("culture_15min", threshold_min=12)
    assert a["culture_15min_covered"].sum() == b["culture_15min_covered"].sum()
    assert c["culture_15min_covered"].sum() > a["culture_15min_covered"].sum()


def test_edited_layer_is_never_answered_from_memory(area):
    before = area.coverage_by_unit("fitness_15min").iloc[-1]["coverage_share"]
    saved = area.facilities
    try:
        area.facilities = saved[~area.rule("fitness_15min").facility_mask(saved)]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", AccessibilityWarning)  # "no facility of categories ..."
            after = area.coverage_by_unit("fitness_15min").iloc[-1]["coverage_share"]
    finally:
        area.facilities = saved
    assert before > 0.5 and after == 0.0
    assert area.coverage_by_unit("fitness_15min").iloc[-1]["coverage_share"] == before


def test_site_is_the_run_ranking(area, demo_run):
    res = area.site("eldercare_15min", k=3, method="greedy")
    run_curve = demo_run.siting["eldercare_15min"]["curve"]
    assert res["curve"]["site_id"].tolist() == run_curve["site_id"].head(3).tolist()
    assert "unit_name" in res["curve"].columns and res["curve"]["unit_name"].notna().all()
    assert area.site("eldercare_15min", k=3, method="greedy") is res  # remembered


def test_before_after_is_the_run_table(area, demo_run):
    got = area.before_after()
    want = demo_run.planned
    cols = ["unit_code", "circle", "population", "covered_before", "covered_after", "gain"]
    pd.testing.assert_frame_equal(got[cols].reset_index(drop=True), want[cols].reset_index(drop=True))
    # hypothetical sites: the ranked proposals of a circle, as planned sites
    sites = area.site("eldercare_15min", k=3, method="greedy")["sites"]
    ba = area.before_after(sites.assign(circles="eldercare_15min"))
    district = ba[ba["unit_code"] == area.config.district_code].iloc[0]
    assert district["gain"] == pytest.approx(sites["added_covered_population"].sum(), rel=1e-9)


def test_maps(area, tmp_path):
    ov = area.overview_map("culture_15min")
    assert isinstance(ov, folium.Map)
    code = str(area.units["unit_code"].iloc[0])
    um = area.unit_map(code, "eldercare_15min", profile="frail")
    html = um.get_root().render()
    assert "SYNTHETIC DEMO" in html and "15 min" in html
    # a map of an overridden rule says what was overridden, not the plan circle's name alone
    assert "(frail)" in html or "（frail）" in html
    ten = area.overview_map("culture_15min", threshold_min=10).get_root().render()
    assert "10 min)" in ten or "10 min）" in ten
    plain = area.overview_map("culture_15min").get_root().render()
    assert "10 min)" not in plain and "10 min）" not in plain


def test_report_and_workbook(area, tmp_path):
    p = area.report(tmp_path / "r.html", siting=False)
    assert "SYNTHETIC DEMO" in p.read_text(encoding="utf-8")
    w = area.workbook(tmp_path / "w.xlsx", siting=False)
    sheets = pd.read_excel(w, sheet_name=None)
    assert "coverage_by_unit" in " ".join(sheets)


def test_open_area_with_overrides(demo_area):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AccessibilityWarning)
        area = accessibility.open_area(demo_area, max_snap_m=300)
    assert area.config.max_snap_m == 300.0
    assert area.rule("culture_15min").max_snap_m == 300.0
    assert np.isfinite(area.network.edges["length_m"]).all()


def test_overrides_round_trip_for_the_proposed_sites(area):
    from accessibility.area import _overrides_of

    for kw in ({}, {"profile": "frail"}, {"terrain": "flat"}, {"threshold_min": 10, "profile": "adult"},
               {"max_snap_m": 200.0}):
        rule = area.rule("eldercare_15min", **kw)
        assert area.rule("eldercare_15min", **_overrides_of(rule, area)) == rule, kw
