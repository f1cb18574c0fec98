"""Collecting the AGI scripts plugins offer (agi/service.py)."""

from __future__ import annotations

import asyncio
import os
import stat

from mailcall.agi.service import AgiService, collect_handlers
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


def test_recordings_folder_exists_before_the_first_call(tmp_path):
    """ReceiveFAX writes rec/fax-*.tif before mailcall is asked anything: on a fresh spool
    without rec/, the first fax failed ("TIFF/F file cannot be opened", seen live)."""
    runtime = make_runtime(tmp_path)
    runtime.overrides["agi_listen"] = "127.0.0.1:0"
    rec = tmp_path / "spool" / "rec"
    assert not rec.exists()
    old = os.umask(0o027)  # the shipped unit's UMask
    try:
        service = AgiService(runtime)

        async def start_stop():
            await service.start()
            await service.stop(1.0)

        asyncio.run(start_stop())
    finally:
        os.umask(old)
    assert rec.is_dir()
    assert stat.S_IMODE(rec.stat().st_mode) == 0o2770


def test_serve_reads_agi_listen_by_the_policy_check_s_one_rule():
    """One parser for agi_listen (core/policy/section_keys.parse_listen): serve's own took
    any str.isdigit() port, so "٤٥٧٣" (Arabic-Indic digits) was read as port 4573 and "²"
    raised int()'s error instead of the HOST:PORT message."""
    import pytest

    from mailcall.core.policy.section_keys import parse_listen

    assert parse_listen("127.0.0.1:4573") == ("127.0.0.1", 4573)
    assert parse_listen("127.0.0.1:0") == ("127.0.0.1", 0)  # serve: any free port (tests)
    for odd in ("127.0.0.1:٤٥٧٣", "127.0.0.1:²", "127.0.0.1:", "4573", "[::1]:70000"):
        with pytest.raises(ValueError, match="agi_listen"):
            parse_listen(odd)
