"""The AGI server as a ``mailcall serve`` service, with handlers from every plugin."""

from __future__ import annotations

import errno
import re
from typing import Any

from mailcall.core.errors import ServiceStartError
from mailcall.core.host.collect import OfferedTwice, collected_mapping
from mailcall.core.policy.section_keys import parse_listen

from .folders import recordings_folder, shared_folder
from .server import AgiServer, Handler


class HandlerConflict(OfferedTwice):
    """Two plugins offer the same AGI script name."""


SCRIPT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
"""What a handler may be called: the ``NAME`` of ``agi://host/NAME?query`` that a dialplan
writes, one plain word. A name with ``/``, ``?``, a space or nothing at all could never be
dispatched (``split_script`` cuts at ``?``), and the name is shown in every session's log line."""


def _script_name(name: object) -> bool:
    return isinstance(name, str) and SCRIPT_NAME.fullmatch(name) is not None


def collect_handlers(runtime: Any) -> dict[str, Handler]:
    """Merge every plugin's ``mailcall_agi_handlers``, checked where collected
    (:func:`~mailcall.core.host.collect.collected_mapping`): a name outside
    :data:`SCRIPT_NAME`, a handler that is not callable or a mapping that is not one
    names the plugin (:class:`~mailcall.core.host.collect.ContractBroken`); a name
    offered twice names both plugins (:class:`HandlerConflict`).
    """
    return collected_mapping(
        runtime.pm, "mailcall_agi_handlers", key=_script_name,
        key_expected=("script names (1 to 64 letters, digits, '.', '_' or '-', starting with "
                      "a letter or digit)"),
        value=callable, value_expected="async handler(session, runtime) functions",
        offered=lambda name: f"AGI script {name!r}",
        fix="block one of them or rename the script", conflict=HandlerConflict,
        runtime=runtime)


def _line_limit(runtime: Any) -> int:
    """[server] agi_line_limit: 8192 for Asterisk >= 20.16/21.11/22.6, else 2048."""
    return int(runtime.setting("agi_line_limit"))


class AgiService:
    """``name``, ``start()``, ``stop(grace)`` as ``mailcall_services`` expects."""

    name = "agi"

    def __init__(self, runtime: Any) -> None:
        self.runtime = runtime
        self.server: AgiServer | None = None

    async def start(self) -> None:
        handlers = collect_handlers(self.runtime)
        try:
            host, port = parse_listen(self.runtime.setting("agi_listen") or "127.0.0.1:4573")
        except ValueError as exc:
            raise ServiceStartError(str(exc)) from None
        max_sessions = int(self.runtime.setting("max_agi_sessions") or 2000)
        # ReceiveFAX writes {spool_dir}/rec/fax-*.tif before mailcall hears of the call:
        # the folder must exist before the first call, not only after a voicemail.
        shared_folder(recordings_folder(self.runtime.setting("spool_dir")))
        self.server = AgiServer(
            self.runtime, handlers, host=host, port=port, max_sessions=max_sessions,
            line_limit=_line_limit(self.runtime),
        )
        try:
            await self.server.start()
        except OSError as exc:
            self.server = None
            raise ServiceStartError(_cannot_listen(host, port, exc)) from None

    async def stop(self, grace: float) -> None:
        if self.server is not None:
            await self.server.stop(grace)
            self.server = None


def _cannot_listen(host: str, port: int, exc: OSError) -> str:
    where = f"cannot listen for FastAGI on {host}:{port}"
    fix = "or set another address in [server] agi_listen / --agi-listen"
    if exc.errno == errno.EADDRINUSE:
        return (f"{where}: the address is in use (another 'mailcall serve'? see what holds "
                f"it: ss -ltnp 'sport = :{port}'); stop that process, {fix}")
    if exc.errno == errno.EACCES:
        return f"{where}: permission denied (ports below 1024 need privileges); {fix}"
    if exc.errno == errno.EADDRNOTAVAIL:
        return f"{where}: no interface of this machine has that address; {fix}"
    return f"{where}: {exc.strerror or exc}; {fix}"
