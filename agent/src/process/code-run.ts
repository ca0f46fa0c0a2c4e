import { randomBytes } from 'node:crypto';
import type * as TS from 'typescript';
import type { ChartShape } from '../../../wire/interpreter';
import { CODE_LANGUAGES, type CodeLanguage } from '../../../wire/process';
import { CoveError } from '../../../lib/errors';
import { CHARTS_PY } from '../interpreter/charts-py';

/**
 * How code-run starts a program: the interpreter reads the program from stdin (`-`), so there is no size limit
 * from the command line, no temporary file, and the program resolves imports from the working directory as
 * `python -c`/`node -e` would. Its arguments follow, so `sys.argv[1:]` and `process.argv.slice(2)` are `argv`.
 */
interface Program {
  file: string;
  args: string[];
  /** The program text, written to the interpreter's stdin. */
  input: string;
  /** Environment the language needs (request envs still win). */
  envs: Record<string, string>;
  /** Takes the charts a python program left out of its output (see {@link ChartCapture}). */
  charts?: ChartCapture;
}

/** A program that could not be prepared, answered like a failed run (the compiler's messages, exit code 1). */
interface CompileFailure {
  exitCode: number;
  result: string;
}

function isCodeLanguage(language: string): language is CodeLanguage {
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

/**
 * Turns a code-run request into the process to start, or the compiler's answer when the program cannot run.
 * `inherited` is the environment the program would get without the language's additions.
 */
export async function prepareProgram(
  language: string,
  code: string,
  argv: string[],
  inherited: Record<string, string> = {},
): Promise<Program | CompileFailure> {
  if (!isCodeLanguage(language)) {
    throw new CoveError(
      'UNSUPPORTED_LANGUAGE',
      `Unsupported language "${language}": expected one of ${CODE_LANGUAGES.join(', ')}`,
    );
  }
  switch (language) {
    case 'python': {
      // Unbuffered, so that prints and a traceback reach the combined output in the order they happened.
      const envs: Record<string, string> = { PYTHONUNBUFFERED: '1' };
      // matplotlib must not look for a display; an image that names a backend keeps it.
      if (!inherited.MPLBACKEND) envs.MPLBACKEND = 'Agg';
      const charts = new ChartCapture();
      return { file: 'python3', args: ['-c', PYTHON_BOOTSTRAP, ...argv], input: pythonInput(code, charts.token), envs, charts };
    }
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

/**
 * How python code-run runs a program so that its matplotlib figures come back as `artifacts.charts`, while
 * everything else stays as `python3 - ARGS` has it: `python3 -c BOOTSTRAP ARGS` reads, from stdin, a line with the
 * runner's length, the runner, a line with the chart code's length and the run's token, the chart code (kept as
 * bytes, compiled only when needed), then the program (the rest of stdin, so the program sees end of file there,
 * as before). The runner, compiled as `<cove-run>` in a namespace of its own:
 * - gives `__main__` what `python3 -` gives it (`__file__` `<stdin>`, `sys.argv[0]` `-`) and runs the program in it,
 *   compiled as `<stdin>`; an uncaught exception is printed by `sys.excepthook` without the runner's frames and
 *   ends the program with 1 (130 for KeyboardInterrupt), SystemExit passes through: output and exit codes are
 *   those of `python3 -`;
 * - puts a finder for `matplotlib.pyplot` first on `sys.meta_path`; only when the program imports pyplot is the
 *   chart code (interpreter/charts-py.ts) compiled, and `pyplot.show` then renders the figures shown;
 * - at exit (an atexit handler registered before the program runs, so it runs after the program's own, and again
 *   once pyplot has loaded, so it runs before pyplot's own, which destroys every figure), if pyplot was imported,
 *   renders the figures still open and writes all charts to fd 1 as
 *   `\x1fcove-charts:<token>:<JSON>\x1f`, which {@link ChartCapture} takes out of the output. A program that never
 *   imports pyplot pays for nothing but the runner's few lines.
 */
const PYTHON_RUNNER = String.raw`
import atexit
import os
import sys


def _main():
    header = sys.stdin.buffer.readline().split()
    token = header[1].decode('ascii')
    charts_source = sys.stdin.buffer.read(int(header[0]))
    source = sys.stdin.buffer.read()
    captured = []
    charts = {}

    def load_charts():
        if not charts:
            charts['__name__'] = '__cove_charts__'
            exec(compile(charts_source, '<cove-run>', 'exec'), charts)
        return charts

    class PyplotFinder:
        def find_spec(self, name, path=None, target=None):
            if name != 'matplotlib.pyplot':
                return None
            try:
                sys.meta_path.remove(self)
            except ValueError:
                pass
            return load_charts()['_PyplotFinder'](captured, pyplot_loaded).find_spec(name, path, target)

    def pyplot_loaded():
        # pyplot registers an atexit handler that destroys every figure; ours must run before it.
        atexit.unregister(write_charts)
        atexit.register(write_charts)

    def write_charts():
        if 'matplotlib.pyplot' not in sys.modules and not captured:
            return
        try:
            import json
            found = load_charts()['take_open'](captured)
            if not found:
                return
            payload = json.dumps(found[:charts['MAX_CHARTS']], ensure_ascii=True, allow_nan=False)
        except Exception as e:
            sys.stderr.write('[cove: could not collect matplotlib charts: %s: %s]\n' % (type(e).__name__, e))
            return
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass
        data = memoryview(('\x1fcove-charts:%s:%s\x1f' % (token, payload)).encode('ascii'))
        try:
            while data:
                data = data[os.write(1, data):]
        except OSError:
            pass

    sys.meta_path.insert(0, PyplotFinder())
    atexit.register(write_charts)
    main = sys.modules['__main__'].__dict__
    main['__file__'] = '<stdin>'
    main['__cached__'] = None
    sys.argv[0] = '-'
    try:
        code = compile(source, '<stdin>', 'exec', dont_inherit=True)
    except Exception as e:
        sys.excepthook(type(e), e.with_traceback(None), None)
        sys.exit(1)
    try:
        exec(code, main)
    except SystemExit:
        raise
    except BaseException as e:
        tb = e.__traceback__
        while tb is not None and tb.tb_frame.f_code.co_filename == '<cove-run>':
            tb = tb.tb_next
        sys.excepthook(type(e), e.with_traceback(tb), tb)
        sys.exit(130 if isinstance(e, KeyboardInterrupt) else 1)


_main()
`;
const PYTHON_RUNNER_BYTES = Buffer.byteLength(PYTHON_RUNNER);

/** The `-c` program: reads the runner from stdin and runs it without leaving a name in `__main__`. */
const PYTHON_BOOTSTRAP =
  "exec(compile(__import__('sys').stdin.buffer.read(int(__import__('sys').stdin.buffer.readline())),'<cove-run>','exec'),{'__name__':'__cove_run__'})";

const CHARTS_PY_BYTES = Buffer.byteLength(CHARTS_PY);

function pythonInput(code: string, token: string): string {
  return `${PYTHON_RUNNER_BYTES}\n${PYTHON_RUNNER}${CHARTS_PY_BYTES} ${token}\n${CHARTS_PY}${code}`;
}

/** Most bytes of chart data kept from one run; past it the charts are dropped (the output is kept). */
const MAX_CHART_BYTES = 64 * 1024 * 1024;

/**
 * Takes the charts record (`\x1fcove-charts:<token>:<JSON>\x1f`) out of a python program's combined output. Only
 * the record with this run's random token counts; a tail that may be the start of it is held back until the next
 * chunk shows what it is. Everything else passes through unchanged, in order.
 */
export class ChartCapture {
  readonly token = randomBytes(12).toString('hex');
  private readonly start = Buffer.from(`\x1fcove-charts:${this.token}:`, 'latin1');
  private pending: Buffer = Buffer.alloc(0);
  private record: Buffer[] | undefined;
  private recordBytes = 0;
  private overflow = false;
  private readonly found: Buffer[] = [];

  /** Passes output on to `out`, keeping back the charts record. */
  push(chunk: Buffer, out: (data: Buffer) => void): void {
    let buf = this.pending.length ? Buffer.concat([this.pending, chunk]) : chunk;
    this.pending = Buffer.alloc(0);
    while (buf.length) {
      if (this.record) {
        const end = buf.indexOf(0x1f);
        const part = end === -1 ? buf : buf.subarray(0, end);
        this.recordBytes += part.length;
        if (this.recordBytes > MAX_CHART_BYTES) this.overflow = true;
        if (!this.overflow) this.record.push(Buffer.from(part));
        if (end === -1) return;
        if (!this.overflow) this.found.push(Buffer.concat(this.record));
        this.record = undefined;
        buf = buf.subarray(end + 1);
        continue;
      }
      const at = buf.indexOf(this.start);
      if (at === -1) {
        const keep = heldBack(buf, this.start);
        if (buf.length > keep) out(buf.subarray(0, buf.length - keep));
        if (keep) this.pending = Buffer.from(buf.subarray(buf.length - keep));
        return;
      }
      if (at > 0) out(buf.subarray(0, at));
      this.record = [];
      this.recordBytes = 0;
      buf = buf.subarray(at + this.start.length);
    }
  }

  /** The output ended: what was held back is output after all. */
  end(out: (data: Buffer) => void): void {
    if (this.pending.length) out(this.pending);
    this.pending = Buffer.alloc(0);
  }

  /** The charts the program reported (none when it never imported pyplot). */
  charts(): ChartShape[] {
    const charts: ChartShape[] = [];
    for (const record of this.found) {
      try {
        const parsed: unknown = JSON.parse(record.toString('utf8'));
        if (Array.isArray(parsed)) charts.push(...(parsed as ChartShape[]));
      } catch {
        /* a record cut short (the program was killed while writing it) */
      }
    }
    return charts;
  }
}

/** Length of the longest tail of `buf` that is a proper prefix of `marker`. */
function heldBack(buf: Buffer, marker: Buffer): number {
  for (let n = Math.min(buf.length, marker.length - 1); n > 0; n--) {
    if (buf.subarray(buf.length - n).equals(marker.subarray(0, n))) return n;
  }
  return 0;
}
