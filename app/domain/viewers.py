"""Who is asking, and what they may read and write."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from app.domain.errors import NotAllowed
from app.domain.models import Access

ALL_SCOPES = "*"


@dataclass(frozen=True)
class Viewer:
    """An authenticated user with their grants (scope -> 'read' | 'write'), which cannot change."""

    id: int
    name: str
    can_view_incidents: bool
    can_ingest: bool
    grants: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # The process's token cache hands one Viewer to many requests: none may change another's.
        object.__setattr__(self, "grants", MappingProxyType(dict(self.grants)))

    def access(self, scope: str) -> str | None:
        levels = {self.grants.get(scope), self.grants.get(ALL_SCOPES)}
        if Access.WRITE in levels:
            return Access.WRITE
        if Access.READ in levels:
            return Access.READ
        return None

    def can_read(self, scope: str) -> bool:
        return self.access(scope) is not None

    def can_write(self, scope: str) -> bool:
        return self.access(scope) == Access.WRITE

    def require_queue(self) -> None:
        """Browsing incidents (the queue, an incident by number) needs the queue permission."""
        if not self.can_view_incidents:
            raise NotAllowed("you may not view the incidents queue")

    def can_move(self, scope: str) -> bool:
        """Whether the viewer may move an alert of this scope to another incident."""
        return self.can_view_incidents and self.can_write(scope)

    @property
    def reads_everything(self) -> bool:
        return ALL_SCOPES in self.grants

    @property
    def readable_scopes(self) -> list[str]:
        return sorted(self.grants)


SYSTEM_ACTOR = "system"
