import { createRequire } from 'node:module';

/** The libc functions the agent calls that Node has no binding for. */
interface Libc {
  /** prctl(2): PR_SET_DUMPABLE where fs.suid_dumpable is 1 (see confineAgent). */
  prctl(option: number, a2: number, a3: number, a4: number, a5: number): number;
  /** pipe2(2): one pipe for a command's stdout and stderr, so the combined output keeps its order. */
  pipe2(fds: number[], flags: number): number;
}

let libc: Libc | null | undefined;

/**
 * libc through koffi, loaded on first use and kept: an idle agent never needs it, and koffi costs megabytes of
 * memory. Returns null where it cannot be loaded (not glibc, koffi missing); that is said once on stderr, and callers
 * do without (stdout and stderr on two pipes).
 */
export function loadLibc(): Libc | null {
  if (libc !== undefined) return libc;
  try {
    // Only what is used of koffi's API: a library's functions from their C prototypes.
    const koffi = createRequire(import.meta.url)('koffi') as { load(path: string): { func(prototype: string): unknown } };
    const lib = koffi.load('libc.so.6');
    libc = {
      prctl: lib.func('int prctl(int option, unsigned long a2, unsigned long a3, unsigned long a4, unsigned long a5)') as Libc['prctl'],
      pipe2: lib.func('int pipe2(_Out_ int *fds, int flags)') as Libc['pipe2'],
    };
  } catch (err) {
    process.stderr.write(`cove agent: libc unavailable (stdout and stderr on two pipes): ${(err as Error).message}\n`);
    libc = null;
  }
  return libc;
}
