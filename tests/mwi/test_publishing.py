"""Publishing lamps when Asterisk is not a happy peer: it boots late, refuses MWIUpdate, or
a mailbox id cannot be written on AMI. A real Asterisk where its behaviour can be provoked,
the recorded AMI bytes (tests/ami/traces/session.jsonl) where only timing differs."""

from __future__ import annotations

import asyncio
import logging
import shutil
import time

from mailcall.ami.client import AmiClient
from mailcall.mwi.counts import Counts
from mailcall.mwi.ledger import Ledger
from mailcall.mwi.publisher import Publisher
from mailcall.mwi.service import BOOT_WAIT, MwiService
from tests.ami.test_client import BANNER, SECRET, Peer, read_action
from tests.mwi.live import MAILBOX, start_asterisk
from tests.support.asterisk import free_udp_port

FULLY_BOOTED = (b"Event: FullyBooted\r\nPrivilege: system,all\r\nUptime: 3\r\n"
                b"LastReload: 3\r\nStatus: Fully Booted\r\n\r\n")


def secret_file(folder, secret: str):
    path = folder / "ami.secret"
    path.write_text(secret + "\n")
    path.chmod(0o600)
    return path


class BootingAsterisk:
    """Accepts the login at once but says FullyBooted only `boot` seconds later, as an
    Asterisk does when mailcall logs in while its modules still load."""

    def __init__(self, boot: float) -> None:
        self.boot = boot
        self.updates: list[tuple[float, str]] = []
        self.booted_at: float | None = None

    async def __call__(self, peer, reader, writer) -> None:
        writer.write(BANNER)
        loop = asyncio.get_running_loop()

        async def boot() -> None:
            await asyncio.sleep(self.boot)
            self.booted_at = loop.time()
            writer.write(FULLY_BOOTED)

        booting = None
        try:
            while True:
                act = await read_action(peer, reader)
                aid = act["ActionID"]
                if act["Action"] == "Login":
                    writer.write(f"Response: Success\r\nActionID: {aid}\r\nMessage: "
                                 f"Authentication accepted\r\n\r\n".encode())
                    booting = asyncio.create_task(boot())
                else:
                    if act["Action"] == "MWIUpdate":
                        self.updates.append((loop.time(), act["Mailbox"]))
                    writer.write(f"Response: Success\r\nActionID: {aid}\r\n\r\n".encode())
                await writer.drain()
        finally:
            if booting is not None:
                booting.cancel()


async def test_a_fully_booted_long_after_the_login_republishes_every_lamp(mail, tmp_path):
    """Logged in while Asterisk was still starting: what was sent then may be lost with the
    modules that were not loaded yet, so the late FullyBooted sends every lamp again."""
    secret = secret_file(tmp_path, SECRET)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, mail.deposit, "alice", "call-1")
    peer_script = BootingAsterisk(boot=BOOT_WAIT + 1.0)
    async with Peer(peer_script) as peer:
        service = MwiService(mail.runtime, mail.settings(
            ami_port=peer.port, ami_secret_file=str(secret), trigger_socket=None))
        await service.start()
        try:
            assert await service.ami.wait_connected(5)
            await service.reconciled()
            deadline = time.monotonic() + 5
            while not any(m == "alice@mailcall" for _, m in peer_script.updates):
                assert time.monotonic() < deadline, peer_script.updates
                await asyncio.sleep(0.02)
            deadline = time.monotonic() + BOOT_WAIT + 5
            while peer_script.booted_at is None or not any(
                    t > peer_script.booted_at and m == "alice@mailcall"
                    for t, m in peer_script.updates):
                assert time.monotonic() < deadline, (peer_script.booted_at,
                                                     peer_script.updates)
                await asyncio.sleep(0.02)
        finally:
            await service.stop(1.0)


async def test_a_refused_mwiupdate_is_sent_again_until_asterisk_takes_it(mail, tmp_path,
                                                                          caplog):
    """res_mwi_external_ami not loaded: Asterisk refuses MWIUpdate. Said once, with what to
    do; and once the admin loads the module, the lamp arrives with nothing else happening
    (it used to wait for the next change, reconnect or periodic reconcile)."""
    caplog.set_level(logging.INFO, logger="mailcall.mwi")
    ast = start_asterisk(free_udp_port())
    secret = secret_file(tmp_path, ast.ami_secret)
    try:
        out = ast.rx("module unload res_mwi_external_ami.so").stdout
        assert "Unloaded res_mwi_external_ami.so" in out, out
        service = MwiService(mail.runtime, mail.settings(
            ami_port=ast.ami_port, ami_secret_file=str(secret), trigger_socket=None))
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, mail.deposit, "alice", "call-1")
        await service.start()
        try:
            assert await service.ami.wait_connected(10)
            await service.reconciled()
            deadline = time.monotonic() + 10
            while "refused MWIUpdate" not in caplog.text:
                assert time.monotonic() < deadline, caplog.text
                await asyncio.sleep(0.05)
            assert service.ledger.published(MAILBOX) is None
            await asyncio.sleep(2.5)  # a few retries, each refused: still one ERROR line
            refused = [r for r in caplog.records if "refused MWIUpdate" in r.getMessage()]
            assert len(refused) == 1, [r.getMessage() for r in refused]
            assert "res_mwi_external_ami" in refused[0].getMessage()

            ast.rx("module load res_mwi_external_ami.so")
            deadline = time.monotonic() + 70  # the backoff is at most a minute
            while service.ledger.published(MAILBOX) != Counts(1, 0):
                assert time.monotonic() < deadline, "the refused lamp was never sent again"
                await asyncio.sleep(0.1)
            reply = await service.ami.action("MWIGet", {"Mailbox": MAILBOX})
            rows = [(m.get("NewMessages"), m.get("OldMessages")) for m in reply.events
                    if m.get("Event") == "MWIGet"]
            assert rows == [("1", "0")], reply
            assert "accepts MWIUpdate again" in caplog.text
        finally:
            await service.stop(1.0)
    finally:
        ast.stop()
        shutil.rmtree(ast.root, ignore_errors=True)


async def test_a_mailbox_id_ami_cannot_carry_is_logged_once_and_not_sent(tmp_path, caplog):
    """A mailbox id with a line break (a user id or extension the template turned into
    something AMI cannot carry) is refused before the wire: one ERROR naming the key to
    check, nothing sent, and the publisher keeps serving the other lamps."""
    caplog.set_level(logging.INFO, logger="mailcall.mwi")
    secret = secret_file(tmp_path, SECRET)
    from tests.ami.test_client import asterisk_like

    async with Peer(asterisk_like) as peer:
        ami = AmiClient("127.0.0.1", peer.port, "mailcall", secret, backoff_min=0.05,
                        backoff_max=0.2)
        ledger = Ledger(min_interval=0.0)
        publisher = Publisher(ami, ledger)
        await ami.start()
        await publisher.start()
        try:
            assert await ami.wait_connected(5)
            ledger.observe("bad\r\nAction: Originate@mailcall", Counts(1, 0))
            ledger.observe("good@mailcall", Counts(2, 0))
            publisher.wake()
            deadline = time.monotonic() + 5
            while ledger.published("good@mailcall") != Counts(2, 0):
                assert time.monotonic() < deadline
                await asyncio.sleep(0.02)
            ledger.observe("bad\r\nAction: Originate@mailcall", Counts(2, 0))
            publisher.wake()
            await asyncio.sleep(0.2)
        finally:
            await publisher.stop()
            await ami.stop()
    assert b"Originate" not in bytes(peer.received)
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "[lamp] mailbox" in errors[0].getMessage(), errors


async def test_the_first_login_republishes_without_a_second_reconcile(mail, tmp_path):
    """At start the service reconciles once; the first AMI login (FullyBooted in the same
    read, as tests/ami/traces/session.jsonl recorded it) resends what is known and does
    not start a second pass over every mailbox (twice the start-up cost on large sites)."""
    from tests.ami.test_client import asterisk_like

    secret = secret_file(tmp_path, SECRET)
    async with Peer(asterisk_like) as peer:
        service = MwiService(mail.runtime, mail.settings(
            ami_port=peer.port, ami_secret_file=str(secret), trigger_socket=None))
        await service.start()
        try:
            assert await service.ami.wait_connected(5)
            await service.reconciled()
            await asyncio.sleep(0.3)
            await service.reconciled()
            assert service.reconciles == 1
        finally:
            await service.stop(1.0)
