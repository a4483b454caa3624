"""docker-compose.yaml: the deployment declares what the pipeline needs, and Compose accepts it.

The structural checks read the YAML with PyYAML (anchors and ``<<`` merges resolved). The last
tests run ``docker-compose config -q``; without the binary they skip, except on CI
(``CI=true``), which installs it and must not pass silently.
"""

from __future__ import annotations

import configparser
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "docker-compose.yaml"
ENV_EXAMPLE = ROOT / ".env.example"
CONFIG_FILE = ROOT / "config" / "airflow.cfg"

AIRFLOW_SERVICES = [
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "airflow-worker",
    "airflow-init",
    "airflow-cli",
]
LONG_RUNNING_AIRFLOW_SERVICES = [s for s in AIRFLOW_SERVICES if s not in ("airflow-init", "airflow-cli")]
BACKING_SERVICES = ["postgres", "warehouse-db", "redis"]
PROJECT_MOUNTS = {"./dags": "/opt/airflow/dags", "./plugins": "/opt/airflow/plugins",
                  "./include": "/opt/airflow/include", "./config": "/opt/airflow/config"}
STAGING_TARGET = "/opt/airflow/staging"
CONNECTIONS = ["AIRFLOW_CONN_ZOOM_VIDEOSDK", "AIRFLOW_CONN_ZOOM_QOS_WAREHOUSE"]

ZOOM_CONN_TYPE = "zoom_videosdk"

# ${NAME}, ${NAME:-default}, ${NAME-default}; "$$" is an escaped dollar.
_VARIABLE = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?-([^}]*))?\}")
# The package's settings before the [zoom_qos] section (ZOOM_QOS_DATA_DIR, ...), not
# AIRFLOW__ZOOM_QOS__* or AIRFLOW_CONN_ZOOM_QOS_WAREHOUSE.
_LEGACY_VARIABLE = re.compile(r"(?<![A-Za-z0-9_])ZOOM_QOS_[A-Z0-9_]+")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def services(compose: dict) -> dict:
    return compose["services"]


def with_defaults(value: str) -> str:
    """The value Compose would produce with no variables set (every ``${VAR:-default}``)."""
    return _VARIABLE.sub(lambda m: m.group(2) or "", value)


def environment(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def connection(conn_id: str, value: str):
    """The Airflow connection an ``AIRFLOW_CONN_*`` value makes: JSON or a URI, as Airflow reads them."""
    from airflow.models.connection import Connection

    if value.lstrip().startswith("{"):
        return Connection.from_json(value, conn_id=conn_id)
    return Connection(conn_id=conn_id, uri=value)


def mounts(service: dict) -> dict[str, str]:
    """target -> source for the short volume syntax (``source:target[:mode]``)."""
    result = {}
    for entry in service.get("volumes") or []:
        if isinstance(entry, dict):
            result[entry["target"]] = entry.get("source", "")
        else:
            source, target = entry.split(":")[:2]
            result[target] = source
    return result


# --- structure ----------------------------------------------------------------------------
def test_declares_every_service(services):
    missing = [s for s in AIRFLOW_SERVICES + BACKING_SERVICES if s not in services]
    assert not missing, f"docker-compose.yaml lacks services: {missing}"


@pytest.mark.parametrize("name", AIRFLOW_SERVICES)
def test_airflow_service_uses_celery_executor(services, name):
    assert environment(services[name]).get("AIRFLOW__CORE__EXECUTOR") == "CeleryExecutor"
    assert "redis:6379" in environment(services[name]).get("AIRFLOW__CELERY__BROKER_URL", "")


@pytest.mark.parametrize("name", AIRFLOW_SERVICES)
def test_airflow_service_mounts_project_and_staging(compose, services, name):
    service_mounts = mounts(services[name])
    for source, target in PROJECT_MOUNTS.items():
        assert service_mounts.get(target) == source, f"{name} does not mount {source} at {target}"
    assert service_mounts.get(STAGING_TARGET) == "staging", f"{name} lacks the staging volume"
    assert "staging" in (compose.get("volumes") or {}), "named volume 'staging' is not declared"
    env = environment(services[name])
    assert env.get("AIRFLOW__ZOOM_QOS__STAGING_URL") == f"file://{STAGING_TARGET}"
    assert env.get("PYTHONPATH") == "/opt/airflow", "include/ must be importable"


@pytest.mark.parametrize("name", AIRFLOW_SERVICES)
def test_airflow_service_sets_both_connections(services, name):
    env = environment(services[name])
    for variable in CONNECTIONS:
        assert env.get(variable), f"{name} does not set {variable}"
    assert "warehouse-db" in env["AIRFLOW_CONN_ZOOM_QOS_WAREHOUSE"]
    assert env["AIRFLOW_CONN_ZOOM_VIDEOSDK"].startswith("${ZOOM_VIDEOSDK_CONN:-"), (
        "the Zoom connection must be overridable with ZOOM_VIDEOSDK_CONN"
    )


def test_airflow_image_extends_official_image(services):
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert "apache/airflow:3.3.2-python3.11" in dockerfile
    assert "requirements.txt" in dockerfile
    for name in AIRFLOW_SERVICES + ["zoom-simulator"]:
        assert services[name].get("build"), f"{name} does not build ./Dockerfile"
    # the provider entry point (connection type) is installed editable where plugins/ is mounted
    assert "-e /opt/airflow" in dockerfile
    for name in AIRFLOW_SERVICES:
        assert any(str(v).endswith(":/opt/airflow/plugins") for v in services[name].get("volumes", [])), name


@pytest.mark.parametrize("name", LONG_RUNNING_AIRFLOW_SERVICES)
def test_airflow_service_waits_for_init_and_backends(services, name):
    depends_on = services[name].get("depends_on") or {}
    assert depends_on.get("airflow-init", {}).get("condition") == "service_completed_successfully"
    for backend in BACKING_SERVICES:
        assert depends_on.get(backend, {}).get("condition") == "service_healthy", (name, backend)
    assert services[name].get("healthcheck", {}).get("test"), f"{name} has no healthcheck"


def test_commands_and_init(services):
    assert services["airflow-apiserver"]["command"] == "api-server"
    assert "8080" in " ".join(services["airflow-apiserver"].get("ports", []))
    assert services["airflow-scheduler"]["command"] == "scheduler"
    assert services["airflow-dag-processor"]["command"] == "dag-processor"
    assert services["airflow-triggerer"]["command"] == "triggerer"
    assert services["airflow-worker"]["command"] == "celery worker"
    init = services["airflow-init"]
    assert environment(init).get("_AIRFLOW_DB_MIGRATE") == "true"
    assert "passwords.json" in " ".join(init["command"])
    for name in BACKING_SERVICES:
        assert services[name].get("healthcheck", {}).get("test"), f"{name} has no healthcheck"


def test_simulator_is_optional_and_matches_default_connection(services):
    simulator = services["zoom-simulator"]
    assert simulator.get("profiles") == ["simulator"]
    command = [str(part) for part in simulator["command"]]
    assert command[:3] == ["python", "-m", "include.zoom_simulator"]
    options = dict(zip(command[3::2], command[4::2], strict=True))
    assert options["--host"] == "0.0.0.0"

    env = environment(services["airflow-worker"])
    zoom = connection("zoom_videosdk", with_defaults(env["AIRFLOW_CONN_ZOOM_VIDEOSDK"]))
    assert zoom.conn_type == ZOOM_CONN_TYPE
    # the hook takes host as the base URL as it is (scheme and /v2 included)
    assert zoom.host == f"http://zoom-simulator:{options['--port']}/v2"
    assert (zoom.login, zoom.password) == (options["--api-key"], options["--api-secret"])


def test_default_warehouse_connection_points_at_warehouse_db(services):
    from airflow.models.connection import Connection

    warehouse_db = environment(services["warehouse-db"])
    env = environment(services["airflow-worker"])
    conn = Connection(conn_id="zoom_qos_warehouse",
                      uri=with_defaults(env["AIRFLOW_CONN_ZOOM_QOS_WAREHOUSE"]))
    assert conn.conn_type == "postgres"
    assert (conn.host, conn.port) == ("warehouse-db", 5432)
    assert conn.login == with_defaults(warehouse_db["POSTGRES_USER"])
    assert conn.password == with_defaults(warehouse_db["POSTGRES_PASSWORD"])
    assert conn.schema == with_defaults(warehouse_db["POSTGRES_DB"])
    assert conn.extra_dejson == {"warehouse_schema": "zoom_qos"}


def test_env_example_lists_every_variable():
    used = set(_VARIABLE.findall(COMPOSE_FILE.read_text(encoding="utf-8")))
    used = {name for name, _default in used}
    listed = set(re.findall(r"^#?\s*([A-Za-z_][A-Za-z0-9_]*)=", ENV_EXAMPLE.read_text(encoding="utf-8"),
                            flags=re.MULTILINE))
    assert not used - listed, f".env.example lacks: {sorted(used - listed)}"


@pytest.mark.parametrize("name", AIRFLOW_SERVICES)
def test_zoom_connection_has_the_zoom_videosdk_type(services, name):
    value = with_defaults(environment(services[name])["AIRFLOW_CONN_ZOOM_VIDEOSDK"])
    zoom = connection("zoom_videosdk", value)
    assert zoom.conn_type == ZOOM_CONN_TYPE, f"{name}: {zoom.conn_type!r}"
    assert zoom.host and "://" in zoom.host, "host must be the API base URL, scheme included"


def test_env_example_zoom_connections_have_the_zoom_videosdk_type():
    """The commented ZOOM_VIDEOSDK_CONN examples (URI and JSON) give zoom_videosdk connections."""
    examples = re.findall(r"^#\s*ZOOM_VIDEOSDK_CONN=(.+)$", ENV_EXAMPLE.read_text(encoding="utf-8"),
                          flags=re.MULTILINE)
    assert len(examples) >= 2, "expected a URI and a JSON example of ZOOM_VIDEOSDK_CONN"
    kinds = set()
    for example in examples:
        value = example.strip()
        if value[:1] == value[-1:] == "'":
            value = value[1:-1]
        if value.startswith("{"):
            json.loads(value)
            kinds.add("json")
        else:
            kinds.add("uri")
        zoom = connection("zoom_videosdk", value)
        assert zoom.conn_type == ZOOM_CONN_TYPE, example
        assert zoom.host == "https://api.zoom.us/v2", example
    assert kinds == {"json", "uri"}


def test_airflow_cli_service_is_on_demand(services):
    cli = services["airflow-cli"]
    assert cli.get("profiles") == ["debug"], "airflow-cli must only start with --profile debug"
    assert [str(part) for part in cli["command"]] == ["bash", "-c", "airflow"]
    assert environment(cli).get("CONNECTION_CHECK_MAX_COUNT") == "0"
    assert not cli.get("healthcheck"), "a one-off command has no healthcheck"
    assert "airflow-init" not in (cli.get("depends_on") or {})


def test_api_server_health_check_uses_the_monitor_endpoint(services):
    test = services["airflow-apiserver"]["healthcheck"]["test"]
    assert test[0] == "CMD" and "curl" in test and "--fail" in test
    assert test[-1] == "http://localhost:8080/api/v2/monitor/health"


@pytest.mark.parametrize("name", AIRFLOW_SERVICES)
def test_airflow_service_reads_the_mounted_config(services, name):
    assert mounts(services[name]).get("/opt/airflow/config") == "./config", name
    assert environment(services[name]).get("AIRFLOW_CONFIG") == "/opt/airflow/config/airflow.cfg"


def test_shipped_config_sets_nothing_and_names_only_known_settings():
    """config/airflow.cfg is an example: a parseable file whose [zoom_qos] keys are all commented
    out and are keys the package reads (the table in zoom_qos.config's docstring)."""
    import zoom_qos.core.config

    text = CONFIG_FILE.read_text(encoding="utf-8")
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(text)
    assert parser.has_section("zoom_qos")
    assert not any(parser.items(section) for section in parser.sections()), "only commented examples"
    documented = set(re.findall(r"^([a-z_]+)\s{2,}", zoom_qos.core.config.__doc__ or "", flags=re.MULTILINE))
    examples = set(re.findall(r"^#\s*([a-z_]+)\s*=", text, flags=re.MULTILINE))
    assert examples, "no commented examples"
    assert not examples - documented, f"unknown [zoom_qos] keys: {sorted(examples - documented)}"


def test_no_legacy_zoom_qos_variables():
    """The package's settings are AIRFLOW__ZOOM_QOS__* (section [zoom_qos]); ZOOM_QOS_* are deprecated."""
    for path in (COMPOSE_FILE, ENV_EXAMPLE):
        legacy = sorted(set(_LEGACY_VARIABLE.findall(path.read_text(encoding="utf-8"))))
        assert not legacy, f"{path.name} still uses {legacy}"
    env = environment(yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))["services"]["airflow-worker"])
    assert env.get("AIRFLOW__ZOOM_QOS__RATE_LIMIT_REDIS_URL", "").startswith("redis://")


# --- docker-compose itself ------------------------------------------------------------------
def _docker_compose() -> str:
    binary = shutil.which("docker-compose")
    if binary is None:
        if os.environ.get("CI") == "true":
            pytest.fail("docker-compose is not installed, and CI=true requires this check to run")
        pytest.skip("docker-compose binary not found (install: apt-get install docker-compose)")
    return binary


@pytest.mark.parametrize(
    "extra_args",
    [[], ["--profile", "simulator"], ["--profile", "debug"], ["--profile", "webhooks"],
     ["--env-file", ".env.example"]],
    ids=["default", "simulator-profile", "debug-profile", "webhooks-profile", "env-example"],
)
def test_docker_compose_config_is_valid(extra_args):
    binary = _docker_compose()
    # Validate the file's own defaults, not whatever this shell happens to export.
    own_variables = ("AIRFLOW", "_AIRFLOW", "ZOOM_", "WAREHOUSE_", "POSTGRES_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(own_variables)}
    result = subprocess.run(
        [binary, "--project-directory", str(ROOT), "-f", str(COMPOSE_FILE), *extra_args, "config", "-q"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, f"docker-compose config failed:\n{result.stdout}\n{result.stderr}"


def test_superset_is_optional_pinned_and_imports_the_bundle_built_for_the_warehouse_service(services):
    bundle, superset = services["superset-bundle"], services["superset"]
    assert bundle["profiles"] == superset["profiles"] == ["superset"]
    pins = (ROOT / "include/bi/superset/requirements.txt").read_text()
    pinned = re.search(r"^apache_superset==(\S+)$", pins, re.MULTILINE)
    assert pinned and superset["image"] == f"apache/superset:{pinned.group(1)}"
    command = bundle["command"]
    assert command[:3] == ["zoom-qos", "superset", "bundle"]
    uri = with_defaults(command[command.index("--database-uri") + 1])
    assert "@warehouse-db:5432/" in uri and uri.endswith("?warehouse_schema=zoom_qos")
    out = command[command.index("--out") + 1]
    assert superset["depends_on"]["superset-bundle"] == {"condition": "service_completed_successfully"}
    folder = str(Path(out).parent)
    assert mounts(superset)[folder] == mounts(bundle)[folder] == "superset-bundle"
    init = (ROOT / "include/bi/superset/docker-init.sh").read_text()
    assert f"superset import-dashboards -p {out}" in init


def test_the_webhook_receiver_serves_with_the_airflow_connections(services):
    receiver = services["zoom-webhooks"]
    command = receiver["command"]
    assert command[:3] == ["zoom-qos", "webhooks", "serve"]
    assert command[command.index("--port") + 1] == "8090"
    assert receiver["ports"] == ["${ZOOM_WEBHOOKS_PORT:-8090}:8090"]
    assert "http://localhost:8090/health" in receiver["healthcheck"]["test"]
    env = environment(receiver)
    assert all(name in env for name in CONNECTIONS)
    # The image's /entrypoint would run `airflow zoom-qos ...`; without the token it cannot start,
    # so it is optional, like the simulator.
    assert "/entrypoint" not in receiver["entrypoint"]
    assert receiver["profiles"] == ["webhooks"]
    assert receiver["depends_on"] == {"warehouse-db": {"condition": "service_healthy"}}
