import { accessSync, constants } from 'node:fs';
import path from 'node:path';

/**
 * Where OpenSSH's SFTP server may be: the image's own first (Debian and Ubuntu, Fedora and RHEL, Alpine and Arch
 * layouts), then the one the agent bundle carries beside its Node (`/opt/cove/bin/sftp-server`, built with the
 * bundle's own loader and libraries, so it runs in any image).
 */
const CANDIDATES = [
  '/usr/lib/openssh/sftp-server',
  '/usr/libexec/openssh/sftp-server',
  '/usr/lib/ssh/sftp-server',
  '/usr/libexec/sftp-server',
  path.join(path.dirname(process.execPath), 'sftp-server'),
];

let found: string | null | undefined;

/** The SFTP server SSH's `sftp` subsystem runs (as the sandbox user), or undefined when there is none. */
export function sftpServer(): string | undefined {
  if (found === undefined) {
    found = null;
    for (const candidate of CANDIDATES) {
      try {
        accessSync(candidate, constants.X_OK);
        found = candidate;
        break;
      } catch {
        // not here
      }
    }
  }
  return found ?? undefined;
}
