import type { ChildProcess } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { MessageConnection } from 'vscode-jsonrpc/node';
import type { LspDiagnostic } from '../../../wire/lsp';
import { CoveError, fromOsError } from '../../../lib/http/errors';
import type { SandboxContext } from '../system/context';
import { signalGroup } from '../system/process-group';
import { canonicalUri, documentLanguageId, fileUri, spawnLanguageServer, tail, type LanguageServerKind } from './languages';

type Rpc = typeof import('vscode-jsonrpc/node');
let rpcModule: Promise<Rpc> | undefined;
/**
 * The JSON-RPC library, loaded on first use: an agent that never starts a language server does not pay for it in
 * memory. Plain vscode-jsonrpc (the transport under vscode-languageserver-protocol, same version): requests go by
 * method name, and its connection takes catch-all handlers for what servers ask of their client.
 * (CommonJS: Node's ESM loader puts it on `default`, bundlers on the namespace too.)
 */
function loadRpc(): Promise<Rpc> {
  return (rpcModule ??= import('vscode-jsonrpc/node').then((m) => ((m as { default?: Rpc }).default ?? m) as Rpc));
}

/** How a language server process ended. */
export interface ServerExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** The end of its stderr. */
  stderr: string;
}

interface OpenDocument {
  path: string;
  languageId: string;
  version: number;
  text: string;
}

interface PublishedDiagnostics {
  diagnostics: LspDiagnostic[];
  /** The document version they were computed for (servers that do not say are taken to mean the current one). */
  version: number;
}

/** What the agent tells servers it can do: plain text edits, markdown, hierarchical symbols, versioned diagnostics. */
const CLIENT_CAPABILITIES = {
  general: { positionEncodings: ['utf-16'] },
  workspace: { workspaceFolders: true, configuration: true, symbol: {} },
  textDocument: {
    synchronization: { didSave: false, willSave: false },
    completion: {
      contextSupport: true,
      completionItem: { snippetSupport: false, documentationFormat: ['markdown', 'plaintext'] },
    },
    hover: { contentFormat: ['markdown', 'plaintext'] },
    definition: { linkSupport: false },
    references: {},
    documentSymbol: { hierarchicalDocumentSymbolSupport: true },
    publishDiagnostics: { relatedInformation: true, versionSupport: true },
  },
};

export interface LanguageServerOptions {
  requestTimeoutMs: number;
  agentVersion?: string;
}

/**
 * One running language server process and the agent's LSP session with it: initialized with the project root,
 * documents synchronised from disk, the latest diagnostics per document. Knows nothing of idleness or restarts (the
 * service decides); `exited` resolves however the process ends.
 */
export class LanguageServer {
  readonly pid: number | undefined;
  /** Resolves when the process has ended, expectedly or not. */
  readonly exited: Promise<ServerExit>;
  private readonly docs = new Map<string, OpenDocument>();
  private readonly diagnostics = new Map<string, PublishedDiagnostics>();
  private readonly published = new Map<string, Set<() => void>>();
  /** Document syncs run one after another so that two requests never open one document twice. */
  private syncChain: Promise<unknown> = Promise.resolve();
  private stopping = false;
  private exitedFlag = false;

  private constructor(
    readonly kind: LanguageServerKind,
    readonly root: string,
    private readonly proc: ChildProcess,
    private readonly conn: MessageConnection,
    private readonly opts: LanguageServerOptions,
  ) {
    this.pid = proc.pid;
    const stderr = tail(proc.stderr);
    this.exited = new Promise((resolve) => {
      proc.once('error', () => resolve({ code: null, signal: null, stderr: stderr() }));
      proc.once('exit', (code, signal) => resolve({ code, signal, stderr: stderr() }));
    });
    void this.exited.then(() => {
      this.exitedFlag = true;
      // tsserver and other helpers share the group; none must outlive the server.
      signalGroup(this.pid, 'SIGKILL');
      this.conn.dispose();
      for (const waiters of this.published.values()) for (const w of waiters) w();
    });
  }

  /** Spawns the server for `root` and completes the initialize handshake. */
  static async start(ctx: SandboxContext, kind: LanguageServerKind, root: string, opts: LanguageServerOptions): Promise<LanguageServer> {
    const rpc = await loadRpc();
    const proc = spawnLanguageServer(ctx, kind, root);
    const conn = rpc.createMessageConnection(new rpc.StreamMessageReader(proc.stdout!), new rpc.StreamMessageWriter(proc.stdin!));
    const server = new LanguageServer(kind, root, proc, conn, opts);
    conn.onNotification('textDocument/publishDiagnostics', (params: { uri: string; version?: number; diagnostics: LspDiagnostic[] }) =>
      server.onDiagnostics(params),
    );
    // Servers ask their client for settings and to register capabilities; defaults and yes keep them going.
    conn.onRequest((method, params) => {
      if (method === 'workspace/configuration') return ((params as { items?: unknown[] })?.items ?? []).map(() => null);
      if (method === 'workspace/workspaceFolders') return [{ uri: fileUri(root), name: path.basename(root) }];
      return null;
    });
    conn.onNotification(() => {}); // logs and progress
    conn.onError(() => {}); // the exit is what counts, and it is watched
    conn.listen();
    try {
      await server.request('initialize', {
        // Null, not the agent's pid: servers run as the sandbox user and check the client's liveness with kill(pid, 0),
        // which fails (EPERM) for the root-owned agent, so typescript-language-server exited within seconds in the
        // image. The agent ends its servers itself (idle timer, stop, its own exit).
        processId: null,
        clientInfo: { name: 'cove-agent', version: opts.agentVersion },
        rootPath: root,
        rootUri: fileUri(root),
        workspaceFolders: [{ uri: fileUri(root), name: path.basename(root) }],
        capabilities: CLIENT_CAPABILITIES,
      });
      await conn.sendNotification('initialized', {});
    } catch (err) {
      signalGroup(proc.pid, 'SIGKILL');
      throw err;
    }
    return server;
  }

  get openDocuments(): number {
    return this.docs.size;
  }

  /** URIs of the open documents. */
  get documentUris(): string[] {
    return [...this.docs.keys()];
  }

  /**
   * Sends a request; the answer, or LSP_SERVER_CRASHED when the process dies first, or LSP_REQUEST_TIMEOUT. A server
   * error (a JSON-RPC error response) becomes INTERNAL_ERROR with the server's message as detail.
   */
  async request<T = unknown>(method: string, params: unknown): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () =>
          reject(
            new CoveError('LSP_REQUEST_TIMEOUT', `The ${this.kind.name} language server did not answer ${method} within ${this.opts.requestTimeoutMs / 1000} s`),
          ),
        this.opts.requestTimeoutMs,
      );
    });
    const died = this.exited.then((exit) => {
      throw crashedError(this.kind, this.root, exit);
    });
    try {
      return await Promise.race([this.conn.sendRequest(method, params) as Promise<T>, died, timeout]);
    } catch (err) {
      if (err instanceof CoveError) throw err;
      // A request that failed because the connection went away is a crash, reported as such once `exited` settles.
      const exit = await Promise.race([this.exited, new Promise<undefined>((r) => setTimeout(r, 200))]);
      if (exit) throw crashedError(this.kind, this.root, exit);
      throw new CoveError('INTERNAL_ERROR', `The ${this.kind.name} language server failed ${method}`, (err as Error).message);
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Makes the server see the document as it is on disk now: opens it (didOpen) the first time, sends the full new
   * text (didChange) when the file changed since. Returns the canonical URI.
   */
  syncFromDisk(file: string, fallbackLanguageId: string): Promise<string> {
    const run = this.syncChain.then(() => this.sync(file, fallbackLanguageId));
    this.syncChain = run.catch(() => {});
    return run;
  }

  private async sync(file: string, fallbackLanguageId: string): Promise<string> {
    const uri = fileUri(file);
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (err) {
      throw fromOsError(err, file);
    }
    const doc = this.docs.get(uri);
    if (!doc) {
      const languageId = documentLanguageId(file, fallbackLanguageId);
      this.docs.set(uri, { path: file, languageId, version: 1, text });
      await this.conn.sendNotification('textDocument/didOpen', { textDocument: { uri, languageId, version: 1, text } });
    } else if (doc.text !== text) {
      doc.version += 1;
      doc.text = text;
      await this.conn.sendNotification('textDocument/didChange', {
        textDocument: { uri, version: doc.version },
        contentChanges: [{ text }],
      });
    }
    return uri;
  }

  /** Closes the document if open. */
  async close(file: string): Promise<void> {
    const uri = fileUri(file);
    if (!this.docs.delete(uri)) return;
    this.diagnostics.delete(uri);
    await this.conn.sendNotification('textDocument/didClose', { textDocument: { uri } });
  }

  private onDiagnostics(params: { uri: string; version?: number; diagnostics: LspDiagnostic[] }): void {
    const uri = canonicalUri(params.uri);
    const version = params.version ?? this.docs.get(uri)?.version ?? 0;
    this.diagnostics.set(uri, { diagnostics: params.diagnostics, version });
    const waiters = this.published.get(uri);
    if (waiters) for (const w of waiters) w();
  }

  /**
   * The latest diagnostics for an open document, waiting up to `waitMs` for ones computed for its current content.
   * `fresh` says whether they are.
   */
  async diagnosticsFor(uri: string, waitMs: number): Promise<{ fresh: boolean; diagnostics: LspDiagnostic[] }> {
    const isFresh = () => {
      const published = this.diagnostics.get(uri);
      return published !== undefined && published.version >= (this.docs.get(uri)?.version ?? 0);
    };
    if (!isFresh()) {
      await new Promise<void>((resolve) => {
        const waiters = this.published.get(uri) ?? new Set();
        this.published.set(uri, waiters);
        const done = () => {
          if (!isFresh() && !this.stoppedOrExited()) return;
          clearTimeout(timer);
          waiters.delete(done);
          resolve();
        };
        const timer = setTimeout(() => {
          waiters.delete(done);
          resolve();
        }, waitMs);
        waiters.add(done);
      });
    }
    return { fresh: isFresh(), diagnostics: this.diagnostics.get(uri)?.diagnostics ?? [] };
  }

  private stoppedOrExited(): boolean {
    return this.stopping || this.exitedFlag;
  }

  /** Whether the process is still running. */
  get alive(): boolean {
    return this.proc.exitCode === null && this.proc.signalCode === null;
  }

  /** LSP shutdown and exit, then the group is killed if it lingers. Never throws. */
  async stop(graceMs = 2000): Promise<void> {
    if (this.stopping) return void (await this.exited);
    this.stopping = true;
    if (this.alive) {
      const deadline = new Promise((r) => setTimeout(r, graceMs).unref());
      await Promise.race([
        (async () => {
          try {
            await this.conn.sendRequest('shutdown');
            await this.conn.sendNotification('exit');
          } catch {
            /* dying anyway */
          }
          await this.exited;
        })(),
        deadline,
      ]);
      signalGroup(this.pid, 'SIGKILL');
    }
    await this.exited;
  }

  /** Whether `stop()` was called (so an exit is no crash). */
  get stopRequested(): boolean {
    return this.stopping;
  }

}

/** The error requests get after a server died on its own. */
export function crashedError(kind: LanguageServerKind, root: string, exit: ServerExit): CoveError {
  const how = exit.signal ? `was killed by ${exit.signal}` : `exited with code ${exit.code}`;
  return new CoveError(
    'LSP_SERVER_CRASHED',
    `The ${kind.name} language server for ${root} ${how}; it is being restarted, retry the request`,
    exit.stderr || undefined,
  );
}
