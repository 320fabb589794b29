/**
 * NBD protocol constants, from the NBD protocol specification (doc/proto.md in the
 * NetworkBlockDevice/nbd repository). Every byte layout that uses them is in wire.ts and is
 * described in PROTOCOL.md.
 */

// Magic numbers. The 64-bit ones are kept as two 32-bit halves (hi, lo) so no BigInt is needed.
export const initMagicHi = 0x4e42444d; // "NBDM"
export const initMagicLo = 0x41474943; // "AGIC"
export const optionMagicHi = 0x49484156; // "IHAV"
export const optionMagicLo = 0x454f5054; // "EOPT"
export const optionReplyMagicHi = 0x0003e889;
export const optionReplyMagicLo = 0x045565a9;
export const requestMagic = 0x25609513;
export const extendedRequestMagic = 0x21e41c71;
export const simpleReplyMagic = 0x67446698;
export const structuredReplyMagic = 0x668e33ef;
export const extendedReplyMagic = 0x6e8a278c;

// Handshake flags (server) and client flags.
export const handshakeFlagFixedNewstyle = 1 << 0;
export const handshakeFlagNoZeroes = 1 << 1;
export const clientFlagFixedNewstyle = 1 << 0;
export const clientFlagNoZeroes = 1 << 1;
export const clientFlagsKnown = clientFlagFixedNewstyle | clientFlagNoZeroes;

// Options.
export const Opt = {
  exportName: 1,
  abort: 2,
  list: 3,
  peekExport: 4,
  startTls: 5,
  info: 6,
  go: 7,
  structuredReply: 8,
  listMetaContext: 9,
  setMetaContext: 10,
  extendedHeaders: 11,
} as const;

// Option reply types.
const repErr = 0x8000_0000;
export const Rep = {
  ack: 1,
  server: 2,
  info: 3,
  metaContext: 4,
  errUnsup: repErr + 1,
  errPolicy: repErr + 2,
  errInvalid: repErr + 3,
  errPlatform: repErr + 4,
  errTlsReqd: repErr + 5,
  errUnknown: repErr + 6,
  errShutdown: repErr + 7,
  errBlockSizeReqd: repErr + 8,
  errTooBig: repErr + 9,
  errExtHeaderReqd: repErr + 10,
} as const;

// NBD_OPT_INFO / NBD_OPT_GO information types.
export const Info = {
  export: 0,
  name: 1,
  description: 2,
  blockSize: 3,
} as const;

// Transmission flags.
export const TxFlag = {
  hasFlags: 1 << 0,
  readOnly: 1 << 1,
  sendFlush: 1 << 2,
  sendFua: 1 << 3,
  rotational: 1 << 4,
  sendTrim: 1 << 5,
  sendWriteZeroes: 1 << 6,
  sendDf: 1 << 7,
  canMultiConn: 1 << 8,
  sendResize: 1 << 9,
  sendCache: 1 << 10,
  sendFastZero: 1 << 11,
  blockStatusPayload: 1 << 12,
} as const;

// Commands.
export const Cmd = {
  read: 0,
  write: 1,
  disc: 2,
  flush: 3,
  trim: 4,
  cache: 5,
  writeZeroes: 6,
  blockStatus: 7,
  resize: 8,
} as const;

export const commandNames: Record<number, string> = {
  0: 'READ',
  1: 'WRITE',
  2: 'DISC',
  3: 'FLUSH',
  4: 'TRIM',
  5: 'CACHE',
  6: 'WRITE_ZEROES',
  7: 'BLOCK_STATUS',
  8: 'RESIZE',
};

// Command flags.
export const CmdFlag = {
  fua: 1 << 0,
  noHole: 1 << 1,
  df: 1 << 2,
  reqOne: 1 << 3,
  fastZero: 1 << 4,
  payloadLen: 1 << 5,
} as const;

// Structured reply flags and chunk types.
export const replyFlagDone = 1 << 0;
export const Chunk = {
  none: 0,
  offsetData: 1,
  offsetHole: 2,
  blockStatus: 5,
  blockStatusExt: 6,
  error: (1 << 15) + 1,
  errorOffset: (1 << 15) + 2,
} as const;

// Errors (values as on the wire).
export const NbdErrno = {
  EPERM: 1,
  EIO: 5,
  ENOMEM: 12,
  EINVAL: 22,
  ENOSPC: 28,
  EOVERFLOW: 75,
  ENOTSUP: 95,
  ESHUTDOWN: 108,
} as const;
export type NbdErrnoName = keyof typeof NbdErrno;

// base:allocation flags.
export const stateHole = 1 << 0;
export const stateZero = 1 << 1;

/** The only metadata context we serve, and the id we give it. */
export const baseAllocationContext = 'base:allocation';
export const baseAllocationContextId = 1;

/** Header sizes in bytes. */
export const requestHeaderBytes = 28;
export const extendedRequestHeaderBytes = 32;
export const simpleReplyHeaderBytes = 16;
export const structuredReplyHeaderBytes = 20;
export const extendedReplyHeaderBytes = 32;
export const optionHeaderBytes = 16;
export const optionReplyHeaderBytes = 20;
/** Longest string (export name, description, context name) the spec allows. */
export const stringBytesMax = 4096;
