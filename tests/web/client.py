"""A small HTTP client for the tests: cookies kept, redirects followed, errors returned."""

from __future__ import annotations

import http.cookiejar
import re
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from email.message import Message

from tests.support.dovecot import PASSWORD


@dataclass
class Reply:
    status: int
    text: str
    headers: Message
    url: str

    def csrf(self) -> str:
        m = re.search(r'name="csrf" value="([^"]+)"', self.text)
        assert m, f"no CSRF token in the page {self.url}:\n{self.text[:500]}"
        return m.group(1)


class Client:
    def __init__(self, base: str, *, language: str = "en") -> None:
        self.base = base
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))
        self.language = language

    def request(self, path: str, data: dict[str, str] | list[tuple[str, str]] | None = None,
                headers: dict[str, str] | None = None) -> Reply:
        body = urllib.parse.urlencode(data).encode() if data is not None else None
        req = urllib.request.Request(self.base + path, data=body, headers={  # noqa: S310 - http://
            "Accept-Language": self.language, **(headers or {})})
        try:
            with self.opener.open(req, timeout=30) as r:
                return Reply(r.status, r.read().decode(), r.headers, r.url)
        except urllib.error.HTTPError as e:
            return Reply(e.code, e.read().decode(), e.headers, e.url)

    def get(self, path: str, **kw) -> Reply:
        return self.request(path, **kw)

    def post(self, path: str, data: dict[str, str] | list[tuple[str, str]], **kw) -> Reply:
        return self.request(path, data, **kw)

    def login(self, user: str, password: str = PASSWORD) -> Reply:
        form = self.get("/login")
        return self.post("/login", {"csrf": form.csrf(), "login": user, "password": password})

    def cookie(self, name: str) -> str | None:
        return next((c.value for c in self.jar if c.name == name), None)
