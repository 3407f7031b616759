"""Write the planners' notebooks in notebooks/ (stored without outputs; the tests execute them).

Edit the cells here and run ``python scripts/make_notebooks.py``: the notebooks are generated so
that their text stays consistent. No analysis logic lives here; the cells call the public API
(``accessibility.open_area`` and the study area's methods), and take circle and profile ids from
the area's configuration, so they run on any area (``ACCESSIBILITY_AREA``).
"""

from pathlib import Path

import nbformat as nbf

OUT = Path(__file__).resolve().parents[1] / "notebooks"
SETUP = '''import os
import warnings

import pandas as pd

import accessibility

# The study area: the offline default is the Jiangbei synthetic demo. Point ACCESSIBILITY_AREA at
# another configuration file to use your own data. demo_data=True writes the synthetic demo layers
# the configuration names and that are missing (deterministic, offline).
AREA = os.environ.get("ACCESSIBILITY_AREA", "../config/areas/jiangbei.yaml")
# The data checks warn (accessibility.AccessibilityWarning) about homes far from any street,
# facilities on cut-off fragments ...: they are kept in area.warnings and listed at the end.
warnings.filterwarnings("ignore", category=accessibility.AccessibilityWarning)
area = accessibility.open_area(AREA, demo_data=True)
cfg = area.config
pd.set_option("display.max_columns", 30)
print(cfg.data_status)
area'''

BANNER = ("> **Data status.** With the default configuration every layer except the district boundary, "
          "the official unit codes and the census total is a **SYNTHETIC DEMO** made by a deterministic "
          "generator. The numbers below show the method, not the real Jiangbei. 合成示例数据，非真实数据。")

WARNINGS = [
    ("md", "## Warnings\n\nAnything the loaders and the analysis noticed (cells outside units, homes or "
           "facilities far from a street, empty categories) is listed here."),
    ("code", '''for w in area.warnings:
    print("-", w)'''),
]

#: the circle for older residents: the plan circle whose demand is the population aged 60+
ELDER = '''CIRCLE = next(c for c in area.plan_circles() if cfg.circles[c].population == "60plus")'''


def nb(cells):
    n = nbf.v4.new_notebook()
    n.metadata = {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
                  "language_info": {"name": "python"}}
    n.cells = [nbf.v4.new_markdown_cell(c[1]) if c[0] == "md" else nbf.v4.new_code_cell(c[1]) for c in cells]
    for i, cell in enumerate(n.cells):  # stable ids: regenerating gives no spurious diff
        cell.id = f"cell-{i:02d}"
    return n


def circle_nb(pick, title, intro, extra=()):
    """A circle's notebook; ``pick`` is the line choosing ``CIRCLE`` from the configuration."""
    return nb([
        ("md", f"# {title}\n\n{intro}\n\n{BANNER}"),
        ("code", SETUP),
        ("md", "## Walking times and coverage\n\nOne compiled multi-source shortest-path pass over the "
               "walking network gives every resident cell its time to the nearest facility "
               "(walk to the street + network time from home to the facility + walk from the street). "
               "A cell is covered when that time is within the threshold."),
        ("code", pick + '''
rule = area.rule(CIRCLE)  # threshold, walking profile, edge weights, snap limit: one object
print(rule.circle.label_zh, "/", rule.circle.label_en, "-", rule.threshold_label, "-", rule.profile, "profile")
coverage = area.coverage_by_unit(CIRCLE)
table = coverage[["unit_name", "unit_name_en", "population", "covered_population", "coverage_share",
                  "target_share", "meets_target", "gap_population", "median_t", "p90_t", "coverage_share_flat"]]
table.style.format({"coverage_share": "{:.1%}", "target_share": "{:.0%}", "coverage_share_flat": "{:.1%}",
                    "population": "{:,.0f}", "covered_population": "{:,.0f}", "gap_population": "{:,.0f}",
                    "median_t": "{:.1f}", "p90_t": "{:.1f}"})'''),
        ("md", "## Which streets and towns miss the target, and by how many people?"),
        ("code", '''units_only = coverage[coverage["unit_code"] != cfg.district_code]
missing = units_only[~units_only["meets_target"]].sort_values("gap_population", ascending=False)
print(f"{(units_only['meets_target']).sum()} of {len(units_only)} units meet the target")
missing[["unit_name", "unit_name_en", "coverage_share", "gap_population"]]'''),
        ("md", "## Map of the district\n\nColour = share of the unit's residents covered. Hover a unit "
               "for its numbers; switch layers in the top-right control. Streets and stairs are drawn "
               "from the network itself, so the map reads without background tiles."),
        ("code", "area.overview_map(CIRCLE)"),
        ("md", "## The worst-served unit, cell by cell\n\nCells are coloured by walking time to the nearest "
               "facility; cells beyond the threshold are marked as uncovered. The shaded area is what the "
               "facilities serve along the street network (not a straight-line circle)."),
        ("code", '''worst = missing.iloc[0]["unit_code"] if len(missing) else units_only.iloc[0]["unit_code"]
area.unit_map(worst, CIRCLE)'''),
        ("md", "## What if the walk were shorter?\n\nAn override keeps the circle and its facilities; only "
               "the threshold changes (two thirds of it here)."),
        ("code", '''if rule.mode == "time":
    shorter = area.coverage_by_unit(CIRCLE, threshold_min=rule.threshold / 60 * 2 / 3)
else:
    shorter = area.coverage_by_unit(CIRCLE, threshold_m=rule.threshold * 2 / 3)
short_label = f"{shorter['threshold'].iloc[0]:g} {shorter['t_unit'].iloc[0]}"
pd.DataFrame({rule.threshold_label: coverage.set_index("unit_name")["coverage_share"],
              short_label: shorter.set_index("unit_name")["coverage_share"]}).style.format("{:.1%}")'''),
        *extra,
        *WARNINGS,
    ])


notebooks = {
    "01_data_overview.ipynb": nb([
        ("md", "# 01 · Data overview 数据概览\n\nWhat the study area contains: streets and towns, residents, "
               "facilities per circle, the walking network and the terrain, and which layers are real.\n\n" + BANNER),
        ("code", SETUP),
        ("code", "print(area.summary())"),
        ("md", "## Streets and towns 街道与镇"),
        ("code", '''units = area.units.drop(columns="geometry").copy()
units["area_km2"] = (area.units.area / 1e6).round(1)
pop = area.cells.groupby("unit_code")[["population", "pop_60plus"]].sum()
units = units.join(pop, on="unit_code")
units["share_60plus"] = units["pop_60plus"] / units["population"]
units.style.format({"population": "{:,.0f}", "pop_60plus": "{:,.0f}", "share_60plus": "{:.1%}"})'''),
        ("md", "Do the unit polygons cover the district without gaps and overlaps?"),
        ("code", "area.partition_report"),
        ("md", "## Facilities per category 设施分类\n\nEvery facility records why it was classified "
               "(its OSM tag or the Chinese name it contains)."),
        ("code", '''fac = area.facilities
fac.groupby(["category", "source"]).size().unstack(fill_value=0)'''),
        ("code", '''fac[["name", "category", "classified_by", "source"]].sample(10, random_state=1)'''),
        ("md", "## The walking network and the terrain 步行网络与地形"),
        ("code", '''net = area.network
print(f"{len(net.nodes):,} nodes, {len(net.edges):,} directed edges")
print(f"elevation on the network: {net.nodes.elev_m.min():.0f}-{net.nodes.elev_m.max():.0f} m")
net.edges.groupby("highway")["length_m"].sum().div(2000).round(1).sort_values(ascending=False).rename("km")'''),
        ("md", "Walking uphill is slower than downhill: the same street has two travel times, one column "
               "per walking profile of the configuration (and its flat-terrain twin)."),
        ("code", '''e = net.edges[(net.edges.length_m > 50) & ~net.edges.is_steps]
e = e.assign(grade=e.rise_m / e.length_m)
times = [f"time_s_{p}{flat}" for p in cfg.profiles for flat in ("", "_flat")]
e[["length_m", "grade", *times]].describe().round(2)'''),
        ("md", "## Layers and where they come from 数据来源"),
        ("code", "pd.DataFrame(area.provenance())"),
        *WARNINGS,
    ]),
    "02_culture_circle.ipynb": circle_nb(
        '''CIRCLE = area.plan_circles()[0]  # the first circle the plan promises (culture, in Jiangbei)''',
        "02 · 15-minute culture circle 15分钟公共文化服务圈",
        "The plan promises every street and town a public cultural facility (library branch, culture "
        "centre or station, community culture room, city study room, museum) within a 15-minute walk."),
    "03_fitness_circle.ipynb": circle_nb(
        '''CIRCLE = area.plan_circles()[1]  # the second circle the plan promises (fitness, in Jiangbei)''',
        "03 · 15-minute fitness circle 15分钟健身圈",
        "The plan promises a public sports place (fitness station, court, sports park, fitness trail, "
        "national-fitness centre) within a 15-minute walk for every resident. Commercial gyms do not count."),
    "04_eldercare_circle.ipynb": circle_nb(
        ELDER,
        "04 · Quarter-hour elderly-care circle 一刻钟居家养老服务圈",
        "The plan promises residents aged 60+ an elderly-care service (street/town centre, community "
        "station, day care, canteen, nursing home) within a quarter of an hour. Older people walk slower "
        "(0.9 m/s here instead of 1.2 m/s) and Chongqing's slopes and stairs slow them further.",
        extra=[
            ("md", "## What slopes and walking speed change\n\nThe same facilities and the same "
                   "threshold, with every walking profile of the configuration (adult 1.2 m/s, older "
                   "person 0.9 m/s, frail older person 0.8 m/s who avoids stairs), on the real slopes, "
                   "and the circle's own walker on flat ground. An override (`profile=...`, "
                   "`terrain=\"flat\"`) keeps the circle's facilities."),
            ("code", '''shares = {f"{p}, slopes": area.coverage_by_unit(CIRCLE, profile=p).set_index("unit_name")["coverage_share"]
          for p in cfg.profiles}
shares[f"{rule.profile}, flat ground"] = area.coverage_by_unit(CIRCLE, terrain="flat").set_index(
    "unit_name")["coverage_share"]
per_unit = pd.DataFrame(shares)
compare = per_unit.loc[cfg.district_name].rename("share of residents 60+ covered")
compare.map("{:.1%}".format)'''),
            ("code", '''per_unit.drop(index=cfg.district_name).style.format("{:.1%}")'''),
        ]),
    "05_where_to_build.ipynb": nb([
        ("md", "# 05 · Where to build 新增设施选址\n\nExisting facilities stay. Candidate sites are street "
               "nodes about every 200 m (outside water and the protected forest park). For the elderly-care "
               "circle we ask two questions: *which k new sites cover the most uncovered older residents?* "
               "(MCLP, the coverage curve) and *how many new sites does each unit need to reach its target?* "
               "(LSCP).\n\n" + BANNER),
        ("code", SETUP),
        ("code", ELDER + '''
print(f"{len(area.candidates()):,} candidate sites")  # every 200 m, outside water and the forest park
# the exact models stop on work limits (branch-and-bound nodes), never on the clock: the same answer
# as `accessibility run` on any machine; each result says whether it is proven optimal
res = area.site(CIRCLE, k=15)
print(res["summary"]["exact_proof_en"], "|", res["summary"]["sites_needed_proof_en"])
res["curve"]'''),
        ("md", "Each row adds one site: the marginal and cumulative number of older residents newly "
               "covered. The curve flattens where further sites buy little — the argument for a budget."),
        ("code", '''res["lscp_by_unit"][["unit_code", "unit_name", "sites_needed", "sites_needed_bound", "gap",
                     "proof_en"]]'''),
        ("md", "## Proposed sites on the map"),
        ("code", '''by_unit = res["lscp_by_unit"][res["lscp_by_unit"]["unit_code"] != cfg.district_code]
worst = by_unit.sort_values("sites_needed", ascending=False).iloc[0]["unit_code"]
area.unit_map(worst, CIRCLE, sites=res["sites"])'''),
        ("md", "## Before and after\n\nThe first three proposed sites as if they were built: coverage per unit "
               "before and after (the same call evaluates the plan's own projects: `area.before_after()`)."),
        ("code", '''first3 = res["sites"].head(3).assign(circles=CIRCLE)
area.before_after(first3, CIRCLE)[["unit_name", "share_before", "share_after", "gain"]]'''),
        ("md", "## Every street's own sweep, on several processes\n\nThe ranking above is for the whole "
               "district. A street office builds inside its own street: its own sweep (its uncovered "
               "residents, candidate sites inside it) for every unit runs as independent Dask tasks from the "
               "command line: `accessibility batch config/areas/jiangbei.yaml --per-unit-siting --k 5` "
               "writes `unit_siting/<code>/` and `unit_siting_summary.csv` into the run folder (the "
               "configuration key `siting.units` does the same for one run). For the unit above:"),
        ("code", '''own = area.site(CIRCLE, k=5, units=[worst])
own["curve"][["rank", "site_id", "added_covered_population", "cumulative_coverage_share"]]'''),
        *WARNINGS,
    ]),
    "06_try_a_site.ipynb": nb([
        ("md", "# 06 · Try a site 试一个选址\n\nA street office has a few places in mind for a new "
               "elderly-care station. Before anything is drawn up, it wants to know: *how many more older "
               "residents would then live within a quarter-hour's walk, street by street, and does the street "
               "then meet the plan's target?* Each try below takes a fraction of a second once the area is "
               "loaded, and uses exactly the rule of the full run.\n\n" + BANNER),
        ("code", SETUP),
        ("md", "## Where are older residents left out today?\n\nThe squares (1 km) with the most older "
               "residents beyond a quarter-hour's walk of any elderly-care facility are natural places to try."),
        ("code", '''from accessibility.coverage import worst_places

CIRCLE = next(c.id for c in cfg.circles.values() if c.plan and c.population == "60plus")
results = area.coverage(CIRCLE)
places = worst_places(area.cells, results, area.units, cfg.circles[CIRCLE], n=3)
places'''),
        ("md", "## Try them\n\nA site is given by its longitude and latitude (WGS-84 here). The answer lists, "
               "per street/town and for the district, the older residents covered before and after, the "
               "coverage share, the gap to the target in people and whether the target is met."),
        ("code", '''tried = area.whatif(CIRCLE, add=list(zip(places["lon"], places["lat"], strict=True)))
tried'''),
        ("code", '''tried.sites[["site", "snap_m", "on_main_network", f"gain_alone_{CIRCLE}"]]'''),
        ("code", '''cols = ["unit_name", "population", "covered_population_before", "covered_population_after", "gain",
        "coverage_share_before", "coverage_share_after", "gap_population_after", "meets_target_after"]
tried.table[cols].style.format({"population": "{:,.0f}", "covered_population_before": "{:,.0f}",
                                "covered_population_after": "{:,.0f}", "gain": "{:+,.0f}",
                                "coverage_share_before": "{:.1%}", "coverage_share_after": "{:.1%}",
                                "gap_population_after": "{:,.0f}"})'''),
        ("md", "`tried.cells` lists the residential cells that change (with their position), e.g. to map them."),
        ("code", '''tried.cells.groupby("unit_code")["demand"].sum().rename("older residents newly covered")'''),
        ("md", "## A point copied from Amap, and a place that may not work\n\nCoordinates read off Amap "
               "or Tencent maps are GCJ-02 (Baidu: BD-09): say so with `coords=`. A site whose nearest "
               "street belongs to a small piece of network cut off from the rest serves almost nobody: the "
               "answer says so (a warning), names the piece's size and offers the nearest point on the "
               "main network."),
        ("code", '''from accessibility.coords import wgs84_to_gcj02

amap_lon, amap_lat = (float(v) for v in wgs84_to_gcj02(places["lon"].iloc[0], places["lat"].iloc[0]))
same = area.whatif(CIRCLE, add=[(amap_lon, amap_lat)], coords="gcj02")
print(f"from Amap coordinates: {same.district()['gain'].iloc[0]:+,.0f} older residents "
      f"(as WGS-84 above: {tried.sites[f'gain_alone_{CIRCLE}'].iloc[0]:+,.0f})")

# a node on the smallest piece of street network cut off from the rest, 5 m east of it
comp = area.network.nodes["component"]
piece = area.network.nodes[comp == comp.value_counts().idxmin()].iloc[0]
from pyproj import Transformer

lon, lat = Transformer.from_crs(cfg.crs, 4326, always_xy=True).transform(piece["x"] + 5, piece["y"])
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always", accessibility.AccessibilityWarning)
    island = area.whatif(CIRCLE, add=[(lon, lat)])
for w in caught:
    print("warning:", w.message)
island.sites[["site", "snap_m", "on_main_network", "fragment_nodes", "main_snap_m", "main_lon", "main_lat"]]'''),
        ("md", "## Closing a facility\n\nThe same question the other way round: which streets lose "
               "coverage if a facility closes?"),
        ("code", '''mine = area.facilities[area.rule(CIRCLE).facility_mask(area.facilities)]
if len(mine) == 0:
    print(f"{CIRCLE}: this area has no facility of the circle to close")
else:
    station = mine.iloc[0]
    closed = area.whatif(CIRCLE, remove=[station["fac_id"]])
    print(station["name"], closed)
    display(closed.table.loc[closed.table["gain"] != 0,
                             ["unit_name", "covered_population_before", "covered_population_after"]])'''),
        ("md", "## The what-if map\n\n`accessibility run` writes `maps/whatif_<circle>.html` for every plan "
               "circle: click the map to add a site at the nearest candidate, click a facility or an added "
               "site to remove it; the table updates at once, and the chosen sites export as a "
               "planned-projects file. Here the same page, made from this notebook:"),
        ("code", '''from pathlib import Path

from IPython.display import IFrame

page = area.whatif_map(CIRCLE, Path(cfg.output_root) / "notebooks" / f"whatif_{CIRCLE}.html")
print(f"{page} ({page.stat().st_size / 1e6:.1f} MB)")
IFrame(os.path.relpath(page), width="100%", height=650)'''),
        *WARNINGS,
    ]),
}
OUT.mkdir(exist_ok=True)
for name, n in notebooks.items():
    nbf.write(n, OUT / name)
    print("wrote", name)
