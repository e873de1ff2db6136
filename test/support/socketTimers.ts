/**
 * Reads a TCP socket's kernel timer with `ss -tno` (iproute2): the seconds left on the
 * keepalive timer of the established socket bound to a local port, which proves that
 * SO_KEEPALIVE is on and what idle delay (TCP_KEEPIDLE) it was given.
 */
import { execFileSync } from 'node:child_process';

/** `timer:(keepalive,1min2sec,0)` style durations: days, hours, minutes, seconds, milliseconds. */
function parseSsDuration(text: string): number {
  let sec = 0;
  for (const [, n, unit] of text.matchAll(/(\d+)(days|hr|min|sec|ms)/g)) {
    const v = Number(n);
    sec += unit === 'days' ? v * 86400 : unit === 'hr' ? v * 3600 : unit === 'min' ? v * 60 : unit === 'sec' ? v : v / 1000;
  }
  return sec;
}

/**
 * The keepalive timer of the established TCP sockets whose local port is `port`: one entry per
 * socket, the seconds left, or null for a socket without a keepalive timer.
 */
export function keepaliveTimers(port: number): Array<number | null> {
  const out = execFileSync('ss', ['-tnoH', 'state', 'established', `( sport = :${port} )`], { encoding: 'utf8' });
  return out
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => {
      const m = /timer:\(keepalive,([^,]+),\d+\)/.exec(l);
      return m === null ? null : parseSsDuration(m[1]!);
    });
}
