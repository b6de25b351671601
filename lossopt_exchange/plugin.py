"""nbgrader exchange plugin: the usual nbgrader commands, talking to the exchange service.

Enable it in a Jupyter config directory that every server and the formgrader read (the deployment
installs ``deploy/jupyterhub/nbgrader_config.py`` as ``/etc/jupyter/nbgrader_config.py``)::

    c.ExchangeFactory.exchange = "lossopt_exchange.plugin.Exchange"
    c.ExchangeFactory.release_assignment = "lossopt_exchange.plugin.ExchangeReleaseAssignment"
    ... (one line per operation, see that file)

The service's address comes from ``LOSSOPT_EXCHANGE_URL`` (the hub's public URL +
``services/exchange/``), the caller's identity from ``JUPYTERHUB_API_TOKEN``, which the hub
gives every single-user server and service. Nothing the client says about who it is or when it
submitted is believed: the service takes both from the token and its own clock.
"""

from __future__ import annotations

import glob
import os
import shutil
from pathlib import Path
from typing import Any

import requests
from traitlets import Bool, Unicode, default

from lossopt_exchange.archive import ArchiveError, extract, pack, unpack
from nbgrader.exchange import abc


class Exchange(abc.Exchange):
    """Shared by every operation: where the service is, and how to call it."""

    url = Unicode(help="The exchange service's URL (default: $LOSSOPT_EXCHANGE_URL)").tag(config=True)
    token = Unicode(help="JupyterHub API token (default: $JUPYTERHUB_API_TOKEN)").tag(config=True)

    @default("url")
    def _url(self) -> str:
        return os.environ.get("LOSSOPT_EXCHANGE_URL", "")

    @default("token")
    def _token(self) -> str:
        return os.environ.get("JUPYTERHUB_API_TOKEN", "")

    def call(self, method: str, path: str, *, data: bytes | None = None,
             params: dict[str, str] | None = None) -> requests.Response:
        """One request to the service; a refusal becomes an ExchangeError with its message."""
        if not self.url or not self.token:
            self.fail("the exchange service is not configured: set LOSSOPT_EXCHANGE_URL and "
                      "JUPYTERHUB_API_TOKEN (a JupyterHub server sets the token)")
        try:
            response = requests.request(method, self.url.rstrip("/") + "/api/" + path,
                                        data=data, params=params, timeout=120,
                                        headers={"Authorization": f"token {self.token}"})
        except requests.RequestException as error:
            self.fail(f"cannot reach the exchange service at {self.url}: {error}")
        if response.status_code >= 400:
            try:
                message = response.json()["message"]
            except (ValueError, KeyError, TypeError):
                message = response.text[:500] or response.reason
            self.fail(f"the exchange refused ({response.status_code}): {message}")
        return response

    def assignment_folder(self) -> Path:
        """Where a student's copy of the assignment lives (as nbgrader's default exchange)."""
        root = Path(self.assignment_dir)
        if self.path_includes_course:
            root = root / self.coursedir.course_id
        return root / self.coursedir.assignment_id

    path_includes_course = Bool(False, help="Whether the assignment folder sits in a folder "
                                "named after the course").tag(config=True)

    def start(self) -> Any:
        if not self.coursedir.assignment_id and not isinstance(self, abc.ExchangeList):
            self.fail("no assignment given")
        return super().start()

    def init_src(self) -> None:
        pass

    def init_dest(self) -> None:
        pass


class ExchangeReleaseAssignment(Exchange, abc.ExchangeReleaseAssignment):
    def copy_files(self) -> None:
        folder = Path(self.coursedir.format_path(self.coursedir.release_directory, ".",
                                                 self.coursedir.assignment_id))
        if not folder.is_dir():
            self.fail(f"assignment not found: {folder} (run generate_assignment first)")
        body = pack(folder, tuple(self.coursedir.ignore))
        result = self.call("PUT", f"releases/{self.coursedir.assignment_id}", data=body,
                           params={"force": "1"} if self.force else None).json()
        self.log.info("Released %s: %s", self.coursedir.assignment_id, ", ".join(result["files"]))


class ExchangeFetchAssignment(Exchange, abc.ExchangeFetchAssignment):
    def copy_files(self) -> None:
        dest = self.assignment_folder()
        if dest.exists() and not self.replace_missing_files:
            self.fail(f"you already have a copy of {self.coursedir.assignment_id} at {dest}: "
                      "move it away, or fetch with --replace to restore missing files only")
        data = self.call("GET", f"releases/{self.coursedir.assignment_id}").content
        written = extract(unpack(data), dest, only_missing=self.replace_missing_files)
        self.log.info("Fetched %s: %d files in %s", self.coursedir.assignment_id, len(written),
                      dest)


class ExchangeSubmit(Exchange, abc.ExchangeSubmit):
    def copy_files(self) -> None:
        folder = self.assignment_folder()
        if not folder.is_dir():
            self.fail(f"nothing to submit: {folder} does not exist")
        try:
            body = pack(folder, tuple(self.coursedir.ignore))
        except ArchiveError as error:
            self.fail(str(error))
        record = self.call("POST", f"submissions/{self.coursedir.assignment_id}", data=body).json()
        self.timestamp = record["timestamp"]  # the server's clock, not ours
        self.log.info("Submitted %s as %s at %s (%s)", self.coursedir.assignment_id,
                      record["student"], record["timestamp"], ", ".join(record["files"]))


class ExchangeCollect(Exchange, abc.ExchangeCollect):
    def copy_files(self) -> None:
        assignment = self.coursedir.assignment_id
        params = {"student": self.coursedir.student_id} if self.coursedir.student_id not in (
            "", "*") else None
        records = self.call("GET", f"submissions/{assignment}", params=params).json()
        latest: dict[str, dict] = {}
        for record in records["submissions"]:  # oldest first: the last one wins
            latest[record["student"]] = record
        if not latest:
            self.log.warning("No submissions of '%s' to collect", assignment)
        for student, record in sorted(latest.items()):
            dest = Path(self.coursedir.format_path(self.coursedir.submitted_directory, student,
                                                   assignment))
            stamp = dest / "timestamp.txt"
            if dest.is_dir():
                current = stamp.read_text().strip() if stamp.is_file() else None
                if not self.update:
                    self.log.info("Submission already exists, use --update to update: %s %s",
                                  student, assignment)
                    continue
                if current == record["timestamp"]:
                    self.log.info("No newer submission to collect: %s %s", student, assignment)
                    continue
                shutil.rmtree(dest)
            data = self.call("GET", f"submissions/{assignment}/{student}/{record['id']}").content
            extract(unpack(data), dest)
            stamp.write_text(record["timestamp"])
            self.log.info("Collected %s %s submitted at %s", student, assignment,
                          record["timestamp"])


class ExchangeReleaseFeedback(Exchange, abc.ExchangeReleaseFeedback):
    def copy_files(self) -> None:
        student = self.coursedir.student_id or "*"
        pattern = self.coursedir.format_path(self.coursedir.feedback_directory, student,
                                             self.coursedir.assignment_id)
        folders = sorted(Path(p) for p in glob.glob(pattern) if Path(p).is_dir())
        exclude = set(filter(None, self.coursedir.student_id_exclude.split(",")))
        for folder in folders:
            name = folder.parent.name  # feedback/<student>/<assignment>
            if name in exclude:
                continue
            stamp = folder / "timestamp.txt"
            submitted = Path(self.coursedir.format_path(self.coursedir.submitted_directory,
                                                        name, self.coursedir.assignment_id))
            timestamps = [p.read_text().strip() for p in (stamp, submitted / "timestamp.txt")
                          if p.is_file()]
            if not timestamps:
                self.log.warning("No timestamp for %s's feedback: skipped", name)
                continue
            self.call("PUT", f"feedback/{self.coursedir.assignment_id}/{name}",
                      data=pack(folder), params={"submission": timestamps[0]})
            self.log.info("Released feedback for %s %s", name, self.coursedir.assignment_id)


class ExchangeFetchFeedback(Exchange, abc.ExchangeFetchFeedback):
    def copy_files(self) -> None:
        data = self.call("GET", f"feedback/{self.coursedir.assignment_id}").content
        files = unpack(data)
        if not files:
            self.log.warning("No feedback available for %s yet", self.coursedir.assignment_id)
            return
        dest = self.assignment_folder() / "feedback"
        extract(files, dest)
        self.log.info("Fetched feedback for %s into %s", self.coursedir.assignment_id, dest)


class ExchangeList(Exchange, abc.ExchangeList):
    """``nbgrader list``: the released assignments (the service keeps no per-student cache)."""

    def copy_files(self) -> None:
        pass

    def list_files(self) -> list[dict[str, Any]]:
        released = self.call("GET", "assignments").json()["released"]
        found = []
        for name in released:
            if self.coursedir.assignment_id and name != self.coursedir.assignment_id:
                continue
            local = Path(self.assignment_dir) / name
            found.append({"course_id": self.coursedir.course_id, "assignment_id": name,
                          "status": "fetched" if local.is_dir() else "released",
                          "path": str(local), "notebooks": [], "submissions": []})
            self.log.info("%s %s", self.coursedir.course_id, name)
        return found

    def remove_files(self) -> None:
        self.fail("the exchange service keeps every release and submission; nothing is removed")


