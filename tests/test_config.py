"""Settings: every one read in app/config.py, typed and checked, none at import."""

from __future__ import annotations

import dataclasses
import inspect
import re
import subprocess
import sys

import pytest

from app import config
from app.api.limits import Limits
from app.config import ConfigError, Settings
from app.domain import ingestion, linking, pagination
from app.domain.errors import InvalidArgument, ProblemCode, Refused
from app.domain.viewers import Viewer
from tests.test_cli import failed_cleanly, run_cli

LIMITS = {
    "GRAPHQL_MAX_DEPTH": ("graphql_max_depth", 12),
    "GRAPHQL_MAX_ALIASES": ("graphql_max_aliases", 30),
    "GRAPHQL_MAX_TOKENS": ("graphql_max_tokens", 5000),
    "GRAPHQL_MAX_COST": ("graphql_max_cost", 50_000),
    "MAX_PAGE_SIZE": ("max_page_size", 100),
    "LINK_MAX_ALERTS": ("link_max_alerts", 1000),
    "INGEST_MAX_ALERTS": ("ingest_max_alerts", 500),
    "MERGE_MAX_ALERTS": ("merge_max_alerts", 100_000),
    "DB_POOL_MIN": ("pool_min", 1),
    "DB_POOL_MAX": ("pool_max", 10),
    "DB_STATEMENT_TIMEOUT_MS": ("statement_timeout_ms", 15000),
    "MAX_BODY_BYTES": ("max_body_bytes", 1024 * 1024),
    "MAX_CONCURRENT_REQUESTS": ("max_concurrency", 256),
    "DB_CONNECTIONS_PER_REQUEST": ("connections_per_request", 3),
    "WEB_CONCURRENCY": ("workers", 1),
}


@pytest.fixture
def environment(monkeypatch):
    """No setting of the limits from the environment the suite runs in."""
    for name in [*LIMITS, "LOG_LEVEL"]:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.fixture
def process_settings(monkeypatch):
    """Install settings as the process's own (config.settings()) for one test."""

    def install(**changes) -> Settings:
        installed = dataclasses.replace(config.settings(), **changes)
        monkeypatch.setattr(config, "_settings", installed)
        return installed

    return install


def test_limits_have_their_documented_defaults(environment):
    settings = Settings.from_env()
    for field, default in LIMITS.values():
        assert getattr(settings, field) == default
    assert settings.log_level == "info"


@pytest.mark.parametrize("name", LIMITS)
def test_every_limit_is_read_from_its_variable(environment, name):
    environment.setenv(name, "7")
    assert getattr(Settings.from_env(), LIMITS[name][0]) == 7


@pytest.mark.parametrize("name", LIMITS)
@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("0", "must be at least 1, got 0"),
        ("-3", "must be at least 1, got -3"),
        ("lots", "must be an integer, got 'lots'"),
    ],
)
def test_a_bad_limit_is_a_clear_config_error(environment, name, raw, message):
    environment.setenv(name, raw)
    with pytest.raises(ConfigError) as refused:
        Settings.from_env()
    assert str(refused.value) == f"{name} {message}"


def test_a_pool_whose_minimum_is_over_its_maximum_is_refused(environment):
    environment.setenv("DB_POOL_MIN", "20")
    with pytest.raises(ConfigError, match=r"DB_POOL_MIN \(20\) must not be over DB_POOL_MAX \(10\)"):
        Settings.from_env()


def test_log_level_is_checked(environment):
    environment.setenv("LOG_LEVEL", "WARNING")
    assert Settings.from_env().log_level == "warning"
    environment.setenv("LOG_LEVEL", "loud")
    with pytest.raises(ConfigError, match="LOG_LEVEL must be one of critical, error, warning, info, debug, trace"):
        Settings.from_env()


def test_graphql_limits_come_from_the_settings(environment):
    environment.setenv("GRAPHQL_MAX_DEPTH", "5")
    environment.setenv("GRAPHQL_MAX_COST", "900")
    settings = dataclasses.replace(Settings.from_env(), introspection=False)
    assert Limits.from_settings(settings) == Limits(
        max_depth=5, max_aliases=30, max_tokens=5000, max_cost=900, introspection=False
    )
    environment.delenv("GRAPHQL_MAX_DEPTH")
    environment.delenv("GRAPHQL_MAX_COST")
    defaults = dataclasses.replace(Settings.from_env(), introspection=True)
    assert Limits.from_settings(defaults) == Limits()  # the schema export's limits are the defaults


def test_nothing_reads_the_environment_at_import():
    """Every module imports with malformed settings; only reading the settings refuses them."""
    program = (
        "import importlib, pkgutil, app, app.config\n"
        "for m in pkgutil.walk_packages(app.__path__, 'app.'):\n"
        "    importlib.import_module(m.name)\n"
        "try:\n"
        "    app.config.settings()\n"
        "except app.config.ConfigError as e:\n"
        "    print(e)\n"
    )
    env = {"PATH": "/usr/bin:/bin", **dict.fromkeys(LIMITS, "0")}
    result = subprocess.run(
        [sys.executable, "-c", program], env=env, capture_output=True, text=True, timeout=60, cwd=config.ROOT
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "DB_POOL_MIN must be at least 1, got 0"  # the first setting read


def test_the_page_size_limit_is_the_settings(process_settings):
    process_settings(max_page_size=3)
    assert pagination.check_first(3) == 3
    with pytest.raises(InvalidArgument, match="first must be between 1 and 3, got 4"):
        pagination.check_first(4)


def test_the_move_limit_is_the_settings(process_settings):
    process_settings(link_max_alerts=2)
    viewer = Viewer(id=1, name="analyst", can_view_incidents=True, can_ingest=False, grants={"*": "write"})
    target = linking.Target(existing_incident_id="inc_1")
    assert linking._check_input(viewer, ["alert_1", "alert_2"], target, "why") == (["alert_1", "alert_2"], "why", [])
    ids, _, [problem] = linking._check_input(viewer, ["alert_1", "alert_2", "alert_3"], target, "why")
    assert ids == []  # so many are not looked up
    assert (problem.code, problem.message) == (ProblemCode.INVALID_INPUT, "At most 2 alerts can move at once; got 3.")


def test_the_batch_limit_is_the_settings(process_settings):
    process_settings(ingest_max_alerts=1)
    viewer = Viewer(id=1, name="source", can_view_incidents=False, can_ingest=True, grants={"*": "write"})
    batch = [ingestion.AlertIn(external_id=f"x{n}", title="t", severity="low", category="c") for n in range(2)]
    ingestion._check(viewer, batch[:1])
    with pytest.raises(Refused) as refused:
        ingestion._check(viewer, batch)
    [problem] = refused.value.problems
    assert (problem.code, problem.message) == (ProblemCode.INVALID_INPUT, "Send 1 to 1 alerts at once; got 2.")


def test_the_readme_lists_every_setting():
    source = inspect.getsource(Settings.from_env)
    variables = set(re.findall(r'"([A-Z][A-Z0-9_]+)"', source))
    assert {"DATABASE_URL", "LOG_LEVEL", "MAX_PAGE_SIZE", "GRAPHQL_MAX_COST"} <= variables
    readme = (config.ROOT / "README.md").read_text()
    section = readme.split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    assert sorted(v for v in variables if f"`{v}`" not in section) == []


async def test_the_command_line_refuses_a_bad_limit_clearly(database_url):
    error = failed_cleanly(await run_cli(database_url, "migrate", MAX_PAGE_SIZE="0"))
    assert error.strip() == "incidents: MAX_PAGE_SIZE must be at least 1, got 0"
