"""The call plan told as a sentence, from the routing core's own plan (no server needed)."""

from __future__ import annotations

from mailcall.core.policy.load import compile_text
from mailcall.web.i18n import Words
from mailcall.web.plan import current_plan, plan_sentence
from tests.support.policies import DROP, example_policy_text
from tests.web.harness import NOW


def sentence(policy, uid: str, lang: str = "en") -> str:
    plan = current_plan(policy, uid, NOW)
    return plan_sentence(policy, plan, uid, Words(lang), lambda m: f"{m:%Y-%m-%d}", None)


def test_a_user_without_a_phone_and_a_profile_without_voicemail():
    policy = compile_text(example_policy_text({
        "users": {"carole": {"extensions": DROP}},
        "profiles": {"office": {"features": {"voicemail": {"enabled": False}}}},
    }))
    assert sentence(policy, "carole") == ("You have no phone extension in the policy: nobody "
                                          "can call you directly.")
    # Carole's colleague at the reception (profile reception extends office).
    assert sentence(policy, "david", "fr") == (
        "Votre poste sonne pendant 20 s. Si vous ne répondez pas dans les 20 s : l'appel se "
        "termine (pas de messagerie).")


def test_a_policy_absence_reads_like_the_users_own():
    policy = compile_text(example_policy_text())
    plan = current_plan(policy, "emma", NOW)  # away until the 13th in the example
    until = policy.absence_at("emma", NOW).until
    text = plan_sentence(policy, plan, "emma", Words("en"), lambda m: f"{m:%Y-%m-%d}", until)
    assert text == ("You are away until 2026-12-13: your phone does not ring. Calls go to: "
                    "Bernard Petit, then Accueil, then voicemail with your absence greeting.")
