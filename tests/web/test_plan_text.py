"""The call plan told as a sentence, from the routing core's own plan (no server needed)."""

from __future__ import annotations

from dataclasses import dataclass

from mailcall.core.decisions.plans import CallPlan, CallRequest
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


@dataclass(frozen=True)
class ParkInQueue:
    """A step a third-party rule plugin could add (not one the page knows)."""

    queue: str = "support"


def test_a_step_the_page_does_not_know_is_told_in_plain_words_not_by_its_class():
    policy = compile_text(example_policy_text())
    plan = CallPlan(CallRequest(callee="201", caller="", at=NOW), "alice",
                    (ParkInQueue(),), ())
    en = plan_sentence(policy, plan, "alice", Words("en"), lambda m: f"{m:%Y-%m-%d}", None)
    fr = plan_sentence(policy, plan, "alice", Words("fr"), lambda m: f"{m:%Y-%m-%d}", None)
    assert en == "Calls go to: another step set by IT."
    assert fr == "Les appels vont vers : une autre étape fixée par l'informatique."
    assert "ParkInQueue" not in en + fr
