/**
 * Conformance: the published Daytona SDK's CodeInterpreter, built exactly as the SDK's Sandbox builds it, and its
 * Process.codeRun charts, pointed at a bare Cove agent.
 */
import { DaytonaTimeoutError, Process, type Chart } from '@daytonaio/sdk';
import { Configuration, InterpreterApi, ProcessApi } from '@daytona/toolbox-api-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
// The SDK does not export the class from its entry point; the Sandbox makes it from this module.
import { CodeInterpreter } from '../../node_modules/@daytonaio/sdk/esm/CodeInterpreter.js';
import { pathWithMatplotlib, startAgent, type TestAgent } from '../helpers/agent';

let agent: TestAgent;
let interpreter: CodeInterpreter;
let python: Process;

beforeAll(async () => {
  agent = await startAgent({ env: { PATH: pathWithMatplotlib() } });
  const config = new Configuration({
    basePath: agent.url,
    baseOptions: { headers: { Authorization: `Bearer ${agent.token}` } },
  });
  const previewToken = async () => agent.token;
  interpreter = new CodeInterpreter(config, new InterpreterApi(config, '', undefined), previewToken);
  python = new Process(config, new ProcessApi(config, '', undefined), previewToken, 'python', 60_000);
});
afterAll(async () => {
  await agent?.stop();
});

describe('Daytona SDK CodeInterpreter against the agent', () => {
  it('runs code in the default context, streaming stdout and stderr to the callbacks', async () => {
    // Runs of one stream, in the order they came: output may arrive in any number of chunks.
    const seen: [string, string][] = [];
    const add = (stream: string, text: string) => {
      const last = seen[seen.length - 1];
      if (last?.[0] === stream) last[1] += text;
      else seen.push([stream, text]);
    };
    const result = await interpreter.runCode('import sys\nprint("hello")\nprint("warn", file=sys.stderr)\nanswer = 42', {
      onStdout: (m) => add('out', m.output),
      onStderr: (m) => add('err', m.output),
    });
    expect(result).toEqual({ stdout: 'hello\n', stderr: 'warn\n' });
    expect(seen).toEqual([
      ['out', 'hello\n'],
      ['err', 'warn\n'],
    ]);
    expect((await interpreter.runCode('answer')).stdout).toBe('42\n');
  });

  it('creates, uses, lists and deletes contexts', async () => {
    const ctx = await interpreter.createContext(agent.workdir);
    expect(ctx).toMatchObject({ cwd: agent.workdir, language: 'python', active: true });
    await interpreter.runCode('counter = 1', { context: ctx });
    await interpreter.runCode('counter += 1', { context: ctx });
    expect((await interpreter.runCode('counter', { context: ctx })).stdout).toBe('2\n');
    expect((await interpreter.listContexts()).map((c) => c.id)).toEqual([ctx.id]);
    await interpreter.deleteContext(ctx);
    expect(await interpreter.listContexts()).toEqual([]);
  });

  it('reports exceptions in result.error and to onError', async () => {
    const errors: string[] = [];
    const result = await interpreter.runCode('def f():\n    raise KeyError("missing")\nf()', { onError: (e) => void errors.push(e.name) });
    expect(result.error).toMatchObject({ name: 'KeyError', value: "'missing'" });
    expect(result.error!.traceback).toContain('in f');
    expect(errors).toEqual(['KeyError']);
  });

  it('rejects with DaytonaTimeoutError past the timeout, and the context keeps working', async () => {
    const ctx = await interpreter.createContext();
    await interpreter.runCode('before = "kept"', { context: ctx });
    const err = await interpreter.runCode('import time\ntime.sleep(30)', { context: ctx, timeout: 1 }).catch((e) => e);
    expect(err).toBeInstanceOf(DaytonaTimeoutError);
    expect((await interpreter.runCode('before', { context: ctx })).stdout).toBe("'kept'\n");
    await interpreter.deleteContext(ctx);
  });

  it('passes envs to one run', async () => {
    const result = await interpreter.runCode('import os\nprint(os.environ["SDK_ENV"])', { envs: { SDK_ENV: 'from-sdk' } });
    expect(result.stdout).toBe('from-sdk\n');
  });

  it('fails with the agent\'s message for an unknown context', async () => {
    const err = await interpreter
      .runCode('1', { context: { id: 'nope', cwd: '/', language: 'python', createdAt: '', active: true } })
      .catch((e) => e);
    expect(err).toBeInstanceOf(Error);
    expect(String(err.message)).toContain('No interpreter context nope');
  });
});

describe('Daytona SDK codeRun charts against the agent', () => {
  it('returns matplotlib charts in artifacts.charts', async () => {
    const res = await python.codeRun(
      'import matplotlib.pyplot as plt\nplt.plot([1, 2, 3], [3, 1, 2])\nplt.title("SDK chart")\nplt.show()\nprint("drawn")',
    );
    expect(res.exitCode).toBe(0);
    expect(res.result).toBe('drawn\n');
    expect(res.artifacts?.stdout).toBe('drawn\n');
    const charts = res.artifacts?.charts as Chart[];
    expect(charts).toHaveLength(1);
    expect(charts[0]).toMatchObject({ type: 'line', title: 'SDK chart' });
    expect(Buffer.from(charts[0].png!, 'base64').subarray(1, 4).toString()).toBe('PNG');
  });
});
