"""When the classroom tests run, skip or fail: the decision itself, without any server."""

from __future__ import annotations

from hub_support import hub_unavailable
from postgres_support import postgres_unavailable


def test_no_proxy_is_a_skip_that_says_how_to_install_it():
    kind, reason = hub_unavailable({}, proxy="/nonexistent/configurable-http-proxy")
    assert kind == "skip" and "npm install -g configurable-http-proxy" in reason
    assert "REQUIRE_HUB=1" in reason


def test_no_proxy_fails_when_the_hub_is_required():
    kind, reason = hub_unavailable({"REQUIRE_HUB": "1"}, proxy="/nonexistent/chp")
    assert kind == "fail" and "REQUIRE_HUB is set" in reason


def test_no_postgres_is_a_skip_or_with_require_postgres_a_failure(monkeypatch):
    monkeypatch.setenv("POSTGRES_BIN", "/nonexistent/bin")
    kind, reason = postgres_unavailable({})
    assert kind == "skip" and "apt-get install -y postgresql" in reason
    kind, reason = postgres_unavailable({"REQUIRE_POSTGRES": "yes"})
    assert kind == "fail" and "REQUIRE_POSTGRES is set" in reason
