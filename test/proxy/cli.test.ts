/**
 * The `cove` client commands against a real `cove serve`: each run as its own process (`node bin/cove.mjs …`) with
 * --json, its output parsed. Login and logout, the sandbox lifecycle, exec, cp of files and folders both ways,
 * previews (a real server in the sandbox), session logs, ssh with the real OpenSSH client, snapshots and volumes,
 * and how errors are reported.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { COVE_BIN } from '../helpers/agent';
import { startCove, type TestCove } from '../helpers/cove';
import { previewFetch, toolbox } from '../helpers/preview';

let cove: TestCove;
let work: string;
let configFile: string;
let sandboxId: string;
const suffix = randomBytes(3).toString('hex');

beforeAll(async () => {
  cove = await startCove({ pool: 1 });
  work = mkdtempSync(path.join(os.tmpdir(), 'cove-cli-test-'));
  configFile = path.join(work, 'config', 'cove.json');
}, 20 * 60_000);
afterAll(async () => {
  await cove?.destroy();
  if (work) rmSync(work, { recursive: true, force: true });
});

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `cove ARGS…` with only the config file for credentials; stdin gets `input` (or nothing) and ends. */
function cli(args: string[], input = ''): Promise<Run> {
  const env: NodeJS.ProcessEnv = { ...process.env, COVE_CONFIG: configFile, COVE_NO_BUILD: '1' };
  delete env.COVE_API_KEY;
  delete env.COVE_API_URL;
  const child = spawn(process.execPath, [COVE_BIN, ...args], { env });
  const run: Run = { code: null, stdout: '', stderr: '' };
  child.stdout.on('data', (d) => (run.stdout += d));
  child.stderr.on('data', (d) => (run.stderr += d));
  child.stdin.end(input);
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => resolve({ ...run, code }));
  });
}

/** `--json` goes before any `--` (what follows belongs to the command in the sandbox). */
const withJson = (args: string[]) => (args.includes('--') ? [...args.slice(0, args.indexOf('--')), '--json', ...args.slice(args.indexOf('--'))] : [...args, '--json']);

/** Runs a command with --json that must succeed, and parses its stdout. */
async function cliJson(args: string[], input?: string): Promise<any> {
  const run = await cli(withJson(args), input);
  if (run.code !== 0) throw new Error(`cove ${args.join(' ')} exited ${run.code}: ${run.stderr}`);
  expect(run.stderr).toBe('');
  return JSON.parse(run.stdout);
}

/** Runs a command with --json that must fail with `code`; its stderr is one JSON error. */
async function cliError(args: string[], code = 1): Promise<{ error: string; status?: number }> {
  const run = await cli(withJson(args));
  expect(run.code, run.stderr).toBe(code);
  expect(run.stdout).toBe('');
  return JSON.parse(run.stderr);
}

/** Every file under a folder, by relative path, with its bytes. */
function tree(dir: string, prefix = ''): Record<string, Buffer> {
  const out: Record<string, Buffer> = {};
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const rel = path.join(prefix, entry.name);
    if (entry.isDirectory()) Object.assign(out, tree(path.join(dir, entry.name), rel));
    else out[rel] = readFileSync(path.join(dir, entry.name));
  }
  return out;
}

describe('cove client commands', () => {
  it('login checks the key, saves it readable by the user alone, and every command then uses it', async () => {
    expect((await cliError(['sandbox', 'list'])).error).toMatch(/run `cove login`/);
    const refused = await cliError(['login', '--api-url', cove.apiUrl, '--api-key', 'not-a-key']);
    expect(refused).toMatchObject({ status: 401 });
    expect(existsSync(configFile)).toBe(false);

    // The key from stdin; a bare origin gets the API's path.
    const saved = await cliJson(['login', '--api-url', cove.apiUrl.replace(/\/api$/, '')], `${cove.apiKey}\n`);
    expect(saved).toEqual({ apiUrl: cove.apiUrl, configPath: configFile });
    expect(statSync(configFile).mode & 0o777).toBe(0o600);
    expect(statSync(path.dirname(configFile)).mode & 0o777).toBe(0o700);
    expect(JSON.parse(readFileSync(configFile, 'utf8'))).toEqual({ apiUrl: cove.apiUrl, apiKey: cove.apiKey });
  });

  it('--help works on every command', async () => {
    const commands = [['login'], ['logout'], ['sandbox'], ['sandbox', 'create'], ['sandbox', 'list'], ['sandbox', 'stop'], ['exec'], ['cp'], ['ssh'], ['preview'], ['logs'], ['snapshot', 'create'], ['volume', 'delete']];
    // Three at a time: each is a Node process loading the whole bundle, on a machine of two cores.
    for (let i = 0; i < commands.length; i += 3) {
      const batch = commands.slice(i, i + 3);
      const runs = await Promise.all(batch.map((c) => cli([...c, '--help'])));
      runs.forEach((run, j) => {
        expect(run.code, batch[j].join(' ')).toBe(0);
        expect(run.stdout).toMatch(/^Usage: cove /);
      });
    }
    expect((await cliJson(['cp', '--help'])).usage).toMatch(/^Usage: cove cp SRC DST/);
  });

  it('sandbox create waits until started; list and info show it', async () => {
    const created = await cliJson(['sandbox', 'create', '--name', `cli-${suffix}`, '--cpu', '1', '--memory', '1', '-e', 'GREETING=hello', '--label', 'team=cli', '--auto-stop', '30']);
    expect(created).toMatchObject({ name: `cli-${suffix}`, state: 'started', cpu: 1, memory: 1, env: { GREETING: 'hello' }, labels: { team: 'cli' }, autoStopInterval: 30 });
    sandboxId = created.id;

    const listed: any[] = await cliJson(['sandbox', 'ls']);
    expect(listed.find((s) => s.id === sandboxId)).toMatchObject({ state: 'started' });
    const filtered: any[] = await cliJson(['sandbox', 'list', '--label', 'team=cli']);
    expect(filtered.map((s) => s.id)).toEqual([sandboxId]);
    const table = await cli(['sandbox', 'list']);
    expect(table.stdout.split('\n')[0]).toMatch(/^ID\s+NAME\s+STATE\s+IMAGE\s+CPU\/MEM\/DISK\s+AGE$/);
    expect(table.stdout).toMatch(new RegExp(`${sandboxId}\\s+cli-${suffix}\\s+started`));

    expect(await cliJson(['sandbox', 'info', `cli-${suffix}`])).toMatchObject({ id: sandboxId, state: 'started' });
  });

  it('exec --json collects the output and exits with the command’s code', async () => {
    const run = await cli(withJson(['exec', sandboxId, '--', 'sh', '-c', 'echo "$GREETING $(cat)"; echo oops >&2; exit 3']), 'from stdin');
    expect(run.code).toBe(3);
    expect(JSON.parse(run.stdout)).toEqual({ exitCode: 3, stdout: 'hello from stdin\n', stderr: 'oops\n' });
  });

  it('cp copies a file and a folder into the sandbox and back, byte for byte', async () => {
    const file = path.join(work, 'blob.bin');
    writeFileSync(file, randomBytes(3 * 1024 * 1024 + 17));
    const up = await cliJson(['cp', file, `${sandboxId}:/tmp/cli/`]);
    expect(up).toMatchObject({ destination: `${sandboxId}:/tmp/cli/`, files: 1, bytes: 3 * 1024 * 1024 + 17 });
    const back = path.join(work, 'blob.back');
    expect(await cliJson(['cp', `cli-${suffix}:/tmp/cli/blob.bin`, back])).toMatchObject({ files: 1, bytes: 3 * 1024 * 1024 + 17 });
    expect(readFileSync(back).equals(readFileSync(file))).toBe(true);

    const dir = path.join(work, 'project');
    mkdirSync(path.join(dir, 'src', 'deep'), { recursive: true });
    mkdirSync(path.join(dir, 'empty'));
    writeFileSync(path.join(dir, 'README.md'), '# hello\n');
    writeFileSync(path.join(dir, 'src', 'data.bin'), randomBytes(200_000));
    writeFileSync(path.join(dir, 'src', 'deep', 'run.sh'), '#!/bin/sh\necho ran\n');
    chmodSync(path.join(dir, 'src', 'deep', 'run.sh'), 0o755);
    const folderUp = await cliJson(['cp', dir, `${sandboxId}:/tmp/tree`]);
    expect(folderUp).toMatchObject({ files: 3, folders: 4, skipped: [] });
    const ran = await cli(['exec', sandboxId, '--', '/tmp/tree/src/deep/run.sh']);
    expect(ran.stdout).toBe('ran\n');

    // Into an existing folder: it lands inside, under its own name.
    const into = path.join(work, 'download');
    mkdirSync(into);
    expect(await cliJson(['cp', `${sandboxId}:/tmp/tree`, into])).toMatchObject({ files: 3, folders: 4 });
    expect(tree(path.join(into, 'tree'))).toEqual(tree(dir));
    expect(statSync(path.join(into, 'tree', 'empty')).isDirectory()).toBe(true);
    expect(statSync(path.join(into, 'tree', 'src', 'deep', 'run.sh')).mode & 0o100).toBe(0o100);
  });

  it('preview prints a URL and token that open a server in the sandbox', async () => {
    await toolbox(cove, sandboxId).serve('python3 -m http.server 8000 --directory /tmp/cli', 8000);
    const link = await cliJson(['preview', sandboxId, '8000']);
    expect(link).toMatchObject({ sandboxId, port: 8000, url: expect.stringMatching(/^http:\/\/8000-/), token: expect.any(String) });
    expect(link.openUrl).toBe(`${link.url}/?cove_preview_token=${encodeURIComponent(link.token)}`);
    const page = await previewFetch(link.openUrl);
    expect(page.status).toBe(200);
    expect(page.text()).toContain('blob.bin');
    expect((await previewFetch(link.url)).status).toBe(401);
  });

  it('logs prints a session command’s output, all of a session’s, and follows a running one', async () => {
    const box = toolbox(cove, sandboxId);
    const session = `cli-logs-${suffix}`;
    const call = async (p: string, body: object) => (await box.call(p, { method: 'POST', body: JSON.stringify(body) })).json();
    await call('/process/session', { sessionId: session });
    const first = await call(`/process/session/${session}/exec`, { command: 'echo out; echo err >&2' });
    const second = await call(`/process/session/${session}/exec`, { command: 'sleep 1; echo late; exit 2', runAsync: true });

    expect(await cliJson(['logs', sandboxId, session, first.cmdId])).toMatchObject({ id: first.cmdId, exitCode: 0, stdout: 'out\n', stderr: 'err\n' });

    const followed = await cli(['logs', sandboxId, session, second.cmdId, '--follow', '--json']);
    expect(followed.code, followed.stderr).toBe(0);
    const lines = followed.stdout.trim().split('\n').map((l) => JSON.parse(l));
    expect(lines).toEqual([{ command: second.cmdId, stream: 'stdout', data: 'late\n' }, { command: second.cmdId, exitCode: 2 }]);

    const all: any[] = await cliJson(['logs', sandboxId, session]);
    expect(all.map((c) => [c.command, c.exitCode, c.stdout])).toEqual([
      ['echo out; echo err >&2', 0, 'out\n'],
      ['sleep 1; echo late; exit 2', 2, 'late\n'],
    ]);
    const human = await cli(['logs', sandboxId, session]);
    expect(human.stdout).toBe('$ echo out; echo err >&2  (exit 0)\nout\n$ sleep 1; echo late; exit 2  (exit 2)\nlate\n');
    expect(human.stderr).toBe('err\n');
  });

  it('ssh prints the access with --print, and runs the real ssh client with the caller’s arguments', async () => {
    const access = await cliJson(['ssh', sandboxId, '--print']);
    expect(access).toMatchObject({ sandboxId, token: expect.any(String), sshCommand: expect.stringMatching(/^ssh -p \d+ \S+@\S+$/) });
    expect(access.command).toEqual(access.sshCommand.split(' '));

    const opts = ['-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'BatchMode=yes', '-o', 'LogLevel=ERROR'];
    const hi = await cli(['ssh', sandboxId, '--', ...opts, 'echo', 'hi']);
    expect(hi).toMatchObject({ code: 0, stdout: 'hi\n' });
    expect((await cli(['ssh', sandboxId, '--', ...opts, 'exit 7'])).code).toBe(7);
  });

  it('snapshot list, create and delete', async () => {
    const listed: any[] = await cliJson(['snapshot', 'list']);
    expect(listed.find((s) => s.name === 'cove-sandbox:latest')).toMatchObject({ general: true, state: 'active' });
    const name = `cli-snap-${suffix}`;
    expect(await cliJson(['snapshot', 'create', name, '--image', 'cove-sandbox:latest'])).toMatchObject({ name, state: 'active' });
    expect((await cliJson(['snapshot', 'ls'])).map((s: any) => s.name)).toContain(name);
    expect(await cliJson(['snapshot', 'rm', name])).toMatchObject({ deleted: true, name });
    expect((await cliJson(['snapshot', 'ls'])).map((s: any) => s.name)).not.toContain(name);
  });

  it('volume create, list and delete', async () => {
    const name = `cli-vol-${suffix}`;
    const created = await cliJson(['volume', 'create', name]);
    expect(created).toMatchObject({ name, state: 'ready' });
    expect((await cliJson(['volume', 'list'])).map((v: any) => v.id)).toContain(created.id);
    expect(await cliJson(['volume', 'delete', name])).toEqual({ deleted: true, id: created.id, name });
    expect((await cliJson(['volume', 'ls'])).map((v: any) => v.id)).not.toContain(created.id);
  });

  it('sandbox stop, start and delete wait for their state', async () => {
    expect(await cliJson(['sandbox', 'stop', sandboxId])).toMatchObject({ id: sandboxId, state: 'stopped' });
    expect((await cliError(['exec', sandboxId, '--', 'true'])).error).toMatch(new RegExp(`sandbox ${sandboxId} is stopped: start it with`));
    expect(await cliJson(['sandbox', 'start', sandboxId])).toMatchObject({ id: sandboxId, state: 'started' });
    expect((await cliJson(['exec', sandboxId, '--', 'echo', 'back'])).stdout).toBe('back\n');
    await cliJson(['sandbox', 'rm', sandboxId]);
    const after = await cli(['sandbox', 'info', sandboxId, '--json']);
    if (after.code === 0) expect(JSON.parse(after.stdout).state).toBe('destroyed');
    else expect(JSON.parse(after.stderr)).toMatchObject({ status: 404 });
  });

  it('errors: the server’s message with exit 1, usage errors with exit 2, as JSON under --json', async () => {
    expect(await cliError(['sandbox', 'info', 'no-such-sandbox'])).toMatchObject({ error: expect.stringMatching(/not found/i), status: 404 });
    expect((await cliError(['sandbox', 'create', '--cpu', 'many'], 2)).error).toMatch(/--cpu wants a whole number/);
    expect((await cliError(['cp', 'a', 'b'], 2)).error).toMatch(/both sides are local/);
    expect((await cliError(['sandbox', 'frobnicate'], 2)).error).toMatch(/unknown command/);
    const human = await cli(['sandbox', 'info', 'no-such-sandbox']);
    expect(human.code).toBe(1);
    expect(human.stderr).toMatch(/^cove: .*not found.*\(HTTP 404/i);
  });

  it('keys create, list, set and revoke under --json (the server’s data dir)', () => {
    const keys = (...args: string[]) => {
      const run = cove.cli('keys', ...args, '--json');
      expect(run.status, run.stderr).toBe(0);
      return JSON.parse(run.stdout);
    };
    const made = keys('create', '--name', `cli-${suffix}`, '--max-sandboxes', '3');
    expect(made).toMatchObject({ key: expect.stringMatching(/^cove_/), name: `cli-${suffix}`, admin: false, limits: { maxSandboxes: 3 } });
    expect(keys('list')).toContainEqual(expect.objectContaining({ id: made.id, name: `cli-${suffix}`, limits: { maxSandboxes: 3 } }));
    expect(keys('set', made.id, '--max-cpu', '2')).toMatchObject({ id: made.id, limits: { maxSandboxes: 3, maxCpu: 2 } });
    expect(keys('revoke', made.id)).toMatchObject({ id: made.id, revokedAt: expect.any(String) });
    expect(JSON.stringify(keys('list'))).not.toContain(made.key);
  });

  it('logout forgets the key; commands then say to log in', async () => {
    expect(await cliJson(['logout'])).toEqual({ loggedOut: true, configPath: configFile });
    expect(JSON.parse(readFileSync(configFile, 'utf8'))).toEqual({ apiUrl: cove.apiUrl });
    expect(statSync(configFile).mode & 0o777).toBe(0o600);
    expect((await cliError(['volume', 'list'])).error).toMatch(/run `cove login`/);
  });
});
