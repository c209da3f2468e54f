// The agent hub: the agents a person may see, making one from a blueprint,
// and an agent's page for those who manage it — its profile, model and
// tools, its prompt with every version (a diff against the current one,
// and rolling back), its crew (the agents it works with, in turn or under
// it), pausing and archiving.
import { useState } from "preact/hooks";
import { useLocation } from "preact-iso";
import { api, idempotencyKey, ok, type Schemas } from "../api/client";
import { useI18n } from "../i18n";
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
import { Filters } from "./filters";
import { AgentSummaries } from "./knowledge";
import { AgentRuns } from "./runs";
import { QuotaCard, UsageBreakdown } from "./settings";

type Agent = Schemas["AgentDetailView"];
type PromptVersion = Schemas["Document"];

export function Hub() {
  const { t } = useI18n();
  const agents = usePaged(
    (cursor) => ok(api.GET("/api/agents/agents", { params: { query: { limit: 50, cursor } } })),
    [],
  );
  return (
    <section class="stack">
      <h1>{t("hub.title")}</h1>
      <Listed items={agents.items} error={agents.error} empty={t("hub.empty")}>
        {(items) => (
          <ul class="list card" aria-label={t("hub.title")}>
            {items.map((agent) => (
              <li key={agent.slug}>
                <a href={`/hub/${agent.slug}`}>
                  <strong>{agent.name}</strong>
                </a>{" "}
                <span class="muted small">
                  @{agent.slug} · {t(`hub.visibility.${agent.visibility}`)} ·{" "}
                  {t(`hub.status.${agent.status}`)}
                </span>
                {agent.description && <div class="muted">{agent.description}</div>}
              </li>
            ))}
          </ul>
        )}
      </Listed>
      <MoreButton paged={agents} />
      <NewAgent />
    </section>
  );
}

function NewAgent() {
  const { t } = useI18n();
  const { route } = useLocation();
  const blueprints = useLoad(() => ok(api.GET("/api/agents/blueprints")), []);
  const [form, setForm] = useState({ slug: "", blueprint: "helper", name: "" });
  const { busy, error, run } = useAction();
  const submit = (event: Event) => {
    event.preventDefault();
    run(async () => {
      const made = await ok(
        api.POST("/api/agents/agents", {
          params: { header: { "Idempotency-Key": idempotencyKey() } },
          body: {
            slug: form.slug.trim(),
            blueprint: form.blueprint,
            name: form.name.trim() || null,
          },
        }),
      );
      route(`/hub/${made.slug}`);
    });
  };
  return (
    <form class="card stack" onSubmit={submit} aria-label={t("hub.new")}>
      <h2>{t("hub.new")}</h2>
      <Field label={t("hub.blueprint")}>
        {(id) => (
          <select
            id={id}
            value={form.blueprint}
            onChange={(e) => setForm({ ...form, blueprint: e.currentTarget.value })}
          >
            {(blueprints.data ?? []).map((b) => (
              <option key={b.id} value={b.id}>
                {b.name} — {b.description}
              </option>
            ))}
          </select>
        )}
      </Field>
      <Field label={t("hub.slug")} hint={t("rooms.slug_hint")}>
        {(id) => (
          <input
            id={id}
            required
            pattern="[a-z0-9][a-z0-9\-]{1,62}"
            value={form.slug}
            onInput={(e) => setForm({ ...form, slug: e.currentTarget.value })}
          />
        )}
      </Field>
      <Field label={t("rooms.name")} hint={t("hub.name_hint")}>
        {(id) => (
          <input
            id={id}
            maxLength={80}
            value={form.name}
            onInput={(e) => setForm({ ...form, name: e.currentTarget.value })}
          />
        )}
      </Field>
      <ErrorNote error={error ?? blueprints.error} />
      <button type="submit" disabled={busy}>
        <Busy busy={busy} label="hub.create" />
      </button>
    </form>
  );
}

export function HubAgent({ slug }: { slug: string }) {
  const { t } = useI18n();
  const agent = useLoad(
    () => ok(api.GET("/api/agents/agents/{agent}", { params: { path: { agent: slug } } })),
    [slug],
  );
  const prompts = usePaged(
    (cursor) =>
      ok(
        api.GET("/api/control/prompts/{agent_id}/versions", {
          params: { path: { agent_id: slug }, query: { limit: 20, cursor } },
        }),
      ),
    [slug],
  );
  const changed = () => {
    agent.reload();
    prompts.reload();
  };
  if (agent.error) return <ErrorNote error={agent.error} />;
  if (!agent.data) return <Loading />;
  const it: Agent = agent.data;
  return (
    <section class="stack">
      <h1>{it.name}</h1>
      <p class="muted">
        @{it.slug} · {t(`hub.visibility.${it.visibility}`)} · {t(`hub.status.${it.status}`)} ·{" "}
        {t("hub.version", { n: it.version })}
      </p>
      {it.description && <p>{it.description}</p>}
      {it.status !== "archived" && (
        // A new version (a save, a rollback) starts the form afresh from it.
        <EditAgent key={`${it.version}:${it.prompt_version}`} agent={it} saved={changed} />
      )}
      <PromptVersions
        slug={slug}
        current={it}
        versions={prompts}
        rolledBack={changed}
        archived={it.status === "archived"}
      />
      {it.status !== "archived" && (
        <CrewSection key={`crew:${it.version}`} agent={it} changed={changed} />
      )}
      {it.status !== "archived" && <Lifecycle agent={it} changed={changed} />}
      <AgentPlan agent={it} />
      <AgentRuns slug={it.slug} />
      <AgentSummaries slug={it.slug} />
      <Filters scope={{ agent: it.slug }} />
      <UsageBreakdown
        subject={`agent:${it.slug}`}
        groupBy="kind"
        title={t("hub.usage")}
        keyLabel={t("usage.group.kind")}
      />
    </section>
  );
}

function EditAgent({ agent, saved }: { agent: Agent; saved: () => void }) {
  const { t } = useI18n();
  const [form, setForm] = useState({
    name: agent.name,
    description: agent.description,
    model: agent.model,
    prompt: agent.prompt ?? "",
    tools: agent.tools.join(", "),
    visibility: agent.visibility,
  });
  const { busy, error, run } = useAction();
  const submit = (event: Event) => {
    event.preventDefault();
    run(async () => {
      const tools = form.tools
        .split(",")
        .map((tool) => tool.trim())
        .filter(Boolean);
      await ok(
        api.PATCH("/api/agents/agents/{agent}", {
          params: { path: { agent: agent.slug } },
          body: {
            name: form.name,
            description: form.description,
            model: form.model,
            visibility: form.visibility,
            tools,
            // Unchanged, the prompt keeps its version.
            prompt: form.prompt === (agent.prompt ?? "") ? null : form.prompt,
          },
        }),
      );
      saved();
    });
  };
  return (
    <form class="card stack" onSubmit={submit} aria-label={t("hub.edit")}>
      <h2>{t("hub.edit")}</h2>
      <Field label={t("rooms.name")}>
        {(id) => (
          <input
            id={id}
            required
            maxLength={80}
            value={form.name}
            onInput={(e) => setForm({ ...form, name: e.currentTarget.value })}
          />
        )}
      </Field>
      <Field label={t("rooms.description")}>
        {(id) => (
          <input
            id={id}
            maxLength={2000}
            value={form.description}
            onInput={(e) => setForm({ ...form, description: e.currentTarget.value })}
          />
        )}
      </Field>
      <Field label={t("hub.model")} hint={t("hub.model_hint")}>
        {(id) => (
          <input
            id={id}
            required
            maxLength={64}
            value={form.model}
            onInput={(e) => setForm({ ...form, model: e.currentTarget.value })}
          />
        )}
      </Field>
      <Field label={t("hub.prompt")}>
        {(id) => (
          <textarea
            id={id}
            required
            rows={6}
            maxLength={32000}
            value={form.prompt}
            onInput={(e) => setForm({ ...form, prompt: e.currentTarget.value })}
          />
        )}
      </Field>
      <Field label={t("hub.tools")} hint={t("hub.tools_hint")}>
        {(id) => (
          <input
            id={id}
            value={form.tools}
            onInput={(e) => setForm({ ...form, tools: e.currentTarget.value })}
          />
        )}
      </Field>
      {/* A person's own agent (their Second Me) stays private. */}
      {!agent.personal && (
        <Field label={t("hub.visibility")}>
          {(id) => (
            <select
              id={id}
              value={form.visibility}
              onChange={(e) =>
                setForm({ ...form, visibility: e.currentTarget.value as Agent["visibility"] })
              }
            >
              <option value="private">{t("hub.visibility.private")}</option>
              <option value="public">{t("hub.visibility.public")}</option>
            </select>
          )}
        </Field>
      )}
      <ErrorNote error={error} />
      <button type="submit" disabled={busy}>
        <Busy busy={busy} label="hub.save" />
      </button>
    </form>
  );
}

type Paged<T> = ReturnType<typeof usePaged<T>>;

/** The prompt's versions: each can be compared with the current one and made current. */
function PromptVersions({
  slug,
  current,
  versions,
  rolledBack,
  archived,
}: {
  slug: string;
  current: Agent;
  versions: Paged<PromptVersion>;
  rolledBack: () => void;
  archived: boolean;
}) {
  const { t, dateTime } = useI18n();
  const [compared, setCompared] = useState<PromptVersion | null>(null);
  const { busy, error, run } = useAction();
  const rollBack = (version: number) =>
    run(async () => {
      await ok(
        api.PUT("/api/control/prompts/{agent_id}/current", {
          params: { path: { agent_id: slug } },
          body: { version },
        }),
      );
      setCompared(null);
      rolledBack();
    });
  return (
    <section class="stack" aria-labelledby="prompt-versions">
      <h2 id="prompt-versions">{t("hub.prompt_versions")}</h2>
      <Listed items={versions.items} error={versions.error} empty={t("hub.no_versions")}>
        {(items) => (
          <ul class="list card" aria-label={t("hub.prompt_versions")}>
            {items.map((v) => (
              <li key={v.version} class="row spread">
                <span>
                  <strong>{t("hub.version", { n: v.version })}</strong>
                  {v.version === current.prompt_version && ` · ${t("hub.current")}`}
                  <div class="small muted">{dateTime(v.created_at)}</div>
                </span>
                {v.version !== current.prompt_version && (
                  <span class="row">
                    <button type="button" class="ghost" onClick={() => setCompared(v)}>
                      {t("hub.compare_named", { n: v.version })}
                    </button>
                    {!archived && (
                      <button
                        type="button"
                        class="secondary"
                        disabled={busy}
                        onClick={() => rollBack(v.version)}
                      >
                        {t("hub.roll_back_named", { n: v.version })}
                      </button>
                    )}
                  </span>
                )}
              </li>
            ))}
          </ul>
        )}
      </Listed>
      <MoreButton paged={versions} />
      <ErrorNote error={error} />
      {compared && (
        <PromptDiff
          from={String((compared.value as { text?: string }).text ?? "")}
          to={current.prompt ?? ""}
          label={t("hub.diff", { from: compared.version, to: current.prompt_version ?? 0 })}
        />
      )}
    </section>
  );
}

type DiffLine = { kind: " " | "-" | "+"; line: string };

/** Lines of `from` and `to` as kept, removed and added (longest common subsequence). */
export function lineDiff(from: string, to: string): DiffLine[] {
  const a = from.split("\n");
  const b = to.split("\n");
  const width = b.length + 1;
  // common[i][j]: the longest common run of a[i..] and b[j..].
  const table = new Int32Array((a.length + 1) * width);
  const common = (i: number, j: number) => table[i * width + j] ?? 0;
  for (let i = a.length - 1; i >= 0; i--) {
    for (let j = b.length - 1; j >= 0; j--) {
      table[i * width + j] =
        a[i] === b[j] ? common(i + 1, j + 1) + 1 : Math.max(common(i + 1, j), common(i, j + 1));
    }
  }
  const out: DiffLine[] = [];
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    const left = a[i];
    const right = b[j];
    if (left !== undefined && left === right) {
      out.push({ kind: " ", line: left });
      i++;
      j++;
    } else if (
      left !== undefined &&
      (right === undefined || common(i + 1, j) >= common(i, j + 1))
    ) {
      out.push({ kind: "-", line: left });
      i++;
    } else {
      out.push({ kind: "+", line: right ?? "" });
      j++;
    }
  }
  return out;
}

function PromptDiff({ from, to, label }: { from: string; to: string; label: string }) {
  const { t } = useI18n();
  return (
    <figure class="card stack">
      <figcaption>{label}</figcaption>
      <pre class="diff">
        {lineDiff(from, to).map((d, n) => (
          <div key={n} class={`diff-${d.kind === "+" ? "add" : d.kind === "-" ? "del" : "same"}`}>
            <span class="visually-hidden">
              {d.kind === "+" ? t("hub.added") : d.kind === "-" ? t("hub.removed") : ""}
            </span>
            {d.kind} {d.line}
          </div>
        ))}
      </pre>
    </figure>
  );
}

function Lifecycle({ agent, changed }: { agent: Agent; changed: () => void }) {
  const { t } = useI18n();
  const { busy, error, run } = useAction();
  const path = { agent: agent.slug };
  const setStatus = (status: "active" | "paused") =>
    run(async () => {
      await ok(api.PATCH("/api/agents/agents/{agent}", { params: { path }, body: { status } }));
      changed();
    });
  const archive = () =>
    run(async () => {
      await ok(api.POST("/api/agents/agents/{agent}/archive", { params: { path } }));
      changed();
    });
  return (
    <div class="row">
      {agent.status === "active" ? (
        <button type="button" class="secondary" disabled={busy} onClick={() => setStatus("paused")}>
          {t("hub.pause")}
        </button>
      ) : (
        <button type="button" class="secondary" disabled={busy} onClick={() => setStatus("active")}>
          {t("hub.resume")}
        </button>
      )}
      <button type="button" class="ghost" disabled={busy} onClick={archive}>
        {t("hub.archive")}
      </button>
      <ErrorNote error={error} />
    </div>
  );
}

type Crew = Schemas["Crew"];
type CrewMember = Schemas["CrewMember"];

const NO_MEMBER: CrewMember = { agent: "", role: "", goal: "" };

/**
 * The agents this one works with: in turn (each reads the work before
 * it; the last one's answer is the crew's) or under it (it delegates and
 * answers). Members are agents the person manages too.
 */
function CrewSection({ agent, changed }: { agent: Agent; changed: () => void }) {
  const { t } = useI18n();
  const [process, setProcess] = useState<Crew["process"]>(agent.crew?.process ?? "sequential");
  const [members, setMembers] = useState<CrewMember[]>(agent.crew?.members ?? [{ ...NO_MEMBER }]);
  const { busy, error, run } = useAction();
  const path = { agent: agent.slug };
  const edit = (i: number, field: keyof CrewMember, value: string) =>
    setMembers(members.map((m, j) => (j === i ? { ...m, [field]: value } : m)));
  const save = (event: Event) => {
    event.preventDefault();
    run(async () => {
      await ok(
        api.PUT("/api/agents/agents/{agent}/crew", {
          params: { path },
          body: {
            process,
            members: members.map((m) => ({
              agent: m.agent.trim(),
              role: m.role.trim(),
              goal: (m.goal ?? "").trim(),
            })),
          },
        }),
      );
      changed();
    });
  };
  const dissolve = () =>
    run(async () => {
      await ok(api.DELETE("/api/agents/agents/{agent}/crew", { params: { path } }));
      changed();
    });
  return (
    <section class="stack" aria-labelledby="agent-crew">
      <h2 id="agent-crew">{t("hub.crew")}</h2>
      <p class="muted">{t(agent.crew ? "hub.crew_is" : "hub.crew_alone")}</p>
      <form class="card stack" aria-label={t("hub.crew")} onSubmit={save}>
        <Field label={t("hub.crew_process")}>
          {(id) => (
            <select
              id={id}
              value={process}
              onChange={(e) => setProcess(e.currentTarget.value as Crew["process"])}
            >
              <option value="sequential">{t("hub.crew_sequential")}</option>
              <option value="hierarchical">{t("hub.crew_hierarchical")}</option>
            </select>
          )}
        </Field>
        <ol class="stack" aria-label={t("hub.crew_members")}>
          {members.map((member, i) => (
            // Rows have no id of their own until saved: their place is it.
            <li key={i} class="row">
              <Field label={t("hub.crew_member", { n: i + 1 })}>
                {(id) => (
                  <input
                    id={id}
                    required
                    maxLength={63}
                    value={member.agent}
                    onInput={(e) => edit(i, "agent", e.currentTarget.value)}
                  />
                )}
              </Field>
              <Field label={t("hub.crew_role", { n: i + 1 })}>
                {(id) => (
                  <input
                    id={id}
                    required
                    maxLength={64}
                    value={member.role}
                    onInput={(e) => edit(i, "role", e.currentTarget.value)}
                  />
                )}
              </Field>
              <Field label={t("hub.crew_goal", { n: i + 1 })}>
                {(id) => (
                  <input
                    id={id}
                    maxLength={500}
                    value={member.goal ?? ""}
                    onInput={(e) => edit(i, "goal", e.currentTarget.value)}
                  />
                )}
              </Field>
              {members.length > 1 && (
                <button
                  type="button"
                  class="ghost"
                  onClick={() => setMembers(members.filter((_, j) => j !== i))}
                >
                  {t("hub.crew_remove", { n: i + 1 })}
                </button>
              )}
            </li>
          ))}
        </ol>
        <div class="row">
          {members.length < 8 && (
            <button
              type="button"
              class="secondary"
              onClick={() => setMembers([...members, { ...NO_MEMBER }])}
            >
              {t("hub.crew_add")}
            </button>
          )}
          <button type="submit" disabled={busy}>
            <Busy busy={busy} label="hub.crew_save" />
          </button>
          {agent.crew && (
            <button type="button" class="ghost" disabled={busy} onClick={dissolve}>
              {t("hub.crew_dissolve")}
            </button>
          )}
        </div>
        <ErrorNote error={error} />
      </form>
    </section>
  );
}

type Quota = Schemas["Quota"];

/**
 * An agent's plan and monthly budget: what it has spent, for its owner and
 * city admins; city admins set the plan and the budget (the control
 * plane's quota of `agent:<slug>`).
 */
function AgentPlan({ agent }: { agent: Agent }) {
  const { t } = useI18n();
  const { user } = useSession();
  const admin = user?.city_role === "admin";
  const [changed, setChanged] = useState(0);
  if (!admin && agent.owner !== `user:${user?.id ?? ""}`) return null;
  return (
    <section class="stack" aria-labelledby="agent-plan">
      <h2 id="agent-plan">{t("hub.plan")}</h2>
      <QuotaCard subject={`agent:${agent.slug}`} changed={changed} />
      {admin && <PlanForm slug={agent.slug} saved={() => setChanged((n) => n + 1)} />}
    </section>
  );
}

function PlanForm({ slug, saved }: { slug: string; saved: () => void }) {
  const subject = `agent:${slug}`;
  const current = useLoad(
    () =>
      ok(api.GET("/api/control/quotas/{subject}", { params: { path: { subject } } }))
        .then((doc) => doc.value as Quota)
        .catch((e: unknown) => {
          // No quota yet: the default plan applies.
          if (e && typeof e === "object" && "status" in e && e.status === 404) return {};
          throw e;
        }),
    [subject],
  );
  if (current.error) return <ErrorNote error={current.error} />;
  if (!current.data) return <Loading />;
  return <PlanFields subject={subject} quota={current.data} saved={saved} />;
}

function PlanFields({
  subject,
  quota,
  saved,
}: {
  subject: string;
  quota: Quota;
  saved: () => void;
}) {
  const { t } = useI18n();
  const [plan, setPlan] = useState<string>(quota.plan ?? "");
  const [budget, setBudget] = useState(
    quota.budget_cents_per_month == null ? "" : String(quota.budget_cents_per_month / 100),
  );
  const { busy, error, run } = useAction();
  const submit = (event: Event) => {
    event.preventDefault();
    void run(async () => {
      await ok(
        api.PUT("/api/control/quotas/{subject}", {
          params: { path: { subject } },
          body: {
            ...quota,
            plan: plan ? (plan as Quota["plan"]) : null,
            budget_cents_per_month: budget === "" ? null : Math.round(Number(budget) * 100),
          },
        }),
      );
      saved();
    });
  };
  return (
    <form class="card stack" aria-label={t("hub.set_plan")} onSubmit={submit}>
      <Field label={t("hub.plan_name")}>
        {(id) => (
          <select id={id} value={plan} onChange={(e) => setPlan(e.currentTarget.value)}>
            <option value="">{t("hub.plan_default")}</option>
            {(["free", "pro", "enterprise"] as const).map((p) => (
              <option key={p} value={p}>
                {t(`hub.plan.${p}`)}
              </option>
            ))}
          </select>
        )}
      </Field>
      <Field label={t("hub.budget")} hint={t("hub.budget_hint")}>
        {(id) => (
          <input
            id={id}
            type="number"
            min={0}
            step="0.01"
            value={budget}
            onInput={(e) => setBudget(e.currentTarget.value)}
          />
        )}
      </Field>
      <ErrorNote error={error} />
      <div class="row">
        <button type="submit" disabled={busy}>
          {t("hub.set_plan")}
        </button>
      </div>
    </form>
  );
}
