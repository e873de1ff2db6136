/**
 * A bare uWebSockets.js echo server (the native addon the node uses, no JS fallback): every
 * binary WebSocket message on /ws is sent straight back. The reference for delivery throughput;
 * prints `{"port":N}` on stdout once listening and exits on SIGTERM or when stdin closes.
 */
import { loadNativeUws } from '../../edge/listeners/UwsServer.js';

const loaded = loadNativeUws();
if (!loaded.ok) {
  console.error(loaded.reason);
  process.exit(1);
}
const uws = loaded.uws;
const app = uws.App();
app.ws('/ws', {
  compression: uws.DISABLED,
  maxPayloadLength: 2 * 1024 * 1024,
  maxBackpressure: 64 * 1024 * 1024,
  idleTimeout: 0,
  message: (ws, message, isBinary) => {
    ws.send(message, isBinary);
  },
});
app.listen('127.0.0.1', 0, (listenSocket) => {
  if (listenSocket === false) {
    console.error('uwsEcho: cannot listen');
    process.exit(1);
  }
  const port = uws.us_socket_local_port(listenSocket as unknown as import('uWebSockets.js').us_socket);
  process.stdout.write(JSON.stringify({ port }) + '\n');
});
const stop = () => process.exit(0);
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
process.stdin.on('end', stop);
process.stdin.on('close', stop);
process.stdin.resume();
