/**
 * A minimal NBD client for protocol edge cases that no installed client can produce: extended
 * headers (libnbd 1.14 and qemu 7.2 here predate them), oversize and malformed requests, unknown
 * options, exact reply bytes. Real clients (libnbd, qemu) cover everything else. It reuses the
 * server's wire.ts encoders only for constants; requests and replies are built here by hand so a
 * bug in wire.ts is not mirrored into the test.
 */
import { connect, type Socket } from 'node:net';
import { once } from 'node:events';

export const OPT = { exportName: 1, abort: 2, list: 3, startTls: 5, info: 6, go: 7, structuredReply: 8, listMeta: 9, setMeta: 10, extendedHeaders: 11 };
export const CMD = { read: 0, write: 1, disc: 2, flush: 3, trim: 4, cache: 5, writeZeroes: 6, blockStatus: 7 };
export const FLAG = { fua: 1, noHole: 2, df: 4, reqOne: 8, fastZero: 16, payloadLen: 32 };
export const REP_ACK = 1;
export const REP_INFO = 3;
export const REP_META = 4;
export const REP_ERR = 0x8000_0000;

export interface OptionReply {
  option: number;
  type: number;
  data: Buffer;
}

export interface Reply {
  cookie: bigint;
  error: number;
  /** Chunk type (structured/extended), or -1 for a simple reply. */
  type: number;
  flags: number;
  data: Buffer;
}

export class RawNbd {
  private buffered: Buffer = Buffer.alloc(0);
  private waiters: Array<() => void> = [];
  private ended = false;
  extended = false;
  structured = false;

  private constructor(readonly socket: Socket) {
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

  static async connect(port: number, host = '127.0.0.1'): Promise<RawNbd> {
    const socket = connect(port, host);
    await once(socket, 'connect');
    return new RawNbd(socket);
  }

  /** Reads exactly n bytes, or throws when the server closes first. */
  async read(n: number, timeoutMs = 10_000): Promise<Buffer> {
    const deadline = Date.now() + timeoutMs;
    while (this.buffered.length < n) {
      if (this.ended) throw new Error(`connection closed with ${this.buffered.length}/${n} bytes`);
      if (Date.now() > deadline) throw new Error(`timed out reading ${n} bytes`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 50);
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

  /** True once the server has closed the connection (waits up to timeoutMs). */
  async closedWithin(timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (!this.ended && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    return this.ended;
  }

  write(data: Buffer): void {
    this.socket.write(data);
  }

  /** Reads the greeting and sends client flags (FIXED_NEWSTYLE | NO_ZEROES by default). */
  async greet(clientFlags = 3): Promise<number> {
    const greeting = await this.read(18);
    if (greeting.toString('latin1', 0, 16) !== 'NBDMAGICIHAVEOPT') throw new Error('bad greeting');
    const flags = Buffer.alloc(4);
    flags.writeUInt32BE(clientFlags);
    this.write(flags);
    return greeting.readUInt16BE(16);
  }

  sendOption(option: number, data: Buffer = Buffer.alloc(0), declaredLength = data.length): void {
    const header = Buffer.alloc(16);
    header.write('IHAVEOPT', 0, 'latin1');
    header.writeUInt32BE(option, 8);
    header.writeUInt32BE(declaredLength, 12);
    this.write(Buffer.concat([header, data]));
  }

  async readOptionReply(): Promise<OptionReply> {
    const header = await this.read(20);
    if (header.readUInt32BE(0) !== 0x0003e889 || header.readUInt32BE(4) !== 0x045565a9) throw new Error('bad option reply magic');
    const length = header.readUInt32BE(16);
    return { option: header.readUInt32BE(8), type: header.readUInt32BE(12), data: await this.read(length) };
  }

  /** Sends an option and collects replies up to the final ACK or error. */
  async option(option: number, data?: Buffer): Promise<OptionReply[]> {
    this.sendOption(option, data);
    const replies: OptionReply[] = [];
    for (;;) {
      const reply = await this.readOptionReply();
      replies.push(reply);
      if (reply.type === REP_ACK || reply.type >= REP_ERR) return replies;
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

  /** Negotiates GO on `name`; returns size and transmission flags from NBD_INFO_EXPORT. */
  async go(name: string): Promise<{ sizeBytes: bigint; flags: number }> {
    const replies = await this.option(OPT.go, RawNbd.infoData(name));
    const last = replies[replies.length - 1]!;
    if (last.type !== REP_ACK) throw new Error(`GO failed: ${last.type.toString(16)} ${last.data.toString()}`);
    const info = replies.find((r) => r.type === REP_INFO && r.data.readUInt16BE(0) === 0)!;
    return { sizeBytes: info.data.readBigUInt64BE(2), flags: info.data.readUInt16BE(10) };
  }

  /** Sends one request (compact or extended header, per `this.extended`). */
  request(type: number, cookie: bigint, offset: bigint, length: bigint, flags = 0, payload?: Buffer): void {
    const header = Buffer.alloc(this.extended ? 32 : 28);
    header.writeUInt32BE(this.extended ? 0x21e41c71 : 0x25609513, 0);
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
    if (magic === 0x67446698) {
      const rest = await this.read(12);
      const error = rest.readUInt32BE(0);
      const data = error === 0 && simpleReadBytes > 0 ? await this.read(simpleReadBytes) : Buffer.alloc(0);
      return { cookie: rest.readBigUInt64BE(4), error, type: -1, flags: 1, data };
    }
    if (magic === 0x668e33ef) {
      const rest = await this.read(16);
      const length = rest.readUInt32BE(12);
      return this.chunk(rest.readUInt16BE(0), rest.readUInt16BE(2), rest.readBigUInt64BE(4), await this.read(length));
    }
    if (magic === 0x6e8a278c) {
      const rest = await this.read(28);
      const length = Number(rest.readBigUInt64BE(20));
      return this.chunk(rest.readUInt16BE(0), rest.readUInt16BE(2), rest.readBigUInt64BE(4), await this.read(length));
    }
    throw new Error(`bad reply magic 0x${magic.toString(16)}`);
  }

  private chunk(flags: number, type: number, cookie: bigint, data: Buffer): Reply {
    const error = type & 0x8000 ? data.readUInt32BE(0) : 0;
    return { cookie, error, type, flags, data };
  }

  close(): void {
    this.socket.destroy();
  }
}
