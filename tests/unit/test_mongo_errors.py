"""How the MongoDB adapter names the driver's errors (no server: the exceptions pymongo raises)."""

from __future__ import annotations

import pytest
from pymongo.errors import (
    AutoReconnect,
    BulkWriteError,
    ConnectionFailure,
    CursorNotFound,
    DuplicateKeyError,
    ExecutionTimeout,
    NetworkTimeout,
    NotPrimaryError,
    OperationFailure,
    PyMongoError,
    ServerSelectionTimeoutError,
    WriteConcernError,
    WriteError,
    WTimeoutError,
)

from shared.adapters.mongo.connection import connect, translate
from shared.errors import ConfigError, StoreError, TransientError

OUTAGES = [
    ConnectionFailure("refused"), AutoReconnect("connection closed"), NetworkTimeout("timed out"),
    NotPrimaryError("not primary"), ServerSelectionTimeoutError("no server"), ExecutionTimeout("too long", 50),
    WTimeoutError("write concern timeout", 64), WriteConcernError("write concern", 100),
    CursorNotFound("cursor lost", 43), WriteError("document failed validation", 121),
    BulkWriteError({"writeErrors": [{"index": 0, "code": 121}], "nInserted": 0}),
    OperationFailure("shutting down", 91), OperationFailure("interrupted", 11602),
    OperationFailure("retry me", 1, {"errorLabels": ["RetryableWriteError"]}),
]
REFUSALS = [
    DuplicateKeyError("E11000 duplicate key: +33612345678", 11000),
    BulkWriteError({"writeErrors": [{"index": 0, "code": 11000}], "nInserted": 0}),
    OperationFailure("bad query", 2), PyMongoError("something else"),
]


@pytest.mark.parametrize("error", OUTAGES, ids=lambda e: type(e).__name__)
def test_an_outage_is_a_transient_error(error: PyMongoError) -> None:
    assert isinstance(translate(error), TransientError)


@pytest.mark.parametrize("error", REFUSALS, ids=lambda e: type(e).__name__)
def test_anything_else_is_a_store_error_that_quotes_no_document(error: PyMongoError) -> None:
    translated = translate(error)
    assert isinstance(translated, StoreError) and not isinstance(translated, TransientError)
    assert "+33" not in str(translated)  # the driver's text may quote a document's values


def test_a_malformed_uri_is_a_configuration_error() -> None:
    with pytest.raises(ConfigError, match="MONGODB_URI"):
        connect("mongodb://")
