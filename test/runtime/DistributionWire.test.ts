/**
 * The distribution's wire and naming rules that need no cluster: the node batch codec (header,
 * per-envelope scheduler, pid table, explicit canonicaliser), subject names for any node name,
 * timing validation, and what a node without a cluster answers for pids of other nodes.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Kind, decodeBatch, decodeNodeBatch, encodeBatch, encodeNodeBatch, type Envelope } from '../../runtime/Envelope.js';
import { Distribution, clusterSubjects, subjectToken } from '../../runtime/Distribution.js';
import { isDownMessage, isExitMessage } from '../../runtime/ExitReason.js';
import { Pid } from '../../runtime/Pid.js';
import { newScheduler, spawnProbe, testEnv } from '../support/kernel.js';
import { simTransportHarness } from '../support/transportRules.js';

test('a node batch round-trips header, destination schedulers, envelopes and trace ids, with pids canonicalised only while decoding', async () => {
  const a = new Pid('n1', 0, 7, 1, 0);
  const b = new Pid('n2', 1, 9, 4, 2);
  const batch: Envelope[] = [
    [Kind.Msg, b, a, { hello: [1, 2, 3] }, null, 42],
    [Kind.Named, 'registry', a, 'x', null, 43],
    [Kind.Monitor, b, a, null, null, 0],
  ];
  const bytes = encodeNodeBatch({ from: 'n1', fromInc: 1_700_000_000_000 * 1024, toInc: 5 }, [1, 0, 1], batch);
  const canonical = new Pid('n2', 1, 9, 4, 2);
  const seen: string[] = [];
  const out = decodeNodeBatch(bytes, (pid) => {
    seen.push(pid.key);
    return pid.key === canonical.key ? canonical : pid;
  });
  assert.deepEqual(out.header, { from: 'n1', fromInc: 1_700_000_000_000 * 1024, toInc: 5 });
  assert.deepEqual(out.scheds, [1, 0, 1]);
  assert.equal(out.envelopes.length, 3);
  assert.equal(out.envelopes[0]![1], canonical, 'the receiving node gets its own pid object');
  assert.deepEqual(out.envelopes[0]!.slice(3), [{ hello: [1, 2, 3] }, null, 42]);
  assert.equal(out.envelopes[1]![1], 'registry');
  assert.equal(seen.length, 2, 'the pid table decodes each distinct pid once');
  // The thread's own canonicaliser is back in place afterwards.
  const thread = decodeBatch(encodeBatch([[Kind.Msg, b, null, 1, null, 0]]));
  assert.notEqual(thread[0]![1], canonical);
});

test('subject tokens escape NATS separators and wildcards, so distinct node names stay distinct', () => {
  assert.equal(subjectToken('iris@host.example'), 'iris@host%2Eexample');
  assert.equal(subjectToken('a*b>c%d e'), 'a%2Ab%3Ec%25d%20e');
  assert.notEqual(subjectToken('a.b'), subjectToken('a%2Eb'));
  const s = clusterSubjects('prod.eu');
  assert.equal(s.heartbeat, 'iris.prod%2Eeu.hb');
  assert.equal(s.control('n.1'), 'iris.prod%2Eeu.ctl.n%2E1');
  assert.equal(s.envelopes('n.1'), 'iris.prod%2Eeu.env.n%2E1');
});

test('a distribution whose down-after does not exceed its heartbeat is refused', async () => {
  const h = simTransportHarness();
  const transport = await h.connect('x');
  const make = (heartbeatMs: number, downAfterMs: number) => () =>
    new Distribution({
      env: testEnv(),
      transport,
      cluster: 'c',
      self: { name: 'x', incarnation: 1, roles: [], addresses: {}, schedulers: 1 },
      local: { deliver: () => {}, canonical: (p) => p },
      heartbeatMs,
      downAfterMs,
    });
  assert.throws(make(500, 500), /must exceed/);
  assert.throws(make(0, 100), /must exceed/);
  assert.doesNotThrow(make(500, 2_000));
});

test('without a cluster, a link or monitor to another node\'s pid answers noconnection at once, and nodes() is empty', async () => {
  const s = newScheduler();
  const probe = spawnProbe(s, { trapExit: true });
  const elsewhere = new Pid('elsewhere', 0, 1, 0, 0);
  s.spawn((ctx) => {
    ctx.trapExit(true);
    ctx.monitor(elsewhere);
    ctx.link(elsewhere);
    ctx.send(probe.pid, { nodes: ctx.nodes() });
    return (m) => ctx.send(probe.pid, m);
  });
  assert.deepEqual(await probe.next((m) => (m as { nodes?: unknown }).nodes !== undefined), { nodes: [] });
  const down = await probe.next(isDownMessage);
  const exit = await probe.next(isExitMessage);
  assert.equal((down as { reason: unknown }).reason, 'noconnection');
  assert.equal((exit as { reason: unknown }).reason, 'noconnection');
});
