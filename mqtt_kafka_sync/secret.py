"""A string that never shows its value: config secrets (passwords, credentials)."""

from __future__ import annotations


class Secret(str):
    """A string that never shows its value when printed or logged."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "Secret('********')"

    def __str__(self) -> str:
        return "********"

    def reveal(self) -> str:
        return str.__str__(self)
