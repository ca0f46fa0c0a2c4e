import { CHARTS_PY } from './charts-py';

/**
 * The Python side of an interpreter context: a small REPL kernel of Cove's own, one process per context.
 *
 * Why not ipykernel: it is not installed in most images, takes about a second to start, and needs ZeroMQ. This
 * kernel needs only the standard library and starts in the time `python3` does.
 *
 * Protocol (the agent's side is kernel.ts):
 * - The agent starts `python3 -c BOOTSTRAP` and writes this program on the kernel's stdin, then closes it (so user
 *   code reading stdin sees end of file). The program is compiled under the name `<cove-kernel>`, which is how its
 *   frames are recognised and left out of tracebacks.
 * - fd 3 (agent → kernel): JSON lines `{"type":"run","code","envs","sync"}`.
 * - fd 4 (kernel → agent): JSON lines `{"type":"ready","pid","python"}` once, then one
 *   `{"type":"done","error":{name,value,traceback}|null,"charts":[...]}` per run.
 * - fd 1 and 2 are the user's stdout and stderr, read as raw bytes by the agent: what user code, its C extensions
 *   and its subprocesses write arrives as it is written (sys.stdout and sys.stderr are line-buffered, as at a
 *   terminal, and flushed at the end of every run) and can never be taken for a protocol message, which only
 *   travels on fd 4. Because fd 4 is another pipe, the end of a run is also marked in
 *   fd 1 and 2: after the run, the kernel writes `\x1fcove-sync:<sync>\x1f` (the run's random token) to both, so the
 *   agent knows it has every byte of the run's output before it reports the end.
 * - fds 3 and 4 are made non-inheritable, so programs user code starts do not hold them.
 *
 * A run: envs are set for its duration; the code is compiled under `<cell-N>` (registered with linecache, so
 * tracebacks show its lines); when its last statement is an expression, that expression's value goes through
 * `sys.displayhook` as at the Python prompt (printed with repr, kept in `_`), unless the code ends with `;` as in
 * Jupyter; top-level `await` works. Exceptions
 * are reported with a traceback starting at the user's first frame. SIGINT raises KeyboardInterrupt only while user
 * code runs; between runs it is ignored, so a late interrupt cannot break the kernel. SystemExit with status 0 or
 * None ends a run normally; another status is reported as an error. After the run, the charts of figures shown or
 * left open are rendered (charts-py.ts).
 */
export const KERNEL_PY =
  `_CHARTS_SOURCE = ${JSON.stringify(CHARTS_PY)}\n` +
  String.raw`
import ast
import json
import linecache
import os
import signal
import sys
import traceback
import types

KERNEL_FILE = '<cove-kernel>'
CMD_FD = 3
EVENT_FD = 4
MAX_TRACEBACK = 256 * 1024
MAX_VALUE = 64 * 1024
KEEP_CELLS = 200

for _fd in (CMD_FD, EVENT_FD):
    os.set_inheritable(_fd, False)
# Line-buffered, as at a terminal: a print arrives as one piece, as soon as its line is complete.
for _stream in (sys.stdout, sys.stderr):
    try:
        _stream.reconfigure(line_buffering=True)
    except Exception:
        pass

charts = {'__name__': '__cove_charts__'}
exec(compile(_CHARTS_SOURCE, '<cove-kernel>', 'exec'), charts)
shown = []
charts['install'](shown)

user_ns = sys.modules['__main__'].__dict__
state = {'in_user': False, 'cell': 0, 'loop': None}


def on_sigint(signum, frame):
    if state['in_user']:
        raise KeyboardInterrupt()


signal.signal(signal.SIGINT, on_sigint)


def write_all(fd, data):
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def emit(message):
    write_all(EVENT_FD, (json.dumps(message, ensure_ascii=True, allow_nan=False) + '\n').encode('ascii'))


def clip(text, limit):
    if len(text) <= limit:
        return text
    half = limit // 2
    return text[:half] + '\n[... %d characters omitted ...]\n' % (len(text) - 2 * half) + text[-half:]


def user_frames(tb):
    """The traceback from the user's first cell frame on (all of it when none), without the kernel's frames."""
    entries = []
    while tb is not None:
        entries.append(tb)
        tb = tb.tb_next
    cells = [i for i, t in enumerate(entries) if t.tb_frame.f_code.co_filename.startswith('<cell-')]
    if cells:
        entries = entries[cells[0]:]
    entries = [t for t in entries if t.tb_frame.f_code.co_filename != KERNEL_FILE]
    head = None
    for t in reversed(entries):
        head = types.TracebackType(head, t.tb_frame, t.tb_lasti, t.tb_lineno)
    return head


def describe(e):
    tb = user_frames(e.__traceback__)
    try:
        text = ''.join(traceback.format_exception(type(e), e, tb))
    except Exception:
        text = '%s: %s\n' % (type(e).__name__, e)
    try:
        value = str(e)
    except Exception:
        value = '<unprintable %s>' % type(e).__name__
    return {'name': type(e).__name__, 'value': clip(value, MAX_VALUE), 'traceback': clip(text, MAX_TRACEBACK)}


def run_code(code):
    if code.co_flags & 0x80:
        # Top-level await: the cell compiled to a coroutine.
        loop = state['loop']
        if loop is None:
            import asyncio
            loop = state['loop'] = asyncio.new_event_loop()
        return loop.run_until_complete(eval(code, user_ns))
    return eval(code, user_ns)


def execute(source, filename):
    lines = source.splitlines(True)
    linecache.cache[filename] = (len(source), None, lines, filename)
    stale = '<cell-%d>' % (state['cell'] - KEEP_CELLS)
    linecache.cache.pop(stale, None)
    flags = getattr(ast, 'PyCF_ALLOW_TOP_LEVEL_AWAIT', 0)
    tree = compile(source, filename, 'exec', ast.PyCF_ONLY_AST | flags, dont_inherit=True)
    last = None
    # As in Jupyter, a trailing semicolon keeps the value from being shown.
    if tree.body and isinstance(tree.body[-1], ast.Expr) and not source.rstrip().endswith(';'):
        last = ast.Expression(tree.body.pop().value)
    run_code(compile(tree, filename, 'exec', flags, dont_inherit=True))
    if last is not None:
        value = run_code(compile(last, filename, 'eval', flags, dont_inherit=True))
        if value is not None:
            sys.displayhook(value)


def run(command):
    state['cell'] += 1
    filename = '<cell-%d>' % state['cell']
    envs = command.get('envs') or {}
    saved = {}
    error = None
    try:
        for key, value in envs.items():
            saved[key] = os.environ.get(key)
            os.environ[key] = str(value)
        state['in_user'] = True
        try:
            execute(str(command.get('code', '')), filename)
        finally:
            state['in_user'] = False
    except SystemExit as e:
        if e.code not in (None, 0):
            error = describe(e)
    except BaseException as e:
        error = describe(e)
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass
    found = list(shown)
    del shown[:]
    try:
        charts['take_open'](found)
    except Exception:
        pass
    sync = ('\x1fcove-sync:%s\x1f' % command.get('sync', '')).encode('ascii', 'replace')
    for fd in (1, 2):
        try:
            write_all(fd, sync)
        except OSError:
            pass
    message = {'type': 'done', 'error': error, 'charts': found[:charts['MAX_CHARTS']]}
    try:
        emit(message)
    except ValueError:
        message['charts'] = []
        emit(message)


def main():
    emit({'type': 'ready', 'pid': os.getpid(), 'python': sys.version.split()[0]})
    commands = os.fdopen(CMD_FD, 'rb')
    while True:
        line = commands.readline()
        if not line:
            return
        try:
            command = json.loads(line)
        except ValueError:
            continue
        if isinstance(command, dict) and command.get('type') == 'run':
            run(command)


main()
`;

/**
 * The `-c` program that starts the kernel: it reads the kernel from stdin and runs it in a namespace of its own,
 * leaving `__main__` (where user code runs) as a fresh interpreter has it.
 */
export const KERNEL_BOOTSTRAP =
  "exec(compile(__import__('sys').stdin.buffer.read(),'<cove-kernel>','exec'),{'__name__':'__cove_kernel__'})";
