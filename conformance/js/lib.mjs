// Shared helpers for the conformance scenarios: environment, a hard timeout, the SDK for the
// selected protocol, payload encoding, the server HTTP API, event queues and assertions.
//
// Every scenario is a standalone script run by crates/server/tests/js.rs against a real
// `gyre serve`; it exits 0 only after its assertions held, and non-zero with a message on
// stderr otherwise.

import { appendFileSync } from 'node:fs';
import { basename } from 'node:path';
import { isDeepStrictEqual, inspect } from 'node:util';
import WebSocket from 'ws';
import EventSource from 'eventsource';

function requireEnv(name) {
  const value = process.env[name];
  if (!value) {
    console.error(`FAIL: environment variable ${name} is not set`);
    process.exit(2);
  }
  return value;
}

export const WS_URL = requireEnv('GYRE_WS_URL');
export const API_URL = requireEnv('GYRE_API_URL');
export const API_KEY = requireEnv('GYRE_API_KEY');
export const PROTOCOL = process.env.GYRE_PROTOCOL || 'json';
if (PROTOCOL !== 'json' && PROTOCOL !== 'protobuf') {
  console.error(`FAIL: GYRE_PROTOCOL must be json or protobuf, not ${PROTOCOL}`);
  process.exit(2);
}

const sdk = PROTOCOL === 'protobuf' ? await import('centrifuge/build/protobuf') : await import('centrifuge');
export const { Centrifuge, State, SubscriptionState } = sdk;

let currentStep = 'start';
const started = Date.now();

/** Names the step being run; printed on timeout or failure. */
export function step(name) {
  currentStep = name;
  log(`step: ${name}`);
}

// GYRE_JS_LOG_DIR=<dir>: also append every log line to <dir>/<script>-<protocol>.log (for
// looking at runs that passed).
const logFile = process.env.GYRE_JS_LOG_DIR
  ? `${process.env.GYRE_JS_LOG_DIR}/${basename(process.argv[1] || 'script', '.mjs')}-${PROTOCOL}.log`
  : null;

/** Prints a progress line on stdout (shown by the Rust side when the test fails). */
export function log(...args) {
  const ms = String(Date.now() - started).padStart(5);
  const line = `[${ms} ms] ${args.map((a) => (typeof a === 'string' ? a : inspect(a, { depth: 6 }))).join(' ')}`;
  console.log(line);
  if (logFile) {
    appendFileSync(logFile, `${line}\n`);
  }
}

/** An assertion failure. */
export class Failure extends Error {}

/** Fails the scenario. */
export function fail(message) {
  throw new Failure(message);
}

export function assert(cond, message) {
  if (!cond) {
    fail(`assertion failed: ${message}`);
  }
}

export function assertEq(actual, expected, what) {
  if (!isDeepStrictEqual(actual, expected)) {
    fail(`${what}: expected ${inspect(expected, { depth: 8 })}, got ${inspect(actual, { depth: 8 })}`);
  }
}

/** Sleeps `ms` milliseconds. */
export function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Runs a scenario: `fn` gets nothing and must resolve after its assertions. The process
 * exits 1 on a failure, an exception or after `timeoutMs`; 0 when `fn` resolved.
 */
export function run(name, fn, timeoutMs = 15000) {
  const timer = setTimeout(() => {
    console.error(`FAIL [${name}/${PROTOCOL}]: timed out after ${timeoutMs} ms during step "${currentStep}"`);
    process.exit(1);
  }, timeoutMs);
  process.on('unhandledRejection', (e) => {
    console.error(`FAIL [${name}/${PROTOCOL}]: unhandled rejection during step "${currentStep}":`, e);
    process.exit(1);
  });
  log(`scenario ${name} (${PROTOCOL}) against ${WS_URL}`);
  Promise.resolve()
    .then(fn)
    .then(
      () => {
        clearTimeout(timer);
        log(`PASS [${name}/${PROTOCOL}]`);
        process.exit(0);
      },
      (e) => {
        clearTimeout(timer);
        const message = e instanceof Failure ? e.message : inspect(e, { depth: 6 });
        console.error(`FAIL [${name}/${PROTOCOL}] at step "${currentStep}": ${message}`);
        process.exit(1);
      },
    );
}

/** A client for the selected protocol, with `ws` as its WebSocket (on `url`, default node). */
export function newClient(options = {}, url = WS_URL) {
  return new Centrifuge(endpoints(url), {
    websocket: WebSocket,
    eventsource: EventSource,
    emulationEndpoint: `${httpBase(url)}/emulation`,
    minReconnectDelay: 100,
    maxReconnectDelay: 1000,
    timeout: 5000,
    debug: process.env.GYRE_JS_DEBUG === '1',
    ...options,
  });
}

/**
 * The transport the scenario runs over: GYRE_TRANSPORT=websocket (the default), http_stream
 * or sse (bidirectional emulation, commands through /emulation).
 */
export const TRANSPORT = process.env.GYRE_TRANSPORT || 'websocket';
if (!['websocket', 'http_stream', 'sse'].includes(TRANSPORT)) {
  console.error(`FAIL: GYRE_TRANSPORT must be websocket, http_stream or sse, not ${TRANSPORT}`);
  process.exit(2);
}

/** `http://host:port` of a server's WebSocket URL. */
function httpBase(wsUrl) {
  return wsUrl.replace(/^ws/, 'http').replace(/\/connection\/websocket$/, '');
}

/** The SDK's endpoint argument for a server's WebSocket URL over TRANSPORT. */
function endpoints(wsUrl) {
  if (TRANSPORT === 'websocket') {
    return wsUrl;
  }
  return [{ transport: TRANSPORT, endpoint: `${httpBase(wsUrl)}/connection/${TRANSPORT}` }];
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A payload as the SDK takes it: JSON value for json, UTF-8 JSON text bytes for protobuf. */
export function enc(value) {
  return PROTOCOL === 'protobuf' ? encoder.encode(JSON.stringify(value)) : value;
}

/** The JSON value of a payload the SDK delivered (bytes in protobuf mode). */
export function dec(data) {
  if (PROTOCOL === 'json') {
    return data;
  }
  if (!(data instanceof Uint8Array)) {
    fail(`protobuf payload is not bytes: ${inspect(data)}`);
  }
  const text = decoder.decode(data);
  try {
    return JSON.parse(text);
  } catch (e) {
    fail(`protobuf payload is not JSON text: ${JSON.stringify(text)}`);
  }
}

/** An offset as a plain number (protobuf may give a Long-like object). */
export function num(offset) {
  if (offset && typeof offset === 'object' && 'low' in offset) {
    return (offset.high >>> 0) * 4294967296 + (offset.low >>> 0);
  }
  return Number(offset ?? 0);
}

/** Calls the server HTTP API; returns `result`, throws on an HTTP or API error. */
export async function api(method, body) {
  const response = await fetch(`${API_URL}/${method}`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', 'X-API-Key': API_KEY },
    body: JSON.stringify(body),
  });
  const text = await response.text();
  if (response.status !== 200) {
    fail(`api ${method}: HTTP ${response.status}: ${text}`);
  }
  let reply;
  try {
    reply = JSON.parse(text);
  } catch (e) {
    fail(`api ${method}: not JSON: ${text}`);
  }
  if (reply.error) {
    fail(`api ${method}: error ${JSON.stringify(reply.error)}`);
  }
  return reply.result;
}

/**
 * Records events of an emitter in order, so a scenario can both await the next event of a
 * kind and check the whole sequence afterwards.
 */
export class Events {
  constructor(emitter, names, label = '') {
    this.label = label;
    this.all = [];
    this.pending = [];
    this.waiters = [];
    for (const name of names) {
      emitter.on(name, (ctx) => {
        const event = { name, ctx };
        log(`${label}${label ? ' ' : ''}event ${name}`, summarize(name, ctx));
        this.all.push(event);
        this.pending.push(event);
        this.wake();
      });
    }
  }

  wake() {
    for (const waiter of [...this.waiters]) {
      const index = this.pending.findIndex((e) => waiter.match(e));
      if (index >= 0) {
        const [event] = this.pending.splice(index, 1);
        this.waiters.splice(this.waiters.indexOf(waiter), 1);
        clearTimeout(waiter.timer);
        waiter.resolve(event.ctx);
      }
    }
  }

  /**
   * The next unconsumed event named `name` (optionally matching `pred`), waiting up to
   * `timeoutMs`. Earlier events of other kinds stay unconsumed.
   */
  next(name, timeoutMs = 5000, pred = () => true) {
    return new Promise((resolve, reject) => {
      const waiter = {
        match: (e) => e.name === name && pred(e.ctx),
        resolve,
        timer: setTimeout(() => {
          this.waiters.splice(this.waiters.indexOf(waiter), 1);
          reject(
            new Failure(
              `${this.label} no '${name}' event within ${timeoutMs} ms; events so far: ${this.names().join(', ')}`,
            ),
          );
        }, timeoutMs),
      };
      this.waiters.push(waiter);
      this.wake();
    });
  }

  /** Unconsumed events named `name`, consuming them. */
  take(name) {
    const taken = this.pending.filter((e) => e.name === name);
    this.pending = this.pending.filter((e) => e.name !== name);
    return taken.map((e) => e.ctx);
  }

  /** Every event name recorded so far, in order. */
  names() {
    return this.all.map((e) => e.name);
  }

  /** Every recorded event named `name` (consumed or not), in order. */
  of(name) {
    return this.all.filter((e) => e.name === name).map((e) => e.ctx);
  }
}

function summarize(name, ctx) {
  if (!ctx || typeof ctx !== 'object') {
    return ctx;
  }
  const out = {};
  for (const [k, v] of Object.entries(ctx)) {
    if (k === 'data' && PROTOCOL === 'protobuf' && v instanceof Uint8Array) {
      const text = decoder.decode(v);
      out[k] = text.length > 120 ? `<${v.length} bytes> ${text.slice(0, 120)}…` : text;
    } else if (k === 'data' && v && typeof v === 'object') {
      const text = JSON.stringify(v);
      out[k] = text.length > 120 ? `${text.slice(0, 120)}…` : v;
    } else if (k === 'offset') {
      out[k] = num(v);
    } else if (k === 'streamPosition' && v) {
      out[k] = { offset: num(v.offset), epoch: v.epoch };
    } else if (k === 'error' && v) {
      out[k] = { code: v.code, message: v.message };
    } else if (k === 'info' && v) {
      out[k] = { user: v.user, client: v.client };
    } else if (typeof v !== 'function') {
      out[k] = v;
    }
  }
  return out;
}

/** Client-level event names recorded by default. */
export const CLIENT_EVENTS = [
  'state',
  'connecting',
  'connected',
  'disconnected',
  'error',
  'subscribed',
  'subscribing',
  'unsubscribed',
  'publication',
  'join',
  'leave',
];

/** Subscription-level event names recorded by default. */
export const SUB_EVENTS = ['state', 'subscribing', 'subscribed', 'unsubscribed', 'publication', 'join', 'leave', 'error'];
