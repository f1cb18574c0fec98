"""The ``agi_*`` block Asterisk sends first, turned into one typed, immutable record.

Everything in it is caller- or dialplan-controlled text: it is decoded leniently
(never an exception for odd bytes), kept as plain strings, and nothing here turns
it into a path. The query of ``agi://host/NAME?query`` is split with
``urllib.parse.parse_qsl`` (bounded field count); Asterisk itself does not
URL-decode it (res_agi.c, ``launch_netscript``), so handlers must validate every
value they use.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from urllib.parse import parse_qsl

MAX_QUERY_FIELDS = 32
"""A dialplan passes a handful of parameters; more is an attack or a mistake."""

_UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class Environment:
    """The call as Asterisk described it when it connected."""

    script: str
    """``NAME`` of ``agi://host/NAME?query``; "" when the URL had no path."""
    query: tuple[tuple[str, str], ...]
    """The query parameters in order (duplicates kept)."""
    args: tuple[str, ...]
    """``agi_arg_1`` .. ``agi_arg_N``: the AGI() application's extra arguments."""
    network_script: str = ""
    request: str = ""
    channel: str = ""
    language: str = ""
    type: str = ""
    uniqueid: str = ""
    version: str = ""
    callerid: str = ""
    """Caller number, "" when Asterisk said ``unknown``."""
    calleridname: str = ""
    dnid: str = ""
    rdnis: str = ""
    context: str = ""
    extension: str = ""
    priority: str = ""
    accountcode: str = ""
    enhanced: str = ""
    threadid: str = ""
    raw: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))
    """Every ``agi_*`` variable as received (``unknown`` values left as they were)."""

    def param(self, name: str) -> str | None:
        """The first query parameter called `name`, or None."""
        for key, value in self.query:
            if key == name:
                return value
        return None

    def arg(self, index: int) -> str | None:
        """AGI argument `index` (1-based) or None when absent or empty."""
        if 1 <= index <= len(self.args):
            return self.args[index - 1] or None
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
    """Build the record from the ``agi_*`` lines, already split into key and value.

    `variables` is kept (read-only view): the caller must not change it afterwards.
    """
    network_script = variables.get("agi_network_script", "")
    script, query = split_script(network_script)
    args: list[str] = []
    index = 1
    while f"agi_arg_{index}" in variables:
        args.append(variables[f"agi_arg_{index}"])
        index += 1
    get = variables.get
    return Environment(
        script=script,
        query=query,
        args=tuple(args),
        network_script=network_script,
        request=get("agi_request", ""),
        channel=get("agi_channel", ""),
        language=get("agi_language", ""),
        type=get("agi_type", ""),
        uniqueid=get("agi_uniqueid", ""),
        version=get("agi_version", ""),
        callerid=_known(get("agi_callerid", "")),
        calleridname=_known(get("agi_calleridname", "")),
        dnid=_known(get("agi_dnid", "")),
        rdnis=_known(get("agi_rdnis", "")),
        context=get("agi_context", ""),
        extension=get("agi_extension", ""),
        priority=get("agi_priority", ""),
        accountcode=get("agi_accountcode", ""),
        enhanced=get("agi_enhanced", ""),
        threadid=get("agi_threadid", ""),
        raw=MappingProxyType(variables),
    )
