"""The main job on the offline default: every output exists, says SYNTHETIC DEMO, and can be audited.

Uses one full run of the Jiangbei synthetic demo (session fixture ``demo_run``).
"""

from __future__ import annotations

import json

import geopandas as gpd
import networkx as nx
import numpy as np
import pandas as pd
import pytest

from accessibility.config import load_area

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::accessibility._errors.AccessibilityWarning")]

COLUMNS = ["unit_code", "unit_name", "circle", "population", "covered_population", "coverage_share",
           "target_share", "meets_target", "median_t", "p90_t", "uncovered_population",
           "coverage_share_flat"]


def test_coverage_table_shape_and_status(demo_run):
    out = demo_run.output_dir
    table = pd.read_csv(out / "coverage_by_unit.csv", dtype={"unit_code": str})
    for col in COLUMNS:
        assert col in table.columns, col
    cfg = demo_run.study.config
    # 12 units + the district row, for every circle
    assert len(table) == 13 * len(cfg.circles)
    assert set(table["circle"]) == set(cfg.circles)
    assert (table["data_status"].str.contains("SYNTHETIC DEMO")).all()
    district = table[table["unit_code"] == "500105"].set_index("circle")
    units = table[table["unit_code"] != "500105"]
    for cid, grp in units.groupby("circle"):
        # the district row is the sum of the units
        assert district.loc[cid, "population"] == pytest.approx(grp["population"].sum(), abs=1)
        assert district.loc[cid, "covered_population"] == pytest.approx(
            grp["covered_population"].sum(), abs=1)
        assert (grp["covered_population"] <= grp["population"] + 0.1).all()
    # the whole district's residents are counted once per all-resident circle
    assert district.loc["culture_15min", "population"] == pytest.approx(925_800, abs=1)
    assert district.loc["eldercare_15min", "population"] == pytest.approx(925_800 * 0.191, rel=0.01)
    # on this hilly demo slopes cost more than gentle descents save (Tobler is 19 % faster than flat
    # at -5 %, so this is a property of the data, not a law): flat coverage is never lower here
    time_rows = table[table["mode"] == "time"]
    assert (time_rows["coverage_share_flat"] >= time_rows["coverage_share"] - 1e-9).all()


def test_coverage_table_matches_golden(demo_run, root):
    """The published per-unit numbers of the demo are those main computed before the circle-rule
    refactoring (issue 10; tests/data/coverage_by_unit_golden.csv, see its README)."""
    golden = pd.read_csv(root / "tests" / "data" / "coverage_by_unit_golden.csv", dtype={"unit_code": str})
    table = pd.read_csv(demo_run.output_dir / "coverage_by_unit.csv", dtype={"unit_code": str})
    keys = ["unit_code", "circle"]
    got = table.set_index(keys)[[c for c in golden.columns if c not in keys]]
    pd.testing.assert_frame_equal(got, golden.set_index(keys), check_exact=True)


def test_every_output_file_is_there(demo_run):
    out = demo_run.output_dir
    for name in ["coverage_by_unit.csv", "coverage.xlsx", "cells_results.gpkg", "analysis_inputs.gpkg",
                 "report.html", "maps/overview.html", "run.json", "_COMPLETE",
                 "siting_culture_15min.csv", "siting_eldercare_15min.csv", "siting_fitness_15min.csv",
                 "siting_eldercare_15min_lscp_by_unit.csv"]:
        assert (out / name).exists(), name
    assert len(list((out / "maps").glob("unit_*.html"))) == 12
    meta = json.loads((out / "run.json").read_text())
    assert "SYNTHETIC DEMO" in meta["data_status"]


def test_map_sizes_within_targets(demo_run):
    maps = demo_run.output_dir / "maps"
    assert (maps / "overview.html").stat().st_size < 10e6
    for p in maps.glob("unit_*.html"):
        assert p.stat().st_size < 5e6, p.name


def test_report_banner_and_escaping(demo_run):
    html = (demo_run.output_dir / "report.html").read_text(encoding="utf-8")
    assert "SYNTHETIC DEMO" in html
    for code in demo_run.study.units["unit_code"]:
        assert f"maps/unit_{code}.html" in html
    # each plan circle's summary links its what-if map, which the run wrote
    for c in demo_run.study.config.circles.values():
        if c.plan:
            section = html.split(f'id="circle-{c.id}"')[1].split("</section>")[0]
            assert f'<a class="whatif-map" href="maps/whatif_{c.id}.html">' in section
            assert (demo_run.output_dir / "maps" / f"whatif_{c.id}.html").is_file()
    # the generator plants a facility name with markup; it must never appear raw anywhere
    raw = '<b>测试&"引号"</b>'
    for p in [demo_run.output_dir / "report.html", *sorted((demo_run.output_dir / "maps").glob("*.html"))]:
        assert raw not in p.read_text(encoding="utf-8"), p.name


def test_siting_curve_columns(demo_run):
    curve = pd.read_csv(demo_run.output_dir / "siting_eldercare_15min.csv", dtype={"unit_code": str})
    for col in ["rank", "site_id", "unit_code", "lon", "lat", "added_covered_population",
                "cumulative_coverage_share"]:
        assert col in curve.columns, col
    assert curve["rank"].tolist() == list(range(1, len(curve) + 1))
    assert (np.diff(curve["cumulative_coverage_share"]) >= -1e-12).all()
    assert (curve["added_covered_population"] > 0).all()
    assert curve["lon"].between(106.3, 107.0).all() and curve["lat"].between(29.4, 29.9).all()
    # a planner must find the spot (not rounded to ~1 km) and read the unit's name
    assert (curve["lon"] * 1e4 % 1 != 0).any()
    assert curve["unit_name"].str.endswith(("街道", "镇")).all()


def test_exact_site_sets_published_when_solved(demo_run):
    out = demo_run.output_dir
    for cid, res in demo_run.siting.items():
        summ = res["summary"]
        files = sorted(out.glob(f"siting_{cid}_exact*.csv"))
        if res["exact_sites"] is None:  # no MILP solve, MILP ranking, or the solver fell back
            assert not files
            continue
        ex = pd.read_csv(files[0], dtype={"unit_code": str})
        assert [f.name for f in files] == [f"siting_{cid}_exact.csv"] and len(ex) <= 10
        assert ex["cumulative_covered_population"].iloc[-1] == pytest.approx(summ["exact_covered_k_max"], abs=0.1)
        assert ex["unit_name"].str.endswith(("街道", "镇")).all()
    html = (out / "report.html").read_text(encoding="utf-8")
    # what the report claims follows what was proven (issue 12: siting.proof_label's words)
    for res in demo_run.siting.values():
        if res["exact_sites"] is not None:
            assert res["summary"]["exact_proof_en"] in html
    if any(r["exact_sites"] is not None for r in demo_run.siting.values()):
        assert "the best set of 10 new sites (MILP: " in html


def test_cells_geopackage_has_minutes_beside_seconds(demo_run):
    cells = gpd.read_file(demo_run.output_dir / "cells_results.gpkg", layer="cells")
    t = cells["culture_15min_t"].to_numpy(dtype=float)
    m = cells["culture_15min_t_min"].to_numpy(dtype=float)
    ok = np.isfinite(t)
    assert ok.any() and np.allclose(m[ok], t[ok] / 60, atol=0.006)
    assert "kindergarten_300m_t_min" not in cells  # distance circles stay in metres


def test_report_provenance_names_every_layer(demo_run):
    """Regression (review): the provenance table's layer column was empty in the real run."""
    html = (demo_run.output_dir / "report.html").read_text(encoding="utf-8")
    section = html[html.index('id="provenance"'):]
    for row in demo_run.study.provenance():
        assert f"<tr><td>{row['layer']}</td>" in section, row["layer"]


def test_workbook_holds_tables_and_siting(demo_run):
    """coverage.xlsx is the planner's one file: coverage, inputs, and per plan circle the ranked
    sites, the exact best set and the fewest sites per unit, equal to the CSVs."""
    import openpyxl

    path = demo_run.output_dir / "coverage.xlsx"
    sheets = openpyxl.load_workbook(path, read_only=True).sheetnames
    assert sheets[:4] == ["README", "charts", "coverage_by_unit", "units"]  # charts second, then the tables
    for cid, res in demo_run.siting.items():
        assert f"sites_{cid}"[:31] in sheets and f"fewest_{cid}"[:31] in sheets
        if res.get("exact_sites") is not None:
            assert f"exact_{cid}"[:31] in sheets
        book = pd.read_excel(path, sheet_name=f"sites_{cid}"[:31], dtype={"unit_code": str})
        csv = pd.read_csv(demo_run.output_dir / f"siting_{cid}.csv", dtype={"unit_code": str})
        assert book["site_id"].tolist() == csv["site_id"].tolist()
        np.testing.assert_allclose(book["added_covered_population"], csv["added_covered_population"])
        assert book["unit_name"].str.endswith(("街道", "镇")).all()
        assert book["data_status"].str.contains("SYNTHETIC").all()
    if demo_run.planned is not None and len(demo_run.planned):
        assert "planned_projects" in sheets
    readme = [c.value for row in openpyxl.load_workbook(path)["README"].iter_rows() for c in row if c.value]
    assert any("fewest new sites" in str(v) for v in readme)  # glossary covers the siting columns


def test_audit_bundle_reproduces_published_shares(demo_run):
    """Recompute every unit's coverage from analysis_inputs.gpkg and the parameters in run.json
    alone (no configuration, no package code), with a plain networkx Dijkstra."""
    out = demo_run.output_dir
    params = json.loads((out / "run.json").read_text(encoding="utf-8"))["configuration"]
    edges = gpd.read_file(out / "analysis_inputs.gpkg", layer="edges")
    cells = gpd.read_file(out / "analysis_inputs.gpkg", layer="cells")
    fac = gpd.read_file(out / "analysis_inputs.gpkg", layer="facilities")
    table = pd.read_csv(out / "coverage_by_unit.csv", dtype={"unit_code": str})
    district = params["district_code"]
    plan = [cid for cid, c in params["circles"].items() if c["plan"]]
    assert plan == ["culture_15min", "fitness_15min", "eldercare_15min"]
    for cid in plan:
        c = params["circles"][cid]
        w, thr, tol, limit = c["weight"], c["threshold"], c["threshold_tolerance"], c["max_snap_m"]
        G = nx.DiGraph()
        e = edges[np.isfinite(edges[w])]
        # reversed graph: search from the facilities gives "home -> facility" times
        G.add_weighted_edges_from(zip(e["v"], e["u"], e[w], strict=True), weight="t")
        f = fac[fac["circles"].str.split(";").map(lambda xs, cid=cid: cid in xs)]
        f = f[f["snap_m"] <= limit]
        G.add_node("SRC")
        for node, snap_m in zip(f["node"], f["snap_m"], strict=True):
            walk = snap_m / c["walk_speed_mps"]
            if not G.has_edge("SRC", node) or G["SRC"][node]["t"] > walk:
                G.add_edge("SRC", int(node), t=float(walk))
        dist = nx.single_source_dijkstra_path_length(G, "SRC", cutoff=thr + tol, weight="t")
        t_net = cells["node"].map(dist).astype(float).fillna(np.inf).to_numpy()
        t = cells["snap_m"].to_numpy() / c["walk_speed_mps"] + t_net
        covered = (t <= thr + tol) & (cells["snap_m"].to_numpy() <= limit)
        weight = cells[c["demand_column"]].to_numpy()
        got = pd.Series(weight * covered).groupby(cells["unit_code"].to_numpy()).sum() / \
            pd.Series(weight).groupby(cells["unit_code"].to_numpy()).sum()
        pub = table[(table["circle"] == cid) & (table["unit_code"] != district)].set_index("unit_code")
        pd.testing.assert_series_equal(got.sort_index(), pub["coverage_share"].sort_index(),
                                       check_names=False, atol=1e-5, rtol=0)


def test_run_json_records_the_resolved_configuration(demo_run):
    meta = json.loads((demo_run.output_dir / "run.json").read_text(encoding="utf-8"))
    params = meta["configuration"]
    cfg = demo_run.study.config
    assert params["max_snap_m"] == cfg.max_snap_m and params["terrain"]["model"] == cfg.terrain.model
    elder = params["circles"]["eldercare_15min"]
    assert (elder["weight"], elder["walk_speed_mps"], elder["threshold"]) == ("time_s_elderly", 0.9, 900.0)
    assert params["circles"]["kindergarten_300m"]["weight"] == "length_m"
    assert params["siting"]["k_max"] == 10 and params["siting"]["candidate_spacing_m"] == cfg.siting.candidate_spacing_m
    assert params["profiles"]["frail"] == {"flat_speed_mps": 0.8, "allow_steps": False}


def test_failed_run_leaves_previous_results_intact(demo_run, demo_area):
    """A run that fails half-way must not touch the finished folder."""
    from accessibility.pipeline import run

    out = demo_run.output_dir
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    cfg = load_area(demo_area)
    # break the population layer: points to a file that is not a raster
    bad = out.parent / "not_a_raster.tif"
    bad.write_text("this is not a GeoTIFF")
    with pytest.raises(Exception):  # noqa: B017 - any failure will do; what matters is what is left
        run(cfg, output_dir=out, scenario={"sources": {"population": {"path": str(bad)}}},
            progress=False, maps=False, siting=False)
    after = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    assert before == after
    assert not list(out.parent.glob(f".{out.name}.*"))  # no temporary folder left behind


def test_planned_projects_before_after(demo_run):
    t = pd.read_csv(demo_run.output_dir / "scenario_planned_projects.csv", dtype={"unit_code": str})
    assert {"eldercare_15min", "health_15min"} <= set(t["circle"])
    assert (t["covered_after"] >= t["covered_before"] - 1e-6).all()
    # the plan's new community health centres (Wulidian, Guojiatuo) fill real gaps in the demo
    district = t[t["unit_code"] == "500105"].set_index("circle")
    assert district.loc["health_15min", "gain"] > 0
    units = t[t["unit_code"] != "500105"]
    for cid, part in units.groupby("circle"):  # the district gain is the sum of the units' gains
        assert district.loc[cid, "gain"] == pytest.approx(part["gain"].sum(), abs=1)
    html = (demo_run.output_dir / "report.html").read_text(encoding="utf-8")
    assert "规划项目建成前后覆盖率" in html


def test_planned_projects_file_errors(tmp_path):
    from accessibility import DataError
    from accessibility.pipeline import read_planned_projects

    p = tmp_path / "planned.csv"
    p.write_text("name,lon,lat\nA,106.5,29.6\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"missing column\(s\) circle"):
        read_planned_projects(p, "EPSG:32648")
    p.write_text("name,lon,lat,circle\nA,106.5,29.6,x\nB,abc,29.6,x\n", encoding="utf-8")
    with pytest.raises(DataError, match="line\\(s\\) 3"):
        read_planned_projects(p, "EPSG:32648")


def test_supply_2sfca_table(demo_run):
    t = pd.read_csv(demo_run.output_dir / "supply_2sfca.csv", dtype={"unit_code": str})
    elder = t[t["circle"] == "eldercare_15min"]
    assert len(elder) == 13  # 12 units + district
    # beds come from the inventory only: fewer facilities with a capacity than in the circle
    assert (elder["facilities_with_capacity"] < elder["facilities_in_circle"]).all()
    district = elder[elder["unit_code"] == "500105"].iloc[0]
    assert district["capacity_per_1000_in_reach"] <= district["capacity_per_1000_overall"] + 1e-6
    assert (elder["capacity_per_1000_in_reach"] >= 0).all()


def test_report_times_match_the_table(demo_run):
    """The report shows each unit's median/p90 in the table's unit (minutes), not rescaled."""
    t = pd.read_csv(demo_run.output_dir / "coverage_by_unit.csv", dtype={"unit_code": str})
    html = (demo_run.output_dir / "report.html").read_text(encoding="utf-8")
    row = t[(t["circle"] == "culture_15min") & (t["unit_code"] == "500105004")].iloc[0]
    assert row["t_unit"] == "min" and 1 < row["median_t"] < 15
    section = html.split('id="unit-500105004"')[1].split('class="unit"')[0]
    assert f"{row['median_t']:.1f} min" in section
    # not reached is an empty cell in the CSV, never the text 'inf'
    raw = (demo_run.output_dir / "coverage_by_unit.csv").read_text(encoding="utf-8-sig")
    assert "inf" not in raw.lower().replace("info", "")


def test_gcj02_inventory_declared_wgs84_is_warned_about(demo_area):
    """Issue 2: a GCJ-02 file declared as WGS-84 is caught (names shared with OSM sit ~500 m off)."""
    import warnings

    import yaml

    from accessibility._errors import AccessibilityWarning
    from accessibility.pipeline import load_study_area

    spec = yaml.safe_load(demo_area.read_text(encoding="utf-8"))
    fac = spec["sources"]["facilities"]
    assert fac[1]["coords"] == "gcj02"
    wrong = [dict(f) for f in fac]
    wrong[1]["coords"] = "wgs84"
    with pytest.warns(AccessibilityWarning, match="GCJ-02 declared as WGS-84"):
        study = load_study_area(demo_area, scenario={"sources": {"facilities": wrong}}, progress=False)
    # declared right: no datum warning, and inventory rows absorbed their OSM twins
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", AccessibilityWarning)
        study = load_study_area(demo_area, progress=False)
    assert not [w for w in caught if "declared as" in str(w.message)]
    merged = study.facilities[study.facilities["also_in"].astype(str) != ""]
    assert len(merged) >= 5 and merged["fac_id"].str.startswith("inv:").all()
    assert merged["capacity"].notna().all()


def test_report_lists_worst_served_places(demo_run):
    html = (demo_run.output_dir / "report.html").read_text(encoding="utf-8")
    assert html.count("Worst-served places") >= 3  # one table per plan circle


def test_worst_served_places_never_exceed_their_unit(demo_run):
    """Each worst-served place of the demo lies in one unit and counts at most its uncovered total."""
    from accessibility.coverage import worst_places

    study, table = demo_run.study, demo_run.coverage
    for c in study.config.circles.values():
        if not c.plan:
            continue
        places = worst_places(study.cells, demo_run.results, study.units, c)
        assert len(places), c.id
        unc = table[table["circle"] == c.id].set_index("unit_code")["uncovered_population"]
        for _, r in places.iterrows():
            assert r["uncovered"] <= unc[str(r["unit_code"])] + 1e-6, (c.id, r["unit_code"])
