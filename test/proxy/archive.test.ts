/**
 * Archive, restore and recover through `cove serve`, the default image and the published SDK: an archived sandbox's
 * container is gone and its files live compressed under the data dir; start brings every file back, byte for byte,
 * with deletions, modes, owners, links and extended attributes; the auto-archive timer acts (with the test-only
 * COVE_TEST_MINUTE_MS); a server killed (SIGKILL) in the middle of an archive or a restore loses nothing.
 */
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import type { Sandbox } from '@daytonaio/sdk';
import { execFileSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCove, type TestCove } from '../helpers/cove';
import { sandboxState, sleep, waitForState as waitFor } from '../helpers/sandbox-state';

const MINUTE_MS = 400;
let cove: TestCove;

beforeAll(async () => {
  cove = await startCove({ pool: 1, env: { COVE_TEST_MINUTE_MS: String(MINUTE_MS) } });
}, 20 * 60_000);
afterAll(async () => {
  await cove?.destroy();
});

const stateOf = (id: string) => sandboxState(cove, id);
const waitForState = (id: string, wanted: string, ms: number) => waitFor(cove, id, wanted, ms);

const archivesDir = () => path.join(cove.dataDir, 'archives');
const run = async (sandbox: Sandbox, command: string) => {
  const r = await sandbox.process.executeCommand(command);
  if (r.exitCode !== 0) throw new Error(`${command} exited with ${r.exitCode}: ${r.result}`);
  return r.result;
};

/** Root (to change the image's files) and made for the test, not taken from the pool: its container carries its id. */
const AS_ROOT = { autoStopInterval: 0, user: 'root' };

/**
 * Files of every kind in the sandbox's own layer and in its image's: `big` MiB of random bytes, small files, a
 * symlink, a hard link, an empty and a sparse file, odd modes and owners, an extended attribute, a file of the image
 * deleted and a directory of the image replaced (overlayfs whiteouts and an opaque directory).
 */
const SEED = (bigMiB: number) =>
  [
    'set -e',
    `mkdir -p ~/w/d/e && head -c ${bigMiB}M /dev/urandom > ~/w/big`,
    'for i in $(seq 1 200); do echo "file $i" > ~/w/d/e/f$i; done',
    'ln -s d/e/f1 ~/w/link && ln ~/w/d/e/f2 ~/w/hard && : > ~/w/empty && truncate -s 64M ~/w/sparse && echo tail >> ~/w/sparse',
    'chmod 4750 ~/w/d/e/f3 && chmod 600 ~/w/d/e/f4',
    'setfattr -n user.cove -v kept ~/w/d/e/f5 2>/dev/null || python3 -c "import os; os.setxattr(os.path.expanduser(\'~/w/d/e/f5\'), \'user.cove\', b\'kept\')"',
    'rm /etc/debian_version && rm -rf /usr/share/doc/git && mkdir /usr/share/doc/git && echo mine > /usr/share/doc/git/only',
    'chown 1234:2345 ~/w/d/e/f6',
  ].join('\n');

/** What must come back: content hashes, kinds, modes, owners, link targets, the attribute, and the image's changes. */
const FINGERPRINT = [
  'cd ~/w',
  'find . -printf "%p %y %m %U:%G %l %s\\n" | sort | sha256sum',
  'find . -type f -exec sha256sum {} + | sort | sha256sum',
  'stat -c %i d/e/f2 hard | uniq | wc -l',
  'python3 -c "import os; print(os.getxattr(os.path.expanduser(\'~/w/d/e/f5\'), \'user.cove\'))"',
  'test ! -e /etc/debian_version && echo deleted-kept',
  'ls /usr/share/doc/git',
  'du -k sparse | cut -f1',
].join(' && ');

describe('archive and restore', () => {
  it('archives a stopped sandbox (container gone, files compressed in the store) and start brings back 1 GiB and every kind of file', async () => {
    const sandbox = await cove.daytona().create(AS_ROOT);
    try {
      await run(sandbox, SEED(1024));
      const before = await run(sandbox, FINGERPRINT);
      expect(before).toContain('deleted-kept');
      // A running sandbox cannot be archived: it says why.
      const refused = await cove.api(`/sandbox/${sandbox.id}/archive`, { method: 'POST' });
      expect(refused.status).toBe(409);
      expect((await refused.json()).message).toMatch(/only a stopped sandbox/);

      await sandbox.stop();
      const containerBefore = cove.containers(`dev.cove.sandbox=${sandbox.id}`);
      expect(containerBefore).toHaveLength(1);
      await sandbox.archive();
      expect(sandbox.state).toBe('archived');
      expect(cove.containers(`dev.cove.sandbox=${sandbox.id}`)).toHaveLength(0);
      const stored = readdirSync(archivesDir()).filter((f) => f.startsWith(sandbox.id));
      expect(stored).toEqual([`${sandbox.id}.tar.zst`]);
      // Random bytes do not compress: the archive holds them all, and the whole image is not in it.
      const size = Number(execFileSync('stat', ['-c', '%s', path.join(archivesDir(), stored[0])], { encoding: 'utf8' }));
      expect(size).toBeGreaterThan(1024 * 1024 * 1024);
      expect(size).toBeLessThan(1100 * 1024 * 1024);
      // Toolbox calls say it is archived; archiving again is a no-op.
      const toolbox = await fetch(`${cove.url}/toolbox/${sandbox.id}/process/execute`, {
        method: 'POST',
        headers: { Authorization: `Bearer ${cove.apiKey}`, 'Content-Type': 'application/json' },
        body: JSON.stringify({ command: 'true' }),
      });
      expect(toolbox.status).toBe(409);
      expect((await toolbox.json()).message).toMatch(/archived/);
      expect((await (await cove.api(`/sandbox/${sandbox.id}/archive`, { method: 'POST' })).json()).state).toBe('archived');

      // Its image is kept under a name of its own while it is archived, whatever its own name points to then.
      const held = () => execFileSync('docker', ['images', '-q', `cove-archived:${sandbox.id}`], { encoding: 'utf8' }).trim();
      expect(held()).not.toBe('');

      await sandbox.start();
      expect(sandbox.state).toBe('started');
      expect(await run(sandbox, FINGERPRINT)).toBe(before);
      expect(held()).toBe('');
      // The archive goes once the sandbox runs again.
      expect(readdirSync(archivesDir()).filter((f) => f.startsWith(sandbox.id))).toEqual([]);
    } finally {
      await sandbox.delete();
    }
  }, 600_000);

  it('archives a stopped sandbox after its auto-archive interval, and deletes an archived one with its archive', async () => {
    const sandbox = await cove.daytona().create({ autoStopInterval: 0, autoArchiveInterval: 2 });
    expect(sandbox.autoArchiveInterval).toBe(2);
    await run(sandbox, 'echo kept > ~/note');
    await sandbox.stop();
    await waitForState(sandbox.id, 'archived', 20 * MINUTE_MS);
    expect(existsSync(path.join(archivesDir(), `${sandbox.id}.tar.zst`))).toBe(true);
    await sandbox.start();
    expect(await run(sandbox, 'cat ~/note')).toBe('kept\n');
    await sandbox.stop();
    await waitForState(sandbox.id, 'archived', 20 * MINUTE_MS);
    // Auto-delete counts from the stop, through the archive.
    await sandbox.setAutoDeleteInterval(3);
    await waitForState(sandbox.id, 'gone', 20 * MINUTE_MS);
    expect(existsSync(path.join(archivesDir(), `${sandbox.id}.tar.zst`))).toBe(false);
  }, 120_000);

  it('loses nothing when the server is killed during an archive or a restore', async () => {
    const daytona = cove.daytona();
    const sandbox = await daytona.create(AS_ROOT);
    const { id } = sandbox;
    await run(sandbox, SEED(300));
    const before = await run(sandbox, FINGERPRINT);
    await sandbox.stop();

    const restart = async () => {
      const { dataDir, apiKey } = cove;
      cove.process.kill('SIGKILL');
      await new Promise((r) => cove.process.once('exit', r));
      cove = await startCove({ pool: 1, dataDir, apiKey, env: { COVE_TEST_MINUTE_MS: String(MINUTE_MS) } });
    };

    // Killed while archiving: back to stopped with its container, no archive (complete or partial) left.
    void cove.api(`/sandbox/${id}/archive`, { method: 'POST' }).catch(() => {});
    await waitForState(id, 'archiving', 60_000);
    await sleep(300);
    await restart();
    expect(await stateOf(id)).toBe('stopped');
    expect(cove.containers(`dev.cove.sandbox=${id}`)).toHaveLength(1);
    expect(readdirSync(archivesDir()).filter((f) => f.startsWith(id))).toEqual([]);

    // Archived for real, then killed while restoring: archived again, no container, the archive intact.
    expect((await (await cove.api(`/sandbox/${id}/archive`, { method: 'POST' })).json()).state).toBe('archived');
    void cove.api(`/sandbox/${id}/start`, { method: 'POST' }).catch(() => {});
    await waitForState(id, 'restoring', 60_000);
    await sleep(300);
    await restart();
    expect(await stateOf(id)).toBe('archived');
    expect(cove.containers(`dev.cove.sandbox=${id}`)).toHaveLength(0);
    expect(readdirSync(archivesDir()).filter((f) => f.startsWith(id))).toEqual([`${id}.tar.zst`]);

    const back = await cove.daytona().get(id);
    await back.start();
    expect(await run(back, FINGERPRINT)).toBe(before);
    await back.delete();
  }, 600_000);
});

describe('recover', () => {
  it('starts again a sandbox whose container died, with its files; refuses one whose container is gone', async () => {
    const daytona = cove.daytona();
    // Not from the pool: its container carries its id.
    const sandbox = await daytona.create({ autoStopInterval: 0, envVars: { MADE_FOR: 'recover' } });
    try {
      await run(sandbox, 'echo survived > ~/note');
      expect(sandbox.recoverable).toBe(false);
      const notInError = await cove.api(`/sandbox/${sandbox.id}/recover`, { method: 'POST' });
      expect(notInError.status).toBe(400);
      expect((await notInError.json()).message).toMatch(/not in error/);

      execFileSync('docker', ['kill', '--signal', 'KILL', ...cove.containers(`dev.cove.sandbox=${sandbox.id}`)]);
      await waitForState(sandbox.id, 'error', 30_000);
      await sandbox.refreshData();
      expect(sandbox.recoverable).toBe(true);
      await sandbox.recover();
      expect(sandbox.state).toBe('started');
      expect(await run(sandbox, 'cat ~/note')).toBe('survived\n');

      // skipStart leaves it stopped.
      execFileSync('docker', ['kill', '--signal', 'KILL', ...cove.containers(`dev.cove.sandbox=${sandbox.id}`)]);
      await waitForState(sandbox.id, 'error', 30_000);
      const skipped = await cove.api(`/sandbox/${sandbox.id}/recover?skipStart=true`, { method: 'POST' });
      expect((await skipped.json()).state).toBe('stopped');
      await sandbox.start();

      execFileSync('docker', ['rm', '-f', ...cove.containers(`dev.cove.sandbox=${sandbox.id}`)]);
      // Its death and then its removal reach Cove one after the other.
      const until = Date.now() + 30_000;
      do {
        await sleep(50);
        await sandbox.refreshData();
      } while ((sandbox.state !== 'error' || sandbox.recoverable) && Date.now() < until);
      expect(sandbox.state).toBe('error');
      expect(sandbox.recoverable).toBe(false);
      const gone = await cove.api(`/sandbox/${sandbox.id}/recover`, { method: 'POST' });
      expect(gone.status).toBe(400);
      expect((await gone.json()).message).toMatch(/container is gone/);
    } finally {
      await sandbox.delete();
    }
  }, 300_000);
});
