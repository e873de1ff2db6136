/**
 * The README's runtime example, run as written: a supervised GenServer on a two-scheduler
 * node answers a call, is restarted by its supervisor after a kill, and the node stops.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RuntimeNode } from '../../runtime/node/RuntimeNode.js';
import * as GenServer from '../../actors/GenServer.js';
import * as Supervisor from '../../actors/Supervisor.js';
import { until } from '../support/kernel.js';

test('the README example: a supervised GenServer answers and is restarted after a kill', async () => {
  const counter: GenServer.Behaviour<number, void, 'incr', number> = {
    init: () => ({ state: 0 }),
    handleCall: (_req, _from, n) => ({ reply: n + 1, state: n + 1 }),
  };

  const node = await RuntimeNode.start({ schedulers: 2, logLevel: 'silent' });
  try {
    const sup = await Supervisor.start(node.main, {
      flags: { strategy: 'one_for_one', intensity: 3, period: 5 },
      children: [{ id: 'counter', start: (ctx) => GenServer.startLink(ctx, counter, undefined, { name: 'counter' }) }],
    });
    assert.ok(sup.ok);
    const r = await GenServer.callFrom(node.main, 'counter', 'incr');
    assert.deepEqual(r, { ok: true, value: 1 });
    const first = node.main.whereis('counter')!;
    node.kill(first);
    await until(() => {
      const now = node.main.whereis('counter');
      return now !== undefined && now.key !== first.key;
    }, 5000, 'the supervisor to restart the counter');
    assert.deepEqual(await GenServer.callFrom(node.main, 'counter', 'incr'), { ok: true, value: 1 });
  } finally {
    await node.stop();
  }
});
