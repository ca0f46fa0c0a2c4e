import type {
  CompletionList,
  LspCompletionParams,
  LspDiagnostics,
  LspDocumentRequest,
  LspHover,
  LspLocation,
  LspPositionRequest,
  LspReferencesRequest,
  LspServerInfo,
  LspServerRequest,
  LspSymbol,
  LspWorkspaceSymbolsQuery,
} from '../../../wire/lsp';
import { CoveError } from '../../../lib/errors';
import { guard, settle } from '../../../lib/guard';
import type { SandboxContext } from '../system/context';
import { bridgeChannel, type LspChannel, type LspChannelSink } from './channel';
import { crashedError, LanguageServer, type ServerExit } from './language-server';
import { documentPath, findSourceFile, kindOf, resolveProject, spawnLanguageServer, type LanguageServerKind } from './languages';
import { toCompletionList, toHover, toLocations, toSymbols } from './normalize';

interface LspServiceOptions {
  /** A server with no request for this long is shut down; the next request starts it again. 10 minutes by default. */
  idleMs?: number;
  /** How long one LSP request may take. 60 s by default (a cold project's first answer can take a while). */
  requestTimeoutMs?: number;
  /** How long `diagnostics` waits for the server to publish for the current content. 20 s by default. */
  diagnosticsWaitMs?: number;
  agentVersion?: string;
}

/**
 * A server the agent keeps for one (server kind, project). It outlives its process: an idle shutdown or a crash keeps
 * the entry, with the documents the client opened, so the next request can start a new process and reopen them.
 * Only `stop` forgets it.
 */
interface Entry {
  kind: LanguageServerKind;
  root: string;
  /** The process now, or the start under way. Undefined while idle or crashed. */
  server?: Promise<LanguageServer>;
  /** How the last process died on its own, until a request has been told. */
  crash?: ServerExit;
  /** Documents the client opened (paths, with the language id they were opened with), reopened after a restart. */
  docs: Map<string, string>;
  lastUsed: number;
  /** The pid of the current process, for the servers list. */
  pid?: number;
  /** Requests under way: an entry is never idle while one runs. */
  busy: number;
}

const keyOf = (kind: LanguageServerKind, root: string) => `${kind.name}\0${root}`;

/**
 * Code intelligence through language servers: one server per (language, project), typescript-language-server for
 * TypeScript and JavaScript, pyright for Python, run as the sandbox user in the project directory.
 *
 * - `start` is explicit, as in Daytona: any other request for a project that was not started (or was stopped) fails
 *   with LSP_SERVER_NOT_INITIALIZED (the SDK's DaytonaLspServerNotInitializedError).
 * - Documents are read from disk: `didOpen` opens the file as it is, and every request about a document first sends
 *   the server the file's current content if it changed (or opens it, if the client never did).
 * - A server idle for `idleMs` is shut down and transparently restarted by the next request.
 * - A server that dies on its own: the next request fails with LSP_SERVER_CRASHED (503) and starts a new process,
 *   which later requests wait for; the client's open documents are reopened in it.
 * - Raw channels (`openChannel`) get a server process each, not shared with the HTTP session (see wire/lsp.ts).
 */
export function createLspService(ctx: SandboxContext, options: LspServiceOptions = {}) {
  const idleMs = options.idleMs ?? 10 * 60_000;
  const requestTimeoutMs = options.requestTimeoutMs ?? 60_000;
  const diagnosticsWaitMs = options.diagnosticsWaitMs ?? 20_000;
  const entries = new Map<string, Entry>();
  const channels = new Set<{ channel: LspChannel; kind: LanguageServerKind; root: string; openedAt: number }>();
  let closed = false;

  const idleTimer = setInterval(
    guard(
      'LSP idle check',
      () => {
        const now = Date.now();
        for (const entry of entries.values()) {
          if (entry.server && entry.busy === 0 && now - entry.lastUsed >= idleMs) settle('LSP idle shutdown', hibernate(entry));
        }
      },
      () => {},
    ),
    Math.max(1000, Math.min(60_000, idleMs / 4)),
  );
  idleTimer.unref();

  /** Starts a process for the entry and reopens its documents. A failed start forgets the process, not the entry. */
  function launch(entry: Entry): Promise<LanguageServer> {
    const starting = (async () => {
      const server = await LanguageServer.start(ctx, entry.kind, entry.root, { requestTimeoutMs, agentVersion: options.agentVersion });
      entry.pid = server.pid;
      void server.exited.then((exit) => {
        // An exit nobody asked for is a crash; the entry waits for the next request to report it and restart.
        if (entry.server !== starting) return;
        entry.server = undefined;
        entry.pid = undefined;
        if (!server.stopRequested) entry.crash = exit;
      });
      for (const [file, languageId] of entry.docs) {
        // A document deleted meanwhile is dropped rather than failing the restart.
        await server.syncFromDisk(file, languageId).catch(() => entry.docs.delete(file));
      }
      return server;
    })();
    entry.server = starting;
    starting.catch(() => {
      if (entry.server === starting) entry.server = undefined;
    });
    return starting;
  }

  async function hibernate(entry: Entry): Promise<void> {
    const current = entry.server;
    if (!current) return;
    entry.server = undefined;
    entry.pid = undefined;
    const server = await current.catch(() => undefined);
    await server?.stop();
  }

  function entryOf(req: LspServerRequest): Entry {
    const kind = kindOf(req.languageId);
    const root = resolveProject(ctx, req.pathToProject);
    const entry = entries.get(keyOf(kind, root));
    if (!entry) {
      throw new CoveError(
        'LSP_SERVER_NOT_INITIALIZED',
        `The ${kind.name} language server for ${root} is not started: call POST /lsp/start (lsp.start() in the SDK) first`,
      );
    }
    return entry;
  }

  /** Runs `fn` with the entry's running server, starting it after idleness and reporting a crash once. */
  async function use<T>(req: LspServerRequest, fn: (server: LanguageServer, entry: Entry) => Promise<T>): Promise<T> {
    const entry = entryOf(req);
    entry.busy++;
    entry.lastUsed = Date.now();
    try {
      if (entry.crash) {
        const crash = entry.crash;
        entry.crash = undefined;
        launch(entry).catch(() => {});
        throw crashedError(entry.kind, entry.root, crash);
      }
      const server = await (entry.server ?? launch(entry));
      return await fn(server, entry);
    } catch (err) {
      // This request saw the crash: it was told, so the restart begins now rather than after another failure.
      if (err instanceof CoveError && err.code === 'LSP_SERVER_CRASHED' && entry.crash && !entry.server && entries.get(keyOf(entry.kind, entry.root)) === entry) {
        entry.crash = undefined;
        launch(entry).catch(() => {});
      }
      throw err;
    } finally {
      entry.busy--;
      entry.lastUsed = Date.now();
    }
  }

  /** Syncs a document and returns its path and URI for the server. */
  async function document(server: LanguageServer, entry: Entry, req: LspDocumentRequest): Promise<string> {
    const file = documentPath(ctx, req.uri);
    const uri = await server.syncFromDisk(file, req.languageId);
    if (!entry.docs.has(file)) entry.docs.set(file, req.languageId);
    return uri;
  }

  const positionParams = (uri: string, req: LspPositionRequest) => ({ textDocument: { uri }, position: req.position });

  return {
    /** Starts the server for the project (idempotent); resolves once it is initialized. */
    async start(req: LspServerRequest): Promise<void> {
      if (closed) throw new CoveError('CONFLICT', 'The agent is shutting down');
      const kind = kindOf(req.languageId);
      const root = resolveProject(ctx, req.pathToProject);
      const key = keyOf(kind, root);
      let entry = entries.get(key);
      const isNew = !entry;
      if (!entry) {
        entry = { kind, root, docs: new Map(), lastUsed: Date.now(), busy: 0 };
        entries.set(key, entry);
      }
      entry.lastUsed = Date.now();
      entry.crash = undefined;
      try {
        await (entry.server ?? launch(entry));
      } catch (err) {
        if (isNew && entries.get(key) === entry && !entry.server) entries.delete(key);
        throw err;
      }
    },

    /** Shuts the server down and forgets its documents; later requests need a new start. Stopping nothing is fine. */
    async stop(req: LspServerRequest): Promise<void> {
      const kind = kindOf(req.languageId);
      const root = resolveProject(ctx, req.pathToProject);
      const entry = entries.get(keyOf(kind, root));
      if (!entry) return;
      entries.delete(keyOf(kind, root));
      await hibernate(entry);
    },

    /** Opens the document from disk (or sends its new content, if it was open and changed). */
    async didOpen(req: LspDocumentRequest): Promise<void> {
      await use(req, async (server, entry) => void (await document(server, entry, req)));
    },

    async didClose(req: LspDocumentRequest): Promise<void> {
      await use(req, async (server, entry) => {
        const file = documentPath(ctx, req.uri);
        entry.docs.delete(file);
        await server.close(file);
      });
    },

    async completions(req: LspCompletionParams): Promise<CompletionList> {
      return use(req, async (server, entry) => {
        const uri = await document(server, entry, req);
        const result = await server.request('textDocument/completion', {
          ...positionParams(uri, req),
          context: req.context ?? { triggerKind: 1 },
        });
        return toCompletionList(result);
      });
    },

    async documentSymbols(req: LspDocumentRequest): Promise<LspSymbol[]> {
      return use(req, async (server, entry) => {
        const uri = await document(server, entry, req);
        return toSymbols(await server.request('textDocument/documentSymbol', { textDocument: { uri } }), uri);
      });
    },

    async workspaceSymbols(req: LspWorkspaceSymbolsQuery): Promise<LspSymbol[]> {
      return use(req, async (server) => {
        if (server.kind.needsOpenDocument && server.openDocuments === 0) {
          // Open one file so that tsserver loads the project; it stays open in the server, not in the client's list.
          const file = await findSourceFile(server.root, server.kind);
          if (!file) return [];
          await server.syncFromDisk(file, req.languageId);
        }
        return toSymbols(await server.request('workspace/symbol', { query: req.query }));
      });
    },

    async hover(req: LspPositionRequest): Promise<LspHover> {
      return use(req, async (server, entry) => {
        const uri = await document(server, entry, req);
        return toHover(await server.request('textDocument/hover', positionParams(uri, req)));
      });
    },

    async definition(req: LspPositionRequest): Promise<LspLocation[]> {
      return use(req, async (server, entry) => {
        const uri = await document(server, entry, req);
        return toLocations(await server.request('textDocument/definition', positionParams(uri, req)));
      });
    },

    async references(req: LspReferencesRequest): Promise<LspLocation[]> {
      return use(req, async (server, entry) => {
        const uri = await document(server, entry, req);
        return toLocations(
          await server.request('textDocument/references', {
            ...positionParams(uri, req),
            context: { includeDeclaration: req.includeDeclaration ?? true },
          }),
        );
      });
    },

    /** The latest published diagnostics for the document, waiting briefly for ones about its current content. */
    async diagnostics(req: LspDocumentRequest): Promise<LspDiagnostics> {
      return use(req, async (server, entry) => {
        const uri = await document(server, entry, req);
        return { uri, ...(await server.diagnosticsFor(uri, diagnosticsWaitMs)) };
      });
    },

    /** Servers of started projects and of open raw channels. */
    servers(): LspServerInfo[] {
      const list: LspServerInfo[] = [];
      for (const e of entries.values()) {
        list.push({
          languageId: e.kind.name,
          pathToProject: e.root,
          state: e.crash ? 'crashed' : e.server ? (e.pid ? 'running' : 'starting') : 'idle',
          pid: e.pid,
          openDocuments: e.docs.size,
          channel: false,
          lastUsedAt: new Date(e.lastUsed).toISOString(),
        });
      }
      for (const c of channels) {
        list.push({
          languageId: c.kind.name,
          pathToProject: c.root,
          state: 'running',
          pid: c.channel.pid,
          openDocuments: 0,
          channel: true,
          lastUsedAt: new Date(c.openedAt).toISOString(),
        });
      }
      return list;
    },

    /**
     * Starts a server process of the channel's own and bridges it to `sink`. Throws (before anything starts) on an
     * unknown language, a missing project or a missing server.
     */
    openChannel(query: LspServerRequest, sink: LspChannelSink): LspChannel {
      if (closed) throw new CoveError('CONFLICT', 'The agent is shutting down');
      const kind = kindOf(query.languageId);
      const root = resolveProject(ctx, query.pathToProject);
      const channel = bridgeChannel(spawnLanguageServer(ctx, kind, root), root, sink);
      const record = { channel, kind, root, openedAt: Date.now() };
      channels.add(record);
      void channel.exited.then(() => channels.delete(record));
      return channel;
    },

    /** Ends every language server (LSP shutdown, then SIGKILL of each group after a short grace). */
    async close(): Promise<void> {
      closed = true;
      clearInterval(idleTimer);
      const all = [...entries.values()];
      entries.clear();
      for (const c of channels) c.channel.close();
      await Promise.allSettled([...all.map(hibernate), ...[...channels].map((c) => c.channel.exited)]);
    },
  };
}
export type LspService = ReturnType<typeof createLspService>;
