"""Nothing silent, nothing lost (issue 15), on the Jiangbei demo: output failures are one-line
messages, Ctrl-C at any stage and killed runs never cost the earlier results, one run per folder,
identical runs give identical bytes."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from accessibility._errors import AccessibilityWarning, DataError, RunLockedError
from accessibility._io import sha256_file
from accessibility.cli import main

pytestmark = pytest.mark.slow


def _snapshot(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): sha256_file(p) for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def earlier(demo_run, tmp_path) -> tuple[Path, dict[str, str]]:
    """A copy of the finished demo run (its folder, and the hash of every file in it)."""
    out = tmp_path / "jiangbei_synthetic_demo"
    shutil.copytree(demo_run.output_dir, out)
    return out, _snapshot(out)


def _no_leftovers(out: Path) -> None:
    assert sorted(p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}")) == []


def _run(demo_area, out, **kw):
    from accessibility.pipeline import run

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AccessibilityWarning)  # the demo's own data-check warnings
        return run(demo_area, output_dir=out, progress=False, **{"maps": False, "siting": False, **kw})


# ---------------------------------------------------------------------------------------------
# output failures: one clear line, found before the computation where possible


@pytest.mark.parametrize(("code", "text"), [(errno.EROFS, "read-only file system"),
                                            (errno.EACCES, "no permission to write")])
def test_unwritable_output_folder_is_one_line_before_any_work(demo_area, earlier, monkeypatch, capsys, code, text):
    from accessibility import _io, pipeline

    out, before = earlier

    def refuse(path):
        raise (PermissionError if code == errno.EACCES else OSError)(code, os.strerror(code), str(path))

    def never(*a, **k):
        raise AssertionError("the inputs were loaded although the output folder cannot be written")

    monkeypatch.setattr(_io, "_open_exclusive", refuse)
    monkeypatch.setattr(pipeline, "load_study_area", never)
    assert main(["-q", "run", str(demo_area), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: cannot write") and text in err and str(out.parent) in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert _snapshot(out) == before


def test_too_little_free_space_is_found_at_the_start(demo_area, earlier, monkeypatch, capsys):
    import collections

    from accessibility import _io, pipeline

    out, before = earlier
    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(_io.shutil, "disk_usage", lambda p: usage(2**34, 2**34 - 5 * 2**20, 5 * 2**20))
    monkeypatch.setattr(pipeline, "load_study_area", lambda *a, **k: pytest.fail("loaded"))
    assert main(["-q", "run", str(demo_area), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    # the earlier run's size tells how much the new one needs (old and new coexist until the commit)
    size_mb = sum(p.stat().st_size for p in out.rglob("*") if p.is_file()) * 1.2 / 2**20
    assert f"not enough free space for the outputs in {out.parent}: 5 MB free" in err
    assert f"about {max(64, size_mb):,.0f} MB needed" in err and err.count("\n") == 1
    assert _snapshot(out) == before


def test_disk_full_while_writing_is_one_line_and_keeps_the_earlier_results(demo_area, earlier, monkeypatch, capsys):
    """The issue's third traceback: pyogrio's 'database or disk is full' half-way through the tables."""
    from accessibility import pipeline

    out, before = earlier

    def full(gdf, path, layer):  # noqa: ARG001
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(pipeline, "_to_gpkg", full)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AccessibilityWarning)
        assert main(["-q", "run", str(demo_area), "--out", str(out), "--no-maps", "--no-siting"]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error")]
    assert len(err) == 1, err
    assert "the disk is full" in err[0] and "cells_results.gpkg" in err[0]
    assert f"{out} holds the earlier results as they were" in err[0]
    assert _snapshot(out) == before
    _no_leftovers(out)


# ---------------------------------------------------------------------------------------------
# interrupts at several stages; killed runs


def _swallowed_ctrl_c():
    """Ctrl-C raised where the KeyboardInterrupt is lost (as in zipfile.__del__ during facilities)."""
    with contextlib.suppress(KeyboardInterrupt):
        signal.raise_signal(signal.SIGINT)


@pytest.mark.parametrize("stage", ["facilities (swallowed)", "workbook (swallowed, last step)"])
def test_ctrl_c_at_any_stage_never_replaces_the_earlier_results(demo_area, earlier, monkeypatch, stage):
    from accessibility import facilities, pipeline

    out, before = earlier
    if stage.startswith("facilities"):
        real = facilities.load_facilities

        def patched(*a, **k):
            _swallowed_ctrl_c()
            return real(*a, **k)

        monkeypatch.setattr(facilities, "load_facilities", patched)
    else:
        real_wb = pipeline.write_workbook

        def patched_wb(*a, **k):
            path = real_wb(*a, **k)
            _swallowed_ctrl_c()
            return path

        monkeypatch.setattr(pipeline, "write_workbook", patched_wb)
    with pytest.raises(KeyboardInterrupt):
        _run(demo_area, out)
    assert _snapshot(out) == before
    _no_leftovers(out)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handler given back


def test_next_run_repairs_what_killed_runs_left(demo_area, earlier, tmp_path):
    """A run SIGKILLed mid-computation leaves a hidden .<name>.run.* folder; one killed between the
    commit's two renames leaves no output folder, the results in .<name>.old: the next run fixes both,
    even when it fails itself."""
    out, before = earlier
    leftover = out.parent / f".{out.name}.run.x7k2q9"
    shutil.copytree(out / "maps", leftover / "maps")
    os.replace(out, out.parent / f".{out.name}.old")
    bad = tmp_path / "not_a_raster.tif"
    bad.write_text("this is not a GeoTIFF")
    from accessibility.pipeline import run

    with warnings.catch_warnings(record=True) as caught, pytest.raises(DataError, match="not_a_raster.tif"):
        warnings.simplefilter("always", AccessibilityWarning)
        run(demo_area, output_dir=out, progress=False, maps=False, siting=False,
            scenario={"sources": {"population": {"path": str(bad)}}})
    restored = [str(w.message) for w in caught if "previous results were restored" in str(w.message)]
    assert restored == [f"{out}: an earlier run was stopped while replacing its results; the previous results "
                        f"were restored from .{out.name}.old"]
    assert _snapshot(out) == before
    _no_leftovers(out)


def test_a_second_run_into_the_same_folder_is_refused(demo_area, earlier, capsys, tmp_path):
    out, before = earlier
    lock = out.parent / f".{out.name}.lock"
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        lock.write_text(json.dumps({"pid": other.pid, "host": socket.gethostname(),
                                    "started": "2026-12-01 20:00:00 UTC", "command": "accessibility run"}))
        assert main(["-q", "run", str(demo_area), "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert f"is in use by run pid {other.pid} on host {socket.gethostname()}, started 2026-12-01" in err
        assert err.count("\n") == 1
        with pytest.raises(RunLockedError):
            _run(demo_area, out)
    finally:
        other.kill()
        other.wait()
    assert _snapshot(out) == before
    # that run is gone: its lock is taken over (here by a run that fails on a broken input)
    bad = tmp_path / "bad.tif"
    bad.write_text("no")
    with pytest.raises(DataError):
        _run(demo_area, out, scenario={"sources": {"population": {"path": str(bad)}}})
    assert not lock.exists() and _snapshot(out) == before


# ---------------------------------------------------------------------------------------------
# same inputs, same bytes


def test_two_identical_runs_give_identical_bytes(demo_area, tmp_path, monkeypatch):
    """Every output byte for byte (maps, report, workbook, GeoPackages, CSVs), except run.json's date
    and timings (the one documented difference).

    The first run writes its tables and maps in side processes (accessibility._parallel, where the
    machine allows), the second all in one process (ACCESSIBILITY_WORKERS=1): the same bytes.
    Without siting, to keep the test short (siting's own byte-for-byte test under load is in
    test_siting_reproducible.py).
    """
    from accessibility.pipeline import run

    dirs = [tmp_path / name / "jiangbei_synthetic_demo" for name in ("first", "second")]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AccessibilityWarning)
        for i, d in enumerate(dirs):
            if i == 1:
                monkeypatch.setenv("ACCESSIBILITY_WORKERS", "1")
            run(demo_area, output_dir=d, progress=False, basemap="none", siting=False)
    a, b = (_snapshot(d) for d in dirs)
    assert sorted(a) == sorted(b)
    assert any(k.startswith("maps/unit_") for k in a) and "coverage.xlsx" in a and "report.html" in a
    differ = sorted(k for k in a if a[k] != b[k])
    assert differ == ["run.json"], differ
    ja, jb = (json.loads((d / "run.json").read_text()) for d in dirs)
    assert ja.pop("timings_s").keys() == jb.pop("timings_s").keys()
    assert ja.pop("finished_utc")[:2] == jb.pop("finished_utc")[:2] == "20"
    assert ja == jb


# ---------------------------------------------------------------------------------------------
# physical units on the demo


def test_a_dem_in_feet_is_caught_and_declaring_it_gives_the_metres_back(demo_area, demo_run, tmp_path):
    """Review finding: a DEM in feet was accepted (elevations 509-2177 'm') and cut the district's
    elderly-care coverage from 87.1 % to 68.9 %."""
    import numpy as np
    import rasterio

    from accessibility.pipeline import load_study_area

    src = demo_run.study.config.sources["dem"].path
    feet = tmp_path / "dem_feet.tif"
    with rasterio.open(src) as s:
        profile, data = s.profile, s.read(1, masked=True).astype("float64")
    profile.update(dtype="float64")
    nodata = profile.get("nodata")
    with rasterio.open(feet, "w", **profile) as d:
        d.write(np.where(np.ma.getmaskarray(data), nodata if nodata is not None else np.nan,
                         np.ma.getdata(data) / 0.3048), 1)

    def load(dem):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", AccessibilityWarning)
            study = load_study_area(demo_area, scenario={"sources": {"dem": dem}}, progress=False)
        return study, [str(w.message) for w in caught if "implausibly steep" in str(w.message)]

    study, steep = load({"path": str(feet)})
    assert len(steep) == 1, steep
    assert steep[0].startswith(f"{feet}: the streets come out implausibly steep")
    assert "declare it (sources.dem.options.vertical_units: ft)" in steep[0]
    assert steep[0] in study.warnings  # so the report's data checks list it too
    study, steep = load({"path": str(feet), "options": {"vertical_units": "ft"}})
    assert steep == []
    np.testing.assert_allclose(study.network.nodes["elev_m"], demo_run.study.network.nodes["elev_m"], rtol=1e-9)
