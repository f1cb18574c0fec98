"""What res_agi.c writes in the ``agi_*`` block, as data: the names in order, the runs
of Asterisk's own one-line values, the groups a caller may fill between them.

Kept apart from the reader (agi/environment_reader.py), which decides with these
tables where each value of a block begins; this module holds no rule of its own
but the one-step read of a block written exactly in Asterisk's order.
"""

from __future__ import annotations

import re

MAX_ENV_LINES = 256
"""About 25 fixed variables plus at most 128 arguments."""
NAME_OF = re.compile(r"(agi_[a-z0-9_]+):").match
IS_ARG = re.compile(r"agi_arg_[0-9]+").fullmatch

SETUP_ENV_ORDER = (
    "agi_network", "agi_network_script", "agi_request", "agi_channel", "agi_language",
    "agi_type", "agi_uniqueid", "agi_version", "agi_callerid", "agi_calleridname",
    "agi_callingpres", "agi_callingani2", "agi_callington", "agi_callingtns", "agi_dnid",
    "agi_rdnis", "agi_context", "agi_extension", "agi_priority", "agi_enhanced",
    "agi_accountcode", "agi_threadid",
)
"""The variables Asterisk writes, in the order it writes them: ``launch_netscript``
(``agi_network``, ``agi_network_script`` only when the URL has a path) then
``setup_env`` (res_agi.c), which ends with ``agi_arg_1`` .. ``agi_arg_N`` and the
blank line. Unchanged from Asterisk 13 to master."""
RANK = {key: rank for rank, key in enumerate(SETUP_ENV_ORDER)}


RUNS = (
    ("agi_channel", "agi_language", "agi_type", "agi_uniqueid", "agi_version"),
    ("agi_callingpres", "agi_callingani2", "agi_callington", "agi_callingtns"),
    ("agi_context",),
    ("agi_priority", "agi_enhanced"),
    ("agi_threadid",),
)
"""Asterisk's own values, one line each, in runs: between two runs come the values
that may hold line breaks (the groups of :data:`GROUPS`)."""
GROUPS = (
    ("agi_callerid", "agi_calleridname"),
    ("agi_dnid", "agi_rdnis"),
    ("agi_extension",),
    ("agi_accountcode",),
)
LAST_WINS = (False, True, True, True, False)
"""Per run, which of several possible copies is Asterisk's: the last one where the
value before the run is the one a caller fills (a forged copy there comes first),
the first one where the value after it is (the caller's number and name after
agi_version, the dialplan's arguments after agi_threadid)."""
ARG_COPY = re.compile(r"agi_arg_[0-9]+:").match
FORMATS = {key: pattern for keys, pattern in (
    (("agi_callingpres", "agi_callingani2", "agi_callington", "agi_callingtns", "agi_priority",
      "agi_threadid"), r"-?[0-9]+"),
    (("agi_enhanced",), r"[0-9]\.[0-9]"),
) for key in keys}
"""Values Asterisk formats itself (``%d``, ``%ld``, ``"1.0"``): a copy that is not so
formatted is no run of Asterisk's lines."""
ARG_NAMES = [f"agi_arg_{n}" for n in range(1, MAX_ENV_LINES + 1)]
RUN_FORMS = [re.compile("\n".join(
    f"{key}: {FORMATS.get(key, '.*')}" for key in run)
).fullmatch for run in RUNS]
"""Per run, its lines as Asterisk writes them: ``agi_%s: %s``, numbers as numbers."""
IN_RUN = {key: index for index, run in enumerate(RUNS) for key in run}
IN_ORDER = {short: (order, re.compile("\n".join(
    f"{key}: ({FORMATS.get(key, '.*')})" if key in IN_RUN else f"{key}: ?(.*)"
    for key in order)
).fullmatch) for short, order in (
    (False, list(SETUP_ENV_ORDER)),
    (True, [key for key in SETUP_ENV_ORDER if key != "agi_network_script"]))}
"""With and without agi_network_script: the names in order, and their lines with the
lines of every run as :data:`RUN_FORMS` has them."""


def in_order(lines: list[str]) -> dict[str, str] | None:
    """The variables when `lines` are Asterisk's, each name once and in its place, the
    runs as :data:`RUN_FORMS` has them; None otherwise. With every name once there is
    only one cut, so this is what the search (:func:`mailcall.agi.environment_cut.cut`)
    finds, without searching (tests/agi/test_environment_block.py checks that the two
    agree)."""
    if len(lines) < 2:
        return None
    order, form = IN_ORDER[not lines[1].startswith("agi_network_script:")]
    size = len(order)
    match = form("\n".join(lines[:size]))
    if match is None:
        return None
    env = dict(zip(order, match.groups(), strict=True))
    for name, line in zip(ARG_NAMES, lines[size:], strict=False):
        key, colon, value = line.partition(":")
        if key != name or not colon:
            return None
        env[name] = value[1:] if value[:1] == " " else value
    if len(lines) - size > len(ARG_NAMES):
        return None
    return env
