import { existsSync } from 'node:fs';
import type { Readable } from 'node:stream';
import type Dockerode from 'dockerode';
import { commandOutput, runWithInput } from '../../../lib/command-stream';
import { RuntimeError } from './types';

/** The writable layer's directory of a container (overlay2 and fuse-overlayfs have one). */
export function upperDirOf(info: Dockerode.ContainerInspectInfo): string | undefined {
  return (info.GraphDriver?.Data as { UpperDir?: string } | undefined)?.UpperDir;
}

/**
 * The writable layer of a container, where this host can read and write it: overlay2 keeps a container's own files
 * (added and changed ones, and deletions as whiteouts) in one directory on the host. Other storage drivers, and
 * engines on another machine, have none Cove can reach: a RuntimeError says which.
 */
export function writableLayer(info: Dockerode.ContainerInspectInfo): string {
  const driver = info.GraphDriver?.Name ?? 'unknown';
  const dir = upperDirOf(info);
  if (driver !== 'overlay2' || !dir) {
    throw new RuntimeError('UNSUPPORTED', `Archiving needs Docker's overlay2 storage driver; this engine uses ${driver}`);
  }
  if (!existsSync(dir)) {
    throw new RuntimeError('UNSUPPORTED', 'Archiving needs the Docker engine on this host: its storage is not reachable from here');
  }
  return dir;
}

/*
 * GNU tar keeps what overlayfs needs: owners by number, modes, times, sparse files, whiteouts (character devices
 * 0:0) and the trusted.overlay.* extended attributes of opaque directories.
 */
const TAR_FLAGS = ['--numeric-owner', '--xattrs', '--xattrs-include=trusted.*', '--xattrs-include=user.*', '--xattrs-include=security.capability', '--sparse'];

/** The layer at `dir` as a tar stream, which fails (error event) when tar does. */
export function tarLayer(dir: string): Readable {
  return commandOutput('tar', ['-C', dir, ...TAR_FLAGS, '-cf', '-', '.']);
}

/** Unpacks a `tarLayer` stream into `dir` (the empty writable layer of a container that has not run yet). */
export function untarLayer(dir: string, source: Readable): Promise<void> {
  return runWithInput('tar', ['-C', dir, ...TAR_FLAGS, '-xpf', '-'], source);
}
