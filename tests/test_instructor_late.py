"""Late work: the percentage penalty plugin and `python -m grader extend`."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from nbutils import ROOT
from traitlets import TraitError

from grader.instructor.late import PercentLatePenalty

DAY, HOUR = 86400, 3600


def test_percent_per_started_day_with_a_cap():
    plugin = PercentLatePenalty(percent=10, period="day", cap=25)
    assert plugin.late_submission_penalty("s", 12.0, 0) == 0
    assert plugin.late_submission_penalty("s", 12.0, 1) == pytest.approx(1.2)  # a started day
    assert plugin.late_submission_penalty("s", 12.0, DAY) == pytest.approx(1.2)
    assert plugin.late_submission_penalty("s", 12.0, DAY + 1) == pytest.approx(2.4)
    assert plugin.late_submission_penalty("s", 12.0, 10 * DAY) == pytest.approx(3.0)  # the cap


def test_per_hour_and_grace():
    plugin = PercentLatePenalty(percent=5, period="hour", grace_minutes=15)
    assert plugin.late_submission_penalty("s", 10.0, 15 * 60) == 0
    assert plugin.late_submission_penalty("s", 10.0, 15 * 60 + 1) == pytest.approx(0.5)
    assert plugin.late_submission_penalty("s", 10.0, 3 * HOUR) == pytest.approx(1.5)
    assert plugin.late_submission_penalty("s", 10.0, 100 * HOUR) == pytest.approx(10.0)


@pytest.mark.parametrize("bad", [{"percent": -1}, {"cap": 150}, {"period": "week"},
                                 {"grace_minutes": -5}])
def test_bad_settings_are_refused_with_the_reason(bad):
    with pytest.raises(TraitError):
        PercentLatePenalty(**bad)


def test_the_course_configures_the_plugin():
    from traitlets.config.loader import PyFileConfigLoader
    from traitlets.utils.importstring import import_item

    c = PyFileConfigLoader("nbgrader_config.py", path=str(ROOT)).load_config()
    assert import_item(c.AssignLatePenalties.plugin_class) is PercentLatePenalty
    plugin = PercentLatePenalty(config=c)
    assert (plugin.percent, plugin.period, plugin.cap) == (10, "day", 50)


def test_extensions_reach_the_gradebook(tmp_path, monkeypatch):
    from nbgrader.api import Gradebook

    # Gradebook() runs alembic from PATH: the venv's, as `make` puts it first.
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")

    url = f"sqlite:///{tmp_path / 'gradebook.db'}"
    with Gradebook(url) as gb:
        gb.add_assignment("01_classification_losses", duedate=datetime(2026, 12, 1, 12))
        gb.add_student("ada")

    def extend(*args):
        return subprocess.run([sys.executable, "-m", "grader", "extend", *args, "--db", url],
                              cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)

    done = extend("01_classification_losses", "ada", "--days", "2", "--hours", "3")
    assert done.returncode == 0, done.stderr
    assert "ada" in done.stdout and "2026-12-03 15:00" in done.stdout
    with Gradebook(url) as gb:
        submission = gb.find_submission("01_classification_losses", "ada")
        assert submission.extension == timedelta(days=2, hours=3)
        assert submission.duedate == datetime(2026, 12, 3, 15)
    assert extend("01_classification_losses", "ada", "--remove").returncode == 0
    with Gradebook(url) as gb:
        assert gb.find_submission("01_classification_losses", "ada").extension is None

    for args, said in [(("nope", "ada", "--days", "1"), "no assignment 'nope'"),
                       (("01_classification_losses", "bob", "--days", "1"), "no student 'bob'"),
                       (("01_classification_losses", "ada"), "--days")]:
        out = extend(*args)
        assert out.returncode == 2 and said in out.stderr, out.stderr
    missing = subprocess.run([sys.executable, "-m", "grader", "extend", "a", "b", "--days", "1",
                              "--db", f"sqlite:///{tmp_path / 'none.db'}"], cwd=ROOT,
                             capture_output=True, text=True, timeout=120, check=False)
    assert missing.returncode == 2 and "no gradebook at" in missing.stderr


def test_extend_uses_the_gradebook_nbgrader_uses(monkeypatch):
    from grader.instructor.late import default_gradebook_url

    monkeypatch.delenv("LOSSOPT_GRADEBOOK_URL", raising=False)
    assert default_gradebook_url() == f"sqlite:///{ROOT / 'gradebook.db'}"
    monkeypatch.setenv("LOSSOPT_GRADEBOOK_URL", "postgresql://grader@db.example.org/lossopt")
    assert default_gradebook_url() == "postgresql+psycopg://grader@db.example.org/lossopt"
