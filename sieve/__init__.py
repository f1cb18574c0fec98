"""The Dovecot side of mailcall: Sieve scripts generated from the policy, and the
script-socket bridge that answers them (its notifications go to ``mailcall.notifications``).

Modules: ``script_protocol`` (Dovecot's script protocol, sans-I/O), ``bridge`` (the socket
server run by ``mailcall serve``),
``generate`` / ``quoting`` (the scripts), ``commands`` (``mailcall sieve ...``) and
``exec_client`` (the stand-alone fallback program for ``sieve_execute_bin_dir``).
See docs/dovecot.md.
"""
