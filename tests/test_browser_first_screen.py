"""The first screen a learner sees after `make lab`, in a real browser (issue 11).

The server starts with the arguments `make lab` passes (read from `make -n lab`, so the test
follows the Makefile) and with the course's settings overrides installed where `make setup`
installs them, without the user settings the other browser tests add. The learner must land on
the README rendered (not its Markdown source), the news question must be off, and the file
browser must not show build artifacts.
"""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser_support import JupyterLab, copy_course, launch_chromium
from nbutils import ROOT
from test_browser import VIEWPORT, require_browser

pytestmark = pytest.mark.browser

MAKE_LAB_OPTIONS = ("--LabApp.default_url=", "--ContentsManager.hide_globs=")


def make_lab_options() -> list[str]:
    """The options of the `jupyter lab` command `make lab` runs that shape the first screen."""
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    plan = subprocess.run(["make", "-n", "lab"], cwd=ROOT, capture_output=True, text=True,
                          timeout=60, check=True).stdout.replace("\\\n", " ")
    line = next(line for line in plan.splitlines() if "jupyter lab" in line)
    options = [arg for arg in shlex.split(line) if arg.startswith(MAKE_LAB_OPTIONS)]
    assert len(options) == len(MAKE_LAB_OPTIONS), f"`make lab` no longer passes {MAKE_LAB_OPTIONS}"
    return options


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JupyterLab]:
    require_browser()
    tmp = tmp_path_factory.mktemp("first-screen")
    course = copy_course(tmp / "course")
    shutil.copy(ROOT / "README.md", course / "README.md")
    shutil.copytree(ROOT / "docs" / "images", course / "docs" / "images")
    (course / "lossopt_course.egg-info").mkdir(exist_ok=True)  # what `pip install -e .` leaves
    # `make setup` copies the overrides into JupyterLab's application settings directory.
    settings = tmp / "app-settings"
    (settings / "overrides.d").mkdir(parents=True)
    shutil.copy(ROOT / "jupyterlab" / "overrides.json",
                settings / "overrides.d" / "lossopt-course.json")
    with JupyterLab(course, tmp / "home", test_settings=False,
                    extra_args=(*make_lab_options(), f"--LabApp.app_settings_dir={settings}")
                    ) as server:
        yield server


@pytest.fixture(scope="module")
def page(lab: JupyterLab) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = launch_chromium(playwright)
        try:
            page = chromium.new_context(viewport=VIEWPORT).new_page()
            page.goto(lab.url("/"))  # the server's default page, as `make lab` prints it
            yield page
        finally:
            chromium.close()


def test_the_readme_opens_rendered(page: Any):
    tab = page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab.lm-mod-current")
    tab.wait_for(timeout=90_000)
    assert "README.md" in tab.inner_text()
    main = page.locator(".jp-MainAreaWidget:not(.lm-mod-hidden)")
    main.locator(".jp-RenderedMarkdown h1").wait_for(timeout=60_000)
    assert "Losses & Optimizers in PyTorch" in main.locator(".jp-RenderedMarkdown h1").inner_text()
    assert main.locator(".cm-editor").count() == 0, "the README opened as Markdown source"


def test_the_news_question_is_off(lab: JupyterLab):
    # The server here never fetches news (--LabApp.news_url=None, as every test server), so the
    # pop-up itself cannot show: what `make lab` relies on is the course's settings override,
    # which turns the question off ("none", JupyterLab's default, asks the learner).
    settings = lab.api("lab/api/settings/@jupyterlab/apputils-extension:notification")
    assert settings["schema"]["properties"]["fetchNews"]["default"] == "false", (
        json.dumps(settings["schema"]["properties"]["fetchNews"]))


def test_the_file_browser_hides_build_artifacts(page: Any, lab: JupyterLab):
    listing = {item["name"] for item in lab.api("api/contents")["content"]}
    assert "notebooks" in listing and "README.md" in listing
    assert not any(name.endswith(".egg-info") for name in listing), sorted(listing)
    assert Path(lab.course / "lossopt_course.egg-info").is_dir()  # it is there, only hidden
