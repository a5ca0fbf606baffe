/** A plain left-aligned text table, like `kubectl get` or `podman ps`. */
export function table(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]): string =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  return [line(headers), ...rows.map(line)].join('\n') + '\n';
}

/** `key:  value` lines with the values aligned; rows whose value is undefined are left out. */
export function fields(rows: [string, string | undefined][]): string {
  const shown = rows.filter((r): r is [string, string] => r[1] !== undefined);
  const w = Math.max(...shown.map(([k]) => k.length)) + 3;
  return shown.map(([k, v]) => `${`${k}:`.padEnd(w)}${v}\n`).join('');
}
