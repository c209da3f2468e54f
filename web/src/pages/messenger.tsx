// The messenger: every conversation one takes part in (direct, group,
// community rooms, city rooms) with unread counts, new direct and group
// conversations, search; and one conversation with its topics, edits,
// reactions, typing and read markers, live over `/ws/messaging/live`.
import { useEffect, useRef, useState } from "preact/hooks";
import { useLocation } from "preact-iso";
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
  usePeople,
} from "../ui";

type ChatRoom = Schemas["ChatRoomView"];
type ChatMessage = Schemas["ChatMessageView"];
type Reaction = Schemas["ChatReactionView"];

const LIVE = "/ws/messaging/live";
const REACTIONS = ["👍", "🎉", "❤️"];

/** A room's name as a person reads it: a direct conversation by the other person. */
function roomName(
  room: ChatRoom,
  t: ReturnType<typeof useI18n>["t"],
  name: (principal: string) => string,
  me: string,
): string {
  if (room.kind === "direct") {
    const other = (room.participants ?? []).find((p) => p !== me) ?? me;
    return t("chat.direct_with", { who: name(other) });
  }
  if (room.kind === "dao") return `${room.dao} · ${room.title}`;
  return room.title;
}

export function Messenger() {
  const { t } = useI18n();
  const { user } = useSession();
  const rooms = usePaged(
    (cursor) => ok(api.GET("/api/messaging/rooms", { params: { query: { limit: 50, cursor } } })),
    [],
  );
  const name = usePeople((rooms.items ?? []).flatMap((r) => r.participants ?? []));
  return (
    <div class="city">
      <section class="stack">
        <h1>{t("chat.title")}</h1>
        <Search />
        <Listed items={rooms.items} error={rooms.error} empty={t("chat.empty")}>
          {(items) => (
            <ul class="list card" aria-label={t("chat.conversations")}>
              {items.map((room) => (
                <li key={room.id} class="row spread">
                  <a href={`/messages/${room.id}`}>{roomName(room, t, name, `user:${user?.id}`)}</a>
                  <span class="muted small">
                    {t(`chat.kind.${room.kind}` as "chat.kind.group")}
                    {room.unread ? (
                      <strong class="badge" title={t("chat.unread", { n: room.unread })}>
                        {" "}
                        {t("chat.unread", { n: room.unread })}
                      </strong>
                    ) : null}
                  </span>
                </li>
              ))}
            </ul>
          )}
        </Listed>
        <MoreButton paged={rooms} />
      </section>
      <aside class="stack">
        <StartDirect />
        <StartGroup />
      </aside>
    </div>
  );
}

/** Finds a person by username: their principal name (`user:<id>`). */
async function personNamed(username: string): Promise<string> {
  const person = await ok(
    api.GET("/api/auth/people/{username}", { params: { path: { username: username.trim() } } }),
  );
  return `user:${person.id}`;
}

function StartDirect() {
  const { t } = useI18n();
  const [who, setWho] = useState("");
  const { busy, error, run } = useAction();
  const submit = (event: Event) => {
    event.preventDefault();
    run(async () => {
      const room = await ok(
        api.POST("/api/messaging/direct", { body: { with: await personNamed(who) } }),
      );
      location.assign(`/messages/${room.id}`);
    });
  };
  return (
    <form class="card stack" onSubmit={submit} aria-label={t("chat.new_direct")}>
      <h2>{t("chat.new_direct")}</h2>
      <Field label={t("chat.username")}>
        {(id) => (
          <input id={id} required value={who} onInput={(e) => setWho(e.currentTarget.value)} />
        )}
      </Field>
      <ErrorNote error={error} />
      <button type="submit" disabled={busy}>
        <Busy busy={busy} label="chat.start" />
      </button>
    </form>
  );
}

function StartGroup() {
  const { t } = useI18n();
  const [title, setTitle] = useState("");
  const [people, setPeople] = useState("");
  const { busy, error, run } = useAction();
  const submit = (event: Event) => {
    event.preventDefault();
    run(async () => {
      const names = people
        .split(/[,\s]+/)
        .map((n) => n.trim())
        .filter(Boolean);
      const participants = await Promise.all(names.map(personNamed));
      const room = await ok(
        api.POST("/api/messaging/groups", {
          params: { header: { "Idempotency-Key": idempotencyKey() } },
          body: { title: title.trim(), participants },
        }),
      );
      location.assign(`/messages/${room.id}`);
    });
  };
  return (
    <form class="card stack" onSubmit={submit} aria-label={t("chat.new_group")}>
      <h2>{t("chat.new_group")}</h2>
      <Field label={t("chat.group_title")}>
        {(id) => (
          <input id={id} required value={title} onInput={(e) => setTitle(e.currentTarget.value)} />
        )}
      </Field>
      <Field label={t("chat.group_people")} hint={t("chat.group_people_hint")}>
        {(id) => <input id={id} value={people} onInput={(e) => setPeople(e.currentTarget.value)} />}
      </Field>
      <ErrorNote error={error} />
      <button type="submit" disabled={busy}>
        <Busy busy={busy} label="chat.start" />
      </button>
    </form>
  );
}

function Search() {
  const { t, dateTime } = useI18n();
  const [q, setQ] = useState("");
  const [found, setFound] = useState<ChatMessage[] | undefined>(undefined);
  const { busy, error, run } = useAction();
  const submit = (event: Event) => {
    event.preventDefault();
    run(async () => {
      const page = await ok(
        api.GET("/api/messaging/search", { params: { query: { q: q.trim(), limit: 20 } } }),
      );
      setFound(page.items);
    });
  };
  return (
    <div class="stack">
      <form class="row" onSubmit={submit} aria-label={t("chat.search")}>
        <label class="skip" for="chat-search">
          {t("chat.search")}
        </label>
        <input
          id="chat-search"
          type="search"
          required
          value={q}
          placeholder={t("chat.search")}
          onInput={(e) => setQ(e.currentTarget.value)}
        />
        <button type="submit" class="secondary" disabled={busy}>
          <Busy busy={busy} label="chat.search" />
        </button>
      </form>
      <ErrorNote error={error} />
      {found &&
        (found.length === 0 ? (
          <Empty>{t("chat.no_results")}</Empty>
        ) : (
          <ul class="list card" aria-label={t("chat.results")}>
            {found.map((m) => (
              <li key={m.id}>
                <a href={`/messages/${m.room}`}>{m.author_handle}</a>{" "}
                <time class="muted small" dateTime={m.created_at}>
                  {dateTime(m.created_at)}
                </time>
                <div>{m.body}</div>
              </li>
            ))}
          </ul>
        ))}
    </div>
  );
}

/** Oldest first, one entry per id. */
function merge(known: ChatMessage[], incoming: ChatMessage[]): ChatMessage[] {
  const byId = new Map(known.map((m) => [m.id, m]));
  for (const m of incoming) byId.set(m.id, m);
  return [...byId.values()].sort((a, b) => a.seq - b.seq);
}

/** Who gave or took back a reaction, as a live `reacted` frame says. */
type ReactionChange = { by: string; emoji: string; added: boolean };

/**
 * A live change applied to what is shown. Reaction counts are everyone's;
 * the reader's own marks stay, except for a reaction the reader just gave
 * or took back (from this screen or another).
 */
function applyChange(
  known: ChatMessage[],
  kind: string,
  message: ChatMessage,
  change: { reaction?: ReactionChange; me: string },
): ChatMessage[] {
  const before = known.find((m) => m.id === message.id);
  if (kind === "reacted" && before) {
    const mine = new Set(before.reactions.filter((r) => r.mine).map((r) => r.emoji));
    const { reaction, me } = change;
    if (reaction && reaction.by === me) {
      if (reaction.added) mine.add(reaction.emoji);
      else mine.delete(reaction.emoji);
    }
    const reactions = message.reactions.map((r) => ({ ...r, mine: mine.has(r.emoji) }));
    return merge(known, [{ ...before, reactions }]);
  }
  if (kind === "edited" && before)
    return merge(known, [{ ...message, reactions: before.reactions }]);
  return merge(known, [message]);
}

const PAGE = 50;
const TYPING_SHOWN_MS = 5000;
const TYPING_EVERY_MS = 3000;

export function ChatRoomPage({ room: id }: { room: string }) {
  const { t } = useI18n();
  const { user } = useSession();
  const room = useLoad(
    () => ok(api.GET("/api/messaging/rooms/{room}", { params: { path: { room: id } } })),
    [id],
  );
  const topics = useLoad(
    () => ok(api.GET("/api/messaging/rooms/{room}/topics", { params: { path: { room: id } } })),
    [id],
  );
  const name = usePeople(room.data?.participants ?? []);
  const [messages, setMessages] = useState<ChatMessage[]>([]);
  const [older, setOlder] = useState<string | null | undefined>(undefined);
  const [live, setLive] = useState<LiveState>("connecting");
  const [denied, setDenied] = useState(false);
  const [typing, setTyping] = useState<Record<string, number>>({});
  const [draft, setDraft] = useState("");
  const [topic, setTopic] = useState("");
  const history = useAction();
  const posting = useAction();
  const lastSeq = useRef(0);
  const sent = useRef<{ send: (f: Frame) => boolean } | null>(null);
  const typedAt = useRef(0);

  const seen = (seq: number) => {
    if (seq > lastSeq.current) lastSeq.current = seq;
  };

  const latest = () =>
    history.run(async () => {
      const page = await patiently(() =>
        ok(
          api.GET("/api/messaging/rooms/{room}/messages", {
            params: { path: { room: id }, query: { limit: PAGE } },
          }),
        ),
      );
      setMessages((known) => merge(known, page.items));
      setOlder((o) => (o === undefined ? (page.next_cursor ?? null) : o));
    });

  const loadOlder = () =>
    history.run(async () => {
      if (!older) return;
      const page = await ok(
        api.GET("/api/messaging/rooms/{room}/messages", {
          params: { path: { room: id }, query: { limit: PAGE, cursor: older } },
        }),
      );
      setMessages((known) => merge(known, page.items));
      setOlder(page.next_cursor ?? null);
    });

  useEffect(() => {
    setMessages([]);
    setOlder(undefined);
    setDenied(false);
    lastSeq.current = 0;
    // The channel may report "open" while `subscribe` runs: the frame goes
    // out once `sub` exists.
    let sub: ReturnType<typeof subscribe> | undefined;
    const follow = () => {
      const since = lastSeq.current;
      sub?.send(since ? { type: "subscribe", room: id, since } : { type: "subscribe", room: id });
      if (!since) latest();
    };
    sub = subscribe(LIVE, {
      frame: (frame) => {
        if (frame.room !== id) return;
        if (frame.type === "event") {
          seen(Number(frame.room_seq));
          setMessages((known) =>
            applyChange(known, String(frame.kind), frame.message as ChatMessage, {
              reaction: frame.reaction as ReactionChange | undefined,
              me: `user:${user?.id}`,
            }),
          );
          // Topics and their unread counts follow what arrives.
          if (frame.kind === "received") topics.reload();
        } else if (frame.type === "typing" && frame.who !== `user:${user?.id}`) {
          const who = String(frame.handle);
          setTyping((now) => ({ ...now, [who]: Date.now() }));
        } else if (frame.type === "subscribed") {
          seen(Number(frame.last_seq));
        } else if (frame.type === "reset") {
          setMessages([]);
          setOlder(undefined);
          latest();
        } else if (frame.type === "unsubscribed" && frame.reason === "forbidden") {
          setDenied(true);
        }
      },
      state: (state) => {
        setLive(state);
        if (state === "open") queueMicrotask(follow);
      },
    });
    const opened = sub;
    sent.current = opened;
    return () => {
      opened.send({ type: "unsubscribe", room: id });
      opened.close();
      sent.current = null;
    };
  }, [id]);

  // Whatever is shown is read: the marker follows the newest message.
  const newest = messages.at(-1)?.seq ?? 0;
  useEffect(() => {
    if (!newest || denied) return;
    const timer = window.setTimeout(() => {
      void api.POST("/api/messaging/rooms/{room}/read", {
        params: { path: { room: id } },
        body: { seq: newest },
      });
    }, 500);
    return () => window.clearTimeout(timer);
  }, [newest, id, denied]);

  // Who is typing fades after a few seconds without a word from them.
  useEffect(() => {
    if (Object.keys(typing).length === 0) return;
    const timer = window.setTimeout(() => {
      const now = Date.now();
      setTyping((all) =>
        Object.fromEntries(Object.entries(all).filter(([, at]) => now - at < TYPING_SHOWN_MS)),
      );
    }, 1000);
    return () => window.clearTimeout(timer);
  }, [typing]);

  const onType = (value: string) => {
    setDraft(value);
    const now = Date.now();
    if (value && now - typedAt.current > TYPING_EVERY_MS) {
      typedAt.current = now;
      sent.current?.send({ type: "typing", room: id });
    }
  };

  const submit = (event: Event) => {
    event.preventDefault();
    const body = draft.trim();
    if (!body) return;
    posting.run(async () => {
      const message = await ok(
        api.POST("/api/messaging/rooms/{room}/messages", {
          params: { path: { room: id }, header: { "Idempotency-Key": idempotencyKey() } },
          body: { body, topic: topic.trim() || null },
        }),
      );
      setDraft("");
      setMessages((known) => merge(known, [message]));
      topics.reload();
    });
  };

  if (room.error) return <ErrorNote error={room.error} />;
  if (!room.data) return <Loading />;
  const shown = topic ? messages.filter((m) => m.topic === topic) : messages;
  const typists = Object.keys(typing);
  return (
    <div class="city">
      <section class="room card" aria-labelledby="chat-title">
        <div class="row spread">
          <h1 id="chat-title">{roomName(room.data, t, name, `user:${user?.id}`)}</h1>
          <span class="status" role="status">
            {t(`live.${live}`)}
          </span>
        </div>
        {denied && (
          <p class="error" role="alert">
            {t("chat.denied")}
          </p>
        )}
        <div class="messages" role="log" aria-label={t("room.messages")}>
          {older && (
            <button type="button" class="ghost" onClick={loadOlder} disabled={history.busy}>
              <Busy busy={history.busy} label="room.older" />
            </button>
          )}
          {older === undefined && <Loading />}
          {older !== undefined && shown.length === 0 && <Empty>{t("room.empty")}</Empty>}
          {shown.map((m) => (
            <ChatLine
              key={m.id}
              room={id}
              message={m}
              mine={m.author === `user:${user?.id}`}
              changed={(next) => setMessages((known) => merge(known, [next]))}
            />
          ))}
        </div>
        <p class="muted small" aria-live="polite">
          {typists.length > 0 && t("chat.typing", { who: typists.join(", ") })}
        </p>
        <ErrorNote error={history.error} />
        <ErrorNote error={posting.error} />
        {room.data.archived && (
          <p class="notice" role="status">
            {t("chat.archived")}
          </p>
        )}
        {!denied && !room.data.archived && (
          <form class="composer" onSubmit={submit}>
            <label class="skip" for="chat-topic">
              {t("chat.topic")}
            </label>
            <input
              id="chat-topic"
              value={topic}
              placeholder={t("chat.topic")}
              onInput={(e) => setTopic(e.currentTarget.value)}
              style={{ maxWidth: "10rem" }}
            />
            <label class="skip" for="chat-composer">
              {t("room.message")}
            </label>
            <textarea
              id="chat-composer"
              rows={1}
              value={draft}
              placeholder={t("room.placeholder")}
              onInput={(e) => onType(e.currentTarget.value)}
              onKeyDown={(e) => {
                if (e.key === "Enter" && !e.shiftKey) submit(e);
              }}
            />
            <button type="submit" disabled={posting.busy}>
              {t("room.send")}
            </button>
          </form>
        )}
      </section>
      <aside class="card stack" aria-labelledby="topics-heading">
        <h2 id="topics-heading">{t("chat.topics")}</h2>
        <ul class="list" aria-label={t("chat.topics")}>
          <li>
            <button
              type="button"
              class="ghost"
              aria-pressed={topic === ""}
              onClick={() => setTopic("")}
            >
              {t("chat.all_topics")}
            </button>
          </li>
          {(topics.data?.items ?? [])
            .filter((x) => x.topic)
            .map((x) => (
              <li key={x.topic}>
                <button
                  type="button"
                  class="ghost"
                  aria-pressed={topic === x.topic}
                  onClick={() => setTopic(x.topic)}
                >
                  {x.topic}
                  {x.unread > 0 && ` · ${t("chat.unread", { n: x.unread })}`}
                </button>
              </li>
            ))}
        </ul>
        {room.data.kind === "group" && <GroupPeople room={id} />}
        {room.data.may_manage && !room.data.archived && (
          <RoomSettings room={room.data} changed={room.reload} />
        )}
      </aside>
    </div>
  );
}

/** The least microDAO role a room admits (to read it, or to post). */
function RoleBound({
  label,
  everyone,
  value,
  set,
}: {
  label: string;
  everyone: string;
  value: string;
  set: (value: string) => void;
}) {
  const { t } = useI18n();
  return (
    <Field label={label}>
      {(id) => (
        <select id={id} value={value} onChange={(e) => set(e.currentTarget.value)}>
          {BOUNDS.map((b) => (
            <option key={b} value={b}>
              {b
                ? t("chat.from_role", { role: t(`dao.role.${b}` as "dao.role.member") })
                : everyone}
            </option>
          ))}
        </select>
      )}
    </Field>
  );
}

/** A room's settings and archiving, for those who manage it. */
function RoomSettings({ room, changed }: { room: ChatRoom; changed: () => void }) {
  const { t } = useI18n();
  const [form, setForm] = useState({
    title: room.title,
    description: room.description,
    posters: room.posters ?? "",
    agents: room.agents_allowed,
    responder: room.responder ?? "",
    slow: String(room.slow_mode_secs),
  });
  const save = useAction();
  const archive = useAction();
  const [saved, setSaved] = useState(false);
  const submit = (event: Event) => {
    event.preventDefault();
    setSaved(false);
    save.run(async () => {
      await ok(
        api.PATCH("/api/messaging/rooms/{room}", {
          params: { path: { room: room.id } },
          body: {
            title: room.kind === "direct" ? null : form.title,
            description: form.description,
            posters: room.kind === "dao" && form.posters ? form.posters : null,
            agents_allowed: form.agents,
            responder: form.responder.trim(),
            slow_mode_secs: Number(form.slow),
          },
        }),
      );
      setSaved(true);
      changed();
    });
  };
  return (
    <form class="stack" onSubmit={submit} aria-label={t("chat.settings")}>
      <h2>{t("chat.settings")}</h2>
      {room.kind !== "direct" && (
        <Field label={t("chat.settings_title")}>
          {(id) => (
            <input
              id={id}
              required
              value={form.title}
              onInput={(e) => setForm({ ...form, title: e.currentTarget.value })}
            />
          )}
        </Field>
      )}
      <Field label={t("rooms.description")}>
        {(id) => (
          <input
            id={id}
            value={form.description}
            onInput={(e) => setForm({ ...form, description: e.currentTarget.value })}
          />
        )}
      </Field>
      {room.kind === "dao" && (
        <RoleBound
          label={t("chat.posters")}
          everyone={t("chat.posters_default")}
          value={form.posters}
          set={(posters) => setForm({ ...form, posters })}
        />
      )}
      <label class="check">
        <input
          type="checkbox"
          checked={form.agents}
          onChange={(e) => setForm({ ...form, agents: e.currentTarget.checked })}
        />{" "}
        {t("chat.agents_allowed")}
      </label>
      <Field label={t("chat.responder")} hint={t("chat.responder_hint")}>
        {(id) => (
          <input
            id={id}
            value={form.responder}
            pattern="(agent:)?[a-z0-9][a-z0-9\-]*"
            onInput={(e) => setForm({ ...form, responder: e.currentTarget.value })}
          />
        )}
      </Field>
      <Field label={t("chat.slow_mode")} hint={t("chat.slow_mode_hint")}>
        {(id) => (
          <input
            id={id}
            type="number"
            min={0}
            max={21600}
            value={form.slow}
            onInput={(e) => setForm({ ...form, slow: e.currentTarget.value })}
          />
        )}
      </Field>
      <ErrorNote error={save.error} />
      {saved && (
        <p role="status" class="small muted">
          {t("chat.saved")}
        </p>
      )}
      <div class="row">
        <button type="submit" disabled={save.busy}>
          <Busy busy={save.busy} label="chat.save_settings" />
        </button>
        <button
          type="button"
          class="secondary"
          disabled={archive.busy}
          onClick={() =>
            archive.run(async () => {
              await ok(
                api.POST("/api/messaging/rooms/{room}/archive", {
                  params: { path: { room: room.id } },
                }),
              );
              changed();
            })
          }
        >
          {t("chat.archive")}
        </button>
      </div>
      <ErrorNote error={archive.error} />
    </form>
  );
}

/** Who is in a group: its managers bring people in; anyone leaves. */
function GroupPeople({ room }: { room: string }) {
  const { t } = useI18n();
  const { user } = useSession();
  const { route } = useLocation();
  const people = useLoad(
    () => ok(api.GET("/api/messaging/rooms/{room}/participants", { params: { path: { room } } })),
    [room],
  );
  const name = usePeople((people.data?.items ?? []).map((p) => p.principal));
  const [who, setWho] = useState("");
  const { busy, error, run } = useAction();
  const me = `user:${user?.id}`;
  const manager = (people.data?.items ?? []).some((p) => p.principal === me && p.manager);
  const add = (event: Event) => {
    event.preventDefault();
    run(async () => {
      await ok(
        api.POST("/api/messaging/rooms/{room}/participants", {
          params: { path: { room } },
          body: { principal: await personNamed(who) },
        }),
      );
      setWho("");
      people.reload();
    });
  };
  const leave = () =>
    run(async () => {
      await ok(
        api.DELETE("/api/messaging/rooms/{room}/participants/{principal}", {
          params: { path: { room, principal: me } },
        }),
      );
      route("/messages");
    });
  return (
    <>
      <h2 id="people-heading">{t("chat.people")}</h2>
      <ul class="list" aria-labelledby="people-heading">
        {(people.data?.items ?? []).map((p) => (
          <li key={p.principal}>
            {name(p.principal)}
            {p.manager && <span class="muted small"> · {t("chat.manager")}</span>}
          </li>
        ))}
      </ul>
      {manager && (
        <form class="row" onSubmit={add} aria-label={t("chat.add_person")}>
          <label class="skip" for="add-person">
            {t("chat.username")}
          </label>
          <input
            id="add-person"
            required
            value={who}
            placeholder={t("chat.username")}
            onInput={(e) => setWho(e.currentTarget.value)}
          />
          <button type="submit" class="secondary" disabled={busy}>
            {t("chat.add_person")}
          </button>
        </form>
      )}
      <ErrorNote error={error ?? people.error} />
      <button type="button" class="ghost" onClick={leave} disabled={busy}>
        {t("chat.leave")}
      </button>
    </>
  );
}

/** One message: its words (rendered by the server, safely), reactions, and its author's tools. */
function ChatLine({
  room,
  message: m,
  mine,
  changed,
}: {
  room: string;
  message: ChatMessage;
  mine: boolean;
  changed: (m: ChatMessage) => void;
}) {
  const { t, dateTime } = useI18n();
  const [editing, setEditing] = useState<string | null>(null);
  const { busy, error, run } = useAction();
  const path = { room, message: m.id };
  const react = (emoji: string, had: Reaction | undefined) =>
    run(async () => {
      const at = { params: { path: { ...path, emoji } } };
      const next = had?.mine
        ? await ok(
            api.DELETE("/api/messaging/rooms/{room}/messages/{message}/reactions/{emoji}", at),
          )
        : await ok(api.PUT("/api/messaging/rooms/{room}/messages/{message}/reactions/{emoji}", at));
      changed(next);
    });
  const save = (event: Event) => {
    event.preventDefault();
    run(async () => {
      const next = await ok(
        api.PATCH("/api/messaging/rooms/{room}/messages/{message}", {
          params: { path },
          body: { body: editing ?? "" },
        }),
      );
      setEditing(null);
      changed({ ...next, reactions: m.reactions });
    });
  };
  const remove = () =>
    run(async () => {
      await ok(api.DELETE("/api/messaging/rooms/{room}/messages/{message}", { params: { path } }));
      changed({ ...m, body: "", html: "", deleted: true, reactions: [] });
    });
  return (
    <article class="message" data-id={m.id}>
      <span class="who">{m.author_handle}</span>
      <time dateTime={m.created_at}>{dateTime(m.created_at)}</time>
      {m.topic && <span class="muted small"> · {m.topic}</span>}
      {m.deleted ? (
        <p class="muted">{t("chat.deleted")}</p>
      ) : editing !== null ? (
        <form class="row" onSubmit={save}>
          <label class="skip" for={`edit-${m.id}`}>
            {t("chat.edit")}
          </label>
          <input
            id={`edit-${m.id}`}
            value={editing}
            onInput={(e) => setEditing(e.currentTarget.value)}
          />
          <button type="submit" disabled={busy}>
            {t("chat.save")}
          </button>
          <button type="button" class="ghost" onClick={() => setEditing(null)}>
            {t("common.cancel")}
          </button>
        </form>
      ) : (
        // Safe: the server renders markdown with raw HTML escaped and only safe links.
        <div class="body" dangerouslySetInnerHTML={{ __html: m.html }} />
      )}
      {m.edited_at && !m.deleted && <span class="muted small">{t("chat.edited")}</span>}
      {!m.deleted && (
        <div class="row small">
          {REACTIONS.map((emoji) => {
            const had = m.reactions.find((r) => r.emoji === emoji);
            return (
              <button
                key={emoji}
                type="button"
                class="ghost"
                aria-pressed={Boolean(had?.mine)}
                aria-label={t("chat.react", { emoji, n: had?.count ?? 0 })}
                onClick={() => react(emoji, had)}
                disabled={busy}
              >
                {emoji} {had?.count ?? ""}
              </button>
            );
          })}
          {mine && editing === null && (
            <>
              <button type="button" class="ghost" onClick={() => setEditing(m.body)}>
                {t("chat.edit")}
              </button>
              <button type="button" class="ghost" onClick={remove} disabled={busy}>
                {t("chat.delete")}
              </button>
            </>
          )}
        </div>
      )}
      <ErrorNote error={error} />
    </article>
  );
}

const BOUNDS = ["", "guest", "member", "admin", "owner"] as const;

/** A new room in a community (its admins): for everyone, or from a role up. */
function NewCommunityRoom({ dao, added }: { dao: string; added: () => void }) {
  const { t } = useI18n();
  const [form, setForm] = useState({ slug: "", title: "", audience: "", posters: "" });
  const { busy, error, run } = useAction();
  const set = (field: keyof typeof form) => (e: Event) =>
    setForm({ ...form, [field]: (e.currentTarget as HTMLInputElement).value });
  const submit = (event: Event) => {
    event.preventDefault();
    run(async () => {
      await ok(
        api.POST("/api/messaging/daos/{dao}/rooms", {
          params: { path: { dao }, header: { "Idempotency-Key": idempotencyKey() } },
          body: {
            slug: form.slug.trim(),
            title: form.title.trim(),
            audience: form.audience || null,
            posters: form.posters || null,
          },
        }),
      );
      setForm({ slug: "", title: "", audience: "", posters: "" });
      added();
    });
  };
  const bound = (field: "audience" | "posters", label: string, everyone: string) => (
    <RoleBound
      label={label}
      everyone={everyone}
      value={form[field]}
      set={(value) => setForm({ ...form, [field]: value })}
    />
  );
  return (
    <form class="card stack" onSubmit={submit} aria-label={t("chat.new_room")}>
      <h3>{t("chat.new_room")}</h3>
      <Field label={t("rooms.slug")} hint={t("rooms.slug_hint")}>
        {(id) => <input id={id} required value={form.slug} onInput={set("slug")} />}
      </Field>
      <Field label={t("rooms.name")}>
        {(id) => <input id={id} required value={form.title} onInput={set("title")} />}
      </Field>
      {bound("audience", t("chat.audience"), t("chat.audience_default"))}
      {bound("posters", t("chat.posters"), t("chat.posters_default"))}
      <ErrorNote error={error} />
      <button type="submit" disabled={busy}>
        <Busy busy={busy} label="rooms.create" />
      </button>
    </form>
  );
}

/** A community's rooms, for its page; its admins open new ones. */
export function CommunityRooms({ dao, admin }: { dao: string; admin: boolean }) {
  const { t } = useI18n();
  const rooms = usePaged(
    (cursor) =>
      ok(
        api.GET("/api/messaging/daos/{dao}/rooms", {
          params: { path: { dao }, query: { limit: 50, cursor } },
        }),
      ),
    [dao],
  );
  // A community just started gets its rooms a moment later.
  const [tries, setTries] = useState(0);
  useEffect(() => {
    if (rooms.items?.length !== 0 || tries >= 10) return;
    const timer = window.setTimeout(() => {
      setTries((n) => n + 1);
      void rooms.reload();
    }, 500);
    return () => window.clearTimeout(timer);
  }, [rooms.items, tries]);
  return (
    <>
      <h2>{t("chat.rooms")}</h2>
      <Listed items={rooms.items} error={rooms.error} empty={t("chat.no_rooms")}>
        {(items) => (
          <ul class="list card" aria-label={t("chat.rooms")}>
            {items.map((room) => (
              <li key={room.id} class="row spread">
                <a href={`/messages/${room.id}`}>{room.title}</a>
                {room.unread ? (
                  <span class="muted small">{t("chat.unread", { n: room.unread })}</span>
                ) : null}
              </li>
            ))}
          </ul>
        )}
      </Listed>
      {admin && <NewCommunityRoom dao={dao} added={() => void rooms.reload()} />}
    </>
  );
}
