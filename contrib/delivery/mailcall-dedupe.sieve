# mailcall: set aside a voicemail or fax that is delivered a second time.
#
# For sites that do NOT install mailcall's generated Sieve scripts (those prove each
# deposit by its Mailcall-Deposit token and need nothing else: docs/dovecot.md).
#
# mailcall records "delivered" right after Dovecot's 250 reply, but if mailcall is
# killed after Dovecot stored the message and before that record is written (a few
# milliseconds per delivery), the deposit is sent again after restart, with the
# same Message-ID. This script, run before the user's own (sieve_before), keeps the
# first copy where it belongs and files later ones into "Quarantine" (RFC 7352
# "duplicate", tracked per user for sieve_duplicate_default_period, 12 h by default).
#
# It never discards: without mailcall's bridge nothing here can tell a deposit from a
# forgery (envelope sender, Message-Context and Message-ID can all be forged), so a
# forged mail that takes a voicemail's Message-ID first can at worst push the real one
# into Quarantine, never make it disappear. Its duplicate handle is its own
# ("mailcall-deposit-unproven"): mailcall's generated script records only proven
# deposits under "mailcall-deposit", and mail this one records must never count there.
#
# Edit the envelope sender below: it is policy [delivery] sender, or
# mailcall@<organisation domain> when that is empty. Then compile it as root:
#     sievec /etc/dovecot/sieve/mailcall-dedupe.sieve
require ["duplicate", "envelope", "fileinto", "mailbox"];

if allof (envelope :is "from" "mailcall@example.org",
          header :is "Message-Context" ["voice-message", "fax-message"],
          duplicate :handle "mailcall-deposit-unproven") {
    fileinto :create "Quarantine";
}
