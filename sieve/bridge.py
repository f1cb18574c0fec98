"""The Sieve bridge: answers Dovecot's ``execute "mailcall" [...]`` on a UNIX socket.

Dovecot connects to ``<base_dir>/<sieve_execute_socket_dir>/mailcall`` instead of
forking a program (see :mod:`mailcall.sieve.script_protocol`), so no process
starts per message. This module puts together the ``sieve-bridge`` service of
``mailcall serve`` from three parts that change for different reasons:

* :mod:`.mail_facts`: what a request says (decoding and cleaning outside text);
* :mod:`.mail_decision`: what to answer, from the policy and the deposit key;
* :mod:`.bridge_server`: the socket, its permissions and its deadlines.

Notifications are sent *after* the answer, by the :class:`Dispatcher` the bridge
shares with the deposit worker: the hourly limit and de-duplication then count
every notification a user gets.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from mailcall.core.errors import ServiceStartError
from mailcall.core.host.runtime import Runtime
from mailcall.deposit.seal import DepositKeyError, deposit_key
from mailcall.notifications import Dispatcher, queue_path

from .bridge_server import ScriptSocketServer
from .mail_decision import MailDecider, Verdict
from .mail_facts import BridgeRequest

__all__ = ["BridgeRequest", "SieveBridge", "Verdict"]


class SieveBridge:
    """A ``mailcall serve`` service: the script-socket server plus its notification dispatcher."""

    name = "sieve-bridge"

    def __init__(self, runtime: Runtime, path: str | os.PathLike[str], *,
                 channels: list[Any] | None = None, answer_timeout: float | None = None,
                 socket_mode: int = 0o660, spool_dir: str | os.PathLike[str] | None = None) -> None:
        self.runtime = runtime
        self.spool_dir = Path(spool_dir or runtime.setting("spool_dir"))
        """Where the deposit key is (the key the deposit builder seals messages with)."""
        shared = runtime.notifier if channels is None else None
        self._owns_dispatcher = shared is None
        if shared is not None:
            self.dispatcher = shared
        else:
            if channels is None:
                channels = [c for batch in runtime.pm.hook.mailcall_notification_channels(
                    runtime=runtime) for c in batch or ()]
            self.dispatcher = Dispatcher(runtime, channels,
                                         path=queue_path(runtime.setting("spool_dir")))
        self.decider = MailDecider(runtime, self.spool_dir)
        self.server = ScriptSocketServer(path, self.decider.decide, answered=self._answered,
                                         answer_timeout=answer_timeout, socket_mode=socket_mode)

    @property
    def path(self) -> Path:
        return self.server.path

    @path.setter
    def path(self, value: str | os.PathLike[str]) -> None:
        self.server.path = Path(value)

    def _answered(self, verdict: Verdict) -> None:
        if verdict.notice is not None:
            self.dispatcher.submit(verdict.notice)

    async def start(self) -> None:
        self.server.check_path()
        try:  # created here on the very first start; unusable: say so now, not per mail
            deposit_key(self.spool_dir)
        except DepositKeyError as exc:
            raise ServiceStartError(f"Sieve bridge: {exc}") from None
        if self._owns_dispatcher:
            await self.dispatcher.start()
        await self.server.start()

    async def stop(self, grace: float) -> None:
        await self.server.stop(grace)
        if self._owns_dispatcher:
            await self.dispatcher.stop(grace)
