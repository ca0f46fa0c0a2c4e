import type { EventEmitter } from 'node:events';
import type net from 'node:net';
import type * as Ssh2 from 'ssh2';
import { guard, settle } from '../../../lib/guard';
import type { CoveError } from '../../../lib/errors';
import { FRAME, FrameDecoder, frameHeader, SshExit, SshFailure, type FrameType, type SshSessionStart } from '../../../wire/ssh';
import type { SshConnection } from './connection';
import { createOutbound, watchChannel } from './flow';
import { checkCommand, checkEnv, checkPty, checkSignal, checkSubsystem, exitReply, startFrame, terminalSide, type Checked, type Pty } from './requests';

const STREAM_TYPES: ReadonlySet<number> = new Set([FRAME.stdout, FRAME.stderr]);

type Reply = (() => void) | undefined;
type Start = (() => Ssh2.ServerChannel) | undefined;

/**
 * One session channel. pty-req, env and window-change are remembered until shell/exec/subsystem starts the session
 * in the sandbox; after that, stdin, EOF, resizes and signals go to it, and its output and exit status come back.
 * Every handler runs inside the gateway's boundary: what a handler throws before the session starts ends the
 * connection, after that it ends this channel (exit status 255, the error id on stderr).
 */
export function bridgeSession(session: Ssh2.Session, c: SshConnection): void {
  let pty: Pty | undefined;
  const env: Record<string, string> = {};
  let channel: Ssh2.ServerChannel | undefined;
  let link: net.Socket | undefined;
  /** The client closed the channel, or it was ended here: a tunnel still opening is closed as it arrives. */
  let closed = false;
  /** The exit status (or the reason it failed) has been sent; nothing more goes to the client. */
  let ended = false;

  c.open.sessions++;
  const release = () => {
    if (closed) return;
    closed = true;
    c.open.sessions--;
    if (channel) c.sessions.delete(channel);
    // The sandbox side hangs up; a moment later, so input already written (stdin, then EOF) is not cut short.
    const socket = link;
    if (socket) setImmediate(() => socket.destroy());
  };
  session.once('close', guard('ssh session: close', release, () => c.end()));

  /** Ends the channel with a message on stderr and exit status 255, as ssh reports a lost connection. */
  const giveUp = (message: string) => {
    if (!channel || ended || closed) return;
    ended = true;
    channel.stderr.write(`${message}\r\n`);
    channel.exit(255);
    channel.end();
  };
  /** What a handler threw: the channel ends (or the connection, before there is a channel). */
  const fail = (error: CoveError) => {
    if (!channel) return c.end();
    try {
      giveUp(`cove: ${error.message}`);
    } finally {
      release();
    }
  };
  /** A request handler inside the boundary; a handler that throws also refuses the request. */
  const request = <A extends [Reply | Start, Reply, ...unknown[]]>(name: string, handler: (...args: A) => void) =>
    (session as unknown as EventEmitter).on(
      name,
      guard(`ssh session: ${name}`, handler, (error, ...args: A) => {
        args[1]?.();
        fail(error);
      }),
    );
  const refused = (what: string, checked: Checked<unknown>, reject: Reply) => {
    if (!checked.ok) c.log.debug({ why: checked.why }, `ssh ${what} refused`);
    reject?.();
  };

  const sendFrame = (type: FrameType, data: Buffer) => {
    if (!link?.writable) return true;
    link.cork();
    link.write(frameHeader(type, data.length));
    const ok = link.write(data);
    link.uncork();
    return ok;
  };

  request('pty', (accept: Reply, reject: Reply, info: unknown) => {
    const checked = checkPty(info as Parameters<typeof checkPty>[0]);
    if (!checked.ok || channel) return refused('pty-req', checked, reject);
    pty = checked.value;
    accept?.();
  });
  request('window-change', (accept: Reply, reject: Reply, info: unknown) => {
    const size = (info ?? {}) as { cols?: unknown; rows?: unknown };
    if (pty) {
      pty.cols = terminalSide(size.cols, pty.cols);
      pty.rows = terminalSide(size.rows, pty.rows);
      if (link) sendFrame(FRAME.resize, Buffer.from(JSON.stringify({ cols: pty.cols, rows: pty.rows })));
    }
    accept?.();
  });
  request('env', (accept: Reply, reject: Reply, info: unknown) => {
    const { key, val } = (info ?? {}) as { key?: unknown; val?: unknown };
    const checked = checkEnv(key, val, env);
    // Like sshd, variables count only before the session starts.
    if (!checked.ok || channel) return refused('env', checked, reject);
    env[checked.value.name] = checked.value.value;
    accept?.();
  });
  request('signal', (accept: Reply, reject: Reply, info: unknown) => {
    const checked = checkSignal((info as { name?: unknown } | undefined)?.name);
    if (!checked.ok || !link) return refused('signal', checked, reject);
    sendFrame(FRAME.signal, Buffer.from(JSON.stringify({ signal: checked.value })));
    accept?.();
  });
  request('shell', (accept: Start, reject: Reply) => start({ kind: 'shell' }, accept, reject));
  request('exec', (accept: Start, reject: Reply, info: unknown) => {
    const checked = checkCommand((info as { command?: unknown } | undefined)?.command);
    if (!checked.ok) return refused('exec', checked, reject);
    start({ kind: 'exec', command: checked.value }, accept, reject);
  });
  request('subsystem', (accept: Start, reject: Reply, info: unknown) => {
    const checked = checkSubsystem((info as { name?: unknown } | undefined)?.name);
    if (!checked.ok) return refused('subsystem', checked, reject);
    start({ kind: 'sftp' }, accept, reject);
  });

  function start(what: Pick<SshSessionStart, 'kind' | 'command'>, accept: Start, reject: Reply): void {
    if (channel || closed || !accept) return reject?.();
    const req: SshSessionStart = { ...what, pty: what.kind === 'sftp' ? undefined : pty, env, client: c.clientAddress };
    const frame = startFrame(req);
    const ch = accept();
    if (!ch) return;
    channel = ch;
    c.sessions.add(ch);
    watchChannel(ch, {
      onOverrun: guard('ssh session: window', () => overrun(), () => c.end()),
      onClosed: guard('ssh session: closed', release, () => c.end()),
    });
    ch.on('error', guard('ssh session: channel error', release, () => c.end()));
    ch.stderr.on('error', () => {});
    ch.once('close', guard('ssh session: channel close', release, () => c.end()));
    // Input waits in the channel (and the client's window) until the sandbox side is ready.
    ch.pause();
    if (!frame.ok) return giveUp(`cove: ${frame.why}.`);
    const agent = c.target();
    if (typeof agent === 'string') return giveUp(agent);
    settle(
      'ssh session: open',
      c.tunnel(agent, '/ssh/session').then(
        (socket) => {
          if (closed) return void socket.destroy();
          link = socket;
          wire(ch, socket, frame.value);
        },
        (err: Error) => giveUp(`cove: could not reach the sandbox: ${err.message}`),
      ),
      fail,
    );
  }

  /** The client sent more than its window: it is cut off rather than buffered. */
  function overrun(): void {
    c.log.info('ssh connection closed: the client ignored a channel window');
    c.wire.destroy();
  }

  function wire(channel: Ssh2.ServerChannel, socket: net.Socket, startBody: Buffer): void {
    const output = createOutbound(socket, c.wire);
    sendFrame(FRAME.start, startBody);
    const control = (type: number, payload: Buffer) => {
      if (type !== FRAME.exit && type !== FRAME.failure) return;
      let json: unknown;
      try {
        json = JSON.parse(payload.toString());
      } catch {
        return badFrame('not JSON');
      }
      if (type === FRAME.exit) {
        const exit = SshExit.safeParse(json);
        if (!exit.success) return badFrame('not an exit status');
        if (ended) return;
        ended = true;
        const reply = exitReply(exit.data);
        if ('code' in reply) channel.exit(reply.code);
        else channel.exit(reply.signal, reply.coreDumped, '');
        channel.end();
      } else {
        const failure = SshFailure.safeParse(json);
        giveUp(`cove: ${failure.success ? failure.data.message : 'the session could not start'}`);
      }
    };
    const decoder = new FrameDecoder(
      STREAM_TYPES,
      guard(
        'ssh session: output',
        (type: number, chunk: Buffer) => {
          if (!ended) output(type === FRAME.stdout ? channel : channel.stderr, chunk);
        },
        fail,
      ),
      guard('ssh session: agent frame', control, fail),
    );
    function badFrame(why: string): void {
      c.log.warn({ why }, 'ssh: bad frame from the agent');
      socket.destroy();
    }
    socket.on(
      'data',
      guard(
        'ssh session: tunnel data',
        (chunk: Buffer) => {
          if (closed) return;
          try {
            decoder.push(chunk);
          } catch (err) {
            // Only the decoder itself throws here (its callbacks are guarded): an oversized control frame.
            badFrame((err as Error).message);
          }
        },
        fail,
      ),
    );
    socket.on('error', () => {});
    socket.once(
      'close',
      guard('ssh session: tunnel close', () => giveUp('\r\ncove: the connection to the sandbox was lost (stopped or deleted?)'), fail),
    );
    channel.on(
      'data',
      guard(
        'ssh session: input',
        (chunk: Buffer) => {
          if (!sendFrame(FRAME.stdin, chunk)) {
            channel.pause();
            socket.once('drain', guard('ssh session: tunnel drain', () => channel.resume(), fail));
          }
        },
        fail,
      ),
    );
    channel.once('end', guard('ssh session: input end', () => sendFrame(FRAME.stdinEof, Buffer.alloc(0)), fail));
    channel.resume();
    socket.resume();
  }
}
