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
  const log = opts.log ?? (() => {});
  if (imageExists(name)) return name;
  ensureCommands({ 'dpkg-deb': 'dpkg', 'apt-get': 'apt' }, log);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'cove-busybox-'));
  try {
    log(`apt-get download busybox-static (for ${name})`);
    // apt drops to the _apt user for downloads; it must be able to write the folder.
    chmodSync(dir, 0o777);
    await run('apt-get', ['download', '-q', 'busybox-static'], { cwd: dir, log });
    const deb = readdirSync(dir).find((f) => f.startsWith('busybox-static') && f.endsWith('.deb'));
    if (!deb) throw new Error('apt-get download busybox-static left no .deb');
    const rootfs = path.join(dir, 'rootfs');
    execFileSync('dpkg-deb', ['-x', path.join(dir, deb), rootfs]);
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
    log(`importing ${name}`);
    const tar = spawn('tar', ['-C', rootfs, '--owner=0', '--group=0', '-c', '.'], { stdio: ['ignore', 'pipe', 'inherit'] });
    await run('docker', ['import', '--change', 'CMD ["/bin/sh"]', '-', name], { input: tar.stdout, log });
    return name;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
