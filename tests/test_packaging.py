"""The repository's own files: pins agree everywhere, nothing executed or generated is stale."""

from __future__ import annotations

import re
import subprocess
import tomllib

import nbformat
import pytest
import yaml

from nbutils import NOTEBOOKS, ROOT, SOLUTIONS

PIN = re.compile(r"^([A-Za-z0-9_.\-]+)==([^\s;]+)$")


def pyproject_pins() -> dict[str, str]:
    """Every requirement in pyproject.toml (dependencies and extras) as name -> version."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = list(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        reqs += extra
    pins = {}
    for req in reqs:
        match = PIN.match(req.strip())
        assert match, f"pyproject.toml: {req!r} is not pinned exactly (name==version)"
        pins[match[1].lower().replace("_", "-")] = match[2]
    return pins


def test_every_dependency_is_pinned_and_torch_is_2_13_0():
    pins = pyproject_pins()
    assert pins["torch"] == "2.13.0"
    for name in ("jupyterlab", "nbgrader", "matplotlib", "ipywidgets", "pytest", "scikit-learn", "tqdm"):
        assert name in pins, f"{name} missing from pyproject.toml"


def test_environment_yml_pins_equal_pyproject():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    conda_pins = {}
    for req in pip_section:
        if req.startswith("-e"):
            continue
        match = PIN.match(req)
        assert match, f"environment.yml: {req!r} is not pinned exactly"
        conda_pins[match[1].lower().replace("_", "-")] = match[2]
    assert conda_pins == pyproject_pins()
    assert "python=3.11" in env["dependencies"]


def test_constraints_agree_with_pyproject():
    constraints = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        match = PIN.match(line.strip())
        if match:
            constraints[match[1].lower().replace("_", "-")] = match[2]
    for name, version in pyproject_pins().items():
        assert constraints.get(name) == version, f"constraints.txt pins {name}=={constraints.get(name)}, pyproject {version}"
    assert not any("nvidia" in name or name == "triton" for name in constraints), "CUDA packages pinned"


def tracked(pattern: str) -> list[str]:
    out = subprocess.run(["git", "ls-files", pattern], cwd=ROOT, capture_output=True, text=True)
    if out.returncode != 0:
        pytest.skip("not a git checkout")
    return out.stdout.split()


def test_no_outputs_committed():
    notebooks = sorted(SOLUTIONS.glob("*/*.ipynb")) + sorted(NOTEBOOKS.glob("*/*.ipynb"))
    assert notebooks, "no notebooks found"
    for path in notebooks:
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert not cell.outputs, f"{path.relative_to(ROOT)}: a code cell has outputs"
                assert cell.execution_count is None, f"{path.relative_to(ROOT)}: execution count"


def test_nothing_generated_is_tracked():
    bad = [p for p in tracked(".") if re.search(
        r"(__pycache__|\.pyc$|\.ipynb_checkpoints|gradebook\.db|^\.venv/|\.egg-info/|^\.exchange/)", p)]
    assert not bad, f"generated files are tracked: {bad[:10]}"


def test_student_and_solution_trees_mirror_each_other():
    sources = {p.relative_to(SOLUTIONS) for p in SOLUTIONS.glob("*/*.ipynb")}
    released = {p.relative_to(NOTEBOOKS) for p in NOTEBOOKS.glob("*/*.ipynb")}
    assert sources == released
    names = [p.name for p in sources]
    assert len(names) == len(set(names)), "notebook file names must be unique across the course"
