import { CoveError } from '../../../lib/errors';

/** The repository of fork images (`cove-fork:<random>`): Cove's own, never a snapshot's name. */
export const FORK_REPOSITORY = 'cove-fork';

/** One part of a repository path, as Docker reads it. */
const COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;
/** Docker's limit on a whole name. */
const MAX_NAME = 255;

/** What is wrong with a snapshot name, or undefined when it is a name a local image can have. */
function problemOf(name: string): string | undefined {
  if (name === '') return 'a name is required';
  if (/[\s\p{Cc}]/u.test(name)) return 'spaces and control characters are not allowed';
  if (name.includes('@')) return 'a digest (@…) names an image that exists; give a name, and a :tag if you like';
  if (name.length > MAX_NAME) return `at most ${MAX_NAME} characters`;
  const { repository, tag } = split(name);
  if (tag !== undefined && !TAG.test(tag)) return "the tag after ':' holds letters, digits, '_', '.' and '-', at most 128, and starts with a letter, digit or '_'";
  if (/[A-Z]/.test(repository)) return 'image names are lowercase (a tag may have capitals)';
  if (!repository.split('/').every((part) => COMPONENT.test(part))) {
    return "each part between '/' is lowercase letters and digits, joined by '.', '_', '__' or '-' (no registry port)";
  }
  if (/^[a-f0-9]{64}$/.test(repository)) return 'a name of 64 hexadecimal digits would read as an image id';
  if (repository === FORK_REPOSITORY) return `${FORK_REPOSITORY} is the name of the images Cove keeps for forks`;
  return undefined;
}

/** `repo[:tag]` → its parts; a ':' before the last '/' belongs to a registry host, not a tag. */
function split(name: string): { repository: string; tag?: string } {
  const colon = name.lastIndexOf(':');
  return colon > name.lastIndexOf('/') ? { repository: name.slice(0, colon), tag: name.slice(colon + 1) } : { repository: name };
}

/**
 * A snapshot's name as the local image it becomes: `repository[:tag]`, tag `latest` when none is given (as Docker
 * reads a name). Throws a 400 saying what is wrong with any other.
 */
export function parseSnapshotName(name: string): { repository: string; tag: string } {
  const problem = problemOf(name);
  if (problem) throw new CoveError('INVALID_REQUEST', `Invalid snapshot name ${JSON.stringify(name.slice(0, 100))}: ${problem}`);
  const { repository, tag } = split(name);
  return { repository, tag: tag ?? 'latest' };
}
