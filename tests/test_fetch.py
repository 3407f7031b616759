"""Downloads against a local HTTP server on 127.0.0.1; write_osm round trip through read_osm."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from accessibility import DataError
from accessibility.fetch import download, write_osm
from accessibility.osm import read_osm
from tests.conftest import LocalServer, quiet_handler

PAYLOAD = b"GeoTIFF-bytes-for-testing" * 100


class _Handler(quiet_handler()):
    hits: list[str] = []

    def do_GET(self):  # noqa: N802 - http.server's naming
        _Handler.hits.append(self.path)
        if self.path.startswith("/ok/"):
            self._send(200, PAYLOAD)
        else:
            self._send(500, b"server error page")


@pytest.fixture()
def server():
    _Handler.hits = []
    with LocalServer(_Handler) as s:
        yield s.base, s.httpd


def test_download_once_then_cached(server, tmp_path):
    base, httpd = server
    p = download(f"{base}/ok/pop.tif", tmp_path, sha256=hashlib.sha256(PAYLOAD).hexdigest())
    assert p.read_bytes() == PAYLOAD
    httpd.shutdown()  # offline from now on
    again = download(f"{base}/ok/pop.tif", tmp_path)
    assert again == p and len(_Handler.hits) == 1


def test_error_answer_is_never_kept(server, tmp_path):
    base, _ = server
    with pytest.raises(DataError, match="HTTP 500"):
        download(f"{base}/bad/dem.tif", tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_checksum_mismatch_keeps_nothing(server, tmp_path):
    base, _ = server
    with pytest.raises(DataError, match="SHA-256"):
        download(f"{base}/ok/pop.tif", tmp_path, sha256="0" * 64)
    assert list(tmp_path.iterdir()) == []


def test_unreachable_host_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="failed"):
        download("http://127.0.0.1:9/none.tif", tmp_path, timeout_s=2)


def test_write_osm_round_trip(tmp_path):
    src = Path(__file__).parent / "data" / "tiny_jiangbei.osm"
    osm = read_osm(src)
    out = write_osm(osm, tmp_path / "copy.osm.pbf")
    back = read_osm(out)
    # way POIs come back as tagged nodes with the negative way id, at their centroid
    assert back.nodes[back.nodes.index > 0].sort_index().equals(osm.nodes.sort_index())
    way_pois = osm.pois[osm.pois["osm_type"] == "way"]
    assert set(-way_pois["osm_id"]) <= set(back.nodes.index)
    assert sorted(back.ways["id"]) == sorted(osm.ways["id"])
    for (_, a), (_, b) in zip(osm.ways.sort_values("id").iterrows(), back.ways.sort_values("id").iterrows(),
                              strict=True):
        assert list(a["refs"]) == list(b["refs"]) and a["tags"] == b["tags"]
    names = set(osm.pois["name"].dropna())
    assert names <= set(back.pois["name"].dropna())
