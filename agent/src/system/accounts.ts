import { appendFileSync, chownSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';

/** The lines that add a login account, and where it lives. */
interface NewAccount {
  uid: number;
  gid: number;
  home: string;
  shell: string;
  passwdLine: string;
  /** Undefined when a group of that name exists already (its gid is used). */
  groupLine?: string;
}

const FIRST_ID = 1000;
const LAST_ID = 59999;

/** Numeric ids in column 3 of a passwd or group text. */
const idsOf = (text: string): Set<number> => new Set(text.split('\n').map((l) => Number(l.split(':')[2])).filter((n) => Number.isInteger(n)));

/**
 * The account to add for `name` to an image that lacks it (pure): uid and gid the same number where both are free,
 * from 1000 up as useradd picks them; the group of the same name when the image has one; home /home/NAME; bash when
 * the image has it.
 */
export function planAccount(opts: { name: string; passwd: string; group: string; hasBash: boolean }): NewAccount {
  const { name } = opts;
  if (!/^[a-z_][a-z0-9_.-]*$/i.test(name) || name.length > 32) throw new Error(`cannot create an account named ${JSON.stringify(name)}`);
  const usedUids = idsOf(opts.passwd);
  const usedGids = idsOf(opts.group);
  const existingGroup = opts.group.split('\n').find((l) => l.split(':')[0] === name);
  let uid = FIRST_ID;
  if (existingGroup) {
    const gid = Number(existingGroup.split(':')[2]);
    while (usedUids.has(uid)) uid++;
    return finish(uid, gid, undefined);
  }
  while (uid <= LAST_ID && (usedUids.has(uid) || usedGids.has(uid))) uid++;
  if (uid > LAST_ID) throw new Error('no free uid for a new account');
  return finish(uid, uid, `${name}:x:${uid}:`);

  function finish(u: number, g: number, groupLine: string | undefined): NewAccount {
    const home = `/home/${name}`;
    const shell = opts.hasBash ? '/bin/bash' : '/bin/sh';
    return { uid: u, gid: g, home, shell, passwdLine: `${name}:x:${u}:${g}::${home}:${shell}`, groupLine };
  }
}

const read = (file: string): string => {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return '';
  }
};

/**
 * Makes sure `name` is an account of this system (run by a root agent at start, before anything else runs): images
 * without a USER get a non-root account for user code instead of running it as root. Does nothing when it exists.
 */
export function ensureAccount(name: string): void {
  const passwd = read('/etc/passwd');
  if (passwd.split('\n').some((l) => l.split(':')[0] === name)) return;
  const group = read('/etc/group');
  const plan = planAccount({ name, passwd, group, hasBash: existsSync('/bin/bash') });
  const append = (file: string, text: string, before: string) => appendFileSync(file, `${before && !before.endsWith('\n') ? '\n' : ''}${text}\n`);
  if (plan.groupLine) append('/etc/group', plan.groupLine, group);
  append('/etc/passwd', plan.passwdLine, passwd);
  if (!existsSync(plan.home)) {
    // Images without /home (busybox-only ones) get it as useradd would have it: open to everyone, as root's. A
    // recursive mkdir with the home's own 0750 would shut every other account out of /home, the user itself included.
    mkdirSync(path.dirname(plan.home), { recursive: true, mode: 0o755 });
    mkdirSync(plan.home, { mode: 0o750 });
    chownSync(plan.home, plan.uid, plan.gid);
  }
}
