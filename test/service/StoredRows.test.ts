/**
 * Rows written by the release that stored v1 bytes stay readable: kind 0 is the payload of a
 * RELIABLE_MSG (here an E2EE_DELIVERY frame, and a plain message), kind 1 a bare v1 frame (a
 * READ_RECEIPT_RELAY kept for an offline user). Written straight into a data directory with
 * OfflineMailbox in that layout, then a node started on it: at login the client receives
 * exactly the old bytes, in stored order (RELIABLE_MSG with the old payload, the bare receipt
 * frame), the receipt is handed over once and the messages are removed once ACKed. Real LMDB,
 * real node, real sockets.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { OfflineMailbox } from '../../core/OfflineMailbox.js';
import { encodeE2eeDeliveryFrame, encodeReadReceiptRelayFrame } from '../../edge/protocol/V1Encoder.js';
import { encodeCbor } from '../../edge/protocol/Cbor.js';
import type { ServerFrame } from '../../edge/protocol/V1Packets.js';
import { startTestNode, type TestNode } from '../support/irisNode.js';
import { openStorage, storageEnv } from '../support/storage.js';
import { V1TestClient, text, utf8 } from '../support/V1TestClient.js';
import { drainToMarker, isReliable, roundTrip, type Reliable } from '../support/serviceKit.js';

const dir = mkdtempSync(join(tmpdir(), 'iris-old-rows-'));
const clients: V1TestClient[] = [];
let t: TestNode | null = null;
after(async () => {
  for (const c of clients) c.close();
  await t?.stop({ keepData: true });
  rmSync(dir, { recursive: true, force: true });
});

/** Kinds of the release that stored v1 bytes. */
const OLD_RELIABLE_PAYLOAD = 0;
const OLD_BARE_FRAME = 1;

test('kind 0 and kind 1 rows of the old layout are delivered as exactly the old bytes, in order, and removed once ACKed or handed over', async () => {
  const e2ee = encodeE2eeDeliveryFrame(utf8('old-alice'), encodeCbor({ v: 1, dh: new Uint8Array(32).fill(9) }), Uint8Array.of(0, 1, 2, 250, 251));
  const receipt = encodeReadReceiptRelayFrame(new Uint8Array(16).fill(0xab), utf8('old-carol'), 1_700_000_000_123);
  const plain = Uint8Array.of(0x68, 0x69, 0x00, 0xff);
  const storage = openStorage(dir);
  const opened = OfflineMailbox.open(storageEnv(storage));
  assert.ok(opened.ok);
  const bob = utf8('old-bob');
  const rows: Array<[Uint8Array, string, number]> = [
    [e2ee, 'old-alice', OLD_RELIABLE_PAYLOAD],
    [receipt, 'old-carol', OLD_BARE_FRAME],
    [plain, 'old-dave', OLD_RELIABLE_PAYLOAD],
  ];
  for (const [payload, sender, kind] of rows) {
    const r = await opened.mailbox.append(bob, payload, { sender: utf8(sender), sentAtMs: 1_700_000_000_000, kind });
    assert.ok(r.ok);
  }
  await storage.close();

  t = await startTestNode({}, dir);
  const c = await V1TestClient.tcp(t.node.tcpPort);
  clients.push(c);
  assert.equal((await c.login('old-bob')).kind, 'login_ok');
  const frames: ServerFrame[] = [];
  for (let i = 0; i < 3; i++) frames.push(await c.next());
  assert.deepEqual(
    frames.map((f) => f.kind),
    ['reliable_msg', 'read_receipt_relay', 'reliable_msg'],
  );
  const [first, relay, third] = frames as [Reliable, Extract<ServerFrame, { kind: 'read_receipt_relay' }>, Reliable];
  assert.deepEqual([...first.msg], [...e2ee]);
  assert.deepEqual([...third.msg], [...plain]);
  assert.deepEqual([[...relay.msgId], text(relay.reader), relay.timestampMs], [[...new Uint8Array(16).fill(0xab)], 'old-carol', 1_700_000_000_123n]);
  c.ack(first.msgId);
  c.ack(third.msgId);
  await roundTrip(c);

  // A second login gets nothing of them: acknowledged messages are gone, the receipt was handed over.
  const again = await V1TestClient.tcp(t.node.tcpPort);
  clients.push(again);
  assert.equal((await again.login('old-bob')).kind, 'login_ok');
  const sender = await V1TestClient.tcp(t.node.tcpPort);
  clients.push(sender);
  assert.equal((await sender.login('old-erin')).kind, 'login_ok');
  sender.send('old-bob', 'marker');
  assert.deepEqual(await drainToMarker(again, 'marker'), []);
  assert.deepEqual(
    again.unconsumed().filter((f) => f.kind === 'read_receipt_relay' || isReliable(f)),
    [],
  );
});
