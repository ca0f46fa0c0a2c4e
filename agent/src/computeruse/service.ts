import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import path from 'node:path';
import { CoveError } from '../../../lib/errors';
import {
  DESKTOP_PROCESSES,
  type ComputerUseStartResponse,
  type ComputerUseStatusResponse,
  type CompressedRegionScreenshotQuery,
  type DisplayInfoResponse,
  type KeyboardPressRequest,
  type KeyboardTypeRequest,
  type MouseClickRequest,
  type MouseDragRequest,
  type MousePosition,
  type MouseScrollRequest,
  type Recording,
  type ScreenshotResponse,
  type WindowsResponse,
} from '../../../wire/computeruse';
import type { SandboxContext } from '../system/context';
import { hotkeyChord, keyChord } from './keys';
import { createRecordings } from './recordings';
import { createSupervisor, type ProgramSpec } from './supervisor';
import { encodePng } from './png';
import { createToolCheck, runTool } from './tools';
import { captureScreen } from './xcapture';
import { clickArgs, convertArgs, dragArgs, keyArgs, moveArgs, parseMouseLocation, parseResolution, parseWmctrl, parseXdpyinfo, scrollArgs, typeArgs, type ImageOps, type Screen } from './x11';

/** The desktop's X display, its size, and the ports of its VNC server (loopback only) and of noVNC. */
const DISPLAY = ':0';
/** The sandbox environment variable that sets the display's size (`WIDTHxHEIGHT` or `WIDTHxHEIGHTxDEPTH`) at start. */
const RESOLUTION_VARIABLE = 'COVE_DESKTOP_RESOLUTION';
const VNC_PORT = 5901;
const NOVNC_PORT = 6080;
const X_SOCKET_DIR = '/tmp/.X11-unix';
const X_SOCKET = `${X_SOCKET_DIR}/X${DISPLAY.slice(1)}`;
/** How long the window list waits for the window manager after a start. */
const WM_READY_MS = 20_000;
/** How long start waits for Xvfb's socket. */
const X_READY_MS = 15_000;

/** Environment variable that marks every desktop process (and what they start), so stop finds those that left their group. */
const MARKER_NAME = 'COVE_DESKTOP_SESSION';

const programs = (screen: () => Screen): ProgramSpec[] => [
  { name: 'xvfb', command: 'Xvfb', args: () => [DISPLAY, '-screen', '0', `${screen().width}x${screen().height}x${screen().depth}`, '-nolisten', 'tcp', '-s', '0'], priority: 100 },
  // dbus-launch gives the session its bus and ends it with the session.
  { name: 'xfce4', command: 'dbus-launch', args: ['--exit-with-session', 'xfce4-session'], priority: 200 },
  { name: 'x11vnc', command: 'x11vnc', args: ['-display', DISPLAY, '-forever', '-shared', '-nopw', '-localhost', '-rfbport', String(VNC_PORT)], priority: 300 },
  { name: 'novnc', command: 'websockify', args: ['--web', '/usr/share/novnc', String(NOVNC_PORT), `localhost:${VNC_PORT}`], priority: 400 },
];

const DESKTOP_COMMANDS = ['Xvfb', 'dbus-launch', 'xfce4-session', 'x11vnc', 'websockify'];

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Whether a Unix socket accepts connections (a socket file left by a killed X server does not). */
function accepts(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection(socketPath);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/**
 * Lists (as the sandbox user, who alone may read their environments) the processes whose environment holds
 * `marker`: a small script run by the agent's own node, which every sandbox has.
 */
const FIND_MARKED = `const fs=require('fs');const m='\\0'+process.argv[1]+'\\0';const out=[];
for(const d of fs.readdirSync('/proc')){if(!/^\\d+$/.test(d)||+d===process.pid)continue;
let e;try{e='\\0'+fs.readFileSync('/proc/'+d+'/environ','latin1')}catch{continue}if(e.includes(m))out.push(d)}
process.stdout.write(out.join(' '))`;

/**
 * Computer use: a desktop (Xvfb on :0, 1024x768 unless the sandbox's COVE_DESKTOP_RESOLUTION says otherwise, an xfce4 session with its own D-Bus, x11vnc on loopback 5901,
 * noVNC on 6080) run as the sandbox user under a supervisor, and the tools that drive it: xdotool for the mouse and
 * keyboard, ImageMagick for screenshots, xdpyinfo and wmctrl for the display and its windows, ffmpeg for recordings.
 * In an image without them, every route that needs one answers 400 naming the desktop image.
 */
export function createComputerUseService(ctx: SandboxContext) {
  const marker = `${MARKER_NAME}=${randomBytes(8).toString('hex')}`;
  const [markerName, markerValue] = marker.split('=');
  const cwd = ctx.identity.home;
  // NO_AT_BRIDGE: GTK programs do not look for an accessibility bus the image does not have.
  const desktopEnv = () => ({ ...ctx.env, DISPLAY, NO_AT_BRIDGE: '1', [markerName]: markerValue });
  const toolEnv = () => ({ ...ctx.env, DISPLAY });
  /** The display's size for the next start of Xvfb: COVE_DESKTOP_RESOLUTION as it was when the desktop started. */
  let screen = parseResolution(undefined);
  const supervisor = createSupervisor({
    programs: programs(() => screen),
    env: desktopEnv,
    cwd,
    spawnAs: ctx.spawnAs,
    log: (line) => process.stderr.write(`cove agent: ${line}\n`),
  });
  const requireTools = createToolCheck(() => ctx.env.PATH ?? '');
  const recordings = createRecordings({
    dir: path.join(ctx.identity.home, '.cove', 'recordings'),
    owner: ctx.spawnAs.uid === undefined ? undefined : { uid: ctx.identity.uid, gid: ctx.identity.gid },
    run: { env: desktopEnv, cwd, spawnAs: ctx.spawnAs },
  });
  /** Whether the desktop was ever started (else there is nothing to sweep). */
  let everStarted = false;
  /** Whether start set DISPLAY for every later process (stop takes it back). */
  let displaySet = false;
  /** Start and stop run one at a time. */
  let queue: Promise<unknown> = Promise.resolve();
  const serial = <T>(fn: () => Promise<T>): Promise<T> => {
    const next = queue.then(fn, fn);
    queue = next.catch(() => {});
    return next;
  };

  // From "/": xdotool 3.2016 runs a lone argument that names an existing file (`getactivewindow`) as a script.
  const run = (command: string, args: string[], input?: Buffer) => runTool(command, args, { env: toolEnv(), cwd: '/', spawnAs: ctx.spawnAs, input });

  /** The tools of an operation are installed and the desktop runs. */
  function ready(commands: string[], what: string): void {
    requireTools(commands, what);
    if (!supervisor.isRunning('xvfb')) {
      throw new CoveError('CONFLICT', `The desktop is not running: start it first (POST /computeruse/start, the SDK's computerUse.start())`);
    }
  }

  function statusMap(): Record<string, ReturnType<typeof supervisor.status>> {
    return Object.fromEntries(DESKTOP_PROCESSES.map((n) => [n, supervisor.status(n)]));
  }

  function overall(): ComputerUseStatusResponse {
    const running = DESKTOP_PROCESSES.filter((n) => supervisor.isRunning(n)).length;
    return { status: running === DESKTOP_PROCESSES.length ? 'active' : running > 0 ? 'partial' : 'inactive' };
  }

  /** The X socket folder must exist, world-writable and sticky, before a non-root Xvfb can listen. */
  function ensureSocketDir(): void {
    if (!existsSync(X_SOCKET_DIR)) mkdirSync(X_SOCKET_DIR, { recursive: true });
    try {
      chmodSync(X_SOCKET_DIR, 0o1777);
    } catch {
      // Not ours (an image made it as root while the agent is not): Xvfb says what it lacks.
    }
  }

  async function waitForX(): Promise<void> {
    const deadline = Date.now() + X_READY_MS;
    while (Date.now() < deadline) {
      if (!supervisor.isRunning('xvfb')) break;
      if (await accepts(X_SOCKET)) return;
      await sleep(100);
    }
    const why = supervisor.isRunning('xvfb') ? `its socket ${X_SOCKET} did not accept connections within ${X_READY_MS / 1000} s` : 'it exited';
    throw new CoveError('INTERNAL_ERROR', `The desktop did not start: Xvfb ${why}`, supervisor.errors('xvfb').slice(-2000) || undefined);
  }

  /** Pids of processes carrying this agent's desktop marker. */
  async function markedPids(): Promise<number[]> {
    if (ctx.spawnAs.uid === undefined) {
      const out: number[] = [];
      for (const d of readdirSync('/proc')) {
        if (!/^\d+$/.test(d) || Number(d) === process.pid) continue;
        try {
          if (`\0${readFileSync(`/proc/${d}/environ`, 'latin1')}`.includes(`\0${marker}\0`)) out.push(Number(d));
        } catch {
          // gone, or not ours
        }
      }
      return out;
    }
    const text = await runTool(process.execPath, ['-e', FIND_MARKED, marker], { env: { PATH: ctx.env.PATH ?? '' }, cwd: '/', spawnAs: ctx.spawnAs, timeoutMs: 10_000 });
    return text.toString().split(' ').filter(Boolean).map(Number);
  }

  /** Ends what is left of the desktop: children that left their process group (the session's D-Bus daemon). */
  async function sweep(): Promise<void> {
    if (!everStarted) return;
    for (const signal of ['SIGTERM', 'SIGKILL'] as const) {
      const pids = await markedPids().catch(() => []);
      if (pids.length === 0) return;
      for (const pid of pids) {
        try {
          process.kill(pid, signal);
        } catch {
          // already gone
        }
      }
      await sleep(500);
    }
  }

  let size: { pid: number; width: number; height: number } | undefined;
  /** The display's size (xdpyinfo's screen 0), asked once per X server. */
  async function displaySize(): Promise<{ width: number; height: number }> {
    const pid = supervisor.status('xvfb').pid ?? 0;
    if (size?.pid === pid) return size;
    const [screen] = parseXdpyinfo((await run('xdpyinfo', ['-display', DISPLAY])).toString());
    if (!screen) throw new CoveError('INTERNAL_ERROR', 'xdpyinfo named no screen of the display');
    size = { pid, width: screen.width, height: screen.height };
    return size;
  }

  async function pointer(): Promise<MousePosition> {
    return parseMouseLocation((await run('xdotool', ['getmouselocation', '--shell'])).toString());
  }

  async function screenshot(q: Partial<CompressedRegionScreenshotQuery> & { showCursor: boolean }, region: boolean): Promise<ScreenshotResponse> {
    const format = q.format === 'jpg' ? 'jpeg' : (q.format ?? 'png');
    // A PNG of the pixels as they are (nothing drawn or scaled) is encoded here; anything else goes through convert.
    const plain = format === 'png' && (q.scale ?? 1) === 1 && !q.showCursor;
    ready(plain ? ['xdotool', 'xdpyinfo'] : ['convert', 'xdotool', 'xdpyinfo'], 'A screenshot');
    const display = await displaySize();
    const area = region ? { x: q.x!, y: q.y!, width: q.width!, height: q.height! } : undefined;
    if (area && area.x + area.width > display.width) throw new CoveError('INVALID_REQUEST', `Invalid request query.width: the region (x ${area.x}, width ${area.width}) extends past the display's width ${display.width}`);
    if (area && area.y + area.height > display.height) throw new CoveError('INVALID_REQUEST', `Invalid request query.height: the region (y ${area.y}, height ${area.height}) extends past the display's height ${display.height}`);
    // The pixels come straight from the X server (xcapture.ts): the region alone when nothing else is to be done.
    const [captured, cursor] = await Promise.all([captureScreen(DISPLAY, plain ? area : undefined), pointer()]);
    const ops: ImageOps = { display, region: area, cursor: q.showCursor ? cursor : undefined, format, quality: q.quality, scale: q.scale };
    const image = plain ? await encodePng(captured) : await run('convert', convertArgs(ops), captured.rgb);
    return { screenshot: image.toString('base64'), sizeBytes: image.length, cursorPosition: cursor };
  }

  /**
   * `wmctrl -lG`, which needs the window manager's client list: just after start xfwm4 may not have set it yet (several
   * seconds on a busy host), so a failure is retried for up to 20 s; without a window manager it is a 409 that says so.
   */
  async function windowList(): Promise<Buffer> {
    const deadline = Date.now() + WM_READY_MS;
    for (;;) {
      try {
        return await run('wmctrl', ['-lG']);
      } catch (err) {
        if (!/client list/i.test((err as CoveError).detail ?? '')) throw err;
        if (!supervisor.isRunning('xfce4')) {
          throw new CoveError('CONFLICT', 'The window list needs the desktop\'s window manager (xfce4\'s xfwm4), which is not running');
        }
        if (Date.now() > deadline) {
          throw new CoveError('CONFLICT', `The window list needs the desktop's window manager (xfce4's xfwm4), which did not list the windows within ${WM_READY_MS / 1000} s of asking`);
        }
        await sleep(100);
      }
    }
  }

  async function xdotool(args: string[]): Promise<void> {
    await run('xdotool', args);
  }

  return {
    start: () =>
      serial(async (): Promise<ComputerUseStartResponse> => {
        requireTools(DESKTOP_COMMANDS, 'Computer use');
        if (!supervisor.isRunning('xvfb')) screen = parseResolution(ctx.env[RESOLUTION_VARIABLE]);
        ensureSocketDir();
        everStarted = true;
        if (ctx.env.DISPLAY === undefined) {
          ctx.env.DISPLAY = DISPLAY;
          displaySet = true;
        }
        supervisor.start('xvfb');
        await waitForX();
        for (const name of ['xfce4', 'x11vnc', 'novnc']) supervisor.start(name);
        // A program that cannot run at all (a broken install) exits at once: say so now rather than report it running.
        await sleep(700);
        const failed = DESKTOP_PROCESSES.filter((n) => !supervisor.isRunning(n));
        if (failed.length) {
          const detail = failed.map((n) => `${n}: ${supervisor.errors(n).slice(-500)}`).join('\n');
          throw new CoveError('INTERNAL_ERROR', `The desktop did not start: ${failed.join(', ')} exited (they are restarted; see their errors)`, detail);
        }
        return { message: 'Computer use processes started successfully', status: statusMap() };
      }),

    stop: () =>
      serial(async (): Promise<ComputerUseStartResponse> => {
        await recordings.stopAll();
        await supervisor.stopAll();
        await sweep();
        if (displaySet && ctx.env.DISPLAY === DISPLAY) delete ctx.env.DISPLAY;
        displaySet = false;
        return { message: 'Computer use processes stopped successfully', status: statusMap() };
      }),

    status: overall,

    processStatus: (name: string) => ({ processName: name, running: supervisor.isRunning(name) }),

    restartProcess: (name: string) =>
      serial(async () => {
        await supervisor.stop(name);
        supervisor.start(name);
        return { message: `Process ${name} restarted successfully`, processName: name };
      }),

    processLogs: (name: string) => ({ processName: name, logs: supervisor.logs(name) }),
    processErrors: (name: string) => ({ processName: name, errors: supervisor.errors(name) }),

    async mousePosition(): Promise<MousePosition> {
      ready(['xdotool'], 'Mouse control');
      return pointer();
    },

    async move(x: number, y: number): Promise<MousePosition> {
      ready(['xdotool'], 'Mouse control');
      await xdotool(moveArgs(x, y));
      return pointer();
    },

    async click(req: MouseClickRequest): Promise<MousePosition> {
      ready(['xdotool'], 'Mouse control');
      await xdotool(clickArgs(req));
      return pointer();
    },

    async drag(req: MouseDragRequest): Promise<MousePosition> {
      ready(['xdotool'], 'Mouse control');
      await xdotool(dragArgs(req));
      return pointer();
    },

    async scroll(req: MouseScrollRequest): Promise<{ success: boolean }> {
      ready(['xdotool'], 'Mouse control');
      await xdotool(scrollArgs(req));
      return { success: true };
    },

    async type(req: KeyboardTypeRequest): Promise<object> {
      ready(['xdotool'], 'Keyboard control');
      await xdotool(typeArgs(req.text, req.delay));
      return {};
    },

    async press(req: KeyboardPressRequest): Promise<object> {
      const chord = keyChord(req.key, req.modifiers);
      ready(['xdotool'], 'Keyboard control');
      await xdotool(keyArgs(chord));
      return {};
    },

    async hotkey(keys: string): Promise<object> {
      const chord = hotkeyChord(keys);
      ready(['xdotool'], 'Keyboard control');
      await xdotool(keyArgs(chord));
      return {};
    },

    screenshot,

    async displayInfo(): Promise<DisplayInfoResponse> {
      ready(['xdpyinfo'], 'Display information');
      return { displays: parseXdpyinfo((await run('xdpyinfo', ['-display', DISPLAY])).toString()) };
    },

    async windows(): Promise<WindowsResponse> {
      ready(['wmctrl', 'xdotool'], 'The window list');
      const [list, active] = await Promise.all([
        windowList(),
        run('xdotool', ['getactivewindow']).then((b) => Number(b.toString().trim()), () => undefined),
      ]);
      return { windows: parseWmctrl(list.toString(), active) };
    },

    async startRecording(label?: string): Promise<Recording> {
      ready(['ffmpeg', 'xdpyinfo'], 'Screen recording');
      return recordings.start(DISPLAY, await displaySize(), label);
    },
    stopRecording: (id: string) => recordings.stop(id),
    listRecordings: () => recordings.list(),
    getRecording: (id: string) => recordings.get(id),
    deleteRecording: (id: string) => recordings.delete(id),
    openRecording: (id: string) => recordings.open(id),

    /** The accessibility routes: Cove's desktop has no AT-SPI bridge yet. */
    accessibility(): never {
      throw new CoveError(
        'INVALID_REQUEST',
        'Accessibility (AT-SPI) is not supported in this image: Cove\'s desktop image has no accessibility bridge yet; use screenshots, the window list and mouse/keyboard input instead',
      );
    },

    /** Stops the desktop and its recordings (the agent is stopping). */
    async close(): Promise<void> {
      await recordings.stopAll();
      await supervisor.stopAll();
      await sweep().catch(() => {});
    },
  };
}
export type ComputerUseService = ReturnType<typeof createComputerUseService>;
