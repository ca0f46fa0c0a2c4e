import { execFileSync } from 'node:child_process';
import { afterAll, describe, expect, it } from 'vitest';
import { runCommand, stopCommandHelper, type CommandError } from './run-command';

const failure = (p: Promise<unknown>) => p.then(() => expect.fail('the command succeeded'), (err: CommandError) => err);

describe('runCommand (commands run by the helper process)', () => {
  afterAll(() => stopCommandHelper());

  it('answers stdout and stderr, feeds input, and runs in cwd', async () => {
    expect(await runCommand('sh', ['-c', 'echo out; echo err >&2'])).toEqual({ stdout: 'out\n', stderr: 'err\n' });
    expect((await runCommand('cat', [], { input: 'a\nb\n' })).stdout).toBe('a\nb\n');
    expect((await runCommand('pwd', [], { cwd: '/tmp' })).stdout).toBe('/tmp\n');
    // No input: standard input is empty and closed, so a reader of it ends at once.
    expect((await runCommand('cat', [])).stdout).toBe('');
  });

  it('fails as execFile does: exit status, errno name, timeout, output limit', async () => {
    const exit = await failure(runCommand('sh', ['-c', 'echo partial; echo why >&2; exit 3']));
    expect(exit).toBeInstanceOf(Error);
    expect(exit).toMatchObject({ code: 3, stdout: 'partial\n', stderr: 'why\n', killed: false });

    expect(await failure(runCommand('/nonexistent/command', []))).toMatchObject({ code: 'ENOENT' });

    const slow = await failure(runCommand('sleep', ['5'], { timeout: 100 }));
    expect(slow).toMatchObject({ killed: true, signal: 'SIGTERM' });

    const big = await failure(runCommand('head', ['-c', '100000', '/dev/zero'], { maxBuffer: 1000 }));
    expect(big.code).toBe('ERR_CHILD_PROCESS_STDIO_MAXBUFFER');
  });

  it('runs many at once, each answer to its own call', async () => {
    const outs = await Promise.all(Array.from({ length: 50 }, (_, i) => runCommand('sh', ['-c', `sleep 0.0$((${i} % 5)); echo ${i}`])));
    expect(outs.map((o) => o.stdout)).toEqual(Array.from({ length: 50 }, (_, i) => `${i}\n`));
  });

  it('a dead helper fails what it ran and is replaced by the next call', async () => {
    const running = failure(runCommand('sleep', ['5']));
    await new Promise((r) => setTimeout(r, 200));
    stopCommandHelper();
    expect(await running).toMatchObject({ code: 'EHELPER' });
    expect((await runCommand('echo', ['again'])).stdout).toBe('again\n');
  });

  it('the helper ends with the process that started it', () => {
    // A child Node process starts the helper, prints its pid and exits; the helper must then be gone.
    const script = `
      import { runCommand } from ${JSON.stringify(new URL('./run-command.ts', import.meta.url).pathname)};
      await runCommand('true', []);
      const { stdout } = await runCommand('sh', ['-c', 'echo $PPID']);
      console.log(stdout.trim());`;
    const pid = Number(execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { encoding: 'utf8', timeout: 30_000 }).trim());
    expect(pid).toBeGreaterThan(1);
    const deadline = Date.now() + 5000;
    let alive = true;
    while (alive && Date.now() < deadline) {
      try {
        process.kill(pid, 0);
        execFileSync('sleep', ['0.05']);
      } catch {
        alive = false;
      }
    }
    expect(alive).toBe(false);
  });
});
