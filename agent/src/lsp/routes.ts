import type { RawData, WebSocket } from 'ws';
import {
  CompletionList,
  LspCompletionParams,
  LspDiagnostics,
  LspDocumentRequest,
  LspHover,
  LspLocationList,
  LspPositionRequest,
  LspReferencesRequest,
  LspServerList,
  LspServerRequest,
  LspSymbolList,
  LspWorkspaceSymbolsQuery,
  lspChannelCloseCode,
} from '../../../wire/lsp';
import { guard } from '../../../lib/guard';
import type { Router } from '../../../lib/http/router';
import { boundaryError, closeReason, closeWithError } from '../boundary';
import type { LspChannel } from './channel';
import type { LspService } from './service';

function serveChannel(socket: WebSocket, lsp: LspService, query: LspServerRequest): void {
  let channel: LspChannel;
  try {
    channel = lsp.openChannel(query, {
      send: (message) => socket.readyState === socket.OPEN && socket.send(message),
      close: (exitCode, why) => socket.close(lspChannelCloseCode(exitCode), closeReason(why)),
    });
  } catch (err) {
    closeWithError(socket, boundaryError(err, 'LSP channel'));
    return;
  }
  socket.on(
    'message',
    guard(
      'LSP channel message',
      (data: RawData, isBinary: boolean) => {
        const text = Array.isArray(data) ? Buffer.concat(data).toString('utf8') : Buffer.from(data as ArrayBuffer).toString('utf8');
        if (!channel.input(text)) socket.close(1007, isBinary ? 'Send JSON-RPC messages as text frames' : 'Each frame must be one JSON-RPC message object');
      },
      (error) => closeWithError(socket, error),
    ),
  );
  socket.on('error', () => {}); // a protocol error: ws closes the socket, and 'close' follows
  socket.on('close', guard('LSP channel close', () => channel.close(), () => {}));
}

export function registerLspRoutes(router: Router, lsp: LspService): void {
  const tag = 'lsp';
  router.route(
    { method: 'post', path: '/lsp/start', tag, summary: 'Start the language server of a project (idempotent)', body: LspServerRequest, status: 204 },
    ({ body }) => lsp.start(body),
  );
  router.route(
    { method: 'post', path: '/lsp/stop', tag, summary: 'Stop the language server of a project', body: LspServerRequest, status: 204 },
    ({ body }) => lsp.stop(body),
  );
  router.route(
    { method: 'post', path: '/lsp/did-open', tag, summary: 'Open a document (its content is read from disk)', body: LspDocumentRequest, status: 204 },
    ({ body }) => lsp.didOpen(body),
  );
  router.route(
    { method: 'post', path: '/lsp/did-close', tag, summary: 'Close a document', body: LspDocumentRequest, status: 204 },
    ({ body }) => lsp.didClose(body),
  );
  router.route(
    { method: 'post', path: '/lsp/completions', tag, summary: 'Completions at a position', body: LspCompletionParams, response: CompletionList },
    ({ body }) => lsp.completions(body),
  );
  router.route(
    { method: 'get', path: '/lsp/document-symbols', tag, summary: 'Symbols of a document, flattened', query: LspDocumentRequest, response: LspSymbolList },
    ({ query }) => lsp.documentSymbols(query),
  );
  router.route(
    { method: 'get', path: '/lsp/workspacesymbols', tag, summary: 'Symbols of the project matching a query', query: LspWorkspaceSymbolsQuery, response: LspSymbolList },
    ({ query }) => lsp.workspaceSymbols(query),
  );
  router.route(
    { method: 'post', path: '/lsp/hover', tag, summary: 'Hover information (type, docs) at a position', body: LspPositionRequest, response: LspHover },
    ({ body }) => lsp.hover(body),
  );
  router.route(
    { method: 'post', path: '/lsp/definition', tag, summary: 'Where the symbol at a position is declared', body: LspPositionRequest, response: LspLocationList },
    ({ body }) => lsp.definition(body),
  );
  router.route(
    { method: 'post', path: '/lsp/references', tag, summary: 'Where the symbol at a position is used', body: LspReferencesRequest, response: LspLocationList },
    ({ body }) => lsp.references(body),
  );
  router.route(
    { method: 'get', path: '/lsp/diagnostics', tag, summary: 'Latest diagnostics of a document', query: LspDocumentRequest, response: LspDiagnostics },
    ({ query }) => lsp.diagnostics(query),
  );
  router.route({ method: 'get', path: '/lsp/servers', tag, summary: 'Language servers the agent runs', response: LspServerList }, () => ({
    servers: lsp.servers(),
  }));
  router.ws(
    { path: '/lsp/ws', tag, summary: 'Raw LSP: one JSON-RPC message per text frame, to a server process of its own', query: LspServerRequest },
    ({ socket, query }) => serveChannel(socket, lsp, query as LspServerRequest),
  );
}
