/** `cove exec`: a command in a sandbox attached to the caller's stdin, stdout, stderr, signals and exit code. */
import { spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { COVE_BIN, waitFor } from '../helpers/agent';
import { startCove, type TestCove } from '../helpers/cove';

let cove: TestCove;
let sandboxId: string;
beforeAll(async () => {
  cove = await startCove({ pool: 1 });
  sandboxId = (await (await cove.api('/sandbox', { method: 'POST', body: '{}' })).json()).id;
}, 20 * 60_000);
afterAll(async () => {
  await cove?.destroy();
});

function coveExec(args: string[], input?: string) {
  const child = spawn(process.execPath, [COVE_BIN, 'exec', sandboxId, '--api-url', cove.apiUrl, ...args], {
    env: { ...process.env, COVE_API_KEY: cove.apiKey },
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  if (input !== undefined) child.stdin.end(input);
  const done = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, done, out: () => stdout, err: () => stderr };
}

describe('cove exec', () => {
  it('streams stdout and stderr apart, feeds stdin, and exits with the command’s code', async () => {
    const run = coveExec(['-e', 'WHO=sandbox', '--', 'sh', '-c', 'echo "out $WHO"; echo err >&2; read x; echo "got $x"; exit 4'], 'hello\n');
    expect(await run.done).toBe(4);
    expect(run.out()).toBe('out sandbox\ngot hello\n');
    expect(run.err()).toBe('err\n');
  });

  it('forwards Ctrl-C to the command', async () => {
    const run = coveExec(['--', 'sh', '-c', 'trap "echo interrupted; exit 130" INT; echo ready; while :; do sleep 0.1; done']);
    await waitFor(() => run.out().includes('ready'), 20_000, 'the command to start');
    run.child.kill('SIGINT');
    expect(await run.done).toBe(130);
    expect(run.out()).toContain('interrupted');
  });

  it('says why when the sandbox does not exist', async () => {
    const child = spawn(process.execPath, [COVE_BIN, 'exec', 'no-such-sandbox', '--api-url', cove.apiUrl, '--', 'true'], {
      env: { ...process.env, COVE_API_KEY: cove.apiKey },
    });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    expect(await new Promise((r) => child.on('exit', r))).toBe(1);
    expect(stderr).toMatch(/not found/);
  });
});
