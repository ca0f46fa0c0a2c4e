/**
 * Computer use through a real `cove serve` and the published SDK, beside the same work done directly inside the
 * sandbox, in the same run. One sandbox of the desktop image with a 1920x1080 display (COVE_DESKTOP_RESOLUTION):
 * - screenshot latency, full HD PNG and compressed JPEG: `computerUse.screenshot.*` through the SDK vs ImageMagick's
 *   `import` of the root window run inside the sandbox (what a program there would do; `import` ignores -quality, so
 *   its JPEG is at ImageMagick's default quality);
 * - click-to-event latency: from the moment `computerUse.mouse.click` is called to the moment a Tk window in the
 *   sandbox receives the ButtonPress, vs `xdotool mousemove X Y click 1` run inside the sandbox. Both ends read the
 *   same kernel clock (a container shares the host's CLOCK_REALTIME).
 * Run with `npm run build && node --import tsx bench/computeruse.ts` (builds cove-desktop:latest when missing).
 */
import type { Sandbox } from '@daytonaio/sdk';
import { buildImages, DESKTOP_IMAGE } from '../images/src/build';
import { startCove } from '../test/helpers/cove';
import { printTable, stats, timeRuns } from './lib';

const SHOTS = 20;
const CLICKS = 30;
/** Between clicks: the window has handled the last one. */
const CLICK_GAP_MS = 150;

/** A window covering the display that appends `{"t": seconds, "x", "y"}` to a file for each button press. */
const WINDOW_PY = String.raw`
import json, time, tkinter as tk
out = open('/tmp/bench-events.jsonl', 'a', buffering=1)
root = tk.Tk()
root.title('bench window')
root.geometry('1800x1000+0+0')
root.bind_all('<ButtonPress-1>', lambda e: out.write(json.dumps({'t': time.time(), 'x': e.x_root, 'y': e.y_root}) + '\n'))
root.mainloop()
`;

/** Inside the sandbox: `n` xdotool clicks, printing the time each started (seconds, CLOCK_REALTIME) as JSON. */
const CLICKER_PY = String.raw`
import json, subprocess, sys, time
n, gap = int(sys.argv[1]), float(sys.argv[2])
starts = []
for i in range(n):
    starts.append(time.time())
    subprocess.run(['xdotool', 'mousemove', str(300 + i), '400', 'click', '1'], check=True)
    time.sleep(gap)
print(json.dumps(starts))
`;

/** Inside the sandbox: `n` screenshots with ImageMagick's import, printing their times (ms) as JSON. */
const SHOOTER_PY = String.raw`
import json, subprocess, sys, time
n, fmt = int(sys.argv[1]), sys.argv[2]
args = ['import', '-silent', '-window', 'root'] + (['-quality', '75', 'jpeg:-'] if fmt == 'jpeg' else ['png:-'])
times = []
for i in range(n + 3):
    t = time.perf_counter()
    out = subprocess.run(args, check=True, stdout=subprocess.PIPE).stdout
    if i >= 3: times.append((time.perf_counter() - t) * 1000)
print(json.dumps(times))
`;

interface Event {
  t: number;
  x: number;
  y: number;
}

async function json<T>(sandbox: Sandbox, command: string): Promise<T> {
  const res = await sandbox.process.executeCommand(command, undefined, { DISPLAY: ':0' }, 600);
  if (res.exitCode !== 0) throw new Error(`${command} failed: ${res.result}`);
  return JSON.parse(res.result.trim().split('\n').at(-1)!) as T;
}

/** The button presses the window logged since `from` (an index into its log). */
async function presses(sandbox: Sandbox, from: number, n: number): Promise<Event[]> {
  for (let i = 0; i < 100; i++) {
    const all = (await sandbox.process.executeCommand('cat /tmp/bench-events.jsonl')).result.split('\n').filter(Boolean);
    if (all.length >= from + n) return all.slice(from, from + n).map((l) => JSON.parse(l) as Event);
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`the window logged fewer than ${n} presses`);
}

async function main(): Promise<void> {
  await buildImages({ desktop: true, log: (line) => process.stderr.write(`[images] ${line}\n`) });
  const cove = await startCove({ pool: 0 });
  let sandbox: Sandbox | undefined;
  try {
    sandbox = await cove.daytona().create({ image: DESKTOP_IMAGE, envVars: { COVE_DESKTOP_RESOLUTION: '1920x1080' } }, { timeout: 180 });
    const cu = sandbox.computerUse;
    await cu.start();
    const [display] = (await cu.display.getInfo()).displays!;
    if (display.width !== 1920 || display.height !== 1080) throw new Error(`the display is ${display.width}x${display.height}, not 1920x1080`);
    await sandbox.fs.uploadFile(Buffer.from(WINDOW_PY), '/tmp/window.py');
    await sandbox.fs.uploadFile(Buffer.from(CLICKER_PY), '/tmp/clicker.py');
    await sandbox.fs.uploadFile(Buffer.from(SHOOTER_PY), '/tmp/shooter.py');
    await sandbox.process.createSession('bench');
    await sandbox.process.executeSessionCommand('bench', { command: 'DISPLAY=:0 python3 /tmp/window.py', runAsync: true });
    for (let i = 0; ; i++) {
      if ((await cu.display.getWindows()).windows?.some((w) => w.title === 'bench window')) break;
      if (i > 100) throw new Error('the bench window did not open');
      await new Promise((r) => setTimeout(r, 200));
    }

    // Screenshots.
    const sdkPng = await timeRuns(() => cu.screenshot.takeFullScreen(), SHOTS, 3);
    const sdkJpeg = await timeRuns(() => cu.screenshot.takeCompressed({ format: 'jpeg', quality: 75 }), SHOTS, 3);
    const insidePng = stats(await json<number[]>(sandbox, `python3 /tmp/shooter.py ${SHOTS} png`));
    const insideJpeg = stats(await json<number[]>(sandbox, `python3 /tmp/shooter.py ${SHOTS} jpeg`));

    // Click to event, through the SDK: each click at its own x, so that presses and clicks pair up.
    await cu.mouse.click(200, 400);
    let logged = (await presses(sandbox, 0, 1)).length;
    const sdkStarts: number[] = [];
    const sdkCalls: number[] = [];
    for (let i = 0; i < CLICKS; i++) {
      const t = performance.timeOrigin + performance.now();
      await cu.mouse.click(300 + i, 400);
      sdkCalls.push(performance.timeOrigin + performance.now() - t);
      sdkStarts.push(t);
      await new Promise((r) => setTimeout(r, CLICK_GAP_MS));
    }
    const sdkEvents = await presses(sandbox, logged, CLICKS);
    logged += CLICKS;
    const sdkLatency = sdkEvents.map((e, i) => {
      if (e.x !== 300 + i || e.y !== 400) throw new Error(`press ${i} landed at ${e.x},${e.y}`);
      return e.t * 1000 - sdkStarts[i];
    });
    // … and from inside the sandbox.
    const insideStarts = await json<number[]>(sandbox, `python3 /tmp/clicker.py ${CLICKS} ${CLICK_GAP_MS / 1000}`);
    const insideEvents = await presses(sandbox, logged, CLICKS);
    const insideLatency = insideEvents.map((e, i) => (e.t - insideStarts[i]) * 1000);

    const inside = 'ImageMagick import inside the sandbox';
    printTable('Computer use (1920x1080 display): through the SDK vs directly inside the sandbox (same run, p50)', [
      { name: 'full-screen PNG screenshot', value: sdkPng.p50, unit: 'ms', baseline: insidePng.p50, baselineName: inside },
      { name: 'compressed JPEG screenshot (quality 75)', value: sdkJpeg.p50, unit: 'ms', baseline: insideJpeg.p50, baselineName: inside },
      { name: 'click to ButtonPress in a window', value: stats(sdkLatency).p50, unit: 'ms', baseline: stats(insideLatency).p50, baselineName: 'xdotool inside the sandbox' },
      { name: 'mouse.click call (returns the pointer position)', value: stats(sdkCalls).p50, unit: 'ms' },
    ]);
  } finally {
    await sandbox?.delete().catch(() => {});
    await cove.destroy();
  }
}

await main();
