/**
 * Turns `mirrorbox serve` flags into export definitions. Kept apart from the command so tests
 * can check the parsing without starting a server.
 *
 *   --store PATH [--size N]          one export, named by --export NAME (default "disk0")
 *   --export NAME=PATH[:SIZE]        one export per flag (repeatable); SIZE creates/grows the file
 */
import { MirrorboxError } from '../util/errors.js';
import { parseSizeBytes } from '../util/size.js';

export interface ExportSpec {
  name: string;
  path: string;
  /** Undefined: use the existing file's size. */
  sizeBytes?: number;
}

export const defaultExportName = 'disk0';
export const defaultListen = '127.0.0.1:10809';
/** Size of a store created without --size. */
export const defaultCreateSizeBytes = 1024 ** 3;

export function parseExportFlag(text: string): ExportSpec | { nameOnly: string } {
  const eq = text.indexOf('=');
  if (eq === -1) {
    if (text === '') throw new MirrorboxError('BAD_FLAG', '--export needs a name or NAME=PATH[:SIZE]');
    return { nameOnly: text };
  }
  const name = text.slice(0, eq);
  let path = text.slice(eq + 1);
  if (name === '') throw new MirrorboxError('BAD_FLAG', `--export ${text}: the export name is empty`);
  let sizeBytes: number | undefined;
  const sized = /^(.*):(\d+(?:[KMGTkmgt](?:i?B)?)?)$/.exec(path);
  if (sized) {
    path = sized[1]!;
    sizeBytes = parseSizeBytes(sized[2]!);
  }
  if (path === '') throw new MirrorboxError('BAD_FLAG', `--export ${text}: the path is empty`);
  return sizeBytes === undefined ? { name, path } : { name, path, sizeBytes };
}

export function resolveExports(options: { store?: string; size?: string; exportFlags: readonly string[] }): ExportSpec[] {
  const specs: ExportSpec[] = [];
  let nameForStore: string | undefined;
  for (const flag of options.exportFlags) {
    const parsed = parseExportFlag(flag);
    if ('nameOnly' in parsed) {
      if (nameForStore !== undefined) throw new MirrorboxError('BAD_FLAG', '--export NAME given twice; use NAME=PATH for more exports');
      nameForStore = parsed.nameOnly;
    } else {
      specs.push(parsed);
    }
  }
  if (options.store !== undefined) {
    const sizeBytes = options.size !== undefined ? parseSizeBytes(options.size) : undefined;
    const spec: ExportSpec = { name: nameForStore ?? defaultExportName, path: options.store };
    if (sizeBytes !== undefined) spec.sizeBytes = sizeBytes;
    specs.unshift(spec);
  } else if (nameForStore !== undefined) {
    throw new MirrorboxError('BAD_FLAG', `--export ${nameForStore} names the --store export, but no --store was given`);
  } else if (options.size !== undefined) {
    throw new MirrorboxError('BAD_FLAG', '--size applies to --store, but no --store was given');
  }
  if (specs.length === 0) throw new MirrorboxError('BAD_FLAG', 'nothing to serve: give --store PATH or --export NAME=PATH[:SIZE]');
  const names = new Set<string>();
  for (const spec of specs) {
    if (names.has(spec.name)) throw new MirrorboxError('BAD_FLAG', `export "${spec.name}" given twice`);
    if (Buffer.byteLength(spec.name) > 4096) throw new MirrorboxError('BAD_FLAG', 'export names are at most 4096 bytes');
    names.add(spec.name);
  }
  return specs;
}

export function parseListen(text: string): { host: string; port: number } {
  const match = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(text);
  if (!match) throw new MirrorboxError('BAD_FLAG', `--listen ${text}: expected HOST:PORT (e.g. 127.0.0.1:10809, [::1]:10809)`);
  const host = match[1] ?? match[2] ?? '';
  const port = Number(match[3]);
  if (!(port >= 0 && port <= 65535)) throw new MirrorboxError('BAD_FLAG', `--listen ${text}: port out of range`);
  return { host: host === '' ? '0.0.0.0' : host, port };
}
