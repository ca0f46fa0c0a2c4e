import { RuntimeError } from './types';

/** The parts of a dockerode/docker-modem error the runtime looks at. */
interface EngineError {
  statusCode?: number;
  code?: string;
  json?: { message?: string } | null;
  reason?: string;
  message?: string;
}

/** HTTP status of an engine error, if it came from the engine (not from the socket). */
export function engineStatus(err: unknown): number | undefined {
  return (err as EngineError | undefined)?.statusCode;
}

/** The engine's own message (its JSON body), or the error's message. */
export function engineMessage(err: unknown): string {
  const e = err as EngineError | undefined;
  return (e?.json?.message ?? e?.message ?? String(err)).trim();
}

/**
 * Turns an engine or socket error into a RuntimeError saying what was attempted. Connection failures become
 * DOCKER_UNAVAILABLE with what to install, so a missing engine is obvious and not a puzzling ECONNREFUSED.
 */
export function toRuntimeError(err: unknown, what: string): RuntimeError {
  if (err instanceof RuntimeError) return err;
  const code = (err as EngineError | undefined)?.code;
  if (code === 'ECONNREFUSED' || code === 'ENOENT' || code === 'EACCES' || code === 'ECONNRESET') {
    return new RuntimeError(
      'DOCKER_UNAVAILABLE',
      `Cannot reach the Docker engine to ${what} (${code}): install it (\`apt-get install docker.io\`) and start dockerd, ` +
        'and run the proxy as a user allowed to use /var/run/docker.sock',
      engineMessage(err),
      { cause: err },
    );
  }
  const status = engineStatus(err);
  if (status === 409) return new RuntimeError('CONFLICT', `Could not ${what}: ${engineMessage(err)}`, undefined, { cause: err });
  return new RuntimeError('DOCKER_ERROR', `Docker failed to ${what}: ${engineMessage(err)}`, undefined, { cause: err });
}
