/**
 * pino loggers for the node and its scheduler threads: JSON lines with the node id and the
 * scheduler, level from IRIS_LOG_LEVEL (default info). Adapts pino to the Env Logger shape.
 */
import { pino } from 'pino';
import type { Logger } from '../Env.js';

export const DEFAULT_LOG_LEVEL = 'info';

export function createLogger(bindings: Record<string, unknown>, level?: string): Logger {
  const p = pino({ level: level ?? process.env['IRIS_LOG_LEVEL'] ?? DEFAULT_LOG_LEVEL, base: bindings });
  return {
    debug: (f, m) => p.debug(f, m),
    info: (f, m) => p.info(f, m),
    warn: (f, m) => p.warn(f, m),
    error: (f, m) => p.error(f, m),
  };
}
