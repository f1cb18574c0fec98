"""``[organisation] admins``: who sees IT's view is written in the policy, and each one
must be a user of it (file, line and key named otherwise)."""

from __future__ import annotations

import pytest

from mailcall.core.errors import PolicyInvalid
from mailcall.core.policy.load import compile_text, load_policy

from .conftest import EXAMPLE, POLICIES

BASE = (POLICIES / "base.toml").read_text()
BOB = '\n[users.bob]\nname = "Bob"\nemail = "bob@example.test"\nprofile = "basic"\n'


def with_admins(value: str) -> str:
    return BASE.replace('country = "FR"\n', f'country = "FR"\nadmins = {value}\n', 1) + BOB


def problems(text: str) -> list[str]:
    with pytest.raises(PolicyInvalid) as exc:
        compile_text(text, name="t.toml")
    return [str(p) for p in exc.value.problems]


def test_admins_are_on_the_compiled_policy():
    assert compile_text(with_admins('["bob", "ann"]')).admins == ("bob", "ann")
    assert compile_text(BASE).admins == ()  # none written: nobody sees IT's view
    assert load_policy(EXAMPLE).admins == ("david",)  # the example names its admin


def test_an_admin_who_is_not_a_user_is_refused_with_file_line_and_key():
    [problem] = problems(with_admins('["ann", "ghost"]'))
    assert problem.startswith("t.toml:7: organisation.admins.1: user 'ghost' is not defined")
    assert "admins are user ids of [users]" in problem


@pytest.mark.parametrize(("value", "words"), [
    ('"ann"', "organisation.admins: must be a list"),
    ('["Ann Smith"]', "organisation.admins.0: 'Ann Smith' is not a valid name"),
    ('[1]', "organisation.admins.0: must be a name"),
    ('["ann", "ann"]', "organisation.admins: lists the same value twice"),
])
def test_admins_must_be_a_list_of_user_ids(value, words):
    assert any(words in p for p in problems(with_admins(value))), problems(with_admins(value))
