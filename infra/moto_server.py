"""moto in server mode, with DynamoDB's per-item atomicity.

moto serves requests on several threads but checks a write's condition and applies it in
two steps, so two concurrent conditional writes can both succeed. DynamoDB never allows
that, and cxbridge's idempotency, leases and budgets rely on it; so every DynamoDB write
here runs under one lock. Everything else is moto's own server (same arguments).

It also counts the calls it serves, by caller and operation, and answers them at
`GET /_cxbridge/calls` as `{"<caller> <operation>": count}`: the caller is the SDK's app id
(`AWS_SDK_UA_APP_ID`, sent as `app/<id>` in the user agent) or `-`, the operation the
`X-Amz-Target` header or the query's `Action`. The benchmarks read AWS calls per request there.
"""

import collections
import functools
import json
import re
import sys
import threading
import urllib.parse

from moto.dynamodb.models import DynamoDBBackend
from moto.moto_server.werkzeug_app import DomainDispatcherApplication
from moto.server import main

_WRITE = threading.Lock()
_CALLS = collections.Counter()
_CALLS_LOCK = threading.Lock()
_CALLS_PATH = "/_cxbridge/calls"
_APP = re.compile(r"(?:^|\s)app/([A-Za-z0-9._-]+)")


def _atomic(method):
    @functools.wraps(method)
    def wrapped(*args, **kwargs):
        with _WRITE:
            return method(*args, **kwargs)

    return wrapped


for _name in ("put_item", "update_item", "delete_item", "transact_write_items", "batch_write_item"):
    if hasattr(DynamoDBBackend, _name):
        setattr(DynamoDBBackend, _name, _atomic(getattr(DynamoDBBackend, _name)))


def _caller(environ):
    for header in ("HTTP_X_AMZ_USER_AGENT", "HTTP_USER_AGENT"):
        found = _APP.search(environ.get(header, ""))
        if found:
            return found.group(1)
    return "-"


def _operation(environ):
    target = environ.get("HTTP_X_AMZ_TARGET")
    if target:
        return target
    action = urllib.parse.parse_qs(environ.get("QUERY_STRING", "")).get("Action")
    if action:
        return action[0]
    return environ.get("REQUEST_METHOD", "?") + " " + environ.get("PATH_INFO", "")


_dispatch = DomainDispatcherApplication.__call__


def _counted(self, environ, start_response):
    if environ.get("PATH_INFO") == _CALLS_PATH and environ.get("REQUEST_METHOD") == "GET":
        with _CALLS_LOCK:
            body = json.dumps(dict(_CALLS)).encode()
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]
    key = _caller(environ) + " " + _operation(environ)
    with _CALLS_LOCK:
        _CALLS[key] += 1
    return _dispatch(self, environ, start_response)


DomainDispatcherApplication.__call__ = _counted

if __name__ == "__main__":
    main(sys.argv[1:])
