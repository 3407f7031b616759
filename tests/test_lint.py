"""The lint gate (ruff with McCabe complexity <= 15 and at most 8 arguments) and the docstring examples."""

from __future__ import annotations

import doctest
import importlib
import io
import pkgutil
import subprocess
import sys
import tomllib

import pytest

import accessibility
from tests.conftest import ROOT


def _ruff(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "ruff", *args], capture_output=True, text=True, cwd=cwd)


def test_lint_gate_is_configured():
    lint = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["ruff"]["lint"]
    assert {"C901", "PLR0913"} <= set(lint["select"])
    assert lint["mccabe"]["max-complexity"] == 15 and lint["pylint"]["max-args"] == 8
    assert "ruff check ." in (ROOT / "Makefile").read_text(encoding="utf-8")  # make lint runs it


def test_repository_passes_ruff():
    r = _ruff("check", ".", "--output-format", "concise")
    assert r.returncode == 0, r.stdout + r.stderr


def test_gate_trips_on_a_complex_function_with_many_arguments(tmp_path):
    branches = "\n".join(f"    if a == {i}:\n        return {i}" for i in range(16))
    (tmp_path / "bad.py").write_text(f"def f(a, b, c, d, e, g, h, i, j):\n{branches}\n    return b, c, d, e, g, h, i, j\n")
    r = _ruff("check", "--config", str(ROOT / "pyproject.toml"), "--no-cache", str(tmp_path / "bad.py"),
              "--output-format", "concise")
    assert r.returncode != 0 and "C901" in r.stdout and "PLR0913" in r.stdout, r.stdout + r.stderr


MODULES = sorted(m.name for m in pkgutil.walk_packages(accessibility.__path__, "accessibility."))


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name, monkeypatch):
    monkeypatch.chdir(ROOT)
    module = importlib.import_module(name)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    out = io.StringIO()
    for test in doctest.DocTestFinder(exclude_empty=True).find(module, name):
        runner.run(test, out=out.write)
    assert runner.failures == 0, out.getvalue()


@pytest.mark.parametrize("func", [
    "accessibility.rules.circle_rule", "accessibility.rules.circle_rules", "accessibility.rules.facility_sets",
    "accessibility.rules.CircleRule", "accessibility.coverage.cell_results",
    "accessibility.coverage.cell_facility_reach", "accessibility.coverage.circle_facilities",
    "accessibility.siting.coverage_sets", "accessibility.siting.SitingOptions",
    "accessibility.maps.circle_node_times", "accessibility.area.open_area",
    "accessibility.batch.unit_siting_overview", "accessibility.demo.example_grid",
])
def test_api_functions_carry_an_example(func):
    mod, _, attr = func.rpartition(".")
    doc = getattr(importlib.import_module(mod), attr).__doc__ or ""
    assert "Examples\n    --------\n    >>>" in doc, func
