"""Settings read from the environment, with typed casts and clear errors."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# How `incidents serve --demo --workers N` hands the demo token to its worker processes.
DEMO_TOKEN_VARIABLE = "INCIDENTS_SERVE_DEMO_TOKEN"


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


def limit(name: str, default: int) -> int:
    """A size limit the domain enforces, read once from the environment at import."""
    value = _int(name, default)
    if value < 1:
        raise ConfigError(f"{name} must be at least 1, got {value}")
    return value


@dataclass(frozen=True)
class Settings:
    database_url: str | None
    data_dir: Path
    pool_min: int
    pool_max: int
    pool_timeout: float
    statement_timeout_ms: int
    correlation_window_hours: float
    introspection: bool
    max_body_bytes: int
    max_concurrency: int
    connections_per_request: int
    cors_origins: tuple[str, ...]
    workers: int = 1  # of `incidents serve`, unless --workers says otherwise
    lean_path: bool = True  # app/api/lean: off sends every request through graphql-core

    @classmethod
    def from_env(cls) -> Settings:
        return cls(
            database_url=os.environ.get("DATABASE_URL") or None,
            data_dir=Path(os.environ.get("INCIDENTS_DATA_DIR") or ROOT / ".data"),
            pool_min=_int("DB_POOL_MIN", 1),
            pool_max=_int("DB_POOL_MAX", 10),
            pool_timeout=_float("DB_POOL_TIMEOUT", 5.0),
            statement_timeout_ms=_int("DB_STATEMENT_TIMEOUT_MS", 15000),
            correlation_window_hours=_float("CORRELATION_WINDOW_HOURS", 24.0),
            introspection=_bool("GRAPHQL_INTROSPECTION", True),
            max_body_bytes=_int("MAX_BODY_BYTES", 1024 * 1024),
            max_concurrency=_int("MAX_CONCURRENT_REQUESTS", 256),
            connections_per_request=_int("DB_CONNECTIONS_PER_REQUEST", 3),
            workers=_int("WEB_CONCURRENCY", 1),
            lean_path=_bool("GRAPHQL_LEAN_PATH", True),
            cors_origins=tuple(
                o.strip() for o in os.environ.get("CORS_ALLOWED_ORIGINS", "").split(",") if o.strip()
            ),
        )
