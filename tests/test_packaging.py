"""Packaging: environment.yml and pyproject.toml list the same dependencies; the layout exists."""

from __future__ import annotations

import re
import tomllib

import yaml

from tests.conftest import ROOT


def _name(req: str) -> str:
    return re.split(r"[<>=!~\[ ;]", req.strip(), maxsplit=1)[0].lower().replace("_", "-")


def test_environment_yml_matches_pyproject():
    py = tomllib.loads((ROOT / "pyproject.toml").read_text())
    deps = {_name(d) for d in py["project"]["dependencies"]}
    for extra in py["project"]["optional-dependencies"].values():
        deps |= {_name(d) for d in extra}
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    conda = {_name(d) for d in env["dependencies"] if isinstance(d, str)} - {"python", "pip"}
    assert deps == conda, f"only in pyproject: {deps - conda}; only in environment.yml: {conda - deps}"


def test_layout_from_design_card():
    for p in ["accessibility", "notebooks", "data/raw", "data/processed", "scripts", "tests",
              "environment.yml", "pyproject.toml", "README.md", "DESIGN.md", ".ci/run"]:
        assert (ROOT / p).exists(), p


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in readme and "make test" in ci
    assert "make run" in readme


def test_package_has_no_side_effects_on_import():
    import logging

    import accessibility

    handlers = logging.getLogger("accessibility").handlers
    assert all(isinstance(h, logging.NullHandler) for h in handlers)
    assert accessibility.__version__
