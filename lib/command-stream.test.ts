import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { commandOutput, runWithInput } from './command-stream';

async function text(stream: Readable): Promise<string> {
  let out = '';
  for await (const chunk of stream) out += String(chunk);
  return out;
}

describe('commandOutput', () => {
  it('ends with the whole output of a command that exits with 0, fed its input', async () => {
    expect(await text(commandOutput('tr', ['a-z', 'A-Z'], Readable.from(['hello ', 'world'])))).toBe('HELLO WORLD');
  });

  it('ends well when the command exits with 0 before reading all of its input', async () => {
    const endless = new Readable({
      read() {
        this.push(Buffer.alloc(64 * 1024, 'x'));
      },
    });
    expect(await text(commandOutput('head', ['-c', '5'], endless))).toBe('xxxxx');
  });

  it('fails, never ends, when the command fails after writing, and says what it printed on stderr', async () => {
    await expect(text(commandOutput('sh', ['-c', 'echo partial; echo broken >&2; exit 3']))).rejects.toThrow(/sh failed \(3\): broken/);
  });

  it('fails when its input fails, and when the command is missing', async () => {
    const failing = new Readable({
      read() {
        this.destroy(new Error('source broke'));
      },
    });
    await expect(runWithInput('cat', [], failing)).rejects.toThrow(/source broke/);
    await expect(text(commandOutput('cove-no-such-command', []))).rejects.toThrow(/ENOENT/);
  });
});
