/**
 * Body of a dirty-pool thread: imports the named module and runs the named export.
 */
export default async function runDirtyJob(job: { module: string; fn: string; arg: unknown }): Promise<unknown> {
  const mod = (await import(job.module)) as Record<string, (a: unknown) => unknown>;
  const f = mod[job.fn];
  if (typeof f !== 'function') throw new Error(`${job.module} has no export named ${job.fn}`);
  return f(job.arg);
}
