import type net from 'node:net';
import { FramingError, Http1Framer, parseHead, requestFraming, requestLine, responseFraming, scanResponseHead, serializeHead, statusOf, type HeadLike, type MessageHead } from '../../../lib/net/http1';
import { guard } from '../../../lib/guard';
import { CoveError } from '../../../lib/errors';
import { endSoon, errorResponse } from '../../../lib/http/node';
import { ERROR_SOURCE } from '../../../wire/errors';
import { connectToPort } from './connect';
import type { PreviewHandler } from './handler';
import { parsePreviewHost, type PreviewHost } from './host';

/**
 * Pipelined requests relayed to the app before the first of them is answered; past it the client is not read. Bounds
 * what one connection holds however fast it sends requests it never reads the answers to.
 */
const MAX_IN_FLIGHT = 32;
const CONTINUE = Buffer.from('HTTP/1.1 100 Continue\r\n\r\n');
/** Same as the HTTP server's keep-alive timeout: an idle relayed connection is closed after it. */
const IDLE_MS = 65_000;
/** Same as the HTTP server's headersTimeout: a request head must arrive whole within it. */
const HEAD_MS = 60_000;

/**
 * Writes `pieces` and empties the array; false when the socket asks to wait for drain. What a pump passes on is
 * mostly slices lying side by side in one received chunk: those become one buffer again, so a response read in one
 * piece leaves in one write.
 */
function writeAll(socket: net.Socket, pieces: Buffer[]): boolean {
  let ok = true;
  let run = pieces[0];
  for (let i = 1; i < pieces.length; i++) {
    const p = pieces[i];
    if (p.buffer === run.buffer && run.byteOffset + run.length === p.byteOffset) run = Buffer.from(run.buffer, run.byteOffset, run.length + p.length);
    else {
      ok = socket.write(run) && ok;
      run = p;
    }
  }
  ok = socket.write(run) && ok;
  pieces.length = 0;
  return ok;
}

interface RelayOptions {
  preview: PreviewHandler;
  previewDomain: string;
  /** Preview-shaped hosts that are the toolbox (SDK 0.108's port 2280, toolbox/legacy.ts): the HTTP server serves them. */
  isToolboxHost(host: PreviewHost): boolean;
  /** Gives a connection to the full HTTP server; its unread bytes have been put back on the socket. */
  handOff(socket: net.Socket): void;
  /** One line per relayed request, when its response starts. */
  logRequest(entry: { method: string; path: string; status: number; ms: number }): void;
}

interface InFlight {
  method: string;
  path: string;
  started: bigint;
}

/**
 * Every connection to the proxy starts here. Its requests are read with a small HTTP/1.1 framer; a preview request
 * that the preview handler admits as it is (credentials valid, nothing to answer itself) is rewritten — our
 * credentials removed, Host and X-Forwarded-* set — and written to a connection to that port of that sandbox, which
 * then serves this client connection alone: bodies and responses pass through as bytes, without Node's HTTP objects.
 * Each request is admitted on its own, so revocation and expiry act on the next request.
 *
 * Anything else — the API, the toolbox, a request the handler must answer (401, 502 pages, the cookie redirect), a
 * request for another host, or a head this framer will not frame — is handed to the full HTTP server at a request
 * boundary, once the responses already under way have been relayed; the connection stays there.
 */
export function createRelay(opts: RelayOptions) {
  const live = new Set<RelayConnection>();

  class RelayConnection {
    private readonly requests = new Http1Framer();
    private readonly responses = new Http1Framer(scanResponseHead);
    private upstream?: net.Socket;
    /** The Host the upstream connection serves; a request for another goes to the HTTP server. */
    private host?: string;
    private port = 0;
    private readonly inFlight: InFlight[] = [];
    private connecting = false;
    /** An upgrade request was sent: requests wait for its answer (101: raw bytes both ways; else go on). */
    private awaitingSwitch = false;
    private switched = false;
    private handingOff = false;
    private closed = false;
    private clientPaused = false;
    /** The app's socket asked to wait for drain. */
    private appFull = false;
    private upstreamPaused = false;
    /** Runs while part of a request head has arrived: a client that never finishes one is dropped. */
    private headTimer?: NodeJS.Timeout;

    /** Every handler of this connection runs behind one boundary: what it throws ends this connection alone. */
    private guarded<A extends unknown[]>(fn: (...args: A) => void): (...args: A) => void {
      return guard('preview relay', fn, (error: CoveError, ..._args: A) => this.fail(error));
    }

    private readonly onClientData = this.guarded((chunk: Buffer) => {
      // What a client sends after its connection was ended is read and dropped (see endSoon).
      if (this.closed) return;
      this.requests.feed(chunk);
      this.pumpRequests();
    });
    private readonly onClientEnd = this.guarded(() => {
      if (this.upstream) this.upstream.end();
      else this.destroy();
    });
    private readonly onClose = () => this.destroy();
    private readonly onTimeout = this.guarded(() => {
      if (!this.busy()) this.destroy();
    });

    constructor(private readonly client: net.Socket) {
      live.add(this);
      client.setNoDelay(true);
      client.setTimeout(IDLE_MS, this.onTimeout);
      client.on('data', this.onClientData);
      client.on('end', this.onClientEnd);
      client.on('error', this.onClose);
      client.on('close', this.onClose);
    }

    /** Whether a request or response is under way (an idle kept-alive connection, or a half-sent head, is not). */
    private busy(): boolean {
      return this.switched || this.inFlight.length > 0 || !this.responses.atHead || !this.requests.atHead;
    }

    destroy(): void {
      if (this.closed) return;
      this.closed = true;
      clearTimeout(this.headTimer);
      live.delete(this);
      this.client.destroy();
      this.upstream?.destroy();
    }

    /**
     * Ends the connection over an error. When no response is under way toward the client, it gets the error envelope
     * first (after the responses already relayed); a response cut in the middle can only be cut.
     */
    private fail(error: CoveError, answerable = this.responses.atHead && !this.switched, status = error.status): void {
      if (this.closed) return;
      if (!answerable) return this.destroy();
      this.toUser.push(errorResponse(error, ERROR_SOURCE.proxy, status));
      this.endClient();
    }

    /** Sends what is relayed so far, then ends the client connection and drops the app's. */
    private endClient(): void {
      if (!this.finish()) return;
      // Nothing buffered is needed any more: a client that keeps the socket open keeps no memory of ours.
      this.requests.rest();
      this.responses.rest();
      this.toApp.length = 0;
      endSoon(this.client);
    }

    /** Bytes for the app and for the client, gathered while a pump runs and written when it ends. */
    private readonly toApp: Buffer[] = [];
    private readonly toUser: Buffer[] = [];

    private pumpRequests(): void {
      try {
        this.pumpRequestsNow();
      } finally {
        this.flushToApp();
      }
    }

    private pumpRequestsNow(): void {
      while (!this.closed && !this.handingOff && !this.connecting && !this.awaitingSwitch) {
        if (this.inFlight.length >= MAX_IN_FLIGHT && this.requests.atHead) {
          // Enough requests wait for their answers: the next is read once one comes back.
          this.pauseClient();
          return;
        }
        let item;
        try {
          item = this.requests.next();
        } catch (err) {
          if (!(err instanceof FramingError)) throw err;
          // After a request that closes the connection (`Connection: close`), whatever follows is dropped.
          if (this.requests.ended) {
            this.requests.rest();
            return this.endIfAnswered();
          }
          // A head past the limit is answered here, without reading more; the HTTP server answers what else this
          // framer refuses with its own parser (it accepts a few shapes this framer will not relay).
          if (err.status === 431 && this.inFlight.length === 0 && this.responses.atHead) {
            return this.fail(new CoveError('INVALID_REQUEST', 'Request headers too large'), true, 431);
          }
          this.handOff();
          return;
        }
        if (!item) {
          if (this.requests.ended) return this.endIfAnswered();
          if (this.requests.atHead && !this.requests.idle) {
            // Not HTTP at all (a TLS hello on the plain port, a stray protocol): the HTTP server says so at once.
            if (!this.requests.mayBeRequest()) return this.handOff();
            this.headTimer ??= setTimeout(this.guarded(() => this.destroy()), HEAD_MS);
          }
          return;
        }
        if (item.kind === 'body') this.toApp.push(item.data);
        else {
          clearTimeout(this.headTimer);
          this.headTimer = undefined;
          this.request(item.head, item.raw);
        }
      }
    }

    /** A request head: relayed, or the connection handed to the HTTP server. */
    private request(head: MessageHead, raw: Buffer): void {
      const line = requestLine(head.line);
      const host = head.headers.host?.toLowerCase();
      const preview = line && line.method !== 'CONNECT' ? parsePreviewHost(host, opts.previewDomain) : undefined;
      if (!line || !preview || opts.isToolboxHost(preview) || (this.host && host !== this.host)) return this.handBack(raw);
      const { method, target } = line;
      let framing;
      try {
        framing = requestFraming(head);
      } catch {
        return this.handBack(raw);
      }
      const relayed = opts.preview.relayHead({ method, url: target, headers: head.headers }, preview, this.client.remoteAddress);
      if (!relayed) return this.handBack(raw);
      const upgrade = head.headers.upgrade !== undefined && /(^|,)\s*upgrade\s*(,|$)/i.test(head.headers.connection ?? '');
      const send = () => {
        this.inFlight.push({ method, path: target.split('?')[0], started: process.hrtime.bigint() });
        this.toApp.push(Buffer.from(relayed.head, 'latin1'));
        this.requests.body(framing);
        if (upgrade) {
          // Nothing more is read from the client until the app answers: whatever it sends meanwhile waits in the
          // kernel's buffers (backpressure), not in ours.
          this.awaitingSwitch = true;
          this.pauseClient();
        }
      };
      if (this.upstream) return send();
      this.connecting = true;
      this.pauseClient();
      connectToPort(relayed.target).then(
        this.guarded((socket: net.Socket) => {
          this.connecting = false;
          if (this.closed) {
            socket.destroy();
            return;
          }
          this.attach(socket, host, preview.port);
          send();
          this.resumeClient();
          this.pumpRequests();
        }),
        this.guarded(() => {
          // Nothing listens: the HTTP server answers with its 502 page.
          this.connecting = false;
          if (!this.closed) this.handBack(raw);
        }),
      );
    }

    private attach(socket: net.Socket, host: string, port: number): void {
      this.upstream = socket;
      this.host = host;
      this.port = port;
      socket.setNoDelay(true);
      socket.on(
        'data',
        this.guarded((chunk: Buffer) => {
          this.responses.feed(chunk);
          this.pumpResponses();
        }),
      );
      const ended = this.guarded(() => this.upstreamEnded(socket));
      socket.on('end', ended);
      socket.on('error', ended);
      socket.on('close', ended);
    }

    /**
     * The app closed its side. Between responses the connection is simply dropped (the next request opens another);
     * a response delimited by the close ends the client's too; anything cut short closes the client.
     */
    private upstreamEnded(socket: net.Socket): void {
      if (this.closed || socket !== this.upstream) return;
      this.upstream = undefined;
      socket.destroy();
      if (this.inFlight.length === 0 && this.responses.idle && !this.switched) {
        this.upstreamPaused = false;
        this.resumeClient();
        if (this.requests.idle && this.client.readableEnded) this.destroy();
        return;
      }
      if (this.responses.closeDelimited && this.inFlight.length === 0) this.client.end();
      else this.destroy();
    }

    private pumpResponses(): void {
      try {
        this.pumpResponsesNow();
      } finally {
        this.flushToUser();
      }
    }

    private pumpResponsesNow(): void {
      while (!this.closed) {
        let item;
        const atHead = this.responses.atHead;
        try {
          item = this.responses.next();
        } catch (err) {
          if (!(err instanceof FramingError)) throw err;
          // Bytes after a response that closed the connection: that response was whole, the rest is dropped.
          if (this.responses.ended) return this.endClient();
          return this.badResponse(err.message, !atHead);
        }
        if (!item) return;
        if (item.kind === 'body') {
          this.toUser.push(item.data);
          if (this.responses.atHead) this.responseDone();
          // The app said this response closes the connection: so does the client's, once it is out.
          if (this.responses.ended) return this.endClient();
        } else if (!this.response(item.head, item.raw)) return;
      }
    }

    /**
     * The app answered with something this relay will not frame without doubt (a smuggling shape): its connection is
     * dropped, and the client gets a 502 if nothing of the response has reached it, and is closed either way — its
     * connection is never used again.
     */
    private badResponse(reason: string, headSent = false): void {
      this.upstream?.destroy();
      this.upstream = undefined;
      this.fail(new CoveError('BAD_UPSTREAM_RESPONSE', `The app on port ${this.port} sent a malformed HTTP response`, reason), !headSent && !this.switched);
    }

    /** A response head; false when the connection was closed over it. */
    private response(head: HeadLike, raw: Buffer): boolean {
      let status: number;
      try {
        status = statusOf(head);
      } catch (err) {
        this.badResponse((err as Error).message);
        return false;
      }
      if (status < 200 && status !== 101) {
        // An interim response has no body and nothing a client needs but its status: 100 Continue goes on as a clean
        // head of ours (whatever fields the app put on it, a front proxy cannot read it otherwise); 102 and 103 are
        // dropped. The final response follows.
        if (status === 100) this.toUser.push(CONTINUE);
        this.responses.body({ type: 'none' });
        return true;
      }
      const request = this.inFlight.shift();
      if (this.inFlight.length === MAX_IN_FLIGHT - 1 && this.clientPaused) {
        this.resumeClient();
        queueMicrotask(this.guarded(() => this.pumpRequests()));
      }
      if (!request) {
        this.destroy();
        return false;
      }
      opts.logRequest({ method: request.method, path: request.path, status, ms: Number(process.hrtime.bigint() - request.started) / 1e6 });
      if (status === 101) {
        if (!this.awaitingSwitch || this.inFlight.length > 0) {
          this.badResponse('101 Switching Protocols to a request that did not ask for an upgrade');
          return false;
        }
        this.toUser.push(raw);
        this.responses.body({ type: 'raw' });
        this.requests.switchToRaw();
        this.switched = true;
        this.awaitingSwitch = false;
        this.client.setTimeout(0);
        this.resumeClient();
        this.pumpRequests();
        return true;
      }
      let framing;
      try {
        framing = responseFraming(head, request.method);
      } catch (err) {
        this.badResponse((err as Error).message);
        return false;
      }
      this.toUser.push(this.clientHead(head, raw));
      this.responses.body(framing);
      if (this.responses.atHead) this.responseDone();
      if (this.responses.ended && !this.closed) {
        // A response without a body that closes the connection.
        this.endClient();
        return false;
      }
      if (this.awaitingSwitch && this.inFlight.length === 0) {
        // The upgrade was declined: requests go on.
        this.awaitingSwitch = false;
        this.resumeClient();
        queueMicrotask(this.guarded(() => this.pumpRequests()));
      }
      return true;
    }

    /**
     * The response head as the client gets it: as sent, unless a Location points at the app's localhost address, or a
     * Set-Cookie names a Domain beyond this preview host (dropped: it would reach every other preview).
     */
    private clientHead(head: HeadLike, raw: Buffer): Buffer {
      const host = this.host!;
      const location = head.headers.location;
      const rewritten = location === undefined ? undefined : opts.preview.previewLocation(location, host, this.port);
      const cookies = head.headers['set-cookie'];
      const dropCookies = cookies !== undefined && cookies.split('\n').some((c) => !opts.preview.setCookieAllowed(c, host));
      if ((rewritten === undefined || rewritten === location) && !dropCookies) return raw;
      const { line, fields } = parseHead(raw.toString('latin1', 0, raw.length - 4));
      const kept: typeof fields = [];
      for (const [name, value] of fields) {
        const lower = name.toLowerCase();
        if (lower === 'location') kept.push([name, rewritten ?? value]);
        else if (lower !== 'set-cookie' || opts.preview.setCookieAllowed(value, host)) kept.push([name, value]);
      }
      return serializeHead(line, kept);
    }

    private responseDone(): void {
      if (this.inFlight.length > 0) return;
      if (this.handingOff) this.finishHandOff();
      else if (this.requests.ended) this.endClient();
    }

    /**
     * The client's last request (it closes the connection) has arrived whole: once its answer is out too, the
     * connection ends, as Node's server ends it.
     */
    private endIfAnswered(): void {
      if (this.inFlight.length === 0 && this.responses.atHead) this.endClient();
    }

    private flushToApp(): void {
      const { upstream } = this;
      // After the app closed a switched connection, what the client still sends has nowhere to go.
      if (!upstream) this.toApp.length = 0;
      if (!this.toApp.length || !upstream || writeAll(upstream, this.toApp) || this.appFull) return;
      this.appFull = true;
      this.pauseClient();
      upstream.once(
        'drain',
        this.guarded(() => {
          this.appFull = false;
          this.resumeClient();
        }),
      );
    }

    private flushToUser(): void {
      if (!this.toUser.length || writeAll(this.client, this.toUser) || this.upstreamPaused) return;
      this.upstreamPaused = true;
      this.upstream?.pause();
      this.client.once(
        'drain',
        this.guarded(() => {
          this.upstreamPaused = false;
          this.upstream?.resume();
        }),
      );
    }

    private pauseClient(): void {
      this.clientPaused = true;
      this.client.pause();
    }

    /** Reads from the client again, unless something still waits: a connection, an app's answer to an upgrade, drain. */
    private resumeClient(): void {
      if (!this.clientPaused || this.connecting || this.handingOff || this.awaitingSwitch || this.appFull || this.closed) return;
      if (this.inFlight.length >= MAX_IN_FLIGHT) return;
      this.clientPaused = false;
      this.client.resume();
    }

    /** `raw` goes back in front of the unread bytes, and the connection to the HTTP server. */
    private handBack(raw: Buffer): void {
      this.requests.unread(raw);
      this.handOff();
    }

    /** Stops reading requests; once the responses under way are relayed, the HTTP server takes over. */
    private handOff(): void {
      this.handingOff = true;
      this.pauseClient();
      if (this.inFlight.length === 0 && this.responses.atHead) this.finishHandOff();
    }

    /**
     * Stops relaying: what is relayed so far goes out, the app's connection is dropped, and the client socket is left
     * to the caller. False when the connection had already finished.
     */
    private finish(): boolean {
      if (this.closed) return false;
      this.flushToUser();
      this.closed = true;
      clearTimeout(this.headTimer);
      live.delete(this);
      this.upstream?.destroy();
      return true;
    }

    private finishHandOff(): void {
      // What is relayed of the last response goes out before the HTTP server writes anything.
      if (!this.finish()) return;
      const { client } = this;
      client.off('data', this.onClientData);
      client.off('end', this.onClientEnd);
      client.off('error', this.onClose);
      client.off('close', this.onClose);
      client.setTimeout(0);
      const rest = this.requests.rest();
      if (rest.length) client.unshift(rest);
      opts.handOff(client);
      client.resume();
    }
  }

  return {
    accept: guard(
      'preview relay accept',
      (socket: net.Socket) => {
        new RelayConnection(socket);
      },
      (_error, socket) => socket.destroy(),
    ),
    /** Closes every relayed connection (the server is stopping). */
    closeAll(): void {
      for (const connection of [...live]) connection.destroy();
    },
  };
}
