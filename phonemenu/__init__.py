"""Mailbox by phone: employees call in, hear their voicemail and e-mail, and act on them.

``keymap`` holds the one key table, ``machine`` the sans-I/O menu, ``entry``
the login (PIN, cross-call lockout), ``words`` what is said per message,
``handler`` the FastAGI script ``mailbox`` that drives it all, ``actions``
reply, forward, call back and greetings. docs/phone-menu.md is the guide.
"""
