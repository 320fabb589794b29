/**
 * The exports a server offers: a name, a description and the block device behind it.
 */
import type { BlockDevice } from '../store/block-device.js';

export interface NbdExport {
  name: string;
  description: string;
  device: BlockDevice;
}

export class ExportTable {
  private readonly byName = new Map<string, NbdExport>();
  private readonly ordered: NbdExport[] = [];

  constructor(exports: readonly NbdExport[]) {
    for (const entry of exports) {
      if (this.byName.has(entry.name)) throw new Error(`duplicate export name "${entry.name}"`);
      this.byName.set(entry.name, entry);
      this.ordered.push(entry);
    }
    if (this.ordered.length === 0) throw new Error('a server needs at least one export');
  }

  /** The export with this name; the empty name means the first (default) export, as nbdkit does. */
  find(name: string): NbdExport | undefined {
    return name === '' ? this.ordered[0] : this.byName.get(name);
  }

  all(): readonly NbdExport[] {
    return this.ordered;
  }
}
