// A virtualised list: only the items near the viewport are in the DOM, so a
// room scrolled back through 10 000 messages costs what 50 do. Heights are
// measured as items render (an estimate until then); when an item above the
// viewport turns out taller or shorter than estimated, the scroll position
// moves with it, so what the reader looks at stays put.
import type { RefObject } from "preact";
import { useCallback, useRef, useState } from "preact/hooks";

const OVERSCAN_PX = 800;

/** The first index whose offset is greater than `value` (offsets ascend). */
function upperBound(offsets: Float64Array, value: number): number {
  let lo = 0;
  let hi = offsets.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((offsets[mid] ?? 0) <= value) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

export interface Window {
  /** Items `start..end` are rendered, between spacers of `before` and `after` px. */
  start: number;
  end: number;
  before: number;
  after: number;
  /** A ref callback for the item with `key`, which records its height. */
  measure: (key: string) => (element: HTMLElement | null) => void;
  /** To call from the scrolled box's `onScroll`. */
  scrolled: () => void;
}

export function useVirtual(
  keys: string[],
  box: RefObject<HTMLElement | null>,
  estimate = 56,
): Window {
  const heights = useRef(new Map<string, number>());
  const [view, setView] = useState({ top: 0, height: 1000 });
  const [, setTick] = useState(0);
  const pending = useRef(0);

  const offsets = new Float64Array(keys.length + 1);
  let total = 0;
  for (let i = 0; i < keys.length; i++) {
    offsets[i] = total;
    total += heights.current.get(keys[i] ?? "") ?? estimate;
  }
  offsets[keys.length] = total;
  const start = Math.max(0, upperBound(offsets, view.top - OVERSCAN_PX) - 1);
  const end = Math.min(keys.length, upperBound(offsets, view.top + view.height + OVERSCAN_PX));
  const offsetOf = useRef(offsets);
  offsetOf.current = offsets;

  const rerender = useCallback(() => {
    if (pending.current) return;
    pending.current = requestAnimationFrame(() => {
      pending.current = 0;
      setTick((n) => n + 1);
    });
  }, []);

  const measure = useCallback(
    (key: string) => (element: HTMLElement | null) => {
      if (!element) return;
      const height = element.offsetHeight;
      const known = heights.current.get(key);
      if (!height || known === height) return;
      heights.current.set(key, height);
      const container = box.current;
      const index = keys.indexOf(key);
      const top = offsetOf.current[index] ?? 0;
      // Above what is being read: keep the reader's place.
      if (container && index >= 0 && top < container.scrollTop) {
        container.scrollTop += height - (known ?? estimate);
      }
      rerender();
    },
    [keys, box, estimate, rerender],
  );

  const scrolled = useCallback(() => {
    const container = box.current;
    if (container) setView({ top: container.scrollTop, height: container.clientHeight });
  }, [box]);

  return {
    start,
    end,
    before: offsets[start] ?? 0,
    after: total - (offsets[end] ?? total),
    measure,
    scrolled,
  };
}
