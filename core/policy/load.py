"""Loading a policy from disk: read, merge drop-ins, ask directory plugins, compile."""

from __future__ import annotations

from pathlib import Path

import pluggy

from mailcall.core.errors import PolicyInvalid, Problem
from mailcall.core.policy.compile import compile_policy
from mailcall.core.policy.files import RawPolicy, merge, parse_text, policy_files, read_policy
from mailcall.core.policy.model import Policy

DEFAULT_PATH = Path("/etc/mailcall/policy.toml")


def load_policy(path: str | Path = DEFAULT_PATH, *, pm: pluggy.PluginManager | None = None,
                dropins: bool = True) -> Policy:
    """Read `path` and `policy.d/*.toml` beside it; raise PolicyInvalid with every problem."""
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
    directory: list = []
    org = raw.data.get("organisation", {})
    if pm is not None:
        # The hook promises a mapping; `organisation = 3` is the compiler's to report.
        org = org if isinstance(org, dict) else {}
        for batch in pm.hook.mailcall_directory_users(organisation=org):
            directory.extend(batch or ())
    policy = compile_policy(raw, directory)
    if pm is not None:
        extra = [p for batch in pm.hook.mailcall_policy_checks(policy=policy) for p in batch]
        extra += _transcription_problems(policy, pm) + _encoder_problems(policy, pm)
        if extra:
            raise PolicyInvalid([Problem(raw.files[0], "", msg) for msg in extra])
    return policy


def _transcription_problems(policy: Policy, pm: pluggy.PluginManager) -> list[str]:
    """A profile granting transcription with no engine to do it would silently do nothing."""
    wanting = [name for name, p in policy.profiles.items() if p.features.transcription]
    if not wanting:
        return []
    engines = [e for batch in pm.hook.mailcall_speech_engines() for e in batch]
    if any(hasattr(e, "transcribe") for e in engines):
        return []
    return [f"profiles.{name}.features.transcription: granted, but no installed speech "
            "engine plugin can transcribe; install one or set transcription = false"
            for name in wanting]


def _encoder_problems(policy: Policy, pm: pluggy.PluginManager) -> list[str]:
    """A voicemail format no encoder offers would quietly fall back to WAV."""
    offered = {e.format for batch in pm.hook.mailcall_audio_encoders() for e in batch or ()}
    if not offered:
        return []  # no deposit plugin loaded: nothing encodes anything here
    return [f"profiles.{name}.features.voicemail.formats: '{fmt}' is offered by no installed "
            f"audio encoder ({', '.join(sorted(offered))} are); remove it or install the "
            "plugin that encodes it"
            for name, p in policy.profiles.items() for fmt in p.features.voicemail.formats
            if fmt not in offered]
