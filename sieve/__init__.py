"""The Dovecot side of mailcall: Sieve scripts generated from the policy, the script-socket
bridge that answers them, and the notifications it sends.

Modules: ``script_protocol`` (Dovecot's script protocol, sans-I/O), ``bridge`` (the socket
server run by ``mailcall serve``), ``notifications`` (rate limit, de-duplication, dispatch),
``generate`` / ``quoting`` (the scripts), ``commands`` (``mailcall sieve ...``) and
``exec_client`` (the stand-alone fallback program for ``sieve_execute_bin_dir``).
See docs/dovecot.md.
"""
