"""Many study areas or scenarios at once, on Dask distributed.

:func:`run_batch` runs one :func:`accessibility.pipeline.run` per task on a Dask cluster (a local
cluster of worker processes by default, or any running scheduler), retries failed tasks, reports
every task (``ok`` / ``failed`` / ``skipped``) in one table, and skips tasks whose output folder
already holds a finished run (a valid ``_COMPLETE`` marker, written last by the pipeline).
:func:`scenario_tasks` builds the task list for a set of scenarios of one area.

Dask is an optional dependency (``pip install accessibility[distributed]``); it is imported only
when a batch runs.
"""

from __future__ import annotations

import json
import logging
import re
import time
import traceback
import uuid
import warnings
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from accessibility._errors import AccessibilityWarning, BatchError, ConfigError

log = logging.getLogger(__name__)

__all__ = ["COLUMNS", "batch_report", "is_task_complete", "local_cluster", "merge_summary_file", "run_batch", "run_unit_siting_task", "scenario_summary",
           "scenario_tasks", "unit_siting_overview", "unit_siting_summary", "unit_siting_tasks",
           "write_scenario_summary", "write_unit_siting_summary"]

#: columns of the table returned by :func:`run_batch`
COLUMNS = ["task_id", "status", "output_dir", "error", "attempts", "seconds", "lost_workers"]
COMPLETE_MARKER = "_COMPLETE"
#: arguments of the default task's ``pipeline.run`` call (part of its fingerprint)
PIPELINE_TASK_PARAMS = {"maps": False, "atlas": False}
#: what stands for the run parameters in a unit siting task's fingerprint
UNIT_SITING_PARAMS = {"task": "unit_siting", "k_max": None}
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")


# ---------------------------------------------------------------------------------------------
# task functions (run on the workers)


def run_pipeline_task(*, config: Any, output_dir: str | Path, scenario: dict | None) -> Any:
    """Default task function: one pipeline run without maps, atlas and progress bars."""
    from accessibility import pipeline

    result = pipeline.run(config, output_dir=output_dir, scenario=scenario, progress=False,
                          **PIPELINE_TASK_PARAMS)
    return str(result.output_dir)


def run_unit_siting_task(*, config: Any, output_dir: str | Path, scenario: dict | None) -> Any:
    """Task function of :func:`unit_siting_tasks`: load, travel times, siting only.

    Writes the siting outputs (ranked sites, exact set, fewest sites) of the units named in
    ``scenario["siting"]["units"]`` and, last, the ``_COMPLETE`` marker with the inputs'
    fingerprint — no maps, coverage tables or report, which would be the same for every unit.
    """
    from accessibility import _io, pipeline

    cfg = pipeline.config_for(config, scenario)
    # the data checks' warnings are the same for every unit: kept in the unit's folder, not
    # printed once per task by every worker
    with _io.interrupt_guard(), _io.run_lock(output_dir):
        _io.recover_run_folder(output_dir)
        _io.check_output_folder(output_dir)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", AccessibilityWarning)
            study = pipeline.load_study_area(cfg, progress=False)
            plan = [c for c, circle in cfg.circles.items() if circle.plan]
            results, _ = pipeline.analyse(study, circles=plan, progress=False)
        _unit_siting_outputs(cfg, output_dir, study, results, [*study.warnings, *(str(w.message) for w in caught)])
    return str(output_dir)


def _unit_siting_outputs(cfg, output_dir, study, results, notes) -> None:
    from accessibility import pipeline
    from accessibility._io import atomic_dir, write_text_atomic

    with atomic_dir(output_dir) as tmp:
        notes = list(dict.fromkeys(notes))
        write_text_atomic(tmp / "warnings.txt", "".join(f"- {n}\n" for n in notes) or "none\n")
        write_text_atomic(tmp / "task.json", json.dumps(
            {"units": list(cfg.siting.units), "k_requested": cfg.siting.max_new_sites,
             "candidates": "inside the unit(s) only"}, ensure_ascii=False))
        pipeline.write_siting(tmp, study, results, k_max=None, progress=False)
        write_text_atomic(tmp / COMPLETE_MARKER,
                          json.dumps({"inputs_fingerprint": pipeline.inputs_fingerprint(cfg, UNIT_SITING_PARAMS)}))


def _attempt(func: Callable, task: dict) -> dict:
    """Run one attempt of one task on a worker; never raises (the error travels back as text)."""
    t0 = time.perf_counter()
    try:
        func(config=task["config"], output_dir=task["output_dir"], scenario=task.get("scenario"))
    except Exception:  # the whole point: report any failure of the task, with its traceback
        return {"ok": False, "error": traceback.format_exc(), "seconds": time.perf_counter() - t0}
    return {"ok": True, "error": "", "seconds": time.perf_counter() - t0}


# ---------------------------------------------------------------------------------------------
# helpers


def _task_params(func: Callable | None) -> dict | None:
    """The run parameters a known task function records in its fingerprint (None: unknown)."""
    if func is None or func is run_pipeline_task:
        from accessibility.pipeline import run_parameters

        return run_parameters(**PIPELINE_TASK_PARAMS)
    if func is run_unit_siting_task:
        return UNIT_SITING_PARAMS
    return None


def is_task_complete(task: Mapping, *, check_inputs: bool = True, func: Callable | None = None) -> bool:
    """True when the task's output folder holds a valid ``_COMPLETE`` marker.

    Valid means: the marker is a JSON object with an ``inputs_fingerprint``; with
    ``check_inputs`` (and :mod:`accessibility.pipeline` available) the fingerprint must also equal
    the one of the task's current inputs, so a changed input file (siting files included: parcels,
    exclusion zones, planned projects) or configuration re-runs the task. ``func`` is the task
    function (default :func:`run_pipeline_task`), whose run parameters are part of the fingerprint.
    """
    marker = Path(task["output_dir"]) / COMPLETE_MARKER
    if not marker.is_file():
        return False
    try:
        meta = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if not isinstance(meta, dict) or not meta.get("inputs_fingerprint"):
        return False
    if not check_inputs:
        return True
    try:
        from accessibility import pipeline

        cfg = pipeline.config_for(task["config"], task.get("scenario"), check_files=False)
        return bool(pipeline.is_complete(task["output_dir"], cfg, params=_task_params(func)))
    except Exception as exc:  # config unreadable now: do not skip; the run will report why
        log.info("task %s: cannot verify its _COMPLETE marker (%s); running it", task.get("task_id"), exc)
        return False


def _validate_tasks(tasks: Iterable[Mapping]) -> list[dict]:
    out: list[dict] = []
    problems: list[str] = []
    seen: set[str] = set()
    for i, task in enumerate(tasks):
        if not isinstance(task, Mapping):
            problems.append(f"task #{i} is a {type(task).__name__}: pass a dict with task_id, config, "
                            "scenario, output_dir")
            continue
        missing = [k for k in ("task_id", "config", "output_dir") if task.get(k) in (None, "")]
        if missing:
            problems.append(f"task #{i} ({task.get('task_id', '?')}) lacks {', '.join(missing)}: add them")
        unknown = set(task) - {"task_id", "config", "scenario", "output_dir"}
        if unknown:
            problems.append(f"task #{i} has unknown key(s) {', '.join(sorted(map(str, unknown)))}: "
                            "allowed are task_id, config, scenario, output_dir")
        scen = task.get("scenario")
        if scen is not None and not isinstance(scen, Mapping):
            problems.append(f"task #{i} ({task.get('task_id')}): scenario must be a dict or None, "
                            f"got {type(scen).__name__}")
        tid = str(task.get("task_id"))
        if tid in seen:
            problems.append(f"task_id {tid!r} appears twice: task ids must be unique")
        seen.add(tid)
        out.append({"task_id": tid, "config": task.get("config"),
                    "scenario": dict(scen) if isinstance(scen, Mapping) else None,
                    "output_dir": str(task.get("output_dir"))})
    if problems:
        raise ConfigError("batch tasks: " + f"{len(problems)} problem(s):\n"
                          + "\n".join(f"  - {p}" for p in problems))
    return out


# ---------------------------------------------------------------------------------------------
# public


def local_cluster(*, n_workers: int = 2, threads_per_worker: int = 1):
    """A ``distributed.LocalCluster`` of worker processes on 127.0.0.1, dashboard off.

    The scheduler's small HTTP server (health/metrics routes, always started by distributed)
    listens on a free loopback port instead of 8787, so several clusters (parallel test runs,
    other users) never collide on that port. Close it with ``cluster.close()``.
    """
    from distributed import LocalCluster

    return LocalCluster(n_workers=n_workers, threads_per_worker=threads_per_worker, processes=True,
                        host="127.0.0.1", dashboard_address=None,
                        scheduler_kwargs={"dashboard_address": "127.0.0.1:0"})


def run_batch(
    tasks: Iterable[Mapping],
    *,
    scheduler: str | Any | None = None,
    n_workers: int = 2,
    retries: int = 2,
    progress: bool = True,
    func: Callable | None = None,
    skip_complete: bool = True,
    worker_timeout_s: float = 300.0,
) -> pd.DataFrame:
    """Run many pipeline tasks on Dask distributed.

    Parameters
    ----------
    tasks : iterable of dict
        Each ``{"task_id": str, "config": path, "scenario": dict or None, "output_dir": path}``.
    scheduler : str or distributed.Client, optional
        Address of a running scheduler (``"tcp://host:8786"``) or a connected client. Default: a
        ``LocalCluster`` of ``n_workers`` single-threaded processes on 127.0.0.1 without
        dashboard, closed at the end.
    n_workers : int
        Size of the default local cluster (ignored with ``scheduler``).
    retries : int, default 2
        A failing task is tried at most ``1 + retries`` times.
    progress : bool, default True
        Show a progress bar.
    func : callable, optional
        The task function, called as ``func(config=..., output_dir=..., scenario=...)`` on a worker
        (must be importable or picklable there). Default :func:`run_pipeline_task`, i.e.
        ``accessibility.pipeline.run(config, output_dir=, scenario=, progress=False, maps=False,
        atlas=False)``.
    skip_complete : bool, default True
        Skip tasks whose ``output_dir`` already holds a valid ``_COMPLETE`` marker (see
        :func:`is_task_complete`).
    worker_timeout_s : float, default 300
        With tasks left and no worker connected to the scheduler for this long, the batch stops
        with :class:`~accessibility._errors.BatchError` (instead of waiting for ever). It never
        limits how long a task may compute.

    Returns
    -------
    pandas.DataFrame
        One row per task, in task order: ``task_id``, ``status`` (``ok``/``failed``/``skipped``),
        ``output_dir``, ``error`` (the traceback of the last failed attempt, ``""`` otherwise),
        ``attempts`` (0 when skipped), ``seconds`` (worker time summed over attempts),
        ``lost_workers`` (workers that died while running the task; the scheduler ran it again
        elsewhere). ``table.attrs["lost_workers"]`` lists the addresses of the workers lost during
        the batch; :func:`batch_report` says it all in one paragraph.

    Raises
    ------
    BatchError
        No worker for ``worker_timeout_s`` seconds while tasks were waiting.

    Notes
    -----
    Retries are driven from the client: a failed attempt is resubmitted as a new Dask task, up to
    ``retries`` times. Unlike ``client.submit(..., retries=)``, this keeps the exact number of
    attempts and each error's traceback, and also retries attempts lost with a dead worker.

    Examples
    --------
    >>> run_batch([], progress=False).columns.tolist() == COLUMNS
    True
    """
    if int(retries) < 0:
        raise ConfigError(f"run_batch: retries={retries!r} must be >= 0")
    if not float(worker_timeout_s) > 0:
        raise ConfigError(f"run_batch: worker_timeout_s={worker_timeout_s!r} must be > 0 seconds")
    task_list = _validate_tasks(tasks)
    func = run_pipeline_task if func is None else func
    rows = {t["task_id"]: {"task_id": t["task_id"], "status": "pending", "output_dir": t["output_dir"],
                           "error": "", "attempts": 0, "seconds": 0.0, "lost_workers": 0} for t in task_list}
    todo = []
    for t in task_list:
        if skip_complete and is_task_complete(t, check_inputs=_task_params(func) is not None, func=func):
            rows[t["task_id"]]["status"] = "skipped"
            log.info("task %s: %s already complete, skipped", t["task_id"], t["output_dir"])
        else:
            todo.append(t)
    lost: list[str] = []
    if todo:
        lost = _run_on_dask(todo, rows, func, scheduler=scheduler, n_workers=n_workers, retries=int(retries),
                            progress=progress, worker_timeout_s=float(worker_timeout_s))
    table = pd.DataFrame([rows[t["task_id"]] for t in task_list], columns=COLUMNS)
    table = table.astype({"attempts": "int64", "seconds": "float64", "lost_workers": "int64"})
    table.attrs["lost_workers"] = lost
    log.info("%s", batch_report(table))
    return table


def batch_report(table: pd.DataFrame) -> str:
    """One paragraph about a :func:`run_batch` table: counts, retried tasks, lost workers.

    Examples
    --------
    >>> t = pd.DataFrame({"task_id": ["a", "b"], "status": ["ok", "failed"], "attempts": [2, 3],
    ...                   "lost_workers": [0, 0]})
    >>> batch_report(t)
    'batch: 1 ok, 1 failed, 0 skipped; retried: a (2 attempts), b (3 attempts); no worker lost'
    """
    counts = table["status"].value_counts()
    text = ", ".join(f"{int(counts.get(k, 0))} {k}" for k in ("ok", "failed", "skipped"))
    retried = table[(table["attempts"] > 1) | (table.get("lost_workers", 0) > 0)]
    parts = [f"batch: {text}"]
    if len(retried):
        parts.append("retried: " + ", ".join(
            f"{r.task_id} ({r.attempts} attempts" + (f", {r.lost_workers} lost with a worker" if r.lost_workers else "")
            + ")" for r in retried.itertuples()))
    lost = table.attrs.get("lost_workers") or []
    parts.append(f"{len(lost)} worker(s) lost ({', '.join(lost)}): the tasks they ran were run again"
                 if lost else "no worker lost")
    return "; ".join(parts)


def _run_on_dask(todo, rows, func, *, scheduler, n_workers, retries, progress, worker_timeout_s) -> list[str]:
    """Run ``todo`` on a cluster, filling ``rows``; returns the addresses of workers lost meanwhile."""
    from distributed import Client

    cluster = None
    own_client = True
    if scheduler is None:
        cluster = local_cluster(n_workers=n_workers)
        client = Client(cluster)
    elif isinstance(scheduler, Client):
        client, own_client = scheduler, False
    else:
        client = Client(scheduler)
    try:
        driver = _Driver(client, rows, func, retries=retries, worker_timeout_s=worker_timeout_s)
        return driver.run(todo, progress=progress)
    finally:
        if own_client:
            client.close()
        if cluster is not None:
            cluster.close()


class _Driver:
    """Submits attempts, collects results, retries failures, watches that workers exist."""

    def __init__(self, client, rows: dict, func: Callable, *, retries: int, worker_timeout_s: float):
        self.client, self.rows, self.func = client, rows, func
        self.retries, self.worker_timeout_s = retries, worker_timeout_s
        self.run_tag = uuid.uuid4().hex[:8]  # fresh keys: never collide with an earlier batch's results
        self.by_key: dict[str, dict] = {}
        self.started = time.time()

    def submit(self, t: dict, attempt: int):
        fut = self.client.submit(_attempt, self.func, t, pure=False,
                                 key=f"batch-{self.run_tag}-{t['task_id']}-{attempt}")
        self.by_key[fut.key] = t
        return fut

    def run(self, todo: list[dict], *, progress: bool) -> list[str]:
        from distributed import as_completed
        from tqdm.auto import tqdm

        pending = as_completed([self.submit(t, 1) for t in todo])
        bar = tqdm(total=len(todo), desc="batch", unit="task", disable=not progress)
        no_worker_since = None
        last_check = 0.0
        try:
            while not pending.is_empty():
                if pending.has_ready():
                    for fut in pending.next_batch(block=False):
                        self.collect(fut, pending, bar)
                    continue
                now = time.monotonic()
                if now - last_check >= 1.0:
                    last_check = now
                    no_worker_since = self.watch_workers(no_worker_since, pending.count())
                time.sleep(0.05)
        finally:
            bar.close()
        return self.lost_workers()

    def watch_workers(self, since: float | None, n_left: int) -> float | None:
        if self.client.scheduler_info().get("workers"):
            return None
        now = time.monotonic()
        if since is None:
            log.warning("no Dask worker is connected to %s: waiting up to %.0f s", self.client.scheduler.address,
                        self.worker_timeout_s)
            return now
        if now - since >= self.worker_timeout_s:
            for key in list(self.by_key):
                self.client.cancel([key])
            raise BatchError(
                f"batch: no Dask worker connected to the scheduler {self.client.scheduler.address} for "
                f"{self.worker_timeout_s:g} s; {n_left} task(s) not run: start workers (`dask worker "
                f"{self.client.scheduler.address}`), or run without --scheduler for a local cluster "
                "(folders of finished tasks are kept; a re-run skips them)")
        return since

    def collect(self, fut, pending, bar) -> None:
        t = self.by_key.pop(fut.key)
        row = self.rows[t["task_id"]]
        row["attempts"] += 1
        try:
            res = fut.result()
        except Exception:  # lost worker, unpicklable function ...: counts as a failed attempt
            res = {"ok": False, "error": traceback.format_exc(), "seconds": 0.0}
        fut.release()
        row["seconds"] += float(res["seconds"])
        if res["ok"]:
            row["status"], row["error"] = "ok", ""
            bar.update(1)
            return
        row["error"] = res["error"]
        if row["attempts"] <= self.retries:
            log.warning("task %s failed (attempt %d of %d), retrying:\n%s", t["task_id"],
                        row["attempts"], self.retries + 1, res["error"])
            pending.add(self.submit(t, row["attempts"] + 1))
        else:
            row["status"] = "failed"
            log.error("task %s failed after %d attempt(s):\n%s", t["task_id"], row["attempts"], res["error"])
            bar.update(1)

    def lost_workers(self) -> list[str]:
        """Workers that died during this batch (from the scheduler's events), counted per task."""
        try:
            events = self.client.get_events("all")
        except Exception as exc:  # an old or unusual scheduler: say so, do not fail the batch
            log.info("cannot read the scheduler's events (%s): lost workers are not reported", exc)
            return []
        lost = []
        prefix = f"batch-{self.run_tag}-"
        for stamp, msg in events:
            if stamp < self.started - 1 or not isinstance(msg, dict) or msg.get("action") != "remove-worker":
                continue
            if msg.get("expected"):
                continue
            lost.append(str(msg.get("worker")))
            for key in msg.get("processing-tasks") or ():
                key = str(key)
                if key.startswith(prefix):
                    task_id = key[len(prefix):].rsplit("-", 1)[0]
                    if task_id in self.rows:
                        self.rows[task_id]["lost_workers"] += 1
        if lost:
            log.warning("%d Dask worker(s) died during the batch: %s", len(lost), ", ".join(lost))
        return list(dict.fromkeys(lost))


def scenario_tasks(
    config_path: str | Path,
    scenarios: Mapping[str, Mapping | None],
    out_root: str | Path | None = None,
) -> list[dict]:
    """Build one batch task per scenario of one study area.

    Parameters
    ----------
    config_path : str or Path
        The area's YAML file.
    scenarios : dict
        Scenario name -> overrides (e.g. ``{"slow_elderly": {"profiles": {"elderly":
        {"flat_speed_mps": 0.8}}}, "flat": {"terrain": {"model": "flat"}}, "base": None}``).
        Names become folder names: letters, digits, ``_``, ``-``, ``.``.
    out_root : str or Path, optional
        Folder that receives one sub-folder per scenario. Default
        ``data/processed/<run_id>/scenarios`` of the area (from its configuration).

    Returns
    -------
    list of dict
        Tasks for :func:`run_batch`, ``output_dir = out_root / <name>``.
    """
    problems = [f"scenario name {name!r} is not a safe folder name: use letters, digits, _ - ."
                for name in scenarios if not _SAFE_NAME.match(str(name)) or ".." in str(name)]
    problems += [f"scenario {name!r}: overrides must be a dict or None, got {type(o).__name__}"
                 for name, o in scenarios.items() if o is not None and not isinstance(o, Mapping)]
    if problems:
        raise ConfigError("scenario_tasks: " + f"{len(problems)} problem(s):\n"
                          + "\n".join(f"  - {p}" for p in problems))
    if out_root is None:
        from accessibility.config import load_area

        out_root = load_area(config_path, check_files=False).output_dir / "scenarios"
    out_root = Path(out_root)
    return [
        {"task_id": str(name), "config": str(config_path),
         "scenario": dict(o) if o is not None else None, "output_dir": str(out_root / str(name))}
        for name, o in scenarios.items()
    ]


def unit_siting_tasks(
    config_path: str | Path,
    units: Iterable[str] | None = None,
    *,
    k_max: int | None = None,
    out_root: str | Path | None = None,
) -> list[dict]:
    """One batch task per street/town: its own siting sweep (its uncovered demand, its candidates).

    Each task carries the scenario override ``{"siting": {"units": [code]}}`` (and
    ``max_new_sites``); run them with ``run_batch(tasks, func=run_unit_siting_task)``: each unit
    gets its ranked new sites 1..K, its exact best set and the fewest sites it needs in
    ``<out_root>/<unit code>/``. Units are independent, so they spread over the Dask workers.
    :func:`unit_siting_summary` gathers the results.

    Parameters
    ----------
    config_path : str or Path
        The area's YAML file.
    units : iterable of str, optional
        Unit codes; default every unit of the area's units layer.
    k_max : int, optional
        Length of each unit's ranking (default ``siting.max_new_sites``).
    out_root : str or Path, optional
        Default ``data/processed/<run_id>/unit_siting``.
    """
    from accessibility.config import load_area

    cfg = load_area(config_path, check_files=False)
    src = cfg.sources.get("units")
    known = None
    if src is not None and src.path is not None and src.path.exists():
        from accessibility.units import read_units

        known = read_units(src, cfg.crs, unit_table=cfg.sources.get("unit_table"),
                           codes=cfg.unit_codes)["unit_code"].astype(str).tolist()
    if units is None:
        if known is None:
            raise ConfigError(f"{config_path}: the units layer is not a readable file ({getattr(src, 'kind', 'none')}): "
                              "pass the unit codes (units=[...], or --units on the command line)")
        units = known
    codes = [str(u).strip() for u in units if str(u).strip()]
    if not codes:
        raise ConfigError("unit_siting_tasks: no unit codes")
    # checked here, before anything is sent to the workers (each would load the whole area first)
    bad = [c for c in codes if not _SAFE_NAME.match(c) or ".." in c]
    unknown = [c for c in codes if known is not None and c not in set(known) and c not in bad]
    problems = ([f"{', '.join(bad)} are not valid codes (letters, digits, _ - .)"] if bad else []) + (
        [f"{', '.join(unknown)} are not in the units layer"] if unknown else [])
    if problems:
        raise ConfigError(f"unit_siting_tasks ({config_path}): unit code(s) {'; '.join(problems)}"
                          + (f"; use codes of: {', '.join(known)}" if known else ""))
    siting: dict[str, Any] = {}
    if k_max is not None:
        if int(k_max) < 1:
            raise ConfigError(f"unit_siting_tasks: k_max={k_max!r} must be >= 1")
        siting["max_new_sites"] = int(k_max)
    scen = {code: {"siting": {**siting, "units": [code]}} for code in codes}
    root = Path(out_root) if out_root is not None else cfg.output_dir / "unit_siting"
    return scenario_tasks(config_path, scen, root)


def unit_siting_summary(source) -> pd.DataFrame:
    """One row per unit and plan circle from the outputs of :func:`unit_siting_tasks` runs.

    Parameters
    ----------
    source : pandas.DataFrame or path
        The table :func:`run_batch` returned (its ``ok``/``skipped`` rows), or the sweeps' root
        folder (every sub-folder holding a finished sweep: earlier batches included).

    Returns
    -------
    pandas.DataFrame
        ``unit_code, unit_name, circle, population, covered_share_now, target, sites_needed,
        capped, reachable_max_share, unreachable_population, method, gap, best_site_id,
        best_site_lon, best_site_lat, best_site_added, k, k_requested, share_after_k,
        candidates`` — ``share_after_k`` is the unit's coverage after its own ranked ``k`` new
        sites (``k`` can be below ``k_requested`` when further sites would add nobody);
        ``sites_needed`` counts sites inside the unit only (the district run's per-unit figure may
        use sites across the border), and when ``capped`` it is what reaches
        ``reachable_max_share``, not the target.
    """
    if isinstance(source, pd.DataFrame):
        folders = [(str(r.task_id), Path(r.output_dir)) for r in source.itertuples()
                   if r.status in ("ok", "skipped")]
    else:
        folders = [(p.parent.name, p.parent) for p in sorted(Path(source).glob(f"*/{COMPLETE_MARKER}"))]
    cols = ["unit_code", "unit_name", "circle", "population", "covered_share_now", "target", "sites_needed",
            "capped", "reachable_max_share", "unreachable_population", "method", "gap", "best_site_id",
            "best_site_lon", "best_site_lat", "best_site_added", "k", "k_requested", "share_after_k",
            "candidates"]
    rows = []
    for code, out in folders:
        meta = {}
        if (out / "task.json").exists():
            meta = json.loads((out / "task.json").read_text(encoding="utf-8"))
        for f in sorted(out.glob("siting_*_lscp_by_unit.csv")):
            cid = f.name[len("siting_"):-len("_lscp_by_unit.csv")]
            lscp = pd.read_csv(f, dtype={"unit_code": str})
            lscp = lscp[lscp["unit_code"] == code]
            curve_f = out / f"siting_{cid}.csv"
            curve = pd.read_csv(curve_f, dtype={"unit_code": str}) if curve_f.exists() else pd.DataFrame()
            best = curve.iloc[0] if len(curve) else None
            for u in lscp.to_dict("records"):
                rows.append({
                    **{k: u.get(k) for k in ("unit_code", "unit_name", "population", "covered_share_now", "target",
                                              "sites_needed", "capped", "reachable_max_share",
                                              "unreachable_population", "method", "gap")},
                    "circle": cid,
                    "best_site_id": best["site_id"] if best is not None else None,
                    "best_site_lon": best["lon"] if best is not None else None,
                    "best_site_lat": best["lat"] if best is not None else None,
                    "best_site_added": best["added_covered_population"] if best is not None else 0.0,
                    "k": len(curve), "k_requested": meta.get("k_requested"),
                    "share_after_k": (curve["cumulative_coverage_share"].iloc[-1] if len(curve)
                                      else u.get("covered_share_now")),
                    "candidates": meta.get("candidates", "inside the unit(s) only"),
                })
    return pd.DataFrame(rows, columns=cols)


def write_unit_siting_summary(root, config) -> pd.DataFrame:
    """:func:`unit_siting_summary` of every finished sweep under ``root``, written atomically as
    ``root/unit_siting_summary.csv`` (with the data status) when there is any; returns it."""
    from accessibility._io import atomic_path

    root = Path(root)
    summary = unit_siting_summary(root)
    if len(summary):
        with atomic_path(root / "unit_siting_summary.csv") as tmp:
            summary.assign(data_status=config.data_status).to_csv(tmp, index=False, encoding="utf-8-sig")
    return summary


def unit_siting_overview(summary: pd.DataFrame) -> pd.DataFrame:
    """A readable table of :func:`unit_siting_summary`: per unit and circle the coverage now, after
    its own best ``k`` sites, and the fewest sites to reach the target (or the reachable maximum).

    Examples
    --------
    >>> s = pd.DataFrame({"unit_name": ["甲"], "circle": ["c"], "covered_share_now": [0.5], "k": [2],
    ...                   "share_after_k": [0.75], "sites_needed": [3.0], "capped": [False],
    ...                   "reachable_max_share": [1.0]})
    >>> unit_siting_overview(s).iloc[0].astype(str).tolist()
    ['甲', 'c', '50.0%', '2', '75.0%', '3']
    """
    def fewest(r):
        if not r["capped"]:
            return f"{r['sites_needed']:.0f}"
        return f"{r['sites_needed']:.0f} (target out of reach: max {r['reachable_max_share']:.1%})"

    cols = ["unit_name", "circle", "now", "k", "after", "fewest"]
    if not len(summary):
        return pd.DataFrame(columns=cols)
    show = summary.assign(now=summary["covered_share_now"].map("{:.1%}".format),
                          after=summary["share_after_k"].map("{:.1%}".format),
                          fewest=summary.apply(fewest, axis=1))
    return show[cols].reset_index(drop=True)


def scenario_summary(table: pd.DataFrame, tasks: Iterable[Mapping]) -> pd.DataFrame:
    """District coverage share per circle (rows) and finished task (columns) of a batch.

    Parameters
    ----------
    table : pandas.DataFrame
        What :func:`run_batch` returned.
    tasks : iterable of dict
        The tasks it ran (their ``config`` names the district row's code).

    Returns
    -------
    pandas.DataFrame
        Index ``circle``; one column per task whose run is ``ok`` or ``skipped`` and holds a
        ``coverage_by_unit.csv``. Empty when none does.
    """
    from accessibility.config import load_area

    district_code = {t["task_id"]: load_area(t["config"], check_files=False).district_code for t in tasks}
    parts = {}
    for row in table.itertuples():
        f = Path(row.output_dir) / "coverage_by_unit.csv"
        if row.status in ("ok", "skipped") and f.exists():
            cov = pd.read_csv(f, dtype={"unit_code": str})
            district = cov[cov["unit_code"] == district_code[row.task_id]]
            parts[row.task_id] = district.set_index("circle")["coverage_share"]
    return pd.DataFrame(parts)


def write_scenario_summary(table: pd.DataFrame, tasks: Iterable[Mapping]) -> tuple[pd.DataFrame, Path | None]:
    """:func:`scenario_summary`, written atomically as ``batch_summary.csv`` in the folder holding
    every task's output folder; returns the table and the file (None when nothing finished)."""
    import os

    from accessibility._io import atomic_path

    summary = scenario_summary(table, tasks)
    if summary.empty:
        return summary, None
    out = Path(os.path.commonpath([str(Path(p).parent) for p in table["output_dir"]])) / "batch_summary.csv"
    merged = merge_summary_file(out, summary)
    with atomic_path(out) as tmp:
        merged.to_csv(tmp, encoding="utf-8-sig")
    return summary, out


def merge_summary_file(path: str | Path, summary: pd.DataFrame) -> pd.DataFrame:
    """``summary`` (circles x tasks) beside the columns of earlier batches' tasks in ``path`` that
    this batch did not run (a task run again replaces its own column): successive batches' results
    are kept.

    Examples
    --------
    >>> merge_summary_file("/nonexistent/batch_summary.csv", pd.DataFrame({"a": [0.5]})).columns.tolist()
    ['a']
    """
    path = Path(path)
    if not path.exists():
        return summary
    try:
        earlier = pd.read_csv(path, index_col=0, encoding="utf-8-sig")
    except (OSError, ValueError) as exc:
        log.warning("cannot read the earlier %s (%s): it is replaced", path, exc)
        return summary
    kept = earlier.drop(columns=[c for c in summary.columns if c in earlier.columns])
    if not len(kept.columns):
        return summary
    kept.index = kept.index.astype(str)
    return summary.set_axis(summary.index.astype(str)).join(kept, how="outer")
