/**
 * Acceptance: the published Daytona SDK, with apiUrl at a real `cove serve`, drives real sandboxes end to end.
 */
import type { Sandbox } from '@daytonaio/sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../helpers/agent';
import { startCove, type TestCove } from '../helpers/cove';

let cove: TestCove;
beforeAll(async () => {
  cove = await startCove({ pool: 2 });
}, 20 * 60_000);
afterAll(async () => {
  await cove?.destroy();
});

describe('the Daytona SDK against Cove', () => {
  let ts: Sandbox;
  let py: Sandbox;

  it('creates typescript and python sandboxes, started and labelled', async () => {
    const daytona = cove.daytona();
    [ts, py] = await Promise.all([daytona.create({ language: 'typescript' }), daytona.create({ language: 'python' })]);
    expect(ts.state).toBe('started');
    expect(ts.labels['code-toolbox-language']).toBe('typescript');
    expect(py.labels['code-toolbox-language']).toBe('python');
    expect((await daytona.get(ts.id)).id).toBe(ts.id);
  });

  it("lists with Daytona's filters, sort and cursor pages, as the SDK iterates them", async () => {
    const daytona = cove.daytona();
    const all = async (query: Parameters<typeof daytona.list>[0]) => {
      const out: Sandbox[] = [];
      for await (const s of daytona.list(query)) out.push(s);
      return out;
    };
    const python = (await all({ labels: { 'code-toolbox-language': 'python' } })).map((s) => s.id);
    expect(python).toContain(py.id);
    expect(python).not.toContain(ts.id);
    // One sandbox per page: the SDK follows the cursors through every page, in name order.
    const byName = await all({ sort: 'name', order: 'asc', limit: 1 });
    const names = byName.map((s) => s.name.toLowerCase());
    expect(names).toEqual([...names].sort());
    expect(byName.map((s) => s.id)).toEqual(expect.arrayContaining([ts.id, py.id]));
    expect((await all({ states: ['stopped'], id: ts.id })).length).toBe(0);
    expect((await all({ states: ['started'], id: ts.id.slice(0, 8) })).map((s) => s.id)).toEqual([ts.id]);
    // What Cove cannot filter by is refused by name, not ignored.
    for (const refused of ['sandboxClasses=small', 'autoDestroyAtAfter=2026-01-01T00:00:00Z', 'sort=gpu']) {
      const res = await cove.api(`/sandbox?${refused}`);
      expect(res.status, refused).toBe(400);
      expect((await res.json()).message).toContain(refused.split('=')[0]);
    }
  });

  it('executes commands with cwd and env, as a non-root user', async () => {
    await ts.fs.createFolder('/home/cove/work', '755');
    const res = await ts.process.executeCommand('pwd; echo "$GREETING"; id -un; exit 3', '/home/cove/work', { GREETING: 'hello' });
    expect(res.exitCode).toBe(3);
    expect(res.result).toBe('/home/cove/work\nhello\ncove\n');
  });

  it('runs code in typescript and python', async () => {
    const t = await ts.process.codeRun('const xs: number[] = [1, 2, 3];\nconsole.log(xs.map((x) => x * 2).join(","));');
    expect(t.exitCode).toBe(0);
    expect(t.result).toBe('2,4,6\n');
    const p = await py.process.codeRun('import sys\nprint(sys.version_info[0], sum(range(10)))');
    expect(p.result).toBe('3 45\n');
  });

  it('gives TypeScript symbols and completions through LSP in the default image, and the server stays up', async () => {
    const file = '/home/cove/proj/index.ts';
    await ts.fs.createFolder('/home/cove/proj', '755');
    await ts.fs.uploadFile(Buffer.from('export function greet(name: string) {\n  return name.toUpperCase();\n}\nconst s = "x";\ns.\n'), file);
    const lsp = await ts.createLspServer('typescript', '/home/cove/proj');
    await lsp.start();
    await lsp.didOpen(file);
    // typescript-language-server used to exit about 3 s after initialize in the image (LSP_SERVER_CRASHED).
    await new Promise((r) => setTimeout(r, 4_000));
    const symbols = await lsp.documentSymbols(file);
    expect(symbols.map((x) => x.name)).toContain('greet');
    const completions = await lsp.completions(file, { line: 4, character: 2 });
    expect(completions.items.map((i) => i.label)).toContain('toUpperCase');
    await lsp.stop();
  });

  it('uploads, lists and downloads files', async () => {
    const big = Buffer.alloc(3 * 1024 * 1024, 7);
    await py.fs.uploadFile(Buffer.from('print("from a file")\n'), '/home/cove/app.py');
    await py.fs.uploadFile(big, '/home/cove/data.bin');
    const names = (await py.fs.listFiles('/home/cove')).map((f) => f.name);
    expect(names).toEqual(expect.arrayContaining(['app.py', 'data.bin']));
    expect((await py.fs.downloadFile('/home/cove/data.bin')).equals(big)).toBe(true);
    expect((await py.process.executeCommand('python3 app.py', '/home/cove')).result).toBe('from a file\n');
  });

  it('runs async session commands and streams their logs', async () => {
    await py.process.createSession('build');
    await py.process.executeSessionCommand('build', { command: 'export STAGE=two && cd /tmp' });
    const cmd = await py.process.executeSessionCommand('build', {
      command: 'for i in 1 2 3; do echo "$STAGE $i"; echo "warn $i" >&2; sleep 0.05; done; pwd',
      runAsync: true,
    });
    let stdout = '';
    let stderr = '';
    await py.process.getSessionCommandLogs('build', cmd.cmdId!, (s) => (stdout += s), (s) => (stderr += s));
    expect(stdout).toBe('two 1\ntwo 2\ntwo 3\n/tmp\n');
    expect(stderr).toBe('warn 1\nwarn 2\nwarn 3\n');
    expect((await py.process.getSessionCommand('build', cmd.cmdId!)).exitCode).toBe(0);
  });

  it('drives a PTY to its exit code', async () => {
    let out = '';
    const pty = await ts.process.createPty({ id: 'term', cols: 120, rows: 40, onData: (d) => {
        out += new TextDecoder().decode(d);
      },
    });
    await pty.waitForConnection();
    await pty.sendInput('stty size; echo "ready $((40+2))"\n');
    await waitFor(() => out.includes('ready 42') && out.includes('40 120'), 10_000, 'PTY output');
    await pty.sendInput('exit 9\n');
    expect((await pty.wait()).exitCode).toBe(9);
    await pty.disconnect();
  });

  it('stops and starts a sandbox with its files intact', async () => {
    await ts.fs.uploadFile(Buffer.from('survives'), '/home/cove/keep.txt');
    await ts.stop();
    expect(ts.state).toBe('stopped');
    const blocked = await fetch(`${ts.toolboxProxyUrl}/${ts.id}/version`, { headers: { Authorization: `Bearer ${cove.apiKey}` } });
    expect(blocked.status).toBe(409);
    await ts.start();
    expect(ts.state).toBe('started');
    expect((await ts.fs.downloadFile('/home/cove/keep.txt')).toString()).toBe('survives');
  });

  it('deletes sandboxes and their containers; a deleted one answers as destroyed for a while, as in Daytona', async () => {
    await ts.delete();
    await py.delete();
    const gone = await cove.api(`/sandbox/${ts.id}`);
    expect(gone.status).toBe(200);
    expect((await gone.json()).state).toBe('destroyed');
    expect((await cove.daytona().get(py.id)).state).toBe('destroyed');
    expect(cove.containers(`dev.cove.sandbox=${ts.id}`)).toEqual([]);
    // Only the GET: every other operation on a deleted sandbox is a 404.
    expect((await cove.api(`/sandbox/${ts.id}/start`, { method: 'POST' })).status).toBe(404);
  });

  it('creates 20 sandboxes at once, runs a command in each, and deletes them all', async () => {
    const daytona = cove.daytona();
    const before = new Set(cove.containers());
    const sandboxes = await Promise.all(Array.from({ length: 20 }, () => daytona.create({ language: 'python' })));
    expect(new Set(sandboxes.map((s) => s.id)).size).toBe(20);
    const results = await Promise.all(sandboxes.map((s, i) => s.process.executeCommand(`echo sandbox-${i}`)));
    results.forEach((r, i) => expect(r.result).toBe(`sandbox-${i}\n`));
    await Promise.all(sandboxes.map((s) => s.delete()));
    const ids = new Set(sandboxes.map((s) => s.id));
    const { items } = await (await cove.api('/sandbox')).json();
    expect(items.filter((s: { id: string }) => ids.has(s.id))).toEqual([]);
    // Only warm-pool members (at most the pool size) remain: every sandbox container is gone.
    expect(cove.containers().length).toBeLessThanOrEqual(2);
    for (const s of sandboxes) expect(cove.containers(`dev.cove.sandbox=${s.id}`)).toEqual([]);
  }, 180_000);
});
