import type { ServerResponse } from 'node:http';
import { pipeline } from 'node:stream/promises';
import type { Router } from '../../../lib/http/router';
import { parseOrThrow } from '../../../lib/http/router';
import {
  AccessibilityFindRequest,
  AccessibilityNodeRequest,
  AccessibilityTreeQuery,
  CompressedRegionScreenshotQuery,
  CompressedScreenshotQuery,
  ComputerUseStartResponse,
  ComputerUseStatusResponse,
  DisplayInfoResponse,
  EmptyResponse,
  KeyboardHotkeyRequest,
  KeyboardPressRequest,
  KeyboardTypeRequest,
  ListRecordingsResponse,
  MouseClickRequest,
  MouseDragRequest,
  MouseMoveRequest,
  MousePosition,
  MouseScrollRequest,
  ProcessErrorsResponse,
  ProcessLogsResponse,
  ProcessNameParam,
  ProcessRestartResponse,
  ProcessStatusResponse,
  Recording,
  RecordingIdParam,
  RegionScreenshotQuery,
  ScreenshotQuery,
  ScreenshotResponse,
  ScrollResponse,
  StartRecordingRequest,
  StopRecordingRequest,
  WindowsResponse,
} from '../../../wire/computeruse';
import { rfc5987 } from '../files/multipart';
import { sendWith } from '../files/http';
import type { ComputerUseService } from './service';

const tag = 'computer-use';
const P = '/computeruse';

/** Daytona's computer-use routes (`sandbox.computerUse`): the desktop, mouse, keyboard, screenshots, display, recordings. */
export function registerComputerUseRoutes(router: Router, cu: ComputerUseService): void {
  const processName = (params: Record<string, string>) => parseOrThrow(ProcessNameParam, params.processName, 'path.processName');
  const recordingId = (params: Record<string, string>) => parseOrThrow(RecordingIdParam, params.id, 'path.id');

  router.route({ method: 'post', path: `${P}/start`, tag, summary: 'Start the desktop (Xvfb, xfce4, x11vnc, noVNC)', response: ComputerUseStartResponse }, () => cu.start());
  router.route({ method: 'post', path: `${P}/stop`, tag, summary: 'Stop every desktop process', response: ComputerUseStartResponse }, () => cu.stop());
  router.route({ method: 'get', path: `${P}/status`, tag, summary: 'Whether the desktop runs: active, partial or inactive', response: ComputerUseStatusResponse }, () => cu.status());
  router.route({ method: 'get', path: `${P}/process-status`, tag, summary: 'Whether the desktop runs (the SDK\'s getStatus)', response: ComputerUseStatusResponse }, () => cu.status());
  router.route(
    { method: 'get', path: `${P}/process/{processName}/status`, tag, summary: 'Whether one desktop process runs', response: ProcessStatusResponse },
    ({ params }) => cu.processStatus(processName(params)),
  );
  router.route(
    { method: 'post', path: `${P}/process/{processName}/restart`, tag, summary: 'Restart one desktop process', response: ProcessRestartResponse },
    ({ params }) => cu.restartProcess(processName(params)),
  );
  router.route(
    { method: 'get', path: `${P}/process/{processName}/logs`, tag, summary: 'The last stdout of a desktop process', response: ProcessLogsResponse },
    ({ params }) => cu.processLogs(processName(params)),
  );
  router.route(
    { method: 'get', path: `${P}/process/{processName}/errors`, tag, summary: 'The last stderr of a desktop process', response: ProcessErrorsResponse },
    ({ params }) => cu.processErrors(processName(params)),
  );

  router.route({ method: 'get', path: `${P}/mouse/position`, tag, summary: 'Where the pointer is', response: MousePosition }, () => cu.mousePosition());
  router.route({ method: 'post', path: `${P}/mouse/move`, tag, summary: 'Move the pointer', body: MouseMoveRequest, response: MousePosition }, ({ body }) => cu.move(body.x, body.y));
  router.route({ method: 'post', path: `${P}/mouse/click`, tag, summary: 'Click (or double-click) at a point', body: MouseClickRequest, response: MousePosition }, ({ body }) => cu.click(body));
  router.route({ method: 'post', path: `${P}/mouse/drag`, tag, summary: 'Press at one point, move, release at another', body: MouseDragRequest, response: MousePosition }, ({ body }) => cu.drag(body));
  router.route({ method: 'post', path: `${P}/mouse/scroll`, tag, summary: 'Turn the wheel at a point', body: MouseScrollRequest, response: ScrollResponse }, ({ body }) => cu.scroll(body));

  router.route({ method: 'post', path: `${P}/keyboard/type`, tag, summary: 'Type text', body: KeyboardTypeRequest, response: EmptyResponse }, ({ body }) => cu.type(body));
  router.route({ method: 'post', path: `${P}/keyboard/key`, tag, summary: 'Press a key with modifiers', body: KeyboardPressRequest, response: EmptyResponse }, ({ body }) => cu.press(body));
  router.route({ method: 'post', path: `${P}/keyboard/hotkey`, tag, summary: 'Press a combination such as "ctrl+shift+t"', body: KeyboardHotkeyRequest, response: EmptyResponse }, ({ body }) =>
    cu.hotkey(body.keys),
  );

  router.route({ method: 'get', path: `${P}/screenshot`, tag, summary: 'The whole display as PNG (base64)', query: ScreenshotQuery, response: ScreenshotResponse }, ({ query }) =>
    cu.screenshot({ showCursor: query.showCursor }, false),
  );
  router.route(
    { method: 'get', path: `${P}/screenshot/region`, tag, summary: 'A region of the display as PNG (base64)', query: RegionScreenshotQuery, response: ScreenshotResponse },
    ({ query }) => cu.screenshot(query, true),
  );
  router.route(
    { method: 'get', path: `${P}/screenshot/compressed`, tag, summary: 'The whole display as PNG, JPEG or WebP, scaled', query: CompressedScreenshotQuery, response: ScreenshotResponse },
    ({ query }) => cu.screenshot(query, false),
  );
  router.route(
    {
      method: 'get',
      path: `${P}/screenshot/region/compressed`,
      tag,
      summary: 'A region of the display as PNG, JPEG or WebP, scaled',
      query: CompressedRegionScreenshotQuery,
      response: ScreenshotResponse,
    },
    ({ query }) => cu.screenshot(query, true),
  );

  router.route({ method: 'get', path: `${P}/display/info`, tag, summary: 'The screens of the display', response: DisplayInfoResponse }, () => cu.displayInfo());
  router.route({ method: 'get', path: `${P}/display/windows`, tag, summary: 'The windows on the display', response: WindowsResponse }, () => cu.windows());

  router.route({ method: 'get', path: `${P}/recordings`, tag, summary: 'Every recording, running and finished', response: ListRecordingsResponse }, async () => ({
    recordings: await cu.listRecordings(),
  }));
  router.route({ method: 'post', path: `${P}/recordings/start`, tag, summary: 'Start recording the display (mp4)', body: StartRecordingRequest, response: Recording, status: 201 }, ({ body, c }) =>
    cu.startRecording(body.label).then((r) => c.json(r, 201)),
  );
  router.route({ method: 'post', path: `${P}/recordings/stop`, tag, summary: 'Stop a recording', body: StopRecordingRequest, response: Recording }, ({ body }) =>
    cu.stopRecording(body.id),
  );
  router.route({ method: 'get', path: `${P}/recordings/{id}`, tag, summary: 'One recording', response: Recording }, ({ params }) => cu.getRecording(recordingId(params)));
  router.route({ method: 'delete', path: `${P}/recordings/{id}`, tag, summary: 'Delete a finished recording and its file', status: 204 }, async ({ params }) => {
    await cu.deleteRecording(recordingId(params));
  });
  router.route({ method: 'get', path: `${P}/recordings/{id}/download`, tag, summary: 'The mp4 file of a finished recording', rawResponse: 'video/mp4' }, async ({ params, c }) => {
    const file = await cu.openRecording(recordingId(params));
    return sendWith(
      c,
      { 'Content-Type': 'video/mp4', 'Content-Length': String(file.size), 'Content-Disposition': `attachment; filename*=${rfc5987(file.name)}` },
      // pipeline ends the answer, and destroys the file stream if the client goes away.
      (out: ServerResponse) => pipeline(file.stream, out),
    );
  });

  // Accessibility: documented, answered with the reason it is not served here.
  const a11y = () => cu.accessibility();
  router.route({ method: 'get', path: `${P}/a11y/tree`, tag, summary: 'Accessibility tree (not supported by Cove\'s desktop image)', query: AccessibilityTreeQuery }, a11y);
  router.route({ method: 'post', path: `${P}/a11y/find`, tag, summary: 'Find accessibility nodes (not supported)', body: AccessibilityFindRequest }, a11y);
  router.route({ method: 'post', path: `${P}/a11y/node/focus`, tag, summary: 'Focus an accessibility node (not supported)', body: AccessibilityNodeRequest }, a11y);
  router.route({ method: 'post', path: `${P}/a11y/node/invoke`, tag, summary: 'Invoke an accessibility node (not supported)', body: AccessibilityNodeRequest }, a11y);
  router.route({ method: 'post', path: `${P}/a11y/node/value`, tag, summary: 'Set an accessibility node\'s value (not supported)', body: AccessibilityNodeRequest }, a11y);
}
