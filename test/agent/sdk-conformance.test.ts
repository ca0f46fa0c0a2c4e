/**
 * Conformance: the published Daytona SDK's own toolbox classes (FileSystem, Process, PtyHandle), built exactly as
 * the SDK's Sandbox builds them, pointed at a bare Cove agent.
 */
import { FileSystem, Process } from '@daytonaio/sdk';
import { Configuration, FileSystemApi, ProcessApi } from '@daytona/toolbox-api-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAgent, waitFor, type TestAgent } from '../helpers/agent';

let agent: TestAgent;
let fs: FileSystem;
const proc: Record<string, Process> = {};

beforeAll(async () => {
  agent = await startAgent();
  const config = new Configuration({
    basePath: agent.url,
    baseOptions: { headers: { Authorization: `Bearer ${agent.token}` } },
  });
  // The SDK's toolbox client makes its own axios instance when given none.
  const http = undefined;
  fs = new FileSystem(config, new FileSystemApi(config, '', http));
  const previewToken = async () => agent.token;
  for (const language of ['python', 'javascript', 'typescript']) {
    proc[language] = new Process(config, new ProcessApi(config, '', http), previewToken, language, 60_000);
  }
});
afterAll(async () => {
  await agent?.stop();
});

describe('Daytona SDK against the agent', () => {
  it('executeCommand with cwd, env and exit codes', async () => {
    await fs.createFolder(`${agent.workdir}/sub`, '755');
    const res = await proc.python.executeCommand('pwd; echo "$GREETING"; exit 4', `${agent.workdir}/sub`, { GREETING: 'hello' });
    expect(res.exitCode).toBe(4);
    expect(res.result).toContain(`${agent.workdir}/sub`);
    expect(res.result).toContain('hello');
  });

  it('codeRun in python, javascript and typescript', async () => {
    const py = await proc.python.codeRun('import sys\nprint("py", sys.argv[1:])', { argv: ['a'] });
    expect(py.exitCode).toBe(0);
    expect(py.result).toContain("py ['a']");
    const js = await proc.javascript.codeRun('console.log("js", 6 * 7)');
    expect(js.result).toContain('js 42');
    const ts = await proc.typescript.codeRun('const n: number = 40 + 2;\nconsole.log(`ts ${n}`);');
    expect(ts.exitCode).toBe(0);
    expect(ts.result).toContain('ts 42');
  });

  it('uploads, lists, downloads, moves and deletes files', async () => {
    const dir = `${agent.workdir}/sdk`;
    await fs.createFolder(dir, '755');
    await fs.uploadFile(Buffer.from('hello from the sdk\n'), `${dir}/a.txt`);
    await fs.uploadFiles([
      { source: Buffer.from('one'), destination: `${dir}/b.txt` },
      { source: Buffer.from('two'), destination: `${dir}/nested/c.txt` },
    ]);
    const names = (await fs.listFiles(dir)).map((f) => f.name).sort();
    expect(names).toEqual(['a.txt', 'b.txt', 'nested']);
    expect((await fs.downloadFile(`${dir}/a.txt`)).toString()).toBe('hello from the sdk\n');
    const info = await fs.getFileDetails(`${dir}/a.txt`);
    expect(info.size).toBe(19);
    expect(info.isDir).toBe(false);
    await fs.moveFiles(`${dir}/b.txt`, `${dir}/moved.txt`);
    const found = await fs.findFiles(dir, 'hello');
    expect(found.map((m) => m.file)).toContain(`${dir}/a.txt`);
    const searched = await fs.searchFiles(dir, '*.txt');
    expect(searched.files.length).toBeGreaterThanOrEqual(2);
    await fs.deleteFile(`${dir}/nested`, true);
    expect((await fs.listFiles(dir)).map((f) => f.name).sort()).toEqual(['a.txt', 'moved.txt']);
  });

  it('surfaces typed errors', async () => {
    await expect(fs.downloadFile(`${agent.workdir}/missing.txt`)).rejects.toMatchObject({ name: 'DaytonaFileNotFoundError' });
  });

  it('runs session commands, async with streamed logs', async () => {
    await proc.python.createSession('s1');
    await proc.python.executeSessionCommand('s1', { command: 'cd /tmp && export X=persisted' });
    const sync = await proc.python.executeSessionCommand('s1', { command: 'pwd; echo $X' });
    expect(sync.exitCode).toBe(0);
    expect(sync.output).toContain('/tmp');
    expect(sync.output).toContain('persisted');

    const started = await proc.python.executeSessionCommand('s1', {
      command: 'for i in 1 2 3; do echo out$i; echo err$i >&2; sleep 0.1; done',
      runAsync: true,
    });
    expect(started.cmdId).toBeTruthy();
    let stdout = '';
    let stderr = '';
    await proc.python.getSessionCommandLogs('s1', started.cmdId!, (c) => (stdout += c), (c) => (stderr += c));
    expect(stdout).toBe('out1\nout2\nout3\n');
    expect(stderr).toBe('err1\nerr2\nerr3\n');
    const cmd = await proc.python.getSessionCommand('s1', started.cmdId!);
    expect(cmd.exitCode).toBe(0);
    await proc.python.deleteSession('s1');
    expect((await proc.python.listSessions()).map((s) => s.sessionId)).not.toContain('s1');
  });

  it('drives a PTY with createPty, sendInput and wait', async () => {
    let output = '';
    const pty = await proc.python.createPty({
      id: 'sdk-pty',
      cols: 100,
      rows: 30,
      envs: { SDK_VAR: 'from-sdk' },
      onData: (data) => {
        output += new TextDecoder().decode(data);
      },
    });
    await pty.waitForConnection();
    await pty.sendInput('echo "$SDK_VAR $((6*7))"; stty size\n');
    await waitFor(() => output.includes('from-sdk 42') && output.includes('30 100'), 10_000, 'PTY output');
    await pty.sendInput('exit 5\n');
    const result = await pty.wait();
    expect(result.exitCode).toBe(5);
    await pty.disconnect();
  });
});
