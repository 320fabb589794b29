/**
 * A tiny raw NBD client over TCP, for what the real clients here cannot do: libnbd 1.14 (Debian 12)
 * has no call that sends an arbitrary option (so an unknown option, or the exact option reply
 * code, cannot be seen through it), and no client sends garbage on purpose. Everything a real
 * client can do is tested with the real client. Written from the protocol spec (doc/proto.md),
 * independently of src/nbd/wire.ts so the two check each other.
 */
import { connect, type Socket } from 'node:net';

// Magic numbers and codes from the NBD protocol spec.
const nbdMagic = Buffer.from('NBDMAGIC');
const optionMagic = Buffer.from('IHAVEOPT');
const optionReplyMagic = Buffer.from('0003e889045565a9', 'hex');
const requestMagic = 0x25609513;
const simpleReplyMagic = 0x67446698;
export const clientFlagFixedNewstyle = 1;
export const clientFlagNoZeroes = 2;
export const Opt = { exportName: 1, abort: 2, list: 3, info: 6, go: 7, structuredReply: 8 } as const;
export const Rep = { ack: 1, server: 2, info: 3, errUnsup: 0x8000_0001, errInvalid: 0x8000_0003, errTlsReqd: 0x8000_0005, errUnknown: 0x8000_0006 } as const;
export const Cmd = { read: 0, write: 1, disc: 2, flush: 3 } as const;
const infoExport = 0;
const greetingBytes = 18;
const optionReplyHeaderBytes = 20;
const simpleReplyHeaderBytes = 16;

export interface OptionReply {
  type: number;
  data: Buffer;
}

export class RawNbdClient {
  private received = Buffer.alloc(0);
  private ended = false;
  private wake: (() => void) | null = null;
  /** Resolves when the server has closed the connection (or it broke). */
  readonly closed: Promise<void>;

  private constructor(readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.received = Buffer.concat([this.received, chunk]);
      this.wake?.();
    });
    this.closed = new Promise((resolve) => {
      socket.once('close', () => {
        this.ended = true;
        this.wake?.();
        resolve();
      });
    });
    socket.on('error', () => {});
  }

  /** Opens a TCP connection (nothing is read or sent yet). */
  static open(port: number, host = '127.0.0.1'): Promise<RawNbdClient> {
    return new Promise((resolve, reject) => {
      const socket = connect({ port, host }, () => {
        socket.off('error', reject);
        resolve(new RawNbdClient(socket));
      });
      socket.once('error', reject);
    });
  }

  /** Opens a connection, checks the newstyle greeting and sends the client flags. */
  static async handshake(port: number, clientFlags = clientFlagFixedNewstyle | clientFlagNoZeroes): Promise<RawNbdClient> {
    const client = await RawNbdClient.open(port);
    const greeting = await client.read(greetingBytes);
    if (!greeting.subarray(0, 8).equals(nbdMagic) || !greeting.subarray(8, 16).equals(optionMagic)) {
      throw new Error(`not a newstyle NBD greeting: ${greeting.toString('hex')}`);
    }
    const flags = Buffer.alloc(4);
    flags.writeUInt32BE(clientFlags);
    client.send(flags);
    return client;
  }

  send(bytes: Uint8Array): void {
    this.socket.write(bytes);
  }

  /** Exactly `bytes` bytes from the server (rejects if it closes first). */
  async read(bytes: number, timeoutMs = 10_000): Promise<Buffer> {
    const deadline = Date.now() + timeoutMs;
    while (this.received.length < bytes) {
      if (this.ended) throw new Error(`connection closed after ${this.received.length} of ${bytes} bytes`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${bytes} bytes`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.wake = null;
    }
    const out = this.received.subarray(0, bytes);
    this.received = this.received.subarray(bytes);
    return out;
  }

  /** Sends one option and collects its replies up to the final one (ACK or an error). */
  async option(option: number, data: Uint8Array = Buffer.alloc(0)): Promise<OptionReply[]> {
    const header = Buffer.alloc(16);
    optionMagic.copy(header, 0);
    header.writeUInt32BE(option, 8);
    header.writeUInt32BE(data.length, 12);
    this.send(Buffer.concat([header, data]));
    const replies: OptionReply[] = [];
    for (;;) {
      const replyHeader = await this.read(optionReplyHeaderBytes);
      if (!replyHeader.subarray(0, 8).equals(optionReplyMagic)) throw new Error(`bad option reply magic: ${replyHeader.toString('hex')}`);
      if (replyHeader.readUInt32BE(8) !== option) throw new Error(`reply for option ${replyHeader.readUInt32BE(8)}, expected ${option}`);
      const type = replyHeader.readUInt32BE(12);
      const replyData = await this.read(replyHeader.readUInt32BE(16));
      replies.push({ type, data: replyData });
      if (type === Rep.ack || (type & 0x8000_0000) !== 0) return replies;
    }
  }

  /** NBD_OPT_GO (or INFO) for `name`, no extra info requests; returns the export size, or the error reply. */
  async go(name: string, option: number = Opt.go): Promise<{ sizeBytes: number; transmissionFlags: number } | { error: number }> {
    const nameBytes = Buffer.from(name, 'utf8');
    const data = Buffer.alloc(4 + nameBytes.length + 2);
    data.writeUInt32BE(nameBytes.length, 0);
    nameBytes.copy(data, 4);
    const replies = await this.option(option, data);
    const last = replies[replies.length - 1]!;
    if (last.type !== Rep.ack) return { error: last.type };
    const info = replies.find((r) => r.type === Rep.info && r.data.readUInt16BE(0) === infoExport);
    if (!info) throw new Error(`option ${option} succeeded without NBD_INFO_EXPORT`);
    return { sizeBytes: Number(info.data.readBigUInt64BE(2)), transmissionFlags: info.data.readUInt16BE(10) };
  }

  /** A READ with simple replies (no structured replies negotiated): returns the error and data. */
  async readAt(offsetBytes: number, lengthBytes: number, cookie = 1n): Promise<{ error: number; data: Buffer }> {
    this.request(Cmd.read, offsetBytes, lengthBytes, cookie);
    const reply = await this.read(simpleReplyHeaderBytes);
    if (reply.readUInt32BE(0) !== simpleReplyMagic) throw new Error(`bad simple reply magic: ${reply.toString('hex')}`);
    if (reply.readBigUInt64BE(8) !== cookie) throw new Error('reply cookie does not match');
    const error = reply.readUInt32BE(4);
    return { error, data: error === 0 ? await this.read(lengthBytes) : Buffer.alloc(0) };
  }

  request(type: number, offsetBytes: number, lengthBytes: number, cookie: bigint, flags = 0): void {
    const header = Buffer.alloc(28);
    header.writeUInt32BE(requestMagic, 0);
    header.writeUInt16BE(flags, 4);
    header.writeUInt16BE(type, 6);
    header.writeBigUInt64BE(cookie, 8);
    header.writeBigUInt64BE(BigInt(offsetBytes), 16);
    header.writeUInt32BE(lengthBytes, 24);
    this.send(header);
  }

  close(): void {
    this.socket.destroy();
  }
}
