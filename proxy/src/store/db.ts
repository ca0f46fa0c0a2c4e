import Database from 'better-sqlite3';
import { chmodSync, mkdirSync } from 'node:fs';
import path from 'node:path';

export type Db = Database.Database;

/**
 * Statements by their SQL text, each prepared once: for statements whose text is built from the columns a call
 * writes (preparing costs more than running a small statement). The texts come from code, so the map stays small.
 */
export function statementCache(db: Db): <P extends unknown[] = unknown[], R = unknown>(sql: string) => Database.Statement<P, R> {
  const prepared = new Map<string, Database.Statement>();
  return <P extends unknown[] = unknown[], R = unknown>(sql: string) => {
    let stmt = prepared.get(sql);
    if (!stmt) {
      stmt = db.prepare(sql);
      prepared.set(sql, stmt);
    }
    return stmt as unknown as Database.Statement<P, R>;
  };
}

/**
 * Schema migrations, applied in order; `PRAGMA user_version` records how many ran. Append, never edit: a data dir
 * written by an older Cove is upgraded in place.
 */
const MIGRATIONS: (string | ((db: Db) => void))[] = [
  `CREATE TABLE api_keys (
     id TEXT PRIMARY KEY,
     name TEXT NOT NULL,
     hash TEXT NOT NULL UNIQUE,
     prefix TEXT NOT NULL,
     admin INTEGER NOT NULL DEFAULT 0,
     created_at TEXT NOT NULL,
     last_used_at TEXT,
     revoked_at TEXT
   );
   CREATE TABLE sandboxes (
     id TEXT PRIMARY KEY,
     name TEXT NOT NULL UNIQUE,
     owner_key_id TEXT NOT NULL,
     state TEXT NOT NULL,
     image TEXT NOT NULL,
     user TEXT NOT NULL,
     env TEXT NOT NULL,
     labels TEXT NOT NULL,
     public INTEGER NOT NULL DEFAULT 0,
     cpu REAL NOT NULL,
     memory REAL NOT NULL,
     disk REAL NOT NULL,
     container_id TEXT,
     agent_token TEXT NOT NULL,
     ip TEXT,
     error_reason TEXT,
     auto_stop_interval INTEGER NOT NULL DEFAULT 0,
     auto_archive_interval INTEGER NOT NULL DEFAULT 0,
     auto_delete_interval INTEGER NOT NULL DEFAULT -1,
     created_at TEXT NOT NULL,
     updated_at TEXT NOT NULL,
     last_activity_at TEXT NOT NULL
   );
   CREATE INDEX sandboxes_owner ON sandboxes(owner_key_id);
   CREATE TABLE pool_members (
     container_id TEXT PRIMARY KEY,
     pool_key TEXT NOT NULL,
     agent_token TEXT NOT NULL,
     ip TEXT NOT NULL,
     created_at TEXT NOT NULL
   );
   CREATE INDEX pool_members_key ON pool_members(pool_key);`,
  `CREATE TABLE preview_tokens (
     hash TEXT PRIMARY KEY,
     sandbox_id TEXT NOT NULL,
     port INTEGER NOT NULL,
     signed INTEGER NOT NULL DEFAULT 0,
     created_at TEXT NOT NULL,
     expires_at TEXT,
     revoked_at TEXT
   );
   CREATE INDEX preview_tokens_sandbox ON preview_tokens(sandbox_id);`,
  `CREATE TABLE ssh_access (
     id TEXT PRIMARY KEY,
     hash TEXT NOT NULL UNIQUE,
     sandbox_id TEXT NOT NULL,
     created_at TEXT NOT NULL,
     updated_at TEXT NOT NULL,
     expires_at TEXT NOT NULL,
     revoked_at TEXT
   );
   CREATE INDEX ssh_access_sandbox ON ssh_access(sandbox_id);`,
  // Sandbox names are unique per API key, not across keys (a 409 must not reveal another key's names). SQLite cannot
  // drop a column's UNIQUE, so the table is rebuilt with the same columns and its rows copied.
  `CREATE TABLE sandboxes_new (
     id TEXT PRIMARY KEY,
     name TEXT NOT NULL,
     owner_key_id TEXT NOT NULL,
     state TEXT NOT NULL,
     image TEXT NOT NULL,
     user TEXT NOT NULL,
     env TEXT NOT NULL,
     labels TEXT NOT NULL,
     public INTEGER NOT NULL DEFAULT 0,
     cpu REAL NOT NULL,
     memory REAL NOT NULL,
     disk REAL NOT NULL,
     container_id TEXT,
     agent_token TEXT NOT NULL,
     ip TEXT,
     error_reason TEXT,
     auto_stop_interval INTEGER NOT NULL DEFAULT 0,
     auto_archive_interval INTEGER NOT NULL DEFAULT 0,
     auto_delete_interval INTEGER NOT NULL DEFAULT -1,
     created_at TEXT NOT NULL,
     updated_at TEXT NOT NULL,
     last_activity_at TEXT NOT NULL,
     UNIQUE (owner_key_id, name)
   );
   INSERT INTO sandboxes_new (id, name, owner_key_id, state, image, user, env, labels, public, cpu, memory, disk,
       container_id, agent_token, ip, error_reason, auto_stop_interval, auto_archive_interval, auto_delete_interval,
       created_at, updated_at, last_activity_at)
     SELECT id, name, owner_key_id, state, image, user, env, labels, public, cpu, memory, disk,
       container_id, agent_token, ip, error_reason, auto_stop_interval, auto_archive_interval, auto_delete_interval,
       created_at, updated_at, last_activity_at
     FROM sandboxes;
   DROP TABLE sandboxes;
   ALTER TABLE sandboxes_new RENAME TO sandboxes;
   CREATE INDEX sandboxes_name ON sandboxes(name);`,
  // The secret of each sandbox's signed file URLs (kept as it is: the server signs and verifies with it).
  `CREATE TABLE IF NOT EXISTS signing_keys (
     sandbox_id TEXT PRIMARY KEY,
     key TEXT NOT NULL,
     created_at TEXT NOT NULL
   );`,
  // Each sandbox's egress policy (networkBlockAll, networkAllowList), enforced by the host firewall.
  `ALTER TABLE sandboxes ADD COLUMN network_block_all INTEGER NOT NULL DEFAULT 0;
   ALTER TABLE sandboxes ADD COLUMN network_allow_list TEXT;`,
  // Each API key's own limits (quotas/): a JSON object of limit name to a number, or null for no limit; a limit not
  // named (or a key without a row) takes the server's default.
  `CREATE TABLE IF NOT EXISTS api_key_quotas (
     key_id TEXT PRIMARY KEY,
     limits TEXT NOT NULL
   );`,
  // Lifecycle: auto-pause after idle minutes, a ttl's time of destruction, and when the state last changed (auto-delete
  // and auto-archive count from the stop). Safe to run again (api.test re-runs later migrations on an older schema).
  `ALTER TABLE sandboxes ADD COLUMN auto_pause_interval INTEGER NOT NULL DEFAULT 0;
   ALTER TABLE sandboxes ADD COLUMN auto_destroy_at TEXT;
   ALTER TABLE sandboxes ADD COLUMN state_changed_at TEXT;`,
  // Volumes (volumes/): named Docker volumes, names unique per API key; and which sandbox mounts which, where (rows of
  // a deleted sandbox go with it). Safe to run again.
  `CREATE TABLE IF NOT EXISTS volumes (
     id TEXT PRIMARY KEY,
     name TEXT NOT NULL,
     owner_key_id TEXT NOT NULL,
     state TEXT NOT NULL,
     error_reason TEXT,
     created_at TEXT NOT NULL,
     updated_at TEXT NOT NULL,
     last_used_at TEXT,
     UNIQUE (owner_key_id, name)
   );
   CREATE TABLE IF NOT EXISTS sandbox_volumes (
     sandbox_id TEXT NOT NULL,
     position INTEGER NOT NULL,
     volume_id TEXT NOT NULL,
     mount_path TEXT NOT NULL,
     PRIMARY KEY (sandbox_id, position)
   );
   CREATE INDEX IF NOT EXISTS sandbox_volumes_volume ON sandbox_volumes(volume_id);`,
  // Snapshots (snapshots/catalog.ts): named images per API key. owns_image: Cove pulled or committed the image, so
  // deleting the snapshot removes it; a row in state 'removing' waits for its image to be unused, and frees its name.
  `CREATE TABLE IF NOT EXISTS snapshots (
     id TEXT PRIMARY KEY,
     name TEXT NOT NULL,
     owner_key_id TEXT NOT NULL,
     image TEXT NOT NULL,
     state TEXT NOT NULL,
     owns_image INTEGER NOT NULL DEFAULT 0,
     size REAL,
     entrypoint TEXT,
     error_reason TEXT,
     source_sandbox_id TEXT,
     logs TEXT NOT NULL DEFAULT '',
     created_at TEXT NOT NULL,
     updated_at TEXT NOT NULL,
     last_used_at TEXT
   );
   CREATE UNIQUE INDEX IF NOT EXISTS snapshots_owner_name ON snapshots(owner_key_id, name) WHERE state != 'removing';
   CREATE INDEX IF NOT EXISTS snapshots_name ON snapshots(name);`,
  // Registries (registries/): credentials per API key for the engine's pulls; the password is stored for the engine
  // (this file is its owner's only) and never answered. private_images: keys that pulled an image with their own
  // credentials or proved since that theirs can; sandbox_pulls: images pulled for creates, removed once unused.
  `CREATE TABLE IF NOT EXISTS registries (
     id TEXT PRIMARY KEY,
     name TEXT NOT NULL,
     owner_key_id TEXT NOT NULL,
     url TEXT NOT NULL,
     username TEXT NOT NULL,
     password TEXT NOT NULL,
     project TEXT NOT NULL DEFAULT '',
     registry_type TEXT NOT NULL,
     is_default INTEGER NOT NULL DEFAULT 0,
     created_at TEXT NOT NULL,
     updated_at TEXT NOT NULL
   );
   CREATE INDEX IF NOT EXISTS registries_owner ON registries(owner_key_id);
   CREATE TABLE IF NOT EXISTS private_images (
     image TEXT NOT NULL,
     key_id TEXT NOT NULL,
     PRIMARY KEY (image, key_id)
   );
   CREATE TABLE IF NOT EXISTS sandbox_pulls (image TEXT PRIMARY KEY);`,
  // A snapshot's resources and the entrypoint given when it was made (sandboxes from it get them); a sandbox's
  // snapshot name (its DTO's `snapshot`) and the entrypoint it runs instead of its image's; the account a pool member
  // runs user code as.
  (db) =>
    addColumns(db, {
      snapshots: ['cpu REAL', 'memory REAL', 'disk REAL', 'run_entrypoint TEXT'],
      sandboxes: ['snapshot TEXT', 'entrypoint TEXT'],
      pool_members: ['user TEXT'],
    }),
  // Images this server built from Dockerfiles (`cove-build:…`), and the API key each is for: recorded here rather than
  // in image labels, which the engine's builder adds as one more step of every build.
  `CREATE TABLE IF NOT EXISTS built_images (image TEXT PRIMARY KEY, owner_key_id TEXT NOT NULL, created_at TEXT NOT NULL);`,
  // The build logs of sandboxes created from a Dockerfile (`create({ image: Image… })`), once the build and start
  // settled: a row per such sandbox (empty while it builds), gone with it.
  `CREATE TABLE IF NOT EXISTS sandbox_build_logs (sandbox_id TEXT PRIMARY KEY, logs TEXT NOT NULL);`,
  // Egress by name: a sandbox's domain allow-list (enforced by the egress proxy) and the outbound proxy its
  // environment names.
  (db) => addColumns(db, { sandboxes: ['domain_allow_list TEXT', 'outbound_proxy_url TEXT'] }),
  // Secrets (secrets/): values sealed with the server's secrets key; which sandbox mounts which, under what variable.
  `CREATE TABLE IF NOT EXISTS secrets (
     id TEXT PRIMARY KEY,
     name TEXT NOT NULL,
     owner_key_id TEXT NOT NULL,
     description TEXT,
     hosts TEXT NOT NULL,
     value TEXT NOT NULL,
     created_at TEXT NOT NULL,
     updated_at TEXT NOT NULL,
     UNIQUE (owner_key_id, name)
   );
   CREATE TABLE IF NOT EXISTS sandbox_secrets (
     sandbox_id TEXT NOT NULL,
     env_name TEXT NOT NULL,
     secret_id TEXT NOT NULL REFERENCES secrets(id),
     PRIMARY KEY (sandbox_id, env_name)
   );
   CREATE INDEX IF NOT EXISTS sandbox_secrets_by_secret ON sandbox_secrets (secret_id);`,
];

/** Adds the columns a table lacks (SQLite has no ADD COLUMN IF NOT EXISTS): re-runnable, as migrations must be. */
function addColumns(db: Db, columns: Record<string, string[]>): void {
  for (const [table, defs] of Object.entries(columns)) {
    const have = new Set((db.prepare(`PRAGMA table_info(${table})`).all() as { name: string }[]).map((c) => c.name));
    for (const def of defs) if (!have.has(def.split(' ')[0])) db.exec(`ALTER TABLE ${table} ADD COLUMN ${def}`);
  }
}

/** Opens (creating if needed) Cove's SQLite database in `dataDir` and brings its schema up to date. */
export function openDatabase(dataDir: string): Db {
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const file = path.join(dataDir, 'cove.db');
  const db = new Database(file);
  // The database holds agent secrets: readable by its owner only.
  chmodSync(file, 0o600);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.pragma('busy_timeout = 5000');
  const version = () => db.pragma('user_version', { simple: true }) as number;
  if (version() < MIGRATIONS.length) {
    // The version is read again under the write lock: `cove keys` may open the database while the server starts.
    db.transaction(() => {
      for (const step of MIGRATIONS.slice(version())) {
        if (typeof step === 'string') db.exec(step);
        else step(db);
      }
      db.pragma(`user_version = ${MIGRATIONS.length}`);
    }).immediate();
  }
  return db;
}

/** Current time as stored: ISO 8601 in UTC. */
export const now = (): string => new Date().toISOString();
