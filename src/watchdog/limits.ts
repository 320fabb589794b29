/**
 * Every limit and default of the watchdog, named with its unit last. Config keys override
 * the defaults marked "default"; the others are fixed bounds.
 */

/**
 * The longest wait a Node timer can take (2^31 − 1 ms, about 24.8 days): a longer one fires
 * after 1 ms (TimeoutOverflowWarning). Every millisecond setting is bounded by it.
 */
export const timerMsMax = 2_147_483_647;
/** default `checkIntervalMs`: how often /proc is compared with the configured process list. */
export const checkIntervalMsDefault = 500;
/** Smallest allowed `checkIntervalMs` (a tighter loop would only burn CPU). */
export const checkIntervalMsMin = 10;
/** default per process `readyTimeoutMs`: a start that is not ready by then has failed. */
export const readyTimeoutMsDefault = 30_000;
/** How often a readiness probe is retried while a process starts. */
export const readyPollMsDefault = 10;
/** default `stop.timeoutMs`: time between the stop signal and SIGKILL to the process group. */
export const stopTimeoutMsDefault = 5_000;
/** After SIGKILL, how long to wait for the group to disappear before giving up on it. */
export const killWaitMsMax = 3_000;
/** While waiting for a stopped process group to empty, how often /proc is looked at. */
export const stopPollMs = 5;
/** default `stableMs`: a remedy holds once every process has stayed up this long. */
export const stableMsDefault = 10_000;
/** default `attemptsPerRung`: attempts at one rung before escalating to the next. */
export const attemptsPerRungDefault = 1;
/** default `backoff`: delay before the 2nd, 3rd... attempt within one incident. */
export const backoffInitialMsDefault = 200;
export const backoffMaxMsDefault = 30_000;
export const backoffFactorDefault = 2;
/** default liveness probe cadence, failures before acting, and probe timeout. */
export const liveEveryMsDefault = 1_000;
export const liveFailuresDefault = 3;
export const probeTimeoutMsDefault = 1_000;
/** default journal rotation: rotate when the file would exceed this, keep this many old files. */
export const journalBytesMaxDefault = 16 * 1024 * 1024;
export const journalFilesKeptDefault = 4;
/** Entries held in memory while the journal's disk fails; beyond this the oldest are dropped. */
export const journalQueueBytesMax = 4 * 1024 * 1024;
/** How often a failed journal write is retried. */
export const journalRetryMs = 1_000;
/** How often a failed state-file write is retried, and how long a stop waits for it. */
export const stateRetryMs = 1_000;
export const stateIdleWaitMsMax = 5_000;
/** One journal line may not exceed this (a longer cause is truncated). */
export const journalLineBytesMax = 8 * 1024;
/** A cause or detail string is cut to this many characters before it is journaled. */
export const causeCharsMax = 1_000;
/** default `outputRotate`: a process's output log rotates before it would exceed this; old files kept. */
export const outputLogBytesMaxDefault = 8 * 1024 * 1024;
export const outputLogFilesKeptDefault = 1;
/** Config bounds of `outputRotate`. */
export const outputRotateBytesMin = 4096;
export const outputLogFilesKeptMax = 100;
/** Output read from a process's pipe and not yet written; past this, reading pauses (the process's writes wait). */
export const outputBufferBytesMax = 1024 * 1024;
/** Before a start, what an ended instance left in the pipe is taken in, in pieces of this size, up to the max. */
export const outputDrainChunkBytes = 64 * 1024;
export const outputDrainBytesMax = 1024 * 1024;
/** At stop, how long queued output may take to reach the disk before it is given up. */
export const outputFlushWaitMsMax = 5_000;
/** How much of a process's output is scanned for the `stdout` readiness pattern. */
export const readyScanBytesMax = 1024 * 1024;
/** default notification rate limit: at most this many alerts per window (new incidents). */
export const alertsPerWindowDefault = 5;
export const alertWindowSecondsDefault = 3_600;
/** Timeout of one notification delivery (SMTP, webhook, syslog). */
export const notifyTimeoutMsDefault = 10_000;
/** default terminal bells per alert on the buzzer device. */
export const buzzerBeepsDefault = 3;
/** default hardware watchdog feed interval. */
export const hardwareFeedMsDefault = 1_000;
/** Control socket: largest request line accepted, and a client's wait for an answer. */
export const controlRequestBytesMax = 64 * 1024;
export const controlTimeoutMsDefault = 10_000;
/**
 * A client has this long from connecting to send its whole request line; then the server closes
 * the connection (a silent client must not hold a slot, nor a stopping watchdog, for ever).
 */
export const controlRequestWaitMsMax = 10_000;
/** At stop, how long a connection whose reply is written may take to drain before it is cut. */
export const controlCloseWaitMsMax = 1_000;
/** The control socket is bound under this umask: it is born 0600. */
export const controlSocketUmask = 0o177;
/** Mode of a folder the watchdog creates for its state (socket, state file, output pipes). */
export const stateDirMode = 0o700;
/** Permission bits that let group or other users in. */
export const privateModeBits = 0o077;
/** At start, how long a control socket left in place may take to answer before it counts as stale. */
export const staleSocketAnswerMsMax = 2_000;
/** `watchdog stop` waits this long for the whole application to stop (stop timeouts add up). */
export const stopAllTimeoutMsDefault = 120_000;
/** `watchdog restart` waits this long for the processes to be started and ready. */
export const restartTimeoutMsDefault = 120_000;
/** Longest unix socket path Linux accepts (sun_path is 108 bytes with its NUL). */
export const unixPathBytesMax = 107;
/** Config bounds: a process name's length, journal rotation size and files kept, buzzer bells. */
export const processNameCharsMax = 64;
export const journalRotateBytesMin = 4096;
export const journalFilesKeptMax = 100;
export const buzzerBeepsMax = 20;
/** Number of processes in one application (a bound, not a target). */
export const processesMax = 256;
/** Remedy attempts kept per incident for the alert summary. */
export const incidentAttemptsKeptMax = 64;
