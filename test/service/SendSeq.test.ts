/**
 * SEND_SEQ: deliveries of one (sender, target) pair respect seq order and a repeated seq is
 * never delivered twice, also after the sender reconnects and after the node restarts on
 * the same data directory.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startTestNode } from '../support/irisNode.js';
import { V1TestClient } from '../support/V1TestClient.js';
import { encodeGetStatusPacket, encodeSendSeqPacket } from '../../edge/protocol/V1Encoder.js';
import { utf8 } from '../support/V1TestClient.js';

const seqSend = (c: V1TestClient, to: string, seq: number, msg: string) => c.raw(encodeSendSeqPacket(utf8(to), BigInt(seq), utf8(msg)));
/** A round trip on the sender's connection: everything sent before it has been routed. */
async function routed(c: V1TestClient): Promise<void> {
  c.raw(encodeGetStatusPacket(utf8('nobody')));
  await c.next((f) => f.kind === 'status');
}

test('repeated and late seqs are dropped; new ones arrive in seq order, across reconnect and restart', async () => {
  let t = await startTestNode();
  const clients: V1TestClient[] = [];
  try {
    const open = async (user: string) => {
      const c = await V1TestClient.tcp(t.node.tcpPort);
      clients.push(c);
      await c.login(user);
      return c;
    };
    let a = await open('seq-alice');
    const b = await open('seq-bob');
    seqSend(a, 'seq-bob', 1, 'one');
    seqSend(a, 'seq-bob', 2, 'two');
    seqSend(a, 'seq-bob', 2, 'two again');
    seqSend(a, 'seq-bob', 1, 'one late');
    seqSend(a, 'seq-bob', 5, 'five');
    assert.deepEqual(await b.receiveAndAck(3), ['one', 'two', 'five']);
    // Reconnect: the sender's history is kept by the node, not the connection.
    a.close();
    a = await open('seq-alice');
    seqSend(a, 'seq-bob', 5, 'five again');
    seqSend(a, 'seq-bob', 6, 'six');
    assert.deepEqual(await b.receiveAndAck(1), ['six']);
    await routed(a);
    await routed(b); // the ACKs are handled before the restart
    // Restart on the same data: still remembered.
    for (const c of clients) c.close();
    const dir = t.dir;
    await t.stop({ keepData: true });
    t = await startTestNode({}, dir);
    a = await open('seq-alice');
    const b2 = await open('seq-bob');
    seqSend(a, 'seq-bob', 6, 'six again');
    seqSend(a, 'seq-bob', 7, 'seven');
    assert.deepEqual(await b2.receiveAndAck(1), ['seven']);
    await routed(a);
    await assert.rejects(b2.next((f) => f.kind === 'reliable_msg', 300));
  } finally {
    for (const c of clients) c.close();
    await t.stop();
  }
});
