#!/usr/bin/env bash
# Writes man pages from the programs' own --help: aether(1) (every command's help, recursively) and
# aetherd(8), aurorad(8), cfcd(8).   usage: manpage.sh <staged /usr/lib/aether> <version> <man dir>
set -euo pipefail
LIB="$1" VERSION="$2" MAN="$3"
exec node - "$LIB" "$VERSION" "$MAN" <<'JS'
const { execFileSync } = require('node:child_process');
const { writeFileSync, mkdirSync } = require('node:fs');
const { gzipSync } = require('node:zlib');
const [lib, version, man] = process.argv.slice(2);
const env = { PATH: '/usr/bin:/bin', HOME: '/nonexistent', COLUMNS: '80' };
const help = (main, args) =>
  execFileSync(process.execPath, [main, ...args, '--help'], { env, cwd: '/', encoding: 'utf8' });
const subcommands = (text) => {
  const i = text.indexOf('\nCommands:\n');
  if (i < 0) return [];
  const out = [];
  for (const line of text.slice(i + 11).split('\n')) {
    if (line.trim() === '' ) break;
    const m = /^  (\S+)/.exec(line);
    if (m) { const name = m[1].split('|')[0]; if (name !== 'help') out.push(name); }
  }
  return out;
};
const esc = (s) => s.replace(/\\/g, '\\e').split('\n').map((l) => (/^[.']/.test(l) ? '\\&' + l : l)).join('\n');
const page = (name, section, summary, blocks) => {
  let t = `.TH ${name.toUpperCase()} ${section} "" "aether ${version}" "Aether"\n.SH NAME\n${name} \\- ${summary}\n`;
  for (const [title, text] of blocks) t += `.SH "${title}"\n.nf\n${esc(text.trimEnd())}\n.fi\n`;
  t += `.SH "SEE ALSO"\naether(1), aetherd(8), aurorad(8), cfcd(8), /usr/share/doc/aether/\n`;
  return t;
};
const write = (section, name, text) => {
  mkdirSync(`${man}/man${section}`, { recursive: true });
  writeFileSync(`${man}/man${section}/${name}.${section}.gz`, gzipSync(Buffer.from(text), { level: 9 }));
};
const cli = `${lib}/apps/cli/dist/main.js`;
const blocks = [];
const walk = (path, depth) => {
  const text = help(cli, path);
  blocks.push([path.length ? `aether ${path.join(' ')}` : 'SYNOPSIS', text]);
  if (depth < 3) for (const c of subcommands(text)) walk([...path, c], depth + 1);
};
walk([], 0);
write(1, 'aether', page('aether', 1, 'command line for the Aether daemons', blocks));
const daemons = { aetherd: 'Aether substrate daemon', aurorad: 'Aether orchestrator: intents to policy-checked plans', cfcd: 'Aether model runtime: models, inference, training' };
for (const [d, summary] of Object.entries(daemons)) {
  write(8, d, page(d, 8, summary, [['SYNOPSIS', help(`${lib}/apps/${d}/dist/main.js`, [])]]));
}
JS
