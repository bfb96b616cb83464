/** Display helpers shared by the pages. Pure: no requests, no state. */

/** "2026-11-30 14:02:11" in UTC, or an en dash for a missing time. */
export function when(iso: string | null | undefined): string {
  if (!iso) return "–";
  return iso.replace("T", " ").replace(/\.\d+/, "").replace(/Z$|\+00:00$/, " UTC");
}

/** A duration in milliseconds as a person reads it: 850 ms, 12.4 s, 3 min 5 s. */
export function duration(ms: number | null | undefined): string {
  if (ms === null || ms === undefined) return "–";
  if (ms < 1000) return `${ms} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  return `${Math.floor(ms / 60_000)} min ${Math.round((ms % 60_000) / 1000)} s`;
}

/** The non-empty lines of a textarea, trimmed. */
export function lines(text: string): string[] {
  return text
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter((line) => line.length > 0);
}
