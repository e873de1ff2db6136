#!/usr/bin/env node
/**
 * A minimal interactive v1 client for trying a node by hand: logs in over TCP, sends each
 * input line `user: text` as a SEND, prints every delivery and acknowledges it, and answers
 * `/status user` with GET_STATUS. Usage: node dist/bin/v1chat.js --user alice [--port 8085]
 * [--host 127.0.0.1] [--token JWT]
 */
import { connect } from 'node:net';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { V1ClientDecoder } from '../edge/protocol/V1ClientDecoder.js';
import { encodeAckPacket, encodeGetStatusPacket, encodeLoginPacket, encodeSendPacket } from '../edge/protocol/V1Encoder.js';

const { values } = parseArgs({
  options: { user: { type: 'string' }, port: { type: 'string', default: '8085' }, host: { type: 'string', default: '127.0.0.1' }, token: { type: 'string' } },
});
if (values.user === undefined) {
  console.error('usage: v1chat --user NAME [--port 8085] [--host 127.0.0.1] [--token JWT]');
  process.exit(2);
}
const enc = new TextEncoder();
const dec = new TextDecoder();
const sock = connect(Number(values.port), values.host);
const decoder = new V1ClientDecoder();
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
        break;
      case 'reliable_msg':
        console.log(`< ${dec.decode(f.msg)}`);
        sock.write(encodeAckPacket(f.msgId));
        break;
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
  process.exit(0);
});
sock.on('error', (e) => {
  console.error(`cannot connect: ${e.message}`);
  process.exit(1);
});
createInterface({ input: process.stdin }).on('line', (line) => {
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
});
