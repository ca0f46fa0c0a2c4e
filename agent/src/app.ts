import { Hono, type Context } from 'hono';
import type { IncomingMessage } from 'node:http';
import { AGENT_VERSION } from '../../wire/agent';
import { ERROR_SOURCE } from '../../wire/errors';
import { createBearerCheck } from '../../lib/http/auth';
import { unexpected } from '../../lib/guard';
import { CoveError, fromOsError } from '../../lib/errors';
import { Router } from '../../lib/http/router';
import { registerComputerUseRoutes } from './computeruse/routes';
import { createComputerUseService } from './computeruse/service';
import { registerEnvRoutes } from './env/routes';
import { createEnvService } from './env/service';
import { registerFilesRoutes } from './files/routes';
import { createFilesService } from './files/service';
import { registerGitRoutes } from './git/routes';
import { createGitService } from './git/service';
import { registerInfoRoutes } from './info/routes';
import { createInfoService } from './info/service';
import { registerInterpreterRoutes } from './interpreter/routes';
import { createInterpreterService } from './interpreter/service';
import { registerLspRoutes } from './lsp/routes';
import { createLspService } from './lsp/service';
import { registerMetricsRoutes } from './metrics/routes';
import { createMetricsService } from './metrics/service';
import { registerPortsRoutes } from './ports/routes';
import { createPortsService } from './ports/service';
import { registerProcessRoutes } from './process/routes';
import { createProcessService } from './process/service';
import { registerPtyRoutes } from './pty/routes';
import { createPtyService } from './pty/service';
import { registerSessionsRoutes } from './sessions/routes';
import { createSessionsService } from './sessions/service';
import { registerSshRoutes } from './ssh/routes';
import { createSshService } from './ssh/service';
import type { SandboxContext } from './system/context';
import { registerWatchRoutes } from './watch/routes';
import { createWatchService } from './watch/service';


/** Whether reading the request failed because the client went away: nothing failed here, and nobody reads the answer. */
function clientLeft(err: unknown, c: Context): boolean {
  const incoming = (c.env as { incoming?: IncomingMessage } | undefined)?.incoming;
  return Boolean(incoming && !incoming.complete && (err as NodeJS.ErrnoException | undefined)?.code === 'ECONNRESET');
}

/** Wires services to routes. Knows nothing of sockets or ports: see server.ts. */
export function createAgentApp(opts: { token: string; ctx: SandboxContext; /** called once, at the first authorized request */ onFirstAuthorized?: () => void }) {
  const app = new Hono();
  const check = createBearerCheck(opts.token);
  let first = opts.onFirstAuthorized;
  /** The agent's own warm-up requests (warm()): authorized, but no client's first request. */
  const warming = new WeakSet<Request>();
  const isAuthorized = (header: string | undefined, request?: Request): boolean => {
    const ok = check(header);
    if (ok && first && !(request && warming.has(request))) {
      const call = first;
      first = undefined;
      call();
    }
    return ok;
  };

  app.use('*', async (c, next) => {
    if (!isAuthorized(c.req.header('authorization'), c.req.raw)) {
      throw new CoveError('UNAUTHORIZED', 'Missing or invalid bearer token');
    }
    await next();
  });
  app.onError((err, c) => {
    const where = `${c.req.method} ${c.req.path.slice(0, 200)}`;
    // Expected failures are answered as they are (an expected 5xx, a tool or remote failing, gets a log line);
    // anything else is reported once with its stack and answered as a 500 that names the same error id.
    const known = clientLeft(err, c) ? new CoveError('INVALID_REQUEST', 'The client closed the connection before its request arrived') : fromOsError(err);
    if (known instanceof CoveError && known.status >= 500) process.stderr.write(`cove agent: ${where}: ${known.detail ?? known.message}\n`);
    const error = known instanceof CoveError ? known : unexpected(known, where);
    return c.json(error.toBody(ERROR_SOURCE.agent), error.status as 400);
  });
  app.notFound((c) => {
    const error = new CoveError('NOT_FOUND', `No route for ${c.req.method} ${c.req.path}`);
    return c.json(error.toBody(ERROR_SOURCE.agent), 404);
  });

  const router = new Router(app);
  const services = {
    info: createInfoService(opts.ctx, AGENT_VERSION),
    files: createFilesService(opts.ctx),
    process: createProcessService(opts.ctx),
    sessions: createSessionsService(opts.ctx),
    pty: createPtyService(opts.ctx),
    ports: createPortsService(),
    git: createGitService(opts.ctx),
    lsp: createLspService(opts.ctx),
    watch: createWatchService(opts.ctx),
    ssh: createSshService(opts.ctx),
    env: createEnvService(opts.ctx),
    metrics: createMetricsService(opts.ctx),
    interpreter: createInterpreterService(opts.ctx),
    computerUse: createComputerUseService(opts.ctx),
  };
  registerInfoRoutes(router, services.info);
  registerFilesRoutes(router, services.files);
  registerProcessRoutes(router, services.process);
  registerSessionsRoutes(router, services.sessions);
  registerPtyRoutes(router, services.pty);
  registerPortsRoutes(router, services.ports);
  registerGitRoutes(router, services.git);
  registerLspRoutes(router, services.lsp);
  registerWatchRoutes(router, services.watch);
  registerSshRoutes(router, services.ssh);
  registerInterpreterRoutes(router, services.interpreter);
  registerEnvRoutes(router, services.env);
  registerMetricsRoutes(router, services.metrics);
  registerComputerUseRoutes(router, services.computerUse);

  // Built on first request: the document is large and most agents never serve it.
  let openapi: object | undefined;
  app.get('/openapi.json', (c) => c.json((openapi ??= router.openapi({ title: 'Cove agent', version: AGENT_VERSION }))));

  return {
    app,
    router,
    services,
    isAuthorized,
    /**
     * Runs, in this process, what a client's first command would otherwise pay for the first time: the route of
     * `/process/execute` up to its handler (dispatched without a socket, marked as no client's first request, with a
     * working directory that does not exist, so it answers 400 and starts nothing), then the command path
     * (process.warm). Runs nothing of the image.
     */
    async warm() {
      const request = new Request('http://agent/process/execute', {
        method: 'POST',
        headers: { authorization: `Bearer ${opts.token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ command: 'true', cwd: '/nonexistent/cove-warm-up' }),
      });
      warming.add(request);
      await app.request(request);
      await services.process.warm();
    },
    /** Kills every process the agent started. */
    async close() {
      await Promise.allSettled([
        services.process.close(),
        services.sessions.close(),
        services.pty.close(),
        services.git.close(),
        services.lsp.close(),
        services.watch.close(),
        services.ssh.close(),
        services.interpreter.close(),
        services.computerUse.close(),
      ]);
    },
  };
}
export type AgentApp = ReturnType<typeof createAgentApp>;
