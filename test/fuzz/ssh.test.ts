/**
 * Fuzzing the SSH gateway of a real `cove serve` with a real sandbox: user names of every kind with every
 * authentication method; after a valid login, unexpected and malformed requests (channel types the gateway does not
 * serve, global requests, pty/env/exec/subsystem/signal/window-change with odd values, forwards to odd addresses and
 * ports, data after EOF, close races, raw SSH messages); raw bytes into the port. Invariants: no input ends the server
 * or escapes a boundary (no `(uncaught)` / `(unhandled rejection)` line in its output), a bad user name is refused, a
 * token never appears in the output, and afterwards the control API answers and a fresh login runs a command.
 *
 * Forward targets stay inside the sandbox: its own loopback (spelled several ways), or addresses the gateway must
 * refuse before any tunnel opens. Commands are inert (`: '…'` with the text quoted) or contain a NUL (refused).
 */
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import type * as Ssh2 from 'ssh2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sendRawSshMessage } from '../../proxy/src/ssh/ssh2-private';
import { checkCommand, checkConnect, checkEnv, checkHost, checkListen, checkPty, checkSignal, checkSubsystem, exitReply, MAX_TERMINAL_SIDE } from '../../proxy/src/ssh/requests';
import { startCove, type TestCove } from '../helpers/cove';
import { sshPortOf } from '../helpers/ssh-client';
import { fc, fuzz, timeoutFor } from './lib';

const require = createRequire(import.meta.url);
const ssh2 = require('ssh2') as typeof Ssh2;

let cove: TestCove;
let sshPort: number;
let sandboxId: string;
let token: string;
let expiredToken: string;
let revokedToken: string;
const clientKey = ssh2.utils.generateKeyPairSync('ed25519').private;

beforeAll(async () => {
  cove = await startCove({ pool: 1 });
  sshPort = sshPortOf(cove);
  const created = await cove.api('/sandbox', { method: 'POST', body: '{}' });
  sandboxId = (await created.json()).id;
  const access = async () => (await (await cove.api(`/sandbox/${sandboxId}/ssh-access`, { method: 'POST' })).json()) as { id: string; token: string };
  token = (await access()).token;
  revokedToken = (await access()).token;
  await cove.api(`/sandbox/${sandboxId}/ssh-access?token=${revokedToken}`, { method: 'DELETE' });
  const expired = await access();
  expiredToken = expired.token;
  const Database = (await import('better-sqlite3')).default;
  const db = new Database(`${cove.dataDir}/cove.db`);
  db.prepare('UPDATE ssh_access SET expires_at = ? WHERE id = ?').run(new Date(Date.now() - 1000).toISOString(), expired.id);
  db.close();
}, 20 * 60_000);
afterAll(async () => {
  await cove?.api(`/sandbox/${sandboxId}`, { method: 'DELETE' }).catch(() => {});
  await cove?.destroy();
});

// ── helpers ─────────────────────────────────────────────────────────────────────────────────────────────────────

/**
 * Nothing escaped a boundary (nor reached one of the gateway's: every expected failure is handled without a throw),
 * the process runs, and no token was ever printed: in the output since `from` (where the run began, so a failure
 * shrinks to the input that caused it), or all of it.
 */
function expectNoLeak(from = 0): void {
  const output = cove.output().slice(from);
  expect(cove.process.exitCode, cove.output().slice(-3000)).toBeNull();
  expect(output).not.toMatch(/\((uncaught|unhandled rejection)\)/);
  // The gateway's boundaries caught something: the connection ended as it should, but the throw is a defect.
  expect(output).not.toMatch(/"where":"ssh[^"]*".*unexpected error|unexpected error \w+ in ssh/);
  for (const t of [token, expiredToken, revokedToken]) expect(output).not.toContain(t);
}

/** The server keeps serving: no leak, the control API answers, and a fresh login runs a command. */
async function expectServing(): Promise<void> {
  expectNoLeak();
  expect((await cove.api(`/sandbox/${sandboxId}`)).status).toBe(200);
  const client = await connect(token);
  try {
    expect(await run(client, 'echo ok')).toMatchObject({ code: 0, stdout: 'ok\n' });
  } finally {
    client.end();
  }
  expectNoLeak();
}

/** A fresh loopback source address per refused login, so the per-address login backoff never slows the fuzzer. */
let nextSource = 0;
const freshSource = () => {
  nextSource++;
  return `127.${77 + ((nextSource >> 16) & 0x7f)}.${(nextSource >> 8) & 0xff}.${nextSource & 0xff}`;
};

function connect(username: string, extra: Partial<Ssh2.ConnectConfig> = {}): Promise<Ssh2.Client> {
  return new Promise((resolve, reject) => {
    const client = new ssh2.Client();
    client.once('ready', () => resolve(client));
    client.once('error', reject);
    // A server that drops the connection (a refusal) may do so without an error on this side.
    client.once('close', () => reject(new Error('the connection closed before login')));
    client.connect({ host: '127.0.0.1', port: sshPort, username, readyTimeout: 15_000, ...extra });
  });
}

function run(client: Ssh2.Client, command: string): Promise<{ code: unknown; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    client.exec(command, (err, ch) => {
      if (err) return reject(err);
      let stdout = '';
      let stderr = '';
      let code: unknown;
      ch.on('data', (d: Buffer) => (stdout += d));
      ch.stderr.on('data', (d: Buffer) => (stderr += d));
      ch.on('exit', (c: unknown) => (code = c));
      ch.on('close', () => resolve({ code, stdout, stderr }));
    });
  });
}

const u32 = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0);
  return b;
};
const sshString = (s: string | Uint8Array) => {
  const b = typeof s === 'string' ? Buffer.from(s) : Buffer.from(s);
  return Buffer.concat([u32(b.length), b]);
};
const bool = (v: boolean) => Buffer.from([v ? 1 : 0]);

/** Sends one SSH message as is (ssh2's own packet writer), whatever ssh2's client would allow. */
const sendRaw = (client: Ssh2.Client, payload: Buffer): void => sendRawSshMessage(client, payload);

const MSG = { DISCONNECT: 1, GLOBAL_REQUEST: 80, CHANNEL_OPEN: 90, WINDOW_ADJUST: 93, DATA: 94, EXTENDED_DATA: 95, EOF: 96, CLOSE: 97, REQUEST: 98 };

/** Waits until the client's connection has closed, or `ms` passed. */
const closedWithin = (client: Ssh2.Client, ms: number) =>
  new Promise<boolean>((resolve) => {
    const sock = (client as unknown as { _sock?: net.Socket })._sock;
    if (!sock || sock.destroyed) return resolve(true);
    const timer = setTimeout(() => resolve(false), ms);
    sock.once('close', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// ── generators ──────────────────────────────────────────────────────────────────────────────────────────────────

const anyText = fc.oneof(
  fc.string({ maxLength: 64 }),
  fc.string({ unit: 'binary', maxLength: 64 }),
  fc.string({ unit: 'grapheme', maxLength: 16 }),
  fc.constantFrom('', '\0', 'a\0b', ' ', '\r\n', '\u202e', '\ud800', '%00', '../..', '$(id)', '`id`', "'", '"'),
);
const hugeText = fc.nat({ max: 40_000 }).map((n) => 'x'.repeat(n));
const oddText = fc.oneof({ weight: 4, arbitrary: anyText }, { weight: 1, arbitrary: hugeText });
const uint32 = fc.oneof(fc.constantFrom(0, 1, 0x7fffffff, 0x80000000, 0xffffffff, 65535, 65536), fc.nat({ max: 0xffffffff }));
const bytes = (max: number) => fc.uint8Array({ maxLength: max });
/** Loopback as the sandbox sees it, spelled several ways; the empty and wildcard listen addresses; and addresses the
 * gateway must refuse (never a resolvable name: no lookup may leave the sandbox). */
const address = fc.oneof(
  fc.constantFrom('127.0.0.1', 'localhost', '::1', '0:0:0:0:0:0:0:1', '127.0.0.2', '', '*', '0.0.0.0'),
  fc.constantFrom('a b', 'x\0', 'host/path', 'a@b', 'ümlaut', '[::1]', '-', '.', '..', 'a..b', 'x'.repeat(300), '%', 'h?q=1', 'h#f', 'h\r\nX: y'),
  fc.string({ minLength: 1, maxLength: 20 }).map((s) => `${s}\0`),
);
const port = fc.oneof(fc.constantFrom(0, 1, 22, 80, 1023, 1024, 2280, 8080, 65535, 65536, 70000, 0xffffffff), fc.nat({ max: 0xffffffff }));

/** Inert shell text: the generated text is one single-quoted argument of `:`. */
const inert = (text: string) => `: '${text.replace(/\0/g, '').replace(/'/g, `'\\''`)}'`;
const signalsToEnd = Object.keys(os.constants.signals).filter((s) => !/^SIG(STOP|TSTP|TTIN|TTOU|CONT|CHLD|WINCH|URG)$/.test(s));
const command = fc.oneof(
  oddText.map(inert),
  fc.constantFrom('cat > /dev/null', 'head -c 300000 /dev/zero', 'sleep 0.2', 'exit 3', 'printf "%s" "$USER $LOGNAME $HOME $PATH"; env'),
  fc.constantFrom(...signalsToEnd).map((s) => `kill -${s.slice(3)} $$`),
  fc.nat({ max: 300 }).map((n) => `exit ${n}`),
  // Always refused by the gateway: a NUL anywhere.
  fc.tuple(fc.string({ maxLength: 30 }), fc.string({ maxLength: 30 })).map(([a, b]) => `${a}\0${b}`),
);
/** What a shell session may read: bytes no shell word is made of, plus newlines and control characters. */
const shellInput = fc.array(fc.oneof(fc.integer({ min: 0x80, max: 0xff }), fc.integer({ min: 0, max: 0x1f })), { maxLength: 200 }).map((a) => Buffer.from(a));

type Action =
  | { kind: 'session'; window: number; packet: number }
  | { kind: 'open'; type: string; window: number; packet: number; payload: Uint8Array }
  | { kind: 'direct'; host: string; port: number; window: number; data: Uint8Array }
  | { kind: 'global'; name: string; wantReply: boolean; payload: Uint8Array }
  | { kind: 'forward'; cancel: boolean; address: string; port: number; wantReply: boolean }
  | { kind: 'listenAndConnect'; acceptIt: boolean; data: Uint8Array }
  | { kind: 'pty'; slot: number; term: string; cols: number; rows: number; width: number; height: number; modes: Uint8Array; wantReply: boolean }
  | { kind: 'env'; slot: number; name: string; value: string; wantReply: boolean }
  | { kind: 'exec'; slot: number; command: string; wantReply: boolean }
  | { kind: 'shell'; slot: number; wantReply: boolean }
  | { kind: 'subsystem'; slot: number; name: string; wantReply: boolean }
  | { kind: 'signal'; slot: number; name: string; wantReply: boolean }
  | { kind: 'window'; slot: number; cols: number; rows: number; width: number; height: number }
  | { kind: 'request'; slot: number; type: string; wantReply: boolean; payload: Uint8Array }
  | { kind: 'data'; slot: number; data: Uint8Array; shell: Buffer; extended: boolean }
  | { kind: 'eof'; slot: number }
  | { kind: 'close'; slot: number }
  | { kind: 'adjust'; slot: number; amount: number }
  | { kind: 'message'; type: number; payload: Uint8Array }
  | { kind: 'wait'; ms: number }
  | { kind: 'revoke' }
  | { kind: 'drop' };

const slot = fc.nat({ max: 7 });
const wantReply = fc.boolean();
const action: fc.Arbitrary<Action> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('session' as const), window: fc.oneof(fc.constant(2 * 1024 * 1024), uint32), packet: fc.oneof(fc.constant(32768), uint32) }) },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('open' as const),
      type: fc.oneof(fc.constantFrom('x11', 'forwarded-tcpip', 'direct-streamlocal@openssh.com', 'auth-agent@openssh.com', 'tun@openssh.com', 'direct-tcpip', 'session'), anyText),
      window: uint32,
      packet: uint32,
      payload: bytes(300),
    }),
  },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('direct' as const), host: address, port, window: uint32, data: bytes(2000) }) },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('global' as const),
      name: fc.oneof(fc.constantFrom('tcpip-forward', 'cancel-tcpip-forward', 'streamlocal-forward@openssh.com', 'no-more-sessions@openssh.com', 'keepalive@openssh.com', 'hostkeys-prove-00@openssh.com'), anyText),
      wantReply,
      payload: bytes(300),
    }),
  },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('forward' as const), cancel: fc.boolean(), address, port, wantReply }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('listenAndConnect' as const), acceptIt: fc.boolean(), data: bytes(2000) }) },
  {
    weight: 2,
    arbitrary: fc.record({ kind: fc.constant('pty' as const), slot, term: oddText, cols: uint32, rows: uint32, width: uint32, height: uint32, modes: bytes(100), wantReply }),
  },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('env' as const), slot, name: fc.oneof(oddText, fc.constantFrom('LANG', 'PATH', 'LD_PRELOAD', 'SSH_ORIGINAL_COMMAND', 'USER', 'COVE_AGENT_TOKEN', 'NODE_OPTIONS', 'FOO')), value: oddText, wantReply }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('exec' as const), slot, command, wantReply }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('shell' as const), slot, wantReply }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('subsystem' as const), slot, name: fc.oneof(fc.constant('sftp'), anyText), wantReply }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('signal' as const), slot, name: fc.oneof(fc.constantFrom('TERM', 'INT', 'KILL', 'HUP', 'SIGTERM', 'BUS', 'STOP'), anyText), wantReply }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('window' as const), slot, cols: uint32, rows: uint32, width: uint32, height: uint32 }) },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('request' as const),
      slot,
      type: fc.oneof(fc.constantFrom('x11-req', 'auth-agent-req@openssh.com', 'xon-xoff', 'break', 'exit-status', 'exit-signal', 'pty-req', 'env', 'exec', 'subsystem', 'signal', 'window-change'), anyText),
      wantReply,
      payload: bytes(300),
    }),
  },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('data' as const), slot, data: bytes(20_000), shell: shellInput, extended: fc.boolean() }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('eof' as const), slot }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('close' as const), slot }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('adjust' as const), slot, amount: uint32 }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('message' as const), type: fc.integer({ min: 1, max: 255 }), payload: bytes(200) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('wait' as const), ms: fc.integer({ min: 0, max: 150 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('revoke' as const) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('drop' as const) }) },
);

/** One channel the fuzzer opened: our id, the server's once confirmed, and what it started (a shell reads no fuzz). */
interface Slot {
  local: number;
  remote?: number;
  channel?: Ssh2.ClientChannel;
  started?: 'shell' | 'other';
}

/** Runs `actions` on one connection logged in with `user` (its own token); afterwards the connection is closed. */
async function play(actions: Action[], user: string): Promise<void> {
  const client = await connect(user);
  client.on('error', () => {});
  const slots: Slot[] = [];
  const chanMgr = (client as unknown as { _chanMgr: { add(v: unknown): number } })._chanMgr;
  const remoteOf = (i: number) => (slots.length ? (slots[i % slots.length].remote ?? slots[i % slots.length].local) : i);
  const slotOf = (i: number) => (slots.length ? slots[i % slots.length] : undefined);
  /** Opens a channel the way ssh2's client does, so the server's confirmation lands on a channel object here. */
  const open = async (type: string, window: number, packet: number, extra: Buffer) => {
    const s: Slot = { local: -1 };
    let answered: () => void = () => {};
    const answer = new Promise<void>((resolve) => (answered = resolve));
    const onOpen = Object.assign(
      (err: unknown, channel?: Ssh2.ClientChannel) => {
        answered();
        if (err || !channel) return;
        s.channel = channel;
        s.remote = (channel as unknown as { outgoing: { id: number } }).outgoing.id;
        channel.on('data', () => {});
        channel.on('error', () => {});
        channel.stderr?.on?.('data', () => {});
      },
      { type },
    );
    s.local = chanMgr.add(onOpen);
    if (s.local < 0) return;
    slots.push(s);
    sendRaw(client, Buffer.concat([Buffer.from([MSG.CHANNEL_OPEN]), sshString(type), u32(s.local), u32(window), u32(packet), extra]));
    // Requests that follow should find the channel (most of the time): wait for the answer, a little.
    await Promise.race([answer, sleep(300)]);
  };
  const request = (i: number, type: string, want: boolean, ...rest: Buffer[]) =>
    sendRaw(client, Buffer.concat([Buffer.from([MSG.REQUEST]), u32(remoteOf(i)), sshString(type), bool(want), ...rest]));

  try {
    for (const a of actions) {
      if ((client as unknown as { _sock?: net.Socket })._sock?.destroyed) break;
      switch (a.kind) {
        case 'session':
          await open('session', a.window, a.packet, Buffer.alloc(0));
          break;
        case 'open':
          await open(a.type, a.window, a.packet, Buffer.from(a.payload));
          break;
        case 'direct': {
          await open('direct-tcpip', a.window, 32768, Buffer.concat([sshString(a.host), u32(a.port), sshString('127.0.0.1'), u32(40000)]));
          const s = slots[slots.length - 1];
          if (s?.channel && a.data.length) s.channel.write(Buffer.from(a.data));
          break;
        }
        case 'global':
          sendRaw(client, Buffer.concat([Buffer.from([MSG.GLOBAL_REQUEST]), sshString(a.name), bool(a.wantReply), Buffer.from(a.payload)]));
          break;
        case 'forward':
          sendRaw(
            client,
            Buffer.concat([Buffer.from([MSG.GLOBAL_REQUEST]), sshString(a.cancel ? 'cancel-tcpip-forward' : 'tcpip-forward'), bool(a.wantReply), sshString(a.address), u32(a.port)]),
          );
          break;
        case 'listenAndConnect': {
          // A real forward, and a connection to it from inside the sandbox: forwarded-tcpip channels and accept tunnels.
          const bound = await new Promise<number | undefined>((resolve) => {
            const timer = setTimeout(() => resolve(undefined), 3000);
            client.forwardIn('127.0.0.1', 0, (err, p) => {
              clearTimeout(timer);
              resolve(err ? undefined : p);
            });
          });
          if (!bound) break;
          client.once('tcp connection', (_info, accept, reject) => {
            if (!a.acceptIt) return reject();
            const ch = accept();
            ch.on('data', () => {});
            ch.on('error', () => {});
            ch.end(Buffer.from(a.data));
          });
          client.exec(`timeout 2 bash -c 'exec 3<>/dev/tcp/127.0.0.1/${bound}; printf x >&3; head -c 100 <&3 >/dev/null' 2>/dev/null`, (err, ch) => {
            if (err) return;
            ch.on('data', () => {});
            ch.stderr.on('data', () => {});
          });
          await sleep(100);
          break;
        }
        case 'pty': {
          const modes = Buffer.from(a.modes);
          request(a.slot, 'pty-req', a.wantReply, sshString(a.term), u32(a.cols), u32(a.rows), u32(a.width), u32(a.height), sshString(modes));
          break;
        }
        case 'env':
          request(a.slot, 'env', a.wantReply, sshString(a.name), sshString(a.value));
          break;
        case 'exec': {
          const s = slotOf(a.slot);
          if (s?.started === 'shell') break;
          if (s) s.started ??= 'other';
          request(a.slot, 'exec', a.wantReply, sshString(a.command));
          break;
        }
        case 'shell': {
          const s = slotOf(a.slot);
          if (s && !s.started) s.started = 'shell';
          request(a.slot, 'shell', a.wantReply);
          break;
        }
        case 'subsystem': {
          const s = slotOf(a.slot);
          if (s?.started === 'shell') break;
          if (s) s.started ??= 'other';
          request(a.slot, 'subsystem', a.wantReply, sshString(a.name));
          break;
        }
        case 'signal':
          request(a.slot, 'signal', a.wantReply, sshString(a.name));
          break;
        case 'window':
          request(a.slot, 'window-change', false, u32(a.cols), u32(a.rows), u32(a.width), u32(a.height));
          break;
        case 'request':
          request(a.slot, a.type, a.wantReply, Buffer.from(a.payload));
          break;
        case 'data': {
          const s = slotOf(a.slot);
          // A shell reads its input as commands: it gets bytes no command is made of.
          const data = s?.started === 'shell' ? a.shell : Buffer.from(a.data);
          sendRaw(client, Buffer.concat([Buffer.from([a.extended ? MSG.EXTENDED_DATA : MSG.DATA]), u32(remoteOf(a.slot)), ...(a.extended ? [u32(1)] : []), sshString(data)]));
          break;
        }
        case 'eof':
          sendRaw(client, Buffer.concat([Buffer.from([MSG.EOF]), u32(remoteOf(a.slot))]));
          break;
        case 'close':
          sendRaw(client, Buffer.concat([Buffer.from([MSG.CLOSE]), u32(remoteOf(a.slot))]));
          break;
        case 'adjust':
          sendRaw(client, Buffer.concat([Buffer.from([MSG.WINDOW_ADJUST]), u32(remoteOf(a.slot)), u32(a.amount)]));
          break;
        case 'message':
          sendRaw(client, Buffer.concat([Buffer.from([a.type]), Buffer.from(a.payload)]));
          break;
        case 'wait':
          await sleep(a.ms);
          break;
        case 'revoke':
          await cove.api(`/sandbox/${sandboxId}/ssh-access?token=${user}`, { method: 'DELETE' });
          break;
        case 'drop':
          (client as unknown as { _sock?: net.Socket })._sock?.destroy();
          break;
      }
    }
    await sleep(100);
  } catch {
    // ssh2's client may refuse to write once the server has cut the connection: the server side is what is checked.
  } finally {
    client.end();
    await closedWithin(client, 3000);
  }
}

// ── properties ──────────────────────────────────────────────────────────────────────────────────────────────────

describe('SSH gateway under hostile input', () => {
  it(
    'refuses every bad user name with every authentication method, and keeps serving',
    async () => {
      const username = fc.oneof(
        anyText,
        hugeText,
        fc.stringMatching(/^[a-z0-9]{40}$/),
        fc.constantFrom('expired', 'revoked', 'upper', 'padded', 'nul', 'prefix'),
      );
      const method = fc.constantFrom('none', 'password', 'publickey', 'keyboard-interactive', 'hostbased');
      await fuzz(
        'ssh user names',
        fc.asyncProperty(username, fc.array(method, { minLength: 1, maxLength: 4 }), oddText, async (name, methods, secret) => {
          const from = cove.output().length;
          const user =
            { expired: expiredToken, revoked: revokedToken, upper: token.toUpperCase(), padded: ` ${token}`, nul: `${token}\0`, prefix: token.slice(0, 39) }[name] ?? name;
          const authHandler = methods.map((type) =>
            type === 'password'
              ? { type, username: user, password: secret }
              : type === 'publickey'
                ? { type, username: user, key: clientKey }
                : type === 'keyboard-interactive'
                  ? { type, username: user, prompt: (_n: unknown, _i: unknown, _l: unknown, _p: unknown, finish: (r: string[]) => void) => finish([secret]) }
                  : type === 'hostbased'
                    ? { type, username: user, key: clientKey, localHostname: 'fuzz', localUsername: secret }
                    : { type, username: user },
          ) as unknown as Ssh2.AuthenticationType[];
          const outcome = await connect(user, { localAddress: freshSource(), authHandler, readyTimeout: 10_000 }).then(
            (client) => {
              client.end();
              return 'logged in';
            },
            (err: Error) => err.message,
          );
          expect(outcome).not.toBe('logged in');
          expectNoLeak(from);
        }),
        3_000,
      );
      await expectServing();
    },
    timeoutFor(3_000),
  );

  it(
    'keeps serving through unexpected and malformed requests after a valid login',
    async () => {
      await fuzz(
        'ssh requests',
        fc.asyncProperty(fc.array(action, { minLength: 1, maxLength: 8 }), async (actions) => {
          const from = cove.output().length;
          // A token of its own, which the run may revoke.
          const access = (await (await cove.api(`/sandbox/${sandboxId}/ssh-access`, { method: 'POST' })).json()) as { token: string };
          await play(actions, access.token);
          expectNoLeak(from);
          expect(cove.output().slice(from)).not.toContain(access.token);
        }),
        4_000,
      );
      await expectServing();
    },
    timeoutFor(4_000),
  );

  it(
    'closes connections that send raw bytes, and keeps serving',
    async () => {
      const ident = 'SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n';
      const input = fc.oneof(
        bytes(4096).map((b) => [Buffer.from(b)]),
        fc.nat({ max: ident.length - 2 }).map((n) => [Buffer.from(ident.slice(0, n))]),
        fc.nat({ max: 100_000 }).map((n) => [Buffer.from(`SSH-2.0-${'x'.repeat(n)}\r\n`)]),
        fc.array(anyText, { maxLength: 20 }).map((lines) => [Buffer.from(lines.map((l) => `${l}\r\n`).join('') + ident)]),
        fc.constantFrom('SSH-1.5-x\r\n', 'SSH-1.99-x\r\n', 'SSH-2.0-\r\n', 'SSH-2.0\r\n', '\r\n', 'SSH-2.0-x\n', 'GET / HTTP/1.1\r\n\r\n').map((s) => [Buffer.from(s)]),
        fc.tuple(bytes(4096), fc.boolean()).map(([b, lengthFirst]) => [Buffer.from(ident), lengthFirst ? Buffer.concat([u32(0xffffffff), Buffer.from(b)]) : Buffer.from(b)]),
      );
      await fuzz(
        'ssh raw bytes',
        fc.asyncProperty(input, async (pieces) => {
          const from = cove.output().length;
          const closed = await new Promise<boolean>((resolve) => {
            const socket = net.connect({ port: sshPort, host: '127.0.0.1', localAddress: freshSource() });
            const timer = setTimeout(() => {
              socket.destroy();
              resolve(false);
            }, 5_000);
            socket.on('data', () => {});
            socket.on('error', () => {});
            socket.once('close', () => {
              clearTimeout(timer);
              resolve(true);
            });
            socket.once('connect', () => {
              for (const piece of pieces) socket.write(piece);
              // Incomplete input waits for more: the server must close once the client has nothing more to send.
              socket.end();
            });
          });
          expect(closed).toBe(true);
          expectNoLeak(from);
        }),
        2_000,
      );
      await expectServing();
    },
    timeoutFor(2_000),
  );

  it(
    'parses every client value totally: a value or a refusal, never an exception',
    async () => {
      await fuzz(
        'ssh request parsers',
        fc.property(fc.anything(), fc.anything(), fc.anything(), (a, b, c) => {
          for (const checked of [checkEnv(a, b, {}), checkCommand(a), checkSubsystem(a), checkSignal(a), checkHost(a), checkConnect(a, b), checkListen(a, b)]) {
            expect(typeof checked.ok).toBe('boolean');
          }
          const pty = checkPty(a as never);
          if (pty.ok) {
            expect(pty.value.cols).toBeGreaterThanOrEqual(1);
            expect(pty.value.cols).toBeLessThanOrEqual(MAX_TERMINAL_SIDE);
          }
          // A host that passes goes into a query string and a request line: it holds no character that needs escaping.
          const target = checkConnect(a, b);
          if (target.ok) expect(target.value.host).toMatch(/^[A-Za-z0-9_.:-]+$/);
          const listen = checkListen(a, c);
          if (listen.ok) expect(listen.value.address).toMatch(/^([A-Za-z0-9_.:-]+|\*|)$/);
        }),
        300,
      );
    },
    timeoutFor(300),
  );

  it(
    'keeps terminal values and exit statuses within what the agent and the SSH wire take',
    async () => {
      await fuzz(
        'ssh pty and exit values',
        fc.property(
          fc.record({ term: fc.oneof(anyText, fc.anything()), cols: fc.oneof(uint32, fc.anything()), rows: fc.oneof(uint32, fc.double()) }),
          fc.oneof(fc.record({ code: fc.integer() }), fc.record({ signal: anyText, coreDumped: fc.boolean() })),
          (info, exit) => {
            const pty = checkPty(info);
            if (pty.ok) {
              expect(pty.value.term).toMatch(/^[\x21-\x7e]{1,256}$/);
              expect(pty.value.rows).toBeLessThanOrEqual(MAX_TERMINAL_SIDE);
            }
            const reply = exitReply(exit);
            if ('code' in reply) expect(reply.code >>> 0).toBe(reply.code);
            else expect(['ABRT', 'ALRM', 'FPE', 'HUP', 'ILL', 'INT', 'KILL', 'PIPE', 'QUIT', 'SEGV', 'TERM', 'USR1', 'USR2']).toContain(reply.signal);
          },
        ),
        200,
      );
    },
    timeoutFor(200),
  );
});

// ── regressions (each was a defect) ─────────────────────────────────────────────────────────────────────────────

/** The server's resident memory, MiB. */
const rssMiB = () => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${cove.process.pid}/status`, 'utf8'))?.[1]) / 1024;

/** Opens a session channel running `command` with ssh2's client; resolves with the channel once it runs. */
const execChannel = (client: Ssh2.Client, command: string) =>
  new Promise<Ssh2.ClientChannel>((resolve, reject) => client.exec(command, (err, ch) => (err ? reject(err) : resolve(ch))));

describe('SSH gateway regressions', () => {
  it('logs in with a valid token by every authentication method (publickey in its two steps too)', async () => {
    const methods = [
      { type: 'none' },
      { type: 'password', password: 'anything' },
      { type: 'publickey', key: clientKey },
      { type: 'keyboard-interactive', prompt: (_n: unknown, _i: unknown, _l: unknown, _p: unknown, finish: (r: string[]) => void) => finish([]) },
      { type: 'hostbased', key: clientKey, localHostname: 'here', localUsername: 'me' },
    ];
    for (const method of methods) {
      const client = await connect(token, { authHandler: [{ ...method, username: token }] as unknown as Ssh2.AuthenticationType[] });
      try {
        expect(await run(client, 'echo in'), method.type).toMatchObject({ code: 0, stdout: 'in\n' });
      } finally {
        client.end();
      }
    }
  });

  it('cuts off a client that sends beyond its channel window instead of buffering it (was: 64 MiB in, +86 MiB RSS)', async () => {
    const client = await connect(token);
    client.on('error', () => {});
    // Nothing reads stdin in the sandbox: the channel's window fills and stays full.
    const ch = await execChannel(client, 'sleep 30');
    const before = rssMiB();
    const id = (ch as unknown as { outgoing: { id: number } }).outgoing.id;
    const chunk = Buffer.alloc(32 * 1024 - 64, 120);
    for (let sent = 0; sent < 64 * 1024 * 1024; sent += chunk.length) sendRaw(client, Buffer.concat([Buffer.from([MSG.DATA]), u32(id), sshString(chunk)]));
    expect(await closedWithin(client, 15_000)).toBe(true);
    expect(rssMiB() - before).toBeLessThan(32);
    await expectServing();
  }, 60_000);

  it('stops reading the sandbox while a client grants a huge window but does not read (was: all output buffered)', async () => {
    const client = await connect(token);
    client.on('error', () => {});
    const progress = `/tmp/ssh-progress-${Date.now()}`;
    // 200 MiB of output, counting each MiB written to the channel.
    const ch = await execChannel(client, `for i in $(seq 200); do head -c 1048576 /dev/zero; echo $i > ${progress}; done`);
    const id = (ch as unknown as { outgoing: { id: number } }).outgoing.id;
    sendRaw(client, Buffer.concat([Buffer.from([MSG.WINDOW_ADJUST]), u32(id), u32(0xffffffff - 4 * 1024 * 1024)]));
    const sock = (client as unknown as { _sock: net.Socket })._sock;
    sock.pause();
    const before = rssMiB();
    await sleep(4_000);
    const other = await connect(token);
    try {
      const written = Number((await run(other, `cat ${progress} 2>/dev/null || echo 0`)).stdout.trim());
      // What is in flight: the client's socket (1 MiB before tunnels pause), kernel buffers on both hops, the agent's.
      expect(written).toBeLessThan(40);
      expect(rssMiB() - before).toBeLessThan(32);
    } finally {
      other.end();
      sock.destroy();
    }
    await expectServing();
  }, 60_000);

  it('tells how a process ended by a signal SSH has no name for (was: the channel never closed)', async () => {
    const client = await connect(token);
    try {
      for (const [signal, code] of [['BUS', 128 + os.constants.signals.SIGBUS], ['XCPU', 128 + os.constants.signals.SIGXCPU]] as const) {
        expect(await run(client, `kill -${signal} $$`)).toMatchObject({ code });
      }
      const term = await new Promise<unknown[]>((resolve, reject) =>
        client.exec('kill -TERM $$', (err, ch) => {
          if (err) return reject(err);
          ch.on('data', () => {});
          ch.on('exit', (...args: unknown[]) => resolve(args));
        }),
      );
      expect(term.slice(0, 2)).toEqual([null, 'SIGTERM']);
    } finally {
      client.end();
    }
  });

  it('refuses requests it cannot honour instead of passing them to the sandbox', async () => {
    const client = await connect(token);
    client.on('error', () => {});
    try {
      // A terminal name that is no terminfo name: no terminal (as OpenSSH's client then goes on without one).
      await expect(execChannelPty(client, { term: 'x'.repeat(300) })).rejects.toThrow(/pseudo-terminal/);
      // Absurd sizes are clamped (0 keeps the default).
      const ch = await execChannelPty(client, { term: 'vt100', rows: 0xffffffff, cols: 0 }, 'stty size');
      let out = '';
      ch.on('data', (d: Buffer) => (out += d));
      await new Promise((resolve) => ch.on('close', resolve));
      expect(out.trim()).toBe('10000 80');
      // A command with a NUL: refused by the gateway (the agent's spawn error never reaches the client).
      await expect(execChannel(client, 'echo a\0b')).rejects.toThrow(/Unable to exec/);
      // Forwards: privileged and out-of-range ports, addresses that are no host.
      const forwardIn = (address: string, p: number) => new Promise<void>((resolve, reject) => client.forwardIn(address, p, (err) => (err ? reject(err) : resolve())));
      await expect(forwardIn('127.0.0.1', 80)).rejects.toThrow();
      await expect(forwardIn('127.0.0.1', 70000)).rejects.toThrow();
      await expect(forwardIn('a b', 0)).rejects.toThrow();
      const forwardOut = (host: string, p: number) =>
        new Promise<void>((resolve, reject) => client.forwardOut('127.0.0.1', 1, host, p, (err, ch) => (err ? reject(err) : (ch.end(), resolve()))));
      await expect(forwardOut('127.0.0.1', 0)).rejects.toThrow();
      await expect(forwardOut('127.0.0.1\0', 2280)).rejects.toThrow();
      await expect(forwardOut('h/../x', 2280)).rejects.toThrow();
      expect(await run(client, 'echo still')).toMatchObject({ code: 0, stdout: 'still\n' });
      // A malformed tcpip-forward (no port): ssh2 rules it a protocol error and ends this connection, and only it.
      sendRaw(client, Buffer.concat([Buffer.from([MSG.GLOBAL_REQUEST]), sshString('tcpip-forward'), bool(false), sshString('127.0.0.1')]));
      expect(await closedWithin(client, 5_000)).toBe(true);
    } finally {
      client.end();
    }
    await expectServing();
  });
});

function execChannelPty(client: Ssh2.Client, pty: Ssh2.PseudoTtyOptions & { term?: string }, command = 'true'): Promise<Ssh2.ClientChannel> {
  return new Promise((resolve, reject) => client.exec(command, { pty }, (err, ch) => (err ? reject(err) : resolve(ch))));
}
