/**
 * The partition guard on a scripted membership in manual time: it starts in safe mode until a
 * majority of expected_cluster_nodes is visible, enters safe mode only after the grace period
 * of seeing fewer (not at a blip), leaves it as soon as a majority is back, logs one line each
 * way, and a node expected alone is never in safe mode.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PartitionGuard } from '../../../core/cluster/PartitionGuard.js';
import type { Logger } from '../../../runtime/Env.js';
import type { Membership, MembershipEvent, NodeMember } from '../../../runtime/Membership.js';
import { manualTime } from '../../support/manualTime.js';

function member(name: string): NodeMember {
  return { name, incarnation: 1, roles: ['core'], addresses: {}, schedulers: 1 };
}

/** A membership the test moves by hand. */
class ScriptedMembership implements Membership {
  readonly self = member('me');
  private readonly up = new Set<string>();
  private readonly listeners = new Set<(e: MembershipEvent) => void>();
  peers(): NodeMember[] {
    return [...this.up].sort().map(member);
  }
  members(): NodeMember[] {
    return [...this.peers(), this.self];
  }
  subscribe(l: (e: MembershipEvent) => void): () => void {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }
  set(names: string[]): void {
    for (const n of [...this.up]) if (!names.includes(n)) {
      this.up.delete(n);
      for (const l of this.listeners) l({ type: 'down', member: member(n), cause: 'silence' });
    }
    for (const n of names) if (!this.up.has(n)) {
      this.up.add(n);
      for (const l of this.listeners) l({ type: 'up', member: member(n) });
    }
  }
}

function recordingLog(lines: string[]): Logger {
  return { debug() {}, info: (_f, m) => lines.push(`info ${m}`), warn: (_f, m) => lines.push(`warn ${m}`), error: (_f, m) => lines.push(`error ${m}`) };
}

test('safe mode until a majority is seen, then only after the grace period of seeing fewer, and out again on heal', async () => {
  const time = manualTime();
  const lines: string[] = [];
  const membership = new ScriptedMembership();
  const guard = new PartitionGuard({ env: { ...time.env, log: recordingLog(lines) }, membership, expectedNodes: 5, graceMs: 1_000 });
  const seen: boolean[] = [];
  guard.subscribe((safe) => seen.push(safe));
  assert.equal(guard.safeMode(), true, 'a node that has not seen a majority starts in safe mode');
  assert.deepEqual(guard.status(), { safeMode: true, visible: 1, needed: 3, expected: 5 });
  membership.set(['a', 'b']);
  assert.equal(guard.safeMode(), false);
  // A blip shorter than the grace period changes nothing.
  membership.set(['a']);
  await time.advance(900);
  membership.set(['a', 'b']);
  await time.advance(1_000);
  assert.equal(guard.safeMode(), false);
  // Fewer than a majority for the grace period: safe mode.
  membership.set([]);
  await time.advance(999);
  assert.equal(guard.safeMode(), false);
  await time.advance(1);
  assert.equal(guard.safeMode(), true);
  membership.set(['a', 'b', 'c']);
  assert.equal(guard.safeMode(), false);
  assert.deepEqual(seen, [false, true, false]);
  assert.equal(lines.filter((l) => l.startsWith('warn safe mode')).length, 1);
  assert.equal(lines.filter((l) => l.startsWith('info safe mode left')).length, 2);
  guard.stop();
  assert.equal(time.pendingTimers(), 0);
});

test('a node expected alone is never in safe mode', async () => {
  const time = manualTime();
  const guard = new PartitionGuard({ env: time.env, membership: new ScriptedMembership(), expectedNodes: 1, graceMs: 10 });
  await time.advance(100);
  assert.equal(guard.safeMode(), false);
  assert.deepEqual(guard.status(), { safeMode: false, visible: 1, needed: 1, expected: 1 });
});
