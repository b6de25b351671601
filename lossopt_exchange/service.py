"""The exchange as a JupyterHub service: ``python -m lossopt_exchange.service``.

Run it as a hub-managed service (deploy/jupyterhub/jupyterhub_config.py): the hub passes
``JUPYTERHUB_API_TOKEN``, ``JUPYTERHUB_API_URL``, ``JUPYTERHUB_SERVICE_URL`` and
``JUPYTERHUB_SERVICE_PREFIX``. Its own settings:

- ``LOSSOPT_EXCHANGE_DIR``: where releases, submissions and feedback are kept (only this
  service's account should be able to read it);
- ``LOSSOPT_COURSE``: the course id (default ``lossopt``); the hub groups ``formgrade-<course>``
  and ``nbgrader-<course>`` say who is staff and who is a student.

The API, under the service's prefix (every call needs a hub token with access to this service)::

    GET  api/assignments                      released assignment names      (course members)
    PUT  api/releases/<a>[?force=1]           release (tar.gz body)          (staff)
    GET  api/releases/<a>                     the release, tar.gz            (course members)
    POST api/submissions/<a>                  submit your own work           (students)
    GET  api/submissions/<a>[?student=s]      latest per student (staff) / your own list
    GET  api/submissions/<a>/<s>/<id>         one submission, tar.gz         (staff, or s)
    PUT  api/feedback/<a>/<s>?submission=<ts> feedback for s's submission    (staff)
    GET  api/feedback/<a>[/<s>]               feedback, tar.gz, by timestamp (staff, or s)
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import secrets
import time
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlparse

from jupyterhub.services.auth import HubAuth
from tornado import web
from tornado.httpclient import AsyncHTTPClient, HTTPRequest
from tornado.ioloop import IOLoop

from lossopt_exchange.archive import ArchiveError, pack_files, unpack

log = logging.getLogger("lossopt_exchange")
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@+-]{0,99}$")  # assignment and user names
GROUPS_TTL = 5.0  # seconds a group membership answer from the hub is reused


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def checked(name: str, what: str) -> str:
    if not NAME.match(name) or name.startswith("."):
        raise web.HTTPError(400, f"invalid {what} name: {name!r}")
    return name


# ---------------------------------------------------------------------------------------------
# Storage: plain files, written once under names the server chooses


class Store:
    """Releases, submissions and feedback below one root.

    ``submissions/<a>/<student>/<stamp>-<random>.tar.gz`` (+ ``.json``) is never overwritten: the
    stamp is the server's clock, and the random part keeps two submissions in one microsecond
    apart. Files are written to a temporary name and renamed, so a reader never sees half a file.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        for sub in ("releases", "submissions", "feedback"):
            (root / sub).mkdir(parents=True, exist_ok=True, mode=0o700)

    @staticmethod
    def _write(path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)

    def released(self) -> list[str]:
        return sorted(p.name[:-len(".tar.gz")] for p in (self.root / "releases").glob("*.tar.gz"))

    def release_path(self, assignment: str) -> Path:
        return self.root / "releases" / f"{assignment}.tar.gz"

    def release(self, assignment: str, data: bytes) -> None:
        self._write(self.release_path(assignment), data)

    def submit(self, assignment: str, student: str, data: bytes, files: list[str]) -> dict:
        now = utcnow()
        sid = f"{now.strftime('%Y%m%dT%H%M%S.%fZ')}-{secrets.token_hex(4)}"
        folder = self.root / "submissions" / assignment / student
        record = {"id": sid, "student": student, "assignment": assignment,
                  "timestamp": now.isoformat(), "files": sorted(files), "bytes": len(data)}
        self._write(folder / f"{sid}.tar.gz", data)
        self._write(folder / f"{sid}.json", json.dumps(record).encode())  # last: the commit
        return record

    def submissions(self, assignment: str, student: str) -> list[dict]:
        folder = self.root / "submissions" / assignment / student
        records = [json.loads(p.read_text()) for p in folder.glob("*.json")]
        return sorted(records, key=lambda r: r["id"])

    def students(self, assignment: str) -> list[str]:
        folder = self.root / "submissions" / assignment
        return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []

    def submission_path(self, assignment: str, student: str, sid: str) -> Path:
        return self.root / "submissions" / assignment / student / f"{sid}.tar.gz"

    def feedback_path(self, assignment: str, student: str) -> Path:
        return self.root / "feedback" / assignment / student

    def put_feedback(self, assignment: str, student: str, submission: str, data: bytes) -> None:
        self._write(self.feedback_path(assignment, student) / f"{submission}.tar.gz", data)


# ---------------------------------------------------------------------------------------------
# Who may do what: the hub's token says who, the course's hub groups say what


class Groups:
    """Members of the course's hub groups, asked of the hub with the service's own token."""

    def __init__(self, auth: HubAuth, course: str) -> None:
        self.auth = auth
        self.staff_group = f"formgrade-{course}"
        self.student_group = f"nbgrader-{course}"
        self.formgrader = f"formgrader-{course}"
        self._cache: dict[str, tuple[float, set[str]]] = {}

    async def members(self, group: str) -> set[str]:
        cached = self._cache.get(group)
        if cached and time.monotonic() - cached[0] < GROUPS_TTL:
            return cached[1]
        request = HTTPRequest(f"{self.auth.api_url}/groups/{group}", request_timeout=10,
                              headers={"Authorization": f"token {self.auth.api_token}"})
        try:
            response = await AsyncHTTPClient().fetch(request)
            users = set(json.loads(response.body)["users"])
        except Exception as error:
            if getattr(error, "code", None) != 404:
                raise
            users = set()
        self._cache[group] = (time.monotonic(), users)
        return users

    async def role(self, user: str) -> str | None:
        if user in await self.members(self.staff_group):
            return "staff"
        if user in await self.members(self.student_group):
            return "student"
        return None


class Handler(web.RequestHandler):
    """Authenticates every request with the hub; ``self.user`` and ``self.role`` after prepare."""

    def initialize(self, store: Store, auth: HubAuth, groups: Groups) -> None:
        self.store, self.auth, self.groups = store, auth, groups

    def check_xsrf_cookie(self) -> None:
        return  # token-authenticated API, no cookies

    async def prepare(self) -> None:
        model = await self.auth.get_user(self, sync=False)
        if not model:
            raise web.HTTPError(403, "a JupyterHub token is required")
        if not self.auth.check_scopes(self.auth.access_scopes, model):
            raise web.HTTPError(403, f"{model['name']} has no access to the exchange service")
        self.user = model["name"]
        if model.get("kind", "user") == "service":
            # Only the course's formgrader (its Collect and Release buttons) acts as staff.
            self.role = "staff" if self.user == self.groups.formgrader else None
        else:
            self.role = await self.groups.role(self.user)
        if self.role is None:
            raise web.HTTPError(403, f"{self.user} is not a member of this course")

    def require_staff(self) -> None:
        if self.role != "staff":
            raise web.HTTPError(403, "only the course's instructors and graders may do this")

    def require_self_or_staff(self, student: str) -> None:
        if self.role != "staff" and student != self.user:
            raise web.HTTPError(403, f"{self.user} may not see {student}'s work")

    def require_released(self, assignment: str) -> None:
        if not self.store.release_path(assignment).is_file():
            released = ", ".join(self.store.released()) or "none"
            raise web.HTTPError(404, f"no assignment named {assignment!r} has been released "
                                     f"(released: {released})")

    def write_error(self, status_code: int, **kwargs) -> None:
        error = kwargs.get("exc_info", (None, None))[1]
        message = getattr(error, "log_message", None) or self._reason
        self.finish({"status": status_code, "message": message})

    def send_archive(self, path: Path) -> None:
        if not path.is_file():
            raise web.HTTPError(404, "not found")
        self.set_header("Content-Type", "application/gzip")
        self.finish(path.read_bytes())


class Assignments(Handler):
    def get(self) -> None:
        self.finish({"released": self.store.released(), "user": self.user, "role": self.role})


class Releases(Handler):
    def get(self, assignment: str) -> None:
        self.require_released(checked(assignment, "assignment"))
        self.send_archive(self.store.release_path(assignment))

    def put(self, assignment: str) -> None:
        self.require_staff()
        checked(assignment, "assignment")
        if self.store.release_path(assignment).exists() and not self.get_argument("force", ""):
            raise web.HTTPError(409, f"{assignment} is already released (use --force to replace)")
        try:
            files = unpack(self.request.body, notebooks_required=True)
        except ArchiveError as error:
            raise web.HTTPError(400, f"release refused: {error}") from None
        self.store.release(assignment, pack_files(files))
        log.info("%s released %s (%d files)", self.user, assignment, len(files))
        self.finish({"assignment": assignment, "files": sorted(files)})


class Submissions(Handler):
    def post(self, assignment: str) -> None:
        if self.role != "student":
            raise web.HTTPError(403, "only students of the course submit")
        self.require_released(checked(assignment, "assignment"))
        try:
            files = unpack(self.request.body, notebooks_required=True)
        except ArchiveError as error:
            raise web.HTTPError(400, f"submission refused, nothing was stored: {error}") from None
        # Whatever the client claims about time is ignored: the record carries the server's.
        record = self.store.submit(assignment, self.user, pack_files(files), list(files))
        log.info("%s submitted %s at %s", self.user, assignment, record["timestamp"])
        self.finish(record)

    def get(self, assignment: str) -> None:
        checked(assignment, "assignment")
        student = self.get_argument("student", "")
        if student:
            self.require_self_or_staff(checked(student, "student"))
            self.finish({"submissions": self.store.submissions(assignment, student)})
            return
        if self.role != "staff":  # a student's own list
            self.finish({"submissions": self.store.submissions(assignment, self.user)})
            return
        every = bool(self.get_argument("all", ""))
        records = []
        for name in self.store.students(assignment):
            mine = self.store.submissions(assignment, name)
            records.extend(mine if every else mine[-1:])
        self.finish({"submissions": records})


class Submission(Handler):
    def get(self, assignment: str, student: str, sid: str) -> None:
        self.require_self_or_staff(checked(student, "student"))
        self.send_archive(self.store.submission_path(checked(assignment, "assignment"), student,
                                                     checked(sid, "submission")))


class Feedback(Handler):
    def put(self, assignment: str, student: str) -> None:
        self.require_staff()
        checked(assignment, "assignment"), checked(student, "student")
        # The submission's timestamp names the folder the student gets the feedback in.
        submission = re.sub(r"[^0-9A-Za-z.-]", "", self.get_argument("submission"))[:64]
        if not submission:
            raise web.HTTPError(400, "feedback needs the submission's timestamp")
        try:
            files = unpack(self.request.body)
        except ArchiveError as error:
            raise web.HTTPError(400, f"feedback refused: {error}") from None
        self.store.put_feedback(assignment, student, submission, pack_files(files))
        self.finish({"assignment": assignment, "student": student, "files": sorted(files)})

    def get(self, assignment: str, student: str | None = None) -> None:
        student = checked(student or self.user, "student")
        self.require_self_or_staff(student)
        folder = self.store.feedback_path(checked(assignment, "assignment"), student)
        # One archive of archives: <submission timestamp>/<files>, every feedback released.
        files = {}
        for path in sorted(folder.glob("*.tar.gz")):
            stamp = path.name[:-len(".tar.gz")]
            for name, data in unpack(path.read_bytes()).items():
                files[f"{stamp}/{name}"] = data
        self.set_header("Content-Type", "application/gzip")
        self.finish(pack_files(files))


def make_app(store: Store, auth: HubAuth, groups: Groups, prefix: str) -> web.Application:
    args = {"store": store, "auth": auth, "groups": groups}
    api = prefix.rstrip("/") + "/api"
    part = r"([^/]+)"
    return web.Application([
        (f"{api}/assignments", Assignments, args),
        (f"{api}/releases/{part}", Releases, args),
        (f"{api}/submissions/{part}", Submissions, args),
        (f"{api}/submissions/{part}/{part}/{part}", Submission, args),
        (f"{api}/feedback/{part}", Feedback, args),
        (f"{api}/feedback/{part}/{part}", Feedback, args),
    ])


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="[exchange %(asctime)s] %(message)s")
    root = Path(os.environ["LOSSOPT_EXCHANGE_DIR"])
    course = os.environ.get("LOSSOPT_COURSE", "lossopt")
    auth = HubAuth()  # JUPYTERHUB_API_TOKEN / _API_URL / _SERVICE_NAME from the hub
    url = urlparse(os.environ["JUPYTERHUB_SERVICE_URL"])
    prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "/services/exchange/")
    app = make_app(Store(root), auth, Groups(auth, course), prefix)
    app.listen(url.port, url.hostname or "127.0.0.1", max_body_size=96 * 2**20)
    log.info("exchange for %s on %s (files in %s)", course, url.geturl(), root)
    IOLoop.current().start()


if __name__ == "__main__":
    asyncio.set_event_loop(asyncio.new_event_loop())
    main()
