// The city feed, public pages of citizens and agents (where anyone may ask
// a public agent a question), and agents' presence.
// Signed-in readers get new entries live from `/ws/city/feed`; everyone
// else (the feed is public) polls for them.
import { useContext, useEffect, useRef, useState } from "preact/hooks";
import { ApiFailure, api, ok, type Schemas } from "../api/client";
import { type Key, useI18n } from "../i18n";
import { type Frame, subscribe } from "../live";
import { useSession } from "../session";
import { ErrorNote, Field, Listed, Loading, MoreButton, useAction, useLoad, usePaged } from "../ui";
import { Presence } from "./city";

export type Entry = Schemas["FeedEntryView"];
type Agent = Schemas["AgentPresence"];
type FeedKind = Schemas["FeedKind"];

/** How often signed-out readers ask for new entries. */
const POLL_MS = 15_000;

export interface CityEvents {
  entry?: (entry: Entry) => void;
  agent?: (agent: string, status: Agent["status"]) => void;
}

/**
 * Calls `on` with each new feed entry and agent presence change: from the
 * feed socket when signed in, else by polling (entries only).
 */
export function useCityEvents(on: CityEvents) {
  const { user } = useSession();
  const handlers = useRef(on);
  handlers.current = on;
  useEffect(() => {
    if (user) {
      const sub = subscribe("/ws/city/feed", {
        frame: (frame: Frame) => {
          if (frame.type === "entry") handlers.current.entry?.(frame.entry as Entry);
          else if (frame.type === "agent")
            handlers.current.agent?.(String(frame.agent), frame.status as Agent["status"]);
        },
      });
      return () => sub.close();
    }
    // Polling brings entries only: agents' presence is live for the signed-in.
    if (!handlers.current.entry) return;
    let newest = 0;
    let stopped = false;
    const poll = async () => {
      try {
        const page = await ok(api.GET("/api/city/feed", { params: { query: { limit: 50 } } }));
        const fresh = page.items.filter((e) => e.seq > newest).reverse();
        if (newest > 0) for (const e of fresh) handlers.current.entry?.(e);
        newest = Math.max(newest, ...page.items.map((e) => e.seq));
      } catch {
        // The next poll tries again; the page shows what it has.
      }
    };
    void poll();
    const timer = window.setInterval(() => !stopped && void poll(), POLL_MS);
    return () => {
      stopped = true;
      window.clearInterval(timer);
    };
  }, [user]);
}

/** Where an actor's public page is: `/people/<username>` or `/agents/<id>`. */
export function actorHref(actor: string): string | null {
  if (actor.startsWith("agent:")) return `/agents/${encodeURIComponent(actor.slice(6))}`;
  if (actor === "system" || actor.includes(":")) return null;
  return `/people/${encodeURIComponent(actor)}`;
}

function Actor({ actor }: { actor: string }) {
  const href = actorHref(actor);
  return href ? <a href={href}>{actor}</a> : <span>{actor}</span>;
}

const WHAT: Record<string, Key> = {
  message: "feed.what.message",
  room_opened: "feed.what.room_opened",
  map_changed: "feed.what.map_changed",
  dao_created: "feed.what.dao_created",
  dao_updated: "feed.what.dao_updated",
  dao_archived: "feed.what.dao_archived",
};

function EntryItem({ entry }: { entry: Entry }) {
  const { t, lang } = useI18n();
  const what = WHAT[entry.what];
  return (
    <li class={`entry ${entry.kind}`}>
      <div class="small muted">
        <Actor actor={entry.actor} /> {what ? t(what) : entry.what}{" "}
        {entry.room && <a href={`/rooms/${entry.room}`}>#{entry.room}</a>}
        {entry.dao && <a href={`/communities/${entry.dao}`}>{entry.dao}</a>} ·{" "}
        <time dateTime={entry.created_at}>
          {new Date(entry.created_at).toLocaleString(lang === "uk" ? "uk-UA" : "en-GB")}
        </time>
      </div>
      {entry.text && <div class="entry-text">{entry.text}</div>}
    </li>
  );
}

/** A paged list of entries, newest first, with live ones on top. */
function EntryList({ actor, kind, label }: { actor?: string; kind?: FeedKind; label: string }) {
  const { t } = useI18n();
  const entries = usePaged(
    (cursor) =>
      ok(
        api.GET("/api/city/feed", {
          params: { query: { limit: 30, cursor, actor, kind } },
        }),
      ),
    [actor, kind],
  );
  useCityEvents({
    entry: (entry) => {
      if ((actor && entry.actor !== actor) || (kind && entry.kind !== kind)) return;
      entries.setItems((known) =>
        known?.some((e) => e.seq === entry.seq) ? known : [entry, ...(known ?? [])],
      );
    },
  });
  return (
    <>
      <Listed items={entries.items} error={entries.error} empty={t("feed.empty")}>
        {(items) => (
          <ul class="list card feed" aria-label={label} aria-live="polite">
            {items.map((entry) => (
              <EntryItem key={entry.seq} entry={entry} />
            ))}
          </ul>
        )}
      </Listed>
      <MoreButton paged={entries} />
    </>
  );
}

const KINDS: FeedKind[] = ["room_message", "agent_reply", "system", "dao_event"];

export function Feed() {
  const { t } = useI18n();
  const [kind, setKind] = useState<FeedKind | "">("");
  return (
    <div class="city">
      <section class="stack">
        <div class="spread">
          <h1>{t("feed.title")}</h1>
          <label class="row small">
            {t("feed.show")}
            <select
              value={kind}
              onChange={(e) => setKind(e.currentTarget.value as FeedKind | "")}
              style={{ width: "auto" }}
            >
              <option value="">{t("feed.kind.all")}</option>
              {KINDS.map((k) => (
                <option key={k} value={k}>
                  {t(`feed.kind.${k}` as Key)}
                </option>
              ))}
            </select>
          </label>
        </div>
        <EntryList kind={kind || undefined} label={t("feed.title")} />
      </section>
      <AgentsList />
    </div>
  );
}

function StatusBadge({ status }: { status: Agent["status"] }) {
  const { t } = useI18n();
  return <span class={`badge status-${status}`}>{t(`agents.status.${status}` as Key)}</span>;
}

/** Agents that have reported, with their presence, live. */
export function AgentsList() {
  const { t } = useI18n();
  const agents = useLoad(
    () => ok(api.GET("/api/city/agents", { params: { query: { limit: 100 } } })),
    [],
  );
  useCityEvents({
    agent: (agent, status) =>
      agents.setData((page) => {
        if (!page) return page;
        const now = new Date().toISOString();
        const others = page.items.filter((a) => a.agent !== agent);
        const known = page.items.find((a) => a.agent === agent);
        const next = { agent, status, since: now, last_seen: known?.last_seen ?? now };
        return {
          ...page,
          items: [...others, next].sort((a, b) => a.agent.localeCompare(b.agent)),
        };
      }),
  });
  return (
    <aside class="card stack" aria-label={t("agents.title")}>
      <h2>{t("agents.title")}</h2>
      <Listed items={agents.data?.items} error={agents.error} empty={t("agents.empty")}>
        {(items) => (
          <ul class="list">
            {items.map((a) => (
              <li key={a.agent} class="spread">
                <a href={`/agents/${encodeURIComponent(a.agent)}`}>{a.agent}</a>
                <StatusBadge status={a.status} />
              </li>
            ))}
          </ul>
        )}
      </Listed>
    </aside>
  );
}

/** A citizen's public page: who they are, whether they are here, what they did in public. */
export function Citizen({ username }: { username: string }) {
  const { t } = useI18n();
  const { user } = useSession();
  const present = useContext(Presence).includes(username);
  const person = useLoad(
    () =>
      user
        ? ok(api.GET("/api/auth/people/{username}", { params: { path: { username } } }))
        : Promise.resolve(null),
    [username, user],
  );
  return (
    <section class="stack">
      <div class="spread">
        <h1>{person.data?.display_name ?? username}</h1>
        {user && (
          <span class={`badge ${present ? "status-online" : "status-offline"}`}>
            {t(present ? "agents.status.online" : "agents.status.offline")}
          </span>
        )}
      </div>
      <p class="muted">@{username}</p>
      <ErrorNote error={person.error} />
      <h2>{t("feed.activity")}</h2>
      <EntryList actor={username} label={t("feed.activity")} />
    </section>
  );
}

/** An agent's public page: its presence, live, and its public replies. */
export function AgentPage({ id }: { id: string }) {
  const { t } = useI18n();
  const presence = useLoad(
    () =>
      ok(api.GET("/api/city/agents/{agent}", { params: { path: { agent: id } } })).catch(
        (e: unknown) => {
          // Never reported: offline, not an error.
          if (e && typeof e === "object" && "status" in e && e.status === 404) return null;
          throw e;
        },
      ),
    [id],
  );
  useCityEvents({
    agent: (agent, status) => {
      if (agent !== id) return;
      const now = new Date().toISOString();
      presence.setData((known) => ({
        agent,
        status,
        since: now,
        last_seen: known?.last_seen ?? now,
      }));
    },
  });
  if (presence.data === undefined && !presence.error) return <Loading />;
  return (
    <section class="stack">
      <div class="spread">
        <h1>{t("agents.heading", { id })}</h1>
        <StatusBadge status={presence.data?.status ?? "offline"} />
      </div>
      {presence.data ? (
        <p class="muted small">
          {t("agents.last_seen", { time: new Date(presence.data.last_seen).toLocaleString() })}
        </p>
      ) : (
        <p class="muted small">{t("agents.never")}</p>
      )}
      <ErrorNote error={presence.error} />
      <AskAgent id={id} />
      <h2>{t("feed.activity")}</h2>
      <EntryList actor={`agent:${id}`} label={t("feed.activity")} />
    </section>
  );
}

/** A question to a public agent, signed in or not; its answer below. */
function AskAgent({ id }: { id: string }) {
  const { t } = useI18n();
  const [question, setQuestion] = useState("");
  const [answer, setAnswer] = useState<string | null>(null);
  const { busy, error, run } = useAction();
  const closed = error instanceof ApiFailure && error.status === 404;
  const submit = (event: Event) => {
    event.preventDefault();
    void run(async () => {
      setAnswer(null);
      const answered = await ok(
        api.POST("/api/agents/public/{agent}/ask", {
          params: { path: { agent: id } },
          body: { question },
        }),
      );
      setAnswer(answered.answer);
    });
  };
  return (
    <form class="card stack" aria-label={t("agents.ask")} onSubmit={submit}>
      <h2>{t("agents.ask")}</h2>
      <Field label={t("agents.question")}>
        {(fieldId) => (
          <textarea
            id={fieldId}
            rows={3}
            maxLength={2000}
            required
            value={question}
            onInput={(e) => setQuestion(e.currentTarget.value)}
          />
        )}
      </Field>
      <div class="row">
        <button type="submit" disabled={busy || !question.trim()}>
          {busy ? t("agents.asking") : t("agents.send_question")}
        </button>
      </div>
      {closed ? <p class="muted">{t("agents.not_public")}</p> : <ErrorNote error={error} />}
      {answer !== null && (
        <div class="stack" aria-live="polite">
          <h3>{t("agents.answer")}</h3>
          <p class="city">{answer}</p>
        </div>
      )}
    </form>
  );
}
