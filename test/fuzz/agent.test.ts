/**
 * Fuzzing every entry point of the agent (DESIGN.md, convention 10): its HTTP routes (from its own OpenAPI document),
 * its WebSocket channels, raw upgrades (port tunnel, SSH tunnels) and raw HTTP/1.1 bytes. The invariants: every
 * request gets an answer; an error answer is the JSON envelope; bad input is a 4xx, never a 500; the agent keeps
 * serving; nothing escapes to its last-resort handler (`(uncaught)` / `(unhandled rejection)` in its output) and no
 * boundary reports an unexpected error.
 *
 * The agent runs on this machine, as the user running the tests, so the generated input is kept harmless: commands
 * are always `true` or `cat`, paths stay inside the agent's temporary work dir (checked after every decoding the
 * agent might apply), git only ever talks to a repository in that dir, tunnels only reach a test echo server, and
 * the language servers are a small stand-in that answers every request with null.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ERROR_CODES } from '../../wire/errors';
import { ExecClientMessage } from '../../wire/exec-stream';
import { CreateSessionRequest } from '../../wire/sessions';
import { encodeEnvsProtocol, PTY_ENVS_PROTOCOL_PREFIX, PTY_EXIT_CONTROL_PROTOCOL, PtyCreateRequest } from '../../wire/pty';
import { FRAME, SshConnectQuery, SshListenQuery } from '../../wire/ssh';
import { startAgent, waitFor, type TestAgent } from '../helpers/agent';
import { fc, fuzz, timeoutFor } from './lib';

/** Time budgets under `npm test` (about 20 s in all). */
const BUDGET = { http: 8000, ws: 6000, upgrade: 3000, bytes: 3000 };

let agent: TestAgent;
let port: number;
let workdir: string;
let fakeBin: string;
let echo: net.Server;
let echoPort: number;
let doc: { paths: Record<string, Record<string, any>> };

/** Runs of each property, for the report at the end. */
const runs: Record<string, number> = {};

// ── Harmlessness ─────────────────────────────────────────────────────────────────────────────────────────────────

/** Every spelling the agent might turn `s` into before using it as a path: percent-decoded (in part), `+` as space. */
function decodings(s: string): string[] {
  const out = new Set<string>([s]);
  const partial = (v: string) =>
    v.replace(/(?:%[0-9A-Fa-f]{2})+/g, (run) => {
      try {
        return decodeURIComponent(run);
      } catch {
        return run.replace(/%([0-9A-Fa-f]{2})/g, (m, h) => (parseInt(h, 16) < 0x80 ? String.fromCharCode(parseInt(h, 16)) : m));
      }
    });
  for (const start of [s, s.replace(/\+/g, ' ')]) {
    let v = start;
    for (let i = 0; i < 3; i++) {
      v = partial(v);
      out.add(v);
    }
  }
  for (const v of [...out]) out.add(v.replace(/^file:(\/\/)?/i, ''));
  return [...out];
}

/** Whether a string, taken as a path in any of its spellings, stays strictly inside the work dir (and off .git). */
function safePath(s: string): boolean {
  return decodings(s).every((d) => {
    if (/\.git/i.test(d)) return false;
    const abs = path.resolve(workdir, d.replace(/\0/g, ''));
    return abs.startsWith(`${workdir}/`);
  });
}

/** Replaces every string leaf that could name a path outside the work dir. */
function confine(value: unknown, depth = 0): unknown {
  if (typeof value === 'string') return safePath(value) ? value : 'fz/x';
  if (depth > 50 || value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return value.map((v) => confine(v, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) Object.defineProperty(out, k, { value: confine(v, depth + 1), enumerable: true, writable: true, configurable: true });
  return out;
}

/** Environment for children: only `FZ_…` names (and TERM), so no variable a shell or git acts on can be set. */
function harmlessEnvs(envs: unknown): unknown {
  if (!envs || typeof envs !== 'object' || Array.isArray(envs)) return envs;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(envs)) {
    const key = k === 'TERM' ? k : `FZ_${k}`;
    Object.defineProperty(out, key, { value: v, enumerable: true, writable: true, configurable: true });
  }
  return out;
}

const pick = (s: unknown, n: number) => `${[...String(s)].reduce((h, c) => (h * 31 + c.charCodeAt(0)) >>> 0, 7) % n}`;

/** Bodies the agent would accept for routes that start a shell: ids come from a small set, so shells do not pile up. */
const LIMITED: Record<string, { schema: { safeParse(v: unknown): { success: boolean } }; fix: (b: any) => void }> = {
  'post /process/session': { schema: CreateSessionRequest, fix: (b) => (b.sessionId = `fz-s${pick(b.sessionId, 3)}`) },
  'post /process/pty': { schema: PtyCreateRequest, fix: (b) => (b.id = `fz-p${pick(b.id, 3)}`) },
};

/** Language server requests name one project (or none that exists), so at most a couple of stand-ins run. */
function lspProject(body: unknown): void {
  if (body && typeof body === 'object' && 'pathToProject' in body && typeof body.pathToProject === 'string') {
    body.pathToProject = body.pathToProject.length % 3 === 0 ? 'nope/x' : 'proj';
  }
}

/**
 * Whatever the route, fields that name something to run or reach are fixed: a command is `true`, code is empty, a
 * clone URL is the test repository, a remote is a plain name, variables are `FZ_…`.
 */
function harmlessFields(body: unknown): void {
  if (!body || typeof body !== 'object' || Array.isArray(body)) return;
  const b = body as Record<string, unknown>;
  if (typeof b.command === 'string' && b.command !== '') b.command = 'true';
  if (typeof b.code === 'string') b.code = '';
  if (typeof b.url === 'string' && b.url !== '') b.url = `${workdir}/repo`;
  if (typeof b.remote === 'string' && !/^[\w.-]+$/.test(b.remote)) b.remote = 'origin';
  if ('envs' in b) b.envs = harmlessEnvs(b.envs);
  if ('env' in b) b.env = harmlessEnvs(b.env);
  // The agent runs as root here: git's system scope is this machine's /etc/gitconfig (global is the agent's temp home).
  if (b.scope === 'system') b.scope = 'global';
}

/** The JSON body text of a case, made harmless for its route. */
function harmlessBody(routeKey: string, text: string): string {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return text; // the agent cannot act on what it cannot parse
  }
  parsed = confine(parsed);
  if (routeKey.includes(' /lsp/')) lspProject(parsed);
  const rule = LIMITED[routeKey];
  if (rule && parsed && typeof parsed === 'object' && !Array.isArray(parsed) && rule.schema.safeParse(parsed).success) rule.fix(parsed);
  harmlessFields(parsed);
  return JSON.stringify(parsed);
}

// ── Generators ───────────────────────────────────────────────────────────────────────────────────────────────────

const HOSTILE_WORDS = [
  '%ZZ', '%', '%C0%AF', '%00', '%2e%2e%2f', '%252e', '..', '../..', 'a/../b', './', '\0', 'a\0b', '\uD800', '\uDFFF',
  '', ' ', '\t', '\r\n', '\\', '[z-a]', '[a-\\]', '[', '{', '{a,{b', '}', '*', '**', '**/*', '?', 'file:', 'file://',
  'file:///', 'file://fz/a.txt', 'http://x', '-n', '--help', '~', '$HOME', '`x`', '$(x)', ';', '|', '&', "'", '"',
  '__proto__', 'constructor', 'toString', 'é', '🙂', '\u202e', '\uFEFF', 'NaN', 'Infinity', '-1', '0', '1e999',
  '0x10', '007', 'null', 'true', 'undefined', '[]', '{}',
];

function plausibleWords(): string[] {
  return [
    'fz', 'fz/a.txt', 'fz/b', 'fz/new', 'proj', 'proj/main.ts', 'repo', 'repo/x.txt', 'x.txt', 'nope', 'nope/x',
    `${workdir}/fz/a.txt`, `${workdir}/proj`, `file://${workdir}/proj/main.ts`, 'file://proj/main.ts', 'typescript',
    'javascript', 'python', 'main', 'master', 'HEAD', 'origin', 'hello', '755', '0644', 'root', '1', 'SIGINT',
  ];
}

/** Strings that are plausible, hostile, long, unicode or binary. */
function hostileString(): fc.Arbitrary<string> {
  const segment = fc.constantFrom('fz', 'a.txt', '..', '.', '%ZZ', '%2F', '\0', 'é', '🙂', '', 'b c', '*');
  return fc.oneof(
    { weight: 6, arbitrary: fc.constantFrom(...plausibleWords()) },
    { weight: 3, arbitrary: fc.constantFrom(...HOSTILE_WORDS) },
    { weight: 2, arbitrary: fc.string({ maxLength: 16 }) },
    { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 12 }) },
    { weight: 1, arbitrary: fc.string({ unit: 'grapheme', maxLength: 12 }) },
    { weight: 2, arbitrary: fc.array(segment, { minLength: 1, maxLength: 5 }).map((a) => a.join('/')) },
    { weight: 1, arbitrary: fc.constantFrom(300, 5000, 70_000).map((n) => 'x'.repeat(n)) },
  );
}

/** A value for a JSON schema that the agent's router published (not always valid: strings are hostile). */
function fromSchema(schema: any, depth = 0): fc.Arbitrary<unknown> {
  if (!schema || typeof schema !== 'object' || depth > 5) return fc.jsonValue({ maxDepth: 1 });
  if (schema.const !== undefined) return fc.constant(schema.const);
  if (Array.isArray(schema.enum)) return fc.oneof({ weight: 4, arbitrary: fc.constantFrom(...schema.enum) }, { weight: 1, arbitrary: hostileString() });
  const union = schema.anyOf ?? schema.oneOf;
  if (Array.isArray(union)) return fc.oneof(...union.map((s: unknown) => fromSchema(s, depth + 1)));
  const type = Array.isArray(schema.type) ? schema.type[0] : schema.type;
  switch (type) {
    case 'string':
      return hostileString();
    case 'integer':
      return fc.oneof(fc.integer({ min: Math.max(-10, schema.minimum ?? -10), max: Math.min(2000, schema.maximum ?? 2000) }), fc.integer());
    case 'number':
      return fc.oneof(fc.integer({ min: 0, max: 100 }), fc.double({ noNaN: true, noDefaultInfinity: true }));
    case 'boolean':
      return fc.boolean();
    case 'null':
      return fc.constant(null);
    case 'array':
      return fc.array(fromSchema(schema.items, depth + 1), { minLength: 0, maxLength: 4 });
    case 'object': {
      const props: Record<string, unknown> = schema.properties ?? {};
      if (Object.keys(props).length === 0) {
        const values = schema.additionalProperties && typeof schema.additionalProperties === 'object' ? fromSchema(schema.additionalProperties, depth + 1) : fc.jsonValue({ maxDepth: 1 });
        return fc.dictionary(fc.oneof(fc.constantFrom('TERM', 'A', '__proto__', 'constructor', 'a=b', 'a\0b', ''), fc.string({ maxLength: 8 })), values, { maxKeys: 3 });
      }
      const arbs = Object.fromEntries(Object.entries(props).map(([k, v]) => [k, fromSchema(v, depth + 1)]));
      return fc.record(arbs, { requiredKeys: (schema.required ?? []).filter((k: string) => k in props) });
    }
    default:
      return fc.jsonValue({ maxDepth: 2 });
  }
}

/** A change that makes a generated value wrong in one way. */
type Mutation =
  | { kind: 'none' }
  | { kind: 'wrongType'; at: number; value: unknown }
  | { kind: 'drop'; at: number }
  | { kind: 'extra'; key: string; value: unknown }
  | { kind: 'number'; at: number; value: number }
  | { kind: 'deep'; at: number; depth: number }
  | { kind: 'whole'; value: unknown };

const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  { weight: 4, arbitrary: fc.constant({ kind: 'none' as const }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('wrongType' as const), at: fc.nat(), value: fc.oneof(fc.integer(), fc.boolean(), fc.constant(null), fc.string(), fc.array(fc.integer(), { maxLength: 3 }), fc.object({ maxDepth: 1 })) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('drop' as const), at: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('extra' as const), key: fc.oneof(fc.constantFrom('__proto__', 'constructor', 'type', 'x'), fc.string({ maxLength: 6 })), value: fc.jsonValue({ maxDepth: 2 }) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('number' as const), at: fc.nat(), value: fc.constantFrom(1e308, -1e308, 2 ** 53 + 2, -(2 ** 53), -1, -0, 0.5, 2 ** 31, 2 ** 32 + 1, 1e-300) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('deep' as const), at: fc.nat(), depth: fc.constantFrom(10, 200, 3000) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('whole' as const), value: fc.oneof(fc.jsonValue({ maxDepth: 2 }), fc.constant([]), fc.constant('x')) }) },
);

function mutate(value: unknown, m: Mutation): unknown {
  if (m.kind === 'none') return value;
  if (m.kind === 'whole') return m.value;
  const obj: Record<string, unknown> = value && typeof value === 'object' && !Array.isArray(value) ? { ...(value as object) } : {};
  const keys = Object.keys(obj);
  if (m.kind === 'extra') {
    Object.defineProperty(obj, m.key, { value: m.value, enumerable: true, writable: true, configurable: true });
    return obj;
  }
  if (!keys.length) return obj;
  const key = keys[m.at % keys.length];
  if (m.kind === 'drop') delete obj[key];
  else if (m.kind === 'wrongType') obj[key] = m.value;
  else if (m.kind === 'number') obj[key] = m.value;
  else if (m.kind === 'deep') {
    let nested: unknown = obj[key] ?? 1;
    for (let i = 0; i < m.depth; i++) nested = i % 2 ? [nested] : { a: nested };
    obj[key] = nested;
  }
  return obj;
}

/** How a body reaches the agent. */
type BodyCase =
  | { kind: 'json'; value: unknown; mutation: Mutation; numbers: boolean }
  | { kind: 'text'; text: string }
  | { kind: 'bytes'; bytes: Uint8Array }
  | { kind: 'empty' }
  | { kind: 'multipart'; boundary: string; parts: { name: string; filename?: string; data: string }[]; broken: 'no' | 'unterminated' | 'wrong-boundary' | 'bad-header' };

const INVALID_JSON = ['{', '{"a":', 'nul', '[1,]', "{'a':1}", '\uFEFF{}', '{"a":1}{"b":2}', '1e999', '"\\ud800"', 'NaN', '{"a":1e999}', '{"__proto__":{"x":1}}', ']', '\0', '{"a":"\\u0000"}'];

function bodyArb(schema: any, multipart: boolean): fc.Arbitrary<BodyCase> {
  const safeName = hostileString().filter(safePath);
  const multipartArb = fc.record({
    kind: fc.constant('multipart' as const),
    boundary: fc.constantFrom('b0undary', 'x', '----', 'a'.repeat(80)),
    parts: fc.array(
      fc.record(
        {
          name: fc.oneof(fc.constantFrom('file', 'files[0].path', 'files[0].file', 'files[1].path', 'files[1].file', 'files[999999].file', 'files[x].path'), fc.string({ maxLength: 8 })),
          filename: safeName,
          data: fc.oneof(safeName, fc.string({ maxLength: 64 })),
        },
        { requiredKeys: ['name', 'data'] },
      ),
      { maxLength: 4 },
    ),
    broken: fc.constantFrom('no' as const, 'no' as const, 'unterminated' as const, 'wrong-boundary' as const, 'bad-header' as const),
  });
  const options: fc.Arbitrary<BodyCase>[] = [
    fc.record({ kind: fc.constant('text' as const), text: fc.constantFrom(...INVALID_JSON) }),
    fc.record({ kind: fc.constant('bytes' as const), bytes: fc.uint8Array({ maxLength: 256 }) }),
    fc.constant({ kind: 'empty' as const }),
  ];
  if (schema) options.unshift(fc.record({ kind: fc.constant('json' as const), value: fromSchema(schema), mutation: mutationArb, numbers: fc.boolean() }));
  if (multipart) options.unshift(multipartArb);
  return fc.oneof(...options.map((arbitrary, i) => ({ weight: i === 0 ? 6 : 1, arbitrary })));
}

function renderBody(b: BodyCase, routeKey: string): { bytes?: Buffer; contentType?: string } {
  switch (b.kind) {
    case 'empty':
      return {};
    case 'bytes': {
      const text = Buffer.from(b.bytes).toString('utf8');
      const safe = harmlessBody(routeKey, text);
      return { bytes: safe === text ? Buffer.from(b.bytes) : Buffer.from(safe) };
    }
    case 'text':
      return { bytes: Buffer.from(harmlessBody(routeKey, b.text)) };
    case 'json': {
      let text = JSON.stringify(mutate(b.value, b.mutation)) ?? 'null';
      // Numbers JSON.stringify cannot write: overflowing literals.
      if (b.numbers) text = text.replace(/(?<=[:[,])-?\d+(\.\d+)?(?=[,\]}])/, '1e400');
      return { bytes: Buffer.from(harmlessBody(routeKey, text)), contentType: 'application/json' };
    }
    case 'multipart': {
      const { boundary } = b;
      let text = '';
      for (const p of b.parts) {
        // A field (a part without a filename) may name where a file goes: it stays inside the work dir.
        const data = p.filename === undefined && !safePath(p.data) ? 'fz/m' : p.data;
        text += `--${b.broken === 'wrong-boundary' ? 'other' : boundary}\r\n`;
        // No quotes or backslashes (busboy unescapes `\\x` in a quoted value); a filename may be a destination too.
        const bare = (v: string) => v.replace(/["\\\r\n]/g, '');
        const filename = p.filename === undefined ? undefined : safePath(bare(p.filename)) ? bare(p.filename) : 'fz/f';
        text += b.broken === 'bad-header' ? 'Content-Disposition form-data\r\n' : `Content-Disposition: form-data; name="${bare(p.name)}"${filename !== undefined ? `; filename="${filename}"` : ''}\r\n`;
        text += `\r\n${data}\r\n`;
      }
      if (b.broken !== 'unterminated') text += `--${boundary}--\r\n`;
      return { bytes: Buffer.from(text), contentType: `multipart/form-data; boundary=${boundary}` };
    }
  }
}

/** How hostile text is put into a request target. */
type Encoding = 'strict' | 'loose' | 'latin1';

function percentBytes(s: string): string {
  return [...Buffer.from(s, 'utf8')].map((b) => `%${b.toString(16).toUpperCase().padStart(2, '0')}`).join('');
}

/** Encodes for a request target. `loose` leaves `%` (and so invalid escapes) as it is; `latin1` sends raw bytes. */
function encodeTarget(s: string, how: Encoding, inQuery: boolean): string {
  let out = '';
  for (const ch of s) {
    if (/[A-Za-z0-9._~-]/.test(ch)) out += ch;
    else if (how !== 'strict' && /[!$'()*,;:@%/]/.test(ch)) out += ch;
    else if (how !== 'strict' && !inQuery && /[=&+]/.test(ch)) out += ch;
    else if (how === 'latin1' && /[\u00a1-\u00ff]/.test(ch)) out += ch;
    else out += percentBytes(ch);
  }
  return out;
}

// ── Clients ──────────────────────────────────────────────────────────────────────────────────────────────────────

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

/** One HTTP request with a raw target; rejects on a reset or after `timeoutMs`. */
function request(method: string, target: string, headers: Record<string, string>, body: Buffer | undefined, timeoutMs = 20_000): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path: target, headers, agent: false });
    const timer = setTimeout(() => {
      req.destroy();
      reject(new Error(`no answer within ${timeoutMs} ms`));
    }, timeoutMs);
    req.on('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      // A request the agent could not parse (a target over the header limit) is answered with a status and a body,
      // which a HEAD client does not expect: the answer was there.
      if (method === 'HEAD' && err.code?.startsWith('HPE_')) resolve({ status: 431, headers: {}, body: Buffer.alloc(0) });
      else reject(err);
    });
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (d: Buffer) => {
        size += d.length;
        if (size < 8 * 1024 * 1024) chunks.push(d);
      });
      res.on('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
      res.on('end', () => {
        clearTimeout(timer);
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) });
      });
    });
    req.end(body);
  });
}

/** Whether `text` is the agent's error envelope. */
function isEnvelope(text: string): boolean {
  try {
    const body = JSON.parse(text);
    return (
      typeof body.message === 'string' &&
      (ERROR_CODES as readonly string[]).includes(body.code) &&
      body.source === 'DAYTONA_DAEMON' &&
      (body.detail === undefined || typeof body.detail === 'string')
    );
  } catch {
    return false;
  }
}

/** Throws unless an HTTP answer keeps the rules: no 5xx, errors in the envelope. */
function checkAnswer(what: string, a: { status: number; body: Buffer }, method = 'GET'): void {
  if (a.status >= 500) throw new Error(`${what} → ${a.status}: ${a.body.toString().slice(0, 300)}`);
  if (a.status >= 400 && method !== 'HEAD' && !isEnvelope(a.body.toString())) {
    throw new Error(`${what} → ${a.status} without the error envelope: ${JSON.stringify(a.body.toString().slice(0, 300))}`);
  }
}

/** Throws unless the agent still runs, answers, and logged nothing that a boundary should have handled. */
async function checkAgent(since: number): Promise<void> {
  if (agent.process.exitCode !== null || agent.process.signalCode !== null) throw new Error(`the agent exited:\n${agent.output().slice(-2000)}`);
  const res = await request('GET', '/version', { authorization: `Bearer ${agent.token}` }, undefined, 10_000);
  if (res.status !== 200) throw new Error(`GET /version → ${res.status}`);
  const log = agent.output().slice(since);
  const leak = /^.*(\((uncaught|unhandled rejection)\)|unexpected error).*$/m.exec(log);
  if (leak) throw new Error(`the agent logged: ${log.slice(leak.index, leak.index + 1500)}`);
}

/** A process that exists and is not a zombie. */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

const auth = () => ({ authorization: `Bearer ${agent.token}` });

async function json(method: string, target: string, body?: unknown): Promise<{ status: number; json: any }> {
  const res = await request(method, target, { ...auth(), 'content-type': 'application/json' }, body === undefined ? undefined : Buffer.from(JSON.stringify(body)));
  const text = res.body.toString();
  return { status: res.status, json: text ? JSON.parse(text) : undefined };
}

/** Deletes every session, terminal and language server the fuzzing left. */
async function cleanUp(): Promise<void> {
  for (const s of (await json('GET', '/process/session')).json ?? []) await json('DELETE', `/process/session/${encodeURIComponent(s.sessionId)}`);
  for (const s of (await json('GET', '/process/pty')).json?.sessions ?? []) await json('DELETE', `/process/pty/${encodeURIComponent(s.id)}`);
  for (const s of (await json('GET', '/lsp/servers')).json?.servers ?? []) {
    if (!s.channel) await json('POST', '/lsp/stop', { languageId: s.languageId, pathToProject: s.pathToProject });
  }
}

// ── Set-up ───────────────────────────────────────────────────────────────────────────────────────────────────────

/** A stand-in language server: answers every request with null, publishes empty diagnostics, exits on `exit`. */
const FAKE_LANGUAGE_SERVER = `
let buf = Buffer.alloc(0);
const send = (m) => { const s = JSON.stringify(m); process.stdout.write('Content-Length: ' + Buffer.byteLength(s) + '\\r\\n\\r\\n' + s); };
process.stdin.on('data', (chunk) => {
  buf = Buffer.concat([buf, chunk]);
  for (;;) {
    const end = buf.indexOf('\\r\\n\\r\\n');
    if (end < 0) return;
    const m = /content-length:\\s*(\\d+)/i.exec(buf.subarray(0, end).toString());
    const len = m ? Number(m[1]) : 0;
    if (buf.length < end + 4 + len) return;
    const body = buf.subarray(end + 4, end + 4 + len).toString();
    buf = buf.subarray(end + 4 + len);
    let msg;
    try { msg = JSON.parse(body); } catch { continue; }
    if (!msg || typeof msg !== 'object') continue;
    if (msg.method === 'exit') process.exit(0);
    if (msg.id !== undefined && typeof msg.method === 'string') send({ jsonrpc: '2.0', id: msg.id, result: msg.method === 'initialize' ? { capabilities: {} } : null });
    const doc = msg.params && msg.params.textDocument;
    if ((msg.method === 'textDocument/didOpen' || msg.method === 'textDocument/didChange') && doc) {
      send({ jsonrpc: '2.0', method: 'textDocument/publishDiagnostics', params: { uri: doc.uri, version: doc.version, diagnostics: [] } });
    }
  }
});
process.stdin.on('end', () => process.exit(0));
`;

beforeAll(async () => {
  fakeBin = mkdtempSync(path.join(os.tmpdir(), 'cove-fuzz-bin-'));
  for (const name of ['typescript-language-server', 'pyright-langserver']) {
    writeFileSync(path.join(fakeBin, name), `#!${process.execPath}\n${FAKE_LANGUAGE_SERVER}`);
    chmodSync(path.join(fakeBin, name), 0o755);
  }
  echo = net.createServer((s) => {
    s.on('error', () => {});
    s.pipe(s);
  });
  await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
  echoPort = (echo.address() as net.AddressInfo).port;

  agent = await startAgent({ env: { PATH: `${fakeBin}:${process.env.PATH}` } });
  port = Number(new URL(agent.url).port);
  workdir = agent.workdir;
  mkdirSync(path.join(workdir, 'fz/b'), { recursive: true });
  writeFileSync(path.join(workdir, 'fz/a.txt'), 'hello\nworld\n');
  mkdirSync(path.join(workdir, 'proj'));
  writeFileSync(path.join(workdir, 'proj/main.ts'), 'export const x: number = 1;\n');
  writeFileSync(path.join(workdir, 'proj/main.py'), 'x = 1\n');
  const git = (...args: string[]) => execFileSync('git', ['-c', 'user.name=fuzz', '-c', 'user.email=fuzz@example.com', '-c', 'init.defaultBranch=main', ...args], { cwd: workdir, stdio: 'ignore' });
  git('init', '-q', 'repo');
  writeFileSync(path.join(workdir, 'repo/x.txt'), 'one\n');
  git('-C', 'repo', 'add', 'x.txt');
  git('-C', 'repo', 'commit', '-q', '-m', 'init');
  doc = (await json('GET', '/openapi.json')).json;
}, 120_000);

afterAll(async () => {
  if (agent) {
    await cleanUp().catch(() => {});
    await agent.stop();
  }
  await new Promise((r) => echo?.close(r));
  if (fakeBin) rmSync(fakeBin, { recursive: true, force: true });
  process.stdout.write(`fuzz agent: runs ${JSON.stringify(runs)}\n`);
});

/** The HTTP operations of the agent's OpenAPI document. */
function httpRoutes(): { method: string; path: string; op: any }[] {
  const out = [];
  for (const [p, item] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(item)) out.push({ method, path: p, op });
  }
  return out;
}

/** Paths of the WebSocket channels and raw upgrades, as the document names them. */
function upgradePaths(kind: 'WebSocket' | 'raw upgrade'): string[] {
  const out = [];
  for (const [p, item] of Object.entries(doc.paths)) {
    const get = item.get;
    if (!get) continue;
    if (get.summary?.endsWith(`(${kind})`) || (kind === 'WebSocket' && String(get.description ?? '').startsWith('With an Upgrade: websocket header'))) out.push(p);
  }
  return out;
}

function assertCleanOutput(): void {
  expect(agent.output()).not.toMatch(/\((uncaught|unhandled rejection)\)/);
  expect(agent.process.exitCode).toBeNull();
  expect(agent.process.signalCode).toBeNull();
}

// ── 1. HTTP routes ───────────────────────────────────────────────────────────────────────────────────────────────

interface HttpCase {
  route: { method: string; path: string; op: any };
  method: string;
  params: string[];
  paramEncoding: Encoding;
  query: [string, string][];
  queryEncoding: Encoding;
  body: BodyCase;
  auth: 'ok' | 'none' | 'wrong';
  contentType: string | null | undefined;
}

function httpCaseArb(): fc.Arbitrary<HttpCase> {
  const routes = httpRoutes();
  return fc.integer({ min: 0, max: routes.length - 1 }).chain((i) => {
    const route = routes[i];
    const params: any[] = route.op.parameters ?? [];
    const pathParams = params.filter((p) => p.in === 'path');
    const queryParams = params.filter((p) => p.in === 'query');
    const jsonSchema = route.op.requestBody?.content?.['application/json']?.schema;
    const multipart = Boolean(route.op.requestBody?.content?.['multipart/form-data']);
    const queryValue = (schema: any) => fc.oneof(fromSchema(schema).map((v) => (typeof v === 'string' ? v : JSON.stringify(v) ?? '')), hostileString());
    const query = fc
      .tuple(
        ...queryParams.map((p) => fc.option(queryValue(p.schema).map((v) => [p.name, v] as [string, string]), { freq: 4, nil: undefined })),
        fc.array(fc.tuple(fc.oneof(fc.constantFrom(...queryParams.map((p) => p.name), 'x', '__proto__', ''), fc.string({ maxLength: 6 })), hostileString()), { maxLength: 2 }),
      )
      .map((parts) => {
        const extra = parts[parts.length - 1] as [string, string][];
        return [...(parts.slice(0, -1).filter(Boolean) as [string, string][]), ...extra];
      });
    return fc.record({
      route: fc.constant(route),
      method: fc.oneof({ weight: 8, arbitrary: fc.constant(route.method.toUpperCase()) }, { weight: 1, arbitrary: fc.constantFrom('GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'HEAD', 'OPTIONS', 'PROPFIND') }),
      params: fc.tuple(...pathParams.map(() => fc.oneof(fc.constantFrom('fz-s0', 'fz-p0', '1', '80', '22', 'entrypoint'), hostileString()))),
      paramEncoding: fc.constantFrom<Encoding>('strict', 'loose', 'latin1'),
      query,
      queryEncoding: fc.constantFrom<Encoding>('strict', 'loose', 'latin1'),
      body: route.method === 'get' && !jsonSchema ? fc.oneof({ weight: 5, arbitrary: fc.constant({ kind: 'empty' as const }) }, { weight: 1, arbitrary: bodyArb(undefined, false) }) : bodyArb(jsonSchema, multipart),
      auth: fc.oneof({ weight: 12, arbitrary: fc.constant('ok' as const) }, { weight: 1, arbitrary: fc.constantFrom('none' as const, 'wrong' as const) }),
      contentType: fc.oneof({ weight: 6, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: fc.constantFrom(null, 'text/plain', 'multipart/form-data', 'application/x-www-form-urlencoded', 'application/json; charset=latin1', '*/*', 'x') }),
    });
  });
}

/** Builds the request of a case: target, headers, body, all harmless. */
function renderHttpCase(c: HttpCase): { method: string; target: string; headers: Record<string, string>; body?: Buffer } {
  let i = 0;
  const target = c.route.path.replace(/\{(\w+)\}/g, () => encodeTarget(c.params[i++] ?? 'x', c.paramEncoding, false));
  const query = c.query
    .map(([k, v]) => {
      let value = encodeTarget(v, c.queryEncoding, true);
      if (!safePath(value)) value = 'fz%2Fq';
      if (c.route.path.startsWith('/lsp/') && k === 'pathToProject') value = v.length % 3 === 0 ? 'nope' : 'proj';
      return `${encodeTarget(k, 'strict', true)}=${value}`;
    })
    .join('&');
  const routeKey = `${c.method.toLowerCase()} ${c.route.path}`;
  const rendered = renderBody(c.body, routeKey);
  const headers: Record<string, string> = {};
  if (c.auth === 'ok') Object.assign(headers, auth());
  else if (c.auth === 'wrong') headers.authorization = 'Bearer not-the-token';
  const contentType = c.contentType === undefined ? rendered.contentType : c.contentType;
  if (contentType) headers['content-type'] = contentType;
  if (rendered.bytes) headers['content-length'] = String(rendered.bytes.length);
  return { method: c.method, target: query ? `${target}?${query}` : target, headers, body: rendered.bytes };
}

// ── 2. WebSocket channels ────────────────────────────────────────────────────────────────────────────────────────

type Frame =
  | { kind: 'text'; data: string }
  | { kind: 'binary'; data: Uint8Array }
  | { kind: 'rawtext'; data: Uint8Array }
  | { kind: 'huge'; size: number; binary: boolean }
  | { kind: 'ping' | 'pong'; data: Uint8Array }
  | { kind: 'fragments'; parts: string[] }
  | { kind: 'close'; code: number; reason: string }
  | { kind: 'violation'; which: number; data: Uint8Array };

const controlMessage = fc
  .record(
    {
      type: fc.oneof(fc.constantFrom('start', 'signal', 'close-stdin', 'resize', 'control', 'input', 'exit', 'ping', ''), fc.constant(42), fc.constant(null)),
      command: fc.oneof(fc.constant(42), fc.constant(''), fc.constant(null), fc.constant(['x'])),
      signal: fc.oneof(fc.constantFrom('SIGINT', 'SIGTERM', 'SIGKILL', 'SIGHUP', 'SIGCONT', 'SIGFOO', 'INT', ''), fc.integer()),
      cols: fc.oneof(fc.integer(), fc.string({ maxLength: 3 })),
      timeout: fc.oneof(fc.integer(), fc.double()),
      data: fc.string({ maxLength: 20 }),
    },
    { requiredKeys: ['type'] },
  )
  .map((m) => JSON.stringify(m));

const jsonRpc = fc
  .record(
    {
      jsonrpc: fc.constantFrom('2.0', '1.0', 2),
      id: fc.oneof(fc.nat(), fc.string({ maxLength: 5 }), fc.constant(null), fc.constant({})),
      method: fc.oneof(fc.constantFrom('initialize', 'initialized', 'shutdown', 'exit', 'textDocument/didOpen', 'textDocument/completion', '$/cancelRequest'), fc.string({ maxLength: 10 })),
      params: fc.oneof(fc.jsonValue({ maxDepth: 3 }), fc.record({ processId: fc.jsonValue({ maxDepth: 1 }), rootUri: fc.oneof(fc.constant(null), fc.string({ maxLength: 10 })) })),
    },
    { requiredKeys: ['method'] },
  )
  .map((m) => JSON.stringify(m));

const frameArb: fc.Arbitrary<Frame> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('text' as const), data: fc.oneof(controlMessage, jsonRpc, fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v)), fc.string({ maxLength: 64 }), fc.constantFrom(...INVALID_JSON)) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('binary' as const), data: fc.uint8Array({ maxLength: 512 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('rawtext' as const), data: fc.uint8Array({ minLength: 1, maxLength: 32 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('huge' as const), size: fc.constantFrom(300 * 1024, 1024 * 1024, 4 * 1024 * 1024), binary: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constantFrom('ping' as const, 'pong' as const), data: fc.uint8Array({ maxLength: 125 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('fragments' as const), parts: fc.array(fc.string({ maxLength: 8 }), { minLength: 2, maxLength: 4 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('close' as const), code: fc.constantFrom(1000, 1001, 1003, 3000, 4000, 4999), reason: fc.string({ maxLength: 30 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('violation' as const), which: fc.nat({ max: 8 }), data: fc.uint8Array({ maxLength: 40 }) }) },
  // Terminal control sequences with huge counts (a terminal echoes them into the agent's screen emulator).
  {
    weight: 1,
    arbitrary: fc
      .record({
        prefix: fc.constantFrom('', '?', '>'),
        count: fc.constantFrom(0, 1, 999, 65535, 2000000000, 2147483647),
        final: fc.constantFrom(...'@ABCDEFGHIJKLMPSTXZ`abdefghlmnrstq'.split('')),
      })
      .map(({ prefix, count, final }) => ({ kind: 'text' as const, data: `x\x1b[${prefix}${count}${final}\n` })),
  },
);

/** A masked client frame with any header bits. */
function rawFrame(first: number, payload: Buffer, opts: { mask?: boolean; length?: bigint } = {}): Buffer {
  const mask = opts.mask ?? true;
  const len = opts.length ?? BigInt(payload.length);
  let header: Buffer;
  if (len < 126n) header = Buffer.from([first, (mask ? 0x80 : 0) | Number(len)]);
  else if (len < 65536n) {
    header = Buffer.alloc(4);
    header[0] = first;
    header[1] = (mask ? 0x80 : 0) | 126;
    header.writeUInt16BE(Number(len), 2);
  } else {
    header = Buffer.alloc(10);
    header[0] = first;
    header[1] = (mask ? 0x80 : 0) | 127;
    header.writeBigUInt64BE(len, 2);
  }
  if (!mask) return Buffer.concat([header, payload]);
  const key = Buffer.from([1, 2, 3, 4]);
  return Buffer.concat([header, key, Buffer.from(payload.map((b, i) => b ^ key[i % 4]))]);
}

/** Frames that break the protocol: the server must close this one connection, nothing else. */
function violation(which: number, data: Buffer): Buffer {
  switch (which) {
    case 0:
      return rawFrame(0x81, data, { mask: false }); // unmasked
    case 1:
      return rawFrame(0xc1, data); // RSV1 without an extension
    case 2:
      return rawFrame(0x83, data); // reserved opcode
    case 3:
      return rawFrame(0x09, data.subarray(0, 10)); // fragmented ping
    case 4:
      return rawFrame(0x89, Buffer.alloc(200)); // control frame over 125 bytes
    case 5:
      return rawFrame(0x80, data); // continuation without a start
    case 6:
      return rawFrame(0x88, Buffer.from([0x03, 0xed])); // close code 1005, never sent
    case 7:
      return rawFrame(0x88, Buffer.concat([Buffer.from([0x03, 0xe8]), Buffer.from([0xc0, 0xaf])])); // bad UTF-8 reason
    default:
      return rawFrame(0x82, Buffer.alloc(0), { length: 2n ** 40n }); // over maxPayload
  }
}

interface WsResult {
  opened: boolean;
  refused?: { status: number; body: string };
  closed?: { code: number; reason: string };
  texts: string[];
}

/** Opens a channel, runs `setup`, sends the frames, closes, and reports how it went. */
async function runChannel(target: string, protocols: string[], frames: Frame[], setup?: (ws: WebSocket, texts: string[]) => Promise<void>): Promise<WsResult> {
  const ws = new WebSocket(`ws://127.0.0.1:${port}${target}`, [...new Set(protocols)], { headers: auth(), handshakeTimeout: 10_000, maxPayload: 64 * 1024 * 1024 });
  const result: WsResult = { opened: false, texts: [] };
  ws.on('error', () => {});
  ws.on('message', (data, isBinary) => {
    if (!isBinary) result.texts.push(data.toString());
  });
  const closed = new Promise<void>((resolve) =>
    ws.on('close', (code, reason) => {
      result.closed = { code, reason: reason.toString() };
      resolve();
    }),
  );
  const outcome = await new Promise<'open' | 'refused' | 'closed'>((resolve) => {
    ws.once('open', () => resolve('open'));
    ws.once('unexpected-response', (_req, res) => {
      const chunks: Buffer[] = [];
      res.on('data', (d: Buffer) => chunks.push(d));
      res.on('end', () => {
        result.refused = { status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() };
        resolve('refused');
      });
    });
    void closed.then(() => resolve('closed'));
  });
  if (outcome !== 'open') return result;
  result.opened = true;
  if (setup) await setup(ws, result.texts);
  for (const f of frames) {
    if (ws.readyState !== WebSocket.OPEN) break;
    const sent = new Promise<void>((resolve) => {
      const done = () => resolve();
      try {
        switch (f.kind) {
          case 'text':
            return ws.send(f.data, done);
          case 'binary':
            return ws.send(Buffer.from(f.data), { binary: true }, done);
          case 'rawtext':
            return ws.send(Buffer.from(f.data), { binary: false }, done);
          case 'huge':
            return ws.send(Buffer.alloc(f.size, 0x61), { binary: f.binary }, done);
          case 'ping':
            return ws.ping(Buffer.from(f.data), undefined, done);
          case 'pong':
            return ws.pong(Buffer.from(f.data), undefined, done);
          case 'fragments':
            f.parts.forEach((p, n) => ws.send(p, { fin: n === f.parts.length - 1 }, n === f.parts.length - 1 ? done : undefined));
            return;
          case 'close':
            ws.close(f.code, f.reason.slice(0, 30));
            return done();
          case 'violation': {
            const socket = (ws as unknown as { _socket: net.Socket })._socket;
            socket.write(violation(f.which, Buffer.from(f.data)), () => done());
            return;
          }
        }
      } catch {
        done();
      }
    });
    await sent;
    if (f.kind === 'violation' || f.kind === 'close') break;
  }
  await new Promise((r) => setTimeout(r, 20));
  if (ws.readyState === WebSocket.OPEN) ws.close(1000);
  const timer = setTimeout(() => ws.terminate(), 5000);
  await closed;
  clearTimeout(timer);
  return result;
}

/** Throws unless a channel ended by the rules: a refusal is a 4xx envelope, a close never reports an internal error. */
function checkChannel(what: string, r: WsResult): void {
  if (r.refused) checkAnswer(`${what} (upgrade)`, { status: r.refused.status, body: Buffer.from(r.refused.body) });
  if (r.closed && (r.closed.code === 4500 || /unexpected|error id/i.test(r.closed.reason))) {
    throw new Error(`${what} closed with ${r.closed.code} ${r.closed.reason}`);
  }
  for (const t of r.texts) if (/error id|failed unexpectedly/.test(t)) throw new Error(`${what} sent ${t}`);
}

/** Replaces frames that would start a command the test did not choose. */
function harmlessExecFrames(frames: Frame[]): Frame[] {
  const check = (text: string): string | undefined => {
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      return undefined;
    }
    const valid = ExecClientMessage.safeParse(parsed);
    if (!valid.success) return undefined;
    if (valid.data.type === 'start') return JSON.stringify({ type: 'start', command: 'cat' });
    // A stopped command would not see its stdin close: the test could not tell a leak from a stop.
    if (valid.data.type === 'signal' && valid.data.signal === 'SIGSTOP') return JSON.stringify({ type: 'signal', signal: 'SIGCONT' });
    return undefined;
  };
  return frames.map((f) => {
    const text = f.kind === 'text' ? f.data : f.kind === 'rawtext' ? Buffer.from(f.data).toString('utf8') : f.kind === 'fragments' ? f.parts.join('') : undefined;
    const replacement = text === undefined ? undefined : check(text);
    return replacement === undefined ? f : { kind: 'text', data: replacement };
  });
}

/** Any frame that could start a run runs `pass`: no generated Python ever executes. */
function harmlessInterpreterFrames(frames: Frame[]): Frame[] {
  return frames.map((f) => {
    const text = f.kind === 'text' ? f.data : f.kind === 'rawtext' ? Buffer.from(f.data).toString('utf8') : f.kind === 'fragments' ? f.parts.join('') : undefined;
    if (text === undefined) return f;
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      return f;
    }
    if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed) || typeof (parsed as { code?: unknown }).code !== 'string') return f;
    return { kind: 'text', data: JSON.stringify({ ...parsed, code: 'pass' }) };
  });
}

const started = (texts: string[]) => texts.map((t) => /"type":"started","pid":(\d+)/.exec(t)?.[1]).filter(Boolean).map(Number);

let channelSeq = 0;

/** A channel case: which channel, its hostile parts, and the frames. */
interface ChannelCase {
  channel: string;
  valid: boolean;
  id: string;
  query: [string, string][];
  protocols: string[];
  frames: Frame[];
}

const channelCaseArb = (channels: string[]): fc.Arbitrary<ChannelCase> =>
  fc.record({
    channel: fc.constantFrom(...channels),
    valid: fc.oneof({ weight: 4, arbitrary: fc.constant(true) }, { weight: 1, arbitrary: fc.constant(false) }),
    id: hostileString(),
    query: fc.array(fc.tuple(fc.constantFrom('path', 'ignore', 'recursive', 'initial', 'ignoreDefaults', 'languageId', 'pathToProject', 'id', 'cols', 'rows', 'cwd', 'follow', 'x'), hostileString()), { maxLength: 4 }),
    protocols: fc.array(
      fc.oneof(
        fc.constantFrom(PTY_EXIT_CONTROL_PROTOCOL, `${PTY_ENVS_PROTOCOL_PREFIX}!!!`, `${PTY_ENVS_PROTOCOL_PREFIX}${Buffer.from('[1]').toString('base64url')}`, `${PTY_ENVS_PROTOCOL_PREFIX}${Buffer.from('{"A":1}').toString('base64url')}`, `${PTY_ENVS_PROTOCOL_PREFIX}`),
        fc.dictionary(fc.string({ maxLength: 4 }), fc.string({ maxLength: 8 }), { maxKeys: 2 }).map((e) => encodeEnvsProtocol(harmlessEnvs(e) as Record<string, string>)),
        fc.stringMatching(/^[A-Za-z0-9~_-]{1,12}$/),
      ),
      { maxLength: 2 },
    ),
    frames: fc.array(frameArb, { minLength: 1, maxLength: 6 }),
  });

function queryString(pairs: [string, string][]): string {
  const q = pairs
    .map(([k, v]) => {
      const value = encodeURIComponent(v.replace(/[\uD800-\uDFFF]/g, '?'));
      return `${k}=${safePath(value) ? value : 'fz'}`;
    })
    .join('&');
  return q ? `?${q}` : '';
}

/** Runs one channel case and checks what it must leave behind. */
async function channelCase(c: ChannelCase): Promise<void> {
  const n = ++channelSeq;
  switch (c.channel) {
    case '/process/exec/stream': {
      const frames = harmlessExecFrames(c.frames);
      const r = await runChannel('/process/exec/stream', [], frames, async (ws, texts) => {
        if (!c.valid) return;
        ws.send(JSON.stringify({ type: 'start', command: 'cat' }));
        await waitFor(() => started(texts).length > 0 || ws.readyState !== WebSocket.OPEN, 10_000, 'the command to start');
      });
      checkChannel('exec stream', r);
      for (const pid of started(r.texts)) await waitFor(() => !alive(pid), 10_000, `cat (${pid}) to end with its channel`);
      return;
    }
    case '/process/pty/{sessionId}/connect': {
      const id = `fz-w${n}`;
      expect((await json('POST', '/process/pty', { id })).status).toBe(201);
      const pid: number = (await json('GET', `/process/pty/${id}`)).json.processId;
      const target = c.valid ? `/process/pty/${id}/connect` : `/process/pty/${encodeTarget(c.id, 'loose', false)}/connect`;
      // Input goes to a `cat`, never to a shell: the shell is replaced first. Another id attaches to nothing.
      const frames = c.valid ? [...c.frames] : [];
      const becomeCat = async (ws: WebSocket) => {
        ws.send('exec cat\n');
        const isCat = () => !alive(pid) || readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'cat';
        // A login shell on a loaded machine can take long to start; its input must never be fuzzed meanwhile.
        if (!(await waitFor(isCat, 30_000, 'the shell to become cat').catch(() => false))) {
          frames.length = 0;
          runs.ptySkipped = (runs.ptySkipped ?? 0) + 1;
        }
      };
      const protocols = c.protocols.filter((p) => !p.startsWith(PTY_ENVS_PROTOCOL_PREFIX));
      const r = await runChannel(target, protocols, frames, c.valid ? becomeCat : undefined);
      checkChannel('pty connect', r);
      expect([204, 404]).toContain((await json('DELETE', `/process/pty/${id}`)).status);
      await waitFor(() => !alive(pid), 10_000, `the terminal (${pid}) to end once deleted`);
      return;
    }
    case '/process/pty/create-connect': {
      const id = c.valid ? `fz-c${n}` : c.id;
      const query = queryString([['id', id], ...c.query.filter(([k]) => k === 'cols' || k === 'rows' || k === 'cwd')]);
      // No frames: until it is replaced, input would reach a login shell.
      const r = await runChannel(`/process/pty/create-connect${query}`, c.protocols, []);
      checkChannel('pty create-connect', r);
      const info = await json('GET', `/process/pty/${encodeURIComponent(id.replace(/[\uD800-\uDFFF]/g, '?'))}`);
      if (info.status === 200 && info.json.processId) {
        await json('DELETE', `/process/pty/${encodeURIComponent(id)}`);
        await waitFor(() => !alive(info.json.processId), 10_000, 'the created terminal to end once deleted');
      }
      return;
    }
    case '/lsp/ws': {
      const languageId = c.valid ? ['typescript', 'python', 'javascript'][n % 3] : c.id;
      const query = queryString([
        ['languageId', languageId],
        ['pathToProject', c.valid ? 'proj' : 'nope'],
      ]);
      let pids: number[] = [];
      const r = await runChannel(`/lsp/ws${query}`, [], c.frames, async () => {
        pids = ((await json('GET', '/lsp/servers')).json.servers as any[]).filter((s) => s.channel && s.pid).map((s) => s.pid);
      });
      checkChannel('lsp channel', r);
      for (const pid of pids) await waitFor(() => !alive(pid), 10_000, `the channel's language server (${pid}) to end`);
      return;
    }
    case '/files/watch': {
      const pairs: [string, string][] = c.valid ? [['path', n % 2 ? 'fz' : 'proj'], ...c.query.filter(([k]) => k !== 'path')] : c.query;
      const r = await runChannel(`/files/watch${queryString(pairs)}`, [], c.frames);
      checkChannel('watch', r);
      await waitFor(async () => (await json('GET', '/files/watchers')).json.watchers.length === 0, 10_000, 'the watch to end with its channel');
      return;
    }
    case '/process/session/{sessionId}/command/{commandId}/logs': {
      const target = c.valid ? `/process/session/fz-log/command/${logCommand}/logs` : `/process/session/${encodeTarget(c.id, 'loose', false)}/command/${encodeTarget(c.id, 'loose', false)}/logs`;
      checkChannel('command logs', await runChannel(`${target}${queryString(c.query.filter(([k]) => k === 'follow'))}`, [], c.frames));
      return;
    }
    case '/process/interpreter/execute': {
      const frames = harmlessInterpreterFrames(c.frames);
      const first = async (ws: WebSocket) => ws.send(JSON.stringify({ code: 'pass' }));
      checkChannel('interpreter', await runChannel('/process/interpreter/execute', c.protocols, frames, c.valid ? first : undefined));
      return;
    }
    case '/process/session/entrypoint/logs':
      checkChannel('entrypoint logs', await runChannel(`/process/session/entrypoint/logs${queryString(c.query)}`, [], c.frames));
      return;
    default:
      throw new Error(`no fuzz set-up for the channel ${c.channel}: add one`);
  }
}

let logCommand = '';

// ── 3. Raw upgrades ──────────────────────────────────────────────────────────────────────────────────────────────

interface UpgradeCase {
  path: string;
  param: string;
  query: [string, string][];
  encoding: Encoding;
  auth: 'ok' | 'none' | 'wrong' | 'basic' | 'twice';
  upgrade: string | null;
  connection: string | null;
  key: string | null;
  version: string | null;
  protocol: string | null;
  host: string | null;
  after: 'wait' | 'reset' | 'end' | 'bytes' | 'frames';
  bytes: Uint8Array;
  frames: { type: number; payload: Uint8Array }[];
  start: { pty: unknown; env: Record<string, string> } | null;
}

const upgradeCaseArb = (paths: string[]): fc.Arbitrary<UpgradeCase> =>
  fc.record({
    path: fc.oneof({ weight: 6, arbitrary: fc.constantFrom(...paths) }, { weight: 1, arbitrary: fc.constantFrom('/', '/nope', '//x/ssh/session', '/ssh/../ssh/session', '/ssh/session/', '/SSH/SESSION', '/port//tunnel', '*') }),
    param: fc.oneof(fc.constantFrom(String(0), '1', '65535', '65536', '-1', '1e3', '0x50', ' 80'), hostileString()),
    query: fc.array(fc.tuple(fc.constantFrom('host', 'port', 'address', 'id', 'languageId', 'pathToProject', 'path', 'x'), hostileString()), { maxLength: 4 }),
    encoding: fc.constantFrom<Encoding>('strict', 'loose', 'latin1'),
    auth: fc.oneof({ weight: 6, arbitrary: fc.constant('ok' as const) }, { weight: 1, arbitrary: fc.constantFrom('none' as const, 'wrong' as const, 'basic' as const, 'twice' as const) }),
    upgrade: fc.constantFrom('websocket', 'cove-tcp', 'cove-ssh', 'WebSocket', '', 'h2c', 'websocket, cove-ssh', null, 'x\x7f'),
    connection: fc.constantFrom('Upgrade', 'keep-alive, Upgrade', 'close', null, 'upgrade, upgrade'),
    key: fc.constantFrom('dGhlIHNhbXBsZSBub25jZQ==', 'short', '', null, '!!!!!!!!!!!!!!!!!!!!!!!!'),
    version: fc.constantFrom('13', '8', 'x', '', null, '13, 13'),
    protocol: fc.oneof(fc.constant(null), fc.constantFrom(PTY_EXIT_CONTROL_PROTOCOL, `${PTY_ENVS_PROTOCOL_PREFIX}%%%`, ',,,', 'a b', 'a,,b'), fc.string({ maxLength: 20 })),
    host: fc.constantFrom('127.0.0.1', '', null, '[::', 'a b', 'x'.repeat(300)),
    after: fc.constantFrom('wait' as const, 'reset' as const, 'end' as const, 'bytes' as const, 'frames' as const),
    bytes: fc.uint8Array({ maxLength: 200 }),
    frames: fc.array(fc.record({ type: fc.integer({ min: 0, max: 255 }).filter((t) => t !== FRAME.start), payload: fc.uint8Array({ maxLength: 64 }) }), { maxLength: 4 }),
    start: fc.option(
      fc.record({
        pty: fc.oneof(fc.constant(undefined), fc.record({ term: fc.oneof(fc.constant('xterm'), hostileString()), cols: fc.oneof(fc.integer({ min: 1, max: 300 }), fc.integer()), rows: fc.oneof(fc.integer({ min: 1, max: 100 }), fc.integer()) })),
        env: fc.dictionary(fc.string({ maxLength: 4 }), fc.oneof(fc.string({ maxLength: 8 }), fc.constant('a\0b')), { maxKeys: 2 }),
      }),
      { nil: null },
    ),
  });

/** A frame of the SSH session tunnel. */
const sshFrame = (type: number, payload: Buffer) => {
  const header = Buffer.alloc(5);
  header[0] = type;
  header.writeUInt32BE(payload.length, 1);
  return Buffer.concat([header, payload]);
};

/** The request head and what follows it, made harmless: tunnels only reach the echo server, sessions only run `true`. */
function renderUpgrade(c: UpgradeCase): { head: string; after: Buffer } {
  let pathname = c.path.replace(/\{(\w+)\}/g, () => encodeTarget(c.param, c.encoding, false));
  let query = c.query
    .map(([k, v]) => {
      const value = encodeTarget(v, c.encoding, true);
      return `${k}=${safePath(value) ? value : 'fz'}`;
    })
    .join('&');
  // Every way the agent might read the target: as it is, normalised as a path, or resolved against a base URL.
  const target = `${pathname}${query ? `?${query}` : ''}`;
  const parsed: URL[] = [];
  for (const make of [() => new URL(`http://agent${target}`), () => new URL(target, 'http://agent')]) {
    try {
      parsed.push(make());
    } catch {
      /* the agent refuses it too */
    }
  }
  const names = new Set([pathname, ...parsed.map((u) => u.pathname)].map((p) => p.replace(/\/$/, '')));
  const is = (p: string) => names.has(p);
  // Queries that could make the agent connect or listen somewhere: only the echo server, only loopback.
  for (const params of [Object.fromEntries(new URLSearchParams(query)), ...parsed.map((u) => Object.fromEntries(u.searchParams))]) {
    if (SshConnectQuery.safeParse(params).success || SshListenQuery.safeParse(params).success) {
      query = is('/ssh/listen') ? 'address=127.0.0.1&port=0&host=127.0.0.1' : `host=127.0.0.1&address=127.0.0.1&port=${echoPort}`;
    }
  }
  // A tunnel reaches the echo server or nothing.
  const tunnel = [...names].map((p) => /^\/port\/([^/]*)\/tunnel$/.exec(p)?.[1]).filter((p) => p !== undefined);
  if (tunnel.length) pathname = tunnel.some((p) => /^\d+$/.test(decodeURIComponentSafe(p!).trim())) ? `/port/${echoPort}/tunnel` : '/port/x/tunnel';
  const lines = [`GET ${pathname}${query ? `?${query}` : ''} HTTP/1.1`];
  if (c.host !== null) lines.push(`Host: ${c.host}`);
  if (c.auth === 'ok' || c.auth === 'twice') lines.push(`Authorization: Bearer ${agent.token}`);
  if (c.auth === 'twice') lines.push('Authorization: Bearer other');
  if (c.auth === 'wrong') lines.push('Authorization: Bearer nope');
  if (c.auth === 'basic') lines.push('Authorization: Basic eDp5');
  if (c.upgrade !== null) lines.push(`Upgrade: ${c.upgrade}`);
  if (c.connection !== null) lines.push(`Connection: ${c.connection}`);
  if (c.key !== null) lines.push(`Sec-WebSocket-Key: ${c.key}`);
  if (c.version !== null) lines.push(`Sec-WebSocket-Version: ${c.version}`);
  if (c.protocol !== null) lines.push(`Sec-WebSocket-Protocol: ${c.protocol.replace(/[\r\n\0]/g, '')}`);
  let after = Buffer.alloc(0);
  // Bytes after a WebSocket handshake would be frames, and could reach a terminal: none are sent.
  const websocket = c.upgrade?.toLowerCase() === 'websocket';
  if (c.after === 'bytes' && !websocket) {
    // Bytes after an SSH session's head are frames: a start frame must never be among them.
    after = Buffer.from(Buffer.from(c.bytes).map((b) => (b === FRAME.start ? 0 : b)));
  }
  if (c.after === 'frames' && !websocket) {
    const frames = c.frames.map((f) => sshFrame(f.type, Buffer.from(f.payload)));
    if (c.start) {
      const start = { kind: 'exec', command: 'true', pty: c.start.pty, env: harmlessEnvs(c.start.env) };
      // Valid or not, the only thing this start can run is `true`.
      frames.unshift(sshFrame(FRAME.start, Buffer.from(JSON.stringify(start))));
    }
    after = Buffer.concat(frames);
  }
  return { head: `${lines.join('\r\n')}\r\n\r\n`, after };
}

function decodeURIComponentSafe(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

/** Writes bytes on a fresh connection and collects the answer until the agent closes it (or `waitMs` pass). */
function exchange(bytes: Buffer, opts: { after?: Buffer; mode?: 'wait' | 'reset' | 'end'; waitMs?: number } = {}): Promise<{ data: Buffer; closed: boolean }> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    let done = false;
    let settling = false;
    const finish = (closed: boolean) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      resolve({ data: Buffer.concat(chunks), closed });
    };
    const timer = setTimeout(() => finish(false), opts.waitMs ?? 1500);
    socket.on('data', (d) => {
      chunks.push(d);
      // A switched or kept-alive connection stays open: what follows a head (a body, a first frame) comes at once.
      if (!settling && Buffer.concat(chunks).includes('\r\n\r\n')) {
        settling = true;
        setTimeout(() => finish(false), 100);
      }
    });
    socket.on('error', () => finish(true));
    socket.on('close', () => finish(true));
    socket.on('connect', () => {
      socket.write(opts.after?.length ? Buffer.concat([bytes, opts.after]) : bytes);
      if (opts.mode === 'reset') socket.resetAndDestroy();
      else if (opts.mode === 'end') socket.end();
    });
  });
}

/** Status codes of every response head in a byte stream. Throws when the stream is not HTTP at all. */
function statuses(data: Buffer): number[] {
  const text = data.toString('latin1');
  if (text.length && !text.startsWith('HTTP/1.1 ')) throw new Error(`not an HTTP answer: ${JSON.stringify(text.slice(0, 200))}`);
  return [...text.matchAll(/HTTP\/1\.1 (\d{3})/g)].map((m) => Number(m[1]));
}

/** The body of a chunked message (its first chunks, as far as they are complete). */
function dechunk(text: string): string {
  let out = '';
  for (let at = 0; ; ) {
    const eol = text.indexOf('\r\n', at);
    const size = eol < 0 ? NaN : parseInt(text.slice(at, eol), 16);
    if (!(size > 0)) return out;
    out += text.slice(eol + 2, eol + 2 + size);
    at = eol + 2 + size + 2;
  }
}

/** Throws unless the answer to a raw request is an HTTP status below 500 (with the envelope for errors) or nothing. */
function checkRawAnswer(what: string, data: Buffer): void {
  const codes = statuses(data);
  if (codes.some((s) => s >= 500)) throw new Error(`${what} → ${data.toString('latin1').slice(0, 400)}`);
  const text = data.toString('latin1');
  const first = codes[0];
  if (first !== undefined && first >= 400) {
    const split = text.indexOf('\r\n\r\n');
    const head = text.slice(0, split);
    const length = /\r\ncontent-length: *(\d+)/i.exec(head)?.[1];
    let body = split >= 0 ? data.subarray(split + 4, length === undefined ? undefined : split + 4 + Number(length)).toString() : '';
    if (/\r\ntransfer-encoding: *chunked/i.test(head)) body = dechunk(body);
    if (!isEnvelope(body)) throw new Error(`${what} → ${first} without the error envelope: ${JSON.stringify(text.slice(0, 400))}`);
  }
}

// ── 4. Raw HTTP/1.1 bytes ────────────────────────────────────────────────────────────────────────────────────────

type BytesCase =
  | { kind: 'random'; bytes: Uint8Array }
  | { kind: 'truncated'; request: number; cut: number }
  | { kind: 'huge'; how: 'headers' | 'line' | 'value' }
  | { kind: 'chunked'; request: number; chunks: string[] }
  | { kind: 'framing'; request: number; headers: string[]; body: string }
  | { kind: 'mangled'; request: number; at: number; insert: string }
  | { kind: 'pipelined'; requests: number[]; tail: Uint8Array };

/**
 * Requests with harmless bodies (the upload writes inside the work dir). The command request comes last: only whole,
 * cut or mangled copies of it are sent, never a body of generated bytes.
 */
function harmlessRequests(): { head: string; body: string }[] {
  const a = `Authorization: Bearer ${agent.token}`;
  return [
    { head: `GET /version HTTP/1.1\r\nHost: a\r\n${a}`, body: '' },
    { head: `POST /files/replace HTTP/1.1\r\nHost: a\r\n${a}\r\nContent-Type: application/json`, body: JSON.stringify({ files: ['fz/a.txt'], pattern: 'zzz', newValue: 'y' }) },
    { head: `POST /files/upload?path=fz/up.bin HTTP/1.1\r\nHost: a\r\n${a}\r\nContent-Type: application/octet-stream`, body: 'bytes' },
    { head: `POST /lsp/start HTTP/1.1\r\nHost: a\r\n${a}`, body: '{"languageId":"cobol"' },
    { head: `GET /files?path=fz HTTP/1.1\r\nHost: a\r\n${a}`, body: '' },
    { head: `POST /process/execute HTTP/1.1\r\nHost: a\r\n${a}\r\nContent-Type: application/json`, body: JSON.stringify({ command: 'true' }) },
  ];
}

const bytesCaseArb = (count: number): fc.Arbitrary<BytesCase> => {
  const request = fc.integer({ min: 0, max: count - 1 });
  const bodyFree = fc.integer({ min: 0, max: count - 2 });
  return fc.oneof(
    fc.record({ kind: fc.constant('random' as const), bytes: fc.uint8Array({ maxLength: 2048 }) }),
    fc.record({ kind: fc.constant('truncated' as const), request, cut: fc.nat() }),
    fc.record({ kind: fc.constant('huge' as const), how: fc.constantFrom('headers' as const, 'line' as const, 'value' as const) }),
    fc.record({
      kind: fc.constant('chunked' as const),
      request: bodyFree,
      chunks: fc.array(fc.oneof(fc.constantFrom('5\r\nhello\r\n', 'zz\r\nx\r\n', '-1\r\n\r\n', 'ffffffffffffffffff\r\n', '5;a=b\r\nhello\r\n', '5\r\nhel', '5\nhello\n', '0\r\n\r\n', '0\r\nX-Trailer: 1\r\n\r\n', '3\r\nabcdef\r\n', ' 5\r\nhello\r\n', '5 \r\nhello\r\n'), fc.string({ maxLength: 10 })), { maxLength: 5 }),
    }),
    fc.record({
      kind: fc.constant('framing' as const),
      request: bodyFree,
      headers: fc.array(fc.constantFrom('Content-Length: 5', 'Content-Length: -1', 'Content-Length: abc', 'Content-Length: 99999999999999999999', 'Content-Length: 5, 6', 'Transfer-Encoding: chunked', 'Transfer-Encoding: gzip', 'Transfer-Encoding: chunked, chunked', 'Transfer-Encoding: identity', 'Expect: 100-continue', 'Expect: nope', 'Connection: close', 'Content-Length: 0', 'Content-Length: 3'), { maxLength: 3 }),
      body: fc.string({ maxLength: 20 }),
    }),
    fc.record({ kind: fc.constant('mangled' as const), request, at: fc.nat(), insert: fc.constantFrom('\0', '\r', '\n', ' ', '\x7f', '\xff', '\r\n ', ':', '\r\n\r\n', 'HTTP/1.1', '\t') }),
    fc.record({ kind: fc.constant('pipelined' as const), requests: fc.array(request, { minLength: 2, maxLength: 4 }), tail: fc.uint8Array({ maxLength: 64 }) }),
  );
};

function renderBytes(c: BytesCase): Buffer {
  const requests = harmlessRequests();
  const whole = (r: { head: string; body: string }, extra: string[] = [], body = r.body) =>
    `${r.head}\r\n${[`Content-Length: ${Buffer.byteLength(body)}`, ...extra].join('\r\n')}\r\n\r\n${body}`;
  switch (c.kind) {
    case 'random':
      return Buffer.from(c.bytes);
    case 'truncated': {
      const text = whole(requests[c.request]);
      return Buffer.from(text.slice(0, c.cut % text.length));
    }
    case 'huge': {
      const a = `Authorization: Bearer ${agent.token}`;
      if (c.how === 'headers') return Buffer.from(`GET /version HTTP/1.1\r\nHost: a\r\n${a}\r\n${Array.from({ length: 2000 }, (_, i) => `X-${i}: ${'v'.repeat(10)}`).join('\r\n')}\r\n\r\n`);
      if (c.how === 'line') return Buffer.from(`GET /files?path=${'a'.repeat(40_000)} HTTP/1.1\r\nHost: a\r\n${a}\r\n\r\n`);
      return Buffer.from(`GET /version HTTP/1.1\r\nHost: a\r\n${a}\r\nX-Big: ${'v'.repeat(40_000)}\r\n\r\n`);
    }
    case 'chunked':
      return Buffer.from(`${requests[c.request].head}\r\nTransfer-Encoding: chunked\r\n\r\n${c.chunks.join('')}`);
    case 'framing':
      return Buffer.from(`${requests[c.request].head}\r\n${c.headers.join('\r\n')}${c.headers.length ? '\r\n' : ''}\r\n${c.body}`);
    case 'mangled': {
      const text = whole(requests[c.request]);
      const at = c.at % text.length;
      return Buffer.from(text.slice(0, at) + c.insert + text.slice(at), 'latin1');
    }
    case 'pipelined':
      return Buffer.concat([...c.requests.map((i) => Buffer.from(whole(requests[i]))), Buffer.from(c.tail)]);
  }
}

// ── The properties ───────────────────────────────────────────────────────────────────────────────────────────────

describe('agent under hostile input', () => {
  it(
    'answers hostile requests on every HTTP route with the envelope, never a 500, and keeps serving',
    async () => {
      runs.http = 0;
      await fuzz(
        'agent http routes',
        fc.asyncProperty(httpCaseArb(), async (c) => {
          runs.http++;
          const since = agent.output().length;
          const r = renderHttpCase(c);
          const what = `${r.method} ${r.target.slice(0, 300)}`;
          const answer = await request(r.method, r.target, r.headers, r.body);
          checkAnswer(what, answer, r.method);
          await checkAgent(since);
        }),
        BUDGET.http,
      );
      await cleanUp();
      assertCleanOutput();
    },
    timeoutFor(BUDGET.http),
  );

  it(
    'keeps every WebSocket channel to itself under hostile frames, and leaks no process',
    async () => {
      const channels = upgradePaths('WebSocket');
      expect(channels.length).toBeGreaterThanOrEqual(7);
      await json('POST', '/process/session', { sessionId: 'fz-log' });
      logCommand = (await json('POST', '/process/session/fz-log/exec', { command: 'true', runAsync: true })).json.cmdId;
      runs.ws = 0;
      await fuzz(
        'agent websocket channels',
        fc.asyncProperty(channelCaseArb(channels), async (c) => {
          runs.ws++;
          const since = agent.output().length;
          await channelCase(c);
          await checkAgent(since);
        }),
        BUDGET.ws,
      );
      await cleanUp();
      assertCleanOutput();
    },
    timeoutFor(BUDGET.ws),
  );

  it(
    'answers hostile upgrade requests with an HTTP error or a close, and keeps serving',
    async () => {
      const paths = [...upgradePaths('WebSocket'), ...upgradePaths('raw upgrade')];
      expect(paths).toEqual(expect.arrayContaining(['/port/{port}/tunnel', '/ssh/session', '/ssh/connect', '/ssh/listen', '/ssh/accept/{id}']));
      runs.upgrade = 0;
      await fuzz(
        'agent upgrades',
        fc.asyncProperty(upgradeCaseArb(paths), async (c) => {
          runs.upgrade++;
          const since = agent.output().length;
          const { head, after } = renderUpgrade(c);
          const mode = c.after === 'reset' || c.after === 'end' ? c.after : 'wait';
          const { data } = await exchange(Buffer.from(head, 'latin1'), { after, mode, waitMs: 700 });
          if (mode !== 'reset') checkRawAnswer(head.split('\r\n')[0], data);
          await checkAgent(since);
        }),
        BUDGET.upgrade,
      );
      await cleanUp();
      assertCleanOutput();
    },
    timeoutFor(BUDGET.upgrade),
  );

  it(
    'answers raw HTTP/1.1 bytes with a 4xx or a close, and keeps serving',
    async () => {
      runs.bytes = 0;
      await fuzz(
        'agent http bytes',
        fc.asyncProperty(bytesCaseArb(harmlessRequests().length), async (c) => {
          runs.bytes++;
          const since = agent.output().length;
          const { data } = await exchange(renderBytes(c), { mode: 'end', waitMs: 1500 });
          checkRawAnswer(c.kind, data);
          await checkAgent(since);
        }),
        BUDGET.bytes,
      );
      assertCleanOutput();
    },
    timeoutFor(BUDGET.bytes),
  );
});

// ── Regressions: what the fuzzing (and the review that came with it) found ───────────────────────────────────────

describe('regressions', () => {
  // Fixtures of their own: the fuzzing may have moved or deleted the shared ones.
  beforeAll(() => {
    mkdirSync(path.join(workdir, 'reg/proj'), { recursive: true });
    writeFileSync(path.join(workdir, 'reg/a.txt'), 'hello\n');
    writeFileSync(path.join(workdir, 'reg/proj/main.ts'), 'export const x = 1;\n');
  });
  const since = () => agent.output().length;
  const upgradeHead = (target: string, extra = '') =>
    Buffer.from(`GET ${target} HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer ${agent.token}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n${extra}\r\n`);
  const refusal = async (bytes: Buffer) => {
    const { data } = await exchange(bytes);
    const text = data.toString();
    return { status: Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1]), body: JSON.parse(text.slice(text.indexOf('\r\n\r\n') + 4)) };
  };

  it('a NUL character in a path is a 400, not a 500 (files, pty cwd, LSP document, watch)', async () => {
    const from = since();
    for (const target of ['/files/info?path=a%00b', '/files?path=a%00b', '/files/download?path=reg%00', '/files/search?path=a%00&pattern=x']) {
      const res = await request('GET', target, auth(), undefined);
      expect(res.status, target).toBe(400);
      expect(JSON.parse(res.body.toString()).code).toBe('INVALID_FILE_PATH');
    }
    expect((await json('POST', '/process/pty', { id: 'fz-nul', cwd: 'a\0b' })).status).toBe(400);
    expect((await json('POST', '/lsp/start', { languageId: 'typescript', pathToProject: 'reg/proj' })).status).toBe(204);
    const open = await json('POST', '/lsp/did-open', { languageId: 'typescript', pathToProject: 'reg/proj', uri: 'file:///a%00b' });
    expect(open.status).toBe(400);
    expect((await json('POST', '/lsp/stop', { languageId: 'typescript', pathToProject: 'reg/proj' })).status).toBe(204);
    const watch = await refusal(upgradeHead('/files/watch?path=a%00b'));
    expect(watch.status).toBe(400);
    expect(watch.body.code).toBe('INVALID_FILE_PATH');
    await checkAgent(from);
  });

  it('a glob the regular expression engine refuses is a 400 (search pattern, watch ignore)', async () => {
    const from = since();
    const res = await request('GET', `/files/search?path=reg&pattern=${encodeURIComponent('[z-a]')}`, auth(), undefined);
    expect(res.status).toBe(400);
    expect(JSON.parse(res.body.toString()).code).toBe('INVALID_REQUEST');
    const watch = await refusal(upgradeHead(`/files/watch?path=reg&ignore=${encodeURIComponent('[z-a]')}`));
    expect(watch.status).toBe(400);
    expect(watch.body.message).toMatch(/glob/);
    await checkAgent(from);
  });

  it('a glob made to backtrack (alternatives, many stars) is answered at once and the agent stays responsive', async () => {
    const from = since();
    writeFileSync(path.join(workdir, 'reg', 'a'.repeat(200)), '');
    const started = Date.now();
    for (const pattern of [`${'{*,*}'.repeat(20)}x`, `${'*a'.repeat(12)}b`, `**/${'**/a/'.repeat(8)}b`]) {
      const res = await request('GET', `/files/search?path=reg&pattern=${encodeURIComponent(pattern)}`, auth(), undefined, 10_000);
      expect(res.status, pattern).toBe(200);
    }
    const watch = await runChannel(`/files/watch?path=reg&initial=true&ignore=${encodeURIComponent(`${'{*,*}'.repeat(20)}x`)}`, [], [{ kind: 'text', data: 'x' }]);
    expect(watch.opened).toBe(true);
    expect(Date.now() - started).toBeLessThan(10_000);
    await checkAgent(from);
  });

  it('a program printing control sequences with huge counts does not freeze the agent (its screen emulator)', async () => {
    const from = since();
    expect((await json('POST', '/process/pty', { id: 'fz-counts' })).status).toBe(201);
    const pid: number = (await json('GET', '/process/pty/fz-counts')).json.processId;
    const sequences = ['x\x1b[2000000000b', '\x1b[2000000000S', '\x1b[2000000000T', '\x1b[2000000000L', '\x1b[2000000000M', '\x1b[2000000000I', '\x1b[2000000000Z'];
    await runChannel('/process/pty/fz-counts/connect', [], [], async (ws) => {
      ws.send('exec cat\n');
      await waitFor(() => readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'cat', 30_000, 'the shell to become cat');
      // cat writes each line back: the agent's emulator parses it.
      ws.send(`${sequences.join('\n')}\n`);
      await new Promise((r) => setTimeout(r, 300));
      const started = Date.now();
      expect((await request('GET', '/version', auth(), undefined, 5000)).status).toBe(200);
      expect(Date.now() - started).toBeLessThan(2000);
    });
    expect((await json('DELETE', '/process/pty/fz-counts')).status).toBe(204);
    await checkAgent(from);
  });

  it('invalid UTF-8 in a text frame closes that LSP channel with 1007 and nothing else', async () => {
    const from = since();
    const r = await runChannel('/lsp/ws?languageId=typescript&pathToProject=reg%2Fproj', [], [{ kind: 'rawtext', data: Uint8Array.from([0xc0, 0xaf]) }]);
    expect(r.closed?.code).toBe(1007);
    await checkAgent(from);
  });

  it('a bad frame on a channel whose attach failed ends that channel only (no error listener was there yet)', async () => {
    const from = since();
    for (const target of ['/process/pty/nope/connect', '/process/session/nope/command/nope/logs', '/process/session/entrypoint/logs']) {
      // The frame arrives with the handshake, so the agent reads it right after the channel refused the attach.
      const { data } = await exchange(upgradeHead(target), { after: violation(0, Buffer.from('x')) });
      expect(statuses(data)[0], target).toBe(101);
    }
    await checkAgent(from);
  });

  it('invalid percent-encoding in an upgrade path is a 400; a target that is no path is refused', async () => {
    const from = since();
    for (const target of ['/process/pty/%ZZ/connect', '/ssh/accept/%C0%AF', '/process/session/%/command/x/logs']) {
      const r = await refusal(upgradeHead(target));
      expect(r.status, target).toBe(400);
      expect(r.body.code).toBe('INVALID_REQUEST');
    }
    expect((await refusal(upgradeHead('//[/x'))).status).toBe(404);
    expect((await refusal(upgradeHead('*'))).status).toBe(400);
    await checkAgent(from);
  });

  it('a WebSocket handshake ws refuses (no key, another version) is answered with the envelope', async () => {
    const bad = Buffer.from(`GET /files/watch?path=reg HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer ${agent.token}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 8\r\n\r\n`);
    const r = await refusal(bad);
    expect(r.status).toBe(400);
    expect(r.body.message).toMatch(/WebSocket handshake/);
  });

  it('a request without a Host, with an invalid Host, or with an unknown Expect is answered with the envelope', async () => {
    for (const head of ['GET /version HTTP/1.1', 'GET /version HTTP/1.1\r\nHost: [::', 'GET /version HTTP/1.1\r\nHost: a\r\nExpect: nope']) {
      const { data } = await exchange(Buffer.from(`${head}\r\nAuthorization: Bearer ${agent.token}\r\n\r\n`), { mode: 'end' });
      checkRawAnswer(head, data);
      expect(statuses(data)[0], head).toBe(head.includes('Expect') ? 417 : 400);
    }
  });

  it('a multipart upload cut short in a part it skips is a 400, and the part error reaches nobody', async () => {
    const from = since();
    const body = Buffer.from('--b0undary\r\nContent-Disposition: form-data; name="other"; filename="x"\r\n\r\npartial');
    const res = await request('POST', '/files/upload?path=reg/cut.bin', { ...auth(), 'content-type': 'multipart/form-data; boundary=b0undary' }, body);
    expect(res.status).toBe(400);
    await checkAgent(from);
  });

  it('a lone surrogate in a downloaded path is answered, not a reset or a 500', async () => {
    const from = since();
    writeFileSync(path.join(workdir, 'reg/\uFFFD'), 'replacement');
    const bulk = await request('POST', '/files/bulk-download', { ...auth(), 'content-type': 'application/json' }, Buffer.from(JSON.stringify({ paths: ['reg/\uD800', 'reg/a.txt'] })));
    expect(bulk.status).toBe(200);
    expect(bulk.body.toString()).toContain('hello');
    await checkAgent(from);
  });

  it('a client that leaves in the middle of a JSON body is no unexpected error', async () => {
    const from = since();
    await exchange(Buffer.from(`POST /files/replace HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer ${agent.token}\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{"fil`), { mode: 'end' });
    await checkAgent(from);
  });

  it('a client that resets right after a refused upgrade does not take the agent down', async () => {
    const from = since();
    for (let i = 0; i < 20; i++) {
      await exchange(Buffer.from('GET /ssh/session HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer nope\r\nUpgrade: cove-ssh\r\nConnection: Upgrade\r\n\r\n'), { mode: 'reset' });
    }
    await checkAgent(from);
  });
});
