"""The ``agi_*`` block Asterisk sends first, turned into one typed, immutable record.

Everything in it is caller- or dialplan-controlled text: it is decoded leniently
(never an exception for odd bytes), kept as plain strings, and nothing here turns
it into a path. The query of ``agi://host/NAME?query`` is split with
``urllib.parse.parse_qsl`` (bounded field count); Asterisk itself does not
URL-decode it (res_agi.c, ``launch_netscript``), so handlers must validate every
value they use.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any
from urllib.parse import parse_qsl

MAX_QUERY_FIELDS = 32
"""A dialplan passes a handful of parameters; more is an attack or a mistake."""

_UNKNOWN = "unknown"


def _field(key: str, doc: str = "", *, known: bool = False) -> property:
    if known:
        def get(self: Environment) -> str:
            value = self._v.get(key, "")
            return "" if value == _UNKNOWN else value
    else:
        def get(self: Environment) -> str:
            return self._v.get(key, "")
    return property(get, doc=doc or f"``{key}`` (\"\" when absent).")


class Environment:
    """The call as Asterisk described it when it connected. Read-only.

    Values are looked up in the received ``agi_*`` mapping when read rather
    than copied into twenty fields up front: a handler reads a handful of
    them, and every session pays for building this record.
    """

    __slots__ = ("_query", "_script", "_v")

    def __init__(self, variables: Mapping[str, str]) -> None:
        object.__setattr__(self, "_v", variables)
        object.__setattr__(self, "_script", None)
        object.__setattr__(self, "_query", None)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"Environment is read-only (cannot set {name!r})")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"Environment is read-only (cannot delete {name!r})")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Environment) and dict(self._v) == dict(other._v)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (f"Environment(script={self.script!r}, channel={self.channel!r}, "
                f"raw={dict(self._v)!r})")

    def _split(self) -> None:
        script, query = split_script(self.network_script)
        object.__setattr__(self, "_script", script)
        object.__setattr__(self, "_query", query)

    @property
    def script(self) -> str:
        """``NAME`` of ``agi://host/NAME?query``; "" when the URL had no path."""
        if self._script is None:
            self._split()
        return self._script  # type: ignore[return-value]

    @property
    def query(self) -> tuple[tuple[str, str], ...]:
        """The query parameters in order (duplicates kept)."""
        if self._query is None:
            self._split()
        return self._query  # type: ignore[return-value]

    @property
    def args(self) -> tuple[str, ...]:
        """``agi_arg_1`` .. ``agi_arg_N``: the AGI() application's extra arguments."""
        variables = self._v
        args: list[str] = []
        while (value := variables.get(f"agi_arg_{len(args) + 1}")) is not None:
            args.append(value)
        return tuple(args)

    @property
    def raw(self) -> Mapping[str, str]:
        """Every ``agi_*`` variable as received (``unknown`` values left as they were)."""
        return MappingProxyType(self._v)  # type: ignore[arg-type]

    network_script = _field("agi_network_script")
    request = _field("agi_request")
    channel = _field("agi_channel")
    language = _field("agi_language")
    type = _field("agi_type")
    uniqueid = _field("agi_uniqueid")
    version = _field("agi_version")
    callerid = _field("agi_callerid", "Caller number, \"\" when Asterisk said ``unknown``.",
                      known=True)
    calleridname = _field("agi_calleridname", known=True)
    dnid = _field("agi_dnid", known=True)
    rdnis = _field("agi_rdnis", known=True)
    context = _field("agi_context")
    extension = _field("agi_extension")
    priority = _field("agi_priority")
    accountcode = _field("agi_accountcode")
    enhanced = _field("agi_enhanced")
    threadid = _field("agi_threadid")

    def param(self, name: str) -> str | None:
        """The first query parameter called `name`, or None."""
        for key, value in self.query:
            if key == name:
                return value
        return None

    def arg(self, index: int) -> str | None:
        """AGI argument `index` (1-based) or None when absent or empty."""
        if index == 1:  # the common case: no need to check the numbering is gapless
            return self._v.get("agi_arg_1") or None
        args = self.args
        if 1 <= index <= len(args):
            return args[index - 1] or None
        return None


def _known(value: str) -> str:
    return "" if value == _UNKNOWN else value


def split_script(network_script: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    """Split ``NAME?query`` into the script name and its parsed query."""
    name, _, query = network_script.partition("?")
    pairs: tuple[tuple[str, str], ...] = ()
    if query:
        try:
            pairs = tuple(
                parse_qsl(query, keep_blank_values=True, max_num_fields=MAX_QUERY_FIELDS)
            )
        except ValueError:
            # More fields than allowed: keep none rather than a silent prefix.
            pairs = ()
    return name, pairs


def build_environment(variables: dict[str, str]) -> Environment:
    """The record for the ``agi_*`` lines, already split into key and value.

    `variables` is kept (read through a read-only view): the caller must not
    change it afterwards.
    """
    return Environment(variables)
