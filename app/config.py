"""Settings read from the environment, with typed casts and clear errors.

Every setting is read here, once: `Settings.from_env()` reads them all, and `settings()` is the
process's own copy, read on first use (nothing reads the environment at import). The domain
asks `settings()` for its size limits when it checks a request.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# How `incidents serve --demo --workers N` hands the demo token to its worker processes.
DEMO_TOKEN_VARIABLE = "INCIDENTS_SERVE_DEMO_TOKEN"
LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")
# The standard OpenTelemetry variables that switch traces on (app/tracing.py), the signal's own
# before the general one; the SDK reads the others itself (headers, timeout, sampler, batching).
OTLP_ENDPOINTS = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
OTLP_PROTOCOLS = ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL")
OTLP_PROTOCOL = "http/protobuf"  # the only exporter installed
LOG_FORMATS = ("text", "json")
# Who may read /metrics: nobody (off), anyone who reaches the port (public), or a client sending
# `Authorization: Bearer $METRICS_TOKEN` (token).
METRICS_ACCESS = ("off", "public", "token")


class ConfigError(ValueError):
    pass


def _number(name: str, default, cast):
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return cast(raw)
    except ValueError:
        raise ConfigError(f"{name} must be {'an integer' if cast is int else 'a number'}, got {raw!r}") from None


def _int(name: str, default: int) -> int:
    return _number(name, default, int)


def _float(name: str, default: float) -> float:
    return _number(name, default, float)


def _bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in {"1", "true", "yes", "on"}:
        return True
    if raw.lower() in {"0", "false", "no", "off"}:
        return False
    raise ConfigError(f"{name} must be true or false, got {raw!r}")


def _limit(name: str, default: int) -> int:
    """A size limit: an integer of at least 1."""
    value = _int(name, default)
    if value < 1:
        raise ConfigError(f"{name} must be at least 1, got {value}")
    return value


def _choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    raw = (os.environ.get(name) or default).lower()
    if raw not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}, got {os.environ.get(name)!r}")
    return raw


def _traces() -> bool:
    """Whether to export traces: an OTLP endpoint is set and OTEL_SDK_DISABLED is not true."""
    if not any(os.environ.get(name) for name in OTLP_ENDPOINTS) or _bool("OTEL_SDK_DISABLED", False):
        return False
    protocol = next((name for name in OTLP_PROTOCOLS if os.environ.get(name)), None)
    if protocol is not None:
        _choice(protocol, OTLP_PROTOCOL, (OTLP_PROTOCOL,))
    return True


@dataclass(frozen=True)
class Settings:
    database_url: str | None
    data_dir: Path
    pool_min: int
    pool_max: int
    pool_timeout: float
    statement_timeout_ms: int
    correlation_window_hours: float
    correlation_across_scopes: bool
    introspection: bool
    max_body_bytes: int
    max_concurrency: int
    connections_per_request: int
    cors_origins: tuple[str, ...]
    workers: int = 1  # of `incidents serve`, unless --workers says otherwise
    lean_path: bool = True  # app/api/lean: off sends every request through graphql-core
    # Only documents registered with `incidents documents register` run; any request with a
    # query text is refused before parsing (app/api/persisted.py, docs/persisted-documents.md).
    trusted_documents_only: bool = False
    log_level: str = "info"  # uvicorn's
    # OpenTelemetry traces over OTLP (app/tracing.py); off, the server imports none of it.
    traces: bool = False
    log_format: str = "text"  # json: one JSON object a line, and one line per /graphql request
    metrics: str = "public"  # who may read /metrics (METRICS_ACCESS)
    metrics_token: str | None = None
    # Distinct operation names a process gives their own label in the metrics; later ones are "other".
    metrics_max_operations: int = 200
    # What one GraphQL document may ask (app/api/limits.py).
    graphql_max_depth: int = 12
    graphql_max_aliases: int = 30
    graphql_max_tokens: int = 5000
    graphql_max_cost: int = 50_000
    # Size limits the domain enforces.
    max_page_size: int = 100  # `first` of every connection
    link_max_alerts: int = 1000  # alert ids in one linkAlerts
    ingest_max_alerts: int = 500  # alerts in one ingestAlerts
    merge_max_alerts: int = 100_000  # alerts one mergeIncidents moves, over all its sources
    correlation_max_alerts: int = 1000  # alerts an incident holds before correlation adds no more
    # Live updates (app/live.py): subscriptions one process holds, changes one may fall behind
    # before it is ended (SUBSCRIBER_TOO_SLOW), how far back a cursor may resume, heartbeats.
    live_max_subscriptions: int = 5000
    live_max_subscriptions_per_connection: int = 100
    live_buffer: int = 1000
    live_resume_hours: float = 24.0
    live_heartbeat_seconds: float = 15.0
    live_recheck_seconds: float = 30.0  # a backstop for a missed access notification

    @property
    def live_resume_window(self) -> timedelta:
        return timedelta(hours=self.live_resume_hours)

    def __post_init__(self) -> None:
        if self.pool_min > self.pool_max:
            raise ConfigError(f"DB_POOL_MIN ({self.pool_min}) must not be over DB_POOL_MAX ({self.pool_max})")
        if self.metrics == "token" and not self.metrics_token:
            raise ConfigError("METRICS=token needs METRICS_TOKEN: the bearer token a scraper sends")

    @classmethod
    def from_env(cls) -> Settings:
        return cls(
            database_url=os.environ.get("DATABASE_URL") or None,
            data_dir=Path(os.environ.get("INCIDENTS_DATA_DIR") or ROOT / ".data"),
            pool_min=_limit("DB_POOL_MIN", 1),
            pool_max=_limit("DB_POOL_MAX", 10),
            pool_timeout=_float("DB_POOL_TIMEOUT", 5.0),
            statement_timeout_ms=_limit("DB_STATEMENT_TIMEOUT_MS", 15000),
            correlation_window_hours=_float("CORRELATION_WINDOW_HOURS", 24.0),
            correlation_across_scopes=_bool("CORRELATION_ACROSS_SCOPES", False),
            correlation_max_alerts=_limit("CORRELATION_MAX_ALERTS", cls.correlation_max_alerts),
            introspection=_bool("GRAPHQL_INTROSPECTION", True),
            max_body_bytes=_limit("MAX_BODY_BYTES", 1024 * 1024),
            max_concurrency=_limit("MAX_CONCURRENT_REQUESTS", 256),
            connections_per_request=_limit("DB_CONNECTIONS_PER_REQUEST", 3),
            workers=_limit("WEB_CONCURRENCY", 1),
            lean_path=_bool("GRAPHQL_LEAN_PATH", True),
            trusted_documents_only=_bool("GRAPHQL_TRUSTED_DOCUMENTS_ONLY", False),
            log_level=_choice("LOG_LEVEL", "info", LOG_LEVELS),
            traces=_traces(),
            log_format=_choice("LOG_FORMAT", cls.log_format, LOG_FORMATS),
            metrics=_choice("METRICS", cls.metrics, METRICS_ACCESS),
            metrics_token=os.environ.get("METRICS_TOKEN") or None,
            metrics_max_operations=_limit("METRICS_MAX_OPERATIONS", cls.metrics_max_operations),
            cors_origins=tuple(o.strip() for o in os.environ.get("CORS_ALLOWED_ORIGINS", "").split(",") if o.strip()),
            graphql_max_depth=_limit("GRAPHQL_MAX_DEPTH", cls.graphql_max_depth),
            graphql_max_aliases=_limit("GRAPHQL_MAX_ALIASES", cls.graphql_max_aliases),
            graphql_max_tokens=_limit("GRAPHQL_MAX_TOKENS", cls.graphql_max_tokens),
            graphql_max_cost=_limit("GRAPHQL_MAX_COST", cls.graphql_max_cost),
            max_page_size=_limit("MAX_PAGE_SIZE", cls.max_page_size),
            link_max_alerts=_limit("LINK_MAX_ALERTS", cls.link_max_alerts),
            ingest_max_alerts=_limit("INGEST_MAX_ALERTS", cls.ingest_max_alerts),
            merge_max_alerts=_limit("MERGE_MAX_ALERTS", cls.merge_max_alerts),
            live_max_subscriptions=_limit("LIVE_MAX_SUBSCRIPTIONS", cls.live_max_subscriptions),
            live_max_subscriptions_per_connection=_limit(
                "LIVE_MAX_SUBSCRIPTIONS_PER_CONNECTION", cls.live_max_subscriptions_per_connection
            ),
            live_buffer=_limit("LIVE_BUFFER", cls.live_buffer),
            live_resume_hours=_float("LIVE_RESUME_HOURS", cls.live_resume_hours),
            live_heartbeat_seconds=_float("LIVE_HEARTBEAT_SECONDS", cls.live_heartbeat_seconds),
            live_recheck_seconds=_float("LIVE_RECHECK_SECONDS", cls.live_recheck_seconds),
        )


_settings: Settings | None = None


def settings() -> Settings:
    """The process's settings, read from the environment on first use and kept."""
    global _settings
    if _settings is None:
        _settings = Settings.from_env()
    return _settings
