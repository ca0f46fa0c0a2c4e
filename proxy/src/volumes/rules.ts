import path from 'node:path';
import { BUNDLE_MOUNT } from '../../../images/src/bundle';
import { AGENT_SECRETS_MOUNT } from '../runtime/sandbox-config';
import type { SandboxVolume } from '../../../wire/volumes';

/** A volume's name: unique among its API key's volumes. */
const NAME = /^[a-zA-Z0-9][a-zA-Z0-9._-]{0,62}$/;

/** What is wrong with a volume name, or undefined when it is a good one. */
export function volumeNameProblem(name: string): string | undefined {
  if (name === '') return 'a name is required';
  if (!NAME.test(name)) return 'letters, digits, ".", "_" and "-", at most 63, starting with a letter or digit';
  return undefined;
}

/** At most this many volumes in one sandbox. */
export const MAX_MOUNTS = 16;

/**
 * Paths a volume may not be mounted at, nor under: the kernel's file systems, Cove's own mounts (the agent bundle,
 * the agent's token folder) and the files Docker mounts into every container.
 */
const RESERVED = ['/proc', '/sys', '/dev', BUNDLE_MOUNT, AGENT_SECRETS_MOUNT, '/etc/hosts', '/etc/hostname', '/etc/resolv.conf'];
/**
 * Of those, the ones a volume may not be mounted above either: the engine would make their mount points inside the
 * volume (files and folders of Cove's in the user's data), or shadow them.
 */
const NO_ANCESTOR = [BUNDLE_MOUNT, AGENT_SECRETS_MOUNT, '/etc/hosts', '/etc/hostname', '/etc/resolv.conf'];

const under = (p: string, root: string): boolean => p === root || p.startsWith(`${root}/`);

/** What is wrong with a mount path, or undefined when a volume can be mounted there. */
export function mountPathProblem(mountPath: string): string | undefined {
  if (!mountPath) return 'a mount path is required';
  if (/[\0\n\r]/.test(mountPath)) return 'control characters are not allowed';
  if (!mountPath.startsWith('/')) return 'it must be an absolute path (starting with /)';
  if (mountPath === '/') return 'a volume cannot be mounted over the root of the file system';
  const normal = path.posix.normalize(mountPath).replace(/\/+$/, '');
  if (normal !== mountPath) return `it must be a normalized path without trailing "/", "." or ".." parts (${normal || '/'})`;
  if (mountPath.split(':').length > 1) return 'a ":" is not allowed';
  for (const root of RESERVED) if (under(mountPath, root)) return `${root} is reserved (the kernel's, Docker's or Cove's own)`;
  for (const root of NO_ANCESTOR) if (under(root, mountPath)) return `it holds ${root}, which Cove or Docker mounts into every sandbox`;
  return undefined;
}

/**
 * Checks the `volumes` of a create: each mount path valid, none twice, no subpath (this engine cannot mount part of a
 * volume), at most MAX_MOUNTS. Returns the first problem as a sentence naming the field, or undefined.
 */
export function mountsProblem(mounts: SandboxVolume[]): string | undefined {
  if (mounts.length > MAX_MOUNTS) return `At most ${MAX_MOUNTS} volumes can be mounted in one sandbox, not ${mounts.length}`;
  const seen = new Set<string>();
  for (const [i, m] of mounts.entries()) {
    const field = `volumes[${i}]`;
    if (!m.volumeId) return `${field}.volumeId is required: the id or name of one of your volumes`;
    const problem = mountPathProblem(m.mountPath);
    if (problem) return `${field}.mountPath ${JSON.stringify(m.mountPath.slice(0, 200))} cannot be used: ${problem}`;
    if (m.subpath) {
      return `${field}.subpath is not supported by this Cove server (its Docker engine cannot mount part of a volume): mount the whole volume and use the folder inside it`;
    }
    if (seen.has(m.mountPath)) return `${field}.mountPath ${m.mountPath} is given twice: each volume needs a mount path of its own`;
    seen.add(m.mountPath);
  }
  return undefined;
}
