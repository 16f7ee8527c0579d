"""The project's own exceptions, the operator's and its kubectl plugin's; Stripe and
Kubernetes errors are translated into these.

    OperatorError
    ├── ConfigurationError              a flag or environment variable is invalid
    ├── ApiKeyMissing                   the API-key Secret or its key does not exist
    ├── SecretConflict                  a Secret of the wanted name is not ours to write
    ├── DeletionBlocked                 a deletion cannot reach Stripe and no force-delete is set
    ├── ReceiverProbeError              the receiver could not be asked for its fingerprints
    ├── KubernetesError                 the API server refused a request the operator needed
    └── StripeError                     a Stripe call failed
        ├── StripeUnavailable           429, 5xx or network error, still failing after retries
        └── StripeRejected              a 4xx answer: the request itself is wrong
            ├── StripeAuthenticationFailed   401/403: the API key is invalid or revoked
            ├── StripeNotFound               404: the object does not exist
            ├── StripeIdempotencyMismatch    the idempotency key was used with other parameters
            └── EndpointLimitReached         the account already has Stripe's maximum endpoints

    PluginError                         a `kubectl stripe` command failed (with its exit code)

Messages never contain secret values: Stripe's own message is kept (it names no key), the
API key is not.
"""

from __future__ import annotations


class OperatorError(Exception):
    """Base of every error the operator raises on purpose."""

    reason = "OperatorError"


class ConfigurationError(OperatorError):
    """A flag or environment variable has a value the operator cannot use."""

    reason = "ConfigurationError"


class ApiKeyMissing(OperatorError):
    """The Secret named by `spec.apiKeySecretRef` or its key does not exist."""

    reason = "ApiKeyMissing"


class SecretConflict(OperatorError):
    """A Secret of the wanted name exists and is not owned by this StripeWebhook."""

    reason = "SecretConflict"


class DeletionBlocked(OperatorError):
    """Stripe cannot be reached with the resource's API key, and no force-delete is set."""

    reason = "DeletionBlocked"


class ReceiverProbeError(OperatorError):
    """The receiver's readiness endpoint could not be reached or answered nonsense."""

    reason = "ReceiverUnreachable"


class KubernetesError(OperatorError):
    """The API server refused a request; `status` is its HTTP status, `detail` its message."""

    reason = "KubernetesError"

    def __init__(self, message: str, status: int, detail: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.detail = detail or message


class StripeError(OperatorError):
    """A call to Stripe failed."""

    reason = "StripeError"

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code


class StripeUnavailable(StripeError):
    """Stripe kept answering 429/5xx or could not be reached, after every retry."""

    reason = "StripeUnavailable"


class StripeRejected(StripeError):
    """Stripe refused the request with a 4xx answer; retrying the same request will not help."""

    reason = "StripeRejected"


class StripeAuthenticationFailed(StripeRejected):
    """The API key is not valid (revoked, rolled or mistyped)."""

    reason = "ApiKeyInvalid"


class StripeNotFound(StripeRejected):
    """The object does not exist in this Stripe account."""

    reason = "EndpointNotFound"


class StripeIdempotencyMismatch(StripeRejected):
    """The idempotency key was already used with different parameters."""

    reason = "IdempotencyMismatch"


class EndpointLimitReached(StripeRejected):
    """The Stripe account holds the maximum number of webhook endpoints already."""

    reason = "EndpointLimitReached"


# Exit codes of `kubectl stripe`: done; the cluster refused or could not be reached; bad
# arguments; `--wait` timed out (the rotation or recovery goes on in the background); part of
# a recovered interval was beyond Stripe's retention (its events are lost).
EXIT_OK = 0
EXIT_API_ERROR = 1
EXIT_USAGE = 2
EXIT_TIMEOUT = 3
EXIT_BEYOND_RETENTION = 4


class PluginError(Exception):
    """A `kubectl stripe` failure told as one sentence with an exit code, no traceback."""

    def __init__(self, message: str, exit_code: int = EXIT_API_ERROR) -> None:
        super().__init__(message)
        self.exit_code = exit_code
