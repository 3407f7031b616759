#!/usr/bin/env python
"""Screenshot of a what-if map after a few real clicks (the README's picture).

    python scripts/whatif_screenshot.py data/processed/jiangbei_synthetic_demo/maps/whatif_eldercare_15min.html \
        docs/whatif_synthetic_demo.png

Clicks, with real mouse events in headless Chromium (selenium + chromium-driver), the ranking's
first three sites and one existing facility, then prints the page's district shares.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By


def main(page: Path, out: str) -> int:
    data = json.loads(page.read_text(encoding="utf-8").split('id="whatif-data">', 1)[1].split("</script>", 1)[0])
    opts = Options()
    opts.binary_location = "/usr/bin/chromium"
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
              "--disable-background-networking", "--disable-component-update", "--disable-sync",
              "--window-size=1400,900", f"--user-data-dir={tempfile.mkdtemp()}"):
        opts.add_argument(a)
    d = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
    try:
        d.get(page.as_uri())
        el = d.find_element(By.ID, "map")

        def click(kind, ident):
            p = d.execute_script("return whatifPoint(arguments[0], arguments[1]);", kind, ident)
            ActionChains(d).move_to_element_with_offset(el, int(p["x"] - el.size["width"] / 2),
                                                        int(p["y"] - el.size["height"] / 2)).click().perform()

        for sid in data["ranked"][:3]:
            click("candidate", sid)
        click("facility", data["fac"]["id"][len(data["fac"]["id"]) // 2])
        st = d.execute_script("return whatifState();")
        print("added", st["added"], "removed", st["removed"],
              f"district {st['district']['share_before']:.1%} -> {st['district']['share_after']:.1%}")
        ActionChains(d).move_to_element(d.find_element(By.ID, "district")).perform()  # no tooltip left open
        d.save_screenshot(out)
        errors = [e for e in d.get_log("browser") if e["level"] == "SEVERE"]
        print("JavaScript errors:", errors or "none")
    finally:
        d.quit()
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), sys.argv[2]))
