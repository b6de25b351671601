"""The Makefile's setup on a course that was copied or moved with its .venv.

A venv holds absolute paths (its scripts' shebangs, the editable install's link to the
checkout): a copied one would grade with the original checkout's code. ``make setup`` must
rebuild it, and must leave a venv made for this directory alone. ``make -n`` shows what make
would run without running it.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def course_copy(tmp_path: Path, made_for: str) -> Path:
    """The files ``make setup`` reads, and a venv whose activate script names ``made_for``."""
    for name in ("Makefile", "pyproject.toml", "constraints.txt", "jupyterlab/overrides.json"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, tmp_path / name)
    venv = tmp_path / ".venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "activate").write_text(f'# This file must be used with "source"\n'
                                           f'VIRTUAL_ENV="{made_for}"\nexport VIRTUAL_ENV\n')
    (venv / ".installed").touch()  # newer than the pins: nothing to reinstall for them
    return tmp_path


def dry_run(course: Path) -> str:
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    out = subprocess.run(["make", "-n", "setup"], cwd=course, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_a_venv_copied_with_the_course_is_rebuilt(tmp_path):
    plan = dry_run(course_copy(tmp_path, "/home/someone/original-course/.venv"))
    assert "was made for /home/someone/original-course/.venv" in plan
    assert "rm -rf .venv" in plan and "pip install" in plan, plan


def test_a_venv_made_here_is_kept(tmp_path):
    plan = dry_run(course_copy(tmp_path, str(tmp_path.resolve() / ".venv")))
    assert "rm -rf" not in plan and "pip install" not in plan, plan


def test_one_jupyter_configuration_for_make_binder_and_conda(tmp_path):
    """`make setup`, Binder's postBuild and conda users all run jupyterlab/configure, which
    configures the environment on PATH: here stand-ins for `python` and `jupyter` record what it
    asks of them, and the prefix they report receives the files."""
    prefix, calls = tmp_path / "prefix", tmp_path / "calls"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python").write_text(f'#!/bin/sh\necho "{prefix}"\n')
    (bin_dir / "jupyter").write_text(f'#!/bin/sh\necho "$@" >> "{calls}"\n')
    for stub in bin_dir.iterdir():
        stub.chmod(0o755)
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin"}
    out = subprocess.run(["bash", str(ROOT / "jupyterlab" / "configure")], env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    asked = calls.read_text().splitlines()
    assert "labextension enable @jupyter/nbgrader" in asked
    assert ("server extension disable --sys-prefix "
            "nbgrader.server_extensions.validate_assignment") in asked
    assert "server extension enable --sys-prefix grader.core.jupyter_validate" in asked
    validate = prefix / "etc/jupyter/jupyter_server_config.d/grader.core.jupyter_validate.json"
    assert '"grader.core.jupyter_validate": true' in validate.read_text()
    overrides = prefix / "share/jupyter/lab/settings/overrides.d/lossopt-course.json"
    assert overrides.read_text() == (ROOT / "jupyterlab" / "overrides.json").read_text()
    assert "bash jupyterlab/configure" in (ROOT / "postBuild").read_text()
    assert "bash jupyterlab/configure" in (ROOT / "Makefile").read_text()
