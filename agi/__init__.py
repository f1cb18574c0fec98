"""FastAGI adapter: Asterisk dialplans route calls, take voicemail and receive faxes.

``protocol`` (sans-I/O state machine), ``commands`` / ``replies`` /
``environment`` (the wire formats), ``session`` (what handlers use),
``server`` (sockets), ``service`` (the ``mailcall serve`` service) and
``handlers`` (route, voicemail, fax, greeting). See docs/asterisk.md.
"""
