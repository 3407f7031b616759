"""One rule object per circle: the single place where a circle's question is resolved.

A circle of the configuration says *which* facilities, *how far* and *for whom*; answering it on
the walking network needs more: the edge column to search (the profile's terrain-aware or flat
times, or lengths), the flat speed of the walks to and from the network, the snap limit and the
tolerance of the threshold test. :func:`circle_rule` resolves all of them once, from the
configuration plus optional overrides, into a frozen :class:`CircleRule`; coverage, 2SFCA,
siting, maps and what-if take that object, so no building block re-derives (or contradicts) the
run's rule (DESIGN.md, "Contracts: the circle rule").

Overrides keep the circle's id and its facilities: ``circle_rule(cfg, "culture_15min",
threshold_min=10)`` still counts the culture facilities, with a 10-minute threshold.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from accessibility._errors import ConfigError
from accessibility.config import Circle
from accessibility.traveltime import limit_slack

__all__ = ["CircleRule", "circle_rule", "circle_rules", "facility_sets"]

#: Values of the ``terrain`` override: ``None`` keeps the configuration's model.
TERRAIN_OVERRIDES = (None, "flat")


@dataclass(frozen=True)
class CircleRule:
    """Everything needed to answer one circle on the walking network.

    Attributes
    ----------
    circle : Circle
        The configuration's circle with the overrides applied (same ``id`` and categories;
        ``threshold`` and ``profile`` as resolved here).
    threshold : float
        Seconds (time mode) or metres (distance mode), after overrides.
    weight : str
        Edge column searched: ``time_s_<profile>``, ``time_s_<profile>_flat`` (``terrain="flat"``)
        or ``length_m`` (distance mode).
    flat_weight : str or None
        ``time_s_<profile>_flat`` in time mode (for ``coverage_share_flat``), None in distance mode.
    walk_speed_mps : float
        Flat speed of the profile for the walks to and from the network; 1.0 in distance mode
        (the walk is then in metres).
    max_snap_m : float
        Cells and facilities farther than this from the network are never covered.
    profile : str
        Profile name (the circle's, or the override).

    Examples
    --------
    >>> from accessibility.config import Circle
    >>> c = Circle(id="culture", label_zh="文化", label_en="culture", categories=("library",),
    ...            mode="time", threshold=900.0, profile="adult", population="all", target_share=1.0)
    >>> rule = CircleRule(circle=c, threshold=900.0, weight="time_s_adult",
    ...                   flat_weight="time_s_adult_flat", walk_speed_mps=1.2, max_snap_m=500.0,
    ...                   profile="adult")
    >>> rule.within([899.0, 900.0, 901.0]).tolist()
    [True, True, False]
    >>> rule.walk([120.0, 600.0]).tolist()
    [100.0, inf]
    """

    circle: Circle
    threshold: float
    weight: str
    flat_weight: str | None
    walk_speed_mps: float
    max_snap_m: float
    profile: str

    @property
    def id(self) -> str:
        """The circle's id (overrides keep it: the facilities stay those of the circle)."""
        return self.circle.id

    @property
    def mode(self) -> str:
        """``"time"`` (threshold in seconds) or ``"distance"`` (metres)."""
        return self.circle.mode

    @property
    def demand_column(self) -> str:
        """Column of the cells table used as demand (``population`` or ``pop_60plus``)."""
        return self.circle.weight_column

    @property
    def target_share(self) -> float:
        return float(self.circle.target_share)

    @property
    def min_reachable(self) -> int:
        return int(self.circle.min_reachable)

    @property
    def categories(self) -> tuple[str, ...]:
        return tuple(self.circle.categories)

    @property
    def slack(self) -> float:
        """Tolerance of the threshold test (:func:`accessibility.traveltime.limit_slack`)."""
        return limit_slack(self.threshold)

    @property
    def threshold_label(self) -> str:
        """``"15 min"`` or ``"300 m"``."""
        return self.circle.threshold_label

    def within(self, cost) -> np.ndarray:
        """THE threshold test: ``cost <= threshold + limit_slack(threshold)`` (NaN/inf: False)."""
        return np.asarray(cost, dtype=float) <= self.threshold + self.slack

    def walk(self, snap_m) -> np.ndarray:
        """Walk between a point and its network node: ``snap_m / walk_speed_mps``, ``inf`` where
        ``snap_m > max_snap_m`` (or not finite)."""
        d = np.asarray(snap_m, dtype=float)
        return np.where(d <= self.max_snap_m, d / self.walk_speed_mps, np.inf)

    def facility_mask(self, facilities) -> np.ndarray:
        """Boolean mask of the facilities of this circle (their ``circles`` column names its id)."""
        return facility_sets(facilities)(self.id)


def facility_sets(facilities):
    """``circle_id -> mask`` over ``facilities``: THE parser of the ``circles`` column.

    ``circles`` holds ``;``-joined circle ids; each distinct string is split once, so asking for
    many circles costs one parse. Rows without ``circles`` (or an empty table) belong to none.

    Examples
    --------
    >>> import pandas as pd
    >>> of = facility_sets(pd.DataFrame({"circles": ["a;b", "b", None]}))
    >>> of("b").tolist(), of("a").tolist()
    ([True, True, False], [True, False, False])
    """
    if facilities is None or len(facilities) == 0 or "circles" not in facilities.columns:
        n = 0 if facilities is None else len(facilities)
        return lambda _cid: np.zeros(n, dtype=bool)
    ids = facilities["circles"].fillna("").astype(str).to_numpy()
    uniq, inv = np.unique(ids, return_inverse=True)  # few distinct strings: split each once
    parts = [{p.strip() for p in s.split(";")} for s in uniq]
    return lambda cid: np.array([cid in p for p in parts], dtype=bool)[inv]


def _positive(config, what: str, value) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        v = float("nan")
    if not v > 0 or not np.isfinite(v):
        raise ConfigError(f"{config.config_path}: override {what}={value!r} must be a positive number")
    return v


def circle_rule(config, circle_id: str, *, threshold_min: float | None = None,
                threshold_m: float | None = None, profile: str | None = None,
                terrain: str | None = None, max_snap_m: float | None = None) -> CircleRule:
    """Resolve one circle of ``config`` (plus overrides) into its :class:`CircleRule`.

    Parameters
    ----------
    config : AreaConfig
    circle_id : str
        A key of ``config.circles``.
    threshold_min : float, optional
        New threshold in minutes (time-mode circles).
    threshold_m : float, optional
        New threshold in metres (distance-mode circles).
    profile : str, optional
        Another walking profile of ``config.profiles`` (time-mode circles).
    terrain : {None, "flat"}
        ``None``: the configuration's terrain model; ``"flat"``: every edge at the profile's flat
        speed (the ``time_s_<profile>_flat`` columns).
    max_snap_m : float, optional
        Another snap limit (default ``config.max_snap_m``).

    Returns
    -------
    CircleRule
        Same circle id and facilities; ``rule.circle`` carries the resolved threshold/profile.

    Examples
    --------
    >>> from accessibility.demo import example_config
    >>> cfg = example_config()
    >>> r = circle_rule(cfg, "culture_15min", threshold_min=10, profile="elderly")
    >>> r.id, r.threshold, r.weight, r.walk_speed_mps
    ('culture_15min', 600.0, 'time_s_elderly', 0.9)
    >>> r.circle.label_en  # what the overrides changed, in every label
    'culture_15min (10 min, elderly)'
    """
    if circle_id not in config.circles:
        raise ConfigError(f"circle {circle_id!r} is not in {config.config_path}: use one of "
                          f"{', '.join(config.circles)}")
    base = config.circles[circle_id]
    threshold = float(base.threshold)
    if base.mode == "time":
        if threshold_m is not None:
            raise ConfigError(f"{config.config_path}: circle {circle_id} is in time mode: give "
                              "threshold_min (minutes), not threshold_m")
        if threshold_min is not None:
            threshold = 60.0 * _positive(config, "threshold_min", threshold_min)
    else:
        if threshold_min is not None:
            raise ConfigError(f"{config.config_path}: circle {circle_id} is in distance mode: give "
                              "threshold_m (metres), not threshold_min")
        if threshold_m is not None:
            threshold = _positive(config, "threshold_m", threshold_m)
        if profile is not None or terrain is not None:
            raise ConfigError(f"{config.config_path}: circle {circle_id} is in distance mode "
                              "(network metres): profile and terrain overrides do not apply")
    prof_name = base.profile if profile is None else str(profile)
    if base.mode == "time" and prof_name not in config.profiles:
        raise ConfigError(f"{config.config_path}: profile {prof_name!r} (circle {circle_id}) is not "
                          f"defined: use one of {', '.join(config.profiles)}")
    if terrain not in TERRAIN_OVERRIDES:
        raise ConfigError(f"{config.config_path}: terrain={terrain!r}: use None (the configuration's "
                          f"model, {config.terrain.model}) or 'flat'")
    snap = float(config.max_snap_m) if max_snap_m is None else _positive(config, "max_snap_m", max_snap_m)
    if base.mode == "time":
        flat_weight = f"time_s_{prof_name}_flat"
        weight = flat_weight if terrain == "flat" else f"time_s_{prof_name}"
        speed = float(config.profiles[prof_name].flat_speed_mps)
    else:
        weight, flat_weight, speed = "length_m", None, 1.0
    circle = dataclasses.replace(base, threshold=threshold, profile=prof_name,
                                 **_override_labels(base, threshold, prof_name, terrain, snap, config))
    return CircleRule(circle=circle, threshold=threshold, weight=weight, flat_weight=flat_weight,
                      walk_speed_mps=speed, max_snap_m=snap, profile=prof_name)


def _override_labels(base, threshold: float, profile: str, terrain, snap: float, config) -> dict:
    """The circle's labels with what the overrides changed, e.g. "15分钟健身圈（10 min, elderly）":
    a map or table of an overridden rule must not carry the plan circle's name alone."""
    what = []
    if threshold != float(base.threshold):
        what.append(f"{threshold / 60:g} min" if base.mode == "time" else f"{threshold:g} m")
    if profile != base.profile:
        what.append(profile)
    if terrain == "flat":
        what.append("flat")
    if snap != float(config.max_snap_m):
        what.append(f"snap {snap:g} m")
    if not what:
        return {}
    note = ", ".join(what)
    return {"label_zh": f"{base.label_zh}（{note}）", "label_en": f"{base.label_en} ({note})"}


def circle_rules(config, circles: Iterable[str] | None = None, **overrides) -> dict[str, CircleRule]:
    """:func:`circle_rule` for several circles (default: all, in configuration order).

    Overrides that do not apply to a circle's mode (``threshold_min`` on a distance circle,
    ``threshold_m``/``profile``/``terrain`` on the other) are skipped for it when no circles
    are named, so ``circle_rules(cfg, terrain="flat")`` flattens every time circle.

    Examples
    --------
    >>> from accessibility.demo import example_config
    >>> rules = circle_rules(example_config(), max_snap_m=300)
    >>> sorted({r.max_snap_m for r in rules.values()})
    [300.0]
    """
    ids = list(config.circles) if circles is None else list(circles)
    out = {}
    for cid in ids:
        kw = dict(overrides)
        if circles is None and cid in config.circles:
            mode = config.circles[cid].mode
            drop = ("threshold_m",) if mode == "time" else ("threshold_min", "profile", "terrain")
            kw = {k: v for k, v in kw.items() if k not in drop}
        out[cid] = circle_rule(config, cid, **kw)
    return out


def as_rules(rules, config=None, circles: Iterable[str] | None = None) -> list[CircleRule]:
    """Normalise what a building block was given into a list of rules.

    ``rules`` may be a :class:`CircleRule`, a circle id of ``config``, a mapping or iterable of
    them, an ``AreaConfig``
    (its circles, or ``circles``, resolved with :func:`circle_rules`), or a config ``Circle``
    together with ``config`` (resolved without overrides).
    """
    if isinstance(rules, CircleRule):
        return [rules]
    if isinstance(rules, str):  # a circle id of ``config``
        if config is None:
            raise TypeError(f"circle id {rules!r} needs its AreaConfig: pass config=")
        return [circle_rule(config, rules)]
    if isinstance(rules, Circle):
        if config is None:
            raise TypeError("a Circle needs its AreaConfig to become a rule: pass "
                            "accessibility.rules.circle_rule(config, circle.id)")
        return [circle_rule(config, rules.id)]
    if hasattr(rules, "circles") and hasattr(rules, "profiles"):  # an AreaConfig
        return list(circle_rules(rules, circles).values())
    items = list(rules.values()) if isinstance(rules, dict) else list(rules)
    out = []
    for r in items:
        out += as_rules(r, config)
    if circles is not None:
        want = list(circles)
        out = [r for r in out if r.id in want]
    return out
