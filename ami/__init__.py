"""Asterisk Manager Interface: a sans-I/O protocol and an asyncio client that stays connected.

``protocol`` (the wire, no I/O; ``messages`` what it emits, ``actions`` what
it sends), ``credentials`` (the secret file),
``client`` (sockets, login, reconnect with backoff, ActionID matching).
The message-waiting lamp (:mod:`mailcall.mwi`) uses it for MWIUpdate; other
features (Originate for call back, e-mail to fax) use the same client.
"""
