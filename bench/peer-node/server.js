// The peer: a CXone webhook receiver as the integration guides write one by hand, in
// Node.js and Express. It verifies the X-Nexus HMAC-SHA256 signature, remembers deliveries
// in memory to drop repeats, and normalises the event with JSONPath. `make bench` measures
// it next to cxbridge's webhook-receiver with the same harness and the same requests.
//
//   PORT=3100 WEBHOOK_SECRET=... node server.js

'use strict';

const crypto = require('node:crypto');
const express = require('express');
const { JSONPath } = require('jsonpath-plus');

const PORT = Number(process.env.PORT || 3100);
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

app.use((err, _req, res, _next) => {
  fail(res, err.status || 500, err.type === 'entity.parse.failed' ? 'malformed_json' : 'error');
});

app.listen(PORT, '127.0.0.1', () => {
  process.stdout.write(`ready ${PORT}\n`);
});
