/**
 * Computer use through a real `cove serve`, a sandbox of the desktop image `cove-desktop:latest` and the published
 * SDK's `sandbox.computerUse`: the desktop starts (Xvfb, xfce4, x11vnc, noVNC) and reports its processes; screenshots
 * are PNGs of the display's (or the region's) size and change when a window opens; a small Tk window that logs its X
 * events proves that clicks land where asked, that drags press and release at their ends, that typed text (shifted
 * characters included) arrives exactly, and that keys and hotkeys arrive with their modifiers; the window list shows
 * it; headless Chromium on the host opens the noVNC page through a preview URL, shows what the API's screenshot shows,
 * and its clicks and keys reach the window; Chromium runs on the desktop; a killed x11vnc or Xvfb is restarted; a
 * recording is a real H.264 mp4; stop leaves no desktop process behind; COVE_DESKTOP_RESOLUTION sets the display.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Image, type Sandbox } from '@daytonaio/sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildImages, DESKTOP_IMAGE } from '../../images/src/build';
import { launchChromium } from '../helpers/browser';
import { failure, startCove, type TestCove } from '../helpers/cove';

/** Screenshots of the live view and of the API, for a person to look at. */
const SHOTS = path.join(import.meta.dirname, '../../test-results/computeruse');

let cove: TestCove;
let sandbox: Sandbox;
const local = mkdtempSync(path.join(os.tmpdir(), 'cove-cu-'));

/** Width and height from a PNG's IHDR (after checking its signature). */
function pngSize(base64: string): { width: number; height: number } {
  const png = Buffer.from(base64, 'base64');
  expect(png.subarray(0, 8).toString('hex')).toBe('89504e470d0a1a0a');
  expect(png.subarray(12, 16).toString('latin1')).toBe('IHDR');
  return { width: png.readUInt32BE(16), height: png.readUInt32BE(20) };
}

async function poll<T>(what: string, fn: () => Promise<T | undefined | false>, ms = 30_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await fn().catch(() => undefined);
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}


/** A Tk window that writes each X event it gets as a JSON line, and its text's content to a file. */
const WINDOW_PY = String.raw`
import json, sys, tkinter as tk
events = open('/tmp/cu-events.jsonl', 'a', buffering=1)
root = tk.Tk()
root.title('Cove test window')
root.geometry('420x320+40+80')
text = tk.Text(root)
text.pack(fill='both', expand=True)
def log(kind):
    def handler(e):
        events.write(json.dumps({'kind': kind, 'x': e.x_root, 'y': e.y_root, 'num': getattr(e, 'num', None) if kind.startswith('button') else None, 'keysym': e.keysym if kind == 'key' else None, 'state': e.state}) + '\n')
    return handler
root.bind_all('<ButtonPress>', log('buttonpress'))
root.bind_all('<ButtonRelease>', log('buttonrelease'))
root.bind_all('<KeyPress>', log('key'))
def dump():
    with open('/tmp/cu-text.txt', 'w') as f:
        f.write(text.get('1.0', 'end-1c'))
    root.after(100, dump)
root.after(100, dump)
root.after(200, lambda: (root.focus_force(), text.focus_set()))
root.mainloop()
`;

interface Event {
  kind: 'buttonpress' | 'buttonrelease' | 'key';
  x: number;
  y: number;
  num: number | null;
  keysym: string | null;
  state: number;
}

async function events(): Promise<Event[]> {
  const out = (await sandbox.process.executeCommand('cat /tmp/cu-events.jsonl')).result;
  return out.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Event);
}
const textNow = async () => (await sandbox.process.executeCommand('cat /tmp/cu-text.txt')).result;

beforeAll(async () => {
  cove = await startCove({ pool: 0 });
  // The desktop image, built when missing or out of date (a few minutes the first time; about a second otherwise).
  await buildImages({ desktop: true, log: (line) => process.stderr.write(`[images] ${line}\n`) });
  sandbox = await cove.daytona().create({ image: DESKTOP_IMAGE }, { timeout: 180 });
}, 20 * 60_000);
afterAll(async () => {
  rmSync(local, { recursive: true, force: true });
  await cove?.destroy();
});

describe('computer use in the desktop image', () => {
  it('refuses input while the desktop is stopped and reports it inactive', async () => {
    expect(await sandbox.computerUse.getStatus()).toEqual({ status: 'inactive' });
    expect(await failure(sandbox.computerUse.mouse.move(1, 1))).toMatchObject({ statusCode: 409, message: expect.stringMatching(/desktop is not running/) });
  });

  it('starts Xvfb, xfce4, x11vnc and noVNC, each running with a pid', async () => {
    const started = await sandbox.computerUse.start();
    expect(Object.keys(started.status!).sort()).toEqual(['novnc', 'x11vnc', 'xfce4', 'xvfb']);
    for (const s of Object.values(started.status!)) expect(s).toMatchObject({ running: true, pid: expect.any(Number), autoRestart: true });
    expect(await sandbox.computerUse.getStatus()).toEqual({ status: 'active' });
    // At once, while the window manager may still be starting: a list (it waits for the manager), not an error.
    expect((await sandbox.computerUse.display.getWindows()).windows).toEqual(expect.any(Array));
    expect(await sandbox.computerUse.getProcessStatus('xvfb')).toEqual({ processName: 'xvfb', running: true });
    expect((await sandbox.computerUse.getProcessErrors('xvfb')).processName).toBe('xvfb');
    expect(typeof (await sandbox.computerUse.getProcessLogs('x11vnc')).logs).toBe('string');
    expect(await sandbox.computerUse.display.getInfo()).toEqual({ displays: [{ id: 0, x: 0, y: 0, width: 1024, height: 768, isActive: true }] });
    expect(await failure(sandbox.computerUse.getProcessStatus('nope'))).toMatchObject({ statusCode: 400, message: expect.stringMatching(/path\.processName/) });
  });

  it('takes screenshots: PNGs of the display and of regions, compressed JPEG and scaled', async () => {
    const full = await sandbox.computerUse.screenshot.takeFullScreen();
    expect(pngSize(full.screenshot!)).toEqual({ width: 1024, height: 768 });
    expect(full.sizeBytes).toBe(Buffer.from(full.screenshot!, 'base64').length);
    // SDK 0.218's takeRegion sends its region's fields in the wrong places (x as height, y as width…): a region whose
    // x equals its height and y its width reads the same either way.
    const region = await sandbox.computerUse.screenshot.takeRegion({ x: 120, y: 300, width: 300, height: 120 }, true);
    expect(pngSize(region.screenshot!)).toEqual({ width: 300, height: 120 });
    const compressedRegion = await sandbox.computerUse.screenshot.takeCompressedRegion({ x: 10, y: 20, width: 320, height: 200 }, { format: 'png', scale: 0.5 });
    expect(pngSize(compressedRegion.screenshot!)).toEqual({ width: 160, height: 100 });
    const jpeg = Buffer.from((await sandbox.computerUse.screenshot.takeCompressed({ format: 'jpeg', quality: 50, scale: 0.25, showCursor: true })).screenshot!, 'base64');
    expect(jpeg.subarray(0, 3).toString('hex')).toBe('ffd8ff');
    // The pointer is drawn only when asked for.
    await sandbox.computerUse.mouse.move(500, 400);
    const around = { x: 490, y: 390, width: 40, height: 40 };
    const bare = (await sandbox.computerUse.screenshot.takeCompressedRegion(around, { format: 'png', showCursor: false })).screenshot!;
    const pointed = (await sandbox.computerUse.screenshot.takeCompressedRegion(around, { format: 'png', showCursor: true })).screenshot!;
    expect(pngSize(pointed)).toEqual({ width: 40, height: 40 });
    expect(pointed).not.toBe(bare);
    expect((await sandbox.computerUse.screenshot.takeCompressedRegion(around, { format: 'png', showCursor: false })).screenshot).toBe(bare);
    expect(await failure(sandbox.computerUse.screenshot.takeCompressedRegion({ x: 1000, y: 0, width: 100, height: 10 }))).toMatchObject({
      statusCode: 400,
      message: expect.stringMatching(/query\.width: the region .* extends past the display's width 1024/),
    });
  });

  it('drives a window: clicks land where asked, drags, scrolls, typed text and keys arrive exactly', async () => {
    // Where the window will open, before and after: the screenshot changes.
    const area = { x: 40, y: 80, width: 420, height: 320 };
    const before = (await sandbox.computerUse.screenshot.takeCompressedRegion(area, { format: 'png' })).screenshot;
    await sandbox.fs.uploadFile(Buffer.from(WINDOW_PY), '/tmp/cu-window.py');
    await sandbox.process.createSession('cu');
    await sandbox.process.executeSessionCommand('cu', { command: 'DISPLAY=:0 python3 /tmp/cu-window.py', runAsync: true });
    const win = await poll('the test window in the window list', async () => (await sandbox.computerUse.display.getWindows()).windows?.find((w) => w.title === 'Cove test window'));
    expect(win).toMatchObject({ width: expect.any(Number), height: expect.any(Number) });
    await poll('the window to log', async () => (await sandbox.process.executeCommand('test -f /tmp/cu-text.txt && echo ok')).result.includes('ok'));
    const after = (await sandbox.computerUse.screenshot.takeCompressedRegion(area, { format: 'png' })).screenshot;
    expect(pngSize(after!)).toEqual({ width: 420, height: 320 });
    expect(after).not.toBe(before);

    // A click: Tk reports the screen coordinates it was pressed at.
    const x = win.x! + 120;
    const y = win.y! + 100;
    expect(await sandbox.computerUse.mouse.click(x, y)).toEqual({ x, y });
    const press = await poll('the click', async () => (await events()).find((e) => e.kind === 'buttonpress'));
    expect(press).toMatchObject({ x, y, num: 1 });
    expect(await sandbox.computerUse.mouse.getPosition()).toEqual({ x, y });
    expect(await sandbox.computerUse.mouse.move(x + 5, y + 6)).toEqual({ x: x + 5, y: y + 6 });

    // A right double click, a drag, a scroll.
    await sandbox.computerUse.mouse.click(x + 10, y + 10, 'right', true);
    await sandbox.computerUse.mouse.drag(x, y, x + 100, y + 50);
    expect(await sandbox.computerUse.mouse.scroll(x, y, 'down', 2)).toBe(true);
    const seen = await poll('the mouse events', async () => {
      const all = await events();
      return all.filter((e) => e.kind === 'buttonpress' && e.num === 5).length >= 2 ? all : undefined;
    });
    expect(seen.filter((e) => e.kind === 'buttonpress' && e.num === 3 && e.x === x + 10 && e.y === y + 10)).toHaveLength(2);
    expect(seen).toContainEqual(expect.objectContaining({ kind: 'buttonpress', num: 1, x, y }));
    expect(seen).toContainEqual(expect.objectContaining({ kind: 'buttonrelease', num: 1, x: x + 100, y: y + 50 }));

    // Text with shifted characters, then keys with modifiers: all land in the Tk text (clicked: it has the focus).
    await sandbox.computerUse.mouse.click(x, y);
    const typed = 'Hello, World! ~@#$%^&*()_+{}|:"<>? 123 abc';
    await sandbox.computerUse.keyboard.type(typed);
    await sandbox.computerUse.keyboard.press('a', ['shift']);
    await sandbox.computerUse.keyboard.press('enter');
    await sandbox.computerUse.keyboard.type('next line', 5);
    expect(await poll('the typed text', async () => ((await textNow()).endsWith('next line') ? textNow() : undefined))).toBe(`${typed}A\nnext line`);

    await sandbox.computerUse.keyboard.hotkey('ctrl+shift+t');
    const hot = await poll('the hotkey', async () => (await events()).find((e) => e.kind === 'key' && e.keysym?.toLowerCase() === 't' && (e.state & 4) !== 0));
    expect(hot.state & 1).toBe(1); // Shift held too
    expect(await failure(sandbox.computerUse.keyboard.hotkey('ctrl+;rm -rf'))).toMatchObject({ statusCode: 400, message: expect.stringMatching(/body\.keys/) });
    expect(await failure(sandbox.computerUse.mouse.click(-1, 5))).toMatchObject({ statusCode: 400, message: expect.stringMatching(/body\.x: x must be at least 0/) });

    // The window list marks the window that has the focus.
    const windows = (await sandbox.computerUse.display.getWindows()).windows!;
    expect(windows.find((w) => w.title === 'Cove test window')?.isActive).toBe(true);
  });

  it('shows the desktop live in Chromium through the noVNC preview URL, and takes input from it', async () => {
    const win = (await sandbox.computerUse.display.getWindows()).windows!.find((w) => w.title === 'Cove test window')!;
    const { url, token } = await sandbox.getPreviewLink(6080);
    const browser = await launchChromium();
    try {
      const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
      // What the page saw, told when it never shows the desktop: console messages, failed requests, error answers.
      const seen: string[] = [];
      page.on('console', (m) => seen.push(`console ${m.type()}: ${m.text()}`));
      page.on('requestfailed', (r) => seen.push(`failed ${r.url().split('?')[0]}: ${r.failure()?.errorText}`));
      page.on('response', (r) => r.status() >= 400 && seen.push(`${r.status()} ${r.url().split('?')[0]}`));
      page.on('websocket', (ws) => {
        seen.push(`websocket ${ws.url().split('?')[0]}`);
        ws.on('close', () => seen.push('websocket closed'));
        ws.on('socketerror', (e) => seen.push(`websocket error: ${e}`));
      });
      // resize=off: the canvas is the display at 1:1. quality=9: the least lossy of the JPEG levels noVNC asks for.
      // reconnect: a connection that fails (a busy machine) is tried again, as a person would.
      await page.goto(`${url}/vnc.html?autoconnect=true&reconnect=true&reconnect_delay=1000&resize=off&quality=9&cove_preview_token=${encodeURIComponent(token)}`);
      expect(page.url()).not.toContain(token); // traded for the preview cookie
      await page
        .waitForFunction(() => {
          const c = document.querySelector<HTMLCanvasElement>('#noVNC_container canvas');
          return c?.width === 1024 && c.height === 768;
        }, undefined, { timeout: 60_000 })
        .catch(async (err: Error) => {
          const status = await page.locator('#noVNC_status').textContent().catch(() => '');
          const logs = (await sandbox.computerUse.getProcessErrors('novnc')).errors?.slice(-1500);
          throw new Error(`${err.message}; noVNC's status: ${status}; websockify's errors: ${logs}; the page saw:\n${seen.slice(-30).join('\n')}`);
        });

      // The canvas shows what the API's screenshot shows (noVNC's JPEG tiles differ by a few levels at most).
      const diffWith = (png: string) =>
        page.evaluate(async (b64) => {
          const canvas = document.querySelector<HTMLCanvasElement>('#noVNC_container canvas')!;
          const live = canvas.getContext('2d')!.getImageData(0, 0, canvas.width, canvas.height).data;
          const image = await createImageBitmap(await (await fetch(`data:image/png;base64,${b64}`)).blob());
          const off = new OffscreenCanvas(image.width, image.height);
          const ctx = off.getContext('2d')!;
          ctx.drawImage(image, 0, 0);
          const api = ctx.getImageData(0, 0, image.width, image.height).data;
          let sum = 0;
          let far = 0;
          for (let i = 0; i < live.length; i += 4) {
            const d = Math.max(Math.abs(live[i] - api[i]), Math.abs(live[i + 1] - api[i + 1]), Math.abs(live[i + 2] - api[i + 2]));
            sum += d;
            if (d > 48) far++;
          }
          return { width: image.width, height: image.height, mean: sum / (live.length / 4), far };
        }, png);
      const compare = async () => {
        const png = (await sandbox.computerUse.screenshot.takeFullScreen()).screenshot!;
        return { ...(await diffWith(png)), png };
      };
      let last: Awaited<ReturnType<typeof compare>> | undefined;
      const same = await poll('the noVNC canvas to show the API screenshot', async () => {
        last = await compare();
        return last.mean < 2 && last.far < 200 ? last : undefined;
      }, 20_000).catch((err: Error) => {
        throw new Error(`${err.message}: last mean difference ${last?.mean}, ${last?.far} pixels far apart`);
      });
      expect(same).toMatchObject({ width: 1024, height: 768 });
      mkdirSync(SHOTS, { recursive: true });
      writeFileSync(path.join(SHOTS, 'api.png'), Buffer.from(same.png, 'base64'));
      await page.screenshot({ path: path.join(SHOTS, 'novnc.png') });

      // Taking over: a click on the canvas lands at the same display coordinates, and typed keys reach the window.
      const box = (await page.locator('#noVNC_container canvas').boundingBox())!;
      const x = win.x! + 60;
      const y = win.y! + 150;
      const clicks = (await events()).filter((e) => e.kind === 'buttonpress').length;
      await page.mouse.click(box.x + x, box.y + y);
      const press = await poll('the click from the browser', async () => (await events()).filter((e) => e.kind === 'buttonpress')[clicks]);
      expect(press).toMatchObject({ x, y, num: 1 });
      await page.keyboard.type('from the browser!');
      await poll('the text typed in the browser', async () => (await textNow()).includes('from the browser!'));

      // The typed text shows in the canvas as in the API's screenshot: the comparison sees a change this small.
      const stale = last!.png;
      const now = await poll('the canvas with the typed text', async () => {
        const d = await compare();
        return d.mean < 2 && d.far < 200 ? d : undefined;
      }, 20_000);
      // … which the screenshot from before the typing does not match.
      const before = await diffWith(stale);
      expect(before.far).toBeGreaterThan(now.far + 200);
    } finally {
      await browser.close();
    }
  }, 180_000);

  it('runs Debian\'s Chromium on the desktop', async () => {
    // Its own session: the test window's command still runs in the first one.
    await sandbox.process.createSession('chromium');
    await sandbox.process.executeSessionCommand('chromium', { command: 'DISPLAY=:0 chromium --no-first-run --user-data-dir=/tmp/cu-chromium "data:text/html,<title>Cove in Chromium</title>"', runAsync: true });
    const win = await poll('the Chromium window', async () => (await sandbox.computerUse.display.getWindows()).windows?.find((w) => /Cove in Chromium/.test(w.title ?? '')), 60_000);
    expect(win.width).toBeGreaterThan(100);
    await sandbox.process.executeCommand('pkill -f cu-chromium');
  });

  it('restarts a crashed x11vnc or Xvfb (and what needs the display) and keeps the crash in their errors', async () => {
    const first = (await sandbox.computerUse.start()).status!;
    await sandbox.process.executeCommand(`kill -9 ${first.x11vnc.pid}`);
    await poll('x11vnc restarted', async () => {
      const s = (await sandbox.computerUse.start()).status!.x11vnc;
      return s.running && s.pid !== first.x11vnc.pid;
    });
    expect((await sandbox.computerUse.getProcessErrors('x11vnc')).errors).toMatch(/x11vnc exited \(signal SIGKILL\)/);

    await sandbox.process.executeCommand(`kill -9 ${first.xvfb.pid}`);
    await poll('the desktop back', async () => {
      const s = (await sandbox.computerUse.start()).status!;
      return s.xvfb.pid !== first.xvfb.pid && Object.values(s).every((p) => p.running) && (await sandbox.computerUse.getStatus()).status === 'active';
    }, 60_000);
    expect((await sandbox.computerUse.getProcessErrors('xvfb')).errors).toMatch(/xvfb exited \(signal SIGKILL\)/);
    expect(pngSize((await sandbox.computerUse.screenshot.takeFullScreen()).screenshot!)).toEqual({ width: 1024, height: 768 });
  });

  it('records the display to an mp4: list, get, download, delete', async () => {
    const started = await sandbox.computerUse.recording.start('cove test');
    expect(started).toMatchObject({ status: 'recording', fileName: expect.stringMatching(/_cove test_\d{8}_\d{6}\.mp4$/) });
    await sandbox.computerUse.mouse.move(300, 300);
    await new Promise((r) => setTimeout(r, 2_000));
    const stopped = await sandbox.computerUse.recording.stop(started.id);
    expect(stopped).toMatchObject({ id: started.id, status: 'completed', sizeBytes: expect.any(Number) });
    expect(stopped.sizeBytes).toBeGreaterThan(1000);
    expect(stopped.durationSeconds).toBeGreaterThan(1.5);
    expect((await sandbox.computerUse.recording.list()).recordings.map((r) => r.id)).toContain(started.id);
    expect((await sandbox.computerUse.recording.get(started.id)).filePath).toBe(stopped.filePath);

    const probe = await sandbox.process.executeCommand(`ffprobe -v error -show_entries stream=codec_name,width,height -of json '${stopped.filePath}'`);
    expect(probe.exitCode).toBe(0);
    expect((JSON.parse(probe.result) as { streams: object[] }).streams[0]).toMatchObject({ codec_name: 'h264', width: 1024, height: 768 });

    const file = path.join(local, 'rec.mp4');
    await sandbox.computerUse.recording.download(started.id, file);
    const bytes = readFileSync(file);
    expect(bytes.length).toBe(stopped.sizeBytes);
    expect(bytes.subarray(4, 8).toString('latin1')).toBe('ftyp');

    await sandbox.computerUse.recording.delete(started.id);
    expect(await failure(sandbox.computerUse.recording.get(started.id))).toMatchObject({ statusCode: 404 });
  });

  it('restarts one process, answers accessibility with its reason, and stop leaves no desktop process', async () => {
    const before = (await sandbox.computerUse.start()).status!.x11vnc.pid;
    expect(await sandbox.computerUse.restartProcess('x11vnc')).toEqual({ message: 'Process x11vnc restarted successfully', processName: 'x11vnc' });
    const after = await poll('x11vnc running again', async () => (await sandbox.computerUse.getProcessStatus('x11vnc')).running);
    expect(after).toBe(true);
    expect((await sandbox.computerUse.start()).status!.x11vnc.pid).not.toBe(before);

    expect(await failure(sandbox.computerUse.accessibility.getTree())).toMatchObject({ statusCode: 400, message: expect.stringMatching(/Accessibility \(AT-SPI\) is not supported in this image/) });

    const stopped = await sandbox.computerUse.stop();
    for (const s of Object.values(stopped.status!)) expect(s.running).toBe(false);
    expect(await sandbox.computerUse.getStatus()).toEqual({ status: 'inactive' });
    const ps = async (pattern: RegExp) => (await sandbox.process.executeCommand('ps -eo pid,args')).result.split('\n').filter((l) => pattern.test(l));
    // Nothing of the desktop is left, not even what left its process group (the session's D-Bus daemon)…
    expect(await ps(/Xvfb|x11vnc|xfce4|xfwm4|xfdesktop|xfsettingsd|xfconfd|Thunar|websockify|dbus-daemon|dbus-launch/)).toEqual([]);
    // … and the test window, an X client of the display, ends with it.
    await poll('the test window to exit', async () => (await ps(/cu-window/)).length === 0, 10_000);
  });
});

describe('the display size', () => {
  it('is the sandbox\'s COVE_DESKTOP_RESOLUTION; a bad one is a 400 naming it', async () => {
    const daytona = cove.daytona();
    const bad = await daytona.create({ image: DESKTOP_IMAGE, envVars: { COVE_DESKTOP_RESOLUTION: '1280x720x8' } }, { timeout: 180 });
    const wide = await daytona.create({ image: DESKTOP_IMAGE, envVars: { COVE_DESKTOP_RESOLUTION: '1280x720' } }, { timeout: 180 });
    try {
      expect(await failure(bad.computerUse.start())).toMatchObject({ statusCode: 400, message: expect.stringMatching(/Invalid COVE_DESKTOP_RESOLUTION "1280x720x8"/) });
      expect(await bad.computerUse.getStatus()).toEqual({ status: 'inactive' });
      await wide.computerUse.start();
      expect((await wide.computerUse.display.getInfo()).displays).toEqual([{ id: 0, x: 0, y: 0, width: 1280, height: 720, isActive: true }]);
      expect(pngSize((await wide.computerUse.screenshot.takeFullScreen()).screenshot!)).toEqual({ width: 1280, height: 720 });
    } finally {
      await Promise.all([bad.delete(), wide.delete()]);
    }
  });
});

describe('the desktop image on first use', () => {
  const hold = 'cove-desktop:held-by-test';
  const exists = (image: string) => spawnSync('docker', ['image', 'inspect', image], { stdio: 'ignore' }).status === 0;
  /** Untags the desktop image (its layers stay under `hold`, so its build is a cache hit of seconds). */
  const untag = () => execFileSync('docker', ['image', 'rm', DESKTOP_IMAGE], { stdio: 'ignore' });
  beforeAll(() => execFileSync('docker', ['tag', DESKTOP_IMAGE, hold]));
  afterAll(() => {
    if (!exists(DESKTOP_IMAGE)) execFileSync('docker', ['tag', hold, DESKTOP_IMAGE]);
    execFileSync('docker', ['image', 'rm', hold], { stdio: 'ignore' });
  });

  it('is built when a snapshot names it, with its progress in the snapshot\'s logs; deleting the snapshot keeps it', async () => {
    untag();
    const daytona = cove.daytona();
    const lines: string[] = [];
    // As an Image (a one-line Dockerfile), whose logs the SDK follows.
    const snapshot = await daytona.snapshot.create({ name: 'desktop-first-use', image: Image.base(DESKTOP_IMAGE) }, { onLogs: (line) => lines.push(line), timeout: 900 });
    expect(snapshot.state).toBe('active');
    expect(lines.join('\n')).toMatch(/docker build cove-desktop:latest[^]*cove-desktop:latest built in \d+ s/);
    expect(exists(DESKTOP_IMAGE)).toBe(true);
    await daytona.snapshot.delete(snapshot);
    await poll('the snapshot gone', async () => !(await daytona.snapshot.list()).items.some((s) => s.name === 'desktop-first-use'));
    expect(exists(DESKTOP_IMAGE)).toBe(true);
  });

  it('is built when a sandbox names it', async () => {
    untag();
    const box = await cove.daytona().create({ image: DESKTOP_IMAGE }, { timeout: 900 });
    try {
      expect(exists(DESKTOP_IMAGE)).toBe(true);
      expect((await box.process.executeCommand('command -v Xvfb')).result.trim()).toBe('/usr/bin/Xvfb');
    } finally {
      await box.delete();
    }
  });
});
