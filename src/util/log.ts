import { pino, type Logger } from 'pino';

/**
 * Structured logs (JSON lines) go to stderr through pino; a command's own output (the
 * readiness line, tables, --json documents) goes to stdout. Set MIRRORBOX_LOG_LEVEL to
 * debug/info/warn/error/silent. Pipe stderr through `npx pino-pretty` to read logs by eye.
 */
export type { Logger };

export function createLogger(component: string): Logger {
  const level = process.env['MIRRORBOX_LOG_LEVEL'] ?? 'info';
  const destination = pino.destination({ fd: 2, sync: true });
  // A daemon outlives the terminal that started it. Once stderr is gone (EIO from a hung-up
  // terminal; pino itself drops EPIPE only), logs are dropped instead of killing the process
  // with an unhandled 'error'.
  destination.on('error', () => {
    destination.write = () => true;
  });
  return pino({ level, base: { component, pid: process.pid } }, destination);
}
