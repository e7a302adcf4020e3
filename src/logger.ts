/**
 * JSON logs (pino). Lifecycle events only: start, dependency status changes, shutdown, errors.
 * Nothing is logged per request — requests are counted in metrics instead.
 */
import { pino, type Logger } from 'pino';

export type { Logger };

export function createLogger(level: string, bindings: Record<string, string | number>): Logger {
  return pino({ level, base: bindings, timestamp: pino.stdTimeFunctions.isoTime });
}
