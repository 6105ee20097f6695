"""Exceptions: one class per protocol error code (CLIENT-PROTOCOL.md section 7),
all subclasses of ImgqError, so ``except imgq.TooLarge`` and
``except imgq.ImgqError`` both work; JobFailed for a job that ran and
failed (or was cancelled), carrying the same code."""

from .protocol import CODES


class ImgqError(Exception):
    """An error from the broker, a group or this client.

    ``code`` and ``code_name`` are the protocol's (0 when the error is this
    client's own), ``message`` says what was wrong, ``retryable`` whether
    the same request may succeed later, ``job`` the job id when known."""

    code = 0
    code_name = "error"

    def __init__(self, message, code=None, retryable=False, retry_after_ms=0, job=""):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
            self.code_name = CODES.get(code, "error")
        self.retryable = retryable
        self.retry_after_ms = retry_after_ms
        self.job = job

    def __str__(self):
        return "%s: %s" % (self.code_name, self.message)


class InvalidArgument(ImgqError):
    code, code_name = 1, "invalid_argument"


class InvalidImage(ImgqError):
    code, code_name = 2, "invalid_image"


class Unsupported(ImgqError):
    code, code_name = 3, "unsupported"


class TooLarge(ImgqError):
    code, code_name = 4, "too_large"


class ResourceExhausted(ImgqError):
    code, code_name = 5, "resource_exhausted"


class Unavailable(ImgqError):
    code, code_name = 6, "unavailable"


class DeadlineExceeded(ImgqError):
    code, code_name = 7, "deadline_exceeded"


class NotFound(ImgqError):
    code, code_name = 8, "not_found"


class Cancelled(ImgqError):
    code, code_name = 9, "cancelled"


class IoError(ImgqError):
    code, code_name = 10, "io_error"


class Internal(ImgqError):
    code, code_name = 11, "internal"


class PermissionDenied(ImgqError):
    code, code_name = 12, "permission_denied"


class Conflict(ImgqError):
    code, code_name = 13, "conflict"


class Timeout(ImgqError, TimeoutError):
    """Nothing came in the time given (the broker silent, a job not done)."""

    code_name = "timeout"


class JobFailed(ImgqError):
    """A job that was accepted and then failed or was cancelled: ``code`` is
    why (e.g. 2 invalid_image, 3 unsupported, 9 cancelled), ``state`` its
    final state."""

    def __init__(self, message, code=0, job="", state="failed"):
        super().__init__(message, code=code, job=job)
        self.state = state


_BY_CODE = {cls.code: cls for cls in (
    InvalidArgument, InvalidImage, Unsupported, TooLarge, ResourceExhausted, Unavailable,
    DeadlineExceeded, NotFound, Cancelled, IoError, Internal, PermissionDenied, Conflict)}


def from_reply(reply):
    """The exception for an ``error`` header."""
    cls = _BY_CODE.get(reply.get("code"), ImgqError)
    return cls(reply.get("message", ""), code=reply.get("code"), retryable=bool(reply.get("retryable")),
               retry_after_ms=int(reply.get("retry_after_ms", 0) or 0), job=reply.get("job", ""))
