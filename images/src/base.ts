import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ensureCommands, imageExists, run, type BuildLog } from './host';

/** Name of the Debian base image built from Debian's packages where no registry can be reached. */
export const BASE_IMAGE = 'cove-base:bookworm';

/** The Debian mirror this host's apt uses (so the image is built from the same source), or Debian's default. */
function debianMirror(): string {
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

/**
 * Builds BASE_IMAGE from Debian packages with debootstrap (minbase bookworm) and `docker import`, unless it exists
 * (or `force`). Needs root on the host (debootstrap) and Debian's mirror; returns whether it built.
 */
export async function buildBaseImage(opts: { force?: boolean; log?: BuildLog } = {}): Promise<boolean> {
  const log = opts.log ?? (() => {});
  if (!opts.force && imageExists(BASE_IMAGE)) return false;
  if (process.getuid?.() !== 0) throw new Error(`building ${BASE_IMAGE} runs debootstrap, which needs root`);
  const started = Date.now();
  ensureCommands({ debootstrap: 'debootstrap' }, log);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'cove-rootfs-'));
  const rootfs = path.join(dir, 'rootfs');
  try {
    const mirror = debianMirror();
    log(`debootstrap bookworm from ${mirror} (about a minute)`);
    // debootstrap prints a line per package; keep the progress readable.
    await run('debootstrap', ['--variant=minbase', 'bookworm', rootfs, mirror], { log: (l) => /^I: (Retrieving|Validating|Extracting|Unpacking|Configuring) /.test(l) || log(l) });
    // Downloaded packages are not part of the image; apt inside sandboxes uses the mirror it was built from.
    const archives = path.join(rootfs, 'var/cache/apt/archives');
    for (const f of listDir(archives)) if (f.endsWith('.deb')) rmSync(path.join(archives, f));
    log(`importing ${BASE_IMAGE}`);
    const tar = spawn('tar', ['-C', rootfs, '-c', '.'], { stdio: ['ignore', 'pipe', 'inherit'] });
    await run('docker', ['import', '--change', 'CMD ["/bin/bash"]', '-', BASE_IMAGE], { input: tar.stdout, log });
    log(`${BASE_IMAGE} built in ${Math.round((Date.now() - started) / 1000)} s`);
    return true;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
