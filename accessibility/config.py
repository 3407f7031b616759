"""Study-area configuration: one YAML file per area, validated once, at load time.

Every problem found in a file is gathered and raised together as one :class:`ConfigError`
that names the file, the key, the value and the fix. Unknown keys are refused (with a
"did you mean" hint), so a typo never silently falls back to a default.

The schema is documented in DESIGN.md ("Study-area configuration") and by
``config/areas/jiangbei.yaml``, the default area.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from accessibility._errors import ConfigError

__all__ = [
    "AreaConfig",
    "Category",
    "Circle",
    "Profile",
    "Source",
    "load_area",
    "load_categories",
]

#: ``real``: observed/official data; ``synthetic``: made-up demo data (outputs say SYNTHETIC DEMO);
#: ``estimate``: derived by a proxy (e.g. population from street density by ``accessibility init``;
#: outputs say ESTIMATE).
STATUSES = ("real", "synthetic", "estimate")
#: Unit code systems: ``any`` (any unique string) or ``cn_official`` (China's 9-digit 统计用区划代码).
UNIT_CODE_SYSTEMS = ("any", "cn_official")
COORD_SYSTEMS = ("wgs84", "gcj02", "bd09")
TERRAIN_MODELS = ("tobler", "naismith", "flat")
MODES = ("time", "distance")
WEIGHTS = ("all", "60plus")


@dataclass(frozen=True)
class Source:
    """One input layer.

    ``kind`` is the loader to use (``osm_file``, ``overpass``, ``inventory``, ``vector``,
    ``raster``, ``table``); ``status`` says whether the layer is real or a synthetic demo.
    """

    name: str
    kind: str
    path: Path | None
    status: str
    provenance: str = ""
    coords: str = "wgs84"
    columns: dict[str, str] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    key: str = ""  # where it stands in the file, e.g. "sources.facilities[1]"

    @property
    def synthetic(self) -> bool:
        return self.status == "synthetic"

    @property
    def estimate(self) -> bool:
        return self.status == "estimate"


@dataclass(frozen=True)
class Profile:
    """A walking-speed profile."""

    name: str
    flat_speed_mps: float
    allow_steps: bool = True
    label: str = ""


@dataclass(frozen=True)
class Circle:
    """One service circle: which facilities, how far, for whom, and the target."""

    id: str
    label_zh: str
    label_en: str
    categories: tuple[str, ...]
    mode: str  # "time" or "distance"
    threshold: float  # seconds in time mode, metres in distance mode
    profile: str
    population: str  # "all" or "60plus"
    target_share: float
    plan: bool = True
    min_reachable: int = 1

    @property
    def weight_column(self) -> str:
        """Column of the cells table used as demand."""
        return "pop_60plus" if self.population == "60plus" else "population"

    @property
    def threshold_label(self) -> str:
        if self.mode == "time":
            return f"{self.threshold / 60:g} min"
        return f"{self.threshold:g} m"


@dataclass(frozen=True)
class Category:
    """A facility category and the rules that classify OSM features and inventory rows into it."""

    id: str
    label_zh: str
    label_en: str
    osm: tuple[str, ...] = ()
    names: tuple[str, ...] = ()
    exclude_names: tuple[str, ...] = ()
    #: Tag rules (same syntax as ``osm``) that rule the category out, e.g. commercial gyms
    #: (``leisure=fitness_centre&brand=*``, ``access=customers``).
    exclude_osm: tuple[str, ...] = ()


@dataclass(frozen=True)
class Terrain:
    model: str = "tobler"
    smoothing_m: float = 60.0
    max_abs_grade: float = 1.0
    naismith_s_per_m_climb: float = 6.0
    steps_climb_s_per_m: float = 6.0
    steps_descent_s_per_m: float = 2.0
    steps_reference_speed_mps: float = 1.2  # the stair costs above are for this flat speed


@dataclass(frozen=True)
class Siting:
    candidate_spacing_m: float = 200.0
    max_new_sites: int = 30
    exclude: tuple[Path, ...] = ()
    parcels: Path | None = None
    planned_projects: Path | None = None
    #: Branch-and-bound nodes per exact model (work, not time: the same answer on any machine).
    node_limit: int = 10_000
    #: Safety net only: reaching it is logged as an error (the answer is then not reproducible).
    time_limit_s: float = 600.0
    #: Site only for these units (their uncovered demand, their candidate sites); empty = all.
    units: tuple[str, ...] = ()


@dataclass(frozen=True)
class AreaConfig:
    """A validated study-area configuration."""

    name: str
    title_zh: str
    title_en: str
    crs: str
    config_path: Path
    base_dir: Path
    output_root: Path
    sources: dict[str, Source]
    facility_sources: tuple[Source, ...]
    profiles: dict[str, Profile]
    terrain: Terrain
    circles: dict[str, Circle]
    categories: dict[str, Category]
    siting: Siting
    max_snap_m: float = 500.0
    scenario: dict = field(default_factory=dict)
    district_code: str = "DISTRICT"
    #: Name of the whole-area row (default: the area's ``title_zh``; ``district_name_en``: ``title_en``).
    district_name: str = ""
    district_name_en: str = ""
    #: ``any`` (unit codes are any unique strings) or ``cn_official`` (9-digit official codes checked,
    #: street/town kind expected).
    unit_codes: str = "any"
    #: ``zh``, ``en`` or ``bilingual`` (Chinese first): labels of maps, report, workbook, atlas, console.
    language: str = "bilingual"

    @property
    def synthetic_layers(self) -> list[str]:
        """Names of the layers that are synthetic demo data."""
        names = [s.name for s in self.sources.values() if s.synthetic]
        names += [s.name for s in self.facility_sources if s.synthetic]
        return sorted(set(names))

    @property
    def is_synthetic(self) -> bool:
        return bool(self.synthetic_layers)

    @property
    def estimated_layers(self) -> list[str]:
        """Names of the layers estimated by a proxy (``status: estimate``)."""
        names = [s.name for s in self.sources.values() if s.estimate]
        names += [s.name for s in self.facility_sources if s.estimate]
        return sorted(set(names))

    @property
    def run_id(self) -> str:
        """Name of the output folder: says ``synthetic_demo`` whenever any layer is synthetic."""
        return f"{self.name}_synthetic_demo" if self.is_synthetic else self.name

    @property
    def output_dir(self) -> Path:
        return self.output_root / self.run_id

    @property
    def data_status(self) -> str:
        """One-line statement for tables, titles and banners."""
        parts = []
        if self.is_synthetic:
            parts.append("SYNTHETIC DEMO (layers: " + ", ".join(self.synthetic_layers) + ") - not real data")
        if self.estimated_layers:
            parts.append("ESTIMATE (layers: " + ", ".join(self.estimated_layers)
                         + ") - derived by a proxy, not observed; replace with real data")
        return "; ".join(parts) if parts else "real data"

    def circles_for(self, category: str) -> list[str]:
        """Circle ids that count facilities of ``category``."""
        return [c.id for c in self.circles.values() if category in c.categories]

    def fingerprint(self) -> str:
        """Stable hash of the whole configuration (for cache keys)."""
        raw = Path(self.config_path).read_bytes() + json.dumps(self.scenario, sort_keys=True).encode()
        cats = json.dumps({k: v.__dict__ for k, v in self.categories.items()}, sort_keys=True, default=str)
        return hashlib.sha256(raw + cats.encode()).hexdigest()[:16]


# ---------------------------------------------------------------------------------------------
# validation helpers


class _Checker:
    """Collects problems of one file; raises them all at once."""

    def __init__(self, path: Path):
        self.path = path
        self.problems: list[str] = []

    def add(self, msg: str) -> None:
        self.problems.append(msg)

    def keys(self, where: str, data: Any, allowed: dict[str, type | tuple], required: tuple = ()):
        if not isinstance(data, dict):
            self.add(f"'{where}' must be a mapping, got {type(data).__name__} ({data!r})")
            return {}
        for k in data:
            if k not in allowed:
                hint = difflib.get_close_matches(str(k), list(allowed), n=1)
                fix = f"did you mean '{hint[0]}'?" if hint else f"allowed keys: {', '.join(allowed)}"
                self.add(f"unknown key '{_join(where, k)}': {fix}")
        for k in required:
            if k not in data or data[k] is None:
                self.add(f"missing key '{_join(where, k)}': add it (see config/areas/jiangbei.yaml)")
        for k, typ in allowed.items():
            if k in data and data[k] is not None and not _isinstance(data[k], typ):
                want = typ.__name__ if isinstance(typ, type) else " or ".join(t.__name__ for t in typ)
                self.add(
                    f"key '{_join(where, k)}' must be {want}, got {type(data[k]).__name__} "
                    f"({data[k]!r})"
                )
        return data

    def choice(self, where: str, value: Any, choices: tuple) -> None:
        if value not in choices:
            self.add(f"key '{where}' is {value!r}: use one of {', '.join(map(repr, choices))}")

    def positive(self, where: str, value: Any) -> None:
        if _isinstance(value, (int, float)) and not value > 0:
            self.add(f"key '{where}' must be > 0, got {value!r}")

    def raise_if_any(self) -> None:
        if self.problems:
            lines = [f"{self.path}: {len(self.problems)} configuration problem(s):"]
            lines += [f"  - {p}" for p in self.problems]
            raise ConfigError("\n".join(lines))


def _join(where: str, key: Any) -> str:
    return f"{where}.{key}" if where else str(key)


def _isinstance(value: Any, typ: type | tuple) -> bool:
    typs = typ if isinstance(typ, tuple) else (typ,)
    if isinstance(value, bool) and bool not in typs:
        return False
    if float in typs and isinstance(value, int) and not isinstance(value, bool):
        return True
    return isinstance(value, typs)


def _num(value: Any, default: float) -> float:
    """``value`` as float when it is a number (a wrong type is reported by the checker), else ``default``."""
    return float(value) if _isinstance(value, float) else float(default)


def _read_yaml(path: Path) -> Any:
    if not path.exists():
        raise ConfigError(f"{path}: configuration file not found (check the path; areas live in config/areas/)")
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc


# ---------------------------------------------------------------------------------------------
# categories


_CATEGORY_KEYS = {"label_zh": str, "label_en": str, "osm": list, "names": list, "exclude_names": list,
                  "exclude_osm": list}


def load_categories(path: str | Path) -> dict[str, Category]:
    """Load a facility-category file (see ``config/categories.yaml``).

    Order matters: classification tries name rules of every category first, in file order,
    then tag rules in file order (see :func:`accessibility.facilities.classify`).
    """
    path = Path(path)
    data = _read_yaml(path)
    chk = _Checker(path)
    top = chk.keys("", data, {"categories": dict}, required=("categories",))
    out: dict[str, Category] = {}
    for cid, spec in (top.get("categories") or {}).items():
        where = f"categories.{cid}"
        spec = chk.keys(where, spec, _CATEGORY_KEYS, required=("label_zh", "label_en"))
        for key in ("osm", "exclude_osm"):
            for rule in spec.get(key, []) or []:
                if not isinstance(rule, str) or any("=" not in part for part in rule.split("&")):
                    chk.add(f"key '{where}.{key}' has rule {rule!r}: write 'key=value' or 'key=*', "
                            "join several with '&'")
        if not spec.get("osm") and not spec.get("names"):
            chk.add(f"category '{cid}' has neither 'osm' nor 'names' rules: nothing can be classified into it")
        out[cid] = Category(
            id=cid,
            label_zh=str(spec.get("label_zh", cid)),
            label_en=str(spec.get("label_en", cid)),
            osm=tuple(spec.get("osm") or ()),
            names=tuple(spec.get("names") or ()),
            exclude_names=tuple(spec.get("exclude_names") or ()),
            exclude_osm=tuple(spec.get("exclude_osm") or ()),
        )
    chk.raise_if_any()
    return out


# ---------------------------------------------------------------------------------------------
# area

_TOP_KEYS = {
    "name": str,
    "title_zh": str,
    "title_en": str,
    "crs": str,
    "base_dir": str,
    "output_dir": str,
    "categories": str,
    "sources": dict,
    "profiles": dict,
    "terrain": dict,
    "circles": dict,
    "siting": dict,
    "max_snap_m": float,
    "district_code": str,
    "district_name": str,
    "district_name_en": str,
    "language": str,
    "unit_codes": str,
}
#: Label languages of maps, report, workbook, atlas and console (see accessibility.labels).
LANGUAGES = ("zh", "en", "bilingual")
_SOURCE_KEYS = {
    "kind": str,
    "path": str,
    "status": str,
    "provenance": str,
    "coords": str,
    "columns": dict,
    "options": dict,
}
_SOURCE_KINDS = {
    "boundary": ("vector",),
    "units": ("vector", "overpass"),
    "unit_table": ("table",),
    "network": ("osm_file", "overpass"),
    "population": ("raster", "table"),
    "census": ("table",),
    "dem": ("raster",),
}
_FAC_KINDS = ("osm_file", "overpass", "inventory")
#: Keys of ``columns:`` (file field of each quantity) a source's reader reads, by source name
#: ("facilities" for every facility source; only inventories read columns).
_SOURCE_COLUMNS = {
    "boundary": (),
    "units": ("code", "name", "name_en", "kind"),
    "unit_table": ("code", "name"),
    "network": (),
    "population": ("code", "population", "share_60plus"),
    "census": ("code", "population", "share_60plus"),
    "dem": (),
    "facilities": ("name", "category", "lon", "lat", "capacity", "id"),
}
#: Keys of ``options:`` a source's reader reads, with their type; sizes must be > 0.
_SOURCE_OPTIONS = {
    "boundary": {"layer": (str, int)},
    "units": {"layer": (str, int), "admin_level": (str, int)},
    "unit_table": {},
    "network": {},
    "population": {"band": int, "grid_m": float, "share_60plus": (float, str)},
    "census": {"grid_m": float, "share_60plus": (float, str)},
    "dem": {"vertical_units": str},
    "facilities": {"sheet": (str, int)},
}
_POSITIVE_OPTIONS = ("band", "grid_m")
_PROFILE_KEYS = {"flat_speed_mps": float, "allow_steps": bool, "label": str}
_TERRAIN_KEYS = {
    "model": str,
    "smoothing_m": float,
    "max_abs_grade": float,
    "naismith_s_per_m_climb": float,
    "steps_climb_s_per_m": float,
    "steps_descent_s_per_m": float,
    "steps_reference_speed_mps": float,
}
_CIRCLE_KEYS = {
    "label_zh": str,
    "label_en": str,
    "categories": list,
    "mode": str,
    "threshold_min": float,
    "threshold_m": float,
    "profile": str,
    "population": str,
    "target_share": float,
    "plan": bool,
    "min_reachable": int,
}
_SITING_KEYS = {
    "candidate_spacing_m": float,
    "max_new_sites": int,
    "exclude": list,
    "parcels": str,
    "planned_projects": str,
    "node_limit": int,
    "time_limit_s": float,
    "units": list,
}


def _mapping(chk, where: str, value, example: str) -> dict:
    """A config value that must be a mapping: reported (not a traceback) when it is not."""
    if value is None or value == "":
        return {}
    if not isinstance(value, dict):
        chk.add(f"key '{where}': expected {example}, got {type(value).__name__} {value!r}")
        return {}
    return dict(value)


def _check_crs(chk: _Checker, crs) -> Any:
    """The CRS must be projected (metres): distances and buffers are computed in it."""
    try:
        from pyproj import CRS

        c = CRS.from_user_input(crs)
        if not c.is_projected:
            chk.add(f"key 'crs' is {crs!r}, a geographic CRS: use a projected one in metres "
                    "(the UTM zone of the area, e.g. 'EPSG:32648' for UTM 48N; `accessibility init` "
                    "picks it from the boundary)")
    except Exception as exc:  # pyproj raises CRSError
        chk.add(f"key 'crs' is {crs!r}, not a CRS pyproj knows ({exc}): use e.g. 'EPSG:32648'")
    return crs


def _categories(chk: _Checker, cat_path: Path | None) -> dict[str, Category]:
    if cat_path is None:
        return {}
    if not cat_path.exists():
        chk.add(f"key 'categories' points to {cat_path}, which does not exist")
        return {}
    return load_categories(cat_path)


def _sources(chk: _Checker, top: dict, resolve) -> tuple[dict[str, Source], list[Source]]:
    sources: dict[str, Source] = {}
    fac_sources: list[Source] = []
    raw_sources = chk.keys("sources", top.get("sources") or {}, {**dict.fromkeys(_SOURCE_KINDS, dict),
                                                                 "facilities": list})
    for sname, spec in raw_sources.items():
        if sname == "facilities" or sname not in _SOURCE_KINDS:  # unknown names already reported
            continue
        src = _source(chk, f"sources.{sname}", sname, spec, resolve, _SOURCE_KINDS[sname])
        if src is not None:
            sources[sname] = src
    for i, spec in enumerate(raw_sources.get("facilities") or []):
        label = Path(spec["path"]).name if isinstance(spec, dict) and spec.get("path") else "overpass"
        src = _source(chk, f"sources.facilities[{i}]", f"facilities:{label}", spec, resolve, _FAC_KINDS)
        if src is not None:
            fac_sources.append(src)
    for req in ("boundary", "network"):
        if req not in raw_sources:
            chk.add(f"missing key 'sources.{req}': every study area needs a {req} layer")
    if not raw_sources.get("facilities"):
        chk.add("missing key 'sources.facilities': list at least one facility source (OSM or an inventory)")
    return sources, fac_sources


def _profiles(chk: _Checker, top: dict) -> dict[str, Profile]:
    profiles: dict[str, Profile] = {}
    raw_profiles = top.get("profiles") or {
        "adult": {"flat_speed_mps": 1.2},
        "elderly": {"flat_speed_mps": 0.9},
        "frail": {"flat_speed_mps": 0.8, "allow_steps": False},
    }
    for pname, spec in raw_profiles.items():
        spec = chk.keys(f"profiles.{pname}", spec, _PROFILE_KEYS, required=("flat_speed_mps",))
        chk.positive(f"profiles.{pname}.flat_speed_mps", spec.get("flat_speed_mps"))
        if _isinstance(spec.get("flat_speed_mps"), float) and spec["flat_speed_mps"] > 3:
            chk.add(f"key 'profiles.{pname}.flat_speed_mps' is {spec['flat_speed_mps']}: that is "
                    "faster than running; walking speeds are 0.7-1.5 m/s (is it in km/h?)")
        profiles[pname] = Profile(
            name=pname,
            flat_speed_mps=_num(spec.get("flat_speed_mps"), 1.2),
            allow_steps=bool(spec.get("allow_steps", True)),
            label=str(spec.get("label", pname)),
        )
    return profiles


def _terrain(chk: _Checker, top: dict) -> Terrain:
    tspec = chk.keys("terrain", top.get("terrain") or {}, _TERRAIN_KEYS)
    if "model" in tspec:
        chk.choice("terrain.model", tspec["model"], TERRAIN_MODELS)
    for k in ("smoothing_m", "max_abs_grade", "naismith_s_per_m_climb", "steps_reference_speed_mps"):
        if k in tspec:
            chk.positive(f"terrain.{k}", tspec[k])
    for k in ("steps_climb_s_per_m", "steps_descent_s_per_m"):
        if _isinstance(tspec.get(k), float) and tspec[k] < 0:
            chk.add(f"key 'terrain.{k}' must be >= 0, got {tspec[k]!r}")
    known_terrain = {f.name for f in dataclasses.fields(Terrain)}  # unknown keys already reported
    terrain = Terrain(**{k: (_num(v, getattr(Terrain, k)) if k != "model" else v) for k, v in tspec.items()
                         if k in known_terrain})
    return terrain


def _circles(chk: _Checker, top: dict, profiles: dict, categories: dict) -> dict[str, Circle]:
    circles: dict[str, Circle] = {}
    for cid, spec in (top.get("circles") or {}).items():
        where = f"circles.{cid}"
        spec = chk.keys(where, spec, _CIRCLE_KEYS, required=("categories", "mode", "target_share"))
        mode = spec.get("mode", "time")
        chk.choice(f"{where}.mode", mode, MODES)
        if mode == "time":
            if "threshold_min" not in spec:
                chk.add(f"missing key '{where}.threshold_min': time-mode circles need minutes")
            if "threshold_m" in spec:
                chk.add(f"key '{where}.threshold_m' given in time mode: use threshold_min, or mode: distance")
            threshold = _num(spec.get("threshold_min"), 15) * 60.0
            if threshold > 120 * 60.0:  # a walking circle of more than two hours: seconds typed as minutes
                chk.add(f"key '{where}.threshold_min' is {spec.get('threshold_min')!r} minutes "
                        f"({threshold / 3600:g} h): the value is in minutes (a 15-minute circle is 15, "
                        "not 900)")
        else:
            if "threshold_m" not in spec:
                chk.add(f"missing key '{where}.threshold_m': distance-mode circles need metres")
            threshold = _num(spec.get("threshold_m"), 1000)
        chk.positive(f"{where}.threshold", threshold)
        prof = spec.get("profile", "adult")
        if prof not in profiles:
            chk.add(f"key '{where}.profile' is {prof!r}: define it under 'profiles' or use one of "
                    f"{', '.join(profiles)}")
        pop = spec.get("population", "all")
        chk.choice(f"{where}.population", pop, WEIGHTS)
        if "min_reachable" in spec:
            chk.positive(f"{where}.min_reachable", spec["min_reachable"])
        target = spec.get("target_share", 1.0)
        if _isinstance(target, float) and not 0 < target <= 1:
            chk.add(f"key '{where}.target_share' is {target!r}: a share between 0 and 1 (100 % is 1.0)")
        cats = tuple(spec.get("categories") or ())
        if not cats:
            chk.add(f"key '{where}.categories' is empty: list the facility categories the circle counts")
        for c in cats:
            if categories and c not in categories:
                hint = difflib.get_close_matches(str(c), list(categories), n=1)
                chk.add(f"key '{where}.categories' names unknown category {c!r}"
                        + (f": did you mean '{hint[0]}'?" if hint else f" (known: {', '.join(categories)})"))
        circles[cid] = Circle(
            id=cid,
            label_zh=str(spec.get("label_zh", cid)),
            label_en=str(spec.get("label_en", cid)),
            categories=cats,
            mode=mode,
            threshold=threshold,
            profile=prof,
            population=pop,
            target_share=float(target) if _isinstance(target, float) else 1.0,
            plan=bool(spec.get("plan", True)),
            min_reachable=int(_num(spec.get("min_reachable"), 1)),
        )
    return circles


def _siting(chk: _Checker, top: dict, resolve) -> Siting:
    sspec = chk.keys("siting", top.get("siting") or {}, _SITING_KEYS)
    for k in ("candidate_spacing_m", "max_new_sites", "node_limit", "time_limit_s"):
        if k in sspec:
            chk.positive(f"siting.{k}", sspec[k])
    siting = Siting(
        candidate_spacing_m=_num(sspec.get("candidate_spacing_m"), 200.0),
        max_new_sites=int(_num(sspec.get("max_new_sites"), 30)),
        exclude=tuple(resolve(p) for p in sspec.get("exclude", []) or []),
        parcels=resolve(sspec.get("parcels")),
        planned_projects=resolve(sspec.get("planned_projects")),
        node_limit=int(_num(sspec.get("node_limit"), 10_000)),
        time_limit_s=_num(sspec.get("time_limit_s"), 600.0),
        units=tuple(str(u).strip() for u in (sspec.get("units") or [])),
    )
    return siting


def _check_files(chk: _Checker, path: Path, all_sources: list, siting: Siting) -> None:
    for src in all_sources:
        if src.path is not None and not src.path.exists():
            fix = ("run `accessibility demo-data " + str(path) + "` to generate the synthetic demo layers"
                   if src.synthetic else "check the path, or run `accessibility fetch` when online")
            chk.add(f"key '{src.key}.path': file {src.path} does not exist: {fix}")
    for p in [*siting.exclude, siting.parcels, siting.planned_projects]:
        if p is not None and not p.exists():
            chk.add(f"siting file {p} does not exist: check the path under 'siting'")


def load_area(
    path: str | Path, *, check_files: bool = True, overrides: dict | None = None
) -> AreaConfig:
    """Load and validate a study-area configuration file.

    Parameters
    ----------
    path : str or Path
        The YAML file, e.g. ``config/areas/jiangbei.yaml``.
    check_files : bool, default True
        Also check that every input file exists. ``False`` is for commands that create
        them (``accessibility demo-data``).
    overrides : dict, optional
        A scenario: keys merged (recursively) into the file's contents before validation,
        e.g. ``{"profiles": {"elderly": {"flat_speed_mps": 0.8}}}`` or
        ``{"terrain": {"model": "flat"}}``. Validated like the file itself.

    Returns
    -------
    AreaConfig

    Raises
    ------
    ConfigError
        With every problem of the file listed, each naming the key and the fix.
    """
    path = Path(path).resolve()
    data = _read_yaml(path)
    if overrides:
        data = deep_merge(data, overrides)
    chk = _Checker(path)
    top = chk.keys("", data, _TOP_KEYS, required=("name", "crs", "sources", "circles", "categories"))
    chk.raise_if_any()

    base = (path.parent / top.get("base_dir", ".")).resolve()

    def resolve(p: str | None) -> Path | None:
        if p is None:
            return None
        q = Path(p)
        return q if q.is_absolute() else base / q

    crs = _check_crs(chk, top.get("crs"))
    categories = _categories(chk, resolve(top.get("categories")))
    sources, fac_sources = _sources(chk, top, resolve)
    profiles = _profiles(chk, top)
    terrain = _terrain(chk, top)
    circles = _circles(chk, top, profiles, categories)
    siting = _siting(chk, top, resolve)
    if check_files:
        _check_files(chk, path, [*sources.values(), *fac_sources], siting)
    if "max_snap_m" in top:
        chk.positive("max_snap_m", top["max_snap_m"])
    language = str(top.get("language", "bilingual"))
    chk.choice("language", language, LANGUAGES)
    unit_codes = str(top.get("unit_codes", "any"))
    chk.choice("unit_codes", unit_codes, UNIT_CODE_SYSTEMS)
    chk.raise_if_any()
    return AreaConfig(
        name=str(top["name"]),
        title_zh=str(top.get("title_zh", top["name"])),
        title_en=str(top.get("title_en", top["name"])),
        crs=str(crs),
        config_path=path,
        base_dir=base,
        output_root=resolve(top.get("output_dir", "data/processed")),
        sources=sources,
        facility_sources=tuple(fac_sources),
        profiles=profiles,
        terrain=terrain,
        circles=circles,
        categories=categories,
        siting=siting,
        max_snap_m=_num(top.get("max_snap_m"), 500.0),
        scenario=dict(overrides or {}),
        district_code=str(top.get("district_code", "DISTRICT")),
        district_name=str(top.get("district_name") or top.get("title_zh") or top["name"]),
        district_name_en=str(top.get("district_name_en") or top.get("title_en") or top["name"]),
        language=language,
        unit_codes=unit_codes,
    )


def deep_merge(base: Any, extra: Any) -> Any:
    """Return ``base`` with ``extra`` merged in recursively (mappings merge, anything else replaces)."""
    if isinstance(base, dict) and isinstance(extra, dict):
        out = dict(base)
        for k, v in extra.items():
            out[k] = deep_merge(base.get(k), v) if k in base else v
        return out
    return extra


def _source_fields(chk: _Checker, where: str, family: str, kind: str, spec: dict) -> tuple[dict, dict]:
    """``columns:`` and ``options:`` of a source, their keys checked against what its reader reads."""
    columns = _mapping(chk, f"{where}.columns", spec.get("columns"), "a mapping like {name: 名称, lon: 经度}")
    options = _mapping(chk, f"{where}.options", spec.get("options"), "a mapping like {sheet: 设施}")
    col_keys = _SOURCE_COLUMNS.get(family, ())
    if family == "facilities" and kind != "inventory":
        col_keys = ()
    if columns:
        if col_keys:
            chk.keys(f"{where}.columns", columns, dict.fromkeys(col_keys, (str, int)))
        else:
            chk.add(f"key '{where}.columns': a {kind} source reads no columns: remove it")
    allowed = _SOURCE_OPTIONS.get(family, {})
    if options:
        if allowed:
            chk.keys(f"{where}.options", options, allowed)
        else:
            chk.add(f"key '{where}.options': a {family} source takes no options: remove it")
    for k in _POSITIVE_OPTIONS:
        if k in options:
            chk.positive(f"{where}.options.{k}", options[k])
    return columns, options


def _source(chk: _Checker, where: str, name: str, spec: Any, resolve, kinds: tuple) -> Source | None:
    spec = chk.keys(where, spec, _SOURCE_KEYS, required=("status",))
    if not isinstance(spec, dict) or not spec:
        return None
    kind = spec.get("kind", kinds[0])
    chk.choice(f"{where}.kind", kind, kinds)
    status = spec.get("status", "real")
    chk.choice(f"{where}.status", status, STATUSES)
    coords = spec.get("coords", "wgs84")
    chk.choice(f"{where}.coords", coords, COORD_SYSTEMS)
    if kind != "overpass" and not spec.get("path"):
        chk.add(f"missing key '{where}.path': a {kind} source needs a file path")
    family = "facilities" if where.startswith("sources.facilities") else name
    columns, options = _source_fields(chk, where, family, kind, spec)
    return Source(
        name=name,
        kind=kind,
        path=resolve(spec.get("path")),
        status=status,
        provenance=str(spec.get("provenance", "")),
        coords=coords,
        columns=columns,
        options=options,
        key=where,
    )
