import type { TestContext } from 'node:test';
import { pino } from 'pino';
import { NbdServer } from '../../src/nbd/server.js';
import type { NbdExport } from '../../src/nbd/exports.js';
import type { NbdLimits } from '../../src/nbd/limits.js';
import type { TlsSettings } from '../../src/nbd/handshake.js';
import type { BlockDevice } from '../../src/store/block-device.js';
import { MemoryStore } from '../../src/store/memory-store.js';

/**
 * The real NBD server, run inside the test process (for protocol tests that look at its
 * counters or need many quick restarts). Listens on an ephemeral port; closed at test end.
 */
export async function startInProcessServer(
  t: Pick<TestContext, 'after'>,
  options: { exports?: NbdExport[]; device?: BlockDevice; limits?: Partial<NbdLimits>; tls?: TlsSettings } = {},
): Promise<{ server: NbdServer; port: number; uri: string }> {
  const exports = options.exports ?? [
    { name: 'disk0', description: 'test disk', device: options.device ?? new MemoryStore(64 * 1024 * 1024) },
  ];
  const server = new NbdServer({
    exports,
    listen: { host: '127.0.0.1', port: 0 },
    limits: options.limits ?? {},
    tls: options.tls ?? null,
    log: pino({ level: process.env['MIRRORBOX_TEST_LOG'] ?? 'silent' }),
  });
  await server.start();
  t.after(() => server.close(500));
  const uri = server.uris[0]!;
  const port = Number(/:(\d+)$/.exec(uri)![1]);
  return { server, port, uri };
}
