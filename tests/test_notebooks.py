"""The planners' notebooks run top to bottom on the offline default, and are stored without outputs."""

from __future__ import annotations

import os
import time

import nbformat
import pytest

from tests.conftest import ROOT

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def test_there_are_six_notebooks():
    names = [p.name for p in NOTEBOOKS]
    assert len(names) == 6, names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_stored_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"{path.name}: clear outputs"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_uses_the_public_api_and_never_silences_all_warnings(path):
    nb = nbformat.read(path, as_version=4)
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    assert 'simplefilter("ignore")' not in code and "filterwarnings(\"ignore\")" not in code
    assert "accessibility.open_area(" in code
    for private in ("._", "accessibility.pipeline", "import load_area", "load_study_area"):
        assert private not in code, private


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs(path, demo_area, monkeypatch):
    from nbclient import NotebookClient

    monkeypatch.setenv("ACCESSIBILITY_AREA", str(demo_area))
    monkeypatch.setenv("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    _kernel_imports_this_checkout(monkeypatch)
    nb = nbformat.read(path, as_version=4)
    t0 = time.perf_counter()
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
    elapsed = time.perf_counter() - t0
    assert elapsed < 120, f"{path.name} took {elapsed:.0f} s (target: under 2 minutes)"
    text = "\n".join(
        o.get("text", "") + str(o.get("data", {}).get("text/plain", ""))
        for c in nb.cells if c.cell_type == "code" for o in c.outputs
    )
    assert "SYNTHETIC DEMO" in text  # the data status is stated in every notebook
    if path.stem.startswith("04"):
        _check_profiles_differ(nb)


def _check_profiles_differ(nb) -> None:
    """Notebook 04's comparison: every walking profile gives a real, different district share."""
    import re

    cell = next(c for c in nb.cells if c.cell_type == "code" and "compare.map" in c.source)
    out = "".join(str(o.get("data", {}).get("text/plain", "")) for o in cell.outputs)
    shares = {m.group(1).strip(): float(m.group(2))
              for m in re.finditer(r"^(\w[\w ,]*?)\s+([\d.]+)%$", out, flags=re.MULTILINE)}
    slopes = {k: v for k, v in shares.items() if k.endswith("slopes")}
    assert set(slopes) == {"adult, slopes", "elderly, slopes", "frail, slopes"}, out
    assert all(v > 0 for v in shares.values()), out
    assert len(set(slopes.values())) == 3, out
    assert slopes["adult, slopes"] > slopes["elderly, slopes"] > slopes["frail, slopes"], out


def _kernel_imports_this_checkout(monkeypatch):
    """The kernel imports this checkout's package (a worktree's, not the venv's editable install)."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))


def _run_notebook(path, area, monkeypatch):
    from nbclient import NotebookClient

    monkeypatch.setenv("ACCESSIBILITY_AREA", str(area))
    monkeypatch.setenv("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    _kernel_imports_this_checkout(monkeypatch)
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
    return "\n".join(
        o.get("text", "") + str(o.get("data", {}).get("text/plain", "")) + str(o.get("data", {}).get("text/html", ""))
        for c in nb.cells if c.cell_type == "code" for o in c.outputs
    )


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_on_helsinki(path, helsinki_area, monkeypatch):
    """The same notebooks on the area made by the README's walkthrough (real OSM, estimated population)."""
    text = _run_notebook(path, helsinki_area.config, monkeypatch)
    assert "ESTIMATE" in text  # the estimated layers are stated
    assert "SYNTHETIC DEMO" not in text and "全区" not in text
