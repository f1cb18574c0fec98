"""Whose number is this: the one lookup of an extension or phone number in the policy.

Call routing, voicemail, fax and the greeting menu all turn a number into an
owner, and they must agree: a fax to ``0140000299`` (how a French trunk
delivers a national number) reaches the same person as a call to
``+33140000299``. Numbers are looked up as given (extensions, E.164), then,
when they are not E.164 already, in the E.164 form the organisation's
``country`` gives them (``phonenumbers``, which also reads ``0033...``).
"""

from __future__ import annotations

import phonenumbers

from mailcall.core.policy.model import Policy

MAX_NUMBER = 80
"""Longer than any number Asterisk hands over (AST_MAX_EXTENSION is 80): not parsed."""


def e164(number: str, country: str) -> str | None:
    """`number` in E.164 (``+33140000299``), read as dialled in `country`; None if it is none."""
    if not number or len(number) > MAX_NUMBER:
        return None
    try:
        parsed = phonenumbers.parse(number, country or None)
    except phonenumbers.NumberParseException:
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def find_owner(policy: Policy, number: str | None, *, mobiles: bool = False) -> str | None:
    """The user id or ``@group`` that has `number` as extension or direct number.

    With `mobiles`, users' mobile numbers count too (recognising a user by the
    phone they call from). None when nobody in the policy has it.
    """
    if not number:
        return None
    number = number.strip()
    owner = policy.by_extension.get(number) or policy.by_number.get(number)
    if owner is None and mobiles:
        owner = policy.by_mobile.get(number)
    if owner is None and not number.startswith("+"):
        # National forms ("01 40 00 02 99", "0033...") need the parser; E.164 was looked up as is.
        normal = e164(number, policy.organisation.country)
        if normal is not None:
            owner = policy.by_number.get(normal)
            if owner is None and mobiles:
                owner = policy.by_mobile.get(normal)
    return owner


def is_extension(policy: Policy, number: str) -> bool:
    """Whether `number` is an internal extension (dialled as a desk phone, not the trunk)."""
    return number.strip() in policy.by_extension


def mailbox_of(policy: Policy, owner: str | None) -> str | None:
    """The user whose mailbox takes messages for `owner` (a user id, or a group's ``mailbox``)."""
    if owner is None:
        return None
    if owner.startswith("@"):
        group = policy.groups.get(owner[1:])
        owner = group.mailbox if group is not None else None
    return owner if owner is not None and owner in policy.users else None


def find_mailbox(policy: Policy, wanted: str | None) -> str | None:
    """The mailbox for `wanted`: a user id as it is, else the mailbox of the number's owner."""
    if not wanted:
        return None
    if wanted in policy.users:
        return wanted
    return mailbox_of(policy, find_owner(policy, wanted))


def language_of(policy: Policy, owner: str | None) -> str:
    """The language callers of `owner` hear: the user's, else the organisation's."""
    user = policy.users.get(owner) if owner else None
    return user.language if user is not None else policy.organisation.language
