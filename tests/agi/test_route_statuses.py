"""How `route` reads each DIALSTATUS, for the outcomes no recorded trace shows.

The traces show ANSWER, BUSY, NOANSWER and CHANUNAVAIL on the wire (see
test_handlers.py). INVALIDARGS (Dial refused the dial string), DONTCALL and
TORTURE (privacy manager) are documented by app_dial but never recorded, so
the handler's reading of them is checked here on a stand-in session.
"""

from __future__ import annotations

import logging

import pytest

from mailcall.agi.environment import build_environment
from mailcall.agi.handlers.route import handler

from .harness import make_runtime, run


class StandInSession:
    """What `route` uses of AgiSession, answering Dial from a list."""

    def __init__(self, statuses: list[str]) -> None:
        self.env = build_environment({
            "agi_network_script": "route", "agi_arg_1": "201",
            "agi_callerid": "+33611111111", "agi_uniqueid": "1795887768.3",
        })
        self.statuses = list(statuses)
        self.dialled: list[str] = []
        self.status: str | None = None
        self.variables: dict[str, str] = {}

    async def dial(self, options: str) -> str:
        self.dialled.append(options)
        return self.statuses.pop(0)

    async def set_status(self, status: str, **variables: str) -> None:
        self.status = status
        self.variables = variables

    async def set_language(self, language: str) -> None:
        self.language = language


def route(tmp_path, statuses: list[str]) -> StandInSession:
    session = StandInSession(statuses)
    outcome = run(handler(session, make_runtime(tmp_path)))  # type: ignore[arg-type]
    assert outcome == session.status
    return session


def test_invalid_dial_string_moves_on_to_the_next_step_with_a_warning(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="mailcall.agi.route")
    session = route(tmp_path, ["INVALIDARGS", "ANSWER"])
    # Read as "unavailable": the mobile step (after no-answer/unavailable) is rung next.
    assert session.dialled == ["PJSIP/201,20", "PJSIP/+33612345678@trunk,20"]
    assert (session.status, session.variables) == ("ANSWERED", {"result": "ANSWER", "step": "2"})
    (warning,) = [r.getMessage() for r in caplog.records]
    assert "INVALIDARGS" in warning and "[telephony]" in warning and "PJSIP/201,20" in warning


@pytest.mark.parametrize("status", ["DONTCALL", "TORTURE", "CANCEL"])
def test_caller_sent_away_or_gone_ends_the_plan(tmp_path, status):
    session = route(tmp_path, [status])
    assert session.dialled == ["PJSIP/201,20"]
    assert (session.status, session.variables) == ("CALLER_HUNGUP",
                                                   {"result": status, "step": "1"})
