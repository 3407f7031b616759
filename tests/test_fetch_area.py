"""End to end: ``accessibility fetch`` (the online path) against a local server, offline.

A tiny study area is built in tmp_path around the recorded Overpass answers of
tests/data/overpass_*_jiangbei.json. A ThreadingHTTPServer on 127.0.0.1 plays the Overpass API
(``/api/status`` answered like the real server, so osmnx's rate limiting stays on as for a user;
``/api/interpreter`` replays the recorded JSON) and a file host (``/dem.tif``, a real small GeoTIFF).
The CLI must write an .osm.pbf that ``read_osm`` reads back with the recorded ways and POIs, download
the GeoTIFF byte for byte, answer a second run from its caches with the server stopped, and the
written file must work as a ``kind: osm_file`` network. Error answers give exit code 2 and keep
nothing.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from urllib.parse import parse_qs

import numpy as np
import osmnx as ox
import pytest
import rasterio
from rasterio.io import MemoryFile
from rasterio.transform import from_origin

from accessibility.cli import main
from accessibility.config import load_area
from accessibility.network import build_walk_network
from accessibility.osm import read_osm
from tests.conftest import LocalServer, quiet_handler
from tests.test_overpass import FEATURES, NETWORK

ROOT = Path(__file__).resolve().parents[1]
AREA = "tinyarea"
# around the recorded answers (same box as tests/test_overpass.py); the school node 3006 lies outside
BOX_LONLAT = (106.529, 29.579, 106.533, 29.582)

# the first lines of a real Overpass /api/status answer; osmnx reads line 5 ("2 slots available now.")
STATUS = (b"Connected as: 2130706433\nCurrent time: 2024-05-01T00:00:00Z\nAnnounced endpoint: none\n"
          b"Rate limit: 2\n2 slots available now.\nCurrently running queries (pid, space limit, time limit, "
          b"start time):\n")


def _geotiff_bytes() -> bytes:
    """A 4 x 3 float32 DEM in UTM 48N, as GeoTIFF file bytes."""
    data = np.arange(12, dtype=np.float32).reshape(3, 4) + 200.0
    with MemoryFile() as mem:
        with mem.open(driver="GTiff", width=4, height=3, count=1, dtype="float32", crs="EPSG:32648",
                      transform=from_origin(651000.0, 3275000.0, 30.0, 30.0)) as ds:
            ds.write(data, 1)
        return mem.read()


DEM = _geotiff_bytes()


class _Server(LocalServer):
    """Overpass API and file host on a random local port; records every request as (method, path)."""

    def __init__(self, *, interpreter_status: int = 200, file_status: int = 200):
        self.requests: list[tuple[str, str]] = []
        self.queries: list[str] = []
        outer = self

        class Handler(quiet_handler()):
            def do_GET(self):  # noqa: N802 (http.server's naming)
                outer.requests.append(("GET", self.path))
                if self.path == "/api/status":
                    self._send(200, STATUS, "text/plain")
                elif self.path == "/dem.tif":
                    if file_status == 200:
                        self._send(200, DEM, "image/tiff")
                    else:
                        self._send(file_status, b"<html>Internal Server Error</html>", "text/html")
                else:
                    self._send(404, b"not found", "text/plain")

            def do_POST(self):  # noqa: N802
                outer.requests.append(("POST", self.path))
                length = int(self.headers.get("Content-Length", 0))
                query = parse_qs(self.rfile.read(length).decode("utf-8")).get("data", [""])[0]
                outer.queries.append(query)
                if self.path != "/api/interpreter":
                    self._send(404, b"not found", "text/plain")
                elif interpreter_status != 200:
                    self._send(interpreter_status, b"<html><body>runtime error: out of memory</body></html>",
                               "text/html")
                else:
                    self._send(200, NETWORK if "highway" in query else FEATURES, "application/json")

        super().__init__(Handler)


def _write_area(folder: Path, *, network: str = "{kind: overpass, status: real}",
                facilities: str = "{kind: overpass, status: real}") -> Path:
    shutil.copy(ROOT / "config" / "categories.yaml", folder / "categories.yaml")
    x0, y0, x1, y1 = BOX_LONLAT
    ring = f"[[{x0}, {y0}], [{x1}, {y0}], [{x1}, {y1}], [{x0}, {y1}], [{x0}, {y0}]]"
    (folder / "boundary.geojson").write_text(
        '{"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {"name": "tiny"}, '
        f'"geometry": {{"type": "Polygon", "coordinates": [{ring}]}}}}]}}', encoding="utf-8")
    cfg = folder / f"{AREA}.yaml"
    cfg.write_text(f"""\
name: {AREA}
crs: EPSG:32648
base_dir: .
categories: categories.yaml
sources:
  boundary: {{kind: vector, path: boundary.geojson, status: real}}
  network: {network}
  facilities:
    - {facilities}
circles:
  culture_15min:
    categories: [library]
    mode: time
    threshold_min: 15
    target_share: 1.0
""", encoding="utf-8")
    return cfg


def _fetch(cfg: Path, base: str) -> int:
    return main(["fetch", str(cfg), "--overpass-url", f"{base}/api", "--url", f"{base}/dem.tif"])


def _downloads(tmp_path: Path) -> Path:
    return tmp_path / "data" / "raw" / AREA / "downloads"


def _cache(tmp_path: Path) -> Path:
    return tmp_path / "data" / "raw" / AREA / "overpass_cache"


def _check_pbf(pbf: Path) -> None:
    """The written file holds the recorded streets and POIs (worked out from the JSON fixtures)."""
    osm = read_osm(pbf)
    segs = sorted((int(i), tuple(r.tolist())) for i, r in zip(osm.ways["id"], osm.ways["refs"], strict=True))
    # one two-node way per street segment (both directions merged), ids of the recorded ways
    assert segs == [(2001, (1001, 1002)), (2001, (1002, 1003)), (2002, (1003, 1004)),
                    (2003, (1004, 1005)), (2003, (1005, 1006)), (2004, (1006, 1001))]
    tags = {int(i): t for i, t in zip(osm.ways["id"], osm.ways["tags"], strict=True)}
    assert tags[2001] == {"highway": "residential", "name": "建新北路", "lanes": "2"}
    assert tags[2002] == {"highway": "steps", "step_count": "42", "incline": "up"}
    assert tags[2003] == {"highway": "footway", "foot": "designated", "surface": "paving_stones"}
    assert tags[2004] == {"highway": "service", "access": "yes", "name": "观音桥步行街辅道"}
    assert osm.nodes.loc[1003, "lon"] == pytest.approx(106.532, abs=1e-7)  # PBF keeps 1e-7 degrees
    pois = osm.pois.set_index("osm_id")
    # the far school (3006) was outside the polygon; the pitch way 3101 comes back as node -3101
    assert sorted(pois.index) == [-3101, 3001, 3002, 3005]
    assert set(osm.pois["osm_type"]) == {"node"}
    assert pois.loc[3001, "tags"] == {"amenity": "library", "name": "江北区图书馆",
                                      "opening_hours": "Tu-Su 09:00-17:00"}
    assert pois.loc[3002, "tags"]["beds"] == "60" and pois.loc[3002, "name"] == "观音桥街道养老服务中心"
    assert pois.loc[3005, "tags"] == {"amenity": "bench"}
    assert pois.loc[-3101, "tags"] == {"leisure": "pitch", "sport": "basketball", "name": "建新北路篮球场"}
    # centroid of the square 106.5300-106.5304 x 29.5812-29.5816
    g = pois.loc[-3101, "geometry"]
    assert (g.x, g.y) == pytest.approx((106.5302, 29.5814), abs=1e-7)
    assert (pois.loc[3001, "geometry"].x, pois.loc[3001, "geometry"].y) == pytest.approx((106.5312, 29.5806),
                                                                                         abs=1e-7)


def test_fetch_online_then_offline(tmp_path, capsys):
    cfg = _write_area(tmp_path)
    url_before = ox.settings.overpass_url
    with _Server() as server:
        assert _fetch(cfg, server.base) == 0
    out = capsys.readouterr().out
    pbf = _downloads(tmp_path) / f"{AREA}_overpass.osm.pbf"
    assert str(pbf) in out and "kind: osm_file" in out
    assert ox.settings.overpass_url == url_before  # the --overpass-url override is undone

    # two Overpass queries (streets, then POIs), each after a status check; one file download
    posts = [r for r in server.requests if r[0] == "POST"]
    assert posts == [("POST", "/api/interpreter")] * 2
    assert "highway" in server.queries[0] and "highway" not in server.queries[1]
    assert server.requests.count(("GET", "/api/status")) == 2
    assert server.requests.count(("GET", "/dem.tif")) == 1

    _check_pbf(pbf)
    dem = _downloads(tmp_path) / "dem.tif"
    assert dem.read_bytes() == DEM
    with rasterio.open(dem) as ds:
        assert ds.crs.to_epsg() == 32648 and ds.read(1)[2, 3] == pytest.approx(211.0)
    assert sorted(p.name for p in _downloads(tmp_path).iterdir()) == ["dem.tif", f"{AREA}_overpass.osm.pbf"]
    cached = sorted(_cache(tmp_path).glob("*.json"))
    assert len(cached) == 2
    pbf_bytes = pbf.read_bytes()

    # server gone: both Overpass answers come from the cache, the GeoTIFF is kept; nothing is requested
    n_requests = len(server.requests)
    assert _fetch(cfg, server.base) == 0
    assert len(server.requests) == n_requests
    assert sorted(_cache(tmp_path).glob("*.json")) == cached
    assert dem.read_bytes() == DEM
    assert pbf.read_bytes() == pbf_bytes  # same answers, same file
    _check_pbf(pbf)


def test_fetched_pbf_runs_offline_as_osm_file(tmp_path):
    cfg = _write_area(tmp_path)
    with _Server() as server:
        assert _fetch(cfg, server.base) == 0
    pbf = f"data/raw/{AREA}/downloads/{AREA}_overpass.osm.pbf"
    offline = _write_area(tmp_path, network=f"{{kind: osm_file, path: {pbf}, status: real}}",
                          facilities=f"{{kind: osm_file, path: {pbf}, status: real}}")
    area = load_area(offline)  # check_files=True: the written file is where the config says
    assert area.sources["network"].kind == "osm_file" and area.sources["network"].path == tmp_path / pbf
    net = build_walk_network(read_osm(area.sources["network"].path), "EPSG:32648", profiles=area.profiles)
    # six segments, each walkable both ways -> 12 directed edges, two per segment
    e = net.edges
    assert len(e) == 12
    assert sorted(e["osm_way_id"].value_counts().items()) == [(2001, 4), (2002, 2), (2003, 4), (2004, 2)]
    # 0.001 deg at 29.58 N on WGS-84: 96.89 m east-west, 110.85 m north-south, times the UTM 48N scale
    # 0.99987 (1.53 deg from the central meridian) -> 96.88 m and 110.83 m
    ew = e["osm_way_id"].isin([2001, 2003])
    assert e.loc[ew, "length_m"].to_numpy() == pytest.approx(np.full(8, 96.88), rel=2e-4)
    assert e.loc[~ew, "length_m"].to_numpy() == pytest.approx(np.full(4, 110.83), rel=2e-4)
    steps = e["osm_way_id"] == 2002
    assert e.loc[steps, "is_steps"].all() and not e.loc[~steps, "is_steps"].any()
    assert np.isinf(e.loc[steps, "time_s_frail"]).all()  # the frail profile avoids steps
    assert e.loc[~steps, "time_s_adult"].to_numpy() == pytest.approx(e.loc[~steps, "length_m"] / 1.2)


def test_endpoint_url_with_interpreter_is_accepted(tmp_path):
    """``--overpass-url .../api/interpreter`` (the endpoint as usually quoted) works like ``.../api``.

    Before the fix osmnx asked ``/api/interpreter/status`` (unparsable: a silent 60 s pause) and then
    posted to ``/api/interpreter/interpreter`` (HTTP 404).
    """
    cfg = _write_area(tmp_path)
    with _Server() as server:
        rc = main(["fetch", str(cfg), "--overpass-url", f"{server.base}/api/interpreter/"])
    assert rc == 0
    assert server.requests == [("GET", "/api/status"), ("POST", "/api/interpreter")] * 2
    _check_pbf(_downloads(tmp_path) / f"{AREA}_overpass.osm.pbf")


def test_overpass_error_answer_exit_2_and_nothing_kept(tmp_path, capsys):
    cfg = _write_area(tmp_path)
    with _Server(interpreter_status=500) as server:
        assert _fetch(cfg, server.base) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ")
    assert "refused the street-network query: HTTP 500" in err and f"{server.base}/api/interpreter" in err
    assert server.requests.count(("POST", "/api/interpreter")) == 1  # no retry loop
    assert ("GET", "/dem.tif") not in server.requests  # stopped before the downloads
    downloads = _downloads(tmp_path)
    assert not downloads.exists() or list(downloads.iterdir()) == []
    assert list(_cache(tmp_path).glob("*.json")) == []


def test_download_error_answer_exit_2_and_no_file(tmp_path, capsys):
    cfg = _write_area(tmp_path)
    with _Server(file_status=500) as server:
        assert _fetch(cfg, server.base) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "dem.tif answered HTTP 500" in err and "nothing was saved" in err
    # the OSM file was complete before the download began; no partial or temporary GeoTIFF is left
    assert [p.name for p in _downloads(tmp_path).iterdir()] == [f"{AREA}_overpass.osm.pbf"]
