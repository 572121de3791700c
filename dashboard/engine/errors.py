"""Errors the API turns into Daytona-shaped JSON bodies: statusCode, message, error."""

from __future__ import annotations

from http import HTTPStatus


class ApiError(Exception):
    """An expected failure with an HTTP status and a message for the caller."""

    status = 500

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        source: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status
        self.code = code
        # Daytona's SDK picks a typed error from (source, code): DAYTONA_DAEMON for the
        # toolbox's codes such as GIT_REPO_NOT_FOUND or PROCESS_EXECUTION_TIMEOUT.
        self.source = source

    def body(self, path: str, timestamp: str) -> dict[str, object]:
        """The JSON body Daytona sends for an error."""
        body: dict[str, object] = {
            "statusCode": self.status,
            "message": self.message,
            "error": HTTPStatus(self.status).phrase,
            "path": path,
            "timestamp": timestamp,
        }
        if self.code:
            body["code"] = self.code
        if self.source:
            body["source"] = self.source
        return body


class BadRequest(ApiError):
    """The request is malformed or the action is invalid in the current state."""

    status = 400


class Unauthorized(ApiError):
    """The API key is missing or wrong."""

    status = 401


class NotFound(ApiError):
    """No such sandbox, file or route."""

    status = 404


class Conflict(ApiError):
    """Another state change is in progress, or the name is taken."""

    status = 409


class RequestTimeout(ApiError):
    """A command ran past its timeout and was killed."""

    status = 408


class PayloadTooLarge(ApiError):
    """An upload exceeds what the sandbox's disk can hold."""

    status = 413


class Unavailable(ApiError):
    """The sandbox could not be reached (not started)."""

    status = 503
