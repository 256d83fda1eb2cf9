"""Meta-shaped errors: the ``{"error": {...}}`` body, Meta's codes and its wording."""

from __future__ import annotations

from sandbox.server.wire import JSON, Response, fbtrace_id

# Codes Meta flags as transient (temporary failures and throttling); used when a fault
# does not say explicitly.
TRANSIENT_CODES = frozenset({1, 2, 4, 17, 32, 341, 613, 80001, 80004, 80005})

# Default messages for faults given only a code, worded like Meta's.
DEFAULT_ERROR_MESSAGES: dict[int, str] = {
    1: "An unknown error occurred",
    2: "An unexpected error has occurred. Please retry your request later.",
    4: "(#4) Application request limit reached",
    10: "(#10) Application does not have permission for this action",
    17: "(#17) User request limit reached",
    32: "(#32) Page request limit reached",
    100: "(#100) Invalid parameter",
    102: "Session key invalid or no longer valid",
    190: "Invalid OAuth access token - Cannot parse access token",
    200: "(#200) Permissions error",
    341: "(#341) Application limit reached",
    368: "The action attempted has been deemed abusive or is otherwise disallowed",
    613: "(#613) Calls to this api have exceeded the rate limit.",
    80001: "(#80001) There have been too many calls to this Page account. Wait a bit and try "
    "again.",
    80004: "(#80004) There have been too many calls to this ad-account. Wait a bit and try again.",
    80005: "(#80005) There have been too many leadgen api calls to this Page. Wait a bit and "
    "try again.",
}

REVOKED_TOKEN_MESSAGES: dict[int, str] = {
    458: "Error validating access token: The user has not authorized application.",
    460: "Error validating access token: The session has been invalidated because the user "
    "changed their password or Facebook has changed the session for security reasons.",
    463: "Error validating access token: Session has expired.",
}


class GraphError(Exception):
    """A Meta-shaped error; raising it anywhere in a handler answers the request with it."""

    def __init__(
        self,
        message: str,
        *,
        code: int,
        subcode: int | None = None,
        status: int = 400,
        error_type: str = "OAuthException",
        is_transient: bool | None = None,
        user_title: str | None = None,
        user_msg: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.subcode = subcode
        self.status = status
        self.error_type = error_type
        self.is_transient = code in TRANSIENT_CODES if is_transient is None else is_transient
        self.user_title = user_title
        self.user_msg = user_msg

    def to_body(self) -> dict[str, JSON]:
        error: dict[str, JSON] = {
            "message": self.message,
            "type": self.error_type,
            "code": self.code,
        }
        if self.subcode is not None:
            error["error_subcode"] = self.subcode
        error["is_transient"] = self.is_transient
        if self.user_title is not None:
            error["error_user_title"] = self.user_title
        if self.user_msg is not None:
            error["error_user_msg"] = self.user_msg
        error["fbtrace_id"] = fbtrace_id()
        return {"error": error}

    def to_response(self) -> Response:
        response = Response.json(self.to_body(), status=self.status)
        if self.code in (102, 190):
            # Meta adds this header to token errors; some HTTP clients key off it.
            response.headers["WWW-Authenticate"] = (
                f'OAuth "Facebook Platform" "invalid_token" "{self.message}"'
            )
        return response


def missing_object(object_id: str, method: str = "GET") -> GraphError:
    """Meta's answer for an unknown object *and* for one the token may not see."""
    return GraphError(
        f"Unsupported {method.lower()} request. Object with ID '{object_id}' does not exist, "
        "cannot be loaded due to missing permissions, or does not support this operation. "
        "Please read the Graph API documentation at https://developers.facebook.com/docs/graph-api",
        code=100,
        subcode=33,
        error_type="GraphMethodException",
    )


def bad_param(message: str, *, subcode: int | None = None) -> GraphError:
    return GraphError(f"(#100) {message}", code=100, subcode=subcode)


def internal_error() -> GraphError:
    """What a sandbox bug answers: Meta's unknown error, which clients retry."""
    return GraphError(DEFAULT_ERROR_MESSAGES[1], code=1, status=500, is_transient=True)
