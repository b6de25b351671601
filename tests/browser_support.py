"""Support for the browser tests: when they may run, a throwaway JupyterLab server, Chromium.

The tests in ``tests/test_browser.py`` drive the course the way people use it: a real JupyterLab
in headless Chromium. This module holds the machinery they share:

- :func:`browser_unavailable` decides whether they run, are skipped (no Chromium) or fail
  (no Chromium but ``REQUIRE_BROWSER=1``, as in CI);
- :class:`JupyterLab` starts a server on 127.0.0.1 with a token and isolated Jupyter config,
  serving a temporary copy of the course, and stops it and its kernels by process id;
- :func:`launch_chromium` starts Debian's Chromium through Playwright (never a downloaded one);
- the page helpers do in JupyterLab what a person does: open a notebook, restart and run all,
  run from a cell, type into a cell, press Validate, and read prompts and errors off the page.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Literal, Self

from nbutils import ROOT, isolated_jupyter_env

try:
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
except ImportError:  # browser_unavailable() reports it; the tests are skipped
    PlaywrightTimeout = TimeoutError

CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
INSTALL_HINT = "apt-get install -y chromium"
CHROMIUM_ARGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-quic", "--no-first-run", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage",
)
TRUE_WORDS = {"1", "true", "yes", "on"}
# Server extensions switched on (off) over the venv's configuration.
EXTENSIONS = {"nbgrader.server_extensions.validate_assignment": False,
              "grader.core.jupyter_validate": True}


# ---------------------------------------------------------------------------------------------
# Run, skip or fail


def browser_unavailable(chromium: Path,
                        env: dict[str, str]) -> tuple[Literal["skip", "fail"], str] | None:
    """Why the browser tests cannot run here, and whether that is a skip or a failure.

    Args:
        chromium: The Chromium binary the tests drive.
        env: The environment; ``REQUIRE_BROWSER=1`` turns a missing browser into a failure.

    Returns:
        ``None`` when Chromium and Playwright are there; otherwise ``("skip", reason)``, or
        ``("fail", reason)`` when the environment requires the browser tests.
    """
    problems = []
    if not (chromium.is_file() and os.access(chromium, os.X_OK)):
        problems.append(f"Chromium is not installed at {chromium} "
                        f"(install it with `{INSTALL_HINT}`)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        problems.append("the playwright Python package is missing (run `make setup`)")
    if not problems:
        return None
    reason = "browser tests need a browser: " + "; ".join(problems)
    if env.get("REQUIRE_BROWSER", "").strip().lower() in TRUE_WORDS:
        return "fail", reason + " -- REQUIRE_BROWSER is set, so this is a failure"
    return "skip", reason + " (set REQUIRE_BROWSER=1 to make this a failure)"


# ---------------------------------------------------------------------------------------------
# A throwaway copy of the course


def copy_course(dest: Path, source: Path = ROOT) -> Path:
    """Copy what the course directory needs (sources, student versions, nbgrader config)."""
    dest.mkdir(parents=True, exist_ok=True)
    skip = shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__")
    for folder in ("solutions", "notebooks"):
        shutil.copytree(source / folder, dest / folder, ignore=skip)
    shutil.copy(source / "nbgrader_config.py", dest / "nbgrader_config.py")
    return dest


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ---------------------------------------------------------------------------------------------
# Processes, by id


def start_time(pid: int) -> str | None:
    """When a live process started (to tell it from a later one with the same id); None when
    there is no such process or it has exited (a zombie waiting to be reaped)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return None if fields[0] in ("Z", "X") else fields[19]


def descendants(pid: int, *, include_self: bool = False) -> list[tuple[int, str]]:
    """Every process below ``pid`` (kernels, nbgrader's validation kernels), with start times;
    with ``include_self``, ``pid`` itself too (first)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid] if include_self else list(children.get(pid, []))
    while todo:
        child = todo.pop()
        start = start_time(child)
        if start is not None:
            found.append((child, start))
        todo.extend(children.get(child, []))
    return found


def end_processes(processes: list[tuple[int, str]], grace: float) -> None:
    """SIGTERM the processes that are still the same processes, then SIGKILL what remains."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        alive = [(pid, start) for pid, start in processes if start_time(pid) == start]
        for pid, _ in alive:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + grace
        while alive and time.monotonic() < deadline:
            time.sleep(0.1)
            alive = [(pid, start) for pid, start in alive if start_time(pid) == start]
        processes = alive


# ---------------------------------------------------------------------------------------------
# JupyterLab


class JupyterLab:
    """A JupyterLab server on 127.0.0.1 for one test module, serving ``course``.

    Jupyter, IPython and matplotlib config live under ``home`` (the venv's own ``sys.prefix``
    paths stay on the search path, so nbgrader's and ipywidgets' extensions load).
    """

    def __init__(self, course: Path, home: Path, extra_args: tuple[str, ...] = (),
                 test_settings: bool = True) -> None:
        """``extra_args`` go on the server's command line; ``test_settings=False`` leaves out
        the user settings the tests rely on (windowing off, no news), to see what a learner
        sees with the course's own settings."""
        self.course = course
        self.home = home
        self.extra_args = tuple(extra_args)
        self.test_settings = test_settings
        self.port = free_port()
        self.token = secrets.token_hex(16)
        self.log_path = home / "jupyterlab.log"
        self.env = self._environment()
        self.process: subprocess.Popen[bytes] | None = None

    def _environment(self) -> dict[str, str]:
        env = isolated_jupyter_env(self.home)
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
        # A learner's kernel shows its plots inline; the test helpers' Agg backend would hide them.
        env.pop("MPLBACKEND", None)
        env.pop("JUPYTER_PATH", None)
        env.pop("JUPYTER_CONFIG_PATH", None)
        # Validate is answered by the grading core, not by nbgrader's handler (as `make setup`
        # configures the venv); the user config wins over the venv's, whatever it says.
        server_config = Path(env["JUPYTER_CONFIG_DIR"]) / "jupyter_server_config.json"
        server_config.write_text(json.dumps({"ServerApp": {"jpserver_extensions": EXTENSIONS}}))
        if not self.test_settings:
            return env
        settings = Path(env["JUPYTER_CONFIG_DIR"]) / "lab" / "user-settings" / "@jupyterlab"
        user_settings = {
            # Every cell stays attached to the page, so outputs far down a notebook can be read.
            "notebook-extension/tracker": {"windowingMode": "none"},
            # No pop-up asking about news, and no attempt to reach the internet.
            "apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
            "extensionmanager-extension/plugin": {"enabled": False},
        }
        for name, values in user_settings.items():
            path = settings / f"{name}.jupyterlab-settings"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(values))
        return env

    def url(self, path: str = "lab") -> str:
        """An address on this server, with the token."""
        sep = "&" if "?" in path else "?"
        return f"http://127.0.0.1:{self.port}/{path.lstrip('/')}{sep}token={self.token}"

    def start(self, timeout: float = 120) -> None:
        """Start the server and wait until its API answers."""
        command = [
            sys.executable, "-m", "jupyterlab", "--no-browser",
            "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={self.port}",
            "--ServerApp.port_retries=0", f"--IdentityProvider.token={self.token}",
            f"--ServerApp.root_dir={self.course}",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
            "--LabApp.news_url=None", *self.extra_args,
        ]
        if os.geteuid() == 0:  # CI containers run as root
            command.append("--ServerApp.allow_root=True")
        log = self.log_path.open("wb")
        # cwd is the course: nbgrader's Validate and formgrader read nbgrader_config.py from it.
        self.process = subprocess.Popen(command, cwd=self.course, env=self.env, stdout=log,
                                        stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"JupyterLab exited with {self.process.returncode}:\n"
                                   f"{self.log_tail()}")
            try:
                self.api("api/status")
                return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"JupyterLab did not answer within {timeout:.0f} s:\n{self.log_tail()}")

    def api(self, path: str, method: str = "GET") -> Any:
        """Call the server's REST API; the decoded JSON answer (None when empty)."""
        request = urllib.request.Request(self.url(path), method=method)
        with urllib.request.urlopen(request, timeout=10) as response:
            body = response.read()
        return json.loads(body) if body else None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop the server by its process id (terminate, then kill), and every kernel it left."""
        if self.process is None or self.process.poll() is not None:
            return
        left = descendants(self.process.pid)
        try:
            for kernel in self.api("api/kernels"):
                self.api(f"api/kernels/{kernel['id']}", method="DELETE")
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            pass  # the server is going away anyway; its kernels are ended by id below
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        end_processes(left, grace=5)
        alive = [pid for pid, start in left if start_time(pid) == start]
        if alive:
            raise RuntimeError(f"processes {alive} of JupyterLab outlived SIGKILL")

    def log_tail(self, chars: int = 4000) -> str:
        """The end of the server's log, for failure messages."""
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no log)"


# ---------------------------------------------------------------------------------------------
# Chromium


def launch_chromium(playwright: Any) -> Any:
    """Debian's Chromium, headless and offline-friendly (Playwright gives it a fresh profile)."""
    return playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                      args=list(CHROMIUM_ARGS))


# ---------------------------------------------------------------------------------------------
# JupyterLab pages: what a person does with the mouse and keyboard

NOTEBOOK = ".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook"
CELLS = f"{NOTEBOOK} .jp-Cell"
DIALOG = ".jp-Dialog"

# Watch the prompts: a run has started once some cell shows [*], and has finished when none does.
# A MutationObserver sees a [*] even when a quick cell shows it for a few milliseconds only.
WATCH_RUN = """() => {
    const busy = () => [...document.querySelectorAll('%s .jp-InputPrompt')]
        .some(p => p.textContent.includes('*'));
    window.__runStarted = false;
    window.__runObserver?.disconnect();
    window.__runObserver = new MutationObserver(() => { if (busy()) window.__runStarted = true; });
    window.__runObserver.observe(document.body,
                                 {subtree: true, childList: true, characterData: true});
    window.__runSettled = () => window.__runStarted && !busy();
}""" % CELLS

# One record per cell of the notebook on screen, in order: its type, prompt and stderr outputs
# (JupyterLab renders a traceback and a stream written to stderr with the same MIME type).
READ_CELLS = """() => [...document.querySelectorAll('%s')].map(cell => ({
    code: cell.classList.contains('jp-CodeCell'),
    prompt: cell.querySelector('.jp-InputPrompt')?.textContent.trim() ?? '',
    stderr: [...cell.querySelectorAll(
        '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]')]
        .map(o => o.textContent),
}))""" % CELLS
EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Interrupt|Exit)\b")


def open_notebook(page: Any, lab: JupyterLab, path: str, timeout: float = 90) -> None:
    """Open a notebook in a fresh JupyterLab workspace and wait for its kernel to be idle."""
    page.goto(lab.url(f"lab/tree/{path}?reset"))  # reset: no tabs left over from another test
    page.locator(CELLS).first.wait_for(timeout=timeout * 1000)
    wait_kernel_idle(page, timeout)
    close_left_sidebar(page)


def close_left_sidebar(page: Any) -> None:
    """Close the file browser (if open) so that screenshots show the main area."""
    current = page.locator(".jp-SideBar.jp-mod-left .lm-TabBar-tab.lm-mod-current")
    if current.count():
        current.click()
        page.locator("#jp-left-stack").wait_for(state="hidden")


def wait_kernel_idle(page: Any, timeout: float) -> None:
    """Wait until the notebook's kernel is up and idle, accepting a "Select Kernel" dialog.

    JupyterLab asks which kernel to start when it opens a notebook before it has the kernel
    specs; a person presses "Select" (Python 3 is preselected), so the test does too.
    """
    deadline = time.monotonic() + timeout
    idle = page.locator(".jp-StatusBar-TextItem", has_text="| Idle")
    select = page.locator(DIALOG, has_text="Select Kernel")
    while time.monotonic() < deadline:
        if select.count():
            select.locator(".jp-mod-accept").click()
        if idle.count():
            return
        page.wait_for_timeout(200)
    raise AssertionError(f"the kernel did not become idle within {timeout:.0f} s (status bar: "
                         f"{page.locator('.jp-StatusBar-Widget').all_inner_texts()})")


def menu(page: Any, top: str, item: str) -> None:
    """Choose ``item`` (its label's beginning) from the menu bar's ``top`` menu."""
    page.get_by_role("menuitem", name=top, exact=True).click()
    page.get_by_role("menuitem", name=re.compile("^" + re.escape(item))).click()


def run_cells(page: Any, start: Any, timeout: float) -> None:
    """Run cells with ``start()`` (a menu choice) and wait until none is queued or running."""
    page.evaluate(WATCH_RUN)
    start()
    try:
        page.wait_for_function("() => window.__runSettled()", timeout=timeout * 1000,
                               polling=250)
    except PlaywrightTimeout:
        raise AssertionError(f"cells were still running after {timeout:.0f} s") from None
    finally:
        page.evaluate("() => window.__runObserver?.disconnect()")


def restart_and_run_all(page: Any, timeout: float) -> None:
    """Kernel > Restart Kernel and Run All Cells..., confirm, and wait for the run to stop."""
    def start() -> None:
        menu(page, "Kernel", "Restart Kernel and Run All Cells")
        page.locator(DIALOG, has_text="Restart Kernel?").locator(".jp-mod-accept").click()
    run_cells(page, start, timeout)


def run_from(page: Any, index: int, timeout: float) -> None:
    """Select cell ``index`` and choose Run > Run Selected Cell and All Below."""
    cell = page.locator(CELLS).nth(index)
    for _ in range(5):  # a click on a cell far down can land before it has scrolled into place
        cell.scroll_into_view_if_needed()
        cell.locator(".jp-InputPrompt").click()
        if "jp-mod-active" in (cell.get_attribute("class") or ""):
            break
        page.wait_for_timeout(300)
    else:
        raise AssertionError(f"could not select cell {index}")
    run_cells(page, lambda: menu(page, "Run", "Run Selected Cell and All Below"), timeout)


def read_cells(page: Any) -> list[dict[str, Any]]:
    """Each cell on screen: ``code`` (bool), ``prompt`` ("[3]:"), ``ran`` (bool), ``errors``
    (the exception of each traceback with its message, e.g. "NotImplementedError: ...")."""
    cells = page.evaluate(READ_CELLS)
    for cell in cells:
        cell["ran"] = bool(re.fullmatch(r"\[\d+\]:", cell["prompt"]))
        cell["errors"] = [e for e in map(exception_of, cell.pop("stderr")) if e is not None]
    return cells


def exception_of(output: str) -> str | None:
    """The exception that ends a traceback ("ValueError: message", the message may span lines),
    or None for other stderr output such as a warning."""
    lines = output.rstrip().splitlines()
    for i in range(len(lines) - 1, -1, -1):
        if EXCEPTION_LINE.match(lines[i]):  # at the line's start: code lines are indented
            return "\n".join(lines[i:]).strip()
    return None


def set_cell_source(page: Any, index: int, source: str) -> None:
    """Replace the text of cell ``index`` as a person would: click, select all, type."""
    editor = page.locator(CELLS).nth(index).locator(".cm-content")
    editor.click()
    page.keyboard.press("ControlOrMeta+a")
    # insert_text types the text in one input event: no auto-indent or bracket closing.
    page.keyboard.insert_text(source)
    page.keyboard.press("Escape")  # back to command mode, as after editing


def validate(page: Any, timeout: float) -> tuple[Any, float]:
    """Press the Validate button (nbgrader's labextension, answered by the grading core); return
    the "Validation Results" dialog and the seconds from the click to the dialog."""
    dialog = page.locator(DIALOG, has_text="Validation Results")
    start = time.monotonic()
    page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .validate-button").click()
    try:
        dialog.wait_for(timeout=timeout * 1000)
    except PlaywrightTimeout:
        other = page.locator(DIALOG).all_inner_texts()
        raise AssertionError(f"no Validation Results within {timeout:.0f} s "
                             f"(dialogs on screen: {other})") from None
    return dialog, time.monotonic() - start
