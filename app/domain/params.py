"""Statements built from named parts.

A part that takes a value asks Params.add for its placeholder, so no statement relies on which
$n holds what (the viewer's scopes, a cursor, a limit). SQL text is built only from fixed
fragments; every value travels as a parameter.
"""

from __future__ import annotations


class Params:
    """The parameters of one statement, and the clauses of its WHERE."""

    __slots__ = ("clauses", "values")

    def __init__(self) -> None:
        self.values: list[object] = []
        self.clauses: list[str] = []

    def add(self, value: object) -> str:
        """A new parameter holding value; returns its placeholder ("$3")."""
        self.values.append(value)
        return f"${len(self.values)}"

    def where(self, clause: str) -> None:
        self.clauses.append(clause)

    def where_any(self, column: str, values: list[str] | None, sql_type: str) -> None:
        """column is one of values; None is no filter (an empty list matches nothing)."""
        if values is not None:
            self.where(f"{column} = ANY({self.add(values)}::{sql_type}[])")

    @property
    def conditions(self) -> str:
        """Every clause, for a WHERE."""
        return " AND ".join(self.clauses) or "true"
