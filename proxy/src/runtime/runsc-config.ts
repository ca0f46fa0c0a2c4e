/**
 * Pure parts of registering gVisor's `runsc` with the Docker engine: the runtime entry, merging it into the engine's
 * daemon.json, reading dockerd's command line, and finding which process listens on the engine's socket.
 */

/** The OCI runtimes a sandbox can run under. */
export const OCI_RUNTIMES = ['runc', 'runsc'] as const;
export type OciRuntime = (typeof OCI_RUNTIMES)[number];

/**
 * runsc's arguments for sandboxes on a Docker bridge. `--network=host` makes gVisor use the kernel's network stack of
 * the container's own namespace (the one Docker made and wired to the bridge) instead of gVisor's netstack, which
 * this runsc refuses to start ("cannot run with network enabled in root network namespace"). Packets still leave by
 * the container's veth with its bridge address, so the host firewall applies as under runc. No `--ignore-cgroups`:
 * it would drop every resource limit.
 */
const RUNSC_ARGS: readonly string[] = ['--network=host'];

/** A runtime entry as daemon.json and `docker info` hold it. */
export interface RuntimeEntry {
  path: string;
  runtimeArgs?: string[];
}

/** What is wrong with the engine's registered runsc for Cove's sandboxes, or undefined when it fits. */
export function runscEntryProblem(entry: RuntimeEntry): string | undefined {
  const args = entry.runtimeArgs ?? [];
  const network = args.filter((a) => /^--?network(=|$)/.test(a));
  if (!args.includes('--network=host') || network.length !== 1) {
    return `its runtimeArgs (${JSON.stringify(args)}) lack --network=host, without which runsc cannot run on Docker's bridge networks here`;
  }
  if (args.some((a) => /^--?ignore-cgroups(=true)?$/.test(a))) return 'its runtimeArgs hold --ignore-cgroups, which drops every memory, CPU and process limit';
  return undefined;
}

/** The daemon.json text to add (for messages telling an operator what to do). */
export function runscSnippet(runscPath: string): string {
  return JSON.stringify({ runtimes: { runsc: { path: runscPath, runtimeArgs: RUNSC_ARGS } } });
}

/**
 * daemon.json with `runtimes.runsc` added, every other key kept as it was; undefined when it already names a runsc
 * runtime (the operator's entry is never replaced). Throws when the text is not a JSON object or its `runtimes` is
 * not one: Cove does not rewrite a file it cannot read.
 */
export function withRunscRuntime(text: string, runscPath: string): string | undefined {
  let config: unknown;
  try {
    config = text.trim() ? JSON.parse(text) : {};
  } catch (err) {
    throw new Error(`it is not valid JSON (${(err as Error).message})`);
  }
  if (!isObject(config)) throw new Error('it does not hold a JSON object');
  const runtimes = config.runtimes ?? {};
  if (!isObject(runtimes)) throw new Error('its "runtimes" is not a JSON object');
  if ('runsc' in runtimes) return undefined;
  const merged = { ...config, runtimes: { ...runtimes, runsc: { path: runscPath, runtimeArgs: [...RUNSC_ARGS] } } };
  return `${JSON.stringify(merged, null, 2)}\n`;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** What dockerd's command line says about its configuration file and runtimes. */
export function dockerdOptions(argv: string[]): { configFile: string; addsRuntimes: boolean } {
  let configFile = '/etc/docker/daemon.json';
  let addsRuntimes = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--config-file' && i + 1 < argv.length) configFile = argv[++i];
    else if (arg.startsWith('--config-file=')) configFile = arg.slice('--config-file='.length);
    else if (arg === '--add-runtime' || arg.startsWith('--add-runtime=')) addsRuntimes = true;
  }
  return { configFile, addsRuntimes };
}

/** Inodes of the listening Unix sockets bound at any of `paths`, from the text of /proc/net/unix. */
export function listeningSocketInodes(procNetUnix: string, paths: string[]): number[] {
  const inodes: number[] = [];
  for (const line of procNetUnix.split('\n').slice(1)) {
    // Num RefCount Protocol Flags Type St Inode Path
    const fields = line.trim().split(/\s+/);
    if (fields.length < 8) continue;
    const listening = (parseInt(fields[3], 16) & 0x10000) !== 0; // __SO_ACCEPTCON
    if (listening && paths.includes(fields.slice(7).join(' '))) inodes.push(Number(fields[6]));
  }
  return inodes;
}
