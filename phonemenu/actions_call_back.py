"""Call back (3 then 2): ring the deposit's caller number with the policy's telephony
templates, only when it is plain digits.

The number dialled is the deposit's caller number, checked to be plain digits
(:func:`mailcall.core.policy.telephony.is_plain_number`), then made Dial's argument by
:func:`mailcall.core.policy.telephony.dial_argument`, which refuses anything else:
nothing a caller or a sender wrote reaches Dial otherwise.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from mailcall.agi import prompts
from mailcall.core.decisions.plans import Endpoint
from mailcall.core.policy.numbers import is_extension
from mailcall.core.policy.telephony import dial_argument, is_plain_number

from .actions_common import is_deposit

if TYPE_CHECKING:
    from mailcall.mailstore.summary import MessageSummary

    from .call import MenuCall

log = logging.getLogger("mailcall.phonemenu")


async def call_back(call: MenuCall, folder: str, message: MessageSummary) -> None:
    policy = call.runtime.policy
    # The deposit's caller number, whatever folder it sits in; a mail has none.
    number = message.caller_number if is_deposit(message) else None
    if not number or not is_plain_number(number):
        await call.saying.stream(prompts.NO_NUMBER)
        return
    kind = "extension" if is_extension(policy, number) else "number"
    # "g": when the person called back hangs up, the caller goes on in the menu.
    dial = dial_argument(policy, (Endpoint(kind, number),), policy.telephony.ring_time, "g")
    if dial.text is None:
        await call.saying.stream(prompts.NO_NUMBER)
        return
    log.info("phone menu: %s calls back %s (%s)", call.user.id, number, dial.text)
    status = await call.session.dial(dial.text)
    log.info("phone menu: call back of %s by %s ended: %s", number, call.user.id, status)


__all__ = ["call_back"]
