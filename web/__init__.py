"""The employees' page: log in with the mail password, see the profile, set an absence.

Served by ``mailcall serve`` (plugin ``mailcall.plugins.web``) on loopback, behind
the organisation's reverse proxy (docs/web.md). Server-rendered HTML (aiohttp and
Jinja2, autoescaping on); every change goes through :class:`mailcall.userstore.UserStore`
with origin ``web``, so the page refuses what the CLI and the phone refuse, in the
same words.
"""
