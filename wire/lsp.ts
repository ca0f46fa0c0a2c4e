import { z } from 'zod';

/**
 * LSP (code intelligence) wire shapes: the Daytona toolbox routes under `/lsp` (start, stop, did-open, did-close,
 * completions, document-symbols, workspacesymbols), Cove's additions (hover, definition, references, diagnostics,
 * servers) and the raw LSP WebSocket channel.
 *
 * Language ids are Daytona's: `typescript` and `javascript` share one typescript-language-server per project,
 * `python` runs pyright. A document `uri` is `file://` plus a path; a relative path (`file://src/a.ts`, which is what
 * the SDK sends for a relative path) is taken from the agent's work directory, like `pathToProject`.
 *
 * Raw channel, `GET /lsp/ws?languageId&pathToProject` (WebSocket): every text frame, in either direction, is one
 * JSON-RPC message (the LSP base protocol without its `Content-Length` headers). Each connection gets a language
 * server process of its own, started in the project directory, which the client initializes itself (`initialize`,
 * `initialized`, its own capabilities and document versions) — it never shares a process with the HTTP routes, whose
 * documents are read from disk while an editor's are its unsaved buffers. Closing the socket kills the server; when
 * the server exits the socket closes with 1000 (exit code 0) or 1011 and the reason.
 */

/** Language ids the SDK accepts (`LspLanguageId`). */
export const LSP_LANGUAGE_IDS = ['typescript', 'javascript', 'python'] as const;

const required = (name: string) => z.string({ error: `${name} is required` }).min(1, `${name} must not be empty`);

/** Any language id: unknown ones are refused by the service with UNSUPPORTED_LANGUAGE (400) and the supported list. */
const LspLanguageId = required('languageId').describe(`One of ${LSP_LANGUAGE_IDS.join(', ')}`);

/** `POST /lsp/start`, `POST /lsp/stop` (the SDK's LspServerRequest). */
export const LspServerRequest = z.object({
  languageId: LspLanguageId,
  pathToProject: required('pathToProject').describe('Project root; relative paths are taken from the work dir'),
});
export type LspServerRequest = z.infer<typeof LspServerRequest>;

/** `POST /lsp/did-open`, `POST /lsp/did-close` (the SDK's LspDocumentRequest); also the document-symbols query. */
export const LspDocumentRequest = LspServerRequest.extend({
  uri: required('uri').describe('file:// URI of the document; did-open reads its content from disk'),
});
export type LspDocumentRequest = z.infer<typeof LspDocumentRequest>;

const LspPosition = z.object({
  line: z.number({ error: 'line must be a number' }).int().min(0).describe('Zero-based line'),
  character: z.number({ error: 'character must be a number' }).int().min(0).describe('Zero-based UTF-16 offset'),
});
type LspPosition = z.infer<typeof LspPosition>;

export const LspRange = z.object({ start: LspPosition, end: LspPosition });
export type LspRange = z.infer<typeof LspRange>;

export const LspLocation = z.object({ uri: z.string(), range: LspRange });
export type LspLocation = z.infer<typeof LspLocation>;

/** A request about one position of a document: hover, definition. */
export const LspPositionRequest = LspDocumentRequest.extend({ position: LspPosition });
export type LspPositionRequest = z.infer<typeof LspPositionRequest>;

/** `POST /lsp/completions` (the SDK's LspCompletionParams). */
export const LspCompletionParams = LspPositionRequest.extend({
  context: z
    .object({ triggerKind: z.number().int(), triggerCharacter: z.string().optional() })
    .optional()
    .describe('LSP CompletionContext; invoked (triggerKind 1) by default'),
});
export type LspCompletionParams = z.infer<typeof LspCompletionParams>;

/** `POST /lsp/references`. */
export const LspReferencesRequest = LspPositionRequest.extend({
  includeDeclaration: z.boolean().optional().describe('Whether the declaration is listed too; true by default'),
});
export type LspReferencesRequest = z.infer<typeof LspReferencesRequest>;

/** `GET /lsp/workspacesymbols`. */
export const LspWorkspaceSymbolsQuery = LspServerRequest.extend({
  query: z.string().default('').describe('Part of the symbol name; empty lists everything the server offers'),
});
export type LspWorkspaceSymbolsQuery = z.infer<typeof LspWorkspaceSymbolsQuery>;

/** The SDK's CompletionItem: the LSP item's fields the SDK models (`documentation` is a string or MarkupContent). */
export const CompletionItem = z.object({
  label: z.string(),
  kind: z.number().int().optional(),
  detail: z.string().optional(),
  documentation: z.unknown().optional(),
  sortText: z.string().optional(),
  filterText: z.string().optional(),
  insertText: z.string().optional(),
});
export type CompletionItem = z.infer<typeof CompletionItem>;

export const CompletionList = z.object({ isIncomplete: z.boolean(), items: z.array(CompletionItem) });
export type CompletionList = z.infer<typeof CompletionList>;

/** The SDK's LspSymbol. Nested document symbols are flattened, parents first; `kind` is LSP's SymbolKind. */
export const LspSymbol = z.object({ name: z.string(), kind: z.number().int(), location: LspLocation });
export type LspSymbol = z.infer<typeof LspSymbol>;

export const LspSymbolList = z.array(LspSymbol);
export const LspLocationList = z.array(LspLocation);

export const MarkupContent = z.object({ kind: z.enum(['markdown', 'plaintext']), value: z.string() });
export type MarkupContent = z.infer<typeof MarkupContent>;

/** `POST /lsp/hover`. `contents` is null where the server has nothing to say; older MarkedString forms become markdown. */
export const LspHover = z.object({ contents: MarkupContent.nullable(), range: LspRange.optional() });
export type LspHover = z.infer<typeof LspHover>;

/** An LSP Diagnostic as the server published it (fields beyond these pass through). */
export const LspDiagnostic = z.looseObject({
  range: LspRange,
  severity: z.number().int().optional().describe('1 error, 2 warning, 3 information, 4 hint'),
  code: z.union([z.string(), z.number()]).optional(),
  source: z.string().optional(),
  message: z.string(),
});
export type LspDiagnostic = z.infer<typeof LspDiagnostic>;

/**
 * `GET /lsp/diagnostics?languageId&pathToProject&uri`: the latest diagnostics the server published for the document
 * (opened from disk if it was not). `fresh` is false when the server had not yet published for the current content
 * within the wait, and the list is then the previous one (or empty).
 */
export const LspDiagnostics = z.object({ uri: z.string(), fresh: z.boolean(), diagnostics: z.array(LspDiagnostic) });
export type LspDiagnostics = z.infer<typeof LspDiagnostics>;

/** States of a server the agent keeps for the HTTP routes. */
const LSP_SERVER_STATES = ['starting', 'running', 'idle', 'crashed'] as const;

/** `GET /lsp/servers`: the servers started through `POST /lsp/start`, and WebSocket channels' servers. */
export const LspServerInfo = z.object({
  languageId: z.string().describe('typescript (also serving javascript) or python'),
  pathToProject: z.string().describe('Absolute project directory'),
  state: z.enum(LSP_SERVER_STATES).describe('idle: shut down after inactivity, restarted by the next request'),
  pid: z.number().int().optional(),
  openDocuments: z.number().int(),
  channel: z.boolean().describe('A WebSocket channel\'s own server'),
  lastUsedAt: z.string().describe('ISO 8601'),
});
export type LspServerInfo = z.infer<typeof LspServerInfo>;
export const LspServerList = z.object({ servers: z.array(LspServerInfo) });
export type LspServerList = z.infer<typeof LspServerList>;

/** Close code of the raw channel when the language server exits: 1000 for exit code 0, 1011 otherwise. */
export const lspChannelCloseCode = (exitCode: number | null): 1000 | 1011 => (exitCode === 0 ? 1000 : 1011);
