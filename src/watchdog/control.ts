/**
 * The control socket (<stateDir>/watchdog.sock, mode 0600): how `watchdog status`, `restart`
 * and `stop` talk to the running watchdog. Newline-delimited JSON, one request per
 * connection; the server may send progress lines before the final reply. Format: FORMATS.md.
 *
 * Nobody else may connect, ever: the socket is created 0600 (bind() under a umask of 0177, not
 * chmod'ed afterwards, which would leave a window), in a state folder the watchdog creates 0700.
 */
import assert from 'node:assert/strict';
import { createServer, connect, type Socket } from 'node:net';
import { existsSync, statSync, unlinkSync } from 'node:fs';
import { z } from 'zod';
import { MirrorboxError, hasCode, messageOf } from '../util/errors.js';
import * as limits from './limits.js';

export const controlVersion = 1;

const requestSchema = z.discriminatedUnion('cmd', [
  z.object({ v: z.literal(controlVersion), cmd: z.literal('status') }),
  z.object({ v: z.literal(controlVersion), cmd: z.literal('stop'), keepProcesses: z.boolean().default(false) }),
  z.object({ v: z.literal(controlVersion), cmd: z.literal('restart'), processes: z.array(z.string().min(1).max(limits.processNameCharsMax)).max(limits.processesMax).default([]) }),
]);
export type ControlRequest = z.output<typeof requestSchema>;

/** Everything the server sends: progress lines, then exactly one line with `done: true`. */
export interface ControlMessage {
  v: number;
  done: boolean;
  ok?: boolean;
  code?: string;
  message?: string;
  progress?: string;
  [key: string]: unknown;
}

export type ControlHandler = (request: ControlRequest, progress: (text: string) => void) => Promise<Record<string, unknown>>;

export function checkSocketPath(path: string): void {
  if (Buffer.byteLength(path) > limits.unixPathBytesMax) {
    throw new MirrorboxError('SOCKET_PATH_TOO_LONG', `control socket path is ${Buffer.byteLength(path)} bytes, over the ${limits.unixPathBytesMax} a unix socket allows: ${path} (choose a shorter stateDir)`);
  }
}

/** A listening control socket; `close()` ends it (see there). */
export interface ControlServer {
  /**
   * Stops listening and ends every connection: one with no whole request yet is cut at once; one
   * whose reply is written is cut once the reply has drained to the kernel (or after
   * controlCloseWaitMsMax, for a client that does not read); one still being answered is cut
   * once answered, within the same wait. Resolves when no connection is left.
   */
  close(): Promise<void>;
}

/** One accepted connection: `answered` once the final reply is written and the socket ended. */
interface Connection {
  handled: boolean;
  answered: boolean;
}

/** Listens on `path`; a stale socket file (nobody answering) is replaced. */
export async function startControlServer(path: string, handler: ControlHandler): Promise<ControlServer> {
  checkSocketPath(path);
  if (existsSync(path)) {
    if (await socketAnswers(path)) throw new MirrorboxError('WATCHDOG_RUNNING', `another watchdog answers on ${path}`);
    unlinkSync(path);
  }
  const connections = new Map<Socket, Connection>();
  let closing = false;
  const cutWhenDrained = (socket: Socket): void => {
    if (socket.writableFinished) socket.destroy();
    else socket.once('finish', () => socket.destroy());
  };
  const server = createServer((socket) => {
    const connection: Connection = { handled: false, answered: false };
    connections.set(socket, connection);
    socket.once('close', () => connections.delete(socket));
    serve(socket, connection, handler, () => {
      if (closing) cutWhenDrained(socket);
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    // listen() binds synchronously: the umask covers exactly the socket's creation. (Files
    // other threads create meanwhile only come out more private than they would have.)
    const umask = process.umask(limits.controlSocketUmask);
    try {
      server.listen(path, () => {
        server.off('error', reject);
        resolve();
      });
    } finally {
      process.umask(umask);
    }
  });
  assert.equal(statSync(path).mode & limits.privateModeBits, 0, `control socket ${path} is open to other users`);
  return {
    close: () =>
      new Promise<void>((resolve) => {
        closing = true;
        const last = setTimeout(() => {
          for (const socket of connections.keys()) socket.destroy();
        }, limits.controlCloseWaitMsMax);
        server.close(() => {
          clearTimeout(last);
          resolve();
        });
        for (const [socket, connection] of connections) {
          if (!connection.handled) socket.destroy();
          else if (connection.answered) cutWhenDrained(socket);
          // else: being answered; serve() calls back once it is.
        }
      }),
  };
}

function serve(socket: Socket, connection: Connection, handler: ControlHandler, onAnswered: () => void): void {
  let buffered = '';
  const send = (message: ControlMessage): void => {
    if (!socket.destroyed) socket.write(JSON.stringify(message) + '\n');
  };
  const answer = (message: ControlMessage): void => {
    send(message);
    socket.end();
    connection.answered = true;
    onAnswered();
  };
  // A whole request line must come within controlRequestWaitMsMax of connecting.
  const requestTimer = setTimeout(() => {
    if (!connection.handled) socket.destroy();
  }, limits.controlRequestWaitMsMax);
  socket.once('close', () => clearTimeout(requestTimer));
  socket.setEncoding('utf8');
  socket.on('error', () => undefined);
  socket.on('data', (chunk: string) => {
    if (connection.handled) return;
    buffered += chunk;
    if (buffered.length > limits.controlRequestBytesMax) {
      connection.handled = true;
      clearTimeout(requestTimer);
      answer({ v: controlVersion, done: true, ok: false, code: 'CONTROL_REQUEST', message: 'request too long' });
      return;
    }
    const newline = buffered.indexOf('\n');
    if (newline < 0) return;
    connection.handled = true;
    clearTimeout(requestTimer);
    let request: ControlRequest;
    try {
      const parsed = requestSchema.safeParse(JSON.parse(buffered.slice(0, newline)));
      if (!parsed.success) throw new Error(parsed.error.issues[0]!.message);
      request = parsed.data;
    } catch (err) {
      answer({ v: controlVersion, done: true, ok: false, code: 'CONTROL_REQUEST', message: `bad request: ${messageOf(err)}` });
      return;
    }
    handler(request, (text) => send({ v: controlVersion, done: false, progress: text }))
      .then((result) => answer({ v: controlVersion, done: true, ok: true, ...result }))
      .catch((err: unknown) =>
        answer({ v: controlVersion, done: true, ok: false, code: (err as { code?: string }).code ?? 'INTERNAL', message: messageOf(err) }),
      );
  });
}

async function socketAnswers(path: string): Promise<boolean> {
  try {
    await controlRequest(path, { v: controlVersion, cmd: 'status' }, { timeoutMs: limits.staleSocketAnswerMsMax });
    return true;
  } catch {
    return false;
  }
}

/**
 * Sends one request and resolves with the final reply (ok or not). Throws MirrorboxError
 * WATCHDOG_NOT_RUNNING when nobody listens, CONTROL_TIMEOUT when the answer does not come.
 */
export function controlRequest(
  path: string,
  request: ControlRequest,
  options: { timeoutMs?: number; onProgress?: (text: string) => void } = {},
): Promise<ControlMessage> {
  const timeoutMs = options.timeoutMs ?? limits.controlTimeoutMsDefault;
  return new Promise((resolve, reject) => {
    const socket = connect(path);
    let buffered = '';
    let settled = false;
    const finish = (err: Error | undefined, reply?: ControlMessage): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      if (err) reject(err);
      else resolve(reply!);
    };
    const timer = setTimeout(() => finish(new MirrorboxError('CONTROL_TIMEOUT', `no answer from the watchdog on ${path} within ${timeoutMs} ms`)), timeoutMs);
    socket.setEncoding('utf8');
    socket.on('error', (err) => {
      const notRunning = hasCode(err, 'ENOENT') || hasCode(err, 'ECONNREFUSED');
      finish(notRunning ? new MirrorboxError('WATCHDOG_NOT_RUNNING', `no watchdog listens on ${path}`) : err);
    });
    socket.on('connect', () => socket.write(JSON.stringify(request) + '\n'));
    socket.on('data', (chunk: string) => {
      buffered += chunk;
      let newline: number;
      while ((newline = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, newline);
        buffered = buffered.slice(newline + 1);
        let message: ControlMessage;
        try {
          message = JSON.parse(line) as ControlMessage;
        } catch {
          finish(new MirrorboxError('CONTROL_REPLY', 'the watchdog sent a line that is not JSON'));
          return;
        }
        if (message.done) {
          finish(undefined, message);
          return;
        }
        if (message.progress !== undefined) options.onProgress?.(message.progress);
      }
    });
    socket.on('end', () => finish(new MirrorboxError('CONTROL_REPLY', 'the watchdog closed the connection without a reply')));
  });
}
