import { ExecStreamRequest } from '../../../wire/exec-stream';
import { CodeRunRequest, CodeRunResponse, ExecuteRequest, ExecuteResponse } from '../../../wire/process';
import type { Router } from '../../../lib/http/router';
import { execSseResponse, serveExecWebSocket } from './exec-stream';
import type { ProcessService } from './service';

export function registerProcessRoutes(router: Router, processes: ProcessService): void {
  const tag = 'process';
  router.route(
    {
      method: 'post',
      path: '/process/execute',
      tag,
      summary: 'Run a shell command to its end; stdout and stderr combined',
      body: ExecuteRequest,
      response: ExecuteResponse,
    },
    ({ body }) => processes.execute(body),
  );
  router.route(
    {
      method: 'post',
      path: '/process/code-run',
      tag,
      summary: 'Run a python, javascript or typescript program to its end',
      body: CodeRunRequest,
      response: CodeRunResponse,
    },
    ({ body }) => processes.codeRun(body),
  );
  router.route(
    {
      method: 'post',
      path: '/process/exec/stream',
      tag,
      summary: 'Run a shell command, streaming its output as server-sent events',
      body: ExecStreamRequest,
      rawResponse: 'text/event-stream',
    },
    ({ body }) => execSseResponse(processes, body),
  );
  router.ws(
    { path: '/process/exec/stream', tag, summary: 'Run a shell command with streamed output, stdin and signals' },
    ({ socket }) => serveExecWebSocket(socket, processes),
  );
}
