"""Batch runs on a real 2-process Dask LocalCluster: same results as serial runs, failures reported
after retries, completed tasks skipped on re-runs."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import cloudpickle
import pytest

distributed = pytest.importorskip("distributed")

from accessibility._errors import ConfigError  # noqa: E402
from accessibility.batch import (  # noqa: E402
    COLUMNS,
    is_task_complete,
    local_cluster,
    run_batch,
    run_unit_siting_task,
    scenario_tasks,
    unit_siting_summary,
    unit_siting_tasks,
)  # noqa: E402

# the task functions below travel to the worker processes by value (the workers cannot import
# this test module)
cloudpickle.register_pickle_by_value(sys.modules[__name__])

REPO = Path(__file__).resolve().parents[1]


def toy_task(*, config, output_dir, scenario):
    """A small deterministic 'analysis': writes result.json and, last, a _COMPLETE marker."""
    scenario = scenario or {}
    if scenario.get("fail"):
        raise ValueError(f"scenario asks to fail (config {config})")
    out = Path(output_dir)
    if scenario.get("flaky"):  # fails on the first attempt only
        flag = out.parent / f".{out.name}.tried"
        if not flag.exists():
            flag.parent.mkdir(parents=True, exist_ok=True)
            flag.write_text("1")
            raise RuntimeError("transient failure")
    k = int(scenario.get("k", 1))
    value = sum(i * i for i in range(k * 1000)) % 1_000_003
    out.mkdir(parents=True, exist_ok=True)
    (out / "result.json").write_text(json.dumps({"config": str(config), "k": k, "value": value}))
    (out / "_COMPLETE").write_text(json.dumps({"inputs_fingerprint": f"toy-{k}"}))
    return value


def _tasks(root: Path, scenarios: dict) -> list[dict]:
    return [{"task_id": name, "config": "toy.yaml", "scenario": scen, "output_dir": str(root / name)}
            for name, scen in scenarios.items()]


@pytest.fixture(scope="module")
def scheduler_address():
    # 2 worker processes on 127.0.0.1, dashboard off (see local_cluster)
    cluster = local_cluster(n_workers=2, threads_per_worker=1)
    try:
        yield cluster.scheduler_address
    finally:
        cluster.close()


def test_batch_equals_serial(tmp_path, scheduler_address):
    scenarios = {f"s{k}": {"k": k} for k in range(1, 7)}
    table = run_batch(_tasks(tmp_path / "dask", scenarios), scheduler=scheduler_address,
                      func=toy_task, progress=False)
    assert list(table.columns) == COLUMNS
    assert table["task_id"].tolist() == list(scenarios)  # task order kept
    assert (table["status"] == "ok").all(), table
    assert (table["attempts"] == 1).all()
    assert (table["error"] == "").all()
    for t in _tasks(tmp_path / "serial", scenarios):
        toy_task(config=t["config"], output_dir=t["output_dir"], scenario=t["scenario"])
    for name in scenarios:
        got = json.loads((tmp_path / "dask" / name / "result.json").read_text())
        want = json.loads((tmp_path / "serial" / name / "result.json").read_text())
        assert got == want
    # hand check of one value: sum of i^2 for i < 1000 = 999*1000*1999/6
    assert json.loads((tmp_path / "dask" / "s1" / "result.json").read_text())["value"] == 332833500 % 1_000_003


def test_failures_reported_after_retries(tmp_path, scheduler_address):
    scenarios = {"good": {"k": 2}, "bad": {"fail": True}, "flaky": {"flaky": True, "k": 3}}
    table = run_batch(_tasks(tmp_path, scenarios), scheduler=scheduler_address, func=toy_task,
                      retries=2, progress=False).set_index("task_id")
    assert table.loc["good", "status"] == "ok"
    assert table.loc["good", "attempts"] == 1
    bad = table.loc["bad"]
    assert bad["status"] == "failed"
    assert bad["attempts"] == 3  # 1 + retries
    assert "ValueError: scenario asks to fail" in bad["error"]
    assert "Traceback" in bad["error"]
    assert not (tmp_path / "bad").exists()
    flaky = table.loc["flaky"]
    assert flaky["status"] == "ok"
    assert flaky["attempts"] == 2  # failed once, retried once
    assert flaky["error"] == ""
    # no retries: the flaky-style failure is final
    table0 = run_batch(_tasks(tmp_path / "r0", {"bad": {"fail": True}}), scheduler=scheduler_address,
                       func=toy_task, retries=0, progress=False)
    assert table0.loc[0, "status"] == "failed"
    assert table0.loc[0, "attempts"] == 1


def test_rerun_skips_completed(tmp_path, scheduler_address):
    scenarios = {"a": {"k": 1}, "b": {"k": 2}, "c": {"k": 3}}
    tasks = _tasks(tmp_path, scenarios)
    first = run_batch(tasks, scheduler=scheduler_address, func=toy_task, progress=False)
    assert (first["status"] == "ok").all()
    assert all(is_task_complete(t, check_inputs=False) for t in tasks)
    mtime = (tmp_path / "a" / "result.json").stat().st_mtime_ns

    second = run_batch(tasks, scheduler=scheduler_address, func=toy_task, progress=False)
    assert (second["status"] == "skipped").all()
    assert (second["attempts"] == 0).all()
    assert (tmp_path / "a" / "result.json").stat().st_mtime_ns == mtime  # not re-run

    # a missing or broken marker means "not complete": only those tasks run again
    (tmp_path / "b" / "_COMPLETE").unlink()
    (tmp_path / "c" / "_COMPLETE").write_text("{not json")
    third = run_batch(tasks, scheduler=scheduler_address, func=toy_task, progress=False).set_index("task_id")
    assert third["status"].to_dict() == {"a": "skipped", "b": "ok", "c": "ok"}
    assert is_task_complete(tasks[2], check_inputs=False)


def test_default_local_cluster(tmp_path):
    table = run_batch(_tasks(tmp_path, {"x": {"k": 4}, "y": {"fail": True}}), func=toy_task,
                      n_workers=2, retries=1, progress=False)
    assert table["status"].tolist() == ["ok", "failed"]
    assert table["attempts"].tolist() == [1, 2]


def test_task_validation():
    with pytest.raises(ConfigError) as err:
        run_batch([{"task_id": "a", "config": "c.yaml", "output_dir": "o"},
                   {"task_id": "a", "config": "c.yaml", "output_dir": "o2", "scenaro": {}},
                   {"task_id": "b", "output_dir": "o3"}], func=toy_task, progress=False)
    msg = str(err.value)
    assert "'a' appears twice" in msg
    assert "scenaro" in msg
    assert "lacks config" in msg


def test_scenario_tasks(tmp_path):
    scen = {"base": None, "slow_elderly": {"profiles": {"elderly": {"flat_speed_mps": 0.8}}},
            "flat": {"terrain": {"model": "flat"}}}
    tasks = scenario_tasks("config/areas/jiangbei.yaml", scen, tmp_path)
    assert [t["task_id"] for t in tasks] == ["base", "slow_elderly", "flat"]
    assert tasks[1]["scenario"] == {"profiles": {"elderly": {"flat_speed_mps": 0.8}}}
    assert tasks[0]["scenario"] is None
    assert tasks[2]["output_dir"] == str(tmp_path / "flat")
    with pytest.raises(ConfigError, match="safe folder name"):
        scenario_tasks("config/areas/jiangbei.yaml", {"../evil": {}}, tmp_path)


def test_scenario_tasks_default_root():
    tasks = scenario_tasks(REPO / "config/areas/jiangbei.yaml", {"flat": {"terrain": {"model": "flat"}}})
    assert Path(tasks[0]["output_dir"]) == REPO / "data/processed/jiangbei_synthetic_demo/scenarios/flat"


def test_per_unit_siting_on_the_cluster_equals_serial(demo_area, tmp_path, scheduler_address):
    """Every street/town's own siting sweep as independent Dask tasks: same files as serial runs,
    sites only inside the unit, a summary row per unit and plan circle, re-runs skipped."""
    import pandas as pd

    from accessibility._errors import DataError

    units = ["500105004", "500105100"]
    tasks = unit_siting_tasks(demo_area, units, k_max=3, out_root=tmp_path / "dask")
    assert [t["task_id"] for t in tasks] == units
    assert tasks[0]["scenario"] == {"siting": {"max_new_sites": 3, "units": ["500105004"]}}
    table = run_batch(tasks, scheduler=scheduler_address, func=run_unit_siting_task, progress=False)
    assert (table["status"] == "ok").all(), table["error"].tolist()
    for t in unit_siting_tasks(demo_area, units, k_max=3, out_root=tmp_path / "serial"):
        run_unit_siting_task(config=t["config"], output_dir=t["output_dir"], scenario=t["scenario"])
    for code in units:
        files = sorted(p.name for p in (tmp_path / "dask" / code).glob("siting_*.csv"))
        assert files == sorted(p.name for p in (tmp_path / "serial" / code).glob("siting_*.csv"))
        assert any(f.endswith("_lscp_by_unit.csv") for f in files)
        for name in files:
            got = pd.read_csv(tmp_path / "dask" / code / name, dtype={"unit_code": str})
            want = pd.read_csv(tmp_path / "serial" / code / name, dtype={"unit_code": str})
            pd.testing.assert_frame_equal(got, want)
            if name.count("_") == 2 and not name.endswith("_by_unit.csv"):  # siting_<circle>.csv: the ranking
                assert (got["unit_code"] == code).all() and len(got) <= 3
        assert (tmp_path / "dask" / code / "warnings.txt").exists()
    summary = unit_siting_summary(table)
    assert sorted(summary["unit_code"].unique()) == units
    assert len(summary) == 2 * 3  # two units x three plan circles
    assert (summary["share_after_k"] >= summary["covered_share_now"] - 1e-12).all()
    assert (summary["k"] <= 3).all()
    assert (summary["k_requested"] == 3).all() and (summary["candidates"] == "inside the unit(s) only").all()
    # from the folders: the same rows (a later call's summary never drops earlier units)
    from_root = unit_siting_summary(tmp_path / "dask")
    pd.testing.assert_frame_equal(from_root.sort_values(["unit_code", "circle"]).reset_index(drop=True),
                                  summary.sort_values(["unit_code", "circle"]).reset_index(drop=True))
    again = run_batch(tasks, scheduler=scheduler_address, func=run_unit_siting_task, progress=False)
    assert (again["status"] == "skipped").all()
    # unknown or unsafe codes are refused before anything reaches the workers
    with pytest.raises(ConfigError, match="999 are not in the units layer"):
        unit_siting_tasks(demo_area, ["999"], out_root=tmp_path / "bad")
    with pytest.raises(ConfigError, match="not valid codes"):
        unit_siting_tasks(demo_area, ["../x"], out_root=tmp_path / "bad")
    with pytest.raises(DataError, match="siting.units 999 not in the units layer"):
        run_unit_siting_task(config=demo_area, output_dir=tmp_path / "bad",
                             scenario={"siting": {"units": ["999"]}})


# ---------------------------------------------------------------------------------------------
# issue 15: stale tasks, no worker, lost workers, summaries of successive batches


def test_rerun_redoes_a_task_whose_planned_projects_changed(demo_area, tmp_path, scheduler_address):
    """Review finding: after cutting the planned projects from 8 to 1 a re-run 'skipped' the task and
    kept a table listing removed projects (the fingerprint covered the configuration only)."""
    import pandas as pd

    from accessibility.config import load_area
    from accessibility.pipeline import input_files

    cfg = load_area(demo_area)
    planned = tmp_path / "planned.csv"
    shutil.copy(cfg.siting.planned_projects, planned)
    # siting for one unit only (the planned projects are evaluated district-wide all the same): cheap
    scen = {"siting": {"planned_projects": str(planned), "max_new_sites": 2, "units": ["500105004"]}}
    tasks = [{"task_id": "base", "config": str(demo_area), "scenario": scen, "output_dir": str(tmp_path / "base")}]
    # every input file is in the fingerprint, siting files too
    files = set(input_files(load_area(demo_area, overrides=scen)))
    assert planned in files and set(cfg.siting.exclude) <= files
    first = run_batch(tasks, scheduler=scheduler_address, progress=False)
    assert first["status"].tolist() == ["ok"], first["error"].tolist()
    out = tmp_path / "base" / "scenario_planned_projects.csv"

    def projects() -> set[str]:
        return {name for v in pd.read_csv(out)["projects"].dropna() for name in str(v).split("; ")}

    projects_before = projects()
    table = pd.read_csv(planned, encoding="utf-8-sig")
    assert len(table) > 1
    table.head(1).to_csv(planned, index=False, encoding="utf-8-sig")  # the plan now keeps one project
    assert not is_task_complete(tasks[0])
    second = run_batch(tasks, scheduler=scheduler_address, progress=False)
    assert second["status"].tolist() == ["ok"]  # redone, not skipped
    assert projects() == {table["name"].iloc[0]} and len(projects_before) > 1
    assert run_batch(tasks, scheduler=scheduler_address, progress=False)["status"].tolist() == ["skipped"]


def test_no_worker_is_a_clear_error_not_a_silent_wait(tmp_path, capsys, demo_area):
    from distributed import LocalCluster

    from accessibility._errors import BatchError
    from accessibility.cli import main

    cluster = LocalCluster(n_workers=0, processes=True, host="127.0.0.1", dashboard_address=None,
                           scheduler_kwargs={"dashboard_address": "127.0.0.1:0"})
    try:
        with pytest.raises(BatchError, match=r"no Dask worker connected to the scheduler tcp://127.0.0.1:\d+ for "
                           r"1.5 s; 2 task\(s\) not run"):
            run_batch(_tasks(tmp_path, {"a": {"k": 1}, "b": {"k": 2}}), scheduler=cluster.scheduler_address,
                      func=toy_task, progress=False, worker_timeout_s=1.5)
        # the command: one line, non-zero exit
        assert main(["-q", "batch", str(demo_area), "--scheduler",
                     cluster.scheduler_address, "--worker-timeout", "1"]) == 2
        err = capsys.readouterr().err
        assert "error: batch: no Dask worker connected" in err and "Traceback" not in err
    finally:
        cluster.close()
    with pytest.raises(ConfigError, match="worker_timeout_s"):
        run_batch([], worker_timeout_s=0)


def dying_task(*, config, output_dir, scenario):
    """Kills its worker process on the first attempt (as an out-of-memory kill would)."""
    import os

    out = Path(output_dir)
    flag = out.parent / f".{out.name}.died"
    if not flag.exists():
        flag.parent.mkdir(parents=True, exist_ok=True)
        flag.write_text("1")
        os._exit(1)
    return toy_task(config=config, output_dir=output_dir, scenario=scenario)


def test_lost_workers_and_retries_are_reported(tmp_path, scheduler_address):
    from accessibility.batch import batch_report

    table = run_batch(_tasks(tmp_path, {"dies": {"k": 1}}), scheduler=scheduler_address, func=dying_task,
                      progress=False, retries=0)
    row = table.iloc[0]
    assert row["status"] == "ok"  # the scheduler ran it again on another worker
    assert row["lost_workers"] == 1
    assert len(table.attrs["lost_workers"]) == 1
    text = batch_report(table)
    assert "retried: dies (1 attempts, 1 lost with a worker)" in text
    assert "1 worker(s) lost (tcp://127.0.0.1:" in text


def test_batch_summaries_of_successive_batches_are_kept(tmp_path):
    import pandas as pd

    from accessibility.batch import merge_summary_file

    path = tmp_path / "batch_summary.csv"
    first = pd.DataFrame({"baseline": [0.8, 0.5], "flat": [0.9, 0.6]}, index=pd.Index(["a", "b"], name="circle"))
    merge_summary_file(path, first).to_csv(path, encoding="utf-8-sig")
    second = pd.DataFrame({"flat": [0.95, 0.65], "slow": [0.7, 0.4]}, index=pd.Index(["a", "b"], name="circle"))
    merge_summary_file(path, second).to_csv(path, encoding="utf-8-sig")
    got = pd.read_csv(path, index_col=0, encoding="utf-8-sig")
    assert sorted(got.columns) == ["baseline", "flat", "slow"]  # the baseline column survives
    assert got.loc["a", "flat"] == 0.95 and got.loc["a", "baseline"] == 0.8  # a re-run task: its new column
