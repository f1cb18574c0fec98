"""What plugins hand to the core: the typed contracts of the hooks in hookspecs.py.

The core never probes a plugin's objects with ``hasattr``: a hook's return
value is one of the types below, and the host checks it with ``isinstance``
(a dataclass, or a ``runtime_checkable`` Protocol) where it collects it
(``mailcall.core.host.collect.collected``), so
a plugin that breaks its contract is named at start-up, not in the middle of
a call. The declarations (``Medium``) are plain data, and encoders and fax
converters say their format: the policy compiler reads them to validate
``[channels.<medium>]``, per-user address keys and the formats a profile
names, with no running server.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

if TYPE_CHECKING:
    from mailcall.core.decisions.deposits import Deposit
    from mailcall.core.decisions.plans import Notify
    from mailcall.core.decisions.routing import CallContext

SettingKind = Literal["text", "url", "path", "number", "integer", "boolean"]


@dataclass(frozen=True, slots=True)
class Setting:
    """One key a medium adds to the policy (under ``[channels.<medium>]``, or per user).

    The core checks the value's ``kind`` with the same messages as every other
    policy key (file, line, key): "text" (a one-line string), "url" (http:// or
    https://), "path" (absolute), "number" and "integer" (within ``low``..``high``),
    "boolean". ``validate`` then sees the converted value and returns what is
    wrong and what to do, or None; the core adds where.
    """

    name: str
    kind: SettingKind = "text"
    default: Any = None
    """The value when the policy says nothing (None: not set)."""
    required: bool = False
    """Must be set once a user's medium is this one (``mailcall check`` says so)."""
    low: float | None = None
    high: float | None = None
    validate: Callable[[Any], str | None] | None = None
    help: str = ""
    """One line for docs and ``mailcall check`` messages: what the key is for."""


@dataclass(frozen=True, slots=True)
class UserField:
    """The address is a field every user has: ``mobile`` (E.164) or ``email``."""

    name: Literal["mobile", "email"]


@dataclass(frozen=True, slots=True)
class FromSetting:
    """One address for every user: a setting of the medium (a webhook URL, a file)."""

    name: str


@dataclass(frozen=True, slots=True)
class UserKey:
    """A key of ``[users.ID]`` the medium adds, holding that user's address.

    Its name must not be one of the core's user keys; by convention it starts
    with the medium's name (``chat_handle``).
    """

    setting: Setting


Address = UserField | FromSetting | UserKey


@dataclass(frozen=True, slots=True)
class Medium:
    """A notification medium as the policy sees it (hook ``mailcall_notification_media``).

    ``name`` is what profiles grant in ``notify.media`` and users pick as
    ``preferred_medium``; ``settings`` are the keys of ``[channels.<name>]``
    (also accepted flat, as ``[channels] <name>_<key>``); ``address`` says where
    a user's address comes from; ``checks`` (optional) sees the medium's
    validated settings and returns problems as "key: what is wrong, what to do"
    (the key relative to ``[channels.<name>]``). Sending, and which failures
    are retried, belong to the channel object of ``mailcall_notification_channels``.
    """

    name: str
    address: Address
    settings: tuple[Setting, ...] = ()
    checks: Callable[[Mapping[str, Any]], list[str]] | None = None
    description: str = ""


@dataclass(frozen=True, slots=True)
class Offered:
    """Everything the installed plugins add to the policy's vocabulary.

    Built once per load from the plugin manager (``mailcall.core.policy.load``);
    the compiler checks names against it, so a medium or a format nobody offers
    is a policy error at check time, never a failure during a deposit.
    """

    media: Mapping[str, Medium] = field(default_factory=dict)
    audio_formats: tuple[str, ...] = ()
    fax_formats: tuple[str, ...] = ()


@runtime_checkable
class Channel(Protocol):
    """Sends notifications of one medium (hook ``mailcall_notification_channels``).

    ``send`` raises on failure (``mailcall.notifications.channel``); it may return a
    short receipt (what the peer answered), which the success log line quotes.
    """

    medium: str

    async def send(self, notification: Notify, subject: str, text: str) -> str | None: ...


@runtime_checkable
class RetryingChannel(Channel, Protocol):
    """A channel that names the exception types worth a retry from the durable queue.

    A channel that is not one has ``DEFAULT_TEMPORARY`` of
    ``mailcall.notifications.channel`` retried.
    """

    temporary_errors: tuple[type[BaseException], ...]


MAX_VOICE_COUNT = 1_000_000
"""More voice messages than anyone keeps: a larger number is a misread, not a count."""


@dataclass(frozen=True, slots=True)
class VoiceCounts:
    """A user's voice folder as last read: new (unheard) and old (heard) messages.

    Hook ``mailcall_voice_counts``. Never negative and never a guess: a count
    exists only when the folder was read, so "unknown" cannot be shown as 0 or -1
    (Asterisk's app_voicemail_imap sent "Voice-Message: -1/0" while its IMAP server
    was down, asterisk/asterisk issue #64).
    """

    new: int
    old: int

    def __post_init__(self) -> None:
        for value in (self.new, self.old):
            if type(value) is not int or not 0 <= value <= MAX_VOICE_COUNT:
                raise ValueError(f"not a message count: {value!r}")

    @property
    def waiting(self) -> bool:
        return self.new > 0

    def to_dict(self) -> dict[str, int]:
        return {"new": self.new, "old": self.old}


@runtime_checkable
class AudioEncoder(Protocol):
    """One audio format voicemail is attached in (hook ``mailcall_audio_encoders``).

    ``encode`` blocks and is run off the event loop, in another process: the
    encoder must pickle.
    """

    format: str
    mime_type: str
    extension: str

    def encode(self, wav_path: str, out_path: str) -> None: ...


@runtime_checkable
class FaxConverter(Protocol):
    """One attachment a received fax is mailed as (hook ``mailcall_fax_converters``).

    ``convert`` reads the TIFF-F file Asterisk's ReceiveFAX wrote (CCITT G3 or G4,
    one page per IFD, non-square pixels; already checked readable, with at least
    one page) and writes the attachment at ``out_path``. It raises on failure:
    the fax is then mailed as a notice with the reason. It blocks and is run in
    another process: the converter must pickle.
    """

    format: str
    mime_type: str
    extension: str

    def convert(self, tiff_path: str, out_path: str) -> None: ...


@runtime_checkable
class CallRule(Protocol):
    """One step of call routing (hook ``mailcall_call_rules``)."""

    name: str
    description: str
    order: int

    def apply(self, ctx: CallContext) -> None: ...


@runtime_checkable
class Service(Protocol):
    """A long-running part of ``mailcall serve`` (hook ``mailcall_services``)."""

    name: str

    def start(self) -> Awaitable[None]: ...

    def stop(self, grace: float) -> Awaitable[None]: ...


@runtime_checkable
class Depositor(Protocol):
    """Who accepts voicemail and fax deposits (hook ``mailcall_depositor``), used by
    ``runtime.deposit``; the built-in one is the durable spool
    (``mailcall.deposit.spool_depositor.SpoolDepositor``)."""

    def accept(self, message: Deposit) -> Awaitable[str]:
        """Make `message` durable (on disk, fsynced) and return its spool id."""
        ...
