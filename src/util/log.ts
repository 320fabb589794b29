import { pino, type Logger } from 'pino';

/**
 * Structured logs (JSON lines) go to stderr through pino; a command's own output (the
 * readiness line, tables, --json documents) goes to stdout. Set MIRRORBOX_LOG_LEVEL to
 * debug/info/warn/error/silent. Pipe stderr through `npx pino-pretty` to read logs by eye.
 */
export type { Logger };

export function createLogger(component: string): Logger {
  const level = process.env['MIRRORBOX_LOG_LEVEL'] ?? 'info';
  return pino({ level, base: { component, pid: process.pid } }, pino.destination({ fd: 2, sync: true }));
}
