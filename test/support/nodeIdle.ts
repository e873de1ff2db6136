/**
 * For tests that run a node in this process: wait until the node has handled everything it
 * was sent (its main scheduler has no runnable process), with a deadline. A client that then
 * makes a round trip on its connection has received every frame written before.
 */
import type { TestNode } from './irisNode.js';

export async function nodeIdle(n: TestNode, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  // Three quiet looks in a row: a process woken by I/O or a settled write runs in between.
  for (let quiet = 0; quiet < 3; ) {
    if (Date.now() > deadline) throw new Error(`the node did not go idle within ${timeoutMs} ms`);
    await new Promise((r) => setImmediate(r));
    quiet = n.node.runtime.main.metrics().runQueue === 0 ? quiet + 1 : 0;
  }
}
