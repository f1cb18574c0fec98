"""mailcall's built-in plugins.

Each module here is listed in the ``mailcall`` entry-point group of
pyproject.toml and loaded by the plugin manager exactly like a third-party
plugin: nothing registers itself on import.

- ``rules``: the call routing rules of ``mailcall.core.decisions.rules``;
- ``agi``: the FastAGI server and its handlers (route, voicemail, fax, greeting);
- ``deposit``: the durable spool delivering voicemail and fax by LMTP or SMTP;
- ``sieve``: the Dovecot Sieve bridge and the script generator;
- ``channels``: notification channels (SMS gateway, webhook, file).
"""
