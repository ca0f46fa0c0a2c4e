import type { ChildProcess } from 'node:child_process';
import { guard } from '../../../lib/guard';
import { signalGroup } from '../system/process-group';
import { fileUri, tail } from './languages';

/** Where a raw channel's messages go: the WebSocket, in routes.ts. */
export interface LspChannelSink {
  /** One JSON-RPC message from the server, as JSON text. */
  send(message: string): void;
  /** The server exited (or could not start): close the socket. */
  close(exitCode: number | null, reason: string): void;
}

/** The client's side of a raw channel. */
export interface LspChannel {
  /** One JSON-RPC message from the client, as JSON text. Returns false when it is not a JSON object. */
  input(message: string): boolean;
  /** The client went away: the server is killed. */
  close(): void;
  pid: number | undefined;
  /** Resolves when the server process has ended. */
  exited: Promise<void>;
}

const HEADER_END = Buffer.from('\r\n\r\n');

/**
 * Splits the LSP base protocol (`Content-Length: N\r\n…\r\n\r\n` + N bytes) into message bodies. Bytes are kept
 * as bytes until a whole body is in, so multi-byte characters split across reads stay intact.
 */
function createFrameParser(onMessage: (body: string) => void): (chunk: Buffer) => void {
  let buffer: Buffer = Buffer.alloc(0);
  return (chunk) => {
    buffer = buffer.length ? Buffer.concat([buffer, chunk]) : chunk;
    for (;;) {
      const end = buffer.indexOf(HEADER_END);
      if (end < 0) return;
      const header = buffer.subarray(0, end).toString('ascii');
      const match = /content-length:\s*(\d+)/i.exec(header);
      if (!match) {
        // Not the base protocol (a stray log line on stdout): skip the header block.
        buffer = buffer.subarray(end + HEADER_END.length);
        continue;
      }
      const start = end + HEADER_END.length;
      const length = Number(match[1]);
      if (buffer.length < start + length) return;
      onMessage(buffer.subarray(start, start + length).toString('utf8'));
      buffer = buffer.subarray(start + length);
    }
  };
}

/** One message in the base protocol. */
export const frame = (body: string): string => `Content-Length: ${Buffer.byteLength(body, 'utf8')}\r\n\r\n${body}`;

/**
 * Bridges a client (a browser editor) to a language server process of its own. The client drives the LSP session
 * itself; the agent only adjusts `initialize`: the server would watch `processId` and exit when it cannot see that
 * process (a browser's pid means nothing here, and the root-owned agent's is not visible to the sandbox user), so it
 * becomes null and the agent ends the server with the connection; a missing root becomes the project.
 */
export function bridgeChannel(proc: ChildProcess, project: string, sink: LspChannelSink): LspChannel {
  const stderr = tail(proc.stderr);
  let closedByClient = false;
  const exited = new Promise<void>((resolve) => {
    const done = (code: number | null, why: string) => {
      signalGroup(proc.pid, 'SIGKILL');
      if (!closedByClient) sink.close(code, why);
      resolve();
    };
    proc.once('error', (err) => done(null, `The language server could not start: ${err.message}`));
    proc.once('exit', (code, signal) =>
      done(code, code === 0 ? 'The language server exited' : `The language server ${signal ? `was killed by ${signal}` : `exited with code ${code}`}: ${stderr().slice(-200)}`),
    );
  });
  proc.stdout!.on('data', guard('LSP channel output', createFrameParser((body) => sink.send(body)), () => signalGroup(proc.pid, 'SIGKILL')));
  return {
    pid: proc.pid,
    exited,
    input(message) {
      let parsed: unknown;
      try {
        parsed = JSON.parse(message);
      } catch {
        return false;
      }
      if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) return false;
      const msg = parsed as { method?: string; params?: Record<string, unknown> };
      if (msg.method === 'initialize' && msg.params && typeof msg.params === 'object') {
        // See language-server.ts: a root-owned pid makes servers run as the sandbox user exit; the agent ends them.
        msg.params.processId = null;
        if (msg.params.rootUri == null && msg.params.workspaceFolders == null) {
          msg.params.rootUri = fileUri(project);
          msg.params.rootPath = project;
        }
        message = JSON.stringify(msg);
      }
      if (proc.stdin!.writable) proc.stdin!.write(frame(message));
      return true;
    },
    close() {
      closedByClient = true;
      signalGroup(proc.pid, 'SIGKILL');
    },
  };
}
