/**
 * Helpers for preview tests and benchmarks: driving a sandbox through the toolbox (files, folders as tar, servers in
 * sessions), and HTTP/WebSocket clients that reach `{port}-{id}.localhost` hosts on this machine's loopback.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import type { LookupFunction } from 'node:net';
import http, { type IncomingHttpHeaders, type IncomingMessage } from 'node:http';
import path from 'node:path';
import WebSocket from 'ws';
import type { TestCove } from './cove';

export const PREVIEW_FIXTURES = path.join(import.meta.dirname, '../fixtures/preview');

/** Every `*.localhost` name is this machine's loopback (as browsers and curl treat it); Node's resolver does not know that. */
const loopbackLookup: LookupFunction = (hostname, options, callback) => {
  const all = typeof options === 'object' && options?.all;
  if (all) (callback as unknown as (e: null, a: { address: string; family: number }[]) => void)(null, [{ address: '127.0.0.1', family: 4 }]);
  else callback(null, '127.0.0.1', 4);
};

/** A sandbox driven through the proxy's toolbox with the admin key. */
export function toolbox(cove: TestCove, sandboxId: string, key = cove.apiKey) {
  const base = `${cove.url}/toolbox/${sandboxId}`;
  const call = async (p: string, init: RequestInit = {}): Promise<Response> => {
    const headers: Record<string, string> = { Authorization: `Bearer ${key}`, ...(init.headers as Record<string, string>) };
    if (typeof init.body === 'string') headers['Content-Type'] ??= 'application/json';
    return fetch(base + p, { ...init, headers });
  };
  const ok = async (p: string, init: RequestInit = {}): Promise<any> => {
    const res = await call(p, init);
    const text = await res.text();
    if (!res.ok) throw new Error(`${init.method ?? 'GET'} ${p} → ${res.status}: ${text}`);
    return text ? JSON.parse(text) : undefined;
  };
  const box = {
    call,
    /** Runs a command to its end; throws unless it exits 0. */
    async exec(command: string, timeout = 120): Promise<string> {
      const { exitCode, result } = await ok('/process/execute', { method: 'POST', body: JSON.stringify({ command, timeout }) });
      if (exitCode !== 0) throw new Error(`\`${command}\` exited ${exitCode}: ${result}`);
      return result;
    },
    /** POST /files/upload: one file, created or replaced. */
    async upload(remote: string, content: Buffer | string): Promise<void> {
      const form = new FormData();
      form.append('file', new Blob([new Uint8Array(typeof content === 'string' ? Buffer.from(content) : content)]), path.basename(remote));
      await ok(`/files/upload?path=${encodeURIComponent(remote)}`, { method: 'POST', body: form });
    },
    /** Copies a local folder into the sandbox: tar.gz on the host, one upload, extracted there. */
    async uploadDir(local: string, remote: string): Promise<void> {
      const tgz = execFileSync('tar', ['-C', local, '-czf', '-', '.'], { maxBuffer: 1 << 30 });
      const tmp = `/tmp/upload-${randomBytes(4).toString('hex')}.tgz`;
      await box.upload(tmp, tgz);
      await box.exec(`mkdir -p '${remote}' && tar -xzf ${tmp} -C '${remote}' && rm -f ${tmp}`);
    },
    /**
     * Starts a long-running command in a session of its own (it outlives this request) and waits until `port` listens.
     * Returns the session's id; its output is in `logs(sessionId)`.
     */
    async serve(command: string, port: number, timeoutMs = 60_000): Promise<string> {
      const sessionId = `serve-${port}-${randomBytes(3).toString('hex')}`;
      await ok('/process/session', { method: 'POST', body: JSON.stringify({ sessionId }) });
      const { cmdId } = await ok(`/process/session/${sessionId}/exec`, { method: 'POST', body: JSON.stringify({ command, runAsync: true }) });
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        if ((await ok(`/port/${port}/in-use`)).isInUse) return sessionId;
        const cmd = await ok(`/process/session/${sessionId}/command/${cmdId}`);
        if (cmd.exitCode !== undefined && cmd.exitCode !== null) {
          const logs = await ok(`/process/session/${sessionId}/command/${cmdId}/logs`);
          throw new Error(`\`${command}\` exited ${cmd.exitCode} before port ${port} listened: ${logs.output}`);
        }
        if (Date.now() > deadline) throw new Error(`port ${port} did not listen within ${timeoutMs} ms after \`${command}\``);
        await new Promise((r) => setTimeout(r, 100));
      }
    },
    /** Ends a session started by serve() (and the server in it). */
    async stop(sessionId: string): Promise<void> {
      await call(`/process/session/${sessionId}`, { method: 'DELETE' });
    },
  };
  return box;
}

interface PreviewResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
  text(): string;
  json(): any;
  /** Whether the client's connection to the proxy was a kept-alive one. */
  reusedSocket: boolean;
}

interface PreviewRequestOptions {
  method?: string;
  headers?: Record<string, string>;
  body?: Buffer | string;
  agent?: http.Agent;
}

/** Starts a request to a preview URL (any `*.localhost` host is reached on loopback) and resolves with its response head. */
export function previewStream(url: string, opts: PreviewRequestOptions = {}): Promise<{ res: IncomingMessage; reusedSocket: boolean }> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: opts.method ?? 'GET', headers: opts.headers, agent: opts.agent ?? false, lookup: loopbackLookup }, (res) =>
      resolve({ res, reusedSocket: req.reusedSocket }),
    );
    req.on('error', reject);
    req.end(opts.body);
  });
}

/** A whole request to a preview URL: status, headers and the body read to its end. */
export async function previewFetch(url: string, opts: PreviewRequestOptions = {}): Promise<PreviewResponse> {
  const { res, reusedSocket } = await previewStream(url, opts);
  const chunks: Buffer[] = [];
  for await (const chunk of res) chunks.push(chunk as Buffer);
  const body = Buffer.concat(chunks);
  return {
    status: res.statusCode ?? 0,
    headers: res.headers,
    body,
    reusedSocket,
    text: () => body.toString(),
    json: () => JSON.parse(body.toString()),
  };
}

/** Opens a WebSocket to a preview URL (http(s) is turned into ws(s)); resolves once it is open, rejects with the status. */
export function previewSocket(url: string, headers: Record<string, string> = {}): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url.replace(/^http/, 'ws'), { headers, lookup: loopbackLookup } as WebSocket.ClientOptions);
    ws.once('open', () => resolve(ws));
    ws.once('unexpected-response', (_req, res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => reject(Object.assign(new Error(`WebSocket refused: ${res.statusCode} ${body}`), { status: res.statusCode, body })));
    });
    ws.once('error', reject);
  });
}

/** Sends a message and resolves with the next one. */
export function roundTrip(ws: WebSocket, data: string | Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    ws.once('message', (m) => {
      ws.off('error', reject);
      resolve(Buffer.isBuffer(m) ? m : Buffer.from(m as ArrayBuffer));
    });
    ws.once('error', reject);
    ws.send(data);
  });
}

/** `{port}-{id}.localhost:P` of a preview URL. */
export const hostOf = (url: string) => new URL(url).host;
