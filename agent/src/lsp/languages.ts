import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants as fsConstants, statSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { LSP_LANGUAGE_IDS } from '../../../wire/lsp';
import { CoveError } from '../../../lib/errors';
import type { SandboxContext } from '../system/context';
import { resolvePath } from '../system/paths';

/** A language server program. One process serves every language id listed in `languageIds`. */
export interface LanguageServerKind {
  name: 'typescript' | 'python';
  languageIds: readonly string[];
  command: string;
  args: readonly string[];
  /** What to install when the command is missing, for the error message. */
  install: string;
  /** Extensions of its source files. */
  extensions: readonly string[];
  /**
   * Whether project-wide requests need an open document: tsserver has no project (and answers "No Project") until
   * a file of it is open, where pyright analyses the workspace folder by itself.
   */
  needsOpenDocument: boolean;
}

const TYPESCRIPT: LanguageServerKind = {
  name: 'typescript',
  languageIds: ['typescript', 'javascript'],
  command: 'typescript-language-server',
  args: ['--stdio'],
  install: 'npm install -g typescript typescript-language-server',
  extensions: ['.ts', '.tsx', '.mts', '.cts', '.js', '.jsx', '.mjs', '.cjs'],
  needsOpenDocument: true,
};
const PYTHON: LanguageServerKind = {
  name: 'python',
  languageIds: ['python'],
  command: 'pyright-langserver',
  args: ['--stdio'],
  install: 'npm install -g pyright',
  extensions: ['.py', '.pyi'],
  needsOpenDocument: false,
};

/** The server kind of a Daytona language id; unknown ids are a 400 naming the supported ones. */
export function kindOf(languageId: string): LanguageServerKind {
  for (const kind of [TYPESCRIPT, PYTHON]) if (kind.languageIds.includes(languageId)) return kind;
  throw new CoveError(
    'UNSUPPORTED_LANGUAGE',
    `Unsupported language "${languageId}": supported languages are ${LSP_LANGUAGE_IDS.join(', ')}`,
  );
}

/** The LSP languageId of a document, from its extension; `fallback` (the request's language id) otherwise. */
export function documentLanguageId(file: string, fallback: string): string {
  const ext = path.extname(file).toLowerCase();
  const byExt: Record<string, string> = {
    '.ts': 'typescript',
    '.mts': 'typescript',
    '.cts': 'typescript',
    '.tsx': 'typescriptreact',
    '.js': 'javascript',
    '.mjs': 'javascript',
    '.cjs': 'javascript',
    '.jsx': 'javascriptreact',
    '.py': 'python',
    '.pyi': 'python',
  };
  return byExt[ext] ?? fallback;
}

/** The executable named `command` on the sandbox's PATH (not the agent's: the bundle's node is not the user's). */
function findExecutable(ctx: SandboxContext, command: string): string | undefined {
  for (const dir of (ctx.env.PATH ?? '').split(':')) {
    if (!dir) continue;
    const candidate = path.join(dir, command);
    try {
      accessSync(candidate, fsConstants.X_OK);
      if (statSync(candidate).isFile()) return candidate;
    } catch {
      /* not here */
    }
  }
  return undefined;
}

/** An absolute, existing project directory; relative paths are taken from the work dir. */
export function resolveProject(ctx: SandboxContext, pathToProject: string): string {
  const dir = resolvePath(ctx.workdir, pathToProject);
  let isDir: boolean;
  try {
    isDir = statSync(dir).isDirectory();
  } catch (err) {
    throw new CoveError('FILE_NOT_FOUND', `Project directory does not exist: ${dir}`, (err as Error).message);
  }
  if (!isDir) throw new CoveError('NOT_A_DIRECTORY', `Project path is not a directory: ${dir}`);
  return dir;
}

/**
 * The absolute path of a document URI. The SDK sends `'file://' + path` whatever the path, so `file://src/a.ts`
 * (a relative path, which URL parsing would take as host "src") is resolved from the work dir, and a bare path is
 * accepted too.
 */
export function documentPath(ctx: SandboxContext, uri: string): string {
  if (uri.startsWith('file:///')) {
    let file: string;
    try {
      file = fileURLToPath(uri);
    } catch (err) {
      throw new CoveError('INVALID_FILE_PATH', `Invalid file URI: ${uri}`, (err as Error).message);
    }
    return resolvePath('/', file);
  }
  if (/^[a-z][a-z0-9+.-]*:/i.test(uri) && !uri.startsWith('file:')) {
    throw new CoveError('INVALID_FILE_PATH', `Only file:// URIs are supported, not ${uri}`);
  }
  const rest = uri.replace(/^file:(\/\/)?/, '');
  let decoded = rest;
  try {
    decoded = decodeURIComponent(rest);
  } catch {
    /* a literal % in the name */
  }
  return resolvePath(ctx.workdir, decoded);
}

/**
 * Some source file of the project, breadth first, skipping dependency and hidden folders; undefined when there is
 * none within `budget` directory entries.
 */
export async function findSourceFile(root: string, kind: LanguageServerKind, budget = 5000): Promise<string | undefined> {
  const queue = [root];
  while (queue.length && budget > 0) {
    const dir = queue.shift()!;
    let entries;
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch {
      continue;
    }
    budget -= entries.length;
    for (const e of entries) {
      if (e.isFile() && kind.extensions.includes(path.extname(e.name)) && !e.name.endsWith('.d.ts')) return path.join(dir, e.name);
    }
    for (const e of entries) {
      if (e.isDirectory() && !e.name.startsWith('.') && e.name !== 'node_modules' && e.name !== '__pycache__') queue.push(path.join(dir, e.name));
    }
  }
  return undefined;
}

/** The URI the agent uses for a file, and under which it files the diagnostics servers publish. */
export const fileUri = (file: string): string => pathToFileURL(file).href;

/** One spelling per file: servers encode URIs their own way (`%3A`, drive letters…). */
export function canonicalUri(uri: string): string {
  try {
    return fileUri(fileURLToPath(uri));
  } catch {
    return uri;
  }
}

/**
 * Spawns a language server for `project` as the sandbox user, in a process group of its own (the TypeScript server
 * starts tsserver beside it: one group signal ends both). Throws LSP_SERVER_NOT_INSTALLED when the command is missing.
 */
export function spawnLanguageServer(ctx: SandboxContext, kind: LanguageServerKind, project: string): ChildProcess {
  const executable = findExecutable(ctx, kind.command);
  if (!executable) {
    throw new CoveError(
      'LSP_SERVER_NOT_INSTALLED',
      `The ${kind.name} language server is not installed: ${kind.command} is not on the sandbox's PATH (install it with \`${kind.install}\`)`,
      `PATH=${ctx.env.PATH ?? ''}`,
    );
  }
  const child = spawn(executable, kind.args, {
    cwd: project,
    env: ctx.env,
    ...ctx.spawnAs,
    detached: true,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  // Writes racing the process's death must not become uncaught EPIPE errors; the exit is handled by the owner.
  child.stdin.on('error', () => {});
  return child;
}

/** Keeps the last `max` characters a stream wrote (a crashed server's last words, for the error detail). */
export function tail(stream: NodeJS.ReadableStream | null, max = 4000): () => string {
  let text = '';
  stream?.on('data', (d: Buffer) => {
    text = (text + d.toString('utf8')).slice(-max);
  });
  return () => text.trim();
}
