"""Study-area configuration: the default loads; every kind of mistake is named with its fix."""

from __future__ import annotations

import shutil

import pytest
import yaml

from accessibility import ConfigError
from accessibility.config import load_area, load_categories
from tests.conftest import AREA, ROOT


def _write(tmp_path, mutate):
    data = yaml.safe_load(AREA.read_text(encoding="utf-8"))
    mutate(data)
    (tmp_path / "config" / "areas").mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "config" / "categories.yaml", tmp_path / "config" / "categories.yaml")
    p = tmp_path / "config" / "areas" / "x.yaml"
    p.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return p


def test_default_area_loads_with_plan_circles():
    cfg = load_area(AREA, check_files=False)
    assert cfg.crs == "EPSG:32648"
    assert {"culture_15min", "fitness_15min", "eldercare_15min"} <= set(cfg.circles)
    elder = cfg.circles["eldercare_15min"]
    assert elder.threshold == 900 and elder.profile == "elderly" and elder.weight_column == "pop_60plus"
    assert cfg.profiles["elderly"].flat_speed_mps == 0.9
    assert cfg.profiles["frail"].allow_steps is False
    assert cfg.circles["primary_school_500m"].mode == "distance"
    assert cfg.circles["primary_school_500m"].threshold == 500
    assert cfg.is_synthetic and cfg.run_id == "jiangbei_synthetic_demo"
    assert "boundary" not in cfg.synthetic_layers  # the boundary is real
    assert cfg.circles_for("library") == ["culture_15min"]


def test_unknown_key_is_named_with_suggestion(tmp_path):
    p = _write(tmp_path, lambda d: d["circles"]["culture_15min"].update(treshold_min=10))
    with pytest.raises(ConfigError, match=r"unknown key 'circles\.culture_15min\.treshold_min'.*threshold_min"):
        load_area(p, check_files=False)


def test_wrong_type_and_range_are_gathered(tmp_path):
    def mutate(d):
        d["profiles"]["adult"]["flat_speed_mps"] = "fast"
        d["circles"]["fitness_15min"]["target_share"] = 85
        d["crs"] = "EPSG:4326"

    p = _write(tmp_path, mutate)
    with pytest.raises(ConfigError) as exc:
        load_area(p, check_files=False)
    msg = str(exc.value)
    assert "3 configuration problem" in msg or "4 configuration problem" in msg
    assert "profiles.adult.flat_speed_mps' must be float" in msg
    assert "target_share' is 85" in msg and "between 0 and 1" in msg
    assert "geographic CRS" in msg and "EPSG:32648" in msg


def test_speed_in_kmh_is_caught(tmp_path):
    p = _write(tmp_path, lambda d: d["profiles"]["adult"].update(flat_speed_mps=4.5))
    with pytest.raises(ConfigError, match="km/h"):
        load_area(p, check_files=False)


def test_unknown_category_and_profile(tmp_path):
    def mutate(d):
        d["circles"]["culture_15min"]["categories"].append("librery")
        d["circles"]["culture_15min"]["profile"] = "runner"

    p = _write(tmp_path, mutate)
    with pytest.raises(ConfigError) as exc:
        load_area(p, check_files=False)
    assert "did you mean 'library'" in str(exc.value)
    assert "'runner'" in str(exc.value)


def test_missing_files_say_how_to_make_them(tmp_path):
    p = _write(tmp_path, lambda d: None)
    with pytest.raises(ConfigError, match="accessibility demo-data"):
        load_area(p, check_files=True)


def test_missing_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_area(tmp_path / "nope.yaml")


def test_scenario_overrides_are_validated():
    cfg = load_area(AREA, check_files=False, overrides={"terrain": {"model": "flat"}})
    assert cfg.terrain.model == "flat"
    assert cfg.fingerprint() != load_area(AREA, check_files=False).fingerprint()
    with pytest.raises(ConfigError, match="use one of"):
        load_area(AREA, check_files=False, overrides={"terrain": {"model": "hilly"}})


def test_categories_rules_are_checked(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("categories:\n  x: {label_zh: a, label_en: b, osm: [amenity]}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="key=value"):
        load_categories(p)
    cats = load_categories(ROOT / "config" / "categories.yaml")
    assert "健身房" in cats["sports_centre"].exclude_names


@pytest.mark.parametrize("mutate,message", [
    (lambda d: d["sources"].__setitem__("populaton", d["sources"].pop("population")), "did you mean 'population'"),
    (lambda d: d.__setitem__("terrain", {"smothing_m": 60}), "did you mean 'smoothing_m'"),
    (lambda d: d["sources"]["facilities"][1].__setitem__("columns", "名称,类别"), "expected a mapping"),
    (lambda d: d["sources"]["census"].__setitem__("options", "0.19"), "expected a mapping"),
    (lambda d: d["circles"]["culture_15min"].__setitem__("threshold_min", 900), "15 h"),
])
def test_typos_and_shapes_are_messages_not_tracebacks(tmp_path, mutate, message):
    """Review findings: these raised KeyError / AttributeError / ValueError tracebacks."""
    p = _write(tmp_path, mutate)
    with pytest.raises(ConfigError, match=message):
        load_area(p, check_files=False)


@pytest.mark.parametrize("mutate,message", [
    (lambda d: d["sources"]["facilities"][1]["columns"].update(lat_=1), r"sources\.facilities\[1\]\.columns\.lat_'"),
    (lambda d: d["sources"]["facilities"][1]["columns"].update(capacty="床位数"), "did you mean 'capacity'"),
    (lambda d: d["sources"]["census"]["columns"].update(share60="x"), "did you mean 'share_60plus'"),
    (lambda d: d["sources"]["units"].__setitem__("options", {"layr": "units"}), "did you mean 'layer'"),
    (lambda d: d["sources"]["facilities"][2].__setitem__("options", {"sheets": "设施"}), "did you mean 'sheet'"),
    (lambda d: d["sources"]["dem"].__setitem__("options", {"band": 1}), "unknown key 'sources.dem.options.band'"),
    (lambda d: d["sources"]["dem"].__setitem__("options", {"vertical_unit": "ft"}), "did you mean 'vertical_units'"),
    (lambda d: d["sources"]["facilities"][0].__setitem__("columns", {"name": "名称"}), "reads no columns"),
    (lambda d: d["sources"]["census"].__setitem__("options", {"grid_m": 0}), r"options\.grid_m' must be > 0"),
    (lambda d: d["sources"]["population"].__setitem__("options", {"band": -1}), r"options\.band' must be > 0"),
    (lambda d: d.__setitem__("max_snap_m", -50), "'max_snap_m' must be > 0"),
    (lambda d: d["siting"].__setitem__("candidate_spacing_m", 0), r"siting\.candidate_spacing_m' must be > 0"),
    (lambda d: d["siting"].__setitem__("max_new_sites", 0), r"siting\.max_new_sites' must be > 0"),
    (lambda d: d["siting"].__setitem__("time_limit_s", -1), r"siting\.time_limit_s' must be > 0"),
    (lambda d: d["terrain"].__setitem__("steps_climb_s_per_m", -6), "must be >= 0"),
    (lambda d: d["circles"]["culture_15min"].__setitem__("min_reachable", 0), "min_reachable' must be > 0"),
])
def test_columns_options_and_sizes_are_validated(tmp_path, mutate, message):
    """Keys inside columns:/options: are checked like the rest (issue 10); sizes must be positive."""
    p = _write(tmp_path, mutate)
    with pytest.raises(ConfigError, match=message):
        load_area(p, check_files=False)
