"""At menu level, only count sentences reach the sentence cache (speech/cache.py): no
envelope, no mail body. Real peers: the private Dovecot filled by mailcall's deposit
path and real mail, the real AGI server and espeak-ng, the scripted caller."""

from __future__ import annotations

import pytest

from mailcall.speech.cache import SentenceCache
from tests.phonemenu.phone import Phone, Press
from tests.phonemenu.support import cleanup, plain_mail, start_mailboxes
from tests.phonemenu.test_flags_and_faults import AUDIO, call, flags, pin_then


@pytest.fixture
def boxes(dovecot_factory):
    made = start_mailboxes(dovecot_factory)
    yield made
    cleanup(made)


def test_only_count_sentences_are_kept_after_a_mail_and_a_voicemail(boxes, monkeypatch):
    """A mail read to its end (key 2) and a voicemail's envelope and audio (key 1): the
    caches then hold sentences, and none of them names the sender, the subject, the
    body, the voicemail's caller or number: all are counts."""
    boxes.voicemail("alice", "c1", caller="+33612345678", name="Zebulon Quartz")
    boxes.mail("alice", plain_mail("Budget Kiwi", "The kiwi budget is approved. Thanks.",
                                   sender="Yolande Brick <yolande@example.org>"))
    caches: list[SentenceCache] = []
    real_put = SentenceCache.put

    def noted_put(self, engine, voice, text, spoken):
        if self not in caches:
            caches.append(self)
        return real_put(self, engine, voice, text, spoken)

    monkeypatch.setattr(SentenceCache, "put", noted_put)
    call(boxes, Phone(pin_then(Press("STREAM FILE vm-onefor", key="2"))))
    assert flags(boxes, "INBOX") == [{"\\Seen"}]  # the mail was read to its end
    call(boxes, Phone(pin_then(Press("STREAM FILE vm-onefor", key="1"),
                               Press(AUDIO, key="#"))))
    texts = [key[2] for cache in caches for key in cache._items]
    assert texts, "no count sentence was cached"
    outside = ("Yolande", "Brick", "Budget", "Kiwi", "kiwi", "approved", "Zebulon",
               "Quartz", "612", "34 5", "Thanks")
    assert not [t for t in texts if any(word in t for word in outside)], texts
    assert all(any(c.isdigit() for c in t) or "no " in t.lower() for t in texts), texts
