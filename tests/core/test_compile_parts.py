"""The parts compile.py calls, each on its own: the section keys, the media schema, the
backup graph. tests/core/test_validation.py checks them through whole policies; these
pin what each public function answers by itself."""

from __future__ import annotations

from types import MappingProxyType, SimpleNamespace

from mailcall.core.contracts import FromSetting, Medium, Offered, Setting, UserField, UserKey
from mailcall.core.policy.backup_graph import check_references, is_target, loop_text
from mailcall.core.policy.files import RawPolicy
from mailcall.core.policy.media_schema import (
    check_relay,
    declared_value,
    medium_address,
    medium_user_keys,
    read_channels,
)
from mailcall.core.policy.model import (
    ChannelSettings,
    DeliverySettings,
    Group,
    ServerSettings,
    User,
)
from mailcall.core.policy.section_keys import (
    SERVER_KEYS,
    agi_path_problem,
    read_section,
    url_value,
)
from mailcall.core.policy.value_checks import Checker

CHAT = Medium(name="chat", address=UserKey(Setting("chat_handle")), settings=(
    Setting("url", kind="url", required=True),
    Setting("retries", kind="integer", default=3, low=0, high=9),
))
HOOK = Medium(name="hook", address=FromSetting("url"), settings=(Setting("url", kind="url"),))


def checker(*media: Medium) -> Checker:
    return Checker(RawPolicy(files=["policy.toml"]), Offered(media={m.name: m for m in media}))


def said(check: Checker) -> list[tuple[str, str]]:
    return [(p.key, p.message) for p in check.problems]


# ---------------------------------------------------------------- section_keys

def test_read_section_converts_each_key_and_takes_defaults_for_the_rest():
    check = checker()
    server = read_section(check, {"agi_listen": "127.0.0.1:4574", "spool_dir": "spool"},
                          ("server",), {"max_agi_sessions": 7}, SERVER_KEYS, ServerSettings)
    assert server.agi_listen == "127.0.0.1:4574"
    assert server.max_agi_sessions == 7
    assert server.spool_dir == ServerSettings().spool_dir  # refused: the class default stays
    assert said(check) == [("server.spool_dir", "'spool' must be an absolute path")]


def test_url_value_and_agi_path_problem():
    check = checker()
    assert url_value(check, "https://x.example/h", ("k",)) == "https://x.example/h"
    assert url_value(check, "ftp://x", ("k",)) is None
    assert said(check) == [("k", "'ftp://x' must be an http:// or https:// URL")]
    assert agi_path_problem("/var/spool/mailcall") is None
    assert agi_path_problem("rel") == "must be an absolute path"
    assert "single words" in (agi_path_problem("/a b") or "")


# ---------------------------------------------------------------- media_schema

def test_read_channels_takes_nested_and_flat_keys_and_declared_defaults():
    check = checker(CHAT)
    got = read_channels(check, {"chat": {"url": "https://chat.example"}, "rate_limit_per_hour": 5},
                        {}, {"chat": CHAT})
    assert said(check) == []
    assert got.rate_limit_per_hour == 5
    assert dict(got.of("chat")) == {"url": "https://chat.example", "retries": 3}
    flat = read_channels(check, {"chat_url": "https://flat.example"}, {}, {"chat": CHAT})
    assert flat.of("chat")["url"] == "https://flat.example"


def test_read_channels_refuses_a_key_set_twice_and_a_medium_nobody_offers():
    check = checker(CHAT)
    read_channels(check, {"chat": {"url": "https://a.example"}, "chat_url": "https://b.example",
                          "pager": {"x": 1}}, {}, {"chat": CHAT})
    assert said(check) == [
        ("channels.chat_url", "is set twice, as [channels.chat] url and [channels] chat_url: "
         "keep one"),
        ("channels.pager", "no installed plugin offers the medium 'pager' (offered: chat): "
         "install the plugin that adds it, or remove [channels.pager]"),
    ]


def test_declared_value_checks_the_kind_then_the_plugins_rule():
    check = checker()
    assert declared_value(check, Setting("n", kind="integer", low=0, high=9), 4, ("k",)) == 4
    assert declared_value(check, Setting("n", kind="integer", low=0, high=9), 10, ("k",)) is None

    def broken(value):
        raise RuntimeError("boom")

    assert declared_value(check, Setting("t", validate=broken), "x", ("t",)) is None
    assert said(check)[-1] == ("t", "the plugin that declares this key failed checking it "
                               "(RuntimeError('boom')): fix or disable that plugin")
    assert len(check.problems) == 2


def test_check_relay_refuses_the_lmtp_address_only():
    check = checker()
    lmtp = DeliverySettings(method="lmtp", address="127.0.0.1:24")
    check_relay(check, ChannelSettings(relay="127.0.0.1:25"), lmtp)
    assert check.problems == []
    check_relay(check, ChannelSettings(relay="127.0.0.1:24"), lmtp)
    assert [p.key for p in check.problems] == ["channels.relay"]
    check_relay(check, ChannelSettings(relay="127.0.0.1:24"),
                DeliverySettings(method="smtp", address="127.0.0.1:24"))
    assert len(check.problems) == 1


def test_medium_user_keys_refuses_a_key_of_mailcall():
    check = checker()
    assert medium_user_keys(check, {"chat": CHAT, "hook": HOOK}, ("name",)) == {
        "chat_handle": "chat"}
    assert check.problems == []
    taken = Medium(name="im", address=UserKey(Setting("name")))
    assert medium_user_keys(check, {"im": taken}, ("name",)) == {}
    assert "already a key of mailcall" in said(check)[0][1]


def test_medium_address_follows_the_declaration():
    check = checker(HOOK)
    features = SimpleNamespace(notify=SimpleNamespace(media=("hook", "sms")))
    channels = ChannelSettings(media=MappingProxyType(
        {"hook": MappingProxyType({"url": "https://h.example"})}))
    assert medium_address(check, ("users", "a"), HOOK, "hook", features, "staff", {},
                          channels) == "https://h.example"
    sms = Medium(name="sms", address=UserField("mobile"))
    assert medium_address(check, ("users", "a"), sms, "sms", features, "staff",
                          {"mobile": "+33612345678"}, channels) == "+33612345678"
    assert check.problems == []
    assert medium_address(check, ("users", "a"), sms, "sms", features, "staff",
                          {"mobile": None}, channels) is None
    assert said(check) == [("users.a", "is 'sms' but the user has no 'mobile' number")]


# ---------------------------------------------------------------- backup_graph

def user(uid: str, *backups: str) -> User:
    return User(id=uid, name=uid, email=f"{uid}@x.example", profile="p", features=None,  # type: ignore[arg-type]
                backups=backups)


def test_loop_text_and_is_target():
    assert loop_text(["a", "b", "a"]) == "a → b → a"
    assert loop_text([str(n) for n in range(20)]) == (
        "0 → 1 → 2 → 3 → 4 → … 11 more → 16 → 17 → 18 → 19")
    assert is_target("alice", frozenset({"alice"}), frozenset())
    assert is_target("@sales", frozenset(), frozenset({"sales"}))
    assert not is_target("sales", frozenset(), frozenset({"sales"}))
    assert not is_target(["alice"], frozenset({"alice"}), frozenset())


def test_check_references_names_the_shortest_loop_and_undefined_targets():
    check = checker()
    users = {"a": user("a", "b"), "b": user("b", "c", "a"), "c": user("c", "a"),
             "d": user("d", "nobody", "d")}
    groups = {"g": Group(id="g", name="g", members=("a",), overflow="@g")}
    check_references(check, users, groups, frozenset(users), frozenset(groups))
    assert said(check) == [
        ("users.d.backups.0", "'nobody' is not a defined user or @group (groups are written "
         "with '@', e.g. \"@reception\")"),
        ("users.d.backups.1", "a user cannot be their own backup"),
        ("groups.g.overflow", "a group cannot overflow to itself"),
        ("users.a.backups", "backup chain loops: a → b → a (also in this loop: c); end the "
         "chain in a group or a user without backups"),
    ]
