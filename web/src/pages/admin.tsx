// The city admins' console: policies, invitations, usage, the audit log,
// dead letters and agents' tools. The server decides who may (city admins); a refused call
// shows its 403 like any other error.
import type { ComponentChildren } from "preact";
import { useState } from "preact/hooks";
import { ApiFailure, api, ok, type Schemas } from "../api/client";
import { type Key, useI18n } from "../i18n";
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
import { asJson, useMoney } from "./settings";
import { ToolsAdmin } from "./tools";

const SECTIONS: [string, Key][] = [
  ["policies", "admin.policies"],
  ["usage", "admin.usage"],
  ["quotas", "admin.quotas"],
  ["config", "admin.config"],
  ["invites", "admin.invites"],
  ["audit", "admin.audit"],
  ["dead-letters", "admin.dead_letters"],
  ["tools", "admin.tools"],
];

export function Admin({ section }: { section: string }) {
  const { t } = useI18n();
  const page: Record<string, () => ComponentChildren> = {
    policies: () => <Policies />,
    usage: () => <UsageDashboard />,
    quotas: () => <Quotas />,
    config: () => <Config />,
    invites: () => <Invites />,
    audit: () => <Audit />,
    "dead-letters": () => <DeadLetters />,
    tools: () => <ToolsAdmin />,
  };
  return (
    <div class="settings">
      <nav aria-label={t("nav.admin")} class="subnav">
        {SECTIONS.map(([id, label]) => (
          <a key={id} href={`/admin/${id}`} aria-current={id === section ? "page" : undefined}>
            {t(label)}
          </a>
        ))}
      </nav>
      <div>{(page[section] ?? page.policies)?.()}</div>
    </div>
  );
}

type PolicyFile = Schemas["PolicyFile"];

function Policies() {
  const { t } = useI18n();
  const current = useLoad(() => ok(api.GET("/api/pdp/policies")), []);
  const [edited, setEdited] = useState<PolicyFile[] | null>(null);
  const [saved, setSaved] = useState<number | null>(null);
  const { busy, error, run, setError } = useAction();
  const files = edited ?? current.data?.files;

  const edit = (name: string, text: string) => {
    setSaved(null);
    setError(null);
    setEdited((files ?? []).map((f) => (f.name === name ? { ...f, text } : f)));
  };
  const save = (event: Event) => {
    event.preventDefault();
    run(async () => {
      const set = await ok(api.PUT("/api/pdp/policies", { body: { files: files ?? [] } }));
      current.reload();
      setEdited(null);
      setSaved(set.version);
    });
  };
  // The engine's message names the file it could not read; that file's
  // editor shows it.
  const invalid = error instanceof ApiFailure && error.status === 422 ? error.message : null;
  const blamed = (name: string) =>
    invalid !== null && (invalid.includes(name) || !files?.some((f) => invalid.includes(f.name)));

  if (current.error) return <ErrorNote error={current.error} />;
  if (!files || !current.data) return <Loading />;
  return (
    <form class="stack" onSubmit={save}>
      <h1>{t("admin.policies")}</h1>
      <p class="muted">{t("policies.intro", { version: current.data.version })}</p>
      {files.map((file) => {
        const id = `policy-${file.name}`;
        const problem = blamed(file.name);
        return (
          <div key={file.name} class="stack">
            <label for={id}>{file.name}</label>
            <textarea
              id={id}
              class="code"
              rows={Math.min(24, file.text.split("\n").length + 1)}
              spellcheck={false}
              value={file.text}
              aria-invalid={problem}
              aria-describedby={problem ? `${id}-error` : undefined}
              onInput={(e) => edit(file.name, e.currentTarget.value)}
            />
            {problem && (
              <p id={`${id}-error`} class="error" role="alert">
                {t("policies.invalid", { message: invalid ?? "" })}
              </p>
            )}
          </div>
        );
      })}
      {!invalid && <ErrorNote error={error} />}
      {saved !== null && (
        <p class="notice" role="status">
          {t("policies.saved", { version: saved })}
        </p>
      )}
      <div class="row">
        <button type="submit" disabled={busy || edited === null}>
          <Busy busy={busy} label="policies.save" />
        </button>
        {edited && (
          <button type="button" class="ghost" onClick={() => setEdited(null)}>
            {t("policies.discard")}
          </button>
        )}
      </div>
      <PolicyVersions
        current={current.data.version}
        saved={saved}
        load={(files) => {
          setSaved(null);
          setError(null);
          setEdited(files);
        }}
      />
    </form>
  );
}

/** Earlier policy sets: any can be loaded into the editor and saved again (restored). */
function PolicyVersions({
  current,
  saved,
  load,
}: {
  current: number;
  saved: number | null;
  load: (files: PolicyFile[]) => void;
}) {
  const { t, dateTime } = useI18n();
  const versions = usePaged(
    (cursor) =>
      ok(api.GET("/api/pdp/policies/versions", { params: { query: { limit: 20, cursor } } })),
    [saved],
  );
  const fetching = useAction();
  const open = (version: number) =>
    fetching.run(async () => {
      const set = await ok(
        api.GET("/api/pdp/policies/versions/{version}", { params: { path: { version } } }),
      );
      load(set.files);
    });
  const item = (version: number, who: string) => (
    <li key={version} class="row spread">
      <span>
        {who}
        {version === current && <span class="badge">{t("policies.in_force")}</span>}
      </span>
      {version !== current && (
        <button type="button" class="secondary" onClick={() => open(version)}>
          {t("policies.load", { version })}
        </button>
      )}
    </li>
  );
  return (
    <section class="stack">
      <h2>{t("policies.versions")}</h2>
      <ErrorNote error={versions.error ?? fetching.error} />
      {versions.items === undefined ? (
        !versions.error && <Loading />
      ) : (
        <ul class="list card" aria-label={t("policies.versions")}>
          {versions.items.map((v) =>
            item(
              v.version,
              t("policies.version", {
                version: v.version,
                author: v.author,
                at: dateTime(v.created_at),
              }),
            ),
          )}
          {!versions.hasMore && item(0, t("policies.shipped"))}
        </ul>
      )}
      <MoreButton paged={versions} />
    </section>
  );
}

function Invites() {
  const { t, dateTime } = useI18n();
  const [role, setRole] = useState<"citizen" | "admin">("citizen");
  const [hours, setHours] = useState("72");
  const [made, setMade] = useState<Schemas["CreatedInvite"][]>([]);
  const { busy, error, run } = useAction();
  const submit = (event: Event) => {
    event.preventDefault();
    run(async () => {
      const invite = await ok(
        api.POST("/api/auth/invites", {
          body: { role, expires_in_hours: hours.trim() ? Number(hours) : null },
        }),
      );
      setMade((known) => [invite, ...known]);
    });
  };
  return (
    <section class="stack">
      <h1>{t("admin.invites")}</h1>
      <p class="muted">{t("invites.intro")}</p>
      <form class="card stack" onSubmit={submit}>
        <Field label={t("invites.role")}>
          {(id) => (
            <select
              id={id}
              value={role}
              onChange={(e) => setRole(e.currentTarget.value as typeof role)}
            >
              <option value="citizen">{t("role.citizen")}</option>
              <option value="admin">{t("role.admin")}</option>
            </select>
          )}
        </Field>
        <Field label={t("invites.hours")}>
          {(id) => (
            <input
              id={id}
              type="number"
              min={1}
              max={720}
              value={hours}
              onInput={(e) => setHours(e.currentTarget.value)}
            />
          )}
        </Field>
        <ErrorNote error={error} />
        <button type="submit" disabled={busy}>
          <Busy busy={busy} label="invites.create" />
        </button>
      </form>
      {made.length > 0 && (
        <ul class="list card" aria-label={t("invites.made")}>
          {made.map((invite) => {
            const link = `${location.origin}/register?invite=${encodeURIComponent(invite.invite)}`;
            return (
              <li key={invite.invite} class="stack">
                <div>
                  {t(`role.${invite.role}`)} ·{" "}
                  {t("invites.expires", { at: dateTime(invite.expires_at) })}
                </div>
                <code class="secret">{link}</code>
                <div>
                  <button
                    type="button"
                    class="secondary"
                    onClick={() => navigator.clipboard?.writeText(link)}
                  >
                    {t("invites.copy")}
                  </button>
                </div>
              </li>
            );
          })}
        </ul>
      )}
    </section>
  );
}
type GroupBy = Schemas["GroupBy"];
const GROUPS: GroupBy[] = ["model", "user", "agent", "kind", "provider", "api_key", "microdao"];
type Bucket = Schemas["Bucket"];

/** Cost per day as bars: an SVG a screen reader reads as its table. */
function DailyChart({ days, currency }: { days: Bucket[]; currency: string }) {
  const { t } = useI18n();
  const money = useMoney();
  const top = Math.max(1, ...days.map((d) => d.cost_micros));
  const width = 24;
  return (
    <figure class="chart">
      <svg
        viewBox={`0 0 ${Math.max(1, days.length) * width} 120`}
        role="img"
        aria-label={t("usage.chart", { n: days.length })}
        preserveAspectRatio="none"
      >
        {days.map((d, i) => {
          const h = Math.round((d.cost_micros / top) * 110);
          return (
            <rect key={d.period} x={i * width + 3} y={115 - h} width={width - 6} height={h}>
              <title>{`${d.period}: ${money(d.cost_micros, currency)}`}</title>
            </rect>
          );
        })}
      </svg>
      <figcaption class="small muted">
        {days.length > 0 && `${days[0]?.period} — ${days[days.length - 1]?.period}`}
      </figcaption>
    </figure>
  );
}

function UsageDashboard() {
  const { t, number } = useI18n();
  const money = useMoney();
  const [group, setGroup] = useState<GroupBy>("model");
  const [days, setDays] = useState(30);
  const from = new Date(Date.now() - days * 86_400_000).toISOString().slice(0, 10);
  const range = `${from}T00:00:00Z`;
  const daily = useLoad(
    () =>
      ok(
        api.GET("/api/usage/summary", {
          params: { query: { granularity: "day", from: range } },
        }),
      ).then(asJson),
    [range],
  );
  const grouped = useLoad(
    () =>
      ok(
        api.GET("/api/usage/summary", {
          params: { query: { granularity: "total", group_by: group, from: range } },
        }),
      ).then(asJson),
    [range, group],
  );
  const csv = `/api/usage/summary?format=csv&granularity=day&group_by=${group}&from=${encodeURIComponent(range)}`;
  const currency = daily.data?.currency ?? "USD";
  return (
    <section class="stack">
      <h1>{t("admin.usage")}</h1>
      <div class="row grid3">
        <Field label={t("usage.group_by")}>
          {(id) => (
            <select
              id={id}
              value={group}
              onChange={(e) => setGroup(e.currentTarget.value as GroupBy)}
            >
              {GROUPS.map((g) => (
                <option key={g} value={g}>
                  {t(`usage.group.${g}`)}
                </option>
              ))}
            </select>
          )}
        </Field>
        <Field label={t("usage.period")}>
          {(id) => (
            <select id={id} value={days} onChange={(e) => setDays(Number(e.currentTarget.value))}>
              {[7, 30, 90].map((n) => (
                <option key={n} value={n}>
                  {t("usage.last_days", { n })}
                </option>
              ))}
            </select>
          )}
        </Field>
        <a class="button secondary" href={csv} download={`daarion-usage-${group}.csv`}>
          {t("usage.csv")}
        </a>
      </div>
      <ErrorNote error={daily.error} />
      {daily.data ? (
        <DailyChart days={daily.data.items} currency={currency} />
      ) : (
        !daily.error && <Loading />
      )}
      <ErrorNote error={grouped.error} />
      {grouped.data &&
        (grouped.data.items.length === 0 ? (
          <Empty>{t("usage.nothing")}</Empty>
        ) : (
          <table>
            <thead>
              <tr>
                <th scope="col">{t(`usage.group.${group}`)}</th>
                <th scope="col">{t("usage.calls")}</th>
                <th scope="col">{t("usage.errors")}</th>
                <th scope="col">{t("usage.tokens")}</th>
                <th scope="col">{t("usage.latency")}</th>
                <th scope="col">{t("usage.cost")}</th>
              </tr>
            </thead>
            <tbody>
              {grouped.data.items.map((b) => (
                <tr key={b.key ?? "-"}>
                  <td>{b.key ?? "—"}</td>
                  <td>{number(b.events)}</td>
                  <td>{number(b.errors)}</td>
                  <td>{number(b.tokens_in + b.tokens_out)}</td>
                  <td>{number(b.avg_latency_ms)}</td>
                  <td>{money(b.cost_micros, grouped.data?.currency ?? currency)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        ))}
    </section>
  );
}

function Audit() {
  const { t, dateTime } = useI18n();
  const entries = usePaged(
    (cursor) => ok(api.GET("/api/pdp/audit", { params: { query: { limit: 50, cursor } } })),
    [],
  );
  const name = usePeople((entries.items ?? []).map((e) => e.actor));
  return (
    <section class="stack">
      <h1>{t("admin.audit")}</h1>
      <Listed items={entries.items} error={entries.error} empty={t("audit.empty")}>
        {(items) => (
          <table>
            <thead>
              <tr>
                <th scope="col">{t("audit.time")}</th>
                <th scope="col">{t("audit.actor")}</th>
                <th scope="col">{t("audit.service")}</th>
                <th scope="col">{t("audit.what")}</th>
              </tr>
            </thead>
            <tbody>
              {items.map((e) => (
                <tr key={e.event_id}>
                  <td>{dateTime(e.time)}</td>
                  <td title={e.actor}>{name(e.actor)}</td>
                  <td>{e.service}</td>
                  <td>
                    <code class="small">{summarise(e.record)}</code>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </Listed>
      <MoreButton paged={entries} />
    </section>
  );
}

/** One line of an audit record: what was done (or refused) to what. */
function summarise(record: Record<string, unknown>): string {
  const parts = ["action", "what", "resource", "decision", "reason", "status"]
    .map((k) => record[k])
    .filter((v) => v !== undefined && v !== null)
    .map((v) => (typeof v === "string" ? v : JSON.stringify(v)));
  return parts.length ? parts.join(" · ") : JSON.stringify(record);
}

function DeadLetters() {
  const { t, dateTime } = useI18n();
  const letters = usePaged(
    (cursor) => ok(api.GET("/api/ops/dead-letters", { params: { query: { limit: 50, cursor } } })),
    [],
  );
  const replay = useAction();
  const [replayed, setReplayed] = useState<string | null>(null);
  const again = (id: string) =>
    replay.run(async () => {
      await ok(api.POST("/api/ops/dead-letters/{id}/replay", { params: { path: { id } } }));
      setReplayed(id);
      letters.setItems((known) => known?.filter((l) => l.id !== id));
    });
  return (
    <section class="stack">
      <h1>{t("admin.dead_letters")}</h1>
      <p class="muted">{t("dead.intro")}</p>
      {replayed && (
        <p class="notice" role="status">
          {t("dead.replayed")}
        </p>
      )}
      <ErrorNote error={replay.error} />
      <Listed items={letters.items} error={letters.error} empty={t("dead.empty")}>
        {(items) => (
          <ul class="list card" aria-label={t("admin.dead_letters")}>
            {items.map((l) => (
              <li key={l.id} class="row spread">
                <div>
                  <strong>{l.subject}</strong> → {l.consumer}
                  <div class="small muted">
                    {t("dead.failed", { at: dateTime(l.failed_at), attempts: l.attempts })}
                  </div>
                  <code class="small">{l.error}</code>
                </div>
                <button type="button" onClick={() => again(l.id)} disabled={replay.busy}>
                  {t("dead.replay")}
                </button>
              </li>
            ))}
          </ul>
        )}
      </Listed>
      <MoreButton paged={letters} />
    </section>
  );
}

/** The form that opens a document by its name (a config key, a quota's subject). */
function OpenByName(props: {
  label: string;
  hint: string;
  pattern: string;
  value: string;
  set: (value: string) => void;
  open: (event: Event) => void;
  busy: boolean;
}) {
  return (
    <form class="row" onSubmit={props.open}>
      <Field label={props.label} hint={props.hint}>
        {(id) => (
          <input
            id={id}
            required
            pattern={props.pattern}
            value={props.value}
            onInput={(e) => props.set(e.currentTarget.value)}
          />
        )}
      </Field>
      <button type="submit" class="secondary" disabled={props.busy}>
        <Busy busy={props.busy} label="config.open" />
      </button>
    </form>
  );
}

/** How many rules a `routing.*` value holds. */
function ruleCount(value: unknown): number {
  const rules = (value as { rules?: unknown } | null)?.rules;
  return Array.isArray(rules) ? rules.length : 0;
}

/** Feature flags (`feature.<name>`: true or false) and routing rules (`routing.<name>`: JSON). */
function Config() {
  const { t, dateTime } = useI18n();
  const [key, setKey] = useState("feature.");
  const [text, setText] = useState("");
  const [doc, setDoc] = useState<Schemas["Document"] | null>(null);
  const load = useAction();
  const save = useAction();
  const set = usePaged(
    (cursor) => ok(api.GET("/api/control/config", { params: { query: { cursor, limit: 50 } } })),
    [],
  );

  const openKey = (key: string) =>
    load.run(async () => {
      setKey(key);
      setDoc(null);
      try {
        const found = await ok(api.GET("/api/control/config/{key}", { params: { path: { key } } }));
        setDoc(found);
        setText(JSON.stringify(found.value, null, 2));
      } catch (e) {
        if (!(e instanceof ApiFailure && e.status === 404)) throw e;
        setText(key.startsWith("feature.") ? "false" : '{\n  "rules": []\n}');
      }
    });
  const open = (event: Event) => {
    event.preventDefault();
    void openKey(key);
  };
  const put = (event: Event) => {
    event.preventDefault();
    save.run(async () => {
      let value: unknown;
      try {
        value = JSON.parse(text);
      } catch (e) {
        throw new Error(t("config.not_json", { message: (e as Error).message }));
      }
      const stored = await ok(
        api.PUT("/api/control/config/{key}", {
          params: { path: { key } },
          body: value as Record<string, never>,
        }),
      );
      setDoc(stored);
      set.reload();
    });
  };
  return (
    <section class="stack">
      <h1>{t("admin.config")}</h1>
      <p class="muted">{t("config.intro")}</p>
      <Listed items={set.items} error={set.error} empty={t("config.none")}>
        {(items) => (
          <ul class="list card" aria-label={t("config.set")}>
            {items.map((item) => (
              <li key={item.key} class="row spread">
                <button type="button" class="ghost" onClick={() => openKey(item.key)}>
                  <code>{item.key}</code>
                </button>
                <span class="small muted">
                  {item.key.startsWith("feature.")
                    ? t(item.current.value === true ? "config.on" : "config.off")
                    : t("config.rules", { n: ruleCount(item.current.value) })}{" "}
                  · v{item.current.version}
                </span>
              </li>
            ))}
          </ul>
        )}
      </Listed>
      <MoreButton paged={set} />
      <OpenByName
        label={t("config.key")}
        hint={t("config.key_hint")}
        pattern="(feature|routing)\.[a-z0-9_.\-]+"
        value={key}
        set={setKey}
        open={open}
        busy={load.busy}
      />
      <ErrorNote error={load.error} />
      {text !== "" && (
        <form class="stack" onSubmit={put}>
          <p class="small muted">
            {doc
              ? t("config.version", {
                  version: doc.version,
                  author: doc.author,
                  at: dateTime(doc.created_at),
                })
              : t("config.new")}
          </p>
          <Field label={t("config.value")}>
            {(id) => (
              <textarea
                id={id}
                class="code"
                rows={12}
                spellcheck={false}
                value={text}
                aria-invalid={Boolean(save.error)}
                onInput={(e) => setText(e.currentTarget.value)}
              />
            )}
          </Field>
          <ErrorNote error={save.error} />
          <button type="submit" disabled={save.busy}>
            <Busy busy={save.busy} label="config.save" />
          </button>
        </form>
      )}
    </section>
  );
}

type Quota = Schemas["Quota"];
const QUOTA_NUMBERS = [
  "budget_cents_per_month",
  "requests_per_minute",
  "tokens_per_minute",
  "runs_per_day",
  "concurrent_runs",
  "distinct_users_per_day",
] as const;

/** A subject's quota (limits and budget) and where it stands now. */
function Quotas() {
  const { t, number } = useI18n();
  const money = useMoney();
  const [subject, setSubject] = useState("user:");
  const [quota, setQuota] = useState<Quota | null>(null);
  const [status, setStatus] = useState<Schemas["QuotaStatus"] | null>(null);
  const load = useAction();
  const save = useAction();
  const [saved, setSaved] = useState(false);

  const open = (event: Event) => {
    event.preventDefault();
    setSaved(false);
    load.run(async () => {
      const path = { params: { path: { subject } } };
      const [doc, now] = await Promise.all([
        ok(api.GET("/api/control/quotas/{subject}", path)).catch((e) => {
          if (e instanceof ApiFailure && e.status === 404) return null;
          throw e;
        }),
        ok(api.GET("/api/usage/subjects/{subject}/quota", path)),
      ]);
      setQuota((doc?.value as Quota | undefined) ?? {});
      setStatus(now);
    });
  };
  const put = (event: Event) => {
    event.preventDefault();
    save.run(async () => {
      await ok(
        api.PUT("/api/control/quotas/{subject}", {
          params: { path: { subject } },
          body: quota ?? {},
        }),
      );
      setStatus(
        await ok(api.GET("/api/usage/subjects/{subject}/quota", { params: { path: { subject } } })),
      );
      setSaved(true);
    });
  };
  const setNumber = (field: (typeof QUOTA_NUMBERS)[number], text: string) =>
    setQuota({ ...quota, [field]: text.trim() === "" ? null : Number(text) });

  return (
    <section class="stack">
      <h1>{t("admin.quotas")}</h1>
      <OpenByName
        label={t("quotas.subject")}
        hint={t("quotas.subject_hint")}
        pattern="(user|agent|dao):.+"
        value={subject}
        set={setSubject}
        open={open}
        busy={load.busy}
      />
      <ErrorNote error={load.error} />
      {status && (
        <p class="notice" role="status">
          {t("quotas.now", {
            spent: money(status.spent_micros, status.currency),
            budget:
              status.budget_micros_per_month == null
                ? "∞"
                : money(status.budget_micros_per_month, status.currency),
            requests: number(status.requests_this_minute),
          })}
        </p>
      )}
      {quota && (
        <form class="card stack" onSubmit={put}>
          <Field label={t("quotas.plan")}>
            {(id) => (
              <select
                id={id}
                value={quota.plan ?? ""}
                onChange={(e) =>
                  setQuota({ ...quota, plan: (e.currentTarget.value || null) as Quota["plan"] })
                }
              >
                <option value="">{t("quotas.plan_default")}</option>
                {(["free", "pro", "enterprise"] as const).map((p) => (
                  <option key={p} value={p}>
                    {p}
                  </option>
                ))}
              </select>
            )}
          </Field>
          <div class="grid3">
            {QUOTA_NUMBERS.map((field) => (
              <Field key={field} label={t(`quotas.${field}`)}>
                {(id) => (
                  <input
                    id={id}
                    type="number"
                    min={0}
                    value={quota[field] ?? ""}
                    onInput={(e) => setNumber(field, e.currentTarget.value)}
                  />
                )}
              </Field>
            ))}
          </div>
          <p class="hint">{t("quotas.empty_is_plan")}</p>
          <ErrorNote error={save.error} />
          {saved && (
            <p class="notice" role="status">
              {t("quotas.saved")}
            </p>
          )}
          <button type="submit" disabled={save.busy}>
            <Busy busy={save.busy} label="quotas.save" />
          </button>
        </form>
      )}
    </section>
  );
}
