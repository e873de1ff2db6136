/**
 * Reading a test node's HTTP admin pages: `/health` as JSON and one sample of `/metrics`.
 * Each request uses a fresh connection (no keep-alive socket left behind) and a deadline.
 */
import { get as httpGet } from 'node:http';

/** GET `path` on 127.0.0.1:`port`; resolves with the body text (fails after 5 s). */
export function httpText(port: number, path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = httpGet({ host: '127.0.0.1', port, path, agent: false }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve(body));
    });
    req.on('error', reject);
    req.setTimeout(5000, () => req.destroy(new Error(`${path} did not answer within 5 s`)));
  });
}

/** The value of the sample `name` (without labels) on `/metrics`; fails when it is missing. */
export async function metric(port: number, name: string): Promise<number> {
  const body = await httpText(port, '/metrics');
  const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(body);
  if (m === null) throw new Error(`/metrics has no sample ${name}`);
  return Number(m[1]);
}
