"""moto in server mode, with DynamoDB's per-item atomicity.

moto serves requests on several threads but checks a write's condition and applies it in
two steps, so two concurrent conditional writes can both succeed. DynamoDB never allows
that, and cxbridge's idempotency, leases and budgets rely on it; so every DynamoDB write
here runs under one lock. Everything else is moto's own server (same arguments).
"""

import functools
import sys
import threading

from moto.dynamodb.models import DynamoDBBackend
from moto.server import main

_WRITE = threading.Lock()


def _atomic(method):
    @functools.wraps(method)
    def wrapped(*args, **kwargs):
        with _WRITE:
            return method(*args, **kwargs)

    return wrapped


for _name in ("put_item", "update_item", "delete_item", "transact_write_items", "batch_write_item"):
    if hasattr(DynamoDBBackend, _name):
        setattr(DynamoDBBackend, _name, _atomic(getattr(DynamoDBBackend, _name)))

if __name__ == "__main__":
    main(sys.argv[1:])
