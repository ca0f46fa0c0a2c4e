import { CoveError } from '../../../lib/errors';

/**
 * Key names as clients send them (Daytona's names: "enter", "ctrl", "page_down", single characters…) turned into X
 * keysym names for xdotool. Only names from these tables, single printable characters and plain keysym-shaped words
 * (letters, digits and "_", such as `XF86AudioMute` or `KP_Enter`) pass; xdotool gets each as one argv entry, never
 * through a shell.
 */

/** Modifier names and aliases → the one name of each modifier. */
const MODIFIER_ALIASES: Record<string, Modifier> = {
  ctrl: 'ctrl',
  control: 'ctrl',
  alt: 'alt',
  option: 'alt',
  shift: 'shift',
  cmd: 'super',
  command: 'super',
  super: 'super',
  meta: 'super',
  win: 'super',
  windows: 'super',
};

type Modifier = 'ctrl' | 'alt' | 'shift' | 'super';

/** The keysym of each modifier, as xdotool presses it. */
const MODIFIER_KEYSYMS: Record<Modifier, string> = { ctrl: 'Control_L', alt: 'Alt_L', shift: 'Shift_L', super: 'Super_L' };

/** Named keys (lower case) → keysyms. */
const NAMED_KEYS: Record<string, string> = {
  enter: 'Return',
  return: 'Return',
  esc: 'Escape',
  escape: 'Escape',
  tab: 'Tab',
  space: 'space',
  spacebar: 'space',
  backspace: 'BackSpace',
  delete: 'Delete',
  del: 'Delete',
  insert: 'Insert',
  ins: 'Insert',
  home: 'Home',
  end: 'End',
  pageup: 'Prior',
  page_up: 'Prior',
  pgup: 'Prior',
  pagedown: 'Next',
  page_down: 'Next',
  pgdn: 'Next',
  up: 'Up',
  down: 'Down',
  left: 'Left',
  right: 'Right',
  capslock: 'Caps_Lock',
  caps_lock: 'Caps_Lock',
  numlock: 'Num_Lock',
  scrolllock: 'Scroll_Lock',
  menu: 'Menu',
  print: 'Print',
  printscreen: 'Print',
  pause: 'Pause',
  lctrl: 'Control_L',
  left_ctrl: 'Control_L',
  left_control: 'Control_L',
  rctrl: 'Control_R',
  right_ctrl: 'Control_R',
  right_control: 'Control_R',
  lalt: 'Alt_L',
  left_alt: 'Alt_L',
  ralt: 'Alt_R',
  right_alt: 'Alt_R',
  lshift: 'Shift_L',
  left_shift: 'Shift_L',
  rshift: 'Shift_R',
  right_shift: 'Shift_R',
  lcmd: 'Super_L',
  left_cmd: 'Super_L',
  rcmd: 'Super_R',
  right_cmd: 'Super_R',
};

/** Printable characters whose keysym is a name. */
const PUNCTUATION: Record<string, string> = {
  ' ': 'space',
  '!': 'exclam',
  '"': 'quotedbl',
  '#': 'numbersign',
  $: 'dollar',
  '%': 'percent',
  '&': 'ampersand',
  "'": 'apostrophe',
  '(': 'parenleft',
  ')': 'parenright',
  '*': 'asterisk',
  '+': 'plus',
  ',': 'comma',
  '-': 'minus',
  '.': 'period',
  '/': 'slash',
  ':': 'colon',
  ';': 'semicolon',
  '<': 'less',
  '=': 'equal',
  '>': 'greater',
  '?': 'question',
  '@': 'at',
  '[': 'bracketleft',
  '\\': 'backslash',
  ']': 'bracketright',
  '^': 'asciicircum',
  _: 'underscore',
  '`': 'grave',
  '{': 'braceleft',
  '|': 'bar',
  '}': 'braceright',
  '~': 'asciitilde',
};

/** A keysym-shaped word: what X calls keys (`Return`, `KP_Enter`, `XF86AudioMute`, `F13`). */
const KEYSYM_WORD = /^[A-Za-z][A-Za-z0-9_]{0,39}$/;

const invalid = (field: string, message: string) => new CoveError('INVALID_REQUEST', `Invalid request ${field}: ${message}`);

/** The modifier a name stands for, or undefined. */
function modifierOf(name: string): Modifier | undefined {
  return Object.hasOwn(MODIFIER_ALIASES, name.toLowerCase()) ? MODIFIER_ALIASES[name.toLowerCase()] : undefined;
}

/** The keysym of one key name; throws a 400 naming `field` for anything else. */
export function keysym(name: string, field: string): string {
  if (name.length === 1) {
    if (/^[A-Za-z0-9]$/.test(name)) return name;
    if (Object.hasOwn(PUNCTUATION, name)) return PUNCTUATION[name];
    throw invalid(field, `${JSON.stringify(name)} is not a key (use a key name, a letter, a digit or ASCII punctuation)`);
  }
  const lower = name.toLowerCase();
  if (Object.hasOwn(NAMED_KEYS, lower)) return NAMED_KEYS[lower];
  const modifier = modifierOf(name);
  if (modifier) return MODIFIER_KEYSYMS[modifier];
  const fn = /^f([1-9]|1[0-9]|2[0-4])$/.exec(lower);
  if (fn) return `F${fn[1]}`;
  const num = /^num([0-9])$/.exec(lower);
  if (num) return `KP_${num[1]}`;
  if (KEYSYM_WORD.test(name)) return name;
  throw invalid(field, `${JSON.stringify(name.slice(0, 64))} is not a key name (letters, digits and "_", such as "enter", "f5", "page_down" or an X keysym)`);
}

const KEY_FIELDS = { key: 'body.key', modifier: (i: number) => `body.modifiers.${i}` };

/** `xdotool key` chord of a key and its modifiers: `Control_L+Shift_L+t`. Modifiers are deduplicated, in order. */
export function keyChord(key: string, modifiers: string[], fields: { key: string; modifier: (i: number) => string } = KEY_FIELDS): string {
  const mods: Modifier[] = [];
  modifiers.forEach((m, i) => {
    const modifier = modifierOf(m.trim());
    if (!modifier) throw invalid(fields.modifier(i), `${JSON.stringify(m.slice(0, 64))} is not a modifier (ctrl, alt, shift, cmd/super/meta/win)`);
    if (!mods.includes(modifier)) mods.push(modifier);
  });
  const main = keysym(key === ' ' ? key : key.trim(), fields.key);
  return [...mods.map((m) => MODIFIER_KEYSYMS[m]), main].join('+');
}

/**
 * A hotkey such as "ctrl+shift+t", "alt+F4", "ctrl++" (the plus key) or "ctrl+shift" (modifiers alone): the last
 * part is the key, those before it must be modifiers.
 */
export function hotkeyChord(keys: string): string {
  const text = keys.trim();
  let parts: string[];
  if (text === '+') parts = ['+'];
  else if (text.endsWith('++')) parts = [...text.slice(0, -2).split('+'), '+'];
  else parts = text.split('+');
  parts = parts.map((p, i) => (i === parts.length - 1 && p === '+' ? p : p.trim()));
  if (parts.some((p) => p === '')) throw invalid('body.keys', `${JSON.stringify(keys.slice(0, 64))} has an empty key between "+" signs`);
  const key = parts[parts.length - 1];
  return keyChord(key, parts.slice(0, -1), { key: 'body.keys', modifier: () => 'body.keys' });
}
