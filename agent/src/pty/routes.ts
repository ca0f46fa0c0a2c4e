import type { IncomingMessage } from 'node:http';
import type { WebSocket } from 'ws';
import {
  decodeEnvsProtocol,
  offeredProtocols,
  PTY_ENVS_PROTOCOL_PREFIX,
  PTY_EXIT_CONTROL_PROTOCOL,
  PtyCreateConnectQuery,
  PtyCreateRequest,
  PtyCreateResponse,
  PtyListResponse,
  PtyResizeRequest,
  PtySessionInfo,
} from '../../../wire/pty';
import { CoveError } from '../../../lib/errors';
import type { Router } from '../../../lib/http/router';
import { boundaryError } from '../boundary';
import { rejectPtyChannel, servePtyChannel } from './channel';
import type { PtyAttachment, PtyService, PtySink } from './service';

/** Echo the exit-control token when offered; otherwise any offered token, since clients fail on none. */
function pickProtocol(offered: string[]): string | false {
  if (offered.includes(PTY_EXIT_CONTROL_PROTOCOL)) return PTY_EXIT_CONTROL_PROTOCOL;
  return offered.find((p) => !p.startsWith(PTY_ENVS_PROTOCOL_PREFIX)) ?? offered[0] ?? false;
}

/** Runs `attach` for a new channel; a failure becomes an error message and close instead of an exception. */
function serve(socket: WebSocket, req: IncomingMessage, attach: (offered: string[], sink: PtySink) => PtyAttachment): void {
  const offered = offeredProtocols(req.headers['sec-websocket-protocol']);
  try {
    servePtyChannel(socket, {
      exitControl: offered.includes(PTY_EXIT_CONTROL_PROTOCOL),
      attach: (sink) => attach(offered, sink),
    });
  } catch (err) {
    rejectPtyChannel(socket, boundaryError(err, 'terminal attach'));
  }
}

export function registerPtyRoutes(router: Router, pty: PtyService): void {
  const tag = 'pty';
  router.route(
    { method: 'post', path: '/process/pty', tag, summary: 'Create a PTY session', body: PtyCreateRequest, response: PtyCreateResponse, status: 201 },
    ({ body }) => ({ sessionId: pty.create(body).id }),
  );
  router.route({ method: 'get', path: '/process/pty', tag, summary: 'List PTY sessions', response: PtyListResponse }, () => ({
    sessions: pty.list(),
  }));
  router.route(
    { method: 'get', path: '/process/pty/{sessionId}', tag, summary: 'A PTY session (its exit code once ended)', response: PtySessionInfo },
    ({ params }) => pty.get(params.sessionId),
  );
  router.route(
    { method: 'delete', path: '/process/pty/{sessionId}', tag, summary: 'Kill a PTY session and forget it', status: 204 },
    ({ params }) => pty.kill(params.sessionId),
  );
  router.route(
    { method: 'post', path: '/process/pty/{sessionId}/resize', tag, summary: 'Resize a PTY', body: PtyResizeRequest, response: PtySessionInfo },
    ({ params, body }) => pty.resize(params.sessionId, body.cols, body.rows),
  );

  router.ws(
    {
      path: '/process/pty/create-connect',
      tag,
      summary: 'Create a PTY session and attach to it (envs in the X-Daytona-Pty-Envs~ subprotocol)',
      query: PtyCreateConnectQuery,
      protocols: pickProtocol,
    },
    ({ socket, query, req }) =>
      serve(socket, req, (offered, sink) => {
        const q = query as PtyCreateConnectQuery;
        let envs;
        try {
          envs = decodeEnvsProtocol(offered);
        } catch (err) {
          throw new CoveError('INVALID_REQUEST', (err as Error).message);
        }
        pty.create({ id: q.id, cols: q.cols, rows: q.rows, cwd: q.cwd, envs });
        return pty.attach(q.id, sink);
      }),
  );
  router.ws(
    { path: '/process/pty/{sessionId}/connect', tag, summary: 'Attach to a PTY session', protocols: pickProtocol },
    ({ socket, params, req }) => serve(socket, req, (_offered, sink) => pty.attach(params.sessionId, sink)),
  );
}
