"""Live servers for tests and checks: `incidents serve` as a subprocess.

Also a runner for checks that need a live API (the GraphQL-over-HTTP audit, fuzzing):

    python -m tests.live [--seed N] -- COMMAND...

prepares a fresh database `incident_graph_live` (on DATABASE_URL's server, or the embedded one
under .data/live), seeds it, creates a user who may do everything, serves the API on a free port,
runs COMMAND with GRAPHQL_URL and GRAPHQL_TOKEN set, stops the server and exits with COMMAND's
status.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
from prometheus_client.parser import text_string_to_metric_families

from app import db
from app.config import ROOT


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def incidents_command() -> list[str]:
    """The installed `incidents` entry point next to this interpreter, else `python -m app.cli`."""
    entry = Path(sys.executable).parent / "incidents"
    return [str(entry)] if entry.exists() else [sys.executable, "-m", "app.cli"]


def with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


class Server:
    """One `incidents serve` subprocess; its output goes to a log file, shown on failure."""

    def __init__(
        self, database_url: str, log_path: Path, env: dict[str, str] | None = None, args: tuple[str, ...] = ()
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        environment = {
            **os.environ,
            "DATABASE_URL": database_url,
            "LOG_LEVEL": "warning",
            "PYTHONUNBUFFERED": "1",
            **(env or {}),
        }
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [*incidents_command(), "serve", "--host", "127.0.0.1", "--port", str(self.port), *args],
            cwd=ROOT,
            env=environment,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_healthy(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=3.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"server not healthy after {timeout} s:\n{self.log()}")

    def terminate(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)

    def stop(self, timeout: float = 15.0) -> int:
        self.terminate()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self._log.close()
        return self.proc.returncode


async def fresh_database(server_url: str, name: str) -> str:
    """Drop and create the database `name` on that server; returns its URL."""
    admin = await asyncpg.connect(server_url)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return with_database(server_url, name)


async def prepare(server_url: str, name: str, seed_incidents: int) -> tuple[str, str]:
    """A fresh, migrated, seeded database and a token that may do everything."""
    from app.domain import seed, users

    url = await fresh_database(server_url, name)
    conn = await asyncpg.connect(url)
    try:
        await db.migrate(conn)
        if seed_incidents:
            await seed.seed(conn=conn, incidents=seed_incidents)
        token = await users.add_user(conn=conn, name="checker", grants=[("*", "write")], can_ingest=True)
    finally:
        await conn.close()
    return url, token


@contextlib.contextmanager
def serving(database_url: str, logs: Path, envs: list[dict[str, str]]):
    """One `incidents serve` process per environment in envs, all healthy, stopped on leaving
    whatever happens (RuntimeError or TimeoutError when one does not come up)."""
    started: list[Server] = []
    try:
        for n, env in enumerate(envs):
            started.append(Server(database_url, logs / f"server-{n}.log", env=env))
        for server in started:
            server.wait_healthy()
        yield started
    finally:
        for server in started:
            server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.live")
    parser.add_argument("--seed", type=int, default=20, help="attack stories to seed")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give a command after --")
    server_url = os.environ.get("DATABASE_URL") or db.embedded_database_url(ROOT / ".data" / "live")
    url, token = asyncio.run(prepare(server_url, "incident_graph_live", args.seed))
    log_path = ROOT / ".data" / "live-server.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    server = Server(url, log_path)
    try:
        server.wait_healthy()
        env = {**os.environ, "GRAPHQL_URL": f"{server.url}/graphql", "GRAPHQL_TOKEN": token}
        status = subprocess.call(command, env=env, cwd=ROOT)
    finally:
        server.stop()
    if status != 0:
        print(f"server log: {log_path}", file=sys.stderr)
    sys.exit(status)


if __name__ == "__main__":
    main()


def samples(text: str) -> dict[tuple[str, frozenset], float]:
    """Every sample of a scrape by name and labels."""
    found = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            found[(s.name, frozenset(s.labels.items()))] = s.value
    return found


def value(scraped: dict, name: str, **labels) -> float:
    return scraped.get((name, frozenset(labels.items())), 0.0)


async def scrape(server: Server) -> dict[tuple[str, frozenset], float]:
    """A server's /metrics, by name and labels (samples)."""
    async with httpx.AsyncClient(timeout=10) as http:
        return samples((await http.get(f"{server.url}/metrics")).text)
