"""Loading a policy from disk: read, merge drop-ins, ask the plugins, compile.

The plugins say what the policy may name (media and their settings, audio and
fax formats) and where more users come from; the compiler checks the policy
against that, so a name no plugin offers is refused by ``mailcall check``.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pluggy

from mailcall.core.contracts import AudioEncoder, FaxConverter, Medium, Offered
from mailcall.core.errors import PolicyInvalid, Problem
from mailcall.core.host.collect import collected, collected_by_name
from mailcall.core.policy.compile import compile_policy
from mailcall.core.policy.files import RawPolicy, merge, parse_text, policy_files, read_policy
from mailcall.core.policy.model import Policy

DEFAULT_PATH = Path("/etc/mailcall/policy.toml")


def load_policy(path: str | Path = DEFAULT_PATH, *, pm: pluggy.PluginManager | None = None,
                dropins: bool = True) -> Policy:
    """Read `path` and `policy.d/*.toml` beside it; raise PolicyInvalid with every problem.

    With `pm`, its plugins declare the vocabulary, add directory users and check the
    result; without, the vocabulary is that of the installed plugins (the `mailcall`
    entry points) and nothing else is asked.
    """
    path = Path(path)
    problems: list[Problem] = []
    raw = read_policy(policy_files(path) if dropins else [path], problems)
    if problems:
        raise PolicyInvalid(problems)
    return _compile(raw, pm)


def compile_text(text: str, *, name: str = "<policy>",
                 pm: pluggy.PluginManager | None = None) -> Policy:
    """Compile a policy held in a string (tests, `mailcall check -`)."""
    problems: list[Problem] = []
    raw = RawPolicy(files=[name], texts={name: text})
    parsed = parse_text(text, name, problems)
    if parsed is None:
        raise PolicyInvalid(problems)
    merge(raw, parsed, name, (), problems)
    return _compile(raw, pm)


def _compile(raw: RawPolicy, pm: pluggy.PluginManager | None) -> Policy:
    directory: list[Mapping[str, Any]] = []
    broken: list[Problem] = []
    org = raw.data.get("organisation", {})
    if pm is not None:
        # The hook promises a mapping; `organisation = 3` is the compiler's to report.
        org = org if isinstance(org, dict) else {}
        # A batch or entry that is no user table names its plugin (collected); what a
        # table holds is checked by the compiler, with the policy's other problems.
        try:
            directory = collected(pm, "mailcall_directory_users", Mapping, organisation=org,
                                  expected='a user table (a mapping with an "id" key)')
        except TypeError as exc:
            broken.append(Problem(raw.files[0], "", str(exc)))
    try:
        offered = installed_offers() if pm is None else offers(pm)
    except TypeError as exc:
        raise PolicyInvalid([*broken, Problem(raw.files[0], "", str(exc))]) from None
    try:
        policy = compile_policy(raw, directory, offered=offered)
    except PolicyInvalid as exc:
        raise PolicyInvalid([*broken, *exc.problems]) from None
    if broken:
        raise PolicyInvalid(broken)
    if pm is not None:
        try:
            extra = collected(pm, "mailcall_policy_checks", str, policy=policy,
                              expected='a problem as a string ("key.path: what is wrong")')
        except TypeError as exc:
            raise PolicyInvalid([Problem(raw.files[0], "", str(exc))]) from None
        extra += _transcription_problems(policy)
        if extra:
            raise PolicyInvalid([Problem(raw.files[0], "", msg) for msg in extra])
    return policy


def offers(pm: pluggy.PluginManager) -> Offered:
    """What `pm`'s plugins add to the policy's vocabulary; TypeError names a broken plugin.

    For a medium or a format declared twice, the first plugin pluggy calls wins
    (:func:`~mailcall.core.host.collect.collected_by_name`: plugins registered later are
    called first, so a third-party plugin overrides ours), and the log says so.
    """
    media = collected_by_name(pm, "mailcall_notification_media", Medium, name="name",
                              what="notification medium")
    audio = collected_by_name(pm, "mailcall_audio_encoders", AudioEncoder, name="format",
                              what="audio format")
    fax = collected_by_name(pm, "mailcall_fax_converters", FaxConverter, name="format",
                            what="fax format")
    return Offered(media=media, audio_formats=tuple(audio), fax_formats=tuple(fax))


@functools.cache
def installed_offers() -> Offered:
    """The vocabulary of the installed plugins, for a policy compiled without a manager."""
    from mailcall.core.host.plugin_manager import make_plugin_manager

    return offers(make_plugin_manager())


def _transcription_problems(policy: Policy) -> list[str]:
    """No part of mailcall transcribes voicemail yet: a profile granting it would silently
    get nothing, whatever engine a plugin offers, so the check says so."""
    return [f"profiles.{name}.features.transcription: granted, but mailcall cannot "
            "transcribe voicemail yet (it has no speech-to-text part, whatever plugins are "
            "installed); set transcription = false"
            for name, p in policy.profiles.items() if p.features.transcription]
