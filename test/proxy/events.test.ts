/**
 * Sandbox state events over Socket.IO (`/api/socket.io/`, wire/events.ts) through a real `cove serve`: the published
 * SDK connects by itself and follows state changes it did not make; a Socket.IO client hears Daytona's events with the
 * states before and after; keys are checked at the handshake and hear only of the sandboxes they may use; hostile
 * handshakes, upgrades and packets end their own connection and nothing else.
 */
import net from 'node:net';
import type { Sandbox } from '@daytonaio/sdk';
import { io, type Socket } from 'socket.io-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { SANDBOX_EVENTS, SandboxCreatedEvent, SandboxStateUpdatedEvent } from '../../wire/events';
import { waitFor } from '../helpers/agent';
import { startCove, type TestCove } from '../helpers/cove';
import { fc, fuzz, timeoutFor } from '../fuzz/lib';

const EVENTS_PATH = '/api/socket.io/';

let cove: TestCove;
let port: number;
beforeAll(async () => {
  // Info lines: the server logs each events connection (never its key).
  cove = await startCove({ pool: 1, args: ['--log-level', 'info'] });
  port = Number(new URL(cove.url).port);
}, 20 * 60_000);
afterAll(async () => {
  await cove?.destroy();
});



type Transport = 'websocket' | 'polling';
interface Received {
  name: string;
  payload: unknown;
}

/** A Socket.IO client of the events, as the SDK makes it (auth.token), without reconnecting. */
function client(key: string | undefined, transports: Transport[] = ['websocket'], extraHeaders?: Record<string, string>): Socket {
  return io(cove.url, { path: EVENTS_PATH, transports, auth: key === undefined ? {} : { token: key }, reconnection: false, forceNew: true, extraHeaders });
}

/** Connects with `key` and records every event it hears. */
async function watch(key: string, transports?: Transport[]): Promise<{ socket: Socket; events: Received[] }> {
  const socket = client(key, transports);
  const events: Received[] = [];
  socket.onAny((name: string, payload: unknown) => events.push({ name, payload }));
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('connect_error', reject);
  });
  return { socket, events };
}

/** The refusal a connection with `key` gets. */
function refusal(key: string | undefined, transports?: Transport[]): Promise<Error & { data?: { code?: string } }> {
  const socket = client(key, transports);
  return new Promise((resolve, reject) => {
    socket.once('connect', () => {
      socket.disconnect();
      reject(new Error('connected'));
    });
    socket.once('connect_error', (err) => {
      socket.disconnect();
      resolve(err as Error & { data?: { code?: string } });
    });
  });
}

/** The state changes heard about one sandbox: `created:<state>` and `<old>><new>`; each payload checked against the wire schema. */
function transitions(events: Received[], id: string): string[] {
  return events.flatMap(({ name, payload }) => {
    if (name === SANDBOX_EVENTS.created) {
      const dto = SandboxCreatedEvent.parse(payload);
      return dto.id === id ? [`created:${dto.state}`] : [];
    }
    if (name === SANDBOX_EVENTS.stateUpdated) {
      const e = SandboxStateUpdatedEvent.parse(payload);
      expect(e.sandbox.state).toBe(e.newState);
      return e.sandbox.id === id ? [`${e.oldState}>${e.newState}`] : [];
    }
    return [`unexpected event ${name}`];
  });
}

/** Sandbox ids the events are about. */
const idsIn = (events: Received[]): Set<string> =>
  new Set(events.map(({ payload }) => ((payload as { sandbox?: { id: string } }).sandbox ?? (payload as { id: string })).id));

/** Waits until `n` changes of sandbox `id` were heard, and returns them. */
async function heard(events: Received[], id: string, n: number): Promise<string[]> {
  await waitFor(() => transitions(events, id).length >= n, 60_000, `${n} events about ${id}: ${transitions(events, id).join(', ')}`);
  return transitions(events, id);
}

/** Log lines of the server (JSON), from its output. */
function logLines(): Array<Record<string, unknown>> {
  return cove
    .output()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

/** The server is alive, answers its API, and no error escaped a boundary. */
async function expectServing(): Promise<void> {
  expect(cove.process.exitCode, cove.output().slice(-2000)).toBeNull();
  expect(cove.output()).not.toMatch(/\((uncaught|unhandled rejection)\)|unexpected error/);
  expect((await cove.api('/sandbox')).status).toBe(200);
}

describe('sandbox state events over Socket.IO', () => {
  it('the published SDK connects by itself and its sandboxes follow changes it did not make', async () => {
    const watcher = await watch(cove.apiKey);
    const daytona = cove.daytona();
    let sandbox: Sandbox | undefined;
    try {
      sandbox = await daytona.create({}, { timeout: 120 });
      const id = sandbox.id;
      expect(await heard(watcher.events, id, 2)).toEqual(['created:creating', 'creating>started']);

      await sandbox.stop();
      expect(sandbox.state).toBe('stopped');
      await sandbox.start();
      expect(sandbox.state).toBe('started');
      expect((await heard(watcher.events, id, 6)).slice(2)).toEqual(['started>stopping', 'stopping>stopped', 'stopped>starting', 'starting>started']);

      // The SDK opened its own connection, over WebSocket, with the admin key (logged by key id, never the key).
      const sdkConnection = await waitFor(() => logLines().find((l) => l.msg === 'events client connected' && String(l.source).startsWith('sdk-typescript')), 30_000, 'the SDK to connect');
      expect(sdkConnection).toMatchObject({ transport: 'websocket', admin: true, sdkVersion: expect.stringMatching(/^0\.218\./) });
      expect(cove.output()).not.toContain(cove.apiKey);

      // Stopped through the REST API, not this Sandbox object: only an event can tell it (the SDK polls only while it
      // waits for a state, and nothing here waits).
      expect((await cove.api(`/sandbox/${id}/stop`, { method: 'POST' })).status).toBe(200);
      await waitFor(() => sandbox!.state === 'stopped', 30_000, 'the SDK to hear of the stop');

      // The last event carries the sandbox as the REST API shows it.
      const last = watcher.events.at(-1)!.payload as { sandbox: unknown; newState: string };
      expect(last.newState).toBe('stopped');
      expect(last.sandbox).toEqual(await (await cove.api(`/sandbox/${id}`)).json());
      expect(JSON.stringify(watcher.events)).not.toMatch(/agentToken/);

      await sandbox.delete(60, true);
      expect(sandbox.state).toBe('destroyed');
      expect((await heard(watcher.events, id, 10)).slice(8)).toEqual(['stopped>destroying', 'destroying>destroyed']);
      sandbox = undefined;
    } finally {
      if (sandbox) await cove.api(`/sandbox/${sandbox.id}`, { method: 'DELETE' });
      await daytona[Symbol.asyncDispose]();
      watcher.socket.disconnect();
    }
  });

  it('refuses a missing or invalid key at the handshake, saying why, over WebSocket and long polling', async () => {
    for (const transports of [['websocket'], ['polling']] as Transport[][]) {
      for (const key of [undefined, '', 'cove_not-a-key', `${cove.apiKey}x`]) {
        const err = await refusal(key, transports);
        expect(err.message, `${transports[0]} ${key?.slice(0, 12)}`).toMatch(/Missing or invalid API key/);
        expect(err.data?.code).toBe('UNAUTHORIZED');
      }
    }
    // Long polling works with a valid key as well.
    const polling = await watch(cove.apiKey, ['polling']);
    polling.socket.disconnect();
    // A browser page of an origin not configured (--cors-origins: none here) is refused; a client without Origin is not.
    const evil = await fetch(`${cove.url}${EVENTS_PATH}?EIO=4&transport=polling`, { headers: { Origin: 'https://evil.example' } });
    expect(evil.status).toBe(403);
    expect((await evil.json()).message).toMatch(/origin is not allowed/);
    const plain = await fetch(`${cove.url}${EVENTS_PATH}?EIO=4&transport=polling`);
    expect(plain.status).toBe(200);
    expect(await plain.text()).toMatch(/^0\{"sid":/);
    await expectServing();
  });

  it("tells a key only of the sandboxes it may use, an admin key of all, and cuts off a key once it is revoked", async () => {
    const other = cove.newKey('events-other');
    const admin = await watch(cove.apiKey);
    const them = await watch(other.key);
    const created: string[] = [];
    try {
      // First a sandbox of the admin key, then one of the other key: events reach a connection in order, so once the
      // other key heard all about its own sandbox, anything about the admin's would have come before.
      const mine = await (await cove.api('/sandbox', { method: 'POST', body: '{}' })).json();
      created.push(mine.id);
      expect((await cove.api(`/sandbox/${mine.id}/stop`, { method: 'POST' })).status).toBe(200);
      const theirs = await (await cove.api('/sandbox', { method: 'POST', body: '{}', key: other.key })).json();
      created.push(theirs.id);
      expect((await cove.api(`/sandbox/${theirs.id}/stop`, { method: 'POST', key: other.key })).status).toBe(200);

      expect(await heard(them.events, theirs.id, 4)).toEqual(['created:creating', 'creating>started', 'started>stopping', 'stopping>stopped']);
      expect([...idsIn(them.events)]).toEqual([theirs.id]);
      expect(SandboxCreatedEvent.parse(them.events[0].payload).organizationId).toBe(other.id);
      expect(await heard(admin.events, mine.id, 4)).toEqual(['created:creating', 'creating>started', 'started>stopping', 'stopping>stopped']);
      expect(await heard(admin.events, theirs.id, 4)).toEqual(['created:creating', 'creating>started', 'started>stopping', 'stopping>stopped']);

      // Revoked (by the CLI, as an operator does): the next event, about its own sandbox, finds the connection gone,
      // and the key cannot connect again.
      const disconnected = new Promise<string>((resolve) => them.socket.once('disconnect', resolve));
      expect(cove.cli('keys', 'revoke', other.id).status).toBe(0);
      const heardBefore = them.events.length;
      expect((await cove.api(`/sandbox/${theirs.id}/start`, { method: 'POST' })).status).toBe(200);
      expect(await disconnected).toBe('io server disconnect');
      expect(them.events.length).toBe(heardBefore);
      expect((await refusal(other.key)).data?.code).toBe('UNAUTHORIZED');
    } finally {
      for (const id of created) await cove.api(`/sandbox/${id}`, { method: 'DELETE' });
      admin.socket.disconnect();
      them.socket.disconnect();
    }
  });
});

/** Writes `bytes` to the server's port and reads until it closes or `ms` pass. */
function exchange(bytes: Buffer | string, ms = 3_000): Promise<string> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    const finish = () => {
      clearTimeout(timer);
      socket.destroy();
      resolve(Buffer.concat(chunks).toString('latin1'));
    };
    const timer = setTimeout(finish, ms);
    socket.on('data', (d) => chunks.push(d));
    socket.on('error', finish);
    socket.on('close', finish);
    socket.once('connect', () => socket.write(bytes));
  });
}

const upgradeHead = (query: string, headers = 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n') =>
  `GET ${EVENTS_PATH}${query} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n${headers}\r\n`;

/** A WebSocket frame from the client (masked with a zero mask), with any opcode and a length field that may lie. */
function frame(opcode: number, payload: Buffer, declared = payload.length): Buffer {
  const head =
    declared < 126
      ? Buffer.from([0x80 | opcode, 0x80 | declared])
      : declared < 65536
        ? Buffer.from([0x80 | opcode, 0x80 | 126, declared >> 8, declared & 0xff])
        : Buffer.concat([Buffer.from([0x80 | opcode, 0x80 | 127]), (() => { const b = Buffer.alloc(8); b.writeBigUInt64BE(BigInt(declared)); return b; })()]);
  return Buffer.concat([head, Buffer.alloc(4), payload]);
}

/** Opens an Engine.IO WebSocket, sends `messages`, and waits for the server to close it or for a moment to pass. */
function engineSocket(messages: Array<string | Buffer>, ms = 300): Promise<void> {
  return new Promise((resolve) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}${EVENTS_PATH}?EIO=4&transport=websocket`);
    const timer = setTimeout(() => ws.terminate(), ms);
    ws.on('open', () => {
      for (const m of messages) ws.send(m);
    });
    ws.on('error', () => {});
    ws.on('close', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

describe('hostile input to /api/socket.io/', () => {
  it('answers malformed handshakes and upgrades with 4xx, ends bad WebSockets alone, and keeps serving', async () => {
    // Plain requests: no query, unknown transport, WebSocket without upgrade, unknown session, old protocol, POST handshake.
    for (const [method, query] of [
      ['GET', ''],
      ['GET', '?EIO=4&transport=carrier-pigeon'],
      ['GET', '?EIO=4&transport=websocket'],
      ['GET', '?EIO=4&transport=polling&sid=nope'],
      ['GET', '?EIO=3&transport=polling'],
      ['POST', '?EIO=4&transport=polling'],
      ['GET', '?EIO=4&transport=polling&transport=websocket&sid=%ZZ'],
    ]) {
      const res = await fetch(`${cove.url}${EVENTS_PATH}${query}`, { method, body: method === 'POST' ? 'x' : undefined });
      expect(res.status, `${method} ${query}`).toBeGreaterThanOrEqual(400);
      expect(res.status, `${method} ${query}`).toBeLessThan(500);
    }
    // A session's messages: garbage, an unknown namespace, and a body past the 64 KiB bound.
    const open = await (await fetch(`${cove.url}${EVENTS_PATH}?EIO=4&transport=polling`)).text();
    const sid = (JSON.parse(open.slice(1)) as { sid: string }).sid;
    for (const body of ['40{not json', '40/nope,{"token":"x"}', '451-["a",{"_placeholder":true,"num":99}]', '\u0000\u00ff', 'x'.repeat(100 * 1024)]) {
      const res = await fetch(`${cove.url}${EVENTS_PATH}?EIO=4&transport=polling&sid=${sid}`, { method: 'POST', body }).catch(() => undefined);
      if (res) expect(res.status, body.slice(0, 40)).toBeLessThan(500);
    }

    // Raw upgrades: without a key header, unknown session, a transport that cannot be upgraded to, an old protocol.
    for (const query of ['?EIO=4&transport=websocket&sid=nope', '?EIO=4&transport=polling', '?EIO=3&transport=websocket', '?transport=websocket', '']) {
      expect(await exchange(upgradeHead(query), 1_000), query).toMatch(/^HTTP\/1\.1 (101|400|403)/);
    }
    expect(await exchange(upgradeHead('?EIO=4&transport=websocket', ''), 1_000)).toMatch(/^HTTP\/1\.1 400/);
    expect(await exchange(upgradeHead('?EIO=4&transport=websocket', 'Sec-WebSocket-Key: x\r\nSec-WebSocket-Version: 99\r\n'), 1_000)).toMatch(/^HTTP\/1\.1 400/);
    // An upgrade elsewhere under /api is still refused as before.
    expect(await exchange(upgradeHead('').replace(EVENTS_PATH, '/api/sandbox'), 1_000)).toMatch(/^HTTP\/1\.1 404/);

    // Bad frames after a good upgrade: garbage bytes, a frame declaring 2^62 bytes, one past the 64 KiB bound, an
    // unmasked frame, a reserved opcode.
    const good = upgradeHead('?EIO=4&transport=websocket');
    for (const after of [
      Buffer.from('\u0000\u00ff garbage garbage'),
      frame(1, Buffer.from('40'), 2 ** 62),
      frame(1, Buffer.alloc(70 * 1024, 0x61)),
      Buffer.from([0x81, 0x02, 0x34, 0x30]),
      frame(3, Buffer.from('x')),
    ]) {
      const answer = await exchange(Buffer.concat([Buffer.from(good), after]), 2_000);
      expect(answer).toMatch(/^HTTP\/1\.1 101/);
    }

    // Engine.IO and Socket.IO packets a client should never send.
    await engineSocket(['40{not json', '40/nope,', '42["sandbox.created",{}]', '451-["a",{"_placeholder":true,"num":0}]', '6', '5', '1', Buffer.from([0, 1, 2])]);
    await expectServing();

    // And events still flow to a client that connects now.
    const watcher = await watch(cove.apiKey);
    const sandbox = await (await cove.api('/sandbox', { method: 'POST', body: '{}' })).json();
    try {
      expect((await heard(watcher.events, sandbox.id, 2))[0]).toBe('created:creating');
    } finally {
      await cove.api(`/sandbox/${sandbox.id}`, { method: 'DELETE' });
      watcher.socket.disconnect();
    }
  });

  it(
    'survives generated Engine.IO and Socket.IO packets and handshake queries',
    async () => {
      const packet = fc.oneof(
        fc.string({ maxLength: 60 }),
        fc.string({ unit: 'binary', maxLength: 30 }),
        fc.tuple(fc.constantFrom('0', '1', '2', '3', '4', '5', '6', '40', '41', '42', '43', '44', '45', '46', '451-', '40/x,'), fc.oneof(fc.json({ maxDepth: 3 }), fc.string({ maxLength: 30 }))).map(([a, b]) => a + b),
        fc.uint8Array({ maxLength: 64 }).map((b) => Buffer.from(b)),
      );
      const query = fc.dictionary(fc.constantFrom('EIO', 'transport', 'sid', 't', 'j', 'b64', 'organizationId', 'x'), fc.oneof(fc.constantFrom('4', '3', 'polling', 'websocket', ''), fc.string({ maxLength: 20 })), { maxKeys: 4 });
      await fuzz(
        'socket.io packets and queries',
        fc.asyncProperty(fc.array(packet, { maxLength: 6 }), query, fc.constantFrom('GET', 'POST', 'PUT', 'OPTIONS'), fc.string({ maxLength: 100 }), async (packets, q, method, body) => {
          await engineSocket(packets, 150);
          const res = await fetch(`${cove.url}${EVENTS_PATH}?${new URLSearchParams(q).toString()}`, { method, body: method === 'GET' ? undefined : body });
          await res.arrayBuffer();
          expect(res.status, `${method} ${JSON.stringify(q)}`).toBeLessThan(500);
        }),
        8_000,
      );
      await expectServing();
    },
    timeoutFor(8_000),
  );
});

describe('shutdown', () => {
  it('closes every events connection and exits cleanly on SIGTERM', async () => {
    const clients = [await watch(cove.apiKey), await watch(cove.apiKey, ['polling'])];
    const closed = clients.map(({ socket }) => new Promise<string>((resolve) => socket.once('disconnect', resolve)));
    expect(await cove.stop()).toBe(0);
    expect(await Promise.all(closed)).toHaveLength(2);
    expect(cove.output()).not.toMatch(/\((uncaught|unhandled rejection)\)|unexpected error/);
  });
});
