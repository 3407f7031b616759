"""accessibility.osm.fetch_overpass against a local server replaying recorded Overpass answers.

No internet: a tiny http.server on 127.0.0.1 answers the street-network query and the
points-of-interest query with the JSON fixtures in tests/data; after it stops, the osmnx cache
must answer the same call (offline second run). Error answers must raise and leave no cache.
"""

from __future__ import annotations

import contextlib
import socket
from pathlib import Path
from urllib.parse import parse_qs

import numpy as np
import osmnx as ox
import pytest
from shapely.geometry import box

from accessibility._errors import CRSMismatchError, DataError
from accessibility.osm import fetch_overpass
from tests.conftest import LocalServer, quiet_handler

DATA = Path(__file__).parent / "data"
NETWORK = (DATA / "overpass_walk_jiangbei.json").read_bytes()
FEATURES = (DATA / "overpass_features_jiangbei.json").read_bytes()
POLYGON = box(106.529, 29.579, 106.533, 29.582)


class _Server(LocalServer):
    """Serve Overpass answers on a random local port, in a thread; record the queries."""

    def __init__(self, status: int = 200, body: bytes | None = None, content_type="application/json"):
        self.queries: list[str] = []
        outer = self

        class Handler(quiet_handler()):
            def do_POST(self):  # noqa: N802
                length = int(self.headers.get("Content-Length", 0))
                query = parse_qs(self.rfile.read(length).decode("utf-8")).get("data", [""])[0]
                outer.queries.append(query)
                if body is not None:
                    payload = body
                elif "highway" in query:
                    payload = NETWORK
                else:
                    payload = FEATURES
                self._send(status, payload, content_type)

        super().__init__(Handler)
        self.url = f"{self.base}/api"


@contextlib.contextmanager
def _pointed_at(url: str):
    old = (ox.settings.overpass_url, ox.settings.overpass_rate_limit, ox.settings.doh_url_template)
    ox.settings.overpass_url = url
    ox.settings.overpass_rate_limit = False
    ox.settings.doh_url_template = None
    try:
        yield
    finally:
        ox.settings.overpass_url, ox.settings.overpass_rate_limit, ox.settings.doh_url_template = old


def _check(osm):
    assert osm.source == "overpass" and osm.status == "real"
    # street nodes and the two POI nodes inside the polygon
    assert osm.nodes.index.tolist() == [1001, 1002, 1003, 1004, 1005, 1006, 3001, 3002, 3005]
    assert osm.nodes.loc[1003, "lon"] == pytest.approx(106.532)
    assert osm.nodes.loc[3001, "lat"] == pytest.approx(29.5806)
    segs = sorted((int(i), tuple(r.tolist())) for i, r in zip(osm.ways["id"], osm.ways["refs"], strict=True))
    # one row per segment (both directions merged), in each way's own node order
    assert segs == [(2001, (1001, 1002)), (2001, (1002, 1003)), (2002, (1003, 1004)),
                    (2003, (1004, 1005)), (2003, (1005, 1006)), (2004, (1006, 1001))]
    assert all(r.dtype == np.int64 for r in osm.ways["refs"])
    tags = dict(zip(osm.ways["id"], osm.ways["tags"], strict=False))
    assert tags[2001] == {"highway": "residential", "name": "建新北路", "lanes": "2"}
    assert tags[2002] == {"highway": "steps", "step_count": "42", "incline": "up"}
    assert tags[2003] == {"highway": "footway", "foot": "designated", "surface": "paving_stones"}
    assert tags[2004] == {"highway": "service", "access": "yes", "name": "观音桥步行街辅道"}
    pois = osm.pois.set_index(["osm_type", "osm_id"])
    assert osm.pois.crs.to_epsg() == 4326
    # the school lies outside the polygon and is dropped by osmnx
    assert sorted(pois.index) == [("node", 3001), ("node", 3002), ("node", 3005), ("way", 3101)]
    assert pois.loc[("node", 3001), "name"] == "江北区图书馆"
    assert pois.loc[("node", 3005), "name"] is None
    assert pois.loc[("node", 3002), "tags"]["beds"] == "60"
    c = pois.loc[("way", 3101), "geometry"]
    assert (c.x, c.y) == pytest.approx((106.5302, 29.5814), abs=1e-9)
    assert pois.loc[("way", 3101), "tags"] == {"leisure": "pitch", "sport": "basketball", "name": "建新北路篮球场"}


def test_fetch_then_offline(tmp_path):
    cache = tmp_path / "overpass_cache"
    settings_before = (ox.settings.cache_folder, ox.settings.use_cache, ox.settings.requests_timeout,
                       list(ox.settings.useful_tags_way), dict(ox.settings.requests_kwargs))
    getaddrinfo_before = socket.getaddrinfo
    with _Server() as server, _pointed_at(server.url):
        osm = fetch_overpass(POLYGON, cache_dir=cache, timeout_s=30)
        url = server.url
    _check(osm)
    assert len(server.queries) == 2
    assert "highway" in server.queries[0] and "[timeout:30]" in server.queries[0]
    assert '["amenity"]' in server.queries[1] or "['amenity']" in server.queries[1]
    assert len(list(cache.glob("*.json"))) == 2
    # settings restored, osmnx's DNS pinning undone
    assert (ox.settings.cache_folder, ox.settings.use_cache, ox.settings.requests_timeout,
            list(ox.settings.useful_tags_way), dict(ox.settings.requests_kwargs)) == settings_before
    assert socket.getaddrinfo is getaddrinfo_before

    # server gone: the cache answers
    with _pointed_at(url):
        again = fetch_overpass(POLYGON, cache_dir=cache, timeout_s=30)
    _check(again)
    assert len(server.queries) == 2

    # a different cache folder has nothing: clear error naming the folder
    with _pointed_at(url), pytest.raises(DataError, match=r"cannot reach the Overpass server .* no cached answer"):
        fetch_overpass(POLYGON, cache_dir=tmp_path / "empty_cache", timeout_s=2)


@pytest.mark.parametrize("status,body,expect", [
    (500, b"<html><body>Internal error</body></html>", "HTTP 500"),
    (429, b'{"error": "rate limited"}', "HTTP 429 .*rate limiting"),
    (504, b"Gateway Timeout", "HTTP 504 .*busy"),
    (200, b'{"version": 0.6, "elements": [], "remark": "runtime error: Query timed out in \\"query\\" '
          b'at line 1 after 25 seconds."}', "the answer is incomplete, the server remarked"),
])
def test_error_answers_raise_and_are_not_cached(tmp_path, status, body, expect):
    cache = tmp_path / "cache"
    with _Server(status=status, body=body) as server, _pointed_at(server.url), \
            pytest.raises(DataError, match=f"refused the street-network query: {expect}") as exc:
        fetch_overpass(POLYGON, cache_dir=cache, timeout_s=10)
    assert "Nothing was cached" in str(exc.value)
    assert len(server.queries) == 1  # no retry loop (osmnx would sleep 55 s and retry 429/504)
    assert list(cache.glob("*.json")) == []


def test_bad_polygon(tmp_path):
    with pytest.raises(CRSMismatchError, match="not WGS-84"):
        fetch_overpass(box(650000, 3270000, 660000, 3280000), cache_dir=tmp_path)
    with pytest.raises(DataError, match="Polygon"):
        fetch_overpass("Jiangbei", cache_dir=tmp_path)
