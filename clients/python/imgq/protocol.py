"""The imgq wire protocol, version 1 (schemas/CLIENT-PROTOCOL.md): headers are
msgpack maps carrying ``sig``, ``ver`` and ``type``; a message is one header
frame and, for some types, one payload frame."""

import msgpack

SIGNATURE = "IMGQ"
VERSION = 1
REVISION = "1.1"  # schemas/CLIENT-PROTOCOL.md; a pong's `protocol` (absent before 1.1)
MAX_HEADER_BYTES = 64 * 1024

# Error codes (CLIENT-PROTOCOL.md section 7): number -> name.
CODES = {
    1: "invalid_argument",
    2: "invalid_image",
    3: "unsupported",
    4: "too_large",
    5: "resource_exhausted",
    6: "unavailable",
    7: "deadline_exceeded",
    8: "not_found",
    9: "cancelled",
    10: "io_error",
    11: "internal",
    12: "permission_denied",
    13: "conflict",
}

# Formats the broker's groups write (CLIENT-PROTOCOL.md: submit.format).
OUTPUT_FORMATS = ("png", "tif", "tiff", "jpg", "jpeg", "bmp", "webp", "ppm", "pgm", "pnm")
# Extensions taken when a folder is walked (as imgq submit does).
IMAGE_EXTENSIONS = (
    "png", "jpg", "jpeg", "jpe", "tif", "tiff", "bmp", "dib", "webp", "ppm",
    "pgm", "pbm", "pnm", "jp2", "sr", "ras", "exr", "hdr", "pic", "pfm",
)


def encode(type_, **fields):
    """A header of type ``type_`` with ``fields`` (strings as msgpack str)."""
    header = {"sig": SIGNATURE, "ver": VERSION, "type": type_}
    header.update(fields)
    return msgpack.packb(header, use_bin_type=True)


class ProtocolError(ValueError):
    """A frame that is not an imgq header."""


def decode(frame):
    """The header map of ``frame``; ProtocolError if it is not one."""
    if len(frame) > MAX_HEADER_BYTES:
        raise ProtocolError("header of %d bytes (at most %d)" % (len(frame), MAX_HEADER_BYTES))
    try:
        header = msgpack.unpackb(bytes(frame), raw=False, strict_map_key=True,
                                 max_str_len=16 * 1024, max_array_len=1024, max_map_len=64,
                                 max_bin_len=0, max_ext_len=0)
    except Exception as e:  # msgpack raises several types
        raise ProtocolError("not a msgpack header: %s" % e) from None
    if not isinstance(header, dict) or header.get("sig") != SIGNATURE:
        raise ProtocolError("not an imgq header")
    if header.get("ver") != VERSION:
        raise ProtocolError("protocol version %r is not supported" % header.get("ver"))
    return header
