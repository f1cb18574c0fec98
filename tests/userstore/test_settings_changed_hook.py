"""A user's change in the store reaches plugins through the declared hook
``mailcall_user_settings_changed`` (it was a private list of callbacks kept on the runtime
under a probed attribute), with what changed; the overlay is a typed Runtime attribute."""

from __future__ import annotations

import asyncio
import logging

from mailcall.core.hookspecs import hookimpl
from mailcall.core.host.plugin_manager import make_plugin_manager
from mailcall.core.host.runtime import Runtime
from mailcall.plugins.userstore import UserStoreService
from mailcall.userstore.overlay import decision_policy
from mailcall.userstore.service import UserStore
from mailcall.userstore.sqlite_store import SqliteStore
from tests.userstore.conftest import NOW


class Recorder:
    def __init__(self) -> None:
        self.seen: list[tuple[str, frozenset[str]]] = []

    @hookimpl
    def mailcall_user_settings_changed(self, runtime, user_id, fields):
        assert runtime.user_overlay is not None  # decisions already obey the change
        self.seen.append((user_id, fields))


class Broken:
    @hookimpl
    def mailcall_user_settings_changed(self, runtime, user_id, fields):
        raise RuntimeError("regeneration queue is full")


def test_hook_mailcall_user_settings_changed(policy, store_path, caplog):
    backend = SqliteStore(store_path)
    store = UserStore(backend, clock=lambda: NOW)
    store.set(policy, "alice", {"notify.hours": "office"}, actor="alice", origin="web")
    pm = make_plugin_manager(entrypoints=False)
    recorder = Recorder()
    pm.register(Broken(), name="broken")
    pm.register(recorder, name="recorder")
    runtime = Runtime(policy, pm)
    service = UserStoreService(runtime, store_path)
    assert runtime.user_overlay is None and decision_policy(runtime) is policy

    async def go():
        await service.start()
        try:
            assert runtime.user_overlay is service.overlay  # typed, not a probed attribute
            # At start, every user who has settings: what they hold is news.
            with caplog.at_level(logging.ERROR, "mailcall.plugins"):
                assert service.tick() == {"alice": frozenset({"notify.hours"})}
            assert recorder.seen == [("alice", frozenset({"notify.hours"}))]
            assert "plugin broken failed in mailcall_user_settings_changed" in caplog.text
            assert service.tick() == {}  # nothing new: nobody is told again
            store.set_absence(policy, "bernard", until="2026-12-12", backup="carole",
                              actor="it", origin="cli")
            store.set(policy, "alice", {"notify.hours": "office", "reroute.mobile": False},
                      actor="alice", origin="phone")
            service.tick()
            # Each user once, with only what changed (alice's hours were already "office").
            assert sorted(recorder.seen[1:]) == [("alice", frozenset({"reroute.mobile"})),
                                                 ("bernard", frozenset({"absences"}))]
        finally:
            await service.stop(1)
        assert runtime.user_overlay is None

    asyncio.run(go())
    backend.close()
