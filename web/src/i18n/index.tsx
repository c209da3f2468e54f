// Every string the UI shows comes from a catalogue: `en.json` is the source
// of the keys, `uk.json` must have the same ones (the type checker refuses a
// missing one; the browser tests read the same files).
import { type ComponentChildren, createContext } from "preact";
import { useContext, useMemo, useState } from "preact/hooks";
import en from "./en.json";
import ukCatalogue from "./uk.json";

export type Key = keyof typeof en;
const uk: Record<Key, string> = ukCatalogue;

export type Lang = "uk" | "en";
export const LANGS: Lang[] = ["uk", "en"];
const catalogues: Record<Lang, Record<Key, string>> = { en, uk };
const STORAGE = "daarion.lang";

export type Params = Record<string, string | number>;
export type T = (key: Key, params?: Params) => string;

function initialLang(): Lang {
  const saved = localStorage.getItem(STORAGE);
  if (saved === "uk" || saved === "en") return saved;
  return navigator.language.toLowerCase().startsWith("uk") ? "uk" : "en";
}

/** `{name}` placeholders are replaced by `params`; a missing one stays visible. */
export function translate(lang: Lang, key: Key, params?: Params): string {
  const text = catalogues[lang][key];
  if (!params) return text;
  return text.replace(/\{(\w+)\}/g, (whole, name: string) =>
    name in params ? String(params[name]) : whole,
  );
}

interface I18n {
  lang: Lang;
  setLang: (lang: Lang) => void;
  t: T;
  /** Dates and numbers in the reader's language. */
  dateTime: (iso: string) => string;
  number: (n: number, options?: Intl.NumberFormatOptions) => string;
}

const Context = createContext<I18n | null>(null);

export function I18nProvider({ children }: { children: ComponentChildren }) {
  const [lang, setLangState] = useState<Lang>(initialLang);
  const value = useMemo<I18n>(() => {
    const locale = lang === "uk" ? "uk-UA" : "en-GB";
    const dates = new Intl.DateTimeFormat(locale, { dateStyle: "medium", timeStyle: "short" });
    document.documentElement.lang = lang;
    return {
      lang,
      setLang: (next) => {
        localStorage.setItem(STORAGE, next);
        setLangState(next);
      },
      t: (key, params) => translate(lang, key, params),
      dateTime: (iso) => {
        const date = new Date(iso);
        return Number.isNaN(date.getTime()) ? iso : dates.format(date);
      },
      number: (n, options) => new Intl.NumberFormat(locale, options).format(n),
    };
  }, [lang]);
  return <Context.Provider value={value}>{children}</Context.Provider>;
}

export function useI18n(): I18n {
  const value = useContext(Context);
  if (!value) throw new Error("useI18n outside I18nProvider");
  return value;
}
