"""Who wins when two plugins offer the same name: the one rule of ``collected_by_name``.

Review finding (issue #11): media, audio formats, fax formats (twice) and channels were
each deduplicated on their own (``setdefault``, ``dict.fromkeys``), first in call order
winning in silence. The documented rule (docs/plugins.md) is kept: a third-party plugin
(registered later, called first) overrides the built-in one; now it is decided in one
place, and one INFO line names the plugin overridden and the one that won.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import pytest

from mailcall.core.contracts import AudioEncoder, FromSetting, Medium, Setting
from mailcall.core.hookspecs import hookimpl
from mailcall.core.host.collect import ContractBroken, collected_by_name
from mailcall.core.host.plugin_manager import make_plugin_manager
from mailcall.core.policy.load import offers
from mailcall.plugins.deposit import encoders_from


@dataclass(frozen=True)
class SiteOpus:
    format: str = "opus"
    mime_type: str = "audio/ogg"
    extension: str = "opus"

    def encode(self, wav_path: str, out_path: str) -> None:
        raise NotImplementedError("never run by these tests")


@dataclass(frozen=True)
class SitePdf:
    format: str = "pdf"
    mime_type: str = "application/pdf"
    extension: str = "pdf"

    def convert(self, tiff_path: str, out_path: str) -> None:
        raise NotImplementedError("never run by these tests")


SITE_SMS = Medium("sms", address=FromSetting("url"), settings=(Setting("url", kind="url"),))


class Site:
    """A site plugin overriding one built-in of each kind."""

    @hookimpl
    def mailcall_audio_encoders(self):
        return [SiteOpus()]

    @hookimpl
    def mailcall_fax_converters(self):
        return [SitePdf()]

    @hookimpl
    def mailcall_notification_media(self):
        return [SITE_SMS]


def overrides(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == "mailcall.plugins" and r.levelno == logging.INFO]


def test_a_third_party_plugin_overrides_the_built_in_and_the_log_says_so(caplog):
    pm = make_plugin_manager()
    pm.register(Site(), name="site")
    with caplog.at_level(logging.INFO, "mailcall.plugins"):
        offered = offers(pm)
        made = encoders_from(pm)
    assert offered.media["sms"] is SITE_SMS
    assert offered.audio_formats.count("opus") == 1 and offered.fax_formats.count("pdf") == 1
    assert isinstance(made["opus"], SiteOpus) and isinstance(made["fax:pdf"], SitePdf)
    lines = overrides(caplog)
    for what, name in [("notification medium", "sms"), ("audio format", "opus"),
                       ("fax format", "pdf")]:
        expected = (f"the {what} {name!r} of plugin 'deposit' is overridden by plugin "
                    f"'site', called first") if what != "notification medium" else (
                    f"the {what} {name!r} of plugin 'channels' is overridden by plugin "
                    f"'site', called first")
        found = [line for line in lines if line.startswith(expected)]
        assert found, (expected, lines)
        assert "MAILCALL_DISABLE_PLUGINS=site" in found[0]


def test_without_a_second_offer_nothing_is_logged(caplog):
    with caplog.at_level(logging.INFO, "mailcall.plugins"):
        offered = offers(make_plugin_manager())
    assert {"opus", "wav", "mp3"} <= set(offered.audio_formats)
    assert overrides(caplog) == []


class Listed:
    def __init__(self, items) -> None:
        self.items = items

    @hookimpl
    def mailcall_audio_encoders(self):
        return self.items


def test_one_plugin_offering_a_name_twice_keeps_its_first(caplog):
    pm = make_plugin_manager(entrypoints=False)
    first, second = SiteOpus(), SiteOpus(mime_type="audio/opus")
    pm.register(Listed([first, second]), name="site")
    with caplog.at_level(logging.INFO, "mailcall.plugins"):
        got = collected_by_name(pm, "mailcall_audio_encoders", AudioEncoder, name="format",
                                what="audio format")
    assert got == {"opus": first} and got["opus"] is first
    assert overrides(caplog) == [
        "plugin 'site' offers the audio format 'opus' twice (mailcall_audio_encoders): "
        "the first one is used"]


def test_a_name_that_is_not_a_string_names_the_plugin():
    pm = make_plugin_manager(entrypoints=False)
    pm.register(Listed([SiteOpus(format=["opus"])]), name="site")
    with pytest.raises(ContractBroken) as exc:
        collected_by_name(pm, "mailcall_audio_encoders", AudioEncoder, name="format",
                          what="audio format")
    assert str(exc.value).startswith(
        "plugin 'site' returned a SiteOpus whose format is ['opus'] from "
        "mailcall_audio_encoders, which is not a AudioEncoder")
    assert "MAILCALL_DISABLE_PLUGINS=site" in str(exc.value)
