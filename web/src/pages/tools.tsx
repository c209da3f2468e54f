// The city admins' tools: what agents can call (built-ins, webhooks and
// tools of MCP servers), registering one (a webhook's signing secret shown
// once; an MCP server's tools listed to choose from), editing, turning one
// on or off or removing it, and the log of every call.
import { useState } from "preact/hooks";
import { api, ok, type Schemas } from "../api/client";
import { useI18n } from "../i18n";
import { Busy, ErrorNote, Field, Listed, MoreButton, useAction, usePaged } from "../ui";

type Tool = Schemas["ToolView"];
type Kind = Schemas["ToolKind"];

const EXECUTORS = { builtin: "tools.builtin", webhook: "tools.webhook", mcp: "tools.mcp" } as const;

export function ToolsAdmin() {
  const { t } = useI18n();
  const tools = usePaged(
    (cursor) => ok(api.GET("/api/toolcore/tools", { params: { query: { limit: 50, cursor } } })),
    [],
  );
  const calls = usePaged(
    (cursor) => ok(api.GET("/api/toolcore/calls", { params: { query: { limit: 20, cursor } } })),
    [],
  );
  const change = useAction();
  const [editing, setEditing] = useState<Tool | null>(null);
  const setEnabled = (tool: Tool, enabled: boolean) =>
    change.run(async () => {
      await ok(
        api.PATCH("/api/toolcore/tools/{tool}", {
          params: { path: { tool: tool.name } },
          body: { enabled },
        }),
      );
      tools.reload();
    });
  const remove = (tool: Tool) =>
    change.run(async () => {
      await ok(api.DELETE("/api/toolcore/tools/{tool}", { params: { path: { tool: tool.name } } }));
      tools.reload();
    });
  return (
    <section class="stack">
      <h1>{t("tools.title")}</h1>
      <p class="muted">{t("tools.intro")}</p>
      <Listed items={tools.items} error={tools.error} empty={t("tools.none")}>
        {(items) => (
          <table aria-label={t("tools.title")}>
            <thead>
              <tr>
                <th scope="col">{t("tools.name")}</th>
                <th scope="col">{t("tools.executor")}</th>
                <th scope="col">{t("tools.enabled")}</th>
                <th scope="col">
                  <span class="visually-hidden">{t("common.delete")}</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {items.map((tool) => (
                <tr key={tool.name}>
                  <td>
                    <code>{tool.name}</code>
                    <div class="small muted">{tool.description}</div>
                  </td>
                  <td>
                    {t(EXECUTORS[tool.executor as keyof typeof EXECUTORS] ?? "tools.webhook")}
                    {tool.remote_name && (
                      <div class="small muted">
                        <code>{tool.remote_name}</code>
                      </div>
                    )}
                  </td>
                  <td>
                    {t(tool.enabled ? "tools.on" : "tools.off")}{" "}
                    {tool.executor !== "builtin" && (
                      <button
                        type="button"
                        class="secondary"
                        disabled={change.busy}
                        onClick={() => setEnabled(tool, !tool.enabled)}
                      >
                        {t(tool.enabled ? "tools.turn_off_named" : "tools.turn_on_named", {
                          name: tool.name,
                        })}
                      </button>
                    )}
                  </td>
                  <td>
                    {tool.executor !== "builtin" && (
                      <button
                        type="button"
                        class="secondary"
                        disabled={change.busy}
                        onClick={() => setEditing(tool)}
                      >
                        {t("tools.edit_named", { name: tool.name })}
                      </button>
                    )}{" "}
                    {tool.executor !== "builtin" && (
                      <button
                        type="button"
                        class="ghost"
                        aria-label={t("tools.remove_named", { name: tool.name })}
                        disabled={change.busy}
                        onClick={() => remove(tool)}
                      >
                        {t("common.delete")}
                      </button>
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </Listed>
      <MoreButton paged={tools} />
      <ErrorNote error={change.error} />
      {editing && (
        <EditTool
          key={editing.name}
          tool={editing}
          done={() => {
            setEditing(null);
            tools.reload();
          }}
          cancel={() => setEditing(null)}
        />
      )}
      <RegisterTool registered={tools.reload} />
      <h2>{t("tools.calls")}</h2>
      <Listed items={calls.items} error={calls.error} empty={t("tools.no_calls")}>
        {(items) => (
          <table aria-label={t("tools.calls")}>
            <thead>
              <tr>
                <th scope="col">{t("tools.name")}</th>
                <th scope="col">{t("tools.caller")}</th>
                <th scope="col">{t("tools.outcome")}</th>
                <th scope="col">{t("tools.latency")}</th>
              </tr>
            </thead>
            <tbody>
              {items.map((call) => (
                <tr key={call.id}>
                  <td>
                    <code>{call.tool}</code>
                  </td>
                  <td>{call.caller}</td>
                  <td title={call.error ?? undefined}>{call.outcome}</td>
                  <td>{call.latency_ms} ms</td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </Listed>
      <MoreButton paged={calls} />
    </section>
  );
}

const EMPTY_SCHEMA = '{\n  "type": "object",\n  "properties": {}\n}';
const EMPTY_FORM = {
  name: "",
  description: "",
  url: "",
  schema: EMPTY_SCHEMA,
  token: "",
  remote: "",
};

/** The schema typed in, or `null` (and the error shown) when it is not JSON. */
function parsedSchema(text: string, fail: (e: Error) => void, message: string) {
  try {
    return JSON.parse(text) as Schemas["RegisterTool"]["parameters"];
  } catch {
    fail(new Error(message));
    return null;
  }
}

/** A city name for a server's tool: `mcp.<its name>`, within the rules. */
function cityName(remote: string) {
  const segment = remote.toLowerCase().replace(/[^a-z0-9_-]+/g, "-");
  return `mcp.${segment}`.slice(0, 64);
}

function RegisterTool({ registered }: { registered: () => void }) {
  const { t } = useI18n();
  const [kind, setKind] = useState<Kind>("webhook");
  const [form, setForm] = useState(EMPTY_FORM);
  const [secret, setSecret] = useState<string | null>(null);
  const [offered, setOffered] = useState<Schemas["McpToolView"][] | null>(null);
  const { busy, error, run, setError } = useAction();
  const listServer = () =>
    run(async () => {
      const listed = await ok(
        api.POST("/api/toolcore/mcp/tools", {
          body: { url: form.url.trim(), token: form.token || null },
        }),
      );
      setOffered(listed.items);
    });
  const submit = (event: Event) => {
    event.preventDefault();
    const parameters =
      kind === "webhook" ? parsedSchema(form.schema, setError, t("tools.not_json")) : undefined;
    if (parameters === null) {
      return;
    }
    run(async () => {
      const made = await ok(
        api.POST("/api/toolcore/tools", {
          body: {
            name: form.name.trim(),
            kind,
            description: form.description.trim() || null,
            url: form.url.trim(),
            parameters,
            ...(kind === "mcp"
              ? { token: form.token || null, remote_name: form.remote.trim() || null }
              : {}),
          },
        }),
      );
      setSecret(made.secret ?? null);
      setForm(EMPTY_FORM);
      setOffered(null);
      registered();
    });
  };
  return (
    <form class="card stack" onSubmit={submit} aria-label={t("tools.register")}>
      <h2>{t("tools.register")}</h2>
      <Field label={t("tools.kind")}>
        {(id) => (
          <select id={id} value={kind} onChange={(e) => setKind(e.currentTarget.value as Kind)}>
            <option value="webhook">{t("tools.webhook")}</option>
            <option value="mcp">{t("tools.mcp")}</option>
          </select>
        )}
      </Field>
      <Field label={t("tools.name")} hint={t("tools.name_hint")}>
        {(id) => (
          <input
            id={id}
            required
            maxLength={64}
            value={form.name}
            onInput={(e) => setForm({ ...form, name: e.currentTarget.value })}
          />
        )}
      </Field>
      <ToolFields form={form} setForm={setForm} mcp={kind === "mcp"} editing={false} />
      {kind === "mcp" && (
        <>
          <button type="button" class="secondary" disabled={busy || !form.url} onClick={listServer}>
            {t("tools.mcp_list")}
          </button>
          {offered && (
            <ul class="stack" aria-label={t("tools.mcp_offered")}>
              {offered.map((tool) => (
                <li key={tool.name}>
                  <code>{tool.name}</code> <span class="small muted">{tool.description}</span>{" "}
                  <button
                    type="button"
                    class="ghost"
                    onClick={() =>
                      setForm({
                        ...form,
                        remote: tool.name,
                        name: form.name || cityName(tool.name),
                      })
                    }
                  >
                    {t("tools.mcp_use_named", { name: tool.name })}
                  </button>
                </li>
              ))}
            </ul>
          )}
        </>
      )}
      <ErrorNote error={error} />
      <button type="submit" disabled={busy}>
        <Busy busy={busy} label="tools.register" />
      </button>
      {secret && (
        <div role="status">
          <p>{t("tools.secret_once")}</p>
          <code class="secret">{secret}</code>
        </div>
      )}
    </form>
  );
}

/** Changes a registered tool: its address, description, timeout, and its
 * schema (a webhook) or its name on the server and token (an MCP tool). */
function EditTool({ tool, done, cancel }: { tool: Tool; done: () => void; cancel: () => void }) {
  const { t } = useI18n();
  const [form, setForm] = useState({
    description: tool.description,
    url: tool.url ?? "",
    timeout: String(tool.timeout_ms),
    schema: JSON.stringify(tool.parameters, null, 2),
    remote: tool.remote_name ?? "",
    token: "",
  });
  const { busy, error, run, setError } = useAction();
  const mcp = tool.executor === "mcp";
  const submit = (event: Event) => {
    event.preventDefault();
    const parameters = mcp ? undefined : parsedSchema(form.schema, setError, t("tools.not_json"));
    if (parameters === null) {
      return;
    }
    run(async () => {
      await ok(
        api.PATCH("/api/toolcore/tools/{tool}", {
          params: { path: { tool: tool.name } },
          body: {
            description: form.description.trim(),
            url: form.url.trim(),
            timeout_ms: Number(form.timeout),
            parameters,
            ...(mcp ? { remote_name: form.remote.trim() || null, token: form.token || null } : {}),
          },
        }),
      );
      done();
    });
  };
  const label = t("tools.editing", { name: tool.name });
  return (
    <form class="card stack" onSubmit={submit} aria-label={label}>
      <h2>{label}</h2>
      <ToolFields form={form} setForm={setForm} mcp={mcp} editing={true} />
      <Field label={t("tools.timeout")}>
        {(id) => (
          <input
            id={id}
            type="number"
            min={100}
            max={60000}
            required
            value={form.timeout}
            onInput={(e) => setForm({ ...form, timeout: e.currentTarget.value })}
          />
        )}
      </Field>
      <ErrorNote error={error} />
      <div class="row">
        <button type="submit" disabled={busy}>
          <Busy busy={busy} label="tools.save" />
        </button>
        <button type="button" class="secondary" onClick={cancel}>
          {t("common.cancel")}
        </button>
      </div>
    </form>
  );
}

interface ToolForm {
  description: string;
  url: string;
  schema: string;
  token: string;
  remote: string;
}

/** The fields a registered tool is made of: its description and address,
 * then a webhook's schema, or an MCP tool's token and name on its server
 * (`editing`: a blank token keeps the current one, the name is required). */
function ToolFields<F extends ToolForm>({
  form,
  setForm,
  mcp,
  editing,
}: {
  form: F;
  setForm: (form: F) => void;
  mcp: boolean;
  editing: boolean;
}) {
  const { t } = useI18n();
  return (
    <>
      <Field label={t("rooms.description")}>
        {(id) => (
          <input
            id={id}
            maxLength={1000}
            value={form.description}
            onInput={(e) => setForm({ ...form, description: e.currentTarget.value })}
          />
        )}
      </Field>
      <Field label={t(mcp ? "tools.mcp_url" : "tools.url")}>
        {(id) => (
          <input
            id={id}
            type="url"
            required
            value={form.url}
            onInput={(e) => setForm({ ...form, url: e.currentTarget.value })}
          />
        )}
      </Field>
      {mcp ? (
        <>
          <Field
            label={t("tools.token")}
            hint={t(editing ? "tools.token_keep_hint" : "tools.token_hint")}
          >
            {(id) => (
              <input
                id={id}
                type="password"
                autoComplete="off"
                maxLength={4096}
                value={form.token}
                onInput={(e) => setForm({ ...form, token: e.currentTarget.value })}
              />
            )}
          </Field>
          <Field
            label={t("tools.remote_name")}
            hint={editing ? undefined : t("tools.remote_name_hint")}
          >
            {(id) => (
              <input
                id={id}
                maxLength={128}
                required={editing}
                value={form.remote}
                onInput={(e) => setForm({ ...form, remote: e.currentTarget.value })}
              />
            )}
          </Field>
        </>
      ) : (
        <Field label={t("tools.schema")} hint={t("tools.schema_hint")}>
          {(id) => (
            <textarea
              id={id}
              rows={6}
              required
              value={form.schema}
              onInput={(e) => setForm({ ...form, schema: e.currentTarget.value })}
            />
          )}
        </Field>
      )}
    </>
  );
}
