/**
 * Describes the machine a bench ran on, for the `machine` object of every results file.
 */
import { arch, availableParallelism, cpus, platform, release, totalmem } from 'node:os';

export interface MachineInfo {
  cpu_model: string;
  cores: number;
  memory_gib: number;
  node_version: string;
  platform: string;
}

export function describeMachine(): MachineInfo {
  return {
    cpu_model: cpus()[0]?.model ?? 'unknown',
    cores: availableParallelism(),
    memory_gib: Math.round(totalmem() / 2 ** 30),
    node_version: process.version,
    platform: `${platform()} ${release()} ${arch()}`,
  };
}
