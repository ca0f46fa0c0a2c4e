import type { CompletionItem, CompletionList, LspHover, LspLocation, LspRange, LspSymbol, MarkupContent } from '../../../wire/lsp';

/**
 * Turns the several shapes LSP allows for one answer into the one shape of each Cove route. Servers pick freely
 * among them (arrays or lists, links or locations, hierarchical or flat symbols), clients should not have to.
 */

const ZERO_RANGE: LspRange = { start: { line: 0, character: 0 }, end: { line: 0, character: 0 } };

interface RawCompletionItem {
  label: string;
  kind?: number;
  detail?: string;
  documentation?: unknown;
  sortText?: string;
  filterText?: string;
  insertText?: string;
}

/** `CompletionItem[] | CompletionList | null` → the SDK's CompletionList, items keeping the fields the SDK models. */
export function toCompletionList(result: unknown): CompletionList {
  const list = Array.isArray(result)
    ? { isIncomplete: false, items: result as RawCompletionItem[] }
    : result && typeof result === 'object'
      ? (result as { isIncomplete?: boolean; items?: RawCompletionItem[] })
      : { isIncomplete: false, items: [] };
  return {
    isIncomplete: list.isIncomplete ?? false,
    items: (list.items ?? []).map((i) => {
      const item: CompletionItem = { label: i.label };
      if (i.kind !== undefined) item.kind = i.kind;
      if (i.detail !== undefined) item.detail = i.detail;
      if (i.documentation !== undefined) item.documentation = i.documentation;
      if (i.sortText !== undefined) item.sortText = i.sortText;
      if (i.filterText !== undefined) item.filterText = i.filterText;
      // Not textEdit.newText: an edit replaces a range (often the `.` before the cursor), insertText does not.
      if (i.insertText !== undefined) item.insertText = i.insertText;
      return item;
    }),
  };
}

interface RawSymbol {
  name: string;
  kind: number;
  location?: { uri: string; range?: LspRange };
  range?: LspRange;
  selectionRange?: LspRange;
  children?: RawSymbol[];
}

/**
 * `DocumentSymbol[] | SymbolInformation[] | WorkspaceSymbol[] | null` → flat LspSymbols, parents before children.
 * Hierarchical symbols carry no URI, so `uri` (the document's) is used; a workspace symbol without a range gets the
 * file's start.
 */
export function toSymbols(result: unknown, uri?: string): LspSymbol[] {
  const out: LspSymbol[] = [];
  const visit = (s: RawSymbol) => {
    const location = s.location
      ? { uri: s.location.uri, range: s.location.range ?? ZERO_RANGE }
      : { uri: uri ?? '', range: s.range ?? ZERO_RANGE };
    out.push({ name: s.name, kind: s.kind, location });
    for (const child of s.children ?? []) visit(child);
  };
  if (Array.isArray(result)) for (const s of result as RawSymbol[]) visit(s);
  return out;
}

interface RawLocation {
  uri?: string;
  range?: LspRange;
  targetUri?: string;
  targetSelectionRange?: LspRange;
  targetRange?: LspRange;
}

/** `Location | Location[] | LocationLink[] | null` → Locations (a link becomes its target's name range). */
export function toLocations(result: unknown): LspLocation[] {
  const items = (Array.isArray(result) ? result : result ? [result] : []) as RawLocation[];
  return items.map((l) =>
    l.targetUri !== undefined
      ? { uri: l.targetUri, range: l.targetSelectionRange ?? l.targetRange ?? ZERO_RANGE }
      : { uri: l.uri ?? '', range: l.range ?? ZERO_RANGE },
  );
}

type MarkedString = string | { language: string; value: string };

const fromMarked = (m: MarkedString): string => (typeof m === 'string' ? m : '```' + m.language + '\n' + m.value + '\n```');

/** `Hover | null` → contents as one MarkupContent (MarkedStrings, deprecated but still sent, become markdown). */
export function toHover(result: unknown): LspHover {
  if (!result || typeof result !== 'object') return { contents: null };
  const { contents, range } = result as { contents: MarkupContent | MarkedString | MarkedString[]; range?: LspRange };
  let markup: MarkupContent | null;
  if (Array.isArray(contents)) markup = contents.length ? { kind: 'markdown', value: contents.map(fromMarked).join('\n\n') } : null;
  else if (typeof contents === 'object' && contents !== null && 'kind' in contents) markup = contents;
  else if (contents !== undefined && contents !== null) markup = { kind: 'markdown', value: fromMarked(contents) };
  else markup = null;
  if (markup && markup.value === '') markup = null;
  return range ? { contents: markup, range } : { contents: markup };
}
