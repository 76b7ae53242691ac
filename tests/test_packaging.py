"""What ships: docker compose wiring, and a built wheel that carries (and runs) the SQL."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import yaml

from server.config import Config
from server.db.migrations import load_migrations
from tests.databases import create_database, drop_database

ROOT = Path(__file__).resolve().parents[1]
CONFIG_VARIABLES = {
    "DATABASE_URL", "DATA_DIR", "STORAGE_URL", "HOST", "PORT", "MAX_UPLOAD_BYTES",
    "MAX_FILES_PER_REQUEST", "MAX_IMAGE_PIXELS", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
    "AWS_REGION", "AWS_ENDPOINT_URL_S3", "WORKERS", "DB_POOL_SIZE", "PASSWORD_ATTEMPTS",
}


def test_compose_wires_postgres_minio_and_the_app() -> None:
    compose: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
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
    assert '"server", "serve"' in dockerfile and "pip install ." in dockerfile
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
