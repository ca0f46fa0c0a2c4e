/**
 * Conformance in the deployment users run: a real `cove serve`, the default image, and the published Daytona SDK
 * (0.218, and 0.143 where its flows differ) drive every toolbox family: files, exec, code-run, sessions, PTY, git,
 * LSP, file watch, ports, preview and SSH. The agent's own tests run it on the host; this file proves the same
 * capabilities inside the image, as root-started agent and `cove` user, with the image's own tools.
 */
import { Daytona as Daytona0143 } from 'daytona-sdk-0143';
import { DaytonaNotFoundError, type Sandbox } from '@daytonaio/sdk';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../helpers/agent';
import { startCove, type TestCove } from '../helpers/cove';
import { seedRepositoryCommand } from '../helpers/git-server';
import { previewFetch, toolbox } from '../helpers/preview';
import { sshCommand, sshPortOf } from '../helpers/ssh-client';

let cove: TestCove;
let sshPort: number;
beforeAll(async () => {
  process.env.COVE_SSH_PORT = '0';
  cove = await startCove({ pool: 2 });
  sshPort = sshPortOf(cove);
}, 20 * 60_000);
afterAll(async () => {
  await cove?.destroy();
});

const HOME = '/home/cove';
const text = (s: string) => Buffer.from(s);

describe('SDK 0.218 in the default image', () => {
  let py: Sandbox;
  let ts: Sandbox;
  let js: Sandbox;

  beforeAll(async () => {
    const daytona = cove.daytona();
    [py, ts, js] = await Promise.all([
      daytona.create({ language: 'python' }),
      daytona.create({ language: 'typescript' }),
      daytona.create({ language: 'javascript' }),
    ]);
  }, 180_000);
  afterAll(async () => {
    await Promise.all([py, ts, js].filter(Boolean).map((s) => s.delete()));
  });

  it('files: upload, details, list, find, search, replace, move, permissions, download, delete', async () => {
    await py.fs.createFolder(`${HOME}/f`, '755');
    await py.fs.uploadFiles([
      { source: text('alpha\nneedle one\n'), destination: `${HOME}/f/a.txt` },
      { source: text('needle two\n'), destination: `${HOME}/f/b.md` },
    ]);
    expect((await py.fs.getFileDetails(`${HOME}/f/a.txt`)).size).toBe(17);
    expect((await py.fs.listFiles(`${HOME}/f`)).map((f) => f.name).sort()).toEqual(['a.txt', 'b.md']);
    const found = await py.fs.findFiles(`${HOME}/f`, 'needle');
    expect(found.map((m) => m.content).sort()).toEqual(['needle one', 'needle two']);
    expect((await py.fs.searchFiles(`${HOME}/f`, '*.md')).files).toEqual([`${HOME}/f/b.md`]);
    const replaced = await py.fs.replaceInFiles([`${HOME}/f/a.txt`], 'alpha', 'omega');
    expect(replaced[0].success).toBe(true);
    await py.fs.moveFiles(`${HOME}/f/a.txt`, `${HOME}/f/c.txt`);
    await py.fs.setFilePermissions(`${HOME}/f/c.txt`, { mode: '600' });
    expect((await py.fs.getFileDetails(`${HOME}/f/c.txt`)).permissions).toBe('0600');
    expect((await py.fs.downloadFile(`${HOME}/f/c.txt`)).toString()).toBe('omega\nneedle one\n');
    await py.fs.deleteFile(`${HOME}/f`, true);
    // A missing path says "not found" (LangChain's provider reads "directory" as a directory error).
    const missing = await py.fs.getFileDetails(`${HOME}/f`).catch((e: Error) => e);
    expect(missing).toBeInstanceOf(DaytonaNotFoundError);
    expect((missing as Error).message).toMatch(/not found/i);
    expect((missing as Error).message).not.toMatch(/directory/i);
  });

  it('exec: cwd, env, exit code and timeout, as the sandbox user', async () => {
    const res = await py.process.executeCommand('pwd; echo "$X"; id -un; exit 4', '/tmp', { X: 'y' });
    expect(res).toMatchObject({ exitCode: 4, result: '/tmp\ny\ncove\n' });
    const started = Date.now();
    const slow = await py.process.executeCommand('sleep 30', undefined, undefined, 1).catch((e: Error) => e);
    expect(Date.now() - started).toBeLessThan(15_000);
    expect((slow as Error).message).toMatch(/did not finish within 1 s/);
  });

  it('code-run: python, javascript and typescript, with argv', async () => {
    expect((await py.process.codeRun('import sys\nprint(sum(range(10)), sys.argv[1:])', { argv: ['a', 'b'] })).result).toBe("45 ['a', 'b']\n");
    expect((await js.process.codeRun('console.log([1, 2, 3].map((x) => x * 2).join(","))')).result).toBe('2,4,6\n');
    const t = await ts.process.codeRun('const n: number = 21;\nconsole.log(n * 2);');
    expect(t).toMatchObject({ exitCode: 0, result: '42\n' });
    expect((await py.process.codeRun('raise SystemExit(3)')).exitCode).toBe(3);
  });

  it('code-run: matplotlib figures come back as artifacts.charts', async () => {
    const res = await py.process.codeRun('import matplotlib.pyplot as plt\nplt.bar(["a", "b"], [3, 5])\nplt.title("Sales")\nplt.show()\nprint("ok")');
    expect(res.result).toBe('ok\n');
    const [chart] = res.artifacts!.charts!;
    expect(chart).toMatchObject({ type: 'bar', title: 'Sales' });
    expect(Buffer.from(chart.png!, 'base64').subarray(1, 4).toString()).toBe('PNG');
  });

  it('code interpreter: contexts keep state, stream output, report errors and time out without losing the context', async () => {
    const ci = py.codeInterpreter;
    const ctx = await ci.createContext('/tmp');
    let streamed = '';
    const first = await ci.runCode('import os\nx = 41\nprint(os.getcwd(), flush=True)', { context: ctx, onStdout: (m) => void (streamed += m.output) });
    expect([first.stdout, streamed]).toEqual(['/tmp\n', '/tmp\n']);
    expect((await ci.runCode('x += 1\nprint(x)', { context: ctx })).stdout).toBe('42\n');
    const failed = await ci.runCode('1 / 0', { context: ctx });
    expect(failed.error).toMatchObject({ name: 'ZeroDivisionError', value: 'division by zero' });
    await expect(ci.runCode('import time\ntime.sleep(30)', { context: ctx, timeout: 1 })).rejects.toThrow(/timed out/i);
    expect((await ci.runCode('print(x)', { context: ctx })).stdout).toBe('42\n');
    expect((await ci.runCode('print(1 + 1)')).stdout).toBe('2\n');
    expect((await ci.listContexts()).map((c) => c.id)).toContain(ctx.id);
    await ci.deleteContext(ctx);
    expect((await ci.listContexts()).map((c) => c.id)).not.toContain(ctx.id);
  }, 60_000);

  it('sessions: state between commands, split output, logs without and with callbacks', async () => {
    await py.process.createSession('s');
    await py.process.executeSessionCommand('s', { command: 'cd /tmp && export K=v' });
    const sync = await py.process.executeSessionCommand('s', { command: 'echo "$K $(pwd)"; echo err >&2' });
    expect(sync).toMatchObject({ exitCode: 0, stdout: 'v /tmp\n', stderr: 'err\n' });
    const cmd = await py.process.executeSessionCommand('s', { command: 'for i in 1 2; do echo o$i; echo e$i >&2; done', runAsync: true });
    let out = '';
    let err = '';
    await py.process.getSessionCommandLogs('s', cmd.cmdId!, (s) => (out += s), (s) => (err += s));
    expect([out, err]).toEqual(['o1\no2\n', 'e1\ne2\n']);
    const logs = await py.process.getSessionCommandLogs('s', cmd.cmdId!);
    expect(logs).toMatchObject({ stdout: 'o1\no2\n', stderr: 'e1\ne2\n' });
    expect((await py.process.listSessions()).map((s) => s.sessionId)).toContain('s');
    await py.process.deleteSession('s');
  });

  it('PTY: create-connect, size, input, exit code', async () => {
    let out = '';
    const pty = await ts.process.createPty({ id: 'conf', cols: 100, rows: 30, onData: (d) => void (out += new TextDecoder().decode(d)) });
    await pty.waitForConnection();
    await pty.sendInput('stty size; echo "sum $((20+1))"\n');
    await waitFor(() => out.includes('30 100') && out.includes('sum 21'), 10_000, 'PTY output');
    await pty.resize(120, 40);
    await pty.sendInput('stty size; exit 5\n');
    expect((await pty.wait()).exitCode).toBe(5);
    await pty.disconnect();
  });

  it('git: clone, branch, add, commit, push, pull and status against a repository in the sandbox', async () => {
    const seed = seedRepositoryCommand(HOME);
    expect((await py.process.executeCommand(seed)).exitCode).toBe(0);
    await py.git.clone(`file://${HOME}/origin.git`, `${HOME}/repo`);
    expect((await py.git.status(`${HOME}/repo`)).currentBranch).toBe('main');
    await py.git.createBranch(`${HOME}/repo`, 'feature');
    await py.git.checkoutBranch(`${HOME}/repo`, 'feature');
    await py.fs.uploadFile(text('two\n'), `${HOME}/repo/b.txt`);
    await py.git.add(`${HOME}/repo`, ['b.txt']);
    const status = await py.git.status(`${HOME}/repo`);
    expect(status.fileStatus.map((f) => f.name)).toEqual(['b.txt']);
    const { sha } = await py.git.commit(`${HOME}/repo`, 'add b', 'Ada', 'ada@example.com');
    expect(sha).toMatch(/^[0-9a-f]{40}$/);
    await py.git.push(`${HOME}/repo`);
    const pushed = await py.process.executeCommand(`git --git-dir=${HOME}/origin.git log --format=%s feature`);
    expect(pushed.result).toBe('add b\nseed\n');
    await py.git.checkoutBranch(`${HOME}/repo`, 'main');
    expect((await py.process.executeCommand(`cd ${HOME}/seed && echo three > c.txt && git add c.txt && git -c user.name=S -c user.email=s@e commit -q -m c && git push -q ${HOME}/origin.git main`)).exitCode).toBe(0);
    await py.git.pull(`${HOME}/repo`);
    expect((await py.fs.downloadFile(`${HOME}/repo/c.txt`)).toString()).toBe('three\n');
    expect((await py.git.branches(`${HOME}/repo`)).branches).toEqual(expect.arrayContaining(['main', 'feature']));
  });

  it('git: init, user and config, remotes, reset and restore', async () => {
    const repo = `${HOME}/fresh`;
    await py.git.init(repo, false, 'trunk');
    await py.git.configureUser('Grace', 'grace@example.com', 'local', repo);
    expect(await py.git.getConfig('user.name', 'local', repo)).toBe('Grace');
    await py.git.setConfig('core.autocrlf', 'input', 'local', repo);
    expect(await py.git.getConfig('core.autocrlf', 'local', repo)).toBe('input');
    await py.git.remoteAdd(repo, 'up', `file://${HOME}/origin.git`);
    expect(await py.git.remoteGet(repo, 'up')).toBe(`file://${HOME}/origin.git`);
    expect((await py.git.remotes(repo)).remotes.map((r) => r.name)).toEqual(['up']);
    await py.fs.uploadFile(text('v1\n'), `${repo}/n.txt`);
    await py.git.add(repo, ['n.txt']);
    const first = await py.git.commit(repo, 'one', 'Grace', 'grace@example.com');
    await py.fs.uploadFile(text('v2\n'), `${repo}/n.txt`);
    await py.git.restore(repo, ['n.txt']);
    expect((await py.fs.downloadFile(`${repo}/n.txt`)).toString()).toBe('v1\n');
    await py.fs.uploadFile(text('v3\n'), `${repo}/n.txt`);
    await py.git.add(repo, ['n.txt']);
    await py.git.commit(repo, 'two', 'Grace', 'grace@example.com');
    await py.git.reset(repo, 'hard', first.sha);
    expect((await py.fs.downloadFile(`${repo}/n.txt`)).toString()).toBe('v1\n');
    expect((await py.git.status(repo)).currentBranch).toBe('trunk');
  });

  it('LSP: typescript, javascript and python completions and symbols; hover, definition and diagnostics', async () => {
    const cases = [
      // `at`: where `greet` is on line 0; `use`: where `name` is used on line 1.
      { box: ts, lang: 'typescript', file: 'main.ts', code: 'export function greet(name: string) {\n  return name;\n}\nconst s = "x";\ns.\n', member: 'toUpperCase', at: 17, use: 10 },
      { box: js, lang: 'javascript', file: 'main.js', code: 'function greet(name) {\n  return name;\n}\nconst s = "x";\ns.\n', member: 'toUpperCase', at: 10, use: 10 },
      { box: py, lang: 'python', file: 'main.py', code: 'def greet(name):\n    return name\n\ns = "x"\ns.\n', member: 'upper', at: 5, use: 12 },
    ] as const;
    for (const c of cases) {
      const dir = `${HOME}/lsp-${c.lang}`;
      const file = `${dir}/${c.file}`;
      await c.box.fs.createFolder(dir, '755');
      await c.box.fs.uploadFile(text(c.code), file);
      const lsp = await c.box.createLspServer(c.lang, dir);
      await lsp.start();
      await lsp.didOpen(file);
      const symbols = await lsp.documentSymbols(file);
      expect(symbols.map((x) => x.name), c.lang).toContain('greet');
      const completions = await lsp.completions(file, { line: 4, character: 2 });
      expect(completions.items.map((i) => i.label), c.lang).toContain(c.member);
      expect((await lsp.sandboxSymbols('greet')).map((x) => x.name), c.lang).toContain('greet');
      // Cove's own LSP routes, through the same toolbox.
      const box = toolbox(cove, c.box.id);
      const at = { languageId: c.lang, pathToProject: dir, uri: `file://${file}` };
      const hover = await (await box.call('/lsp/hover', { method: 'POST', body: JSON.stringify({ ...at, position: { line: 0, character: c.at } }) })).json();
      expect(JSON.stringify(hover.contents), c.lang).toMatch(/greet/);
      const definition = await (await box.call('/lsp/definition', { method: 'POST', body: JSON.stringify({ ...at, position: { line: 1, character: c.use } }) })).json();
      expect(definition[0]?.range.start.line, c.lang).toBe(0);
      const diagnostics = await waitFor(async () => {
        const d = await (await box.call(`/lsp/diagnostics?${new URLSearchParams(at)}`)).json();
        return d.diagnostics.length ? d : undefined;
      }, 20_000, `${c.lang} diagnostics`);
      expect(diagnostics.diagnostics.length, c.lang).toBeGreaterThan(0);
      await lsp.stop();
    }
  }, 120_000);

  it('file watch: events for changes under a folder, over the toolbox WebSocket', async () => {
    await py.fs.createFolder(`${HOME}/w`, '755');
    const ws = new WebSocket(`${cove.url.replace('http', 'ws')}/toolbox/${py.id}/files/watch?path=${encodeURIComponent(`${HOME}/w`)}`, {
      headers: { Authorization: `Bearer ${cove.apiKey}` },
    });
    const messages: { type: string; event?: string; path?: string }[] = [];
    ws.on('message', (m) => messages.push(JSON.parse(m.toString())));
    await waitFor(() => messages.some((m) => m.type === 'ready'), 10_000, 'watch ready');
    await py.fs.uploadFile(text('x'), `${HOME}/w/new.txt`);
    await waitFor(() => messages.some((m) => m.type === 'event' && m.path === `${HOME}/w/new.txt`), 10_000, 'add event');
    ws.close();
  });

  it('ports and preview: a server in the sandbox is listed and reached through its preview URL', async () => {
    const box = toolbox(cove, js.id);
    await box.upload(`${HOME}/srv.js`, 'require("http").createServer((q, r) => r.end("hi " + q.url)).listen(8123);\n');
    const session = await box.serve(`node ${HOME}/srv.js`, 8123);
    const ports = await (await box.call('/port')).json();
    expect(ports.ports).toContain(8123);
    const link = await js.getPreviewLink(8123);
    const res = await previewFetch(`${link.url}/x?y=1`, { headers: { 'X-Daytona-Preview-Token': link.token } });
    expect([res.status, res.text()]).toEqual([200, 'hi /x?y=1']);
    expect((await previewFetch(`${link.url}/`)).status).toBe(401);
    await box.stop(session);
  });

  it('SSH: the OpenSSH client runs a command with an access token', async () => {
    const access = await py.createSshAccess(5);
    const res = await sshCommand(sshPort, access.token, 'id -un; echo $((6*7))');
    expect([res.code, res.out]).toEqual([0, 'cove\n42\n']);
    await py.revokeSshAccess(access.token);
  });
});

describe('SDK 0.143 in the default image, where its flows differ', () => {
  // 0.143's types come from its own package; its calls are the ones checked here.
  let daytona: Daytona0143;
  let py: Awaited<ReturnType<Daytona0143['create']>>;
  let ts: Awaited<ReturnType<Daytona0143['create']>>;

  beforeAll(async () => {
    daytona = new Daytona0143({ apiKey: cove.apiKey, apiUrl: cove.apiUrl, target: 'local' });
    [py, ts] = await Promise.all([daytona.create({ language: 'python' }), daytona.create({ language: 'typescript' })]);
  }, 180_000);
  afterAll(async () => {
    await Promise.all([py, ts].filter(Boolean).map((s) => s.delete()));
  });

  it('lists sandboxes by numbered pages and finds one by labels', async () => {
    const page = await daytona.list({ 'code-toolbox-language': 'typescript' });
    expect(page.items.map((s) => s.id)).toContain(ts.id);
    expect(page.items.map((s) => s.id)).not.toContain(py.id);
    expect(page).toMatchObject({ page: 1, total: page.items.length, totalPages: 1 });
    expect((await daytona.findOne({ labels: { 'code-toolbox-language': 'python' } })).id).toBe(py.id);
    const refused = await cove.api('/sandbox/paginated?snapshots=x');
    expect(refused.status).toBe(400);
    expect(await refused.text()).toMatch(/snapshots/);
  });

  it('code-run builds its own commands: python, and TypeScript through npx ts-node in the image', async () => {
    expect((await py.process.codeRun('print(6 * 7)')).result).toBe('42\n');
    const t = await ts.process.codeRun('const n: number = 20;\nconsole.log(n + 1);');
    expect(t).toMatchObject({ exitCode: 0 });
    expect(t.result.trim()).toBe('21');
  }, 60_000);

  it('session commands come back with stdout and stderr apart, with and without callbacks', async () => {
    await py.process.createSession('old');
    const sync = await py.process.executeSessionCommand('old', { command: 'echo out; echo err >&2' });
    expect(sync).toMatchObject({ exitCode: 0, stdout: 'out\n', stderr: 'err\n' });
    const cmd = await py.process.executeSessionCommand('old', { command: 'echo a; echo b >&2', runAsync: true });
    await waitFor(async () => (await py.process.getSessionCommand('old', cmd.cmdId!)).exitCode === 0, 10_000, 'command end');
    const logs = await py.process.getSessionCommandLogs('old', cmd.cmdId!);
    expect(logs).toMatchObject({ stdout: 'a\n', stderr: 'b\n' });
    let out = '';
    let err = '';
    await py.process.getSessionCommandLogs('old', cmd.cmdId!, (s: string) => (out += s), (s: string) => (err += s));
    expect([out, err]).toEqual(['a\n', 'b\n']);
  });

  it('PTY: create, then connect', async () => {
    let out = '';
    const pty = await ts.process.createPty({ id: 'old', cols: 90, rows: 20, onData: (d: Uint8Array) => void (out += new TextDecoder().decode(d)) });
    await pty.waitForConnection();
    await pty.sendInput('stty size; exit 2\n');
    expect((await pty.wait()).exitCode).toBe(2);
    expect(out).toContain('20 90');
  });

  it('files and LSP', async () => {
    await ts.fs.createFolder(`${HOME}/p`, '755');
    await ts.fs.uploadFile(Buffer.from('export const answer = 42;\nanswer.\n'), `${HOME}/p/i.ts`);
    expect((await ts.fs.downloadFile(`${HOME}/p/i.ts`)).toString()).toContain('answer');
    const lsp = await ts.createLspServer('typescript', `${HOME}/p`);
    await lsp.start();
    await lsp.didOpen(`${HOME}/p/i.ts`);
    expect((await lsp.documentSymbols(`${HOME}/p/i.ts`)).map((s: { name: string }) => s.name)).toContain('answer');
    expect((await lsp.completions(`${HOME}/p/i.ts`, { line: 1, character: 7 })).items.map((i: { label: string }) => i.label)).toContain('toFixed');
    await lsp.stop();
  });
});
