/**
 * The replay emulator (screen.ts) runs some control sequences once per unit of their count: repeat the preceding
 * character (REP, `CSI n b`), scroll (SU/SD, `S`/`T`), insert or delete lines (IL/DL, `L`/`M`) and tab forward or back
 * (CHT/CBT, `I`/`Z`). A program that prints `ESC [ 2000000000 b` (or `cat`s a binary file that happens to) would hold
 * the agent's only thread for minutes. Counts above what the screen can show change nothing it shows, so these are
 * cut to the screen's size before the emulator sees them: lines and tabs to its rows or columns, repeats to its
 * cells. Only the emulator's copy of the output is rewritten; clients get the terminal's bytes as they are.
 */

const ESC = 0x1b;
const C2 = 0xc2; // first byte of a C1 control in UTF-8
const C1_CSI = 0x9b;
const CAN = 0x18;
const SUB = 0x1a;
/** Largest value the emulator keeps for a parameter. */
const MAX_VALUE = 0x7fffffff;
/** Bytes of one unfinished sequence kept across chunks; a longer one is dropped whole (no program needs one). */
const MAX_HELD = 4096;

const enum State {
  Text,
  Esc,
  C2,
  Csi,
  /** The rest of an over-long sequence, up to whatever ends it. */
  Dropping,
}

/** The bound of the first parameter per final byte; sequences with another final pass unchanged. */
function boundFor(final: number, size: { cols: number; rows: number }): number | undefined {
  switch (String.fromCharCode(final)) {
    case 'S':
    case 'T':
    case 'L':
    case 'M':
      return size.rows;
    case 'I':
    case 'Z':
      return size.cols;
    case 'b':
      return size.cols * size.rows;
    default:
      return undefined;
  }
}

/**
 * A stateful rewriter of a terminal's output stream (sequences may be cut across chunks). Bytes pass unchanged, as
 * spans of the chunk, except the sequences it cuts; `size` is read when a sequence ends.
 */
export function createCountClamp(size: () => { cols: number; rows: number }): (chunk: Uint8Array) => Uint8Array {
  let state = State.Text;
  /** The raw bytes of a sequence begun in an earlier chunk and not finished yet. */
  let held: Uint8Array | undefined;
  // The CSI sequence being read: its introducer, its first parameter, the parameter being read, whether it is plain.
  let c1 = false;
  let first = -1;
  let value = -1;
  let index = 0;
  let plain = true;

  return (chunk) => {
    // The common case: output with no escape in sight.
    if (state === State.Text && chunk.indexOf(ESC) < 0 && chunk.indexOf(C2) < 0) return chunk;
    const pieces: Uint8Array[] = [];
    /** Chunk bytes from here on pass unchanged (-1: none, while the rest of a dropped sequence is skipped). */
    let span = state === State.Dropping ? -1 : 0;
    /** Where the pending sequence began in this chunk (-1: in an earlier one, its bytes in `held`). */
    let start = -1;
    const release = () => {
      if (held) pieces.push(held);
      held = undefined;
    };
    let nextEsc = -2;
    let nextC2 = -2;
    const nextSpecial = (from: number) => {
      if (nextEsc !== -1 && nextEsc < from) nextEsc = chunk.indexOf(ESC, from);
      if (nextC2 !== -1 && nextC2 < from) nextC2 = chunk.indexOf(C2, from);
      return nextEsc < 0 ? nextC2 : nextC2 < 0 ? nextEsc : Math.min(nextEsc, nextC2);
    };
    const startCsi = (isC1: boolean) => {
      state = State.Csi;
      c1 = isC1;
      first = value = -1;
      index = 0;
      plain = true;
    };
    for (let i = 0; i < chunk.length; i++) {
      const b = chunk[i];
      switch (state) {
        case State.Text: {
          const at = nextSpecial(i);
          if (at < 0) {
            i = chunk.length;
            break;
          }
          i = at;
          start = at;
          state = chunk[at] === ESC ? State.Esc : State.C2;
          break;
        }
        case State.Esc:
        case State.C2:
          if (state === State.Esc ? b === 0x5b : b === C1_CSI) startCsi(state === State.C2);
          else {
            // Not a CSI: what was held passes, and this byte may begin another sequence.
            release();
            start = i;
            state = b === ESC ? State.Esc : b === C2 ? State.C2 : State.Text;
          }
          break;
        case State.Csi:
          if (b >= 0x30 && b <= 0x39) value = Math.min(MAX_VALUE, Math.max(value, 0) * 10 + (b - 0x30));
          else if (b === 0x3b || b === 0x3a) {
            if (index++ === 0) first = value;
            value = -1;
          } else if (b >= 0x20 && b <= 0x2f) plain = false; // an intermediate byte
          else if (b >= 0x3c && b <= 0x3f) plain = false; // a private prefix
          else if (b >= 0x40 && b <= 0x7e) {
            if (index === 0) first = value;
            const bound = plain ? boundFor(b, size()) : undefined;
            if (bound !== undefined && first > bound) {
              // The text before the sequence goes on, then the sequence with its count cut (these finals read
              // only their first parameter).
              if (start >= 0) pieces.push(chunk.subarray(span, start));
              held = undefined;
              pieces.push(Buffer.from(`${c1 ? '\xc2\x9b' : '\x1b['}${bound}${String.fromCharCode(b)}`, 'latin1'));
              span = i + 1;
            } else release();
            state = State.Text;
          } else if (b === CAN || b === SUB || b === ESC) {
            // The sequence is abandoned as it is (and ESC begins the next one).
            release();
            start = i;
            state = b === ESC ? State.Esc : State.Text;
          }
          // Any other byte (a C0 control runs in place) stays where it is.
          break;
        case State.Dropping:
          if ((b >= 0x40 && b <= 0x7e) || b === CAN || b === SUB) {
            state = State.Text;
            span = i + 1;
          } else if (b === ESC) {
            state = State.Esc;
            start = span = i;
          }
          break;
      }
    }
    if (state === State.Text) {
      if (span >= 0) pieces.push(chunk.subarray(span));
    } else if (state !== State.Dropping) {
      // An unfinished sequence waits for the next chunk, whole, in case it has to be cut.
      if (start >= 0) {
        pieces.push(chunk.subarray(span, start));
        held = chunk.slice(start);
      } else held = held ? Buffer.concat([held, chunk]) : chunk.slice();
      if (held.length > MAX_HELD) {
        held = undefined;
        state = State.Dropping;
      }
    }
    return pieces.length === 1 ? pieces[0] : Buffer.concat(pieces);
  };
}
