import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ensureCommands, imageExists, run, type BuildLog } from './host';

/** An image with no libc, no passwd and no package manager: Debian's static busybox and its applet links only. */
export const BUSYBOX_IMAGE = 'cove-test-busybox:latest';

/**
 * Builds BUSYBOX_IMAGE unless it exists: `apt-get download busybox-static`, `dpkg-deb -x`, one symlink per applet,
 * `docker import`. Sandboxes made from it prove that the agent bundle needs nothing from the image: it has no
 * dynamic loader, no libc, no /etc/passwd. Returns the image name.
 */
export async function buildBusyboxImage(opts: { name?: string; log?: BuildLog } = {}): Promise<string> {
  const name = opts.name ?? BUSYBOX_IMAGE;
  if (imageExists(name)) return name;
  await importBusyboxRoot({ name, log: opts.log });
  return name;
}

/**
 * Imports an image made of Debian's static busybox with one symlink per applet, plus the files of `packages` (Debian
 * packages, unpacked with `dpkg-deb -x`, their /usr/share dropped) and what `prepare` adds to the root; `changes` are
 * `docker import --change` lines (CMD ["/bin/sh"] is always one).
 */
export async function importBusyboxRoot(opts: { name: string; packages?: string[]; prepare?: (rootfs: string) => void; changes?: string[]; log?: BuildLog }): Promise<void> {
  const { name } = opts;
  const log = opts.log ?? (() => {});
  const packages = ['busybox-static', ...(opts.packages ?? [])];
  ensureCommands({ 'dpkg-deb': 'dpkg', 'apt-get': 'apt' }, log);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'cove-busybox-'));
  try {
    log(`apt-get download ${packages.join(' ')} (for ${name})`);
    // apt drops to the _apt user for downloads; it must be able to write the folder.
    chmodSync(dir, 0o777);
    await run('apt-get', ['download', '-q', ...packages], { cwd: dir, log });
    const rootfs = path.join(dir, 'rootfs');
    for (const pkg of packages) {
      const deb = readdirSync(dir).find((f) => f.startsWith(`${pkg}_`) && f.endsWith('.deb'));
      if (!deb) throw new Error(`apt-get download ${pkg} left no .deb`);
      execFileSync('dpkg-deb', ['-x', path.join(dir, deb), rootfs]);
    }
    rmSync(path.join(rootfs, 'usr/share'), { recursive: true, force: true });
    // The binary is static, so the host can ask it for its applets.
    const applets = execFileSync(path.join(rootfs, 'bin/busybox'), ['--list-full'], { encoding: 'utf8' }).split('\n').filter(Boolean);
    for (const applet of applets) {
      const link = path.join(rootfs, applet);
      if (link === path.join(rootfs, 'bin/busybox')) continue;
      mkdirSync(path.dirname(link), { recursive: true });
      try {
        symlinkSync('/bin/busybox', link);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
    }
    mkdirSync(path.join(rootfs, 'tmp'), { mode: 0o1777 });
    chmodSync(path.join(rootfs, 'tmp'), 0o1777);
    opts.prepare?.(rootfs);
    log(`importing ${name}`);
    const tar = spawn('tar', ['-C', rootfs, '--owner=0', '--group=0', '-c', '.'], { stdio: ['ignore', 'pipe', 'inherit'] });
    const changes = ['CMD ["/bin/sh"]', ...(opts.changes ?? [])].flatMap((c) => ['--change', c]);
    await run('docker', ['import', ...changes, '-', name], { input: tar.stdout, log });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
