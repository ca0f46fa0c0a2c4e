/** Characters that never need quoting in a POSIX shell word (Python's shlex.quote keeps the same set bare). */
const SAFE_WORD = /^[\w@%+=:,./-]+$/;

/**
 * Quotes one word for a POSIX shell (sh, dash, bash, zsh), so that the shell reads it back as exactly that word:
 * a non-empty word of ASCII letters, digits and `@%+=:,./-_` stays bare; any other word, the empty one included, goes
 * in single quotes, each `'` in it written as `'\''`. Inside single quotes nothing is special, so spaces, `$`, `\`,
 * newlines and non-ASCII text stay as they are. A NUL byte cannot be part of a shell word (argv ends at one, and
 * shells drop it from the script they read); it is passed through, and the shell drops it.
 */
export function shellQuote(word: string): string {
  return SAFE_WORD.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}
