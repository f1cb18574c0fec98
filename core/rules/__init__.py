"""Built-in call routing rules, one per module, in the order they run.

Each rule has a name, a one-line description and one method, ``apply(ctx)``.
They are handed to the plugin manager by ``mailcall.plugins.rules`` like any
third-party rule; ``default_rules()`` gives the same list to code (and tests)
that decide without a plugin manager.
"""

from __future__ import annotations

from ..routing import SortedRules
from .absence import AbsenceRule
from .backups import BackupsRule
from .callee import CalleeRule
from .group_call import GroupCallRule
from .hours import OpeningHoursRule
from .known_state import KnownStateRule
from .mobile import MobileRule
from .own_phone import OwnPhoneRule
from .voicemail import VoicemailRule


def default_rules() -> SortedRules:
    return SortedRules(sorted(
        [CalleeRule(), GroupCallRule(), AbsenceRule(), OpeningHoursRule(), KnownStateRule(),
         OwnPhoneRule(), MobileRule(), BackupsRule(), VoicemailRule()],
        key=lambda rule: rule.order))
