"""The out-of-office the user set in their mail client, read at login and told on the page.

Reading it needs the user's own password (ManageSieve has no read-only master login:
contrib/dovecot/93-mailcall-managesieve.conf), which the page holds only while the login
is checked: so it is read then, in the same job as the password check, and only what
was found is kept in the server-side session. Which reply a sender gets is decided by
:func:`mailcall.sieve.client_vacation.who_answers`, the rule Dovecot applies.
"""

from __future__ import annotations

import logging
from datetime import date, datetime
from typing import Any

from mailcall.core.policy.model import Policy
from mailcall.core.text import display_text
from mailcall.sieve.client_scripts import read_client_vacation
from mailcall.sieve.client_vacation import ClientScripts, ClientVacation, who_answers
from mailcall.sieve.managesieve_session import ManageSieveError
from mailcall.web.config import ClientSieve
from mailcall.web.i18n import Words
from mailcall.web.sessions import Session

log = logging.getLogger("mailcall.web")


def read_at_login(settings: ClientSieve, user_id: str, login: str, password: str
                  ) -> ClientScripts | None:
    """The user's client scripts, or None when ManageSieve cannot be read (logged once).

    Runs in the login's executor job; the password goes no further than the
    ManageSieve LOGIN, and no error message holds it (ManageSieveError's never does).
    """
    assert settings.host is not None and settings.security is not None  # resolved()
    try:
        return read_client_vacation(settings.host, settings.port, login, password,
                                    security=settings.security,  # type: ignore[arg-type]
                                    timeout=settings.timeout)
    except ManageSieveError as exc:
        log.error("web: %s's mail-client out-of-office could not be read from ManageSieve "
                  "%s:%s (%s): %s; the page says so, the login goes on (web.toml "
                  "[managesieve], docs/web.md)", user_id, settings.host, settings.port,
                  exc.kind, exc)
    except Exception as exc:  # whatever else: the login is not refused for it
        # Named by its class only: a message the protocol layer did not write could hold
        # anything it was given.
        log.error("web: %s's mail-client out-of-office could not be read from ManageSieve "
                  "%s:%s: %s (web.toml [managesieve], docs/web.md)", user_id, settings.host,
                  settings.port, exc.__class__.__name__)
    finally:
        del password
    return None


def _when(policy: Policy, moment: date | datetime | None) -> str | None:
    if moment is None:
        return None
    if isinstance(moment, datetime):
        return (f"{policy.local(moment):%Y-%m-%d %H:%M}" if moment.tzinfo
                else f"{moment:%Y-%m-%d %H:%M}")
    return moment.isoformat()


def _quoted(vacation: ClientVacation) -> str:
    return display_text(vacation.reason, 300)


def client_notice(policy: Policy, decision: Policy, user_id: str, now: datetime,
                  session: Session, t: Words) -> dict[str, Any] | None:
    """What the page says of the client's out-of-office (None: reading is off).

    `decision` is the refined policy (``decision_policy``): the user's own absences count.
    Every piece of the user's script shown goes through display_text (and the template
    escapes it).
    """
    if session.client_read_at is None:
        return None
    read_at = t("client.read_at", when=f"{policy.local(session.client_read_at):%Y-%m-%d %H:%M}")
    answer = who_answers(decision, user_id, now, session.client)
    words: str | None = None
    quote: str | None = None
    if answer.by == "mailcall":
        if not answer.client:
            return None  # nothing of the client's to overrule: the absence says it all
        words, quote = t("client.overruled"), _quoted(answer.client[0])
    elif answer.by == "client":
        first = answer.client[0]
        until = _when(policy, first.until)
        words = (t("client.answers_until", until=until) if until
                 else t("client.answers"))
        quote = _quoted(first)
    elif answer.by == "none":
        words = t("client.none")
    else:
        words = t("client.unread")
    return {"by": answer.by, "text": words, "quote": quote, "read_at": read_at}
