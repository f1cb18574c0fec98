"""Fixtures the phone-menu tests share: the mailboxes with a lamp that hears every change."""

from __future__ import annotations

import pytest

from mailcall.core.hookspecs import hookimpl

from .support import cleanup, start_mailboxes


class LampSpy:
    def __init__(self) -> None:
        self.changes: list[tuple[str, str, str]] = []

    @hookimpl
    def mailcall_mailbox_changed(self, runtime, user, folder, reason):
        self.changes.append((user, folder, reason))


@pytest.fixture
def boxes(dovecot_factory):
    """The private Dovecot's mailboxes (support.py), with a LampSpy as ``boxes.lamp``;
    a module that needs other mailboxes defines its own ``boxes``."""
    made = start_mailboxes(dovecot_factory)
    made.lamp = LampSpy()
    made.runtime.pm.register(made.lamp, name="lamp-spy")
    yield made
    cleanup(made)
