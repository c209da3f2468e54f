// A community's knowledge: the documents its members add (indexed just
// after, then searchable by meaning and words), a search over them, and
// removing one's own (admins: any).
import { useEffect, useState } from "preact/hooks";
import { api, idempotencyKey, ok, type Schemas } from "../api/client";
import { type Key, useI18n } from "../i18n";
import { useSession } from "../session";
import {
  Busy,
  ErrorNote,
  Field,
  Listed,
  Loading,
  MoreButton,
  useAction,
  useLoad,
  usePaged,
} from "../ui";
import { CommunityFacts, OwnFacts } from "./facts";

type Hit = Schemas["Hit"];
type Room = Schemas["ChatRoomView"];

/** A choice of one of the community's rooms, or none. */
function RoomChoice({
  rooms,
  value,
  none,
  set,
}: {
  rooms: Room[];
  value: string;
  none: string;
  set: (room: string) => void;
}) {
  const { t } = useI18n();
  return (
    <Field label={t("memory.room")}>
      {(id) => (
        <select id={id} value={value} onChange={(e) => set(e.currentTarget.value)}>
          <option value="">{none}</option>
          {rooms.map((r) => (
            <option key={r.id} value={r.id}>
              {r.title}
            </option>
          ))}
        </select>
      )}
    </Field>
  );
}

export function Knowledge({ slug, admin }: { slug: string; admin: boolean }) {
  const { t, dateTime } = useI18n();
  const { user } = useSession();
  // Documents may be for one room, and searches kept to one.
  const rooms = useLoad(
    () =>
      ok(api.GET("/api/messaging/daos/{dao}/rooms", { params: { path: { dao: slug } } })).then(
        (page) => page.items,
      ),
    [slug],
  );
  const roomName = (id: string) => rooms.data?.find((r) => r.id === id)?.title ?? id;
  const documents = usePaged(
    (cursor) =>
      ok(
        api.GET("/api/memory/daos/{dao}/documents", {
          params: { path: { dao: slug }, query: { limit: 20, cursor } },
        }),
      ),
    [slug],
  );
  // Documents are indexed a moment after they are added: look again
  // while any waits.
  const waiting = documents.items?.some((d) => !d.indexed_at && !d.index_error) ?? false;
  useEffect(() => {
    if (!waiting) return;
    const timer = setTimeout(documents.reload, 1000);
    return () => clearTimeout(timer);
  }, [waiting, documents.items]);
  const change = useAction();
  const remove = (id: string) =>
    change.run(async () => {
      await ok(
        api.DELETE("/api/memory/documents/{document}", { params: { path: { document: id } } }),
      );
      documents.reload();
    });
  return (
    <section class="stack" aria-labelledby="knowledge">
      <h2 id="knowledge">{t("memory.title")}</h2>
      <p class="muted">{t("memory.intro")}</p>
      <Search slug={slug} rooms={rooms.data ?? []} />
      <Listed items={documents.items} error={documents.error} empty={t("memory.empty")}>
        {(items) => (
          <ul class="list card" aria-label={t("memory.documents")}>
            {items.map((d) => (
              <li key={d.id} class="row spread">
                <span class="stack">
                  <strong>{d.title}</strong>
                  <span class="muted small">
                    {d.author_name} · {dateTime(d.created_at)} ·{" "}
                    {d.room && `${t("memory.for_room", { room: roomName(d.room) })} · `}
                    {d.indexed_at
                      ? t("memory.indexed", { n: d.chunk_count })
                      : d.index_error
                        ? t("memory.failed")
                        : t("memory.waiting")}
                  </span>
                </span>
                {(admin || d.author === `user:${user?.id}`) && (
                  <button
                    type="button"
                    class="ghost"
                    aria-label={t("memory.remove_named", { title: d.title })}
                    onClick={() => remove(d.id)}
                    disabled={change.busy}
                  >
                    {t("dao.remove")}
                  </button>
                )}
              </li>
            ))}
          </ul>
        )}
      </Listed>
      <MoreButton paged={documents} />
      <ErrorNote error={change.error} />
      <AddDocument
        rooms={rooms.data ?? []}
        post={(body) =>
          ok(
            api.POST("/api/memory/daos/{dao}/documents", {
              params: { path: { dao: slug }, header: { "Idempotency-Key": idempotencyKey() } },
              body,
            }),
          )
        }
        added={documents.reload}
      />
      <CommunityFacts slug={slug} admin={admin} />
    </section>
  );
}

function Search({ slug, rooms }: { slug: string; rooms: Room[] }) {
  const { t } = useI18n();
  const [q, setQ] = useState("");
  const [room, setRoom] = useState("");
  const [hits, setHits] = useState<Hit[] | null>(null);
  const { busy, error, run } = useAction();
  const submit = (event: Event) => {
    event.preventDefault();
    run(async () => {
      const found = await ok(
        api.GET("/api/memory/daos/{dao}/search", {
          params: {
            path: { dao: slug },
            query: { q: q.trim(), limit: 5, room: room || undefined },
          },
        }),
      );
      setHits(found.hits);
    });
  };
  return (
    <form class="card stack" aria-label={t("memory.ask")} onSubmit={submit}>
      <Field label={t("memory.ask")}>
        {(id) => (
          <input
            id={id}
            type="search"
            required
            maxLength={1000}
            value={q}
            onInput={(e) => setQ(e.currentTarget.value)}
          />
        )}
      </Field>
      {rooms.length > 0 && (
        <RoomChoice rooms={rooms} value={room} none={t("memory.all_rooms")} set={setRoom} />
      )}
      <button type="submit" class="secondary" disabled={busy}>
        <Busy busy={busy} label="memory.search" />
      </button>
      <ErrorNote error={error} />
      {hits && hits.length === 0 && <p class="muted">{t("memory.no_hits")}</p>}
      {hits && hits.length > 0 && (
        <ol class="list" aria-label={t("memory.hits")}>
          {hits.map((h) => (
            <li key={`${h.document}-${h.seq}`} class="stack">
              <strong>{h.heading ? `${h.title} › ${h.heading}` : h.title}</strong>
              <span>{h.text}</span>
            </li>
          ))}
        </ol>
      )}
    </form>
  );
}

type NewDocument = Schemas["CreateDocument"];

function AddDocument({
  post,
  added,
  heading = "memory.add",
  rooms = [],
}: {
  post: (body: NewDocument) => Promise<unknown>;
  added: () => void;
  heading?: Key;
  /** The rooms it may be for (none: own notes, which are for no room). */
  rooms?: Room[];
}) {
  const { t } = useI18n();
  const [title, setTitle] = useState("");
  const [body, setBody] = useState("");
  const [room, setRoom] = useState("");
  const { busy, error, run } = useAction();
  const submit = (event: Event) => {
    event.preventDefault();
    run(async () => {
      await post({ title: title.trim(), format: "markdown", body, room: room || null });
      setTitle("");
      setBody("");
      added();
    });
  };
  return (
    <form class="card stack" aria-label={t(heading)} onSubmit={submit}>
      <h3>{t(heading)}</h3>
      <Field label={t("memory.doc_title")}>
        {(id) => (
          <input
            id={id}
            required
            maxLength={200}
            value={title}
            onInput={(e) => setTitle(e.currentTarget.value)}
          />
        )}
      </Field>
      <Field label={t("memory.body")} hint={t("memory.body_hint")}>
        {(id) => (
          <textarea
            id={id}
            required
            rows={8}
            value={body}
            onInput={(e) => setBody(e.currentTarget.value)}
          />
        )}
      </Field>
      {rooms.length > 0 && (
        <RoomChoice rooms={rooms} value={room} none={t("memory.whole_community")} set={setRoom} />
      )}
      <ErrorNote error={error} />
      <button type="submit" disabled={busy}>
        <Busy busy={busy} label={heading} />
      </button>
    </form>
  );
}

/** What memory holds about oneself: the documents one wrote and the facts
 * one wrote, that are about one, or one's own — as a JSON download, and
 * erasing them all. */
export function MyMemory() {
  const { t } = useI18n();
  const held = useLoad(() => ok(api.GET("/api/memory/me/export")), []);
  const { busy, error, run } = useAction();
  // Read at the click: what memory holds now, not when the page opened.
  const download = () =>
    run(async () => {
      const now = await ok(api.GET("/api/memory/me/export"));
      const link = document.createElement("a");
      link.href = URL.createObjectURL(
        new Blob([JSON.stringify(now, null, 2)], { type: "application/json" }),
      );
      link.download = `daarion-memory-${location.hostname}.json`;
      link.click();
      URL.revokeObjectURL(link.href);
    });
  const erase = () => {
    if (!window.confirm(t("memory.erase_confirm"))) return;
    run(async () => {
      await ok(api.DELETE("/api/memory/me"));
      held.reload();
    });
  };
  if (held.error) return <ErrorNote error={held.error} />;
  if (!held.data) return <Loading />;
  const { documents, facts } = held.data;
  return (
    <section class="stack">
      <h2>{t("memory.mine")}</h2>
      <p class="muted">{t("memory.mine_intro")}</p>
      {documents.length === 0 ? (
        <p class="muted">{t("memory.mine_empty")}</p>
      ) : (
        <ul class="list card" aria-label={t("memory.mine")}>
          {documents.map((d) => (
            <li key={d.id} class="row spread">
              <strong>{d.title}</strong>
              <span class="muted small">{d.dao.startsWith("user:") ? t("memory.own") : d.dao}</span>
            </li>
          ))}
        </ul>
      )}
      <AddDocument
        heading="memory.add_own"
        post={(body) =>
          ok(
            api.POST("/api/memory/me/documents", {
              params: { header: { "Idempotency-Key": idempotencyKey() } },
              body,
            }),
          )
        }
        added={held.reload}
      />
      <OwnFacts changed={held.reload} />
      <ErrorNote error={error} />
      <div class="row">
        <button type="button" class="secondary" onClick={download}>
          {t("memory.download")}
        </button>
        <button
          type="button"
          onClick={erase}
          disabled={busy || (documents.length === 0 && facts.length === 0)}
        >
          <Busy busy={busy} label="memory.erase" />
        </button>
      </div>
    </section>
  );
}

/**
 * What an agent keeps of its conversations (rooms, or a person's with
 * their Second Me): for each, the latest version of its rolling summary
 * of what has left the window it reads.
 */
export function AgentSummaries({ slug }: { slug: string }) {
  const { t, dateTime } = useI18n();
  const summaries = usePaged(
    (cursor) =>
      ok(
        api.GET("/api/memory/agents/{agent}/summaries", {
          params: { path: { agent: slug }, query: { limit: 20, cursor } },
        }),
      ),
    [slug],
  );
  return (
    <section class="stack" aria-labelledby="summaries">
      <h2 id="summaries">{t("summaries.title")}</h2>
      <p class="muted">{t("summaries.intro")}</p>
      <Listed items={summaries.items} error={summaries.error} empty={t("summaries.empty")}>
        {(items) => (
          <ul class="list card" aria-label={t("summaries.title")}>
            {items.map((s) => {
              // `room:<id>[#topic]`, or a Second Me conversation `secondme:<id>`.
              const [kind, rest = ""] = s.conversation.split(/:(.*)/s);
              const href =
                kind === "secondme" ? `/second-me/${rest}` : `/messages/${rest.split("#")[0]}`;
              return (
                <li key={s.conversation} class="stack">
                  <span class="muted small">
                    <a href={href}>{t("summaries.open")}</a> ·{" "}
                    {t("summaries.covers", { n: s.messages, version: s.version })} ·{" "}
                    {dateTime(s.created_at)}
                  </span>
                  <p class="summary">{s.summary}</p>
                </li>
              );
            })}
          </ul>
        )}
      </Listed>
      <MoreButton paged={summaries} />
    </section>
  );
}
