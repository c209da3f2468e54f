// The city: its rooms, a room's live conversation, and who is here.
import { createContext } from "preact";
import { useContext, useEffect, useLayoutEffect, useMemo, useRef, useState } from "preact/hooks";
import { api, idempotencyKey, ok, patiently, type Schemas } from "../api/client";
import { useI18n } from "../i18n";
import { type Frame, type LiveState, subscribe } from "../live";
import { useSession } from "../session";
import {
  Busy,
  Empty,
  ErrorNote,
  Field,
  Listed,
  Loading,
  MoreButton,
  useAction,
  useLoad,
  usePaged,
} from "../ui";
import { useVirtual } from "../virtual";

type Room = Schemas["RoomView"];
type Message = Schemas["MessageView"];

export function Rooms() {
  const { t } = useI18n();
  const { user } = useSession();
  const rooms = usePaged(
    (cursor) => ok(api.GET("/api/city/rooms", { params: { query: { limit: 50, cursor } } })),
    [],
  );

  return (
    <div class="city">
      <section class="stack">
        <h1>{t("rooms.title")}</h1>
        <Listed items={rooms.items} error={rooms.error} empty={t("rooms.empty")}>
          {(items) => (
            <ul class="list card" aria-label={t("rooms.title")}>
              {items.map((room) => (
                <li key={room.id}>
                  <a href={`/rooms/${room.slug}`}>
                    <strong>{room.title}</strong>
                  </a>{" "}
                  <span class="muted small">#{room.slug}</span>
                  {room.description && <div class="muted">{room.description}</div>}
                </li>
              ))}
            </ul>
          )}
        </Listed>
        <MoreButton paged={rooms} />
        {user && <NewRoom added={(room) => rooms.setItems((known) => [room, ...(known ?? [])])} />}
      </section>
      {user && <PresenceList />}
    </div>
  );
}

function NewRoom({ added }: { added: (room: Room) => void }) {
  const { t } = useI18n();
  const [open, setOpen] = useState(false);
  const [form, setForm] = useState({ slug: "", title: "", description: "" });
  const { busy, error, run } = useAction();
  const set = (field: keyof typeof form) => (e: Event) =>
    setForm({ ...form, [field]: (e.currentTarget as HTMLInputElement).value });
  if (!open) {
    return (
      <button type="button" class="secondary" onClick={() => setOpen(true)}>
        {t("rooms.new")}
      </button>
    );
  }
  const submit = (event: Event) => {
    event.preventDefault();
    run(async () => {
      const room = await ok(
        api.POST("/api/city/rooms", {
          params: { header: { "Idempotency-Key": idempotencyKey() } },
          body: {
            slug: form.slug.trim(),
            title: form.title.trim(),
            description: form.description.trim() || null,
          },
        }),
      );
      added(room);
      setForm({ slug: "", title: "", description: "" });
      setOpen(false);
    });
  };
  return (
    <form class="card stack" onSubmit={submit}>
      <h2>{t("rooms.new")}</h2>
      <Field label={t("rooms.slug")} hint={t("rooms.slug_hint")}>
        {(id) => <input id={id} required value={form.slug} onInput={set("slug")} />}
      </Field>
      <Field label={t("rooms.name")}>
        {(id) => <input id={id} required value={form.title} onInput={set("title")} />}
      </Field>
      <Field label={t("rooms.description")}>
        {(id) => <input id={id} value={form.description} onInput={set("description")} />}
      </Field>
      <ErrorNote error={error} />
      <div class="row">
        <button type="submit" disabled={busy}>
          <Busy busy={busy} label="rooms.create" />
        </button>
        <button type="button" class="ghost" onClick={() => setOpen(false)}>
          {t("common.cancel")}
        </button>
      </div>
    </form>
  );
}

/** People in the city now, live from the presence socket the shell keeps open. */
export function PresenceList() {
  const { t } = useI18n();
  const users = useContext(Presence);
  return (
    <aside class="card" aria-labelledby="present-heading">
      <h2 id="present-heading">{t("presence.title", { n: users.length })}</h2>
      {users.length === 0 ? (
        <p class="muted">{t("presence.nobody")}</p>
      ) : (
        <ul class="list" aria-label={t("presence.title", { n: users.length })}>
          {users.map((u) => (
            <li key={u}>
              <span class="dot" aria-hidden="true" />
              {u}
            </li>
          ))}
        </ul>
      )}
    </aside>
  );
}

const PRESENCE_HEARTBEAT_MS = 10_000;

/** Who is in the city, kept by the shell for every page. */
export const Presence = createContext<string[]>([]);

/** Being present in the city, and seeing who else is: one socket for the whole app. */
export function usePresence(): string[] {
  const { user } = useSession();
  const [users, setUsers] = useState<string[]>([]);
  useEffect(() => {
    if (!user) return;
    const sub = subscribe(
      "/ws/city/presence",
      {
        frame: (frame: Frame) => {
          if (frame.type === "snapshot") {
            const list = (frame.users as string[]).map(String);
            setUsers([...new Set(list)].sort());
          } else if (frame.type === "join" || frame.type === "heartbeat") {
            const who = String(frame.user);
            setUsers((known) => (known.includes(who) ? known : [...known, who].sort()));
          } else if (frame.type === "leave") {
            setUsers((known) => known.filter((u) => u !== frame.user));
          }
        },
      },
      { heartbeatMs: PRESENCE_HEARTBEAT_MS },
    );
    return () => sub.close();
  }, [user]);
  return users;
}

type Shown = Message & { pending?: boolean; failed?: unknown };

/** Oldest first, one entry per id; the server's copy replaces an optimistic one. */
function merge(known: Shown[], incoming: Message[]): Shown[] {
  const byId = new Map(known.map((m) => [m.id, m]));
  for (const m of incoming) byId.set(m.id, m);
  return [...byId.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}

const PAGE = 50;
/** How often a visitor's room page asks for new messages. */
const VISITOR_POLL_MS = 15_000;

export function RoomPage({ slug }: { slug: string }) {
  const { t, dateTime } = useI18n();
  const { user } = useSession();
  const room = useLoad(
    () => ok(api.GET("/api/city/rooms/{slug}", { params: { path: { slug } } })),
    [slug],
  );
  const [messages, setMessages] = useState<Shown[]>([]);
  const [older, setOlder] = useState<string | null | undefined>(undefined);
  const [live, setLive] = useState<LiveState>("connecting");
  const [draft, setDraft] = useState("");
  const history = useAction();
  const list = useRef<HTMLDivElement>(null);
  const stickToBottom = useRef(true);

  const latest = () =>
    history.run(async () => {
      const page = await patiently(() =>
        ok(
          api.GET("/api/city/rooms/{slug}/messages", {
            params: { path: { slug }, query: { limit: PAGE } },
          }),
        ),
      );
      setMessages((known) => merge(known, page.items));
      setOlder((o) => (o === undefined ? (page.next_cursor ?? null) : o));
    });

  const loadOlder = () =>
    history.run(async () => {
      if (!older) return;
      const box = list.current;
      const fromBottom = box ? box.scrollHeight - box.scrollTop : 0;
      const page = await ok(
        api.GET("/api/city/rooms/{slug}/messages", {
          params: { path: { slug }, query: { limit: PAGE, cursor: older } },
        }),
      );
      stickToBottom.current = false;
      setMessages((known) => merge(known, page.items));
      setOlder(page.next_cursor ?? null);
      requestAnimationFrame(() => {
        if (box) box.scrollTop = box.scrollHeight - fromBottom;
      });
    });

  useEffect(() => {
    setMessages([]);
    setOlder(undefined);
    stickToBottom.current = true;
    if (!user) {
      // A visitor reads through the API (the socket needs a principal)
      // and looks again now and then.
      latest();
      setLive("open");
      const timer = window.setInterval(latest, VISITOR_POLL_MS);
      return () => window.clearInterval(timer);
    }
    const sub = subscribe(`/ws/city/rooms/${encodeURIComponent(slug)}`, {
      frame: (frame) => {
        if (frame.type === "message")
          setMessages((known) => merge(known, [frame.message as Message]));
        // The server skipped frames for us: fetch what was missed.
        if (frame.type === "lagged") latest();
      },
      state: (state, resumed) => {
        setLive(state);
        if (state === "open") latest();
        if (resumed) stickToBottom.current = true;
      },
    });
    return () => sub.close();
  }, [slug, user]);

  const keys = useMemo(() => messages.map((m) => m.id), [messages]);
  const visible = useVirtual(keys, list);

  // After every render (new messages, heights measured): a reader at the
  // bottom stays there.
  useLayoutEffect(() => {
    const box = list.current;
    if (box && stickToBottom.current) box.scrollTop = box.scrollHeight;
  });

  const onScroll = () => {
    const box = list.current;
    if (!box) return;
    visible.scrolled();
    stickToBottom.current = box.scrollHeight - box.scrollTop - box.clientHeight < 40;
    if (box.scrollTop < 80 && older && !history.busy) loadOlder();
  };

  const send = async (body: string, key = idempotencyKey()) => {
    // Shown at once; replaced by the server's copy, or marked failed.
    const temp: Shown = {
      id: `~pending-${key}`,
      room: slug,
      author: user?.username ?? "",
      body,
      created_at: new Date().toISOString(),
      pending: true,
    };
    stickToBottom.current = true;
    setMessages((known) => [...known.filter((m) => m.id !== temp.id), temp]);
    try {
      const message = await ok(
        api.POST("/api/city/rooms/{slug}/messages", {
          params: { path: { slug }, header: { "Idempotency-Key": key } },
          body: { body },
        }),
      );
      setMessages((known) =>
        merge(
          known.filter((m) => m.id !== temp.id),
          [message],
        ),
      );
    } catch (failed) {
      setMessages((known) =>
        known.map((m) => (m.id === temp.id ? { ...m, pending: false, failed } : m)),
      );
    }
  };

  const submit = (event: Event) => {
    event.preventDefault();
    const body = draft.trim();
    if (!body) return;
    setDraft("");
    void send(body);
  };

  const retry = (m: Shown) => void send(m.body, m.id.replace("~pending-", ""));
  const discard = (m: Shown) => setMessages((known) => known.filter((x) => x.id !== m.id));

  if (room.error) return <ErrorNote error={room.error} />;
  return (
    <div class="city">
      <section class="room card" aria-labelledby="room-title">
        <div class="row spread">
          <h1 id="room-title">{room.data?.title ?? `#${slug}`}</h1>
          <span class="status" role="status">
            {t(`live.${live}`)}
          </span>
        </div>
        <div
          class="messages"
          ref={list}
          onScroll={onScroll}
          role="log"
          aria-live="polite"
          aria-label={t("room.messages")}
          // biome-ignore lint/a11y/noNoninteractiveTabindex: a scrolled region must be reachable by keyboard
          tabIndex={0}
        >
          {older && (
            <button type="button" class="ghost" onClick={loadOlder} disabled={history.busy}>
              <Busy busy={history.busy} label="room.older" />
            </button>
          )}
          {older === null && messages.length > 0 && (
            <p class="muted small">{t("room.beginning")}</p>
          )}
          {older === undefined && <Loading />}
          {older !== undefined && messages.length === 0 && <Empty>{t("room.empty")}</Empty>}
          <div style={{ height: `${visible.before}px` }} aria-hidden="true" />
          {messages.slice(visible.start, visible.end).map((m) => (
            <article
              key={m.id}
              ref={visible.measure(m.id)}
              class={`message${m.pending ? " pending" : ""}${m.failed ? " failed" : ""}`}
              data-id={m.id}
            >
              <span class="who">{m.author}</span>
              <time dateTime={m.created_at}>{dateTime(m.created_at)}</time>
              <p>{m.body}</p>
              {m.failed ? (
                <div class="row small">
                  <ErrorNote error={m.failed} />
                  <button type="button" class="ghost" onClick={() => retry(m)}>
                    {t("room.retry")}
                  </button>
                  <button type="button" class="ghost" onClick={() => discard(m)}>
                    {t("room.discard")}
                  </button>
                </div>
              ) : null}
            </article>
          ))}
          <div style={{ height: `${visible.after}px` }} aria-hidden="true" />
        </div>
        <ErrorNote error={history.error} />
        {!user && (
          <p class="notice">
            <a href={`/sign-in?next=${encodeURIComponent(`/rooms/${slug}`)}`}>
              {t("room.sign_in_to_talk")}
            </a>
          </p>
        )}
        {user && (
          <form class="composer" onSubmit={submit}>
            <label class="skip" for="composer">
              {t("room.message")}
            </label>
            <textarea
              id="composer"
              rows={1}
              value={draft}
              placeholder={t("room.placeholder")}
              onInput={(e) => setDraft(e.currentTarget.value)}
              onKeyDown={(e) => {
                if (e.key === "Enter" && !e.shiftKey) submit(e);
              }}
            />
            <button type="submit">{t("room.send")}</button>
          </form>
        )}
      </section>
      {user && <PresenceList />}
    </div>
  );
}
