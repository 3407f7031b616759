"""Tests of accessibility.report: the HTML report and the Excel workbook."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import openpyxl
import pandas as pd
import pytest
import yaml

from accessibility.config import load_area
from accessibility.report import write_report, write_workbook

ROOT = Path(__file__).resolve().parents[1]
HOSTILE = '<script>alert(1)</script>&"x"'
CIRCLES = ["culture_15min", "fitness_15min", "eldercare_15min"]


@pytest.fixture(scope="module")
def synthetic_config():
    return load_area(ROOT / "config/areas/jiangbei.yaml", check_files=False)


@pytest.fixture
def real_config(tmp_path):
    """The Jiangbei config with every layer declared real, written as a small YAML in tmp_path."""
    data = yaml.safe_load((ROOT / "config/areas/jiangbei.yaml").read_text(encoding="utf-8"))
    for spec in data["sources"].values():
        for layer in spec if isinstance(spec, list) else [spec]:  # sources.facilities is a list
            layer["status"] = "real"
    data["base_dir"] = str(ROOT)
    data["categories"] = str(ROOT / "config/categories.yaml")
    data["siting"]["exclude"] = []
    data["siting"].pop("planned_projects", None)
    p = tmp_path / "real.yaml"
    p.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    cfg = load_area(p, check_files=False)
    assert not cfg.is_synthetic
    return cfg


def make_coverage():
    """Three units x three circles + district rows; unit 3 is worst for culture (largest gap)."""
    units = [
        ("500105001", HOSTILE, "Hostile Street"),
        ("500105002", "观音桥街道", "Guanyinqiao"),
        ("500105003", "寸滩街道", "Cuntan"),
    ]
    shares = {
        "culture_15min": [1.0, 0.9, 0.5],
        "fitness_15min": [1.0, 1.0, 1.0],
        "eldercare_15min": [0.7, 0.95, 0.2],
    }
    pops = [10_000.0, 20_000.0, 8_000.0]
    rows = []
    for cid in CIRCLES:
        for (code, name, en), share, pop in zip(units, shares[cid], pops, strict=True):
            if cid == "eldercare_15min":
                pop = pop * 0.2
            cov = share * pop
            rows.append(_row(code, name, en, cid, pop, cov))
        tot_pop = sum(r["population"] for r in rows if r["circle"] == cid)
        tot_cov = sum(r["covered_population"] for r in rows if r["circle"] == cid)
        rows.append(_row("500105", "全区", "whole district", cid, tot_pop, tot_cov))
    return pd.DataFrame(rows)


def _row(code, name, en, cid, pop, cov):
    share = cov / pop
    return {
        "unit_code": code, "unit_name": name, "unit_name_en": en, "circle": cid,
        "circle_label": cid, "mode": "time", "threshold": 15.0, "population": pop,
        "covered_population": cov, "coverage_share": share, "target_share": 1.0,
        "meets_target": share >= 1.0, "uncovered_population": pop - cov,
        "gap_population": max(0.0, pop - cov), "median_t": 7.0, "p90_t": 14.0, "t_unit": "min",
        "coverage_share_flat": min(1.0, share + 0.05), "data_status": "x",
    }  # fmt: skip


def _report(config, tmp_path, **kw):
    cov = make_coverage()
    unit_maps = {c: f"maps/unit_{c}.html" for c in ["500105001", "500105002", "500105003"]}
    siting = {
        "culture_15min": pd.DataFrame(
            {
                "rank": [1, 2],
                "site_id": [HOSTILE, "c7"],
                "added_covered_population": [1200.0, 300.0],
            }
        )
    }
    path = write_report(
        tmp_path / "out" / "report.html", config=config, coverage=cov, unit_maps=unit_maps,
        overview_href="maps/overview.html", siting=siting,
        parameters={"run_id": "test", "scenario": {"speed": 1.0}}, **kw,
    )  # fmt: skip
    return path.read_text(encoding="utf-8")


def test_report_synthetic_banner(synthetic_config, tmp_path):
    text = _report(synthetic_config, tmp_path)
    assert 'id="synthetic-banner"' in text
    assert "SYNTHETIC DEMO 合成示例数据" in text
    banner = text.split('id="synthetic-banner"')[1].split("</div>")[0]
    for layer in synthetic_config.synthetic_layers:
        assert f"<li>{layer}</li>" in banner


def test_report_no_banner_when_real(real_config, tmp_path):
    text = _report(real_config, tmp_path)
    assert "synthetic-banner" not in text and "SYNTHETIC DEMO" not in text
    assert "real data" in text


def test_report_escapes_hostile_names(synthetic_config, tmp_path):
    text = _report(
        synthetic_config,
        tmp_path,
        provenance=[{"name": HOSTILE, "status": "real", "path": "a.csv", "provenance": HOSTILE}],
        figures={HOSTILE: "fig.png"},
    )
    assert "<script>alert(1)</script>" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;&amp;&#34;x&#34;" in text
    assert text.count("<script") == 0  # the report itself needs no JavaScript


def test_report_units_links_and_summary(synthetic_config, tmp_path):
    text = _report(synthetic_config, tmp_path)
    for code in ["500105001", "500105002", "500105003"]:
        assert f'id="unit-{code}"' in text
        assert f'<a class="unit-map" href="maps/unit_{code}.html">' in text
        assert f'<iframe src="maps/unit_{code}.html" loading="lazy"' in text
    assert '<a href="maps/overview.html">' in text
    assert "观音桥街道" in text and "Cuntan" in text
    # culture: only unit 1 meets the target; worst by gap: Cuntan (4000) before Guanyinqiao (2000)
    culture = text.split('id="circle-culture_15min"')[1].split("</section>")[0]
    assert "<b>1 / 3</b>" in culture
    assert culture.index("寸滩街道") < culture.index("观音桥街道")
    assert "4,000" in culture and "2,000" in culture
    # district share = (10000 + 18000 + 4000) / 38000
    assert f"{100 * 32000 / 38000:.1f} %" in culture
    fitness = text.split('id="circle-fitness_15min"')[1].split("</section>")[0]
    assert "<b>3 / 3</b>" in fitness and "every unit meets the target" in fitness
    # parameters and provenance
    assert "1.2" in text and "tobler" in text and "max_snap_m" in text
    assert "15 min" in text and "300 m" in text
    for s in synthetic_config.sources.values():
        assert s.provenance.split(";")[0][:30].replace('"', "&#34;") in text
    assert "7.0 min" in text and "14.0 min" in text  # median / p90, already in minutes (t_unit)
    # siting table, numbers formatted
    assert "1,200" in text and "c7" in text


def test_report_drops_script_hrefs(synthetic_config, tmp_path):
    cov = make_coverage()
    path = write_report(
        tmp_path / "r.html", config=synthetic_config, coverage=cov,
        unit_maps={"500105001": "javascript:alert(1)"}, overview_href=None,
    )  # fmt: skip
    text = path.read_text(encoding="utf-8")
    assert "javascript:" not in text
    assert not list(tmp_path.glob(".r.*"))  # atomic write leaves no temporary file


def test_workbook_roundtrip(synthetic_config, tmp_path):
    cov = make_coverage()
    facilities = pd.DataFrame(
        {
            "fac_id": ["osm:n1", "inv:eldercare:2"],
            "name": [HOSTILE, "养老服务站"],
            "capacity": [np.nan, 30.0],
        }
    )
    long_name = "coverage/by:unit*with[a]very?long\\name that exceeds"
    tables = {long_name: cov, "facilities": facilities, "README": cov.head(2)}
    path = write_workbook(tmp_path / "results.xlsx", tables, config=synthetic_config)
    wb = openpyxl.load_workbook(path)
    names = wb.sheetnames
    assert names[0] == "README"
    assert len(names) == 4 and all(len(n) <= 31 for n in names)
    assert not any(re.search(r"[\[\]:*?/\\]", n) for n in names)
    assert len({n.lower() for n in names}) == 4
    readme = wb["README"]
    cells = [c.value for row in readme.iter_rows() for c in row if c.value is not None]
    assert any("SYNTHETIC DEMO" in str(v) for v in cells)
    assert "coverage_share" in cells and "gap_population" in cells
    assert readme["A3"].font.color.rgb.endswith("C00000")
    # header bold and frozen, shares as percent
    ws = wb[names[1]]
    assert ws.freeze_panes == "A2" and ws["A1"].font.bold
    col = [c.value for c in ws[1]].index("coverage_share") + 1
    assert ws.cell(row=2, column=col).number_format == "0.0%"
    assert ws.column_dimensions["A"].width >= len("unit_code")
    # data equal to the input
    assert ws["A2"].data_type == "s" and ws["A2"].number_format == "@"  # codes stored as text
    back = pd.read_excel(path, sheet_name=names[1], dtype={"unit_code": str})
    pd.testing.assert_frame_equal(back, cov, check_dtype=False)
    back_fac = pd.read_excel(path, sheet_name="facilities")
    pd.testing.assert_frame_equal(back_fac, facilities, check_dtype=False)
    pd.testing.assert_frame_equal(
        pd.read_excel(path, sheet_name=names[3], dtype={"unit_code": str}),
        cov.head(2),
        check_dtype=False,
    )


def test_workbook_real_has_no_banner(real_config, tmp_path):
    path = write_workbook(tmp_path / "r.xlsx", {"t": make_coverage()}, config=real_config)
    wb = openpyxl.load_workbook(path)
    head = [
        c.value for row in wb["README"].iter_rows(max_row=7) for c in row if c.value is not None
    ]
    assert not any("SYNTHETIC" in str(v) for v in head)  # (the glossary may name the status)
    assert "数据状态 data status: real data" in head


def test_siting_table_is_readable(tmp_path):
    """Bilingual headers, lon/lat to 1 m, shares as %, people as whole numbers, yes/no."""
    config = load_area(ROOT / "config" / "areas" / "jiangbei.yaml", check_files=False)
    curve = pd.DataFrame({"rank": [1], "site_id": ["cand_00001"], "lon": [106.5812345], "lat": [29.6144961],
                          "added_covered_population": [1234.4], "cumulative_coverage_share": [0.8731]})
    lscp = pd.DataFrame({"unit_code": ["500105004"], "target": [1.0], "sites_needed": [12.0],
                         "capped": [True]})
    path = write_report(tmp_path / "r.html", config=config, coverage=make_coverage(), unit_maps={},
                        overview_href=None, siting={"eldercare_15min": curve, "LSCP": lscp})
    text = path.read_text(encoding="utf-8")
    assert "106.58123" in text and "29.61450" in text
    assert "1,234" in text and "87.3 %" in text and "100.0 %" in text
    assert "经度 lon (WGS-84)" in text and "最少新增 fewest new sites" in text and "是 yes" in text


def test_siting_cells_never_round_a_capped_maximum_to_100():
    from accessibility.report import _siting_cell

    assert _siting_cell("reachable_max_share", 0.999752) == ("99.98 %", True)
    assert _siting_cell("reachable_max_share", 1.0) == ("100.0 %", True)
    assert _siting_cell("covered_share_now", 0.5) == ("50.0 %", True)


@pytest.mark.parametrize("language", ["en", "zh", "bilingual"])
def test_report_follows_the_area_language(synthetic_config, tmp_path, language):
    import dataclasses

    cfg = dataclasses.replace(synthetic_config, language=language)
    text = _report(cfg, tmp_path)
    body = text.split("</header>", 1)[1]
    heads = {"en": ["Streets and towns", "Jiangbei District coverage"], "zh": ["各街道/镇", "全区覆盖率"]}
    for lang, words in heads.items():
        for w in words:
            assert (w in body) == (language in (lang, "bilingual")), (language, w)
    assert ('<html lang="en">' in text) == (language == "en")
    # whatever the language, a synthetic run says so
    assert "SYNTHETIC DEMO" in body


def test_report_embeds_charts_as_images(synthetic_config, tmp_path):
    svg = '<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"><text>--&gt;</text></svg>'
    text = _report(synthetic_config, tmp_path,
                   charts={"culture_15min_coverage": ("culture_15min", HOSTILE, svg)})
    import base64

    section = text.split('id="circle-culture_15min"')[1].split("</section>")[0]
    assert 'id="chart-culture_15min_coverage"' in section
    src = section.split('src="data:image/svg+xml;base64,')[1].split('"')[0]
    assert base64.b64decode(src).decode() == svg
    assert "<script>alert(1)</script>" not in text  # the caption is escaped
