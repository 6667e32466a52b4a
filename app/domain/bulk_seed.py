"""Seeding at SOC scale: a million incidents and five million alerts, set-based, in minutes.

The data is what the ingestion path would have produced for the same attack stories, written
by a handful of INSERT ... SELECT statements inside PostgreSQL instead of one call per alert:

- Each story is one incident. Its alerts share the story's host, account, mailbox and IP as
  evidence (that is why correlation put them together), come a few minutes apart, and each
  writes the log entry ingestion writes: INCIDENT_CREATED (actor "system") for the first,
  ALERT_CORRELATED for the others, at the alert's detection time.
- The incident is named after its first alert; severity, last activity, alert count and scopes
  are computed from its alerts, as aggregates.RECOMPUTE does.
- Names carry MITRE tactics, host names (WS-4821), accounts (alice.smith), emails, file names
  and IPs. Hosts, accounts, files and detections are drawn from long-tailed (1/k) distributions:
  a few are everywhere, most are rare, and popular hosts and accounts recur across stories,
  so that ingested alerts find related evidence to correlate with.
- Incident numbers and alert ids grow with time, as if the alerts had arrived in order over a
  year; older incidents are mostly resolved, recent ones mostly open.

Foreign keys are not re-checked row by row (the rows are consistent by construction) and the
secondary indexes are dropped before the load and built again after it, which is what makes
it fast. Everything runs in one transaction: a failed seed leaves nothing behind. The data is
deterministic for a given size (PostgreSQL's random() is seeded).
"""

from __future__ import annotations

from datetime import timedelta

import asyncpg

from app.domain.models import Severity

TABLES = (
    "incidents",
    "alerts",
    "alert_titles",
    "alert_entities",
    "incident_evidence",
    "incident_evidence_text",
    "activity_log",
)

# (category, title template): the most frequent detections first (drawn with weight 1/rank).
DETECTIONS = [
    ("Execution", "Suspicious PowerShell command line on {host}"),
    ("InitialAccess", "Anomalous sign-in for {user} from {ip}"),
    ("CommandAndControl", "Connection to known C2 server {ip} from {host}"),
    ("Execution", "Malicious file {file} executed on {host}"),
    ("InitialAccess", "Phishing email with malicious attachment delivered to {email}"),
    ("CredentialAccess", "Password spray against {user}"),
    ("Discovery", "Domain reconnaissance with net.exe by {user} on {host}"),
    ("Persistence", "New scheduled task created by {user} on {host}"),
    ("DefenseEvasion", "Security tooling disabled on {host}"),
    ("LateralMovement", "Possible lateral movement from {host} using remote services"),
    ("CredentialAccess", "Credential dumping via LSASS access on {host}"),
    ("InitialAccess", "User {user} clicked a malicious link {url}"),
    ("Collection", "Suspicious inbox forwarding rule for {email}"),
    ("Exfiltration", "Large upload with {file} from {host}"),
    ("PrivilegeEscalation", "Token impersonation attempt on {host}"),
    ("LateralMovement", "Pass-the-hash activity from {host}"),
    ("Execution", "Encoded command launched by {file} on {host}"),
    ("Persistence", "Registry run key added for {file} on {host}"),
    ("DefenseEvasion", "Process injection into svchost.exe by {file} on {host}"),
    ("Discovery", "Network share enumeration from {host} by {user}"),
    ("CommandAndControl", "Beaconing to {url} from {host}"),
    ("Impact", "Ransomware behavior detected on {host}"),
    ("Exfiltration", "Data staged for exfiltration to {ip} by {user}"),
    ("CredentialAccess", "Kerberoasting activity by {user} on {host}"),
    ("InitialAccess", "Suspicious OAuth consent granted by {email}"),
    ("Collection", "Mass download from SharePoint by {user}"),
    ("DefenseEvasion", "Event log cleared on {host}"),
    ("Persistence", "New local administrator {user} created on {host}"),
    ("Execution", "WMI remote execution of {file} on {host}"),
    ("LateralMovement", "RDP session from {ip} to {host}"),
    ("Discovery", "AdFind reconnaissance by {user} on {host}"),
    ("Impact", "Shadow copies deleted on {host}"),
    ("CommandAndControl", "DNS tunneling from {host} to {url}"),
    ("PrivilegeEscalation", "Exploitation of vulnerable driver {file} on {host}"),
    ("Exfiltration", "Email forwarding of confidential files by {email}"),
    ("InitialAccess", "Impossible travel sign-in for {email} from {ip}"),
    ("CredentialAccess", "Brute force against {user} from {ip}"),
    ("Collection", "Screen capture tool {file} run by {user}"),
    ("Impact", "Mass file encryption by {file} on {host}"),
    ("DefenseEvasion", "Masquerading binary {file} on {host}"),
]
# How often each severity is drawn (the ingestion-path seed draws from the same list).
SEVERITY_WEIGHTS = [Severity.INFORMATIONAL] * 1 + [Severity.LOW] * 3 + [Severity.MEDIUM] * 4 + [Severity.HIGH] * 2
SCOPES = ["default"] * 12 + ["finance"] * 2 + ["engineering"] * 2 + ["hr", "legal", "operations"]
HOST_PREFIXES = ["WS", "WS", "WS", "WS", "LT", "LT", "LT", "SRV", "SRV", "DC", "VM", "SQL", "WEB", "FS"]
FIRST = [
    "alice",
    "bob",
    "carol",
    "dave",
    "erin",
    "frank",
    "grace",
    "heidi",
    "ivan",
    "judy",
    "mallory",
    "niaj",
    "olivia",
    "peggy",
    "rupert",
    "sybil",
    "trent",
    "victor",
    "walter",
    "yusuf",
    "amara",
    "bruno",
    "chen",
    "dmitri",
    "elena",
    "farid",
    "gita",
    "hiro",
    "ines",
    "jonas",
    "kofi",
    "lena",
    "mateo",
    "nadia",
    "oskar",
    "priya",
    "quinn",
    "rosa",
    "sanjay",
    "tomas",
    "ursula",
    "vera",
    "wei",
    "ximena",
    "yara",
    "zoltan",
    "aisha",
    "bjorn",
    "camille",
    "diego",
]
LAST = [
    "smith",
    "jones",
    "garcia",
    "miller",
    "davis",
    "martin",
    "lee",
    "walker",
    "hall",
    "young",
    "king",
    "wright",
    "lopez",
    "hill",
    "scott",
    "green",
    "adams",
    "baker",
    "nelson",
    "carter",
    "mitchell",
    "perez",
    "roberts",
    "turner",
    "phillips",
    "campbell",
    "parker",
    "evans",
    "edwards",
    "collins",
    "stewart",
    "sanchez",
    "morris",
    "rogers",
    "reed",
    "cook",
    "morgan",
    "bell",
    "murphy",
    "bailey",
    "rivera",
    "cooper",
    "richardson",
    "cox",
    "howard",
    "ward",
    "torres",
    "peterson",
    "gray",
    "ramirez",
    "james",
    "watson",
    "brooks",
    "kelly",
    "sanders",
    "price",
    "bennett",
    "wood",
    "barnes",
    "ross",
    "henderson",
    "coleman",
    "jenkins",
    "perry",
    "powell",
    "long",
    "patterson",
    "hughes",
    "flores",
    "washington",
    "butler",
    "simmons",
    "foster",
    "gonzales",
    "bryant",
    "alexander",
    "russell",
    "griffin",
    "diaz",
    "hayes",
    "nakamura",
    "okafor",
    "novak",
    "kowalski",
    "schmidt",
    "dubois",
    "rossi",
    "silva",
    "tanaka",
    "ivanova",
]
DOMAINS = [
    "contoso.com",
    "contoso.com",
    "contoso.com",
    "fabrikam.com",
    "northwind.io",
    "adventure-works.com",
    "tailspintoys.com",
    "woodgrovebank.com",
    "litware.com",
    "proseware.com",
    "fourthcoffee.com",
    "treyresearch.net",
]
TOOLS = [
    "mimikatz.exe",
    "rclone.exe",
    "procdump64.exe",
    "AnyDesk.exe",
    "psexec.exe",
    "cobaltstrike.dll",
    "svchost32.exe",
    "update.ps1",
    "payload.dll",
    "run.bat",
    "invoice_2026.pdf.exe",
    "Q3-report.xlsm",
    "nltest.exe",
    "adfind.exe",
    "certutil.exe",
    "rundll32.exe",
    "bloodhound.zip",
    "lazagne.exe",
    "ngrok.exe",
    "7z.exe",
    "wevtutil.exe",
    "vssadmin.exe",
    "bitsadmin.exe",
    "mshta.exe",
    "regsvr32.exe",
    "installutil.exe",
    "WinSCP.exe",
    "megasync.exe",
    "teamviewer_setup.exe",
    "chrome_update.exe",
    "OneDriveSetup.exe",
    "putty.exe",
    "plink.exe",
    "sharphound.exe",
    "rubeus.exe",
    "seatbelt.exe",
    "kerbrute.exe",
    "netscan.exe",
    "advanced_ip_scanner.exe",
]
# Words for generated file names and URLs: the long tail of the vocabulary.
WORDS = [
    "agent",
    "backup",
    "billing",
    "budget",
    "cache",
    "client",
    "config",
    "contract",
    "crypt",
    "daily",
    "data",
    "debug",
    "deploy",
    "driver",
    "export",
    "finance",
    "helper",
    "host",
    "hr",
    "import",
    "index",
    "installer",
    "invoice",
    "kernel",
    "launcher",
    "ledger",
    "license",
    "loader",
    "login",
    "maint",
    "manager",
    "media",
    "monitor",
    "net",
    "notes",
    "office",
    "order",
    "patch",
    "payroll",
    "portal",
    "print",
    "proxy",
    "query",
    "quote",
    "report",
    "resume",
    "runner",
    "sales",
    "scan",
    "secure",
    "service",
    "setup",
    "share",
    "shipping",
    "signin",
    "snapshot",
    "sync",
    "system",
    "task",
    "tax",
    "temp",
    "tools",
    "tracker",
    "update",
    "upload",
    "vault",
    "vpn",
    "wallet",
    "web",
    "wire",
    "zoom",
    "teams",
    "outlook",
    "azure",
    "okta",
    "docusign",
    "dropbox",
    "fedex",
    "dhl",
    "ups",
    "paypal",
    "adobe",
    "citrix",
    "cisco",
    "fortinet",
    "vmware",
    "oracle",
]
FILE_EXTENSIONS = [".exe", ".exe", ".exe", ".dll", ".ps1", ".bat", ".js", ".vbs", ".hta", ".iso", ".lnk", ".zip"]
URL_TLDS = [".com", ".net", ".io", ".top", ".xyz", ".ru", ".online", ".site"]

HOSTS = 250_000  # distinct host identities before the 1/k draw
ACCOUNTS = 60_000  # distinct accounts
C2_IPS = 96
SPAN = timedelta(days=365)  # the stories are spread over the last year


def _zipf(n: int, head: int) -> str:
    """SQL for a draw in 1..n with probability about 1/(k + head): a long tail, and a head that
    `head` flattens (no single host in 5% of the stories)."""
    return f"least({n}, floor(exp(ln({head}) + random() * ln(({n} + {head})::float8 / {head})))::int - {head} + 1)"


def _pick(array: str) -> str:
    """SQL for a uniform draw from a text[] expression."""
    return f"({array})[1 + floor(random() * cardinality({array}))::int]"


# One row per attack story: its incident number, its time and its evidence.
STORIES = f"""
CREATE TEMP TABLE seed_story ON COMMIT DROP AS
SELECT s.incident_id, s.ends_at - s.n_alerts * s.gap AS start_at, s.gap, s.n_alerts, s.scope,
       s.host_prefix || '-' || (1000 + (s.host * 7919) % 90000)::text AS host,
       s.account, s.account || '@' || s.domain AS email,
       CASE WHEN s.r_ip < 0.2
            THEN '185.220.' || (100 + s.c2 / 16)::text || '.' || (7 + (s.c2 % 16) * 13)::text
            ELSE '10.' || floor(s.r_ip * 255)::int::text || '.' || floor(random() * 255)::int::text
                 || '.' || (1 + floor(random() * 254)::int)::text END AS ip,
       CASE WHEN s.age > interval '14 days'
            THEN CASE WHEN s.r_status < 0.93 THEN 'resolved' WHEN s.r_status < 0.97 THEN 'in_progress' ELSE 'active' END
            ELSE CASE WHEN s.r_status < 0.15 THEN 'resolved' WHEN s.r_status < 0.40 THEN 'in_progress' ELSE 'active' END
       END::incident_status AS status
  FROM (
      SELECT $1::bigint + g AS incident_id,
             $2::timestamptz - (($3::bigint - g + random()) / $3::bigint) * $4::interval AS ends_at,
             $4::interval * (($3::bigint - g)::float8 / $3::bigint) AS age,
             n.n_alerts,
             CASE WHEN n.n_alerts > 20 THEN interval '1 minute' ELSE interval '37 minutes' END AS gap,
             {_pick("$5::text[]")} AS scope,
             {_pick("$6::text[]")} AS host_prefix,
             {_zipf(HOSTS, 20)} AS host,
             ($7::text[])[1 + a % cardinality($7::text[])] || '.'
               || ($8::text[])[1 + (a / cardinality($7::text[])) % cardinality($8::text[])]
               || CASE WHEN a >= cardinality($7::text[]) * cardinality($8::text[])
                       THEN (a / (cardinality($7::text[]) * cardinality($8::text[])))::text ELSE '' END AS account,
             {_pick("$9::text[]")} AS domain,
             floor(random() * {C2_IPS})::int AS c2,
             random() AS r_ip, random() AS r_status
        FROM generate_series(1, $3::bigint) g,
             LATERAL (SELECT {_zipf(ACCOUNTS, 20)} - 1 + 0 * g AS a) acc,
             LATERAL (SELECT CASE WHEN random() < 0.0005 THEN 100 + floor(random() * 900)::int
                                  ELSE 1 + least(59, floor(-ln(1 - random()) * 4.2)::int) END + 0 * g AS n_alerts) n
  ) s
"""

# One row per alert, numbered in detection order (alert ids grow with time, as on ingestion).
ALERTS = f"""
CREATE TEMP TABLE seed_alert ON COMMIT DROP AS
SELECT $1::bigint + row_number() OVER (ORDER BY x.detected_at, x.incident_id, x.step) AS id, x.*,
       replace(replace(replace(replace(replace(replace(($7::text[])[x.detection],
           '{{host}}', x.host), '{{user}}', x.account), '{{email}}', x.email), '{{file}}', x.file),
           '{{ip}}', x.ip), '{{url}}', x.url) AS title
  FROM (
      SELECT st.incident_id, st.status AS incident_status, st.n_alerts, step, d.n AS detection,
             st.start_at + (step - 1) * st.gap + random() * 0.8 * st.gap AS detected_at,
             CASE WHEN random() < 0.06 THEN 'default' ELSE st.scope END AS scope,
             {_pick("$2::text[]")}::severity AS severity,
             st.host, st.account, st.email, st.ip,
             CASE WHEN random() < 0.55 THEN {_pick("$3::text[]")}
                  ELSE {_pick("$4::text[]")} || '_' || {_pick("$4::text[]")} || {_pick("$5::text[]")}
             END AS file,
             'https://' || {_pick("$4::text[]")} || '-' || {_pick("$4::text[]")} || {_pick("$6::text[]")}
               || '/' || substr(md5(random()::text), 1, 8) AS url
        FROM seed_story st
       CROSS JOIN LATERAL generate_series(1, st.n_alerts) AS step
       CROSS JOIN LATERAL (SELECT {_zipf(len(DETECTIONS), 3)} + 0 * step AS n) d
  ) x
"""

INSERT_ALERTS = """
INSERT INTO alerts (id, external_id, title, severity, status, category, scope, detected_at, incident_id, created_at)
SELECT a.id, 'bulk-' || a.incident_id || '-' || a.step, a.title, a.severity,
       CASE WHEN a.incident_status = 'resolved' THEN 'resolved'
            WHEN random() < 0.3 THEN 'in_progress' ELSE 'new' END::alert_status,
       ($1::text[])[a.detection], a.scope, a.detected_at, a.incident_id,
       a.detected_at + random() * interval '20 seconds'
  FROM seed_alert a ORDER BY a.id
"""

# The titles' search (db/migrations/0029), as its trigger writes it when triggers are off.
INSERT_TITLES = "INSERT INTO alert_titles (alert_id, title) SELECT a.id, a.title FROM seed_alert a ORDER BY a.id"

# The evidence each template names ($1: the templates); every alert names its device and account.
ENTITIES_OF_ALERT = """
 CROSS JOIN LATERAL (
     VALUES ('device'::entity_kind, a.host, true),
            ('user', a.account, true),
            ('mailbox', a.email, strpos(($1::text[])[a.detection], '{email}') > 0),
            ('file', a.file, strpos(($1::text[])[a.detection], '{file}') > 0),
            ('ip', a.ip, strpos(($1::text[])[a.detection], '{ip}') > 0),
            ('url', a.url, strpos(($1::text[])[a.detection], '{url}') > 0)
 ) AS e(kind, value, named)
"""
INSERT_ENTITIES = f"""
INSERT INTO alert_entities (alert_id, kind, value, detected_at)
SELECT a.id, e.kind, e.value, a.detected_at
  FROM seed_alert a {ENTITIES_OF_ALERT}
 WHERE e.named
 ORDER BY a.id
"""

# Named after the first alert, derived fields from all of them (as aggregates.RECOMPUTE), and the
# evidence bits of their entities' values as db/migrations/0026's triggers set them (computed
# here, before the entities exist: setting them after would write every incident twice).
INSERT_INCIDENTS = f"""
INSERT INTO incidents (id, name, status, severity, last_activity_at, alert_count, alert_scopes, created_at, name_scopes,
                       evidence_bits)
SELECT st.incident_id, s.name, st.status, s.severity, s.last_activity_at, s.n, s.scopes, s.created_at, s.name_scopes,
       coalesce(b.bits, B'0'::bit(256))
  FROM seed_story st
  JOIN (SELECT a.incident_id, max(a.title) FILTER (WHERE a.step = 1) AS name,
               array_agg(a.scope) FILTER (WHERE a.step = 1) AS name_scopes,
               min(a.detected_at) + interval '20 seconds' AS created_at,
               max(a.severity) AS severity, max(a.detected_at) AS last_activity_at,
               count(*)::integer AS n, array_agg(DISTINCT a.scope ORDER BY a.scope) AS scopes
          FROM seed_alert a GROUP BY a.incident_id) s ON s.incident_id = st.incident_id
  LEFT JOIN (SELECT v.incident_id, bit_or(evidence_bits(v.value_key)) AS bits
               FROM (SELECT DISTINCT a.incident_id, lower(e.value) AS value_key
                       FROM seed_alert a {ENTITIES_OF_ALERT} WHERE e.named) v
              GROUP BY 1) b ON b.incident_id = st.incident_id
 ORDER BY st.incident_id
"""

# Each incident's evidence values, counted per kind and scope, as db/migrations/0024's triggers
# keep them (off for a superuser; for anyone else they have counted them already).
INSERT_EVIDENCE = """
INSERT INTO incident_evidence (incident_id, value_key, kind, scope, entities, value)
SELECT a.incident_id, e.value_key, e.kind, a.scope, count(*), min(e.value)
  FROM seed_alert a JOIN alert_entities e ON e.alert_id = a.id
 GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4
    ON CONFLICT DO NOTHING
"""

# The text of those of 64 rows or more (db/migrations/0025's function, as its triggers write it),
# where the triggers have not written it.
INSERT_EVIDENCE_TEXT = """
SELECT rebuild_incident_evidence_text(array_agg(e.incident_id))
  FROM (SELECT d.incident_id FROM incident_evidence d
         WHERE d.incident_id IN (SELECT DISTINCT a.incident_id FROM seed_alert a)
           AND NOT EXISTS (SELECT 1 FROM incident_evidence_text t WHERE t.incident_id = d.incident_id)
         GROUP BY 1 HAVING count(*) >= 64) e
"""

# The wide bits of the seeded incidents that keep them (db/migrations/0028, as its triggers set
# them), from their values: after those exist; a second write of a few incidents in a thousand
# (with the triggers on, for a seed by a role that is not a superuser, they may have set them).
SET_WIDE_BITS = """
UPDATE incidents SET evidence_wide_bits = incident_evidence_wide_bits(id)
 WHERE id > $1 AND evidence_wide_kept(evidence_bits) AND evidence_wide_bits IS NULL
"""

INSERT_LOG = """
INSERT INTO activity_log (incident_id, kind, created_at, actor, alert_id)
SELECT a.incident_id,
       CASE WHEN a.step = 1 THEN 'incident_created' ELSE 'alert_correlated' END::activity_kind,
       a.detected_at + interval '20 seconds', 'system', a.id
  FROM seed_alert a ORDER BY a.id
"""

SECONDARY_INDEXES = """
SELECT i.indexname, i.indexdef FROM pg_indexes i
 WHERE i.schemaname = current_schema() AND i.tablename = ANY($1::text[])
   AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = (quote_ident(i.indexname))::regclass)
 ORDER BY i.tablename, i.indexname
"""


async def bulk_seed(*, conn: asyncpg.Connection, incidents: int, seed_value: float = 0.42) -> None:
    """Add `incidents` attack stories (about five alerts each) with set-based SQL, in one transaction."""
    async with conn.transaction():
        await conn.execute("SET LOCAL work_mem = '512MB'")
        await conn.execute("SET LOCAL maintenance_work_mem = '1GB'")
        await conn.execute("SET LOCAL synchronous_commit = off")
        await conn.execute("SET LOCAL statement_timeout = 0")
        triggers_off = await conn.fetchval("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
        if triggers_off:
            # The rows reference each other correctly by construction: skip the reference checks
            # (foreign keys and 0014's and 0022's statement triggers) and the other triggers.
            await conn.execute("SET LOCAL session_replication_role = replica")
        await conn.execute(f"LOCK TABLE {', '.join(TABLES)} IN EXCLUSIVE MODE")
        indexes = await conn.fetch(SECONDARY_INDEXES, list(TABLES))
        for index in indexes:
            await conn.execute(f'DROP INDEX "{index["indexname"]}"')

        await conn.fetchval("SELECT setseed($1)", seed_value)
        now = await conn.fetchval("SELECT now() - interval '10 minutes'")
        first_incident = await conn.fetchval("SELECT coalesce(max(id), 0) FROM incidents")
        first_alert = await conn.fetchval("SELECT coalesce(max(id), 0) FROM alerts")
        await conn.execute(STORIES, first_incident, now, incidents, SPAN, SCOPES, HOST_PREFIXES, FIRST, LAST, DOMAINS)
        templates = [t for _, t in DETECTIONS]
        await conn.execute(ALERTS, first_alert, SEVERITY_WEIGHTS, TOOLS, WORDS, FILE_EXTENSIONS, URL_TLDS, templates)
        await conn.execute(INSERT_INCIDENTS, templates)
        await conn.execute(INSERT_ALERTS, [c for c, _ in DETECTIONS])
        if triggers_off:
            await conn.execute(INSERT_TITLES)
        await conn.execute(INSERT_ENTITIES, templates)
        await conn.execute(INSERT_EVIDENCE)
        await conn.execute(INSERT_EVIDENCE_TEXT)
        await conn.execute(SET_WIDE_BITS, first_incident)
        await conn.execute(INSERT_LOG)
        for table in ("incidents", "alerts"):
            await conn.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
        for index in indexes:
            await conn.execute(index["indexdef"])
    for table in TABLES:
        await conn.execute(f"VACUUM (ANALYZE) {table}")
