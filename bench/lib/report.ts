import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';

/**
 * Shared output for every benchmark: a Markdown table on stdout (pasted into the README),
 * a JSON document under bench/results/, and an SVG bar chart beside it.
 */
export interface BenchRow {
  /** Row label, e.g. "seq write 1M QD8". */
  name: string;
  /** Unit of the values, e.g. "MB/s", "IOPS", "ms". */
  unit: string;
  /** Median for mirrorbox. */
  ours: number;
  /** Median for the peer. */
  peer: number;
  /** Every round's value, for the record. */
  oursRounds: number[];
  peerRounds: number[];
  /** True when a smaller value is better (latencies); the ratio is then peer/ours. */
  lowerIsBetter?: boolean;
  /** This row's peer when a report compares against several (shown in its own column). */
  peerName?: string;
}

export interface BenchReport {
  benchmark: string;
  peerName: string;
  date: string;
  host: { cpus: number; node: string };
  notes: string[];
  rows: BenchRow[];
  extra?: Record<string, unknown>;
}

/** mirrorbox relative to the peer: > 1 means mirrorbox is better, whatever the unit. */
export function ratioOf(row: BenchRow): number {
  if (row.lowerIsBetter) return row.ours === 0 ? Infinity : row.peer / row.ours;
  return row.peer === 0 ? Infinity : row.ours / row.peer;
}

function formatNumber(value: number): string {
  if (!Number.isFinite(value)) return String(value);
  if (Math.abs(value) >= 100) return Math.round(value).toLocaleString('en-US');
  if (Math.abs(value) >= 10) return value.toFixed(1);
  return value.toFixed(2);
}

export function markdownTable(report: BenchReport): string {
  const perRowPeers = report.rows.some((row) => row.peerName !== undefined);
  if (perRowPeers) {
    const lines = ['| test | unit | mirrorbox | peer | peer value | ratio |', '|---|---|---:|---|---:|---:|'];
    for (const row of report.rows) {
      lines.push(
        `| ${row.name} | ${row.unit} | ${formatNumber(row.ours)} | ${row.peerName ?? report.peerName} | ${formatNumber(row.peer)} | ${ratioOf(row).toFixed(2)} |`,
      );
    }
    return lines.join('\n');
  }
  const lines = [
    `| test | unit | mirrorbox | ${report.peerName} | ratio |`,
    '|---|---|---:|---:|---:|',
  ];
  for (const row of report.rows) {
    lines.push(
      `| ${row.name} | ${row.unit} | ${formatNumber(row.ours)} | ${formatNumber(row.peer)} | ${ratioOf(row).toFixed(2)} |`,
    );
  }
  return lines.join('\n');
}

/** A horizontal bar chart of the ratios (1.0 marked), as standalone SVG. */
export function ratioSvg(report: BenchReport): string {
  const rowHeightPx = 28;
  const labelWidthPx = report.rows.some((row) => row.peerName !== undefined) ? 420 : 260;
  const barAreaPx = 420;
  const topPx = 40;
  const heightPx = topPx + report.rows.length * rowHeightPx + 30;
  const ratios = report.rows.map(ratioOf).map((r) => (Number.isFinite(r) ? r : 0));
  const scaleMax = Math.max(1.5, ...ratios) * 1.05;
  const x = (ratio: number): number => labelWidthPx + (ratio / scaleMax) * barAreaPx;
  const escape = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;');
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${labelWidthPx + barAreaPx + 80}" height="${heightPx}" font-family="sans-serif" font-size="13">`,
    `<text x="10" y="22" font-size="15">${escape(report.benchmark)}: mirrorbox / ${escape(report.peerName)} (higher is better)</text>`,
  ];
  report.rows.forEach((row, i) => {
    const y = topPx + i * rowHeightPx;
    const ratio = ratios[i]!;
    const label = row.peerName === undefined ? row.name : `${row.name} vs ${row.peerName}`;
    parts.push(`<text x="10" y="${y + 17}">${escape(label)}</text>`);
    parts.push(
      `<rect x="${labelWidthPx}" y="${y + 4}" width="${Math.max(1, x(ratio) - labelWidthPx)}" height="${rowHeightPx - 10}" fill="${ratio >= 1 ? '#3a7' : ratio >= 0.8 ? '#db3' : '#d54'}"/>`,
    );
    parts.push(`<text x="${x(ratio) + 5}" y="${y + 17}">${ratio.toFixed(2)}</text>`);
  });
  const oneX = x(1);
  parts.push(`<line x1="${oneX}" y1="${topPx - 4}" x2="${oneX}" y2="${heightPx - 24}" stroke="#333" stroke-dasharray="4 3"/>`);
  parts.push(`<text x="${oneX - 8}" y="${heightPx - 8}">1.0</text>`);
  parts.push('</svg>');
  return parts.join('\n');
}

/** Writes bench/results/<name>.json and <name>.svg and prints the table. */
export function writeReport(resultsPath: string, report: BenchReport): void {
  mkdirSync(dirname(resultsPath), { recursive: true });
  writeFileSync(resultsPath, JSON.stringify(report, null, 2) + '\n');
  writeFileSync(resultsPath.replace(/\.json$/, '.svg'), ratioSvg(report) + '\n');
  process.stdout.write(`\n${markdownTable(report)}\n\nwrote ${resultsPath} and ${resultsPath.replace(/\.json$/, '.svg')}\n`);
}
