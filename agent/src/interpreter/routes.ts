import {
  CreateContextRequest,
  DeleteContextResponse,
  InterpreterContext,
  ListContextsResponse,
} from '../../../wire/interpreter';
import type { Router } from '../../../lib/http/router';
import { serveInterpreterChannel } from './channel';
import type { InterpreterService } from './service';

export function registerInterpreterRoutes(router: Router, interpreter: InterpreterService): void {
  const tag = 'interpreter';
  router.route(
    {
      method: 'post',
      path: '/process/interpreter/context',
      tag,
      summary: 'Create an interpreter context: a Python kernel whose globals persist between runs',
      body: CreateContextRequest,
      response: InterpreterContext,
    },
    ({ body }) => interpreter.create(body),
  );
  router.route(
    { method: 'get', path: '/process/interpreter/context', tag, summary: 'List interpreter contexts (not the default one)', response: ListContextsResponse },
    () => ({ contexts: interpreter.list() }),
  );
  router.route(
    {
      method: 'delete',
      path: '/process/interpreter/context/{id}',
      tag,
      summary: "Delete an interpreter context and kill its kernel's process group",
      response: DeleteContextResponse,
    },
    async ({ params }) => {
      await interpreter.delete(params.id);
      return { message: 'Context deleted successfully' };
    },
  );
  router.ws(
    { path: '/process/interpreter/execute', tag, summary: 'Run Python code in a context, streaming its output (see wire/interpreter.ts)' },
    ({ socket }) => serveInterpreterChannel(socket, interpreter),
  );
}
