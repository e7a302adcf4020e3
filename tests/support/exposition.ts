/**
 * Reading Prometheus's text exposition in tests: one sample, named as the service prints it.
 */

/** The value of `series` (`name{labels}` exactly as printed), or NaN when it is not there (NaN equals nothing, so an assertion on it fails). */
export function sampleOf(text: string, series: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? Number.NaN : Number(line.slice(series.length + 1));
}
