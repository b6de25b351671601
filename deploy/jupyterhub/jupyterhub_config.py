"""JupyterHub for one course on one server: students, graders, instructors, formgrader, exchange.

Run from a state directory (the hub's database, cookie secret and the exchange's files live there):

    LOSSOPT_COURSE_DIR=/srv/lossopt/course LOSSOPT_ROSTER=/srv/lossopt/roster.json \\
    LOSSOPT_GRADEBOOK_URL=postgresql+psycopg://grader@127.0.0.1:5432/lossopt \\
        jupyterhub -f /path/to/deploy/jupyterhub/jupyterhub_config.py

The tests start exactly this file (tests/hub_support.py); docs/instructor-guide.md explains it,
and config.yaml beside it is the same course for Zero to JupyterHub's Helm chart.

Settings (environment):

- ``LOSSOPT_COURSE``: course id (default ``lossopt``); groups ``formgrade-<course>`` (graders
  and instructors: the formgrader) and ``nbgrader-<course>`` (students: the exchange).
- ``LOSSOPT_ROSTER``: JSON file ``{"instructors": [...], "graders": [...], "students": [...]}``.
- ``LOSSOPT_COURSE_DIR``: the course directory the formgrader serves (a checkout of this
  repository on the grading account's disk).
- ``LOSSOPT_GRADEBOOK_URL`` (+ ``PGPASSWORD`` or ``~/.pgpass``): the gradebook, see
  nbgrader_config.py. Passed to the formgrader service.
- ``LOSSOPT_HUB_URL`` (default ``http://127.0.0.1:8000``), ``LOSSOPT_HUB_API_PORT`` (8081),
  ``LOSSOPT_PROXY_API_PORT`` (8001), ``LOSSOPT_FORMGRADER_PORT`` (9101),
  ``LOSSOPT_EXCHANGE_PORT`` (9102): where things listen. Only the proxy's public URL needs to be
  reachable from outside.
- ``LOSSOPT_AUTHENTICATOR``: ``pam`` (default: the server's system accounts, as the
  LocalProcessSpawner needs) or ``shared-password`` (``LOSSOPT_SHARED_PASSWORD``; for tests and
  short workshops only).
- ``LOSSOPT_HUB_ADMIN_TOKEN``: optional token of a ``course-admin`` service that may manage
  users and tokens (provisioning scripts, the tests).
- ``LOSSOPT_HUB_DB_URL``: the hub's own database (default SQLite in the state directory).
"""

import json
import os
import sys
from pathlib import Path

c = get_config()  # noqa: F821 (provided by JupyterHub when it loads this file)

HERE = Path(__file__).resolve().parent
COURSE = os.environ.get("LOSSOPT_COURSE", "lossopt")
STATE = Path.cwd()
COURSE_DIR = Path(os.environ.get("LOSSOPT_COURSE_DIR", HERE.parent.parent)).resolve()
PYTHON = sys.executable  # the hub's environment has the course installed (make setup)
STAFF_GROUP, STUDENT_GROUP = f"formgrade-{COURSE}", f"nbgrader-{COURSE}"
FORMGRADER, EXCHANGE = f"formgrader-{COURSE}", "exchange"

roster_path = os.environ.get("LOSSOPT_ROSTER")
roster = json.loads(Path(roster_path).read_text()) if roster_path else {}
instructors = list(roster.get("instructors", []))
graders = list(roster.get("graders", []))
students = list(roster.get("students", []))

# --- Network: the proxy is the only public door; the hub and services listen on localhost.
hub_url = os.environ.get("LOSSOPT_HUB_URL", "http://127.0.0.1:8000")
c.JupyterHub.bind_url = hub_url
c.JupyterHub.hub_bind_url = f"http://127.0.0.1:{os.environ.get('LOSSOPT_HUB_API_PORT', '8081')}"
# configurable-http-proxy (npm), started and stopped by the hub.
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{os.environ.get('LOSSOPT_PROXY_API_PORT', '8001')}"
c.ConfigurableHTTPProxy.should_start = True
c.JupyterHub.db_url = os.environ.get("LOSSOPT_HUB_DB_URL", f"sqlite:///{STATE / 'jupyterhub.sqlite'}")
c.JupyterHub.cookie_secret_file = str(STATE / "jupyterhub_cookie_secret")
c.JupyterHub.cleanup_servers = True
c.JupyterHub.cleanup_proxy = True

# --- Who can log in
if os.environ.get("LOSSOPT_AUTHENTICATOR", "pam") == "shared-password":
    c.JupyterHub.authenticator_class = "shared-password"
    c.SharedPasswordAuthenticator.user_password = os.environ["LOSSOPT_SHARED_PASSWORD"]
else:
    c.JupyterHub.authenticator_class = "pam"
c.Authenticator.allowed_users = set(instructors + graders + students)
c.Authenticator.admin_users = set()  # instructors are not hub admins: roles below say what they may do

# --- Groups (nbgrader's convention) and roles (JupyterHub 5 scopes)
c.JupyterHub.load_groups = {
    STAFF_GROUP: {"users": instructors + graders},
    STUDENT_GROUP: {"users": students},
}
c.JupyterHub.load_roles = [
    {   # students: their own server (the default "user" role) and the exchange, nothing else
        "name": f"student-{COURSE}",
        "groups": [STUDENT_GROUP],
        "scopes": [f"access:services!service={EXCHANGE}"],
    },
    {   # graders: the formgrader and the exchange (collect, feedback)
        "name": f"grader-{COURSE}",
        "users": graders,
        "scopes": [f"access:services!service={FORMGRADER}", f"access:services!service={EXCHANGE}"],
    },
    {   # instructors: what graders may, plus seeing and helping with the students' servers
        "name": f"instructor-{COURSE}",
        "users": instructors,
        "scopes": [f"access:services!service={FORMGRADER}", f"access:services!service={EXCHANGE}",
                   f"read:users!group={STUDENT_GROUP}", f"admin:servers!group={STUDENT_GROUP}",
                   f"access:servers!group={STUDENT_GROUP}"],
    },
    {   # the formgrader's Release, Collect and feedback buttons call the exchange
        "name": f"formgrader-{COURSE}",
        "services": [FORMGRADER],
        "scopes": [f"access:services!service={EXCHANGE}"],
    },
    {   # the exchange asks the hub who is in the course's groups
        "name": f"exchange-{COURSE}",
        "services": [EXCHANGE],
        "scopes": ["read:groups", "read:users:groups"],
    },
]

# --- Services: the exchange (lossopt_exchange.service) and the course's formgrader
service_env = {
    "LOSSOPT_COURSE": COURSE,
    "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE.parent.parent), os.environ.get("PYTHONPATH")])),
    "PATH": os.environ.get("PATH", ""),
}
exchange_port = os.environ.get("LOSSOPT_EXCHANGE_PORT", "9102")
formgrader_port = os.environ.get("LOSSOPT_FORMGRADER_PORT", "9101")
passthrough = ["LOSSOPT_GRADEBOOK_URL", "PGPASSWORD", "PGPASSFILE", "LOSSOPT_GRADER_PATH",
               "LOSSOPT_SEED", "LOSSOPT_SANDBOX", "HOME", "JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR",
               "JUPYTER_RUNTIME_DIR", "IPYTHONDIR", "MPLCONFIGDIR"]
formgrader_env = {**service_env, **{k: os.environ[k] for k in passthrough if k in os.environ}}
formgrader_env.update({
    # nbgrader's exchange plugin and the formgrader extension (jupyter_config/)
    "JUPYTER_CONFIG_PATH": str(HERE / "jupyter_config"),
    "LOSSOPT_EXCHANGE_URL": f"{hub_url.rstrip('/')}/services/{EXCHANGE}/",
    "JUPYTERHUB_DEFAULT_URL": "/formgrader",
})
singleuser = [PYTHON, "-m", "jupyterhub.singleuser", f"--ServerApp.root_dir={COURSE_DIR}"]
if os.geteuid() == 0:
    singleuser.append("--allow-root")
c.JupyterHub.services = [
    {
        "name": EXCHANGE,
        "url": f"http://127.0.0.1:{exchange_port}",
        "command": [PYTHON, "-m", "lossopt_exchange.service"],
        "environment": {**service_env,
                        "LOSSOPT_EXCHANGE_DIR": os.environ.get("LOSSOPT_EXCHANGE_DIR",
                                                               str(STATE / "exchange"))},
        "display": False,
    },
    {
        # The formgrader of the course, served by the grading account: JupyterHub 4.1+ cannot
        # show it inside JupyterLab (nbgrader #1870), so it is a page of its own, linked from
        # the hub's Services menu, and it opens in a tab of its own.
        "name": FORMGRADER,
        "url": f"http://127.0.0.1:{formgrader_port}",
        "command": singleuser,
        "cwd": str(COURSE_DIR),
        "environment": formgrader_env,
        "oauth_no_confirm": True,
        "oauth_client_allowed_scopes": [f"access:services!service={FORMGRADER}"],
    },
]
if os.environ.get("LOSSOPT_HUB_ADMIN_TOKEN"):
    c.JupyterHub.services.append({"name": "course-admin",
                                  "api_token": os.environ["LOSSOPT_HUB_ADMIN_TOKEN"]})
    c.JupyterHub.load_roles.append({"name": "admin", "services": ["course-admin"]})

# --- Students' servers: the exchange plugin, and a token that may reach the exchange
c.Spawner.environment = {
    "JUPYTER_CONFIG_PATH": str(HERE / "jupyter_config"),
    "LOSSOPT_EXCHANGE_URL": f"{hub_url.rstrip('/')}/services/{EXCHANGE}/",
    "LOSSOPT_COURSE": COURSE,
}
c.Spawner.server_token_scopes = [
    "users:activity!user", "access:servers!server", "read:users:name!user",
    f"access:services!service={EXCHANGE}",
]
c.Spawner.default_url = "/lab"
