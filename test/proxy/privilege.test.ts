/**
 * Least privilege inside a sandbox, through `cove serve` and the published SDK: user code in an image that names no
 * user runs as a non-root account; root user code cannot read the agent's token; PTY and SSH shells have exactly
 * the user's groups.
 */
import Database from 'better-sqlite3';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCove, type TestCove } from '../helpers/cove';
import { sshCommand, sshPortOf } from '../helpers/ssh-client';
import { buildTestImage, prepareSandboxAssets, removeImage } from '../helpers/docker';

let cove: TestCove;
const images: string[] = [];

beforeAll(async () => {
  cove = await startCove({ pool: 0 });
}, 20 * 60_000);
afterAll(async () => {
  await cove?.destroy();
  for (const image of images) await removeImage(image);
});

async function image(dockerfile: string): Promise<string> {
  const tag = await buildTestImage(dockerfile);
  images.push(tag);
  return tag;
}

/** The agent token Cove keeps for a sandbox (read from the server's own database, as only the host can). */
function agentTokenOf(id: string): string {
  const db = new Database(path.join(cove.dataDir, 'cove.db'), { readonly: true });
  try {
    return (db.prepare('SELECT agent_token FROM sandboxes WHERE id = ?').get(id) as { agent_token: string }).agent_token;
  } finally {
    db.close();
  }
}

describe('least privilege', () => {
  it('runs user code in an image without USER as a non-root account Cove adds, unless the image or the request says root', async () => {
    const { baseImage } = await prepareSandboxAssets();
    const plain = await image(`FROM ${baseImage}\nRUN useradd -m -u 1000 someone\n`);
    const rooted = await image(`FROM ${baseImage}\nUSER root\n`);
    const daytona = cove.daytona();

    const a = await daytona.create({ snapshot: plain });
    try {
      expect(a.user).toBe('cove');
      const who = await a.process.executeCommand('id -un; id -u; echo $HOME; pwd; touch ~/written && echo writable; cat /etc/shadow >/dev/null 2>&1 || echo no-shadow');
      // uid 1000 was taken by the image's own account: Cove's takes the next free one.
      expect(who.result).toBe('cove\n1001\n/home/cove\n/home/cove\nwritable\nno-shadow\n');
      // Files uploaded through the API belong to the user too.
      await a.fs.uploadFile(Buffer.from('hi'), 'up.txt');
      expect((await a.process.executeCommand('stat -c %U ~/up.txt')).result.trim()).toBe('cove');
    } finally {
      await a.delete();
    }

    for (const [create, expected] of [
      [{ snapshot: rooted }, 'root'],
      [{ snapshot: plain, user: 'root' }, 'root'],
      [{ snapshot: plain, user: 'someone' }, 'someone'],
    ] as const) {
      const s = await daytona.create(create);
      try {
        expect(s.user).toBe(expected);
        expect((await s.process.executeCommand('id -un')).result.trim()).toBe(expected);
      } finally {
        await s.delete();
      }
    }
  });

  it("keeps the agent's token from user code, even as root: not in its environment, memory or any file", async () => {
    const sandbox = await cove.daytona().create({ user: 'root' });
    try {
      const token = agentTokenOf(sandbox.id);
      expect(token.length).toBeGreaterThanOrEqual(32);
      const agentPid = (await sandbox.process.executeCommand("pgrep -f '^/opt/cove/bin/node /opt/cove/agent/cli.mjs agent' | head -1")).result.trim();
      expect(agentPid).toMatch(/^\d+$/);
      const probe = await sandbox.process.executeCommand(
        `id -u; cat /proc/${agentPid}/environ >/dev/null 2>&1 && echo environ-read || echo environ-denied; ` +
          `python3 -c "open('/proc/${agentPid}/mem','rb')" 2>/dev/null && echo mem-open || echo mem-denied; ` +
          `readlink /proc/${agentPid}/fd/0 >/dev/null 2>&1 && echo fd-read || echo fd-denied; ` +
          `grep -rls --exclude-dir=proc --exclude-dir=sys -F '${token}' / 2>/dev/null | head -3; ` +
          `cat /proc/[0-9]*/environ 2>/dev/null | tr '\\0' '\\n' | grep -c -F '${token}'`,
      );
      expect(probe.result).toBe('0\nenviron-denied\nmem-denied\nfd-denied\n0\n');
    } finally {
      await sandbox.delete();
    }
    // The grep reads every file of the sandbox (about a gigabyte): over a minute when the whole suite shares the cores.
  }, 180_000);

  it("gives PTY and SSH shells exactly the user's groups, not the agent's", async () => {
    const sandbox = await cove.daytona().create();
    try {
      const expected = (await sandbox.process.executeCommand('id -G cove')).result.trim();
      expect(expected.split(' ')).not.toContain('0');

      let out = '';
      const pty = await sandbox.process.createPty({ id: 'groups', cols: 120, rows: 20, onData: (d) => void (out += new TextDecoder().decode(d)) });
      await pty.waitForConnection();
      await pty.sendInput('echo "groups:$(id -G):end"; exit\n');
      await pty.wait();
      await pty.disconnect();
      expect(/groups:([0-9 ]+):end/.exec(out)?.[1]).toBe(expected);

      const access = await sandbox.createSshAccess(5);
      const res = await sshCommand(sshPortOf(cove), access.token, 'echo "groups:$(id -G):end"', { tty: true });
      expect(res.code, res.out).toBe(0);
      expect(/groups:([0-9 ]+):end/.exec(res.out)?.[1]).toBe(expected);
    } finally {
      await sandbox.delete();
    }
  });
});
