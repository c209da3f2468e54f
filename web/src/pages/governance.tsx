// Governance: a community's proposals (written on its page, each with a
// page of its own: the ballot of its method, the live tally, the result
// with its record checked here in the browser, what was carried out) and
// lending one's vote to another member.
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
  usePeople,
} from "../ui";

type Proposal = Schemas["Proposal"];
type Method = Schemas["VotingMethod"];
type Action = Schemas["ProposalAction"];
type Ballot = Schemas["Ballot"];
type Tally = Schemas["Tally"];
type Member = Schemas["DaoMemberView"];
type Agent = Schemas["AgentView"];

const METHODS: Method[] = ["basic", "single", "approval", "ranked", "weighted", "quadratic"];
const ACTIONS = [
  "add_member",
  "remove_member",
  "change_role",
  "transfer",
  "change_settings",
  "attach_agent",
  "detach_agent",
  "change_agent",
  "limit_spending",
] as const;
type ActionType = (typeof ACTIONS)[number];
const UNITS = { seconds: 1, minutes: 60, hours: 3600, days: 86400 } as const;
/** How often an open proposal's page asks for the count. */
const POLL_MS = 2000;

/** A community's proposals, and for its members a new one and delegation. */
export function Governance({ slug, member }: { slug: string; member: boolean }) {
  const { t, dateTime } = useI18n();
  const proposals = usePaged(
    (cursor) =>
      ok(
        api.GET("/api/dao/daos/{dao}/proposals", {
          params: { path: { dao: slug }, query: { limit: 20, cursor } },
        }),
      ),
    [slug],
  );
  return (
    <section class="stack" aria-labelledby="governance-title">
      <h2 id="governance-title">{t("gov.title")}</h2>
      <Listed items={proposals.items} error={proposals.error} empty={t("gov.none")}>
        {(items) => (
          <ul class="list card" aria-label={t("gov.proposals")}>
            {items.map((p) => (
              <li key={p.id} class="row spread">
                <a href={`/proposals/${p.id}`}>{p.title}</a>
                <span class="row small">
                  <span class={`badge status-${p.status}`}>
                    {t(`gov.status.${p.status}` as Key)}
                  </span>
                  <span class="muted">
                    {p.closes_at && p.status === "active"
                      ? t("gov.closes", { at: dateTime(p.closes_at) })
                      : dateTime(p.created_at)}
                  </span>
                </span>
              </li>
            ))}
          </ul>
        )}
      </Listed>
      <MoreButton paged={proposals} />
      {member && <NewProposal slug={slug} />}
      {member && <Delegation slug={slug} />}
    </section>
  );
}

/** The community's members, for choosing one. */
function useMembers(slug: string) {
  return useLoad(
    () =>
      ok(
        api.GET("/api/microdao/daos/{dao}/members", {
          params: { path: { dao: slug }, query: { limit: 100 } },
        }),
      ).then((page) => page.items),
    [slug],
  );
}

function MemberChoice({
  members,
  label,
  value,
  set,
}: {
  members: Member[];
  label: string;
  value: string;
  set: (principal: string) => void;
}) {
  const { t } = useI18n();
  return (
    <Field label={label}>
      {(id) => (
        <select id={id} value={value} required onChange={(e) => set(e.currentTarget.value)}>
          <option value="">{t("gov.choose")}</option>
          {members.map((m) => (
            <option key={m.principal} value={m.principal}>
              {m.handle}
            </option>
          ))}
        </select>
      )}
    </Field>
  );
}

/** `user:<id>` of the person named `username`. */
async function personNamed(username: string): Promise<string> {
  const person = await ok(
    api.GET("/api/auth/people/{username}", { params: { path: { username: username.trim() } } }),
  );
  return `user:${person.id}`;
}

interface Draft {
  title: string;
  body: string;
  kind: "signal" | "action";
  method: Method;
  options: string;
  action: ActionType;
  who: string;
  username: string;
  role: string;
  amount: string;
  memo: string;
  name: string;
  description: string;
  visibility: string;
  agent: string;
  prompt: string;
  tools: string;
  model: string;
  status: "" | "active" | "paused";
  rpm: string;
  tpm: string;
  budget: string;
  quorum: "none" | "share" | "power" | "veto";
  quorumValue: string;
  threshold: "plurality" | "majority" | "supermajority";
  thresholdValue: string;
  power: "equal" | "treasury" | "roles";
  weights: { owner: string; admin: string; member: string; agent: string };
  voteChange: boolean;
  hidden: boolean;
  duration: string;
  unit: keyof typeof UNITS;
}

const EMPTY: Draft = {
  title: "",
  body: "",
  kind: "signal",
  method: "basic",
  options: "",
  action: "add_member",
  who: "",
  username: "",
  role: "member",
  amount: "",
  memo: "",
  name: "",
  description: "",
  visibility: "",
  agent: "",
  prompt: "",
  tools: "",
  model: "",
  status: "",
  rpm: "",
  tpm: "",
  budget: "",
  quorum: "share",
  quorumValue: "20",
  threshold: "majority",
  thresholdValue: "66.67",
  power: "equal",
  weights: { owner: "3", admin: "2", member: "1", agent: "0" },
  voteChange: false,
  hidden: false,
  duration: "7",
  unit: "days",
};

/** Percent as basis points. */
const bp = (percent: string) => Math.round(Number(percent) * 100);

async function actionOf(d: Draft): Promise<Action> {
  switch (d.action) {
    case "add_member":
      return { type: "add_member", principal: await personNamed(d.username), role: d.role };
    case "remove_member":
      return { type: "remove_member", principal: d.who };
    case "change_role":
      return { type: "change_role", principal: d.who, role: d.role };
    case "transfer":
      return {
        type: "transfer",
        to: d.who,
        amount: Number(d.amount),
        memo: d.memo.trim() || null,
      };
    case "change_settings":
      return {
        type: "change_settings",
        name: d.name.trim() || null,
        description: d.description.trim() || null,
        visibility: d.visibility || null,
      };
    case "attach_agent":
    case "detach_agent":
      return { type: d.action, agent: d.agent };
    case "change_agent":
      return {
        type: "change_agent",
        agent: d.agent,
        prompt: d.prompt.trim() || null,
        tools: d.tools.trim()
          ? d.tools
              .split(",")
              .map((tool) => tool.trim())
              .filter(Boolean)
          : null,
        model: d.model.trim() || null,
        status: d.status || null,
      };
    case "limit_spending":
      return {
        type: "limit_spending",
        requests_per_minute: d.rpm ? Number(d.rpm) : null,
        tokens_per_minute: d.tpm ? Number(d.tpm) : null,
        budget_cents_per_month: d.budget ? Math.round(Number(d.budget) * 100) : null,
      };
  }
}

/** A choice of agents, by slug. */
function AgentChoice({
  agents,
  value,
  set,
}: {
  agents: { slug: string; name: string }[];
  value: string;
  set: (slug: string) => void;
}) {
  const { t } = useI18n();
  return (
    <Field label={t("gov.agent")}>
      {(id) => (
        <select id={id} value={value} required onChange={(e) => set(e.currentTarget.value)}>
          <option value="">{t("gov.choose")}</option>
          {agents.map((a) => (
            <option key={a.slug} value={a.slug}>
              {a.name}
            </option>
          ))}
        </select>
      )}
    </Field>
  );
}

async function inputOf(d: Draft): Promise<Schemas["ProposalInput"]> {
  const action = d.kind === "action" ? await actionOf(d) : null;
  const method = action ? "basic" : d.method;
  const quorum: Schemas["Quorum"] =
    d.quorum === "none"
      ? { kind: "none" }
      : d.quorum === "power"
        ? { kind: "power", value: Number(d.quorumValue) }
        : { kind: d.quorum, value: bp(d.quorumValue) };
  const threshold: Schemas["Threshold"] =
    d.threshold === "supermajority"
      ? { kind: "supermajority", value: bp(d.thresholdValue) }
      : { kind: d.threshold };
  const power: Schemas["VotingPower"] =
    d.power === "roles"
      ? {
          kind: "roles",
          owner: Number(d.weights.owner),
          admin: Number(d.weights.admin),
          member: Number(d.weights.member),
          agent: Number(d.weights.agent),
        }
      : { kind: d.power };
  return {
    title: d.title,
    body: d.body,
    action,
    method,
    options:
      method === "basic"
        ? []
        : d.options
            .split("\n")
            .map((o) => o.trim())
            .filter(Boolean),
    quorum,
    threshold,
    power,
    vote_change: d.voteChange,
    hidden: d.hidden,
    voting_secs: Math.round(Number(d.duration) * UNITS[d.unit]),
  };
}

function NewProposal({ slug }: { slug: string }) {
  const { t } = useI18n();
  const [d, setD] = useState<Draft>(EMPTY);
  const members = useMembers(slug);
  const { user } = useSession();
  // One page of the agents the caller sees: theirs, and the community's.
  const agents = useLoad(
    () => ok(api.GET("/api/agents/agents", { params: { query: { limit: 100 } } })),
    [],
  );
  const seen: Agent[] = agents.data?.items ?? [];
  const agentMembers = (members.data ?? []).filter((m) => m.principal.startsWith("agent:"));
  const create = useAction();
  const set = <K extends keyof Draft>(key: K, value: Draft[K]) => setD({ ...d, [key]: value });
  const submit = (e: Event) => {
    e.preventDefault();
    void create.run(async () => {
      const body = await inputOf(d);
      const p = await ok(
        api.POST("/api/dao/daos/{dao}/proposals", {
          params: { path: { dao: slug }, header: { "Idempotency-Key": idempotencyKey() } },
          body,
        }),
      );
      window.location.assign(`/proposals/${p.id}`);
    });
  };
  const choose = (label: string) => (
    <MemberChoice
      members={members.data ?? []}
      label={label}
      value={d.who}
      set={(who) => set("who", who)}
    />
  );
  const roleChoice = (
    <Field label={t("gov.role")}>
      {(id) => (
        <select id={id} value={d.role} onChange={(e) => set("role", e.currentTarget.value)}>
          {["member", "admin", "owner", "guest"].map((r) => (
            <option key={r} value={r}>
              {t(`dao.role.${r}` as Key)}
            </option>
          ))}
        </select>
      )}
    </Field>
  );
  return (
    <form class="card stack" aria-label={t("gov.new")} onSubmit={submit}>
      <h3>{t("gov.new")}</h3>
      <Field label={t("gov.proposal_title")}>
        {(id) => (
          <input
            id={id}
            value={d.title}
            maxLength={200}
            required
            onInput={(e) => set("title", e.currentTarget.value)}
          />
        )}
      </Field>
      <Field label={t("gov.body")}>
        {(id) => (
          <textarea
            id={id}
            value={d.body}
            rows={4}
            onInput={(e) => set("body", e.currentTarget.value)}
          />
        )}
      </Field>
      <fieldset class="row">
        <legend>{t("gov.kind")}</legend>
        {(["signal", "action"] as const).map((k) => (
          <label key={k} class="row">
            <input
              type="radio"
              name="kind"
              checked={d.kind === k}
              onChange={() => set("kind", k)}
            />
            {t(`gov.kind.${k}` as Key)}
          </label>
        ))}
      </fieldset>
      {d.kind === "action" ? (
        <div class="stack">
          <Field label={t("gov.action")}>
            {(id) => (
              <select
                id={id}
                value={d.action}
                onChange={(e) => set("action", e.currentTarget.value as ActionType)}
              >
                {ACTIONS.map((a) => (
                  <option key={a} value={a}>
                    {t(`gov.action.${a}` as Key)}
                  </option>
                ))}
              </select>
            )}
          </Field>
          {d.action === "add_member" && (
            <>
              <Field label={t("gov.username")}>
                {(id) => (
                  <input
                    id={id}
                    value={d.username}
                    required
                    onInput={(e) => set("username", e.currentTarget.value)}
                  />
                )}
              </Field>
              {roleChoice}
            </>
          )}
          {d.action === "remove_member" && choose(t("gov.member"))}
          {d.action === "change_role" && (
            <>
              {choose(t("gov.member"))}
              {roleChoice}
            </>
          )}
          {d.action === "transfer" && (
            <>
              {choose(t("treasury.to"))}
              <Field label={t("treasury.amount")}>
                {(id) => (
                  <input
                    id={id}
                    type="number"
                    min={1}
                    required
                    value={d.amount}
                    onInput={(e) => set("amount", e.currentTarget.value)}
                  />
                )}
              </Field>
              <Field label={t("treasury.memo")}>
                {(id) => (
                  <input
                    id={id}
                    value={d.memo}
                    maxLength={200}
                    onInput={(e) => set("memo", e.currentTarget.value)}
                  />
                )}
              </Field>
            </>
          )}
          {d.action === "attach_agent" && (
            <AgentChoice
              agents={seen.filter(
                (a) =>
                  a.owner === `user:${user?.id}` &&
                  !a.personal &&
                  !agentMembers.some((m) => m.principal === `agent:${a.slug}`),
              )}
              value={d.agent}
              set={(agent) => set("agent", agent)}
            />
          )}
          {d.action === "detach_agent" && (
            <AgentChoice
              agents={agentMembers.map((m) => ({
                slug: m.principal.slice("agent:".length),
                name: m.handle,
              }))}
              value={d.agent}
              set={(agent) => set("agent", agent)}
            />
          )}
          {d.action === "change_agent" && (
            <>
              <AgentChoice
                agents={seen.filter((a) => a.dao === slug)}
                value={d.agent}
                set={(agent) => set("agent", agent)}
              />
              <Field label={t("gov.prompt")}>
                {(id) => (
                  <textarea
                    id={id}
                    value={d.prompt}
                    rows={4}
                    maxLength={32000}
                    onInput={(e) => set("prompt", e.currentTarget.value)}
                  />
                )}
              </Field>
              <Field label={t("gov.tools")}>
                {(id) => (
                  <input
                    id={id}
                    value={d.tools}
                    onInput={(e) => set("tools", e.currentTarget.value)}
                  />
                )}
              </Field>
              <Field label={t("gov.model")}>
                {(id) => (
                  <input
                    id={id}
                    value={d.model}
                    onInput={(e) => set("model", e.currentTarget.value)}
                  />
                )}
              </Field>
              <Field label={t("gov.agent_status")}>
                {(id) => (
                  <select
                    id={id}
                    value={d.status}
                    onChange={(e) => set("status", e.currentTarget.value as Draft["status"])}
                  >
                    <option value="">{t("gov.unchanged")}</option>
                    <option value="active">{t("gov.agent_active")}</option>
                    <option value="paused">{t("gov.agent_paused")}</option>
                  </select>
                )}
              </Field>
            </>
          )}
          {d.action === "limit_spending" && (
            <>
              <p class="muted small">{t("gov.limits_hint")}</p>
              {(
                [
                  ["rpm", "gov.rpm", 1],
                  ["tpm", "gov.tpm", 1],
                  ["budget", "gov.budget", 0.01],
                ] as const
              ).map(([key, label, step]) => (
                <Field key={key} label={t(label)}>
                  {(id) => (
                    <input
                      id={id}
                      type="number"
                      min={0}
                      step={step}
                      value={d[key]}
                      onInput={(e) => set(key, e.currentTarget.value)}
                    />
                  )}
                </Field>
              ))}
            </>
          )}
          {d.action === "change_settings" && (
            <>
              <Field label={t("rooms.name")}>
                {(id) => (
                  <input
                    id={id}
                    value={d.name}
                    onInput={(e) => set("name", e.currentTarget.value)}
                  />
                )}
              </Field>
              <Field label={t("gov.description")}>
                {(id) => (
                  <input
                    id={id}
                    value={d.description}
                    onInput={(e) => set("description", e.currentTarget.value)}
                  />
                )}
              </Field>
              <Field label={t("gov.visibility")}>
                {(id) => (
                  <select
                    id={id}
                    value={d.visibility}
                    onChange={(e) => set("visibility", e.currentTarget.value)}
                  >
                    <option value="">{t("gov.unchanged")}</option>
                    <option value="public">{t("dao.public")}</option>
                    <option value="private">{t("dao.private")}</option>
                  </select>
                )}
              </Field>
            </>
          )}
          <ErrorNote error={members.error ?? agents.error} />
        </div>
      ) : (
        <>
          <Field label={t("gov.method")}>
            {(id) => (
              <select
                id={id}
                value={d.method}
                onChange={(e) => set("method", e.currentTarget.value as Method)}
              >
                {METHODS.map((m) => (
                  <option key={m} value={m}>
                    {t(`gov.method.${m}` as Key)}
                  </option>
                ))}
              </select>
            )}
          </Field>
          {d.method !== "basic" && (
            <Field label={t("gov.options")} hint={t("gov.options_hint")}>
              {(id) => (
                <textarea
                  id={id}
                  rows={4}
                  required
                  value={d.options}
                  onInput={(e) => set("options", e.currentTarget.value)}
                />
              )}
            </Field>
          )}
        </>
      )}
      <div class="row">
        <Field label={t("gov.duration")}>
          {(id) => (
            <input
              id={id}
              type="number"
              min={1}
              required
              value={d.duration}
              onInput={(e) => set("duration", e.currentTarget.value)}
            />
          )}
        </Field>
        <Field label={t("gov.unit")}>
          {(id) => (
            <select
              id={id}
              value={d.unit}
              onChange={(e) => set("unit", e.currentTarget.value as Draft["unit"])}
            >
              {Object.keys(UNITS).map((u) => (
                <option key={u} value={u}>
                  {t(`gov.unit.${u}` as Key)}
                </option>
              ))}
            </select>
          )}
        </Field>
      </div>
      <div class="row">
        <Field label={t("gov.quorum")}>
          {(id) => (
            <select
              id={id}
              value={d.quorum}
              onChange={(e) => set("quorum", e.currentTarget.value as Draft["quorum"])}
            >
              {(["none", "share", "power", "veto"] as const)
                .filter((q) => q !== "veto" || d.kind === "action" || d.method === "basic")
                .map((q) => (
                  <option key={q} value={q}>
                    {t(`gov.quorum.${q}` as Key)}
                  </option>
                ))}
            </select>
          )}
        </Field>
        {d.quorum !== "none" && (
          <Field label={t(d.quorum === "power" ? "gov.quorum_power" : "gov.percent")}>
            {(id) => (
              <input
                id={id}
                type="number"
                min={0}
                step="any"
                required
                value={d.quorumValue}
                onInput={(e) => set("quorumValue", e.currentTarget.value)}
              />
            )}
          </Field>
        )}
      </div>
      <div class="row">
        <Field label={t("gov.threshold")}>
          {(id) => (
            <select
              id={id}
              value={d.threshold}
              onChange={(e) => set("threshold", e.currentTarget.value as Draft["threshold"])}
            >
              {(["plurality", "majority", "supermajority"] as const).map((k) => (
                <option key={k} value={k}>
                  {t(`gov.threshold.${k}` as Key)}
                </option>
              ))}
            </select>
          )}
        </Field>
        {d.threshold === "supermajority" && (
          <Field label={t("gov.percent")}>
            {(id) => (
              <input
                id={id}
                type="number"
                min={50.01}
                max={100}
                step="any"
                required
                value={d.thresholdValue}
                onInput={(e) => set("thresholdValue", e.currentTarget.value)}
              />
            )}
          </Field>
        )}
      </div>
      <Field label={t("gov.power")}>
        {(id) => (
          <select
            id={id}
            value={d.power}
            onChange={(e) => set("power", e.currentTarget.value as Draft["power"])}
          >
            {(["equal", "treasury", "roles"] as const).map((k) => (
              <option key={k} value={k}>
                {t(`gov.power.${k}` as Key)}
              </option>
            ))}
          </select>
        )}
      </Field>
      {d.power === "roles" && (
        <div class="row">
          {(["owner", "admin", "member", "agent"] as const).map((r) => (
            <Field key={r} label={t("gov.weight_of", { role: t(`dao.role.${r}` as Key) })}>
              {(id) => (
                <input
                  id={id}
                  type="number"
                  min={0}
                  value={d.weights[r]}
                  onInput={(e) => set("weights", { ...d.weights, [r]: e.currentTarget.value })}
                />
              )}
            </Field>
          ))}
        </div>
      )}
      <label class="row">
        <input
          type="checkbox"
          checked={d.voteChange}
          onChange={(e) => set("voteChange", e.currentTarget.checked)}
        />
        {t("gov.vote_change")}
      </label>
      <label class="row">
        <input
          type="checkbox"
          checked={d.hidden}
          onChange={(e) => set("hidden", e.currentTarget.checked)}
        />
        {t("gov.hidden")}
      </label>
      <ErrorNote error={create.error} />
      <button type="submit" disabled={create.busy}>
        <Busy busy={create.busy} label="gov.create" />
      </button>
    </form>
  );
}

/** Whom one lends one's vote to in this community, and who lends theirs. */
function Delegation({ slug }: { slug: string }) {
  const { t } = useI18n();
  const path = { params: { path: { dao: slug } } };
  const current = useLoad(() => ok(api.GET("/api/dao/daos/{dao}/delegation", path)), [slug]);
  const members = useMembers(slug);
  const { user } = useSession();
  const [to, setTo] = useState("");
  const change = useAction();
  const name = usePeople([
    ...(current.data?.delegators ?? []),
    ...(current.data?.delegate ? [current.data.delegate] : []),
  ]);
  const others = (members.data ?? []).filter(
    (m) => m.principal !== `user:${user?.id}` && m.role !== "guest",
  );
  const lend = (e: Event) => {
    e.preventDefault();
    void change.run(async () => {
      current.setData(
        await ok(api.PUT("/api/dao/daos/{dao}/delegation", { ...path, body: { delegate: to } })),
      );
    });
  };
  const revoke = () =>
    change.run(async () => {
      current.setData(await ok(api.DELETE("/api/dao/daos/{dao}/delegation", path)));
    });
  const it = current.data;
  return (
    <form class="card stack" aria-label={t("gov.delegation")} onSubmit={lend}>
      <h3>{t("gov.delegation")}</h3>
      <ErrorNote error={current.error} />
      {it && (
        <p>
          {it.delegate ? t("gov.delegates_to", { who: name(it.delegate) }) : t("gov.votes_self")}
          {it.delegators.length > 0 &&
            ` ${t("gov.delegated_by", { who: it.delegators.map(name).join(", ") })}`}
        </p>
      )}
      <MemberChoice members={others} label={t("gov.delegate")} value={to} set={setTo} />
      <ErrorNote error={change.error} />
      <div class="row">
        <button type="submit" disabled={change.busy || !to}>
          <Busy busy={change.busy} label="gov.lend" />
        </button>
        {it?.delegate && (
          <button type="button" class="secondary" onClick={revoke} disabled={change.busy}>
            {t("gov.take_back")}
          </button>
        )}
      </div>
    </form>
  );
}

/** What a ballot of `method` says, built from its form's state. */
function Ballot({
  proposal,
  voted,
}: {
  proposal: Proposal;
  voted: (receipt: Schemas["VoteReceipt"]) => void;
}) {
  const { t } = useI18n();
  const n = proposal.options.length;
  const [choice, setChoice] = useState<number | null>(null);
  const [picked, setPicked] = useState<boolean[]>(Array(n).fill(false));
  const [ranks, setRanks] = useState<string[]>(Array(n).fill(""));
  const [points, setPoints] = useState<string[]>(Array(n).fill("0"));
  const cast = useAction();
  const label = (i: number) =>
    proposal.method === "basic"
      ? t(`gov.basic.${proposal.options[i]}` as Key)
      : (proposal.options[i] ?? "");
  const ballot = (): Ballot => {
    switch (proposal.method) {
      case "basic":
      case "single":
        return { choice: choice ?? -1 };
      case "approval":
        return { approve: picked.flatMap((p, i) => (p ? [i] : [])) };
      case "ranked":
        return {
          rank: ranks
            .map((r, i) => [Number(r), i] as const)
            .filter(([r]) => r > 0)
            .sort((a, b) => a[0] - b[0])
            .map(([, i]) => i),
        };
      default:
        return { spread: points.map((p) => Number(p) || 0) };
    }
  };
  const submit = (e: Event) => {
    e.preventDefault();
    void cast.run(async () => {
      voted(
        await ok(
          api.POST("/api/dao/proposals/{proposal}/votes", {
            params: { path: { proposal: proposal.id } },
            body: { ballot: ballot() },
          }),
        ),
      );
    });
  };
  const options = proposal.options.map((_, i) => i);
  return (
    <form class="card stack" aria-label={t("gov.ballot")} onSubmit={submit}>
      <h2>{t("gov.ballot")}</h2>
      <p class="muted small">{t(`gov.how.${proposal.method}` as Key)}</p>
      {(proposal.method === "basic" || proposal.method === "single") && (
        <fieldset class="stack">
          <legend class="visually-hidden">{t("gov.ballot")}</legend>
          {options.map((i) => (
            <label key={i} class="row">
              <input
                type="radio"
                name="choice"
                checked={choice === i}
                onChange={() => setChoice(i)}
              />
              {label(i)}
            </label>
          ))}
        </fieldset>
      )}
      {proposal.method === "approval" &&
        options.map((i) => (
          <label key={i} class="row">
            <input
              type="checkbox"
              checked={picked[i]}
              onChange={(e) =>
                setPicked(picked.map((p, j) => (j === i ? e.currentTarget.checked : p)))
              }
            />
            {label(i)}
          </label>
        ))}
      {proposal.method === "ranked" &&
        options.map((i) => (
          <Field key={i} label={t("gov.rank_of", { option: label(i) })}>
            {(id) => (
              <select
                id={id}
                value={ranks[i]}
                onChange={(e) =>
                  setRanks(ranks.map((r, j) => (j === i ? e.currentTarget.value : r)))
                }
              >
                <option value="">{t("gov.unranked")}</option>
                {options.map((k) => (
                  <option key={k} value={String(k + 1)}>
                    {k + 1}
                  </option>
                ))}
              </select>
            )}
          </Field>
        ))}
      {(proposal.method === "weighted" || proposal.method === "quadratic") &&
        options.map((i) => (
          <Field key={i} label={t("gov.points_for", { option: label(i) })}>
            {(id) => (
              <input
                id={id}
                type="number"
                min={0}
                max={1000}
                value={points[i]}
                onInput={(e) =>
                  setPoints(points.map((p, j) => (j === i ? e.currentTarget.value : p)))
                }
              />
            )}
          </Field>
        ))}
      <ErrorNote error={cast.error} />
      <button type="submit" disabled={cast.busy}>
        <Busy busy={cast.busy} label="gov.vote" />
      </button>
    </form>
  );
}

/** Scores as shares of their sum, with the winner marked. */
function Scores({ proposal, tally }: { proposal: Proposal; tally: Tally }) {
  const { t } = useI18n();
  const total = tally.scores.reduce((a, b) => a + b, 0) || 1;
  const label = (i: number) =>
    proposal.method === "basic"
      ? t(`gov.basic.${proposal.options[i]}` as Key)
      : (proposal.options[i] ?? "");
  return (
    <ul class="list" aria-label={t("gov.tally")}>
      {tally.scores.map((score, i) => {
        const share = Math.round((score / total) * 1000) / 10;
        return (
          <li key={proposal.options[i]} class="stack">
            <span class="row spread">
              <span>
                {label(i)}
                {tally.winner === i && ` · ${t("gov.leading")}`}
              </span>
              <span class="muted small">{t("gov.score", { n: score / 1000, share })}</span>
            </span>
            <meter min={0} max={total} value={score} aria-label={label(i)} />
          </li>
        );
      })}
    </ul>
  );
}

/** RFC 8785's key order for the record's values (integers and strings). */
function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(",")}]`;
  if (value && typeof value === "object") {
    const entries = Object.entries(value as Record<string, unknown>).sort(([a], [b]) =>
      a < b ? -1 : a > b ? 1 : 0,
    );
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonical(v)}`).join(",")}}`;
  }
  return JSON.stringify(value);
}

async function sha256(text: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * Checks the whole record here, apart from the server: the genesis from
 * the proposal as it opened, each vote's hash from the one before, the
 * head. The number of votes checked, or the first that does not hold.
 */
async function verifyRecord(id: string): Promise<{ votes: number } | { broken: string }> {
  let after = 0;
  let first = true;
  let prev = "";
  let head = "";
  let votes = 0;
  for (;;) {
    const page = await ok(
      api.GET("/api/dao/proposals/{proposal}/record", {
        params: { path: { proposal: id }, query: { after, limit: 1000 } },
      }),
    );
    if (first) {
      prev = await sha256(`daarion-dao/1\n${canonical(page.definition)}`);
      if (prev !== page.genesis) return { broken: "genesis" };
      head = page.head;
      first = false;
    }
    for (const v of page.votes) {
      const entry = {
        proposal: id,
        seq: v.seq,
        voter: v.voter,
        ballot: v.ballot,
        cast_at: v.cast_at,
      };
      const hash = await sha256(`${prev}\n${canonical(entry)}`);
      if (v.prev !== prev || hash !== v.hash) return { broken: String(v.seq) };
      prev = hash;
      votes += 1;
    }
    if (page.next_after == null) break;
    after = page.next_after;
  }
  return prev === head ? { votes } : { broken: "head" };
}

function Record({ id }: { id: string }) {
  const { t } = useI18n();
  const [checked, setChecked] = useState<{ votes: number } | { broken: string } | null>(null);
  const check = useAction();
  return (
    <div class="card stack">
      <h2>{t("gov.record")}</h2>
      <p class="muted small">{t("gov.record_hint")}</p>
      <ErrorNote error={check.error} />
      {checked &&
        ("votes" in checked ? (
          <p role="status">{t("gov.record_intact", { n: checked.votes })}</p>
        ) : (
          <p role="alert" class="error">
            {t("gov.record_broken", { at: checked.broken })}
          </p>
        ))}
      <button
        type="button"
        class="secondary"
        disabled={check.busy}
        onClick={() => check.run(async () => setChecked(await verifyRecord(id)))}
      >
        <Busy busy={check.busy} label="gov.verify" />
      </button>
    </div>
  );
}

function ActionSummary({ action }: { action: Action }) {
  const { t } = useI18n();
  const name = usePeople(
    "principal" in action ? [action.principal] : "to" in action ? [action.to] : [],
  );
  switch (action.type) {
    case "add_member":
    case "change_role":
      return (
        <p>
          {t(`gov.does.${action.type}`, {
            who: name(action.principal),
            role: t(`dao.role.${action.role}` as Key),
          })}
        </p>
      );
    case "remove_member":
      return <p>{t("gov.does.remove_member", { who: name(action.principal) })}</p>;
    case "transfer":
      return <p>{t("gov.does.transfer", { who: name(action.to), n: action.amount })}</p>;
    case "change_settings":
      return (
        <p>
          {t("gov.does.change_settings", {
            what: [action.name, action.description, action.visibility].filter(Boolean).join(", "),
          })}
        </p>
      );
    case "attach_agent":
    case "detach_agent":
      return <p>{t(`gov.does.${action.type}`, { agent: action.agent })}</p>;
    case "change_agent":
      return (
        <div class="stack">
          <p>
            {t("gov.does.change_agent", {
              agent: action.agent,
              what: [
                action.prompt != null && t("gov.prompt"),
                action.tools != null && `${t("gov.tools")}: ${action.tools.join(", ")}`,
                action.model != null && `${t("gov.model")}: ${action.model}`,
                action.status != null &&
                  t(action.status === "paused" ? "gov.agent_paused" : "gov.agent_active"),
              ]
                .filter(Boolean)
                .join("; "),
            })}
          </p>
          {action.prompt != null && <pre>{action.prompt}</pre>}
        </div>
      );
    case "limit_spending":
      return (
        <p>
          {t("gov.does.limit_spending", {
            what: [
              action.requests_per_minute != null &&
                `${t("gov.rpm")}: ${action.requests_per_minute}`,
              action.tokens_per_minute != null && `${t("gov.tpm")}: ${action.tokens_per_minute}`,
              action.budget_cents_per_month != null &&
                `${t("gov.budget")}: ${(action.budget_cents_per_month / 100).toFixed(2)}`,
            ]
              .filter(Boolean)
              .join("; "),
          })}
        </p>
      );
  }
}

/** One proposal: what it asks, its ballot while open, its count, its end. */
export function ProposalPage({ id }: { id: string }) {
  const { t, dateTime } = useI18n();
  const { user } = useSession();
  const proposal = useLoad(
    () => ok(api.GET("/api/dao/proposals/{proposal}", { params: { path: { proposal: id } } })),
    [id],
  );
  const p = proposal.data;
  const tally = useLoad(
    () =>
      p && p.status !== "draft"
        ? ok(api.GET("/api/dao/proposals/{proposal}/tally", { params: { path: { proposal: id } } }))
        : Promise.resolve(undefined),
    [id, p?.status, p?.votes],
  );
  const [receipt, setReceipt] = useState<Schemas["VoteReceipt"] | null>(null);
  const act = useAction();
  const name = usePeople(p ? [p.author] : []);
  // While voting is open (or a passed action waits), the page follows it.
  const open = p?.status === "active" || p?.execution === "pending";
  useEffect(() => {
    if (!open) return;
    const timer = window.setInterval(proposal.reload, POLL_MS);
    return () => window.clearInterval(timer);
  }, [open, proposal.reload]);
  if (proposal.error) return <ErrorNote error={proposal.error} />;
  if (!p) return <Loading />;
  const mine = user && p.author === `user:${user.id}`;
  const step = (path: "open" | "cancel" | "execute") =>
    act.run(async () => {
      proposal.setData(
        await ok(
          api.POST(`/api/dao/proposals/{proposal}/${path}`, {
            params: { path: { proposal: id } },
          }),
        ),
      );
    });
  const shown = tally.data?.tally;
  return (
    <section class="stack">
      <p>
        <a href={`/communities/${p.dao}`}>{t("gov.back", { dao: p.dao })}</a>
      </p>
      <h1>{p.title}</h1>
      <p class="row">
        <span class={`badge status-${p.status}`} role="status">
          {t(`gov.status.${p.status}` as Key)}
        </span>
        <span class="muted small">
          {t("gov.by", { who: name(p.author) })} · {t(`gov.kind.${p.kind}` as Key)} ·{" "}
          {t(`gov.method.${p.method}` as Key)}
        </span>
      </p>
      {p.body && (
        // Safe: the server renders markdown with raw HTML escaped and only safe links.
        <div class="body" dangerouslySetInnerHTML={{ __html: p.body_html }} />
      )}
      {p.action && <ActionSummary action={p.action} />}
      <p class="muted small">
        {p.closes_at &&
          (p.status === "active"
            ? t("gov.closes", { at: dateTime(p.closes_at) })
            : t("gov.closed_at", { at: dateTime(p.closed_at ?? p.closes_at) }))}
      </p>
      <ErrorNote error={act.error} />
      {mine && (p.status === "draft" || (p.status === "active" && p.votes === 0)) && (
        <div class="row">
          {p.status === "draft" && (
            <button type="button" onClick={() => step("open")} disabled={act.busy}>
              <Busy busy={act.busy} label="gov.open" />
            </button>
          )}
          <button
            type="button"
            class="secondary"
            onClick={() => step("cancel")}
            disabled={act.busy}
          >
            {t("gov.withdraw")}
          </button>
        </div>
      )}
      {p.status === "active" && !receipt && (
        <Ballot
          proposal={p}
          voted={(r) => {
            setReceipt(r);
            proposal.reload();
          }}
        />
      )}
      {receipt && (
        <p class="card small" role="status">
          {t("gov.receipt", { seq: receipt.seq, hash: receipt.hash.slice(0, 16) })}
        </p>
      )}
      {p.status !== "draft" && (
        <div class="card stack">
          <h2>{p.result ? t("gov.result") : t("gov.tally")}</h2>
          <ErrorNote error={tally.error} />
          {shown ? (
            <>
              <Scores proposal={p} tally={shown} />
              <p class="small muted">
                {t("gov.turnout", {
                  n: shown.turnout_power,
                  of: shown.electorate_power,
                  ballots: shown.ballots,
                })}{" "}
                · {shown.quorum_met ? t("gov.quorum_met") : t("gov.quorum_not_met")}
              </p>
            </>
          ) : (
            tally.data && <p class="muted">{t("gov.hidden_until", { n: tally.data.votes })}</p>
          )}
        </div>
      )}
      {p.execution && (
        <div class="card stack">
          <h2>{t("gov.execution")}</h2>
          <p role="status">{t(`gov.execution.${p.execution}` as Key)}</p>
          {p.execution_error && <p class="error small">{p.execution_error}</p>}
          {p.execution === "failed" && (
            <button type="button" onClick={() => step("execute")} disabled={act.busy}>
              <Busy busy={act.busy} label="gov.retry" />
            </button>
          )}
        </div>
      )}
      {p.status !== "draft" && p.status !== "cancelled" && !(p.hidden && p.status === "active") && (
        <Record id={id} />
      )}
    </section>
  );
}
