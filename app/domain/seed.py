"""Realistic demo data: through the ingestion path when small, set-based SQL when large.

The rule: up to INGESTION_LIMIT incidents (the demo's 60, the default 200, anything a test or a
newcomer asks for) go through the normal ingestion path, so correlation builds the incidents
exactly as it does for detection sources. Above it, `bulk_seed` writes the same kind of data
with a few INSERT ... SELECT statements (a million incidents and five million alerts in
minutes), producing what ingestion would have: see app/domain/bulk_seed.py.

Each "attack story" is a handful of alerts on one host and account over a few hours, with MITRE
tactics as categories, host names, accounts, emails, IPs and file names as evidence. Some stories
share a command-and-control IP, so correlation merges them into multi-stage incidents. The data is
deterministic for a given size.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg

from app.config import settings
from app.domain.bulk_seed import FIRST as ALL_FIRST
from app.domain.bulk_seed import LAST as ALL_LAST
from app.domain.bulk_seed import SEVERITY_WEIGHTS, bulk_seed
from app.domain.ingestion import AlertIn, Correlation, ingest_alerts
from app.domain.models import Access, EntityKind
from app.domain.viewers import ALL_SCOPES, Viewer

DEMO_INCIDENTS = 60
INGESTION_LIMIT = 5_000
SCOPES = ["default", "default", "default", "finance", "engineering"]
# The demo's people: the first of the benchmark's.
FIRST = ALL_FIRST[:20]
LAST = ALL_LAST[:20]
FILES = [
    "invoice_2026.pdf.exe",
    "mimikatz.exe",
    "rclone.exe",
    "payload.dll",
    "update.ps1",
    "svchost32.exe",
    "AnyDesk.exe",
    "procdump64.exe",
    "Q3-report.xlsm",
    "run.bat",
]
DOMAINS = ["contoso.com", "fabrikam.com", "northwind.io"]
C2_IPS = [f"185.220.{a}.{b}" for a in range(100, 104) for b in (7, 19, 42, 77)]

# (category, title template). Templates use {host}, {user}, {email}, {file}, {ip}.
DETECTIONS = [
    ("InitialAccess", "Phishing email with malicious attachment delivered to {email}"),
    ("InitialAccess", "Anomalous sign-in for {user} from {ip}"),
    ("Execution", "Suspicious PowerShell command line on {host}"),
    ("Execution", "Malicious file {file} executed on {host}"),
    ("Persistence", "New scheduled task created by {user} on {host}"),
    ("PrivilegeEscalation", "Token impersonation attempt on {host}"),
    ("DefenseEvasion", "Security tooling disabled on {host}"),
    ("CredentialAccess", "Credential dumping via LSASS access on {host}"),
    ("CredentialAccess", "Password spray against {user}"),
    ("Discovery", "Domain reconnaissance with net.exe by {user}"),
    ("LateralMovement", "Possible lateral movement from {host} using remote services"),
    ("LateralMovement", "Pass-the-hash activity from {host}"),
    ("Collection", "Suspicious inbox forwarding rule for {email}"),
    ("Exfiltration", "Large upload with {file} from {host}"),
    ("CommandAndControl", "Connection to known C2 server {ip} from {host}"),
    ("Impact", "Ransomware behavior detected on {host}"),
]


@dataclass(frozen=True)
class Seeded:
    incidents: int
    alerts: int


def generate(n_stories: int, *, now: datetime, rng: random.Random) -> list[AlertIn]:
    """Alerts for about n_stories incidents, in detection order."""
    alerts: list[AlertIn] = []
    span = timedelta(days=30)
    for story in range(n_stories):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        user = f"{first}.{last}"
        email = f"{user}@{rng.choice(DOMAINS)}"
        host = f"{rng.choice(['WS', 'LT', 'SRV', 'DC'])}-{rng.randint(1000, 9999)}-{story}"
        ip = (
            rng.choice(C2_IPS)
            if rng.random() < 0.15
            else f"10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
        )
        scope = rng.choice(SCOPES)
        start = now - span * rng.random() ** 2 - timedelta(hours=6)
        for step in range(rng.choice([1, 1, 2, 2, 3, 3, 4, 5, 6])):
            category, template = rng.choice(DETECTIONS)
            file = rng.choice(FILES)
            title = template.format(host=host, user=user, email=email, file=file, ip=ip)
            entities = [(EntityKind.DEVICE, host), (EntityKind.USER, user)]
            if "{email}" in template:
                entities.append((EntityKind.MAILBOX, email))
            if "{file}" in template:
                entities.append((EntityKind.FILE, file))
            if "{ip}" in template:
                entities.append((EntityKind.IP, ip))
            alerts.append(
                AlertIn(
                    external_id=f"seed-{story}-{step}",
                    title=title,
                    severity=rng.choice(SEVERITY_WEIGHTS),
                    category=category,
                    scope=scope,
                    detected_at=start + timedelta(minutes=37 * step + rng.randint(0, 30)),
                    entities=entities,
                )
            )
    alerts.sort(key=lambda a: a.detected_at)
    return alerts


async def seed(*, conn: asyncpg.Connection, incidents: int, seed_value: int = 42) -> Seeded:
    """Add about `incidents` attack stories; returns how many incidents and alerts exist now."""
    if incidents > INGESTION_LIMIT:
        await bulk_seed(conn=conn, incidents=incidents)
    else:
        await _ingest_stories(conn=conn, incidents=incidents, seed_value=seed_value)
    counts = await conn.fetchrow("SELECT (SELECT count(*) FROM incidents) AS i, (SELECT count(*) FROM alerts) AS a")
    return Seeded(incidents=counts["i"], alerts=counts["a"])


async def _ingest_stories(*, conn: asyncpg.Connection, incidents: int, seed_value: int) -> None:
    now = await conn.fetchval("SELECT now()")
    rng = random.Random(seed_value)
    ingester = Viewer(id=0, name="seed", can_view_incidents=True, can_ingest=True, grants={ALL_SCOPES: Access.WRITE})
    batch = generate(incidents, now=now.astimezone(UTC), rng=rng)
    size = settings().ingest_max_alerts  # as many as ingestAlerts takes at once
    for start in range(0, len(batch), size):
        async with conn.transaction():
            await ingest_alerts(
                conn=conn, viewer=ingester, batch=batch[start : start + size], correlation=Correlation()
            )
