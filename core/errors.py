"""Typed errors shared by services, the API and the workers.

Each carries the HTTP status it maps to; one handler in the API renders them all, so a
service raises ``NotFound`` and never thinks about HTTP.
"""

from __future__ import annotations


class ExpungeError(Exception):
    status_code = 400
    code = "bad_request"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class NotFound(ExpungeError):
    status_code = 404
    code = "not_found"


class Conflict(ExpungeError):
    status_code = 409
    code = "conflict"


class Unprocessable(ExpungeError):
    status_code = 422
    code = "unprocessable"


class PayloadTooLarge(ExpungeError):
    status_code = 413
    code = "payload_too_large"


class Unauthorized(ExpungeError):
    status_code = 401
    code = "unauthorized"


class Forbidden(ExpungeError):
    status_code = 403
    code = "forbidden"


class ServiceUnavailable(ExpungeError):
    status_code = 503
    code = "unavailable"
