/**
 * Canonical JSON as the server signs and hashes it (Python's
 * `json.dumps(sort_keys=True, separators=(",", ":"), ensure_ascii=False)`), rebuilt from
 * the response TEXT: numbers keep the exact digits Python wrote (`1.0`, `1e-05`), which
 * `JSON.parse` would lose, so a signature over them can be checked in the browser.
 */

export type Raw = { num: string } | string | boolean | null | Raw[] | { obj: [string, Raw][] };

class Parser {
  private i = 0;
  constructor(private readonly s: string) {}

  parse(): Raw {
    const v = this.value();
    this.ws();
    if (this.i !== this.s.length) throw new SyntaxError(`unexpected text at ${this.i}`);
    return v;
  }

  private ws(): void {
    while (this.i < this.s.length && " \t\n\r".includes(this.s[this.i])) this.i++;
  }

  private value(): Raw {
    this.ws();
    const c = this.s[this.i];
    if (c === "{") return this.object();
    if (c === "[") return this.array();
    if (c === '"') return this.string();
    for (const [word, v] of [["true", true], ["false", false], ["null", null]] as const) {
      if (this.s.startsWith(word, this.i)) {
        this.i += word.length;
        return v;
      }
    }
    const m = /^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/.exec(this.s.slice(this.i, this.i + 400));
    if (!m) throw new SyntaxError(`unexpected ${JSON.stringify(c)} at ${this.i}`);
    this.i += m[0].length;
    return { num: m[0] };
  }

  private object(): Raw {
    this.i++;
    const entries: [string, Raw][] = [];
    this.ws();
    if (this.s[this.i] === "}") {
      this.i++;
      return { obj: entries };
    }
    for (;;) {
      this.ws();
      const key = this.string();
      this.ws();
      if (this.s[this.i++] !== ":") throw new SyntaxError(`expected : at ${this.i - 1}`);
      entries.push([key, this.value()]);
      this.ws();
      const c = this.s[this.i++];
      if (c === "}") return { obj: entries };
      if (c !== ",") throw new SyntaxError(`expected , or } at ${this.i - 1}`);
    }
  }

  private array(): Raw {
    this.i++;
    const items: Raw[] = [];
    this.ws();
    if (this.s[this.i] === "]") {
      this.i++;
      return items;
    }
    for (;;) {
      items.push(this.value());
      this.ws();
      const c = this.s[this.i++];
      if (c === "]") return items;
      if (c !== ",") throw new SyntaxError(`expected , or ] at ${this.i - 1}`);
    }
  }

  private string(): string {
    if (this.s[this.i] !== '"') throw new SyntaxError(`expected a string at ${this.i}`);
    const m = /^"(?:[^"\\\u0000-\u001f]|\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4}))*"/.exec(this.s.slice(this.i));
    if (!m) throw new SyntaxError(`bad string at ${this.i}`);
    this.i += m[0].length;
    return JSON.parse(m[0]) as string;
  }
}

export function parseRaw(text: string): Raw {
  return new Parser(text).parse();
}

const isNum = (v: Raw): v is { num: string } => typeof v === "object" && v !== null && !Array.isArray(v) && "num" in v;
const isObj = (v: Raw): v is { obj: [string, Raw][] } => typeof v === "object" && v !== null && !Array.isArray(v) && "obj" in v;

/** Python escapes the same characters JSON.stringify does, with lowercase \u00XX. */
function pyString(s: string): string {
  return JSON.stringify(s);
}

export function canonical(v: Raw): string {
  if (v === null) return "null";
  if (typeof v === "boolean") return v ? "true" : "false";
  if (typeof v === "string") return pyString(v);
  if (Array.isArray(v)) return `[${v.map(canonical).join(",")}]`;
  if (isNum(v)) return v.num;
  if (isObj(v)) {
    // Python sorts str keys by code point; these keys are ASCII, where that equals UTF-16 order.
    const sorted = [...v.obj].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${sorted.map(([k, x]) => `${pyString(k)}:${canonical(x)}`).join(",")}}`;
  }
  throw new TypeError("not a JSON value");
}

/** A member of a parsed object (raw form), or undefined. */
export function member(v: Raw, key: string): Raw | undefined {
  return isObj(v) ? v.obj.find(([k]) => k === key)?.[1] : undefined;
}

/** The object without one member (e.g. a signed document without its `signature`). */
export function without(v: Raw, key: string): Raw {
  if (!isObj(v)) throw new TypeError("not a JSON object");
  return { obj: v.obj.filter(([k]) => k !== key) };
}

/** An object built from plain strings/numbers-as-text, for small messages we sign-check. */
export function rawObject(entries: Record<string, Raw>): Raw {
  return { obj: Object.entries(entries) };
}
