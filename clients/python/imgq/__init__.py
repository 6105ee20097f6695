"""imgq: submit image jobs to an imgq broker from Python.

    from imgq import Client
    with Client("tcp://127.0.0.1:5555") as c:
        job = c.submit("photo.jpg", ops=["grayscale", "gaussian_blur:ksize=5"])
        png = job.result(timeout=60)

See README.md and schemas/CLIENT-PROTOCOL.md in the imgq repository."""

from .client import (DEFAULT_BROKER, Client, Event, Group, Job, ListedJob, Outcome, Pong, default_progress_endpoint,
                     normalize_endpoint, progress_endpoint_from)
from .errors import (Cancelled, Conflict, DeadlineExceeded, ImgqError, Internal, InvalidArgument, InvalidImage,
                     IoError, JobFailed, NotFound, PermissionDenied, ResourceExhausted, Timeout, TooLarge,
                     Unavailable, Unsupported)
from .protocol import ProtocolError

__version__ = "0.1.0"

__all__ = [
    "Client", "Job", "Event", "Outcome", "Pong", "Group", "ListedJob", "DEFAULT_BROKER", "default_progress_endpoint",
    "progress_endpoint_from", "normalize_endpoint",
    "ImgqError", "JobFailed", "Timeout", "ProtocolError",
    "InvalidArgument", "InvalidImage", "Unsupported", "TooLarge", "ResourceExhausted", "Unavailable",
    "DeadlineExceeded", "NotFound", "Cancelled", "IoError", "Internal", "PermissionDenied", "Conflict",
]
