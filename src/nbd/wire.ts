/**
 * Every NBD byte layout mirrorbox reads or writes, encoded and decoded in this one file.
 * PROTOCOL.md lists each field with its size. All integers are big-endian.
 *
 * Decoders of client input never trust a length: they check it against the bytes present and
 * throw NbdWireError (code BAD_MESSAGE) instead of reading past the end.
 */
import { MirrorboxError } from '../util/errors.js';
import {
  Chunk,
  Info,
  extendedReplyHeaderBytes,
  extendedReplyMagic,
  handshakeFlagFixedNewstyle,
  handshakeFlagNoZeroes,
  initMagicHi,
  initMagicLo,
  optionMagicHi,
  optionMagicLo,
  optionReplyHeaderBytes,
  optionReplyMagicHi,
  optionReplyMagicLo,
  replyFlagDone,
  requestMagic,
  extendedRequestMagic,
  simpleReplyHeaderBytes,
  simpleReplyMagic,
  stringBytesMax,
  structuredReplyHeaderBytes,
  structuredReplyMagic,
} from './protocol.js';

export class NbdWireError extends MirrorboxError {
  constructor(message: string) {
    super('BAD_MESSAGE', message);
    this.name = 'NbdWireError';
  }
}

const twoTo32 = 0x1_0000_0000;

/** Reads a 64-bit unsigned integer as a number (exact below 2^53; larger values stay larger). */
export function readU64(buffer: Uint8Array, at: number): number {
  const view = Buffer.isBuffer(buffer) ? buffer : Buffer.from(buffer.buffer, buffer.byteOffset, buffer.byteLength);
  return view.readUInt32BE(at) * twoTo32 + view.readUInt32BE(at + 4);
}

export function writeU64(buffer: Buffer, at: number, value: number): void {
  buffer.writeUInt32BE(Math.floor(value / twoTo32), at);
  buffer.writeUInt32BE(value % twoTo32 >>> 0, at + 4);
}

// ---------------------------------------------------------------- handshake

/** S: NBDMAGIC, IHAVEOPT, 16-bit handshake flags (18 bytes). */
export function encodeGreeting(): Buffer {
  const buffer = Buffer.alloc(18);
  buffer.writeUInt32BE(initMagicHi, 0);
  buffer.writeUInt32BE(initMagicLo, 4);
  buffer.writeUInt32BE(optionMagicHi, 8);
  buffer.writeUInt32BE(optionMagicLo, 12);
  buffer.writeUInt16BE(handshakeFlagFixedNewstyle | handshakeFlagNoZeroes, 16);
  return buffer;
}

export interface OptionHeader {
  magicOk: boolean;
  option: number;
  lengthBytes: number;
}

/** C: IHAVEOPT (64), option (32), length (32). */
export function decodeOptionHeader(buffer: Uint8Array): OptionHeader {
  if (buffer.length < 16) throw new NbdWireError('short option header');
  const view = Buffer.from(buffer.buffer, buffer.byteOffset, buffer.byteLength);
  return {
    magicOk: view.readUInt32BE(0) === optionMagicHi && view.readUInt32BE(4) === optionMagicLo,
    option: view.readUInt32BE(8),
    lengthBytes: view.readUInt32BE(12),
  };
}

/** S: reply magic (64), option (32), reply type (32), length (32), data. */
export function encodeOptionReply(option: number, replyType: number, data?: Uint8Array): Buffer {
  const dataBytes = data?.length ?? 0;
  const buffer = Buffer.alloc(optionReplyHeaderBytes + dataBytes);
  buffer.writeUInt32BE(optionReplyMagicHi, 0);
  buffer.writeUInt32BE(optionReplyMagicLo, 4);
  buffer.writeUInt32BE(option, 8);
  buffer.writeUInt32BE(replyType >>> 0, 12);
  buffer.writeUInt32BE(dataBytes, 16);
  if (data) buffer.set(data, optionReplyHeaderBytes);
  return buffer;
}

/** Reply to NBD_OPT_EXPORT_NAME: size (64), transmission flags (16), 124 zero bytes unless NO_ZEROES. */
export function encodeExportNameReply(sizeBytes: number, transmissionFlags: number, noZeroes: boolean): Buffer {
  const buffer = Buffer.alloc(noZeroes ? 10 : 134);
  writeU64(buffer, 0, sizeBytes);
  buffer.writeUInt16BE(transmissionFlags, 8);
  return buffer;
}

/** Data of NBD_REP_SERVER (for NBD_OPT_LIST): name length (32), name, description. */
export function encodeServerReplyData(name: string, description: string): Buffer {
  const nameBytes = Buffer.from(name, 'utf8');
  const descriptionBytes = Buffer.from(description, 'utf8');
  const buffer = Buffer.alloc(4 + nameBytes.length + descriptionBytes.length);
  buffer.writeUInt32BE(nameBytes.length, 0);
  nameBytes.copy(buffer, 4);
  descriptionBytes.copy(buffer, 4 + nameBytes.length);
  return buffer;
}

/** NBD_INFO_EXPORT: type (16), size (64), transmission flags (16). */
export function encodeInfoExport(sizeBytes: number, transmissionFlags: number): Buffer {
  const buffer = Buffer.alloc(12);
  buffer.writeUInt16BE(Info.export, 0);
  writeU64(buffer, 2, sizeBytes);
  buffer.writeUInt16BE(transmissionFlags, 10);
  return buffer;
}

/** NBD_INFO_NAME / NBD_INFO_DESCRIPTION: type (16), UTF-8 string. */
export function encodeInfoString(infoType: number, text: string): Buffer {
  const textBytes = Buffer.from(text, 'utf8');
  const buffer = Buffer.alloc(2 + textBytes.length);
  buffer.writeUInt16BE(infoType, 0);
  textBytes.copy(buffer, 2);
  return buffer;
}

/** NBD_INFO_BLOCK_SIZE: type (16), minimum (32), preferred (32), maximum (32). */
export function encodeInfoBlockSize(minimumBytes: number, preferredBytes: number, maximumBytes: number): Buffer {
  const buffer = Buffer.alloc(14);
  buffer.writeUInt16BE(Info.blockSize, 0);
  buffer.writeUInt32BE(minimumBytes, 2);
  buffer.writeUInt32BE(preferredBytes, 6);
  buffer.writeUInt32BE(maximumBytes, 10);
  return buffer;
}

/** NBD_REP_META_CONTEXT data: context id (32), name. */
export function encodeMetaContextReplyData(contextId: number, name: string): Buffer {
  const nameBytes = Buffer.from(name, 'utf8');
  const buffer = Buffer.alloc(4 + nameBytes.length);
  buffer.writeUInt32BE(contextId, 0);
  nameBytes.copy(buffer, 4);
  return buffer;
}

function decodeString(view: Buffer, at: number, lengthBytes: number, what: string): string {
  if (lengthBytes > stringBytesMax) throw new NbdWireError(`${what} longer than ${stringBytesMax} bytes`);
  if (at + lengthBytes > view.length) throw new NbdWireError(`${what} runs past the option data`);
  const text = view.toString('utf8', at, at + lengthBytes);
  if (text.includes('\0')) throw new NbdWireError(`${what} contains NUL`);
  return text;
}

export interface InfoRequest {
  exportName: string;
  infoTypes: number[];
}

/** Data of NBD_OPT_INFO / NBD_OPT_GO: name length (32), name, count (16), count × info type (16). */
export function decodeInfoRequest(data: Uint8Array): InfoRequest {
  const view = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  if (view.length < 6) throw new NbdWireError('INFO/GO data shorter than 6 bytes');
  const nameBytes = view.readUInt32BE(0);
  if (nameBytes > view.length - 6) throw new NbdWireError('INFO/GO export name length past the data');
  const exportName = decodeString(view, 4, nameBytes, 'export name');
  const count = view.readUInt16BE(4 + nameBytes);
  if (view.length !== 6 + nameBytes + 2 * count) throw new NbdWireError('INFO/GO request count does not match the data length');
  const infoTypes: number[] = [];
  for (let i = 0; i < count; i += 1) infoTypes.push(view.readUInt16BE(6 + nameBytes + 2 * i));
  return { exportName, infoTypes };
}

export interface MetaContextRequest {
  exportName: string;
  queries: string[];
}

/** Data of NBD_OPT_{LIST,SET}_META_CONTEXT: name length (32), name, count (32), count × (length (32), query). */
export function decodeMetaContextRequest(data: Uint8Array): MetaContextRequest {
  const view = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  if (view.length < 8) throw new NbdWireError('META_CONTEXT data shorter than 8 bytes');
  const nameBytes = view.readUInt32BE(0);
  if (nameBytes > view.length - 8) throw new NbdWireError('META_CONTEXT export name length past the data');
  const exportName = decodeString(view, 4, nameBytes, 'export name');
  let at = 4 + nameBytes;
  const count = view.readUInt32BE(at);
  at += 4;
  if (count > (view.length - at) / 4) throw new NbdWireError('META_CONTEXT query count past the data');
  const queries: string[] = [];
  for (let i = 0; i < count; i += 1) {
    if (at + 4 > view.length) throw new NbdWireError('META_CONTEXT query length past the data');
    const queryBytes = view.readUInt32BE(at);
    at += 4;
    queries.push(decodeString(view, at, queryBytes, 'context query'));
    at += queryBytes;
  }
  if (at !== view.length) throw new NbdWireError('META_CONTEXT data has trailing bytes');
  return { exportName, queries };
}

// ---------------------------------------------------------------- transmission

/** A decoded request header; reused per connection (no allocation per request). */
export interface RequestHeader {
  flags: number;
  type: number;
  /** The client's 64-bit cookie (handle), as two halves echoed back unchanged. */
  cookieHi: number;
  cookieLo: number;
  offsetBytes: number;
  /** Length as sent (effect length, or payload length with PAYLOAD_LEN). */
  lengthBytes: number;
}

export function newRequestHeader(): RequestHeader {
  return { flags: 0, type: 0, cookieHi: 0, cookieLo: 0, offsetBytes: 0, lengthBytes: 0 };
}

/**
 * Compact request (28 bytes): magic (32), flags (16), type (16), cookie (64), offset (64), length (32).
 * Extended request (32 bytes): the same with a 64-bit length and another magic.
 * Returns false when the magic is wrong (the stream is out of step and must be closed).
 */
export function decodeRequestHeader(buffer: Buffer, at: number, extended: boolean, out: RequestHeader): boolean {
  const magic = buffer.readUInt32BE(at);
  if (magic !== (extended ? extendedRequestMagic : requestMagic)) return false;
  out.flags = buffer.readUInt16BE(at + 4);
  out.type = buffer.readUInt16BE(at + 6);
  out.cookieHi = buffer.readUInt32BE(at + 8);
  out.cookieLo = buffer.readUInt32BE(at + 12);
  out.offsetBytes = readU64(buffer, at + 16);
  out.lengthBytes = extended ? readU64(buffer, at + 24) : buffer.readUInt32BE(at + 24);
  return true;
}

/** Simple reply (16 bytes): magic (32), error (32), cookie (64). */
export function writeSimpleReplyHeader(buffer: Buffer, at: number, error: number, request: RequestHeader): number {
  buffer.writeUInt32BE(simpleReplyMagic, at);
  buffer.writeUInt32BE(error, at + 4);
  buffer.writeUInt32BE(request.cookieHi, at + 8);
  buffer.writeUInt32BE(request.cookieLo, at + 12);
  return at + simpleReplyHeaderBytes;
}

/**
 * Structured reply chunk header (20 bytes): magic (32), flags (16), type (16), cookie (64), length (32).
 * Extended reply header (32 bytes): magic (32), flags (16), type (16), cookie (64), offset (64), length (64).
 */
export function writeChunkHeader(
  buffer: Buffer,
  at: number,
  extended: boolean,
  flags: number,
  chunkType: number,
  request: RequestHeader,
  payloadBytes: number,
): number {
  buffer.writeUInt32BE(extended ? extendedReplyMagic : structuredReplyMagic, at);
  buffer.writeUInt16BE(flags, at + 4);
  buffer.writeUInt16BE(chunkType, at + 6);
  buffer.writeUInt32BE(request.cookieHi, at + 8);
  buffer.writeUInt32BE(request.cookieLo, at + 12);
  if (extended) {
    writeU64(buffer, at + 16, request.offsetBytes);
    writeU64(buffer, at + 24, payloadBytes);
    return at + extendedReplyHeaderBytes;
  }
  buffer.writeUInt32BE(payloadBytes, at + 16);
  return at + structuredReplyHeaderBytes;
}

export function chunkHeaderBytes(extended: boolean): number {
  return extended ? extendedReplyHeaderBytes : structuredReplyHeaderBytes;
}

/** Bytes of an NBD_REPLY_TYPE_ERROR chunk payload: error (32), message length (16), message. */
export function errorChunkPayloadBytes(message: Buffer): number {
  return 6 + message.length;
}

export function writeErrorChunk(buffer: Buffer, at: number, extended: boolean, request: RequestHeader, error: number, message: Buffer): number {
  let p = writeChunkHeader(buffer, at, extended, replyFlagDone, Chunk.error, request, errorChunkPayloadBytes(message));
  buffer.writeUInt32BE(error, p);
  buffer.writeUInt16BE(message.length, p + 4);
  p += 6;
  message.copy(buffer, p);
  return p + message.length;
}

/** Bytes of the OFFSET_DATA prefix inside the chunk payload: offset (64), then the data. */
export const offsetDataPrefixBytes = 8;

/** NBD_REPLY_TYPE_BLOCK_STATUS payload: context id (32), then per extent length (32), flags (32). */
export function blockStatusPayloadBytes(extended: boolean, extentCount: number): number {
  return extended ? 8 + 16 * extentCount : 4 + 8 * extentCount;
}

/** NBD_REPLY_TYPE_BLOCK_STATUS_EXT payload: context id (32), count (32), per extent length (64), flags (64). */
export function writeBlockStatusChunk(
  buffer: Buffer,
  at: number,
  extended: boolean,
  request: RequestHeader,
  contextId: number,
  lengths: readonly number[],
  flags: readonly number[],
): number {
  const count = lengths.length;
  let p = writeChunkHeader(
    buffer,
    at,
    extended,
    replyFlagDone,
    extended ? Chunk.blockStatusExt : Chunk.blockStatus,
    request,
    blockStatusPayloadBytes(extended, count),
  );
  buffer.writeUInt32BE(contextId, p);
  p += 4;
  if (extended) {
    buffer.writeUInt32BE(count, p);
    p += 4;
    for (let i = 0; i < count; i += 1) {
      writeU64(buffer, p, lengths[i]!);
      writeU64(buffer, p + 8, flags[i]!);
      p += 16;
    }
  } else {
    for (let i = 0; i < count; i += 1) {
      buffer.writeUInt32BE(lengths[i]!, p);
      buffer.writeUInt32BE(flags[i]!, p + 4);
      p += 8;
    }
  }
  return p;
}
