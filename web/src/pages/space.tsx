// Space: the directory of public communities as planets (public), a
// planet's figures, and the node registry (city admins).
import { useState } from "preact/hooks";
import { api, ok, type Schemas } from "../api/client";
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

type Planet = Schemas["PlanetView"];
type NodeView = Schemas["NodeView"];
type NodeRole = Schemas["NodeRole"];
type NodeKind = Schemas["NodeKind"];
type Metrics = Schemas["Metrics"];

export function SpaceDirectory() {
  const { t, number } = useI18n();
  const { user } = useSession();
  const [query, setQuery] = useState("");
  const [q, setQ] = useState("");
  const planets = usePaged(
    (cursor) =>
      ok(
        api.GET("/api/space/planets", {
          params: { query: { limit: 30, cursor, q: q || undefined } },
        }),
      ),
    [q],
  );
  return (
    <section class="stack">
      <div class="spread">
        <h1>{t("space.title")}</h1>
        {user?.city_role === "admin" && <a href="/space/nodes">{t("space.nodes")}</a>}
      </div>
      <form
        class="row"
        onSubmit={(e) => {
          e.preventDefault();
          setQ(query.trim());
        }}
      >
        <Field label={t("space.search")}>
          {(id) => (
            <input
              id={id}
              type="search"
              value={query}
              onInput={(e) => setQuery(e.currentTarget.value)}
            />
          )}
        </Field>
        <button type="submit">{t("space.find")}</button>
      </form>
      <Listed items={planets.items} error={planets.error} empty={t("space.empty")}>
        {(items) => (
          <ul class="list card" aria-label={t("space.planets")}>
            {items.map((p) => (
              <li key={p.slug} class="spread">
                <a href={`/space/planets/${p.slug}`}>
                  <strong>{p.name}</strong>
                </a>
                <span class="muted small">
                  {t("space.members_n", { n: number(p.members) })} ·{" "}
                  {t("space.supply_n", { n: number(p.treasury_supply) })}
                </span>
              </li>
            ))}
          </ul>
        )}
      </Listed>
      <MoreButton paged={planets} />
    </section>
  );
}

function StatusBadge({ status }: { status: NodeView["status"] }) {
  const { t } = useI18n();
  const tone =
    status === "online"
      ? "online"
      : status === "offline" || status === "registered"
        ? "offline"
        : "busy";
  return <span class={`badge status-${tone}`}>{t(`space.status.${status}` as Key)}</span>;
}

function MetricsLine({ metrics }: { metrics: Metrics }) {
  const { t, number } = useI18n();
  const parts: string[] = [];
  if (metrics.cpu_percent != null) parts.push(t("space.cpu", { n: number(metrics.cpu_percent) }));
  if (metrics.memory_percent != null)
    parts.push(t("space.memory", { n: number(metrics.memory_percent) }));
  if (metrics.latency_ms != null) parts.push(t("space.latency", { n: number(metrics.latency_ms) }));
  if (metrics.agents != null) parts.push(t("space.agents_n", { n: number(metrics.agents) }));
  return <span class="muted small">{parts.join(" · ")}</span>;
}

/** Messages per day as bars: an SVG a screen reader reads as its label. */
function ActivityChart({ planet }: { planet: Planet }) {
  const { t } = useI18n();
  const days = planet.activity;
  const top = Math.max(1, ...days.map((d) => d.messages));
  const width = 24;
  return (
    <figure class="chart">
      <svg
        viewBox={`0 0 ${Math.max(1, days.length) * width} 120`}
        role="img"
        aria-label={t("space.chart", {
          days: days.map((d) => `${d.day}: ${d.messages}`).join(", "),
        })}
        preserveAspectRatio="none"
      >
        {days.map((d, i) => {
          const h = Math.round((d.messages / top) * 110);
          return <rect key={d.day} x={i * width + 3} y={115 - h} width={width - 6} height={h} />;
        })}
      </svg>
      <figcaption class="small muted">
        {days.length > 0 && `${days[0]?.day} — ${days[days.length - 1]?.day}`}
      </figcaption>
    </figure>
  );
}

export function PlanetPage({ slug }: { slug: string }) {
  const { t, number } = useI18n();
  const planet = useLoad(
    () => ok(api.GET("/api/space/planets/{slug}", { params: { path: { slug } } })),
    [slug],
  );
  if (planet.error) return <ErrorNote error={planet.error} />;
  const p = planet.data;
  if (!p) return <Loading />;
  const figures: [Key, number][] = [
    ["space.members", p.members],
    ["space.supply", p.treasury_supply],
    ["space.today", p.messages_today],
    ["space.week", p.messages_7d],
    ["space.runs_today", p.runs_today],
    ["space.runs_week", p.runs_7d],
  ];
  return (
    <section class="stack">
      <div class="spread">
        <h1>{p.name}</h1>
        <a href={`/communities/${p.slug}`}>{t("space.community")}</a>
      </div>
      <dl class="facts card" aria-label={t("space.figures")}>
        {figures.map(([label, value]) => (
          <div key={label}>
            <dt>{t(label)}</dt>
            <dd>{number(value)}</dd>
          </div>
        ))}
      </dl>
      <h2>{t("space.activity")}</h2>
      <ActivityChart planet={p} />
      <h2>{t("space.anomaly")}</h2>
      <p>
        {p.anomaly.score == null || p.anomaly.mean == null || p.anomaly.spread == null ? (
          t("space.anomaly_none", { days: p.anomaly.baseline_days })
        ) : (
          <>
            <strong>{number(p.anomaly.score)}</strong>{" "}
            <span class="muted small">
              {t("space.anomaly_is", {
                yesterday: number(p.anomaly.yesterday),
                mean: number(p.anomaly.mean),
                spread: number(p.anomaly.spread),
                days: p.anomaly.baseline_days,
              })}
            </span>
          </>
        )}
      </p>
      <h2>{t("space.satellites")}</h2>
      {p.satellites.length === 0 ? (
        <p class="muted">{t("space.no_satellites")}</p>
      ) : (
        <ul class="list card" aria-label={t("space.satellites")}>
          {p.satellites.map((s) => (
            <li key={s.id} class="spread">
              <span>
                {s.name} <StatusBadge status={s.status} />
              </span>
              <MetricsLine metrics={s.metrics} />
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}

const ROLES: NodeRole[] = ["production", "development", "backup", "worker"];
const KINDS: NodeKind[] = ["router", "gateway", "worker"];

/** The token a node sends its heartbeats with, shown once. */
function Token({ node, token }: { node: string; token: string }) {
  const { t } = useI18n();
  return (
    <div role="status" class="notice">
      <p>{t("space.token_once", { node })}</p>
      <code class="secret">{token}</code>
    </div>
  );
}

export function NodeRegistry() {
  const { t } = useI18n();
  const nodes = usePaged(
    (cursor) => ok(api.GET("/api/space/nodes", { params: { query: { limit: 50, cursor } } })),
    [],
  );
  const register = useAction();
  const change = useAction();
  const [form, setForm] = useState({
    id: "",
    name: "",
    role: "worker" as NodeRole,
    kind: "worker" as NodeKind,
    dao: "",
  });
  const [issued, setIssued] = useState<{ node: string; token: string } | null>(null);
  const submit = (event: Event) => {
    event.preventDefault();
    register.run(async () => {
      const created = await ok(
        api.POST("/api/space/nodes", {
          body: {
            id: form.id.trim(),
            name: form.name,
            role: form.role,
            kind: form.kind,
            dao: form.dao.trim() || null,
          },
        }),
      );
      setIssued({ node: created.node.id, token: created.token });
      setForm({ ...form, id: "", name: "" });
      await nodes.reload();
    });
  };
  const rotate = (id: string) =>
    change.run(async () => {
      const rotated = await ok(
        api.POST("/api/space/nodes/{node}/token", { params: { path: { node: id } } }),
      );
      setIssued({ node: id, token: rotated.token });
    });
  const remove = (id: string) =>
    change.run(async () => {
      await ok(api.DELETE("/api/space/nodes/{node}", { params: { path: { node: id } } }));
      await nodes.reload();
    });
  return (
    <section class="stack">
      <h1>{t("space.nodes")}</h1>
      {issued && <Token node={issued.node} token={issued.token} />}
      <ErrorNote error={change.error} />
      <Listed items={nodes.items} error={nodes.error} empty={t("space.no_nodes")}>
        {(items) => (
          <ul class="list card" aria-label={t("space.nodes")}>
            {items.map((n) => (
              <li key={n.id} class="stack">
                <div class="spread">
                  <span>
                    <a href={`/space/nodes/${n.id}`}>
                      <strong>{n.name}</strong>
                    </a>{" "}
                    <span class="muted small">
                      {n.id} · {t(`space.role.${n.role}` as Key)} ·{" "}
                      {t(`space.kind.${n.kind}` as Key)}
                      {n.dao && ` · ${n.dao}`}
                    </span>
                  </span>
                  <StatusBadge status={n.status} />
                </div>
                <MetricsLine metrics={n.metrics} />
                <div class="row">
                  <button
                    type="button"
                    class="secondary"
                    disabled={change.busy}
                    onClick={() => rotate(n.id)}
                  >
                    {t("space.rotate", { node: n.name })}
                  </button>
                  <button
                    type="button"
                    class="secondary"
                    disabled={change.busy}
                    onClick={() => remove(n.id)}
                  >
                    {t("space.remove", { node: n.name })}
                  </button>
                </div>
              </li>
            ))}
          </ul>
        )}
      </Listed>
      <MoreButton paged={nodes} />
      <form class="card stack" onSubmit={submit} aria-label={t("space.register")}>
        <h2>{t("space.register")}</h2>
        <div class="row">
          <Field label={t("space.node_id")} hint={t("rooms.slug_hint")}>
            {(id) => (
              <input
                id={id}
                required
                value={form.id}
                onInput={(e) => setForm({ ...form, id: e.currentTarget.value })}
              />
            )}
          </Field>
          <Field label={t("space.node_name")}>
            {(id) => (
              <input
                id={id}
                required
                value={form.name}
                onInput={(e) => setForm({ ...form, name: e.currentTarget.value })}
              />
            )}
          </Field>
        </div>
        <div class="row">
          <Field label={t("space.node_role")}>
            {(id) => (
              <select
                id={id}
                value={form.role}
                onChange={(e) => setForm({ ...form, role: e.currentTarget.value as NodeRole })}
              >
                {ROLES.map((r) => (
                  <option key={r} value={r}>
                    {t(`space.role.${r}` as Key)}
                  </option>
                ))}
              </select>
            )}
          </Field>
          <Field label={t("space.node_kind")}>
            {(id) => (
              <select
                id={id}
                value={form.kind}
                onChange={(e) => setForm({ ...form, kind: e.currentTarget.value as NodeKind })}
              >
                {KINDS.map((k) => (
                  <option key={k} value={k}>
                    {t(`space.kind.${k}` as Key)}
                  </option>
                ))}
              </select>
            )}
          </Field>
          <Field label={t("space.node_dao")} hint={t("space.node_dao_hint")}>
            {(id) => (
              <input
                id={id}
                value={form.dao}
                onInput={(e) => setForm({ ...form, dao: e.currentTarget.value })}
              />
            )}
          </Field>
        </div>
        <ErrorNote error={register.error} />
        <div>
          <button type="submit" disabled={register.busy}>
            <Busy busy={register.busy} label="space.register_button" />
          </button>
        </div>
      </form>
    </section>
  );
}

/** One node: what it last said, and its heartbeats. */
export function NodePage({ id }: { id: string }) {
  const { t, lang } = useI18n();
  const profile = useLoad(
    () => ok(api.GET("/api/space/nodes/{node}", { params: { path: { node: id } } })),
    [id],
  );
  if (profile.error) return <ErrorNote error={profile.error} />;
  const p = profile.data;
  if (!p) return <Loading />;
  const time = (at: string) => new Date(at).toLocaleString(lang === "uk" ? "uk-UA" : "en-GB");
  return (
    <section class="stack">
      <div class="spread">
        <h1>{p.node.name}</h1>
        <StatusBadge status={p.node.status} />
      </div>
      <p class="muted small">
        {p.node.hostname || p.node.id} {p.node.version && `· ${p.node.version}`} ·{" "}
        {p.node.last_heartbeat
          ? t("space.last_heartbeat", { time: time(p.node.last_heartbeat) })
          : t("space.never")}
      </p>
      <h2>{t("space.heartbeats")}</h2>
      <Listed items={p.heartbeats} error={null} empty={t("space.never")}>
        {(beats) => (
          <table>
            <caption class="skip">{t("space.heartbeats")}</caption>
            <thead>
              <tr>
                <th scope="col">{t("space.when")}</th>
                <th scope="col">{t("space.state")}</th>
                <th scope="col">{t("space.figures")}</th>
              </tr>
            </thead>
            <tbody>
              {beats.map((b) => (
                <tr key={b.at}>
                  <td>{time(b.at)}</td>
                  <td>
                    <StatusBadge status={b.status} />
                  </td>
                  <td>
                    <MetricsLine metrics={b.metrics} />
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </Listed>
    </section>
  );
}
