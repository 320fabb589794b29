/**
 * Named limits of the NBD server. Every one is enforced: a request over a limit gets an error
 * (or the connection waits, for the in-flight limits), never an allocation of its declared size.
 */
export interface NbdLimits {
  /** Largest READ/WRITE payload with compact headers (the spec's portable 32 MiB). */
  payloadBytesMax: number;
  /** Largest READ/WRITE payload once extended headers are negotiated. */
  extendedPayloadBytesMax: number;
  /** Requests read but not yet answered, per connection; above it the server stops reading. */
  inflightRequestsMax: number;
  /** Buffer bytes held by a connection's unanswered requests; above it the server stops reading. */
  inflightBytesMax: number;
  /** Connections open at once, per server (handshaking or transmitting). */
  connectionsMax: number;
  /** Time allowed from accept to the end of option haggling. */
  handshakeTimeoutMs: number;
  /** Largest option payload read; bigger options are skipped and refused with ERR_TOO_BIG. */
  optionBytesMax: number;
  /** Largest option payload the server will skip; bigger ones close the connection. */
  optionSkipBytesMax: number;
  /** Options a client may send in one handshake (stops option floods). */
  optionsPerHandshakeMax: number;
  /** Extents in one BLOCK_STATUS reply chunk. */
  extentsPerReplyMax: number;
  /** Bytes of buffers the pool keeps for reuse (beyond it, buffers are left to GC). */
  poolRetainedBytesMax: number;
}

export const defaultLimits: Readonly<NbdLimits> = Object.freeze({
  payloadBytesMax: 32 * 1024 * 1024,
  extendedPayloadBytesMax: 64 * 1024 * 1024,
  inflightRequestsMax: 64,
  inflightBytesMax: 64 * 1024 * 1024,
  connectionsMax: 64,
  handshakeTimeoutMs: 10_000,
  optionBytesMax: 64 * 1024,
  optionSkipBytesMax: 16 * 1024 * 1024,
  optionsPerHandshakeMax: 1024,
  extentsPerReplyMax: 4096,
  poolRetainedBytesMax: 64 * 1024 * 1024,
});

/** The block sizes we advertise in NBD_INFO_BLOCK_SIZE. */
export const blockSizeMinBytes = 1;
export const blockSizePreferredBytes = 4096;
