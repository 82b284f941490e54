"""A team's services on loopback for end-to-end tests: a scratch PostgreSQL cluster (the Debian
package's initdb and pg_ctl), moto's S3 server, and ``mlflow server`` on both with its basic-auth
app. Every start is waited on with a deadline, and every process is stopped on the way out."""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from unittest import mock

import pytest

from .conftest import Project
from .servers import NO_SERVER_JOBS, free_port, running
from .servers import _wait_healthy as wait_healthy

ADMIN = "admin"
ADMIN_PASSWORD = "admin-Secret-4242"
BUCKET = "pricer-team"
S3_KEYS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
POSTGRES_TIMEOUT_S = 60
STAGE_ERROR = re.compile(r"^\d\d:\d\d:\d\d ERROR pricer\.stages\.train: (.*)$", re.M)


def postgres_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


def require_services() -> None:
    """Skip, saying why, where a service cannot be run here."""
    if postgres_bin() is None:
        pytest.skip("PostgreSQL is not installed (.ci/run installs the Debian package `postgresql`)")
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root without a `postgres` user to run PostgreSQL as")
    for module in ("moto", "psycopg", "boto3", "dvc_s3", "flask_wtf"):
        try:
            __import__(module)
        except ImportError:
            pytest.skip(f"{module} is not installed: pip install -e '.[test,team]' (requirements.lock has both)")


@dataclass
class Postgres:
    """A scratch cluster listening on 127.0.0.1 only (no Unix socket), trusting local logins."""

    data: Path
    port: int
    log: Path
    user: str = "mlflow"
    database: str = "mlflow"

    @property
    def uri(self) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{self.database}"

    def _as_owner(self, *command: str) -> list[str]:
        # initdb and postgres refuse to run as root: run them as the package's `postgres` user
        return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else list(command)

    def _pg_ctl(self, *args: str) -> None:
        command = self._as_owner(str(postgres_bin() / "pg_ctl"), "-D", str(self.data), "-l", str(self.log),
                                 "-w", "-t", str(POSTGRES_TIMEOUT_S), *args)
        subprocess.run(command, check=True, capture_output=True, timeout=POSTGRES_TIMEOUT_S + 30)

    def start(self) -> None:
        options = f"-c listen_addresses=127.0.0.1 -p {self.port} -c unix_socket_directories='' -c fsync=off"
        self._pg_ctl("-o", options, "start")

    def stop(self) -> None:
        self._pg_ctl("-m", "fast", "stop")

    def restart(self) -> None:
        self.stop()
        self.start()

    def create_database(self, name: str) -> None:
        import psycopg

        with psycopg.connect(f"postgresql://{self.user}@127.0.0.1:{self.port}/postgres", autocommit=True,
                             connect_timeout=10) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')


@contextmanager
def postgres() -> Iterator[Postgres]:
    scratch = Path(tempfile.mkdtemp(prefix="pricer-pg-"))
    try:
        if os.geteuid() == 0:
            shutil.chown(scratch, "postgres")
        cluster = Postgres(data=scratch / "data", port=free_port(), log=scratch / "postgres.log")
        subprocess.run(cluster._as_owner(str(postgres_bin() / "initdb"), "-D", str(cluster.data), "-U", cluster.user,
                                         "--auth=trust", "-E", "UTF8"),
                       check=True, capture_output=True, timeout=120)
        cluster.start()
        try:
            cluster.create_database(cluster.database)
            yield cluster
        finally:
            if (cluster.data / "postmaster.pid").exists():
                cluster.stop()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


@contextmanager
def s3_server(log_dir: Path, port: int) -> Iterator[subprocess.Popen]:
    """moto's S3 server on 127.0.0.1:``port`` (it keeps its objects in memory, until it stops)."""
    endpoint = f"http://127.0.0.1:{port}"
    env = os.environ | S3_KEYS
    with running([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], cwd=log_dir, env=env,
                 log_path=log_dir / f"moto-{port}.log", health_url=f"{endpoint}/moto-api/", timeout_s=120) as process:
        yield process


def create_bucket(endpoint: str, bucket: str = BUCKET) -> None:
    import boto3

    s3 = boto3.client("s3", endpoint_url=endpoint, **{k.lower(): v for k, v in S3_KEYS.items()
                                                       if k != "AWS_DEFAULT_REGION"}, region_name="us-east-1")
    s3.create_bucket(Bucket=bucket)


def s3_keys(endpoint: str, prefix: str = "", bucket: str = BUCKET) -> list[str]:
    import boto3

    s3 = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="testing", aws_secret_access_key="testing",
                      region_name="us-east-1")
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return [item["Key"] for page in pages for item in page.get("Contents", [])]


@dataclass
class TeamServices:
    """The running services and how a team member reaches them."""

    postgres: Postgres
    s3_endpoint: str
    tracking_uri: str
    scratch: Path
    server_command: list[str] = field(default_factory=list)
    server_env: dict[str, str] = field(default_factory=dict)
    server_log: Path | None = None

    def client_env(self, username: str = ADMIN, password: str = ADMIN_PASSWORD) -> dict[str, str]:
        """What a team member's shell holds: the server, their login, and the S3 endpoint's keys."""
        return {"MLFLOW_TRACKING_URI": self.tracking_uri, "MLFLOW_TRACKING_USERNAME": username,
                "MLFLOW_TRACKING_PASSWORD": password, "MLFLOW_S3_ENDPOINT_URL": self.s3_endpoint,
                "AWS_ENDPOINT_URL": self.s3_endpoint, **S3_KEYS}

    process: subprocess.Popen | None = None
    s3_process: subprocess.Popen | None = None

    def start_server(self) -> None:
        """``mlflow server`` in its own process group, healthy within a deadline."""
        with open(self.server_log, "a") as log:
            self.process = subprocess.Popen(self.server_command, cwd=self.scratch, env=self.server_env, stdout=log,
                                            stderr=subprocess.STDOUT, start_new_session=True)
        wait_healthy(self.process, f"{self.tracking_uri}/health", self.server_log, 180)

    def stop_server(self, signum: int = signal.SIGTERM) -> None:
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signum)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
        self.process = None


def mlflow_server_command(backend_uri: str, port: int) -> list[str]:
    return [str(Path(sys.executable).with_name("mlflow")), "server", "--backend-store-uri", backend_uri,
            "--artifacts-destination", f"s3://{BUCKET}/mlartifacts", "--host", "127.0.0.1", "--port", str(port),
            "--workers", "1", "--app-name", "basic-auth"]


@contextmanager
def team_services(scratch: Path) -> Iterator[TeamServices]:
    """PostgreSQL, S3 and the MLflow server with logins, all on 127.0.0.1, until the block ends."""
    require_services()
    with ExitStack() as stack:
        cluster = stack.enter_context(postgres())
        cluster.create_database("mlflow_auth")
        s3_port = free_port()
        endpoint = f"http://127.0.0.1:{s3_port}"
        s3_process = stack.enter_context(s3_server(scratch, s3_port))
        create_bucket(endpoint)
        port = free_port()
        auth_config = scratch / "basic_auth.ini"
        auth_config.write_text(
            "[mlflow]\ndefault_permission = READ\n"
            f"database_uri = postgresql://{cluster.user}@127.0.0.1:{cluster.port}/mlflow_auth\n"
            f"admin_username = {ADMIN}\nadmin_password = {ADMIN_PASSWORD}\n"
            "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
            "auth_cache_ttl_seconds = 60\n")  # as docs/team.md: the password's hash is checked once a minute
        env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")} | S3_KEYS | {
            "MLFLOW_S3_ENDPOINT_URL": endpoint, "MLFLOW_AUTH_CONFIG_PATH": str(auth_config),
            "MLFLOW_FLASK_SERVER_SECRET_KEY": "pricer-test-csrf-key"} | NO_SERVER_JOBS
        services = TeamServices(postgres=cluster, s3_endpoint=endpoint, tracking_uri=f"http://127.0.0.1:{port}",
                                scratch=scratch, server_command=mlflow_server_command(cluster.uri, port),
                                server_env=env, server_log=scratch / "mlflow-server.log", s3_process=s3_process)
        services.start_server()
        stack.callback(services.stop_server)
        yield services


# ------------------------------------------------------------------ a team member's side


def team_clone(project: Project, services: TeamServices) -> Project:
    """``project`` as a team member's clone: its commands reach the services (``client_env``)."""
    project.env |= services.client_env()
    return project


@contextmanager
def as_admin(services: TeamServices):
    """An MLflow client logged in as the admin (the login lives in the environment, as for users)."""
    from mlflow.tracking import MlflowClient

    login = {"MLFLOW_TRACKING_USERNAME": ADMIN, "MLFLOW_TRACKING_PASSWORD": ADMIN_PASSWORD,
             "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "3"}
    with mock.patch.dict(os.environ, login):  # the environment as it was, afterwards
        yield MlflowClient(services.tracking_uri, registry_uri=services.tracking_uri)


def versions(services: TeamServices, name: str) -> list:
    with as_admin(services) as client:
        return client.search_model_versions(f"name = '{name}'")


def all_runs(services: TeamServices) -> list:
    with as_admin(services) as client:
        return client.search_runs([client.get_experiment_by_name("pricer").experiment_id])


def train(project: Project, model: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """The train stage in ``project`` (``env`` added), its exit status and output, whatever they are."""
    return project.with_env(env or {}).run("python", "stages/train.py", model, check=False)



def cache_files(project: Project) -> list[Path]:
    cache = project.root / ".dvc" / "cache"
    return sorted(path.relative_to(cache) for path in cache.rglob("*") if path.is_file())
