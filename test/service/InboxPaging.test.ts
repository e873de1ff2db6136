/**
 * A login never loads a large stored inbox at once: the session reads it page by page
 * (inbox_page_messages / inbox_page_bytes), each page reading about its own bytes from
 * storage, and the connection writes it within its delivery window. 300 stored messages of
 * 64 KiB (19 MB) reach the client all, in order, each once, while no single read of the
 * inbox takes more than about a page. Real node in this process, real sockets and LMDB.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { startTestNode, type TestNode } from '../support/irisNode.js';
import { V1TestClient, utf8 } from '../support/V1TestClient.js';
import { isReliable, roundTrip, type Reliable } from '../support/serviceKit.js';
import { nodeIdle } from '../support/nodeIdle.js';
import { OfflineMailbox } from '../../core/OfflineMailbox.js';
import { CORE_DEFAULTS } from '../../core/CoreSettings.js';
import type { StorageRange, StorageTable } from '../../runtime/Env.js';
import { encodeSendPacket } from '../../edge/protocol/V1Encoder.js';

const nodes: TestNode[] = [];
const clients: V1TestClient[] = [];
after(async () => {
  for (const c of clients) c.close();
  for (const n of nodes) await n.stop();
});

/** Every read of a stored inbox: values taken from storage and values returned, with their bytes. */
const reads: Array<{ readValues: number; readBytes: number; returned: number; returnedBytes: number }> = [];
const list = OfflineMailbox.prototype.list;
OfflineMailbox.prototype.list = function (this: OfflineMailbox, ...args: Parameters<typeof list>) {
  const table = (this as unknown as { inbox: StorageTable }).inbox;
  const getRange = table.getRange;
  let readValues = 0;
  let readBytes = 0;
  table.getRange = (r: StorageRange) => {
    const out = getRange.call(table, r);
    readValues += out.length;
    for (const e of out) readBytes += e.value.length;
    return out;
  };
  try {
    const r = list.apply(this, args);
    if (r.ok && r.entries.length > 0) reads.push({ readValues, readBytes, returned: r.entries.length, returnedBytes: r.entries.reduce((n, e) => n + e.storedBytes, 0) });
    return r;
  } finally {
    table.getRange = getRange;
  }
};

test('300 stored messages of 64 KiB are delivered at login all, in order, each once, read in pages of at most inbox_page_bytes', async () => {
  const n = await startTestNode();
  nodes.push(n);
  const sender = await V1TestClient.tcp(n.node.tcpPort);
  clients.push(sender);
  assert.equal((await sender.login('ip-sender')).kind, 'login_ok');
  const N = 300;
  const body = (i: number): Uint8Array => {
    const b = new Uint8Array(65_535).fill(i & 0xff);
    b[0] = i >>> 8;
    b[1] = i & 0xff;
    return b;
  };
  for (let i = 0; i < N; i++) sender.raw(encodeSendPacket(utf8('ip-recv'), body(i)));
  await roundTrip(sender, 20_000);
  await nodeIdle(n);

  reads.length = 0;
  const r = await V1TestClient.tcp(n.node.tcpPort);
  clients.push(r);
  assert.equal((await r.login('ip-recv')).kind, 'login_ok');
  const order: number[] = [];
  for (let i = 0; i < N; i++) {
    const f = await r.next<Reliable>(isReliable, 20_000);
    assert.equal(f.msg.length, 65_535);
    order.push((f.msg[0]! << 8) | f.msg[1]!);
    r.ack(f.msgId);
  }
  assert.deepEqual(
    order,
    Array.from({ length: N }, (_, i) => i),
  );
  await nodeIdle(n);
  await roundTrip(r);
  assert.deepEqual(r.unconsumed().filter(isReliable), [], 'a message was delivered twice');

  const stored = 65_535 + 12 + 'ip-sender'.length;
  const pageBytes = CORE_DEFAULTS.inbox_page_bytes;
  assert.ok(reads.length >= Math.ceil((N * stored) / pageBytes), `the inbox was read in ${reads.length} pages`);
  for (const p of reads) {
    assert.ok(p.returned <= CORE_DEFAULTS.inbox_page_messages && (p.returned === 1 || p.returnedBytes <= pageBytes), `a page of ${p.returned} messages, ${p.returnedBytes} bytes`);
    // What a page reads from storage: its own messages and at most a few beyond.
    assert.ok(p.readBytes <= pageBytes + 16 * stored, `a page of ${p.returnedBytes} bytes read ${p.readValues} values (${p.readBytes} bytes) from storage`);
  }
});
