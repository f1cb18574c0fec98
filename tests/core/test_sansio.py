"""The sans-I/O machines share one sentinel and one error family (issue 11 §3); the IMAP
reader and the delivery pipe raise from the same family."""

from __future__ import annotations

import ast
import builtins
import functools
import importlib
import inspect
import tomllib
import types

import pytest

from mailcall.agi import protocol as agi
from mailcall.agi.commands import Command, CommandError
from mailcall.ami import protocol as ami
from mailcall.core import sansio
from mailcall.deposit import mail_protocol as smtp
from mailcall.deposit import pipe_protocol as pipe
from mailcall.imap import protocol as imap
from mailcall.sieve import managesieve_protocol as managesieve
from mailcall.sieve import script_protocol as sieve
from tests.support import REPO


def test_one_need_data_sentinel():
    assert agi.NEED_DATA is ami.NEED_DATA is sieve.NEED_DATA is sansio.NEED_DATA
    assert repr(sansio.NEED_DATA) == "NEED_DATA"


def test_one_error_family():
    assert issubclass(pipe.PipeRemoteError, sansio.RemoteProtocolError)
    for error in (pipe.PipeLocalError, CommandError):
        assert issubclass(error, sansio.LocalProtocolError)
    assert issubclass(CommandError, ValueError)  # what its older callers catch
    # Callers that catch the pipe's own name still catch both kinds.
    assert issubclass(pipe.PipeRemoteError, pipe.PipeProtocolError)
    assert issubclass(pipe.PipeLocalError, pipe.PipeProtocolError)
    assert issubclass(pipe.PipeProtocolError, sansio.ProtocolError)
    assert issubclass(sansio.RemoteProtocolError, sansio.ProtocolError)
    assert issubclass(sansio.LocalProtocolError, sansio.ProtocolError)
    assert not issubclass(sansio.RemoteProtocolError, sansio.LocalProtocolError)


def _drain(conn) -> None:
    while conn.next_event() is not sansio.NEED_DATA:
        pass


def test_a_broken_peer_raises_the_shared_error():
    """Fed garbage, each machine raises what ``except ProtocolError`` catches."""
    agi_conn = agi.Connection()
    agi_conn.receive_data(b"not an environment line\n\n")
    with pytest.raises(sansio.ProtocolError):
        _drain(agi_conn)
    ami_conn = ami.Connection()
    ami_conn.receive_data(b"HTTP/1.1 200 OK\r\n\r\n")
    with pytest.raises(sansio.ProtocolError):
        _drain(ami_conn)
    with pytest.raises(sansio.ProtocolError):
        parser = smtp.ReplyParser()
        parser.receive_data(b"garbage\r\n")
        parser.next_event()
    reader = imap.ResponseReader()
    reader.feed(b"garbage\r\n")
    with pytest.raises(sansio.RemoteProtocolError):
        reader.pop()
    with pytest.raises(sansio.RemoteProtocolError, match="not a JSON message"):
        pipe.PipeEnd(pipe.Side.SERVE).decode(b"\x80garbage")
    with pytest.raises(sansio.LocalProtocolError, match="is sent by the delivery process"):
        pipe.PipeEnd(pipe.Side.SERVE).encode(pipe.Ready())


def test_one_receive_data_rule():
    """Bytes copied (the FastAGI server hands views of one shared buffer), b"" is the end,
    data after the end is a bug of the caller."""
    assert agi.Connection.receive_data is ami.Connection.receive_data \
        is sansio.ByteReceiver.receive_data
    shared = bytearray(b"agi_network: yes\n")
    conn = agi.Connection()
    conn.receive_data(memoryview(shared))
    shared[:] = b"x" * len(shared)  # the server reuses its buffer at once
    assert bytes(conn._buf) == b"agi_network: yes\n"  # a copy, not a view
    conn.receive_data(b"")
    with pytest.raises(RuntimeError):
        conn.receive_data(b"more")


# ------------------------------------------------------- one table per machine (§3)

from tests.agi.support import TRACES as AGI_TRACES  # noqa: E402
from tests.agi.support import load_trace  # noqa: E402
from tests.ami.test_protocol import load as load_ami_trace  # noqa: E402

MACHINES = {
    "agi": (agi.TRANSITIONS, agi.State),
    "ami": (ami.TRANSITIONS, ami.State),
    "sieve": (sieve.TRANSITIONS, sieve._State),
    "smtp": (smtp.TRANSITIONS, smtp.Stage),
    "managesieve": (managesieve.TRANSITIONS, managesieve.State),
}
AGI_ENV = load_trace(AGI_TRACES / "basic.jsonl").env_bytes
"""The environment block of a recorded call (Asterisk 20)."""
AMI_BANNER = load_ami_trace("session")[0]["data"].encode("latin-1")
"""The banner of a recorded AMI session."""


@pytest.mark.parametrize("name", MACHINES)
def test_every_machine_declares_its_table(name):
    table, states = MACHINES[name]
    assert isinstance(table, sansio.Transitions)
    assert table.initial in states and table.error in states
    # No state lives outside the table: each is in it, or is where refusals lead.
    assert set(states) == table.states | {table.error}, name
    assert table.ours <= table.inputs | table.ours


@pytest.mark.parametrize("name", MACHINES)
def test_every_state_is_reachable_and_none_is_a_dead_end(name):
    table, _ = MACHINES[name]
    assert table.reachable() == table.states, name
    for state in table.states:
        ways_out = {dst for (src, _), dst in table.table.items()
                    if src is state and dst is not state}
        assert ways_out or state in table.terminal, f"{name}: {state} is a dead end"
    for state in table.terminal:
        assert not any(src is state for src, _ in table.table), f"{name}: {state} is not terminal"


@pytest.mark.parametrize("name", MACHINES)
def test_a_pair_not_in_the_table_is_refused_by_whose_fault_it_is(name):
    table, states = MACHINES[name]
    for state in states:
        for what in table.inputs | table.ours:
            if table.allows(state, what):
                assert table.step(state, what) in states
                continue
            with pytest.raises(sansio.ProtocolError) as caught:
                table.step(state, what)
            expected = sansio.LocalProtocolError if what in table.ours else \
                sansio.RemoteProtocolError
            assert type(caught.value) is expected, (name, state, what)
            assert state.value in str(caught.value)


def test_fastagi_refuses_what_its_table_does_not_allow():
    conn = agi.Connection()
    conn.receive_data(AGI_ENV)
    assert isinstance(conn.next_event(), agi.EnvironmentReceived)
    conn.send(Command(("ANSWER",)))
    with pytest.raises(sansio.LocalProtocolError) as local:
        conn.send(Command(("ANSWER",)))  # a second command before the reply: our fault
    assert type(local.value) is agi.LocalProtocolError
    conn.receive_data(b"200 result=0\n200 result=0\n")  # one reply, then one for nothing
    assert isinstance(conn.next_event(), agi.Reply)
    with pytest.raises(sansio.RemoteProtocolError, match="unsolicited") as remote:
        conn.next_event()
    assert type(remote.value) is sansio.RemoteProtocolError
    assert conn.state is agi.State.ERROR


def test_fastagi_consults_its_table(monkeypatch):
    """The table is what decides: without (IDLE, hangup), a HANGUP between commands is
    refused; so no second copy of the rules hides in the code."""
    monkeypatch.delitem(agi.TRANSITIONS.table, (agi.State.IDLE, agi.HANGUP))
    conn = agi.Connection()
    conn.receive_data(AGI_ENV + b"HANGUP\n")
    assert isinstance(conn.next_event(), agi.EnvironmentReceived)
    with pytest.raises(sansio.RemoteProtocolError, match="hangup is not allowed in state idle"):
        conn.next_event()


def test_ami_refuses_what_its_table_does_not_allow(monkeypatch):
    conn = ami.Connection()
    with pytest.raises(sansio.LocalProtocolError) as local:
        conn.send_action("Ping")  # before the banner
    assert type(local.value) is sansio.LocalProtocolError
    conn.receive_data(AMI_BANNER + b"Message: neither\r\n\r\n")
    assert conn.next_event() == ami.Banner("13.0.0")
    with pytest.raises(sansio.RemoteProtocolError, match="neither Response nor Event") as rem:
        conn.next_event()
    assert type(rem.value) is sansio.RemoteProtocolError
    monkeypatch.delitem(ami.TRANSITIONS.table, (ami.State.OPEN, ami.EVENT))
    conn = ami.Connection()
    conn.receive_data(AMI_BANNER + b"Event: FullyBooted\r\n\r\n")
    conn.next_event()
    with pytest.raises(sansio.RemoteProtocolError, match="event is not allowed in state open"):
        conn.next_event()


def test_script_socket_refuses_what_its_table_does_not_allow(monkeypatch):
    conn = sieve.ScriptServerConnection()
    conn.receive_data(b"VERSION\tscript\t4\t0\nenv_USER=a\nbogus\n")
    assert isinstance(conn.next_event(), sieve.Version)
    with pytest.raises(sansio.RemoteProtocolError, match="expected env_NAME") as caught:
        conn.next_event()
    assert type(caught.value) is sansio.RemoteProtocolError
    conn = sieve.ScriptServerConnection()
    conn.receive_data(sieve.serialize_request(["a"])[:-1])  # without the closing blank line
    conn.receive_data(b"")
    _drain_until_error = [conn.next_event() for _ in range(2)]  # Version, Environment
    assert isinstance(_drain_until_error[1], sieve.Environment)
    with pytest.raises(sansio.RemoteProtocolError, match="in the middle of the header"):
        conn.next_event()
    monkeypatch.delitem(sieve.TRANSITIONS.table, (sieve._State.ENV, sieve._ENV_LINE))
    conn = sieve.ScriptServerConnection()
    conn.receive_data(sieve.serialize_request(["a"], {"USER": "a"}))
    assert isinstance(conn.next_event(), sieve.Version)
    with pytest.raises(sansio.RemoteProtocolError, match="expected env_NAME"):
        conn.next_event()


def test_mail_client_refuses_what_its_table_does_not_allow(monkeypatch):
    def tx() -> smtp.MailTransaction:
        return smtp.MailTransaction(lmtp=True, hostname="h", sender="s@x.test",
                                    recipients=["a@x.test"], message=b"x")

    with pytest.raises(sansio.RemoteProtocolError) as caught:
        _replies = smtp.ReplyParser()
        _replies.receive_data(b"garbage\r\n")
        _replies.next_event()
    assert type(caught.value) is sansio.RemoteProtocolError
    # The transaction turns a refusal into one temporary failure per recipient.
    events = tx().receive_data(b"220 ready\r\n250 before LHLO was sent\r\n")
    assert [(e.stage, e.permanent) for e in events] == [("protocol", False)]
    assert "answered before mailcall sent its command" in events[0].reason
    monkeypatch.delitem(smtp.TRANSITIONS.table, (smtp.Stage.GREETING, smtp.POSITIVE))
    with pytest.raises(sansio.RemoteProtocolError, match="positive is not allowed in state"):
        tx().receive_data(b"220 ready\r\n")


# ------------------------------------------------- one naming rule for errors (§3)

NAMED_MACHINES = {"agi/protocol.py", "ami/protocol.py", "deposit/mail_protocol.py",
                  "sieve/script_protocol.py", "sieve/managesieve_protocol.py"}
PARSERS = {"imap/protocol.py", "deposit/pipe_protocol.py"}
"""Parsers without I/O that are no byte-fed machine but raise from the family (core/sansio)."""
OWN_CLASSES = {"deposit/pipe_protocol.py": {"PipeProtocolError", "PipeRemoteError",
                                            "PipeLocalError"},
               "agi/commands.py": {"CommandError"}}
"""The error classes a machine keeps because callers tell them apart by name (core/sansio)."""


def _package_dirs() -> dict[str, str]:
    """folder -> package, as pyproject.toml maps them."""
    setuptools = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    return {folder: package for package, folder in setuptools["package-dir"].items()}


def _is_machine(tree: ast.AST) -> bool:
    """Fed bytes and giving events (``next_event``), or writing a transition table."""
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and node.name == "next_event":
            return True
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                and node.func.id == "Transitions"):
            return True
    return False


SHARED_CODECS = {"deposit/typed_json.py"}
"""Imported by a machine but no part of it: the typed JSON codec is the spool record's too,
and pipe_protocol.py turns its InvalidValue into a PipeRemoteError or a PipeLocalError."""
IO_MODULES = {"asyncio", "socket", "ssl", "selectors", "subprocess", "imaplib", "smtplib"}
"""A module importing one of these, or with an ``async def``, does I/O: it is no machine,
and may raise its own errors (a client's AmiError) around the machine it drives."""


def _imports(tree: ast.AST, package: str, parts: tuple[str, ...]) -> set[str]:
    """The dotted names `tree` imports, relative imports resolved from `package`/`parts`."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                here = [package, *parts[:-1]]
                base = here[: len(here) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def _does_io(tree: ast.AST, imported: set[str]) -> bool:
    return (any(name.split(".")[0] in IO_MODULES for name in imported)
            or any(isinstance(node, ast.AsyncFunctionDef) for node in ast.walk(tree)))


@functools.cache
def machine_modules() -> dict[str, tuple[object, ast.AST]]:
    """Every sans-I/O machine module of the package, plus PARSERS: each module without I/O
    that holds a machine (``next_event``, a table) or imports core/sansio, and each module
    of the same package that one of those imports (the FastAGI environment-block reader is
    agi/protocol.py's), so a parser split out of a machine is held to the same rule."""
    modules = {}  # dotted name -> (rel, parts, package, tree, imported)
    for folder, package in _package_dirs().items():
        for path in sorted((REPO / folder).rglob("*.py")):
            rel = path.relative_to(REPO).as_posix()
            parts = path.relative_to(REPO / folder).with_suffix("").parts
            tree = ast.parse(path.read_text(), rel)
            name = ".".join((package, *parts))
            if parts[-1] == "__init__":
                name = ".".join((package, *parts[:-1]))
            modules[name] = (rel, package, tree, _imports(tree, package, parts))
    machines = {name for name, (rel, _, tree, imported) in modules.items()
                if rel != "core/sansio.py" and (rel in PARSERS or (
                    not _does_io(tree, imported)
                    and (_is_machine(tree) or "mailcall.core.sansio" in imported)))}
    for name in list(machines):
        package = modules[name][1]
        machines.update(other for other in modules[name][3]
                        if other in modules and modules[other][1] == package
                        and other != "mailcall.core.sansio"
                        and modules[other][0] not in SHARED_CODECS
                        and not _does_io(modules[other][2], modules[other][3]))
    return {modules[name][0]: (importlib.import_module(name), modules[name][2])
            for name in sorted(machines)}


def _resolve(module: object, node: ast.expr) -> object:
    """What a name or dotted name in a raise means in `module` (None: not a plain name)."""
    if isinstance(node, ast.Call):
        node = node.func
    names: list[str] = []
    while isinstance(node, ast.Attribute):
        names.insert(0, node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None  # self._broken(...), a variable: no class written here
    value = getattr(module, node.id, getattr(builtins, node.id, None))
    for name in names:
        value = getattr(value, name, None)
    return value


INSIDE = {("deposit/pipe_protocol.py", "_no_constant"),
          ("agi/environment.py", "__setattr__"), ("agi/environment.py", "__delattr__")}
"""Helpers whose error never leaves the machine: json's parse_constant hook raises the
ValueError json.loads expects, which decode() turns into a PipeRemoteError; the read-only
environment record raises the AttributeError Python's data model expects of a setter."""


def raised_classes(module: object, tree: ast.AST, rel: str = "") -> list[tuple[type, int]]:
    inside = {node for f in ast.walk(tree) if isinstance(f, ast.FunctionDef)
              and (rel, f.name) in INSIDE for node in ast.walk(f)}
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Raise) and node.exc is not None and node not in inside:
            value = _resolve(module, node.exc)
            if inspect.isclass(value) and issubclass(value, BaseException):
                out.append((value, node.lineno))
    return out


def test_the_machines_are_found():
    assert NAMED_MACHINES | PARSERS <= set(machine_modules())
    # A parser a machine imports from its own package is held to the same rule: the
    # environment block reader once raised an EnvironmentBlockError(Exception) of its own.
    assert {"agi/environment_reader.py", "agi/environment_cut.py", "agi/replies.py",
            "agi/commands.py"} <= set(machine_modules())
    assert not {"ami/client.py", "sieve/bridge_server.py", "mwi/imap.py"} & set(machine_modules())


def test_an_error_class_of_a_parser_s_own_is_flagged():
    """What the old environment_reader.py held: a class outside the family, raised."""
    source = ("class EnvironmentBlockError(Exception):\n    pass\n\n\n"
              "def read():\n    raise EnvironmentBlockError('a line longer than 8 bytes')\n")
    tree = ast.parse(source)
    module = types.SimpleNamespace(EnvironmentBlockError=type("EnvironmentBlockError",
                                                              (Exception,), {}))
    assert [(error.__name__, line) for error, line in raised_classes(module, tree)] == [
        ("EnvironmentBlockError", 6)]
    assert not issubclass(module.EnvironmentBlockError, sansio.ProtocolError)
    from mailcall.agi import environment_reader
    assert not hasattr(environment_reader, "EnvironmentBlockError")


@pytest.mark.parametrize("rel", sorted(machine_modules()))
def test_every_error_a_machine_raises_is_the_peers_or_ours(rel):
    """Each ``raise`` of a machine module is a RemoteProtocolError or a LocalProtocolError
    (no ValueError for our own misuse, no exception outside core/sansio's family)."""
    module, tree = machine_modules()[rel]
    wrong = [f"{rel}:{line}: {error.__name__}" for error, line in raised_classes(module, tree, rel)
             if not issubclass(error, (sansio.RemoteProtocolError, sansio.LocalProtocolError))]
    assert not wrong, wrong


@pytest.mark.parametrize("rel", sorted(machine_modules()))
def test_one_naming_rule(rel):
    """core/sansio's classes under their own names: no alias, and no class of a machine's
    own unless callers tell it apart by name (OWN_CLASSES), deriving from the family."""
    module, tree = machine_modules()[rel]
    for name, value in vars(module).items():
        if inspect.isclass(value) and issubclass(value, sansio.ProtocolError):
            assert name == value.__name__, f"{rel}: {name} is an alias of {value.__name__}"
    own = {node.name for node in ast.walk(tree) if isinstance(node, ast.ClassDef)
           and issubclass(getattr(module, node.name), BaseException)}
    assert own == OWN_CLASSES.get(rel, set()), rel
    for name in own:
        assert issubclass(getattr(module, name), sansio.ProtocolError), (rel, name)


def test_misuse_of_each_machine_is_a_local_protocol_error():
    """What this side must never write, refused alike by every machine."""
    conn = agi.Connection()
    conn.receive_data(AGI_ENV)
    conn.next_event()
    with pytest.raises(sansio.LocalProtocolError):
        conn.send(Command(("ANSWER\r\nHANGUP",)))  # would inject a second command
    with pytest.raises(sansio.LocalProtocolError):
        ami.Connection(action_prefix="x\r\nAction: Originate")
    with pytest.raises(sansio.LocalProtocolError):
        sieve.serialize_request(["notify", ""])
    with pytest.raises(sansio.LocalProtocolError):
        smtp.MailTransaction(lmtp=True, hostname="h", sender="s@x.test",
                             recipients=["a@x.test>\r\nRCPT TO:<evil@x"], message=b"")
    with pytest.raises(sansio.LocalProtocolError):
        managesieve.ManageSieveClient().send("LISTSCRIPTS\r\nLOGOUT")
