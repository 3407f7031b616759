"""The command line: readable help, a clear error for a bad file, the summary of the demo area."""

from __future__ import annotations

import pytest

from accessibility.cli import build_parser, main


def test_help_lists_subcommands(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for cmd in ["demo-data", "summary", "run", "fetch", "batch"]:
        assert cmd in out


def test_run_help_names_outputs():
    text = build_parser()._subparsers._group_actions[0].choices["run"].format_help()
    assert "coverage_by_unit.csv" in text and "--basemap" in text


def test_bad_config_is_a_clean_error(tmp_path, capsys):
    bad = tmp_path / "area.yaml"
    bad.write_text("name: x\ncrs: EPSG:4326\n", encoding="utf-8")
    assert main(["-q", "summary", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "area.yaml" in err and "missing key" in err


@pytest.mark.slow
def test_summary_of_demo_area(demo_area, capsys):
    assert main(["-q", "summary", str(demo_area)]) == 0
    out = capsys.readouterr().out
    assert "SYNTHETIC DEMO" in out
    assert "Units: 12 (街道 9, 镇 3)" in out
    assert "Population: 925,800" in out
    assert "boundary         REAL" in out and "network          SYNTHETIC" in out
    for cid in ["culture_15min", "fitness_15min", "eldercare_15min"]:
        assert cid in out
