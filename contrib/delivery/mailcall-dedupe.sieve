# mailcall: drop a voicemail or fax that is delivered a second time.
#
# mailcall records "delivered" right after Dovecot's 250 reply, but if mailcall is
# killed after Dovecot stored the message and before that record is written (a few
# milliseconds per delivery), the deposit is sent again after restart, with the
# same Message-ID. This script, run before the user's own (sieve_before), keeps the
# first copy only (RFC 7352 "duplicate", tracked per user; Pigeonhole keeps ids for
# sieve_duplicate_default_period, 14 days by default).
#
# Edit the envelope sender below: it is policy [delivery] sender, or
# mailcall@<organisation domain> when that is empty. Then compile it as root:
#     sievec /etc/dovecot/sieve/mailcall-dedupe.sieve
require ["duplicate", "envelope"];

if allof (envelope :is "from" "mailcall@example.org",
          header :is "Message-Context" ["voice-message", "fax-message"],
          duplicate) {
    discard;
    stop;
}
