import { readFileSync } from 'node:fs';
import os from 'node:os';

/** The account that user code runs as. */
export interface Identity {
  username: string;
  uid: number;
  gid: number;
  home: string;
  shell: string;
}

/**
 * Resolves the identity commands run as. Without a name it is the agent's own account, whose home is the HOME the
 * agent was started with when there is one (as for any program run by its own user). With a name it is looked up in
 * /etc/passwd; running as another account needs the agent to be root.
 */
export function resolveIdentity(name?: string, ownHome?: string): Identity {
  const self = ownAccount();
  if (!name || name === self.username) {
    return { username: self.username, uid: self.uid, gid: self.gid, home: ownHome || self.homedir, shell: self.shell || '/bin/sh' };
  }
  let passwd = '';
  try {
    passwd = readFileSync('/etc/passwd', 'utf8');
  } catch {
    /* handled below */
  }
  for (const line of passwd.split('\n')) {
    const [user, , uid, gid, , home, shell] = line.split(':');
    if (user === name) {
      if (self.uid !== 0 && Number(uid) !== self.uid) {
        throw new Error(`The agent runs as ${self.username}, not root, so it cannot run commands as ${name}`);
      }
      return { username: user, uid: Number(uid), gid: Number(gid), home: home || '/', shell: shell || '/bin/sh' };
    }
  }
  throw new Error(`No such user: ${name}`);
}

/**
 * The agent's own account. Images without an /etc/passwd entry for it (scratch, distroless, busybox-only) make
 * os.userInfo() throw; the agent must still start there, so it falls back to the bare uid/gid, HOME (os.homedir()
 * reads it first) and /bin/sh.
 */
function ownAccount(): { username: string; uid: number; gid: number; homedir: string; shell: string | null } {
  try {
    return os.userInfo();
  } catch {
    const uid = process.getuid?.() ?? 0;
    let homedir = '/';
    try {
      homedir = os.homedir() || '/';
    } catch {
      /* no HOME either: the root folder */
    }
    return { username: uid === 0 ? 'root' : String(uid), uid, gid: process.getgid?.() ?? 0, homedir, shell: null };
  }
}

/** Options for spawning user code as `identity`: uid/gid only when they differ from the agent's own. */
export function spawnIdentity(identity: Identity): { uid?: number; gid?: number } {
  const selfUid = process.getuid?.() ?? identity.uid;
  return selfUid === identity.uid ? {} : { uid: identity.uid, gid: identity.gid };
}
