import type { ChildProcess } from 'node:child_process';
import { statSync, type BigIntStats } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { Writable } from 'node:stream';
import type { Message, MessageConnection, MessageWriter } from 'vscode-jsonrpc/node';
import type { LspDiagnostic } from '../../../wire/lsp';
import { CoveError, fromOsError } from '../../../lib/errors';
import type { SandboxContext } from '../system/context';
import { signalGroup } from '../system/process-group';
import { frame } from './channel';
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
  return (rpcModule ??= import('vscode-jsonrpc/node').then((m) => ((m as { default?: Rpc }).default ?? m)));
}

/**
 * Sends each message to the server in a single write. vscode-jsonrpc's stream writer writes the header, waits for it
 * to be flushed, then writes the body a turn later: two writes per message, and a server woken twice per request.
 */
function pipeWriter(rpc: Rpc, stdin: Writable): MessageWriter {
  const errors = new rpc.Emitter<[Error, Message | undefined, number | undefined]>();
  const closed = new rpc.Emitter<void>();
  let errorCount = 0;
  stdin.on('error', (err) => {
    errors.fire([err, undefined, undefined]);
  });
  stdin.on('close', () => {
    closed.fire();
  });
  return {
    onError: errors.event,
    onClose: closed.event,
    write: (msg) =>
      new Promise((resolve, reject) => {
        stdin.write(frame(JSON.stringify(msg)), (err) => {
          if (!err) return resolve();
          errors.fire([err, msg, ++errorCount]);
          reject(err);
        });
      }),
    end: () => stdin.end(),
    dispose: () => {
      errors.dispose();
      closed.dispose();
    },
  };
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
  /** The file's stat when `text` was read, while it can be trusted to show a change (see `settledStamp`). */
  stamp?: BigIntStats;
}

/**
 * How long after its last change a file's stat is trusted to reveal the next one. File times tick coarsely (a few
 * milliseconds on Linux, whole seconds on some file systems), so two writes within one tick can leave the same times
 * and, if the text is as long, the same size. A file changed more recently than this is read on every request.
 */
const STAMP_SETTLE_MS = 2000;

/** The stat of `file` (following links), as one synchronous system call: microseconds, where a read costs more. */
function statOf(file: string): BigIntStats {
  try {
    return statSync(file, { bigint: true });
  } catch (err) {
    throw fromOsError(err, file);
  }
}

/** `stamp` taken at `takenAt` (ms), if its file last changed long enough before for a later change to alter it. */
function settledStamp(stamp: BigIntStats, takenAt: number): BigIntStats | undefined {
  const changedAt = Number((stamp.mtimeNs > stamp.ctimeNs ? stamp.mtimeNs : stamp.ctimeNs) / 1_000_000n);
  return takenAt - changedAt >= STAMP_SETTLE_MS ? stamp : undefined;
}

/** Whether two stats are of the same file, unchanged: a rewrite moves ctime, a replacement changes the inode. */
const sameFile = (a: BigIntStats, b: BigIntStats): boolean =>
  a.ino === b.ino && a.dev === b.dev && a.size === b.size && a.mtimeNs === b.mtimeNs && a.ctimeNs === b.ctimeNs;

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

interface LanguageServerOptions {
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
  /** How the process ended, once it has. */
  private exit: ServerExit | undefined;
  /**
   * Called with the exit, for requests and waits under way. Waiters remove themselves when done: a reaction added to
   * `exited` per request would be kept for the life of the process, which a busy server never ends.
   */
  private readonly exitWaiters = new Set<(exit: ServerExit) => void>();

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
    void this.exited.then((exit) => {
      this.exit = exit;
      // tsserver and other helpers share the group; none must outlive the server.
      signalGroup(this.pid, 'SIGKILL');
      for (const w of this.exitWaiters) w(exit);
      this.exitWaiters.clear();
      this.conn.dispose();
      for (const waiters of this.published.values()) for (const w of waiters) w();
    });
  }

  /** Spawns the server for `root` and completes the initialize handshake. */
  static async start(ctx: SandboxContext, kind: LanguageServerKind, root: string, opts: LanguageServerOptions): Promise<LanguageServer> {
    const rpc = await loadRpc();
    const proc = spawnLanguageServer(ctx, kind, root);
    const conn = rpc.createMessageConnection(new rpc.StreamMessageReader(proc.stdout!), pipeWriter(rpc, proc.stdin!));
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
    if (this.exit) throw crashedError(this.kind, this.root, this.exit);
    let timer: NodeJS.Timeout | undefined;
    let onExit: ((exit: ServerExit) => void) | undefined;
    try {
      return await new Promise<T>((resolve, reject) => {
        onExit = (exit) => reject(crashedError(this.kind, this.root, exit));
        this.exitWaiters.add(onExit);
        timer = setTimeout(
          () =>
            reject(
              new CoveError('LSP_REQUEST_TIMEOUT', `The ${this.kind.name} language server did not answer ${method} within ${this.opts.requestTimeoutMs / 1000} s`),
            ),
          this.opts.requestTimeoutMs,
        );
        this.conn.sendRequest<T>(method, params).then(resolve, reject);
      });
    } catch (err) {
      if (err instanceof CoveError) throw err;
      // A request that failed because the connection went away is a crash, reported as such once the exit is known.
      const exit = await this.exitWithin(200);
      if (exit) throw crashedError(this.kind, this.root, exit);
      throw new CoveError('INTERNAL_ERROR', `The ${this.kind.name} language server failed ${method}`, (err as Error).message);
    } finally {
      clearTimeout(timer);
      if (onExit) this.exitWaiters.delete(onExit);
    }
  }

  /** The exit, if the process has ended or ends within `ms`; undefined otherwise. */
  private exitWithin(ms: number): Promise<ServerExit | undefined> {
    if (this.exit) return Promise.resolve(this.exit);
    return new Promise((resolve) => {
      const onExit = (exit: ServerExit) => {
        clearTimeout(timer);
        resolve(exit);
      };
      const timer = setTimeout(() => {
        this.exitWaiters.delete(onExit);
        resolve(undefined);
      }, ms);
      this.exitWaiters.add(onExit);
    });
  }

  /**
   * Makes the server see the document as it is on disk now: opens it (didOpen) the first time, sends the full new
   * text (didChange) when the file changed since. Returns the canonical URI. A file whose stat is unchanged since a
   * settled read is not read again; its stat is taken before the read, so a change during the read shows next time.
   */
  syncFromDisk(file: string, fallbackLanguageId: string): Promise<string> {
    const run = this.syncChain.then(() => this.sync(file, fallbackLanguageId));
    this.syncChain = run.catch(() => {});
    return run;
  }

  private async sync(file: string, fallbackLanguageId: string): Promise<string> {
    const uri = fileUri(file);
    const stat = statOf(file);
    const stamp = settledStamp(stat, Date.now());
    const known = this.docs.get(uri)?.stamp;
    if (known && sameFile(known, stat)) return uri;
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (err) {
      throw fromOsError(err, file);
    }
    const doc = this.docs.get(uri);
    if (!doc) {
      const languageId = documentLanguageId(file, fallbackLanguageId);
      this.docs.set(uri, { path: file, languageId, version: 1, text, stamp });
      await this.conn.sendNotification('textDocument/didOpen', { textDocument: { uri, languageId, version: 1, text } });
      return uri;
    }
    doc.stamp = stamp;
    if (doc.text !== text) {
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
    return this.stopping || this.exit !== undefined;
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
