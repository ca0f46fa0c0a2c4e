// The terminal tab: xterm.js attached to a PTY session of the sandbox's agent, through Cove's toolbox WebSocket.
import { FitAddon } from '@xterm/addon-fit';
import { Terminal } from '@xterm/xterm';
import { ApiError, type Api } from './api';
import { copyText, messageOf } from './dom';

/**
 * Offered so the agent sends `{"type":"control","status":"exited"}` when the shell ends (wire/pty.ts,
 * PTY_EXIT_CONTROL_PROTOCOL; written out here so that zod stays out of the browser bundle).
 */
const EXIT_CONTROL_PROTOCOL = 'X-Daytona-Pty-Exit-Control';
/**
 * The query parameter by which a toolbox WebSocket upgrade carries a preview token of port 1 of its sandbox
 * (proxy/src/toolbox/access.ts), since browsers cannot add an Authorization header to a WebSocket.
 */
const TOKEN_PARAM = 'DAYTONA_SANDBOX_AUTH_KEY';
const TOKEN_PORT = 1;

/** Where the PTY session of a sandbox is remembered, so that a reload attaches to the same shell again. */
const sessionKey = (sandboxId: string) => `cove.pty.${sandboxId}`;

/** The parts of a control message the page reads (wire/pty.ts PtyControlMessage). */
interface Control {
  type?: string;
  status?: string;
  exitCode?: number;
  exitReason?: string;
  error?: string;
}

export type TerminalState = 'connecting' | 'connected' | 'closed' | 'exited';

export interface TerminalView {
  readonly sandboxId: string;
  /** The tab became visible: fit the terminal to its box and take the keyboard. */
  show(): void;
  /** Attaches again to the same session (after a disconnect). */
  reconnect(): void;
  /** Ends the current shell and starts a new session. */
  newSession(): void;
  copy(): void;
  paste(): void;
  /** xterm.js's screen reader mode: the output also goes to a live region that screen readers read. */
  setScreenReaderMode(on: boolean): void;
  dispose(): void;
}

/**
 * A terminal in `host` for one sandbox. The PTY session outlives the page: the agent keeps the shell running while no
 * client is attached and replays the current screen to a client that attaches again, so a reload (which finds the
 * session id in sessionStorage) shows the same shell with its earlier output.
 */
export function createTerminalView(opts: {
  api: Api;
  sandboxId: string;
  host: HTMLElement;
  screenReaderMode: boolean;
  onStatus: (text: string, state: TerminalState) => void;
}): TerminalView {
  const { api, sandboxId, host } = opts;
  const term = new Terminal({
    cursorBlink: true,
    fontSize: 14,
    fontFamily: 'ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace',
    scrollback: 5000,
    screenReaderMode: opts.screenReaderMode,
    theme: { background: '#111418', foreground: '#e6e6e6' },
  });
  const fit = new FitAddon();
  term.loadAddon(fit);
  term.open(host);

  let socket: WebSocket | undefined;
  let sessionId: string | undefined;
  let disposed = false;
  /** Bumped by every connect and by dispose: a slower, older attempt sees it changed and gives up. */
  let attempt = 0;

  const fitNow = () => {
    // A hidden tab has no size: fitting it would shrink the PTY to nothing.
    if (!disposed && host.clientWidth > 0 && host.clientHeight > 0) fit.fit();
  };
  const observer = new ResizeObserver(() => fitNow());
  observer.observe(host);

  // The PTY follows the terminal's size, once the window has stopped moving for a moment.
  let resizeTimer: ReturnType<typeof setTimeout> | undefined;
  const sendSize = () => {
    if (sessionId && socket?.readyState === WebSocket.OPEN) {
      api.resizePty(sandboxId, sessionId, { cols: term.cols, rows: term.rows }).catch(() => {});
    }
  };
  term.onResize(() => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(sendSize, 150);
  });

  // Keys go to the shell as text frames; the agent writes frames to the terminal unchanged.
  term.onData((data) => {
    if (socket?.readyState === WebSocket.OPEN) socket.send(data);
  });
  term.onBinary((data) => {
    if (socket?.readyState === WebSocket.OPEN) socket.send(Uint8Array.from(data, (c) => c.charCodeAt(0)));
  });

  const copy = () => {
    const text = term.getSelection();
    if (text) copyText(text).catch((err) => opts.onStatus(`Could not copy: ${messageOf(err)}`, socket ? 'connected' : 'closed'));
  };
  const paste = () => {
    navigator.clipboard
      .readText()
      .then((text) => term.paste(text))
      .catch((err) => opts.onStatus(`Could not paste: ${messageOf(err)} (Ctrl+Shift+V works too)`, socket ? 'connected' : 'closed'));
  };
  // Ctrl+Shift+C copies the selection (Ctrl+C stays the shell's interrupt). Ctrl+Shift+V is left to the browser,
  // whose paste event xterm.js reads; Cmd+C and Cmd+V work through the same copy and paste events.
  term.attachCustomKeyEventHandler((event) => {
    if (event.type !== 'keydown' || !event.ctrlKey || !event.shiftKey || event.altKey || event.metaKey) return true;
    if (event.code === 'KeyC') {
      event.preventDefault();
      copy();
      return false;
    }
    return event.code !== 'KeyV';
  });

  /** The remembered session when the agent still runs its shell; otherwise a new one, remembered. */
  async function ensureSession(): Promise<string> {
    const stored = sessionStorage.getItem(sessionKey(sandboxId));
    if (stored) {
      try {
        const info = await api.ptyInfo(sandboxId, stored);
        if (info.active || (info.lazyStart && info.exitCode === undefined)) return stored;
      } catch (err) {
        // Gone (the sandbox restarted, or the session was deleted): start another.
        if (!(err instanceof ApiError && err.status === 404)) throw err;
      }
      sessionStorage.removeItem(sessionKey(sandboxId));
    }
    fitNow();
    const created = await api.createPty(sandboxId, { cols: term.cols, rows: term.rows });
    sessionStorage.setItem(sessionKey(sandboxId), created.sessionId);
    term.reset();
    return created.sessionId;
  }

  function closeSocket(): void {
    const old = socket;
    socket = undefined;
    if (old && old.readyState <= WebSocket.OPEN) old.close(1000);
  }

  async function connect(): Promise<void> {
    const mine = ++attempt;
    closeSocket();
    opts.onStatus('Connecting…', 'connecting');
    try {
      const id = await ensureSession();
      sessionId = id;
      // A preview token of port 1 admits this one upgrade; it is revoked as soon as the socket opened (or failed), so
      // it is good for nothing afterwards, even if the URL were logged somewhere.
      const { token } = await api.previewUrl(sandboxId, TOKEN_PORT);
      let revoked = false;
      const revoke = () => {
        if (revoked) return;
        revoked = true;
        api.revokePreviewToken(sandboxId, TOKEN_PORT, token).catch(() => {});
      };
      if (mine !== attempt) return revoke();
      const url = new URL(api.ptySocketUrl(sandboxId, id));
      url.searchParams.set(TOKEN_PARAM, token);
      const ws = new WebSocket(url, [EXIT_CONTROL_PROTOCOL]);
      ws.binaryType = 'arraybuffer';
      socket = ws;
      let exited = false;
      ws.onopen = revoke;
      ws.onmessage = (event: MessageEvent<string | ArrayBuffer>) => {
        if (typeof event.data !== 'string') {
          term.write(new Uint8Array(event.data));
          return;
        }
        let control: Control;
        try {
          control = JSON.parse(event.data) as Control;
        } catch {
          return;
        }
        if (control.status === 'connected') {
          opts.onStatus(`Connected to session ${id}`, 'connected');
          // After a reload the window may have another size than the one the shell was left at.
          sendSize();
        } else if (control.status === 'exited') {
          exited = true;
          sessionStorage.removeItem(sessionKey(sandboxId));
          const reason = control.exitReason ? ` (${control.exitReason})` : '';
          term.write(`\r\n\x1b[2m[the shell exited with code ${control.exitCode ?? '?'}${reason}]\x1b[0m\r\n`);
          opts.onStatus('The shell exited: start a new session to go on', 'exited');
        } else if (control.status === 'error') {
          opts.onStatus(`Terminal error: ${control.error ?? 'unknown'}`, 'closed');
        }
      };
      ws.onclose = (event) => {
        revoke();
        if (socket !== ws) return;
        socket = undefined;
        if (exited || disposed) return;
        opts.onStatus(`Disconnected${event.reason ? `: ${event.reason}` : ''}`, 'closed');
      };
    } catch (err) {
      if (mine === attempt && !disposed) opts.onStatus(`Could not open the terminal: ${messageOf(err)}`, 'closed');
    }
  }

  void connect();

  return {
    sandboxId,
    show() {
      fitNow();
      term.focus();
    },
    reconnect: () => void connect(),
    newSession() {
      const old = sessionStorage.getItem(sessionKey(sandboxId));
      sessionStorage.removeItem(sessionKey(sandboxId));
      closeSocket();
      // The old shell ends: a session nobody can find again would only hold the sandbox's memory.
      const ended = old ? api.deletePty(sandboxId, old).catch(() => {}) : Promise.resolve();
      void ended.then(() => connect());
      term.focus();
    },
    copy,
    paste,
    setScreenReaderMode(on) {
      term.options.screenReaderMode = on;
    },
    dispose() {
      disposed = true;
      attempt++;
      clearTimeout(resizeTimer);
      closeSocket();
      observer.disconnect();
      term.dispose();
      host.replaceChildren();
    },
  };
}
