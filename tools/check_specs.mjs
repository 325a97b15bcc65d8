#!/usr/bin/env node
// Figure test (ctest "vega_render"): for every registered schedule, p=4, m=8, has
// `ppsim run --vega` emit a spec with real costs (communication lanes, memory) and one in
// unit time, then compiles each with vega-lite and renders it to SVG (warnings fail),
// and renders one through `ppsim run --svg --png --pdf` end to end.
//
//   node tools/check_specs.mjs PPSIM_BINARY OUT_DIR
//
// Exit: 0 ok; 1 a spec failed; 77 (skip) when the npm packages are not installed.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const [ppsim, outDir] = process.argv.slice(2);
if (!ppsim || !outDir) {
  process.stderr.write('usage: node tools/check_specs.mjs PPSIM_BINARY OUT_DIR\n');
  process.exit(2);
}
for (const pkg of ['vega', 'vega-lite']) {
  if (!existsSync(join(repo, 'node_modules', pkg, 'package.json'))) {
    process.stdout.write(`SKIP: npm package ${pkg} not installed in ${repo}/node_modules ` +
      '(run tools/setup.sh)\n');
    process.exit(77);
  }
}

rmSync(outDir, { recursive: true, force: true });
mkdirSync(outDir, { recursive: true });
// Real costs with links, so specs carry send/recv lanes and memory curves.
const config = join(outDir, 'config.json');
writeFileSync(config, JSON.stringify({
  model: { layers: [{ repeat: 16, forward_ms: 1.0, backward_ms: 2.0, activation_bytes: 67108864,
    parameter_bytes: 33554432, output_bytes: 8388608 }] },
  cluster: { devices: 4, link: { latency_us: 10, bandwidth_GBps: 25 } },
  pipeline: { schedule: '1f1b', stages: 4, microbatches: 8, chunks: 1 },
}));

function ppsimRun(args) {
  return spawnSync(ppsim, args, { encoding: 'utf8' });
}

const list = ppsimRun(['schedule', '--list']);
if (list.status !== 0) {
  process.stdout.write(`FAIL: ppsim schedule --list: ${list.stderr}`);
  process.exit(1);
}
const schedules = list.stdout.split('\n').map((l) => l.trim().split(/\s+/)[0]).filter(Boolean);
let failed = 0;
const specs = [];
for (const name of schedules) {
  for (const unit of [false, true]) {
    const spec = join(outDir, `${name}${unit ? '.unit' : ''}.vl.json`);
    let r;
    let applicable = false;
    // Try v = 1, then 2 for schedules that need chunks (interleaved, V-shaped).
    for (const chunks of ['1', '2']) {
      const args = ['run', config, '--schedule', name, '--stages', '4', '--microbatches', '8',
        '--chunks', chunks, '--vega', spec];
      if (unit) args.push('--unit-time');
      r = ppsimRun(args);
      if (r.status === 0) { applicable = true; break; }
      if (r.status !== 2) break;
    }
    if (applicable) specs.push(spec);
    else if (r.status === 2) process.stdout.write(`n/a  ${name}: ${r.stderr.trim()}\n`);
    else {
      ++failed;
      process.stdout.write(`FAIL ${name}: ppsim exited ${r.status}: ${r.stderr.trim()}\n`);
    }
  }
}
if (specs.length < 4) {
  process.stdout.write(`FAIL: only ${specs.length} specs emitted (gpipe and 1f1b must apply)\n`);
  process.exit(1);
}

const check = spawnSync(process.execPath, [join(repo, 'tools', 'render.mjs'), '--check', ...specs],
  { encoding: 'utf8' });
process.stdout.write(check.stdout + check.stderr);
if (check.status !== 0) ++failed;

// End to end through the CLI: SVG, PNG and PDF (PNG/PDF only where rsvg-convert exists).
const hasRsvg = spawnSync('rsvg-convert', ['--version']).status === 0;
const out = (ext) => join(outDir, `cli.${ext}`);
const args = ['run', config, '--schedule', '1f1b', '--unit-time', '--svg', out('svg')];
if (hasRsvg) args.push('--png', out('png'), '--pdf', out('pdf'));
const cli = ppsimRun(args);
if (cli.status !== 0) {
  ++failed;
  process.stdout.write(`FAIL ppsim run --svg: exit ${cli.status}: ${cli.stderr.trim()}\n`);
} else {
  const svg = readFileSync(out('svg'), 'utf8');
  if (!svg.startsWith('<svg') || !svg.includes('1f1b: p=4, m=8, v=1')) {
    ++failed;
    process.stdout.write('FAIL ppsim run --svg: SVG lacks the title\n');
  }
  const magic = { png: '\x89PNG', pdf: '%PDF' };
  for (const ext of hasRsvg ? ['png', 'pdf'] : []) {
    const head = readFileSync(out(ext)).subarray(0, 4).toString('latin1');
    if (head !== magic[ext] || statSync(out(ext)).size < 1000) {
      ++failed;
      process.stdout.write(`FAIL ppsim run --${ext}: not a ${ext.toUpperCase()} file\n`);
    }
  }
  process.stdout.write(`ok   ppsim run --svg${hasRsvg ? ' --png --pdf' : ' (no rsvg-convert: PNG/PDF not checked)'}\n`);
}
process.stdout.write(`${specs.length} specs over ${schedules.length} schedules, ${failed} failures\n`);
process.exit(failed ? 1 : 0);
