"""Built-in call routing rules, one per module, in the order they run.

Each rule has a name, a one-line description and one method, ``apply(ctx)``.
They are handed to the plugin manager by ``mailcall.plugins.rules`` like any
third-party rule; ``default_rules()`` gives the same list to code (and tests)
that decide without a plugin manager.
"""

from __future__ import annotations

from mailcall.core.decisions.routing import SortedRules
from mailcall.core.decisions.rules.absence import AbsenceRule
from mailcall.core.decisions.rules.backups import BackupsRule
from mailcall.core.decisions.rules.callee import CalleeRule
from mailcall.core.decisions.rules.group_call import GroupCallRule
from mailcall.core.decisions.rules.hours import OpeningHoursRule
from mailcall.core.decisions.rules.known_state import KnownStateRule
from mailcall.core.decisions.rules.mobile import MobileRule
from mailcall.core.decisions.rules.own_phone import OwnPhoneRule
from mailcall.core.decisions.rules.voicemail import VoicemailRule


def default_rules() -> SortedRules:
    return SortedRules(sorted(
        [CalleeRule(), GroupCallRule(), AbsenceRule(), OpeningHoursRule(), KnownStateRule(),
         OwnPhoneRule(), MobileRule(), BackupsRule(), VoicemailRule()],
        key=lambda rule: rule.order))
