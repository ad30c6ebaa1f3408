"""Why a request is refused before it is forwarded; entrypoints map a code to HTTP."""

from __future__ import annotations

from enum import StrEnum


class RefusalCode(StrEnum):
    INVALID_API_KEY = "invalid_api_key"
    INVALID_REQUEST = "invalid_request_error"
    MODEL_NOT_FOUND = "model_not_found"
    BODY_TOO_LARGE = "request_too_large"
    SPEND_LIMIT_EXCEEDED = "spend_limit_exceeded"
    UPSTREAM_ERROR = "upstream_error"
    UPSTREAM_TIMEOUT = "upstream_timeout"


class Refused(Exception):
    def __init__(self, code: RefusalCode, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.param = param
