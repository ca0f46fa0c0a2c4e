import { spawn } from 'node:child_process';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { COVE_BIN, startAgent, type TestAgent } from '../helpers/agent';

let agent: TestAgent;
beforeAll(async () => {
  agent = await startAgent();
});
afterAll(async () => {
  await agent?.stop();
});

/** Sends raw bytes on a fresh connection and returns everything the server answered before closing. */
function rawRequest(url: string, bytes: string | Buffer): Promise<string> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(port), hostname);
    let answer = '';
    socket.on('data', (d) => (answer += d));
    socket.on('end', () => resolve(answer));
    socket.on('error', (err) => (answer ? resolve(answer) : reject(err)));
    socket.write(bytes);
  });
}

describe('agent foundation', () => {
  it('refuses to start without a token', async () => {
    const child = spawn(process.execPath, [COVE_BIN, 'agent', '--port', '0'], {
      env: { ...process.env, COVE_AGENT_TOKEN: '' },
    });
    let err = '';
    child.stderr.on('data', (d) => (err += d));
    const code = await new Promise((r) => child.on('exit', r));
    expect(code).toBe(2);
    expect(err).toMatch(/refuses to start without a token/);
  });

  it('answers 401 without or with a wrong token, on every route', async () => {
    for (const path of ['/version', '/files?path=/', '/process/session', '/openapi.json', '/no-such-route']) {
      const none = await fetch(agent.url + path);
      expect(none.status).toBe(401);
      expect(await none.json()).toMatchObject({ code: 'UNAUTHORIZED', source: 'DAYTONA_DAEMON' });
      const wrong = await fetch(agent.url + path, { headers: { Authorization: `Bearer ${agent.token}x` } });
      expect(wrong.status).toBe(401);
    }
  });

  it('refuses WebSocket upgrades without the token', async () => {
    const answer = await rawRequest(
      agent.url,
      'GET /process/pty/x/connect HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n',
    );
    expect(answer).toMatch(/^HTTP\/1.1 401/);
  });

  it('does not leak the token to child processes', async () => {
    const env = await agent.json('/process/execute', { method: 'POST', json: { command: 'env' } });
    expect(env.result).not.toContain(agent.token);
    expect(env.result).not.toContain('COVE_AGENT_TOKEN');
  });

  it('serves the info routes', async () => {
    expect(await agent.json('/version')).toEqual({ version: expect.stringMatching(/^\d+\.\d+\.\d+/) });
    expect(await agent.json('/work-dir')).toEqual({ dir: agent.workdir });
    expect(await agent.json('/project-dir')).toEqual({ dir: agent.workdir });
    const home = await agent.json('/user-home-dir');
    expect(home.dir).toMatch(/^\//);
  });

  it('lists listening ports and checks one', async () => {
    const server = net.createServer().listen(0, '127.0.0.1');
    await new Promise((r) => server.once('listening', r));
    const port = (server.address() as net.AddressInfo).port;
    try {
      const { ports } = await agent.json('/port');
      expect(ports).toContain(port);
      expect(ports).toContain(Number(new URL(agent.url).port));
      expect(await agent.json(`/port/${port}/in-use`)).toEqual({ isInUse: true });
    } finally {
      server.close();
    }
    expect(await agent.json(`/port/${port}/in-use`)).toEqual({ isInUse: false });
    const bad = await agent.fetch('/port/99999/in-use');
    expect(bad.status).toBe(400);
    expect((await bad.json()).message).toMatch(/port/i);
  });

  it('serves an OpenAPI document of its routes', async () => {
    const doc = await agent.json('/openapi.json');
    expect(doc.openapi).toBe('3.1.0');
    for (const path of ['/version', '/files', '/files/upload', '/process/execute', '/process/session', '/process/pty', '/port']) {
      expect(Object.keys(doc.paths)).toContain(path);
    }
    expect(doc.paths['/process/execute'].post.requestBody.content['application/json'].schema.properties).toHaveProperty('command');
  });

  it('answers unknown routes with the error envelope', async () => {
    const res = await agent.fetch('/no/such/route');
    expect(res.status).toBe(404);
    expect(await res.json()).toMatchObject({ code: 'NOT_FOUND', source: 'DAYTONA_DAEMON', message: expect.any(String) });
  });

  it('rejects malformed JSON, missing fields and wrong types with 400 and a message', async () => {
    const malformed = await agent.fetch('/process/execute', { method: 'POST', body: '{"command": ', headers: { 'Content-Type': 'application/json' } });
    expect(malformed.status).toBe(400);
    expect(await malformed.json()).toMatchObject({ code: 'INVALID_JSON', message: expect.stringMatching(/JSON/) });

    const missing = await agent.fetch('/process/execute', { method: 'POST', body: '{}', headers: { 'Content-Type': 'application/json' } });
    expect(missing.status).toBe(400);
    expect((await missing.json()).message).toMatch(/command/);

    const wrongType = await agent.fetch('/process/execute', { method: 'POST', body: '{"command": 42}', headers: { 'Content-Type': 'application/json' } });
    expect(wrongType.status).toBe(400);
    expect((await wrongType.json()).message).toMatch(/command/);
  });

  it('refuses JSON bodies over 16 MiB with 413, announced or streamed, and keeps serving', async () => {
    const big = Buffer.alloc(17 * 1024 * 1024, 'a');
    const announced = await agent.fetch('/process/execute', { method: 'POST', body: big, headers: { 'Content-Type': 'application/json' } });
    expect(announced.status).toBe(413);
    expect(await announced.json()).toMatchObject({ code: 'PAYLOAD_TOO_LARGE' });
    const chunks = Array.from({ length: 17 }, () => Buffer.alloc(1024 * 1024, 'a'));
    const streamed = await agent.fetch('/process/execute', {
      method: 'POST',
      body: new ReadableStream({ pull: (c) => (chunks.length ? c.enqueue(chunks.shift()) : c.close()) }),
      headers: { 'Content-Type': 'application/json' },
      duplex: 'half',
    } as RequestInit);
    expect(streamed.status).toBe(413);
    expect(await agent.json('/version')).toHaveProperty('version');
  });

  it('answers huge headers with 431 and keeps serving', async () => {
    const answer = await rawRequest(agent.url, `GET /version HTTP/1.1\r\nHost: a\r\nX-Big: ${'a'.repeat(64 * 1024)}\r\n\r\n`);
    expect(answer).toMatch(/^HTTP\/1.1 431/);
    const garbage = await rawRequest(agent.url, 'NOT HTTP AT ALL\r\n\r\n');
    expect(garbage).toMatch(/^HTTP\/1.1 400/);
    expect(await agent.json('/version')).toHaveProperty('version');
  });
});
