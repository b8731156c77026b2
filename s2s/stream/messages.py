"""Input message decoding and reply encoding: bytes from Kafka <-> requests for a model.

An input value is either plain UTF-8 text or a JSON envelope

    {"id": "42", "text": "In the beginning ...", "task": "translation", "beam": 5, "max_len": 80}

where only "text" is required. A value whose first non-blank character is "{" is read as an
envelope (a plain text starting with "{" must be wrapped in one). Everything that cannot
become a request is a ``Rejection`` with one of the ``Reason`` codes below; the ingress sends
it to the dead-letter topic instead of the model, so the stream never stalls on it.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from enum import Enum
from typing import ClassVar

from pydantic import PositiveInt

from ..settings import ConfigModel


class Reason(str, Enum):
    """Why a record went to the dead-letter topic (the value of its reason header)."""

    NOT_UTF8 = "not_utf8"          # value bytes are not valid UTF-8
    BAD_JSON = "bad_json"          # starts like an envelope but is not a JSON object
    BAD_FIELD = "bad_field"        # envelope field of the wrong type, out of range, or unknown
    EMPTY = "empty_text"           # no value, or only whitespace to decode
    TOO_LARGE = "too_large"        # value over the size cap
    UNKNOWN_TASK = "unknown_task"  # envelope names a task no route serves on this topic
    MODEL_ERROR = "model_error"    # the model raised while decoding this text
    MODEL_CRASH = "model_crash"    # the translator process died in every call that held it
    DECODE_TIMEOUT = "decode_timeout"  # as MODEL_CRASH, the last time its decode outlived a limit (suspects.py)
    UNSENDABLE = "unsendable"      # the broker refused the record's answer (or a full copy of it)
    INTERNAL_ERROR = "internal_error"  # building its answer raised: a bug, reported instead of a stall
    UNREADABLE = "unreadable"      # the consumer cannot parse the record (e.g. a header key that is not UTF-8)


class Limits(ConfigModel):
    """Caps that protect the translator from one oversized or abusive message (the stream
    config's `limits:` section)."""

    section: ClassVar[str] = "limits"

    max_bytes: PositiveInt = 16_384   # value size; longer sources are cut by the model anyway
    max_beam: PositiveInt = 16        # envelope "beam" above this is rejected
    max_len: PositiveInt = 512        # envelope "max_len" above this is rejected


@dataclass(frozen=True)
class Request:
    """One decodable input. ``envelope`` records whether to answer with an envelope too."""

    text: str
    id: str | None = None
    task: str | None = None
    beam: int | None = None
    max_len: int | None = None
    envelope: bool = False


@dataclass(frozen=True)
class Rejection:
    """An input that goes to the dead-letter topic, with a human-readable detail."""

    reason: Reason
    detail: str
    bare: bool = False  # the dead letter copies nothing of the input (out_records.bare_dead_letter)


ENVELOPE_FIELDS = ("id", "text", "task", "beam", "max_len")


def decode_value(value: bytes | None, limits: Limits) -> Request | Rejection:
    """Turn a record value into a Request, or say why it cannot be one.

    Checks run cheapest first: size, UTF-8, envelope syntax, fields, emptiness.
    """
    if value is None:
        return Rejection(Reason.EMPTY, "record has no value")
    if len(value) > limits.max_bytes:
        return Rejection(Reason.TOO_LARGE, f"value is {len(value)} bytes, over the {limits.max_bytes}-byte cap")
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError as err:
        return Rejection(Reason.NOT_UTF8, f"value is not UTF-8: {err}")
    stripped = text.strip()  # starts with "{" exactly when text.lstrip() does; stripped once
    if stripped.startswith("{"):
        return _decode_envelope(text, limits)
    if not stripped:
        return Rejection(Reason.EMPTY, "value is blank")
    return Request(text=stripped)


def _decode_envelope(text: str, limits: Limits) -> Request | Rejection:
    try:
        fields = json.loads(text)
    except (ValueError, RecursionError) as err:
        # JSONDecodeError is a ValueError; so is an integer of over 4,300 digits, and a deep
        # nest of arrays overflows the parser's stack: all are poison, none may reach the loop.
        return Rejection(Reason.BAD_JSON, f"envelope is not valid JSON: {err}")
    if not isinstance(fields, dict):
        return Rejection(Reason.BAD_JSON, "envelope must be a JSON object")
    unknown = sorted(set(fields) - set(ENVELOPE_FIELDS))
    if unknown:
        return Rejection(Reason.BAD_FIELD, f"unknown envelope field {unknown[0]!r} (known: {', '.join(ENVELOPE_FIELDS)})")
    problem = _field_problem(fields, limits)
    if problem:
        return Rejection(Reason.BAD_FIELD, problem)
    body = fields.get("text")
    if body is None or not body.strip():
        return Rejection(Reason.EMPTY, "envelope has no text")
    ident = fields.get("id")
    return Request(text=body.strip(), id=None if ident is None else str(ident), task=fields.get("task"),
                   beam=fields.get("beam"), max_len=fields.get("max_len"), envelope=True)


def _field_problem(fields: dict, limits: Limits) -> str | None:
    """The first envelope field with a wrong type or range, described; None when all are fine."""
    if not isinstance(fields.get("text", ""), str):
        return "envelope 'text' must be a string"
    ident = fields.get("id")
    if ident is not None and (isinstance(ident, bool) or not isinstance(ident, (str, int))):
        return "envelope 'id' must be a string or an integer"
    task = fields.get("task")
    if task is not None and not isinstance(task, str):
        return "envelope 'task' must be a string"
    for name in ("text", "id", "task"):
        if isinstance(fields.get(name), str) and not _utf8_encodable(fields[name]):
            # JSON's "\ud800" escapes decode to lone surrogates, which no UTF-8 output
            # value or header can hold.
            return f"envelope {name!r} holds a lone surrogate (not encodable as UTF-8)"
    for name, cap in (("beam", limits.max_beam), ("max_len", limits.max_len)):
        number = fields.get(name)
        if number is None:
            continue
        if isinstance(number, bool) or not isinstance(number, int) or not 1 <= number <= cap:
            return f"envelope {name!r} must be an integer in 1..{cap}, got {number!r}"
    return None


def _utf8_encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def encode_reply(request: Request, text: str, task: str) -> bytes:
    """The output value: plain text for a plain request, an envelope for an envelope."""
    if not request.envelope:
        return text.encode("utf-8")
    reply = {"id": request.id, "text": text, "task": task}
    return json.dumps(reply, ensure_ascii=False).encode("utf-8")
