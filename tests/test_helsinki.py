"""A second real area: the README's walkthrough turns the real Helsinki OSM extract into a run.

One session-scoped run (``helsinki_area`` in conftest: the README's commands, literally) is shared
by these tests and by the notebooks run on it (tests/test_notebooks.py).
"""

from __future__ import annotations

import geopandas as gpd
import pandas as pd
import pytest

pytestmark = pytest.mark.slow


def test_readme_commands_are_the_ones_run():
    from tests.conftest import readme_walkthrough

    cmds = [ln for ln in readme_walkthrough().splitlines() if ln.strip()]
    assert any(c.startswith(".venv/bin/accessibility init helsinki") for c in cmds)
    assert any(c.startswith(".venv/bin/accessibility run config/areas/helsinki.yaml") for c in cmds)


def test_init_says_what_is_missing(helsinki_area):
    out = helsinki_area.stdout
    assert "EPSG:32635" in out and "config/areas/helsinki.yaml" in out
    assert "Missing, and how to add it:" in out and "population is an ESTIMATE" in out
    assert "Next: accessibility run config/areas/helsinki.yaml" in out
    assert "error" not in helsinki_area.stderr.lower()


def test_run_outputs_in_english_flagged_as_estimates(helsinki_area):
    out = helsinki_area.out
    for name in ("coverage_by_unit.csv", "coverage.xlsx", "report.html", "maps/overview.html",
                 "facilities.gpkg", "cells_results.gpkg", "analysis_inputs.gpkg", "_COMPLETE"):
        assert (out / name).exists(), name
    cov = pd.read_csv(out / "coverage_by_unit.csv", dtype={"unit_code": str})
    assert cov["data_status"].str.contains("ESTIMATE \\(layers: population, units\\)").all()
    district = cov[cov["unit_code"] == "ALL"]
    assert set(district["unit_name"]) == {"Central Helsinki"} and len(district) == cov["circle"].nunique()
    units = cov[cov["unit_code"] != "ALL"]
    assert sorted(set(units["unit_code"])) == ["Z1", "Z2", "Z3", "Z4", "Z5", "Z6"]
    assert set(units["unit_name"]) == {f"zone {i}" for i in range(1, 7)}
    labels = dict(zip(cov["circle"], cov["circle_label"], strict=False))
    assert labels["culture_15min"] == "15-minute culture circle"
    # every resident of a zone is counted once: the zones' populations add up to the district's
    for _, part in cov.groupby("circle"):
        d = part[part["unit_code"] == "ALL"]["population"].iloc[0]
        assert part[part["unit_code"] != "ALL"]["population"].sum() == pytest.approx(d, rel=1e-4)
    # the culture circle is mostly met in the city centre (libraries, museums, galleries)
    culture = district[district["circle"] == "culture_15min"]["coverage_share"].iloc[0]
    assert 0.8 < culture <= 1.0
    report = (out / "report.html").read_text(encoding="utf-8")
    assert "ESTIMATE" in report and "Central Helsinki coverage" in report
    assert "15-minute culture circle" in report
    overview = (out / "maps" / "overview.html").read_text(encoding="utf-8")
    assert "[ESTIMATE]" in overview and "ESTIMATE: population, units" in overview
    for text in (report, overview, (out / "coverage_by_unit.csv").read_text(encoding="utf-8-sig")):
        assert "全区" not in text and "500105" not in text and "未命名" not in text


def test_named_real_facilities(helsinki_area):
    fac = gpd.read_file(helsinki_area.out / "facilities.gpkg")
    cats = fac.groupby("name")["category"].agg(list)
    assert cats["Kansalliskirjasto"] == ["library"]  # the National Library once (node + building)
    for lib in ("Helsingin keskustakirjasto Oodi", "Rikhardinkadun kirjasto", "Metsätalon kirjasto"):
        assert cats[lib] == ["library"], lib
    for gym in ("Fitness 24Seven Hakaniemi", "Somatic Studio", "elixia", "Konst Hair & Gallery"):
        assert gym not in cats.index, gym
    assert cats["Yrjönkadun uimahalli"] == ["sports_centre"]
    assert (fac["category"] == "fitness_station").sum() == 3
    unnamed = fac[fac["name"].str.endswith("(unnamed)")]
    assert len(unnamed) and unnamed["name"].str.match(r"^[a-z]").all()  # English placeholders
    assert fac["classified_by"].str.len().gt(0).all()
