import { Envs } from './common';
import { z } from 'zod';

// ── Control API (Daytona-compatible) ────────────────────────────────────────────────────────────────────────────

/** `createSshAccess(minutes?)`: a token that is the SSH user name; `sshCommand` is ready to paste. */
export const SshAccessDto = z.object({
  id: z.string(),
  sandboxId: z.string(),
  token: z.string(),
  expiresAt: z.string(),
  createdAt: z.string(),
  updatedAt: z.string(),
  /** `ssh -p PORT TOKEN@HOST` */
  sshCommand: z.string(),
});
export type SshAccessDto = z.infer<typeof SshAccessDto>;

/** Lifetime in minutes: 1 minute to 30 days, 60 by default (Daytona's default). */
export const CreateSshAccessQuery = z.object({
  expiresInMinutes: z.coerce.number().int().min(1).max(30 * 24 * 60).optional(),
});

/** Revokes one token of the sandbox, or every token of it when `token` is absent (Daytona's semantics). */
export const RevokeSshAccessQuery = z.object({ token: z.string().min(1).optional() });

export const ValidateSshAccessQuery = z.object({ token: z.string().min(1) });

/** `validateSshAccess(token)`. `sandboxId` is empty when the token is not valid (or not the caller's). */
export const SshAccessValidationDto = z.object({ valid: z.boolean(), sandboxId: z.string() });
export type SshAccessValidationDto = z.infer<typeof SshAccessValidationDto>;

// ── Gateway ↔ agent ──────────────────────────────────────────────────────────────────────────────────────────────
//
// The proxy's SSH gateway terminates the client's SSH connection; each SSH channel becomes one raw HTTP upgrade
// (`Upgrade: cove-ssh`) to the agent, authenticated by the agent token like every agent route:
//   GET /ssh/session          a session channel (shell, exec, sftp subsystem), framed as below
//   GET /ssh/connect?host&port a direct-tcpip channel: raw bytes to host:port as seen from inside the sandbox
//   GET /ssh/listen?address&port a tcpip-forward: the agent listens; JSON lines announce listening and connections
//   GET /ssh/accept/{id}      takes one announced connection: raw bytes

/** The Upgrade token of the gateway's tunnels to the agent. */
export const SSH_TUNNEL_PROTOCOL = 'cove-ssh';

/**
 * Frame types of a session tunnel. A frame is `type (u8) | length (u32 BE) | payload`. Byte streams (stdin, stdout,
 * stderr) carry raw bytes; the others carry JSON described by the schemas below.
 */
export const FRAME = {
  /** gateway → agent, first frame, SshSessionStart */
  start: 1,
  stdin: 2,
  /** gateway → agent: the client sent EOF; no payload */
  stdinEof: 3,
  /** gateway → agent: SshResize */
  resize: 4,
  /** gateway → agent: SshSignal */
  signal: 5,
  stdout: 10,
  stderr: 11,
  /** agent → gateway, last frame: SshExit */
  exit: 12,
  /** agent → gateway: the session could not start (SshFailure); the agent closes the tunnel after it */
  failure: 13,
} as const;
export type FrameType = (typeof FRAME)[keyof typeof FRAME];

/** Largest control frame either side accepts (byte-stream frames are passed through in pieces, whatever their size). */
export const MAX_CONTROL_FRAME = 256 * 1024;

const SshPty = z.object({
  term: z.string().max(256),
  cols: z.number().int().min(1).max(10_000),
  rows: z.number().int().min(1).max(10_000),
});

/** What a session runs: the login shell, a command (`sh -c`), or the SFTP server; with or without a terminal. */
export const SshSessionStart = z.object({
  kind: z.enum(['shell', 'exec', 'sftp']),
  command: z.string().optional(),
  pty: SshPty.optional(),
  /** Variables the client sent (env requests), over the sandbox's base environment. */
  env: Envs.default({}),
  /** The SSH client's address, for SSH_CONNECTION / SSH_CLIENT. */
  client: z.object({ address: z.string(), port: z.number().int() }).optional(),
});
export type SshSessionStart = z.input<typeof SshSessionStart>;

export const SshResize = z.object({ cols: z.number().int().min(1).max(10_000), rows: z.number().int().min(1).max(10_000) });
export type SshResize = z.infer<typeof SshResize>;

/** SSH signal names are POSIX names without the SIG prefix (RFC 4254 §6.9). */
export const SshSignal = z.object({ signal: z.enum(['ABRT', 'ALRM', 'FPE', 'HUP', 'ILL', 'INT', 'KILL', 'PIPE', 'QUIT', 'SEGV', 'TERM', 'USR1', 'USR2']) });
export type SshSignal = z.infer<typeof SshSignal>;

/** How the session ended: an exit code, or a signal name without the SIG prefix. */
export const SshExit = z.union([z.object({ code: z.number().int() }), z.object({ signal: z.string(), coreDumped: z.boolean() })]);
export type SshExit = z.infer<typeof SshExit>;

export const SshFailure = z.object({ message: z.string() });
export type SshFailure = z.infer<typeof SshFailure>;

/** JSON lines the agent writes on a `/ssh/listen` tunnel. */
export const SshListenEvent = z.discriminatedUnion('type', [
  z.object({ type: z.literal('listening'), port: z.number().int() }),
  z.object({ type: z.literal('connection'), id: z.string(), remoteAddress: z.string(), remotePort: z.number().int() }),
]);
export type SshListenEvent = z.infer<typeof SshListenEvent>;

/** Query of `/ssh/connect`. */
export const SshConnectQuery = z.object({ host: z.string().min(1).max(255), port: z.coerce.number().int().min(1).max(65535) });
/** Query of `/ssh/listen`: `address` as the client sent it ('' or '*' is every address, 'localhost' loopback). */
export const SshListenQuery = z.object({ address: z.string().max(255).default(''), port: z.coerce.number().int().min(0).max(65535) });

/** The 5-byte header of a frame; write it, then the payload (corked together, so no copy is made). */
export function frameHeader(type: FrameType, length: number): Buffer {
  const header = Buffer.allocUnsafe(5);
  header[0] = type;
  header.writeUInt32BE(length, 1);
  return header;
}

/** A JSON frame, header included. */
export function jsonFrame(type: FrameType, value: unknown): Buffer {
  const body = Buffer.from(JSON.stringify(value));
  return Buffer.concat([frameHeader(type, body.length), body]);
}

/**
 * Incremental frame parser. Byte-stream frames are delivered in pieces as they arrive (`onData(type, chunk)`), never
 * copied or buffered whole, so throughput does not depend on frame size; control frames are collected (up to
 * MAX_CONTROL_FRAME) and delivered whole to `onControl`. Throws on an oversized control frame.
 */
export class FrameDecoder {
  private header = Buffer.alloc(5);
  private headerFill = 0;
  private type = 0;
  private remaining = -1;
  private control: Buffer[] = [];

  constructor(
    private readonly streamTypes: ReadonlySet<number>,
    private readonly onData: (type: number, chunk: Buffer) => void,
    private readonly onControl: (type: number, payload: Buffer) => void,
  ) {}

  push(chunk: Buffer): void {
    let offset = 0;
    while (offset < chunk.length) {
      if (this.remaining < 0) {
        const take = Math.min(5 - this.headerFill, chunk.length - offset);
        chunk.copy(this.header, this.headerFill, offset, offset + take);
        this.headerFill += take;
        offset += take;
        if (this.headerFill < 5) return;
        this.headerFill = 0;
        this.type = this.header[0];
        this.remaining = this.header.readUInt32BE(1);
        if (!this.streamTypes.has(this.type) && this.remaining > MAX_CONTROL_FRAME) throw new Error(`control frame of ${this.remaining} bytes is too large`);
        if (this.remaining === 0) this.finish();
        continue;
      }
      const take = Math.min(this.remaining, chunk.length - offset);
      const piece = chunk.subarray(offset, offset + take);
      offset += take;
      this.remaining -= take;
      if (this.streamTypes.has(this.type)) this.onData(this.type, piece);
      else this.control.push(piece);
      if (this.remaining === 0) this.finish();
    }
  }

  private finish(): void {
    const type = this.type;
    this.remaining = -1;
    if (this.streamTypes.has(type)) return;
    const payload = this.control.length === 1 ? this.control[0] : Buffer.concat(this.control);
    this.control = [];
    this.onControl(type, payload);
  }
}
