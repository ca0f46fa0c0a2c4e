import { readFileSync } from 'node:fs';
import { loadLibc } from './libc';
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

/**
 * Confines the agent process before anything of the user's runs (a root agent only):
 * - **Not dumpable.** User code running as root in the sandbox must not read the agent's memory or environment
 *   (`/proc/<agent>/environ` still holds the token the agent was started with, and its heap holds it too): the kernel
 *   lets another process of the same user read them only while the target is dumpable. Changing the effective gid
 *   clears that flag (to `fs.suid_dumpable`, 0 by default), and it stays cleared when the gid is changed back; where
 *   an operator set `fs.suid_dumpable=1`, or the kernel has no such setting (gVisor), prctl(PR_SET_DUMPABLE, 0) does
 *   it instead.
 * - **The user's groups.** node-pty switches uid and gid but not the supplementary groups, so PTY and SSH shells
 *   would keep the agent's (root's) groups; the agent takes the user's own groups instead (as root they give it
 *   nothing it did not have). Commands started through child_process get none at all (libuv drops them).
 */
export function confineAgent(identity: Identity): void {
  if (process.getuid?.() !== 0) return;
  const egid = process.getegid!();
  process.setegid!(egid === 0 ? 65534 : 0);
  process.setegid!(egid);
  let suidDumpable = '';
  try {
    suidDumpable = readFileSync('/proc/sys/fs/suid_dumpable', 'utf8').trim();
  } catch {
    // Not there under gVisor: say it directly.
  }
  if (suidDumpable !== '0' && suidDumpable !== '2') {
    const PR_SET_DUMPABLE = 4;
    if (loadLibc()?.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) !== 0) throw new Error('could not make the agent non-dumpable (prctl failed)');
  }
  if (identity.uid !== 0) {
    let groups = '';
    try {
      groups = readFileSync('/etc/group', 'utf8');
    } catch {
      /* no /etc/group: the primary group alone */
    }
    process.setgroups!(userGroups(groups, identity.username, identity.gid));
  }
}

/** The groups an account belongs to, as initgroups(3) finds them: its primary group, then every group listing it. */
export function userGroups(groupFile: string, username: string, gid: number): number[] {
  const groups = [gid];
  for (const line of groupFile.split('\n')) {
    const [, , id, members] = line.split(':');
    const n = Number(id);
    if (id === undefined || id === '' || !Number.isInteger(n) || groups.includes(n)) continue;
    if ((members ?? '').split(',').map((m) => m.trim()).includes(username)) groups.push(n);
  }
  return groups;
}
