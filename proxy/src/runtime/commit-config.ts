import { LABEL_COMMITTED_BY, LABEL_FORK, LABEL_SNAPSHOT_OWNER } from './types';

/** The parts of an image's or a container's configuration read here, as the engine's inspect answers them. */
interface InspectedConfig {
  User?: string;
  Env?: string[] | null;
  Entrypoint?: string | string[] | null;
  Cmd?: string | string[] | null;
  WorkingDir?: string;
  Labels?: Record<string, string> | null;
  ExposedPorts?: Record<string, object> | null;
  Volumes?: Record<string, object> | null;
  StopSignal?: string;
  Healthcheck?: object | null;
  Shell?: string[] | null;
  OnBuild?: string[] | null;
}

/** The image configuration `POST /commit` is given. */
interface CommitConfig {
  User: string;
  Env: string[];
  Entrypoint: string[];
  Cmd: string[];
  WorkingDir: string;
  Labels: Record<string, string>;
  ExposedPorts?: Record<string, object>;
  Volumes?: Record<string, object>;
  StopSignal?: string;
  Healthcheck?: object;
  Shell?: string[];
  OnBuild?: string[];
}

/** Labels that say what a committed image is and whose: an image committed from a container of one does not inherit them. */
const COMMIT_LABELS: readonly string[] = [LABEL_FORK, LABEL_SNAPSHOT_OWNER, LABEL_COMMITTED_BY];

const list = (v: string | string[] | null | undefined): string[] => (v === null || v === undefined ? [] : typeof v === 'string' ? [v] : v);

/**
 * The configuration of an image committed from a sandbox's container: that of the image the container was made from
 * (user, working directory, entrypoint, command, ports, volumes, labels), never what Cove gave the container (the
 * agent as entrypoint, root, Cove's labels), so a sandbox made from the new image starts as one made from the old
 * one. The environment is the container's: the image's with the variables the sandbox was created with on top, what
 * its processes had (Docker's commit adds a container's variables back to any environment it is given, so the
 * image's alone cannot be had).
 *
 * Docker merges the container's configuration into what it is sent, so every field it would fill from the container
 * is set here. Labels the container has and the image lacks (dev.cove.managed, dev.cove.sandbox, …: Cove's own) cannot
 * be dropped and are blanked, as containers blank the dev.cove.* labels of their images; `labels` goes on top.
 */
export function commitConfig(image: InspectedConfig | undefined, container: InspectedConfig, labels: Record<string, string>): CommitConfig {
  const base = image ?? {};
  const merged: Record<string, string> = {};
  for (const key of Object.keys(container.Labels ?? {})) merged[key] = '';
  for (const [key, value] of Object.entries(base.Labels ?? {})) merged[key] = COMMIT_LABELS.includes(key) ? '' : value;
  Object.assign(merged, labels);
  return {
    // Empty would become the container's `0:0`: root, which is what an image without USER runs as anyway.
    User: base.User || '0:0',
    Env: container.Env ?? base.Env ?? [],
    // Empty lists, never null: Docker fills a missing entrypoint with the container's (Cove's agent).
    Entrypoint: list(base.Entrypoint),
    Cmd: list(base.Cmd),
    WorkingDir: base.WorkingDir ?? '',
    Labels: merged,
    ...(base.ExposedPorts ? { ExposedPorts: base.ExposedPorts } : {}),
    ...(base.Volumes ? { Volumes: base.Volumes } : {}),
    ...(base.StopSignal ? { StopSignal: base.StopSignal } : {}),
    ...(base.Healthcheck ? { Healthcheck: base.Healthcheck } : {}),
    ...(base.Shell ? { Shell: base.Shell } : {}),
    ...(base.OnBuild ? { OnBuild: base.OnBuild } : {}),
  };
}
