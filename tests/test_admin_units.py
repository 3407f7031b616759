"""Units online: OSM admin_level=8 boundaries through a local Overpass replay, then into units."""

from __future__ import annotations

import json

import pytest
from shapely.geometry import box

from accessibility import DataError
from accessibility.osm import fetch_admin_boundaries
from accessibility.units import units_from_osm_admin
from tests.test_overpass import _pointed_at, _Server

# two street-level boundaries side by side, as Overpass returns them (relation + ways + nodes)
_NODES = [(1, 106.520, 29.570), (2, 106.530, 29.570), (3, 106.530, 29.580), (4, 106.520, 29.580),
          (5, 106.540, 29.570), (6, 106.540, 29.580)]
_ANSWER = {
    "version": 0.6,
    "elements": [
        *[{"type": "node", "id": i, "lat": lat, "lon": lon} for i, lon, lat in _NODES],
        {"type": "way", "id": 11, "nodes": [1, 2, 3, 4, 1]},
        {"type": "way", "id": 12, "nodes": [2, 5, 6, 3, 2]},
        {"type": "relation", "id": 21, "members": [{"type": "way", "ref": 11, "role": "outer"}],
         "tags": {"type": "boundary", "boundary": "administrative", "admin_level": "8",
                  "name": "观音桥街道", "ref:NBS": "500105006"}},
        {"type": "relation", "id": 22, "members": [{"type": "way", "ref": 12, "role": "outer"}],
         "tags": {"type": "boundary", "boundary": "administrative", "admin_level": "8",
                  "name": "华新街街道", "ref:NBS": "500105001"}},
    ],
}
POLY = box(106.515, 29.565, 106.545, 29.585)


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_admin_boundaries_to_units_and_offline_second_run(tmp_path):
    body = json.dumps(_ANSWER, ensure_ascii=False).encode()
    with _Server(body=body) as srv, _pointed_at(srv.url):
        feats = fetch_admin_boundaries(POLY, cache_dir=tmp_path)
        assert len(srv.queries) == 1 and "admin_level" in srv.queries[0]
        url = srv.url
    units = units_from_osm_admin(feats, "EPSG:32648")
    assert sorted(units["unit_code"]) == ["500105001", "500105006"]
    areas = units.set_index("unit_code").area
    # each square is 0.01 deg lon x 0.01 deg lat at 29.575 N: about 969 m x 1109 m
    assert areas["500105006"] == pytest.approx(0.969e3 * 1.109e3, rel=0.01)
    assert set(units["unit_kind"]) == {"街道"}
    # offline (the server is gone): the cache answers the same request
    with _pointed_at(url):
        again = fetch_admin_boundaries(POLY, cache_dir=tmp_path)
    assert len(again) == len(feats)


def test_admin_boundaries_error_answer(tmp_path):
    with _Server(status=500, body=b'{"error": "boom"}') as srv, _pointed_at(srv.url), \
            pytest.raises(DataError, match="refused the boundary query"):
        fetch_admin_boundaries(POLY, cache_dir=tmp_path)
    assert not any(tmp_path.rglob("*.json"))
