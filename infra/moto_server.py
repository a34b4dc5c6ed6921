"""moto in server mode, with DynamoDB's per-item atomicity.

moto serves requests on several threads but checks a write's condition and applies it in
two steps, so two concurrent conditional writes can both succeed. DynamoDB never allows
that, and cxbridge's idempotency, leases and budgets rely on it; so every DynamoDB write
here runs under one lock.

A transaction backs up only the items it touches, and stream reads wait for writes. moto's
own backup is a deep copy of every table the transaction names, put in place of the live
table when it is cancelled: a copy of the whole table on each call, and a table object that
the stream's open iterators no longer read. Here the live table stays, and a cancelled
transaction puts its items and the stream's records back as they were.

It serves with waitress, a production WSGI server, instead of werkzeug's development
server: connections stay open between requests (HTTP/1.1 keep-alive), as AWS's endpoints
keep them, where werkzeug's server closes each connection after its answer, so every call
from a function paid for a new TCP connection; and a fixed pool of threads takes the
requests. Without waitress in the venv it falls back to moto's own server.

It takes the slow steps out of moto's request path, each found by profiling the server under
the benchmarks' load (each is explained where it is made): the package listing moto did on
every request under a lock all requests share, the three or four parses of each condition
expression, GetRecords through the generic serializer, a scan of a queue's messages for
each message sent to it, and a sort of the whole table before each Query; and the pauses of
Python's full garbage collections. Together they were most of a webhook's time in the
emulator, and most of its slowest answers.

It also counts the calls it serves, by caller and operation, and answers them at
`GET /_cxbridge/calls` as `{"<caller> <operation>": count}`: the caller is the SDK's app id
(`AWS_SDK_UA_APP_ID`, sent as `app/<id>` in the user agent) or `-`, the operation the
`X-Amz-Target` header or the query's `Action`. The benchmarks read AWS calls per request there.
"""

import collections
import functools
import gc
import json
import re
import sys
import threading
import time
import urllib.parse

import moto.backends as _backends
import moto.core.base_backend as _base_backend
import moto.dynamodb.models as _dynamodb_models
import moto.sqs.models as _sqs_models
from moto.dynamodb.comparisons import ConditionExpressionParser
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.dynamo_type import DynamoType
from moto.dynamodb.models.utilities import dynamo_json_dump
from moto.dynamodbstreams.models import DynamoDBStreamsBackend
from moto.dynamodbstreams.responses import DynamoDBStreamsHandler
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from moto.server import main

_WRITE = threading.RLock()
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


class _KeepTables:
    """`copy` as moto's transaction sees it: a table is not copied (see the module's note)."""

    def __init__(self, real):
        self._real = real

    def deepcopy(self, value, *args, **kwargs):
        if isinstance(value, _dynamodb_models.Table):
            return value
        return self._real.deepcopy(value, *args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._real, name)


_dynamodb_models.copy = _KeepTables(_dynamodb_models.copy)
_transact = DynamoDBBackend.transact_write_items


def _touched(backend, transact_items):
    """Each item the transaction names, with a copy of it as it is now (or None)."""
    touched = []
    for entry in transact_items:
        _, op = next(iter(entry.items()))
        table = backend.tables.get(op.get("TableName"))
        if table is None:
            continue
        key = op.get("Item") or op.get("Key") or {}
        if table.hash_key_attr not in key:
            continue
        hash_key = DynamoType(key[table.hash_key_attr])
        range_key = None
        if table.range_key_attr is not None:
            if table.range_key_attr not in key:
                continue
            range_key = DynamoType(key[table.range_key_attr])
        item = table.get_item(hash_key, range_key)
        touched.append((table, hash_key, range_key, _dynamodb_models.copy._real.deepcopy(item)))
    return touched


def _transact_write_items(self, transact_items):
    touched = _touched(self, transact_items)
    streams = {id(t): (t, len(t.stream_shard.items)) for t, _, _, _ in touched if t.stream_shard}
    try:
        return _transact(self, transact_items)
    except Exception:
        for table, hash_key, range_key, item in reversed(touched):
            if range_key is None:
                if item is None:
                    table.items.pop(hash_key, None)
                else:
                    table.items[hash_key] = item
            elif item is None:
                table.items[hash_key].pop(range_key, None)
            else:
                table.items[hash_key][range_key] = item
        for table, length in streams.values():
            del table.stream_shard.items[length:]
        raise


DynamoDBBackend.transact_write_items = _transact_write_items

for _name in ("put_item", "update_item", "delete_item", "transact_write_items", "batch_write_item"):
    if hasattr(DynamoDBBackend, _name):
        setattr(DynamoDBBackend, _name, _atomic(getattr(DynamoDBBackend, _name)))

# A stream read sees only whole writes: a transaction's records, or none of them (one that
# is cancelled takes its records back, and their sequence numbers are used again).
for _name in ("get_records", "get_shard_iterator"):
    setattr(DynamoDBStreamsBackend, _name, _atomic(getattr(DynamoDBStreamsBackend, _name)))


# moto's Query takes the table's items through `all_items`, which sorts every item of the
# table by its key (each comparison a Python call), and only then keeps the ones that match
# and sorts those: with a few thousand items, each of the drainer's sweep queries (one per
# shard of the due index, once a minute) took 200 to 300 ms of the interpreter, and the
# webhooks answered meanwhile waited up to 400 ms. A query's answer does not depend on that
# first order, since the matches are sorted by the whole key afterwards; here a query reads
# the items unsorted. Scan, whose pages follow that order, is unchanged.
_QUERY = threading.local()
_sorted_items = _dynamodb_models.Table.all_items


def _all_items(self):
    if not getattr(_QUERY, "active", False):
        return _sorted_items(self)
    if self.range_key_attr:
        return [item for by_range in self.items.values() for item in by_range.values()]
    return list(self.items.values())


def _unsorted_query(query):
    @functools.wraps(query)
    def wrapped(*args, **kwargs):
        _QUERY.active = True
        try:
            return query(*args, **kwargs)
        finally:
            _QUERY.active = False

    return wrapped


_dynamodb_models.Table.all_items = _all_items
_dynamodb_models.Table.query = _unsorted_query(_dynamodb_models.Table.query)


# moto finds the service of each request under one lock shared by every request, and there
# it lists its own package folder (a `stat` of each of about 200 entries) to learn its
# service names: at a few hundred requests a second that listing was most of the server's
# time, and it ran one request at a time. The folder does not change while the server runs.
_MOTO_MODULES = frozenset(_backends.list_of_moto_modules())
_backends.list_of_moto_modules = lambda: _MOTO_MODULES


def _now_ms(dt=None):
    """moto's `unix_time_millis`, without a datetime round trip for the current time."""
    if dt is None:
        return time.time() * 1000.0
    return _unix_time_millis(dt)


# SQS asks the time of every message in a queue on each receive and attribute read (is it
# visible, is it delayed); through datetime objects that was several microseconds a message.
_unix_time_millis = _sqs_models.unix_time_millis
_sqs_models.unix_time_millis = _now_ms


# moto parses a write's condition expression three times (to check the request, to check the
# condition, and again in the write itself), and a transaction's once more per item: most
# of a conditional write's time. The same expression, names and values make the same tree,
# so a parse is kept for the next ones, which in practice are the same request's.
_parse_condition = ConditionExpressionParser.parse


@functools.lru_cache(maxsize=256)
def _parsed(expression, names, values):
    parser = ConditionExpressionParser(expression, json.loads(names), json.loads(values))
    tree = _parse_condition(parser)
    return tree, tuple(parser.expr_attr_names_found), tuple(parser.expr_attr_values_found)


def _parse_once(self):
    try:
        names = json.dumps(self.expression_attribute_names, sort_keys=True)
        values = json.dumps(self.expression_attribute_values, sort_keys=True)
    except (TypeError, ValueError):
        return _parse_condition(self)
    tree, names_found, values_found = _parsed(self.condition_expression, names, values)
    self.expr_attr_names_found.extend(names_found)
    self.expr_attr_values_found.extend(values_found)
    return tree


ConditionExpressionParser.parse = _parse_once


def _records_json(self):
    """GetRecords, written as JSON directly.

    The records are already in DynamoDB's wire format; moto's generic serializer walked each
    attribute of each image through the service model, which took longer than the write
    that made the record."""
    limit = self._get_param("Limit")
    result = self.backend.get_records(self._get_param("ShardIterator"), 1000 if limit is None else limit)
    return dynamo_json_dump(result)


DynamoDBStreamsHandler.get_records = _records_json


def _registered(self, account_id):
    """`BackendDict[account_id]`, without moto's global lock once the account's backend exists.

    moto takes one lock shared by every service on each lookup of a backend, several times a
    request, to create the account's backend the first time. Once it exists the lookup is a
    plain read. (moto's reset, which this server never calls, would not see a backend dict
    that only this path had read since.)"""
    try:
        return dict.__getitem__(self, account_id)
    except KeyError:
        return _backend_dict_getitem(self, account_id)


_backend_dict_getitem = _base_backend.BackendDict.__getitem__
_base_backend.BackendDict.__getitem__ = _registered

# A queue's attributes count its messages (visible, in flight, delayed) by looking at each one,
# and moto builds them all wherever it reads one: on every message sent (for
# `ContentBasedDeduplication`), and four times for one `GetQueueAttributes`. With thousands
# of messages waiting that made each send a scan of the queue. Here one call builds a
# queue's attributes once, and each count is one pass over the messages.
_SQS_CALL = threading.local()
_queue_attributes = _sqs_models.Queue.attributes.fget


def _attributes(self):
    memo = getattr(_SQS_CALL, "memo", None)
    if memo is None:
        return _queue_attributes(self)
    found = memo.get(id(self))
    if found is None:
        found = memo[id(self)] = _queue_attributes(self)
    return found


def _one_sqs_call(method):
    @functools.wraps(method)
    def wrapped(*args, **kwargs):
        if getattr(_SQS_CALL, "memo", None) is not None:
            return method(*args, **kwargs)
        _SQS_CALL.memo = {}
        try:
            return method(*args, **kwargs)
        finally:
            _SQS_CALL.memo = None

    return wrapped


def _count(queue, keep):
    now = _now_ms()
    return sum(1 for m in queue._messages if keep(now > m.visible_at, now < m.delayed_until))


_sqs_models.Queue.attributes = property(_attributes)
_sqs_models.Queue.approximate_number_of_messages = property(
    lambda q: _count(q, lambda visible, delayed: visible and not delayed)
)
_sqs_models.Queue.approximate_number_of_messages_not_visible = property(
    lambda q: _count(q, lambda visible, delayed: not visible)
)
_sqs_models.Queue.approximate_number_of_messages_delayed = property(
    lambda q: _count(q, lambda visible, delayed: delayed)
)
for _name in ("send_message", "send_message_batch", "get_queue_attributes"):
    setattr(_sqs_models.SQSBackend, _name, _one_sqs_call(getattr(_sqs_models.SQSBackend, _name)))


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


def _serve(argv):
    """moto's app on waitress, taking moto_server's `-H` and `-p`."""
    import argparse
    import os

    import waitress

    parser = argparse.ArgumentParser()
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, default=5000)
    args, _ = parser.parse_known_args(argv)
    os.environ.setdefault("MOTO_PORT", str(args.port))
    app = DomainDispatcherApplication(create_backend_app)
    app.debug = True
    waitress.serve(
        app,
        host=args.host,
        port=args.port,
        threads=16,
        connection_limit=2000,
        channel_timeout=300,
        _quiet=True,
    )


# Python's full garbage collection walks every object the server holds, and moto holds every
# item, stream record and message it was given: under the benchmarks' load that was a pause
# of 100 to 220 ms every few seconds, all requests waiting. After each full collection the
# survivors are frozen (moved out of the collector's sight, as `gc.freeze` does before a
# fork), so the next one walks only what came since: pauses of a few ms to about 50. The cost
# is that a reference cycle among frozen objects is never reclaimed, which an emulator that
# lives for a run can afford.
def _freeze_survivors(phase, info):
    if phase == "stop" and info["generation"] == 2:
        gc.freeze()


gc.callbacks.append(_freeze_survivors)


if __name__ == "__main__":
    try:
        import waitress  # noqa: F401
    except ImportError:
        main(sys.argv[1:])
    else:
        _serve(sys.argv[1:])
