import type net from 'node:net';
import type * as Ssh2 from 'ssh2';
import { guard, settle } from '../../../lib/guard';
import { SshListenEvent } from '../../../wire/ssh';
import type { AgentEndpoint } from './agent-link';
import { MAX_FORWARD_CHANNELS, MAX_LISTENERS, type SshConnection } from './connection';
import { createOutbound, watchChannel } from './flow';
import { checkConnect, checkListen } from './requests';

/** Longest line the agent may write on a listen tunnel before it is taken for garbage. */
const MAX_LISTEN_LINE = 64 * 1024;

type Reply = ((port?: number) => void) | undefined;

/** `direct-tcpip` (`ssh -L`): a connection to host:port from inside the sandbox, one tunnel per channel. */
export function openDirect(c: SshConnection, accept: () => Ssh2.ServerChannel | undefined, reject: () => void, info: unknown): void {
  const { destIP, destPort } = (info ?? {}) as { destIP?: unknown; destPort?: unknown };
  const checked = checkConnect(destIP, destPort);
  if (!checked.ok) {
    c.log.debug({ why: checked.why }, 'ssh direct-tcpip refused');
    return reject();
  }
  if (c.open.channels >= MAX_FORWARD_CHANNELS) return reject();
  const agent = c.target();
  if (typeof agent === 'string') return reject();
  const { host, port } = checked.value;
  c.open.channels++;
  let counted = true;
  const uncount = () => {
    if (counted) c.open.channels--;
    counted = false;
  };
  settle(
    'ssh direct-tcpip',
    c.tunnel(agent, `/ssh/connect?host=${encodeURIComponent(host)}&port=${port}`).then(
      (socket) => {
        const channel = accept();
        if (!channel) {
          uncount();
          return void socket.destroy();
        }
        pipeChannel(c, channel, socket, uncount);
      },
      (err: Error) => {
        uncount();
        c.log.debug({ err: err.message }, 'ssh direct-tcpip failed');
        reject();
      },
    ),
    () => {
      uncount();
      c.end();
    },
  );
}

/**
 * The tcpip-forward listeners of one connection (`ssh -R`): each is a listen tunnel on which the agent announces
 * connections; each connection becomes a forwarded-tcpip channel to the client over an accept tunnel.
 */
export function createForwards(c: SshConnection) {
  /** Listen tunnels by the address and port the client asked for, and by the port it got. */
  const forwards = new Map<string, net.Socket>();
  const key = (address: string, port: number) => `${address}:${port}`;

  function listen(accept: Reply, reject: Reply, info: unknown): void {
    const { bindAddr, bindPort } = (info ?? {}) as { bindAddr?: unknown; bindPort?: unknown };
    const checked = checkListen(bindAddr, bindPort);
    if (!checked.ok) {
      c.log.debug({ why: checked.why }, 'ssh tcpip-forward refused');
      return reject?.();
    }
    if (c.open.listeners >= MAX_LISTENERS) return reject?.();
    const agent = c.target();
    if (typeof agent === 'string') return reject?.();
    const { address, port } = checked.value;
    c.open.listeners++;
    let counted = true;
    const uncount = () => {
      if (counted) c.open.listeners--;
      counted = false;
    };
    settle(
      'ssh tcpip-forward',
      c.tunnel(agent, `/ssh/listen?address=${encodeURIComponent(address)}&port=${port}`).then(
        (socket) => readListenTunnel(socket, address, port, agent, accept, uncount),
        (err: Error) => {
          uncount();
          c.log.debug({ err: err.message }, 'ssh tcpip-forward failed');
          reject?.();
        },
      ),
      () => {
        uncount();
        c.end();
      },
    );
  }

  function cancel(accept: Reply, reject: Reply, info: unknown): void {
    const { bindAddr, bindPort } = (info ?? {}) as { bindAddr?: unknown; bindPort?: unknown };
    const socket = typeof bindAddr === 'string' && typeof bindPort === 'number' ? forwards.get(key(bindAddr, bindPort)) : undefined;
    if (!socket) return reject?.();
    socket.destroy();
    accept?.();
  }

  /** Reads a listen tunnel's events: answers the forward request, then opens a forwarded-tcpip channel per connection. */
  function readListenTunnel(socket: net.Socket, address: string, asked: number, agent: AgentEndpoint, accept: Reply, uncount: () => void): void {
    let buffered = '';
    let bound = asked;
    const fail = () => socket.destroy();
    socket.setEncoding('utf8');
    socket.on(
      'data',
      guard(
        'ssh tcpip-forward: events',
        (text: string) => {
          buffered += text;
          let nl: number;
          while ((nl = buffered.indexOf('\n')) >= 0) {
            const line = buffered.slice(0, nl);
            buffered = buffered.slice(nl + 1);
            let event: SshListenEvent;
            try {
              event = SshListenEvent.parse(JSON.parse(line));
            } catch {
              return fail();
            }
            if (event.type === 'listening') {
              bound = event.port;
              // OpenSSH cancels with the port it asked for (0 included) or the one it got: either finds the listener.
              forwards.set(key(address, asked), socket);
              forwards.set(key(address, bound), socket);
              accept?.(bound);
            } else forwardConnection(address, bound, agent, event);
          }
          if (buffered.length > MAX_LISTEN_LINE) fail();
        },
        fail,
      ),
    );
    socket.on('error', () => {});
    socket.once(
      'close',
      guard(
        'ssh tcpip-forward: close',
        () => {
          uncount();
          for (const port of [asked, bound]) if (forwards.get(key(address, port)) === socket) forwards.delete(key(address, port));
        },
        () => c.end(),
      ),
    );
    socket.resume();
  }

  /** One connection to a forwarded port inside the sandbox: taken over an accept tunnel, then a channel to the client. */
  function forwardConnection(address: string, port: number, agent: AgentEndpoint, event: Extract<SshListenEvent, { type: 'connection' }>): void {
    // Beyond the limit the announced connection is not taken: the agent closes it after its accept timeout.
    if (c.open.channels >= MAX_FORWARD_CHANNELS) return;
    c.open.channels++;
    let counted = true;
    const uncount = () => {
      if (counted) c.open.channels--;
      counted = false;
    };
    settle(
      'ssh forwarded-tcpip',
      c.tunnel(agent, `/ssh/accept/${encodeURIComponent(event.id)}`).then(
        (socket) => {
          c.client.forwardOut(
            address,
            port,
            event.remoteAddress,
            event.remotePort,
            guard(
              'ssh forwarded-tcpip: open',
              (err: Error | undefined, channel: Ssh2.ServerChannel) => {
                if (err) {
                  uncount();
                  return void socket.destroy();
                }
                pipeChannel(c, channel, socket, uncount);
              },
              () => {
                uncount();
                socket.destroy();
              },
            ),
          );
        },
        () => uncount(),
      ),
      () => {
        uncount();
        c.end();
      },
    );
  }

  return {
    listen,
    cancel,
    /** Closes every listener (the connection has ended). */
    close(): void {
      for (const socket of forwards.values()) socket.destroy();
    },
  };
}

/**
 * Raw bytes both ways between an SSH channel and a tunnel, with backpressure and half-close: the client's bytes wait
 * in the channel (and its window) while the tunnel is full; the sandbox's bytes wait in the tunnel while the channel
 * or the client's socket is. `done` runs once, when either side has closed.
 */
function pipeChannel(c: SshConnection, channel: Ssh2.ServerChannel | Ssh2.Channel, socket: net.Socket, done: () => void = () => {}): void {
  let finished = false;
  const close = () => {
    if (finished) return;
    finished = true;
    socket.destroy();
    channel.destroy();
    done();
  };
  const fail = () => close();
  watchChannel(channel, {
    onOverrun: guard(
      'ssh channel: window',
      () => {
        c.log.info('ssh connection closed: the client ignored a channel window');
        c.wire.destroy();
      },
      () => c.end(),
    ),
    onClosed: guard('ssh channel: closed', close, () => c.end()),
  });
  channel.on('error', guard('ssh channel: error', close, fail));
  channel.once('close', guard('ssh channel: close', close, fail));
  channel.pipe(socket);
  const output = createOutbound(socket, c.wire);
  socket.on(
    'data',
    guard('ssh channel: data', (chunk: Buffer) => output(channel, chunk), fail),
  );
  // The sandbox side finished sending: EOF to the client (ssh2 closes a server channel once its writable side ends).
  socket.once('end', guard('ssh channel: tunnel end', () => channel.end(), fail));
  socket.on('error', guard('ssh channel: tunnel error', close, fail));
  socket.once('close', guard('ssh channel: tunnel close', () => channel.end(), fail));
  socket.resume();
}
