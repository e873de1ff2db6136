/**
 * Module-named process bodies for tests that run code in other node processes by remote
 * spawn (a body must be importable where it runs).
 */
import * as GenServer from '../../actors/GenServer.js';
import * as GlobalRegistry from '../../actors/GlobalRegistry.js';
import * as ProcessGroups from '../../actors/ProcessGroups.js';
import type { Pid } from '../../runtime/Pid.js';
import type { ProcessBody } from '../../runtime/ProcessContext.js';

export const CLUSTER_BODIES = new URL('./clusterBodies.js', import.meta.url).href;

const echoBehaviour: GenServer.Behaviour<null> = {
  init: () => ({ state: null }),
  handleCall(req, _from, state, ctx) {
    if (req === 'hang') return { noreply: true, state };
    return { reply: { echo: req, node: ctx.node }, state };
  },
};

/** Starts an echo GenServer (a call `hang` is never answered) and sends `{server}` to `replyTo`. */
export function echoServer(replyTo: Pid): ProcessBody {
  return async (ctx) => {
    const r = await GenServer.start(ctx, echoBehaviour, undefined);
    ctx.send(replyTo, r.ok ? { server: r.pid } : { failed: r });
    return () => {};
  };
}

/**
 * Traps exits, links to and monitors `target`, and forwards every message it gets to `report`;
 * `{watching}` goes to `report` (and to `ready`, when given) once the link and monitor are set.
 */
export function watcher(target: Pid, report: Pid, ready?: Pid): ProcessBody {
  return (ctx) => {
    ctx.trapExit(true);
    ctx.link(target);
    ctx.monitor(target);
    ctx.send(report, { watching: target });
    if (ready !== undefined) ctx.send(ready, { watching: target });
    return (m) => ctx.send(report, { seen: m });
  };
}

/** Answers `{name, pid}` with the global name's pid as this node reads it. */
export function whereisGlobal(name: string, replyTo: Pid): ProcessBody {
  return (ctx) => {
    ctx.send(replyTo, { name, pid: GlobalRegistry.whereis(ctx, name) ?? null });
  };
}

/** Joins itself to `group` of `scope` on its node and stays; answers `{joined}` to `replyTo`. */
export function groupMember(scope: string, group: string, replyTo: Pid): ProcessBody {
  return async (ctx) => {
    const r = await ProcessGroups.join(ctx, scope, group, ctx.self);
    ctx.send(replyTo, { joined: r.ok });
    return () => {};
  };
}

/**
 * Records the NODE_UP/NODE_DOWN messages it gets (`{type, node}`); on `{report}` sends
 * `{nodeEvents}`. Tells `ready` `{monitoringNodes: true}` once it listens.
 */
export function nodeEvents(ready: Pid): ProcessBody {
  return (ctx) => {
    ctx.monitorNodes(true);
    ctx.send(ready, { monitoringNodes: true });
    const seen: Array<{ type: string; node: string }> = [];
    return (msg) => {
      const m = msg as { type?: string; node?: string; report?: Pid };
      if (m.report !== undefined) ctx.send(m.report, { nodeEvents: seen });
      else if (m.type !== undefined && m.node !== undefined) seen.push({ type: m.type, node: m.node });
    };
  };
}
