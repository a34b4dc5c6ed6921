// The peer: a CXone webhook receiver as the integration guides write one by hand, in
// Node.js and Express. It verifies the X-Nexus HMAC-SHA256 signature, remembers deliveries
// in memory to drop repeats, and normalises the event with JSONPath. `make bench` measures
// it next to cxbridge's webhook-receiver with the same harness and the same requests.
//
//   PORT=3100 WEBHOOK_SECRET=... node server.js
//
// With PEER_STORE=aws it does the durable work cxbridge does instead, with the AWS SDK for
// JavaScript v3: a conditional PutItem against replays of the signature, a conditional
// UpdateItem that claims the delivery, SendMessageBatch of the event, and a PutItem that
// marks the delivery completed. TABLE and QUEUE_URL name the table and queue; AWS_ENDPOINT_URL,
// AWS_REGION and the credentials come from the environment.

'use strict';

const crypto = require('node:crypto');
const express = require('express');
const { JSONPath } = require('jsonpath-plus');

const PORT = Number(process.env.PORT || 3100);
const DURABLE = process.env.PEER_STORE === 'aws';
const SECRET = process.env.WEBHOOK_SECRET || '';
const TOLERANCE_SECS = 300;
const SEEN_TTL_MS = 24 * 60 * 60 * 1000;

// Which JSONPath feeds which normalised field, per channel (the same mapping cxbridge
// ships by default).
const CONTEXT = {
  direction: '$.data.direction',
  queue: '$.data.queue.name',
  skill: '$.data.skill.name',
};
const CHANNELS = {
  voice: {
    customer: [{ path: '$.data.customer.phoneNumber', type: 'phone' }],
    context: CONTEXT,
  },
  chat: {
    customer: [
      { path: '$.data.customer.email', type: 'email' },
      { path: '$.data.customer.phoneNumber', type: 'phone' },
    ],
    context: { ...CONTEXT, message: '$.data.message.body' },
  },
  sms: {
    customer: [{ path: '$.data.customer.phoneNumber', type: 'phone' }],
    context: { ...CONTEXT, message: '$.data.message.body' },
  },
};

// Delivery id -> when it was first seen.
const seen = new Map();

function first(path, json) {
  const found = JSONPath({ path, json, wrap: true });
  return found.length > 0 ? found[0] : undefined;
}

function verify(req) {
  const signature = req.get('x-nexus-signature-256') || '';
  const timestamp = req.get('x-nexus-timestamp') || '';
  const ts = Number(timestamp);
  if (!signature.startsWith('sha256=') || !Number.isInteger(ts)) return 'signature_missing';
  if (Math.abs(Date.now() / 1000 - ts) > TOLERANCE_SECS) return 'timestamp_too_old';
  const expected = crypto
    .createHmac('sha256', SECRET)
    .update(`${timestamp}.`)
    .update(req.rawBody)
    .digest();
  const given = Buffer.from(signature.slice('sha256='.length), 'hex');
  if (given.length !== expected.length || !crypto.timingSafeEqual(given, expected)) {
    return 'signature_mismatch';
  }
  return null;
}

function normalise(event) {
  const channel = first('$.data.channelType', event);
  const mapping = CHANNELS[channel];
  if (!mapping) return null;
  const customer = [];
  for (const { path, type } of mapping.customer) {
    const value = first(path, event);
    if (value !== undefined) customer.push({ type, value });
  }
  const context = {};
  for (const [name, path] of Object.entries(mapping.context)) {
    const value = first(path, event);
    if (value !== undefined) context[name] = value;
  }
  return {
    interactionId: first('$.data.id', event),
    channel,
    eventType: first('$.eventType', event),
    occurredAt: first('$.timestamp', event),
    customer,
    context,
  };
}

function fail(res, status, code) {
  res.status(status).json({ error: { code } });
}

// The durable store: the same DynamoDB items and SQS message cxbridge writes.
function awsStore() {
  const {
    DynamoDBClient,
    PutItemCommand,
    UpdateItemCommand,
    ConditionalCheckFailedException,
  } = require('@aws-sdk/client-dynamodb');
  const { SQSClient, SendMessageBatchCommand } = require('@aws-sdk/client-sqs');
  const endpoint = process.env.AWS_ENDPOINT_URL || undefined;
  const dynamodb = new DynamoDBClient({ endpoint });
  const sqs = new SQSClient({ endpoint });
  const table = process.env.TABLE;
  const queueUrl = process.env.QUEUE_URL;
  const day = 24 * 60 * 60;

  // The item that blocked a conditional put, or null when the put went through.
  async function conditionalPut(input) {
    try {
      await dynamodb.send(
        new PutItemCommand({ ...input, ReturnValuesOnConditionCheckFailure: 'ALL_OLD' }),
      );
      return null;
    } catch (err) {
      if (err instanceof ConditionalCheckFailedException) return err.Item || {};
      throw err;
    }
  }

  // The same for a conditional update.
  async function conditionalUpdate(input) {
    try {
      await dynamodb.send(
        new UpdateItemCommand({ ...input, ReturnValuesOnConditionCheckFailure: 'ALL_OLD' }),
      );
      return null;
    } catch (err) {
      if (err instanceof ConditionalCheckFailedException) return err.Item || {};
      throw err;
    }
  }

  return {
    // -> 'accepted'' | 'duplicate' | 'replayed' | 'in_progress' | 'conflict'
    async accept(delivery, signature, timestamp, rawBody, event) {
      const nowS = Math.floor(Date.now() / 1000);
      const replay = await conditionalPut({
        TableName: table,
        Item: {
          pk: { S: `replay#${signature}` },
          deliveryId: { S: delivery },
          expiresAt: { N: String(timestamp + TOLERANCE_SECS) },
        },
        ConditionExpression: 'attribute_not_exists(pk) OR expiresAt < :now',
        ExpressionAttributeValues: { ':now': { N: String(nowS) } },
      });
      if (replay && replay.deliveryId?.S !== delivery) return 'replayed';

      const hash = crypto.createHash('sha256').update(rawBody).digest('hex');
      const key = `delivery#${delivery}`;
      const claimed = await conditionalUpdate({
        TableName: table,
        Key: { pk: { S: key } },
        UpdateExpression:
          'SET #status = :in_progress, payloadHash = :hash, expiresAt = :expires, inProgressExpiresAt = :until',
        ConditionExpression:
          'attribute_not_exists(pk) OR expiresAt < :now OR (#status = :in_progress AND inProgressExpiresAt < :now_ms)',
        ExpressionAttributeNames: { '#status': 'status' },
        ExpressionAttributeValues: {
          ':hash': { S: hash },
          ':expires': { N: String(nowS + day) },
          ':until': { N: String(Date.now() + 30_000) },
          ':now': { N: String(nowS) },
          ':now_ms': { N: String(Date.now()) },
          ':in_progress': { S: 'in_progress' },
        },
      });
      if (claimed) {
        if (claimed.payloadHash?.S !== hash) return 'conflict';
        return claimed.status?.S === 'completed' ? 'duplicate' : 'in_progress';
      }

      const sent = await sqs.send(
        new SendMessageBatchCommand({
          QueueUrl: queueUrl,
          Entries: [
            {
              Id: '0',
              MessageBody: JSON.stringify(event),
              MessageAttributes: {
                deliveryId: { DataType: 'String', StringValue: delivery },
                route: { DataType: 'String', StringValue: 'events' },
                eventType: { DataType: 'String', StringValue: String(event.eventType) },
              },
            },
          ],
        }),
      );
      if (sent.Failed && sent.Failed.length > 0) throw new Error('the event was not enqueued');

      await dynamodb.send(
        new PutItemCommand({
          TableName: table,
          Item: {
            pk: { S: key },
            status: { S: 'completed' },
            payloadHash: { S: hash },
            expiresAt: { N: String(nowS + day) },
            response: { S: JSON.stringify({ status: 'accepted', deliveryId: delivery }) },
          },
        }),
      );
      return 'accepted';
    },
  };
}

const store = DURABLE ? awsStore() : null;

const app = express();
app.disable('x-powered-by');
app.use(
  express.json({
    limit: '256kb',
    verify: (req, _res, buf) => {
      req.rawBody = buf;
    },
  }),
);

app.post('/webhooks/cxone', (req, res) => {
  if (!req.rawBody) return fail(res, 415, 'unsupported_media_type');
  const problem = verify(req);
  if (problem) return fail(res, 401, problem);
  const delivery = req.get('x-nexus-delivery-id');
  if (!delivery) return fail(res, 400, 'delivery_id_missing');
  if (store) return acceptDurably(req, res, delivery);
  const now = Date.now();
  const before = seen.get(delivery);
  if (before !== undefined && now - before < SEEN_TTL_MS) {
    return res.status(200).json({ status: 'duplicate', deliveryId: delivery });
  }
  const event = normalise(req.body);
  if (!event) return fail(res, 422, 'unknown_channel');
  seen.set(delivery, now);
  res.status(202).json({ status: 'accepted', deliveryId: delivery, event });
});

async function acceptDurably(req, res, delivery) {
  const event = normalise(req.body);
  if (!event) return fail(res, 422, 'unknown_channel');
  const signature = req.get('x-nexus-signature-256').slice('sha256='.length);
  const timestamp = Number(req.get('x-nexus-timestamp'));
  try {
    const outcome = await store.accept(delivery, signature, timestamp, req.rawBody, event);
    switch (outcome) {
      case 'accepted':
        return res.status(202).json({ status: 'accepted', deliveryId: delivery });
      case 'duplicate':
        return res.status(200).json({ status: 'duplicate', deliveryId: delivery });
      case 'replayed':
        return fail(res, 409, 'replayed');
      case 'conflict':
        return fail(res, 409, 'idempotency_key_reused');
      default:
        return fail(res, 409, 'in_progress');
    }
  } catch (err) {
    process.stderr.write(`store unavailable: ${err.name}: ${err.message}\n`);
    return fail(res, 503, 'dependency_unavailable');
  }
}

app.use((err, _req, res, _next) => {
  fail(res, err.status || 500, err.type === 'entity.parse.failed' ? 'malformed_json' : 'error');
});

app.listen(PORT, '127.0.0.1', () => {
  process.stdout.write(`ready ${PORT}\n`);
});
