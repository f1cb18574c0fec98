"""The deposit path: voicemail and fax from the FastAGI handlers into the mailboxes.

``spool`` makes a deposit durable before the call goes back to the dialplan; ``worker``
builds each message (``voice_message``, ``fax_message``, in a process pool) and
delivers it (``delivery`` over ``mail_protocol``) until it is delivered or
parked. See docs/deposit.md.
"""
