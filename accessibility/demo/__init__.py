"""Synthetic data, kept apart from the analysis: none of it is ever presented as real.

- :mod:`accessibility.demo.jiangbei` — the deterministic Jiangbei SYNTHETIC DEMO layers
  (:func:`make_demo_data`: OSM PBF network and POIs, population and DEM GeoTIFFs, unit polygons,
  inventories), written in the raw formats of real sources;
- :mod:`accessibility.demo.cities` — benchmark city networks of any size
  (:func:`synthetic_city`, :func:`synthetic_config`);
- :func:`example_grid` — a four-node street and three homes, small enough to check by hand, for
  the examples in the docstrings.
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["ExampleGrid", "example_config", "example_grid", "make_demo_data", "synthetic_city",
           "synthetic_config"]


def make_demo_data(config, **kwargs):
    """Write the synthetic demo layers of ``config`` (see :func:`accessibility.demo.jiangbei.make_demo_data`)."""
    from accessibility.demo.jiangbei import make_demo_data as _make

    return _make(config, **kwargs)


def synthetic_city(n_nodes, **kwargs):
    """A benchmark city (see :func:`accessibility.demo.cities.synthetic_city`)."""
    from accessibility.demo.cities import synthetic_city as _city

    return _city(n_nodes, **kwargs)


def synthetic_config(**kwargs):
    """The configuration of a benchmark city (see :func:`accessibility.demo.cities.synthetic_config`)."""
    from accessibility.demo.cities import synthetic_config as _config

    return _config(**kwargs)


def example_config():
    """A configuration with the three plan circles of the benchmark cities (no files behind it).

    Examples
    --------
    >>> sorted(example_config().circles)
    ['culture_15min', 'eldercare_15min', 'fitness_15min']
    """
    return synthetic_config()


class ExampleGrid(NamedTuple):
    """The hand-checkable example: ``net``, ``cells``, ``facilities``, ``config`` and its ``rules``."""

    net: object
    cells: object
    facilities: object
    config: object
    rules: dict


def example_grid() -> ExampleGrid:
    """Four nodes on a straight street, 100 m apart (100 s each way for the 1 m/s walker), one
    shop at the first node, three homes 50 m off the street beside the first three nodes.

    The circle ``shop`` has a 200 s threshold: the homes are 50 + 0, 50 + 100 and 50 + 200 s from
    the shop, so the first two are covered. SYNTHETIC (a made-up street in UTM 48N).

    Examples
    --------
    >>> g = example_grid()
    >>> g.net.n_nodes, len(g.cells), g.rules["shop"].threshold
    (4, 3, 200.0)
    """
    import dataclasses

    import geopandas as gpd
    import numpy as np
    import pandas as pd

    from accessibility.config import Category, Circle, Profile
    from accessibility.network import WalkNetwork
    from accessibility.rules import circle_rules

    crs = "EPSG:32648"
    x0, y0 = 600_000.0, 3_270_000.0
    x = x0 + np.array([0.0, 100.0, 200.0, 300.0])
    nodes = gpd.GeoDataFrame({"osm_id": np.arange(1, 5, dtype=np.int64), "x": x, "y": np.full(4, y0),
                              "elev_m": np.nan, "component": np.zeros(4, dtype=np.int64)},
                             geometry=gpd.points_from_xy(x, np.full(4, y0)), crs=crs)
    u = np.array([1, 0, 2, 1, 3, 2], dtype=np.int64)  # ordered by (v, u), as the network builder does
    v = np.array([0, 1, 1, 2, 2, 3], dtype=np.int64)
    edges = pd.DataFrame({"u": u, "v": v, "length_m": 100.0, "highway": "residential", "is_steps": False,
                          "name": "示例路 Example Road", "osm_way_id": np.int64(1), "rise_m": 0.0,
                          "time_s_adult": 100.0, "time_s_adult_flat": 100.0})
    net = WalkNetwork(nodes=nodes, edges=edges, crs=crs, profiles=["adult"])
    cells = gpd.GeoDataFrame({"cell_id": np.arange(3, dtype=np.int64), "population": [10.0, 20.0, 30.0],
                              "pop_60plus": [2.0, 4.0, 6.0], "unit_code": ["U1", "U1", "U2"]},
                             geometry=gpd.points_from_xy(x[:3], np.full(3, y0 + 50.0)), crs=crs)
    facilities = gpd.GeoDataFrame({"fac_id": ["example:shop"], "name": ["小店 shop"], "category": ["shop"],
                                   "circles": ["shop"], "capacity": [np.nan]},
                                  geometry=gpd.points_from_xy(x[:1], [y0]), crs=crs)
    base = synthetic_config(crs=crs)
    config = dataclasses.replace(
        base, name="example_grid", title_zh="示例街道", title_en="Example street",
        profiles={"adult": Profile(name="adult", flat_speed_mps=1.0, label="adult 1 m/s")},
        categories={"shop": Category(id="shop", label_zh="商店", label_en="shop", names=("店",))},
        circles={"shop": Circle(id="shop", label_zh="商店圈", label_en="shop circle", categories=("shop",),
                                mode="time", threshold=200.0, profile="adult", population="all",
                                target_share=1.0)})
    return ExampleGrid(net=net, cells=cells, facilities=facilities, config=config, rules=circle_rules(config))
