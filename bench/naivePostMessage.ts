/**
 * The naive baseline for cross-scheduler messaging (P2): one structured-clone postMessage per
 * message between two threads, no batching. Run as a worker in role `send` or `receive`.
 */
import { parentPort, workerData, type MessagePort } from 'node:worker_threads';

interface Data {
  role: 'send' | 'receive';
  count: number;
}

const data = workerData as Data;
const control = parentPort as MessagePort;

control.once('message', (m: { port: MessagePort }) => {
  const port = m.port;
  if (data.role === 'receive') {
    let n = 0;
    port.on('message', (msg: { to: number[]; from: number[]; msg: number }) => {
      if (msg.msg !== n) throw new Error('out of order');
      n++;
      if (n === data.count) {
        control.postMessage({ done: n });
        port.close();
      }
    });
    control.postMessage({ ready: true });
  } else {
    control.once('message', () => {
      const to = [1, 2, 12345, 7, 0];
      const from = [1, 1, 54321, 3, 0];
      let i = 0;
      const chunk = () => {
        const end = Math.min(data.count, i + 1000);
        for (; i < end; i++) port.postMessage({ to, from, msg: i });
        if (i < data.count) setImmediate(chunk);
      };
      chunk();
    });
    control.postMessage({ ready: true });
  }
});
