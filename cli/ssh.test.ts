import { describe, expect, it } from 'vitest';
import { sshArguments } from './ssh';

describe('sshArguments', () => {
  it('turns sshCommand into ssh arguments and appends the caller’s', () => {
    expect(sshArguments('ssh -p 2222 tok@localhost', ['-o', 'X=y', 'echo', 'hi'])).toEqual(['-p', '2222', 'tok@localhost', '-o', 'X=y', 'echo', 'hi']);
  });

  it('refuses a command that is not ssh', () => {
    expect(() => sshArguments('rm -rf /', [])).toThrow(/cannot run/);
  });
});
