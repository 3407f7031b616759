"""Online inputs: OSM via Overpass (through osmnx) and plain file downloads, cached on disk.

``fetch_area`` downloads the walking network and facility POIs inside an area's boundary, keeps
osmnx's answer cache under ``data/raw/<area>/overpass_cache/`` (a second run is offline) and writes
the result as an ``.osm.pbf`` so the area can then be run offline through the same reader as a
Geofabrik extract. ``download`` fetches a file (a WorldPop or SRTM GeoTIFF) once, checks its
SHA-256 when given, and never keeps an error answer.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from urllib.parse import urlparse

from accessibility._errors import DataError
from accessibility._io import atomic_path

log = logging.getLogger(__name__)

__all__ = ["download", "fetch_area", "write_osm"]


def download(url: str, dest_dir: str | Path, *, sha256: str | None = None, timeout_s: float = 120.0,
             filename: str | None = None) -> Path:
    """Download ``url`` into ``dest_dir`` once (cached by file name), atomically.

    Parameters
    ----------
    url : str
    dest_dir : path
    sha256 : str, optional
        Expected checksum; a mismatch raises and keeps nothing.
    timeout_s : float
    filename : str, optional
        Name to save under (default: the last part of the URL path).

    Returns
    -------
    Path of the local file.
    """
    import requests

    dest_dir = Path(dest_dir)
    name = filename or Path(urlparse(url).path).name or hashlib.sha256(url.encode()).hexdigest()[:16]
    dest = dest_dir / name
    if dest.exists() and (sha256 is None or _sha256(dest) == sha256):
        log.info("cached: %s", dest)
        return dest
    try:
        resp = requests.get(url, timeout=timeout_s, stream=True)
    except requests.RequestException as exc:
        raise DataError(f"download of {url} failed ({exc}); check the connection or download it by hand "
                        f"into {dest_dir}") from exc
    with resp:
        if resp.status_code != 200:
            raise DataError(f"download of {url} answered HTTP {resp.status_code}; nothing was saved "
                            "(error answers are never cached): try again later or check the URL")
        h = hashlib.sha256()
        with atomic_path(dest) as tmp:
            with open(tmp, "wb") as f:
                for chunk in resp.iter_content(1 << 20):
                    h.update(chunk)
                    f.write(chunk)
            if sha256 is not None and h.hexdigest() != sha256:
                raise DataError(f"download of {url}: SHA-256 {h.hexdigest()} differs from the expected "
                                f"{sha256}; nothing was saved")
    return dest


def _sha256(path: Path) -> str:
    from accessibility._io import sha256_file

    return sha256_file(path)


def write_osm(osm, path: str | Path) -> Path:
    """Write an :class:`accessibility.osm.OSMData` as an OSM file (format from the suffix, e.g. .osm.pbf).

    Ways keep their node references and tags; POIs are written as tagged nodes (POIs that were
    ways get the negative id of their way, at their centroid).
    """
    import osmium

    path = Path(path)
    with atomic_path(path, suffix="".join(path.suffixes)) as tmp:
        writer = osmium.SimpleWriter(str(tmp))
        try:
            poi_nodes = osm.pois[osm.pois["osm_type"] == "node"]
            poi_tags = {int(i): t for i, t in zip(poi_nodes["osm_id"], poi_nodes["tags"], strict=True)}
            for nid, lon, lat in zip(osm.nodes.index, osm.nodes["lon"], osm.nodes["lat"], strict=True):
                tags = poi_tags.pop(int(nid), {})
                writer.add_node(osmium.osm.mutable.Node(id=int(nid), location=(float(lon), float(lat)),
                                                        tags={str(k): str(v) for k, v in tags.items()}))
            rest = osm.pois[(osm.pois["osm_type"] != "node") | osm.pois["osm_id"].isin(list(poi_tags))]
            for row in rest.itertuples():
                nid = int(row.osm_id) if row.osm_type == "node" else -int(row.osm_id)
                writer.add_node(osmium.osm.mutable.Node(
                    id=nid, location=(float(row.geometry.x), float(row.geometry.y)),
                    tags={str(k): str(v) for k, v in (row.tags or {}).items()}))
            for wid, refs, tags in zip(osm.ways["id"], osm.ways["refs"], osm.ways["tags"], strict=True):
                writer.add_way(osmium.osm.mutable.Way(id=int(wid), nodes=[int(r) for r in refs],
                                                      tags={str(k): str(v) for k, v in (tags or {}).items()}))
        finally:
            writer.close()
    return path


def fetch_area(config, *, overpass_url: str | None = None, urls: list[str] | None = None) -> dict[str, Path]:
    """Download an area's OSM network and POIs (and optional extra files); return what was written.

    Parameters
    ----------
    config : AreaConfig or path of the area YAML
    overpass_url : str, optional
        Overpass API base, e.g. ``https://overpass-api.de/api`` (a trailing ``/interpreter`` is
        accepted and dropped); default osmnx's ``settings.overpass_url``.
    urls : list of str, optional
        Files to download into ``data/raw/<area>/downloads/`` (cached by file name).

    Returns
    -------
    dict of str to Path
        ``"osm"``: the written ``<area>_overpass.osm.pbf``; then one entry per downloaded file name.
    """
    import osmnx as ox

    from accessibility import osm as osm_mod
    from accessibility import units as units_mod
    from accessibility.config import AreaConfig, load_area

    cfg = config if isinstance(config, AreaConfig) else load_area(config, check_files=False)
    raw = cfg.base_dir / "data" / "raw" / cfg.name
    boundary = units_mod.read_boundary(cfg.sources["boundary"], cfg.crs)
    poly = boundary.to_crs(4326).geometry.union_all()
    old = ox.settings.overpass_url
    if overpass_url:
        # osmnx wants the API base (".../api") and appends /interpreter and /status itself; the
        # endpoint as usually quoted (".../api/interpreter") would make it ask .../interpreter/status
        # (unparsable: a silent 60 s pause) and then POST to .../interpreter/interpreter (HTTP 404)
        ox.settings.overpass_url = overpass_url.rstrip("/").removesuffix("/interpreter")
    try:
        osm = osm_mod.fetch_overpass(poly, cache_dir=raw / "overpass_cache")
    finally:
        ox.settings.overpass_url = old
    written = {"osm": write_osm(osm, raw / "downloads" / f"{cfg.name}_overpass.osm.pbf")}
    for url in urls or []:
        p = download(url, raw / "downloads")
        written[p.name] = p
    return written
