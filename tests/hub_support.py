"""A throwaway JupyterHub (deploy/jupyterhub/jupyterhub_config.py) for the classroom tests.

:class:`Hub` starts the deployment's own config file on 127.0.0.1 with configurable-http-proxy,
the exchange service and the course's formgrader, for a roster of made-up users, and gives the
tests API tokens for them. It stops the hub by process id; the hub stops the proxy and its
services, and whatever survives is ended by id too.

:func:`hub_unavailable` decides whether these tests run, are skipped (no proxy installed) or fail
(``REQUIRE_HUB=1``, as in CI).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Literal

import requests

from browser_support import TRUE_WORDS, descendants, end_processes, free_port, start_time
from nbutils import ROOT, isolated_jupyter_env

CONFIG = ROOT / "deploy" / "jupyterhub" / "jupyterhub_config.py"
JUPYTER_CONFIG = ROOT / "deploy" / "jupyterhub" / "jupyter_config"
PROXY = os.environ.get("CONFIGURABLE_HTTP_PROXY", "configurable-http-proxy")
INSTALL_HINT = "npm install -g configurable-http-proxy@4.6.3"
COURSE = "lossopt"


def hub_unavailable(env: dict[str, str], proxy: str = PROXY
                    ) -> tuple[Literal["skip", "fail"], str] | None:
    """Why the hub tests cannot run here: a skip, or a failure with ``REQUIRE_HUB=1``."""
    problems = []
    if shutil.which(proxy) is None:
        problems.append(f"configurable-http-proxy is not installed (`{INSTALL_HINT}`)")
    try:
        import jupyterhub  # noqa: F401
    except ImportError:
        problems.append("the jupyterhub package is missing (run `make setup`)")
    if not problems:
        return None
    reason = "JupyterHub tests need the hub and its proxy: " + "; ".join(problems)
    if env.get("REQUIRE_HUB", "").strip().lower() in TRUE_WORDS:
        return "fail", reason + " -- REQUIRE_HUB is set, so this is a failure"
    return "skip", reason + " (set REQUIRE_HUB=1 to make this a failure)"


class Hub:
    """The course's JupyterHub for one test module, in ``state`` (its database, exchange files)."""

    def __init__(self, state: Path, course_dir: Path, roster: dict[str, list[str]],
                 env: dict[str, str] | None = None) -> None:
        self.state = state
        self.course_dir = course_dir
        self.roster = roster
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.admin_token = secrets.token_hex(24)
        self.password = secrets.token_hex(8)
        self.log_path = state / "jupyterhub.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.tokens: dict[str, str] = {}
        self.env = self._environment(env or {})

    def _environment(self, extra: dict[str, str]) -> dict[str, str]:
        self.state.mkdir(parents=True, exist_ok=True)
        roster = self.state / "roster.json"
        roster.write_text(json.dumps(self.roster))
        env = isolated_jupyter_env(self.state)
        env.update(extra)
        env.update({
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}",
            "PYTHONPATH": str(ROOT),
            "LOSSOPT_COURSE": COURSE, "LOSSOPT_ROSTER": str(roster),
            "LOSSOPT_COURSE_DIR": str(self.course_dir),
            "LOSSOPT_HUB_URL": self.url,
            "LOSSOPT_HUB_API_PORT": str(free_port()), "LOSSOPT_PROXY_API_PORT": str(free_port()),
            "LOSSOPT_FORMGRADER_PORT": str(free_port()),
            "LOSSOPT_EXCHANGE_PORT": str(free_port()),
            "LOSSOPT_AUTHENTICATOR": "shared-password", "LOSSOPT_SHARED_PASSWORD": self.password,
            "LOSSOPT_HUB_ADMIN_TOKEN": self.admin_token,
        })
        return env

    @property
    def exchange_url(self) -> str:
        return f"{self.url}/services/exchange/"

    @property
    def formgrader_url(self) -> str:
        return f"{self.url}/services/formgrader-{COURSE}/"

    def start(self, timeout: float = 120) -> None:
        """Start the hub from the deployment's config and wait until the proxy routes to it and
        both services answer."""
        log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "jupyterhub", "-f", str(CONFIG)], cwd=self.state, env=self.env,
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"jupyterhub exited with {self.process.returncode}:\n"
                                   f"{self.log_tail()}")
            try:
                ready = (requests.get(f"{self.url}/hub/api/", timeout=5).ok
                         and self.api("GET", "services")  # the admin service's token works
                         and requests.get(self.exchange_url + "api/assignments",
                                          timeout=5).status_code == 403
                         and requests.get(self.formgrader_url, timeout=5,
                                          allow_redirects=False).status_code in (302, 303))
                if ready:
                    return
            except (requests.RequestException, RuntimeError):
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the hub was not ready within {timeout:.0f} s:\n"
                                   f"{self.log_tail()}")
            time.sleep(0.5)

    def api(self, method: str, path: str, **kwargs: Any) -> Any:
        """The hub's REST API with the course-admin service's token."""
        response = requests.request(method, f"{self.url}/hub/api/{path}", timeout=30,
                                    headers={"Authorization": f"token {self.admin_token}"},
                                    **kwargs)
        if not response.ok:
            raise RuntimeError(f"{method} {path}: {response.status_code} {response.text[:300]}")
        return response.json() if response.content else None

    def token(self, user: str) -> str:
        """An API token of ``user`` (created once through the hub's API, as a provisioning
        script or the user's own Token page would)."""
        if user not in self.tokens:
            self.tokens[user] = self.api("POST", f"users/{user}/tokens",
                                         json={"note": "classroom test"})["token"]
        return self.tokens[user]

    def stop(self) -> None:
        """SIGTERM the hub by id (it stops the proxy and services), then end what is left by id."""
        if self.process is None:
            return
        left = descendants(self.process.pid)
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        end_processes(left, grace=10)
        alive = [pid for pid, start in left if start_time(pid) == start]
        if alive:
            raise RuntimeError(f"processes {alive} of the hub outlived SIGKILL")

    def log_tail(self, chars: int = 5000) -> str:
        """The end of the hub's log (its services log there too), for failure messages."""
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no log)"


def nbgrader_env(hub: Hub, token: str, home: Path, extra: dict[str, str] | None = None
                 ) -> dict[str, str]:
    """The environment of someone running nbgrader on the hub: their token, the exchange
    plugin's config (deploy/jupyterhub/jupyter_config), the venv first on PATH."""
    env = isolated_jupyter_env(home)
    env.update(extra or {})
    env.update({
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}",
        "PYTHONPATH": str(ROOT),
        "JUPYTER_CONFIG_PATH": str(JUPYTER_CONFIG),
        "JUPYTERHUB_API_TOKEN": token,
        "LOSSOPT_EXCHANGE_URL": hub.exchange_url,
        "LOSSOPT_COURSE": COURSE,
        "NBGRADER_EXCHANGE": str(home / "unused-exchange"),
    })
    return env


def nbgrader(cwd: Path, env: dict[str, str], *args: str, ok: bool = True
             ) -> subprocess.CompletedProcess:
    """Run an nbgrader command; with ``ok``, fail the test when it fails."""
    proc = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)
    if ok:
        assert proc.returncode == 0, f"nbgrader {' '.join(args)}:\n{proc.stderr[-4000:]}"
    return proc
