"""Frozen dataclasses to JSON and back, checked against their type hints.

Two things cross a boundary as JSON in the deposit path: the spool's records
(on disk, perhaps written by an older mailcall or edited by hand) and the
messages between ``mailcall serve`` and its delivery process. Both are read
with this one rule, so that a value of the wrong type is refused at once with
the name of the field, instead of becoming an object that fails later, far
from where it was read.

What a hint may be: ``str``, ``int``, ``float``, ``bool``, ``None``, a union
of these or of dataclasses, ``Literal[...]``, ``tuple[X, ...]``, ``datetime``
(ISO 8601 with its UTC offset, never naive), ``tzinfo`` (an IANA zone name) and
frozen dataclasses (an object of their ``init`` fields).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
import types
import typing
from collections.abc import Callable
from datetime import UTC, datetime, tzinfo
from typing import Any, Literal, Union
from zoneinfo import ZoneInfo


class InvalidValue(ValueError):
    """A JSON value that does not fit its type; the message names the field."""


def to_json(value: Any) -> Any:
    """Plain JSON values for `value` (dataclasses, tuples, datetimes, time zones, scalars)."""
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidValue(f"{value!r} has no JSON form")
        return value
    if isinstance(value, datetime):
        if value.utcoffset() is None:
            raise InvalidValue(f"{value!r} has no time zone")
        return value.isoformat()
    if isinstance(value, tzinfo):
        return _zone_name(value)
    if isinstance(value, tuple | list):
        return [to_json(item) for item in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_json(getattr(value, f.name))
                for f in dataclasses.fields(value) if f.init}
    raise InvalidValue(f"{type(value).__name__} has no JSON form here")


def from_json(hint: Any, value: Any, where: str, *, extra_keys: bool = False) -> Any:
    """`value` (parsed JSON) as an instance of `hint`, or :class:`InvalidValue`.

    `where` names the value in errors ("deposit.at"). `extra_keys`: keys a
    dataclass does not know are ignored rather than refused (records written
    by a version that had one more field).
    """
    return _reader(hint)(value, where, extra_keys)


def from_json_fields(cls: type, value: Any, where: str, *, extra_keys: bool = False,
                     skip: tuple[str, ...] = ()) -> dict[str, Any]:
    """The ``init`` field values of dataclass `cls` read from the object `value`;
    the fields named in `skip` are left to the caller."""
    if not isinstance(value, dict):
        raise InvalidValue(f"{where}: expected an object, got {_kind(value)}")
    fields = _fields(cls)
    if not extra_keys:
        for key in value:
            if key not in fields and key not in skip:
                raise InvalidValue(f"{where}: unknown key {_shown(key)}")
    values: dict[str, Any] = {}
    for name, (read, required) in fields.items():
        if name in skip:
            continue
        if name in value:
            values[name] = read(value[name], f"{where}.{name}", extra_keys)
        elif required:
            raise InvalidValue(f"{where}: {name} is missing")
    return values


Reader = Callable[[Any, str, bool], Any]
"""(value, where, extra_keys) -> the value as its type; one is made per hint, once."""


@functools.cache
def _reader(hint: Any) -> Reader:
    origin = typing.get_origin(hint)
    if hint is type(None) or hint is None:
        return _expect(lambda v: v is None, "null")
    if origin is Union or origin is types.UnionType:
        return _union_reader(typing.get_args(hint))
    if origin is Literal:
        choices = typing.get_args(hint)

        def literal(value: Any, where: str, extra_keys: bool) -> Any:
            if isinstance(value, str) and value in choices:
                return value
            raise InvalidValue(f"{where}: expected one of {', '.join(map(repr, choices))}, "
                               f"got {_shown(value)}")
        return literal
    if origin is tuple:
        args = typing.get_args(hint)
        if len(args) != 2 or args[1] is not Ellipsis:
            raise TypeError(f"only tuple[X, ...] is supported, not {hint}")
        item_reader = _reader(args[0])

        def sequence(value: Any, where: str, extra_keys: bool) -> tuple:
            if not isinstance(value, list):
                raise InvalidValue(f"{where}: expected a list, got {_kind(value)}")
            return tuple(item_reader(item, f"{where}[{n}]", extra_keys)
                         for n, item in enumerate(value))
        return sequence
    if hint is bool:
        return _expect(lambda v: isinstance(v, bool), "true or false")
    if hint is int:
        return _expect(lambda v: isinstance(v, int) and not isinstance(v, bool), "an integer")
    if hint is str:
        return _expect(lambda v: isinstance(v, str), "a string")
    if hint is float:
        return _number
    if hint is datetime:
        return _datetime
    if hint is tzinfo:
        return _zone
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return lambda value, where, extra_keys: hint(**from_json_fields(
            hint, value, where, extra_keys=extra_keys))
    raise TypeError(f"no JSON rule for {hint!r}")


def _expect(test: Callable[[Any], bool], what: str) -> Reader:
    def read(value: Any, where: str, extra_keys: bool) -> Any:
        if test(value):
            return value
        raise InvalidValue(f"{where}: expected {what}, got {_kind(value)}")
    return read


def _number(value: Any, where: str, extra_keys: bool) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        with contextlib.suppress(OverflowError):
            if math.isfinite(number := float(value)):
                return number
    raise InvalidValue(f"{where}: expected a number, got {_shown(value)}")


def _union_reader(members: tuple) -> Reader:
    plain = tuple(m for m in members if m is not type(None))
    nullable = len(plain) < len(members)
    if len(plain) == 1:
        only = _reader(plain[0])

        def optional(value: Any, where: str, extra_keys: bool) -> Any:
            if value is None:
                if nullable:
                    return None
                raise InvalidValue(f"{where}: must not be null")
            return only(value, where, extra_keys)
        return optional
    readers = tuple((getattr(m, "__name__", str(m)), _reader(m)) for m in plain)

    def one_of(value: Any, where: str, extra_keys: bool) -> Any:
        # Several dataclasses (a Deposit is a VoiceMessage or a FaxMessage): the one whose
        # fields fit. Their field sets differ, so unknown keys decide; exactly one must fit.
        if value is None:
            if nullable:
                return None
            raise InvalidValue(f"{where}: must not be null")
        fits, errors = [], []
        for name, read in readers:
            try:
                fits.append(read(value, where, False))
            except InvalidValue as exc:
                errors.append(f"not a {name} ({exc})")
        if len(fits) == 1:
            return fits[0]
        if not fits:
            raise InvalidValue(f"{where}: " + "; ".join(errors))
        raise InvalidValue(f"{where}: fits more than one of {', '.join(n for n, _ in readers)}")
    return one_of


@functools.cache
def _fields(cls: type) -> dict[str, tuple[Reader, bool]]:
    """Each ``init`` field of `cls`: its reader, and whether it must be present."""
    hints = typing.get_type_hints(cls)
    return {f.name: (_reader(hints[f.name]),
                     f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING)
            for f in dataclasses.fields(cls) if f.init}


def _datetime(value: Any, where: str, extra_keys: bool = False) -> datetime:
    if not isinstance(value, str):
        raise InvalidValue(f"{where}: expected an ISO 8601 time, got {_kind(value)}")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidValue(f"{where}: {_shown(value)} is not an ISO 8601 time") from None
    if moment.utcoffset() is None:
        raise InvalidValue(f"{where}: {_shown(value)} has no UTC offset")
    return moment


def _zone(value: Any, where: str, extra_keys: bool = False) -> tzinfo:
    if value == "UTC":
        return UTC
    if not isinstance(value, str):
        raise InvalidValue(f"{where}: expected a time zone name, got {_kind(value)}")
    try:
        return ZoneInfo(value)
    except (ValueError, OSError, LookupError):  # ZoneInfoNotFoundError is a KeyError
        raise InvalidValue(f"{where}: {_shown(value)} is not a known time zone") from None


def _zone_name(zone: tzinfo) -> str:
    if zone is UTC:
        return "UTC"
    if isinstance(zone, ZoneInfo) and zone.key:
        return zone.key
    raise InvalidValue(f"time zone {zone!r} has no IANA name")


def _kind(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean",
             int: "an integer", float: "a number", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
