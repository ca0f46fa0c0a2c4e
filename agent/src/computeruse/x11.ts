/**
 * The pure side of computer use: argv of the X tools the service runs (xdotool, ImageMagick, ffmpeg) and parsers of
 * what they print (xdotool, xdpyinfo, wmctrl). Every argument is a separate argv entry built from validated numbers
 * and names; nothing goes through a shell.
 */
import { CoveError } from '../../../lib/errors';
import type { DisplayInfo, MousePosition, WindowInfo } from '../../../wire/computeruse';

/** X button numbers of the mouse buttons and wheel directions. */
const BUTTONS = { left: 1, middle: 2, right: 3 } as const;
const WHEEL = { up: 4, down: 5, left: 6, right: 7 } as const;

/** `xdotool mousemove X Y`. (Without --sync: it waits forever when the pointer is already there.) */
export function moveArgs(x: number, y: number): string[] {
  return ['mousemove', String(x), String(y)];
}

/** Move, then click once or twice (the X server delivers the motion before the press: no pause is needed). */
export function clickArgs(req: { x: number; y: number; button: keyof typeof BUTTONS; double: boolean }): string[] {
  // --delay: xdotool otherwise sleeps 100 ms after each click before it exits.
  const click = req.double ? ['click', '--repeat', '2', '--delay', '80', String(BUTTONS[req.button])] : ['click', '--delay', '0', String(BUTTONS[req.button])];
  return [...moveArgs(req.x, req.y), ...click];
}

/**
 * Press at the start, move there in steps (applications that follow motion see a drag, not a jump), release at the
 * end.
 */
export function dragArgs(req: { startX: number; startY: number; endX: number; endY: number; button: keyof typeof BUTTONS }, steps = 10): string[] {
  const b = String(BUTTONS[req.button]);
  const args = [...moveArgs(req.startX, req.startY), 'sleep', '0.05', 'mousedown', b, 'sleep', '0.1'];
  for (let i = 1; i <= steps; i++) {
    const x = Math.round(req.startX + ((req.endX - req.startX) * i) / steps);
    const y = Math.round(req.startY + ((req.endY - req.startY) * i) / steps);
    args.push(...moveArgs(x, y), 'sleep', '0.02');
  }
  args.push('sleep', '0.05', 'mouseup', b);
  return args;
}

/** Move, then turn the wheel `amount` steps. */
export function scrollArgs(req: { x: number; y: number; direction: keyof typeof WHEEL; amount: number }): string[] {
  return [...moveArgs(req.x, req.y), 'sleep', '0.05', 'click', '--repeat', String(req.amount), '--delay', '30', String(WHEEL[req.direction])];
}

/** `xdotool type`: one argv entry of text after `--`, so text starting with "-" is typed, not read as an option. */
export function typeArgs(text: string, delay?: number): string[] {
  return ['type', '--delay', String(delay ?? 12), '--', text];
}

/** `xdotool key CHORD`. */
export function keyArgs(chord: string): string[] {
  return ['key', '--', chord];
}

/** Parses `xdotool getmouselocation --shell` (`X=12\nY=34\nSCREEN=0\nWINDOW=…`). */
export function parseMouseLocation(text: string): MousePosition {
  const x = /^X=(-?\d+)$/m.exec(text);
  const y = /^Y=(-?\d+)$/m.exec(text);
  if (!x || !y) throw new Error(`unexpected xdotool getmouselocation output: ${JSON.stringify(text.slice(0, 200))}`);
  return { x: Number(x[1]), y: Number(y[1]) };
}

/** The screens of `xdpyinfo` (each `screen #N:` section with its `dimensions: WxH pixels`). */
export function parseXdpyinfo(text: string): DisplayInfo[] {
  const displays: DisplayInfo[] = [];
  const sections = text.split(/^screen #/m).slice(1);
  for (const section of sections) {
    const id = /^(\d+):/.exec(section);
    const dims = /^\s*dimensions:\s+(\d+)x(\d+) pixels/m.exec(section);
    if (!id || !dims) continue;
    displays.push({ id: Number(id[1]), x: 0, y: 0, width: Number(dims[1]), height: Number(dims[2]), isActive: true });
  }
  return displays;
}

/**
 * The windows of `wmctrl -lG` (`0x01e00003  0 10 52 600 400 host Title words`): id, desktop, x, y, width, height,
 * client machine, title. `activeId` is the active window's id (`xdotool getactivewindow`), when there is one.
 */
export function parseWmctrl(text: string, activeId?: number): WindowInfo[] {
  const windows: WindowInfo[] = [];
  for (const line of text.split('\n')) {
    const m = /^(0x[0-9a-fA-F]+)\s+(-?\d+)\s+(-?\d+)\s+(-?\d+)\s+(\d+)\s+(\d+)\s+\S+(?: (.*))?$/.exec(line.trimEnd());
    if (!m) continue;
    const id = Number.parseInt(m[1], 16);
    windows.push({ id, title: m[7] ?? '', x: Number(m[3]), y: Number(m[4]), width: Number(m[5]), height: Number(m[6]), isActive: id === activeId });
  }
  return windows;
}

/** How a screenshot is cut, marked, sized and encoded. */
export interface ImageOps {
  /** The display's size (the captured image). */
  display: { width: number; height: number };
  region?: { x: number; y: number; width: number; height: number };
  /** The pointer in display coordinates, drawn when set. */
  cursor?: MousePosition;
  format: 'png' | 'jpeg' | 'webp';
  quality?: number;
  scale?: number;
}

/** The size of the image ImageOps make. */
export function outputSize(ops: ImageOps): { width: number; height: number } {
  const { width, height } = ops.region ?? ops.display;
  const scale = ops.scale ?? 1;
  return scale === 1 ? { width, height } : { width: Math.max(1, Math.round(width * scale)), height: Math.max(1, Math.round(height * scale)) };
}

/** An arrow pointer with its tip at (x, y), as an ImageMagick `-draw` primitive. */
export function cursorPolygon(x: number, y: number): string {
  const points: [number, number][] = [[0, 0], [0, 17], [4, 13], [7, 20], [10, 19], [7, 12], [12, 12]];
  return `polygon ${points.map(([dx, dy]) => `${x + dx},${y + dy}`).join(' ')}`;
}

/**
 * `convert` argv that reads the captured screen (the whole display as 8-bit RGB on stdin) and writes the image on
 * stdout: crop to the region, draw the pointer (when it lies in the picture), resize, encode.
 */
export function convertArgs(ops: ImageOps): string[] {
  const args = ['-size', `${ops.display.width}x${ops.display.height}`, '-depth', '8', 'rgb:-'];
  let origin = { x: 0, y: 0 };
  let size = ops.display;
  if (ops.region) {
    const r = ops.region;
    args.push('-crop', `${r.width}x${r.height}+${r.x}+${r.y}`, '+repage');
    origin = { x: r.x, y: r.y };
    size = r;
  }
  if (ops.cursor) {
    const x = ops.cursor.x - origin.x;
    const y = ops.cursor.y - origin.y;
    if (x >= 0 && y >= 0 && x < size.width && y < size.height) {
      args.push('-fill', 'white', '-stroke', 'black', '-strokewidth', '1', '-draw', cursorPolygon(x, y));
    }
  }
  const out = outputSize(ops);
  if (out.width !== size.width || out.height !== size.height) args.push('-resize', `${out.width}x${out.height}!`);
  if (ops.format !== 'png') args.push('-quality', String(ops.quality ?? 85));
  args.push('-strip', `${ops.format}:-`);
  return args;
}

/** ffmpeg capturing `display` (its whole `size`) to an H.264 mp4 at `file`; stopped with SIGINT, which finishes the file. */
export function recordArgs(display: string, size: { width: number; height: number }, file: string, fps = 15): string[] {
  return [
    '-hide_banner', '-loglevel', 'error', '-nostdin',
    // Without probing: the grab's format is known, and probing it took seconds before the file was even opened.
    '-probesize', '32', '-analyzeduration', '0',
    '-f', 'x11grab', '-video_size', `${size.width}x${size.height}`, '-framerate', String(fps), '-draw_mouse', '1', '-i', display,
    '-c:v', 'libx264', '-preset', 'ultrafast', '-pix_fmt', 'yuv420p', '-movflags', '+faststart',
    '-y', file,
  ];
}

/** A display's size and colour depth. */
export interface Screen {
  width: number;
  height: number;
  depth: number;
}

/**
 * The display size a sandbox asks for in COVE_DESKTOP_RESOLUTION: `WIDTHxHEIGHT` or `WIDTHxHEIGHTxDEPTH`, from
 * 320x200 to 7680x4320, depth 16 or 24; 1024x768x24 when unset. Anything else is a 400 naming the variable.
 */
export function parseResolution(value: string | undefined): Screen {
  if (value === undefined || value.trim() === '') return { width: 1024, height: 768, depth: 24 };
  const m = /^(\d{3,4})x(\d{3,4})(?:x(16|24))?$/.exec(value.trim());
  const screen = m && { width: Number(m[1]), height: Number(m[2]), depth: Number(m[3] ?? 24) };
  if (!screen || screen.width < 320 || screen.width > 7680 || screen.height < 200 || screen.height > 4320) {
    throw new CoveError(
      'INVALID_REQUEST',
      `Invalid COVE_DESKTOP_RESOLUTION ${JSON.stringify(value.slice(0, 40))}: expected WIDTHxHEIGHT or WIDTHxHEIGHTxDEPTH from 320x200 to 7680x4320, depth 16 or 24 (e.g. 1920x1080)`,
    );
  }
  return screen;
}
