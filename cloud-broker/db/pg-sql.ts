/**
 * The stores write `?` placeholders (SQLite's); PostgreSQL numbers them `$1..$n`. Only a `?`
 * outside string literals, quoted identifiers, comments and dollar-quoted bodies is a
 * placeholder, so this walks the text once instead of using a regular expression.
 */
export function numberPlaceholders(sql: string): string {
  let out = '';
  let n = 0;
  let i = 0;
  while (i < sql.length) {
    const c = sql[i]!;
    const end = skipQuoted(sql, i);
    if (end > i) {
      out += sql.slice(i, end);
      i = end;
    } else if (c === '?') {
      out += `$${++n}`;
      i++;
    } else {
      out += c;
      i++;
    }
  }
  return out;
}

/** The index after the literal, identifier or comment starting at `i`, or `i` when none does. */
function skipQuoted(sql: string, i: number): number {
  const c = sql[i];
  const next = sql[i + 1];
  if (c === "'" || c === '"') {
    // A doubled quote ('it''s') continues the literal.
    let j = i + 1;
    for (;;) {
      const k = sql.indexOf(c, j);
      if (k < 0) return sql.length;
      if (sql[k + 1] === c) j = k + 2;
      else return k + 1;
    }
  }
  if (c === '-' && next === '-') {
    const k = sql.indexOf('\n', i);
    return k < 0 ? sql.length : k + 1;
  }
  if (c === '/' && next === '*') {
    const k = sql.indexOf('*/', i + 2);
    return k < 0 ? sql.length : k + 2;
  }
  if (c === '$') {
    const tag = /^\$[A-Za-z_]*\$/.exec(sql.slice(i, i + 64))?.[0];
    if (tag) {
      const k = sql.indexOf(tag, i + tag.length);
      return k < 0 ? sql.length : k + tag.length;
    }
  }
  return i;
}
