"""Strict, typed reading of JSON bodies and query strings; every failure is a 400."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

from starlette.datastructures import QueryParams
from starlette.requests import Request

from dashboard.engine.errors import BadRequest
from dashboard.engine.runtime.egress import format_allow_list, parse_allow_list

MAX_STRING = 64 * 1024
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _describe(value: object) -> str:
    return "null" if value is None else type(value).__name__


class Body:
    """A JSON object whose fields are read once each, by type."""

    def __init__(self, data: object, allowed: Iterable[str]) -> None:
        if not isinstance(data, dict):
            raise BadRequest("request body must be a JSON object")
        unknown = sorted(set(data) - set(allowed))
        if unknown:
            raise BadRequest(f"property {unknown[0]} should not exist")
        self.data: dict[str, Any] = data

    def has(self, key: str) -> bool:
        """Whether the field is present and not null."""
        return self.data.get(key) is not None

    def string(
        self,
        key: str,
        default: str | None = None,
        *,
        required: bool = False,
        max_length: int = MAX_STRING,
        allow_empty: bool = True,
    ) -> str | None:
        """A string field."""
        value = self.data.get(key)
        if value is None:
            if required:
                raise BadRequest(f"{key} is required")
            return default
        if not isinstance(value, str):
            raise BadRequest(f"{key} must be a string, not {_describe(value)}")
        if "\x00" in value:
            raise BadRequest(f"{key} must not contain NUL characters")
        if len(value) > max_length:
            raise BadRequest(f"{key} must be at most {max_length} characters")
        if not allow_empty and not value:
            raise BadRequest(f"{key} must not be empty")
        return value

    def integer(
        self,
        key: str,
        default: int | None = None,
        *,
        minimum: int | None = None,
        maximum: int | None = None,
        required: bool = False,
    ) -> int | None:
        """An integer field within bounds (booleans and floats are refused)."""
        value = self.data.get(key)
        if value is None:
            if required:
                raise BadRequest(f"{key} is required")
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            raise BadRequest(f"{key} must be an integer, not {_describe(value)}")
        return check_range(key, value, minimum, maximum)

    def boolean(self, key: str, default: bool | None = None) -> bool | None:
        """A boolean field."""
        value = self.data.get(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise BadRequest(f"{key} must be a boolean, not {_describe(value)}")
        return value

    def string_map(self, key: str, *, env: bool = False, max_items: int = 256) -> dict[str, str]:
        """An object of string to string (env, labels)."""
        value = self.data.get(key)
        if value is None:
            return {}
        return string_map(key, value, env=env, max_items=max_items)

    def string_list(self, key: str, *, max_items: int = 1000) -> list[str]:
        """An array of strings."""
        value = self.data.get(key)
        if value is None:
            return []
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise BadRequest(f"{key} must be an array of strings")
        if len(value) > max_items:
            raise BadRequest(f"{key} must have at most {max_items} items")
        if any("\x00" in v for v in value):
            raise BadRequest(f"{key} must not contain NUL characters")
        return list(value)

    def allow_list(self, key: str) -> str | None:
        """A ``networkAllowList``: comma-separated IPv4 CIDRs, returned canonical."""
        value = self.string(key, max_length=1024)
        if value is None:
            return None
        try:
            return format_allow_list(parse_allow_list(value))
        except ValueError as error:
            raise BadRequest(str(error)) from None

    def raw(self, key: str) -> Any:
        """A field as sent, for fields only checked for emptiness."""
        return self.data.get(key)


def check_range(key: str, value: int, minimum: int | None, maximum: int | None) -> int:
    """Refuse a number outside [minimum, maximum]."""
    if minimum is not None and value < minimum:
        raise BadRequest(f"{key} must be at least {minimum}")
    if maximum is not None and value > maximum:
        raise BadRequest(f"{key} must be at most {maximum}")
    return value


def string_map(
    key: str, value: object, *, env: bool = False, max_items: int = 256
) -> dict[str, str]:
    """Check an object of string to string."""
    if not isinstance(value, Mapping):
        raise BadRequest(f"{key} must be an object of strings")
    if len(value) > max_items:
        raise BadRequest(f"{key} must have at most {max_items} entries")
    result: dict[str, str] = {}
    for name, item in value.items():
        if not isinstance(item, str):
            raise BadRequest(f"{key}.{name} must be a string, not {_describe(item)}")
        if not name or len(name) > 1024 or len(item) > MAX_STRING:
            raise BadRequest(f"{key} has an empty or too long entry")
        if "\x00" in name or "\x00" in item:
            raise BadRequest(f"{key} must not contain NUL characters")
        if env and not ENV_NAME.match(name):
            raise BadRequest(f"{key}: {name!r} is not a valid environment variable name")
        result[str(name)] = item
    return result


class Query:
    """Typed access to a query string."""

    def __init__(self, params: QueryParams, allowed: Iterable[str] | None = None) -> None:
        self.params = params
        if allowed is not None:
            unknown = sorted(set(params.keys()) - set(allowed))
            if unknown:
                raise BadRequest(f"query parameter {unknown[0]} is not supported")

    def string(self, key: str, default: str | None = None, *, required: bool = False) -> str | None:
        """A single string parameter."""
        value = self.params.get(key)
        if value is None:
            if required:
                raise BadRequest(f"query parameter {key} is required")
            return default
        if "\x00" in value:
            raise BadRequest(f"query parameter {key} must not contain NUL characters")
        return value

    def integer(
        self,
        key: str,
        default: int | None = None,
        *,
        minimum: int | None = None,
        maximum: int | None = None,
    ) -> int | None:
        """An integer parameter."""
        value = self.params.get(key)
        if value is None or value == "":
            return default
        try:
            number = int(value)
        except ValueError:
            raise BadRequest(f"query parameter {key} must be an integer") from None
        return check_range(key, number, minimum, maximum)

    def boolean(self, key: str, default: bool | None = None) -> bool | None:
        """A true/false parameter."""
        value = self.params.get(key)
        if value is None or value == "":
            return default
        lowered = value.lower()
        if lowered in ("true", "1"):
            return True
        if lowered in ("false", "0"):
            return False
        raise BadRequest(f"query parameter {key} must be true or false")

    def strings(self, key: str) -> list[str]:
        """A repeated parameter (also accepting comma-separated values)."""
        values: list[str] = []
        for raw in self.params.getlist(key) + self.params.getlist(f"{key}[]"):
            values += [part for part in raw.split(",") if part]
        return values


async def read_json(request: Request) -> Any:
    """The request body parsed as JSON (None when empty), or a 400."""
    raw = await request.body()
    if not raw.strip():
        return None
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
        raise BadRequest(f"Malformed JSON body: {error}") from None
