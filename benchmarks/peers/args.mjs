// Tiny command-line helpers shared by the peer scripts.
const argv = process.argv.slice(2);

/** Value of `--name V`, or fallback. */
export function option(name, fallback) {
  const i = argv.indexOf(name);
  return i >= 0 && i + 1 < argv.length ? argv[i + 1] : fallback;
}

/** True when the flag is present. */
export function flag(name) {
  return argv.includes(name);
}

/** Positional arguments: those that are neither an option nor an option's value. */
export function positional(booleanFlags = []) {
  const out = [];
  for (let i = 0; i < argv.length; ++i) {
    if (argv[i].startsWith('--')) {
      if (!booleanFlags.includes(argv[i])) ++i;
      continue;
    }
    out.push(argv[i]);
  }
  return out;
}

/** One figure as scripts/bench collects it (the same line bench::print_figure prints). */
export function printFigure(name, value, unit, baseline = null, baselineValue = null) {
  const ratio = baseline !== null && baselineValue ? value / baselineValue : null;
  console.log(JSON.stringify({ name, value, unit, baseline, baseline_value: baselineValue, ratio }));
}
