"""What ships: docker compose wiring, and a built wheel that carries (and runs) the SQL."""

from __future__ import annotations

import ipaddress
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import yaml
from prometheus_client import Counter, Gauge, Histogram

from server.app import create_app
from server.config import Config
from server.db.migrations import load_migrations
from server.observability import metrics
from server.observability.proxies import TrustedProxies
from tests.databases import create_database, drop_database

ROOT = Path(__file__).resolve().parents[1]
CONFIG_VARIABLES = {
    "DATABASE_URL", "DATA_DIR", "STORAGE_URL", "HOST", "PORT", "MAX_UPLOAD_BYTES",
    "MAX_FILES_PER_REQUEST", "MAX_IMAGE_PIXELS", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
    "AWS_REGION", "AWS_ENDPOINT_URL_S3", "WORKERS", "DB_POOL_SIZE", "PASSWORD_ATTEMPTS",
    "TRUSTED_PROXIES", "FORWARDED_HEADER", "METRICS_TOKEN",
}
# What Compose substitutes in every value, configs' contents included: `$$` is a dollar sign.
_COMPOSE_VARIABLE = re.compile(r"\$\$|\$\{([A-Za-z_]\w*)(:-[^}]*)?\}|\$([A-Za-z_]\w*)")


def _interpolate(value: Any, env: dict[str, str]) -> Any:
    if isinstance(value, dict):
        return {k: _interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, default = match.group(1) or match.group(3), match.group(2)
        return env.get(name) or (default[2:] if default else "")

    return _COMPOSE_VARIABLE.sub(substitute, value)


def load_compose(env: dict[str, str] | None = None) -> dict[str, Any]:
    """docker-compose.yml as `docker compose` hands it on, run with `env` around it."""
    compose: dict[str, Any] = _interpolate(
        yaml.safe_load((ROOT / "docker-compose.yml").read_text()), env or {})
    return compose


def test_compose_wires_postgres_minio_and_the_app() -> None:
    compose = load_compose()
    services = compose["services"]
    assert {"postgres", "minio", "app"} <= set(services)
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
    assert services["minio"]["healthcheck"]["test"]

    app = services["app"]
    assert app["build"] == "."
    assert app["depends_on"]["postgres"]["condition"] == "service_healthy"
    env = {k: str(v) for k, v in app["environment"].items()}
    assert set(env) <= CONFIG_VARIABLES, "the app is configured only through documented variables"
    assert env["STORAGE_URL"].startswith("s3://")
    assert env["AWS_ENDPOINT_URL_S3"] == "http://minio:9000"
    assert "@postgres:5432/" in env["DATABASE_URL"]

    pg_env = services["postgres"]["environment"]
    assert f"{pg_env['POSTGRES_USER']}:{pg_env['POSTGRES_PASSWORD']}@" in env["DATABASE_URL"]
    minio_env = services["minio"]["environment"]
    assert env["AWS_ACCESS_KEY_ID"] == minio_env["MINIO_ROOT_USER"]
    assert env["AWS_SECRET_ACCESS_KEY"] == minio_env["MINIO_ROOT_PASSWORD"]
    # The same variables yield a valid configuration.
    config = Config.from_env(env)
    assert config.storage_url == "s3://images" and config.host == "0.0.0.0"

    dockerfile = (ROOT / "Dockerfile").read_text()
    assert '"server", "serve"' in dockerfile and "pip install '.[tracing]'" in dockerfile
    # Every package pyproject.toml lists is copied into the image (else `pip install .` fails).
    for package in ("server", "imagerepo", "sql"):
        assert f"COPY {package} ./{package}" in dockerfile

    # Replicas behind a load balancer that reaches them by the service's name, streaming
    # uploads; their connections fit PostgreSQL's default max_connections (100).
    assert app["deploy"]["replicas"] >= 2 and "ports" not in app
    nginx = compose["configs"]["nginx"]["content"]
    assert "server app:8080" in nginx and "proxy_request_buffering off" in nginx
    assert services["nginx"]["ports"] == ["127.0.0.1:8080:8080"]
    connections = app["deploy"]["replicas"] * int(env["WORKERS"]) * int(env["DB_POOL_SIZE"])
    assert connections < 100


def test_compose_reads_no_variable_but_the_metrics_token() -> None:
    """A `$` meant for nginx or Prometheus (`$remote_addr`, `$labels`) and not doubled would be
    replaced by Compose with an empty string; the one variable read has a default."""
    text = (ROOT / "docker-compose.yml").read_text()
    read = [m for m in _COMPOSE_VARIABLE.finditer(text) if m.group(0) != "$$"]
    assert {m.group(1) or m.group(3) for m in read} == {"METRICS_TOKEN"}
    assert all(m.group(2) for m in read), "METRICS_TOKEN has a default wherever it is read"


def test_nginx_hands_the_client_and_its_request_id_to_replicas_that_trust_only_it() -> None:
    compose = load_compose()
    services = compose["services"]
    env = {k: str(v) for k, v in services["app"]["environment"].items()}
    nginx = " ".join(compose["configs"]["nginx"]["content"].split())
    for header in ("X-Forwarded-For $proxy_add_x_forwarded_for;", "X-Forwarded-Proto $scheme;",
                   "X-Request-ID $request_id;"):
        assert f"proxy_set_header {header}" in nginx
    # nginx's access lines carry the id the app's lines carry: the two can be joined.
    log_format = re.search(r"log_format (\w+) (.*?);", nginx)
    assert log_format and "$request_id" in log_format.group(2)
    assert f"access_log /var/log/nginx/access.log {log_format.group(1)};" in nginx

    # nginx has a fixed address, which the app trusts; nothing else on the network is.
    (ipam,) = compose["networks"]["default"]["ipam"]["config"]
    subnet, dynamic = ipaddress.ip_network(ipam["subnet"]), ipaddress.ip_network(ipam["ip_range"])
    nginx_address = ipaddress.ip_address(
        services["nginx"]["networks"]["default"]["ipv4_address"])
    assert nginx_address in subnet and nginx_address not in dynamic
    config = Config.from_env(env)
    trusted = TrustedProxies(config.trusted_proxies, config.forwarded_header)
    assert trusted.trusts(str(nginx_address))
    assert config.forwarded_header == "x-forwarded-for"  # the header nginx writes
    others = [dynamic[0], dynamic[-1], next(subnet.hosts())]  # other containers, the gateway
    assert not any(trusted.trusts(str(a)) for a in others)
    assert not any(network.overlaps(dynamic) for network in trusted.networks)
    # The per-address password limit works behind nginx: no longer lifted.
    assert config.password_attempts == Config(None, ROOT, "file:///x").password_attempts


def test_prometheus_scrapes_every_replica_with_the_token_the_app_asks_for() -> None:
    for env in ({}, {"METRICS_TOKEN": "set-by-the-operator-0123"}):
        compose = load_compose(env)
        services = compose["services"]
        app_env = {k: str(v) for k, v in services["app"]["environment"].items()}
        prometheus = services["prometheus"]
        assert prometheus["image"].startswith("prom/prometheus:")
        assert prometheus["ports"] == ["127.0.0.1:9090:9090"]
        files = {c["source"]: c["target"] for c in prometheus["configs"]}
        assert files["prometheus"] == "/etc/prometheus/prometheus.yml"

        scrape = yaml.safe_load(compose["configs"]["prometheus"]["content"])
        assert scrape["rule_files"] == [files["prometheus-rules"]]
        (job,) = scrape["scrape_configs"]
        # One target per replica, found by Docker's DNS; never nginx, which would answer
        # from a different replica each time.
        assert "static_configs" not in job
        (sd,) = job["dns_sd_configs"]
        assert sd["names"] == ["app"] and sd["type"] == "A"
        assert sd["port"] == int(app_env["PORT"])
        assert job.get("metrics_path", "/metrics") == "/metrics"
        assert job.get("scheme", "http") == "http"
        token = Config.from_env(app_env).metrics_token  # set, and long enough
        assert token is not None and job["authorization"]["credentials"] == token
        assert job["authorization"].get("type", "Bearer") == "Bearer"
        assert token == env.get("METRICS_TOKEN", token)


def exported_metrics() -> dict[str, tuple[str, ...]]:
    """Every sample name the server can expose, with its metric's labels."""
    names: dict[str, tuple[str, ...]] = {}
    for metric in vars(metrics).values():
        if isinstance(metric, Counter):
            suffixes: tuple[str, ...] = ("_total",)
        elif isinstance(metric, Histogram):
            suffixes = ("_bucket", "_sum", "_count")
        elif isinstance(metric, Gauge):
            suffixes = ("",)
        else:
            continue
        name, labels = metric._name, metric._labelnames
        for suffix in suffixes:
            names[name + suffix] = labels + (("le",) if suffix == "_bucket" else ())
    return names


def test_every_alert_reads_metrics_the_server_exports() -> None:
    compose = load_compose()
    rules = yaml.safe_load(compose["configs"]["prometheus-rules"]["content"])
    exprs = {rule["alert"]: " ".join(str(rule["expr"]).split())
             for group in rules["groups"] for rule in group["rules"]}
    exported = exported_metrics()
    routes = {resource.canonical for resource in
              create_app(Config(None, ROOT, "file:///x")).router.resources()}
    used: set[str] = set()
    for alert, expr in exprs.items():
        for name in re.findall(r"\bimagerepo_\w+", expr):
            assert name in exported, (alert, name)
            used.add(name)
        for name, selector in re.findall(r"\b(imagerepo_\w+)\{([^}]*)\}", expr):
            for label, value in re.findall(r'(\w+)\s*(?:=~|!~|!=|=)\s*"([^"]*)"', selector):
                assert label in exported[name], (alert, name, label)
                if label == "route":  # templates of routes the server has
                    assert set(value.split("|")) <= routes, (alert, value)
    # The alerts docs/operations.md calls worth having, and Prometheus' own `up` (a replica
    # it cannot scrape: down, or asking for another token).
    assert used >= {
        "imagerepo_http_requests_total", "imagerepo_http_request_duration_seconds_bucket",
        "imagerepo_db_pool_connections_in_use", "imagerepo_db_pool_max_connections",
        "imagerepo_db_pool_waiting", "imagerepo_cpu_jobs_waiting",
        "imagerepo_storage_errors_total", "imagerepo_login_refusals_total",
        "imagerepo_db_statement_timeouts_total"}
    assert any(re.search(r'\bup\{job="imagerepo"\}', e) for e in exprs.values())
    search = next(e for e in exprs.values() if "imagerepo_http_request_duration_seconds" in e)
    assert "histogram_quantile(0.95," in search and '"/search|/search/image"' in search


def test_the_variables_the_app_gets_are_documented() -> None:
    documented = set()
    for line in (ROOT / "docs" / "configuration.md").read_text().splitlines():
        if line.startswith("| `"):
            documented |= set(re.findall(r"`([A-Z0-9_]+)`", line.split("|")[1]))
    assert CONFIG_VARIABLES <= documented, CONFIG_VARIABLES - documented


async def test_an_installed_wheel_carries_and_applies_the_migrations(
    tmp_path: Path, admin_dsn: str
) -> None:
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
         "-w", str(wheels), str(ROOT)],
        check=True, cwd=tmp_path,
    )
    (wheel,) = wheels.glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for migration in load_migrations():
        assert f"server/sql/migrations/{migration.version:04d}_{migration.name}.sql" in names
    assert "server/sql/queries/system.sql" in names
    # Every module of the source tree ships (a package missing from pyproject's list is
    # absent from the wheel, and from the Docker image that installs it).
    sources = {str(path.relative_to(ROOT)) for package in ("server", "imagerepo")
               for path in (ROOT / package).rglob("*.py")}
    assert sources - set(names) == set()

    target = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(target)
    dsn = await create_database(admin_dsn, prefix="imagerepo_wheel")
    try:
        env = {**os.environ, "PYTHONPATH": str(target), "DATABASE_URL": dsn}
        # Run from an empty folder, so only the wheel's copy of the package can be imported.
        result = subprocess.run(
            [sys.executable, "-c",
             # The editable install's finder would find what the wheel lacks: drop it.
             "import sys; sys.meta_path[:] = [f for f in sys.meta_path "
             "if 'editable' not in repr(f).lower()]; "
             "import server.app, server.ingest, server.db.paths as p; print(p.sql_root()); "
             "from server.__main__ import main; sys.exit(main(['migrate']))"],
            env=env, cwd=tmp_path, capture_output=True, text=True, check=True,
        )
        assert result.stdout.splitlines()[0].startswith(str(target))
        assert "applied: 0001_accounts" in result.stdout
    finally:
        await drop_database(admin_dsn, dsn)
