/** The argv of the X tools and the parsers of what they print. */
import { describe, expect, it } from 'vitest';
import { clickArgs, convertArgs, cursorPolygon, dragArgs, keyArgs, outputSize, parseMouseLocation, parseResolution, parseWmctrl, parseXdpyinfo, recordArgs, scrollArgs, typeArgs } from './x11';

describe('xdotool argv', () => {
  it('clicks with the button number, twice for a double click', () => {
    expect(clickArgs({ x: 10, y: 20, button: 'left', double: false })).toEqual(['mousemove', '10', '20', 'click', '--delay', '0', '1']);
    expect(clickArgs({ x: 0, y: 0, button: 'right', double: true })).toEqual(['mousemove', '0', '0', 'click', '--repeat', '2', '--delay', '80', '3']);
  });

  it('drags: press at the start, move in steps, release at the end', () => {
    const args = dragArgs({ startX: 0, startY: 0, endX: 100, endY: 50, button: 'middle' }, 4);
    expect(args.slice(0, 8)).toEqual(['mousemove', '0', '0', 'sleep', '0.05', 'mousedown', '2', 'sleep']);
    const moves = args.map((a, i) => (a === 'mousemove' ? `${args[i + 1]},${args[i + 2]}` : '')).filter(Boolean);
    expect(moves).toEqual(['0,0', '25,13', '50,25', '75,38', '100,50']);
    expect(args.slice(-2)).toEqual(['mouseup', '2']);
  });

  it('scrolls with wheel buttons 4–7', () => {
    expect(scrollArgs({ x: 5, y: 6, direction: 'down', amount: 3 }).slice(-6)).toEqual(['click', '--repeat', '3', '--delay', '30', '5']);
    expect(scrollArgs({ x: 5, y: 6, direction: 'up', amount: 1 }).at(-1)).toBe('4');
    expect(scrollArgs({ x: 5, y: 6, direction: 'right', amount: 1 }).at(-1)).toBe('7');
  });

  it('types text after "--" so a leading dash is text, with the delay given or 12 ms', () => {
    expect(typeArgs('--help; rm -rf /')).toEqual(['type', '--delay', '12', '--', '--help; rm -rf /']);
    expect(typeArgs('x', 0)).toEqual(['type', '--delay', '0', '--', 'x']);
    expect(keyArgs('Control_L+t')).toEqual(['key', '--', 'Control_L+t']);
  });
});

describe('parsers', () => {
  it('reads xdotool getmouselocation --shell', () => {
    expect(parseMouseLocation('X=512\nY=384\nSCREEN=0\nWINDOW=1234\n')).toEqual({ x: 512, y: 384 });
    expect(() => parseMouseLocation('nothing')).toThrow(/unexpected/);
  });

  it('reads the screens of xdpyinfo', () => {
    const text = [
      'name of display:    :0',
      'number of screens:    1',
      '',
      'screen #0:',
      '  dimensions:    1024x768 pixels (271x203 millimeters)',
      '  resolution:    96x96 dots per inch',
      'screen #1:',
      '  dimensions:    800x600 pixels (211x158 millimeters)',
    ].join('\n');
    expect(parseXdpyinfo(text)).toEqual([
      { id: 0, x: 0, y: 0, width: 1024, height: 768, isActive: true },
      { id: 1, x: 0, y: 0, width: 800, height: 600, isActive: true },
    ]);
    expect(parseXdpyinfo('')).toEqual([]);
  });

  it('reads wmctrl -lG, titles with spaces, empty titles, and marks the active window', () => {
    const text = [
      '0x00c00003 -1 0    0    1024 768  sandbox Desktop',
      '0x01800004  0 100  120  300  200  sandbox Cove test window — events',
      '0x01a00001  0 5    6    10   10   N/A',
      'garbage line',
    ].join('\n');
    expect(parseWmctrl(text, 0x01800004)).toEqual([
      { id: 0x00c00003, title: 'Desktop', x: 0, y: 0, width: 1024, height: 768, isActive: false },
      { id: 0x01800004, title: 'Cove test window — events', x: 100, y: 120, width: 300, height: 200, isActive: true },
      { id: 0x01a00001, title: '', x: 5, y: 6, width: 10, height: 10, isActive: false },
    ]);
  });
});

describe('convert argv', () => {
  const display = { width: 1024, height: 768 };

  it('encodes the whole display as PNG with nothing else', () => {
    expect(convertArgs({ display, format: 'png' })).toEqual(['-size', '1024x768', '-depth', '8', 'rgb:-', '-strip', 'png:-']);
  });

  it('crops a region, draws the pointer relative to it, scales and sets the quality', () => {
    const args = convertArgs({ display, region: { x: 100, y: 50, width: 200, height: 100 }, cursor: { x: 110, y: 60 }, format: 'jpeg', quality: 40, scale: 0.5 });
    expect(args).toEqual([
      '-size', '1024x768', '-depth', '8', 'rgb:-',
      '-crop', '200x100+100+50', '+repage',
      '-fill', 'white', '-stroke', 'black', '-strokewidth', '1', '-draw', cursorPolygon(10, 10),
      '-resize', '100x50!',
      '-quality', '40',
      '-strip', 'jpeg:-',
    ]);
    expect(cursorPolygon(10, 10)).toBe('polygon 10,10 10,27 14,23 17,30 20,29 17,22 22,22');
  });

  it('leaves the pointer out when it is outside the region', () => {
    expect(convertArgs({ display, region: { x: 100, y: 50, width: 20, height: 20 }, cursor: { x: 5, y: 5 }, format: 'webp' })).toEqual([
      '-size', '1024x768', '-depth', '8', 'rgb:-', '-crop', '20x20+100+50', '+repage', '-quality', '85', '-strip', 'webp:-',
    ]);
  });

  it('computes the scaled size, never below one pixel', () => {
    expect(outputSize({ display, format: 'png', scale: 0.1 })).toEqual({ width: 102, height: 77 });
    expect(outputSize({ display, region: { x: 0, y: 0, width: 3, height: 3 }, format: 'png', scale: 0.1 })).toEqual({ width: 1, height: 1 });
  });
});

describe('ffmpeg argv', () => {
  it('grabs the whole display into an mp4', () => {
    const args = recordArgs(':0', { width: 1024, height: 768 }, '/home/cove/.cove/recordings/x.mp4');
    expect(args).toEqual(expect.arrayContaining(['-f', 'x11grab', '-video_size', '1024x768', '-i', ':0', '-c:v', 'libx264']));
    expect(args.at(-1)).toBe('/home/cove/.cove/recordings/x.mp4');
  });
});

describe('COVE_DESKTOP_RESOLUTION', () => {
  it('reads WIDTHxHEIGHT and WIDTHxHEIGHTxDEPTH, 1024x768x24 when unset', () => {
    expect(parseResolution(undefined)).toEqual({ width: 1024, height: 768, depth: 24 });
    expect(parseResolution(' ')).toEqual({ width: 1024, height: 768, depth: 24 });
    expect(parseResolution('1920x1080')).toEqual({ width: 1920, height: 1080, depth: 24 });
    expect(parseResolution('800x600x16')).toEqual({ width: 800, height: 600, depth: 16 });
  });

  it('refuses other shapes, sizes and depths, naming the variable', () => {
    for (const bad of ['1920', '1920x', 'x1080', '1920x1080x8', '100x100', '9000x1080', '1920X1080', '1920x1080;rm', '-1x5']) {
      expect(() => parseResolution(bad), bad).toThrow(/Invalid COVE_DESKTOP_RESOLUTION .*expected WIDTHxHEIGHT/);
    }
  });
});
