import type { PortPreviewUrl } from '../wire/preview';
import { CLIENT_OPTIONS_HELP, expectPositionals, parseCommand, parseWholeNumber } from './args';
import { createClient } from './client';
import { loadConnection } from './config';
import { print, printHelp, printJson } from './output';

const PREVIEW_USAGE = `Usage: cove preview ID PORT

Prints the preview URL of a port of a sandbox and a token that opens it (this port of this sandbox only), and the
URL with the token in it, ready to open in a browser (the server turns it into a cookie for that host). Programs
send the token as the X-Cove-Preview-Token header instead.

${CLIENT_OPTIONS_HELP}`;

/** The preview URL with the token as Cove's query parameter (which the server strips before the app sees it). */
export function openableUrl(url: string, token: string): string {
  const u = new URL(url);
  u.searchParams.set('cove_preview_token', token);
  return u.toString();
}

/** `cove preview`: a port's preview URL and token. */
export async function runPreviewCommand(argv: string[]): Promise<void> {
  const { values, positionals } = parseCommand(argv, {});
  if (values.help) return printHelp(PREVIEW_USAGE, values.json);
  const [sandbox, portText] = expectPositionals(positionals, ['ID', 'PORT']);
  const port = parseWholeNumber(portText, 'PORT', 1, 65_535)!;
  const client = createClient(loadConnection(values));
  const link = await client.api<PortPreviewUrl>(`/sandbox/${encodeURIComponent(sandbox)}/ports/${port}/preview-url`);
  const openUrl = openableUrl(link.url, link.token);
  if (values.json) return printJson({ sandboxId: link.sandboxId, port, url: link.url, token: link.token, openUrl });
  print(`URL:    ${link.url}\nToken:  ${link.token}\nOpen:   ${openUrl}`);
}
