"""The PostgreSQL frontend/backend protocol 3.0: messages, sans-I/O parsers and the encoder."""

from wiretape.protocols.postgres.codec import (
    CANCEL_REQUEST_CODE,
    DEFAULT_MAX_MESSAGE_SIZE,
    DEFAULT_MAX_STARTUP_SIZE,
    GSSENC_REQUEST_CODE,
    NEED_DATA,
    SSL_REQUEST_CODE,
    BackendParser,
    FrontendParser,
    NeedData,
    encode,
    normalize_sql,
    statement_kind,
)
from wiretape.protocols.postgres.messages import *  # noqa: F403
from wiretape.protocols.postgres.messages import __all__ as _message_names

__all__ = [
    "CANCEL_REQUEST_CODE",
    "DEFAULT_MAX_MESSAGE_SIZE",
    "DEFAULT_MAX_STARTUP_SIZE",
    "GSSENC_REQUEST_CODE",
    "NEED_DATA",
    "SSL_REQUEST_CODE",
    "BackendParser",
    "FrontendParser",
    "NeedData",
    "encode",
    "normalize_sql",
    "statement_kind",
    *_message_names,
]
