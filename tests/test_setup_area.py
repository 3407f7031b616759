"""accessibility init: building blocks by hand, the whole command on small made-up inputs."""

from __future__ import annotations

import warnings

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio
from shapely.geometry import box

from accessibility import ConfigError, DataError
from accessibility._errors import AccessibilityWarning
from accessibility.config import load_area
from accessibility.setup_area import AreaSpec, estimate_population, grid_units, init_area, utm_crs


@pytest.mark.parametrize(("lon", "lat", "epsg"), [(24.94, 60.17, 32635), (106.55, 29.6, 32648),
                                                   (-58.4, -34.6, 32721), (-0.1, 51.5, 32630),
                                                   (179.9, 10, 32660), (-180, 0, 32601)])
def test_utm_zone(lon, lat, epsg):
    assert utm_crs(box(lon - 0.01, lat - 0.01, lon + 0.01, lat + 0.01)) == f"EPSG:{epsg}"
    # oracle: pyproj's own UTM query for the same point
    from pyproj.aoi import AreaOfInterest
    from pyproj.database import query_utm_crs_info

    if -179.9 < lon < 179.9:
        info = query_utm_crs_info("WGS 84", area_of_interest=AreaOfInterest(lon, lat, lon, lat))
        assert str(epsg) in {i.code for i in info}


def test_grid_units_tile_the_boundary_and_merge_slivers():
    b = gpd.GeoDataFrame(geometry=[box(0, 0, 1050, 1000)], crs="EPSG:32635")  # a 50 m sliver column
    z = grid_units(b, size_m=500, language="en")
    assert len(z) == 4  # the 50 m x 500 m slivers (10 % of a square) joined their neighbours
    assert z.area.sum() == pytest.approx(1050 * 1000)
    assert z.union_all().symmetric_difference(b.geometry.iloc[0]).area < 1e-6
    assert z["unit_code"].is_unique and z["unit_name"].tolist()[0] == "zone 1"
    assert grid_units(b, size_m=500, language="zh")["unit_name"].iloc[0] == "网格 1"


def _osm_lines(lines_xy, crs="EPSG:32635", highway="residential"):
    """OSMData-like object: ``lines_xy`` [((x0, y0), (x1, y1))] in ``crs``."""
    from types import SimpleNamespace

    pts = [p for seg in lines_xy for p in seg]
    ll = gpd.GeoSeries.from_xy([p[0] for p in pts], [p[1] for p in pts], crs=crs).to_crs(4326)
    ids = np.arange(1, len(pts) + 1)
    nodes = pd.DataFrame({"lon": ll.x.to_numpy(), "lat": ll.y.to_numpy()}, index=pd.Index(ids, name="id"))
    ways = pd.DataFrame({"id": np.arange(len(lines_xy)), "refs": [ids[2 * i:2 * i + 2] for i in range(len(lines_xy))],
                         "tags": [{"highway": highway}] * len(lines_xy)})
    return SimpleNamespace(nodes=nodes, ways=ways)


def test_street_proxy_by_hand():
    b = gpd.GeoDataFrame(geometry=[box(500000, 6670000, 500400, 6670200)], crs="EPSG:32635")
    # 300 m of street in the south row (cells 0-2), 100 m in the north row (cell 3)
    osm = _osm_lines([((500000, 6670050), (500300, 6670050)), ((500300, 6670150), (500400, 6670150))])
    grid, corner, how = estimate_population(osm, b, total=800)
    assert corner == (500000, 6670200) and grid.shape == (2, 4)
    np.testing.assert_allclose(grid, [[0, 0, 0, 200], [200, 200, 200, 0]], atol=1e-9)
    assert how.startswith("ESTIMATE: length of residential streets")
    # footways and motorways hold no homes; without residential streets people spread evenly
    foot = _osm_lines([((500000, 6670050), (500300, 6670050))], highway="footway")
    even, _, how = estimate_population(foot, b)
    np.testing.assert_allclose(even, np.full((2, 4), 5000 * 0.08 / 8))
    assert "evenly" in how


def test_errors_name_the_option(tmp_path):
    with pytest.raises(ConfigError, match="area name"):
        init_area(AreaSpec("bad name", root=tmp_path))
    with pytest.raises(ConfigError, match="one boundary"):
        init_area(AreaSpec("a", root=tmp_path, bbox=(0, 0, 1, 1), boundary=tmp_path / "b.geojson"))
    with pytest.raises(ConfigError, match="--osm .*not found"):
        init_area(AreaSpec("a", root=tmp_path, osm=tmp_path / "none.osm.pbf"))
    with pytest.raises(ConfigError, match="--bbox"):
        init_area(AreaSpec("a", root=tmp_path, bbox=(25, 60, 24, 61), population=None, census=None))
    with pytest.raises(ConfigError, match="no boundary"):
        init_area(AreaSpec("a", root=tmp_path))


def test_init_with_files_and_census(tmp_path, helsinki_pbf):
    """Units and census given as files: real layers, no ESTIMATE; the config runs through load_area."""
    units = gpd.GeoDataFrame({"code": ["K1", "K2"], "name": ["Kluuvi", "Kaartinkaupunki"]},
                             geometry=[box(24.940, 60.168, 24.946, 60.175), box(24.946, 60.168, 24.952, 60.175)],
                             crs="EPSG:4326")
    units.to_file(tmp_path / "units.gpkg")
    pd.DataFrame({"unit_code": ["K1", "K2"], "population": [1200, 800], "share_60plus": [0.25, 0.3]}).to_csv(
        tmp_path / "census.csv", index=False)
    units.dissolve().to_file(tmp_path / "outline.geojson")
    res = init_area(AreaSpec("kluuvi", root=tmp_path, osm=helsinki_pbf, boundary=tmp_path / "outline.geojson",
                             units=tmp_path / "units.gpkg", census=tmp_path / "census.csv", share_60plus=0.22,
                             language="en"))
    cfg = load_area(res.config_path)
    assert cfg.crs == "EPSG:32635" and cfg.language == "en" and not cfg.estimated_layers
    assert cfg.data_status == "real data" and cfg.unit_codes == "any"
    assert cfg.sources["census"].options == {"share_60plus": 0.22}
    assert "population" not in cfg.sources  # the census is spread over a grid
    assert set(cfg.circles) >= {"culture_15min", "fitness_15min", "eldercare_15min"}
    assert not any("ESTIMATE" in m for m in res.missing)
    with pytest.raises(ConfigError, match="exists"):
        init_area(AreaSpec("kluuvi", root=tmp_path, osm=helsinki_pbf, bbox=(24.94, 60.168, 24.952, 60.175)))
    from accessibility.pipeline import load_study_area

    with warnings.catch_warnings():  # this small extract has no elderly-care facility or school
        warnings.filterwarnings("ignore", message="circle .* has no facility", category=AccessibilityWarning)
        study = load_study_area(cfg, progress=False)
    assert study.units["unit_code"].tolist() == ["K1", "K2"]
    assert study.cells["population"].sum() == pytest.approx(2000)


def test_estimate_raster_written(tmp_path, helsinki_pbf):
    res = init_area(AreaSpec("h", root=tmp_path, osm=helsinki_pbf, bbox=(24.940, 60.168, 24.952, 60.175),
                             population_total=5000))
    cfg = load_area(res.config_path)
    assert cfg.estimated_layers == ["population"]
    assert "ESTIMATE (layers: population)" in cfg.data_status
    with rasterio.open(cfg.sources["population"].path) as src:
        assert src.crs.to_epsg() == 32635 and src.res == (100.0, 100.0)
        assert src.read(1).sum() == pytest.approx(5000)
    assert "units" not in cfg.sources  # the whole area is one unit


_OSM_XML = """<?xml version='1.0' encoding='UTF-8'?>
<osm version="0.6">
{nodes}
  <way id="1">{refs1}<tag k="boundary" v="administrative"/></way>
  <way id="2">{refs2}</way>
  <way id="3"><nd ref="5"/><nd ref="7"/><tag k="highway" v="residential"/></way>
  <relation id="7"><member type="way" ref="2" role="outer"/>
    <tag k="type" v="boundary"/><tag k="boundary" v="administrative"/><tag k="admin_level" v="10"/>
    <tag k="name" v="Etelä"/><tag k="name:en" v="South"/></relation>
</osm>
"""


def test_admin_areas_from_a_file(tmp_path):
    from accessibility.osm import admin_areas

    sq = [(24.94, 60.17), (24.95, 60.17), (24.95, 60.175), (24.94, 60.175)]
    sq2 = [(x, y - 0.01) for x, y in sq]
    nodes = "\n".join(f'  <node id="{i + 1}" lat="{y}" lon="{x}"/>' for i, (x, y) in enumerate(sq + sq2))
    refs1 = "".join(f'<nd ref="{i}"/>' for i in (1, 2, 3, 4, 1))
    refs2 = "".join(f'<nd ref="{i}"/>' for i in (5, 6, 7, 8, 5))
    p = tmp_path / "a.osm"
    p.write_text(_OSM_XML.format(nodes=nodes, refs1=refs1, refs2=refs2), encoding="utf-8")
    areas = admin_areas(p)
    rel = areas[areas["osm_type"] == "relation"]
    assert rel["osm_id"].tolist() == [7] and rel["name_en"].tolist() == ["South"]
    assert admin_areas(p, admin_level="10")["osm_id"].tolist() == [7]
    res = init_area(AreaSpec("s", root=tmp_path, osm=p, boundary_relation=7, population_total=10))
    assert res.crs == "EPSG:32635"
    b = gpd.read_file(tmp_path / "data" / "raw" / "s" / "boundary.geojson")
    assert b.name.iloc[0] == "Etelä"
    np.testing.assert_allclose(b.total_bounds, [*sq2[0], *sq2[2]], atol=1e-7)
    with pytest.raises(DataError, match="relation 99"):
        init_area(AreaSpec("t", root=tmp_path, osm=p, boundary_relation=99))


def test_init_online_without_an_extract(tmp_path):
    """No OSM file: network, POIs and admin units come from Overpass at run time; the config validates."""
    from rasterio.transform import from_origin

    tif = tmp_path / "pop.tif"
    with rasterio.open(tif, "w", driver="GTiff", height=2, width=2, count=1, dtype="float64", crs="EPSG:32635",
                       transform=from_origin(385000, 6672000, 100, 100)) as dst:
        dst.write(np.ones((1, 2, 2)))
    res = init_area(AreaSpec("online", root=tmp_path, bbox=(24.94, 60.168, 24.952, 60.175), population=tif,
                             units_admin_level="10", share_60plus=0.25))
    cfg = load_area(res.config_path)
    assert cfg.sources["network"].kind == "overpass" and cfg.facility_sources[0].kind == "overpass"
    assert cfg.sources["units"].kind == "overpass" and cfg.sources["units"].options == {"admin_level": "10"}
    assert cfg.sources["population"].path == tif and cfg.data_status == "real data"
    with pytest.raises(ConfigError, match="no population and no OSM extract"):
        init_area(AreaSpec("nopop", root=tmp_path, bbox=(24.94, 60.168, 24.952, 60.175)))
