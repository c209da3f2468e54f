// One WebSocket client for every page. Pages subscribe to a path
// (`/ws/city/rooms/general`); subscribers of the same path share one socket.
// A dropped socket reconnects with capped exponential backoff and jitter;
// after a reconnect each subscriber is told `resumed` so it can fetch what it
// missed (the city's sockets have no replay, their history API is the
// resume). `lagged` frames (the server skipped frames for a slow client) are
// handed on the same way. Closes that mean "stop" are not retried: 4401
// (signed out), 4403 (no longer allowed).

export type LiveState = "connecting" | "open" | "reconnecting" | "denied" | "signed-out";

export interface Frame {
  type: string;
  [field: string]: unknown;
}

export interface Subscriber {
  frame: (frame: Frame) => void;
  state?: (state: LiveState, resumed: boolean) => void;
}

export interface Subscription {
  /** Sends a frame; false when the socket is not open (the caller keeps it). */
  send: (frame: Frame) => boolean;
  close: () => void;
}

interface Options {
  /** Sends `{"type":"heartbeat"}` this often while open (presence). */
  heartbeatMs?: number;
  /** A query to open (and reopen) the socket with, asked at each connect:
   * what a socket that resumes from a number needs (`?since=`). */
  query?: () => string;
}

const MAX_BACKOFF_MS = 30_000;
const listeners = new Set<(state: LiveState) => void>();

/** Told when any socket learns that the session has ended (4401). */
export function onSignedOut(listener: () => void): () => void {
  const wrapped = (state: LiveState) => state === "signed-out" && listener();
  listeners.add(wrapped);
  return () => listeners.delete(wrapped);
}

export function backoff(attempt: number, random: () => number = Math.random): number {
  const ceiling = Math.min(MAX_BACKOFF_MS, 500 * 2 ** attempt);
  return Math.round(ceiling / 2 + (random() * ceiling) / 2);
}

class Channel {
  private socket: WebSocket | null = null;
  private subscribers = new Set<Subscriber>();
  private attempt = 0;
  private opened = false;
  private retry: number | undefined;
  private beat: number | undefined;
  state: LiveState = "connecting";

  constructor(
    private readonly path: string,
    private readonly options: Options,
    private readonly dispose: () => void,
  ) {
    this.connect();
    window.addEventListener("online", this.reconnectNow);
  }

  add(subscriber: Subscriber) {
    this.subscribers.add(subscriber);
    subscriber.state?.(this.state, false);
  }

  remove(subscriber: Subscriber) {
    this.subscribers.delete(subscriber);
    if (this.subscribers.size === 0) this.shutdown();
  }

  send(frame: Frame): boolean {
    if (this.socket?.readyState !== WebSocket.OPEN) return false;
    this.socket.send(JSON.stringify(frame));
    return true;
  }

  private reconnectNow = () => {
    if (this.state !== "reconnecting") return;
    window.clearTimeout(this.retry);
    this.connect();
  };

  private setState(state: LiveState, resumed = false) {
    this.state = state;
    for (const s of this.subscribers) s.state?.(state, resumed);
    for (const l of listeners) l(state);
  }

  private connect() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const query = this.options.query?.() ?? "";
    const socket = new WebSocket(`${scheme}//${location.host}${this.path}${query}`);
    this.socket = socket;
    socket.onopen = () => {
      const resumed = this.opened;
      this.opened = true;
      this.attempt = 0;
      this.setState("open", resumed);
      if (this.options.heartbeatMs) {
        this.beat = window.setInterval(
          () => this.send({ type: "heartbeat" }),
          this.options.heartbeatMs,
        );
      }
    };
    socket.onmessage = (event) => {
      let frame: Frame;
      try {
        frame = JSON.parse(String(event.data));
      } catch {
        return;
      }
      for (const s of this.subscribers) s.frame(frame);
    };
    socket.onclose = (event) => {
      window.clearInterval(this.beat);
      if (this.socket !== socket) return;
      this.socket = null;
      if (event.code === 4401) return this.setState("signed-out");
      if (event.code === 4403) return this.setState("denied");
      // 4408: the server's lifetime cap; come back at once, authenticating anew.
      const delay = event.code === 4408 ? 0 : backoff(this.attempt++);
      this.setState("reconnecting");
      this.retry = window.setTimeout(() => this.connect(), delay);
    };
  }

  private shutdown() {
    window.removeEventListener("online", this.reconnectNow);
    window.clearTimeout(this.retry);
    window.clearInterval(this.beat);
    const socket = this.socket;
    this.socket = null;
    socket?.close(1000);
    this.dispose();
  }
}

const channels = new Map<string, Channel>();

export function subscribe(
  path: string,
  subscriber: Subscriber,
  options: Options = {},
): Subscription {
  let channel = channels.get(path);
  if (!channel) {
    channel = new Channel(path, options, () => channels.delete(path));
    channels.set(path, channel);
  }
  const joined = channel;
  joined.add(subscriber);
  return {
    send: (frame) => joined.send(frame),
    close: () => joined.remove(subscriber),
  };
}
