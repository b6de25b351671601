"""An nbgrader exchange that students cannot tamper with: a JupyterHub service and its client.

nbgrader's default exchange is a shared folder: ``inbound/`` is writable by everyone, each
submission folder is 0777, and the submission time comes from a folder name the student's own
process writes. Here the files live with a hub-managed service (:mod:`lossopt_exchange.service`)
that only the service's account can read or write; students and instructors reach it over HTTP
with their JupyterHub token, through nbgrader's exchange plugin API (:mod:`lossopt_exchange.plugin`):

- the hub says who is calling (the token), the hub's groups say what they may do:
  ``nbgrader-<course>`` (students: fetch releases, submit their own work, fetch their own
  feedback) and ``formgrade-<course>`` (instructors and graders: release, collect, feedback);
- the service stamps each submission with its own clock, keeps every submission (never
  overwritten), and hands the latest one per student to ``nbgrader collect``;
- a submission is checked on arrival (a released assignment, a readable archive of notebooks
  that parse) and refused with a message saying why; nothing already stored is touched.
"""
