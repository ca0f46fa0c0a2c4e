import type { KeysService } from '../auth/api-keys';
import type { SshAccess } from '../auth/ssh-tokens';
import type { PreviewTokens } from '../auth/preview-tokens';

/** Header names that carry a preview token: Daytona's, and Cove's own. Never forwarded. */
export const TOKEN_HEADERS = ['x-daytona-preview-token', 'x-cove-preview-token'];
/** Query parameters that carry a preview token (compared decoded, any case when removing). Never forwarded. */
export const TOKEN_PARAMS = ['DAYTONA_SANDBOX_AUTH_KEY', 'cove_preview_token'];
const TOKEN_PARAMS_LOWER = new Set(TOKEN_PARAMS.map((p) => p.toLowerCase()));
/** The preview cookie: `__Host-` prefixed over TLS (a sibling preview host cannot set or shadow it), plain otherwise. */
export const PREVIEW_COOKIE = 'cove_preview';
export const PREVIEW_COOKIE_SECURE = `__Host-${PREVIEW_COOKIE}`;
const COOKIE_NAMES = new Set([PREVIEW_COOKIE, PREVIEW_COOKIE_SECURE].map((n) => n.toLowerCase()));

/** Whether a query parameter (by its decoded name) is one of ours. */
export function isTokenParam(name: string): boolean {
  return TOKEN_PARAMS_LOWER.has(name.trim().toLowerCase());
}

/** Whether a cookie name is ours (either form). */
export function isPreviewCookie(name: string): boolean {
  return COOKIE_NAMES.has(name.trim().toLowerCase());
}

/**
 * Recognises Cove's own secrets — API keys, preview tokens, SSH access tokens, live or not — in what a caller sent,
 * so that nothing forwarded to a sandbox carries one, however the request was admitted.
 */
export function createCredentialCheck(deps: { keys: KeysService; tokens: PreviewTokens; ssh?: SshAccess }) {
  const isSshToken = (t: string): boolean => {
    if (!deps.ssh) return false;
    const checked = deps.ssh.check(t);
    return 'grant' in checked || checked.reason !== 'unknown';
  };
  const isSecret = (text: string): boolean => {
    const t = text.trim();
    if (!t) return false;
    return deps.keys.isKnown(t) || deps.tokens.isKnown(t) || isSshToken(t);
  };
  return {
    isSecret,
    /**
     * Whether an Authorization header carries one of our secrets: as the credential of any scheme (`Bearer K`,
     * `token K`, a bare `K`), or as the user or password of Basic.
     */
    authorizationCarriesSecret(value: string): boolean {
      const m = /^\s*(\S+)(?:\s+(.*))?$/s.exec(value);
      if (!m) return false;
      const [, first, rest] = m;
      if (isSecret(first) || (rest !== undefined && isSecret(rest))) return true;
      if (rest !== undefined && first.toLowerCase() === 'basic') {
        const decoded = Buffer.from(rest.trim(), 'base64').toString('utf8');
        const colon = decoded.indexOf(':');
        return colon >= 0 ? isSecret(decoded.slice(0, colon)) || isSecret(decoded.slice(colon + 1)) : isSecret(decoded);
      }
      return false;
    },
  };
}
export type CredentialCheck = ReturnType<typeof createCredentialCheck>;
