"""Request-processing modules: NGINX's phases around the content handler.

A *module* owns configuration directives (like a handler) and contributes
*steps* to the phases of the request pipeline (``localhost.server.pipeline``),
in NGINX's order:

1. ``SERVER_REWRITE`` — the server block's ``rewrite``/``return``, before a
   location is chosen;
2. ``REWRITE`` — the chosen location's ``rewrite``/``return``; a rewrite with
   ``last`` chooses the location again (at most ``MAX_REWRITES`` times, then
   500, as NGINX);
3. ``ACCESS`` — ``allow``/``deny``, ``auth_basic``, ``limit_req``, ``limit_conn``;
4. ``PRECONTENT`` — ``try_files``;

then the content handler. A step is ``step(exchange) -> None | Response |
Rewrite``: None goes on, a ``Response`` answers the request at once (403,
401, 503, a ``return``), a ``Rewrite`` changes the request's URI (and, with
``last``, looks for the location again; with ``named`` it jumps to a named
location). Steps are built once per location at load (``ModuleSpec.steps``),
never per request; a location without steps costs the pipeline nothing.

A module may also give a location a *header filter*: ``filter(exchange,
status, fields) -> fields``, called when the response head is written with
the fields the server adds (``add_header``, ``expires``).

Directive values reach a module through ``Location.options`` and
``ServerBlock.options``: the loader stores there every derived value of a
module's directives (``Directive.derive`` for locations,
``Directive.derive_server`` for server blocks).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from localhost.limits import LIMITS

if TYPE_CHECKING:
    from localhost.config.model import Location, ServerBlock
    from localhost.handlers.base import Exchange

#: Internal rewrite cycles before a 500 (NGINX: 10).
MAX_REWRITES = LIMITS.max_rewrites


class Phase(enum.IntEnum):
    """Where a step runs (see the module docstring)."""

    SERVER_REWRITE = 1
    REWRITE = 2
    ACCESS = 3
    PRECONTENT = 4


@dataclass(frozen=True, slots=True)
class Rewrite:
    """A step's change of the request's URI (NGINX's ``rewrite`` flags).

    ``path`` is the new decoded path; ``query`` the new raw query (None:
    keep the request's). ``flag``: ``"last"`` stops the phase and chooses
    the location again (also a ``try_files`` fallback URI); ``"break"``
    stops the phase and stays in the location; ``""`` goes on with the
    phase's next steps, and the location is chosen again at its end.
    ``named`` jumps to the named location ``@name`` (``path`` unchanged).
    """

    path: str
    query: str | None = None
    flag: str = "last"
    named: str | None = None


StepResult = "None | Response | Rewrite"
Step = Callable[["Exchange"], Any]
HeaderFilter = Callable[["Exchange", int, list[tuple[str, str]]], list[tuple[str, str]]]


@dataclass(frozen=True, slots=True)
class Steps:
    """What a module adds to one location (or, for ``SERVER_REWRITE``, one server block)."""

    phases: Mapping[Phase, tuple[Step, ...]] = field(default_factory=dict)
    header_filter: HeaderFilter | None = None


NO_STEPS = Steps()


@dataclass(frozen=True, slots=True)
class ModuleSpec:
    """A module: its ``name``, the ``directives`` it owns (``Directive`` rows
    by name, as a handler's), and ``build(server, location) -> Steps``,
    called once per location at load (and with ``location=None`` once per
    server block, for ``SERVER_REWRITE``). ``order`` sorts modules within a
    phase (lower first)."""

    name: str
    directives: Mapping[str, Any]
    build: Callable[[ServerBlock, Location | None], Steps]
    order: int = 100


_MODULES: list[ModuleSpec] = []


def register(spec: ModuleSpec) -> ModuleSpec:
    """Add ``spec`` (or replace the module of the same name)."""
    _MODULES[:] = [m for m in _MODULES if m.name != spec.name]
    _MODULES.append(spec)
    _MODULES.sort(key=lambda m: m.order)
    return spec


def modules() -> tuple[ModuleSpec, ...]:
    """Every registered module, in order."""
    return tuple(_MODULES)


def directives() -> dict[str, Any]:
    """Every directive a module owns: name → ``Directive`` row."""
    table: dict[str, Any] = {}
    for spec in _MODULES:
        table.update(spec.directives)
    return table


@dataclass(frozen=True, slots=True)
class Plan:
    """A location's (or server's) steps per phase from every module, and its
    combined header filter; built once at load."""

    phases: Mapping[Phase, tuple[Step, ...]]
    header_filter: HeaderFilter | None

    def get(self, phase: Phase) -> tuple[Step, ...]:
        """The steps of ``phase`` (empty when none)."""
        return self.phases.get(phase, ())


def plan(server: ServerBlock, location: Location | None) -> Plan:
    """The steps every module gives ``location`` (None: the server block's own)."""
    phases: dict[Phase, list[Step]] = {}
    filters: list[HeaderFilter] = []
    for spec in _MODULES:
        steps = spec.build(server, location)
        for phase, found in steps.phases.items():
            phases.setdefault(phase, []).extend(found)
        if steps.header_filter is not None:
            filters.append(steps.header_filter)
    header_filter: HeaderFilter | None = None
    if len(filters) == 1:
        header_filter = filters[0]
    elif filters:
        chain = tuple(filters)

        def header_filter(
            exchange: Exchange, status: int, fields: list[tuple[str, str]]
        ) -> list[tuple[str, str]]:
            for one in chain:
                fields = one(exchange, status, fields)
            return fields

    return Plan({phase: tuple(found) for phase, found in phases.items()}, header_filter)
