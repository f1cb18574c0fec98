"""The message-waiting lamp: voice-message counts read from IMAP, published to Asterisk.

``counts`` (what the mailbox holds), ``ledger`` (latest state per mailbox,
what Asterisk was told), ``publisher`` (MWIUpdate over AMI), ``triggers``
(Dovecot IMAPSieve socket), ``service`` (the ``mailcall serve`` service).
See docs/mwi.md.
"""
