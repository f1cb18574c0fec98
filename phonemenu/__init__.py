"""Mailbox by phone: employees call in, hear their voicemail and e-mail, and act on them.

``keymap`` holds the one key table and ``machine`` the sans-I/O menu (every
transition is decided there). ``handler`` is the FastAGI script ``mailbox``:
``entry`` the login (PIN, cross-call lockout), then ``call`` the listening
loop that carries out the machine's effects through ``saying`` (prompts,
phrases, speech), ``counts`` (how many messages), ``presenting`` (one
message: envelope, audio, mail read aloud), ``mailbox`` (the call's IMAP
session), ``actions_reply``, ``actions_forward``, ``actions_call_back`` (with
``actions_common``) and ``options`` (greetings); ``words`` is what is said per
message, ``scratch`` the call's files. docs/phone-menu.md is the guide.
"""
