"""Reading a user's own Sieve scripts over ManageSieve, as the user, for their vacations.

The employees' page has the user's own password for a moment at login; it logs in with
it (no master user that could also write users' scripts), reads the active script and
the personal scripts it includes, and hands them to :func:`.client_vacation.vacations`.
A script that cannot be read is named in :attr:`ClientScripts.problems`, never guessed.
"""

from __future__ import annotations

import ssl

from mailcall.core.text import display_text

from .client_vacation import ClientScripts, ClientVacation, vacations
from .managesieve_session import ManageSieveError, Security, Session
from .sieve_syntax import SieveSyntaxError

MAX_INCLUDES = 8
"""Scripts read at most through ``include`` (Pigeonhole's own default limit is 10)."""


def read_client_vacation(host: str, port: int, user: str, password: str, *,
                         security: Security = "none", timeout: float = 10.0,
                         ssl_context: ssl.SSLContext | None = None) -> ClientScripts:
    """Log in as `user` with their own password and read their active script (and the
    personal scripts it includes). Raises :class:`ManageSieveError` ("auth",
    "unreachable", "protocol"), whose message never holds the password."""
    with Session(host, port, security=security, timeout=timeout,
                 ssl_context=ssl_context) as session:
        session.login(user, password)
        del password
        return scripts_of(session)


def scripts_of(session: Session) -> ClientScripts:
    """The vacations of the logged-in user's active script and what it includes."""
    names = dict(session.list_scripts())
    active = next((name for name, on in names.items() if on), None)
    if active is None:
        return ClientScripts(None, ())
    found: list[ClientVacation] = []
    problems: list[str] = []
    todo, seen = [active], set()
    while todo and len(seen) < MAX_INCLUDES:
        name = todo.pop(0)
        if name in seen:
            continue
        seen.add(name)
        if name not in names:
            problems.append(f"{display_text(name, 80)!r} is included but does not exist")
            continue
        try:
            more, includes = vacations(session.get_script(name), name)
        except SieveSyntaxError as exc:
            problems.append(f"{display_text(name, 80)!r}: {display_text(str(exc), 200)}")
            continue
        except ManageSieveError as exc:
            problems.append(f"{display_text(name, 80)!r}: {exc}")
            continue
        found += more
        todo += includes
    return ClientScripts(active, tuple(found), tuple(problems))
