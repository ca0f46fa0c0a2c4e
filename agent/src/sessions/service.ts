import { accessSync, constants as fsConstants } from 'node:fs';
import path from 'node:path';
import type {
  Session,
  SessionCommand,
  SessionCommandLogs,
  SessionExecuteRequest,
  SessionExecuteResponse,
} from '../../../wire/sessions';
import { STDERR_PREFIX, STDOUT_PREFIX } from '../../../wire/sessions';
import { CoveError } from '../../../lib/errors';
import type { SandboxContext } from '../system/context';
import { STOP_GRACE_MS } from '../system/process-group';
import { DEFAULT_LOG_CAP, type LogListener } from './command-log';
import { describeCommand, ShellSession, type CommandRecord } from './shell-session';


interface SessionsOptions {
  /** Bytes of output kept per command (newest kept). Default 10 MiB. */
  logCap?: number;
  /** Bytes of output kept per session, over all its commands. Default 64 MiB. */
  sessionBudget?: number;
}

/** bash when the image has it on PATH (what users expect of a shell session), otherwise the POSIX sh every image has. */
function findShell(pathVar: string | undefined): string {
  for (const dir of (pathVar ?? '').split(':')) {
    if (!dir.startsWith('/')) continue;
    const candidate = path.join(dir, 'bash');
    try {
      accessSync(candidate, fsConstants.X_OK);
      return candidate;
    } catch {
      /* not here */
    }
  }
  return '/bin/sh';
}

const delay = (ms: number) => new Promise<void>((r) => setTimeout(r, ms).unref());

/**
 * Sessions: named, long-lived shells (see ShellSession). Each session owns one process group; deleting the session
 * or closing the service kills that group, so nothing a session started outlives it. Commands are never tied to
 * the request that started them: a client that goes away leaves its command running and its exit code recorded.
 */
export function createSessionsService(ctx: SandboxContext, opts: SessionsOptions = {}) {
  const shell = findShell(ctx.env.PATH);
  const sessions = new Map<string, ShellSession>();
  const shellOptions = {
    shell,
    logCap: opts.logCap ?? DEFAULT_LOG_CAP,
    sessionBudget: opts.sessionBudget ?? 64 * 1024 * 1024,
  };

  function session(sessionId: string): ShellSession {
    const found = sessions.get(sessionId);
    if (!found) throw new CoveError('SESSION_NOT_FOUND', `No session named ${sessionId}`);
    return found;
  }

  /** `marked`: `output` in the form SDKs before 0.167 split themselves (see wantsMarkedOutput). */
  function logsOf(record: CommandRecord, marked = false): SessionCommandLogs {
    const output = marked ? record.log.marked({ stdout: STDOUT_PREFIX, stderr: STDERR_PREFIX }) : record.log.text();
    return { output, stdout: record.log.text('stdout'), stderr: record.log.text('stderr') };
  }

  /** Kills a session's process group and waits (bounded) until the shell is gone and its output collected. */
  async function kill(s: ShellSession): Promise<void> {
    s.signal('SIGKILL');
    await Promise.race([s.ended, delay(STOP_GRACE_MS)]);
    s.dispose();
  }

  return {
    /** The shell sessions run in. */
    shell,

    /** Starts a session's shell. Throws SESSION_EXISTS when the id is taken (even by a session that ended). */
    create(sessionId: string): Session {
      if (!sessionId) throw new CoveError('INVALID_REQUEST', 'A session id must not be empty');
      if (sessions.has(sessionId)) throw new CoveError('SESSION_EXISTS', `A session named ${sessionId} already exists`);
      const s = new ShellSession(sessionId, ctx, shellOptions);
      sessions.set(sessionId, s);
      return s.info();
    },

    list(): Session[] {
      return [...sessions.values()].map((s) => s.info());
    },

    get(sessionId: string): Session {
      return session(sessionId).info();
    },

    /** Removes a session and kills everything it started (its whole process group); returns its final state. */
    async delete(sessionId: string): Promise<Session> {
      const s = session(sessionId);
      sessions.delete(sessionId);
      await kill(s);
      return s.info();
    },

    /**
     * Runs a command in a session, after any commands still queued there. With `runAsync` (or `async`) it answers
     * with the command id at once; otherwise when the command has ended, with its output and exit code.
     */
    async execute(sessionId: string, req: SessionExecuteRequest, opts: { marked?: boolean } = {}): Promise<SessionExecuteResponse> {
      const record = session(sessionId).execute(req.command, req.suppressInputEcho ?? false);
      if (req.runAsync || req.async) return { cmdId: record.id };
      await record.settled;
      if (record.state === 'abandoned') {
        throw new CoveError('SESSION_ENDED', `Session ${sessionId} ended before the command could run`);
      }
      return { cmdId: record.id, ...logsOf(record, opts.marked), exitCode: record.exitCode };
    },

    command(sessionId: string, commandId: string): SessionCommand {
      return describeCommand(session(sessionId).command(commandId));
    },

    sendInput(sessionId: string, commandId: string, data: string): void {
      session(sessionId).sendInput(commandId, data);
    },

    /** The output kept for a command so far (all of it once the command ended, up to the cap). */
    logs(sessionId: string, commandId: string, opts: { marked?: boolean } = {}): SessionCommandLogs {
      return logsOf(session(sessionId).command(commandId), opts.marked);
    },

    /** Replays a command's output to `listener`, then streams it live until the command ends. Returns the unsubscribe. */
    follow(sessionId: string, commandId: string, listener: LogListener): () => void {
      return session(sessionId).command(commandId).log.follow(listener);
    },

    /** Id of a session's latest command (the entrypoint session runs just one), if any. */
    latestCommandId(sessionId: string): string | undefined {
      return session(sessionId).commands.at(-1)?.id;
    },

    /** SIGTERM to every session's process group, up to STOP_GRACE_MS to exit, then SIGKILL to whatever is left. */
    async close(): Promise<void> {
      const all = [...sessions.values()];
      sessions.clear();
      for (const s of all) s.signal('SIGTERM');
      await Promise.race([Promise.all(all.map((s) => s.ended)), delay(STOP_GRACE_MS)]);
      for (const s of all) {
        s.signal('SIGKILL');
        s.dispose();
      }
    },
  };
}

/** The sessions capability as app.ts wires it. */
export type SessionsService = ReturnType<typeof createSessionsService>;
