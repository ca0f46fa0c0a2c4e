import { CoveError } from '../../../lib/errors';

/**
 * The agent's one glob matcher, used by file search (`/files/search`) and watch ignores (`/files/watch?ignore=`).
 *
 * It matches in time linear in the text: a glob compiles to a small automaton that is run one state set per
 * character, never by backtracking. Globs come from API callers, and a matcher that turns a glob into a regular
 * expression (micromatch and picomatch do, and both have had ReDoS reports) backtracks exponentially on alternatives
 * (`{*,*}{*,*}…`) and polynomially on stars (`*a*a*a*a*b`), so one search or watch request could hold the agent's
 * only thread for minutes. This file is small enough to own; a library would also bring semantics of its own
 * (dotfile rules, extglobs, brace ranges) that the API does not promise.
 *
 * Semantics (`compileGlob`, one string against one glob; matching is on UTF-16 code units):
 * - `*` any run of characters but `/`, empty included; `?` one character but `/`.
 * - `**` followed by `/` where a path segment begins (at the start, after `/`, or at the start of an alternative of
 *   a `{…}` that begins one) is zero or more whole folders: `**` + `/x` matches `x` and `a/b/x`, `a/**` + `/x`
 *   matches `a/x`, `{**` + `/x,y}` matches `x`. Any other `**` is any run of characters, `/` included (`a/**` matches
 *   `a/b/c` but not `a`, `a**b` matches `a/x/b`, `a**` + `/b` matches `ax/b` but not `ab`).
 * - `[…]` one character of a class, ranges allowed (`[a-z0-9]`); `[!…]` and `[^…]` negated; a `]` right after the
 *   opening (or after `!`/`^`) is literal; a class never matches `/`; a `[` without a closing `]` is literal; a class
 *   JavaScript refuses (a reversed range such as `[z-a]`) makes the glob invalid.
 * - `{a,b}` alternatives, nested allowed, empty ones too (`a{,.bak}`); no ranges (`{1..3}` is the one alternative `1..3`); an unclosed
 *   `{` ends with the glob; `,` and `}` outside braces are literal.
 * - `\` makes the next character literal.
 * - Dotfiles are not special: `*`, `?`, `**` and classes match a leading `.` (as Go's filepath.Match, which Daytona's
 *   search uses, and gitignore do).
 *
 * Path globs (`compilePathGlob`, a path relative to a root, `/`-separated): leading and trailing `/` are ignored for
 * matching; a glob without `/` otherwise matches the last segment (a name, at any depth); a glob with `/` (a leading
 * one included: `/build` is `build` at the root only) matches the whole relative path.
 */

interface Glob {
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

/**
 * A `[…]` class as a predicate over one code unit, through the regular expression engine (one unit: no
 * backtracking). `members` is what stands between `[` (and `!`/`^`) and `]`; `\` in it is a literal backslash.
 */
function classPred(members: string, negated: boolean, glob: string): Pred {
  let body = members.replace(/\\/g, '\\\\');
  if (body.startsWith(']')) body = `\\${body}`;
  let re: RegExp;
  try {
    re = new RegExp(`^[${negated ? '^' : ''}${body}]$`);
  } catch (err) {
    // A class the engine refuses, such as the reversed range `[z-a]`.
    throw new CoveError('INVALID_REQUEST', `Invalid glob ${JSON.stringify(glob.slice(0, 100))}`, (err as Error).message);
  }
  return (c) => c !== SLASH && re.test(String.fromCharCode(c));
}

function parse(glob: string): Node[] {
  const root: Node[] = [];
  /** Open `{…}` groups: their alternatives so far, the sequence being read, and whether they begin a path segment. */
  const groups: { alts: Node[][]; outer: Node[]; atSegmentStart: boolean }[] = [];
  let seq = root;
  /** Whether the character at `i` begins a path segment: at the start, after `/`, or at the start of an alternative. */
  let segmentStart = true;
  for (let i = 0; i < glob.length; i++) {
    const ch = glob[i];
    const atSegmentStart: boolean = segmentStart;
    segmentStart = false;
    if (ch === '*') {
      if (glob[i + 1] !== '*') {
        seq.push({ t: 'star', p: notSlash });
        continue;
      }
      i++;
      if (atSegmentStart && glob[i + 1] === '/') {
        seq.push({ t: 'dirs' });
        i++;
        segmentStart = true;
      } else seq.push({ t: 'star', p: any });
    } else if (ch === '?') seq.push({ t: 'char', p: notSlash });
    else if (ch === '[') {
      const negated = glob[i + 1] === '!' || glob[i + 1] === '^';
      const first = negated ? i + 2 : i + 1;
      // A `]` first in the class is one of its members, not its end.
      const end = glob.indexOf(']', first + 1);
      if (end < 0) seq.push({ t: 'char', p: literal(ch.charCodeAt(0)) });
      else {
        seq.push({ t: 'char', p: classPred(glob.slice(first, end), negated, glob) });
        i = end;
      }
    } else if (ch === '{') {
      if (groups.length >= MAX_BRACE_DEPTH) throw new CoveError('INVALID_REQUEST', `Invalid glob: braces nest deeper than ${MAX_BRACE_DEPTH} levels`);
      const group = { alts: [] as Node[][], outer: seq, atSegmentStart };
      groups.push(group);
      seq = [];
      group.alts.push(seq);
      segmentStart = atSegmentStart;
    } else if (ch === '}' && groups.length) {
      const group = groups.pop()!;
      group.outer.push({ t: 'alt', alts: group.alts });
      seq = group.outer;
    } else if (ch === ',' && groups.length) {
      seq = [];
      groups[groups.length - 1].alts.push(seq);
      segmentStart = groups[groups.length - 1].atSegmentStart;
    } else if (ch === '\\' && i + 1 < glob.length) seq.push({ t: 'char', p: literal(glob.charCodeAt(++i)) });
    else {
      seq.push({ t: 'char', p: literal(glob.charCodeAt(i)) });
      segmentStart = ch === '/';
    }
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

/**
 * Compiles a glob matched against a whole string; one the engine cannot use (a reversed class range, braces nested
 * too deep) is an INVALID_REQUEST.
 */
export function compileGlob(glob: string): Glob {
  const a = new Automaton();
  const MATCH = a.state(null);
  const start = a.sequence(parse(glob), MATCH);
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

/**
 * Compiles a glob matched against paths relative to a root (`/`-separated, no leading `/`): one without `/` matches
 * the last segment, one with `/` the whole path, leading and trailing `/` left out. A glob that is only slashes
 * matches nothing.
 */
export function compilePathGlob(glob: string): Glob {
  let end = glob.length;
  while (end > 0 && glob[end - 1] === '/') end--;
  let start = 0;
  while (start < end && glob[start] === '/') start++;
  const trimmed = glob.slice(start, end);
  if (!trimmed) return { test: () => false };
  const byPath = start > 0 || trimmed.includes('/');
  const g = compileGlob(trimmed);
  return byPath ? g : { test: (rel) => g.test(rel.slice(rel.lastIndexOf('/') + 1)) };
}
