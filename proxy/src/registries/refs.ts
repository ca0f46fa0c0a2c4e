/** Where a registry or an image lives: a registry host (`host[:port]`, lowercase) and a repository path under it. */
export interface RegistryPlace {
  host: string;
  path: string;
}

/** Docker Hub's names: images without a registry host are its, and registries of these hosts are the same one. */
const DOCKER_HUB = 'docker.io';
const DOCKER_HUB_ALIASES = new Set([DOCKER_HUB, 'index.docker.io', 'registry-1.docker.io', 'registry.hub.docker.com']);
/** The address the engine expects in the credentials of Docker Hub. */
const DOCKER_HUB_SERVER = 'https://index.docker.io/v1/';

const LABEL = '[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?';
const HOST = new RegExp(`^(?:${LABEL}(?:\\.${LABEL})*|\\[[0-9a-f:.]+\\])(?::([0-9]{1,5}))?$`);
/** One path component of a repository, as Docker's reference grammar has it. */
const COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;

const hubAlias = (host: string): string => (DOCKER_HUB_ALIASES.has(host) ? DOCKER_HUB : host);

function pathProblem(path: string, what: string): string | undefined {
  for (const part of path.split('/')) {
    if (!COMPONENT.test(part)) return `${what} must be path components of lowercase letters, digits and single separators (".", "_", "-"), not ${JSON.stringify(part.slice(0, 100))}`;
  }
  return undefined;
}

/**
 * A registry's URL read as `host[:port][/path]` (an `http://` or `https://` prefix and a final `/` are dropped), or
 * the reason it is not one. Docker Hub's several host names become `docker.io`.
 */
export function parseRegistryUrl(url: string): RegistryPlace | { problem: string } {
  let rest = url.trim();
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(rest);
  if (scheme) {
    if (!/^https?$/i.test(scheme[1])) return { problem: `the scheme must be http or https, not ${scheme[1].slice(0, 20)}` };
    rest = rest.slice(scheme[0].length);
  }
  rest = rest.replace(/\/+$/, '');
  if (!rest) return { problem: 'it needs a host, as in registry.example.com or 127.0.0.1:5000' };
  if (/[?#@\s]/.test(rest)) return { problem: 'it must be host[:port] and an optional path, without user, query or fragment' };
  const slash = rest.indexOf('/');
  const hostPort = (slash < 0 ? rest : rest.slice(0, slash)).toLowerCase();
  const path = slash < 0 ? '' : rest.slice(slash + 1);
  const host = HOST.exec(hostPort);
  if (!host) return { problem: `${JSON.stringify(hostPort.slice(0, 100))} is not a host[:port]` };
  if (host[1] !== undefined && (Number(host[1]) < 1 || Number(host[1]) > 65535)) return { problem: `port ${host[1]} is not between 1 and 65535` };
  const bad = path ? pathProblem(path, 'its path') : undefined;
  if (bad) return { problem: bad };
  return { host: hubAlias(hostPort), path };
}

/** The reason a registry's project is not a repository path, or undefined when it is one (or empty). */
export function projectProblem(project: string): string | undefined {
  return project ? pathProblem(project, 'it') : undefined;
}

/**
 * The registry host and repository path of an image reference, as the engine reads it: the first component is a host
 * when it has a "." or a ":" or is `localhost`; otherwise the image is Docker Hub's (`library/` for one component).
 */
export function placeOfImage(ref: string): RegistryPlace {
  const name = ref.replace(/@.*$/, '');
  const slash = name.indexOf('/');
  const first = slash < 0 ? '' : name.slice(0, slash);
  const hasHost = first !== '' && (first.includes('.') || first.includes(':') || first === 'localhost');
  let path = hasHost ? name.slice(slash + 1) : name;
  const colon = path.lastIndexOf(':');
  if (colon > path.lastIndexOf('/')) path = path.slice(0, colon);
  if (!hasHost) return { host: DOCKER_HUB, path: path.includes('/') ? path : `library/${path}` };
  return { host: hubAlias(first.toLowerCase()), path };
}

/**
 * How well a registry (its host and its path prefix, the URL's path and the project) covers an image: -1 when not at
 * all, else the length of the prefix (longer is more specific).
 */
export function coverage(registry: RegistryPlace, image: RegistryPlace): number {
  if (registry.host !== image.host) return -1;
  if (!registry.path) return 0;
  return image.path === registry.path || image.path.startsWith(`${registry.path}/`) ? registry.path.length : -1;
}

/** The `serveraddress` of credentials for a registry host, as the engine expects it. */
export const serverAddress = (host: string): string => (host === DOCKER_HUB ? DOCKER_HUB_SERVER : host);
