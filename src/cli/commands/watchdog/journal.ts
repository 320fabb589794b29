import { Command, Flags } from '@oclif/core';
import { journalEvents, readJournal } from '../../../watchdog/journal.js';
import { journalFilesKeptMax } from '../../../watchdog/limits.js';
import { configFlags, formatTable, locate, locatedJournal, parseSince } from '../../watchdog-common.js';

export default class WatchdogJournal extends Command {
  static override summary = 'Read the restart/shutdown journal (rotated files included, oldest first).';

  static override description = `Every event, with its process, pid, cause, rung and incident id. Events:
${journalEvents.join(', ')}.
The format is in src/watchdog/FORMATS.md.`;

  static override examples = [
    { description: 'The last hour', command: '<%= config.bin %> watchdog journal -c appliance/watchdog.yaml --since 1h' },
    { description: 'One process since a point in time, as JSON', command: '<%= config.bin %> watchdog journal -c appliance/watchdog.yaml --process store --since 2024-05-01T12:00:00Z --json' },
    { description: 'Everything about one incident', command: '<%= config.bin %> watchdog journal -c appliance/watchdog.yaml --incident 20240501T120000Z-3fa2c1' },
  ];

  static override flags = {
    ...configFlags,
    file: Flags.string({ description: 'read this journal file (and every rotated FILE.1, FILE.2… beside it) instead of the one the config names' }),
    since: Flags.string({ description: 'only events at or after this time: an ISO 8601 date (00:00 UTC) or date-time (2024-05-01T12:00:00Z, 2024-05-01T14:00+02:00; no zone: local time), or a span back from now (90s, 15m, 2h, 1d)' }),
    process: Flags.string({ description: 'only events about this process' }),
    incident: Flags.string({ description: 'only events of this incident' }),
    json: Flags.boolean({ description: 'print a JSON array of entries instead of a table' }),
  };

  async run(): Promise<void> {
    const { flags } = await this.parse(WatchdogJournal);
    // --file: a journal whose rotation is unknown, so every rotated file present is read.
    const { path: journal, filesKept } = flags.file !== undefined ? { path: flags.file, filesKept: journalFilesKeptMax } : locatedJournal(locate(flags));
    const query = {
      ...(flags.since !== undefined ? { sinceMs: parseSince(flags.since) } : {}),
      ...(flags.process !== undefined ? { process: flags.process } : {}),
      ...(flags.incident !== undefined ? { incident: flags.incident } : {}),
    };
    const read = readJournal(journal, query, filesKept);
    if (read.skippedLines > 0) this.warn(`${read.skippedLines} line(s) of ${journal} are not journal entries and were skipped`);
    if (flags.json) {
      this.log(JSON.stringify(read.entries, null, 2));
      return;
    }
    this.log(
      formatTable(
        ['TIME', 'EVENT', 'PROCESS', 'PID', 'RUNG', 'INCIDENT', 'CAUSE'],
        read.entries.map((e) => [e.time, e.event, e.process ?? '-', e.pid === null ? '-' : String(e.pid), e.rung ?? '-', e.incident ?? '-', e.cause ?? '-']),
      ),
    );
  }
}
