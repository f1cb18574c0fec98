# /var/lib/mailcall/sieve/mailcall-mwi.sieve — run by Dovecot's IMAPSieve when a message
# of the voice folder gets a flag, is copied or moved out, or is appended (91-mailcall-mwi.conf).
# It only tells mailcall "this user's lamp may have changed"; mailcall recounts the folder.
#
# `execute` as a test, without :output: a timeout is then just "false" (with :output it
# crashes Dovecot 2.3.19), and nothing here can change, lose or bounce a message.
# Compile it once as root: sievec /var/lib/mailcall/sieve/mailcall-mwi.sieve
require ["vnd.dovecot.execute"];

if execute "mailcall-mwi" {
  stop;
}
