import { spawn } from 'node:child_process';
import { PassThrough, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';

/**
 * The standard output of `cmd` (fed `input` on its standard input, if given) as a stream that ends only once `cmd`
 * has exited with 0, and fails with its last stderr otherwise: a reader never takes a failed run's output for a whole
 * one (a truncated archive stored as complete, say). Destroying the stream ends the command.
 */
export function commandOutput(cmd: string, args: string[], input?: Readable): Readable {
  const child = spawn(cmd, args, { stdio: [input ? 'pipe' : 'ignore', 'pipe', 'pipe'] });
  const out = new PassThrough();
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-2000)));
  const exited = new Promise<void>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code, signal) => (code === 0 ? resolve() : reject(new Error(`${cmd} failed (${code ?? signal}): ${stderr.trim() || 'no message'}`))));
  });
  // A command may stop reading once it has what it needs (tar at the end-of-archive blocks, before the padding):
  // the input it left unread is no failure when it exits with 0.
  const fed = input
    ? pipeline(input, child.stdin!).catch(async (err: NodeJS.ErrnoException) => {
        if (err.code !== 'EPIPE' && err.code !== 'ERR_STREAM_PREMATURE_CLOSE') throw err;
        await exited;
      })
    : Promise.resolve();
  Promise.all([fed, pipeline(child.stdout!, out, { end: false }), exited]).then(
    () => out.end(),
    (err: Error) => {
      child.kill('SIGKILL');
      input?.destroy();
      out.destroy(err);
    },
  );
  out.once('close', () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  return out;
}

/** Runs `cmd` with `input` on its standard input and resolves once it has exited with 0 (its output is dropped). */
export async function runWithInput(cmd: string, args: string[], input: Readable): Promise<void> {
  for await (const chunk of commandOutput(cmd, args, input)) void chunk;
}
