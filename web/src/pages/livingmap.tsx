// The living map: the city as it moves, drawn on a canvas (communities in
// their districts, their rooms and agents around them, people present
// around the square, city nodes along the top; memberships, agents
// answering, activity), fed by `/ws/living-map/stream` — a snapshot, then
// numbered changes; after a reconnect the socket resumes from the last
// number held. Pan by dragging, zoom with the wheel or the buttons. Beside
// it, in words: the city's pulse, the communities on the map, the latest
// changes.
import { useEffect, useRef, useState } from "preact/hooks";
import { api, ok, type Schemas } from "../api/client";
import { type Key, useI18n } from "../i18n";
import { type Frame, subscribe } from "../live";
import { ErrorNote } from "../ui";

type Node = Schemas["MapNode"];
type Edge = Schemas["MapEdge"];
type Delta = Schemas["Delta"];
type Counters = Schemas["Counters"];

const COLORS: Record<Node["kind"], string> = {
  dao: "#2f6fde",
  room: "#1f9d6b",
  agent: "#c2410c",
  person: "#8b5cf6",
  node: "#6b7280",
};
const RADIUS: Record<Node["kind"], number> = {
  dao: 0.9,
  room: 0.45,
  agent: 0.45,
  person: 0.35,
  node: 0.5,
};
/** How often the pulse is asked for again. */
const COUNTERS_MS = 5000;
/** Changes listed in words. */
const RECENT = 12;

interface MapState {
  seq: number;
  width: number;
  height: number;
  districts: Schemas["MapDistrict"][];
  nodes: Map<string, Node>;
  edges: Map<string, Edge>;
}

const edgeKey = (e: { from: string; to: string; kind: string }) => `${e.from}|${e.to}|${e.kind}`;

function apply(state: MapState, deltas: Delta[]) {
  for (const d of deltas) {
    if (d.seq <= state.seq) continue;
    switch (d.op) {
      case "node":
        state.nodes.set(d.node.id, d.node);
        break;
      case "remove_node":
        state.nodes.delete(d.id);
        for (const [k, e] of state.edges)
          if (e.from === d.id || e.to === d.id) state.edges.delete(k);
        break;
      case "edge":
        state.edges.set(edgeKey(d.edge), d.edge);
        break;
      case "remove_edge":
        state.edges.delete(edgeKey(d));
        break;
    }
    state.seq = d.seq;
  }
}

interface View {
  x: number;
  y: number;
  scale: number;
}

function draw(canvas: HTMLCanvasElement, map: MapState, view: View) {
  const ctx = canvas.getContext("2d");
  if (!ctx) return;
  const ratio = window.devicePixelRatio || 1;
  const { clientWidth: w, clientHeight: h } = canvas;
  if (canvas.width !== w * ratio || canvas.height !== h * ratio) {
    canvas.width = w * ratio;
    canvas.height = h * ratio;
  }
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.clearRect(0, 0, w, h);
  const at = (x: number, y: number): [number, number] => [
    (x - view.x) * view.scale,
    (y - view.y) * view.scale,
  ];
  ctx.lineWidth = 1;
  for (const d of map.districts) {
    const [ax = 0, ay = 0, aw = 0, ah = 0] = d.area;
    const [x, y] = at(ax, ay);
    ctx.strokeStyle = "rgba(120,120,120,0.5)";
    ctx.strokeRect(x, y, aw * view.scale, ah * view.scale);
    ctx.fillStyle = "rgba(120,120,120,0.8)";
    ctx.fillText(d.slug, x + 4, y + 12);
  }
  ctx.strokeStyle = "rgba(100,116,139,0.35)";
  ctx.beginPath();
  for (const e of map.edges.values()) {
    const a = map.nodes.get(e.from);
    const b = map.nodes.get(e.to);
    if (!a || !b) continue;
    ctx.moveTo(...at(a.x, a.y));
    ctx.lineTo(...at(b.x, b.y));
  }
  ctx.stroke();
  for (const n of map.nodes.values()) {
    const [x, y] = at(n.x, n.y);
    if (x < -10 || y < -10 || x > w + 10 || y > h + 10) continue;
    ctx.fillStyle = COLORS[n.kind];
    ctx.globalAlpha = n.status === "offline" ? 0.4 : 1;
    ctx.beginPath();
    ctx.arc(x, y, Math.max(2, RADIUS[n.kind] * view.scale), 0, Math.PI * 2);
    ctx.fill();
    if (n.kind === "dao" && view.scale > 8) ctx.fillText(n.label, x + 6, y - 6);
  }
  ctx.globalAlpha = 1;
}

export function LivingMap() {
  const { t } = useI18n();
  const canvas = useRef<HTMLCanvasElement>(null);
  const map = useRef<MapState | null>(null);
  const view = useRef<View>({ x: -2, y: -6, scale: 16 });
  const frame = useRef(0);
  const [, setReady] = useState(false);
  const ready = useRef(false);
  const [communities, setCommunities] = useState<Node[]>([]);
  const [recent, setRecent] = useState<string[]>([]);
  const [counters, setCounters] = useState<Counters | null>(null);
  const [error, setError] = useState<unknown>(null);

  const redraw = () => {
    if (frame.current) return;
    frame.current = requestAnimationFrame(() => {
      frame.current = 0;
      if (canvas.current && map.current) draw(canvas.current, map.current, view.current);
    });
  };
  const listed = () => {
    const all = map.current ? [...map.current.nodes.values()] : [];
    setCommunities(
      all.filter((n) => n.kind === "dao").sort((a, b) => a.label.localeCompare(b.label)),
    );
  };

  useEffect(() => {
    const onFrame = (f: Frame) => {
      if (f.type === "snapshot") {
        const s = f as unknown as Schemas["Snapshot"];
        map.current = {
          seq: s.seq,
          width: s.width,
          height: s.height,
          districts: s.districts,
          nodes: new Map(s.nodes.map((n) => [n.id, n])),
          edges: new Map(s.edges.map((e) => [edgeKey(e), e])),
        };
        setCounters(s.counters);
        if (!ready.current) fit();
        ready.current = true;
        setReady(true);
      } else if (f.type === "deltas" && map.current) {
        const deltas = f.deltas as Delta[];
        apply(map.current, deltas);
        const nodes = map.current.nodes;
        // People not present are not on the map: their name is in their id.
        const label = (id: string) => nodes.get(id)?.label ?? id.replace(/^person:/, "");
        const words = deltas.map((d) => describe(d, label));
        setRecent((r) => [...words.filter(Boolean).reverse(), ...r].slice(0, RECENT) as string[]);
      } else if (f.type === "error") {
        setError(new Error(String((f.error as { message?: string })?.message ?? "error")));
      }
      listed();
      redraw();
    };
    const describe = (d: Delta, label: (id: string) => string): string | null => {
      switch (d.op) {
        case "node":
          return t(`livemap.seen.${d.node.kind}` as Key, { name: d.node.label });
        case "edge":
          return d.edge.kind === "activity"
            ? t("livemap.spoke", { who: label(d.edge.from), where: label(d.edge.to) })
            : d.edge.kind === "member"
              ? t("livemap.joined", { who: label(d.edge.from), where: label(d.edge.to) })
              : null;
        case "remove_node":
          return t("livemap.left", { name: label(d.id) });
        default:
          return null;
      }
    };
    const sub = subscribe(
      "/ws/living-map/stream",
      { frame: onFrame },
      { query: () => (map.current ? `?since=${map.current.seq}` : "") },
    );
    return () => sub.close();
  }, []);

  useEffect(() => {
    let live = true;
    const poll = () =>
      ok(api.GET("/api/living-map/counters")).then(
        (c) => live && setCounters(c),
        (e) => live && setError(e),
      );
    const timer = window.setInterval(poll, COUNTERS_MS);
    return () => {
      live = false;
      window.clearInterval(timer);
    };
  }, []);

  useEffect(() => {
    const c = canvas.current;
    if (!c) return;
    let drag: { x: number; y: number } | null = null;
    const down = (e: PointerEvent) => {
      drag = { x: e.clientX, y: e.clientY };
      c.setPointerCapture(e.pointerId);
    };
    const move = (e: PointerEvent) => {
      if (!drag) return;
      view.current.x -= (e.clientX - drag.x) / view.current.scale;
      view.current.y -= (e.clientY - drag.y) / view.current.scale;
      drag = { x: e.clientX, y: e.clientY };
      redraw();
    };
    const up = () => {
      drag = null;
    };
    const wheel = (e: WheelEvent) => {
      e.preventDefault();
      zoom(e.deltaY < 0 ? 1.2 : 1 / 1.2, e.offsetX, e.offsetY);
    };
    c.addEventListener("pointerdown", down);
    c.addEventListener("pointermove", move);
    c.addEventListener("pointerup", up);
    c.addEventListener("wheel", wheel, { passive: false });
    window.addEventListener("resize", redraw);
    return () => {
      c.removeEventListener("pointerdown", down);
      c.removeEventListener("pointermove", move);
      c.removeEventListener("pointerup", up);
      c.removeEventListener("wheel", wheel);
      window.removeEventListener("resize", redraw);
    };
  }, []);

  /** Frames everything on the map (the first snapshot's view). */
  const fit = () => {
    const c = canvas.current;
    const m = map.current;
    if (!c || !m) return;
    const xs = [0, m.width, ...[...m.nodes.values()].map((n) => n.x)];
    const ys = [0, m.height, ...[...m.nodes.values()].map((n) => n.y)];
    const [x0, x1, y0, y1] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
    const scale = Math.min(c.clientWidth / (x1 - x0 + 4), c.clientHeight / (y1 - y0 + 4));
    view.current = { x: x0 - 2, y: y0 - 2, scale: Math.max(1, Math.min(200, scale)) };
  };

  /** Zooms by `factor` keeping the point under (`px`, `py`) in place. */
  const zoom = (factor: number, px?: number, py?: number) => {
    const c = canvas.current;
    const v = view.current;
    const cx = px ?? (c?.clientWidth ?? 0) / 2;
    const cy = py ?? (c?.clientHeight ?? 0) / 2;
    const scale = Math.min(200, Math.max(1, v.scale * factor));
    v.x += cx / v.scale - cx / scale;
    v.y += cy / v.scale - cy / scale;
    v.scale = scale;
    redraw();
  };

  return (
    <section class="stack">
      <h1>{t("livemap.title")}</h1>
      <ErrorNote error={error} />
      {counters && (
        <dl class="row" aria-label={t("livemap.pulse")}>
          <div>
            <dt>{t("livemap.messages")}</dt>
            <dd>{counters.messages_per_min}</dd>
          </div>
          <div>
            <dt>{t("livemap.runs")}</dt>
            <dd>{counters.runs_per_min}</dd>
          </div>
          <div>
            <dt>{t("livemap.proposals")}</dt>
            <dd>{counters.open_proposals}</dd>
          </div>
        </dl>
      )}
      <div class="row">
        <button type="button" class="secondary" onClick={() => zoom(1.25)}>
          {t("livemap.zoom_in")}
        </button>
        <button type="button" class="secondary" onClick={() => zoom(0.8)}>
          {t("livemap.zoom_out")}
        </button>
      </div>
      <canvas
        ref={canvas}
        class="living-map"
        role="img"
        aria-label={t("livemap.canvas", { n: map.current?.nodes.size ?? 0 })}
      />
      <ul class="row small" aria-label={t("livemap.legend")}>
        {(Object.keys(COLORS) as Node["kind"][]).map((k) => (
          <li key={k} class="row">
            <span class="swatch" style={{ background: COLORS[k] }} aria-hidden="true" />
            {t(`livemap.kind.${k}` as Key)}
          </li>
        ))}
      </ul>
      {ready.current && (
        <div class="stack">
          <h2>{t("livemap.communities")}</h2>
          <ul class="list card" aria-label={t("livemap.communities")}>
            {communities.map((n) => (
              <li key={n.id}>
                <a href={`/communities/${n.dao}`}>{n.label}</a>
              </li>
            ))}
          </ul>
          <h2>{t("livemap.recent")}</h2>
          <ul class="list" aria-label={t("livemap.recent")} aria-live="polite">
            {recent.map((r, i) => (
              <li key={`${i}-${r}`}>{r}</li>
            ))}
          </ul>
        </div>
      )}
    </section>
  );
}
