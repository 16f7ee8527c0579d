"""Stripe's error answers: `{"error": {"type", "code", "message", "param"}}` with its status.

Types and status codes follow Stripe's API reference: `invalid_request_error` (400, 404, 401,
429), `idempotency_error` (400, 409), `api_error` (500, 503).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

_DOCS = "https://stripe.com/docs/error-codes/"


@dataclass
class StripeError(Exception):
    """An error answer, raised anywhere below the request dispatcher."""

    status: int
    type: str
    message: str
    code: str | None = None
    param: str | None = None
    headers: dict[str, str] | None = None

    def body(self) -> dict[str, Any]:
        """Return the JSON body Stripe sends for this error."""
        error: dict[str, Any] = {"type": self.type, "message": self.message}
        if self.code is not None:
            error["code"] = self.code
            error["doc_url"] = _DOCS + self.code.replace("_", "-")
        if self.param is not None:
            error["param"] = self.param
        return {"error": error}

    @classmethod
    def invalid(
        cls, message: str, *, param: str | None = None, code: str | None = None
    ) -> StripeError:
        """A 400 `invalid_request_error`."""
        return cls(400, "invalid_request_error", message, code=code, param=param)

    @classmethod
    def unknown_parameter(cls, name: str) -> StripeError:
        """The answer to a parameter the endpoint does not take."""
        return cls.invalid(
            f"Received unknown parameter: {name}", param=name, code="parameter_unknown"
        )

    @classmethod
    def missing_parameter(cls, name: str) -> StripeError:
        """The answer to a required parameter left out."""
        return cls.invalid(f"Missing required param: {name}.", param=name, code="parameter_missing")

    @classmethod
    def invalid_value(cls, name: str, expected: str) -> StripeError:
        """The answer to a parameter whose value has the wrong form."""
        return cls.invalid(
            f"Invalid {name}: must be {expected}", param=name, code="parameter_invalid_string"
        )

    @classmethod
    def missing_resource(cls, noun: str, ident: str, param: str = "id") -> StripeError:
        """A 404 for an object that does not exist in this account."""
        return cls(
            404,
            "invalid_request_error",
            f"No such {noun}: '{ident}'",
            code="resource_missing",
            param=param,
        )
