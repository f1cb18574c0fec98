"""One blocking ManageSieve connection (RFC 5804): the socket, STARTTLS and the login.

It drives :class:`~.managesieve_protocol.ManageSieveClient` over a blocking socket,
meant to run in a caller's bounded thread pool as :mod:`mailcall.imap.user_login`
does. Passwords are never kept, logged or put in an error message.
"""

from __future__ import annotations

import base64
import socket
import ssl
from typing import Literal

from mailcall.core.sansio import LocalProtocolError, NeedData, RemoteProtocolError
from mailcall.imap.settings import is_loopback

from .managesieve_protocol import Atom, ManageSieveClient, Reply, State

Security = Literal["none", "starttls"]


class ManageSieveError(Exception):
    """A ManageSieve exchange failed. `kind`: "unreachable" (try later), "auth" (the
    credentials were refused), "protocol" (the server or the request is at fault)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class Session:
    """One ManageSieve connection, logged in as a user with their own password.

    RFC 5804 has no implicit TLS: off loopback, ``security="starttls"`` is required,
    so a user's password never crosses a network in clear.
    """

    def __init__(self, host: str, port: int = 4190, *, security: Security = "none",
                 timeout: float = 10.0, ssl_context: ssl.SSLContext | None = None) -> None:
        """`ssl_context`: how the server's certificate is checked (default: the system's
        CAs and the host name, ``ssl.create_default_context()``)."""
        self.where = f"{host}:{port}"
        if security == "none" and not is_loopback(host):
            raise ManageSieveError("protocol", f"refusing to send a user's password in clear "
                                   f"to ManageSieve {self.where}: use security \"starttls\"")
        self.machine = ManageSieveClient()
        try:
            self.sock: socket.socket | ssl.SSLSocket = socket.create_connection(
                (host, port), timeout=timeout)
        except OSError as exc:
            raise ManageSieveError("unreachable", f"ManageSieve {self.where} unreachable: "
                                   f"{exc.strerror or exc}") from None
        try:
            self.capabilities = _capabilities(self._reply())
            if security == "starttls":
                if "STARTTLS" not in self.capabilities:
                    raise ManageSieveError("protocol", f"ManageSieve {self.where} does not "
                                           "offer STARTTLS")
                self._command("STARTTLS")
                context = ssl_context or ssl.create_default_context()
                try:
                    self.sock = context.wrap_socket(self.sock, server_hostname=host)
                except (ssl.SSLError, ssl.CertificateError) as exc:
                    raise ManageSieveError("protocol", f"TLS with ManageSieve {self.where} "
                                           f"failed: {exc}; check its certificate") from None
                except OSError as exc:
                    raise ManageSieveError("unreachable", f"ManageSieve {self.where} during "
                                           f"TLS: {exc.strerror or exc}") from None
                try:
                    self.machine.restart()
                except RemoteProtocolError as exc:
                    raise ManageSieveError("protocol", f"ManageSieve {self.where}: {exc}"
                                           ) from None
                self.capabilities = _capabilities(self._reply())
        except BaseException:
            self.close()
            raise

    def _reply(self) -> Reply:
        while True:
            try:
                event = self.machine.next_event()
            except RemoteProtocolError as exc:
                raise ManageSieveError("protocol", f"ManageSieve {self.where}: {exc}") from None
            if not isinstance(event, NeedData):
                return event
            try:
                data = self.sock.recv(65536)
            except OSError as exc:
                raise ManageSieveError("unreachable", f"ManageSieve {self.where}: "
                                       f"{exc.strerror or exc}") from None
            self.machine.receive_data(data)

    def _command(self, command: str, *args: str | bytes, what: str = "") -> Reply:
        try:
            self.sock.sendall(self.machine.send(command, *args))
        except OSError as exc:
            raise ManageSieveError("unreachable", f"ManageSieve {self.where}: "
                                   f"{exc.strerror or exc}") from None
        reply = self._reply()
        if reply.kind == "BYE":
            raise ManageSieveError("unreachable", f"ManageSieve {self.where} closed the "
                                   f"connection: {reply.text}")
        if not reply.ok:
            raise ManageSieveError("protocol", f"ManageSieve {self.where} refused "
                                   f"{what or command}: {reply.text or reply.code_name()}")
        return reply

    def login(self, user: str, password: str) -> None:
        """AUTHENTICATE PLAIN as `user`; raises ManageSieveError("auth") when refused."""
        if "PLAIN" not in self.capabilities.get("SASL", "").upper().split():
            raise ManageSieveError("protocol", f"ManageSieve {self.where} does not offer SASL "
                                   "PLAIN")
        token = base64.b64encode(b"\0" + user.encode() + b"\0" + password.encode()).decode()
        try:
            self.sock.sendall(self.machine.send("AUTHENTICATE", "PLAIN", token))
        except OSError as exc:
            raise ManageSieveError("unreachable", f"ManageSieve {self.where}: "
                                   f"{exc.strerror or exc}") from None
        del token, password
        reply = self._reply()
        if reply.kind == "NO":
            if reply.code_name() in ("TRYLATER", "UNAVAILABLE"):
                raise ManageSieveError("unreachable", f"ManageSieve {self.where} cannot check "
                                       f"passwords now: {reply.text}")
            raise ManageSieveError("auth", f"ManageSieve {self.where} refused the login of "
                                   f"{user!r}")
        if reply.kind == "BYE":
            raise ManageSieveError("unreachable", f"ManageSieve {self.where} closed the "
                                   f"connection at login: {reply.text}")

    def list_scripts(self) -> list[tuple[str, bool]]:
        """(name, active) of every script of the user."""
        reply = self._command("LISTSCRIPTS")
        return [(line[0], any(isinstance(i, Atom) and i.value.upper() == "ACTIVE"
                              for i in line[1:]))
                for line in reply.lines if line and isinstance(line[0], str)]

    def get_script(self, name: str) -> str:
        reply = self._command("GETSCRIPT", name, what=f"GETSCRIPT {name!r}")
        for line in reply.lines:
            if line and isinstance(line[0], str):
                return line[0]
        raise ManageSieveError("protocol", f"ManageSieve {self.where} sent no script text for "
                               f"{name!r}")

    def put_script(self, name: str, text: str) -> Reply:
        """Upload `text` as `name` (the server compiles it first and refuses errors)."""
        return self._command("PUTSCRIPT", name, text.encode("utf-8"),
                             what=f"PUTSCRIPT {name!r}")

    def set_active(self, name: str) -> Reply:
        """Make `name` the active script ("" deactivates every script)."""
        return self._command("SETACTIVE", name, what=f"SETACTIVE {name!r}")

    def delete_script(self, name: str) -> Reply:
        return self._command("DELETESCRIPT", name, what=f"DELETESCRIPT {name!r}")

    def logout(self) -> None:
        try:
            if self.machine.state is State.READY:
                self.sock.sendall(self.machine.send("LOGOUT"))
                self._reply()
        except (ManageSieveError, OSError, RemoteProtocolError, LocalProtocolError):
            pass
        finally:
            self.close()

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.logout()


def _capabilities(reply: Reply) -> dict[str, str]:
    if not reply.ok:
        raise ManageSieveError("unreachable" if reply.kind == "BYE" else "protocol",
                               f"ManageSieve greeting was {reply.kind}: {reply.text}")
    caps = {}
    for line in reply.lines:
        if line and isinstance(line[0], str):
            caps[line[0].upper()] = line[1] if len(line) > 1 and isinstance(line[1], str) else ""
    return caps
