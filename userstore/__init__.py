"""What each employee refines within their profile: the user store (docs/user-settings.md).

The policy file is IT's ceiling; this package keeps the choices users (or IT on
their behalf) make below it — absences, notification media and hours, ringing
the mobile, the order of backups, the greetings used, the phone PIN — with an
audit log of every change, and computes the effective settings of a user with
the source of each value, without recompiling the policy.
"""

from mailcall.userstore.backend import StoreBackend
from mailcall.userstore.effective import Effective, effective_settings
from mailcall.userstore.errors import (
    RefinementRefused,
    StoreCorrupt,
    StoreError,
    StoreLocked,
    StoreUnavailable,
)
from mailcall.userstore.overlay import StoreOverlay, decision_policy
from mailcall.userstore.refined_view import refined_policy
from mailcall.userstore.service import UserStore

__all__ = [
    "Effective",
    "RefinementRefused",
    "StoreBackend",
    "StoreCorrupt",
    "StoreError",
    "StoreLocked",
    "StoreOverlay",
    "StoreUnavailable",
    "UserStore",
    "decision_policy",
    "effective_settings",
    "refined_policy",
]
