/**
 * The transmission phase of one connection: parse requests, run them against the export's
 * block device, send replies.
 *
 * Two ways bytes come in (see README.md, "Receiving"):
 *   - direct (plain TCP and Unix sockets): the socket reads into buffers we choose (net.Socket
 *     `onread`). Between requests that is one reused receive buffer per connection; while a
 *     large WRITE payload is due, the next read lands straight in that payload's pooled buffer,
 *     so the kernel copies the data once, into the buffer the store writes out. Small payloads
 *     are copied out of the receive buffer (it is reused by the next read).
 *   - events (TLS): 'data' events, each chunk a fresh buffer; a WRITE's payload is handed to
 *     the device as the list of chunk slices it arrived in, never copied.
 *
 * How a request flows (dev notes):
 *   received bytes -> consume(): headers decoded in place (a header split across reads is
 *   gathered in a 32-byte scratch buffer) -> dispatch(): validate, call the device ->
 *   a synchronous completion is answered at once into the ReplyWriter; an asynchronous one
 *   (a Promise) is answered when it settles, so replies go out of order when that is faster ->
 *   at the end of the chunk every queued reply leaves in one corked write. A READ of
 *   fileReplyBytesMin or more whose range the store holds in the page cache is queued as a
 *   header + file span instead, and the writer sends the data with sendfile (README "Sending").
 *
 * Back-pressure: when unanswered requests reach inflightRequestsMax, their buffers reach
 * inflightBytesMax, or the socket holds more unsent reply bytes than inflightBytesMax (a slow
 * reader), the connection stops reading (socket.pause) and keeps the rest of the current chunk;
 * it resumes when the condition clears. Each connection waits alone: others are not stalled.
 *
 * Validation order per request: unknown command -> unknown/unsupported flags (EINVAL) ->
 * read-only (EPERM) -> range (EINVAL, or ENOSPC for writes and zeroes past the end) ->
 * length over the payload limit (EINVAL; EOVERFLOW for a READ with DF).
 */
import assert from 'node:assert/strict';
import type { Duplex } from 'node:stream';
import { StoreError, type BlockDevice, type Extent, type FileSpan } from '../store/block-device.js';
import type { Logger } from '../util/log.js';
import { messageOf } from '../util/errors.js';
import { headroomBytes, type BufferPool } from './buffer-pool.js';
import type { Negotiated } from './handshake.js';
import type { NbdLimits } from './limits.js';
import {
  Chunk,
  Cmd,
  CmdFlag,
  NbdErrno,
  TxFlag,
  baseAllocationContextId,
  commandNames,
  extendedRequestHeaderBytes,
  replyFlagDone,
  requestHeaderBytes,
  simpleReplyHeaderBytes,
} from './protocol.js';
import type { BusyPoll } from './busy-poll.js';
import { ReplyWriter, type FileReplyStats, type FileSender } from './reply-writer.js';
import {
  blockStatusPayloadBytes,
  chunkHeaderBytes,
  decodeRequestHeader,
  errorChunkPayloadBytes,
  newRequestHeader,
  offsetDataPrefixBytes,
  readU64,
  writeBlockStatusChunk,
  writeChunkHeader,
  writeErrorChunk,
  writeSimpleReplyHeader,
  writeU64,
  type RequestHeader,
} from './wire.js';

/** A WRITE payload with at least this many bytes still to come is read straight into its buffer. */
const directReadBytesMin = 32 * 1024;
/**
 * A READ of at least this many bytes is sent straight from the store's file when the store
 * offers a span and the connection can (README "Sending"); smaller ones are read into memory,
 * where many replies share one writev.
 */
export const fileReplyBytesMin = 64 * 1024;
/** Size of each connection's reusable receive buffer in direct mode. */
export const receiveBufferBytes = 64 * 1024;

/** How a connection receives bytes (see the file comment). */
export type InputMode = 'direct' | 'events';

/** Largest BLOCK_STATUS payload (effect length + context ids) we read. */
const blockStatusPayloadBytesMax = 8 + 4 * 64;
/** Largest 32-bit extent length in a compact BLOCK_STATUS reply, kept a multiple of 512. */
const compactExtentBytesMax = 0xffff_fe00;

/** Counters a connection adds to (shared per server for metrics). */
export interface TransmissionStats extends FileReplyStats {
  requests: number;
  readBytes: number;
  writtenBytes: number;
  errors: number;
}

type PayloadKind = 'write' | 'blockStatus';

export class Transmission {
  private readonly stream: Duplex;
  private readonly device: BlockDevice;
  private readonly writer: ReplyWriter;
  private readonly extended: boolean;
  private readonly structured: boolean;
  private readonly blockStatusOn: boolean;
  private readonly dfOn: boolean;
  private readonly blockStatusPayloadOn: boolean;
  private readonly headerBytes: number;
  private readonly payloadBytesMax: number;
  private readonly header = newRequestHeader();
  private readonly partialHeader = Buffer.alloc(extendedRequestHeaderBytes);
  private partialHeaderBytes = 0;

  /** The request whose payload is being received. */
  private payloadRequest: RequestHeader | null = null;
  private payloadKind: PayloadKind = 'write';
  /** Events mode: the chunk slices received so far. */
  private payloadPieces: Buffer[] = [];
  /** Direct mode: the pooled buffer the payload is gathered in. */
  private payloadBuffer: Buffer | null = null;
  /** Direct mode: the region handed to the socket for the next read, when it is payload. */
  private directTarget: Buffer | null = null;
  private payloadFilled = 0;
  private payloadBytes = 0;
  /** Payload bytes still to skip for a request already refused. */
  private discardBytes = 0;
  /**
   * The refused request whose error reply waits until its payload has been skipped: a client
   * (libnbd) matches a reply only to a request it has finished sending, and drops the
   * connection on an earlier one.
   */
  private refusal: { h: RequestHeader; errno: number; message: string } | null = null;

  private inflightRequests = 0;
  private inflightBytes = 0;
  /** Bytes received but not processed because the connection was paused. */
  private backlog: Buffer | null = null;
  private paused = false;
  private disconnecting = false;
  private closed = false;
  private readonly closedWaiters: Array<() => void> = [];

  private readonly copyPayloads: boolean;

  /**
   * In 'direct' mode the caller has created the socket with `onread` calling `readBuffer()` and
   * `onDirectRead()`, and `receiveBuffer` is the buffer it reads into between payloads.
   * `sendFile` (plain sockets with the native helper) lets large reads go from file to socket.
   */
  constructor(
    negotiated: Negotiated,
    private readonly pool: BufferPool,
    private readonly limits: NbdLimits,
    private readonly stats: TransmissionStats,
    private readonly log: Logger,
    private readonly busyPoll: BusyPoll,
    mode: InputMode = 'events',
    private readonly receiveBuffer: Buffer | null = null,
    sendFile: FileSender | null = null,
  ) {
    assert.ok(mode === 'events' || receiveBuffer !== null, 'direct mode needs a receive buffer');
    this.copyPayloads = mode === 'direct';
    this.stream = negotiated.stream;
    this.device = negotiated.export.device;
    this.extended = negotiated.extendedHeaders;
    this.structured = negotiated.structuredReplies;
    this.blockStatusOn = negotiated.blockStatus;
    this.dfOn = (negotiated.transmissionFlags & TxFlag.sendDf) !== 0;
    this.blockStatusPayloadOn = (negotiated.transmissionFlags & TxFlag.blockStatusPayload) !== 0;
    this.headerBytes = this.extended ? extendedRequestHeaderBytes : requestHeaderBytes;
    this.payloadBytesMax = this.extended ? limits.extendedPayloadBytesMax : limits.payloadBytesMax;
    this.writer = new ReplyWriter(this.stream, pool, {
      sendFile,
      stats,
      onSent: () => this.maybeResume(),
      onFileError: (err) => this.log.warn({ err: messageOf(err) }, 'a read failed after its reply began: closing the connection'),
    });
    if (mode === 'events') this.stream.on('data', (chunk: Buffer) => this.onData(chunk));
    this.stream.on('drain', () => this.maybeResume());
    this.stream.on('close', () => this.onClose());
    this.stream.on('error', (err) => this.log.debug({ err: err.message }, 'connection error'));
    if (negotiated.leftover.length > 0) this.onData(negotiated.leftover);
  }

  /** Resolves when the connection has closed. */
  whenClosed(): Promise<void> {
    if (this.closed) return Promise.resolve();
    return new Promise((resolve) => this.closedWaiters.push(resolve));
  }

  /** Server shutdown: stop taking requests, finish the ones in flight, then close. */
  shutdown(): void {
    this.disconnecting = true;
    this.backlog = null;
    this.stream.pause();
    this.closeWhenIdle();
  }

  private onClose(): void {
    if (this.closed) return;
    this.closed = true;
    this.payloadPieces = [];
    this.directTarget = null;
    if (this.payloadBuffer) {
      this.pool.give(this.payloadBuffer);
      this.payloadBuffer = null;
    }
    for (const wake of this.closedWaiters.splice(0)) wake();
  }

  /** Direct mode: where the socket's next read should land. */
  readBuffer(): Buffer {
    const remaining = this.payloadBytes - this.payloadFilled;
    if (this.payloadBuffer && remaining >= directReadBytesMin && this.discardBytes === 0) {
      this.directTarget = this.payloadBuffer.subarray(this.payloadFilled, this.payloadBytes);
      return this.directTarget;
    }
    this.directTarget = null;
    return this.receiveBuffer!;
  }

  /** Direct mode: `bytes` bytes have landed in `buffer` (from readBuffer). */
  onDirectRead(bytes: number, buffer: Buffer): void {
    if (this.disconnecting) return;
    this.busyPoll.activity();
    if (buffer === this.directTarget) {
      this.directTarget = null;
      this.payloadFilled += bytes;
      if (this.payloadFilled === this.payloadBytes) this.payloadComplete();
    } else {
      this.consume(buffer.subarray(0, bytes), 0);
    }
    this.writer.flush();
  }

  private onData(chunk: Buffer): void {
    if (this.disconnecting) return;
    this.busyPoll.activity();
    this.consume(chunk, 0);
    this.writer.flush();
  }

  private get mustWait(): boolean {
    return (
      this.inflightRequests >= this.limits.inflightRequestsMax ||
      this.inflightBytes >= this.limits.inflightBytesMax ||
      this.writer.backlogBytes >= this.limits.inflightBytesMax
    );
  }

  private pauseWith(rest: Buffer): void {
    this.backlog = rest;
    if (!this.paused) {
      this.paused = true;
      this.stream.pause();
    }
  }

  private maybeResume(): void {
    if (!this.paused || this.mustWait || this.disconnecting) return;
    this.paused = false;
    const rest = this.backlog;
    this.backlog = null;
    if (rest) {
      this.consume(rest, 0);
      this.writer.flush();
    }
    if (!this.paused && !this.disconnecting) this.stream.resume();
  }

  /** Processes `chunk` from `at`; stops early (keeping the rest) when the connection must wait. */
  private consume(chunk: Buffer, at: number): void {
    let position = at;
    const end = chunk.length;
    while (position < end && !this.disconnecting) {
      if (this.discardBytes > 0) {
        const step = Math.min(this.discardBytes, end - position);
        this.discardBytes -= step;
        position += step;
        if (this.discardBytes === 0 && this.refusal) {
          const { h, errno, message } = this.refusal;
          this.refusal = null;
          this.replyError(h, errno, message);
        }
        continue;
      }
      if (this.payloadRequest) {
        const step = Math.min(this.payloadBytes - this.payloadFilled, end - position);
        if (this.payloadBuffer) chunk.copy(this.payloadBuffer, this.payloadFilled, position, position + step);
        else this.payloadPieces.push(step === end && position === 0 ? chunk : chunk.subarray(position, position + step));
        this.payloadFilled += step;
        position += step;
        if (this.payloadFilled === this.payloadBytes) this.payloadComplete();
        continue;
      }
      if (this.mustWait) {
        this.pauseWith(chunk.subarray(position));
        return;
      }
      // Header: decode in place when whole, else gather it.
      let source = chunk;
      let sourceAt = position;
      if (this.partialHeaderBytes === 0 && end - position >= this.headerBytes) {
        position += this.headerBytes;
      } else {
        const step = Math.min(this.headerBytes - this.partialHeaderBytes, end - position);
        chunk.copy(this.partialHeader, this.partialHeaderBytes, position, position + step);
        this.partialHeaderBytes += step;
        position += step;
        if (this.partialHeaderBytes < this.headerBytes) return;
        this.partialHeaderBytes = 0;
        source = this.partialHeader;
        sourceAt = 0;
      }
      if (!decodeRequestHeader(source, sourceAt, this.extended, this.header)) {
        this.log.warn('bad request magic: closing the connection');
        this.hardDisconnect();
        return;
      }
      this.stats.requests += 1;
      this.dispatch(this.header);
    }
  }

  private hardDisconnect(): void {
    this.disconnecting = true;
    this.writer.flush();
    this.stream.destroy();
  }

  /** Validates a request and starts it (or starts receiving its payload). */
  private dispatch(h: RequestHeader): void {
    const device = this.device;
    const flags = h.flags;
    const payloadLen = (flags & CmdFlag.payloadLen) !== 0;
    if (payloadLen && !this.extended) {
      // A compact WRITE carries its payload whatever its flags say: skip it to stay in step.
      if (h.type === Cmd.write) return this.refusePayload(h, 'PAYLOAD_LEN needs extended headers');
      return this.replyError(h, NbdErrno.EINVAL, 'PAYLOAD_LEN needs extended headers');
    }
    switch (h.type) {
      case Cmd.read: {
        if (payloadLen) return this.refusePayload(h, 'READ carries no payload');
        if ((flags & ~(CmdFlag.fua | CmdFlag.df)) !== 0) return this.replyError(h, NbdErrno.EINVAL, 'unsupported READ flags');
        if ((flags & CmdFlag.df) !== 0 && !this.dfOn) return this.replyError(h, NbdErrno.EINVAL, 'DF was not negotiated');
        if (!this.inRange(h)) return this.replyError(h, NbdErrno.EINVAL, 'read past the end of the export');
        if (h.lengthBytes > this.payloadBytesMax) {
          const errno = (flags & CmdFlag.df) !== 0 ? NbdErrno.EOVERFLOW : NbdErrno.EINVAL;
          return this.replyError(h, errno, `read longer than ${this.payloadBytesMax} bytes`);
        }
        return this.startRead(h);
      }
      case Cmd.write: {
        const refusal = this.checkWrite(h);
        if (refusal) return this.refusePayload(h, refusal.message, refusal.errno);
        if (h.lengthBytes === 0) return this.replyOk(h);
        return this.expectPayload(h, 'write');
      }
      case Cmd.disc:
        if (payloadLen) return this.refusePayload(h, 'DISC carries no payload');
        this.disconnecting = true;
        this.backlog = null;
        this.stream.pause();
        return this.closeWhenIdle();
      case Cmd.flush:
        if (payloadLen) return this.refusePayload(h, 'FLUSH carries no payload');
        if ((flags & ~CmdFlag.fua) !== 0) return this.replyError(h, NbdErrno.EINVAL, 'unsupported FLUSH flags');
        return this.run(h, () => device.flush());
      case Cmd.trim: {
        if (payloadLen) return this.refusePayload(h, 'TRIM carries no payload');
        if ((flags & ~CmdFlag.fua) !== 0) return this.replyError(h, NbdErrno.EINVAL, 'unsupported TRIM flags');
        if (device.readOnly) return this.replyError(h, NbdErrno.EPERM, 'export is read-only');
        if (!this.inRange(h)) return this.replyError(h, NbdErrno.EINVAL, 'trim past the end of the export');
        const fua = (flags & CmdFlag.fua) !== 0;
        return this.run(h, () => device.trim(h.offsetBytes, h.lengthBytes, fua));
      }
      case Cmd.cache: {
        if (payloadLen) return this.refusePayload(h, 'CACHE carries no payload');
        if ((flags & ~CmdFlag.fua) !== 0) return this.replyError(h, NbdErrno.EINVAL, 'unsupported CACHE flags');
        if (!this.inRange(h)) return this.replyError(h, NbdErrno.EINVAL, 'cache past the end of the export');
        return this.run(h, () => device.cache(h.offsetBytes, h.lengthBytes));
      }
      case Cmd.writeZeroes: {
        if (payloadLen) return this.refusePayload(h, 'WRITE_ZEROES carries no payload');
        if ((flags & ~(CmdFlag.fua | CmdFlag.noHole | CmdFlag.fastZero)) !== 0) {
          return this.replyError(h, NbdErrno.EINVAL, 'unsupported WRITE_ZEROES flags');
        }
        if (device.readOnly) return this.replyError(h, NbdErrno.EPERM, 'export is read-only');
        if (!this.inRange(h)) return this.replyError(h, NbdErrno.ENOSPC, 'write zeroes past the end of the export');
        const options = {
          mayTrim: (flags & CmdFlag.noHole) === 0,
          fastOnly: (flags & CmdFlag.fastZero) !== 0,
          fua: (flags & CmdFlag.fua) !== 0,
        };
        if (options.fastOnly && !device.canZeroFast) return this.replyError(h, NbdErrno.ENOTSUP, 'fast zero is not supported here');
        return this.run(h, () => device.zero(h.offsetBytes, h.lengthBytes, options));
      }
      case Cmd.blockStatus: {
        if ((flags & ~(CmdFlag.fua | CmdFlag.reqOne | CmdFlag.payloadLen)) !== 0) {
          return this.replyError(h, NbdErrno.EINVAL, 'unsupported BLOCK_STATUS flags');
        }
        if (payloadLen) {
          if (!this.blockStatusPayloadOn || h.lengthBytes < 8 || h.lengthBytes > blockStatusPayloadBytesMax || h.lengthBytes % 4 !== 0) {
            return this.refusePayload(h, 'bad BLOCK_STATUS payload');
          }
          return this.expectPayload(h, 'blockStatus');
        }
        return this.startBlockStatus(h, h.lengthBytes, true);
      }
      default:
        if (payloadLen) return this.refusePayload(h, `unknown command ${h.type}`);
        return this.replyError(h, NbdErrno.EINVAL, `unknown command ${h.type}`);
    }
  }

  private checkWrite(h: RequestHeader): { errno: number; message: string } | null {
    if ((h.flags & ~(CmdFlag.fua | CmdFlag.payloadLen)) !== 0) return { errno: NbdErrno.EINVAL, message: 'unsupported WRITE flags' };
    if (this.device.readOnly) return { errno: NbdErrno.EPERM, message: 'export is read-only' };
    if (!this.inRange(h)) return { errno: NbdErrno.ENOSPC, message: 'write past the end of the export' };
    if (h.lengthBytes > this.payloadBytesMax) return { errno: NbdErrno.EINVAL, message: `write longer than ${this.payloadBytesMax} bytes` };
    return null;
  }

  /** Refuses a request that carries a payload: skips the payload bytes, then replies (see `refusal`). */
  private refusePayload(h: RequestHeader, message: string, errno: number = NbdErrno.EINVAL): void {
    if (h.lengthBytes === 0) return this.replyError(h, errno, message);
    this.discardBytes = h.lengthBytes;
    this.refusal = { h: { ...h }, errno, message };
  }

  private inRange(h: RequestHeader): boolean {
    return h.offsetBytes + h.lengthBytes <= this.device.sizeBytes && h.offsetBytes <= this.device.sizeBytes;
  }

  private expectPayload(h: RequestHeader, kind: PayloadKind): void {
    this.payloadRequest = { ...h };
    this.payloadKind = kind;
    this.payloadBytes = h.lengthBytes;
    this.payloadFilled = 0;
    this.payloadPieces = [];
    if (this.copyPayloads) this.payloadBuffer = this.pool.take(h.lengthBytes);
    this.inflightBytes += h.lengthBytes;
  }

  private payloadComplete(): void {
    const h = this.payloadRequest!;
    const payloadBytes = this.payloadBytes;
    const buffer = this.payloadBuffer;
    const data: Buffer[] = buffer ? [buffer.subarray(0, payloadBytes)] : this.payloadPieces;
    this.payloadRequest = null;
    this.payloadPieces = [];
    this.payloadBuffer = null;
    if (this.payloadKind === 'blockStatus') {
      const payload = data.length === 1 ? data[0]! : Buffer.concat(data);
      const effectBytes = readU64(payload, 0);
      const ids = (payloadBytes - 8) / 4;
      let wantsOurs = false;
      for (let i = 0; i < ids; i += 1) if (payload.readUInt32BE(8 + 4 * i) === baseAllocationContextId) wantsOurs = true;
      this.releasePayload(payloadBytes, buffer);
      return this.startBlockStatus({ ...h, lengthBytes: effectBytes }, effectBytes, wantsOurs);
    }
    const fua = (h.flags & CmdFlag.fua) !== 0;
    this.stats.writtenBytes += payloadBytes;
    let result;
    try {
      result = this.device.write(data, h.offsetBytes, fua);
    } catch (err) {
      this.releasePayload(payloadBytes, buffer);
      return this.replyStoreError(h, err);
    }
    if (result instanceof Promise) {
      this.inflightRequests += 1;
      result.then(
        () => this.finishAsync(h, null, payloadBytes, buffer),
        (err: unknown) => this.finishAsync(h, err, payloadBytes, buffer),
      );
      return;
    }
    this.releasePayload(payloadBytes, buffer);
    this.replyOk(h);
  }

  private releasePayload(payloadBytes: number, buffer: Buffer | null): void {
    this.inflightBytes -= payloadBytes;
    if (buffer) this.pool.give(buffer);
  }

  private finishAsync(h: RequestHeader, err: unknown, payloadBytes = 0, buffer: Buffer | null = null): void {
    this.inflightRequests -= 1;
    this.releasePayload(payloadBytes, buffer);
    if (err) this.replyStoreError(h, err);
    else this.replyOk(h);
    this.writer.scheduleFlush();
    this.afterCompletion();
  }

  private afterCompletion(): void {
    this.busyPoll.activity();
    if (this.disconnecting) this.closeWhenIdle();
    else this.maybeResume();
  }

  /** Runs a command without data in or out; replies when it completes. */
  private run(h: RequestHeader, work: () => void | Promise<void>): void {
    let result;
    try {
      result = work();
    } catch (err) {
      return this.replyStoreError(h, err);
    }
    if (result instanceof Promise) {
      const request = { ...h };
      this.inflightRequests += 1;
      result.then(
        () => this.finishAsync(request, null),
        (err: unknown) => this.finishAsync(request, err),
      );
      return;
    }
    this.replyOk(h);
  }

  private startRead(h: RequestHeader): void {
    const lengthBytes = h.lengthBytes;
    if (lengthBytes === 0) return this.replyOk(h);
    if (lengthBytes >= fileReplyBytesMin && this.writer.sendsFiles) {
      const span = this.device.fileSpan?.(h.offsetBytes, lengthBytes) ?? null;
      if (span) {
        this.stats.readBytes += lengthBytes;
        return this.sendFileReply(h, span);
      }
    }
    const buffer = this.pool.take(lengthBytes);
    const data = buffer.subarray(headroomBytes, headroomBytes + lengthBytes);
    this.stats.readBytes += lengthBytes;
    let result;
    try {
      result = this.device.read(data, h.offsetBytes);
    } catch (err) {
      this.pool.give(buffer);
      return this.replyStoreError(h, err);
    }
    if (result instanceof Promise) {
      const request = { ...h };
      this.inflightRequests += 1;
      this.inflightBytes += buffer.length;
      result.then(
        () => this.finishRead(request, buffer, null),
        (err: unknown) => this.finishRead(request, buffer, err),
      );
      return;
    }
    this.sendReadReply(h, buffer);
  }

  private finishRead(h: RequestHeader, buffer: Buffer, err: unknown): void {
    this.inflightRequests -= 1;
    this.inflightBytes -= buffer.length;
    if (err) {
      this.pool.give(buffer);
      this.replyStoreError(h, err);
    } else {
      this.sendReadReply(h, buffer);
    }
    this.writer.scheduleFlush();
    this.afterCompletion();
  }

  /** The data sits at `headroomBytes`; the header goes right in front of it. */
  private sendReadReply(h: RequestHeader, buffer: Buffer): void {
    const lengthBytes = h.lengthBytes;
    const dataEnd = headroomBytes + lengthBytes;
    if (!this.structured) {
      const start = headroomBytes - simpleReplyHeaderBytes;
      writeSimpleReplyHeader(buffer, start, 0, h);
      this.writer.pushOwned(buffer, start, dataEnd);
      return;
    }
    const prefixBytes = chunkHeaderBytes(this.extended) + offsetDataPrefixBytes;
    const start = headroomBytes - prefixBytes;
    const p = writeChunkHeader(buffer, start, this.extended, replyFlagDone, Chunk.offsetData, h, offsetDataPrefixBytes + lengthBytes);
    buffer.writeUInt32BE(Math.floor(h.offsetBytes / 0x1_0000_0000), p);
    buffer.writeUInt32BE(h.offsetBytes % 0x1_0000_0000 >>> 0, p + 4);
    assert.equal(p + offsetDataPrefixBytes, headroomBytes);
    this.writer.pushOwned(buffer, start, dataEnd);
  }

  /** A read reply whose data the writer sends straight from the file: only the header is ours. */
  private sendFileReply(h: RequestHeader, span: FileSpan): void {
    if (!this.structured) {
      const { buffer, at } = this.writer.pushFile(simpleReplyHeaderBytes, span);
      writeSimpleReplyHeader(buffer, at, 0, h);
      return;
    }
    const prefixBytes = chunkHeaderBytes(this.extended) + offsetDataPrefixBytes;
    const { buffer, at } = this.writer.pushFile(prefixBytes, span);
    const p = writeChunkHeader(buffer, at, this.extended, replyFlagDone, Chunk.offsetData, h, offsetDataPrefixBytes + h.lengthBytes);
    writeU64(buffer, p, h.offsetBytes);
    assert.equal(p + offsetDataPrefixBytes, at + prefixBytes);
  }

  private startBlockStatus(h: RequestHeader, effectBytes: number, wantsOurs: boolean): void {
    if (!this.blockStatusOn) return this.replyError(h, NbdErrno.EINVAL, 'no metadata context was negotiated');
    if (!wantsOurs) return this.replyError(h, NbdErrno.EINVAL, 'BLOCK_STATUS payload names no negotiated context');
    const request = { ...h, lengthBytes: effectBytes };
    if (!this.inRange(request)) return this.replyError(h, NbdErrno.EINVAL, 'block status past the end of the export');
    const lengthBytes = Math.max(1, Math.min(effectBytes, this.device.sizeBytes - h.offsetBytes));
    if (h.offsetBytes >= this.device.sizeBytes) return this.replyError(h, NbdErrno.EINVAL, 'block status at the end of the export');
    let result;
    try {
      result = this.device.extents(h.offsetBytes, lengthBytes);
    } catch (err) {
      return this.replyStoreError(h, err);
    }
    const reqOne = (h.flags & CmdFlag.reqOne) !== 0;
    if (result instanceof Promise) {
      this.inflightRequests += 1;
      result.then(
        (extents) => {
          this.inflightRequests -= 1;
          this.sendBlockStatus(request, extents, reqOne, lengthBytes);
          this.writer.scheduleFlush();
          this.afterCompletion();
        },
        (err: unknown) => this.finishAsync(request, err),
      );
      return;
    }
    this.sendBlockStatus(request, result, reqOne, lengthBytes);
  }

  private sendBlockStatus(h: RequestHeader, extents: readonly Extent[], reqOne: boolean, lengthBytes: number): void {
    assert.ok(extents.length > 0, 'a store returned no extents');
    const lengths: number[] = [];
    const flags: number[] = [];
    const countMax = reqOne ? 1 : this.limits.extentsPerReplyMax;
    const extentBytesMax = this.extended ? Number.MAX_SAFE_INTEGER : compactExtentBytesMax;
    for (const extent of extents) {
      let length = extent.lengthBytes;
      if (reqOne) length = Math.min(length, lengthBytes);
      length = Math.min(length, extentBytesMax);
      if (length <= 0) continue;
      lengths.push(length);
      flags.push(extent.flags);
      if (lengths.length >= countMax || length < extent.lengthBytes) break;
    }
    const bytes = chunkHeaderBytes(this.extended) + blockStatusPayloadBytes(this.extended, lengths.length);
    const target = this.reserveReply(bytes);
    writeBlockStatusChunk(target.buffer, target.at, this.extended, h, baseAllocationContextId, lengths, flags);
    target.commit();
  }

  /** Space for one small reply: in the shared small buffer, or its own pooled buffer when large. */
  private reserveReply(bytes: number): { buffer: Buffer; at: number; commit: () => void } {
    if (bytes <= 4096) {
      const { buffer, at } = this.writer.reserve(bytes);
      return { buffer, at, commit: () => {} };
    }
    const buffer = this.pool.take(bytes);
    return { buffer, at: 0, commit: () => this.writer.pushOwned(buffer, 0, bytes) };
  }

  private replyOk(h: RequestHeader): void {
    if (this.structured && (this.extended || h.type === Cmd.read)) {
      const bytes = chunkHeaderBytes(this.extended);
      const { buffer, at } = this.writer.reserve(bytes);
      writeChunkHeader(buffer, at, this.extended, replyFlagDone, Chunk.none, h, 0);
      return;
    }
    const { buffer, at } = this.writer.reserve(simpleReplyHeaderBytes);
    writeSimpleReplyHeader(buffer, at, 0, h);
  }

  private replyError(h: RequestHeader, errno: number, message: string): void {
    this.stats.errors += 1;
    this.log.debug({ command: commandNames[h.type] ?? h.type, errno, message }, 'request failed');
    if (!this.structured) {
      const { buffer, at } = this.writer.reserve(simpleReplyHeaderBytes);
      writeSimpleReplyHeader(buffer, at, errno, h);
      return;
    }
    const text = Buffer.from(message.slice(0, 200), 'utf8');
    const bytes = chunkHeaderBytes(this.extended) + errorChunkPayloadBytes(text);
    const { buffer, at } = this.writer.reserve(bytes);
    writeErrorChunk(buffer, at, this.extended, h, errno, text);
  }

  private replyStoreError(h: RequestHeader, err: unknown): void {
    if (err instanceof StoreError) {
      return this.replyError(h, NbdErrno[err.code] ?? NbdErrno.EIO, err.message);
    }
    // Not an expected failure: a bug. Crash so the watchdog restarts us with a clean state.
    throw err;
  }

  /** Once nothing is in flight: send what is queued, then close (we read nothing more). */
  private closeWhenIdle(): void {
    if (this.inflightRequests > 0 || this.closed) return;
    this.writer.close(() => this.stream.end(() => this.stream.destroy()));
  }
}
