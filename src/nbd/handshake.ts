/**
 * Fixed-newstyle option haggling, from the greeting to the transmission phase.
 *
 * Flow: greeting -> client flags -> options until EXPORT_NAME or a successful GO (-> transmission)
 * or ABORT / a protocol violation / the handshake timeout (-> close). STARTTLS swaps the stream
 * for a TLS one in the middle and haggling goes on over it.
 *
 * Hard cases (what the server answers):
 * | situation                                         | answer                                  |
 * |---------------------------------------------------|-----------------------------------------|
 * | unknown client flag bits                          | close (the spec's MUST)                 |
 * | option magic wrong                                | close (stream out of step)              |
 * | unknown option                                    | ERR_UNSUP, haggling goes on             |
 * | option data > optionBytesMax                      | skip the data, ERR_TOO_BIG              |
 * | option data > optionSkipBytesMax                  | close                                   |
 * | malformed option data                             | ERR_INVALID                             |
 * | INFO/GO/META_CONTEXT on an unknown export         | ERR_UNKNOWN                             |
 * | EXPORT_NAME on an unknown export                  | close (it cannot be answered with error)|
 * | TLS required, not yet on, option != STARTTLS/ABORT| ERR_TLS_REQD (EXPORT_NAME: close)       |
 * | STARTTLS without a certificate / when already on  | ERR_POLICY / ERR_INVALID                |
 * | SET_META_CONTEXT before STRUCTURED_REPLY          | ERR_INVALID                             |
 * | STRUCTURED_REPLY or EXTENDED_HEADERS twice        | ERR_INVALID                             |
 * | server shutting down                              | ERR_SHUTDOWN to every option but ABORT  |
 * | connection over connectionsMax                    | ERR_POLICY to every option but ABORT    |
 */
import { TLSSocket, type SecureContext } from 'node:tls';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { MirrorboxError } from '../util/errors.js';
import type { ExportTable, NbdExport } from './exports.js';
import { blockSizeMinBytes, blockSizePreferredBytes, type NbdLimits } from './limits.js';
import {
  Info,
  Opt,
  Rep,
  TxFlag,
  baseAllocationContext,
  baseAllocationContextId,
  clientFlagNoZeroes,
  clientFlagsKnown,
  optionHeaderBytes,
} from './protocol.js';
import { StreamReader } from './stream-reader.js';
import {
  NbdWireError,
  decodeInfoRequest,
  decodeMetaContextRequest,
  decodeOptionHeader,
  encodeExportNameReply,
  encodeGreeting,
  encodeInfoBlockSize,
  encodeInfoExport,
  encodeInfoString,
  encodeMetaContextReplyData,
  encodeOptionReply,
  encodeServerReplyData,
} from './wire.js';

export interface TlsSettings {
  context: SecureContext;
  /** FORCEDTLS: every option but STARTTLS/ABORT is refused until TLS is on. */
  required: boolean;
}

export interface HandshakeSettings {
  exports: ExportTable;
  limits: NbdLimits;
  tls: TlsSettings | null;
  /** Asked per option: true once the server is shutting down. */
  isShuttingDown: () => boolean;
  /** When set, the connection is over a limit: every option is refused with this message. */
  refusal?: string;
}

/** What the transmission phase needs from the handshake. */
export interface Negotiated {
  stream: Duplex;
  export: NbdExport;
  structuredReplies: boolean;
  extendedHeaders: boolean;
  /** base:allocation was selected for this export. */
  blockStatus: boolean;
  transmissionFlags: number;
  tls: boolean;
  /** Bytes the client sent after the last option (its first requests). */
  leftover: Buffer;
}

export class HandshakeError extends MirrorboxError {
  constructor(code: 'HANDSHAKE_VIOLATION' | 'HANDSHAKE_ABORTED' | 'HANDSHAKE_TIMEOUT', message: string) {
    super(code, message);
    this.name = 'HandshakeError';
  }
}

/** Transmission flags for an export on this connection. */
export function transmissionFlagsFor(entry: NbdExport, structuredReplies: boolean, extendedHeaders: boolean): number {
  const device = entry.device;
  let flags = TxFlag.hasFlags | TxFlag.sendFlush | TxFlag.sendCache;
  if (device.readOnly) {
    flags |= TxFlag.readOnly;
  } else {
    flags |= TxFlag.sendFua | TxFlag.sendTrim | TxFlag.sendWriteZeroes | TxFlag.sendFastZero;
  }
  if (device.flushCoversAllConnections) flags |= TxFlag.canMultiConn;
  if (structuredReplies) flags |= TxFlag.sendDf;
  if (extendedHeaders) flags |= TxFlag.blockStatusPayload;
  return flags;
}

/** Largest READ/WRITE payload for this connection. */
export function payloadBytesMaxFor(limits: NbdLimits, extendedHeaders: boolean): number {
  return extendedHeaders ? limits.extendedPayloadBytesMax : limits.payloadBytesMax;
}

export class Handshake {
  private stream: Duplex;
  private reader: StreamReader;
  private tlsOn = false;
  private structuredReplies = false;
  private extendedHeaders = false;
  /** Export name the selected meta contexts belong to, or null when none are selected. */
  private metaExportName: string | null = null;

  constructor(
    socket: Socket,
    private readonly settings: HandshakeSettings,
  ) {
    this.stream = socket;
    this.reader = new StreamReader(socket);
  }

  /** Runs option haggling to the end. Resolves with the negotiated state or throws HandshakeError. */
  async run(): Promise<Negotiated> {
    this.stream.write(encodeGreeting());
    const clientFlags = (await this.reader.read(4)).readUInt32BE(0);
    if ((clientFlags & ~clientFlagsKnown) !== 0) {
      throw new HandshakeError('HANDSHAKE_VIOLATION', `unknown client flags 0x${clientFlags.toString(16)}`);
    }
    const noZeroes = (clientFlags & clientFlagNoZeroes) !== 0;
    const limits = this.settings.limits;
    for (let count = 0; count < limits.optionsPerHandshakeMax; count += 1) {
      const header = decodeOptionHeader(await this.reader.read(optionHeaderBytes));
      if (!header.magicOk) throw new HandshakeError('HANDSHAKE_VIOLATION', 'bad option magic');
      const { option, lengthBytes } = header;
      if (lengthBytes > limits.optionBytesMax) {
        if (lengthBytes > limits.optionSkipBytesMax) {
          throw new HandshakeError('HANDSHAKE_VIOLATION', `option ${option} carries ${lengthBytes} bytes`);
        }
        await this.reader.skip(lengthBytes);
        this.replyError(option, Rep.errTooBig, `option data over ${limits.optionBytesMax} bytes`);
        continue;
      }
      const data = await this.reader.read(lengthBytes);
      const done = await this.handleOption(option, data, noZeroes);
      if (done) return done;
    }
    throw new HandshakeError('HANDSHAKE_VIOLATION', `more than ${limits.optionsPerHandshakeMax} options`);
  }

  /** Handles one option; returns the negotiated state when the option enters transmission. */
  private async handleOption(option: number, data: Buffer, noZeroes: boolean): Promise<Negotiated | null> {
    if (option === Opt.abort) {
      this.reply(option, Rep.ack);
      throw new HandshakeError('HANDSHAKE_ABORTED', 'client sent NBD_OPT_ABORT');
    }
    if (this.settings.refusal !== undefined) {
      if (option === Opt.exportName) throw new HandshakeError('HANDSHAKE_ABORTED', this.settings.refusal);
      this.replyError(option, Rep.errPolicy, this.settings.refusal);
      return null;
    }
    if (this.settings.isShuttingDown()) {
      if (option === Opt.exportName) throw new HandshakeError('HANDSHAKE_ABORTED', 'server is shutting down');
      this.replyError(option, Rep.errShutdown, 'server is shutting down');
      return null;
    }
    if (this.settings.tls?.required && !this.tlsOn && option !== Opt.startTls) {
      if (option === Opt.exportName) throw new HandshakeError('HANDSHAKE_VIOLATION', 'EXPORT_NAME before the required STARTTLS');
      this.replyError(option, Rep.errTlsReqd, 'this server requires TLS: send NBD_OPT_STARTTLS first');
      return null;
    }
    try {
      switch (option) {
        case Opt.exportName:
          return this.exportName(data, noZeroes);
        case Opt.list:
          this.list(data);
          return null;
        case Opt.startTls:
          await this.startTls(data);
          return null;
        case Opt.info:
        case Opt.go:
          return this.infoOrGo(option, data);
        case Opt.structuredReply:
          this.enableStructuredReplies(data);
          return null;
        case Opt.setMetaContext:
          // SET replaces the previous selection even when it fails (proto.md).
          this.metaExportName = null;
          this.metaContext(option, data);
          return null;
        case Opt.listMetaContext:
          this.metaContext(option, data);
          return null;
        case Opt.extendedHeaders:
          this.enableExtendedHeaders(data);
          return null;
        default:
          this.replyError(option, Rep.errUnsup, `option ${option} is not supported`);
          return null;
      }
    } catch (err) {
      if (err instanceof NbdWireError) {
        this.replyError(option, Rep.errInvalid, err.message);
        return null;
      }
      throw err;
    }
  }

  private exportName(data: Buffer, noZeroes: boolean): Negotiated {
    const name = data.toString('utf8');
    const entry = this.settings.exports.find(name);
    if (!entry) throw new HandshakeError('HANDSHAKE_ABORTED', `EXPORT_NAME for unknown export "${name}"`);
    const negotiated = this.finish(entry, name);
    this.stream.write(encodeExportNameReply(entry.device.sizeBytes, negotiated.transmissionFlags, noZeroes));
    return negotiated;
  }

  private list(data: Buffer): void {
    if (data.length !== 0) {
      this.replyError(Opt.list, Rep.errInvalid, 'NBD_OPT_LIST takes no data');
      return;
    }
    for (const entry of this.settings.exports.all()) {
      this.reply(Opt.list, Rep.server, encodeServerReplyData(entry.name, entry.description));
    }
    this.reply(Opt.list, Rep.ack);
  }

  private async startTls(data: Buffer): Promise<void> {
    const tls = this.settings.tls;
    if (data.length !== 0) return this.replyError(Opt.startTls, Rep.errInvalid, 'NBD_OPT_STARTTLS takes no data');
    if (!tls) return this.replyError(Opt.startTls, Rep.errPolicy, 'TLS is not configured on this server');
    if (this.tlsOn) return this.replyError(Opt.startTls, Rep.errInvalid, 'TLS is already on');
    const leftover = this.reader.detach();
    if (leftover.length !== 0) throw new HandshakeError('HANDSHAKE_VIOLATION', 'client sent data before the STARTTLS reply');
    this.reply(Opt.startTls, Rep.ack);
    const secure = new TLSSocket(this.stream as Socket, { isServer: true, secureContext: tls.context });
    await new Promise<void>((resolve, reject) => {
      secure.once('secure', resolve);
      secure.once('error', (err) => reject(new HandshakeError('HANDSHAKE_VIOLATION', `TLS handshake failed: ${err.message}`)));
      secure.once('close', () => reject(new HandshakeError('HANDSHAKE_VIOLATION', 'connection closed during the TLS handshake')));
    });
    this.stream = secure;
    this.reader = new StreamReader(secure);
    this.tlsOn = true;
    // proto.md, NBD_OPT_STARTTLS: the server MUST NOT preserve any negotiation state (structured
    // replies, extended headers, metadata contexts) from before TLS; the client negotiates again.
    this.structuredReplies = false;
    this.extendedHeaders = false;
    this.metaExportName = null;
  }

  private infoOrGo(option: number, data: Buffer): Negotiated | null {
    const request = decodeInfoRequest(data);
    const entry = this.settings.exports.find(request.exportName);
    if (!entry) {
      this.replyError(option, Rep.errUnknown, `no export named "${request.exportName}"`);
      return null;
    }
    const flags = transmissionFlagsFor(entry, this.structuredReplies, this.extendedHeaders);
    this.reply(option, Rep.info, encodeInfoExport(entry.device.sizeBytes, flags));
    const wanted = new Set(request.infoTypes);
    if (wanted.has(Info.name)) this.reply(option, Rep.info, encodeInfoString(Info.name, entry.name));
    if (wanted.has(Info.description) && entry.description !== '') {
      this.reply(option, Rep.info, encodeInfoString(Info.description, entry.description));
    }
    const maximumBytes = Math.min(payloadBytesMaxFor(this.settings.limits, this.extendedHeaders), 0xffff_ffff);
    this.reply(option, Rep.info, encodeInfoBlockSize(blockSizeMinBytes, blockSizePreferredBytes, maximumBytes));
    this.reply(option, Rep.ack);
    if (option === Opt.info) return null;
    return this.finish(entry, request.exportName);
  }

  private enableStructuredReplies(data: Buffer): void {
    if (data.length !== 0) return this.replyError(Opt.structuredReply, Rep.errInvalid, 'NBD_OPT_STRUCTURED_REPLY takes no data');
    if (this.structuredReplies) return this.replyError(Opt.structuredReply, Rep.errInvalid, 'structured replies are already on');
    this.structuredReplies = true;
    this.reply(Opt.structuredReply, Rep.ack);
  }

  private enableExtendedHeaders(data: Buffer): void {
    if (data.length !== 0) return this.replyError(Opt.extendedHeaders, Rep.errInvalid, 'NBD_OPT_EXTENDED_HEADERS takes no data');
    if (this.extendedHeaders) return this.replyError(Opt.extendedHeaders, Rep.errInvalid, 'extended headers are already on');
    this.extendedHeaders = true;
    this.structuredReplies = true;
    // Contexts chosen under the other header format no longer apply.
    this.metaExportName = null;
    this.reply(Opt.extendedHeaders, Rep.ack);
  }

  private metaContext(option: number, data: Buffer): void {
    const request = decodeMetaContextRequest(data);
    const isSet = option === Opt.setMetaContext;
    if (isSet && !this.structuredReplies) {
      return this.replyError(option, Rep.errInvalid, 'negotiate structured replies before SET_META_CONTEXT');
    }
    const entry = this.settings.exports.find(request.exportName);
    if (!entry) return this.replyError(option, Rep.errUnknown, `no export named "${request.exportName}"`);
    let matched = false;
    if (request.queries.length === 0) {
      matched = !isSet; // LIST with no query lists everything; SET with none selects nothing.
    } else {
      for (const query of request.queries) {
        if (query === baseAllocationContext || (!isSet && query === 'base:')) matched = true;
      }
    }
    if (isSet) this.metaExportName = matched ? request.exportName : null;
    if (matched) this.reply(option, Rep.metaContext, encodeMetaContextReplyData(isSet ? baseAllocationContextId : 0, baseAllocationContext));
    this.reply(option, Rep.ack);
  }

  private finish(entry: NbdExport, requestedName: string): Negotiated {
    // Stop reading here: the transmission phase may take the socket over in another form.
    this.stream.pause();
    const leftover = this.reader.detach();
    return {
      stream: this.stream,
      export: entry,
      structuredReplies: this.structuredReplies,
      extendedHeaders: this.extendedHeaders,
      blockStatus: this.structuredReplies && this.metaExportName !== null && this.metaExportName === requestedName,
      transmissionFlags: transmissionFlagsFor(entry, this.structuredReplies, this.extendedHeaders),
      tls: this.tlsOn,
      leftover,
    };
  }

  private reply(option: number, replyType: number, data?: Uint8Array): void {
    this.stream.write(encodeOptionReply(option, replyType, data));
  }

  private replyError(option: number, replyType: number, message: string): void {
    this.reply(option, replyType, Buffer.from(message, 'utf8'));
  }
}
