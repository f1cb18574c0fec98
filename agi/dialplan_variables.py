"""Every dialplan and channel variable name the AGI side reads or leaves, in one place.

As wazo-agid's ``dialplan_variables.py``: handlers name variables through this
module, never as string literals, and tests/agi/test_dialplan_variables.py checks
that contrib/asterisk/extensions-mailcall.conf uses exactly the ``MAILCALL_*``
names listed here. A rename on one side then cannot silently break the other:
the dialplan would read an empty variable and take its fallback path.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

# ------------------------------------------------ left by mailcall for the dialplan
# [mailcall-settings] clears these before every AGI(), so a value is never a stale one.
STATUS = "MAILCALL_STATUS"
"""What happened (ANSWERED, VOICEMAIL, ...): the conf's header lists every value."""
RESULT = "MAILCALL_RESULT"
"""The last DIALSTATUS of a routed call."""
STEP = "MAILCALL_STEP"
"""1-based index of the last plan step carried out."""
VOICEMAIL = "MAILCALL_VOICEMAIL"
"""The mailbox a message or fax went to."""
GREETING = "MAILCALL_GREETING"
"""The greeting played, or recorded by the greeting handler."""

LEFT: Mapping[str, str] = MappingProxyType({
    "result": RESULT, "step": STEP, "voicemail": VOICEMAIL, "greeting": GREETING,
})
"""The keywords of ``AgiSession.set_status(status, **variables)``, and what each leaves."""

# ------------------------------------- [globals] the administrator sets for the conf
AGI_URL = "MAILCALL_AGI"
"""Where ``mailcall serve`` listens (default agi://127.0.0.1:4573)."""
SPOOL = "MAILCALL_SPOOL"
"""mailcall's spool directory: must be the policy's ``spool_dir``."""
FALLBACK = "MAILCALL_FALLBACK"
"""Dial string prefix for the checked number when mailcall does not answer."""
FALLBACK_FOR = "MAILCALL_FALLBACK_"
"""Prefix: ``MAILCALL_FALLBACK_<NUMBER>`` is the fallback dial string of one number."""
OPERATOR = "MAILCALL_OPERATOR"
"""Fallback dial string for every other number."""

# ----------------------------------------------- the conf's own working variables
URL = "MAILCALL_URL"
SPOOL_DIR = "MAILCALL_SPOOL_DIR"
NUMBER = "MAILCALL_NUMBER"
"""The checked number: digits and one leading +, nothing else of the caller's."""
REST = "MAILCALL_REST"
KIND = "MAILCALL_KIND"
FAXTO = "MAILCALL_FAXTO"
FAXFILE = "MAILCALL_FAXFILE"
"""Where ReceiveFAX writes: ``${MAILCALL_SPOOL_DIR}/rec/fax-${UNIQUEID}.tif``."""
FAXDONE = "MAILCALL_FAXDONE"
FALLBACK_DIAL = "MAILCALL_FALLBACK_DIAL"
FALLBACK_TARGET = "MAILCALL_FALLBACK_TARGET"

DIALPLAN_NAMES = frozenset({
    STATUS, RESULT, STEP, VOICEMAIL, GREETING,
    AGI_URL, SPOOL, FALLBACK, FALLBACK_FOR, OPERATOR,
    URL, SPOOL_DIR, NUMBER, REST, KIND, FAXTO, FAXFILE, FAXDONE, FALLBACK_DIAL, FALLBACK_TARGET,
})
"""Every ``MAILCALL_*`` name the shipped dialplan uses (FALLBACK_FOR as a prefix)."""

# ------------------------------------------ Asterisk's own, read by the handlers
DIALSTATUS = "DIALSTATUS"
"""Set by Dial (app_dial.c)."""
FAXSTATUS = "FAXSTATUS"
FAXERROR = "FAXERROR"
FAXPAGES = "FAXPAGES"
FAXBITRATE = "FAXBITRATE"
FAXRESOLUTION = "FAXRESOLUTION"
REMOTESTATIONID = "REMOTESTATIONID"
"""Set by ReceiveFAX (res_fax.c)."""
FAX_FILE = "FAXFILE"
"""A custom dialplan's name for the received file, read only when no AGI argument gives it."""
LANGUAGE = "CHANNEL(language)"
"""Written through the CHANNEL() function: the language of Asterisk's stock prompts."""


PREFIX = "MAILCALL_"
"""A third-party handler's ``set_status(..., name=value)`` leaves ``MAILCALL_<NAME>``."""


def left(keyword: str) -> str:
    """The variable ``set_status(..., keyword=value)`` leaves: the built-in handlers' from
    :data:`LEFT`, a plugin's own by the same rule (``MAILCALL_`` and the keyword in capitals)."""
    return LEFT.get(keyword) or PREFIX + keyword.upper()
