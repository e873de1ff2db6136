/**
 * One replica of a Raft group, as nats-server 2.9 runs one per JetStream stream (R3) and one
 * for the JetStream meta group: terms and votes, a leader elected by a majority among the
 * most up-to-date replicas (so it holds every committed entry), log entries replicated with a
 * consistency check, committed once a majority holds them (entries of the current term;
 * earlier ones with them), applied in order on every replica. Timings are nats-server's:
 * heartbeats every second unless entries went out within the last one (nats-server's
 * `notActive`: an append carrying entries does a heartbeat's work), a follower that hears no leader for an election timeout drawn
 * from 4–9 s campaigns, a new group campaigns within 100–800 ms, and a leader that has not
 * heard from a quorum for 10 s steps down at its next quorum check (every 10 s), so 10–20 s
 * after losing it. A new leader appends an empty entry so earlier entries commit; a leader
 * tells its followers a new commit index at once, so they apply within a round trip.
 *
 * Storage (`RaftStorage`) is the server's copy of the group: the live log and applied index
 * are the page cache (they survive the process being killed); `disk` is what the last sync
 * wrote (an OS crash or power loss goes back to it). Term and vote are written through.
 * A replica whose log is cut below what it applied (after data was lost somewhere) rebuilds
 * its state from the log, as nats-server resets a stream that diverged from its leader.
 *
 * Everything runs as events of the hosting server's incarnation; messages go through the
 * host (the route model). Nothing here reads real time or randomness.
 */
import type { SimEvent, SimOwner } from './EventQueue.js';
import type { SimRandom } from './SimRandom.js';
import type { SimWorld } from './SimWorld.js';

export interface RaftEntry<P> {
  readonly term: number;
  /** null: the empty entry a new leader appends. */
  readonly payload: P | null;
}

export type RaftRole = 'follower' | 'candidate' | 'leader';

export type RaftMessage<P> =
  | { readonly type: 'vote'; readonly term: number; readonly lastIndex: number; readonly lastTerm: number }
  | { readonly type: 'vote_reply'; readonly term: number; readonly granted: boolean }
  | { readonly type: 'append'; readonly term: number; readonly prevIndex: number; readonly prevTerm: number; readonly entries: readonly RaftEntry<P>[]; readonly commit: number }
  | { readonly type: 'append_reply'; readonly term: number; readonly success: boolean; readonly prevIndex: number; readonly lastIndex: number };

/** Raft timings (nats-server 2.9's constants are the defaults in sim/SimJetStream.ts). */
export interface RaftTiming {
  /** Election timeout, drawn uniformly (ms) at every reset. */
  readonly electionMs: readonly [number, number];
  /** The first election of a new group. */
  readonly firstElectionMs: readonly [number, number];
  readonly heartbeatMs: number;
  /** A leader that has heard from fewer than a quorum within this steps down... */
  readonly lostQuorumMs: number;
  /** ...at its next check; checks run this often while leading. */
  readonly lostQuorumCheckMs: number;
  /** Most entries one append message carries. */
  readonly maxEntriesPerAppend: number;
}

/** A server's copy of one group: page cache (live) and disk (as of the last sync). */
export class RaftStorage<P> {
  term = 0;
  votedFor: string | null = null;
  log: RaftEntry<P>[] = [];
  applied = 0;
  disk: { log: RaftEntry<P>[]; applied: number } = { log: [], applied: 0 };

  /** Write the page cache to disk (nats-server's periodic sync). */
  sync(): void {
    this.disk = { log: this.log.slice(), applied: this.applied };
  }

  /** The OS went down: what was not synced is gone. */
  loseUnsynced(): void {
    this.log = this.disk.log.slice();
    this.applied = this.disk.applied;
  }
}

/** What a replica needs from its server. */
export interface RaftHost<P> {
  readonly world: SimWorld;
  /** The hosting server's incarnation: the replica's events die with it. */
  readonly owner: SimOwner;
  readonly random: SimRandom;
  send(to: string, msg: RaftMessage<P>): void;
  /** Entry `index` is committed and applied here; `replay` when rebuilding state (no replies). */
  apply(index: number, entry: RaftEntry<P>, replay: boolean): void;
  /** The state built by `apply` is dropped (before a replay from the start). */
  reset(): void;
  roleChanged(role: RaftRole): void;
}

export class SimRaftReplica<P> {
  role: RaftRole = 'follower';
  /** The leader this replica follows (itself when leading); null when it knows none. */
  leader: string | null = null;
  commit = 0;
  readonly quorum: number;
  private readonly votes = new Set<string>();
  private readonly next = new Map<string, number>();
  private readonly match = new Map<string, number>();
  private readonly heard = new Map<string, number>();
  private electionDeadline = Number.POSITIVE_INFINITY;
  private electionTimer: SimEvent | null = null;
  private flushScheduled = false;
  /** When this leader last sent entries (nats-server's `active`): a heartbeat tick after that is skipped. */
  private entriesSentAt = Number.NEGATIVE_INFINITY;
  private stopped = false;

  constructor(
    readonly group: string,
    readonly id: string,
    readonly peers: readonly string[],
    readonly store: RaftStorage<P>,
    private readonly host: RaftHost<P>,
    private readonly timing: RaftTiming,
  ) {
    this.quorum = Math.floor((peers.length + 1) / 2) + 1;
  }

  /** Rebuild the applied state from storage and start following (`fresh`: a new group campaigns soon). */
  start(fresh: boolean): void {
    this.replayApplied();
    this.armElection(fresh ? this.timing.firstElectionMs : this.timing.electionMs);
  }

  /** The server stopped: nothing more happens here. */
  stop(): void {
    this.stopped = true;
  }

  get term(): number {
    return this.store.term;
  }

  get lastIndex(): number {
    return this.store.log.length;
  }

  /** The term of entry `index` (0 for index 0, -1 beyond the log). */
  termAt(index: number): number {
    if (index === 0) return 0;
    return this.store.log[index - 1]?.term ?? -1;
  }

  /** Append `payload` as leader; its index, or null when not leading. */
  propose(payload: P): number | null {
    if (this.role !== 'leader' || this.stopped) return null;
    this.store.log.push({ term: this.store.term, payload });
    this.replicateSoon();
    if (this.peers.length === 0) this.advanceCommit();
    return this.store.log.length;
  }

  receive(from: string, msg: RaftMessage<P>): void {
    if (this.stopped) return;
    if (msg.term > this.store.term) this.becomeFollower(msg.term, null);
    switch (msg.type) {
      case 'vote':
        return this.onVote(from, msg);
      case 'vote_reply':
        if (this.role === 'candidate' && msg.term === this.store.term && msg.granted) {
          this.votes.add(from);
          if (this.votes.size >= this.quorum) this.becomeLeader();
        }
        return;
      case 'append':
        return this.onAppend(from, msg);
      case 'append_reply':
        return this.onAppendReply(from, msg);
    }
  }

  // ---- followers --------------------------------------------------------------------------

  private onVote(from: string, msg: Extract<RaftMessage<P>, { type: 'vote' }>): void {
    const s = this.store;
    let granted = false;
    if (msg.term === s.term && this.role !== 'leader') {
      const lastTerm = this.termAt(s.log.length);
      const upToDate = msg.lastTerm > lastTerm || (msg.lastTerm === lastTerm && msg.lastIndex >= s.log.length);
      if ((s.votedFor === null || s.votedFor === from) && upToDate) {
        s.votedFor = from;
        granted = true;
        this.armElection(this.timing.electionMs);
      }
    }
    this.host.send(from, { type: 'vote_reply', term: s.term, granted });
  }

  private onAppend(from: string, msg: Extract<RaftMessage<P>, { type: 'append' }>): void {
    const s = this.store;
    if (msg.term < s.term) {
      this.host.send(from, { type: 'append_reply', term: s.term, success: false, prevIndex: msg.prevIndex, lastIndex: s.log.length });
      return;
    }
    this.leader = from;
    if (this.role !== 'follower') {
      this.role = 'follower';
      this.host.roleChanged('follower');
    }
    this.armElection(this.timing.electionMs);
    if (msg.prevIndex > s.log.length || this.termAt(msg.prevIndex) !== msg.prevTerm) {
      this.host.send(from, { type: 'append_reply', term: s.term, success: false, prevIndex: msg.prevIndex, lastIndex: s.log.length });
      return;
    }
    let i = msg.prevIndex;
    for (const e of msg.entries) {
      i++;
      if (i <= s.log.length) {
        if (s.log[i - 1]!.term === e.term) continue;
        this.truncate(i - 1);
      }
      s.log.push(e);
    }
    const newLast = msg.prevIndex + msg.entries.length;
    if (msg.commit > this.commit) {
      this.commit = Math.max(this.commit, Math.min(msg.commit, newLast));
      this.applyCommitted();
    }
    this.host.send(from, { type: 'append_reply', term: s.term, success: true, prevIndex: msg.prevIndex, lastIndex: newLast });
  }

  /** Cut the log to `length` entries; below what was applied (data lost elsewhere) the state is rebuilt. */
  private truncate(length: number): void {
    const s = this.store;
    s.log.length = length;
    if (s.applied > length) {
      s.applied = length;
      this.host.reset();
      this.replayApplied();
    }
    if (this.commit > length) this.commit = length;
  }

  private replayApplied(): void {
    const s = this.store;
    for (let i = 1; i <= s.applied; i++) this.host.apply(i, s.log[i - 1]!, true);
    this.commit = s.applied;
  }

  private becomeFollower(term: number, leader: string | null): void {
    const s = this.store;
    const was = this.role;
    if (term > s.term) {
      s.term = term;
      s.votedFor = null;
    }
    this.role = 'follower';
    this.leader = leader;
    if (was !== 'follower') {
      this.armElection(this.timing.electionMs);
      this.host.roleChanged('follower');
    }
  }

  // ---- elections --------------------------------------------------------------------------

  private armElection(range: readonly [number, number]): void {
    const w = this.host.world;
    this.electionDeadline = w.now + this.host.random.between(range[0], range[1]);
    if (this.electionTimer !== null && this.electionTimer.at <= this.electionDeadline) return;
    if (this.electionTimer !== null) w.cancel(this.electionTimer);
    this.electionTimer = w.schedule(this.electionDeadline, 'raft_election', this.onElectionTimer, this.host.owner, 0);
  }

  private readonly onElectionTimer = (): void => {
    this.electionTimer = null;
    if (this.stopped || this.role === 'leader') return;
    const w = this.host.world;
    if (w.now < this.electionDeadline) {
      this.electionTimer = w.schedule(this.electionDeadline, 'raft_election', this.onElectionTimer, this.host.owner, 0);
      return;
    }
    this.campaign();
  };

  private campaign(): void {
    const s = this.store;
    s.term++;
    s.votedFor = this.id;
    this.role = 'candidate';
    this.leader = null;
    this.votes.clear();
    this.votes.add(this.id);
    this.host.roleChanged('candidate');
    this.armElection(this.timing.electionMs);
    if (this.votes.size >= this.quorum) {
      this.becomeLeader();
      return;
    }
    const lastIndex = s.log.length;
    const lastTerm = this.termAt(lastIndex);
    for (const p of this.peers) this.host.send(p, { type: 'vote', term: s.term, lastIndex, lastTerm });
  }

  // ---- leaders ----------------------------------------------------------------------------

  private becomeLeader(): void {
    const s = this.store;
    const w = this.host.world;
    this.role = 'leader';
    this.leader = this.id;
    this.electionDeadline = Number.POSITIVE_INFINITY;
    if (this.electionTimer !== null) w.cancel(this.electionTimer);
    this.electionTimer = null;
    for (const p of this.peers) {
      this.next.set(p, s.log.length + 1);
      this.match.set(p, 0);
      this.heard.set(p, w.now);
    }
    s.log.push({ term: s.term, payload: null });
    this.host.roleChanged('leader');
    this.replicateSoon();
    if (this.peers.length === 0) this.advanceCommit();
    const term = s.term;
    const leading = (): boolean => !this.stopped && this.role === 'leader' && this.store.term === term;
    const beat = (): void => {
      if (!leading()) return;
      if (w.now - this.entriesSentAt > this.timing.heartbeatMs) for (const p of this.peers) this.sendTo(p);
      w.after(this.timing.heartbeatMs, 'raft_heartbeat', beat, this.host.owner, 0);
    };
    w.after(this.timing.heartbeatMs, 'raft_heartbeat', beat, this.host.owner, 0);
    const check = (): void => {
      if (!leading()) return;
      let live = 1;
      for (const p of this.peers) if (w.now - (this.heard.get(p) ?? -Infinity) <= this.timing.lostQuorumMs) live++;
      if (live < this.quorum) {
        this.becomeFollower(this.store.term, null);
        return;
      }
      w.after(this.timing.lostQuorumCheckMs, 'raft_quorum_check', check, this.host.owner, 0);
    };
    w.after(this.timing.lostQuorumCheckMs, 'raft_quorum_check', check, this.host.owner, 0);
  }

  private replicateSoon(): void {
    if (this.flushScheduled || this.peers.length === 0) return;
    this.flushScheduled = true;
    this.host.world.after(0, 'raft_replicate', () => {
      this.flushScheduled = false;
      if (this.role !== 'leader' || this.stopped) return;
      for (const p of this.peers) this.sendTo(p);
    }, this.host.owner, 0);
  }

  private sendTo(peer: string): void {
    const s = this.store;
    const next = this.next.get(peer) ?? s.log.length + 1;
    const prevIndex = next - 1;
    const end = Math.min(s.log.length, prevIndex + this.timing.maxEntriesPerAppend);
    const entries = end > prevIndex ? s.log.slice(prevIndex, end) : [];
    this.host.send(peer, { type: 'append', term: s.term, prevIndex, prevTerm: this.termAt(prevIndex), entries, commit: this.commit });
    if (entries.length > 0) {
      this.next.set(peer, end + 1);
      this.entriesSentAt = this.host.world.now;
    }
  }

  private onAppendReply(from: string, msg: Extract<RaftMessage<P>, { type: 'append_reply' }>): void {
    if (this.role !== 'leader' || msg.term !== this.store.term) return;
    this.heard.set(from, this.host.world.now);
    if (msg.success) {
      this.match.set(from, msg.lastIndex);
      if ((this.next.get(from) ?? 0) <= msg.lastIndex) this.next.set(from, msg.lastIndex + 1);
      this.advanceCommit();
      if ((this.next.get(from) ?? 0) <= this.store.log.length && msg.lastIndex + 1 === this.next.get(from)) this.sendTo(from);
      return;
    }
    // The follower lacks entries (or holds others): go back and resend from where it agrees.
    this.match.set(from, Math.min(this.match.get(from) ?? 0, msg.lastIndex));
    this.next.set(from, Math.max(1, Math.min(msg.lastIndex + 1, msg.prevIndex)));
    this.sendTo(from);
  }

  private advanceCommit(): void {
    const s = this.store;
    for (let n = s.log.length; n > this.commit; n--) {
      if (s.log[n - 1]!.term !== s.term) break;
      let count = 1;
      for (const p of this.peers) if ((this.match.get(p) ?? 0) >= n) count++;
      if (count >= this.quorum) {
        this.commit = n;
        this.applyCommitted();
        // Followers learn the new commit index at once rather than at the next heartbeat.
        this.replicateSoon();
        return;
      }
    }
  }

  private applyCommitted(): void {
    const s = this.store;
    while (s.applied < this.commit && !this.stopped) {
      s.applied++;
      this.host.apply(s.applied, s.log[s.applied - 1]!, false);
    }
  }
}
