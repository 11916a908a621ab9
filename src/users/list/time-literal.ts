/**
 * RFC 3339 times as the filter and the page tokens carry them. Checked here rather than left to
 * PostgreSQL because PostgreSQL accepts far more (`now`, `yesterday`, `1/2/03`) and would turn a bad
 * literal into a database error instead of an INVALID_FILTER that points at the literal.
 */

const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?([Zz]|[+-](\d{2}):(\d{2}))$/;
const DAYS = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

function daysInMonth(year: number, month: number): number {
  const leap = year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0);
  return month === 2 && leap ? 29 : DAYS[month - 1];
}

/**
 * The canonical form of an RFC 3339 time (upper-case `T`/`Z`, at most 6 fractional digits), or undefined
 * when the text is not one. Digits beyond microseconds must be zeros: timestamptz holds microseconds, and
 * rounding a finer instant would make `<`/`>` off by one microsecond.
 */
export function normalizeRfc3339(text: string): string | undefined {
  const m = RFC3339.exec(text);
  if (!m) return undefined;
  const [, y, mo, d, h, mi, s, frac = "", zone, oh, om] = m;
  const [year, month, day] = [Number(y), Number(mo), Number(d)];
  const valid =
    year >= 1 &&
    month >= 1 &&
    month <= 12 &&
    day >= 1 &&
    day <= daysInMonth(year, month) &&
    Number(h) <= 23 &&
    Number(mi) <= 59 &&
    Number(s) <= 59 &&
    (oh === undefined || (Number(oh) <= 23 && Number(om) <= 59)) &&
    !/[1-9]/.test(frac.slice(6));
  if (!valid) return undefined;
  const micros = frac.slice(0, 6);
  return `${y}-${mo}-${d}T${h}:${mi}:${s}${micros ? `.${micros}` : ""}${zone.toUpperCase()}`;
}
