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


@pytest.mark.slow
def test_batch_on_dask_equals_serial_run(demo_area, demo_run, tmp_path, capsys):
    """Two scenarios on a 2-worker local cluster; the baseline equals the serial run's table."""
    import pandas as pd

    scen = tmp_path / "scenarios.yaml"
    scen.write_text("baseline: {}\nflat_terrain:\n  terrain: {model: flat}\n", encoding="utf-8")
    assert main(["-q", "batch", str(demo_area), "--scenarios", str(scen), "--workers", "2"]) == 0
    out = capsys.readouterr().out
    assert "District coverage share per circle and task" in out
    root = demo_run.study.config.output_dir / "scenarios"
    base = pd.read_csv(root / "baseline" / "coverage_by_unit.csv", dtype={"unit_code": str})
    serial = pd.read_csv(demo_run.output_dir / "coverage_by_unit.csv", dtype={"unit_code": str})
    pd.testing.assert_frame_equal(base, serial)
    summary = pd.read_csv(root / "batch_summary.csv", index_col=0)
    # on the hilly demo flat terrain covers at least as many (a property of these data, see test_outputs)
    assert (summary["flat_terrain"] >= summary["baseline"] - 1e-9).all()
    # a second run skips both completed tasks
    assert main(["-q", "batch", str(demo_area), "--scenarios", str(scen)]) == 0
    out = capsys.readouterr().out
    assert "batch: 0 ok, 0 failed, 2 skipped; no worker lost" in out
    assert "baseline" in out and "(written to" in out


def test_siting_summary_line_reads_like_a_sentence():
    from accessibility.cli import _siting_line
    from accessibility.config import load_area
    from tests.conftest import AREA

    c = load_area(AREA, check_files=False).circles["eldercare_15min"]
    line = _siting_line(c, {"k_max": 30, "share_now": 0.873, "uncovered_demand": 22424.6,
                            "unreachable_by_candidates": 74.6, "greedy_covered_k_max": 16576.7,
                            "exact_covered_k_max": 16908.5, "exact_gap_k_max": 0.0,
                            "exact_proof_en": "proven optimal", "sites_needed_all_units": 320,
                            "sites_needed_proof_en": "best found, at most 26.5% from the proven bound "
                                                     "(node limit reached)", "capped": True})
    assert "22,425 residents aged 60+ not covered now (87.3% covered)" in line
    assert "best 30 new sites would cover 16,577" in line
    assert "the best set of 30 sites covers 16,908: proven optimal" in line
    # a result not proven says so, with its gap (issue 12: no "optimum" for a fallback)
    assert "needs 320 new sites (best found, at most 26.5% from the proven bound" in line and "capped" in line


def test_batch_scenario_file_mistakes_are_messages(tmp_path, capsys):
    """Review findings: these were tracebacks, or a typo retried three times on the workers."""
    from accessibility.cli import main

    area = "config/areas/jiangbei.yaml"
    typo = tmp_path / "typo.yaml"
    typo.write_text("flat:\n  terrain: {modle: flat}\n", encoding="utf-8")
    listed = tmp_path / "list.yaml"
    listed.write_text("- a\n- b\n", encoding="utf-8")
    broken = tmp_path / "broken.yaml"
    broken.write_text("flat: [\n", encoding="utf-8")
    for path, message in ((typo, "did you mean 'model'"), (tmp_path / "none.yaml", "No such file"),
                          (listed, "not a list"), (broken, "not valid YAML")):
        assert main(["-q", "batch", area, "--scenarios", str(path)]) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err
    assert main(["-q", "batch", area, "--k", "3"]) == 2
    assert "--per-unit-siting" in capsys.readouterr().err
