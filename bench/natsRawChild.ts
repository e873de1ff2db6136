/**
 * A raw NATS client process for the distribution bench's reference figure: `sub` counts
 * messages on one subject and reports when it has them all; `pub` publishes them as fast as
 * the client lets it. Talks to the bench over the IPC channel (`fork`).
 */
import { connect } from '@nats-io/transport-node';

const [role, server, subject, countText, sizeText] = process.argv.slice(2);
const count = Number(countText);
const payload = new Uint8Array(Number(sizeText));
const send = (m: object): void => void process.send!(m);

const nc = await connect({ servers: [server!] });
if (role === 'sub') {
  let got = 0;
  nc.subscribe(subject!, {
    callback: () => {
      if (++got === count) send({ t: 'done' });
    },
  });
  await nc.flush();
  send({ t: 'ready' });
} else {
  send({ t: 'ready' });
  process.on('message', (m: { t: string }) => {
    if (m.t !== 'go') return;
    for (let i = 0; i < count; i++) nc.publish(subject!, payload);
    void nc.flush().then(() => send({ t: 'sent' }));
  });
}
process.on('message', (m: { t: string }) => {
  if (m.t === 'exit') void nc.close().then(() => process.exit(0));
});
