"""The printable atlas of the demo run: page count, A4, every page drawn, Chinese in a real CJK font,
charts in the report and the workbook, the same file for the same inputs."""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess

import numpy as np
import pytest

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::accessibility._errors.AccessibilityWarning")]


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is missing: install poppler-utils (.ci/run does)")
    return path


def _pdfinfo(path) -> dict[str, str]:
    out = subprocess.run([_tool("pdfinfo"), str(path)], capture_output=True, text=True, check=True).stdout
    return dict(line.split(":", 1) for line in out.splitlines() if ":" in line)


def test_atlas_pages_a4_and_timed(demo_run):
    cfg = demo_run.study.config
    path = demo_run.output_dir / "atlas.pdf"
    info = _pdfinfo(path)
    plan = [c for c in cfg.circles.values() if c.plan]
    units = len(demo_run.study.units)
    # cover + a district summary per plan circle + a page per unit and plan circle: 1 + 3 + 36
    assert int(info["Pages"]) == 1 + len(plan) + units * len(plan) == 40
    w, h = (float(v) for v in info["Page size"].split("pts")[0].split("x"))
    assert (round(w), round(h)) == (595, 842)  # A4 in points
    assert "CreationDate" not in info  # deterministic metadata
    meta = json.loads((demo_run.output_dir / "run.json").read_text())
    assert "atlas" in meta["timings_s"] and "charts" in meta["timings_s"]
    assert "atlas.pdf" in meta["files"]


def test_atlas_pages_are_drawn(demo_run, tmp_path):
    """Every page rendered by poppler has content; every unit page's map box holds cells and streets."""
    from PIL import Image

    from accessibility.atlas import _MAP_BOX

    subprocess.run([_tool("pdftoppm"), "-r", "16", "-gray", "-png", str(demo_run.output_dir / "atlas.pdf"),
                    str(tmp_path / "p")], check=True)
    pages = sorted(tmp_path.glob("p-*.png"))
    assert len(pages) == 40
    grey = [np.asarray(Image.open(p).convert("L")) for p in pages]
    assert min(float((g < 245).mean()) for g in grey) > 0.1  # text, charts or maps on every page
    left, bottom, width, height = _MAP_BOX
    for k, g in enumerate(grey[4:], start=5):
        h, w = g.shape
        box = g[int((1 - bottom - height) * h):int((1 - bottom) * h), int(left * w):int((left + width) * w)]
        # an empty map (its light background and grey neighbours) has almost nothing darker than 215;
        # coloured cells, streets and outlines cover at least a fifth of the box on the demo
        assert float((box < 215).mean()) > 0.1, k


def test_atlas_chinese_in_noto_sans_cjk(demo_run):
    path = demo_run.output_dir / "atlas.pdf"
    fonts = subprocess.run([_tool("pdffonts"), str(path)], capture_output=True, text=True, check=True).stdout
    assert "NotoSansCJK" in fonts
    # the glyphs map back to the characters (ToUnicode): the text is Chinese, not .notdef boxes
    cover = subprocess.run([_tool("pdftotext"), "-f", "1", "-l", "1", str(path), "-"], capture_output=True,
                           text=True, check=True).stdout
    assert "公共服务可达性图集" in cover and "SYNTHETIC DEMO" in cover
    unit_page = subprocess.run([_tool("pdftotext"), "-f", "5", "-l", "5", str(path), "-"], capture_output=True,
                               text=True, check=True).stdout
    name = demo_run.study.units.sort_values("unit_code").iloc[0]["unit_name"]
    assert name in unit_page and "SYNTHETIC DEMO" in unit_page
    assert "N北" in unit_page.replace(" ", "") and "主要指标" in unit_page  # north arrow, key figures


def test_atlas_is_the_same_file_for_the_same_inputs(demo_run, tmp_path):
    from accessibility.atlas import write_atlas

    study = dataclasses.replace(demo_run.study, units=demo_run.study.units.sort_values("unit_code").head(2))
    args = (study, demo_run.results, demo_run.coverage, demo_run.siting)
    a = write_atlas(tmp_path / "a.pdf", *args, date="2026-01-01", circles=["eldercare_15min"])
    b = write_atlas(tmp_path / "b.pdf", *args, date="2026-01-01", circles=["eldercare_15min"])
    assert int(_pdfinfo(a)["Pages"]) == 1 + 1 + 2
    assert a.read_bytes() == b.read_bytes()


def test_atlas_follows_the_language(demo_run, tmp_path):
    from accessibility.atlas import write_atlas

    study = dataclasses.replace(demo_run.study, units=demo_run.study.units.sort_values("unit_code").head(1))
    p = write_atlas(tmp_path / "en.pdf", study, demo_run.results, demo_run.coverage, demo_run.siting,
                    language="en", circles=["culture_15min"])
    text = subprocess.run([_tool("pdftotext"), str(p), "-"], capture_output=True, text=True, check=True).stdout
    assert "Key figures" in text and "主要指标" not in text


def test_report_embeds_the_charts(demo_run):
    html = (demo_run.output_dir / "report.html").read_text(encoding="utf-8")
    plan = [c.id for c in demo_run.study.config.circles.values() if c.plan]
    for cid in plan:
        for kind in ("coverage", "siting", "times", "slopes"):
            assert f'id="chart-{cid}_{kind}"' in html, (cid, kind)
            assert (demo_run.output_dir / "figures" / f"{cid}_{kind}.svg").exists()
            assert (demo_run.output_dir / "figures" / f"{cid}_{kind}.png").exists()
    # one file: the images are data URIs, not links to figures/
    assert html.count('src="data:image/svg+xml;base64,') == 4 * len(plan)


def test_workbook_has_the_charts(demo_run):
    from openpyxl import load_workbook

    wb = load_workbook(demo_run.output_dir / "coverage.xlsx")
    assert wb.sheetnames[:2] == ["README", "charts"]
    plan = [c for c in demo_run.study.config.circles.values() if c.plan]
    assert len(wb["charts"]._images) == 4 * len(plan)


def test_run_without_atlas_from_the_command_line(monkeypatch, tmp_path):
    """--no-atlas reaches run(atlas=False) (a whole run is not repeated for this)."""
    from accessibility import cli, pipeline

    seen = {}

    def fake_run(config, **kw):
        seen.update(kw)
        raise SystemExit(0)

    monkeypatch.setattr(pipeline, "run", fake_run)
    with pytest.raises(SystemExit):
        cli.main(["-q", "run", str(tmp_path / "x.yaml"), "--no-atlas"])
    assert seen["atlas"] is False


def test_study_area_api_gives_figures_and_the_atlas(demo_run, tmp_path):
    area = demo_run.study
    figs = area.figures(siting=False, language="en")
    plan = [c.id for c in area.config.circles.values() if c.plan]
    assert list(figs) == [f"{c}_{k}" for c in plan for k in ("coverage", "times", "slopes")]
    p = area.atlas(tmp_path / "a.pdf", siting=False, circles=["culture_15min"], date="2026-01-01")
    assert int(_pdfinfo(p)["Pages"]) == 1 + 1 + len(area.units)
