"""The compiled policy: an immutable snapshot that every adapter reads.

A snapshot is built once by :func:`mailcall.core.policy.compile.compile_policy` and then
shared by every call and every mail without locks: nothing in it can change.
Reloading builds a new snapshot and swaps one reference, so a decision never
sees half of an old policy and half of a new one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time
from types import MappingProxyType
from typing import Any, Literal
from zoneinfo import ZoneInfo

GreetingKind = Literal["unavailable", "busy", "absence"]
GREETING_KINDS: tuple[GreetingKind, ...] = ("unavailable", "busy", "absence")
# Notification media, audio and fax formats are not listed here: the installed plugins
# declare them (mailcall.core.contracts), and the compiler checks a policy against that.
Hours = Literal["always", "office", "outside-office"]
HOURS: tuple[str, ...] = ("always", "office", "outside-office")
RerouteCondition = Literal["busy", "no-answer", "unavailable", "off-hours", "absent"]
REROUTE_CONDITIONS: tuple[str, ...] = ("busy", "no-answer", "unavailable", "off-hours", "absent")
Strategy = Literal["all", "in-order"]


@dataclass(frozen=True, slots=True)
class Organisation:
    name: str
    domain: str
    timezone: ZoneInfo
    language: str
    country: str
    schedule: str | None
    """Default schedule for users and groups that name none (None: always open)."""
    admins: tuple[str, ...] = ()
    """User ids who see IT's view of the web page (every user's settings, the audit log)."""


@dataclass(frozen=True, slots=True)
class Telephony:
    """How policy targets become Asterisk dial strings."""

    endpoint: str = "PJSIP/{extension}"
    external: str = "PJSIP/{number}@trunk"
    ring_time: int = 20
    max_steps: int = 8


@dataclass(frozen=True, slots=True)
class Schedule:
    name: str
    week: tuple[tuple[tuple[time, time], ...], ...]
    """Seven entries, Monday first; each a sorted tuple of (start, end) ranges."""
    holidays: frozenset[date]

    def is_open(self, local: datetime) -> bool:
        if local.date() in self.holidays:
            return False
        now = local.time()
        return any(start <= now < end for start, end in self.week[local.weekday()])


@dataclass(frozen=True, slots=True)
class VoicemailFeature:
    enabled: bool = True
    formats: tuple[str, ...] = ("wav",)
    """Audio formats offered (names from the installed encoders); the first is the one used."""
    max_seconds: int = 180


@dataclass(frozen=True, slots=True)
class FaxFeature:
    enabled: bool = True
    formats: tuple[str, ...] = ("pdf",)
    """Attachments made from a received fax ("pdf", "tiff": names the plugins declare)."""


@dataclass(frozen=True, slots=True)
class NotifyFeature:
    mail: bool = False
    """Notify the mobile of new e-mail."""
    voicemail: bool = False
    """Notify the mobile of new voicemail and fax."""
    media: tuple[str, ...] = ("sms",)
    """Media the user may choose from; the user's preferred medium must be one of them."""
    hours: str = "always"
    senders: tuple[str, ...] = ()
    """Only notify for mail from these addresses or @domains (empty: anyone)."""


@dataclass(frozen=True, slots=True)
class RerouteFeature:
    enabled: bool = False
    on: tuple[str, ...] = REROUTE_CONDITIONS
    mobile: bool = False
    """Ring the user's mobile after the desk phone, before the backups."""


@dataclass(frozen=True, slots=True)
class Features:
    voicemail: VoicemailFeature = VoicemailFeature()
    fax: FaxFeature = FaxFeature()
    notify: NotifyFeature = NotifyFeature()
    reroute: RerouteFeature = RerouteFeature()
    greetings: tuple[str, ...] = ("unavailable",)
    """Kinds of personal greeting the user may record."""
    mailbox_by_phone: bool = False
    auto_reply: bool = True
    transcription: bool = False
    ring_time: int = 20


@dataclass(frozen=True, slots=True)
class Profile:
    name: str
    description: str
    extends: str | None
    features: Features
    locked: frozenset[str]
    """Features users may not refine (collective needs come first)."""


@dataclass(frozen=True, slots=True)
class User:
    id: str
    name: str
    email: str
    profile: str
    features: Features
    """Effective features: the profile's, refined by the user's overrides."""
    extensions: tuple[str, ...] = ()
    numbers: tuple[str, ...] = ()
    """Direct numbers, E.164."""
    mobile: str | None = None
    preferred_medium: str | None = None
    notify_address: str = ""
    """Where notifications go by the user's medium (preferred, else the profile's first),
    resolved when the policy is compiled from what that medium declares; "" when the
    profile notifies nothing."""
    backups: tuple[str, ...] = ()
    """User ids or "@group" references, in order."""
    pin_hash: str | None = field(default=None, repr=False)
    language: str = "en"
    schedule: str | None = None


@dataclass(frozen=True, slots=True)
class Group:
    id: str
    name: str
    members: tuple[str, ...]
    strategy: str = "all"
    ring_time: int = 20
    overflow: str | None = None
    """A user id or "@group" to try when nobody answers."""
    mailbox: str | None = None
    """The user whose mailbox takes the group's voicemail (None: no voicemail)."""
    extensions: tuple[str, ...] = ()
    numbers: tuple[str, ...] = ()
    schedule: str | None = None


@dataclass(frozen=True, slots=True)
class Absence:
    user: str
    start: datetime
    until: datetime
    backup: str | None = None
    message: str | None = None

    def covers(self, moment: datetime) -> bool:
        return self.start <= moment < self.until


@dataclass(frozen=True, slots=True)
class MailSettings:
    voice_folder: str = "Voicemail"
    fax_folder: str = "Fax"
    auto_reply_days: int = 1


@dataclass(frozen=True, slots=True)
class ServerSettings:
    agi_listen: str = "127.0.0.1:4573"
    spool_dir: str = "/var/spool/mailcall"
    greetings_dir: str = "/var/lib/mailcall/greetings"
    sieve_socket: str | None = None
    """UNIX socket path Dovecot's sieve_execute_socket_dir points at (None: not served)."""
    max_agi_sessions: int = 2000
    agi_line_limit: int = 2048
    """Longest AGI command line Asterisk reads whole: 8192 from 20.16, 21.11 and 22.6 on."""


@dataclass(frozen=True, slots=True)
class DeliverySettings:
    method: str = "lmtp"
    """"lmtp" (straight into Dovecot) or "smtp" (to the organisation's MTA)."""
    address: str = "unix:/run/dovecot/lmtp"
    """"unix:/path" or "host:port"."""
    sender: str = ""
    """Envelope sender of generated messages as written (empty: mailcall@<domain>); read
    :attr:`Policy.sender`, which applies that default."""


@dataclass(frozen=True, slots=True)
class ChannelSettings:
    """``[channels]``: what every medium shares, and each medium's own ``[channels.<medium>]``.

    The settings of a medium are the ones its plugin declares
    (:class:`mailcall.core.contracts.Medium`), already validated.
    """

    rate_limit_per_hour: int = 20
    relay: str = "127.0.0.1:25"
    """SMTP host:port that takes mail for the outside (SMS gateways, e-mail notices): the
    local MTA by default. Never [delivery], the route into the local mailboxes."""
    media: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))
    """medium -> its settings (a read-only mapping of key -> value)."""

    def of(self, medium: str) -> Mapping[str, Any]:
        """The validated settings of `medium` (declared defaults included; empty if none)."""
        return self.media.get(medium, _NO_SETTINGS)


_NO_SETTINGS: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Policy:
    """One compiled, validated policy. Build it with ``compile_policy``."""

    organisation: Organisation
    telephony: Telephony
    mail: MailSettings
    server: ServerSettings
    delivery: DeliverySettings
    channels: ChannelSettings
    schedules: MappingProxyType  # str -> Schedule
    profiles: MappingProxyType  # str -> Profile
    users: MappingProxyType  # str -> User
    groups: MappingProxyType  # str -> Group
    absences: MappingProxyType  # user id -> tuple[Absence, ...] sorted by start
    by_extension: MappingProxyType  # "201" -> "alice" or "@reception"
    by_number: MappingProxyType  # E.164 -> "alice" or "@reception"
    by_email: MappingProxyType  # lower-cased address -> "alice"
    by_mobile: MappingProxyType  # E.164 -> "alice"
    sources: tuple[str, ...] = ()
    """The files this snapshot was compiled from, in merge order."""

    @property
    def sender(self) -> str:
        """Envelope sender and From of every mail mailcall writes: ``[delivery] sender``,
        else ``mailcall@<organisation domain>`` (the one place that default is written)."""
        return self.delivery.sender or f"mailcall@{self.organisation.domain}"

    @property
    def admins(self) -> tuple[str, ...]:
        """``[organisation] admins``: the users who see IT's view (checked to be users)."""
        return self.organisation.admins

    def absence_at(self, user_id: str, moment: datetime) -> Absence | None:
        for absence in self.absences.get(user_id, ()):
            if absence.covers(moment):
                return absence
        return None

    def schedule_for(self, name: str | None) -> Schedule | None:
        name = name or self.organisation.schedule
        return self.schedules.get(name) if name else None

    def is_open(self, schedule_name: str | None, moment: datetime) -> bool:
        schedule = self.schedule_for(schedule_name)
        if schedule is None:
            return True
        return schedule.is_open(moment.astimezone(self.organisation.timezone))

    def local(self, moment: datetime) -> datetime:
        """`moment` in the organisation's time zone (naive times are taken as local)."""
        if moment.tzinfo is None:
            return moment.replace(tzinfo=self.organisation.timezone)
        return moment.astimezone(self.organisation.timezone)
