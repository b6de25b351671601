"""``python -m grader regrade``: an instructor fixes a check, and the class is graded again.

The fixture chapter's mse_loss check first ships with a bug (its reference sums where it should
average), the class is autograded by nbgrader with it, then the check is fixed and ``regrade``
runs: the learner whose answer was right goes from 0 to 1 point, the learner who summed goes from
1 to 0 with the diagnosis, the untouched notebook stays at 0; the gradebook, the autograded
notebooks and the log say so.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from nbutils import ROOT, isolated_jupyter_env
from submissions import Chapter

pytestmark = pytest.mark.slow

FIXTURES = Path(__file__).resolve().parent / "fixtures"
NB = "99_fixture"
SEED = 77
SUMS = '''def mse_loss(input, target, reduction="mean"):
    d = (input - target) ** 2
    return d if reduction == "none" else d.sum()'''


def run(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600,
                          check=False)


@pytest.fixture(scope="module")
def regraded(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("regrade")
    course = tmp / "course"
    course.mkdir()
    shutil.copytree(FIXTURES / "course/solutions", course / "solutions")
    shutil.copy(ROOT / "nbgrader_config.py", course / "nbgrader_config.py")
    checks = tmp / "checks"
    checks.mkdir()
    fixed = (FIXTURES / "chapters/ch99_fixture.py").read_text()
    buggy = fixed.replace("        return F.mse_loss\n", "        return lambda input, target, "
                          "reduction='mean': F.mse_loss(input, target, reduction='sum' if "
                          "reduction == 'mean' else reduction)\n", 1)
    assert buggy != fixed
    (checks / "ch99_fixture.py").write_text(buggy)
    env = isolated_jupyter_env(tmp)
    env.update(PATH=f"{Path(sys.executable).parent}:{env['PATH']}", LOSSOPT_SEED=str(SEED),
               LOSSOPT_GRADER_PATH=str(checks), NBGRADER_EXCHANGE=str(tmp / "exchange"))
    env.pop("LOSSOPT_GRADEBOOK_URL", None)
    nbgrader = [sys.executable, "-m", "nbgrader"]
    out = run([*nbgrader, "generate_assignment", NB, "--force"], course, env)
    assert out.returncode == 0, out.stderr[-3000:]
    ch = Chapter(course / "solutions" / NB / f"{NB}.ipynb", course / "notebooks" / NB / f"{NB}.ipynb")
    for student, nb in (("right", ch.filled()), ("sums", ch.filled(mse_loss=SUMS)),
                        ("untouched", ch.untouched())):
        path = course / "submitted" / student / NB / f"{NB}.ipynb"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps(nb))
    out = run([*nbgrader, "autograde", NB], course, env)
    assert out.returncode == 0, out.stderr[-3000:]
    before = scores(course)
    (checks / "ch99_fixture.py").write_text(fixed)  # the instructor's fix
    grader = [sys.executable, "-m", "grader", "regrade", NB, "--course", str(course)]
    dry = run([*grader, "--dry-run", "--log", str(tmp / "dry.log")], ROOT, env)
    after_dry = scores(course)
    real = run(grader, ROOT, env)
    return course, before, dry, after_dry, real, tmp


def scores(course: Path) -> dict[str, float]:
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        return {s: gb.find_grade("test_mse_loss", NB, NB, s).score
                for s in ("right", "sums", "untouched")}


def test_the_buggy_check_graded_the_class_wrongly(regraded):
    _, before, *_ = regraded
    assert before == {"right": 0, "sums": 1, "untouched": 0}


def test_regrade_says_whose_score_changed_and_why(regraded):
    course, _, dry, after_dry, real, tmp = regraded
    assert real.returncode == 0, real.stderr[-3000:]
    out = real.stdout
    assert "3 submission(s) regraded, 2 score(s) changed" in out
    assert "right: 5 -> 6 of 7" in out and "sums: 6 -> 5 of 7" in out
    assert "untouched" not in out
    assert "test_mse_loss: 0 -> 1 of 1 (failed -> passed)" in out
    assert "likely mistake: reduction='mean' divides the sum by the number of elements" in out
    assert "lost -> earned" in out and "earned -> lost" in out  # the facets, old and new
    # The same hidden cases: the seed of the first grading.
    log = [json.loads(line) for line in (course / "regrade.log").read_text().splitlines()]
    assert {e["student"] for e in log} == {"right", "sums"}
    assert all(e["seed"] == SEED and e["applied"] for e in log)


def test_the_gradebook_and_autograded_notebooks_follow(regraded):
    course, *_ = regraded
    assert scores(course) == {"right": 1, "sums": 0, "untouched": 0}
    nb = json.loads((course / "autograded/sums" / NB / f"{NB}.ipynb").read_text())
    result = nb["metadata"]["lossopt_grader"]
    cell = next(c for c in result["cells"] if c["grade_id"] == "test_mse_loss")
    assert cell["score"] == 0
    outputs = [c["outputs"] for c in nb["cells"]
               if c.get("metadata", {}).get("nbgrader", {}).get("grade_id") == "test_mse_loss"]
    assert outputs and outputs[0][0]["output_type"] == "error"


def test_dry_run_writes_only_its_log(regraded):
    _, before, dry, after_dry, _, tmp = regraded
    assert dry.returncode == 0, dry.stderr[-3000:]
    assert "would change (dry run: nothing written)" in dry.stdout
    assert after_dry == before
    assert all(not json.loads(line)["applied"]
               for line in (tmp / "dry.log").read_text().splitlines())


def test_clear_errors(tmp_path):
    cmd = [sys.executable, "-m", "grader", "regrade"]
    out = run([*cmd, "00_nothing"], ROOT, dict(__import__("os").environ))
    assert out.returncode == 2 and "unknown assignment '00_nothing'" in out.stderr
    course = tmp_path / "course"
    shutil.copytree(FIXTURES / "course", course)
    out = run([*cmd, NB, "--course", str(course)], ROOT,
              {**__import__("os").environ, "LOSSOPT_GRADER_PATH": str(FIXTURES / "chapters")})
    assert out.returncode == 2 and "no collected submissions of '99_fixture'" in out.stderr


def test_the_report_reads_what_nbgrader_autograde_left(regraded, capsys, monkeypatch):
    from grader.core.cli import main

    course, *_ = regraded
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}:{__import__('os').environ['PATH']}")
    monkeypatch.delenv("LOSSOPT_GRADEBOOK_URL", raising=False)
    assert main(["report", "--course", str(course), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    mse = doc["exercises"]["test_mse_loss"]
    assert sum(f["earned"] for f in mse.values()) >= 1
    said = {d["diagnosis"] for f in mse.values() for d in f["diagnoses"]}
    assert "reduction='mean' divides the sum by the number of elements" in said
    assert sum(doc["score_histograms"][NB].values()) == 3
