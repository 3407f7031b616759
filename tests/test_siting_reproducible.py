"""Siting answers do not depend on the machine's load, and never call an unproven result optimal.

Both tests reuse the session's demo run (``demo_run``: its loaded study area and per-cell results)
and run only the siting stage again, not the whole pipeline.
"""

from __future__ import annotations

import re
import subprocess
import sys
import warnings

import openpyxl
import pandas as pd
import pytest

from accessibility._errors import AccessibilityWarning

K_MAX = 10  # as the demo_run fixture
PROVEN = ("已证最优", "proven optimal")  # siting.proof_label's words for a proven optimum
FORBIDDEN = re.compile(r"optim|最优", re.IGNORECASE)


def _siting_outputs(demo_run, out):
    """Siting of every plan circle into ``out``: (siting results, output files' bytes, the
    workbook's siting sheets' cell values, the report's siting tables)."""
    from accessibility.pipeline import siting_report_tables, write_siting, write_workbook

    out.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AccessibilityWarning)  # the demo's known data warnings
        siting_out = write_siting(out, demo_run.study, demo_run.results, k_max=K_MAX, progress=False)
    files = {p.name: p.read_bytes() for p in sorted(out.glob("siting_*"))}
    book = write_workbook(out / "coverage.xlsx", demo_run.study, demo_run.coverage, siting_out, None)
    wb = openpyxl.load_workbook(book, read_only=True)
    sheets = {ws.title: [list(r) for r in ws.iter_rows(values_only=True)] for ws in wb.worksheets}
    wb.close()
    return siting_out, files, sheets, siting_report_tables(demo_run.study.config, siting_out)


def _busy_cores(n: int = 2) -> list[subprocess.Popen]:
    """``n`` processes spinning at 100 % CPU (the machine "under load")."""
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]


def test_siting_outputs_identical_under_load(demo_run, tmp_path):
    quiet = _siting_outputs(demo_run, tmp_path / "quiet")
    spinners = _busy_cores(2)
    try:
        loaded = _siting_outputs(demo_run, tmp_path / "loaded")
    finally:
        for p in spinners:
            p.kill()
            p.wait()
    _, files_q, sheets_q, tables_q = quiet
    _, files_l, sheets_l, tables_l = loaded
    assert any(n.endswith(".geojson") for n in files_q) and any(n.endswith("_exact.csv") for n in files_q)
    assert files_q.keys() == files_l.keys()
    for name in files_q:
        assert files_q[name] == files_l[name], f"{name} differs under load"
    # the full run of the session (same inputs, k_max) wrote the same bytes too
    for name, data in files_q.items():
        assert (demo_run.output_dir / name).read_bytes() == data, f"{name} differs from the full run"
    siting_sheets = [s for s in sheets_q if s.startswith(("sites_", "exact_", "fewest_"))]
    assert siting_sheets and all(sheets_q[s] == sheets_l[s] for s in siting_sheets)
    assert list(tables_q) == list(tables_l)  # headings (they hold the numbers and the proof words)
    for key in tables_q:
        pd.testing.assert_frame_equal(tables_q[key], tables_l[key])
    # no GeoJSON remembers the temporary file it was written to
    for name, data in files_q.items():
        if name.endswith(".geojson"):
            assert b".tmp" not in data and f'"name": "{name[:-8]}"'.encode() in data


def _strip_proven(text: str) -> str:
    for word in PROVEN:
        text = text.replace(word, "")
    return text


def _sheet_text(rows) -> str:
    """A sheet's text without its ``status`` codes, after checking that the code ``optimal`` sits
    only on rows whose gap to the proven bound is 0 and whose proof label says proven."""
    if not rows:
        return ""
    head = [str(h) for h in rows[0]]
    skip = head.index("status") if "status" in head else None
    if skip is not None:
        for row in rows[1:]:
            if row[skip] == "optimal":
                assert row[head.index("gap")] == 0, row
                if "proof_en" in head:
                    assert row[head.index("proof_en")] == PROVEN[1], row
    return "\n".join(str(v) for row in rows for j, v in enumerate(row) if v is not None and j != skip)


def test_unproven_results_are_never_called_optimal(demo_run, tmp_path, monkeypatch):
    """Tiny work limits leave results unproven: report, workbook and console say "best found"
    with the gap for them, and the words optimal/optimum/最优 appear only as the proven label."""
    import accessibility.siting as siting_mod
    from accessibility.cli import _siting_line
    from accessibility.pipeline import write_report

    real = siting_mod.SolverLimits

    def tiny(**kw):  # what a planner gets with siting.node_limit: 1 and a loose gap tolerance
        return real(**{**kw, "node_limit": 1, "mip_rel_gap": 0.5, "lp_rounds": 1})

    monkeypatch.setattr(siting_mod, "SolverLimits", tiny)
    out = tmp_path / "unproven"
    siting_out, _, sheets, _ = _siting_outputs(demo_run, out)
    cfg = demo_run.study.config
    statuses = [r["summary"]["exact_status"] for r in siting_out.values()]
    statuses += [s for r in siting_out.values() for s in r["lscp_by_unit"]["status"]]
    assert any(s not in ("optimal", "nothing_to_do") for s in statuses), statuses
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AccessibilityWarning)
        report = write_report(out / "report.html", demo_run.study, demo_run.coverage, demo_run.results, siting_out)
    html = report.read_text(encoding="utf-8")
    book = "\n".join(_sheet_text(rows) for rows in sheets.values())
    console = "\n".join(_siting_line(cfg.circles[cid], r["summary"]) for cid, r in siting_out.items())
    for name, text in (("report", html), ("workbook", book), ("console", console)):
        left = FORBIDDEN.findall(_strip_proven(text))
        assert not left, f"{name} calls something optimal outside the proven label: {left[:5]}"
        assert "best found" in text, name
    # each unproven result is labelled with its own gap, wherever it is shown
    for cid, r in siting_out.items():
        s = r["summary"]
        if s["exact_status"] not in ("optimal", "nothing_to_do"):
            assert s["exact_proof_en"].startswith("best found") and f"{s['exact_gap_k_max']:.1%}" in s["exact_proof_en"]
            assert s["exact_proof_en"] in console
        lscp = r["lscp_by_unit"]
        for _, row in lscp.iterrows():
            proven = row["status"] in ("optimal", "nothing_to_do")
            assert row["proof_en"].startswith("best found") != proven, (cid, row["unit_code"], row["status"])
            assert (row["proof_en"] in html) and (row["proof_en"] in book)
        assert lscp.iloc[-1]["proof_en"] in console
    # the proven label is counted once per proven result in the console (one per circle and model)
    n_proven = sum((r["summary"]["exact_status"] == "optimal") + (r["summary"]["sites_needed_status"] == "optimal")
                   for r in siting_out.values())
    assert console.count("proven optimal") == n_proven


@pytest.mark.parametrize("key,value,msg", [("node_limit", 0, "node_limit"), ("time_limit_s", -5, "time_limit_s"),
                                           ("node_limit", "many", "node_limit")])
def test_siting_limits_in_config_are_checked(demo_area, tmp_path, key, value, msg):
    import yaml

    from accessibility._errors import ConfigError
    from accessibility.config import load_area

    data = yaml.safe_load(demo_area.read_text(encoding="utf-8"))
    data["siting"][key] = value
    p = demo_area.parent / f"bad_{key}_{value}.yaml"
    p.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    with pytest.raises(ConfigError, match=f"siting.{msg}"):
        load_area(p, check_files=False)
