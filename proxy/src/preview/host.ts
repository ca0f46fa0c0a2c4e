/** A preview host, `{port}-{sandboxId}.{domain}` or, for signed URLs, `{port}-{token}.{domain}`. */
export interface PreviewHost {
  port: number;
  /** A sandbox id (a UUID) or a signed token (32 lowercase letters and digits). */
  label: string;
  signed: boolean;
}

/** Parses the Host header against the preview domain; undefined when it is not a preview host (the API). */
export function parsePreviewHost(host: string | undefined, domain: string): PreviewHost | undefined {
  if (!host) return undefined;
  const name = host.toLowerCase().replace(/:\d+$/, '');
  const suffix = `.${domain.toLowerCase()}`;
  if (!name.endsWith(suffix)) return undefined;
  const m = /^(\d{1,5})-([a-z0-9-]+)$/.exec(name.slice(0, -suffix.length));
  if (!m) return undefined;
  const port = Number(m[1]);
  if (port < 1 || port > 65535) return undefined;
  const signed = /^[a-z0-9]{32}$/.test(m[2]);
  const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(m[2]);
  if (!signed && !uuid) return undefined;
  return { port, label: m[2], signed };
}

/** `{scheme}://{port}-{label}.{domain}[:{port}]` for a server whose public URL is `publicUrl`. */
export function previewUrl(publicUrl: string, domain: string, port: number, label: string): string {
  const base = new URL(publicUrl);
  return `${base.protocol}//${port}-${label}.${domain}${base.port ? `:${base.port}` : ''}`;
}
