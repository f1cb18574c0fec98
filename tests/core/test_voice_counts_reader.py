"""The one reader of hook ``mailcall_voice_counts`` (core/host/voice_counts.py), used by
the phone menu's greeting and the voicemail notification: every way a plugin can answer,
through the real plugin manager (pluggy, the project's hookspecs), with the log line the
admin gets."""

from __future__ import annotations

import asyncio
import logging

import pytest

from mailcall.core.contracts import VoiceCounts
from mailcall.core.hookspecs import hookimpl
from mailcall.core.host.plugin_manager import make_plugin_manager
from mailcall.core.host.voice_counts import read_voice_counts


class Runtime:
    """What the reader needs of the shared runtime: its plugin manager."""

    def __init__(self, plugin) -> None:
        self.pm = make_plugin_manager(entrypoints=False)
        self.pm.register(plugin, name="lamp-under-test")


class Answer:
    def __init__(self, make) -> None:
        self.make = make

    @hookimpl
    def mailcall_voice_counts(self, runtime, user):
        return self.make()


async def read(plugin, wait: float = 0.2):
    return await read_voice_counts(Runtime(plugin), "alice", wait=wait,
                                   purpose="the test's greeting", instead="it counts alone")


def logged(caplog) -> list[tuple[int, str]]:
    return [(r.levelno, r.getMessage()) for r in caplog.records
            if r.name == "mailcall.voice_counts"]


async def test_counts_are_read():
    async def counts():
        return VoiceCounts(new=2, old=1)
    assert await read(Answer(counts)) == VoiceCounts(new=2, old=1)


async def test_a_plugin_that_does_not_count_is_no_answer(caplog):
    with caplog.at_level(logging.INFO, "mailcall.voice_counts"):
        assert await read(Answer(lambda: None)) is None
    assert logged(caplog) == []


@pytest.mark.parametrize(("answer", "level", "words"), [
    (lambda: 3, logging.ERROR, "returned 3, not an awaitable (core/hookspecs.py)"),
    (lambda: 1 / 0, logging.ERROR, "failed; it counts alone"),
])
async def test_a_broken_plugin_is_named_and_read_as_none(caplog, answer, level, words):
    with caplog.at_level(logging.INFO, "mailcall.voice_counts"):
        assert await read(Answer(answer)) is None
    [(got_level, message)] = logged(caplog)
    assert got_level == level and words in message, message
    assert message.startswith("mailcall_voice_counts for alice (the test's greeting)")


async def test_a_wrong_type_is_refused_by_the_contract(caplog):
    async def counts():
        return {"new": 2, "old": 1}
    with caplog.at_level(logging.INFO, "mailcall.voice_counts"):
        assert await read(Answer(counts)) is None
    [(level, message)] = logged(caplog)
    assert level == logging.ERROR and "not a VoiceCounts (core/contracts.py)" in message


async def test_a_count_that_fails_is_logged_once(caplog):
    async def counts():
        raise OSError("folder Voicemail unreadable")
    with caplog.at_level(logging.INFO, "mailcall.voice_counts"):
        assert await read(Answer(counts)) is None
    [(level, message)] = logged(caplog)
    assert level == logging.WARNING and "OSError: folder Voicemail unreadable" in message


async def test_a_slow_coroutine_of_its_own_is_cancelled():
    state = {}

    async def counts():
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            state["cancelled"] = True
            raise
        return VoiceCounts(new=1, old=0)
    assert await read(Answer(counts), wait=0.05) is None
    await asyncio.sleep(0)
    assert state == {"cancelled": True}


async def test_a_slow_shared_future_is_left_to_its_other_readers():
    """A recount under way that several readers wait for: the one that stops waiting must
    not cancel it for the others."""
    shared: asyncio.Future[VoiceCounts] = asyncio.get_running_loop().create_future()
    assert await read(Answer(lambda: shared), wait=0.05) is None
    assert not shared.cancelled()
    shared.set_result(VoiceCounts(new=4, old=0))
    assert await read(Answer(lambda: shared)) == VoiceCounts(new=4, old=0)


class Raising:
    """A broken plugin, registered after the lamp: pluggy calls it first."""

    def __init__(self, answer=None) -> None:
        self.answer = answer

    @hookimpl
    def mailcall_voice_counts(self, runtime, user):
        if self.answer is None:
            raise RuntimeError("broken plugin")
        return self.answer


@pytest.mark.parametrize(("broken", "words"), [
    (Raising(), "plugin 'broken' failed; the next plugin is asked"),
    (Raising(answer=7), "plugin 'broken' returned 7, not an awaitable (core/hookspecs.py); "
                        "the next plugin is asked"),
])
async def test_a_broken_plugin_does_not_hide_the_lamps_answer(caplog, broken, words):
    """One firstresult call stopped at the broken plugin's exception (pluggy ends the
    chain there), so the lamp behind it was never asked and the count was lost."""
    async def counts():
        return VoiceCounts(new=3, old=0)
    runtime = Runtime(Answer(counts))
    runtime.pm.register(broken, name="broken")
    with caplog.at_level(logging.INFO, "mailcall.voice_counts"):
        got = await read_voice_counts(runtime, "alice", wait=0.2,
                                      purpose="the test's greeting", instead="it counts alone")
    assert got == VoiceCounts(new=3, old=0)
    [(level, message)] = logged(caplog)
    assert level == logging.ERROR and words in message, message
    assert message.endswith("Fix that plugin or disable it (MAILCALL_DISABLE_PLUGINS=broken)")


async def test_plugins_that_do_not_count_leave_the_answer_to_the_next():
    async def counts():
        return VoiceCounts(new=1, old=5)
    runtime = Runtime(Answer(counts))
    runtime.pm.register(Answer(lambda: None), name="not-a-lamp")
    assert await read_voice_counts(runtime, "alice", wait=0.2, purpose="p",
                                   instead="i") == VoiceCounts(new=1, old=5)
