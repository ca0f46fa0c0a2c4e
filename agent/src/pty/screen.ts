import type * as Headless from '@xterm/headless';
import type * as Serialize from '@xterm/addon-serialize';
import { createCountClamp } from './clamp';

/**
 * The emulator (a few hundred KiB of code) is loaded with the first terminal, not at start: most agents never open
 * one. `require` of a bundled CommonJS module is resolved by esbuild into a lazily evaluated wrapper, so this stays
 * synchronous and needs no file at run time.
 */
let xterm: { Terminal: typeof Headless.Terminal; SerializeAddon: typeof Serialize.SerializeAddon } | undefined;
function loadXterm() {
  return (xterm ??= {
    Terminal: (require('@xterm/headless') as typeof Headless).Terminal,
    SerializeAddon: (require('@xterm/addon-serialize') as typeof Serialize).SerializeAddon,
  });
}

/** Lines kept above the visible screen; bounds the memory of every PTY's replay. */
const SCREEN_SCROLLBACK = 1000;

/** Full reset, sent before a replay so that a re-attaching client's old display does not mix with the new one. */
const RESET = '\x1bc';

/**
 * A headless terminal emulator fed with a PTY's output, so that a client attaching later sees the current screen
 * (including a full-screen program on the alternate screen, its cursor and modes) instead of a raw byte log, with
 * bounded memory.
 */
export interface Screen {
  /** Feeds output, in the order it came from the PTY; `parsed` runs once the emulator has consumed it. */
  write(data: Uint8Array, parsed?: () => void): void;
  /** Resizes after the output written so far has been parsed. */
  resize(cols: number, rows: number): void;
  /**
   * Calls `cb` with the escape sequences that redraw the screen as of now (everything written before this call,
   * nothing after), or '' when nothing was ever written. The emulator parses asynchronously, so this waits for it.
   */
  snapshot(cb: (replay: string) => void): void;
  dispose(): void;
}

export function createScreen(cols: number, rows: number): Screen {
  const { Terminal, SerializeAddon } = loadXterm();
  const term = new Terminal({ cols, rows, scrollback: SCREEN_SCROLLBACK, allowProposedApi: true });
  const serializer = new SerializeAddon();
  term.loadAddon(serializer);
  // Private modes the serializer leaves out but a re-attaching client needs: a hidden cursor (top, vi) and SGR mouse
  // reports (vi with mouse=a), without which clicks would arrive in an encoding the program does not read.
  const extra = { cursorHidden: false, sgrMouse: false };
  const onPrivateMode = (set: boolean) => (params: (number | number[])[]) => {
    for (const p of params) {
      if (p === 25) extra.cursorHidden = !set;
      else if (p === 1006) extra.sgrMouse = set;
    }
    return false; // let the emulator apply the mode as usual
  };
  term.parser.registerCsiHandler({ prefix: '?', final: 'h' }, onPrivateMode(true));
  term.parser.registerCsiHandler({ prefix: '?', final: 'l' }, onPrivateMode(false));
  term.parser.registerEscHandler({ final: 'c' }, () => {
    extra.cursorHidden = extra.sgrMouse = false;
    return false;
  });
  const extraModes = () => (extra.sgrMouse ? '\x1b[?1006h' : '') + (extra.cursorHidden ? '\x1b[?25l' : '');
  // The largest size the screen has had: a resize reaches the emulator after the output before it, so counts are cut
  // to a size it may still have.
  const largest = { cols, rows };
  const clamp = createCountClamp(() => largest);
  let written = false;
  let disposed = false;
  return {
    write(bytes, parsed) {
      const data = disposed ? bytes : clamp(bytes);
      if (disposed || data.length === 0) return parsed && queueMicrotask(parsed);
      written = true;
      term.write(data, parsed);
    },
    resize(c, r) {
      largest.cols = Math.max(largest.cols, c);
      largest.rows = Math.max(largest.rows, r);
      // Through the write queue, so output that arrived before the resize is still laid out at the old size.
      if (!disposed) term.write('', () => term.resize(c, r));
    },
    snapshot(cb) {
      if (disposed || !written) return queueMicrotask(() => cb(''));
      // The callback of an empty write runs once every earlier chunk is parsed and before any later one is, so the
      // serialized state matches the byte position at which the caller started queueing live output.
      term.write('', () => cb(RESET + serializer.serialize({ scrollback: SCREEN_SCROLLBACK }) + extraModes()));
    },
    dispose() {
      if (disposed) return;
      disposed = true;
      term.dispose();
    },
  };
}
