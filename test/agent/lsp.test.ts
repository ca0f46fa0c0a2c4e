import { Configuration, LspApi } from '@daytona/toolbox-api-client';
import { Daytona, DaytonaLspServerNotInitializedError } from '@daytonaio/sdk';
// The SDK's index does not export LspServer (Sandbox.createLspServer builds it); its package exports map hides the
// file, so it is imported by path.
import { LspServer } from '../../node_modules/@daytonaio/sdk/esm/LspServer.js';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CompletionList, LspDiagnostics, LspHover, LspLocation, LspServerList, LspSymbol } from '../../wire/lsp';
import { createLspService } from '../../agent/src/lsp/service';
import { createSandboxContext } from '../../agent/src/system/context';
import { resolveIdentity } from '../../agent/src/system/identity';
import { ROOT, startAgent, waitFor, type TestAgent } from '../helpers/agent';

// Language servers are heavy and the machine is shared: generous timeouts, no timing assertions.
const SLOW = 120_000;
const BIN = path.join(ROOT, 'node_modules/.bin');

let agent: TestAgent;

/** Files of the small projects, written under the agent's work dir. */
const TS_FILES: Record<string, string> = {
  'tsconfig.json': JSON.stringify({ compilerOptions: { strict: true, target: 'ES2022', module: 'ESNext', moduleResolution: 'Bundler' }, include: ['src'] }),
  'src/greet.ts': ['export function greetPerson(name: string): string {', "  return 'Hello ' + name;", '}', ''].join('\n'),
  'src/main.ts': [
    "import { greetPerson } from './greet';",
    "const bob = { name: 'Bob', favouriteColour: 'green' };",
    'greetPerson(bob.name);',
    '',
  ].join('\n'),
  'src/complete.ts': ["const bob = { name: 'Bob', favouriteColour: 'green' };", 'bob.', ''].join('\n'),
  'src/broken.ts': ["export const count: number = 'not a number';", ''].join('\n'),
};
const PY_FILES: Record<string, string> = {
  'greet.py': [
    'class Person:',
    '    def __init__(self, name: str) -> None:',
    '        self.favourite_colour = "green"',
    '        self.name = name',
    '',
    '',
    'def greet_person(person: Person) -> str:',
    '    return "Hello " + person.name',
    '',
  ].join('\n'),
  'main.py': ['from greet import Person, greet_person', '', 'bob = Person("Bob")', 'print(greet_person(bob))', ''].join('\n'),
  'complete.py': ['from greet import Person', '', 'bob = Person("Bob")', 'bob.', ''].join('\n'),
  'broken.py': ['count: int = "not a number"', ''].join('\n'),
};

function writeProject(name: string, files: Record<string, string>): string {
  const dir = path.join(agent.workdir, name);
  for (const [file, text] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(dir, file)), { recursive: true });
    writeFileSync(path.join(dir, file), text);
  }
  return dir;
}

/** The position just after the first occurrence of `needle` (or at its start) in a project file. */
function positionOf(files: Record<string, string>, file: string, needle: string, after = false) {
  const text = files[file];
  const index = text.indexOf(needle);
  if (index < 0) throw new Error(`${needle} not in ${file}`);
  const offset = index + (after ? needle.length : 0);
  const lines = text.slice(0, offset).split('\n');
  return { line: lines.length - 1, character: lines[lines.length - 1].length };
}

const post = <T = unknown>(p: string, json: unknown) => agent.json<T>(p, { method: 'POST', json });
const get = <T = unknown>(p: string, query: Record<string, string>) => agent.json<T>(`${p}?${new URLSearchParams(query)}`);
/** Status and body of a request expected to fail. */
async function failure(p: string, init: { method?: string; json?: unknown } = {}) {
  const res = await agent.fetch(p, {
    method: init.method ?? 'POST',
    ...(init.json !== undefined ? { body: JSON.stringify(init.json), headers: { 'Content-Type': 'application/json' } } : {}),
  });
  return { status: res.status, body: (await res.json()) as { code: string; message: string; source: string } };
}

beforeAll(async () => {
  agent = await startAgent({ env: { PATH: `${BIN}:${process.env.PATH}` } });
});
afterAll(async () => {
  await agent?.stop();
});

interface Language {
  languageId: string;
  project: string;
  files: Record<string, string>;
  ext: string;
  /** The declared function's name, and the member expected after `bob.` */
  fn: string;
  member: string;
  /** Text in hover over the function's call. */
  hoverType: RegExp;
  typeError: RegExp;
}

const LANGUAGES: Language[] = [
  {
    languageId: 'typescript',
    project: 'ts-project',
    files: TS_FILES,
    ext: 'ts',
    fn: 'greetPerson',
    member: 'favouriteColour',
    hoverType: /greetPerson\(name: string\): string/,
    typeError: /not assignable to type 'number'/,
  },
  {
    languageId: 'python',
    project: 'py-project',
    files: PY_FILES,
    ext: 'py',
    fn: 'greet_person',
    member: 'favourite_colour',
    hoverType: /greet_person\(person: Person\) -> str/,
    typeError: /not assignable to declared type "int"/,
  },
];

describe.each(LANGUAGES)('$languageId', (lang) => {
  let dir: string;
  let base: { languageId: string; pathToProject: string };
  const file = (name: string) => (lang.ext === 'ts' ? `src/${name}.ts` : `${name}.py`);
  const uri = (name: string) => `file://${path.join(dir, file(name))}`;

  beforeAll(async () => {
    dir = writeProject(lang.project, lang.files);
    base = { languageId: lang.languageId, pathToProject: lang.project };
    await post('/lsp/start', base);
    await post('/lsp/did-open', { ...base, uri: uri('main') });
  }, SLOW);

  it(
    'completes the members of an object',
    async () => {
      const list = await post<CompletionList>('/lsp/completions', {
        ...base,
        uri: uri('complete'),
        position: positionOf(lang.files, file('complete'), 'bob.', true),
      });
      expect(typeof list.isIncomplete).toBe('boolean');
      expect(list.items.map((i) => i.label)).toContain(lang.member);
    },
    SLOW,
  );

  it(
    'lists the symbols of a document, and of the project',
    async () => {
      const symbols = await get<LspSymbol[]>('/lsp/document-symbols', { ...base, uri: uri('greet') });
      const fn = symbols.find((s) => s.name === lang.fn);
      expect(fn).toMatchObject({ kind: 12, location: { uri: expect.stringMatching(new RegExp(`greet\\.${lang.ext}$`)) } });
      // A project-wide index may still be building just after start.
      const found = (await waitFor(
        async () => (await get<LspSymbol[]>('/lsp/workspacesymbols', { ...base, query: lang.fn })).find((s) => s.name === lang.fn),
        60_000,
        'workspace symbol',
      ))!;
      expect(found.location.uri).toMatch(new RegExp(`greet\\.${lang.ext}$`));
      expect(found.location.range.start.line).toBe(lang.ext === 'ts' ? 0 : 6);
    },
    SLOW,
  );

  it(
    'shows the type on hover and finds the declaration and the references',
    async () => {
      const at = { ...base, uri: uri('main'), position: positionOf(lang.files, file('main'), `${lang.fn}(bob`) };
      const hover = await post<LspHover>('/lsp/hover', at);
      expect(hover.contents?.value).toMatch(lang.hoverType);

      const [definition] = await post<LspLocation[]>('/lsp/definition', at);
      expect(definition.uri).toBe(`file://${path.join(dir, file('greet'))}`);
      expect(definition.range.start).toEqual(positionOf(lang.files, file('greet'), lang.fn));

      const references = await post<LspLocation[]>('/lsp/references', at);
      expect(references.map((r) => path.basename(r.uri)).sort()).toEqual(
        lang.ext === 'ts' ? ['greet.ts', 'main.ts', 'main.ts'] : ['greet.py', 'main.py', 'main.py'],
      );
    },
    SLOW,
  );

  it(
    'reports a type error, and its fix after the file changes on disk',
    async () => {
      const query = { ...base, uri: uri('broken') };
      const first = await get<LspDiagnostics>('/lsp/diagnostics', query);
      expect(first.fresh).toBe(true);
      expect(first.diagnostics.filter((d) => d.severity === 1).map((d) => d.message).join('\n')).toMatch(lang.typeError);

      writeFileSync(path.join(dir, file('broken')), lang.ext === 'ts' ? 'export const count: number = 1;\n' : 'count: int = 1\n');
      const fixed = (await waitFor(
        async () => {
          const d = await get<LspDiagnostics>('/lsp/diagnostics', query);
          return d.fresh && d.diagnostics.every((x) => x.severity !== 1) ? d : undefined;
        },
        60_000,
        'diagnostics after the fix',
      ))!;
      expect(fixed.uri).toBe(`file://${path.join(dir, file('broken'))}`);
    },
    SLOW,
  );

  it(
    'restarts a crashed server: the next request is told, later ones succeed',
    async () => {
      const before = (await agent.json<LspServerList>('/lsp/servers')).servers.find((s) => s.pathToProject === dir)!;
      expect(before.state).toBe('running');
      process.kill(before.pid!, 'SIGKILL');
      await waitFor(async () => (await agent.json<LspServerList>('/lsp/servers')).servers.find((s) => s.pathToProject === dir)?.state === 'crashed');

      const at = { ...base, uri: uri('complete'), position: positionOf(lang.files, file('complete'), 'bob.', true) };
      const crashed = await failure('/lsp/completions', { json: at });
      expect(crashed.status).toBe(503);
      expect(crashed.body).toMatchObject({ code: 'LSP_SERVER_CRASHED', source: 'DAYTONA_DAEMON' });
      expect(crashed.body.message).toMatch(/killed by SIGKILL.*restarted/);

      const list = await post<CompletionList>('/lsp/completions', at);
      expect(list.items.map((i) => i.label)).toContain(lang.member);
      const after = (await agent.json<LspServerList>('/lsp/servers')).servers.find((s) => s.pathToProject === dir)!;
      expect(after).toMatchObject({ state: 'running' });
      expect(after.pid).not.toBe(before.pid);
      // The client's documents were reopened in the new process.
      expect(after.openDocuments).toBeGreaterThanOrEqual(before.openDocuments);
    },
    SLOW,
  );

  it(
    'after stop, requests fail with LSP_SERVER_NOT_INITIALIZED until the next start',
    async () => {
      const pid = (await agent.json<LspServerList>('/lsp/servers')).servers.find((s) => s.pathToProject === dir)!.pid!;
      await post('/lsp/stop', base);
      expect(() => process.kill(pid, 0)).toThrow();
      const at = { ...base, uri: uri('complete'), position: { line: 0, character: 0 } };
      const stopped = await failure('/lsp/completions', { json: at });
      expect(stopped.status).toBe(400);
      expect(stopped.body).toMatchObject({ code: 'LSP_SERVER_NOT_INITIALIZED', source: 'DAYTONA_DAEMON' });
      expect(stopped.body.message).toMatch(/not started.*\/lsp\/start/);
      await post('/lsp/stop', base); // stopping nothing is fine
    },
    SLOW,
  );
});

describe('the Daytona SDK', () => {
  it(
    "drives the TypeScript server through LspServer, and gets the typed error once it is stopped",
    async () => {
      const dir = writeProject('sdk-project', TS_FILES);
      const config = new Configuration({ basePath: agent.url, baseOptions: { headers: { Authorization: `Bearer ${agent.token}` } } });
      // A relative project path and relative file paths, as SDK users write them: both are taken from the work dir.
      // Built as Sandbox.createLspServer builds it, with the SDK's axios instance (it turns errors into typed ones).
      const lsp = new LspServer('typescript' as never, 'sdk-project', new LspApi(config, '', Daytona.createAxiosInstance() as never));
      await lsp.start();
      await lsp.didOpen('sdk-project/src/complete.ts');
      const completions = await lsp.completions('sdk-project/src/complete.ts', positionOf(TS_FILES, 'src/complete.ts', 'bob.', true));
      expect(completions.items.map((i) => i.label)).toContain('favouriteColour');
      const symbols = await lsp.documentSymbols(path.join(dir, 'src/greet.ts'));
      expect(symbols.map((s) => s.name)).toContain('greetPerson');
      const found = await lsp.sandboxSymbols('greetPerson');
      expect(found.map((s) => s.name)).toContain('greetPerson');
      await lsp.didClose('sdk-project/src/complete.ts');
      await lsp.stop();
      await expect(lsp.documentSymbols(path.join(dir, 'src/greet.ts'))).rejects.toBeInstanceOf(DaytonaLspServerNotInitializedError);
    },
    SLOW,
  );
});

describe('raw LSP over WebSocket', () => {
  it(
    'answers initialize with the server capabilities, on a server process of its own',
    async () => {
      writeProject('ws-project', TS_FILES);
      const ws = agent.ws(`/lsp/ws?${new URLSearchParams({ languageId: 'typescript', pathToProject: 'ws-project' })}`);
      const messages: any[] = [];
      const answer = new Promise<any>((resolve, reject) => {
        ws.on('message', (data, isBinary) => {
          expect(isBinary).toBe(false);
          const msg = JSON.parse(String(data));
          messages.push(msg);
          if (msg.id === 1) resolve(msg);
        });
        ws.on('close', (code, reason) => reject(new Error(`closed ${code} ${reason}`)));
      });
      await new Promise((resolve) => ws.once('open', resolve));
      // A browser's processId means nothing in the sandbox; the agent puts its own in its place.
      ws.send(JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { processId: 999_999_999, rootUri: null, capabilities: {} } }));
      const initialize = await answer;
      expect(initialize.result.capabilities).toMatchObject({ completionProvider: expect.any(Object), hoverProvider: true });
      const servers = (await agent.json<LspServerList>('/lsp/servers')).servers.filter((s) => s.channel);
      expect(servers).toHaveLength(1);

      const closed = new Promise<number>((resolve) => ws.on('close', (code) => resolve(code)));
      ws.send(JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'shutdown' }));
      await waitFor(() => messages.some((m) => m.id === 2), 30_000, 'shutdown answer');
      ws.send(JSON.stringify({ jsonrpc: '2.0', method: 'exit' }));
      expect(await closed).toBe(1000);
      await waitFor(async () => (await agent.json<LspServerList>('/lsp/servers')).servers.every((s) => !s.channel), 10_000, 'channel server gone');
    },
    SLOW,
  );

  it('closes with 1007 on a frame that is not a JSON-RPC message, and refuses an unknown language', async () => {
    writeProject('ws-project', TS_FILES);
    const ws = agent.ws(`/lsp/ws?${new URLSearchParams({ languageId: 'python', pathToProject: 'ws-project' })}`);
    const closed = new Promise<number>((resolve) => ws.on('close', (code) => resolve(code)));
    ws.on('open', () => ws.send('not json'));
    expect(await closed).toBe(1007);

    const bad = agent.ws(`/lsp/ws?${new URLSearchParams({ languageId: 'cobol', pathToProject: 'ws-project' })}`);
    const refused = await new Promise<{ code: number; reason: string }>((resolve) => bad.on('close', (code, reason) => resolve({ code, reason: String(reason) })));
    expect(refused.code).toBe(4400);
    expect(refused.reason).toMatch(/Unsupported language "cobol"/);
  }, SLOW);
});

describe('errors', () => {
  it('refuses unknown languages, missing fields and missing projects', async () => {
    writeProject('err-project', TS_FILES);
    const unknown = await failure('/lsp/start', { json: { languageId: 'cobol', pathToProject: 'err-project' } });
    expect(unknown.status).toBe(400);
    expect(unknown.body).toMatchObject({ code: 'UNSUPPORTED_LANGUAGE' });
    expect(unknown.body.message).toMatch(/typescript, javascript, python/);

    const missing = await failure('/lsp/start', { json: { languageId: 'typescript' } });
    expect(missing.status).toBe(400);
    expect(missing.body).toMatchObject({ code: 'INVALID_REQUEST' });
    expect(missing.body.message).toMatch(/pathToProject/);

    const noUri = await failure('/lsp/completions', { json: { languageId: 'typescript', pathToProject: 'err-project', position: { line: 0, character: 0 } } });
    expect(noUri.status).toBe(400);
    expect(noUri.body.message).toMatch(/uri/);

    const noQuery = await failure('/lsp/document-symbols?languageId=typescript', { method: 'GET' });
    expect(noQuery.status).toBe(400);

    const noProject = await failure('/lsp/start', { json: { languageId: 'python', pathToProject: 'no-such-project' } });
    expect(noProject.status).toBe(404);
    expect(noProject.body).toMatchObject({ code: 'FILE_NOT_FOUND' });

    const notStarted = await failure('/lsp/did-open', { json: { languageId: 'javascript', pathToProject: 'err-project', uri: 'file://err-project/src/main.ts' } });
    expect(notStarted.status).toBe(400);
    expect(notStarted.body).toMatchObject({ code: 'LSP_SERVER_NOT_INITIALIZED' });
  });

  it(
    'names what to install when the language server is missing',
    async () => {
      // An agent whose sandbox PATH has node but not the language servers.
      const bare = await startAgent({ env: { PATH: `${path.dirname(process.execPath)}:/usr/bin:/bin` } });
      try {
        mkdirSync(path.join(bare.workdir, 'p'));
        const res = await bare.fetch('/lsp/start', {
          method: 'POST',
          headers: { 'Content-Type': 'application/json' },
          body: JSON.stringify({ languageId: 'python', pathToProject: 'p' }),
        });
        const body = await res.json();
        expect(res.status).toBe(501);
        expect(body).toMatchObject({ code: 'LSP_SERVER_NOT_INSTALLED' });
        expect(body.message).toMatch(/pyright-langserver.*npm install -g pyright/);
      } finally {
        await bare.stop();
      }
    },
    SLOW,
  );
});

describe('idle servers', () => {
  it(
    'are shut down after the idle time and started again, with their documents, by the next request',
    async () => {
      // In process: the agent's idle time is minutes, the service's is configurable.
      const dir = writeProject('idle-project', PY_FILES);
      const ctx = createSandboxContext({ workdir: agent.workdir, identity: resolveIdentity(), env: { ...process.env, PATH: `${BIN}:${process.env.PATH}` } });
      const lsp = createLspService(ctx, { idleMs: 1500 });
      try {
        const base = { languageId: 'python', pathToProject: 'idle-project' };
        await lsp.start(base);
        await lsp.didOpen({ ...base, uri: `file://${path.join(dir, 'complete.py')}` });
        const [running] = lsp.servers();
        expect(running).toMatchObject({ state: 'running', openDocuments: 1 });
        await waitFor(() => lsp.servers()[0].state === 'idle', 20_000, 'idle shutdown');
        const gone = () => {
          try {
            process.kill(running.pid!, 0);
            return false;
          } catch {
            return true;
          }
        };
        await waitFor(gone, 10_000, 'the idle server to exit');

        const list = await lsp.completions({
          ...base,
          uri: `file://${path.join(dir, 'complete.py')}`,
          position: positionOf(PY_FILES, 'complete.py', 'bob.', true),
        });
        expect(list.items.map((i) => i.label)).toContain('favourite_colour');
        expect(lsp.servers()[0]).toMatchObject({ state: 'running', openDocuments: 1 });
        expect(lsp.servers()[0].pid).not.toBe(running.pid);
      } finally {
        await lsp.close();
      }
      expect(lsp.servers()).toEqual([]);
    },
    SLOW,
  );
});
