import type { UpstreamProxy } from './upstream';

/** What the egress services know of the sandbox at one address, looked up per connection and per DNS query. */
export interface EgressSandbox {
  id: string;
  /** Host patterns of its domain allow-list; null when it has none (its web traffic comes here for secrets only). */
  domains: string[] | null;
  /** Networks of its `networkAllowList`; null when it has none (no domain list either: everything is allowed). */
  cidrs: string[] | null;
  /** Secrets mounted in it, with their values: what replaces their placeholders on the way out. */
  secrets: Substitution[];
  /** Its `outboundProxyUrl`: what the egress proxy lets out goes through it. */
  upstream?: UpstreamProxy;
}

export interface Substitution {
  secretId: string;
  name: string;
  placeholder: string;
  value: string;
  hosts: string[];
}
