// The city admins' tools: what agents can call (built-ins and webhooks),
// registering a webhook (its signing secret shown once), turning one on
// or off or removing it, and the log of every call.
import { useState } from "preact/hooks";
import { api, ok, type Schemas } from "../api/client";
import { useI18n } from "../i18n";
import { Busy, ErrorNote, Field, Listed, MoreButton, useAction, usePaged } from "../ui";

type Tool = Schemas["ToolView"];

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
                  <td>{t(tool.executor === "builtin" ? "tools.builtin" : "tools.webhook")}</td>
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

function RegisterTool({ registered }: { registered: () => void }) {
  const { t } = useI18n();
  const [form, setForm] = useState({ name: "", description: "", url: "", schema: EMPTY_SCHEMA });
  const [secret, setSecret] = useState<string | null>(null);
  const { busy, error, run, setError } = useAction();
  const submit = (event: Event) => {
    event.preventDefault();
    let parameters: Record<string, unknown>;
    try {
      parameters = JSON.parse(form.schema);
    } catch {
      setError(new Error(t("tools.not_json")));
      return;
    }
    run(async () => {
      const made = await ok(
        api.POST("/api/toolcore/tools", {
          body: {
            name: form.name.trim(),
            description: form.description.trim() || null,
            url: form.url.trim(),
            parameters: parameters as Schemas["RegisterTool"]["parameters"],
          },
        }),
      );
      setSecret(made.secret);
      setForm({ name: "", description: "", url: "", schema: EMPTY_SCHEMA });
      registered();
    });
  };
  return (
    <form class="card stack" onSubmit={submit} aria-label={t("tools.register")}>
      <h2>{t("tools.register")}</h2>
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
      <Field label={t("tools.url")}>
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
