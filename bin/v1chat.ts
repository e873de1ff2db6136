#!/usr/bin/env node
/**
 * A minimal v1 client for trying a node by hand and for checking a path in a runbook: logs in
 * over TCP, sends each input line `user: text` as a SEND, prints every delivery and
 * acknowledges it, and answers `/status user` with GET_STATUS. For scripts: `--send 'user:
 * text'` sends once logged in, `--expect TEXT` exits 0 once a delivery containing TEXT arrived
 * (1 at `--timeout`), and `--echo USER` sends every delivery back to USER as `echo: <text>`,
 * so a probe pair proves a message went through and back. Input lines wait for the login.
 * Usage: node dist/bin/v1chat.js --user alice [--port 8085] [--host 127.0.0.1] [--token JWT]
 */
import { connect } from 'node:net';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { V1ClientDecoder } from '../edge/protocol/V1ClientDecoder.js';
import { encodeAckPacket, encodeGetStatusPacket, encodeLoginPacket, encodeSendPacket } from '../edge/protocol/V1Encoder.js';

/** `--timeout` default with `--expect`, seconds. */
const EXPECT_TIMEOUT_DEFAULT_S = 30;
/** What `--echo` puts before a message it sends back (and never echoes itself: no loops). */
const ECHO_PREFIX = 'echo: ';

const USAGE =
  'usage: v1chat --user NAME [--port 8085] [--host 127.0.0.1] [--token JWT]\n' +
  "              [--send 'user: text']... [--expect TEXT [--timeout S]] [--echo USER]";
let values: { user?: string; port: string; host: string; token?: string; send?: string[]; expect?: string; timeout?: string; echo?: string };
try {
  ({ values } = parseArgs({
    options: {
      user: { type: 'string' },
      port: { type: 'string', default: '8085' },
      host: { type: 'string', default: '127.0.0.1' },
      token: { type: 'string' },
      send: { type: 'string', multiple: true },
      expect: { type: 'string' },
      timeout: { type: 'string' },
      echo: { type: 'string' },
    },
  }));
} catch (err) {
  console.error(`${(err as Error).message}\n${USAGE}`);
  process.exit(2);
}
const timeoutS = Number(values.timeout ?? EXPECT_TIMEOUT_DEFAULT_S);
if (values.user === undefined || !(timeoutS > 0)) {
  console.error(USAGE);
  process.exit(2);
}
const enc = new TextEncoder();
const dec = new TextDecoder();
const sock = connect(Number(values.port), values.host);
const decoder = new V1ClientDecoder();
let loggedIn = false;
let expected = false;
const waiting: string[] = [];
if (values.expect !== undefined) {
  setTimeout(() => {
    console.error(`v1chat: no message containing "${values.expect}" within ${timeoutS} s`);
    process.exit(1);
  }, timeoutS * 1000).unref();
}

/** Send an input line (`user: text` or `/status user`); lines wait until the login is done. */
function input(line: string): void {
  if (!loggedIn) {
    waiting.push(line);
    return;
  }
  const st = /^\/status\s+(.+)$/.exec(line);
  if (st) {
    sock.write(encodeGetStatusPacket(enc.encode(st[1]!.trim())));
    return;
  }
  const m = /^([^:]+):\s?(.*)$/.exec(line);
  if (!m) {
    console.log('type "user: message" or "/status user"');
    return;
  }
  sock.write(encodeSendPacket(enc.encode(m[1]!.trim()), enc.encode(m[2]!)));
}

sock.on('connect', () => sock.write(encodeLoginPacket(enc.encode(values.user!), values.token === undefined ? null : enc.encode(values.token))));
sock.on('data', (d: Buffer) => {
  decoder.push(new Uint8Array(d));
  for (;;) {
    const r = decoder.next();
    if (r.kind === 'need_more') return;
    if (r.kind === 'error') {
      console.log(`! undecodable frame: ${r.code}`);
      return;
    }
    const f = r.frame;
    switch (f.kind) {
      case 'login_ok':
        console.log(`logged in as ${values.user}; type "bob: hello" to send, "/status bob" for presence`);
        loggedIn = true;
        for (const line of [...(values.send ?? []), ...waiting.splice(0)]) input(line);
        break;
      case 'reliable_msg': {
        const text = dec.decode(f.msg);
        console.log(`< ${text}`);
        sock.write(encodeAckPacket(f.msgId));
        if (values.echo !== undefined && !text.startsWith(ECHO_PREFIX)) input(`${values.echo}: ${ECHO_PREFIX}${text}`);
        // The ACK is written before the socket ends: the node applies what it read.
        if (values.expect !== undefined && text.includes(values.expect) && !expected) {
          expected = true;
          sock.end(() => process.exit(0));
        }
        break;
      }
      case 'status':
        console.log(`${dec.decode(f.user)} is ${f.online ? 'online' : `offline (last seen ${f.lastSeen === 0n ? 'never' : new Date(Number(f.lastSeen) * 1000).toISOString()})`}`);
        break;
      case 'error':
        console.log(`! error: ${f.reason}`);
        break;
      case 'rate_limited':
        console.log(`! rate limited: retry after ${f.retryAfterMs} ms`);
        break;
      default:
        console.log(`(${f.kind})`);
    }
  }
});
sock.on('close', () => {
  console.log('connection closed');
  process.exit(values.expect === undefined || expected ? 0 : 1);
});
sock.on('error', (e) => {
  console.error(`cannot connect: ${e.message}`);
  process.exit(1);
});
if (process.stdin.isTTY || (values.send === undefined && values.expect === undefined && values.echo === undefined)) {
  createInterface({ input: process.stdin }).on('line', input);
}
