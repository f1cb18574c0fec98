"""mailcall's built-in plugins.

Each module here is listed in the ``mailcall`` entry-point group of
pyproject.toml and loaded by the plugin manager exactly like a third-party
plugin: nothing registers itself on import. The list below names every one
(a test compares it with the entry points):

- ``rules``: the call routing rules of ``mailcall.core.decisions.rules``;
- ``agi``: the FastAGI server and its handlers (route, voicemail, fax, greeting);
- ``deposit``: the durable spool delivering voicemail and fax by LMTP or SMTP, the audio
  encoders (wav, opus, mp3) and the fax formats (pdf, tiff);
- ``sieve``: the Dovecot Sieve bridge and the script generator;
- ``channels``: the notification media (sms, webhook, email, file), their channels and the
  notification service;
- ``speech``: eSpeak NG, the built-in speech engine;
- ``greetings``: generated voicemail greetings for users who recorded none;
- ``mwi``: the message-waiting lamp following the voice folder;
- ``phonemenu``: the ``mailbox`` FastAGI script, the mailbox by phone;
- ``userstore``: users' own settings within their profile, ``mailcall user`` and
  ``mailcall absence``.
- ``web``: the employees' page (log in with the mail password, profile, absence, call
  plan, IT's view), served by ``mailcall serve`` when web.toml exists.
"""
