/**
 * The NBD server: listeners (TCP and/or a Unix socket), the connection limit, the handshake,
 * then one Transmission per connection; and an orderly shutdown.
 */
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { Socket, createServer, type Server } from 'node:net';
import { sparseNative } from '../store/sparse-native.js';
import type { Logger } from '../util/log.js';
import { MirrorboxError, messageOf } from '../util/errors.js';
import { BufferPool } from './buffer-pool.js';
import { BusyPoll } from './busy-poll.js';
import { ExportTable, type NbdExport } from './exports.js';
import { Handshake, HandshakeError, type TlsSettings } from './handshake.js';
import { defaultLimits, type NbdLimits } from './limits.js';
import { ConnectionClosedError } from './stream-reader.js';
import type { FileSender } from './reply-writer.js';
import { Transmission, receiveBufferBytes, type TransmissionStats } from './transmission.js';

export interface ListenAddress {
  host: string;
  port: number;
}

export interface NbdServerOptions {
  exports: readonly NbdExport[];
  listen?: ListenAddress;
  socketPath?: string;
  tls?: TlsSettings | null;
  limits?: Partial<NbdLimits>;
  /** Busy-poll window after activity, in µs (see busy-poll.ts); 0 turns it off. */
  busyPollUs?: number;
  log: Logger;
}

/** Default busy-poll window: 100 µs (see busy-poll.ts for the measurements). */
export const defaultBusyPollUs = 100;

/** TCP keep-alive probe start, so a vanished client is noticed. */
const keepAliveDelayMs = 30_000;
/**
 * Connections over connectionsMax are told why (ERR_POLICY on every option) up to this many
 * more; past that they are closed at once.
 */
const refusedConnectionsMax = 16;

export class NbdServer {
  readonly exports: ExportTable;
  readonly limits: NbdLimits;
  readonly stats: TransmissionStats = { requests: 0, readBytes: 0, writtenBytes: 0, errors: 0, fileReplies: 0, fileReplyWaits: 0 };
  private readonly pool: BufferPool;
  private readonly busyPoll: BusyPoll;
  private readonly listeners: Server[] = [];
  private readonly connections = new Set<Socket>();
  private readonly transmissions = new Set<Transmission>();
  private shuttingDown = false;
  /** Connections within connectionsMax (the others are only told they are refused). */
  private admittedCount = 0;
  private readonly handedOver = new WeakSet<Socket>();
  private readonly log: Logger;
  /** Where it listens, once started: "nbd://host:port" and/or "nbd+unix:///?socket=path". */
  readonly uris: string[] = [];

  constructor(private readonly options: NbdServerOptions) {
    this.exports = new ExportTable(options.exports);
    this.limits = { ...defaultLimits, ...options.limits };
    this.pool = new BufferPool(this.limits.poolRetainedBytesMax);
    this.pool.prewarm([4096, 65536], 32);
    this.busyPoll = new BusyPoll(options.busyPollUs ?? defaultBusyPollUs);
    this.log = options.log;
  }

  get connectionCount(): number {
    return this.connections.size;
  }

  async start(): Promise<void> {
    const { listen, socketPath } = this.options;
    if (!listen && !socketPath) throw new MirrorboxError('BAD_CONFIG', 'nothing to listen on: give a TCP address or a socket path');
    if (listen) {
      const server = await this.listenOn((s) => s.listen(listen.port, listen.host));
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : listen.port;
      const host = listen.host.includes(':') ? `[${listen.host}]` : listen.host;
      this.uris.push(`nbd://${host}:${port}`);
    }
    if (socketPath) {
      rmSync(socketPath, { force: true });
      await this.listenOn((s) => s.listen(socketPath));
      this.uris.push(`nbd+unix:///?socket=${socketPath}`);
    }
  }

  private listenOn(begin: (server: Server) => void): Promise<Server> {
    const server = createServer({ noDelay: true, pauseOnConnect: false }, (socket) => this.accept(socket));
    return new Promise((resolve, reject) => {
      server.once('error', (err: NodeJS.ErrnoException) => {
        const reason = err.code === 'EADDRINUSE' ? 'address already in use' : err.message;
        reject(new MirrorboxError(err.code ?? 'LISTEN_FAILED', `cannot listen: ${reason}`, { cause: err }));
      });
      server.once('listening', () => {
        server.on('error', (err) => this.log.error({ err: err.message }, 'listener error'));
        this.listeners.push(server);
        resolve(server);
      });
      begin(server);
    });
  }

  private accept(socket: Socket): void {
    if (this.shuttingDown || this.connections.size >= this.limits.connectionsMax + refusedConnectionsMax) {
      socket.destroy();
      return;
    }
    // Refused connections do not take a slot: a client holding one open blocks nobody.
    const overLimit = this.admittedCount >= this.limits.connectionsMax;
    this.connections.add(socket);
    if (!overLimit) this.admittedCount += 1;
    socket.once('close', () => {
      this.connections.delete(socket);
      // A socket handed over to a direct-read duplicate keeps its slot until that one closes.
      if (!overLimit && !this.handedOver.has(socket)) this.admittedCount -= 1;
    });
    socket.on('error', () => {});
    socket.setNoDelay(true);
    socket.setKeepAlive(true, keepAliveDelayMs);
    const peer = socket.remoteAddress ? `${socket.remoteAddress}:${socket.remotePort}` : 'unix';
    const log = this.log.child({ peer });
    const timer = setTimeout(() => {
      log.info('handshake timed out: closing');
      socket.destroy();
    }, this.limits.handshakeTimeoutMs);
    const handshake = new Handshake(socket, {
      exports: this.exports,
      limits: this.limits,
      tls: this.options.tls ?? null,
      isShuttingDown: () => this.shuttingDown,
      ...(overLimit ? { refusal: `too many connections (limit ${this.limits.connectionsMax})` } : {}),
    });
    handshake.run().then(
      async (negotiated) => {
        clearTimeout(timer);
        if (negotiated.stream !== socket) negotiated.stream.on('error', () => {});
        log.debug({ export: negotiated.export.name, structured: negotiated.structuredReplies, extended: negotiated.extendedHeaders, tls: negotiated.tls }, 'transmission');
        const direct = negotiated.tls ? null : await this.directReadSocket(socket, log);
        if (!direct && negotiated.stream.destroyed) return; // the client left meanwhile
        let transmission: Transmission;
        if (direct) {
          const leftover = direct.unread.length === 0 ? negotiated.leftover : Buffer.concat([negotiated.leftover, ...direct.unread]);
          transmission = new Transmission(
            { ...negotiated, stream: direct.socket, leftover },
            this.pool,
            this.limits,
            this.stats,
            log,
            this.busyPoll,
            'direct',
            direct.receiveBuffer,
            direct.sendFile,
          );
          direct.attach(transmission);
        } else {
          negotiated.stream.resume();
          transmission = new Transmission(negotiated, this.pool, this.limits, this.stats, log, this.busyPoll);
        }
        this.transmissions.add(transmission);
        void transmission.whenClosed().then(() => this.transmissions.delete(transmission));
        if (this.shuttingDown) transmission.shutdown();
      },
      (err: unknown) => {
        clearTimeout(timer);
        if (err instanceof HandshakeError || err instanceof ConnectionClosedError) {
          log.debug({ reason: messageOf(err) }, 'handshake ended');
          socket.end();
          socket.destroySoon();
        } else {
          log.warn({ err: messageOf(err) }, 'handshake failed');
          socket.destroy();
        }
      },
    );
  }

  /**
   * Re-wraps an accepted plain socket so the transmission phase chooses the buffer each read
   * lands in (net.Socket `onread`, which Node offers only when it creates the socket): the
   * descriptor is duplicated, the handshake's socket is released, and a new Socket is made on
   * the duplicate. Returns null (the caller keeps 'data' events) when the native helper is
   * missing or the socket exposes no descriptor.
   */
  private async directReadSocket(
    socket: Socket,
    log: Logger,
  ): Promise<{ socket: Socket; receiveBuffer: Buffer; unread: Buffer[]; sendFile: FileSender; attach: (t: Transmission) => void } | null> {
    const fd = (socket as unknown as { _handle?: { fd?: number } })._handle?.fd;
    if (!sparseNative || typeof fd !== 'number' || fd < 0) return null;
    // The handshake's last replies must have left before its socket object is released.
    await new Promise<void>((resolve) => socket.write(Buffer.alloc(0), () => resolve()));
    if (socket.destroyed) return null;
    let duplicate: number;
    try {
      duplicate = sparseNative.dupFd(fd);
    } catch (err) {
      // Out of descriptors, say: this connection stays on 'data' events.
      log.warn({ err: messageOf(err) }, 'cannot duplicate the socket descriptor; using data events');
      return null;
    }
    const receiveBuffer = Buffer.allocUnsafeSlow(receiveBufferBytes);
    let target: Transmission | null = null;
    // The Socket constructor reads `onread` (lib/net.js); @types/node 20 declares it on connect() only.
    const direct = new Socket({
      fd: duplicate,
      readable: true,
      writable: true,
      onread: {
        buffer: () => (target ? target.readBuffer() : receiveBuffer),
        callback: (bytes: number, buffer: Uint8Array) => {
          assert.ok(target, 'a read arrived before the transmission was attached');
          target.onDirectRead(bytes, buffer as Buffer);
          return true;
        },
      },
    } as ConstructorParameters<typeof Socket>[0]);
    direct.setNoDelay(true);
    direct.setKeepAlive(true, keepAliveDelayMs);
    direct.on('error', () => {});
    // A paused socket still reads into its own buffer (up to its high-water mark) while the
    // handshake's last write completes: requests a client sent early wait there. Take them over.
    const unread: Buffer[] = [];
    for (let chunk: Buffer | null = socket.read(); chunk !== null; chunk = socket.read()) unread.push(chunk);
    // Release the handshake's socket object without closing the connection (the duplicate
    // descriptor keeps it open; destroy() closes a descriptor, it does not shut the socket down).
    this.handedOver.add(socket);
    this.connections.delete(socket);
    socket.destroy();
    this.connections.add(direct);
    direct.once('close', () => {
      this.connections.delete(direct);
      this.admittedCount -= 1;
    });
    const native = sparseNative;
    const sendFile: FileSender = (head, fd, offsetBytes, lengthBytes) => native.sendFile(duplicate, head, fd, offsetBytes, lengthBytes);
    return { socket: direct, receiveBuffer, unread, sendFile, attach: (t) => (target = t) };
  }

  /**
   * Stops listening, lets every connection finish its requests in flight, then closes the
   * exports' devices (which flushes them). Connections still open after `graceMs` are cut.
   */
  async close(graceMs = 5000): Promise<void> {
    if (this.shuttingDown) return;
    this.shuttingDown = true;
    // Stop accepting now; a listener's close callback only fires once every connection is gone.
    const listenersClosed = Promise.all(this.listeners.map((server) => new Promise<void>((resolve) => server.close(() => resolve()))));
    this.busyPoll.stop();
    for (const transmission of this.transmissions) transmission.shutdown();
    const drained = Promise.all([...this.transmissions].map((t) => t.whenClosed()));
    const timeout = new Promise<void>((resolve) => setTimeout(resolve, graceMs).unref());
    await Promise.race([drained, timeout]);
    for (const socket of this.connections) socket.destroy();
    await listenersClosed;
    for (const entry of this.exports.all()) await entry.device.close();
    if (this.options.socketPath) rmSync(this.options.socketPath, { force: true });
  }
}
