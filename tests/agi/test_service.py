"""Collecting the AGI scripts plugins offer (agi/service.py)."""

from __future__ import annotations

from mailcall.agi.service import collect_handlers
from mailcall.core.hookspecs import hookimpl

from .harness import make_runtime


async def _hello(session, runtime):
    return "OK"


class NoArguments:
    """pluggy lets an implementation leave out hook arguments it does not need."""

    @hookimpl
    def mailcall_agi_handlers(self):
        return {"hello": _hello}


class WithRuntime:
    def __init__(self) -> None:
        self.seen = None

    @hookimpl
    def mailcall_agi_handlers(self, runtime):
        self.seen = runtime
        return {"hello-again": _hello}


def test_implementations_get_only_the_arguments_they_declare(tmp_path):
    runtime = make_runtime(tmp_path)
    with_runtime = WithRuntime()
    runtime.pm.register(NoArguments(), name="no-arguments")
    runtime.pm.register(with_runtime, name="with-runtime")
    handlers = collect_handlers(runtime)
    assert handlers["hello"] is _hello and handlers["hello-again"] is _hello
    assert with_runtime.seen is runtime
    assert {"route", "voicemail", "fax", "greeting"} <= set(handlers)  # the built-ins too
