/**
 * A minimal raw NBD client over TCP, for protocol edge cases that no installed client can produce:
 * libnbd 1.14 (Debian 12) and qemu 7.2 predate extended headers; libnbd has no call that sends an
 * arbitrary option (so an unknown option, or the exact option reply code, cannot be seen through
 * it); and no client sends garbage, oversize or malformed requests on purpose. Everything a real
 * client can do is tested with the real client (libnbd, qemu). Written from the protocol spec
 * (doc/proto.md of the NBD project), independently of src/nbd/wire.ts, so the two check each other
 * and a bug in wire.ts is not mirrored into the tests.
 */
import { connect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { once } from 'node:events';
import assert from 'node:assert/strict';

// Codes from the NBD protocol spec.
export const CLIENT_FLAG = { fixedNewstyle: 1, noZeroes: 2 } as const;
export const OPT = { exportName: 1, abort: 2, list: 3, startTls: 5, info: 6, go: 7, structuredReply: 8, listMeta: 9, setMeta: 10, extendedHeaders: 11 } as const;
export const CMD = { read: 0, write: 1, disc: 2, flush: 3, trim: 4, cache: 5, writeZeroes: 6, blockStatus: 7 } as const;
export const FLAG = { fua: 1, noHole: 2, df: 4, reqOne: 8, fastZero: 16, payloadLen: 32 } as const;
/** The bit every error option reply type has set. */
export const REP_ERR = 0x8000_0000;
export const REP = {
  ack: 1,
  server: 2,
  info: 3,
  meta: 4,
  errUnsup: REP_ERR + 1,
  errPolicy: REP_ERR + 2,
  errInvalid: REP_ERR + 3,
  errTlsReqd: REP_ERR + 5,
  errUnknown: REP_ERR + 6,
  errTooBig: REP_ERR + 9,
} as const;

// Magic numbers and sizes from the NBD protocol spec.
const greetingMagic = 'NBDMAGICIHAVEOPT';
const optionMagic = 'IHAVEOPT';
const optionReplyMagicHigh = 0x0003e889;
const optionReplyMagicLow = 0x045565a9;
const requestMagic = 0x25609513;
const extendedRequestMagic = 0x21e41c71;
const simpleReplyMagic = 0x67446698;
const structuredReplyMagic = 0x668e33ef;
const extendedReplyMagic = 0x6e8a278c;
const greetingBytes = 18;
const optionHeaderBytes = 16;
const optionReplyHeaderBytes = 20;
const requestBytes = 28;
const extendedRequestBytes = 32;
const infoExport = 0;
const chunkErrorBit = 0x8000;
const chunkFlagDone = 1;
const defaultClientFlags = CLIENT_FLAG.fixedNewstyle | CLIENT_FLAG.noZeroes;
const pollMs = 50;
const closedPollMs = 20;
const readTimeoutMsDefault = 10_000;

export interface OptionReply {
  option: number;
  type: number;
  data: Buffer;
}

/** What NBD_INFO_EXPORT says about an export after GO or INFO. */
export interface ExportInfo {
  sizeBytes: bigint;
  flags: number;
}

/** `Reply.type` of a simple reply. */
export const SIMPLE_REPLY = -1;

export interface Reply {
  cookie: bigint;
  error: number;
  /** Chunk type (structured/extended), or SIMPLE_REPLY. */
  type: number;
  flags: number;
  data: Buffer;
}

export class RawNbd {
  private buffered: Buffer = Buffer.alloc(0);
  private waiters: Array<() => void> = [];
  private ended = false;
  /** Resolves when the socket has closed (the server closed the connection, or it broke). */
  readonly closed: Promise<void>;
  extended = false;
  structured = false;

  private constructor(readonly socket: Socket) {
    this.closed = new Promise((resolve) => socket.once('close', () => resolve()));
    socket.on('data', (chunk: Buffer) => {
      this.buffered = this.buffered.length ? Buffer.concat([this.buffered, chunk]) : chunk;
      for (const wake of this.waiters.splice(0)) wake();
    });
    const end = (): void => {
      this.ended = true;
      for (const wake of this.waiters.splice(0)) wake();
    };
    socket.on('end', end);
    socket.on('close', end);
    socket.on('error', end);
  }

  /** Opens a TCP connection (nothing is read or sent yet). */
  static async connect(port: number, host = '127.0.0.1'): Promise<RawNbd> {
    const socket = connect(port, host);
    await once(socket, 'connect');
    return new RawNbd(socket);
  }

  /** Opens a connection, checks the newstyle greeting and sends the client flags. */
  static async handshake(port: number, clientFlags: number = defaultClientFlags): Promise<RawNbd> {
    const client = await RawNbd.connect(port);
    try {
      await client.greet(clientFlags);
    } catch (err) {
      client.close();
      throw err;
    }
    return client;
  }

  /** Reads exactly n bytes, or throws when the server closes first. */
  async read(n: number, timeoutMs = readTimeoutMsDefault): Promise<Buffer> {
    const deadline = Date.now() + timeoutMs;
    while (this.buffered.length < n) {
      if (this.ended) throw new Error(`connection closed with ${this.buffered.length}/${n} bytes`);
      if (Date.now() > deadline) throw new Error(`timed out reading ${n} bytes`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, pollMs);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    const out = this.buffered.subarray(0, n);
    this.buffered = this.buffered.subarray(n);
    return out;
  }

  /**
   * True once the server has ended the connection (waits up to timeoutMs). It polls, so the
   * server has a moment to run its own close handlers before the caller looks at its state.
   */
  async closedWithin(timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (!this.ended && Date.now() < deadline) await new Promise((r) => setTimeout(r, closedPollMs));
    return this.ended;
  }

  write(data: Uint8Array): void {
    this.socket.write(data);
  }

  /**
   * Sends NBD_OPT_STARTTLS and, on its ACK, runs a TLS handshake over the same socket (the test's
   * self-signed certificate is not verified). Returns the client to use from then on.
   */
  async startTls(): Promise<RawNbd> {
    const replies = await this.option(OPT.startTls);
    assert.equal(replies.at(-1)!.type, REP.ack, `STARTTLS refused: 0x${replies.at(-1)!.type.toString(16)}`);
    assert.equal(this.buffered.length, 0, 'bytes after the STARTTLS reply');
    const secure = tlsConnect({ socket: this.socket, rejectUnauthorized: false, servername: 'localhost' });
    await once(secure, 'secureConnect');
    return new RawNbd(secure);
  }

  /** Reads the greeting and sends client flags (FIXED_NEWSTYLE | NO_ZEROES by default). */
  async greet(clientFlags: number = defaultClientFlags): Promise<number> {
    const greeting = await this.read(greetingBytes);
    if (greeting.toString('latin1', 0, greetingMagic.length) !== greetingMagic) {
      throw new Error(`not a newstyle NBD greeting: ${greeting.toString('hex')}`);
    }
    const flags = Buffer.alloc(4);
    flags.writeUInt32BE(clientFlags);
    this.write(flags);
    return greeting.readUInt16BE(greetingMagic.length);
  }

  sendOption(option: number, data: Buffer = Buffer.alloc(0), declaredLength = data.length): void {
    const header = Buffer.alloc(optionHeaderBytes);
    header.write(optionMagic, 0, 'latin1');
    header.writeUInt32BE(option, 8);
    header.writeUInt32BE(declaredLength, 12);
    this.write(Buffer.concat([header, data]));
  }

  async readOptionReply(): Promise<OptionReply> {
    const header = await this.read(optionReplyHeaderBytes);
    if (header.readUInt32BE(0) !== optionReplyMagicHigh || header.readUInt32BE(4) !== optionReplyMagicLow) {
      throw new Error(`bad option reply magic: ${header.toString('hex')}`);
    }
    const length = header.readUInt32BE(16);
    return { option: header.readUInt32BE(8), type: header.readUInt32BE(12), data: await this.read(length) };
  }

  /** Sends one option and collects its replies up to the final one (ACK or an error). */
  async option(option: number, data?: Buffer): Promise<OptionReply[]> {
    this.sendOption(option, data);
    const replies: OptionReply[] = [];
    for (;;) {
      const reply = await this.readOptionReply();
      if (reply.option !== option) throw new Error(`reply for option ${reply.option}, expected ${option}`);
      replies.push(reply);
      if (reply.type === REP.ack || reply.type >= REP_ERR) return replies;
    }
  }

  static infoData(name: string, infos: number[] = []): Buffer {
    const nameBytes = Buffer.from(name);
    const data = Buffer.alloc(6 + nameBytes.length + 2 * infos.length);
    data.writeUInt32BE(nameBytes.length, 0);
    nameBytes.copy(data, 4);
    data.writeUInt16BE(infos.length, 4 + nameBytes.length);
    infos.forEach((info, i) => data.writeUInt16BE(info, 6 + nameBytes.length + 2 * i));
    return data;
  }

  static metaData(name: string, queries: string[]): Buffer {
    const parts = [Buffer.alloc(4), Buffer.from(name), Buffer.alloc(4)];
    parts[0]!.writeUInt32BE(Buffer.byteLength(name));
    parts[2]!.writeUInt32BE(queries.length);
    for (const q of queries) {
      const len = Buffer.alloc(4);
      len.writeUInt32BE(Buffer.byteLength(q));
      parts.push(len, Buffer.from(q));
    }
    return Buffer.concat(parts);
  }

  /**
   * Sends NBD_OPT_GO (or INFO) on `name` with no extra info requests; returns size and
   * transmission flags from NBD_INFO_EXPORT, or the error reply type.
   */
  async negotiate(name: string, option: number = OPT.go): Promise<ExportInfo | { error: number }> {
    const replies = await this.option(option, RawNbd.infoData(name));
    const last = replies[replies.length - 1]!;
    if (last.type !== REP.ack) return { error: last.type };
    const info = replies.find((r) => r.type === REP.info && r.data.readUInt16BE(0) === infoExport);
    if (!info) throw new Error(`option ${option} succeeded without NBD_INFO_EXPORT`);
    return { sizeBytes: info.data.readBigUInt64BE(2), flags: info.data.readUInt16BE(10) };
  }

  /** Negotiates GO on `name` (throws when it is refused); returns size and transmission flags. */
  async go(name: string): Promise<ExportInfo> {
    const result = await this.negotiate(name);
    if ('error' in result) throw new Error(`GO on ${name} failed with reply 0x${result.error.toString(16)}`);
    return result;
  }

  /** Sends one request (compact or extended header, per `this.extended`). */
  request(type: number, cookie: bigint, offset: bigint, length: bigint, flags = 0, payload?: Buffer): void {
    const header = Buffer.alloc(this.extended ? extendedRequestBytes : requestBytes);
    header.writeUInt32BE(this.extended ? extendedRequestMagic : requestMagic, 0);
    header.writeUInt16BE(flags, 4);
    header.writeUInt16BE(type, 6);
    header.writeBigUInt64BE(cookie, 8);
    header.writeBigUInt64BE(offset, 16);
    if (this.extended) header.writeBigUInt64BE(length, 24);
    else header.writeUInt32BE(Number(length), 24);
    this.write(payload ? Buffer.concat([header, payload]) : header);
  }

  /**
   * Reads one reply message (one chunk for structured/extended). For a simple reply to a read,
   * pass `simpleReadBytes` so the data is read too.
   */
  async readReply(simpleReadBytes = 0): Promise<Reply> {
    const magic = (await this.read(4)).readUInt32BE(0);
    if (magic === simpleReplyMagic) {
      const rest = await this.read(12);
      const error = rest.readUInt32BE(0);
      const data = error === 0 && simpleReadBytes > 0 ? await this.read(simpleReadBytes) : Buffer.alloc(0);
      return { cookie: rest.readBigUInt64BE(4), error, type: SIMPLE_REPLY, flags: chunkFlagDone, data };
    }
    if (magic === structuredReplyMagic) {
      const rest = await this.read(16);
      const length = rest.readUInt32BE(12);
      return this.chunk(rest.readUInt16BE(0), rest.readUInt16BE(2), rest.readBigUInt64BE(4), await this.read(length));
    }
    if (magic === extendedReplyMagic) {
      const rest = await this.read(28);
      const length = Number(rest.readBigUInt64BE(20));
      return this.chunk(rest.readUInt16BE(0), rest.readUInt16BE(2), rest.readBigUInt64BE(4), await this.read(length));
    }
    throw new Error(`bad reply magic 0x${magic.toString(16)}`);
  }

  /** A READ with simple replies (neither structured replies nor extended headers negotiated). */
  async readAt(offsetBytes: number, lengthBytes: number, cookie = 1n): Promise<{ error: number; data: Buffer }> {
    assert.ok(!this.structured && !this.extended, 'readAt reads simple replies only');
    this.request(CMD.read, cookie, BigInt(offsetBytes), BigInt(lengthBytes));
    const reply = await this.readReply(lengthBytes);
    if (reply.type !== SIMPLE_REPLY) throw new Error(`expected a simple reply, got chunk type ${reply.type}`);
    if (reply.cookie !== cookie) throw new Error(`reply cookie ${reply.cookie} does not match ${cookie}`);
    return { error: reply.error, data: reply.data };
  }

  private chunk(flags: number, type: number, cookie: bigint, data: Buffer): Reply {
    const error = type & chunkErrorBit ? data.readUInt32BE(0) : 0;
    return { cookie, error, type, flags, data };
  }

  close(): void {
    this.socket.destroy();
  }
}
