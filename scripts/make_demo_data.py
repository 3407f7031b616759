"""Write the Jiangbei SYNTHETIC DEMO layers (thin wrapper over accessibility.demo.jiangbei).

Usage: python scripts/make_demo_data.py [config/areas/jiangbei.yaml] [--seed N] [--force]
"""

from __future__ import annotations

import argparse
import logging
import time

from accessibility.config import load_area
from accessibility.demo.jiangbei import DEFAULT_SEED, make_demo_data


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("config", nargs="?", default="config/areas/jiangbei.yaml")
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED)
    ap.add_argument("--force", action="store_true", help="rewrite files that exist")
    ap.add_argument("--out-dir", default=None, help="write here instead of the configured paths")
    ap.add_argument("--quiet", action="store_true", help="no progress bar")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    t0 = time.perf_counter()
    cfg = load_area(args.config, check_files=False)
    paths = make_demo_data(cfg, seed=args.seed, force=args.force, progress=not args.quiet,
                           out_dir=args.out_dir)
    for key, p in paths.items():
        print(f"{key:20s} {p}")
    print(f"done in {time.perf_counter() - t0:.1f} s (SYNTHETIC DEMO data)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
