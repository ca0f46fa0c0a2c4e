/** Key names, modifiers and hotkeys as clients send them, turned into xdotool chords; anything else is a 400 naming its field. */
import { describe, expect, it } from 'vitest';
import { CoveError } from '../../../lib/errors';
import { hotkeyChord, keyChord, keysym } from './keys';

const fails = (fn: () => unknown, message: RegExp) => {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(CoveError);
  expect((caught as CoveError).status).toBe(400);
  expect((caught as CoveError).message).toMatch(message);
};

describe('keysym', () => {
  it('maps Daytona names, aliases, function keys and keypad digits', () => {
    expect(keysym('enter', 'f')).toBe('Return');
    expect(keysym('Return', 'f')).toBe('Return');
    expect(keysym('ESC', 'f')).toBe('Escape');
    expect(keysym('page_down', 'f')).toBe('Next');
    expect(keysym('pageup', 'f')).toBe('Prior');
    expect(keysym('backspace', 'f')).toBe('BackSpace');
    expect(keysym('f5', 'f')).toBe('F5');
    expect(keysym('F24', 'f')).toBe('F24');
    expect(keysym('num7', 'f')).toBe('KP_7');
    expect(keysym('ctrl', 'f')).toBe('Control_L');
    expect(keysym('win', 'f')).toBe('Super_L');
    expect(keysym('right_shift', 'f')).toBe('Shift_R');
  });

  it('takes letters, digits and punctuation as single characters, and keysym-shaped words as they are', () => {
    expect(keysym('a', 'f')).toBe('a');
    expect(keysym('Z', 'f')).toBe('Z');
    expect(keysym('7', 'f')).toBe('7');
    expect(keysym('+', 'f')).toBe('plus');
    expect(keysym('/', 'f')).toBe('slash');
    expect(keysym(' ', 'f')).toBe('space');
    expect(keysym('XF86AudioMute', 'f')).toBe('XF86AudioMute');
    expect(keysym('KP_Enter', 'f')).toBe('KP_Enter');
  });

  it('refuses anything else, naming the field', () => {
    fails(() => keysym('é', 'body.key'), /body\.key: "é" is not a key/);
    fails(() => keysym('a b', 'body.key'), /body\.key: "a b" is not a key name/);
    fails(() => keysym('ctrl+t', 'body.key'), /body\.key/);
    fails(() => keysym('$(reboot)', 'body.key'), /body\.key/);
    fails(() => keysym('-x', 'body.key'), /body\.key/);
  });
});

describe('keyChord', () => {
  it('joins modifiers (deduplicated, in order) and the key', () => {
    expect(keyChord('t', ['ctrl', 'shift'])).toBe('Control_L+Shift_L+t');
    expect(keyChord('c', ['Control', 'ctrl'])).toBe('Control_L+c');
    expect(keyChord('enter', [])).toBe('Return');
    expect(keyChord('tab', ['cmd', 'option'])).toBe('Super_L+Alt_L+Tab');
  });

  it('names the modifier that is not one', () => {
    fails(() => keyChord('t', ['ctrl', 'hyper']), /body\.modifiers\.1: "hyper" is not a modifier/);
    fails(() => keyChord('', []), /body\.key/);
  });
});

describe('hotkeyChord', () => {
  it('reads "+"-joined combinations, the plus key and modifiers alone', () => {
    expect(hotkeyChord('ctrl+shift+t')).toBe('Control_L+Shift_L+t');
    expect(hotkeyChord('alt+F4')).toBe('Alt_L+F4');
    expect(hotkeyChord(' ctrl + c ')).toBe('Control_L+c');
    expect(hotkeyChord('ctrl++')).toBe('Control_L+plus');
    expect(hotkeyChord('+')).toBe('plus');
    expect(hotkeyChord('ctrl+shift')).toBe('Control_L+Shift_L');
    expect(hotkeyChord('enter')).toBe('Return');
  });

  it('refuses empty parts and non-modifiers before the key, naming body.keys', () => {
    fails(() => hotkeyChord('ctrl++t'), /body\.keys/);
    fails(() => hotkeyChord('ctrl+'), /body\.keys: "ctrl\+" has an empty key/);
    fails(() => hotkeyChord('a+b'), /body\.keys: "a" is not a modifier/);
    fails(() => hotkeyChord('ctrl+;rm'), /body\.keys/);
  });
});
