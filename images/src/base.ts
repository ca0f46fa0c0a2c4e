import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ensureCommands, run } from './host';

/** Name of the Debian base image built from Debian's packages where no registry can be reached. */
export const BASE_IMAGE = 'cove-base:bookworm';

/** The Debian mirror this host's apt uses (so the image is built from the same source), or Debian's default. */
export function debianMirror(): string {
  const files = ['/etc/apt/sources.list', ...listDir('/etc/apt/sources.list.d').map((f) => `/etc/apt/sources.list.d/${f}`)];
  for (const file of files) {
    let text = '';
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    const deb822 = /^URIs:\s*(\S+\/debian)\s*$/m.exec(text);
    if (deb822) return deb822[1];
    const line = /^deb\s+(?:\[[^\]]*\]\s+)?(\S+\/debian)\s+bookworm\b/m.exec(text);
    if (line) return line[1];
  }
  return 'http://deb.debian.org/debian';
}

function listDir(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

export function imageExists(name: string): boolean {
  try {
    execFileSync('docker', ['image', 'inspect', name], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/**
 * Builds BASE_IMAGE from Debian packages with debootstrap (minbase bookworm) and `docker import`, unless it exists.
 */
export async function buildBaseImage(log: (line: string) => void = () => {}): Promise<void> {
  if (imageExists(BASE_IMAGE)) return;
  ensureCommands({ debootstrap: 'debootstrap' }, log);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'cove-rootfs-'));
  const rootfs = path.join(dir, 'rootfs');
  try {
    const mirror = debianMirror();
    log(`debootstrap bookworm from ${mirror} (about a minute)`);
    await run('debootstrap', ['--variant=minbase', 'bookworm', rootfs, mirror], { log });
    // Downloaded packages are not part of the image; apt inside sandboxes uses the mirror it was built from.
    const archives = path.join(rootfs, 'var/cache/apt/archives');
    for (const f of listDir(archives)) if (f.endsWith('.deb')) rmSync(path.join(archives, f));
    log(`importing ${BASE_IMAGE}`);
    const tar = spawn('tar', ['-C', rootfs, '-c', '.'], { stdio: ['ignore', 'pipe', 'inherit'] });
    await run('docker', ['import', '--change', 'CMD ["/bin/bash"]', '-', BASE_IMAGE], { input: tar.stdout!, log });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
