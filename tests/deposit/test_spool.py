"""The spool alone: durable accept, idempotence, states, crash leftovers, the CLI, the plugin."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mailcall.core.host.runtime import Runtime
from mailcall.deposit.delivery_process import DeliveryProcess
from mailcall.deposit.opus_encoder import LibopusEncoder
from mailcall.deposit.spool import Spool, SpoolError, spool_id, valid_id
from mailcall.deposit.spool_depositor import SpoolDepositor
from mailcall.deposit.spool_record import DeliveryResult
from mailcall.deposit.worker import SpoolWorker
from mailcall.plugins import deposit as plugin
from tests.deposit.support import MEDIA, fax, make_policy, plugin_manager, voice


def test_accept_copies_the_recording_and_writes_the_record(tmp_path):
    spool = Spool(tmp_path / "spool")
    d = voice("1764.1")
    sid = spool.accept(d)
    assert valid_id(sid) and sid == spool_id(d)
    record = spool.load(sid)
    assert record.state == "incoming"
    copy = spool.root / record.payload
    assert copy.read_bytes() == (MEDIA / "voicemail-dtmf-end.wav").read_bytes()
    assert record.deposit == d  # every field, as accepted
    assert list((spool.root / "tmp").iterdir()) == []
    # The same call deposited again (a retried handler) stays one deposit.
    assert spool.accept(d) == sid
    assert spool.ids("incoming") == [sid]


def test_accept_copy_falls_back_when_sendfile_is_refused(tmp_path, monkeypatch):
    # sendfile can be refused (some filesystems): the copy must still be complete, byte for
    # byte, even after a partial kernel copy.
    calls = []

    def refuse_after_a_little(out_fd, in_fd, offset, count):
        calls.append(offset)
        if len(calls) == 1:
            return os.write(out_fd, os.pread(in_fd, 1000, offset))
        raise OSError(22, "Invalid argument")

    monkeypatch.setattr("mailcall.deposit.spool.os.sendfile", refuse_after_a_little)
    spool = Spool(tmp_path / "spool")
    record = spool.load(spool.accept(voice("1764.9")))
    assert len(calls) == 2
    copy = spool.root / record.payload
    assert copy.read_bytes() == (MEDIA / "voicemail-dtmf-end.wav").read_bytes()
    assert list((spool.root / "tmp").iterdir()) == []


def test_simultaneous_accepts_all_land(tmp_path):
    # The depositor serialises accepts on its own thread; 20 at once still all land, intact.
    spool = Spool(tmp_path / "spool")
    depositor = SpoolDepositor(spool)
    woken = []
    depositor.subscribe(woken.append)

    async def burst():
        return await asyncio.gather(*(depositor.accept(voice(f"1764.{n}")) for n in range(20)))

    sids = asyncio.run(burst())
    assert sorted(sids) == spool.ids("incoming") and sorted(woken) == sorted(sids)
    for sid in sids:
        data = (spool.root / spool.load(sid).payload).read_bytes()
        assert data == (MEDIA / "voicemail-dtmf-end.wav").read_bytes()


def test_accept_without_a_file_still_accepts(tmp_path):
    spool = Spool(tmp_path)
    sid = spool.accept(voice("1764.2", recording=str(tmp_path / "gone.wav")))
    record = spool.load(sid)
    assert record.payload is None and "does not exist" in record.note
    sid = spool.accept(fax("1764.3", tiff=""))
    assert spool.load(sid).payload is None


def test_accept_fails_loudly_when_the_spool_is_unwritable(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(SpoolError, match="check free space"):
        Spool(blocker / "spool").accept(voice("1764.4"))


def test_ids_are_path_safe():
    sid = spool_id(voice("../../etc/passwd\r\n"))
    assert "/" not in sid and "\r" not in sid and valid_id(sid)
    assert not valid_id("../x") and not valid_id("voice-x-123")


def test_state_precedence_and_recovery(tmp_path):
    spool = Spool(tmp_path)
    sid = spool.accept(voice("1764.5"))
    record = spool.load(sid)
    # A crash after the rename into delivered/ but before the unlink from incoming/:
    (tmp_path / "delivered").mkdir(exist_ok=True)
    (tmp_path / "delivered" / f"{sid}.json").write_text(
        json.dumps({**record.to_json(), "state": "delivered"})
    )
    (tmp_path / "tmp" / "half-written.tmp").write_text("x")
    (tmp_path / "tmp" / "builddir").mkdir()
    assert spool.state_of(sid) == "delivered"
    assert spool.recover() == 1
    assert spool.ids("incoming") == [] and spool.ids("delivered") == [sid]
    assert list((tmp_path / "tmp").iterdir()) == []


def test_save_moves_between_states(tmp_path):
    spool = Spool(tmp_path)
    sid = spool.accept(voice("1764.6"))
    record = spool.load(sid)
    spool.save(record, "deferred")
    assert spool.state_of(sid) == "deferred" and spool.ids("incoming") == []
    spool.save(record, "parked")
    assert [r.state for r in spool.records()] == ["parked"]


def test_depositor_is_async_and_wakes_the_worker(tmp_path):
    woken = []
    depositor = SpoolDepositor(Spool(tmp_path))
    depositor.subscribe(woken.append)
    sid = asyncio.run(depositor.accept(voice("1764.7")))
    assert woken == [sid]
    assert Spool(tmp_path).state_of(sid) == "incoming"


def cli(args: list[str], policy_loader=lambda: None) -> int:
    parser = argparse.ArgumentParser(prog="mailcall")
    sub = parser.add_subparsers()
    plugin_manager().hook.mailcall_register_commands(subparsers=sub)
    ns = parser.parse_args(args)
    return ns.handler(ns, policy_loader)


def test_spool_commands(tmp_path, capsys):
    spool = Spool(tmp_path)
    a = spool.accept(voice("1764.8"))
    b = spool.accept(voice("1764.9"))
    record = spool.load(b)
    spool.save(dataclasses.replace(
        record, last_error="bob refused: rcpt: 550 5.1.1 User doesn't exist"), "parked")

    assert cli(["spool", "--spool-dir", str(tmp_path), "list"]) == 0
    out = capsys.readouterr().out
    assert a in out and b in out and "parked" in out and "550 5.1.1" in out
    assert cli(["spool", "--spool-dir", str(tmp_path), "list", "--json", "--state", "parked"]) == 0
    assert [r["id"] for r in json.loads(capsys.readouterr().out)] == [b]

    assert cli(["spool", "--spool-dir", str(tmp_path), "retry", "--all-parked"]) == 0
    assert spool.state_of(b) == "incoming"
    assert cli(["spool", "--spool-dir", str(tmp_path), "retry", "../../etc"]) == 1
    assert cli(["spool", "--spool-dir", str(tmp_path), "retry"]) == 2

    old = DeliveryResult("alice@example.test", "delivered", "250 2.0.0 Saved",
                         datetime(2020, 1, 1, tzinfo=UTC))
    spool.save(dataclasses.replace(spool.load(a), results=(old,)), "delivered")
    # A parked deposit is only deleted when named; a delivered one after the age limit.
    assert cli(["spool", "--spool-dir", str(tmp_path), "purge", "--parked", b]) == 1
    assert spool.state_of(b) == "incoming"
    assert cli(["spool", "--spool-dir", str(tmp_path), "purge"]) == 0
    assert spool.state_of(a) is None and not list((tmp_path / "data").glob(f"{a}.*"))
    capsys.readouterr()


def test_spool_dir_comes_from_the_policy(tmp_path, capsys):
    class Server:
        spool_dir = str(tmp_path / "nowhere")

    class Policy:
        server = Server()

    assert cli(["spool", "list"], lambda: Policy()) == 1
    assert "does not exist" in capsys.readouterr().err


def test_plugin_hooks(tmp_path):
    pm = plugin_manager()
    encoders = plugin.encoders_from(pm)
    # The audio encoders by format, and the fax converters beside them (fax:FORMAT).
    assert set(encoders) == {"wav", "opus", "mp3", "fax:pdf", "fax:tiff"}
    assert isinstance(encoders["opus"], LibopusEncoder)
    policy = make_policy("unix:/run/dovecot/lmtp")
    runtime = Runtime(policy, pm, overrides={"spool_dir": str(tmp_path)})
    depositor = pm.hook.mailcall_depositor(runtime=runtime)
    assert isinstance(depositor, SpoolDepositor) and depositor.spool.root == Path(tmp_path)
    runtime.depositor = depositor
    services = [s for batch in pm.hook.mailcall_services(runtime=runtime) for s in batch]
    assert len(services) == 1 and isinstance(services[0], DeliveryProcess)
    assert services[0].name == "deposit-spool"
    assert pm.hook.mailcall_policy_checks(policy=policy) == [[]]


def test_permissions_of_spool_directories(tmp_path):
    spool = Spool(tmp_path / "s")
    spool.ensure()
    mode = os.stat(tmp_path / "s" / "incoming").st_mode & 0o777
    assert mode & 0o007 == 0, oct(mode)  # recordings are not world-readable


def test_spool_folders_are_closed_to_asterisks_group(tmp_path):
    """Sealed messages wait in messages/ with their deposit token: Asterisk's group (which
    may enter the spool root to reach rec/) could otherwise send a copy ahead of them."""
    root = tmp_path / "s"
    (root / "messages").mkdir(parents=True, mode=0o750)  # as older versions made it
    os.chmod(root / "messages", 0o2750)  # noqa: S103 - the old, too open mode
    Spool(root).ensure()
    for name in ("tmp", "data", "messages", "incoming", "deferred", "parked", "delivered"):
        assert os.stat(root / name).st_mode & 0o077 == 0, name


def test_hook_mailcall_audio_encoders(tmp_path):
    """Every format offered encodes the real recording to its length, and can be pickled
    (it crosses into the build processes); a later plugin's encoder wins over ours."""
    import pickle

    import soundfile

    from mailcall.core.hookspecs import hookimpl
    from mailcall.deposit.audio import encoded_duration

    pm = plugin_manager()
    batches = pm.hook.mailcall_audio_encoders()
    offered = [e for batch in batches for e in batch]
    assert {e.format for e in offered} == {"wav", "opus", "mp3"}
    wav = MEDIA / "voicemail-hangup-end.wav"
    for encoder in offered:
        assert encoder.mime_type.startswith("audio/") and encoder.extension
        clone = pickle.loads(pickle.dumps(encoder))  # noqa: S301 - our own bytes
        out = tmp_path / f"x.{clone.extension}"
        clone.encode(str(wav), str(out))
        assert abs(encoded_duration(out) - soundfile.info(wav).duration) <= 0.050

    class SiteOpus:
        format = "opus"
        mime_type = "audio/ogg"
        extension = "opus"

        def encode(self, wav_path, out_path):
            raise NotImplementedError

    class SitePlugin:
        @hookimpl
        def mailcall_audio_encoders(self):
            return [SiteOpus()]

    pm.register(SitePlugin(), name="site")
    assert isinstance(plugin.encoders_from(pm)["opus"], SiteOpus)


def test_corrupt_record_is_set_aside_not_fatal(tmp_path):
    spool = Spool(tmp_path)
    sid = spool.accept(voice("1764.10"))
    good = spool.accept(voice("1764.11"))
    (tmp_path / "incoming" / f"{sid}.json").write_text('{"id": "trunc')
    assert spool.load(sid) is None
    assert (tmp_path / "incoming" / f"{sid}.json.corrupt").exists()
    assert (tmp_path / "data" / f"{sid}.wav").exists()  # the recording is kept
    assert [r.id for r in spool.records()] == [good]


def test_links_and_devices_planted_in_the_recordings_folder_are_refused(tmp_path):
    """Asterisk's group can write rec/: a link there must not mail out a file mailcall reads."""
    secret = tmp_path / "secret.txt"
    secret.write_text("root:x:0:0")
    link = tmp_path / "vm-1764.20.wav"
    link.symlink_to(secret)
    spool = Spool(tmp_path / "spool")
    sid = spool.accept(voice("1764.20", recording=str(link)))
    record = spool.load(sid)
    assert record.payload is None and "symbolic link: refused" in record.note
    assert not list((spool.root / "data").glob(f"{sid}.*"))
    sid = spool.accept(voice("1764.21", recording="/dev/zero"))
    assert "not a regular file: refused" in spool.load(sid).note


def test_one_bad_deferred_record_does_not_stop_deliveries(tmp_path):
    spool = Spool(tmp_path)
    bad = spool.accept(voice("1764.30"))
    record = spool.load(bad)
    spool.save(record, "deferred")
    (tmp_path / "deferred" / f"{bad}.json").write_text(
        json.dumps({**record.to_json(), "next_attempt": "garbage"}))
    (tmp_path / "deferred" / "x.json").write_text("[1, 2]")     # valid JSON, not a record
    good = spool.accept(voice("1764.31"))
    worker = SpoolWorker(spool, planner=None, origin=None, target=None, encoders={})
    due, _ = worker._scan()
    assert due == [good]
    assert (tmp_path / "deferred" / f"{bad}.json.corrupt").exists()


OLD_RECORDS = Path(__file__).parent / "spool-records"


def old_spool(tmp_path: Path) -> Spool:
    """A spool holding the records that mailcall wrote before records were typed."""
    spool = Spool(tmp_path / "spool")
    spool.ensure()
    for path in OLD_RECORDS.glob("*.json"):
        data = json.loads(path.read_text())
        state = data.get("state", "incoming")  # an accepted record has none
        (spool.root / state / f"{data['id']}.json").write_text(path.read_text())
    # Two of the accepted ones were delivered since (same id): as after a crash, the
    # start-up recovery keeps the most advanced state.
    assert spool.recover() == 2
    return spool


@pytest.mark.parametrize("name", sorted(p.name for p in OLD_RECORDS.glob("*.json")))
def test_records_written_before_typing_are_read_and_rewritten_unchanged(tmp_path, name):
    """The upgrade path: every field is read with its type, and saving the record back
    writes the same JSON (an accepted record gains only its "state")."""
    original = json.loads((OLD_RECORDS / name).read_text())
    spool = Spool(tmp_path)
    spool.ensure()
    state = original.get("state", "incoming")
    (tmp_path / state / f"{original['id']}.json").write_text(json.dumps(original))
    record = spool.load(original["id"])
    assert record is not None and record.state == state
    assert record.accepted_at == datetime.fromisoformat(original["accepted_at"])
    assert record.deposit.at.tzinfo is not None and record.attempts == original["attempts"]
    assert [r.reply for r in record.results] == [r["reply"] for r in original["results"]]
    spool.save(record, state)
    assert json.loads((tmp_path / state / f"{record.id}.json").read_text()) \
        == {**original, "state": state}


def test_old_records_are_due_listed_and_retried(tmp_path, capsys):
    spool = old_spool(tmp_path)
    by_name = {r.deposit.call_id: r for r in spool.records()}
    assert type(by_name["1764262000.2"].deposit).__name__ == "FaxMessage"
    assert by_name["1764262000.4"].next_attempt == datetime.fromisoformat(
        "2026-12-01T10:07:52.213076+00:00")
    assert by_name["1764262000.1"].results[0].status == "delivered"
    assert by_name["1764262000.1"].message_id.startswith("<voice.1764262000.1.")
    worker = SpoolWorker(spool, planner=None, origin=None, target=None, encoders={})
    due, _ = worker._scan()  # the deferred one's retry time is long past
    assert due == [by_name["1764262000.4"].id]
    assert cli(["spool", "--spool-dir", str(spool.root), "list", "--state", "parked"]) == 0
    assert "fax-1764262000.2-" in capsys.readouterr().out
    assert cli(["spool", "--spool-dir", str(spool.root), "retry", "--all-parked"]) == 0
    assert spool.load(by_name["1764262000.2"].id).state == "incoming"


@pytest.mark.parametrize(("field", "value", "complaint"), [
    ("attempts", "3", "record.attempts: expected an integer"),
    ("accepted_at", "2026-12-01T10:07:50", "record.accepted_at: '2026-12-01T10:07:50' has no UTC"),
    ("results", [{"recipient": "a@b", "status": "maybe", "reply": "", "at": None}],
     "record.results[0].status: expected one of"),
    ("kind", "sms", "record.kind: expected one of 'voice', 'fax', got 'sms'"),
    ("deposit", {"call_id": "1"}, "deposit: mailbox is missing"),
    ("id", None, "record.id: expected a string"),
])
def test_a_record_with_a_wrong_field_is_set_aside_naming_it(tmp_path, caplog, field, value,
                                                             complaint):
    spool = Spool(tmp_path)
    sid = spool.accept(voice("1764.40"))
    path = tmp_path / "incoming" / f"{sid}.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), field: value}))
    assert spool.load(sid) is None
    assert path.with_suffix(".json.corrupt").exists()
    assert (tmp_path / "data" / f"{sid}.wav").exists()  # the recording is kept
    assert complaint in caplog.text


def test_a_record_round_trips_with_every_field_set(tmp_path):
    spool = Spool(tmp_path)
    record = spool.load(spool.accept(fax("1764.41")))
    at = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)
    full = dataclasses.replace(
        record, note="n", attempts=3, next_attempt=at, last_error="451 4.3.0 later",
        results=(DeliveryResult("alice@example.test", "temporary", "451 4.3.0 later", at),),
        message_id="<fax.x@example.test>", last_attempt_at=at)
    spool.save(full, "deferred")
    assert spool.load(record.id) == dataclasses.replace(full, state="deferred")
