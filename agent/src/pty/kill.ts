import { readdirSync, readFileSync } from 'node:fs';
import { signalGroup } from '../system/process-group';

/**
 * Signals every process of the terminal session led by `sid` (a PTY's shell is a session leader). Its process group
 * alone is not enough: an interactive shell puts each job in a group of its own, and background jobs do not get the
 * kernel's hangup when the shell dies. Processes that started a session of their own (daemons) are left alone.
 * Never throws.
 */
export function signalSession(sid: number, signal: NodeJS.Signals): void {
  signalGroup(sid, signal);
  for (const pid of sessionMembers(sid)) {
    try {
      process.kill(pid, signal);
    } catch {
      /* gone meanwhile */
    }
  }
}

/** Pids whose session id is `sid`, read from /proc (empty where there is no /proc). */
function sessionMembers(sid: number): number[] {
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return [];
  }
  const pids: number[] = [];
  for (const entry of entries) {
    const pid = Number(entry);
    if (!Number.isInteger(pid) || pid <= 0) continue;
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      // Fields after the parenthesised command name: state ppid pgrp session …
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[3]) === sid) pids.push(pid);
    } catch {
      /* gone meanwhile */
    }
  }
  return pids;
}
