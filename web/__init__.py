"""The employees' page: log in with the mail password, see the profile, set an absence,
change one's own settings within the profile.

Served by ``mailcall serve`` (plugin ``mailcall.plugins.web``) on loopback, behind
the organisation's reverse proxy (docs/web.md). Server-rendered HTML (aiohttp and
Jinja2, autoescaping on); every change goes through :class:`mailcall.userstore.UserStore`
with origin ``web``, so the page refuses what the CLI and the phone refuse; the
store's reasons are said again in the page's language (:mod:`.refusals`).
"""
