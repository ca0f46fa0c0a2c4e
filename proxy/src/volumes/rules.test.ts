import { describe, expect, it } from 'vitest';
import { MAX_MOUNTS, mountPathProblem, mountsProblem, volumeNameProblem } from './rules';

describe('volumeNameProblem', () => {
  it('accepts names of letters, digits, ".", "_" and "-" up to 63', () => {
    for (const name of ['data', 'my-data_1.v2', 'A', 'x'.repeat(63)]) expect(volumeNameProblem(name)).toBeUndefined();
  });
  it('refuses empty, long, spaced, slashed and dotted-first names', () => {
    for (const name of ['', 'x'.repeat(64), 'a b', 'a/b', '.hidden', '-x', '../x', 'é']) expect(volumeNameProblem(name)).toBeTruthy();
  });
});

describe('mountPathProblem', () => {
  it('accepts absolute normalized paths', () => {
    for (const p of ['/data', '/home/cove/data', '/mnt/a.b/c-d', '/opt/data', '/run/other', '/etc/myapp']) expect(mountPathProblem(p)).toBeUndefined();
  });
  it('refuses relative, root, unnormalized and trailing-slash paths', () => {
    for (const p of ['', 'data', './data', '/', '//data', '/data/', '/a/../b', '/a/./b', '/a//b', '/a\0b']) expect(mountPathProblem(p)).toBeTruthy();
  });
  it("refuses the kernel's and Cove's own mounts, what is under them, and what holds them", () => {
    for (const p of ['/proc', '/proc/x', '/sys', '/dev/shm', '/opt/cove', '/opt/cove/bin', '/run/cove', '/run/cove/x', '/opt', '/run', '/etc', '/etc/hosts']) {
      expect(mountPathProblem(p)).toBeTruthy();
    }
  });
  it('names the reason', () => {
    expect(mountPathProblem('/opt/cove/x')).toMatch(/\/opt\/cove is reserved/);
    expect(mountPathProblem('/opt')).toMatch(/holds \/opt\/cove/);
    expect(mountPathProblem('data')).toMatch(/absolute/);
  });
});

describe('mountsProblem', () => {
  const m = (mountPath: string, extra: { volumeId?: string; subpath?: string } = {}) => ({ volumeId: 'v', mountPath, ...extra });
  it('accepts distinct valid mounts, the same volume twice included', () => {
    expect(mountsProblem([m('/a'), m('/b'), m('/a/inner')])).toBeUndefined();
    expect(mountsProblem([])).toBeUndefined();
  });
  it('refuses a mount path given twice, naming the entry', () => {
    expect(mountsProblem([m('/a'), m('/a', { volumeId: 'w' })])).toMatch(/volumes\[1\]\.mountPath \/a is given twice/);
  });
  it('refuses a bad mount path, naming the entry and the path', () => {
    expect(mountsProblem([m('/ok'), m('rel')])).toMatch(/volumes\[1\]\.mountPath "rel"/);
  });
  it('refuses a subpath by name, and an empty volume id', () => {
    expect(mountsProblem([m('/a', { subpath: 'x' })])).toMatch(/volumes\[0\]\.subpath is not supported/);
    expect(mountsProblem([m('/a', { subpath: '' })])).toBeUndefined();
    expect(mountsProblem([m('/a', { volumeId: '' })])).toMatch(/volumeId is required/);
  });
  it(`refuses more than ${MAX_MOUNTS} mounts`, () => {
    expect(mountsProblem(Array.from({ length: MAX_MOUNTS + 1 }, (_, i) => m(`/v${i}`)))).toMatch(/At most/);
  });
});
