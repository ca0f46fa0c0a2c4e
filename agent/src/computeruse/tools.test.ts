/** Finding the desktop's programs on PATH (a 400 naming the desktop image otherwise) and running tools by argv. */
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CoveError } from '../../../lib/errors';
import { createToolCheck, runTool } from './tools';

const dir = mkdtempSync(path.join(os.tmpdir(), 'cove-cu-tools-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const run = { env: { PATH: process.env.PATH ?? '/usr/bin:/bin' }, cwd: '/', spawnAs: {} };

describe('createToolCheck', () => {
  it('names every missing program, its package and the desktop image; finds one once it is installed', () => {
    let pathVar = dir;
    const check = createToolCheck(() => pathVar);
    let caught: unknown;
    try {
      check(['Xvfb', 'xdotool'], 'Mouse control');
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(CoveError);
    expect((caught as CoveError).status).toBe(400);
    expect((caught as CoveError).message).toBe(
      'Mouse control needs the desktop image: Xvfb, xdotool are not installed in this sandbox; create the sandbox from the desktop image cove-desktop:latest (built by `cove images build --desktop`), or install the Debian packages xvfb, xdotool in its image',
    );
    writeFileSync(path.join(dir, 'xdotool'), '#!/bin/sh\n');
    chmodSync(path.join(dir, 'xdotool'), 0o755);
    expect(() => check(['xdotool'], 'Mouse control')).not.toThrow();
    pathVar = '/nowhere';
    expect(() => check(['xdotool'], 'Mouse control')).not.toThrow(); // remembered
    expect(() => check(['wmctrl'], 'The window list')).toThrow(/wmctrl is not installed/);
  });
});

describe('runTool', () => {
  it('passes argv as it is, stdin in, stdout out', async () => {
    expect((await runTool('/bin/sh', ['-c', 'printf "%s|" "$@"', 'sh', 'a b', '$(x)', ';'], run)).toString()).toBe('a b|$(x)|;|');
    expect((await runTool('cat', [], { ...run, input: Buffer.from('bytes') })).toString()).toBe('bytes');
  });

  it('fails with the end of stderr, and kills what takes too long', async () => {
    await expect(runTool('/bin/sh', ['-c', 'echo bad >&2; exit 2'], run)).rejects.toMatchObject({ message: '/bin/sh exited with code 2', detail: 'bad', status: 500 });
    await expect(runTool('sleep', ['5'], { ...run, timeoutMs: 200 })).rejects.toMatchObject({ message: 'sleep did not finish within 0.2 s' });
    await expect(runTool('/no/such/tool', [], run)).rejects.toMatchObject({ message: '/no/such/tool could not be run' });
  });
});
