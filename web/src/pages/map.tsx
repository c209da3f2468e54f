// The city map: districts and the places of public rooms on a grid, live
// (a room lights up when someone speaks in it; the map redraws when an
// admin changes it), and for city admins the tools to draw it.
import { useState } from "preact/hooks";
import { api, ok, type Schemas } from "../api/client";
import { type Key, useI18n } from "../i18n";
import { useSession } from "../session";
import { Busy, Empty, ErrorNote, Field, Loading, useAction, useLoad } from "../ui";
import { AgentsList, useCityEvents } from "./feed";

type CityMapView = Schemas["MapView"];
type Rect = Schemas["Rect"];
type PlaceRole = Schemas["PlaceRole"];

/** Pixels per grid cell in the drawing's own coordinates (it scales to fit). */
const CELL = 64;
/** How long a place stays lit after a message. */
const LIT_MS = 4000;
const ROLES: PlaceRole[] = ["primary", "lobby", "team", "research", "security", "governance"];

export function CityMapPage() {
  const { t } = useI18n();
  const { user } = useSession();
  const map = useLoad(() => ok(api.GET("/api/city/map")), []);
  const [lit, setLit] = useState<Record<string, number>>({});
  useCityEvents({
    entry: (entry) => {
      // Communities come and go from the map with their own events.
      if (entry.what === "map_changed" || entry.what.startsWith("dao_")) map.reload();
      else if (entry.what === "message" && entry.room) {
        const room = entry.room;
        const until = Date.now() + LIT_MS;
        setLit((known) => ({ ...known, [room]: until }));
        window.setTimeout(
          () => setLit((known) => (known[room] === until ? { ...known, [room]: 0 } : known)),
          LIT_MS,
        );
      }
    },
  });
  const admin = user?.city_role === "admin";
  return (
    <div class="city">
      <section class="stack">
        <h1>{t("map.title")}</h1>
        {map.data ? (
          <>
            <Drawing map={map.data} lit={lit} />
            <Legend map={map.data} />
            {admin && <MapEditor map={map.data} changed={map.reload} />}
          </>
        ) : map.error ? (
          <ErrorNote error={map.error} />
        ) : (
          <Loading />
        )}
      </section>
      <AgentsList />
    </div>
  );
}

function Drawing({ map, lit }: { map: CityMapView; lit: Record<string, number> }) {
  const { t } = useI18n();
  const box = (r: Rect) => ({
    x: r.x * CELL,
    y: r.y * CELL,
    width: r.w * CELL,
    height: r.h * CELL,
  });
  return (
    <svg
      class="citymap card"
      viewBox={`0 0 ${map.width * CELL} ${map.height * CELL}`}
      aria-labelledby="citymap-title"
    >
      <title id="citymap-title">{t("map.drawing")}</title>
      <defs>
        <pattern id="cells" width={CELL} height={CELL} patternUnits="userSpaceOnUse">
          <path d={`M ${CELL} 0 L 0 0 0 ${CELL}`} class="cell" />
        </pattern>
      </defs>
      <rect width="100%" height="100%" fill="url(#cells)" />
      {map.districts.map((d) => (
        <g key={d.slug} class="district">
          <rect {...box(d.area)} fill={d.color} stroke={d.color} />
          <text x={d.area.x * CELL + 8} y={d.area.y * CELL + 20}>
            {d.name}
          </text>
        </g>
      ))}
      {map.places.map((p) => (
        <a key={p.room} href={`/rooms/${p.room}`} aria-label={p.title}>
          <g class={`place role-${p.role}${(lit[p.room] ?? 0) > Date.now() ? " lit" : ""}`}>
            <rect {...box(p.area)} rx="6" fill={p.color} />
            <text x={(p.area.x + p.area.w / 2) * CELL} y={(p.area.y + p.area.h / 2) * CELL}>
              {p.title}
            </text>
          </g>
        </a>
      ))}
    </svg>
  );
}

/** The map in words: districts and their places, for every reader. */
function Legend({ map }: { map: CityMapView }) {
  const { t } = useI18n();
  if (map.places.length === 0 && map.districts.length === 0) return <Empty>{t("map.empty")}</Empty>;
  const groups = [
    ...map.districts.map((d) => ({ key: d.slug, name: d.name, color: d.color })),
    { key: "", name: t("map.no_district"), color: "" },
  ];
  return (
    <div class="stack">
      {groups.map((g) => {
        const places = map.places.filter((p) => (p.district ?? "") === g.key);
        const communities = map.communities.filter((c) => c.district === g.key);
        if (g.key === "" && places.length === 0) return null;
        return (
          <section key={g.key} class="card" aria-label={g.name}>
            <h2>
              {g.color && <span class="dot" style={{ background: g.color }} aria-hidden="true" />}{" "}
              {g.name}
            </h2>
            {places.length === 0 ? (
              <p class="muted small">{t("map.district_empty")}</p>
            ) : (
              <ul class="list">
                {places.map((p) => (
                  <li key={p.room}>
                    <a href={`/rooms/${p.room}`}>{p.title}</a>{" "}
                    <span class="muted small">
                      {t(`map.role.${p.role}` as Key)} · {p.zone}
                    </span>
                  </li>
                ))}
              </ul>
            )}
            {communities.length > 0 && (
              <>
                <h3>{t("map.communities")}</h3>
                <ul class="list" aria-label={`${g.name}: ${t("map.communities")}`}>
                  {communities.map((c) => (
                    <li key={c.slug}>
                      <a href={`/communities/${c.slug}`}>{c.name}</a>
                    </li>
                  ))}
                </ul>
              </>
            )}
          </section>
        );
      })}
    </div>
  );
}

type Cells = { x: string; y: string; w: string; h: string };

function CellInputs({ cells, set }: { cells: Cells; set: (cells: Cells) => void }) {
  const { t } = useI18n();
  const fields: [keyof Cells, Key][] = [
    ["x", "map.x"],
    ["y", "map.y"],
    ["w", "map.w"],
    ["h", "map.h"],
  ];
  return (
    <div class="row">
      {fields.map(([field, label]) => (
        <Field key={field} label={t(label)}>
          {(id) => (
            <input
              id={id}
              type="number"
              min={field === "w" || field === "h" ? 1 : 0}
              required
              value={cells[field]}
              onInput={(e) => set({ ...cells, [field]: e.currentTarget.value })}
              style={{ width: "5rem" }}
            />
          )}
        </Field>
      ))}
    </div>
  );
}

const rect = (c: Cells): Rect => ({
  x: Number(c.x),
  y: Number(c.y),
  w: Number(c.w),
  h: Number(c.h),
});

/** City admins draw districts, place rooms, and take them off the map. */
function MapEditor({ map, changed }: { map: CityMapView; changed: () => void }) {
  const { t } = useI18n();
  const rooms = useLoad(
    () => ok(api.GET("/api/city/rooms", { params: { query: { limit: 100 } } })),
    [],
  );
  const district = useAction();
  const place = useAction();
  const removal = useAction();
  const [d, setD] = useState({ slug: "", name: "", color: "#4a7bd0" });
  const [dCells, setDCells] = useState<Cells>({ x: "0", y: "0", w: "4", h: "3" });
  const [p, setP] = useState({
    room: "",
    district: "",
    role: "lobby" as PlaceRole,
    color: "#e0a030",
  });
  const [pCells, setPCells] = useState<Cells>({ x: "0", y: "0", w: "1", h: "1" });

  const drawDistrict = (event: Event) => {
    event.preventDefault();
    district.run(async () => {
      await ok(
        api.PUT("/api/city/map/districts/{slug}", {
          params: { path: { slug: d.slug.trim() } },
          body: { name: d.name, color: d.color, area: rect(dCells) },
        }),
      );
      changed();
    });
  };
  const placeRoom = (event: Event) => {
    event.preventDefault();
    place.run(async () => {
      await ok(
        api.PUT("/api/city/map/places/{slug}", {
          params: { path: { slug: p.room } },
          body: {
            district: p.district || null,
            area: rect(pCells),
            zone: "core",
            role: p.role,
            icon: p.role,
            color: p.color,
          },
        }),
      );
      changed();
    });
  };
  const remove = (what: "districts" | "places", slug: string) =>
    removal.run(async () => {
      if (what === "districts")
        await ok(api.DELETE("/api/city/map/districts/{slug}", { params: { path: { slug } } }));
      else await ok(api.DELETE("/api/city/map/places/{slug}", { params: { path: { slug } } }));
      changed();
    });

  const shapes = [
    ...map.districts.map((x) => ({ what: "districts" as const, slug: x.slug, name: x.name })),
    ...map.places.map((x) => ({ what: "places" as const, slug: x.room, name: x.title })),
  ];
  return (
    <section class="stack" aria-label={t("map.edit")}>
      <h2>{t("map.edit")}</h2>
      <form class="card stack" onSubmit={drawDistrict} aria-label={t("map.draw_district")}>
        <h3>{t("map.draw_district")}</h3>
        <div class="row">
          <Field label={t("map.district_slug")}>
            {(id) => (
              <input
                id={id}
                required
                value={d.slug}
                onInput={(e) => setD({ ...d, slug: e.currentTarget.value })}
              />
            )}
          </Field>
          <Field label={t("map.district_name")}>
            {(id) => (
              <input
                id={id}
                required
                value={d.name}
                onInput={(e) => setD({ ...d, name: e.currentTarget.value })}
              />
            )}
          </Field>
          <Field label={t("map.color")}>
            {(id) => (
              <input
                id={id}
                type="color"
                value={d.color}
                onInput={(e) => setD({ ...d, color: e.currentTarget.value })}
              />
            )}
          </Field>
        </div>
        <CellInputs cells={dCells} set={setDCells} />
        <ErrorNote error={district.error} />
        <div>
          <button type="submit" disabled={district.busy}>
            <Busy busy={district.busy} label="map.draw" />
          </button>
        </div>
      </form>
      <form class="card stack" onSubmit={placeRoom} aria-label={t("map.place_room")}>
        <h3>{t("map.place_room")}</h3>
        <div class="row">
          <Field label={t("map.room")}>
            {(id) => (
              <select
                id={id}
                required
                value={p.room}
                onChange={(e) => setP({ ...p, room: e.currentTarget.value })}
              >
                <option value="" />
                {rooms.data?.items.map((r) => (
                  <option key={r.slug} value={r.slug}>
                    {r.title}
                  </option>
                ))}
              </select>
            )}
          </Field>
          <Field label={t("map.district")}>
            {(id) => (
              <select
                id={id}
                value={p.district}
                onChange={(e) => setP({ ...p, district: e.currentTarget.value })}
              >
                <option value="">{t("map.no_district")}</option>
                {map.districts.map((x) => (
                  <option key={x.slug} value={x.slug}>
                    {x.name}
                  </option>
                ))}
              </select>
            )}
          </Field>
          <Field label={t("map.role")}>
            {(id) => (
              <select
                id={id}
                value={p.role}
                onChange={(e) => setP({ ...p, role: e.currentTarget.value as PlaceRole })}
              >
                {ROLES.map((r) => (
                  <option key={r} value={r}>
                    {t(`map.role.${r}` as Key)}
                  </option>
                ))}
              </select>
            )}
          </Field>
          <Field label={t("map.color")}>
            {(id) => (
              <input
                id={id}
                type="color"
                value={p.color}
                onInput={(e) => setP({ ...p, color: e.currentTarget.value })}
              />
            )}
          </Field>
        </div>
        <CellInputs cells={pCells} set={setPCells} />
        <ErrorNote error={place.error} />
        <div>
          <button type="submit" disabled={place.busy}>
            <Busy busy={place.busy} label="map.place" />
          </button>
        </div>
      </form>
      <div class="card stack">
        <h3>{t("map.on_the_map")}</h3>
        <ErrorNote error={removal.error} />
        <ul class="list">
          {shapes.map((x) => (
            <li key={`${x.what}-${x.slug}`} class="spread">
              <span>
                {t(x.what === "districts" ? "map.district" : "map.room")}: {x.name}
              </span>
              <button
                type="button"
                class="secondary"
                disabled={removal.busy}
                onClick={() => remove(x.what, x.slug)}
              >
                {t("map.remove_named", { name: x.name })}
              </button>
            </li>
          ))}
        </ul>
      </div>
    </section>
  );
}
