"""Generated Sieve: compiled by the real sievec, user data quoted safely whatever it holds."""

from __future__ import annotations

import re
import subprocess
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailcall.core.cli import main as cli_main
from mailcall.core.policy.load import compile_text
from mailcall.core.text import display_text
from mailcall.deposit.seal import DEPOSIT_WINDOW
from mailcall.sieve import quoting
from mailcall.sieve.commands import SIEVEC, InstallError, install
from mailcall.sieve.generate import (
    DUPLICATE_HANDLE,
    generate,
    global_script,
    notified_addresses,
    null_script,
    write_scripts,
)
from mailcall.sieve.quoting import sieve_literal, sieve_quote, sieve_unquote
from tests.sieve.support import NO_MAIL_NOTICES, policy_text
from tests.support import EXAMPLE_POLICY, REPO

CONF = """\
plugin {
  sieve_plugins = sieve_extprograms
  sieve_global_extensions = +vnd.dovecot.execute
}
"""
NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


@pytest.fixture
def sieve_conf(tmp_path: Path) -> Path:
    path = tmp_path / "sievec.conf"
    path.write_text(CONF)
    return path


def compile_and_dump(script: Path, conf: Path) -> str:
    result = subprocess.run([SIEVEC, "-c", str(conf), "-d", str(script), "-"],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout


def small_company(**kw) -> str:
    return policy_text(socket=Path("/run/dovecot/sieve-execute/mailcall"), smtp_port=25,
                       file_path=Path("/tmp/n.jsonl"), now=NOW, **kw)


def test_example_policy_scripts_compile(tmp_path: Path, sieve_conf: Path):
    policy = compile_text(EXAMPLE_POLICY.read_text())
    written = write_scripts(generate(policy, now=NOW), tmp_path / "out")
    names = sorted(p.relative_to(tmp_path / "out").as_posix() for p in written)
    assert names == ["mailcall.sieve", "users/emma@stockinox.example.sieve"]
    for path in written:
        compile_and_dump(path, sieve_conf)
    null = tmp_path / "null.sieve"
    null.write_text(null_script(policy))
    dump = compile_and_dump(null, sieve_conf)
    assert "EXECUTE" not in dump
    dump = compile_and_dump(tmp_path / "out/mailcall.sieve", sieve_conf)
    assert dump.count("EXECUTE") == 2  # the deposit proof, the notification
    text = global_script(policy)
    code = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    assert ":output" not in code and "pipe" not in code
    assert 'fileinto :create "Voicemail"' in text and 'fileinto :create "Fax"' in text
    assert 'fileinto :create "Quarantine"' in text


def test_only_proven_deposits_are_filed_or_dropped():
    """Filing and the duplicate test sit inside the branch the bridge's proof opens; the
    context is compared whole (RFC 3458 token), never searched as a substring."""
    policy = compile_text(EXAMPLE_POLICY.read_text())
    code = [line.strip() for line in global_script(policy).splitlines()
            if not line.lstrip().startswith("#")]
    assert not [line for line in code if ":contains" in line]
    assert 'if allof (header :is "Message-Context" ["voice-message", "fax-message"],' in code
    proof = next(n for n, line in enumerate(code) if '"mailcall" ["deposit"] {' in line)
    quarantine = code.index('fileinto :create "Quarantine";')
    for needle in (f'if duplicate :handle "mailcall-deposit" :seconds {DEPOSIT_WINDOW} {{',
                   "discard;", 'fileinto :create "Voicemail";', 'fileinto :create "Fax";'):
        assert proof < code.index(needle) < quarantine, needle
    # Filed by the value the bridge checked, not by any copy of the header; each filing
    # ends the script, and so does the Quarantine.
    assert 'if string :is "${mc_context}" "voice-message" {' in code
    assert not [line for line in code[proof:quarantine] if line.startswith("if header :is")]
    for folder in ("Voicemail", "Fax", "Quarantine"):
        assert code[code.index(f'fileinto :create "{folder}";') + 1] == "stop;", folder


def test_duplicate_window_is_the_token_window_and_its_handle_is_mailcall_s_alone():
    """The generated script remembers a proven deposit exactly as long as the bridge accepts
    its token; no contrib script records (unproven) mail under the generated one's handle."""
    policy = compile_text(EXAMPLE_POLICY.read_text())
    handles = re.findall(r':handle "([^"]*)" :seconds (\d+)', global_script(policy))
    assert handles == [(DUPLICATE_HANDLE, str(DEPOSIT_WINDOW))]
    contrib = sorted((REPO / "contrib").rglob("*.sieve"))
    assert contrib, "contrib/delivery/mailcall-dedupe.sieve is missing"
    for script in contrib:
        others = re.findall(r':handle\s+"([^"]*)"', script.read_text())
        assert DUPLICATE_HANDLE not in others, script


def test_absences_over_are_left_out_and_stale_scripts_removed(tmp_path: Path):
    policy = compile_text(EXAMPLE_POLICY.read_text())
    out = tmp_path / "out"
    write_scripts(generate(policy, now=NOW), out)
    own = out / "users" / "someone@example.net.sieve"
    own.write_text('keep;\n')  # not ours: must survive
    later = datetime(2027, 1, 1, tzinfo=UTC)
    written = write_scripts(generate(policy, now=later), out)
    assert [p.name for p in written] == ["mailcall.sieve"]
    assert not (out / "users" / "emma@stockinox.example.sieve").exists()
    assert own.exists()


def test_generate_takes_its_clock_from_the_caller():
    """A pure function (issue 11): no system clock behind the caller's back. Without a
    moment it refuses; with one, the scripts depend on that moment alone."""
    policy = compile_text(EXAMPLE_POLICY.read_text())
    with pytest.raises(TypeError, match="now"):
        generate(policy)  # type: ignore[call-arg]
    during = [s.relpath for s in generate(policy, now=NOW)]
    assert "users/emma@stockinox.example.sieve" in during
    assert [s.relpath for s in generate(policy, now=datetime(2027, 1, 1, tzinfo=UTC))] == [
        "mailcall.sieve"]


def test_vacation_carries_policy_facts(tmp_path: Path, sieve_conf: Path):
    policy = compile_text(small_company())
    scripts = {s.relpath: s.text for s in generate(policy, now=NOW)}
    text = scripts["users/emma@stockinox.example.sieve"]
    assert ":days 1" in text
    assert ':from "Emma Laurent <emma@stockinox.example>"' in text
    assert ':addresses ["emma@stockinox.example"]' in text
    assert "Bernard Petit <bernard@stockinox.example>" in text
    # The absence message holds a quote and a backslash: escaped, not ending the string.
    assert 'Je suis en congé \\"au soleil\\" \\\\ loin.' in text
    path = tmp_path / "emma.sieve"
    path.write_text(text)
    dump = compile_and_dump(path, sieve_conf)
    assert dump.count("VACATION") == 1
    # Never answered: mailcall's own envelope sender, automatic mail (RFC 3834); tested
    # before any absence, so every absence of the script is guarded.
    guard = ('if anyof (envelope :is "from" "mailcall@stockinox.example",\n'
             '          allof (exists "Auto-Submitted", not header :is "Auto-Submitted" "no")) {')
    assert guard in text and text.index(guard) < text.index("vacation :days")


def test_what_a_vacation_reply_shows_follows_the_one_text_rule():
    """Bidi overrides, zero-width, C1 and DEL characters never reach the reply
    (core.text.display_text), even if a policy carries them: the policy loader refuses
    them today, the generator does not rely on it. The signature separator keeps its space."""
    policy = compile_text(small_company())
    emma = replace(policy.users["emma"], name="Emma \u202eLaurent\u200b\x85\x7f")
    absence = replace(policy.absences["emma"][0],
                      message="Je suis \u2066absente\u2069\x85.\u2028Merci")
    policy = replace(policy, users=MappingProxyType({**policy.users, "emma": emma}),
                     absences=MappingProxyType({**policy.absences, "emma": (absence,)}))
    script = {s.relpath: s.text for s in generate(policy, now=NOW)}[
        "users/emma@stockinox.example.sieve"]
    for char in ("\u202e", "\u200b", "\x85", "\x7f", "\u2066", "\u2069", "\u2028"):
        assert char not in script, repr(char)
    assert ':from "Emma Laurent <emma@stockinox.example>"' in script
    assert "Je suis absente . Merci" in script
    assert "\n-- \nStock Inox\n" in script


def test_only_notified_recipients_are_asked(tmp_path: Path, sieve_conf: Path):
    """The call is guarded by the addresses whose profile notifies mail, nothing else."""
    policy = compile_text(small_company())
    assert notified_addresses(policy) == ["alice@stockinox.example",
                                          "bernard@stockinox.example", "emma@stockinox.example"]
    text = global_script(policy)
    assert ('envelope :is "to" ["alice@stockinox.example", "bernard@stockinox.example", '
            '"emma@stockinox.example"]') in text
    assert "carole" not in text
    # The benchmark's peer does exactly the same tests and header work, minus the calls.
    expected = re.sub(r'execute :input "[^"]*" "mailcall" \["deposit"\]', "false", text)
    expected = expected.replace(', "vnd.dovecot.execute"];', "];")
    assert null_script(policy).split('  set "mc_input"')[0] == expected.split("  if execute")[0]
    # An address Sieve would expand cannot be listed: then every recipient is asked.
    hostile = compile_text(small_company(changes={
        "users": {"alice": {"email": "a${1}@stockinox.example"}}}))
    text = global_script(hostile)
    assert "envelope :is \"to\"" not in text and text.count('"mailcall" ["notify"]') == 1
    # Nobody notified by mail: no call at all, voice and fax still filed.
    quiet = compile_text(small_company(changes=NO_MAIL_NOTICES))
    assert notified_addresses(quiet) == []
    for name, script in (("quiet", global_script(quiet)), ("hostile", text)):
        path = tmp_path / f"{name}.sieve"
        path.write_text(script)
        dump = compile_and_dump(path, sieve_conf)
        assert dump.count("EXECUTE") == (1 if name == "quiet" else 2)
        assert dump.count("FILEINTO") == 3


def test_sieve_quoting_cleans_nothing_and_loses_nothing():
    """Issue 11: no second cleaner beside display_text. The old clean_text silently dropped
    NUL and turned CR into LF; now such text is refused, naming the character."""
    assert not hasattr(quoting, "clean_text")
    for value, char in (("a\x00b", "U+0000"), ("a\rb", "U+000D"), ("x\udce9", "U+DCE9"),
                        ("\x1b[31m", "U+001B")):
        with pytest.raises(ValueError, match=re.escape(char)):
            sieve_quote(value)
    assert sieve_unquote(sieve_quote("tab\there\nline \u202e")) == "tab\there\nline \u202e"


def test_folder_names_that_sieve_would_expand_are_refused():
    with pytest.raises(ValueError, match=r"mail\.voice_folder"):
        sieve_literal("Voice${1}", "mail.voice_folder")
    with pytest.raises(ValueError):
        sieve_literal("a\nb", "mail.fax_folder")
    assert sieve_literal('Bo\\"te', "x") == '"Bo\\\\\\"te"'


@given(st.text(max_size=300))
def test_quote_round_trip(value: str):
    """What is quoted reads back exactly; what Sieve cannot carry is refused, not dropped."""
    if any((ch < " " and ch not in "\t\n") or "\ud800" <= ch <= "\udfff" for ch in value):
        with pytest.raises(ValueError, match="cannot be carried"):
            sieve_quote(value)
        value = display_text(value, lines=True)  # the one rule makes any text carriable
    quoted = sieve_quote(value)
    assert sieve_unquote(quoted) == value
    # Only escaped quotes inside: the string cannot end early.
    inner = quoted[1:-1]
    assert re.search(r'(?<!\\)(\\\\)*"', inner) is None


NASTY = st.lists(
    st.sampled_from([*'ab "\\;{}[]#/*\n$é€\U0001f600', '";keep;"', "discard;", "${1}",
                     "\\\"", "text:\n.\n"]),
    min_size=1, max_size=12,
).map("".join).filter(lambda s: s.strip())


@settings(max_examples=12, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=NASTY.map(lambda s: s.replace("\n", " ")).filter(str.strip),
       message=NASTY)
def test_hostile_user_data_compiles_to_exactly_one_vacation(tmp_path: Path, sieve_conf: Path,
                                                            name: str, message: str):
    """Names and absence texts from a directory cannot add a single Sieve command."""
    policy = compile_text(small_company(changes={"users": {"emma": {"name": name}}},
                                        absence_message=message))
    script = {s.relpath: s.text for s in generate(policy, now=NOW)}[
        "users/emma@stockinox.example.sieve"]
    path = tmp_path / "emma.sieve"
    path.write_text(script)
    dump = compile_and_dump(path, sieve_conf)
    assert dump.count("VACATION") == 1
    assert not re.search(r"^\S+:\s+\d+: (KEEP|DISCARD|STOP|REDIRECT|FILEINTO)", dump, re.M)


def test_cli_generate(tmp_path: Path):
    policy = tmp_path / "policy.toml"
    policy.write_text(small_company())
    assert cli_main(["sieve", "generate", "--policy", str(policy), "--out",
                     str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "mailcall.sieve").exists()


def test_install_refuses_when_sievec_fails_and_changes_nothing(tmp_path: Path):
    bare = tmp_path / "bare.conf"
    bare.write_text("plugin {\n}\n")  # no extprograms: execute is unknown
    policy = compile_text(small_company())
    target = tmp_path / "sieve"
    with pytest.raises(InstallError, match=r"vnd\.dovecot\.execute"):
        install(policy, target, tmp_path / "bin", "/run/x", bare)
    assert not (target / "mailcall.sieve").exists()
    assert not (tmp_path / "bin" / "mailcall").exists()
    assert [p.name for p in target.iterdir()] == ["users"]


def test_install_compiles_in_place_and_installs_the_program(tmp_path: Path, sieve_conf: Path,
                                                            capsys):
    policy_file = tmp_path / "policy.toml"
    policy_file.write_text(small_company())
    target, bin_dir = tmp_path / "sieve", tmp_path / "bin"
    assert cli_main(["sieve", "install", "--policy", str(policy_file), "--dir", str(target),
                     "--bin-dir", str(bin_dir), "--dovecot-config", str(sieve_conf)]) == 0
    out = capsys.readouterr().out
    assert "doveadm reload" in out and f"sieve_before  = {target}/mailcall.sieve" in out
    for name in ("mailcall.sieve", "users/emma@stockinox.example.sieve"):
        script, binary = target / name, (target / name).with_suffix(".svbin")
        assert binary.exists() and binary.stat().st_mtime >= script.stat().st_mtime
    program = bin_dir / "mailcall"
    assert program.stat().st_mode & 0o777 == 0o755
    assert program.read_text().startswith("#!/usr/bin/python3 -I\n")
    assert "/run/dovecot/sieve-execute/mailcall" in program.read_text()


def test_contrib_snippet_is_valid_and_compiles_the_scripts(tmp_path: Path):
    """The admin's 90-mailcall.conf, as shipped: doveconf accepts it, sievec compiles with it."""
    conf = tmp_path / "dovecot.conf"
    conf.write_text(f"protocols = lmtp\n!include {REPO}/contrib/dovecot/90-mailcall.conf\n")
    shown = subprocess.run(["doveconf", "-c", str(conf), "-n"], capture_output=True, text=True,
                           check=False)
    assert shown.returncode == 0, shown.stderr
    assert "sieve_execute_socket_dir = sieve-execute" in shown.stdout
    policy = compile_text(EXAMPLE_POLICY.read_text())
    for path in write_scripts(generate(policy, now=NOW), tmp_path / "out"):
        compile_and_dump(path, conf)
