"""Every error the bridge raises on purpose. Each one prints as a single clear line."""

from __future__ import annotations

from .scrub import scrub


class FlinkAlertsError(Exception):
    """Base of all expected errors: printed as one line, never as a traceback.

    Their text often quotes a server (an SMTP reply, an API message): it is scrubbed at birth.
    """

    def __init__(self, *args: object) -> None:
        super().__init__(*(scrub(arg) if isinstance(arg, str) else arg for arg in args))


class ConfigError(FlinkAlertsError):
    """Wrong configuration. `path` names the offending key, e.g. `receivers[0].webhook`."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}" if path else reason)
        self.path = path
        self.reason = reason


class CredentialsError(FlinkAlertsError):
    """No usable cloud credentials were found."""


class EventParseError(FlinkAlertsError):
    """An event from the API cannot be understood (e.g. an unknown createdAt format)."""


class ApiError(FlinkAlertsError):
    """A Flink OpenAPI call failed. `retryable` tells whether trying again may help."""

    def __init__(
        self,
        message: str,
        *,
        code: str = "",
        request_id: str = "",
        http_status: int | None = None,
        retryable: bool = False,
        hint: str = "",
        retry_after: float | None = None,
    ) -> None:
        code, request_id = scrub(code), scrub(request_id)
        details = [
            f"code={code}" if code else "",
            f"http={http_status}" if http_status is not None else "",
            f"requestId={request_id}" if request_id else "",
            f"hint: {hint}" if hint else "",
        ]
        details = [detail for detail in details if detail]
        super().__init__(f"{message} ({', '.join(details)})" if details else message)
        self.code = code
        self.request_id = request_id
        self.http_status = http_status
        self.retryable = retryable
        self.hint = hint
        self.retry_after = retry_after  # seconds the server asked us to wait


def error_field(body: dict, *keys: str) -> str:
    """The first of `keys` an API error body fills (gateways spell them in several ways)."""
    for key in keys:
        if body.get(key) not in (None, ""):
            return str(body[key])
    return ""


def server_text(text: str, limit: int = 300) -> str:
    """What a server said, as one short line: scrubbed first, so a cut never halves a secret."""
    return " ".join(scrub(text).split())[:limit]


class MalformedResponseError(ApiError):
    """The API answered with something that is not the documented shape."""


class CheckpointError(FlinkAlertsError):
    """The checkpoint store is unreachable or holds something we cannot read."""


class LeaseHeldError(CheckpointError):
    """Another run holds the lease of this target; this run leaves it alone."""


class LeaseLostError(CheckpointError):
    """Our lease was taken over by another run; our commit is refused."""


class DeliveryError(FlinkAlertsError):
    """A channel could not deliver a message.

    Channels only classify (like Alertmanager's notifiers returning `retry, err`);
    the shared outbox decides what happens next. `retry_after` (seconds) is set when
    the receiver told us when to come back (Slack's Retry-After, DingTalk's throttling).
    The message must never contain a token, secret, password or full webhook URL.
    """

    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        retry_after: float | None = None,
        fixable: bool = False,
        retry_only: tuple[str, ...] = (),
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after
        # A person can fix it (token, password, certificate, channel): the alert waits for that.
        self.fixable = fixable
        # Delivered to some: only these (e.g. SMTP recipients refused with 4xx) are tried again.
        self.retry_only = retry_only
