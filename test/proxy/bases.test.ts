/**
 * The agent is injected into any image: for each base of test/helpers/bases.ts (busybox only; musl and busybox as in
 * Alpine; Debian minbase; python:*-like with a numeric USER, a WORKDIR and a CMD; node:*-like with git, an
 * ENTRYPOINT and a CMD), a snapshot built from a declarative image (`Image.base(…).runCommands(…)`) through a real
 * `cove serve` and the published SDK, a sandbox from it, and every toolbox family driven through the SDK: files,
 * commands and code-run, sessions, PTYs, git, LSP, the interpreter and computer use. Where the image lacks what a
 * family needs (git, python, a language server), the call fails with a 4xx naming it.
 */
import { randomBytes } from 'node:crypto';
import { Image, type Sandbox } from '@daytonaio/sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../helpers/agent';
import { ensureTestBases, TEST_BASES, type TestBase } from '../helpers/bases';
import { failure, startCove, type TestCove } from '../helpers/cove';

const suffix = randomBytes(3).toString('hex');
let cove: TestCove;
/** Each base's sandbox, or why it could not be made. */
const made = new Map<string, Promise<Sandbox>>();

beforeAll(async () => {
  await ensureTestBases();
  cove = await startCove({ pool: 0 });
  const daytona = cove.daytona();
  // Snapshots built and sandboxes created at once: each base's first test reports its own failure.
  for (const base of TEST_BASES) {
    const name = `base-${base.key}-${suffix}`;
    const sandbox = (async () => {
      const image = Image.base(base.image).runCommands(`echo built-${base.key} > /tmp/built`);
      const snapshot = await daytona.snapshot.create({ name, image });
      expect(snapshot.state).toBe('active');
      return daytona.create({ snapshot: name, language: base.has.python ? 'python' : 'typescript' });
    })();
    sandbox.catch(() => {}); // awaited by the tests
    made.set(base.key, sandbox);
  }
  await Promise.allSettled(made.values());
}, 20 * 60_000);

afterAll(async () => {
  const daytona = cove?.daytona();
  for (const [key, sandbox] of made) {
    await sandbox.then((s) => s.delete()).catch(() => {});
    await daytona?.snapshot.delete(`base-${key}-${suffix}`).catch(() => {});
  }
  await cove?.destroy();
}, 120_000);


/** POST /process/code-run through the toolbox proxy, in any language. */
async function codeRun(sb: Sandbox, language: string, code: string): Promise<{ status: number; text: string; json?: unknown }> {
  const res = await fetch(`${sb.toolboxProxyUrl}/${sb.id}/process/code-run`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${cove.apiKey}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ language, code }),
  });
  const text = await res.text();
  return { status: res.status, text, json: res.ok ? JSON.parse(text) : undefined };
}

describe.each(TEST_BASES.map((b) => [b.key, b] as const))('%s', (key, base: TestBase) => {
  let sb: Sandbox;

  it('builds a snapshot of the declarative image and starts a sandbox whose user code runs as its user', async () => {
    sb = await made.get(key)!;
    expect(sb.state).toBe('started');
    const res = await sb.process.executeCommand('cat /tmp/built; id -un; pwd; echo "$HOME"');
    expect(res).toMatchObject({ exitCode: 0, result: `built-${key}\n${base.user}\n${base.workdir}\n${base.home}\n` });
    // What the image is, seen from inside the sandbox.
    const probe = async (command: string) => (await sb.process.executeCommand(command)).result;
    if (key === 'busybox' || key === 'musl') {
      expect(await probe('ls /lib/libc.so.6 /lib/x86_64-linux-gnu 2>&1; readlink /bin/sh')).toMatch(/No such file[\s\S]*No such file[\s\S]*\/bin\/busybox\n$/);
    }
    // Cove's account was added to an image that had no /home: the folder is open to it.
    if (key === 'busybox') expect(await probe('stat -c %a /home')).toBe('755\n');
    if (key === 'musl') expect(await probe('/lib/ld-musl-x86_64.so.1 2>&1 | head -1')).toBe('musl libc (x86_64)\n');
    if (key === 'node') {
      // The image's own node for user commands; the agent's bundled one is not on the user's PATH.
      expect(await probe('node -e "console.log(process.version)"')).toMatch(/^v18\./);
    }
    if (key === 'python') {
      // USER 1000 (a bare uid) runs as its account; the image's CMD runs as the entrypoint session, as that user.
      const session = await sb.process.getEntrypointSession();
      expect(session.commands?.[0]?.command).toMatch(/python3.*http\.server.*8080/);
      const get = 'import urllib.request; print(urllib.request.urlopen("http://127.0.0.1:8080/").status)';
      await waitFor(async () => (await probe(`python3 -c '${get}' 2>/dev/null`)) === '200\n', 15_000, 'the image CMD (http.server on 8080)');
      const owner = `for p in /proc/[0-9]*; do tr '\\0' ' ' < $p/cmdline 2>/dev/null | grep -q '^python3 -m http[.]server 8080' && stat -c %U $p; done`;
      expect(await probe(owner)).toBe('app\n');
    }
    if (key === 'node') {
      const session = await sb.process.getEntrypointSession();
      expect(session.commands?.[0]?.command).toBe("docker-entrypoint.sh node");
    }
  });

  it('files: upload, download, list, find, replace, permissions', async () => {
    const dir = `${base.home}/fs`;
    await sb.fs.createFolder(dir, '755');
    const big = Buffer.alloc(512 * 1024, 3);
    await sb.fs.uploadFile(Buffer.from('alpha\nneedle one\n'), `${dir}/a.txt`);
    await sb.fs.uploadFile(big, `${dir}/b.bin`);
    expect((await sb.fs.downloadFile(`${dir}/b.bin`)).equals(big)).toBe(true);
    expect((await sb.fs.listFiles(dir)).map((f) => f.name).sort()).toEqual(['a.txt', 'b.bin']);
    const found = await sb.fs.findFiles(dir, 'needle');
    expect(found).toEqual([expect.objectContaining({ file: `${dir}/a.txt`, line: 2, content: 'needle one' })]);
    expect((await sb.fs.searchFiles(dir, '*.txt')).files).toEqual([`${dir}/a.txt`]);
    expect(await sb.fs.replaceInFiles([`${dir}/a.txt`], 'needle', 'pin')).toEqual([expect.objectContaining({ file: `${dir}/a.txt`, success: true })]);
    expect((await sb.fs.downloadFile(`${dir}/a.txt`)).toString()).toBe('alpha\npin one\n');
    await sb.fs.setFilePermissions(`${dir}/a.txt`, { mode: '600' });
    const details = await sb.fs.getFileDetails(`${dir}/a.txt`);
    expect(details).toMatchObject({ owner: base.user, permissions: '0600' });
    // The user itself reads what the agent wrote for it.
    expect((await sb.process.executeCommand(`cat ${dir}/a.txt`)).result).toBe('alpha\npin one\n');
  });

  it('commands and code-run: cwd and env; JavaScript and TypeScript with the bundled node; Python where it is', async () => {
    const res = await sb.process.executeCommand('pwd; echo "$GREETING"; exit 4', '/tmp', { GREETING: 'hi' });
    expect(res).toMatchObject({ exitCode: 4, result: '/tmp\nhi\n' });
    // The SDK runs code in the sandbox's language (python where the image has it); the toolbox route takes any.
    if (base.has.python) {
      expect(await sb.process.codeRun('import sys\nprint(sys.version_info[0] * 14)')).toMatchObject({ exitCode: 0, result: '42\n' });
      expect(await codeRun(sb, 'typescript', 'const n: number = 6 * 7;\nconsole.log(`ts ${n}`);')).toMatchObject({ status: 200, json: { exitCode: 0, result: 'ts 42\n' } });
    } else {
      expect(await sb.process.codeRun('const n: number = 6 * 7;\nconsole.log(`ts ${n}`);')).toMatchObject({ exitCode: 0, result: 'ts 42\n' });
      const py = await codeRun(sb, 'python', 'print(1)');
      expect(py.status, py.text).toBeGreaterThanOrEqual(400);
      expect(py.status, py.text).toBeLessThan(500);
      expect(py.text).toMatch(/python3/);
    }
    expect(await codeRun(sb, 'javascript', 'console.log(6 * 7)')).toMatchObject({ status: 200, json: { exitCode: 0, result: '42\n' } });
  });

  it('sessions: state between commands, async commands and their streamed logs', async () => {
    await sb.process.createSession('s');
    await sb.process.executeSessionCommand('s', { command: 'export STAGE=two && cd /tmp' });
    const cmd = await sb.process.executeSessionCommand('s', { command: 'for i in 1 2; do echo "$STAGE $i"; echo "warn $i" >&2; done; pwd', runAsync: true });
    let stdout = '';
    let stderr = '';
    await sb.process.getSessionCommandLogs('s', cmd.cmdId, (s) => (stdout += s), (s) => (stderr += s));
    expect(stdout).toBe('two 1\ntwo 2\n/tmp\n');
    expect(stderr).toBe('warn 1\nwarn 2\n');
    expect((await sb.process.getSessionCommand('s', cmd.cmdId)).exitCode).toBe(0);
    const logs = await sb.process.getSessionCommandLogs('s', cmd.cmdId);
    expect(logs.stdout).toBe('two 1\ntwo 2\n/tmp\n');
    await sb.process.deleteSession('s');
  });

  it('PTY: input, output, resize, exit code', async () => {
    let out = '';
    const decoder = new TextDecoder();
    const pty = await sb.process.createPty({ id: `t-${key}`, cols: 100, rows: 30, onData: (d) => void (out += decoder.decode(d, { stream: true })) });
    await pty.waitForConnection();
    await pty.sendInput('stty size; echo "ready $((40+2))"\n');
    const until = (done: () => boolean, what: string) => waitFor(done, 10_000, what).catch(() => {
      throw new Error(`no ${what} from the terminal; it printed ${JSON.stringify(out)}`);
    });
    await until(() => out.includes('ready 42') && out.includes('30 100'), 'output');
    expect(await pty.resize(132, 45)).toMatchObject({ cols: 132, rows: 45 });
    await pty.sendInput('stty size; tty\n');
    await until(() => out.includes('45 132') && /\/dev\/pts\/\d+/.test(out), 'output after the resize');
    await pty.sendInput('exit 7\n');
    expect((await pty.wait()).exitCode).toBe(7);
    await pty.disconnect();
  });

  it(base.has.git ? 'git: clones a repository of the sandbox and commits' : 'git: fails naming the missing git command', async () => {
    if (!base.has.git) {
      const err = await failure(sb.git.clone('file:///tmp/none', `${base.home}/clone`));
      expect(err).toEqual({ statusCode: 400, message: 'git is not installed in this sandbox: no git command on its PATH; install git in the image' });
      return;
    }
    const seed = [
      'set -e',
      `git init -q -b main ${base.home}/origin`,
      `cd ${base.home}/origin`,
      'echo hello > README.md',
      'git add README.md',
      'git -c user.name=Seed -c user.email=seed@example.test commit -qm seed',
    ].join('\n');
    expect(await sb.process.executeCommand(`sh -c '${seed}'`)).toMatchObject({ exitCode: 0 });
    const clone = `${base.home}/clone`;
    await sb.git.clone(`file://${base.home}/origin`, clone);
    expect((await sb.fs.downloadFile(`${clone}/README.md`)).toString()).toBe('hello\n');
    await sb.fs.uploadFile(Buffer.from('new\n'), `${clone}/new.txt`);
    expect((await sb.git.status(clone)).fileStatus.map((f) => f.name)).toEqual(['new.txt']);
    await sb.git.add(clone, ['new.txt']);
    const commit = await sb.git.commit(clone, 'add new', 'Tester', 'tester@example.test');
    expect(commit.sha).toMatch(/^[0-9a-f]{40}$/);
    expect((await sb.git.branches(clone)).branches).toEqual(['main']);
  });

  it('LSP: a clear error where the image has no language server', async () => {
    // The bases have none: the default image is where LSP is proven (test/proxy/sdk.test.ts).
    const [language, server] = base.has.python ? (['python', 'pyright-langserver'] as const) : (['typescript', 'typescript-language-server'] as const);
    const lsp = await sb.createLspServer(language, base.workdir);
    const err = await failure(lsp.start());
    expect(err.message).toContain(`${server} is not on the sandbox's PATH`);
    expect(err.message).not.toMatch(/\n\s+at /);
  });

  it(base.has.python ? 'interpreter: runs Python with state between runs' : 'interpreter: fails naming the missing python3', async () => {
    if (!base.has.python) {
      const err = await failure(sb.codeInterpreter.runCode('print(1)'));
      expect(err.message).toContain("python3 was not found on the sandbox's PATH");
      return;
    }
    const ctx = await sb.codeInterpreter.createContext();
    await sb.codeInterpreter.runCode('x = 41', { context: ctx });
    expect((await sb.codeInterpreter.runCode('x += 1\nprint(x)', { context: ctx })).stdout).toBe('42\n');
  });

  it('computer use: a 400 naming the desktop image and what this image lacks', async () => {
    const { statusCode, message } = await failure(sb.computerUse.start());
    expect(statusCode).toBe(400);
    expect(message).toMatch(/^Computer use needs the desktop image: Xvfb, .* are not installed in this sandbox; create the sandbox from the desktop image cove-desktop:latest/);
  });
});
