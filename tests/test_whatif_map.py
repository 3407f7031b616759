"""The what-if map: compact coverage sets, escaping, and a real browser driven by real clicks whose
numbers must equal the Python what-if; the exports read back as planned projects."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import warnings
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from accessibility._errors import AccessibilityWarning
from accessibility.whatif_map import _column_runs, encode_runs, whatif_map_data, whatif_map_html

CID = "eldercare_15min"


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 60), st.integers(1, 6), st.floats(0, 1), st.floats(0, 1), st.integers(0, 2**31 - 1))
def test_column_runs_equal_the_plain_encoding(n, k, density, keep_share, seed):
    rng = np.random.default_rng(seed)
    M = sp.random(n, k, density=density, random_state=seed, format="csc")
    keep = rng.random(n) < keep_share
    new_pos = np.full(n, -1)
    new_pos[keep] = np.arange(keep.sum())
    got = _column_runs(M, new_pos)
    for j in range(k):
        r = new_pos[M.indices[M.indptr[j]:M.indptr[j + 1]]]
        want = encode_runs(r[r >= 0])
        assert got[j] == want
        # decoding gives the rows back
        pos, rows = 0, []
        for g, ln in zip(want[::2], want[1::2], strict=True):
            pos += g
            rows += list(range(pos, pos + ln))
            pos += ln
        assert rows == sorted(r[r >= 0].tolist())


@pytest.fixture(scope="module")
def small_city():
    from accessibility.demo import synthetic_city, synthetic_config
    from accessibility.siting import candidate_sites
    from accessibility.whatif import WhatIf

    net, cells, fac, units = synthetic_city(3000, seed=5)
    evil = '</script><img src=x onerror="window.__pwned=1">&amp;'
    fac = fac.assign(name=[evil] * len(fac))
    units = units.assign(unit_name=[evil] * len(units))
    cands = candidate_sites(net, units, spacing_m=250)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AccessibilityWarning)
        wi = WhatIf(cells, fac, net, synthetic_config(), units=units, candidates=cands)
    return wi, cands, evil


def test_page_escapes_untrusted_names(small_city):
    wi, cands, evil = small_city
    data = whatif_map_data(wi, CID, candidates=cands, ranked_site_ids=list(cands["site_id"][:3]))
    html = whatif_map_html(data)
    block = html.split('<script type="application/json" id="whatif-data">', 1)[1].split("</script>", 1)[0]
    assert "<" not in block and ">" not in block and "&amp;" not in block
    assert json.loads(block)["fac"]["name"][0] == evil  # the name itself survives, as data
    assert "<img" not in html
    assert "https://unpkg.com" not in html  # Leaflet inlined


# ---------------------------------------------------------------------------------------------
# a real browser


def _driver(tmp_path):
    pytest.importorskip("selenium")
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    driver_path = shutil.which("chromedriver") or "/usr/bin/chromedriver"
    if not (Path(chromium).is_file() and Path(driver_path).is_file()):
        if os.environ.get("CI"):
            pytest.fail("chromium/chromedriver missing but CI is set (.ci/run installs them)")
        pytest.skip("chromium or chromedriver not installed")
    opts = Options()
    opts.binary_location = chromium
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
              "--disable-background-networking", "--disable-component-update", "--disable-sync",
              "--window-size=1400,900", f"--user-data-dir={tmp_path / 'chrome'}"):
        opts.add_argument(a)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(executable_path=driver_path), options=opts)


def _click_at(driver, kind: str, ident: str, *, zoom: int = 16) -> None:
    """Centre the map on a candidate or facility, then click its pixel with a real mouse event."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    driver.execute_script(
        "var src = arguments[0] === 'facility' ? 'fac' : 'cand';"
        "var D = JSON.parse(document.getElementById('whatif-data').textContent)[src];"
        "var j = D.id.indexOf(arguments[1]);"
        "whatifMap.setView([D.dlat[j], D.dlon[j]], arguments[2], {animate: false});", kind, ident, zoom)
    p = driver.execute_script("return whatifPoint(arguments[0], arguments[1]);", kind, ident)
    el = driver.find_element(By.ID, "map")
    dx = int(round(p["x"] - el.size["width"] / 2))
    dy = int(round(p["y"] - el.size["height"] / 2))
    ActionChains(driver).move_to_element_with_offset(el, dx, dy).click().perform()


def _assert_page_equals_python(state, study, cands):
    from accessibility.whatif import what_if

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AccessibilityWarning)
        r = what_if(study, CID, add=state["added"], remove=state["removed"], candidates=cands)
    t = r.table
    units, district = t.iloc[:-1], t.iloc[-1]
    assert [u["unit_code"] for u in state["units"]] == units["unit_code"].tolist()
    for u, (_, p) in zip(state["units"], units.iterrows(), strict=True):
        assert u["covered_after"] == pytest.approx(p["covered_population_after"], rel=1e-9, abs=1e-6)
        assert u["covered_before"] == pytest.approx(p["covered_population_before"], rel=1e-9, abs=1e-6)
        assert u["gap_after"] == pytest.approx(p["gap_population_after"], rel=1e-9, abs=1e-6)
        assert u["meets_after"] == bool(p["meets_target_after"])
    d = state["district"]
    assert d["covered_after"] == pytest.approx(district["covered_population_after"], rel=1e-9)
    assert d["share_after"] == pytest.approx(district["coverage_share_after"], rel=1e-9)
    # what the planner reads: the table's district row shows the same share
    assert state["table"][-1][1].endswith(f"{100 * district['coverage_share_after']:.1f} %")
    return r


@pytest.mark.browser
@pytest.mark.slow
def test_browser_add_remove_export_round_trip(demo_run, tmp_path):
    from PIL import Image

    from accessibility.pipeline import candidate_sites_for, read_planned_projects
    from accessibility.whatif import what_if

    page = demo_run.output_dir / "maps" / f"whatif_{CID}.html"
    for c in ("culture_15min", "fitness_15min", CID):
        f = demo_run.output_dir / "maps" / f"whatif_{c}.html"
        assert f.exists() and f.stat().st_size < 10e6
    assert f"maps/whatif_{CID}.html" in {str(p.relative_to(demo_run.output_dir)) for p in demo_run.files}
    study = demo_run.study
    cands = candidate_sites_for(study)
    first = demo_run.siting[CID]["curve"]["site_id"].iloc[0]
    fac_id = json.loads(page.read_text(encoding="utf-8").split('id="whatif-data">', 1)[1]
                        .split("</script>", 1)[0])["fac"]["id"][0]

    driver = _driver(tmp_path)
    try:
        driver.get(page.as_uri())
        s0 = driver.execute_script("return whatifState();")
        assert s0["added"] == [] and s0["removed"] == []
        _assert_page_equals_python(s0, study, cands)
        # click next to the ranking's first site: the nearest candidate is added
        _click_at(driver, "candidate", first)
        s1 = driver.execute_script("return whatifState();")
        assert s1["added"] == [first]
        r1 = _assert_page_equals_python(s1, study, cands)
        gain = s1["district"]["covered_after"] - s1["district"]["covered_before"]
        assert gain == pytest.approx(demo_run.siting[CID]["curve"]["added_covered_population"].iloc[0], rel=1e-9)
        assert gain > 0 and any(row[0] for row in s1["table"])
        assert len(r1.cells) > 0
        # click an existing facility: removed
        _click_at(driver, "facility", fac_id)
        s2 = driver.execute_script("return whatifState();")
        assert s2["removed"] == [fac_id] and s2["added"] == [first]
        _assert_page_equals_python(s2, study, cands)
        # click the added site: removed again
        _click_at(driver, "candidate", first, zoom=17)
        s3 = driver.execute_script("return whatifState();")
        assert s3["added"] == [] and s3["removed"] == [fac_id]
        _assert_page_equals_python(s3, study, cands)
        # restore the facility, load the ranking's top sites with the button
        _click_at(driver, "facility", fac_id)
        from selenium.webdriver.common.by import By

        driver.find_element(By.ID, "btn-top").click()
        s4 = driver.execute_script("return whatifState();")
        ranked = demo_run.siting[CID]["curve"]["site_id"].astype(str).tolist()[:10]
        assert s4["added"] == ranked and s4["removed"] == []
        _assert_page_equals_python(s4, study, cands)
        png = driver.get_screenshot_as_png()
        csv_text = driver.execute_script("return whatifExport('csv');")
        geojson_text = driver.execute_script("return whatifExport('geojson');")
        errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    finally:
        driver.quit()
    assert errors == []
    img = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
    assert img.shape[1] >= 1000 and len(np.unique(img.reshape(-1, 3), axis=0)) > 50  # not blank
    # the exports are planned-projects files as they are: the same numbers as the page
    for name, text in (("sites.csv", csv_text), ("sites.geojson", geojson_text)):
        f = tmp_path / name
        f.write_text(text, encoding="utf-8")
        planned = read_planned_projects(f, study.config.crs)
        assert len(planned) == len(ranked) and set(planned["circles"]) == {CID}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", AccessibilityWarning)
            r = what_if(study, CID, add=planned)
        assert (r.sites["snap_m"] < 1e-3).all() and (r.sites["node"].to_numpy() ==
                                                    cands.set_index("site_id").loc[ranked, "node"].to_numpy()).all()
        np.testing.assert_allclose(r.table["covered_population_after"].iloc[:-1],
                                   [u["covered_after"] for u in s4["units"]], rtol=1e-9)
    assert re.match(r"^\ufeffname,category,lon,lat,circle", csv_text)


@pytest.mark.browser
def test_browser_small_city_no_script_runs_from_names(small_city, tmp_path):
    """Names with markup are shown as text: no element is injected, no script runs."""
    from accessibility.whatif_map import write_whatif_map

    wi, cands, evil = small_city
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AccessibilityWarning)
        page = write_whatif_map(tmp_path / "whatif.html", wi, CID, candidates=cands)
    driver = _driver(tmp_path)
    try:
        driver.get(page.as_uri())
        fac_id = wi.base(CID).fac_ids[0]
        _click_at(driver, "facility", str(fac_id))
        state = driver.execute_script("return whatifState();")
        pwned = driver.execute_script("return window.__pwned || document.querySelectorAll('img[src=x]').length;")
        text = driver.execute_script("return document.getElementById('changes').textContent;")
        errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    finally:
        driver.quit()
    assert state["removed"] == [str(fac_id)]
    assert not pwned and evil in text and errors == []
    assert isinstance(gpd.GeoDataFrame, type)
