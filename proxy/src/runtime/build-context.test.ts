import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { dockerfileContext } from './build-context';

describe('dockerfileContext', () => {
  it('is a tar archive that GNU tar reads back as one Dockerfile, byte for byte', () => {
    for (const dockerfile of ['FROM a\nRUN echo ü > /x\n', 'x'.repeat(512), 'FROM b\n'.repeat(300)]) {
      const tar = dockerfileContext(dockerfile);
      expect(tar.length % 512).toBe(0);
      expect(execFileSync('tar', ['-t', '-f', '-'], { input: tar, encoding: 'utf8' })).toBe('Dockerfile\n');
      expect(execFileSync('tar', ['-x', '-O', '-f', '-', 'Dockerfile'], { input: tar, encoding: 'utf8' })).toBe(dockerfile);
    }
  });
});
