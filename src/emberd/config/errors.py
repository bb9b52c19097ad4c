"""Where a configuration problem is, and how it is reported.

Every message emberd prints about a configuration names ``file:line:column``
so that a user can jump to it; warnings are collected rather than printed
directly so that ``-t``/``-tt``/``-p`` and a reload can decide what to do
with them.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Location:
    """A position in a configuration source (a file, ``-`` or a command)."""

    source: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.source}:{self.line}:{self.column}"


class ConfigError(Exception):
    """A configuration that cannot be used; nothing starts with one."""

    def __init__(self, location: Location | None, message: str) -> None:
        super().__init__(message)
        self.location = location
        self.message = message

    def __str__(self) -> str:
        if self.location is None:
            return self.message
        return f"{self.location}: {self.message}"


@dataclass(slots=True)
class Diagnostics:
    """Warnings and errors found while checking a configuration.

    Parsing stops at the first syntax error (raised as ConfigError), but
    validation carries on so that one run of ``emberd -tt`` lists every
    wrong value at once.
    """

    errors: list[ConfigError] = field(default_factory=list)
    warnings: list[ConfigError] = field(default_factory=list)

    def error(self, location: Location | None, message: str) -> None:
        self.errors.append(ConfigError(location, message))

    def warn(self, location: Location | None, message: str) -> None:
        self.warnings.append(ConfigError(location, message))

    def raise_if_errors(self) -> None:
        if self.errors:
            raise ConfigErrors(self.errors)


class ConfigErrors(ConfigError):
    """Several errors reported together; the first one gives the location."""

    def __init__(self, errors: list[ConfigError]) -> None:
        first = errors[0]
        super().__init__(first.location, first.message)
        self.errors = list(errors)

    def __str__(self) -> str:
        return "\n".join(str(e) for e in self.errors)
