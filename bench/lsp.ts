/**
 * LSP completions through the agent (POST /lsp/start, /lsp/did-open, /lsp/completions) beside the same requests sent
 * straight to the same language server over stdio from this process, in the same run: the time to the first
 * completion from a cold start, and the median warm completion (the two clients interleaved, so both see the same
 * machine load). TypeScript (typescript-language-server) and Python (pyright). The stdio client opens the text it
 * wrote and never looks at the disk again; the agent, whose documents are read from disk, stats the file before each
 * request (and reads it when it changed). Warm means after 200 requests to each (compiled code on both sides); the
 * agent is called over one kept-alive node:http connection, as the SDK's axios calls it. Target for the warm p50: at
 * most 1.2× stdio + 1 ms.
 */
import { spawn } from 'node:child_process';
import http from 'node:http';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { createMessageConnection, StreamMessageReader, StreamMessageWriter } from 'vscode-jsonrpc/node';
import { printTable, stats, type Row } from './lib';
import { ROOT, startAgent } from '../test/helpers/agent';

const COLD_RUNS = 3;
const WARM_RUNS = 200;
/** Requests before measuring, to both: a warm completion is one of a session in use, compiled code on both sides. */
const WARMUP = 200;
const BIN = path.join(ROOT, 'node_modules/.bin');

interface Case {
  languageId: string;
  command: string;
  files: Record<string, string>;
  /** The file completed in, and the position after `bob.` in it. */
  file: string;
  position: { line: number; character: number };
  member: string;
}

const CASES: Case[] = [
  {
    languageId: 'typescript',
    command: 'typescript-language-server',
    files: {
      'tsconfig.json': JSON.stringify({ compilerOptions: { strict: true, target: 'ES2022' }, include: ['src'] }),
      'src/complete.ts': "const bob = { name: 'Bob', favouriteColour: 'green' };\nbob.\n",
    },
    file: 'src/complete.ts',
    position: { line: 1, character: 4 },
    member: 'favouriteColour',
  },
  {
    languageId: 'python',
    command: 'pyright-langserver',
    files: {
      'complete.py': 'class Person:\n    def __init__(self) -> None:\n        self.favourite_colour = "green"\n\n\nbob = Person()\nbob.\n',
    },
    file: 'complete.py',
    position: { line: 6, character: 4 },
    member: 'favourite_colour',
  },
];

const agent = await startAgent({ env: { PATH: `${BIN}:${process.env.PATH}` } });
/**
 * One POST with a JSON body over a kept-alive connection, through node:http as the Daytona SDK's axios sends it
 * (undici's fetch adds about 0.3 ms of client work per request, which is not the agent's).
 */
const keepAlive = new http.Agent({ keepAlive: true, maxSockets: 1 });
function post(p: string, json: unknown): Promise<any> {
  const body = JSON.stringify(json);
  const url = new URL(p, agent.url);
  return new Promise((resolve, reject) => {
    const req = http.request(
      url,
      {
        method: 'POST',
        agent: keepAlive,
        headers: { Authorization: `Bearer ${agent.token}`, 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (d: Buffer) => chunks.push(d));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString();
          if ((res.statusCode ?? 0) >= 300) reject(new Error(`POST ${p} → ${res.statusCode}: ${text}`));
          else resolve(text ? JSON.parse(text) : undefined);
        });
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

/** The same session the agent has with a server, driven directly: spawn, initialize, open, complete. */
async function directSession(c: Case, dir: string) {
  const proc = spawn(path.join(BIN, c.command), ['--stdio'], { cwd: dir, stdio: ['pipe', 'pipe', 'ignore'] });
  const conn = createMessageConnection(new StreamMessageReader(proc.stdout), new StreamMessageWriter(proc.stdin));
  conn.onRequest((method, params) =>
    method === 'workspace/configuration' ? ((params as { items?: unknown[] }).items ?? []).map(() => null) : null,
  );
  conn.onNotification(() => {});
  conn.listen();
  const rootUri = pathToFileURL(dir).href;
  const uri = pathToFileURL(path.join(dir, c.file)).href;
  await conn.sendRequest('initialize', {
    processId: process.pid,
    rootUri,
    workspaceFolders: [{ uri: rootUri, name: 'bench' }],
    capabilities: { workspace: { configuration: true }, textDocument: { completion: { completionItem: {} } } },
  });
  await conn.sendNotification('initialized', {});
  await conn.sendNotification('textDocument/didOpen', {
    textDocument: { uri, languageId: c.languageId, version: 1, text: c.files[c.file] },
  });
  return {
    complete: async () => {
      const r: any = await conn.sendRequest('textDocument/completion', { textDocument: { uri }, position: c.position, context: { triggerKind: 1 } });
      return Array.isArray(r) ? r : r.items;
    },
    close: async () => {
      await conn.sendRequest('shutdown').catch(() => {});
      await conn.sendNotification('exit').catch(() => {});
      setTimeout(() => proc.kill('SIGKILL'), 1000).unref();
      await new Promise((r) => proc.once('exit', r));
      conn.dispose();
    },
  };
}

function check(items: { label: string }[], c: Case) {
  if (!items.some((i) => i.label === c.member)) throw new Error(`no ${c.member} among ${items.length} completions`);
}

const rows: Row[] = [];
try {
  for (const c of CASES) {
    const dir = path.join(agent.workdir, c.languageId);
    for (const [file, text] of Object.entries(c.files)) {
      mkdirSync(path.dirname(path.join(dir, file)), { recursive: true });
      writeFileSync(path.join(dir, file), text);
    }
    const base = { languageId: c.languageId, pathToProject: dir };
    const request = { ...base, uri: `file://${path.join(dir, c.file)}`, position: c.position };

    const coldAgent: number[] = [];
    const coldDirect: number[] = [];
    for (let i = 0; i < COLD_RUNS; i++) {
      let t = performance.now();
      await post('/lsp/start', base);
      await post('/lsp/did-open', request);
      check((await post('/lsp/completions', request)).items, c);
      coldAgent.push(performance.now() - t);
      await post('/lsp/stop', base);

      t = performance.now();
      const direct = await directSession(c, dir);
      check(await direct.complete(), c);
      coldDirect.push(performance.now() - t);
      await direct.close();
    }

    await post('/lsp/start', base);
    await post('/lsp/did-open', request);
    const direct = await directSession(c, dir);
    for (let i = 0; i < WARMUP; i++) {
      await post('/lsp/completions', request);
      await direct.complete();
    }
    const warmAgent: number[] = [];
    const warmDirect: number[] = [];
    for (let i = 0; i < WARM_RUNS; i++) {
      let t = performance.now();
      check((await post('/lsp/completions', request)).items, c);
      warmAgent.push(performance.now() - t);
      t = performance.now();
      check(await direct.complete(), c);
      warmDirect.push(performance.now() - t);
    }
    await direct.close();
    await post('/lsp/stop', base);

    const warm = { agent: stats(warmAgent).p50, stdio: stats(warmDirect).p50 };
    rows.push(
      { name: `${c.languageId}: start → first completion (cold, median of ${COLD_RUNS})`, value: stats(coldAgent).p50, unit: 'ms', baseline: stats(coldDirect).p50, baselineName: 'stdio' },
      {
        name: `${c.languageId}: completion p50 (warm, n=${WARM_RUNS})`,
        value: warm.agent,
        unit: 'ms',
        baseline: warm.stdio,
        baselineName: 'stdio',
        target: '≤ 1.2× stdio + 1 ms',
        ok: warm.agent <= 1.2 * warm.stdio + 1,
      },
      { name: `${c.languageId}: completion p99 (warm)`, value: stats(warmAgent).p99, unit: 'ms', baseline: stats(warmDirect).p99, baselineName: 'stdio' },
    );
  }
} finally {
  await agent.stop();
}
printTable('LSP completions: agent (HTTP) vs the language server over stdio', rows);
