/**
 * CBOR content is read only after the packet passed its login and budget checks (decoding an
 * adversarial 256 KiB map costs CPU, so nothing is spent on it for a client that may not send):
 * a CBOR_MSG with malformed CBOR from a client that has not logged in is answered
 * not_logged_in, not bad_cbor; from a logged-in client it is answered bad_cbor and the stream
 * goes on with the next packet. Real node, real sockets.
 */
import { test } from 'node:test';
import { sharedNodeClients } from '../support/serviceFixture.js';
import assert from 'node:assert/strict';
import { text, utf8 } from '../support/V1TestClient.js';
import { concat, isReliable, roundTrip, type Reliable } from '../support/serviceKit.js';
import { encodeCborMsgPacket, encodeSendPacket } from '../../edge/protocol/V1Encoder.js';
import { encodeCbor } from '../../edge/protocol/Cbor.js';

const { clients } = sharedNodeClients();

/** A map header announcing 3 entries, then a byte that starts no CBOR item. */
const MALFORMED = Uint8Array.of(0xa3, 0x61, 0x6b, 0xff);

test('before login, a CBOR_MSG with malformed CBOR is answered not_logged_in (its content is never read)', async () => {
  const c = await clients.tcp();
  c.raw(encodeCborMsgPacket(utf8('cb-target'), MALFORMED));
  assert.deepEqual(await c.next(), { kind: 'error', reason: 'not_logged_in' });
  // Still a usable connection: it logs in.
  assert.equal((await c.login('cb-late')).kind, 'login_ok');
});

test('after login, a CBOR_MSG with malformed CBOR is answered bad_cbor and the packets after it are handled', async () => {
  const a = await clients.user('cb-sender');
  const b = await clients.user('cb-recv');
  const good = encodeCbor({ text: 'hello' });
  a.raw(concat([encodeCborMsgPacket(utf8('cb-recv'), MALFORMED), encodeCborMsgPacket(utf8('cb-recv'), good), encodeSendPacket(utf8('cb-recv'), utf8('after'))]));
  assert.deepEqual(await a.next(), { kind: 'error', reason: 'bad_cbor' });
  const first = await b.next<Reliable>(isReliable);
  assert.deepEqual([...first.msg], [...good]);
  b.ack(first.msgId);
  const second = await b.next<Reliable>(isReliable);
  assert.equal(text(second.msg), 'after');
  b.ack(second.msgId);
  await roundTrip(a);
  assert.deepEqual(a.unconsumed(), []);
});
