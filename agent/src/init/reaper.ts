import { ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { guard } from '../../../lib/guard';
import { loadLibc } from '../system/libc';

/**
 * Zombie reaping. Orphaned grandchildren are re-parented to the agent when it is PID 1 (or a child subreaper, which
 * it makes itself), and Node only waits for the children it spawned. The reaper collects every other exited child
 * with waitpid(pid, WNOHANG) — by pid, never waitpid(-1), so the exit status of a child that Node or node-pty
 * waits for is never stolen.
 */
const known = new Set<number>();

/** Marks a pid as waited for elsewhere (node-pty, for one). Child processes from child_process are tracked already. */
export function claimChild(pid: number): void {
  known.add(pid);
}
export function releaseChild(pid: number): void {
  known.delete(pid);
}

let started = false;

interface Reaper {
  /** Reaps what is reapable now; returns the pids reaped. */
  reapNow(): number[];
  stop(): void;
}

let subreaper = false;
/**
 * Makes the agent the child subreaper (when it is not PID 1, which is one already), once. Called before each child
 * starts rather than at start: orphans can only descend from the agent's children, so an agent that never started
 * one does not need it (nor koffi).
 */
export function becomeSubreaper(): void {
  if (subreaper || !started || process.pid === 1) return;
  subreaper = true;
  const PR_SET_CHILD_SUBREAPER = 36;
  loadLibc()?.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
}

export function startReaper(opts: { intervalMs?: number } = {}): Reaper | undefined {
  if (started || process.platform !== 'linux') return undefined;
  started = true;
  const WNOHANG = 1;

  // Every child_process child goes through ChildProcess#spawn: remember it until Node has waited for it.
  const proto = ChildProcess.prototype as unknown as { spawn: (...args: unknown[]) => unknown };
  const spawn = proto.spawn;
  proto.spawn = function (this: ChildProcess, ...args: unknown[]) {
    becomeSubreaper();
    const result = spawn.apply(this, args);
    const pid = this.pid;
    if (pid) {
      known.add(pid);
      this.once('exit', () => known.delete(pid));
    }
    return result;
  };

  const reapNow = (): number[] => {
    const reaped: number[] = [];
    for (const pid of zombieChildren()) {
      if (known.has(pid)) continue;
      const lib = loadLibc();
      if (!lib) break;
      const status = [0];
      if (lib.waitpid(pid, status, WNOHANG) === pid) reaped.push(pid);
    }
    return reaped;
  };
  const onChild = guard('zombie reaping', () => void reapNow(), () => {});
  process.on('SIGCHLD', onChild);
  const timer = setInterval(onChild, opts.intervalMs ?? 2000);
  timer.unref();
  return {
    reapNow,
    stop: () => {
      clearInterval(timer);
      process.off('SIGCHLD', onChild);
    },
  };
}

/** Pids of this process's children that have exited and wait to be reaped. */
function zombieChildren(): number[] {
  const pids: number[] = [];
  let tasks: string[];
  try {
    tasks = readdirSync('/proc/self/task');
  } catch {
    return pids;
  }
  for (const tid of tasks) {
    let children = '';
    try {
      children = readFileSync(`/proc/self/task/${tid}/children`, 'utf8');
    } catch {
      continue;
    }
    for (const word of children.split(' ')) {
      const pid = Number(word);
      if (!pid) continue;
      try {
        const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
        // The state follows the parenthesised command name, which may itself contain spaces or parentheses.
        if (stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) === 'Z') pids.push(pid);
      } catch {
        /* gone meanwhile */
      }
    }
  }
  return pids;
}
