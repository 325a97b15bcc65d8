#!/usr/bin/env node
// Renders ppsim Vega-Lite specs (ppsim run --vega) to SVG headlessly, and to PNG/PDF
// through rsvg-convert (Debian librsvg2-bin). No browser, no node-canvas.
//
//   node tools/render.mjs SPEC.json [--svg OUT.svg] [--png OUT.png] [--pdf OUT.pdf]
//                        [--scale Z] [--strict]
//   node tools/render.mjs --check SPEC.json...   compile + render each, write nothing
//
// SPEC may be '-' for stdin. Every output is written to a temporary name and renamed.
// --strict (implied by --check) turns Vega-Lite/Vega warnings into failures.
// A spec with usermeta.ppsim.width_in (ppsim run --width) is printed at that width: the
// SVG gets width/height in inches (PNG at 96 dpi times --scale, PDF at that size), and a
// figure laid out wider than that, which would shrink its text below
// usermeta.ppsim.min_font_pt, is a warning (a failure with --strict).
// Exit: 0 ok; 1 render failed; 2 usage or unreadable spec; 77 vega/vega-lite or
// rsvg-convert not installed (ctest SKIP_RETURN_CODE).
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';

const EXIT_FAIL = 1;
const EXIT_USAGE = 2;
const EXIT_MISSING = 77;
const repo = resolve(dirname(fileURLToPath(import.meta.url)), '..');

function die(code, message) {
  process.stderr.write(`render: ${message}\n`);
  process.exit(code);
}

function parseArgs(argv) {
  const opts = { specs: [], svg: null, png: null, pdf: null, scale: 2, strict: false, check: false };
  for (let i = 0; i < argv.length; ++i) {
    const a = argv[i];
    const value = () => {
      if (i + 1 >= argv.length) die(EXIT_USAGE, `${a} needs a value`);
      return argv[++i];
    };
    if (a === '--svg') opts.svg = value();
    else if (a === '--png') opts.png = value();
    else if (a === '--pdf') opts.pdf = value();
    else if (a === '--scale') opts.scale = Number(value());
    else if (a === '--strict') opts.strict = true;
    else if (a === '--check') opts.check = opts.strict = true;
    else if (a === '--help' || a === '-h') {
      process.stdout.write(readFileSync(fileURLToPath(import.meta.url), 'utf8')
        .split('\n').slice(1, 12).map((l) => l.replace(/^\/\/ ?/, '')).join('\n') + '\n');
      process.exit(0);
    } else if (a.startsWith('--')) die(EXIT_USAGE, `unknown option ${a}`);
    else opts.specs.push(a);
  }
  if (opts.specs.length === 0) die(EXIT_USAGE, 'no spec given (try --help)');
  if (!opts.check && opts.specs.length !== 1) die(EXIT_USAGE, 'give one spec, or use --check');
  if (!opts.check && !opts.svg && !opts.png && !opts.pdf) die(EXIT_USAGE, 'give --svg, --png or --pdf');
  if (!(opts.scale > 0)) die(EXIT_USAGE, '--scale must be a positive number');
  return opts;
}

async function loadVega() {
  // Resolve from the repository root so the script works from any working directory.
  const require = createRequire(resolve(repo, 'package.json'));
  try {
    const vega = await import(require.resolve('vega'));
    const vl = await import(require.resolve('vega-lite'));
    return { vega, vl };
  } catch (e) {
    die(EXIT_MISSING, `npm packages vega/vega-lite not found under ${repo}/node_modules ` +
      `(run tools/setup.sh, or: cd ${repo} && npm ci): ${e.message.split('\n')[0]}`);
  }
}

function collectingLogger(warnings) {
  const logger = {
    level() { return logger; },
    error(...a) { throw new Error(a.join(' ')); },
    warn(...a) { warnings.push(a.join(' ')); return logger; },
    info() { return logger; },
    debug() { return logger; },
  };
  return logger;
}

async function renderSvg({ vega, vl }, spec, strict) {
  const warnings = [];
  const logger = collectingLogger(warnings);
  const compiled = vl.compile(spec, { logger }).spec;
  const view = new vega.View(vega.parse(compiled), { renderer: 'none', logger, logLevel: vega.Warn });
  let svg = await view.toSVG();
  view.finalize();
  if (!svg.startsWith('<svg')) throw new Error('renderer produced no <svg>');
  svg = setPrintSize(svg, spec.usermeta?.ppsim, warnings);
  if (strict && warnings.length) throw new Error(`warnings: ${warnings.join('; ')}`);
  return { svg, warnings };
}

// The spec is laid out at 1 px = 1 pt for its printed width: give the SVG that physical
// size, and warn when the drawing came out wider, which would print its text smaller.
function setPrintSize(svg, meta, warnings) {
  if (!meta || !(meta.width_in > 0)) return svg;
  const m = svg.match(/^<svg[^>]*?\swidth="([\d.]+)"\s+height="([\d.]+)"/);
  if (!m) throw new Error('rendered SVG has no width/height');
  const [w, h] = [Number(m[1]), Number(m[2])];
  const asked = meta.width_in * 72;
  const fontPt = (meta.min_font_pt ?? 7) * asked / w;
  if (fontPt < (meta.min_font_pt ?? 7) - 0.05)
    warnings.push(`figure is ${w.toFixed(0)} pt wide for ${asked.toFixed(0)} pt asked: ` +
      `its smallest text would print at ${fontPt.toFixed(1)} pt`);
  const inches = (x) => `${(x * meta.width_in / w).toFixed(3)}in`;
  return svg.replace(/^(<svg[^>]*?\s)width="[\d.]+"(\s+)height="[\d.]+"/,
    (_, head, gap) => `${head}width="${inches(w)}"${gap}height="${inches(h)}"`);
}

function writeAtomic(path, data) {
  mkdirSync(dirname(resolve(path)), { recursive: true });
  const tmp = `${path}.tmp.${process.pid}`;
  writeFileSync(tmp, data);
  renameSync(tmp, path);
}

function rsvg(svgPath, out, format, scale) {
  mkdirSync(dirname(resolve(out)), { recursive: true });
  const tmp = `${out}.tmp.${process.pid}`;
  const args = ['-b', 'white', '-f', format, '-o', tmp];
  if (format === 'png') args.unshift('-z', String(scale));
  args.push(svgPath);
  const r = spawnSync('rsvg-convert', args, { encoding: 'utf8' });
  if (r.error && r.error.code === 'ENOENT') {
    die(EXIT_MISSING, 'rsvg-convert not found (Debian: apt-get install librsvg2-bin)');
  }
  if (r.status !== 0) {
    rmSync(tmp, { force: true });
    throw new Error(`rsvg-convert failed for ${out}: ${(r.stderr || '').trim()}`);
  }
  renameSync(tmp, out);
}

function readSpec(path) {
  try {
    return JSON.parse(readFileSync(path === '-' ? 0 : path, 'utf8'));
  } catch (e) {
    die(EXIT_USAGE, `${path}: ${e.message}`);
  }
}

const opts = parseArgs(process.argv.slice(2));
const libs = await loadVega();

if (opts.check) {
  let failed = 0;
  for (const path of opts.specs) {
    try {
      const { svg } = await renderSvg(libs, readSpec(path), true);
      process.stdout.write(`ok   ${path} (${svg.length} bytes of SVG)\n`);
    } catch (e) {
      ++failed;
      process.stdout.write(`FAIL ${path}: ${e.message}\n`);
    }
  }
  process.exit(failed ? EXIT_FAIL : 0);
}

try {
  const { svg, warnings } = await renderSvg(libs, readSpec(opts.specs[0]), opts.strict);
  for (const w of warnings) process.stderr.write(`render: warning: ${w}\n`);
  // rsvg-convert reads a file: use the requested SVG, or a temporary one.
  const svgPath = opts.svg ?? join(tmpdir(), `ppsim-render-${process.pid}.svg`);
  writeAtomic(svgPath, svg);
  try {
    if (opts.png) rsvg(svgPath, opts.png, 'png', opts.scale);
    if (opts.pdf) rsvg(svgPath, opts.pdf, 'pdf', opts.scale);
  } finally {
    if (!opts.svg) rmSync(svgPath, { force: true });
  }
} catch (e) {
  die(EXIT_FAIL, e.message);
}
