/**
 * Readiness and liveness probes. Each resolves when the service answers as it should within
 * `timeoutMs` and rejects with a ProbeError saying what was wrong.
 *
 * | probe | passes when                                                                 |
 * |-------|-----------------------------------------------------------------------------|
 * | tcp   | a TCP connection to host:port is accepted                                   |
 * | http  | GET URL answers with a status 200–399 (a hung event loop never answers)     |
 * | nbd   | the server greets with the NBD handshake (NBDMAGIC + IHAVEOPT, or old-style); |
 * |       | the probe then sends NBD_OPT_ABORT, as a polite client does                 |
 * | file  | the file exists (and, with maxAgeMs, was modified within maxAgeMs: heartbeat)|
 *
 * `stdout` readiness is not a probe of the service but of its output: see output-log.ts.
 */
import { connect, type Socket } from 'node:net';
import { request } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { statSync } from 'node:fs';
import { resolve } from 'node:path';
import { MirrorboxError, hasCode, messageOf } from '../util/errors.js';

export class ProbeError extends MirrorboxError {
  constructor(message: string) {
    super('PROBE_FAILED', message);
    this.name = 'ProbeError';
  }
}

export interface ProbeSpec {
  tcp?: string | undefined;
  http?: string | undefined;
  nbd?: string | undefined;
  file?: string | undefined;
  maxAgeMs?: number | undefined;
}

/** A probe bound to its target, ready to be called again and again. */
export type Probe = (timeoutMs: number) => Promise<void>;

/** Builds the probe a spec names; `cwd` anchors a relative file path. */
export function makeProbe(spec: ProbeSpec, cwd: string): { probe: Probe; describe: string } {
  if (spec.tcp !== undefined) {
    const { host, port } = splitHostPort(spec.tcp);
    return { probe: (t) => tcpProbe(host, port, t), describe: `tcp ${spec.tcp}` };
  }
  if (spec.http !== undefined) {
    const url = spec.http;
    return { probe: (t) => httpProbe(url, t), describe: `http ${url}` };
  }
  if (spec.nbd !== undefined) {
    const u = new URL(spec.nbd);
    const host = u.hostname.replace(/^\[|\]$/g, '') || '127.0.0.1';
    const port = u.port === '' ? nbdPortDefault : Number(u.port);
    return { probe: (t) => nbdProbe(host, port, t), describe: `nbd ${spec.nbd}` };
  }
  if (spec.file !== undefined) {
    const path = resolve(cwd, spec.file);
    const maxAgeMs = spec.maxAgeMs;
    return { probe: async () => fileProbe(path, maxAgeMs), describe: `file ${path}` };
  }
  throw new MirrorboxError('PROBE_SPEC', 'a probe needs one of tcp, http, nbd, file');
}

/** The NBD port IANA assigned. */
export const nbdPortDefault = 10809;

export function splitHostPort(text: string): { host: string; port: number } {
  const at = text.lastIndexOf(':');
  return { host: text.slice(0, at).replace(/^\[|\]$/g, ''), port: Number(text.slice(at + 1)) };
}

function withSocket(host: string, port: number, timeoutMs: number, what: string, onConnect: (socket: Socket, done: (err?: Error) => void) => void): Promise<void> {
  return new Promise((resolvePromise, reject) => {
    const socket = connect({ host, port });
    let settled = false;
    const done = (err?: Error): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      if (err) reject(err);
      else resolvePromise();
    };
    const timer = setTimeout(() => done(new ProbeError(`${what} ${host}:${port}: no answer within ${timeoutMs} ms`)), timeoutMs);
    socket.once('error', (err) => done(new ProbeError(`${what} ${host}:${port}: ${hasCode(err, 'ECONNREFUSED') ? 'connection refused' : messageOf(err)}`)));
    socket.once('connect', () => onConnect(socket, done));
  });
}

export function tcpProbe(host: string, port: number, timeoutMs: number): Promise<void> {
  return withSocket(host, port, timeoutMs, 'tcp', (_socket, done) => done());
}

export function httpProbe(url: string, timeoutMs: number): Promise<void> {
  return new Promise((resolvePromise, reject) => {
    const send = url.startsWith('https:') ? httpsRequest : request;
    let settled = false;
    const finish = (err?: Error): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      req.destroy();
      if (err) reject(err);
      else resolvePromise();
    };
    const req = send(url, { method: 'GET', agent: false, headers: { 'user-agent': 'mirrorbox-watchdog' } }, (res) => {
      res.resume();
      const status = res.statusCode ?? 0;
      const statusOkMin = 200;
      const statusOkMax = 399;
      if (status >= statusOkMin && status <= statusOkMax) finish();
      else finish(new ProbeError(`http ${url}: status ${status}`));
    });
    const timer = setTimeout(() => finish(new ProbeError(`http ${url}: no answer within ${timeoutMs} ms`)), timeoutMs);
    req.once('error', (err) => finish(new ProbeError(`http ${url}: ${hasCode(err, 'ECONNREFUSED') ? 'connection refused' : messageOf(err)}`)));
    req.end();
  });
}

// NBD handshake constants (NBD protocol, "Handshake" section).
const nbdMagic = Buffer.from('NBDMAGIC', 'latin1');
const nbdIHaveOpt = Buffer.from('IHAVEOPT', 'latin1');
const nbdOldstyleMagic = Buffer.from([0x00, 0x00, 0x42, 0x02, 0x81, 0x86, 0x12, 0x53]);
const nbdNewstyleGreetingBytes = 18;
const nbdFlagFixedNewstyle = 1;
const nbdFlagNoZeroes = 2;
const nbdOptAbort = 2;

export function nbdProbe(host: string, port: number, timeoutMs: number): Promise<void> {
  return withSocket(host, port, timeoutMs, 'nbd', (socket, done) => {
    let got = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => {
      got = Buffer.concat([got, chunk]);
      if (got.length < 16) return;
      if (!got.subarray(0, 8).equals(nbdMagic)) return done(new ProbeError(`nbd ${host}:${port}: no NBDMAGIC greeting`));
      if (got.subarray(8, 16).equals(nbdOldstyleMagic)) return done();
      if (!got.subarray(8, 16).equals(nbdIHaveOpt)) return done(new ProbeError(`nbd ${host}:${port}: unknown handshake`));
      if (got.length < nbdNewstyleGreetingBytes) return;
      const serverFlags = got.readUInt16BE(16);
      const reply = Buffer.alloc(4 + 16);
      reply.writeUInt32BE(serverFlags & (nbdFlagFixedNewstyle | nbdFlagNoZeroes), 0);
      nbdIHaveOpt.copy(reply, 4);
      reply.writeUInt32BE(nbdOptAbort, 12);
      reply.writeUInt32BE(0, 16);
      socket.write(reply, () => done());
    });
  });
}

export function fileProbe(path: string, maxAgeMs: number | undefined): void {
  let mtimeMs: number;
  try {
    mtimeMs = statSync(path).mtimeMs;
  } catch (err) {
    throw new ProbeError(`file ${path}: ${hasCode(err, 'ENOENT') ? 'does not exist' : messageOf(err)}`);
  }
  if (maxAgeMs !== undefined) {
    const ageMs = Date.now() - mtimeMs;
    if (ageMs > maxAgeMs) throw new ProbeError(`file ${path}: last modified ${Math.round(ageMs)} ms ago (max ${maxAgeMs} ms)`);
  }
}
