"""The synthetic benchmark city: right sizes, connected enough, deterministic, contract columns."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from accessibility.demo.cities import CIRCLES, PROFILES, synthetic_city, synthetic_config

EDGE_COLS = ["u", "v", "length_m", "highway", "is_steps", "name", "osm_way_id", "rise_m"]


@pytest.fixture(scope="module")
def city():
    return synthetic_city(10_000, seed=3)


def test_sizes(city):
    net, cells, fac, units = city
    n = len(net.nodes)
    assert n == 100 * 100
    # grid with 12 % of 2*99*100 links removed, two directed rows per link
    links = 2 * 99 * 100
    assert 0.84 * links * 2 < len(net.edges) < 0.92 * links * 2
    assert len(cells) == 50 * 50  # n/4 cells
    assert len(fac) == 3 * (n // 500)
    assert fac["circles"].value_counts().to_dict() == dict.fromkeys(CIRCLES, n // 500)
    assert len(units) == 9
    assert synthetic_city("1k").net.nodes.shape[0] in range(900, 1100)


def test_contract_columns(city):
    net, cells, fac, units = city
    assert list(net.nodes.index) == list(range(len(net.nodes)))
    for c in ("osm_id", "x", "y", "elev_m", "component", "geometry"):
        assert c in net.nodes.columns
    for c in EDGE_COLS + [f"time_s_{p}{s}" for p in PROFILES for s in ("", "_flat")]:
        assert c in net.edges.columns, c
    e = net.edges
    assert (e["length_m"] > 0).all()
    assert e["u"].between(0, len(net.nodes) - 1).all() and e["v"].between(0, len(net.nodes) - 1).all()
    # lengths are the straight distances between the end nodes
    dx = net.nodes["x"].to_numpy()[e["u"]] - net.nodes["x"].to_numpy()[e["v"]]
    dy = net.nodes["y"].to_numpy()[e["u"]] - net.nodes["y"].to_numpy()[e["v"]]
    np.testing.assert_allclose(e["length_m"], np.hypot(dx, dy))
    # rise = elev[v] - elev[u]
    elev = net.nodes["elev_m"].to_numpy()
    np.testing.assert_allclose(e["rise_m"], elev[e["v"]] - elev[e["u"]])
    # flat times are length / speed; uphill is slower than the reverse downhill on ordinary links
    for p, mps in PROFILES.items():
        np.testing.assert_allclose(e[f"time_s_{p}_flat"], e["length_m"] / mps)
    up = (e["rise_m"] > 1) & ~e["is_steps"]
    assert up.sum() > 100
    assert (e.loc[up, "time_s_adult"] > e.loc[up, "length_m"] / 1.2).all()
    assert (e["highway"] == "steps").eq(e["is_steps"]).all()
    assert 0.005 < e["is_steps"].mean() < 0.2
    assert cells["unit_code"].isin(units["unit_code"]).all()
    assert (cells["pop_60plus"] <= cells["population"]).all()
    assert str(cells.crs) == str(net.nodes.crs) == str(fac.crs) == "EPSG:32648"
    assert fac["fac_id"].is_unique


def test_connected_enough(city):
    net = city.net
    n = len(net.nodes)
    g = coo_matrix((np.ones(len(net.edges)), (net.edges["u"], net.edges["v"])), shape=(n, n))
    ncomp, labels = connected_components(g, directed=True, connection="strong")
    giant = np.bincount(labels).max()
    assert giant / n > 0.98
    # the component column labels the largest component 0
    assert (net.nodes["component"] == 0).sum() == giant
    assert ncomp == net.nodes["component"].nunique()


def test_deterministic():
    a = synthetic_city(2_500, seed=7)
    b = synthetic_city(2_500, seed=7)
    c = synthetic_city(2_500, seed=8)
    pd.testing.assert_frame_equal(a.net.edges, b.net.edges)
    pd.testing.assert_frame_equal(pd.DataFrame(a.net.nodes.drop(columns="geometry")),
                                  pd.DataFrame(b.net.nodes.drop(columns="geometry")))
    pd.testing.assert_frame_equal(pd.DataFrame(a.cells.drop(columns="geometry")),
                                  pd.DataFrame(b.cells.drop(columns="geometry")))
    assert a.facilities.geometry.equals(b.facilities.geometry)
    assert not np.allclose(a.net.nodes["x"], c.net.nodes["x"])


def test_config_matches():
    cfg = synthetic_config()
    assert set(cfg.circles) == set(CIRCLES)
    assert cfg.circles["eldercare_15min"].profile == "elderly"
    assert cfg.circles["culture_15min"].threshold == 900.0
    assert set(cfg.profiles) == set(PROFILES)
