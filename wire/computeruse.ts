import { z } from 'zod';
import { queryBool } from './common';

/**
 * Computer use (Daytona's `sandbox.computerUse`): the routes under `/computeruse/…` that start and supervise a desktop
 * (Xvfb, an xfce4 session, x11vnc and noVNC) and drive it: mouse, keyboard, screenshots, display and windows,
 * screen recordings. Coordinates are pixels of the display, from its top-left corner.
 */

/** The desktop's processes, in the order they start (Daytona's names, which its SDK passes to the process routes). */
export const DESKTOP_PROCESSES = ['xvfb', 'xfce4', 'x11vnc', 'novnc'] as const;

/** Largest coordinate, width or height accepted (well above any display Xvfb can make). */
const MAX_COORD = 32_767;

const coord = (name: string) =>
  z
    .number({ error: `${name} must be a number` })
    .int(`${name} must be an integer`)
    .min(0, `${name} must be at least 0`)
    .max(MAX_COORD, `${name} must be at most ${MAX_COORD}`);

/** A coordinate in a query string. */
const queryCoord = (name: string) => z.coerce.number({ error: `${name} must be a number` }).pipe(coord(name));
const querySide = (name: string) => queryCoord(name).pipe(z.number().min(1, `${name} must be at least 1`));

/** Mouse buttons: Daytona's names. */
const MOUSE_BUTTONS = ['left', 'middle', 'right'] as const;
const Button = z.enum(MOUSE_BUTTONS, { error: `button must be one of ${MOUSE_BUTTONS.join(', ')}` });

const ProcessStatus = z.object({
  running: z.boolean(),
  pid: z.number().int().optional().describe('While it runs'),
  priority: z.number().int().describe('Start order: lower starts first'),
  autoRestart: z.boolean().describe('Restarted (with backoff) when it exits on its own'),
});

/** `POST /computeruse/start` and `/stop`. */
export const ComputerUseStartResponse = z.object({
  message: z.string(),
  status: z.record(z.string(), ProcessStatus).describe('Each desktop process by name'),
});
export type ComputerUseStartResponse = z.infer<typeof ComputerUseStartResponse>;

/** `GET /computeruse/status` and `/process-status`: all running, some, or none. */
export const ComputerUseStatusResponse = z.object({ status: z.enum(['active', 'partial', 'inactive']) });
export type ComputerUseStatusResponse = z.infer<typeof ComputerUseStatusResponse>;

/** A desktop process named in a path (`/computeruse/process/{processName}/…`). */
export const ProcessNameParam = z.enum(DESKTOP_PROCESSES, {
  error: `processName must be one of ${DESKTOP_PROCESSES.join(', ')}`,
});

export const ProcessStatusResponse = z.object({ processName: z.string(), running: z.boolean() });
export type ProcessStatusResponse = z.infer<typeof ProcessStatusResponse>;

export const ProcessRestartResponse = z.object({ message: z.string(), processName: z.string() });
export type ProcessRestartResponse = z.infer<typeof ProcessRestartResponse>;

export const ProcessLogsResponse = z.object({ processName: z.string(), logs: z.string().describe('The last output on stdout (bounded)') });
export type ProcessLogsResponse = z.infer<typeof ProcessLogsResponse>;

export const ProcessErrorsResponse = z.object({ processName: z.string(), errors: z.string().describe('The last output on stderr (bounded)') });
export type ProcessErrorsResponse = z.infer<typeof ProcessErrorsResponse>;

/** A pointer position (answers of the mouse routes). */
export const MousePosition = z.object({ x: z.number().int(), y: z.number().int() });
export type MousePosition = z.infer<typeof MousePosition>;

export const MouseMoveRequest = z.object({ x: coord('x'), y: coord('y') });
export type MouseMoveRequest = z.infer<typeof MouseMoveRequest>;

export const MouseClickRequest = z.object({
  x: coord('x'),
  y: coord('y'),
  button: Button.default('left'),
  double: z.boolean().default(false).describe('Double click'),
});
export type MouseClickRequest = z.infer<typeof MouseClickRequest>;

export const MouseDragRequest = z.object({
  startX: coord('startX'),
  startY: coord('startY'),
  endX: coord('endX'),
  endY: coord('endY'),
  button: Button.default('left'),
});
export type MouseDragRequest = z.infer<typeof MouseDragRequest>;

const SCROLL_DIRECTIONS = ['up', 'down', 'left', 'right'] as const;

export const MouseScrollRequest = z.object({
  x: coord('x'),
  y: coord('y'),
  direction: z.enum(SCROLL_DIRECTIONS, { error: `direction must be one of ${SCROLL_DIRECTIONS.join(', ')}` }),
  amount: z
    .number({ error: 'amount must be a number' })
    .int('amount must be an integer')
    .min(1, 'amount must be at least 1')
    .max(100, 'amount must be at most 100')
    .default(1)
    .describe('Wheel steps'),
});
export type MouseScrollRequest = z.infer<typeof MouseScrollRequest>;

export const ScrollResponse = z.object({ success: z.boolean() });
export type ScrollResponse = z.infer<typeof ScrollResponse>;

/** Longest text one `keyboard/type` request types. */
const MAX_TYPE_TEXT = 10_000;

export const KeyboardTypeRequest = z.object({
  text: z
    .string({ error: 'text must be a string' })
    .min(1, 'text must not be empty')
    .max(MAX_TYPE_TEXT, `text must be at most ${MAX_TYPE_TEXT} characters`)
    // Newlines and tabs are typed as Return and Tab; other control characters have no key.
    .refine((t) => !/[\u0000-\u0008\u000b-\u001f\u007f]/.test(t), 'text must not contain control characters other than newline and tab'),
  delay: z
    .number({ error: 'delay must be a number' })
    .int('delay must be an integer')
    .min(0, 'delay must be at least 0')
    .max(1000, 'delay must be at most 1000')
    .optional()
    .describe('Milliseconds between keystrokes (12 by default)'),
});
export type KeyboardTypeRequest = z.infer<typeof KeyboardTypeRequest>;

/** A key or modifier name as sent; checked against the safe names in the agent (agent/src/computeruse/keys.ts). */
const KeyName = (name: string) => z.string({ error: `${name} must be a string` }).min(1, `${name} must not be empty`).max(64, `${name} must be at most 64 characters`);

export const KeyboardPressRequest = z.object({
  key: KeyName('key'),
  modifiers: z.array(KeyName('modifier')).max(8, 'modifiers must have at most 8 entries').default([]).describe('ctrl, alt, shift, cmd/super/meta/win'),
});
export type KeyboardPressRequest = z.infer<typeof KeyboardPressRequest>;

export const KeyboardHotkeyRequest = z.object({
  keys: z.string({ error: 'keys must be a string' }).min(1, 'keys must not be empty').max(200, 'keys must be at most 200 characters').describe('Keys joined with "+", such as "ctrl+shift+t"'),
});
export type KeyboardHotkeyRequest = z.infer<typeof KeyboardHotkeyRequest>;

/** Answer of the keyboard routes (Daytona's empty object). */
export const EmptyResponse = z.object({});

export const ScreenshotQuery = z.object({ showCursor: queryBool.describe('Draw the pointer into the image') });
export type ScreenshotQuery = z.infer<typeof ScreenshotQuery>;

export const RegionScreenshotQuery = z.object({
  x: queryCoord('x'),
  y: queryCoord('y'),
  width: querySide('width'),
  height: querySide('height'),
  showCursor: queryBool.describe('Draw the pointer into the image'),
});
export type RegionScreenshotQuery = z.infer<typeof RegionScreenshotQuery>;

const IMAGE_FORMATS = ['png', 'jpeg', 'jpg', 'webp'] as const;

const compression = {
  format: z.enum(IMAGE_FORMATS, { error: `format must be one of ${IMAGE_FORMATS.join(', ')}` }).default('png'),
  quality: z.coerce
    .number({ error: 'quality must be a number' })
    .pipe(z.number().int('quality must be an integer').min(1, 'quality must be at least 1').max(100, 'quality must be at most 100'))
    .default(85)
    .describe('JPEG and WebP quality, 1–100'),
  scale: z.coerce
    .number({ error: 'scale must be a number' })
    .pipe(z.number().min(0.1, 'scale must be at least 0.1').max(1, 'scale must be at most 1'))
    .default(1)
    .describe('Size factor, 0.1–1'),
};

export const CompressedScreenshotQuery = z.object({ showCursor: queryBool.describe('Draw the pointer into the image'), ...compression });
export type CompressedScreenshotQuery = z.infer<typeof CompressedScreenshotQuery>;

export const CompressedRegionScreenshotQuery = RegionScreenshotQuery.extend(compression);
export type CompressedRegionScreenshotQuery = z.infer<typeof CompressedRegionScreenshotQuery>;

export const ScreenshotResponse = z.object({
  screenshot: z.string().describe('The image, base64'),
  sizeBytes: z.number().int().describe('Bytes of the image (before base64)'),
  cursorPosition: MousePosition.optional().describe('The pointer, in display coordinates'),
});
export type ScreenshotResponse = z.infer<typeof ScreenshotResponse>;

export const DisplayInfo = z.object({
  id: z.number().int(),
  x: z.number().int(),
  y: z.number().int(),
  width: z.number().int(),
  height: z.number().int(),
  isActive: z.boolean(),
});
export type DisplayInfo = z.infer<typeof DisplayInfo>;

export const DisplayInfoResponse = z.object({ displays: z.array(DisplayInfo) });
export type DisplayInfoResponse = z.infer<typeof DisplayInfoResponse>;

export const WindowInfo = z.object({
  id: z.number().int().describe('The X window id'),
  title: z.string(),
  x: z.number().int(),
  y: z.number().int(),
  width: z.number().int(),
  height: z.number().int(),
  isActive: z.boolean(),
});
export type WindowInfo = z.infer<typeof WindowInfo>;

export const WindowsResponse = z.object({ windows: z.array(WindowInfo) });
export type WindowsResponse = z.infer<typeof WindowsResponse>;

/** Recording ids are UUIDs (they name the files, so nothing else may reach a path). */
const RecordingId = z.string({ error: 'id must be a string' }).regex(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/, 'id must be a recording id (a UUID)');

export const RecordingIdParam = RecordingId;

export const StartRecordingRequest = z.object({
  label: z
    .string({ error: 'label must be a string' })
    .max(100, 'label must be at most 100 characters')
    .regex(/^(?!\.)[A-Za-z0-9 ._-]*$/, 'label may hold only letters, digits, spaces, ".", "_" and "-", and must not start with "."')
    .optional()
    .describe('Part of the file name'),
});
export type StartRecordingRequest = z.infer<typeof StartRecordingRequest>;

export const StopRecordingRequest = z.object({ id: RecordingId });
export type StopRecordingRequest = z.infer<typeof StopRecordingRequest>;

export const Recording = z.object({
  id: z.string(),
  fileName: z.string(),
  filePath: z.string(),
  startTime: z.string(),
  endTime: z.string().optional(),
  status: z.enum(['recording', 'completed', 'failed']),
  durationSeconds: z.number().optional(),
  sizeBytes: z.number().int().optional(),
});
export type Recording = z.infer<typeof Recording>;

export const ListRecordingsResponse = z.object({ recordings: z.array(Recording) });
export type ListRecordingsResponse = z.infer<typeof ListRecordingsResponse>;

/** Accessibility requests: accepted for the route documents; Cove's desktop image has no AT-SPI support yet. */
export const AccessibilityTreeQuery = z.object({
  scope: z.string().optional(),
  pid: z.coerce.number().int().optional(),
  maxDepth: z.coerce.number().int().optional(),
});
export const AccessibilityFindRequest = z.object({
  name: z.string().optional(),
  nameMatch: z.string().optional(),
  role: z.string().optional(),
  states: z.array(z.string()).optional(),
  scope: z.string().optional(),
  pid: z.number().int().optional(),
  limit: z.number().int().optional(),
});
export const AccessibilityNodeRequest = z.object({ id: z.string(), action: z.string().optional(), value: z.string().optional() });
