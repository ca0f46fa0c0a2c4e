import type * as TS from 'typescript';
import { CODE_LANGUAGES, type CodeLanguage } from '../../../wire/process';
import { CoveError } from '../../../lib/http/errors';

/**
 * How code-run starts a program: the interpreter reads the program from stdin (`-`), so there is no size limit
 * from the command line, no temporary file, and the program resolves imports from the working directory as
 * `python -c`/`node -e` would. Its arguments follow, so `sys.argv[1:]` and `process.argv.slice(2)` are `argv`.
 */
export interface Program {
  file: string;
  args: string[];
  /** The program text, written to the interpreter's stdin. */
  input: string;
  /** Environment the language needs (request envs still win). */
  envs: Record<string, string>;
}

/** A program that could not be prepared, answered like a failed run (the compiler's messages, exit code 1). */
export interface CompileFailure {
  exitCode: number;
  result: string;
}

export function isCodeLanguage(language: string): language is CodeLanguage {
  return (CODE_LANGUAGES as readonly string[]).includes(language);
}

/**
 * Node flag that lets `node -` take both CommonJS and ES module syntax (import, top-level await). It is the default
 * in newer Node versions, where the flag may no longer be accepted, so it is passed only where Node knows it.
 */
const DETECT_MODULE = '--experimental-detect-module';
const nodeFlags = (): string[] => (process.allowedNodeEnvironmentFlags.has(DETECT_MODULE) ? [DETECT_MODULE] : []);

let typescript: Promise<typeof TS> | undefined;

/**
 * The TypeScript compiler, loaded on first use: it is large, and an agent that never runs TypeScript should not
 * hold it in memory. The specifier is not a literal so that the bundler leaves the package out of the bundle.
 */
function loadTypescript(): Promise<typeof TS> {
  const specifier = 'typescript';
  typescript ??= import(specifier).then((m: { default?: typeof TS } & typeof TS) => m.default ?? m);
  return typescript;
}

/** Strips types (no type checking, as tsx and ts-node's transpile-only mode do); keeps ES module syntax for Node. */
async function transpile(code: string): Promise<{ js: string } | CompileFailure> {
  let ts: typeof TS;
  try {
    ts = await loadTypescript();
  } catch (err) {
    throw new CoveError('UNSUPPORTED_LANGUAGE', 'TypeScript is not available in this sandbox: the agent could not load its compiler', (err as Error).message);
  }
  const out = ts.transpileModule(code, {
    fileName: 'main.ts',
    reportDiagnostics: true,
    compilerOptions: {
      target: ts.ScriptTarget.ES2022,
      module: ts.ModuleKind.ESNext,
      esModuleInterop: true,
      sourceMap: false,
    },
  });
  const errors = (out.diagnostics ?? []).filter((d) => d.category === ts.DiagnosticCategory.Error);
  if (errors.length === 0) return { js: out.outputText };
  const lines = errors.map((d) => {
    const text = ts.flattenDiagnosticMessageText(d.messageText, '\n');
    if (!d.file || d.start === undefined) return `error TS${d.code}: ${text}`;
    const { line, character } = d.file.getLineAndCharacterOfPosition(d.start);
    return `main.ts(${line + 1},${character + 1}): error TS${d.code}: ${text}`;
  });
  return { exitCode: 1, result: `${lines.join('\n')}\n` };
}

/** Turns a code-run request into the process to start, or the compiler's answer when the program cannot run. */
export async function prepareProgram(language: string, code: string, argv: string[]): Promise<Program | CompileFailure> {
  if (!isCodeLanguage(language)) {
    throw new CoveError(
      'UNSUPPORTED_LANGUAGE',
      `Unsupported language "${language}": expected one of ${CODE_LANGUAGES.join(', ')}`,
    );
  }
  switch (language) {
    case 'python':
      // Unbuffered, so that prints and a traceback reach the combined output in the order they happened.
      return { file: 'python3', args: ['-', ...argv], input: code, envs: { PYTHONUNBUFFERED: '1' } };
    case 'javascript':
      // The agent's own Node runs it: present wherever the agent runs, whatever the image ships.
      return { file: process.execPath, args: [...nodeFlags(), '-', ...argv], input: code, envs: {} };
    case 'typescript': {
      const compiled = await transpile(code);
      if (!('js' in compiled)) return compiled;
      return { file: process.execPath, args: [...nodeFlags(), '-', ...argv], input: compiled.js, envs: {} };
    }
  }
}
