"""The circle rule (accessibility.rules) and caches that never answer a changed network from memory."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accessibility._errors import AccessibilityWarning, ConfigError
from accessibility.config import load_area
from accessibility.rules import CircleRule, circle_rule, circle_rules, facility_sets
from accessibility.traveltime import graph_matrix, limit_slack, multi_source, reach_matrix, snap
from tests.conftest import AREA


@pytest.fixture(scope="module")
def cfg():
    return load_area(AREA, check_files=False)


def test_rule_from_config_is_the_run_rule(cfg):
    r = circle_rule(cfg, "eldercare_15min")
    assert r.id == "eldercare_15min" and r.circle == cfg.circles["eldercare_15min"]
    assert (r.threshold, r.weight, r.flat_weight) == (900.0, "time_s_elderly", "time_s_elderly_flat")
    assert r.walk_speed_mps == cfg.profiles["elderly"].flat_speed_mps == 0.9
    assert r.max_snap_m == cfg.max_snap_m == 500.0
    assert (r.demand_column, r.mode, r.min_reachable) == ("pop_60plus", "time", 1)
    d = circle_rule(cfg, "kindergarten_300m")
    assert (d.threshold, d.weight, d.flat_weight, d.walk_speed_mps) == (300.0, "length_m", None, 1.0)
    assert list(circle_rules(cfg)) == list(cfg.circles)


def test_overrides_keep_the_circle_and_its_facilities(cfg):
    fac = pd.DataFrame({"circles": ["culture_15min", "fitness_15min;culture_15min", "eldercare_15min", None]})
    base = circle_rule(cfg, "culture_15min")
    for r in (circle_rule(cfg, "culture_15min", threshold_min=10),
              circle_rule(cfg, "culture_15min", profile="frail"),
              circle_rule(cfg, "culture_15min", terrain="flat"),
              circle_rule(cfg, "culture_15min", max_snap_m=100)):
        assert r.id == base.id and r.categories == base.categories
        assert r.facility_mask(fac).tolist() == [True, True, False, False]
    assert circle_rule(cfg, "culture_15min", threshold_min=10).circle.threshold == 600.0
    frail = circle_rule(cfg, "culture_15min", profile="frail")
    assert (frail.weight, frail.walk_speed_mps, frail.circle.profile) == ("time_s_frail", 0.8, "frail")
    assert circle_rule(cfg, "culture_15min", terrain="flat").weight == "time_s_adult_flat"
    assert circle_rule(cfg, "kindergarten_300m", threshold_m=500).threshold == 500.0
    # overrides for all circles skip those of the other mode
    flat = circle_rules(cfg, terrain="flat")
    assert flat["culture_15min"].weight == "time_s_adult_flat" and flat["kindergarten_300m"].weight == "length_m"


@pytest.mark.parametrize("kw, match", [
    ({"threshold_m": 500}, "time mode: give threshold_min"),
    ({"threshold_min": -5}, "positive"),
    ({"threshold_min": 0}, "positive"),
    ({"max_snap_m": 0}, "positive"),
    ({"profile": "runner"}, "profile 'runner'.*adult"),
    ({"terrain": "hilly"}, "terrain='hilly'"),
])
def test_bad_overrides_are_config_errors(cfg, kw, match):
    with pytest.raises(ConfigError, match=match):
        circle_rule(cfg, "culture_15min", **kw)


def test_unknown_circle_and_distance_overrides(cfg):
    with pytest.raises(ConfigError, match="culture_10min.*culture_15min"):
        circle_rule(cfg, "culture_10min")
    with pytest.raises(ConfigError, match="distance mode: give threshold_m"):
        circle_rule(cfg, "kindergarten_300m", threshold_min=5)
    with pytest.raises(ConfigError, match="profile and terrain overrides do not apply"):
        circle_rule(cfg, "kindergarten_300m", profile="elderly")


@settings(max_examples=200, deadline=None)
@given(thr=st.floats(1.0, 1e5), costs=st.lists(st.floats(0, 2e5) | st.just(math.nan) | st.just(math.inf), max_size=20),
       snaps=st.lists(st.floats(0, 2e3), max_size=20), speed=st.floats(0.3, 3.0), limit=st.floats(1.0, 1e3))
def test_within_and_walk_are_the_documented_formulas(cfg, thr, costs, snaps, speed, limit):
    rule = CircleRule(circle=cfg.circles["culture_15min"], threshold=thr, weight="time_s_adult",
                      flat_weight=None, walk_speed_mps=speed, max_snap_m=limit, profile="adult")
    c = np.asarray(costs, dtype=float)
    assert rule.within(c).tolist() == [bool(x <= thr + limit_slack(thr)) for x in c]
    w = rule.walk(np.asarray(snaps, dtype=float))
    assert w.tolist() == [s / speed if s <= limit else math.inf for s in snaps]


def test_facility_sets_parses_once_and_strips():
    of = facility_sets(pd.DataFrame({"circles": ["a; b", "b", "", None, "ab"]}))
    assert of("a").tolist() == [True, False, False, False, False]
    assert of("b").tolist() == [True, True, False, False, False]
    assert facility_sets(pd.DataFrame({"name": ["x"]}))("a").tolist() == [False]


# ---------------------------------------------------------------------------------------------
# caches keyed by content


@pytest.fixture(scope="module")
def _city():
    from accessibility.demo.cities import synthetic_city

    return synthetic_city(25_000, seed=3)  # above the size where reach_matrix searches tiles


@pytest.fixture()
def city(_city):
    """A fresh copy of the city's network for each test (the tests edit it)."""
    import copy

    return _city._replace(net=copy.deepcopy(_city.net))


def test_doubled_times_give_doubled_answers(city):
    net = city.net
    src = np.arange(0, net.n_nodes, 997)
    t1, _ = multi_source(net, "time_s_adult", src, limit=600.0)
    r1 = reach_matrix(net, "time_s_adult", src[:5], limit=600.0)
    g1 = graph_matrix(net, "time_s_adult").copy()
    net.edges["time_s_adult"] *= 2  # a new column object
    t2, _ = multi_source(net, "time_s_adult", src, limit=1200.0)
    ok = np.isfinite(t1)
    np.testing.assert_allclose(t2[ok], 2 * t1[ok], rtol=1e-9, atol=1e-6)
    np.testing.assert_allclose(graph_matrix(net, "time_s_adult").data, 2 * g1.data)
    r2 = reach_matrix(net, "time_s_adult", src[:5], limit=1200.0)
    assert r2.nnz == r1.nnz  # the same pairs within twice the limit ...
    np.testing.assert_allclose(np.sort(r2.data - 1e-9), np.sort(2 * (r1.data - 1e-9)), atol=1e-6)  # ... twice as far


def test_in_place_edit_of_the_same_buffer_is_seen(city):
    net = city.net
    src = np.array([0, 10, 20])
    before, _ = multi_source(net, "length_m", src)
    # .loc writes into the column's existing buffer (pandas copy-on-write: no other owner)
    net.edges.loc[:, "length_m"] = net.edges["length_m"].to_numpy() * 3
    after, _ = multi_source(net, "length_m", src)
    ok = np.isfinite(before)
    np.testing.assert_allclose(after[ok], 3 * before[ok], rtol=1e-9, atol=1e-6)


def test_moved_nodes_are_snapped_afresh(city):
    net = city.net
    x, y = net.nodes["x"].to_numpy()[:3] + 1.0, net.nodes["y"].to_numpy()[:3]
    node, dist = snap(net, x, y)
    assert node.tolist() == [0, 1, 2] and np.allclose(dist, 1.0)
    net.nodes["x"] = net.nodes["x"] + 1.0
    node2, dist2 = snap(net, x, y)
    assert node2.tolist() == [0, 1, 2] and np.allclose(dist2, 0.0)


def test_unchanged_network_is_answered_from_memory(city):
    net = city.net
    a = graph_matrix(net, "time_s_adult", reverse=True)
    assert graph_matrix(net, "time_s_adult", reverse=True) is a
    net.edges["name"] = "changed"  # a column no matrix reads
    assert graph_matrix(net, "time_s_adult", reverse=True) is a


# ---------------------------------------------------------------------------------------------
# one rule feeds coverage, siting and maps (on the demo run)


def _facility_sites(study, rule):
    """The circle's facilities as candidate sites: node and snap distance."""
    fac = study.facilities[rule.facility_mask(study.facilities)]
    node, dist = snap(study.network, fac.geometry.x.to_numpy(), fac.geometry.y.to_numpy())
    return pd.DataFrame({"node": node, "snap_m": dist})


@pytest.mark.slow
def test_coverage_sets_with_defaults_equal_the_run(demo_run):
    from accessibility.siting import coverage_sets

    study, results = demo_run.study, demo_run.results
    for cid in ("culture_15min", "eldercare_15min", "kindergarten_300m"):
        rule = circle_rule(study.config, cid)
        A = coverage_sets(study.network, study.cells, _facility_sites(study, rule), rule)
        covered_by_some_site = np.diff(A.indptr) > 0
        np.testing.assert_array_equal(covered_by_some_site, results[f"{cid}_covered"].to_numpy(), err_msg=cid)


@pytest.mark.slow
def test_one_max_snap_m_changes_coverage_siting_and_maps_together(demo_run):
    from accessibility.coverage import cell_results
    from accessibility.maps import circle_node_times
    from accessibility.siting import coverage_sets

    study, results = demo_run.study, demo_run.results
    net, cells, fac = study.network, study.cells, study.facilities
    base = circle_rule(study.config, "fitness_15min")
    tight = circle_rule(study.config, "fitness_15min", max_snap_m=60)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AccessibilityWarning)  # far cells and facilities are reported
        res = cell_results(cells, fac, net, tight, counts=False, flat=False, progress=False)
    cov = res["fitness_15min_covered"].to_numpy()
    before = results["fitness_15min_covered"].to_numpy()
    assert cov.sum() < before.sum() and not (cov & ~before).any()
    # siting: the facilities as sites with the same rule cover exactly the same cells
    A = coverage_sets(net, cells, _facility_sites(study, tight), tight)
    np.testing.assert_array_equal(np.diff(A.indptr) > 0, cov)
    # maps: the service areas' node times leave out the same far facilities
    t_base = circle_node_times(net, fac, base)["fitness_15min"]
    t_tight = circle_node_times(net, fac, tight)["fitness_15min"]
    assert np.isfinite(t_tight).sum() < np.isfinite(t_base).sum()
    node, snap_m = snap(net, cells.geometry.x.to_numpy(), cells.geometry.y.to_numpy())
    # a cell is covered iff its walk plus its node's time to the nearest facility is within
    np.testing.assert_array_equal(tight.within(tight.walk(snap_m) + t_tight[node]), cov)
