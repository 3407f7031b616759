"""Write the planners' notebooks in notebooks/ (stored without outputs; the tests execute them).

Edit the cells here and run ``python scripts/make_notebooks.py``: the notebooks are generated so
that their text stays consistent. No analysis logic lives here; the cells call the package.
"""

from pathlib import Path

import nbformat as nbf

OUT = Path(__file__).resolve().parents[1] / "notebooks"
SETUP = '''import os
import warnings

import pandas as pd

from accessibility.config import load_area
from accessibility.pipeline import load_study_area

# The study area: the offline default is the Jiangbei synthetic demo. Point ACCESSIBILITY_AREA at
# another configuration file to use your own data.
AREA = os.environ.get("ACCESSIBILITY_AREA", "../config/areas/jiangbei.yaml")
cfg = load_area(AREA, check_files=False)
if cfg.is_synthetic:
    # writes only the synthetic demo layers that are missing (deterministic, offline)
    from accessibility.demo.jiangbei import make_demo_data

    make_demo_data(cfg, progress=False)
warnings.simplefilter("ignore")  # warnings are collected in study.warnings and shown below
study = load_study_area(cfg, progress=False)
pd.set_option("display.max_columns", 30)
print(cfg.data_status)'''

BANNER = ("> **Data status.** With the default configuration every layer except the district boundary, "
          "the official unit codes and the census total is a **SYNTHETIC DEMO** made by a deterministic "
          "generator. The numbers below show the method, not the real Jiangbei. 合成示例数据，非真实数据。")


def nb(cells):
    n = nbf.v4.new_notebook()
    n.metadata = {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
                  "language_info": {"name": "python"}}
    n.cells = [nbf.v4.new_markdown_cell(c[1]) if c[0] == "md" else nbf.v4.new_code_cell(c[1]) for c in cells]
    for i, cell in enumerate(n.cells):  # stable ids: regenerating gives no spurious diff
        cell.id = f"cell-{i:02d}"
    return n


def circle_nb(cid, title, intro, extra=()):
    return nb([
        ("md", f"# {title}\n\n{intro}\n\n{BANNER}"),
        ("code", SETUP),
        ("md", "## Walking times and coverage\n\nOne compiled multi-source shortest-path pass over the "
               "walking network gives every resident cell its time to the nearest facility "
               "(walk to the street + network time from home to the facility + walk from the street). "
               "A cell is covered when that time is within the threshold."),
        ("code", f'''from accessibility.pipeline import analyse

CIRCLE = "{cid}"
circle = cfg.circles[CIRCLE]
print(circle.label_zh, "/", circle.label_en, "-", circle.threshold_label, "-", circle.profile, "profile")
results, coverage = analyse(study, circles=[CIRCLE], progress=False)
table = coverage[["unit_name", "unit_name_en", "population", "covered_population", "coverage_share",
                  "target_share", "meets_target", "gap_population", "median_t", "p90_t", "coverage_share_flat"]]
table.style.format({{"coverage_share": "{{:.1%}}", "target_share": "{{:.0%}}", "coverage_share_flat": "{{:.1%}}",
                    "population": "{{:,.0f}}", "covered_population": "{{:,.0f}}", "gap_population": "{{:,.0f}}",
                    "median_t": "{{:.1f}}", "p90_t": "{{:.1f}}"}})'''),
        ("md", "## Which streets and towns miss the target, and by how many people?"),
        ("code", '''units_only = coverage[coverage["unit_code"] != cfg.district_code]
missing = units_only[~units_only["meets_target"]].sort_values("gap_population", ascending=False)
print(f"{(units_only['meets_target']).sum()} of {len(units_only)} units meet the target")
missing[["unit_name", "unit_name_en", "coverage_share", "gap_population"]]'''),
        ("md", "## Map of the district\n\nColour = share of the unit's residents covered. Hover a unit "
               "for its numbers; switch layers in the top-right control."),
        ("code", '''from accessibility import maps

# streets and stairs come from the network itself, so the map reads without background tiles
streets = maps.street_lines(study.network)
overview = maps.overview_map(study.units, coverage, study.facilities, cfg, circles=[CIRCLE], basemap="none",
                             streets=streets[streets["kind"] == "major"])
overview'''),
        ("md", "## The worst-served unit, cell by cell\n\nCells are coloured by walking time to the nearest "
               "facility; cells beyond the threshold are marked as uncovered. The shaded area is what the "
               "facilities serve along the street network (not a straight-line circle)."),
        ("code", '''from accessibility.pipeline import circle_node_times

worst = missing.iloc[0]["unit_code"] if len(missing) else units_only.iloc[0]["unit_code"]
node_times = circle_node_times(study, [CIRCLE])
unit = maps.unit_map(worst, study.units, study.cells, results, study.facilities, cfg, net=study.network,
                     node_times=node_times, circles=[CIRCLE], basemap="none", streets=streets)
unit'''),
        *extra,
        ("md", "## Warnings raised while loading\n\nAnything the loaders noticed (cells outside units, "
               "facilities far from a street, empty categories) is listed here."),
        ("code", '''for w in study.warnings:
    print("-", w)'''),
    ])


notebooks = {
    "01_data_overview.ipynb": nb([
        ("md", "# 01 · Data overview 数据概览\n\nWhat the study area contains: streets and towns, residents, "
               "facilities per circle, the walking network and the terrain, and which layers are real.\n\n" + BANNER),
        ("code", SETUP),
        ("code", '''from accessibility.pipeline import summary_text

print(summary_text(study))'''),
        ("md", "## Streets and towns 街道与镇"),
        ("code", '''units = study.units.drop(columns="geometry").copy()
units["area_km2"] = (study.units.area / 1e6).round(1)
pop = study.cells.groupby("unit_code")[["population", "pop_60plus"]].sum()
units = units.join(pop, on="unit_code")
units["share_60plus"] = units["pop_60plus"] / units["population"]
units.style.format({"population": "{:,.0f}", "pop_60plus": "{:,.0f}", "share_60plus": "{:.1%}"})'''),
        ("md", "Do the unit polygons cover the district without gaps and overlaps?"),
        ("code", "study.partition_report"),
        ("md", "## Facilities per category 设施分类\n\nEvery facility records why it was classified "
               "(its OSM tag or the Chinese name it contains)."),
        ("code", '''fac = study.facilities
fac.groupby(["category", "source"]).size().unstack(fill_value=0)'''),
        ("code", '''fac[["name", "category", "classified_by", "source"]].sample(10, random_state=1)'''),
        ("md", "## The walking network and the terrain 步行网络与地形"),
        ("code", '''net = study.network
print(f"{len(net.nodes):,} nodes, {len(net.edges):,} directed edges")
print(f"elevation on the network: {net.nodes.elev_m.min():.0f}-{net.nodes.elev_m.max():.0f} m")
net.edges.groupby("highway")["length_m"].sum().div(2000).round(1).sort_values(ascending=False).rename("km")'''),
        ("md", "Walking uphill is slower than downhill: the same street has two travel times."),
        ("code", '''e = net.edges[(net.edges.length_m > 50) & ~net.edges.is_steps]
e = e.assign(grade=e.rise_m / e.length_m)
e[["length_m", "grade", "time_s_adult", "time_s_adult_flat", "time_s_elderly"]].describe().round(2)'''),
        ("md", "## Layers and where they come from 数据来源"),
        ("code", "pd.DataFrame(study.provenance())"),
    ]),
    "02_culture_circle.ipynb": circle_nb(
        "culture_15min", "02 · 15-minute culture circle 15分钟公共文化服务圈",
        "The plan promises every street and town a public cultural facility (library branch, culture "
        "centre or station, community culture room, city study room, museum) within a 15-minute walk."),
    "03_fitness_circle.ipynb": circle_nb(
        "fitness_15min", "03 · 15-minute fitness circle 15分钟健身圈",
        "The plan promises a public sports place (fitness station, court, sports park, fitness trail, "
        "national-fitness centre) within a 15-minute walk for every resident. Commercial gyms do not count."),
    "04_eldercare_circle.ipynb": circle_nb(
        "eldercare_15min", "04 · Quarter-hour elderly-care circle 一刻钟居家养老服务圈",
        "The plan promises residents aged 60+ an elderly-care service (street/town centre, community "
        "station, day care, canteen, nursing home) within a quarter of an hour. Older people walk slower "
        "(0.9 m/s here instead of 1.2 m/s) and Chongqing's slopes and stairs slow them further.",
        extra=[
            ("md", "## What slopes and walking speed change\n\nThe same facilities and the same "
                   "threshold, with four walkers: an adult on flat ground, an adult on the real slopes, "
                   "an older person on the slopes, and a frail older person (0.8 m/s) who avoids stairs."),
            ("code", '''from accessibility.coverage import cell_results, coverage_by_unit
from accessibility.rules import circle_rule

# overrides keep the circle's id and its facilities: only the walker changes
variants = {
    "adult, slopes": circle_rule(cfg, CIRCLE, profile="adult"),
    "elderly, slopes": circle_rule(cfg, CIRCLE),
    "frail, slopes, no stairs": circle_rule(cfg, CIRCLE, profile="frail"),
}
tables = {}
for name, rule in variants.items():
    res_v = cell_results(study.cells, study.facilities, study.network, rule, progress=False)
    tables[name] = coverage_by_unit(study.cells, res_v, study.units, cfg, circles=[rule]).set_index("unit_name")
flat = tables["elderly, slopes"]["coverage_share_flat"].rename("elderly, flat ground")
per_unit = pd.concat([flat, *(t["coverage_share"].rename(name) for name, t in tables.items())], axis=1)
per_unit.loc[[cfg.district_name]].T.style.format("{:.1%}")'''),
            ("code", '''per_unit.drop(index=cfg.district_name).style.format("{:.1%}")'''),
        ]),
    "05_where_to_build.ipynb": nb([
        ("md", "# 05 · Where to build 新增设施选址\n\nExisting facilities stay. Candidate sites are street "
               "nodes about every 200 m (outside water and the protected forest park). For the elderly-care "
               "circle we ask two questions: *which k new sites cover the most uncovered older residents?* "
               "(MCLP, the coverage curve) and *how many new sites does each unit need to reach its target?* "
               "(LSCP).\n\n" + BANNER),
        ("code", SETUP),
        ("code", '''from accessibility import siting
from accessibility.pipeline import analyse, candidate_sites_for

CIRCLE = "eldercare_15min"
circle = cfg.circles[CIRCLE]
results, coverage = analyse(study, circles=[CIRCLE], progress=False)
candidates = candidate_sites_for(study)  # every 200 m, outside water and the forest park
print(f"{len(candidates):,} candidate sites")'''),
        ("code", '''from accessibility.rules import circle_rule

rule = circle_rule(cfg, CIRCLE)  # the run's rule: threshold, walking speed, snap limit
options = siting.SitingOptions.from_config(cfg, k_max=15, time_limit_s=10)
res = siting.site_circle(study.cells, results, study.network, candidates, rule, options=options,
                         units=study.units, facilities=study.facilities)
print(res["summary"])
res["curve"]'''),
        ("md", "Each row adds one site: the marginal and cumulative number of older residents newly "
               "covered. The curve flattens where further sites buy little — the argument for a budget."),
        ("code", '''res["lscp_by_unit"]'''),
        ("md", "## Proposed sites on the map"),
        ("code", '''from accessibility import maps
from accessibility.pipeline import circle_node_times

by_unit = res["lscp_by_unit"][res["lscp_by_unit"]["unit_code"] != cfg.district_code]
worst = by_unit.sort_values("sites_needed", ascending=False).iloc[0]["unit_code"]
m = maps.unit_map(worst, study.units, study.cells, results, study.facilities, cfg, net=study.network,
                  node_times=circle_node_times(study, [CIRCLE]), circles=[CIRCLE],
                  proposed_sites=res["sites"].assign(circle=CIRCLE), basemap="none",
                  streets=maps.street_lines(study.network))
m'''),
        ("md", "## Every street's own sweep, on several processes\n\nThe ranking above is for the whole "
               "district. A street office builds inside its own street: its own sweep (its uncovered "
               "residents, candidate sites inside it) for every unit runs as independent Dask tasks from the "
               "command line: `accessibility batch config/areas/jiangbei.yaml --per-unit-siting --k 5` "
               "writes `unit_siting/<code>/` and `unit_siting_summary.csv` into the run folder (the "
               "configuration key `siting.units` does the same for one run). For the unit above, by hand:"),
        ("code", '''inside = (study.cells["unit_code"] == worst).to_numpy()
own = siting.site_circle(study.cells[inside], results[inside], study.network,
                         candidates[candidates["unit_code"] == worst], rule,
                         options=siting.SitingOptions.from_config(cfg, k_max=5, time_limit_s=10),
                         units=study.units[study.units["unit_code"] == worst])
own["curve"][["rank", "site_id", "added_covered_population", "cumulative_coverage_share"]]'''),
    ]),
}
OUT.mkdir(exist_ok=True)
for name, n in notebooks.items():
    nbf.write(n, OUT / name)
    print("wrote", name)
