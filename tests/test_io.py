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
