"""The Sieve bridge: answers Dovecot's ``execute "mailcall" [...]`` on a UNIX socket.

Dovecot connects to ``<base_dir>/<sieve_execute_socket_dir>/mailcall`` instead of
forking a program (see :mod:`mailcall.sieve.script_protocol`), so no process
starts per message. This module puts together the ``sieve-bridge`` service of
``mailcall serve`` from three parts that change for different reasons:

* :mod:`.mail_facts`: what a request says (decoding and cleaning outside text);
* :mod:`.mail_decision`: what to answer, from the policy and the deposit key;
* :mod:`.bridge_server`: the socket, its permissions and its deadlines.

Notifications are sent *after* the answer, by ``runtime.notifier``: the one
notification service of ``mailcall serve``, which the channels plugin builds from
every plugin's channels (checked against the ``Channel`` contract there) and
shares with the deposit worker, so the hourly limit and de-duplication count
every notification a user gets. The bridge never collects channels itself.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from mailcall.core.errors import ServiceStartError
from mailcall.core.host.runtime import Notifier, Runtime
from mailcall.core.text import display_text
from mailcall.deposit.seal import DepositKeyError, deposit_key

from .bridge_server import ScriptSocketServer
from .mail_decision import MailDecider, Verdict
from .mail_facts import BridgeRequest

__all__ = ["BridgeRequest", "SieveBridge", "Verdict"]

log = logging.getLogger(__name__)


class SieveBridge:
    """A ``mailcall serve`` service: the script-socket server; notices go to the runtime's
    notification service."""

    name = "sieve-bridge"

    def __init__(self, runtime: Runtime, path: str | os.PathLike[str], *,
                 answer_timeout: float | None = None, socket_mode: int = 0o660,
                 spool_dir: str | os.PathLike[str] | None = None) -> None:
        self.runtime = runtime
        self.spool_dir = Path(spool_dir or runtime.setting("spool_dir"))
        """Where the deposit key is (the key the deposit builder seals messages with)."""
        self.decider = MailDecider(runtime, self.spool_dir)
        self.server = ScriptSocketServer(path, self.decider.decide, answered=self._answered,
                                         answer_timeout=answer_timeout, socket_mode=socket_mode)

    @property
    def notifier(self) -> Notifier | None:
        """The runtime's notification service, read when a notice is due (a service set up
        after the bridge, or replaced, is the one used); None when no channel plugin runs."""
        return self.runtime.notifier

    @property
    def path(self) -> Path:
        return self.server.path

    @path.setter
    def path(self, value: str | os.PathLike[str]) -> None:
        self.server.path = Path(value)

    def _answered(self, verdict: Verdict) -> None:
        if verdict.notice is None:
            return
        notifier = self.runtime.notifier
        if notifier is None:
            log.warning("mail for %s should notify a mobile, but no notification channel "
                        "plugin is loaded (see 'mailcall plugins'): not told",
                        display_text(verdict.notice.recipient, 200))
            return
        notifier.submit(verdict.notice)

    async def start(self) -> None:
        self.server.check_path()
        try:  # created here on the very first start; unusable: say so now, not per mail
            deposit_key(self.spool_dir)
        except DepositKeyError as exc:
            raise ServiceStartError(f"Sieve bridge: {exc}") from None
        await self.server.start()

    async def stop(self, grace: float) -> None:
        await self.server.stop(grace)
