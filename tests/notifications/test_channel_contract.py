"""A channel's ``temporary_errors`` and its medium are checked where channels are collected.

Review finding (issue #11): ``temporary_errors`` was read only when a send failed
(``isinstance(channel, RetryingChannel)``, an attribute probe, then
``isinstance(exc, tuple(declared))``), so ``("ConnectionError",)`` raised TypeError inside
the failure handling of a send, in the middle of a notification. Now it is checked when
``mailcall serve`` collects the channels (ContractBroken naming the plugin) and when a
Dispatcher is built; the send path reads the checked tuple. Two plugins serving one medium
are decided by ``collected_by_name`` (the one called first wins, and the log says so).
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from mailcall.core.hookspecs import hookimpl
from mailcall.core.host.collect import ContractBroken
from mailcall.notifications import ChannelError, Dispatcher, TemporaryChannelError
from mailcall.notifications.channel import DEFAULT_TEMPORARY, is_temporary
from mailcall.plugins import channels as channels_plugin
from tests.notifications.test_dispatcher import runtime_for


class Busy(Exception):
    pass


class ChatChannel:
    medium = "sms"

    def __init__(self, temporary) -> None:
        if temporary is not None:
            self.temporary_errors = temporary

    async def send(self, notification, subject, text) -> None:
        raise ConnectionError("chat service down")


class Chat:
    """A third-party plugin offering one channel."""

    def __init__(self, channel) -> None:
        self.channel = channel

    @hookimpl
    def mailcall_notification_channels(self, runtime):
        return [self.channel]


def serve_with(tmp_path: Path, channel):
    runtime = runtime_for(tmp_path)
    runtime.overrides["spool_dir"] = str(tmp_path / "spool")
    runtime.pm.register(Chat(channel), name="chat")
    return runtime, channels_plugin.notification_service(runtime)


@pytest.mark.parametrize(("temporary", "shown"), [
    (("ConnectionError",), "whose temporary_errors is ('ConnectionError',)"),
    (Busy, "whose temporary_errors is <class"),
    ([Busy], "whose temporary_errors is [<class"),
])
def test_a_bad_temporary_errors_stops_serve_naming_the_plugin(tmp_path, temporary, shown):
    with pytest.raises(ContractBroken) as exc:
        serve_with(tmp_path, ChatChannel(temporary))
    message = str(exc.value)
    assert message.startswith(f"plugin 'chat' returned a ChatChannel {shown}"), message
    assert "not a tuple of exception classes" in message
    assert "MAILCALL_DISABLE_PLUGINS=chat" in message


def test_a_dispatcher_refuses_it_when_built_not_at_the_first_failure(tmp_path):
    runtime = runtime_for(tmp_path)
    refused = r"medium 'sms'.*temporary_errors is \('ConnectionError',\)"
    with pytest.raises(TypeError, match=refused):
        Dispatcher(runtime, [ChatChannel(("ConnectionError",))], path=tmp_path / "q.sqlite")


def test_the_checked_tuple_is_what_a_failure_is_read_against(tmp_path):
    runtime, dispatcher = serve_with(tmp_path, ChatChannel((Busy,)))
    assert dispatcher.channels["sms"] is runtime.pm.get_plugin("chat").channel
    assert dispatcher.temporary["sms"] == (Busy,)
    assert is_temporary(dispatcher.temporary["sms"], Busy("try later"))
    assert not is_temporary(dispatcher.temporary["sms"], ConnectionError("down"))
    assert is_temporary(dispatcher.temporary["sms"], TemporaryChannelError("always"))
    # No temporary_errors at all: the documented default.
    _, plain = serve_with(tmp_path / "plain", ChatChannel(None))
    assert plain.temporary["sms"] == DEFAULT_TEMPORARY
    assert not is_temporary(plain.temporary["sms"], ChannelError("refused"))


def test_a_third_party_channel_overrides_the_built_in_one_and_the_log_says_so(tmp_path, caplog):
    with caplog.at_level(logging.INFO, "mailcall.plugins"):
        runtime, dispatcher = serve_with(tmp_path, ChatChannel((Busy,)))
    assert dispatcher.channels["sms"] is runtime.pm.get_plugin("chat").channel
    lines = [r.getMessage() for r in caplog.records if r.name == "mailcall.plugins"]
    assert any(line.startswith("the notification channel for medium 'sms' of plugin "
                               "'channels' is overridden by plugin 'chat', called first")
               for line in lines), lines


def test_two_channels_of_one_medium_given_to_a_dispatcher_are_refused(tmp_path):
    runtime = runtime_for(tmp_path)
    with pytest.raises(ValueError, match="two channels for medium 'sms'"):
        Dispatcher(runtime, [ChatChannel(None), ChatChannel(None)], path=tmp_path / "q.sqlite")
