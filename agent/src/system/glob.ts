import { CoveError } from '../../../lib/errors';

/**
 * Glob matching in time linear in the text: a glob compiles to a small automaton that is run one state set per
 * character, never by backtracking. A regular expression made from a glob backtracks exponentially on alternatives
 * (`{*,*}{*,*}…`) and polynomially on stars (`*a*a*a*a*b`), so one search or watch request could hold the agent's
 * only thread for minutes.
 *
 * Syntax: `*` is any run of characters but `/`, `?` one such character, `**` any run including `/` (`**` followed by
 * `/` also matches no folder at all: `**` + `/x` matches `x`), `[…]` a character class (`[!…]` negated), `{a,b}`
 * alternatives (nested allowed; an unclosed one ends with the glob), `\` makes the next character literal. Matching
 * is on UTF-16 code units, as a regular expression without the `u` flag would do.
 */
export interface GlobOptions {
  /**
   * `segment`: `**` followed by `/` spans whole folders only where it is a whole segment (`a/**` + `/b`), as
   * gitignore does; `anywhere`: wherever it stands.
   */
  globstar: 'segment' | 'anywhere';
  /** Whether `[^…]` is negated like `[!…]`. */
  caretNegates: boolean;
}

export interface Glob {
  test(text: string): boolean;
}

/** Deepest nesting of `{…}` accepted: the compiler recurses once per level. */
const MAX_BRACE_DEPTH = 64;

type Pred = (c: number) => boolean;
type Node = { t: 'char'; p: Pred } | { t: 'star'; p: Pred } | { t: 'dirs' } | { t: 'alt'; alts: Node[][] };

const SLASH = 0x2f;
const notSlash: Pred = (c) => c !== SLASH;
const any: Pred = () => true;
const literal = (code: number): Pred => (c) => c === code;

/** A `[…]` class as a predicate over one code unit, through the regular expression engine (one unit: no backtracking). */
function classPred(body: string, glob: string): Pred {
  let re: RegExp;
  try {
    re = new RegExp(`^[${body.replace(/\\/g, '\\\\')}]$`);
  } catch (err) {
    // A class the engine refuses, such as the reversed range `[z-a]`.
    throw new CoveError('INVALID_REQUEST', `Invalid glob ${JSON.stringify(glob.slice(0, 100))}`, (err as Error).message);
  }
  return (c) => re.test(String.fromCharCode(c));
}

function parse(glob: string, opts: GlobOptions): Node[] {
  const root: Node[] = [];
  /** Open `{…}` groups: their alternatives so far, and the sequence being read. */
  const groups: { alts: Node[][]; outer: Node[] }[] = [];
  let seq = root;
  for (let i = 0; i < glob.length; i++) {
    const ch = glob[i];
    if (ch === '*') {
      if (glob[i + 1] !== '*') {
        seq.push({ t: 'star', p: notSlash });
        continue;
      }
      const wholeSegment = (i === 0 || glob[i - 1] === '/') && (i + 2 === glob.length || glob[i + 2] === '/');
      i++;
      if (glob[i + 1] === '/' && (opts.globstar === 'anywhere' || wholeSegment)) {
        seq.push({ t: 'dirs' });
        i++;
      } else seq.push({ t: 'star', p: any });
    } else if (ch === '?') seq.push({ t: 'char', p: notSlash });
    else if (ch === '[') {
      const end = glob.indexOf(']', i + 2);
      if (end < 0) seq.push({ t: 'char', p: literal(ch.charCodeAt(0)) });
      else {
        let body = glob.slice(i + 1, end);
        if (body.startsWith('!') || (opts.caretNegates && body.startsWith('^'))) body = `^${body.slice(1)}`;
        seq.push({ t: 'char', p: classPred(body, glob) });
        i = end;
      }
    } else if (ch === '{') {
      if (groups.length >= MAX_BRACE_DEPTH) throw new CoveError('INVALID_REQUEST', `Invalid glob: braces nest deeper than ${MAX_BRACE_DEPTH} levels`);
      const group = { alts: [] as Node[][], outer: seq };
      groups.push(group);
      seq = [];
      group.alts.push(seq);
    } else if (ch === '}' && groups.length) {
      const group = groups.pop()!;
      group.outer.push({ t: 'alt', alts: group.alts });
      seq = group.outer;
    } else if (ch === ',' && groups.length) {
      seq = [];
      groups[groups.length - 1].alts.push(seq);
    } else if (ch === '\\' && i + 1 < glob.length) seq.push({ t: 'char', p: literal(glob.charCodeAt(++i)) });
    else seq.push({ t: 'char', p: literal(glob.charCodeAt(i)) });
  }
  // Groups left open end with the glob.
  while (groups.length) {
    const group = groups.pop()!;
    group.outer.push({ t: 'alt', alts: group.alts });
  }
  return root;
}

/** The automaton: a state either consumes one code unit (pred, then `out`) or splits (`out` and `alt`, consuming nothing). */
class Automaton {
  readonly preds: (Pred | null)[] = [];
  readonly out: number[] = [];
  readonly alt: number[] = [];

  state(pred: Pred | null, out = -1, alt = -1): number {
    this.preds.push(pred);
    this.out.push(out);
    this.alt.push(alt);
    return this.preds.length - 1;
  }

  /** Compiles `nodes` so that what follows them is state `next`; returns their first state. */
  sequence(nodes: Node[], next: number): number {
    for (let i = nodes.length - 1; i >= 0; i--) next = this.node(nodes[i], next);
    return next;
  }

  private node(n: Node, next: number): number {
    switch (n.t) {
      case 'char':
        return this.state(n.p, next);
      case 'star': {
        const loop = this.state(null, -1, next);
        this.out[loop] = this.state(n.p, loop);
        return loop;
      }
      case 'dirs': {
        // (any* /)? — no folder, or any run of characters ending in a slash.
        const loop = this.state(null);
        this.out[loop] = this.state(any, loop);
        this.alt[loop] = this.state(literal(SLASH), next);
        return this.state(null, loop, next);
      }
      case 'alt': {
        let start = this.sequence(n.alts[n.alts.length - 1], next);
        for (let k = n.alts.length - 2; k >= 0; k--) start = this.state(null, this.sequence(n.alts[k], next), start);
        return start;
      }
    }
  }
}

/** Compiles a glob; one the engine cannot use (a reversed class range, braces nested too deep) is an INVALID_REQUEST. */
export function compileGlob(glob: string, opts: GlobOptions): Glob {
  const a = new Automaton();
  const MATCH = a.state(null);
  const start = a.sequence(parse(glob, opts), MATCH);
  const { preds, out, alt } = a;
  const seen = new Int32Array(preds.length).fill(-1);
  let generation = 0;
  /** Adds `s` and every state reachable from it without consuming, to `set`. */
  const add = (set: number[], s: number, stack: number[]) => {
    stack.push(s);
    while (stack.length) {
      const x = stack.pop()!;
      if (x < 0 || seen[x] === generation) continue;
      seen[x] = generation;
      if (preds[x] || x === MATCH) set.push(x);
      else {
        stack.push(alt[x]);
        stack.push(out[x]);
      }
    }
  };
  return {
    test(text) {
      const stack: number[] = [];
      let current: number[] = [];
      generation++;
      add(current, start, stack);
      for (let i = 0; i < text.length && current.length; i++) {
        const c = text.charCodeAt(i);
        const next: number[] = [];
        generation++;
        for (const s of current) if (s !== MATCH && preds[s]!(c)) add(next, out[s], stack);
        current = next;
      }
      return current.includes(MATCH);
    },
  };
}
