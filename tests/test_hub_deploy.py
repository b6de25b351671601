"""The two deployments agree: Zero to JupyterHub's config.yaml grants what the tested
jupyterhub_config.py grants (groups, roles and their scopes, services, students' token scopes).

Only the tested file runs in the end-to-end tests; this keeps the Kubernetes values from drifting
away from it. No server needed.
"""

from __future__ import annotations

import json

import yaml
from traitlets.config.loader import PyFileConfigLoader

from hub_support import CONFIG
from nbutils import ROOT

ROSTER = {"instructors": ["prof"], "graders": ["ta1"], "students": ["ada", "bob"]}


def hub_config(monkeypatch, tmp_path):
    roster = tmp_path / "roster.json"
    roster.write_text(json.dumps(ROSTER))
    monkeypatch.setenv("LOSSOPT_ROSTER", str(roster))
    monkeypatch.delenv("LOSSOPT_HUB_ADMIN_TOKEN", raising=False)
    monkeypatch.chdir(tmp_path)
    return PyFileConfigLoader(CONFIG.name, path=str(CONFIG.parent)).load_config()


def test_zero_to_jupyterhub_values_grant_what_the_tested_config_grants(monkeypatch, tmp_path):
    tested = hub_config(monkeypatch, tmp_path)
    values = yaml.safe_load((ROOT / "deploy/jupyterhub/config.yaml").read_text())
    hub = values["hub"]

    roles = {r["name"]: r for r in tested.JupyterHub.load_roles}
    assert set(hub["loadRoles"]) == set(roles)
    for name, role in hub["loadRoles"].items():
        assert set(role["scopes"]) == set(roles[name]["scopes"]), name
        for who in ("users", "groups", "services"):
            assert set(role.get(who, [])) == set(roles[name].get(who, [])), (name, who)

    assert hub["config"]["JupyterHub"]["load_groups"] == {
        name: {"users": sorted(group["users"])}
        for name, group in tested.JupyterHub.load_groups.items()}
    assert set(hub["config"]["Authenticator"]["allowed_users"]) == \
        tested.Authenticator.allowed_users

    services = {s["name"]: s for s in tested.JupyterHub.services}
    assert set(hub["services"]) == set(services)
    for name, service in hub["services"].items():
        assert service["command"][1:3] == services[name]["command"][1:3], name
        for key in ("oauth_no_confirm", "oauth_client_allowed_scopes", "display"):
            assert service.get(key) == services[name].get(key), (name, key)

    assert set(hub["config"]["KubeSpawner"]["server_token_scopes"]) == \
        set(tested.Spawner.server_token_scopes)
    assert set(values["singleuser"]["extraEnv"]) == set(tested.Spawner.environment)


def test_students_get_the_exchange_and_nothing_of_the_formgrader(monkeypatch, tmp_path):
    tested = hub_config(monkeypatch, tmp_path)
    student = next(r for r in tested.JupyterHub.load_roles if r["name"] == "student-lossopt")
    assert student["groups"] == ["nbgrader-lossopt"]
    assert student["scopes"] == ["access:services!service=exchange"]
    assert not any("formgrader" in s for s in tested.Spawner.server_token_scopes)
    assert tested.Authenticator.admin_users == set()
