/**
 * Older Daytona SDKs against a real `cove serve`, beside the current one: 0.108 (the version of Daytona's getting-started
 * examples: toolbox calls under `/api/toolbox/{id}/toolbox/…`, WebSockets to the preview host of port 2280; see
 * proxy/src/toolbox/legacy.ts), 0.143 (numbered pages of `/sandbox/paginated`) and 0.218. Each creates a labelled
 * sandbox, runs a command, uploads and downloads a file, finds it by its labels and deletes it; a deleted sandbox
 * answers as `destroyed` for a while (what 0.108's delete reads back) and is listed no more.
 */
import { randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import dns from 'node:dns';
import { Daytona } from '@daytonaio/sdk';
import { Daytona as Daytona0108, type Sandbox as Sandbox0108 } from 'daytona-sdk-0108';
import { Daytona as Daytona0143 } from 'daytona-sdk-0143';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { COVE_BIN, waitFor } from '../helpers/agent';
import { startCove, type TestCove } from '../helpers/cove';
import { previewFetch, previewSocket } from '../helpers/preview';

let cove: TestCove;
const realLookup = dns.lookup;
/** Labels of this run's sandboxes, so that listings see no other file's. */
const run = randomBytes(6).toString('hex');

beforeAll(async () => {
  // SDK 0.108 opens WebSockets to `2280-{id}.localhost` itself; every `*.localhost` name is this machine's loopback
  // (as browsers and curl treat it), which Node's resolver does not know.
  dns.lookup = ((hostname: string, options: unknown, callback?: unknown) => {
    const cb = (typeof options === 'function' ? options : callback) as (err: Error | null, address: unknown, family?: number) => void;
    const opts = typeof options === 'object' && options ? (options as { all?: boolean }) : {};
    if (!hostname.endsWith('.localhost')) return (realLookup as (...a: unknown[]) => void)(hostname, options, callback);
    if (opts.all) cb(null, [{ address: '127.0.0.1', family: 4 }]);
    else cb(null, '127.0.0.1', 4);
  }) as typeof dns.lookup;
  cove = await startCove({ pool: 2 });
}, 20 * 60_000);
afterAll(async () => {
  dns.lookup = realLookup;
  await cove?.destroy();
});

const labelsOf = (sdk: string) => ({ suite: 'sdk-versions', run, sdk });
const authorized = () => ({ Authorization: `Bearer ${cove.apiKey}` });

/** The same steps in every SDK: a command with its exit code, and a file up and down again. */
async function commandAndFiles(sb: {
  process: { executeCommand(command: string, cwd?: string): Promise<{ exitCode: number; result: string }> };
  fs: { uploadFile(data: Buffer, path: string): Promise<void>; downloadFile(path: string): Promise<Buffer> };
}, sdk: string): Promise<void> {
  const res = await sb.process.executeCommand(`echo "${sdk} $((40+2))"; pwd; exit 3`, '/tmp');
  expect(res.exitCode).toBe(3);
  expect(res.result).toBe(`${sdk} 42\n/tmp\n`);
  const data = Buffer.concat([Buffer.from(`from ${sdk}\n`), randomBytes(256 * 1024)]);
  await sb.fs.uploadFile(data, `/home/cove/${sdk}.bin`);
  expect((await sb.fs.downloadFile(`/home/cove/${sdk}.bin`)).equals(data)).toBe(true);
  expect((await sb.process.executeCommand(`head -c ${sdk.length + 6} /home/cove/${sdk}.bin`)).result).toBe(`from ${sdk}\n`);
}

/** The sandbox as `GET /sandbox/{id}` answers it: its status and state. */
async function stateOf(id: string): Promise<{ status: number; state?: string }> {
  const res = await cove.api(`/sandbox/${id}`);
  return { status: res.status, state: res.ok ? (await res.json()).state : undefined };
}

describe('SDK 0.108', () => {
  let daytona: Daytona0108;
  let sb: Sandbox0108;

  it('creates a labelled sandbox and runs a command, files up and down, through /api/toolbox/{id}/toolbox/…', async () => {
    daytona = new Daytona0108({ apiKey: cove.apiKey, apiUrl: cove.apiUrl, target: 'local' });
    // Public: its previews are open to anyone, and its toolbox must not be (below).
    sb = await daytona.create({ language: 'python', labels: labelsOf('0108'), public: true });
    expect(sb.state).toBe('started');
    expect(sb.labels).toMatchObject(labelsOf('0108'));
    await commandAndFiles(sb, '0108');
    expect(await sb.getUserHomeDir()).toBe('/home/cove');
    expect((await sb.fs.listFiles('/home/cove')).map((f) => f.name)).toContain('0108.bin');
  });

  it('lists and finds it by its labels', async () => {
    const page = await daytona.list(labelsOf('0108'));
    expect(page.items.map((s) => s.id)).toEqual([sb.id]);
    expect(page.total).toBe(1);
    expect((await daytona.findOne({ labels: labelsOf('0108') })).id).toBe(sb.id);
  });

  it('streams a session command over the port-2280 WebSocket and drives a PTY', async () => {
    await sb.process.createSession('s');
    const cmd = await sb.process.executeSessionCommand('s', { command: 'for i in 1 2 3; do echo "out $i"; echo "err $i" >&2; sleep 0.05; done', runAsync: true });
    let stdout = '';
    let stderr = '';
    await sb.process.getSessionCommandLogs('s', cmd.cmdId!, (s) => (stdout += s), (s) => (stderr += s));
    expect(stdout).toBe('out 1\nout 2\nout 3\n');
    expect(stderr).toBe('err 1\nerr 2\nerr 3\n');

    let out = '';
    const pty = await sb.process.createPty({
      id: 'term',
      cols: 100,
      rows: 30,
      onData: (d) => {
        out += new TextDecoder().decode(d);
      },
    });
    await pty.sendInput('stty size; echo "ready $((40+2))"\n');
    await waitFor(() => out.includes('ready 42') && out.includes('30 100'), 10_000, 'PTY output');
    await pty.sendInput('exit 9\n');
    expect((await pty.wait()).exitCode).toBe(9);
    await pty.disconnect();
  });

  it('reaches LSP workspace symbols under their old name', async () => {
    await sb.fs.createFolder('/home/cove/proj', '755');
    await sb.fs.uploadFile(Buffer.from('export function greetEveryone(name: string) {\n  return name;\n}\n'), '/home/cove/proj/index.ts');
    const lsp = await sb.createLspServer('typescript', '/home/cove/proj');
    await lsp.start();
    await lsp.didOpen('/home/cove/proj/index.ts');
    // The language server indexes the project in the background: asked until it knows the function.
    const names = await waitFor(async () => {
      const found = (await lsp.workspaceSymbols('greetEveryone')).map((s) => s.name);
      if (found.includes('greetEveryone')) return found;
      await new Promise((r) => setTimeout(r, 250));
      return undefined;
    }, 30_000, 'workspace symbols');
    expect(names).toContain('greetEveryone');
    await lsp.stop();
  });

  it('keeps the toolbox checks of the new paths on the old ones: API key, owner, state; 404 and 400 for bad paths', async () => {
    const base = `${cove.url}/api/toolbox/${sb.id}/toolbox`;
    expect((await fetch(`${base}/version`)).status).toBe(401);
    expect((await fetch(`${base}/version`, { headers: { Authorization: 'Bearer not-a-key' } })).status).toBe(401);
    const other = execFileSync(process.execPath, [COVE_BIN, 'keys', 'create', '--name', `other-${run}`, '--data-dir', cove.dataDir], { encoding: 'utf8' }).trim();
    const forOther = await fetch(`${base}/version`, { headers: { Authorization: `Bearer ${other}` } });
    expect(forOther.status).toBe(404);
    expect((await forOther.json()).code).toBe('SANDBOX_NOT_FOUND');
    const ok = await fetch(`${base}/version`, { headers: authorized() });
    expect(ok.status).toBe(200);
    expect(JSON.stringify(await ok.json())).not.toContain(cove.apiKey);

    const notToolbox = await fetch(`${cove.url}/api/toolbox/${sb.id}/files`, { headers: authorized() });
    expect(notToolbox.status).toBe(404);
    expect((await notToolbox.json()).message).toContain('/api/toolbox/{sandboxId}/toolbox/');
    const noRoute = await fetch(`${base}/no-such-route`, { headers: authorized() });
    expect(noRoute.status).toBe(404);
    expect((await noRoute.json()).message).toMatch(/No route for GET \/no-such-route/);
    expect((await fetch(`${cove.url}/api/toolbox/%ZZ/toolbox/version`, { headers: authorized() })).status).toBe(400);
  });

  it('admits the port-2280 host as the toolbox only: an API key, or that port\'s token on WebSockets; never open because the sandbox is public', async () => {
    const link = await sb.getPreviewLink(2280);
    const one = await sb.getPreviewLink(1);
    // The sandbox is public: any other port's preview is open, its toolbox is not.
    expect((await previewFetch(`${link.url}/version`)).status).toBe(401);
    expect((await previewFetch(`${link.url}/version`, { headers: { 'X-Daytona-Preview-Token': link.token } })).status).toBe(401);
    expect((await previewFetch(`${link.url}/version`, { headers: authorized() })).status).toBe(200);
    // What 0.108 sends from browsers and edge runtimes: only the token, in the query.
    await sb.process.createSession('w');
    const cmd = await sb.process.executeSessionCommand('w', { command: 'echo browser', runAsync: true });
    const logs = `${link.url}/process/session/w/command/${cmd.cmdId}/logs?follow=true`;
    const ws = await previewSocket(`${logs}&DAYTONA_SANDBOX_AUTH_KEY=${link.token}`);
    ws.close();
    await expect(previewSocket(`${logs}&DAYTONA_SANDBOX_AUTH_KEY=${one.token}`)).rejects.toMatchObject({ status: 401 });
    await expect(previewSocket(logs)).rejects.toMatchObject({ status: 401 });
  });

  it('deletes it: the SDK reads it back as destroyed, lists no longer show it', async () => {
    await sb.delete();
    expect(sb.state).toBe('destroyed');
    expect(await stateOf(sb.id)).toEqual({ status: 200, state: 'destroyed' });
    const page = await daytona.list(labelsOf('0108'));
    expect(page.items).toEqual([]);
    expect(page.total).toBe(0);
    await expect(daytona.findOne({ labels: labelsOf('0108') })).rejects.toThrow(/No sandbox found/);
    expect(cove.containers(`dev.cove.sandbox=${sb.id}`)).toEqual([]);
  });
});

describe('SDK 0.143', () => {
  it('creates, runs a command, moves files, lists by numbered pages, finds and deletes', async () => {
    const daytona = new Daytona0143({ apiKey: cove.apiKey, apiUrl: cove.apiUrl, target: 'local' });
    const sb = await daytona.create({ language: 'typescript', labels: labelsOf('0143') });
    expect(sb.state).toBe('started');
    await commandAndFiles(sb, '0143');
    const page = await daytona.list(labelsOf('0143'), 1, 10);
    expect(page.items.map((s) => s.id)).toEqual([sb.id]);
    expect({ total: page.total, page: page.page, totalPages: page.totalPages }).toEqual({ total: 1, page: 1, totalPages: 1 });
    expect((await daytona.findOne({ labels: labelsOf('0143') })).id).toBe(sb.id);
    await sb.delete();
    expect((await daytona.get(sb.id)).state).toBe('destroyed');
    expect((await daytona.list(labelsOf('0143'))).items).toEqual([]);
  });
});

describe('SDK 0.218', () => {
  it('creates, runs a command, moves files, lists by labels, deletes; the name is free at once', async () => {
    const daytona = new Daytona({ apiKey: cove.apiKey, apiUrl: cove.apiUrl, target: 'local' });
    const name = `versions-${run}`;
    const sb = await daytona.create({ name, language: 'python', labels: labelsOf('0218') });
    expect(sb.state).toBe('started');
    await commandAndFiles(sb, '0218');
    const listed: string[] = [];
    for await (const s of daytona.list({ labels: labelsOf('0218') })) listed.push(s.id);
    expect(listed).toEqual([sb.id]);
    // 0.218 has no findOne: the first item of a one-item page is what it was.
    const first = await daytona.list({ labels: labelsOf('0218'), limit: 1 }).next();
    expect(first.done ? undefined : first.value.id).toBe(sb.id);
    await sb.delete(60, true);
    expect(sb.state).toBe('destroyed');
    expect(await stateOf(sb.id)).toEqual({ status: 200, state: 'destroyed' });
    const after: string[] = [];
    for await (const s of daytona.list({ labels: labelsOf('0218') })) after.push(s.id);
    expect(after).toEqual([]);
    // The name of a deleted sandbox is free at once; the new sandbox is what the name means now.
    const again = await daytona.create({ name, labels: labelsOf('0218') });
    expect(again.id).not.toBe(sb.id);
    expect((await daytona.get(name)).id).toBe(again.id);
    await again.delete();
  });
});
