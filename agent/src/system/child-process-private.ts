import { ChildProcess } from 'node:child_process';

/**
 * Node's one private part the agent relies on: `ChildProcess.prototype.spawn(options)`, which spawn(), execFile(),
 * exec() and fork() all call, and which forks the child synchronously (libuv's uv_spawn) before it returns. Read in
 * Node 20 (the bundle's runtime); test/private-apis.test.ts checks it on the real module.
 *
 * Runs every child-process spawn inside `around`, which gets the call that forks and must return its result.
 * Returns a function that puts the original back.
 */
export function wrapChildProcessSpawn(around: <T>(fork: () => T) => T): () => void {
  const proto = ChildProcess.prototype as unknown as { spawn: (this: ChildProcess, options: unknown) => unknown };
  const original = proto.spawn;
  proto.spawn = function spawn(this: ChildProcess, options: unknown) {
    return around(() => original.call(this, options));
  };
  return () => {
    proto.spawn = original;
  };
}
