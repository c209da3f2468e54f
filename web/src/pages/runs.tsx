// An agent's runs, for those who manage it: each question it was asked in a
// room, how the run went (queued, running, answered, failed, cancelled), who
// asked, what it cost in tokens, and — opened — its steps: each model call
// and each tool call with what the tool was given and answered. Unfinished
// runs can be cancelled. Runs at work show live (`/ws/agents/events/…`):
// the answer growing word by word, the tool being called; the list
// reloads when a run starts or ends.
import { useEffect, useState } from "preact/hooks";
import { ApiFailure, api, ok, type Schemas } from "../api/client";
import { useI18n } from "../i18n";
import { type Frame, subscribe } from "../live";
import {
  ErrorNote,
  Listed,
  Loading,
  MoreButton,
  useAction,
  useLoad,
  usePaged,
  usePeople,
} from "../ui";

type Run = Schemas["RunView"];
type Step = Schemas["RunStepView"];

const unfinished = (run: Run) => run.status === "queued" || run.status === "running";

export function AgentRuns({ slug }: { slug: string }) {
  const { t, dateTime } = useI18n();
  const runs = usePaged(
    (cursor) =>
      ok(
        api.GET("/api/runtime/agents/{agent}/runs", {
          params: { path: { agent: slug }, query: { limit: 20, cursor } },
        }),
      ),
    [slug],
  );
  const [open, setOpen] = useState<string | null>(null);
  const name = usePeople((runs.items ?? []).map((r) => r.asker));
  const working = useWorking(slug, runs.items !== undefined, runs.reload);
  // Only those who manage the agent see its runs.
  if (runs.error instanceof ApiFailure && runs.error.status === 403) return null;
  return (
    <section class="stack" aria-labelledby="agent-runs">
      <h2 id="agent-runs">{t("runs.title")}</h2>
      <div role="status" aria-live="polite" aria-label={t("runs.working")}>
        {Object.entries(working).map(([run, work]) => (
          <div key={run} class="card stack">
            <strong>
              {work.tool ? t("runs.calling", { tool: work.tool }) : t("runs.writing")}
            </strong>
            {work.words && <div class="mono">{work.words}</div>}
          </div>
        ))}
      </div>
      <Listed items={runs.items} error={runs.error} empty={t("runs.empty")}>
        {(items) => (
          <ul class="list card" aria-label={t("runs.title")}>
            {items.map((run) => (
              <li key={run.id} class="stack">
                <div class="row spread">
                  <span>
                    <strong>{t(`runs.status.${run.status}`)}</strong> ·{" "}
                    {t("runs.asked_by", { who: name(run.asker) })}
                    <div class="small muted">
                      {dateTime(run.created_at)} ·{" "}
                      {t("runs.tokens", { input: run.tokens_in, output: run.tokens_out })}
                      {run.attempts > 1 && ` · ${t("runs.attempts", { n: run.attempts })}`}
                    </div>
                    {run.error && <div class="small error-text">{run.error}</div>}
                  </span>
                  <button
                    type="button"
                    class="ghost"
                    aria-expanded={open === run.id}
                    onClick={() => setOpen(open === run.id ? null : run.id)}
                  >
                    {open === run.id ? t("runs.hide_steps") : t("runs.show_steps")}
                  </button>
                </div>
                {open === run.id && <RunDetail id={run.id} changed={runs.reload} />}
              </li>
            ))}
          </ul>
        )}
      </Listed>
      <MoreButton paged={runs} />
    </section>
  );
}

type Work = { words: string; tool?: string };

/**
 * Runs at work, by run id, from the agent's live events (once `ready`: the
 * caller may see its runs); `changed` when one starts or ends.
 */
function useWorking(slug: string, ready: boolean, changed: () => void) {
  const [working, setWorking] = useState<Record<string, Work>>({});
  useEffect(() => {
    if (!ready) return;
    const sub = subscribe(`/ws/agents/events/${encodeURIComponent(slug)}`, {
      frame: (frame: Frame) => {
        const run = String(frame.run ?? "");
        if (!run) return;
        if (frame.type === "completed" || frame.type === "failed") {
          setWorking(({ [run]: _, ...rest }) => rest);
          changed();
          return;
        }
        if (frame.type === "started") changed();
        setWorking((now) => {
          const work = now[run] ?? { words: "" };
          if (frame.type === "token")
            return { ...now, [run]: { words: work.words + String(frame.text ?? "") } };
          if (frame.type === "tool_call")
            return { ...now, [run]: { ...work, tool: String(frame.tool ?? "") } };
          if (frame.type === "tool_result") return { ...now, [run]: { ...work, tool: undefined } };
          return { ...now, [run]: work };
        });
      },
      state: (_state, resumed) => resumed && changed(),
    });
    return () => sub.close();
  }, [slug, ready]);
  return working;
}

function RunDetail({ id, changed }: { id: string; changed: () => void }) {
  const { t } = useI18n();
  const run = useLoad(
    () => ok(api.GET("/api/runtime/runs/{run}", { params: { path: { run: id } } })),
    [id],
  );
  const cancel = useAction();
  if (run.error) return <ErrorNote error={run.error} />;
  if (!run.data) return <Loading />;
  const it = run.data;
  return (
    <div class="stack">
      {it.steps.length === 0 ? (
        <p class="muted">{t("runs.no_steps")}</p>
      ) : (
        <ol class="steps" aria-label={t("runs.steps")}>
          {it.steps.map((step) => (
            <RunStep key={step.n} step={step} runAgent={it.agent} />
          ))}
        </ol>
      )}
      {unfinished(it) && (
        <div class="row">
          <button
            type="button"
            class="secondary"
            disabled={cancel.busy}
            onClick={() =>
              cancel.run(async () => {
                await ok(
                  api.POST("/api/runtime/runs/{run}/cancel", { params: { path: { run: id } } }),
                );
                run.reload();
                changed();
              })
            }
          >
            {t("runs.cancel")}
          </button>
        </div>
      )}
      <ErrorNote error={cancel.error} />
    </div>
  );
}

/** A short, readable form of what a step was given or answered. */
function shown(value: unknown): string {
  if (value === null || value === undefined) return "";
  const text = typeof value === "string" ? value : JSON.stringify(value);
  return text.length > 300 ? `${text.slice(0, 299)}…` : text;
}

function RunStep({ step, runAgent }: { step: Step; runAgent: string }) {
  const { t } = useI18n();
  const output = step.output as { content?: string | null; tool_calls?: unknown[] } | null;
  const said =
    step.kind === "model"
      ? output?.tool_calls
        ? t("runs.asked_tools", { n: output.tool_calls.length })
        : shown(output?.content)
      : shown(step.output);
  return (
    <li>
      <strong>
        {step.kind === "model"
          ? t("runs.model_call", { model: step.name })
          : t("runs.tool_call", { tool: step.name })}
      </strong>{" "}
      <span class="small muted">
        {step.agent !== runAgent && <>{t("runs.by_member", { agent: step.agent })} · </>}
        {step.ok ? t("runs.ok") : t("runs.step_failed")} · {step.latency_ms} ms
      </span>
      {step.kind === "tool" && (
        <div class="small mono">{t("runs.given", { args: shown(step.input) })}</div>
      )}
      <div class="small mono">{said}</div>
    </li>
  );
}
