import { accessSync, constants as fsConstants } from 'node:fs';
import type { Identity } from './identity';

/**
 * The shell for the user's terminals and SSH sessions: their login shell, else bash, else sh. Service accounts often
 * have nologin/false as their shell, which would end the session at once, so those are skipped. Undefined when none
 * is executable (an image without any shell).
 */
export function loginShell(identity: Identity): string | undefined {
  for (const candidate of [identity.shell, '/bin/bash', '/bin/sh']) {
    if (!candidate || /\/(nologin|false)$/.test(candidate)) continue;
    try {
      accessSync(candidate, fsConstants.X_OK);
      return candidate;
    } catch {
      /* try the next one */
    }
  }
  return undefined;
}
