"""Every hook a mailcall plugin can implement, documented where it is declared.

Built-in plugins (``mailcall.plugins.*``) implement these exactly like
third-party ones and are found the same way, through the ``mailcall``
entry-point group. Plugins decorate their functions with
``mailcall.core.hookspecs.hookimpl``.

Hooks that return a list are called on every plugin and their results are
concatenated (pluggy's default); hooks marked *firstresult* stop at the first
plugin that returns something other than None. What a hook returns is one of
the typed contracts of ``mailcall.core.contracts`` (a dataclass or a Protocol),
checked with ``isinstance`` where the host collects it, in one place
(``mailcall.core.host.collect.collected``), which names a plugin that breaks it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    import argparse

    from mailcall.core.contracts import (
        AudioEncoder,
        CallRule,
        Channel,
        Depositor,
        FaxConverter,
        Medium,
        Service,
        VoiceCounts,
    )
    from mailcall.core.host.runtime import Runtime
    from mailcall.core.policy.model import Policy
    from mailcall.speech.engine import GreetingEngine

PROJECT = "mailcall"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def mailcall_directory_users(organisation: Mapping[str, Any]) -> Iterable[Mapping[str, Any]] | None:
    """Where users come from, besides the policy file (LDAP, HR exports, ...).

    Called once each time a policy is loaded, before validation, with the
    policy's raw ``[organisation]`` table. Return user tables (mappings) of the
    same shape as ``[users.ID]`` in the policy, each with an extra ``"id"`` key,
    or None; the keys media add (``UserKey``) are allowed as in the file.
    They are validated like users written in the file; an id that the file
    already defines is an error, so a directory can never silently replace a
    user the administrator wrote by hand.
    """


@hookspec
def mailcall_call_rules() -> list[CallRule]:
    """Routing rules that build a call plan, one rule per object.

    Called once when the plugin manager is created. Return a list of
    ``mailcall.core.contracts.CallRule``: ``name: str``, ``description: str``, ``order: int`` and
    ``apply(ctx: mailcall.core.decisions.routing.CallContext) -> None``; ``apply`` adds
    steps and explanation lines to the context, or marks it finished.
    Rules run in ascending ``order``; the built-in ones leave gaps (100, 200, ...
    with ``known-state`` at 450; ``mailcall rules`` lists them) so a plugin can
    slot an extra routing step between two of them.
    """


@hookspec
def mailcall_notification_media() -> list[Medium]:
    """What a notification medium adds to the policy: its name, settings and user address.

    Called each time a policy is loaded or checked (no server needed). Return a
    list of ``mailcall.core.contracts.Medium``: ``name`` (what profiles grant in
    ``notify.media`` and users pick as ``preferred_medium``), ``settings`` (the
    ``Setting`` keys of ``[channels.<name>]``, also accepted flat as ``[channels]
    <name>_<key>``, each with a kind the core checks, a default and an optional
    ``validate``), ``address`` (where a user's address comes from: ``UserField``
    "mobile" or "email", ``FromSetting`` one of those settings, or ``UserKey`` a
    key of ``[users.ID]`` the medium adds) and optional ``checks`` over the
    validated settings. The core validates and routes from this alone: a medium
    no plugin declares is refused by ``mailcall check``, with file, key and line.
    The sending half is ``mailcall_notification_channels``, matched by name.
    """


@hookspec
def mailcall_notification_channels(runtime: Runtime) -> list[Channel]:
    """Ways to reach a mobile: SMS gateway, webhook, file, ...

    Called once when ``mailcall serve`` starts, with the ``runtime`` whose
    ``[channels]`` settings configure them. Return a list of
    ``mailcall.core.contracts.Channel``: ``medium: str`` (a name declared by
    ``mailcall_notification_media``) and ``async send(notification:
    mailcall.core.decisions.plans.Notify, subject: str, text: str) -> str | None``
    (an optional receipt, quoted in the log), which raises on failure; it reads
    its settings with ``runtime.policy.channels.of(medium)`` at each send, and
    ``notification.address`` is the user's address the medium declared. A
    ``RetryingChannel`` names in ``temporary_errors`` the exception types retried
    from the durable queue with backoff (default: ``TemporaryChannelError``,
    ``TimeoutError``, ``ConnectionError``); anything else is permanent and
    reported once. A channel object that is not a ``Channel`` stops ``serve``.
    """


@hookspec
def mailcall_audio_encoders() -> list[AudioEncoder]:
    """Audio formats voicemail can be attached in.

    Called once per process, and each time a policy is loaded or checked. Return
    a list of ``mailcall.core.contracts.AudioEncoder``: ``format: str`` ("opus",
    "mp3", ...), ``mime_type: str``, ``extension: str`` and a blocking
    ``encode(wav_path: str, out_path: str) -> None`` (run off the event loop, in
    another process: the encoder must pickle). The formats offered are the ones a
    profile may name in ``voicemail.formats``; any other is refused by
    ``mailcall check``.
    """


@hookspec
def mailcall_fax_converters() -> list[FaxConverter]:
    """Attachments a received fax can be mailed as ("pdf", "tiff").

    Called once per process, and each time a policy is loaded or checked. Return
    a list of ``mailcall.core.contracts.FaxConverter``: ``format: str``,
    ``mime_type: str``, ``extension: str`` and a blocking ``convert(tiff_path:
    str, out_path: str) -> None`` that writes the attachment from the TIFF-F
    file ReceiveFAX wrote, and raises when it cannot (the fax is then mailed as
    a notice with the reason). It is run in another process: the converter must
    pickle. The formats offered are the ones a profile may name in
    ``fax.formats``; any other is refused by ``mailcall check``. For a format
    offered twice, the plugin called first (registered last) wins.
    """


@hookspec
def mailcall_speech_engines() -> list[GreetingEngine]:
    """Text-to-speech engines: generated greetings and mail read aloud.

    Called once per process. Return a list of ``mailcall.speech.GreetingEngine``
    (Protocols in :mod:`mailcall.speech.engine`, checked with ``isinstance`` by
    ``mailcall.speech.engines_from`` where they are collected; anything else is
    a TypeError naming its type):

    - ``GreetingEngine``: ``name: str`` and ``synthesize(text: str, language:
      str, out_path: str) -> bool``, which writes an 8 kHz mono WAV greeting
      (False when the language has no voice or the engine failed; the engine
      logs why).
    - ``StreamingEngine`` (a ``GreetingEngine`` that also reads mail aloud, one
      sentence at a time): ``sample_rate: int``, ``resolve_language(language:
      str) -> str | None`` ("fr-CA" → the voice language used, None if none)
      and ``synthesize_sentence(sentence: str, language: str) ->
      numpy.ndarray`` (mono int16 at ``sample_rate``; markup and phoneme syntax
      are read as text; raises ``mailcall.speech.SpeechFailed``). mailcall
      calls it from one worker thread per engine, never concurrently, and does
      the text preparation, resampling and ``.sln`` files itself. The mailbox
      menu uses the first such engine in plugin order (eSpeak NG built in).

    All methods block and are run off the event loop. There is no speech-to-text
    contract: nothing in mailcall transcribes voicemail yet.
    """


@hookspec
def mailcall_after_decision(kind: str, request: Any, decision: Any) -> None:
    """An event after each decision, for audit logs, metrics or CTI pop-ups.

    Called after every decision the core makes: ``kind`` is "call", "mail" or
    "deposit", ``request`` the request dataclass and ``decision`` the plan
    returned. Implementations must be fast and should not raise: an exception
    is logged and swallowed, and the other plugins still run, so that a broken
    audit plugin never blocks a call. Return None (any value is ignored).
    """


@hookspec
def mailcall_agi_handlers(runtime: Runtime) -> Mapping[str, Callable[..., Awaitable[Any]]]:
    """FastAGI scripts: ``agi://host/NAME`` is dispatched to ``handlers[NAME]``.

    Called once when the AGI server starts. Return a mapping of script name to
    ``async handler(session: mailcall.agi.session.AgiSession, runtime) -> str``
    returning the outcome written to the session's log line. A name is 1 to 64
    letters, digits, ``.``, ``_`` or ``-``, starting with a letter or digit (what
    a dialplan URL reaches); a name offered by two plugins, a name outside that
    rule or a handler that is not callable is a start-up error naming the plugin.
    """


@hookspec(firstresult=True)
def mailcall_depositor(runtime: Runtime) -> Depositor | None:
    """Who accepts voicemail and fax deposits (the durable spool by default).

    *firstresult*. Called once when ``mailcall serve`` starts; the object
    returned is used by ``runtime.deposit(message)``. Return None to leave the
    choice to another plugin. The built-in spool is the default
    (``@hookimpl(trylast=True)``): another plugin's depositor replaces it; two
    plugins offering one, or an object that is not a ``Depositor``, stop
    ``serve`` naming the plugins.
    """


@hookspec
def mailcall_deposit_delivered(runtime: Runtime, deposit: Any, plan: Any, message_id: str) -> None:
    """A voicemail or fax deposit is in the mailbox: the mail server accepted it.

    Called in ``mailcall serve``'s main process once per delivered deposit, with the
    shared ``runtime``, the ``deposit`` (``mailcall.core.decisions.deposits.VoiceMessage`` or
    ``FaxMessage``), its ``plan`` (``mailcall.core.decisions.plans.DepositPlan``: ``mailbox`` is the
    user id, ``kind`` "voice" or "fax") and the ``message_id`` it was delivered with. The
    message-waiting
    lamp recounts that user's voice folder. Must be fast and should not raise (an
    exception is logged, and the delivery stays delivered). Return value ignored.
    """


@hookspec
def mailcall_mailbox_changed(runtime: Runtime, user: str, folder: str, reason: str) -> None:
    """mailcall itself changed a user's mailbox: a message heard, saved, deleted or filed.

    Called in ``mailcall serve``'s main process by the part that made the change (the
    phone menu marking a voicemail ``\\Seen`` or moving it to Trash), with the shared
    ``runtime``, the ``user`` id, the IMAP ``folder`` that changed and a short ``reason``
    for the log ("heard", "deleted", ...). Changes made by mail clients arrive through
    Dovecot instead (docs/mwi.md); this hook spares the lamp a round trip for mailcall's
    own. Must be fast and should not raise (an exception is logged and the change
    stands). Return value ignored.
    """


@hookspec
def mailcall_user_settings_changed(runtime: Runtime, user_id: str, fields: frozenset[str]) -> None:
    """A user's own settings changed in the user store (an absence, a medium, a backup order, ...).

    Called in ``mailcall serve``'s main process, on the event loop, by the
    ``userstore`` plugin's service with the shared ``runtime``, once per user
    (``user_id``, a policy user id) whose stored settings changed since its last
    look (every 0.1 s; whoever wrote them: ``mailcall user`` or ``mailcall
    absence``, the web page, the phone menu), and once for every user who has
    some when the store is first read. ``fields`` names what changed:
    the keys of ``mailcall.userstore.fields.FIELDS`` and ``"absences"`` (empty
    when a change wrote the values already held). Decisions already obey the
    change through ``runtime.user_overlay``; this hook is for what is made
    ahead of time: the greetings plugin speaks that user's greetings again and
    the Sieve plugin rewrites their auto-reply script. Must be fast (schedule
    the work) and should not raise: an exception is logged and the other
    plugins still hear of the change. Return value ignored.
    """


@hookspec(firstresult=True)
def mailcall_voice_counts(runtime: Runtime, user: str) -> Awaitable[VoiceCounts | None] | None:
    """How many voice messages ``user`` has, new (unheard) and old, as the lamp counts them.

    *firstresult*. Called by whoever tells a user how many messages wait: the
    notification of a voicemail ("3 new voice messages") and the phone menu's
    greeting, with the shared ``runtime``. Return an awaitable (the caller is on
    the event loop and bounds the wait itself) that resolves, once any recount
    already under way for that user is done, to a
    ``mailcall.core.contracts.VoiceCounts``, or to None when the folder could not
    be read lately: the caller then says nothing about counts rather than a
    stale or made-up number. Return None (not an awaitable) when this plugin
    does not count voice folders. The built-in ``mwi`` plugin answers while the
    lamp service runs (docs/mwi.md). The reader (``core/host/voice_counts.py``)
    asks each plugin in call order: one that raises or returns something that
    cannot be awaited is logged by name and the next one is asked.
    """


@hookspec
def mailcall_services(runtime: Runtime) -> list[Service]:
    """Long-running parts of ``mailcall serve``: AGI server, Sieve bridge, spool worker.

    Called once when ``mailcall serve`` starts, after ``mailcall_depositor``,
    with the ``runtime`` the services share. Return a list of
    ``mailcall.core.contracts.Service``: ``name: str``, ``async start() -> None``
    (returns once listening) and ``async stop(grace: float) -> None`` (lets
    work in progress finish for at most ``grace`` seconds). ``start`` raises
    ``mailcall.core.errors.ServiceStartError`` (or ``OSError``) with a message
    for the administrator when it cannot start: ``serve`` prints it, stops the
    services already started and exits 1.
    """


@hookspec
def mailcall_register_commands(subparsers: argparse._SubParsersAction) -> None:
    """Extra ``mailcall`` sub-commands (``spool``, ``sieve``, ...).

    Called once when the command line is parsed. Add a parser with
    ``subparsers.add_parser(...)`` and ``set_defaults(handler=func)``, where
    ``func(args: argparse.Namespace, policy_loader) -> int`` returns the exit
    status and ``policy_loader()`` loads the policy named by ``--policy``.
    Return value ignored.
    """


@hookspec
def mailcall_policy_checks(policy: Policy) -> list[str]:
    """Extra validation of a compiled policy that needs a plugin's knowledge.

    Called by ``mailcall check`` and on every load by ``mailcall serve``.
    Return a list of problems as "key.path: what is wrong, what to do", or an
    empty list.
    """
