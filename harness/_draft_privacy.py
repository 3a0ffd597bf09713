"""Placeholders for the local parts of addresses in a draft (personal data is not copied blindly). Private: part
of :mod:`harness.draft`.
"""

from __future__ import annotations

__all__ = ["Placeholders"]

import re

_ADDRESS = re.compile(
    r"(?P<local>\"[^\"\s]+\"|[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+)@(?P<domain>[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+)"
)


class Placeholders:
    """Gives every distinct address a placeholder local part: ``user``, ``user2``, … (domains are kept: the world
    needs them). With ``keep=True`` every address stays as it is.

    The same address (compared case-insensitively) always gets the same placeholder, so a recipient, the reason
    that quotes it and a server reply for it stay consistent.
    """

    def __init__(self, *, keep: bool = False) -> None:
        self._keep = keep
        self._given: dict[str, str] = {}
        self._placeholders: set[str] = set()  # what was given out: scrubbing a scrubbed text changes nothing

    @property
    def replaced(self) -> int:
        """How many distinct addresses were given a placeholder."""
        return len(self._given)

    def address(self, address: str) -> str:
        """The placeholder for ``address`` (``local@domain``); the address itself when kept or not an address."""
        m = _ADDRESS.fullmatch(address)
        if self._keep or m is None:
            return address
        key = address.casefold()
        if key in self._placeholders:
            return address
        if key not in self._given:
            number = len(self._given) + 1
            self._given[key] = f"{'user' if number == 1 else f'user{number}'}@{m['domain'].lower()}"
            self._placeholders.add(self._given[key])
        return self._given[key]

    def scrub(self, text: str) -> str:
        """``text`` with every address in it replaced by its placeholder."""
        return text if self._keep else _ADDRESS.sub(lambda m: self.address(m.group(0)), text)
