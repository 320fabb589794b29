import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { createSecureContext } from 'node:tls';
import { Command, Flags } from '@oclif/core';
import { NbdServer, defaultBusyPollUs } from '../../nbd/server.js';
import type { NbdExport } from '../../nbd/exports.js';
import type { BlockDevice, StoreErrorCode } from '../../store/block-device.js';
import { DelayFilter } from '../../store/delay-filter.js';
import { ErrorFilter, faultOps, type FaultOp } from '../../store/error-filter.js';
import { FileStore } from '../../store/file-store.js';
import { MirrorboxError, messageOf } from '../../util/errors.js';
import { createLogger } from '../../util/log.js';
import { formatSizeBytes } from '../../util/size.js';
import { defaultCreateSizeBytes, defaultListen, parseListen, resolveExports } from '../serve-config.js';

export default class Serve extends Command {
  static override summary = 'Serve block devices over NBD (the emulated drive).';

  static override description = `Exports one or more sparse-file stores over the NBD protocol (fixed newstyle, structured
replies, base:allocation block status, extended headers, STARTTLS). A missing store is created
sparse at --size (its folder must exist, unless --mkdir is given). Prints one line "listening on <uri> (exports: ...)" on stdout when ready;
SIGTERM or SIGINT stops it cleanly after finishing requests in flight and flushing the stores.

Fault injection for rehearsals: --error-rate/--error-trigger/--error-ops make chosen operations
fail with EIO; --delay-*-ms slow them down.`;

  static override examples = [
    '<%= config.bin %> serve --store ./var/disk0.img --size 1G --mkdir',
    '<%= config.bin %> serve --store ./var/disk0.img --export disk0 --listen 0.0.0.0:10809',
    '<%= config.bin %> serve --export a=./var/a.img:10G --export b=./var/b.img:512M --socket /run/mirrorbox.sock',
    '<%= config.bin %> serve --store ./var/base.img --read-only',
    '<%= config.bin %> serve --store ./var/disk0.img --tls-cert server.pem --tls-key server-key.pem --tls-required',
    '<%= config.bin %> serve --store ./var/disk0.img --error-rate 0.01 --error-ops read --error-trigger /tmp/fail-now',
  ];

  static override flags = {
    store: Flags.string({ description: 'Path of the store (a sparse image file) for the default export.' }),
    size: Flags.string({ description: `Size for a new store (K, M, G, T suffixes); grows a smaller existing one. New stores default to ${formatSizeBytes(defaultCreateSizeBytes)}.` }),
    export: Flags.string({
      multiple: true,
      description: 'NAME for the --store export (default disk0), or NAME=PATH[:SIZE] for another export. Repeatable.',
    }),
    description: Flags.string({ description: 'Export description shown by nbdinfo.', default: 'mirrorbox emulated drive' }),
    listen: Flags.string({ description: 'TCP address to listen on, HOST:PORT (port 0 picks a free port).', default: defaultListen }),
    socket: Flags.string({ description: 'Also (or, with --no-tcp, only) listen on this Unix socket.' }),
    'no-tcp': Flags.boolean({ description: 'Do not listen on TCP (use with --socket).', default: false }),
    mkdir: Flags.boolean({ description: 'Create missing folders above a new store (without it, a missing folder is an error: a typo must not put a new image on the wrong disk).', default: false }),
    'read-only': Flags.boolean({ description: 'Refuse writes (EPERM).', default: false }),
    'tls-cert': Flags.string({ description: 'X.509 certificate (PEM) for STARTTLS.', dependsOn: ['tls-key'] }),
    'tls-key': Flags.string({ description: 'Private key (PEM) for the certificate.', dependsOn: ['tls-cert'] }),
    'tls-required': Flags.boolean({ description: 'Refuse every option until the client starts TLS (needs --tls-cert).', default: false }),
    io: Flags.string({ description: 'Where file reads and writes run: auto (event loop while the page cache answers fast, threadpool for a second after a slow call, and for writes over 4 MiB or reads over 256 KiB), sync or async.', options: ['auto', 'sync', 'async'], default: 'auto' }),
    'max-connections': Flags.integer({ description: 'Connections served at once.', min: 1 }),
    'busy-poll-us': Flags.integer({ description: 'Keep polling this many µs after activity instead of sleeping (lower latency at low queue depth; 0 = off).', min: 0, default: defaultBusyPollUs }),
    'error-rate': Flags.string({ description: 'Fault injection: probability (0..1) that an operation fails.' }),
    'error-trigger': Flags.string({ description: 'Fault injection: fail only while this file exists.' }),
    'error-ops': Flags.string({ description: `Fault injection: comma-separated operations (${faultOps.join(',')}).` }),
    'error-code': Flags.string({ description: 'Fault injection: the error to inject.', options: ['EIO', 'ENOSPC', 'EPERM'], default: 'EIO' }),
    'delay-read-ms': Flags.integer({ description: 'Delay injection: milliseconds added to each read.', min: 0 }),
    'delay-write-ms': Flags.integer({ description: 'Delay injection: milliseconds added to each write.', min: 0 }),
    'delay-other-ms': Flags.integer({ description: 'Delay injection: milliseconds added to flush, trim, zero, block status and cache.', min: 0 }),
  };

  async run(): Promise<void> {
    const { flags } = await this.parse(Serve);
    if (flags['tls-required'] && !flags['tls-cert']) throw new MirrorboxError('BAD_FLAG', '--tls-required needs --tls-cert and --tls-key');
    const log = createLogger('serve');
    const specs = resolveExports({ store: flags.store, size: flags.size, exportFlags: flags.export ?? [] });
    const exports: NbdExport[] = [];
    const opened: BlockDevice[] = [];
    let server: NbdServer;
    try {
      for (const spec of specs) {
        ensureStoreFolder(spec.path, flags.mkdir);
        const store = FileStore.open({
          path: spec.path,
          sizeBytes: spec.sizeBytes ?? (existsSync(spec.path) ? undefined : defaultCreateSizeBytes),
          readOnly: flags['read-only'],
          ioMode: flags.io as 'auto' | 'sync' | 'async',
        });
        opened.push(store);
        exports.push({ name: spec.name, description: flags.description, device: this.withFaults(store, flags) });
      }
      const tls = flags['tls-cert']
        ? {
            context: createSecureContext({ cert: readFileSync(flags['tls-cert']), key: readFileSync(flags['tls-key']!), minVersion: 'TLSv1.2' }),
            required: flags['tls-required'],
          }
        : null;
      server = new NbdServer({
        exports,
        ...(flags['no-tcp'] ? {} : { listen: parseListen(flags.listen) }),
        ...(flags.socket ? { socketPath: flags.socket } : {}),
        tls,
        limits: flags['max-connections'] ? { connectionsMax: flags['max-connections'] } : {},
        busyPollUs: flags['busy-poll-us'],
        log,
      });
      await server.start();
    } catch (err) {
      for (const device of opened) await device.close();
      throw err instanceof MirrorboxError ? err : new MirrorboxError('SERVE_FAILED', messageOf(err), { cause: err });
    }
    const names = exports.map((e) => `${e.name} (${formatSizeBytes(e.device.sizeBytes)})`).join(', ');
    process.stdout.write(`listening on ${server.uris.join(' ')} (exports: ${names})\n`);
    log.info({ uris: server.uris, exports: exports.map((e) => e.name) }, 'ready');
    await waitForStopSignal();
    log.info('stopping: finishing requests in flight and flushing');
    await server.close();
    log.info('stopped');
  }

  private withFaults(store: BlockDevice, flags: Record<string, unknown>): BlockDevice {
    let device = store;
    const rate = flags['error-rate'] as string | undefined;
    const trigger = flags['error-trigger'] as string | undefined;
    if (rate !== undefined || trigger !== undefined) {
      const rateValue = rate === undefined ? 1 : Number(rate);
      if (!(rateValue >= 0 && rateValue <= 1)) throw new MirrorboxError('BAD_FLAG', `--error-rate ${rate}: expected a number from 0 to 1`);
      const opsText = flags['error-ops'] as string | undefined;
      const ops = opsText === undefined ? undefined : (opsText.split(',').map((op) => op.trim()) as FaultOp[]);
      for (const op of ops ?? []) {
        if (!faultOps.includes(op)) throw new MirrorboxError('BAD_FLAG', `--error-ops: unknown operation "${op}" (expected ${faultOps.join(', ')})`);
      }
      device = new ErrorFilter(device, {
        rate: rateValue,
        ...(trigger !== undefined ? { triggerPath: trigger } : {}),
        ...(ops ? { ops } : {}),
        code: flags['error-code'] as StoreErrorCode,
      });
    }
    const readDelayMs = flags['delay-read-ms'] as number | undefined;
    const writeDelayMs = flags['delay-write-ms'] as number | undefined;
    const otherDelayMs = flags['delay-other-ms'] as number | undefined;
    if (readDelayMs || writeDelayMs || otherDelayMs) {
      device = new DelayFilter(device, { readDelayMs: readDelayMs ?? 0, writeDelayMs: writeDelayMs ?? 0, otherDelayMs: otherDelayMs ?? 0 });
    }
    return device;
  }
}

function waitForStopSignal(): Promise<void> {
  return new Promise((resolve) => {
    const stop = (): void => {
      process.off('SIGTERM', stop);
      process.off('SIGINT', stop);
      // A second signal while stopping exits at once.
      process.once('SIGTERM', () => process.exit(1));
      process.once('SIGINT', () => process.exit(1));
      resolve();
    };
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
  });
}

/**
 * A new store goes into an existing folder; missing folders are created only with --mkdir, so that
 * a mistyped path (or an unmounted disk) fails loudly instead of filling another filesystem.
 */
function ensureStoreFolder(storePath: string, mkdir: boolean): void {
  const folder = dirname(storePath);
  if (existsSync(folder)) return;
  if (!mkdir) throw new MirrorboxError('STORE_FOLDER_MISSING', `cannot create store ${storePath}: folder ${folder} does not exist (create it, or pass --mkdir)`);
  mkdirSync(folder, { recursive: true });
}
