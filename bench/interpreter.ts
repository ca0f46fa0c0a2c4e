/**
 * Code interpreter round trips on a real agent, each beside a baseline measured in the same run and interleaved with
 * it, so that both see the same machine load:
 * - the published SDK's `codeInterpreter.runCode('x += 1')` in a warm context (WebSocket, request, frames, close)
 *   vs `python3 -c 'pass'` through POST /process/execute (what a stateless run costs at least);
 * - python code-run of `pass` (the runner that captures charts) vs the same `python3 -c 'pass'` execute;
 * - a small matplotlib line chart through runCode in a warm context (pyplot already imported) and through code-run
 *   (a fresh process that imports matplotlib), vs the same program rendering its PNG itself through execute.
 *   npx tsx bench/interpreter.ts
 */
import http from 'node:http';
import { Configuration, InterpreterApi } from '@daytona/toolbox-api-client';
import { CodeInterpreter } from '../node_modules/@daytonaio/sdk/esm/CodeInterpreter.js';
import { printTable, stats, type Row } from './lib';
import { pathWithMatplotlib, startAgent } from '../test/helpers/agent';

const RUNS = { tiny: 200, pass: 60, chart: 12 };
const WARMUP = { tiny: 20, pass: 5, chart: 2 };

const CHART = 'import matplotlib.pyplot as plt\nplt.plot([1, 2, 3, 4], [1, 4, 9, 16], label="squares")\nplt.title("bench")';
/** The baseline renders the same PNG itself, as the capture does. */
const CHART_SELF = `${CHART}\nimport io\nplt.savefig(io.BytesIO(), format="png", bbox_inches="tight", dpi=100)`;
const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

const agent = await startAgent({ env: { PATH: pathWithMatplotlib() } });
const keepAlive = new http.Agent({ keepAlive: true, maxSockets: 1 });

function post(path: string, json: unknown): Promise<any> {
  const body = JSON.stringify(json);
  return new Promise((resolve, reject) => {
    const req = http.request(
      new URL(path, agent.url),
      {
        method: 'POST',
        agent: keepAlive,
        headers: { Authorization: `Bearer ${agent.token}`, 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d) => (text += d));
        res.on('end', () => (res.statusCode === 200 ? resolve(JSON.parse(text)) : reject(new Error(`${path} → ${res.statusCode}: ${text}`))));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

const config = new Configuration({ basePath: agent.url, baseOptions: { headers: { Authorization: `Bearer ${agent.token}` } } });
const interpreter = new CodeInterpreter(config, new InterpreterApi(config, '', undefined), async () => agent.token);

async function time(fn: () => Promise<unknown>, into: number[]): Promise<void> {
  const t = process.hrtime.bigint();
  await fn();
  into.push(Number(process.hrtime.bigint() - t) / 1e6);
}

/** Interleaves `a` and `b` (alternating which goes first); returns their samples. */
async function pair(runs: number, warmup: number, a: () => Promise<unknown>, b: () => Promise<unknown>): Promise<[number[], number[]]> {
  for (let i = 0; i < warmup; i++) {
    await a();
    await b();
  }
  const sa: number[] = [];
  const sb: number[] = [];
  for (let i = 0; i < runs; i++) {
    if (i % 2) {
      await time(a, sa);
      await time(b, sb);
    } else {
      await time(b, sb);
      await time(a, sa);
    }
  }
  return [sa, sb];
}

try {
  const ctx = await interpreter.createContext();
  await interpreter.runCode('x = 0', { context: ctx });
  const execPass = async () => {
    const r = await post('/process/execute', { command: "python3 -c 'pass'" });
    if (r.exitCode !== 0) throw new Error(`python3 -c pass: ${JSON.stringify(r)}`);
  };
  const runTiny = async () => {
    const r = await interpreter.runCode('x += 1', { context: ctx });
    if (r.error) throw new Error(JSON.stringify(r.error));
  };
  const [tiny, tinyBase] = await pair(RUNS.tiny, WARMUP.tiny, runTiny, execPass);
  const count = Number((await interpreter.runCode('x', { context: ctx })).stdout);
  if (count !== RUNS.tiny + WARMUP.tiny) throw new Error(`x is ${count}, expected ${RUNS.tiny + WARMUP.tiny}`);

  const codeRunPass = async () => {
    const r = await post('/process/code-run', { language: 'python', code: 'pass' });
    if (r.exitCode !== 0) throw new Error(`code-run pass: ${JSON.stringify(r)}`);
  };
  const [pass, passBase] = await pair(RUNS.pass, WARMUP.pass, codeRunPass, execPass);

  // The chart through the interpreter: a warm context whose kernel has imported pyplot once.
  const chartCtx = await interpreter.createContext();
  const ws = async () => {
    // The SDK leaves chart frames out of its result; this client keeps them, to check one came.
    const socket = new (await import('ws')).default(`${agent.url.replace(/^http/, 'ws')}/process/interpreter/execute`, { headers: { Authorization: `Bearer ${agent.token}` } });
    let charts = 0;
    await new Promise<void>((resolve, reject) => {
      socket.on('open', () => socket.send(JSON.stringify({ code: CHART, contextId: chartCtx.id })));
      socket.on('message', (d: Buffer) => {
        if (JSON.parse(d.toString()).type === 'chart') charts++;
      });
      socket.on('close', (code) => (code === 1000 && charts === 1 ? resolve() : reject(new Error(`close ${code}, ${charts} charts`))));
      socket.on('error', reject);
    });
  };
  const codeRunChart = async () => {
    const r = await post('/process/code-run', { language: 'python', code: CHART });
    if (r.artifacts?.charts?.length !== 1) throw new Error(`code-run chart: ${JSON.stringify(r).slice(0, 300)}`);
  };
  const execChart = async () => {
    const r = await post('/process/execute', { command: `python3 -c ${quote(CHART_SELF)}` });
    if (r.exitCode !== 0) throw new Error(`execute chart: ${r.result}`);
  };
  const [chartWarm, chartCold] = await pair(RUNS.chart, WARMUP.chart, ws, codeRunChart);
  const [chartRun, chartSelf] = await pair(RUNS.chart, WARMUP.chart, codeRunChart, execChart);

  const row = (name: string, a: number[], b: number[], baselineName: string, target?: { text: string; ok: (a: number, b: number) => boolean }): Row => {
    const sa = stats(a).p50;
    const sb = stats(b).p50;
    return { name, value: sa, unit: 'ms', baseline: sb, baselineName, ...(target ? { target: target.text, ok: target.ok(sa, sb) } : {}) };
  };
  printTable(`Code interpreter (medians; ${RUNS.tiny} / ${RUNS.pass} / ${RUNS.chart} runs)`, [
    row("runCode('x += 1'), warm context (SDK)", tiny, tinyBase, "execute python3 -c 'pass'", { text: '≤ 0.5×', ok: (a, b) => a <= 0.5 * b }),
    row("code-run python 'pass'", pass, passBase, "execute python3 -c 'pass'", { text: '≤ 1.3×', ok: (a, b) => a <= 1.3 * b }),
    row('line chart: runCode, warm context (WebSocket)', chartWarm, chartCold, 'the same through code-run', { text: '≤ 0.5×', ok: (a, b) => a <= 0.5 * b }),
    row('line chart: code-run with artifacts.charts', chartRun, chartSelf, 'execute, PNG rendered by the program', { text: '≤ 1.3×', ok: (a, b) => a <= 1.3 * b }),
  ]);
  await interpreter.deleteContext(ctx);
  await interpreter.deleteContext(chartCtx);
} finally {
  keepAlive.destroy();
  await agent.stop();
}
