import type { Context } from 'hono';
import type { WebSocket } from 'ws';
import {
  CreateSessionRequest,
  LOGS_END_CLOSE_CODE,
  Session,
  SessionCommand,
  SessionCommandLogs,
  SessionExecuteRequest,
  SessionExecuteResponse,
  SessionList,
  SessionLogsQuery,
  SessionSendInputRequest,
  STDERR_PREFIX,
  STDOUT_PREFIX,
  wantsMarkedOutput,
} from '../../../wire/sessions';
import type { Router } from '../../../lib/http/router';
import type { LogListener } from './command-log';
import type { SessionsService } from './service';

/** A follower this far behind is cut off rather than buffered without bound. */
const MAX_BACKLOG = 64 * 1024 * 1024;

type Subscribe = (listener: LogListener) => () => void;

/** Streams a command's log over a WebSocket in the SDK's demux framing; closes with 1000 when the command ends. */
function streamToSocket(socket: WebSocket, subscribe: Subscribe): void {
  let unsubscribe = () => {};
  socket.on('error', () => {});
  socket.on('close', () => unsubscribe());
  unsubscribe = subscribe({
    chunk({ stream, data }) {
      if (socket.readyState !== socket.OPEN) return;
      socket.send(Buffer.concat([stream === 'stdout' ? STDOUT_PREFIX : STDERR_PREFIX, data]), { binary: true });
      if (socket.bufferedAmount > MAX_BACKLOG) socket.close(1013, 'client too slow to follow the output');
    },
    end() {
      if (socket.readyState === socket.OPEN) socket.close(LOGS_END_CLOSE_CODE, 'command ended');
    },
  });
}

/** `?follow=true` over plain HTTP (curl, older SDKs): the interleaved output as a chunked text stream. */
function streamToResponse(subscribe: Subscribe): Response {
  let unsubscribe = () => {};
  let open = true;
  // Queue size counted in bytes, so desiredSize tells how far behind the reader is.
  const bytes = new ByteLengthQueuingStrategy({ highWaterMark: 64 * 1024 });
  const source: UnderlyingDefaultSource<Uint8Array> = {
    start(controller) {
      const end = () => {
        if (open) controller.close();
        open = false;
        unsubscribe();
      };
      unsubscribe = subscribe({
        chunk({ data }) {
          if (!open) return;
          controller.enqueue(new Uint8Array(data));
          // A reader this far behind is cut off rather than buffered without bound.
          if ((controller.desiredSize ?? 0) < -MAX_BACKLOG) end();
        },
        end,
      });
    },
    cancel() {
      open = false;
      unsubscribe();
    },
  };
  return new Response(new ReadableStream(source, bytes), { headers: { 'Content-Type': 'text/plain; charset=utf-8', 'Cache-Control': 'no-store' } });
}

/** Whether the caller is an SDK before 0.167, which splits marked output itself (wire/sessions.ts). */
const marked = (c: Context): boolean => wantsMarkedOutput(c.req.header('x-daytona-sdk-version'));

/**
 * Logs as JSON; as text for SDKs before 0.167 (the marked output, which they split) and for clients that accept
 * only text.
 */
function logsResponse(c: Context, logs: SessionCommandLogs): Response | SessionCommandLogs {
  const accept = c.req.header('accept') ?? '';
  if (marked(c) || (accept.includes('text/plain') && !accept.includes('json') && !accept.includes('*/*'))) return c.text(logs.output);
  return logs;
}

/** The Daytona session routes: `/process/session…`. */
export function registerSessionsRoutes(router: Router, sessions: SessionsService): void {
  const tag = 'sessions';
  const base = '/process/session';
  const commandPath = `${base}/{sessionId}/command/{commandId}`;

  router.route(
    { method: 'post', path: base, tag, summary: 'Start a session (a long-lived shell)', body: CreateSessionRequest, response: Session, status: 201 },
    ({ body }) => sessions.create(body.sessionId),
  );
  router.route({ method: 'get', path: base, tag, summary: 'List sessions', response: SessionList }, () => sessions.list());

  // The SDK's getEntrypointLogs: the output of the command main.ts runs in the `entrypoint` session.
  router.route(
    {
      method: 'get',
      path: `${base}/entrypoint/logs`,
      tag,
      summary: "Output of the image's entrypoint (`?follow=true`: a live text stream, or a WebSocket on upgrade)",
      query: SessionLogsQuery,
      response: SessionCommandLogs,
    },
    ({ c, query }) => {
      const id = sessions.latestCommandId('entrypoint');
      if (!id) return { output: '', stdout: '', stderr: '' };
      if (query.follow) return streamToResponse((l) => sessions.follow('entrypoint', id, l));
      return logsResponse(c, sessions.logs('entrypoint', id, { marked: marked(c) }));
    },
  );
  router.ws(
    { path: `${base}/entrypoint/logs`, tag, summary: "Follow the output of the image's entrypoint", query: SessionLogsQuery },
    ({ socket }) => {
      const id = sessions.latestCommandId('entrypoint');
      if (!id) return void socket.close(LOGS_END_CLOSE_CODE, 'no entrypoint command');
      streamToSocket(socket, (l) => sessions.follow('entrypoint', id, l));
    },
  );

  router.route(
    { method: 'get', path: `${base}/{sessionId}`, tag, summary: 'A session and its commands', response: Session },
    ({ params }) => sessions.get(params.sessionId),
  );
  router.route(
    { method: 'delete', path: `${base}/{sessionId}`, tag, summary: 'Delete a session and kill everything it started', response: Session },
    ({ params }) => sessions.delete(params.sessionId),
  );
  router.route(
    {
      method: 'post',
      path: `${base}/{sessionId}/exec`,
      tag,
      summary: 'Run a command in a session: 200 with its result, or 202 with its id when runAsync',
      body: SessionExecuteRequest,
      response: SessionExecuteResponse,
    },
    async ({ c, params, body }) => {
      const result = await sessions.execute(params.sessionId, body, { marked: marked(c) });
      return body.runAsync || body.async ? c.json(result, 202) : result;
    },
  );
  router.route(
    { method: 'get', path: commandPath, tag, summary: 'A command of a session (exitCode once it ended)', response: SessionCommand },
    ({ params }) => sessions.command(params.sessionId, params.commandId),
  );
  router.route(
    { method: 'post', path: `${commandPath}/input`, tag, summary: "Write to a running command's stdin", body: SessionSendInputRequest, status: 204 },
    ({ params, body }) => sessions.sendInput(params.sessionId, params.commandId, body.data),
  );
  router.route(
    {
      method: 'get',
      path: `${commandPath}/logs`,
      tag,
      summary: "A command's output (`?follow=true`: a live text stream, or a WebSocket on upgrade)",
      query: SessionLogsQuery,
      response: SessionCommandLogs,
    },
    ({ c, params, query }) => {
      const { sessionId, commandId } = params;
      if (query.follow) {
        sessions.command(sessionId, commandId); // unknown ids: a 404 now rather than an empty stream
        return streamToResponse((l) => sessions.follow(sessionId, commandId, l));
      }
      return logsResponse(c, sessions.logs(sessionId, commandId, { marked: marked(c) }));
    },
  );
  router.ws(
    { path: `${commandPath}/logs`, tag, summary: "Follow a command's output", query: SessionLogsQuery },
    ({ socket, params }) => streamToSocket(socket, (l) => sessions.follow(params.sessionId, params.commandId, l)),
  );
}
